//! ESL wire format as FreeSWITCH 1.10.12 writes it: value encoding (esl-protocol.md §3.2),
//! command/reply, api/response, event-plain envelopes, disconnect notices, and the command reader.

use std::fmt::Write as _;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;

/// Body of the final disconnect notice (67 bytes).
pub const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// Percent-encodes a header value exactly like `switch_url_encode` in event serialisation.
pub fn encode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(bytes.len() + 8);
    for (i, &c) in bytes.iter().enumerate() {
        let already = c == b'%'
            && bytes.len() > i + 2
            && is_upper_hex(bytes[i + 1])
            && is_upper_hex(bytes[i + 2]);
        if already {
            out.push('%');
        } else if !(0x20..=0x7E).contains(&c) || b"\r\n #%&+:;<=>?@[\\]^`{|}\"".contains(&c) {
            let _ = write!(out, "%{c:02X}");
        } else {
            out.push(char::from(c));
        }
    }
    out
}

fn is_upper_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'A'..=b'F').contains(&c)
}

/// Decodes `%XX` (either case) like libesl; anything else is literal.
pub fn decode(value: &str) -> String {
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `command/reply` frame with a raw Reply-Text.
pub fn reply(text: &str) -> String {
    format!("Content-Type: command/reply\nReply-Text: {text}\n\n")
}

/// `bgapi` acknowledgement: Reply-Text plus a separate Job-UUID header.
pub fn bgapi_reply(job: &str) -> String {
    format!("Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n")
}

/// `api/response` frame.
pub fn api_response(body: &str) -> String {
    format!(
        "Content-Type: api/response\nContent-Length: {}\n\n{body}",
        body.len()
    )
}

/// Serialises an event's headers (and optional body) as a `text/event-plain` frame.
pub fn event_plain(headers: &[(String, String)], body: Option<&str>) -> String {
    let mut inner = String::with_capacity(4096);
    for (k, v) in headers {
        let _ = writeln!(inner, "{k}: {}", encode(v));
    }
    match body {
        Some(b) => {
            let _ = write!(inner, "Content-Length: {}\n\n{b}", b.len());
        }
        None => inner.push('\n'),
    }
    format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n{inner}",
        inner.len()
    )
}

/// Serialises an event as `text/event-json`: values not encoded, duplicates kept, `_body` last,
/// no trailing LF.
pub fn event_json(headers: &[(String, String)], body: Option<&str>) -> String {
    let quote = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
    let mut pairs: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
        .collect();
    if let Some(b) = body {
        pairs.push(format!(
            "{}:{}",
            quote("Content-Length"),
            quote(&b.len().to_string())
        ));
        pairs.push(format!("{}:{}", quote("_body"), quote(b)));
    }
    let inner = format!("{{{}}}", pairs.join(","));
    format!(
        "Content-Length: {}\nContent-Type: text/event-json\n\n{inner}",
        inner.len()
    )
}

/// The outbound linger notice (values raw, not encoded).
pub fn linger_notice(uuid: &str, channel_name: &str, linger: i64) -> String {
    format!(
        "Content-Type: text/disconnect-notice\nControlled-Session-UUID: {uuid}\nContent-Disposition: linger\n\
         Channel-Name: {channel_name}\nLinger-Time: {linger}\nContent-Length: 0\n\n"
    )
}

/// The final disconnect notice; `uuid` is None on inbound connections.
pub fn goodbye_notice(uuid: Option<&str>) -> String {
    let mut s = String::from("Content-Type: text/disconnect-notice\n");
    if let Some(u) = uuid {
        let _ = write!(
            s,
            "Controlled-Session-UUID: {u}\nContent-Disposition: disconnect\n"
        );
    }
    let _ = write!(s, "Content-Length: {}\n\n{GOODBYE}", GOODBYE.len());
    s
}

/// One command received from the application: first line, headers, optional body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command line, e.g. `sendmsg` or `api uuid_kill ...`.
    pub line: String,
    /// Following `Name: value` lines, in order.
    pub headers: Vec<(String, String)>,
    /// Body announced by `Content-Length`, if any.
    pub body: Option<String>,
    /// The exact bytes read for this command.
    pub raw: String,
}

impl Command {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one command (lines up to a blank line, then a Content-Length body). `Ok(None)` on EOF.
pub async fn read_command(r: &mut BufReader<OwnedReadHalf>) -> std::io::Result<Option<Command>> {
    let mut raw = String::new();
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        raw.push_str(&line);
        let trimmed = line.trim_end_matches(['\n', '\r']).to_owned();
        if trimmed.is_empty() {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(trimmed);
    }
    let line = lines.remove(0);
    let headers: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.split_once(": ").or_else(|| l.split_once(':')))
        .map(|(k, v)| (k.trim().to_owned(), v.trim_start().to_owned()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = match len {
        Some(n) => {
            let mut buf = vec![0; n];
            r.read_exact(&mut buf).await?;
            let b = String::from_utf8_lossy(&buf).into_owned();
            raw.push_str(&b);
            Some(b)
        }
        None => None,
    };
    Ok(Some(Command {
        line,
        headers,
        body,
        raw,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_follows_the_freeswitch_rule() {
        assert_eq!(encode("+OK\n"), "%2BOK%0A");
        assert_eq!(encode("%(2000,4000,440,480)"), "%25(2000,4000,440,480)");
        assert_eq!(encode("100%41"), "100%41");
        assert_eq!(encode("Müller a@b:c"), "M%C3%BCller%20a%40b%3Ac");
        assert_eq!(
            encode("{leg_timeout=5}user/1001"),
            "%7Bleg_timeout%3D5%7Duser/1001"
        );
        assert_eq!(decode("%2BOK%0A"), "+OK\n");
    }
}
