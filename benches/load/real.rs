//! Event bodies copied from the real FreeSWITCH 1.10.12 transcripts in `benches/load/real/`
//! (copies of `/work/shared/fixtures/esl/real`): the synthetic switch re-sends them with the
//! uuids, the application, the agent and the times of the simulated call, and nothing else
//! changed, so fsb24 parses exactly the headers a real switch sends.

use std::collections::HashMap;

/// One event as FreeSWITCH sent it: header names and their encoded values, in wire order.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    headers: Vec<(String, String)>,
}

/// Placeholders for the legs of the captured call.
pub(crate) const A: &str = "{A}";
pub(crate) const B: &str = "{B}";

impl Template {
    /// The value of `name` (still encoded).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Renders the event as `Name: value` lines with the placeholders replaced and `set`
    /// overriding (or adding) headers; values of `set` are encoded here.
    pub(crate) fn render(&self, a: &str, b: &str, set: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(8192);
        for (k, v) in &self.headers {
            if let Some((_, nv)) = set.iter().find(|(n, _)| n == k) {
                push_header(&mut out, k, &encode(nv));
                continue;
            }
            if v.contains('{') {
                push_header(&mut out, k, &v.replace(A, a).replace(B, b));
            } else {
                push_header(&mut out, k, v);
            }
        }
        for (k, v) in set {
            if !self.headers.iter().any(|(n, _)| n == k) {
                push_header(&mut out, k, &encode(v));
            }
        }
        out
    }
}

fn push_header(out: &mut String, k: &str, v: &str) {
    out.push_str(k);
    out.push_str(": ");
    out.push_str(v);
    out.push('\n');
}

/// FreeSWITCH's `switch_url_encode` as seen on the wire: letters, digits and `-_.~@/` stay.
pub(crate) fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One frame read from a transcript.
#[derive(Debug, Clone)]
struct Frame {
    outer: Vec<(String, String)>,
    event: Vec<(String, String)>,
}

impl Frame {
    fn name(&self) -> Option<&str> {
        lookup(&self.event, "Event-Name").or_else(|| lookup(&self.outer, "Event-Name"))
    }
    fn get(&self, k: &str) -> Option<&str> {
        lookup(&self.event, k).or_else(|| lookup(&self.outer, k))
    }
}

fn lookup<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// The FS->APP bytes of one connection (`section`, e.g. `OUT8084#1`) of a transcript.
fn fs_bytes(text: &str, section: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut pos = 0;
    while let Some(rel) = text[pos..].find("\n---- #") {
        let start = pos + rel + 1;
        let line_end = text[start..].find('\n').map_or(text.len(), |e| start + e);
        let line = &text[start..line_end];
        pos = line_end;
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = words.iter().position(|w| *w == "FS->APP") else {
            continue;
        };
        if i == 0 || words[i - 1] != section {
            continue;
        }
        let n: usize = words
            .get(i + 1)
            .and_then(|w| w.trim_start_matches('(').parse().ok())
            .unwrap_or(0);
        let from = line_end + 1;
        let to = (from + n).min(bytes.len());
        out.extend_from_slice(&bytes[from..to]);
        pos = to.saturating_sub(1).max(line_end);
    }
    out
}

fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut rest: &str = &text;
    while let Some(end) = rest.find("\n\n") {
        let outer = parse_headers(&rest[..end]);
        rest = &rest[end + 2..];
        let len: usize = lookup(&outer, "Content-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = &rest[..len.min(rest.len())];
        rest = &rest[len.min(rest.len())..];
        let event = match lookup(&outer, "Content-Type") {
            Some("text/event-plain") => {
                let head = body.split("\n\n").next().unwrap_or("");
                parse_headers(head)
            }
            _ => Vec::new(),
        };
        out.push(Frame { outer, event });
    }
    out
}

/// The events the synthetic switch sends, each copied from a real transcript.
pub(crate) struct Catalog {
    map: HashMap<&'static str, Template>,
}

impl Catalog {
    /// The template called `key`.
    pub(crate) fn get(&self, key: &str) -> &Template {
        &self.map[key]
    }

    /// Reads the transcripts shipped in `benches/load/real/`.
    pub(crate) fn load() -> anyhow::Result<Self> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/load/real/");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}"));
        let a = frames(&fs_bytes(&read("a_answered_agent.txt")?, "OUT8084#1"));
        let b = frames(&fs_bytes(
            &read("b_sequential_noanswer_then_answer.txt")?,
            "OUT8084#1",
        ));
        let c = frames(&fs_bytes(
            &read("c_caller_abandon_while_ringing.txt")?,
            "OUT8084#1",
        ));
        let p = frames(&fs_bytes(&read("presence_register_events.txt")?, "IN8021"));
        let mut map = HashMap::new();
        let data = pick(&a, "CHANNEL_DATA", None, 0)?;
        let a_leg = data.get("Unique-ID").unwrap_or_default().to_owned();
        let bridge = pick(&a, "CHANNEL_BRIDGE", None, 0)?;
        let b_leg = bridge
            .get("Other-Leg-Unique-ID")
            .unwrap_or_default()
            .to_owned();
        let legs = [(a_leg.as_str(), A), (b_leg.as_str(), B)];
        // The connect reply: the outer headers are the dump.
        map.insert("connect", template(&data.outer, &legs));
        let mut put = |key, frames: &[Frame], name, app, nth| -> anyhow::Result<()> {
            let f = pick(frames, name, app, nth)?;
            let (a, b) = legs_of(frames);
            map.insert(key, template(&f.event, &[(a.as_str(), A), (b.as_str(), B)]));
            Ok(())
        };
        put("execute", &a, "CHANNEL_EXECUTE", Some("answer"), 0)?;
        put("execute_bridge", &a, "CHANNEL_EXECUTE", Some("bridge"), 0)?;
        put("answer", &a, "CHANNEL_ANSWER", None, 0)?;
        put(
            "complete",
            &a,
            "CHANNEL_EXECUTE_COMPLETE",
            Some("answer"),
            0,
        )?;
        put("bridge", &a, "CHANNEL_BRIDGE", None, 0)?;
        put("unbridge", &a, "CHANNEL_UNBRIDGE", None, 0)?;
        put(
            "complete_bridge_ok",
            &a,
            "CHANNEL_EXECUTE_COMPLETE",
            Some("bridge"),
            0,
        )?;
        put("hangup", &a, "CHANNEL_HANGUP", None, 0)?;
        put("hangup_complete", &a, "CHANNEL_HANGUP_COMPLETE", None, 0)?;
        put(
            "complete_bridge_no_answer",
            &b,
            "CHANNEL_EXECUTE_COMPLETE",
            Some("bridge"),
            0,
        )?;
        put("abandon_hangup", &c, "CHANNEL_HANGUP", None, 0)?;
        put(
            "complete_bridge_cancel",
            &c,
            "CHANNEL_EXECUTE_COMPLETE",
            Some("bridge"),
            0,
        )?;
        put(
            "abandon_hangup_complete",
            &c,
            "CHANNEL_HANGUP_COMPLETE",
            None,
            0,
        )?;
        // Switch-wide: the caller's and the agent's CHANNEL_CREATE, the agent's hang-up.
        put("sw_create_a", &p, "CHANNEL_CREATE", None, 0)?;
        put("sw_create_b", &p, "CHANNEL_CREATE", None, 1)?;
        put("sw_hangup_b", &p, "CHANNEL_HANGUP_COMPLETE", None, 0)?;
        put("sw_hangup_a", &p, "CHANNEL_HANGUP_COMPLETE", None, 1)?;
        put("sw_answer", &a, "CHANNEL_ANSWER", None, 0)?;
        Ok(Self { map })
    }
}

/// The A and B legs of a transcript: the first CHANNEL_CREATE/CHANNEL_DATA and its partner.
fn legs_of(frames: &[Frame]) -> (String, String) {
    let a = frames
        .iter()
        .find_map(|f| match f.name() {
            Some("CHANNEL_DATA" | "CHANNEL_CREATE" | "CHANNEL_EXECUTE") => {
                f.get("Unique-ID").map(str::to_owned)
            }
            _ => None,
        })
        .unwrap_or_default();
    let b = frames
        .iter()
        .find_map(|f| {
            f.get("Other-Leg-Unique-ID")
                .filter(|o| *o != a)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "no-b-leg".to_owned());
    (a, b)
}

fn pick<'a>(
    frames: &'a [Frame],
    name: &str,
    app: Option<&str>,
    nth: usize,
) -> anyhow::Result<&'a Frame> {
    frames
        .iter()
        .filter(|f| f.name() == Some(name))
        .filter(|f| app.is_none() || f.get("Application") == app)
        .nth(nth)
        .ok_or_else(|| anyhow::anyhow!("no {name} {app:?} #{nth} in the transcript"))
}

fn template(headers: &[(String, String)], legs: &[(&str, &str)]) -> Template {
    let skip = ["Content-Type", "Reply-Text", "Socket-Mode", "Control"];
    Template {
        headers: headers
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| {
                let mut v = v.clone();
                for (from, to) in legs {
                    if !from.is_empty() {
                        v = v.replace(from, to);
                    }
                }
                (k.clone(), v)
            })
            .collect(),
    }
}
