//! `{placeholder}` templates from the config: agent dial strings and recording paths.
//!
//! Templates are checked once at load (known placeholders, balanced braces, safe literal text);
//! rendering cannot fail and never lets a value escape its slot.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Slot(&'static str),
}

/// Splits `raw` into text and `{name}` slots, accepting only names in `allowed`.
fn parse(raw: &str, allowed: &[&'static str]) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = raw;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("unmatched `}}` in {raw:?}"));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in {raw:?}"))?;
        let name = &after[..close];
        let slot = allowed.iter().find(|a| **a == name).ok_or_else(|| {
            let list = allowed
                .iter()
                .map(|a| format!("{{{a}}}"))
                .collect::<Vec<_>>();
            format!("unknown placeholder {{{name}}}; use {}", list.join(", "))
        })?;
        if open > 0 {
            segments.push(Segment::Text(rest[..open].to_owned()));
        }
        segments.push(Segment::Slot(slot));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest.to_owned()));
    }
    Ok(segments)
}

fn uses(segments: &[Segment], name: &str) -> bool {
    segments
        .iter()
        .any(|s| matches!(s, Segment::Slot(n) if *n == name))
}

fn literal_text(segments: &[Segment]) -> impl Iterator<Item = char> + '_ {
    segments.iter().flat_map(|s| match s {
        Segment::Text(t) => t.chars().collect::<Vec<_>>(),
        Segment::Slot(_) => Vec::new(),
    })
}

// === DialTemplate ===

/// How an agent is dialled, e.g. `user/{extension}@{domain}` or `sofia/internal/{extension}@pbx`.
#[derive(Clone, PartialEq, Eq)]
pub struct DialTemplate {
    raw: String,
    segments: Vec<Segment>,
}

impl DialTemplate {
    /// Checks a template: `{extension}` required, `{domain}` optional, and no character that
    /// would change the meaning of a FreeSWITCH dial string (`,` `|` `{` `[` quotes, spaces).
    /// `%` stays allowed for `sofia/<profile>/<user>%<domain>`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let segments = parse(raw, &["extension", "domain"])?;
        if !uses(&segments, "extension") {
            return Err(format!("{raw:?} lacks {{extension}}"));
        }
        if let Some(bad) = literal_text(&segments)
            .find(|c| !(c.is_ascii_alphanumeric() || "/@._:-+=;%".contains(*c)))
        {
            return Err(format!("{bad:?} is not allowed in a dial string template"));
        }
        Ok(Self {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// Whether the template needs `esl.dial.domain`.
    pub fn uses_domain(&self) -> bool {
        uses(&self.segments, "domain")
    }

    /// The dial string for one agent. `extension` and `domain` are validated config values.
    pub fn render(&self, extension: &str, domain: &str) -> String {
        let mut out = String::with_capacity(self.raw.len() + extension.len() + domain.len());
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Slot("extension") => out.push_str(extension),
                Segment::Slot(_) => out.push_str(domain),
            }
        }
        out
    }
}

impl fmt::Debug for DialTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DialTemplate({:?})", self.raw)
    }
}

// === RecordingTemplate ===

/// Values for one recording path. Anything but ASCII letters, digits, `+`, `-` and `_`
/// is replaced by `_` when rendered, so a value can never add a directory level.
#[derive(Debug, Clone, Copy)]
pub struct RecordingVars<'a> {
    /// `YYYY-MM-DD` (local date of call start).
    pub date: &'a str,
    /// `HHMMSS` (local time of call start).
    pub time: &'a str,
    /// The caller channel's id.
    pub call: &'a str,
    /// Caller number.
    pub caller: &'a str,
    /// Dialled number.
    pub destination: &'a str,
}

/// Where a recording is written, e.g. `/var/lib/fsb24/recordings/{date}/{call}.wav`.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordingTemplate {
    raw: String,
    segments: Vec<Segment>,
}

impl RecordingTemplate {
    /// The placeholders a recording path may use.
    pub const PLACEHOLDERS: [&'static str; 5] = ["date", "time", "call", "caller", "destination"];

    /// Checks a template: absolute, ends in `.wav` or `.mp3` (all Bitrix24 accepts), and
    /// contains `{call}` so two calls never share a file.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let segments = parse(raw, &Self::PLACEHOLDERS)?;
        if !raw.starts_with('/') {
            return Err(format!("{raw:?} must be an absolute path"));
        }
        if !(raw.ends_with(".wav") || raw.ends_with(".mp3")) {
            return Err(format!(
                "{raw:?} must end in .wav or .mp3 (Bitrix24 accepts only these)"
            ));
        }
        if !uses(&segments, "call") {
            return Err(format!(
                "{raw:?} lacks {{call}}, so calls would overwrite each other"
            ));
        }
        if literal_text(&segments).any(|c| c.is_control()) {
            return Err(format!("{raw:?} contains a control character"));
        }
        Ok(Self {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// Whether recordings are `.mp3` (else `.wav`).
    pub fn is_mp3(&self) -> bool {
        self.raw.ends_with(".mp3")
    }

    /// The path for one call.
    pub fn render(&self, vars: &RecordingVars<'_>) -> PathBuf {
        let mut out = String::with_capacity(self.raw.len() + 64);
        for segment in &self.segments {
            let value = match segment {
                Segment::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Segment::Slot("date") => vars.date,
                Segment::Slot("time") => vars.time,
                Segment::Slot("call") => vars.call,
                Segment::Slot("caller") => vars.caller,
                Segment::Slot(_) => vars.destination,
            };
            out.extend(value.chars().map(|c| {
                if c.is_ascii_alphanumeric() || "+-_".contains(c) {
                    c
                } else {
                    '_'
                }
            }));
        }
        PathBuf::from(out)
    }
}

impl fmt::Debug for RecordingTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordingTemplate({:?})", self.raw)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn dial_template_renders_extension_and_domain() {
        let t = DialTemplate::parse("user/{extension}@{domain}").unwrap();
        assert!(t.uses_domain());
        assert_eq!(t.render("1001", "pbx.local"), "user/1001@pbx.local");
    }

    #[test]
    fn dial_template_refuses_dial_string_metacharacters_and_unknown_slots() {
        assert!(DialTemplate::parse("user/{extension},user/1002").is_err());
        assert!(DialTemplate::parse("{x=y}user/{extension}").is_err());
        assert!(DialTemplate::parse("user/{ext}").is_err());
        assert!(DialTemplate::parse("user/1001").is_err());
        assert!(DialTemplate::parse("user/{extension").is_err());
    }

    #[test]
    fn recording_values_cannot_escape_their_directory() {
        let t = RecordingTemplate::parse("/rec/{date}/{caller}-{call}.wav").unwrap();
        let vars = RecordingVars {
            date: "2026-11-25",
            time: "101500",
            call: "abc",
            caller: "../../etc/passwd",
            destination: "1",
        };
        assert_eq!(
            t.render(&vars),
            PathBuf::from("/rec/2026-11-25/______etc_passwd-abc.wav")
        );
    }

    #[test]
    fn recording_template_needs_call_slot_absolute_path_and_known_extension() {
        assert!(RecordingTemplate::parse("/rec/{date}.wav").is_err());
        assert!(RecordingTemplate::parse("rec/{call}.wav").is_err());
        assert!(RecordingTemplate::parse("/rec/{call}.ogg").is_err());
        assert!(RecordingTemplate::parse("/rec/{uuid}.wav").is_err());
    }
}
