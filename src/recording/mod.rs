//! Call recordings on local disk: the path a call records to (from the configured template) and
//! whether a file FreeSWITCH wrote is complete enough to attach to Bitrix24.
//!
//! Rendering is pure; [`inspect`] reads only a file's length and header and never the whole file.

pub(crate) mod compact;
pub(crate) mod mp3;

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use tokio::io::AsyncReadExt;

/// The placeholders a path template may use.
pub(crate) const PLACEHOLDERS: &[&str] =
    &["call", "date", "time", "caller", "destination", "agent"];

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{name}` with a name not in [`PLACEHOLDERS`].
    #[error("unknown placeholder {{{0}}}; known: call, date, time, caller, destination, agent")]
    UnknownPlaceholder(String),
    /// A `{` without its `}`.
    #[error("unclosed '{{'")]
    Unclosed,
    /// FreeSWITCH's uuid_record (and record_session) split their arguments on spaces.
    #[error("the path must not contain spaces")]
    Space,
    /// Bitrix24 accepts only these.
    #[error("the file must end in .wav or .mp3")]
    Extension,
    /// FreeSWITCH resolves relative paths against its own working directory.
    #[error("the path must be absolute")]
    NotAbsolute,
    /// Without `{call}` two calls would write the same file.
    #[error("the path lacks {{call}}, so calls would overwrite each other")]
    NoCall,
    /// Control characters cannot travel in an ESL header.
    #[error("the path contains a control character")]
    Control,
}

/// A validated recording path template such as `/var/lib/fsb24/rec/{date}/{call}.wav`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    raw: String,
}

/// What a rendered path is made from.
#[derive(Debug, Clone)]
pub struct RecordingVars<'a> {
    /// The caller channel's uuid.
    pub call: &'a str,
    /// When the call started.
    pub started_at: DateTime<FixedOffset>,
    /// The caller's number (digits and `+` only; anything else is dropped).
    pub caller: &'a str,
    /// The dialled number (digits and `+` only).
    pub destination: &'a str,
    /// The agent who answered (their config name).
    pub agent: &'a str,
}

impl PathTemplate {
    /// Checks placeholders, spaces, control characters, that the path is absolute, names the
    /// call and ends in `.wav` / `.mp3`.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        if raw.contains(' ') {
            return Err(TemplateError::Space);
        }
        if raw.chars().any(char::is_control) {
            return Err(TemplateError::Control);
        }
        if !raw.starts_with('/') {
            return Err(TemplateError::NotAbsolute);
        }
        let lower = raw.to_ascii_lowercase();
        if !(lower.ends_with(".wav") || lower.ends_with(".mp3")) {
            return Err(TemplateError::Extension);
        }
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or(TemplateError::Unclosed)?;
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(TemplateError::UnknownPlaceholder(name.to_owned()));
            }
            rest = &after[close + 1..];
        }
        Ok(Self {
            raw: raw.to_owned(),
        })
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The path for one call. Values are reduced to characters that are safe in a path and in a
    /// FreeSWITCH application argument (no spaces, no separators, no `..`).
    pub fn render(&self, vars: &RecordingVars<'_>) -> PathBuf {
        let safe = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'))
                .collect()
        };
        let out = self
            .raw
            .replace("{call}", &safe(vars.call))
            .replace("{date}", &vars.started_at.format("%Y-%m-%d").to_string())
            .replace("{time}", &vars.started_at.format("%H%M%S").to_string())
            .replace("{caller}", &safe(vars.caller))
            .replace("{destination}", &safe(vars.destination))
            .replace("{agent}", &safe(vars.agent));
        PathBuf::from(out)
    }
}

/// Audio formats Bitrix24 accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudioFormat {
    /// RIFF/WAVE.
    Wav,
    /// MPEG layer 3.
    Mp3,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The file is complete: for WAV the RIFF size matches the file size (FreeSWITCH writes the
    /// final header when it closes the file).
    Ready {
        /// File size in bytes.
        bytes: u64,
        /// Its format.
        format: AudioFormat,
    },
    /// The file exists but is still being written (or its header is not final).
    Incomplete,
    /// No such file.
    Missing,
    /// Not a `.wav` / `.mp3` file, or its content does not match its extension.
    Unsupported,
}

/// Looks at a recording without reading it whole.
pub(crate) async fn inspect(path: &Path) -> Readiness {
    let format = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "wav" => AudioFormat::Wav,
        Some(e) if e == "mp3" => AudioFormat::Mp3,
        _ => return Readiness::Unsupported,
    };
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Readiness::Missing,
        Err(_) => return Readiness::Incomplete,
    };
    let bytes = match file.metadata().await {
        Ok(m) => m.len(),
        Err(_) => return Readiness::Incomplete,
    };
    let mut head = [0u8; 12];
    let got = read_up_to(&mut file, &mut head).await;
    classify(format, bytes, &head[..got])
}

async fn read_up_to(file: &mut tokio::fs::File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}

/// Pure part of [`inspect`]: decides from the size and the first 12 bytes.
pub(crate) fn classify(format: AudioFormat, bytes: u64, head: &[u8]) -> Readiness {
    match format {
        AudioFormat::Wav => {
            if head.len() < 12 {
                return Readiness::Incomplete;
            }
            if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
                return Readiness::Unsupported;
            }
            let riff = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            if u64::from(riff) + 8 == bytes && bytes > 44 {
                Readiness::Ready { bytes, format }
            } else {
                Readiness::Incomplete
            }
        }
        AudioFormat::Mp3 => {
            let id3 = head.starts_with(b"ID3");
            let sync = head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0;
            match (bytes, id3 || sync) {
                (0, _) => Readiness::Incomplete,
                (_, true) => Readiness::Ready { bytes, format },
                (_, false) => Readiness::Unsupported,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wav_header(riff: u32) -> Vec<u8> {
        let mut h = b"RIFF".to_vec();
        h.extend_from_slice(&riff.to_le_bytes());
        h.extend_from_slice(b"WAVE");
        h
    }

    #[test]
    fn templates_reject_unknown_placeholders_spaces_and_other_formats() {
        assert_eq!(
            PathTemplate::parse("/r/{uuid}.wav"),
            Err(TemplateError::UnknownPlaceholder("uuid".into()))
        );
        assert_eq!(PathTemplate::parse("/r/a b.wav"), Err(TemplateError::Space));
        assert_eq!(
            PathTemplate::parse("/r/{call}.ogg"),
            Err(TemplateError::Extension)
        );
        assert_eq!(
            PathTemplate::parse("/r/{call.wav"),
            Err(TemplateError::Unclosed)
        );
    }

    #[test]
    fn rendering_keeps_values_out_of_path_and_argument_syntax() {
        let t = PathTemplate::parse("/rec/{date}/{caller}-{call}.wav").unwrap();
        let started_at = DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap();
        let vars = RecordingVars {
            call: "ab/../c d",
            started_at,
            caller: "+7 999",
            destination: "9000",
            agent: "1001",
        };
        assert_eq!(
            t.render(&vars),
            PathBuf::from("/rec/2026-05-04/+7999-abcd.wav")
        );
    }

    #[test]
    fn a_wav_is_ready_only_when_its_riff_size_matches_the_file() {
        assert_eq!(
            classify(AudioFormat::Wav, 1052, &wav_header(1044)),
            Readiness::Ready {
                bytes: 1052,
                format: AudioFormat::Wav
            }
        );
        assert_eq!(
            classify(AudioFormat::Wav, 1052, &wav_header(36)),
            Readiness::Incomplete
        );
        assert_eq!(
            classify(AudioFormat::Wav, 8, b"RIFF"),
            Readiness::Incomplete
        );
        assert_eq!(
            classify(AudioFormat::Wav, 100, b"OggS00000000"),
            Readiness::Unsupported
        );
    }

    #[tokio::test]
    async fn inspect_reports_missing_and_ready_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        assert_eq!(inspect(&path).await, Readiness::Missing);
        let mut data = wav_header(36 + 100);
        data.resize(44 + 100, 0);
        std::fs::write(&path, &data).unwrap();
        assert_eq!(
            inspect(&path).await,
            Readiness::Ready {
                bytes: 144,
                format: AudioFormat::Wav
            }
        );
        assert_eq!(
            inspect(&dir.path().join("x.txt")).await,
            Readiness::Unsupported
        );
    }
}
