//! Byte-exact parser of the real transcripts (RAW TRANSCRIPT chunks, renderer lines skipped),
//! ESL frame splitting, and the comparable "key frame" projection used by the replays.

use crate::support::esl_peer::wire;

/// Who wrote a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// FreeSWITCH to the app (one TCP read).
    FsToApp,
    /// The app to FreeSWITCH (one write).
    AppToFs,
}

/// One `---- #N` chunk of a RAW TRANSCRIPT section.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Section label, e.g. `OUT8084#1-run1`.
    pub section: String,
    /// Direction.
    pub dir: Dir,
    /// Seconds since the scenario start.
    pub t: f64,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// Parses every RAW TRANSCRIPT section of a transcript file, byte-exact.
pub fn parse_transcript(data: &[u8]) -> Result<Vec<Chunk>, String> {
    let mut out = Vec::new();
    let (mut pos, mut section) = (0usize, String::new());
    while pos < data.len() {
        let end = data[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| pos + i);
        let line = String::from_utf8_lossy(&data[pos..end]).into_owned();
        pos = (end + 1).min(data.len());
        if let Some(rest) = line.strip_prefix("======================== RAW TRANSCRIPT ") {
            section = rest.trim_end_matches(['=', ' ']).to_owned();
            continue;
        }
        if section.is_empty() || !line.starts_with("---- #") {
            continue;
        }
        let dir = if line.contains(" APP->FS (") {
            Dir::AppToFs
        } else if line.contains(" FS->APP (") {
            Dir::FsToApp
        } else {
            continue; // [harness note], connection closed
        };
        let n: usize = line
            .rsplit_once('(')
            .and_then(|(_, r)| r.split(' ').next()?.parse().ok())
            .ok_or_else(|| format!("no byte count in {line}"))?;
        let t: f64 = line
            .split("t=+")
            .nth(1)
            .and_then(|r| r.split('s').next()?.parse().ok())
            .unwrap_or(0.0);
        let bytes = data
            .get(pos..pos + n)
            .ok_or_else(|| format!("short chunk {line}"))?
            .to_vec();
        pos += n;
        if bytes.last() != Some(&b'\n') {
            let marker = b"\n[chunk does not end with LF]\n";
            if !data[pos..].starts_with(marker) {
                return Err(format!("missing renderer marker after {line}"));
            }
            pos += marker.len();
        }
        out.push(Chunk {
            section: section.clone(),
            dir,
            t,
            bytes,
        });
    }
    Ok(out)
}

/// One ESL frame: outer headers (raw) and body.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Outer headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes (`Content-Length`).
    pub body: Vec<u8>,
}

impl Frame {
    /// Outer header.
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_headers(block: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(block)
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Splits complete frames off the front of `buf`; returns them and the bytes consumed.
pub fn split_frames(buf: &[u8]) -> (Vec<Frame>, usize) {
    let (mut frames, mut pos) = (Vec::new(), 0);
    loop {
        let start = pos + buf[pos..].iter().take_while(|&&b| b == b'\n').count();
        let Some(hend) = buf[start..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|i| start + i)
        else {
            break;
        };
        let headers = parse_headers(&buf[start..hend]);
        let len = headers
            .iter()
            .find(|(k, _)| k == "Content-Length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let body_start = hend + 2;
        let body_end = body_start + len.unwrap_or(0);
        if body_end > buf.len() {
            break;
        }
        frames.push(Frame {
            headers,
            body: buf[body_start..body_end].to_vec(),
        });
        pos = body_end;
    }
    (frames, pos)
}

/// Inner headers of a `text/event-plain` body, values decoded.
pub fn event_headers(body: &[u8]) -> Vec<(String, String)> {
    let end = body
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(body.len());
    parse_headers(&body[..end])
        .into_iter()
        .map(|(k, v)| (k, wire::decode(&v)))
        .collect()
}

const KEY_EVENTS: &[&str] = &[
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "RECORD_START",
    "RECORD_STOP",
    "BACKGROUND_JOB",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
];
const KEY_HEADERS: &[&str] = &[
    "Application",
    "Application-Data",
    "Application-Response",
    "Application-UUID",
    "Hangup-Cause",
    "Answer-State",
    "variable_originate_disposition",
    "variable_DIALSTATUS",
    "variable_last_bridge_hangup_cause",
    "Record-File-Path",
];

/// The comparable projection of a frame, or None if it is not a key frame.
pub fn key_of(f: &Frame) -> Option<String> {
    match f.header("Content-Type")? {
        "command/reply" if f.header("Event-Name").is_some() => Some(format!(
            "connect Reply-Text={:?} Control={:?}",
            wire::decode(f.header("Reply-Text")?),
            f.header("Control")?
        )),
        "command/reply" => {
            let t = f.header("Reply-Text")?;
            Some(format!(
                "reply {}",
                if t.starts_with("+OK Job-UUID") {
                    "+OK Job-UUID"
                } else {
                    t
                }
            ))
        }
        "api/response" => {
            let b = String::from_utf8_lossy(&f.body);
            let shown = if b.starts_with('-') {
                b.trim_end().to_owned()
            } else if b.starts_with("+OK") {
                "+OK".into()
            } else {
                "<value>".into()
            };
            Some(format!("api {shown}"))
        }
        "text/disconnect-notice" => Some(format!(
            "notice {}",
            f.header("Content-Disposition").unwrap_or("-")
        )),
        "text/event-plain" => project(&event_headers(&f.body)),
        "text/event-json" => project(&json_headers(&f.body)?),
        _ => None,
    }
}

/// Headers of a `text/event-json` body (strings only; a duplicated key keeps its last value).
pub fn json_headers(body: &[u8]) -> Option<Vec<(String, String)>> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    Some(
        map.into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect(),
    )
}

/// The key projection of an event's headers; None for events the replays do not compare.
fn project(h: &[(String, String)]) -> Option<String> {
    let name = h.iter().find(|(k, _)| k == "Event-Name")?.1.clone();
    if !KEY_EVENTS.contains(&name.as_str()) {
        return None;
    }
    let mut s = name;
    let socket = h.iter().any(|(k, v)| k == "Application" && v == "socket");
    for key in KEY_HEADERS {
        if socket && *key == "Application-Data" {
            s.push_str(" Application-Data=<socket address> async full");
        } else if socket && *key == "Application-UUID" {
            s.push_str(" Application-UUID=<dialplan>");
        } else if let Some((_, v)) = h.iter().find(|(k, _)| k == key) {
            s.push_str(&format!(" {key}={v}"));
        }
    }
    Some(s)
}
