//! `{placeholder}` templates from the config: agent dial strings (recording paths are `crate::recording::PathTemplate`).
//!
//! Checked once at load (known placeholders, balanced braces, safe literal text);
//! rendering cannot fail and never lets a value escape its slot.

use std::fmt;

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
}
