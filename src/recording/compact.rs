//! Which file a recording is attached as: an MP3 made from FreeSWITCH's WAV (the default), or
//! the file as recorded. The encode runs on the blocking pool from the outbox's delivery, never on
//! a call's path, and only once the WAV is complete (final header, unchanged while encoded). It is
//! idempotent, keyed by the WAV's path: an MP3 beside it exists only once whole and is reused.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::mp3::{self, Mp3Error};
use super::{Readiness, inspect};

/// How recordings travel to Bitrix24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachFormat {
    /// The file FreeSWITCH wrote, unchanged.
    AsRecorded,
    /// A WAV is encoded to MP3 first (an MP3 recording goes as it is).
    Mp3 {
        /// Bitrate per channel, one of [`mp3::KBPS_PER_CHANNEL`].
        kbps_per_channel: u32,
    },
}

/// The recording is still being written; ask again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recording {}: {why}", path.display())]
pub(crate) struct NotReady {
    /// The recording.
    pub path: PathBuf,
    /// What shows it is not complete.
    pub why: &'static str,
}

/// The MP3 a WAV recording is encoded to: beside it, same name.
pub(crate) fn mp3_path(recorded: &Path) -> PathBuf {
    recorded.with_extension("mp3")
}

/// The file to attach for `recorded`. A WAV that cannot be encoded (not 16-bit PCM, the MP3 not
/// writable) is attached as it is, so a recording is never lost to the conversion; a missing
/// file is returned unchanged for the caller's own checks.
///
/// Cancel-safe: dropped mid-encode, the blocking encode finishes or leaves only a `.part` file,
/// which the next call replaces.
pub(crate) async fn attachable(recorded: &Path, format: AttachFormat) -> Result<PathBuf, NotReady> {
    let AttachFormat::Mp3 { kbps_per_channel } = format else {
        return Ok(recorded.to_owned());
    };
    let is_wav = recorded
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
    if !is_wav {
        return Ok(recorded.to_owned());
    }
    let mp3 = mp3_path(recorded);
    if tokio::fs::metadata(&mp3).await.is_ok_and(|m| m.len() > 0) {
        // Encoded by an earlier attempt (a retry, or a run killed before its upload).
        return Ok(mp3);
    }
    match inspect(recorded).await {
        Readiness::Ready { .. } => {}
        Readiness::Incomplete => {
            return Err(NotReady {
                path: recorded.to_owned(),
                why: "WAV header not final yet (still being written)",
            });
        }
        Readiness::Missing | Readiness::Unsupported => return Ok(recorded.to_owned()),
    }
    let (wav, out) = (recorded.to_owned(), mp3.clone());
    let encoded =
        tokio::task::spawn_blocking(move || mp3::wav_to_mp3(&wav, &out, kbps_per_channel)).await;
    match encoded {
        Ok(Ok(done)) => {
            let ratio = done.mp3_bytes as f64 / done.wav_bytes.max(1) as f64;
            info!(
                wav_bytes = done.wav_bytes,
                mp3_bytes = done.mp3_bytes,
                ratio = %format_args!("{ratio:.3}"),
                secs = %format_args!("{:.1}", done.duration.as_secs_f64()),
                "recording encoded to mp3"
            );
            Ok(mp3)
        }
        Ok(Err(Mp3Error::Changed { .. })) => Err(NotReady {
            path: recorded.to_owned(),
            why: "WAV changed while it was encoded (still being written)",
        }),
        Ok(Err(err)) => {
            warn!(
                error = &err as &dyn std::error::Error,
                "recording not encoded to mp3; attaching it as recorded"
            );
            Ok(recorded.to_owned())
        }
        Err(err) => {
            warn!(error = %err, "mp3 encode task failed; attaching the recording as recorded");
            Ok(recorded.to_owned())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MP3: AttachFormat = AttachFormat::Mp3 {
        kbps_per_channel: 24,
    };

    fn pcm_wav(data_len: u32, riff: u32) -> Vec<u8> {
        let mut w = b"RIFF".to_vec();
        w.extend_from_slice(&riff.to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        for v in [16u32, 0x0001_0001, 8000, 16000, 0x0010_0002] {
            w.extend_from_slice(&v.to_le_bytes());
        }
        w.extend_from_slice(b"data");
        w.extend_from_slice(&data_len.to_le_bytes());
        w.resize(44 + data_len as usize, 0);
        w
    }

    #[tokio::test]
    async fn a_complete_wav_is_attached_as_mp3_and_encoded_once() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("call.wav");
        std::fs::write(&wav, pcm_wav(16_000, 36 + 16_000)).unwrap();
        let first = attachable(&wav, MP3).await.unwrap();
        assert_eq!(first, dir.path().join("call.mp3"));
        let made = std::fs::metadata(&first).unwrap().modified().unwrap();
        // A retry (the upload failed, or a kill came after the rename) reuses the MP3.
        assert_eq!(attachable(&wav, MP3).await.unwrap(), first);
        assert_eq!(std::fs::metadata(&first).unwrap().modified().unwrap(), made);
        assert!(wav.exists(), "FreeSWITCH's file stays");
    }

    #[tokio::test]
    async fn a_wav_still_being_written_is_not_attached_yet() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("call.wav");
        // FreeSWITCH writes the final RIFF size when it closes the file.
        std::fs::write(&wav, pcm_wav(16_000, 36)).unwrap();
        let err = attachable(&wav, MP3).await.unwrap_err();
        assert!(err.to_string().contains("still being written"), "{err}");
        assert!(!mp3_path(&wav).exists());
    }

    #[tokio::test]
    async fn as_recorded_mp3_recordings_and_unencodable_wavs_go_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        std::fs::write(&wav, pcm_wav(800, 36 + 800)).unwrap();
        assert_eq!(
            attachable(&wav, AttachFormat::AsRecorded).await.unwrap(),
            wav
        );
        let mp3 = dir.path().join("b.mp3");
        assert_eq!(attachable(&mp3, MP3).await.unwrap(), mp3);
        let odd = dir.path().join("c.wav");
        let mut bytes = pcm_wav(800, 36 + 800);
        bytes[34] = 24; // 24-bit samples: not encoded, attached as they are
        std::fs::write(&odd, bytes).unwrap();
        assert_eq!(attachable(&odd, MP3).await.unwrap(), odd);
        let gone = dir.path().join("gone.wav");
        assert_eq!(attachable(&gone, MP3).await.unwrap(), gone);
    }
}
