//! Replays the APP->FS side of the real FreeSWITCH 1.10.12 transcripts against the test peer and
//! checks that the same key frames (replies, notices, call-control events with their key headers)
//! come back in the same order; plus checks of the peer's inbound side and wire shape.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

use crate::support::esl_peer::{CallSpec, FsPeer, wire};

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
        "text/event-plain" => {
            let h = event_headers(&f.body);
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
        _ => None,
    }
}

struct Script {
    /// Key frames FS sent, in order.
    keys: Vec<String>,
    /// APP->FS chunks with the number of key frames before each and the app's think time.
    sends: Vec<(usize, Duration, Vec<u8>)>,
    /// The connect reply's headers (decoded).
    connect: Vec<(String, String)>,
}

fn script(chunks: &[Chunk], section: &str) -> Script {
    let (mut buf, mut keys, mut sends, mut connect, mut last_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0.0);
    for c in chunks.iter().filter(|c| c.section == section) {
        match c.dir {
            Dir::AppToFs => {
                let think = Duration::from_secs_f64((c.t - last_t).max(0.0));
                sends.push((keys.len(), think, c.bytes.clone()));
            }
            Dir::FsToApp => {
                last_t = c.t;
                buf.extend_from_slice(&c.bytes);
                let (frames, used) = split_frames(&buf);
                buf.drain(..used);
                for f in frames {
                    if f.header("Event-Name") == Some("CHANNEL_DATA") {
                        connect = f
                            .headers
                            .iter()
                            .map(|(k, v)| (k.clone(), wire::decode(v)))
                            .collect();
                    }
                    keys.extend(key_of(&f));
                }
            }
        }
    }
    Script {
        keys,
        sends,
        connect,
    }
}

fn load(name: &str) -> Vec<Chunk> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/esl/real")
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_transcript(&data).unwrap()
}

/// Replays one outbound section against `fs` and returns (real keys, peer keys).
async fn replay(
    fs: &FsPeer,
    file: &str,
    section: &str,
    hang_up_after: Option<Duration>,
) -> (Vec<String>, Vec<String>) {
    let sc = script(&load(file), section);
    let get = |k: &str| {
        sc.connect
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = CallSpec {
        caller: get("Caller-Caller-ID-Number"),
        destination: get("Caller-Destination-Number"),
        uuid: Some(get("Unique-ID")),
        hang_up_after,
        ..CallSpec::default()
    };
    let mut caller = fs
        .offer_call(listener.local_addr().unwrap(), spec)
        .await
        .unwrap();
    let (sock, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let (mut rd, mut wr) = sock.into_split();
    let (count_tx, mut count_rx) = watch::channel(0usize);
    let (key_tx, mut key_rx) = mpsc::channel(4096);
    let own = fsb24::ids::ChannelId::new(get("Unique-ID"));
    let reader = tokio::spawn(async move {
        let (mut buf, mut n, mut tmp) = (Vec::new(), 0, vec![0u8; 65536]);
        while let Ok(Ok(r)) = timeout(Duration::from_secs(20), rd.read(&mut tmp)).await {
            if r == 0 {
                break;
            }
            buf.extend_from_slice(&tmp[..r]);
            let (frames, used) = split_frames(&buf);
            buf.drain(..used);
            for f in frames {
                if f.header("Content-Type") == Some("text/event-plain") {
                    let ev =
                        freeswitch_esl_tokio::parse_channel_dump(&String::from_utf8_lossy(&f.body))
                            .unwrap();
                    fsb24::esl::map_event(&ev, &own).unwrap();
                }
                if let Some(k) = key_of(&f) {
                    n += 1;
                    let _ = key_tx.send(k).await;
                    count_tx.send_replace(n);
                }
            }
        }
        assert!(
            buf.is_empty(),
            "trailing partial frame: {:?}",
            String::from_utf8_lossy(&buf)
        );
    });
    for (before, think, bytes) in &sc.sends {
        let waited = timeout(
            Duration::from_secs(20),
            count_rx.wait_for(|n| *n >= *before),
        )
        .await;
        assert!(
            waited.is_ok(),
            "{file}: stuck before sending {:?}",
            String::from_utf8_lossy(bytes)
        );
        if *think > Duration::from_millis(100) {
            tokio::time::sleep(*think).await; // the recorded app's own think time, not a wait
        }
        if wr.write_all(bytes).await.is_err() {
            break;
        }
    }
    timeout(Duration::from_secs(20), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(caller.finished().await);
    let mut got = Vec::new();
    while let Ok(k) = key_rx.try_recv() {
        got.push(k);
    }
    (sc.keys, got)
}

fn assert_same(file: &str, real: &[String], got: &[String]) {
    if real != got {
        let n = real.iter().zip(got).take_while(|(a, b)| a == b).count();
        panic!(
            "{file}: key frames differ at #{n}\n real: {:#?}\n peer: {:#?}",
            &real[n..real.len().min(n + 4)],
            &got[n..got.len().min(n + 4)]
        );
    }
}

#[test]
fn transcript_parser_reads_every_real_file_byte_exact() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/esl/real");
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "txt") {
            let chunks = parse_transcript(&std::fs::read(&p).unwrap()).unwrap();
            assert!(!chunks.is_empty(), "{}", p.display());
            files += 1;
        }
    }
    assert_eq!(files, 18);
    let a = script(&load("a_answered_agent.txt"), "OUT8084#1");
    assert_eq!(
        a.keys.first().map(String::as_str),
        Some("connect Reply-Text=\"+OK\\n\" Control=\"full\"")
    );
    assert_eq!(a.keys.last().map(String::as_str), Some("notice disconnect"));
}

#[tokio::test]
async fn replay_a_answered_agent() {
    let fs = FsPeer::start().await.unwrap();
    tokio::fs::create_dir_all("/tmp/rec").await.unwrap();
    fs.phone("1001")
        .answers_then_hangs_up(Duration::from_secs(1), Duration::from_secs(3));
    let (real, got) = replay(&fs, "a_answered_agent.txt", "OUT8084#1", None).await;
    assert_same("a", &real, &got);
    fs.shutdown().await;
}

#[tokio::test]
async fn replay_b_sequential_noanswer_then_answer() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").rings_forever();
    fs.phone("1002")
        .answers_then_hangs_up(Duration::from_secs(1), Duration::from_secs(3));
    let (real, got) = replay(
        &fs,
        "b_sequential_noanswer_then_answer.txt",
        "OUT8084#1",
        None,
    )
    .await;
    assert_same("b", &real, &got);
    let r = fs.ring_log();
    assert_eq!(r[0].why.as_deref(), Some("NO_ANSWER"));
    let rang = r[0].ended.unwrap() - r[0].started;
    assert!(
        rang >= Duration::from_secs(4) && rang <= Duration::from_millis(5050),
        "leg_timeout=5 rang {rang:?}"
    );
    fs.shutdown().await;
}

#[tokio::test]
async fn replay_b2_unregistered_and_unknown_user() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1005").unregistered();
    let (real, got) = replay(
        &fs,
        "b2_bridge_unregistered_and_unknown_user.txt",
        "OUT8084#1",
        None,
    )
    .await;
    assert_same("b2", &real, &got);
    fs.shutdown().await;
}

#[tokio::test]
async fn replay_c_caller_abandon_while_ringing() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").rings_forever();
    let (real, got) = replay(
        &fs,
        "c_caller_abandon_while_ringing.txt",
        "OUT8084#1",
        Some(Duration::from_millis(4040)),
    )
    .await;
    assert_same("c", &real, &got);
    assert_eq!(fs.ring_log()[0].why.as_deref(), Some("ORIGINATOR_CANCEL"));
    fs.shutdown().await;
}

#[tokio::test]
async fn replay_g2_unknown_app_kills_call() {
    let fs = FsPeer::start().await.unwrap();
    let (real, got) = replay(&fs, "g2_unknown_app_kills_call.txt", "OUT8084#1", None).await;
    assert_same("g2", &real, &got);
    fs.shutdown().await;
}

#[tokio::test]
async fn replay_h_no_linger_app_hangup() {
    let fs = FsPeer::start().await.unwrap();
    let (real, got) = replay(&fs, "h_no_linger_app_hangup.txt", "OUT8084#1", None).await;
    assert_same("h", &real, &got);
    fs.shutdown().await;
}

#[tokio::test]
async fn replay_d_record_during_bridge() {
    let fs = FsPeer::start().await.unwrap();
    tokio::fs::create_dir_all("/tmp/rec").await.unwrap();
    fs.phone("1001")
        .answers_then_hangs_up(Duration::from_secs(1), Duration::from_secs(8));
    let (real, got) = replay(&fs, "d_record_during_bridge.txt", "OUT8084#1", None).await;
    assert_same("d", &real, &got);
    fs.shutdown().await;
}

#[tokio::test]
async fn replay_simultaneous_bridge_first_answer_wins() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").rings_forever();
    fs.phone("1002")
        .answers_then_hangs_up(Duration::from_secs(2), Duration::from_secs(3));
    fs.phone("1003").rings_forever();
    let (real, got) = replay(&fs, "simultaneous_bridge.txt", "OUT8084#1-run1", None).await;
    assert_same("simultaneous", &real, &got);
    let why: Vec<_> = fs
        .ring_log()
        .iter()
        .map(|r| (r.user.clone(), r.why.clone().unwrap()))
        .collect();
    assert!(
        why.contains(&("1001".into(), "LOSE_RACE".into())),
        "{why:?}"
    );
    assert!(why.contains(&("1002".into(), "ANSWERED".into())), "{why:?}");
    fs.shutdown().await;
}

#[tokio::test]
async fn replay_uuid_kill_agent_leg_all_runs() {
    for run in 1..=5 {
        let fs = FsPeer::start().await.unwrap();
        fs.phone("1001").rings_forever();
        fs.phone("1002")
            .answers_then_hangs_up(Duration::from_secs(1), Duration::from_secs(2));
        let section = format!("OUT8084#1-run{run}");
        let (real, got) = replay(&fs, "uuid_kill_agent_leg.txt", &section, None).await;
        assert_same(&section, &real, &got);
        let killed = fs.ring_log()[0].clone();
        let kill = fs.wait_command("api uuid_kill").await.unwrap();
        assert!(
            killed.ended.unwrap() >= kill.at,
            "the leg ends when uuid_kill arrives"
        );
        fs.shutdown().await;
    }
}

#[tokio::test]
async fn replay_record_stop_paths_all_runs() {
    tokio::fs::create_dir_all("/tmp/rec").await.unwrap();
    let runs = [
        ("run1-caller-hangs-up", Some(Duration::from_millis(3960))),
        ("run2-uuid_record-stop", None),
        ("run3-app-hangup", None),
    ];
    for (run, hang_up) in runs {
        let fs = FsPeer::start().await.unwrap();
        let section = format!("OUT8084#1-{run}");
        let (real, got) = replay(&fs, "record_stop_paths.txt", &section, hang_up).await;
        assert_same(&section, &real, &got);
        let path = got
            .iter()
            .find_map(|k| k.split("Record-File-Path=").nth(1))
            .unwrap()
            .to_owned();
        let wav = tokio::fs::read(&path).await.unwrap();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize,
            wav.len() - 8
        );
        fs.shutdown().await;
    }
}

/// The variant name a real outbound-session event must map to (None = knowingly ignored).
fn expected_call_event(name: &str, app: Option<&str>) -> Option<&'static str> {
    Some(match name {
        "CHANNEL_ANSWER" => "Answered",
        "CHANNEL_BRIDGE" => "Bridged",
        "CHANNEL_UNBRIDGE" => "Unbridged",
        "CHANNEL_EXECUTE" => "ExecuteStarted",
        "CHANNEL_EXECUTE_COMPLETE" if app == Some("socket") => return None,
        "CHANNEL_EXECUTE_COMPLETE" => "ExecuteCompleted",
        "RECORD_START" => "RecordStarted",
        "RECORD_STOP" => "RecordStopped",
        "DTMF" => "Dtmf",
        "CHANNEL_HANGUP" => "Hangup",
        "CHANNEL_HANGUP_COMPLETE" => "HangupComplete",
        _ => return None,
    })
}

fn variant(m: &fsb24::esl::Mapped) -> String {
    let s = format!("{m:?}");
    s.split(['(', ' ', '{', ')'])
        .nth(1)
        .unwrap_or("")
        .to_owned()
}

#[test]
fn every_real_event_maps_to_the_expected_call_event_or_is_knowingly_ignored() {
    use fsb24::esl::{Mapped, map_event, map_switch_event};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/esl/real");
    let (mut outbound, mut inbound, mut json) = (0, 0, 0);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "txt"));
    files.sort();
    for path in files {
        let chunks = parse_transcript(&std::fs::read(&path).unwrap()).unwrap();
        let mut sections: Vec<String> = chunks.iter().map(|c| c.section.clone()).collect();
        sections.dedup();
        for section in sections {
            let mut buf = Vec::new();
            for c in chunks
                .iter()
                .filter(|c| c.section == section && c.dir == Dir::FsToApp)
            {
                buf.extend_from_slice(&c.bytes);
            }
            let (frames, _) = split_frames(&buf);
            let mut own = None;
            for f in frames {
                let where_ = format!("{} {section}", path.file_name().unwrap().to_string_lossy());
                if f.header("Event-Name") == Some("CHANNEL_DATA") {
                    let h: Vec<_> = f
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), wire::decode(v)))
                        .collect();
                    own = h
                        .iter()
                        .find(|(k, _)| k == "Unique-ID")
                        .map(|(_, v)| fsb24::ids::ChannelId::new(v.clone()));
                    continue;
                }
                match f.header("Content-Type") {
                    Some("text/event-plain") => {}
                    Some("text/event-json") => {
                        json += 1;
                        continue;
                    }
                    _ => continue,
                }
                let body = String::from_utf8_lossy(&f.body);
                let ev = freeswitch_esl_tokio::parse_channel_dump(&body)
                    .unwrap_or_else(|e| panic!("{where_}: {e}"));
                let h = event_headers(&f.body);
                let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                let name = get("Event-Name").unwrap();
                match &own {
                    Some(own) if section.starts_with("OUT") => {
                        outbound += 1;
                        let m =
                            map_event(&ev, own).unwrap_or_else(|e| panic!("{where_}: {name}: {e}"));
                        let mine = get("Unique-ID") == Some(own.as_str());
                        match (mine, expected_call_event(name, get("Application"))) {
                            (true, Some(want)) => {
                                assert_eq!(variant(&m), want, "{where_}: {name} -> {m:?}")
                            }
                            _ => assert!(
                                matches!(m, Mapped::Ignored(_))
                                    || name == "CHANNEL_EXECUTE_COMPLETE",
                                "{where_}: {name} -> {m:?}"
                            ),
                        }
                    }
                    _ => {
                        inbound += 1;
                        map_switch_event(&ev).unwrap_or_else(|e| panic!("{where_}: {name}: {e}"));
                    }
                }
            }
        }
    }
    // every plain event of the 18 captures; the 20 JSON events (f_answered_agent_json) are not mapped here
    assert_eq!((outbound, inbound, json), (387, 207, 20));
}

/// A raw inbound ESL client for checking the peer's inbound side frame by frame.
struct RawClient {
    rd: tokio::net::tcp::OwnedReadHalf,
    wr: tokio::net::tcp::OwnedWriteHalf,
    buf: Vec<u8>,
    frames: std::collections::VecDeque<Frame>,
}

impl RawClient {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::from_stream(tokio::net::TcpStream::connect(addr).await.unwrap())
    }

    fn from_stream(s: tokio::net::TcpStream) -> Self {
        let (rd, wr) = s.into_split();
        Self {
            rd,
            wr,
            buf: Vec::new(),
            frames: Default::default(),
        }
    }

    async fn send(&mut self, text: &str) {
        self.wr.write_all(text.as_bytes()).await.unwrap();
    }

    /// Next frame, or None at EOF (5 s failsafe).
    async fn next(&mut self) -> Option<Frame> {
        let mut tmp = vec![0u8; 65536];
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some(f);
            }
            let n = timeout(Duration::from_secs(5), self.rd.read(&mut tmp))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&tmp[..n]);
            let (frames, used) = split_frames(&self.buf);
            self.buf.drain(..used);
            self.frames.extend(frames);
        }
    }

    /// Next event frame whose Event-Name is `name` (skipping others).
    async fn event(&mut self, name: &str) -> Vec<(String, String)> {
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("EOF before {name}"));
            if f.header("Content-Type") == Some("text/event-plain") {
                let h = event_headers(&f.body);
                if h.iter().any(|(k, v)| k == "Event-Name" && v == name) {
                    return h;
                }
            }
        }
    }

    async fn authed(addr: std::net::SocketAddr) -> Self {
        let mut c = Self::connect(addr).await;
        assert_eq!(
            c.next().await.unwrap().header("Content-Type"),
            Some("auth/request")
        );
        c.send("auth ClueCon\n\n").await;
        assert_eq!(
            c.next().await.unwrap().header("Reply-Text"),
            Some("+OK accepted")
        );
        c
    }
}

#[tokio::test]
async fn inbound_auth_accepts_and_rejects_with_the_real_bytes() {
    let fs = FsPeer::start().await.unwrap();
    let mut c = RawClient::connect(fs.inbound_addr()).await;
    let mut first = vec![0u8; 64];
    let n = c.rd.read(&mut first).await.unwrap();
    assert_eq!(&first[..n], b"Content-Type: auth/request\n\n");
    c.send("auth wrong\n\n").await;
    let mut rest = Vec::new();
    timeout(Duration::from_secs(5), c.rd.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let want = "Content-Type: command/reply\nReply-Text: -ERR invalid\n\n\
                Content-Type: text/disconnect-notice\nContent-Length: 67\n\n\
                Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
    assert_eq!(String::from_utf8_lossy(&rest), want);
    let mut ok = RawClient::authed(fs.inbound_addr()).await;
    ok.send("api no_such_command arg1\n\n").await;
    assert_eq!(
        ok.next().await.unwrap().body,
        b"-ERR no_such_command Command not found!\n"
    );
    ok.send("exit\n\n").await;
    assert_eq!(
        ok.next().await.unwrap().header("Reply-Text"),
        Some("+OK bye")
    );
    assert_eq!(
        ok.next().await.unwrap().header("Content-Type"),
        Some("text/disconnect-notice")
    );
    assert!(ok.next().await.is_none());
    fs.shutdown().await;
}

#[tokio::test]
async fn inbound_bgapi_originate_reports_background_job_then_bridges() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").answers_after(Duration::from_millis(200));
    fs.phone("5550100")
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_millis(300));
    fs.phone("1002").busy();
    let mut c = RawClient::authed(fs.inbound_addr()).await;
    c.send("event plain BACKGROUND_JOB CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE\n\n")
        .await;
    assert_eq!(
        c.next().await.unwrap().header("Reply-Text"),
        Some("+OK event listener enabled plain")
    );
    let (x, y) = (
        "c6a2adba-c0fb-44d0-a600-4cf2716d72b6",
        "f78cf26b-659c-4b7e-b506-d394d0799be4",
    );
    c.send(&format!(
        "bgapi originate {{origination_uuid={x},origination_caller_id_number=5550100}}user/1001@127.0.0.1 \
         &bridge({{origination_uuid={y},ignore_early_media=true}}sofia/internal/5550100@127.0.0.1:5074)\nJob-UUID: job-1\n\n"
    ))
    .await;
    let reply = c.next().await.unwrap();
    assert_eq!(reply.header("Reply-Text"), Some("+OK Job-UUID: job-1"));
    assert_eq!(reply.header("Job-UUID"), Some("job-1"));
    let answer = c.event("CHANNEL_ANSWER").await;
    assert!(answer.contains(&("Unique-ID".into(), x.into())));
    let job = c.next().await.unwrap();
    let jh = event_headers(&job.body);
    assert!(
        jh.contains(&("Event-Name".into(), "BACKGROUND_JOB".into()))
            && jh.contains(&("Job-Command".into(), "originate".into()))
    );
    assert!(
        String::from_utf8_lossy(&job.body)
            .ends_with(&format!("Content-Length: {}\n\n+OK {x}\n", x.len() + 5))
    );
    let bridge = c.event("CHANNEL_BRIDGE").await;
    assert!(bridge.contains(&("Other-Leg-Unique-ID".into(), y.into())));
    c.send("api originate user/1002@127.0.0.1 &park()\n\n")
        .await;
    let busy = loop {
        let f = c.next().await.unwrap();
        if f.header("Content-Type") == Some("api/response") {
            break f;
        }
    };
    assert_eq!(busy.body, b"-ERR USER_BUSY\n");
    fs.shutdown().await;
}

#[tokio::test]
async fn inbound_presence_events_and_contacts_are_shaped_like_sofia() {
    let fs = FsPeer::start().await.unwrap();
    let mut c = RawClient::authed(fs.inbound_addr()).await;
    c.send("event plain CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE CUSTOM sofia::register sofia::unregister sofia::expire\n\n").await;
    assert_eq!(
        c.next().await.unwrap().header("Reply-Text"),
        Some("+OK event listener enabled plain")
    );
    c.send("api sofia_contact 1011@127.0.0.1\n\n").await;
    assert_eq!(c.next().await.unwrap().body, b"error/user_not_registered");
    c.send("api show channels as json\n\n").await;
    assert_eq!(c.next().await.unwrap().body, b"{\"row_count\": 0}");
    fs.phone("1011").register(3600);
    let reg = c.event("CUSTOM").await;
    assert_eq!(reg[0], ("Event-Subclass".into(), "sofia::register".into()));
    assert_eq!(reg[1], ("Event-Name".into(), "CUSTOM".into()));
    assert!(
        reg.contains(&("from-user".into(), "1011".into()))
            && reg.contains(&("expires".into(), "3600".into()))
    );
    let ev = freeswitch_esl_tokio::parse_channel_dump(&wire_event(&reg)).unwrap();
    assert!(matches!(
        fsb24::esl::map_switch_event(&ev).unwrap(),
        fsb24::esl::SwitchMapped::Event(fsb24::esl::SwitchEvent::Registered { .. })
    ));
    c.send("api sofia_contact */1011@127.0.0.1\n\n").await;
    let contact = c.next().await.unwrap().body;
    assert!(String::from_utf8_lossy(&contact).starts_with("sofia/internal/sip:1011@127.0.0.1:"));
    fs.phone("1011").answers_after(Duration::from_millis(100));
    let call = fs.internal_call("5550001", "1011", Duration::from_millis(300));
    let created = c.event("CHANNEL_CREATE").await;
    assert!(created.contains(&("Unique-ID".into(), call.clone())));
    c.event("CHANNEL_HANGUP_COMPLETE").await;
    fs.phone("1011").unregister();
    let unreg = c.event("CUSTOM").await;
    assert_eq!(unreg[0].1, "sofia::unregister");
    fs.phone("1012").expire();
    assert_eq!(c.event("CUSTOM").await[0].1, "sofia::expire");
    fs.shutdown().await;
}

fn wire_event(h: &[(String, String)]) -> String {
    h.iter()
        .map(|(k, v)| format!("{k}: {}\n", wire::encode(v)))
        .collect::<String>()
        + "\n"
}

#[tokio::test]
async fn inbound_server_can_be_killed_and_restarted_on_the_same_port() {
    let fs = FsPeer::start().await.unwrap();
    let mut c = RawClient::authed(fs.inbound_addr()).await;
    fs.kill_inbound();
    assert!(c.next().await.is_none(), "killed connection ends");
    assert!(
        tokio::net::TcpStream::connect(fs.inbound_addr())
            .await
            .is_err(),
        "nobody listens while down"
    );
    fs.restart_inbound().await.unwrap();
    let _again = RawClient::authed(fs.inbound_addr()).await;
    fs.shutdown().await;
}

/// Plays the app side of an outbound call: the peer dials us, we connect and subscribe.
async fn app_session(fs: &FsPeer, spec: CallSpec) -> (RawClient, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let caller = fs
        .offer_call(listener.local_addr().unwrap(), spec)
        .await
        .unwrap();
    let (sock, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut app = RawClient::from_stream(sock);
    app.send("connect\n\n").await;
    let reply = app.next().await.unwrap();
    let names: Vec<&str> = reply
        .headers
        .iter()
        .rev()
        .take(4)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        names,
        ["Control", "Socket-Mode", "Reply-Text", "Content-Type"],
        "command/reply headers come last"
    );
    assert!(
        reply.header("Content-Length").is_none() && reply.header("Reply-Text") == Some("%2BOK%0A")
    );
    for cmd in ["myevents", "linger", "event plain RECORD_START RECORD_STOP"] {
        app.send(&format!("{cmd}\n\n")).await;
        app.next().await.unwrap();
    }
    (app, caller.uuid.clone())
}

fn execute(app: &str, arg: &str) -> String {
    format!("sendmsg\ncall-command: execute\nexecute-app-name: {app}\nexecute-app-arg: {arg}\n\n")
}

fn get<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn leg_timeout_counts_whole_seconds_on_the_switch_tick() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").rings_forever();
    let (mut app, _) = app_session(
        &fs,
        CallSpec {
            caller: "+79991234567".into(),
            destination: "9000".into(),
            ..CallSpec::default()
        },
    )
    .await;
    app.send(&execute("bridge", "{leg_timeout=3}user/1001@127.0.0.1"))
        .await;
    let done = app.event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(
        get(&done, "variable_originate_disposition"),
        Some("NO_ANSWER")
    );
    assert_eq!(get(&done, "variable_DIALSTATUS"), Some("NOANSWER"));
    let ring = fs.ring_ended("1001", 0).await.unwrap();
    let rang = ring.ended.unwrap() - ring.started;
    // whole epoch seconds: a 3 s leg_timeout ends the leg after 2.0..3.0 s (plus scheduling slack)
    assert!(
        rang >= Duration::from_secs(2) && rang < Duration::from_millis(3100),
        "rang {rang:?}"
    );
    assert_eq!(ring.why.as_deref(), Some("NO_ANSWER"));
    fs.shutdown().await;
}

#[tokio::test]
async fn scripted_phones_fail_with_their_causes_and_continue_on_fail_decides_the_caller() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").busy();
    fs.phone("1002").rejects();
    fs.phone("1003").unregistered();
    let (mut app, _) = app_session(
        &fs,
        CallSpec {
            caller: "+79991234567".into(),
            destination: "9000".into(),
            ..CallSpec::default()
        },
    )
    .await;
    app.send(&execute("set", "continue_on_fail=true")).await;
    let cases = [
        ("1001", "USER_BUSY", "BUSY"),
        ("1002", "CALL_REJECTED", "DONTCALL"),
        ("1003", "USER_NOT_REGISTERED", "USER_NOT_REGISTERED"),
        ("1999", "SUBSCRIBER_ABSENT", "SUBSCRIBER_ABSENT"),
    ];
    for (user, cause, dial) in cases {
        app.send(&execute("bridge", &format!("user/{user}@127.0.0.1")))
            .await;
        let done = loop {
            let h = app.event("CHANNEL_EXECUTE_COMPLETE").await;
            if get(&h, "Application") == Some("bridge") {
                break h;
            }
        };
        assert_eq!(
            get(&done, "variable_originate_disposition"),
            Some(cause),
            "{user}"
        );
        assert_eq!(get(&done, "variable_DIALSTATUS"), Some(dial), "{user}");
        assert_eq!(
            get(&done, "Answer-State"),
            Some("ringing"),
            "caller stays up with continue_on_fail"
        );
    }
    let rings: Vec<_> = fs.ring_log().into_iter().map(|r| (r.user, r.why)).collect();
    assert_eq!(
        rings,
        [
            ("1001".to_owned(), Some("USER_BUSY".to_owned())),
            ("1002".to_owned(), Some("CALL_REJECTED".to_owned()))
        ]
    );
    app.send(&execute("unset", "continue_on_fail")).await;
    app.send(&execute("bridge", "user/1001@127.0.0.1")).await;
    let hangup = app.event("CHANNEL_HANGUP").await;
    assert_eq!(
        get(&hangup, "Hangup-Cause"),
        Some("USER_BUSY"),
        "USER_BUSY without continue_on_fail hangs the caller up"
    );
    fs.shutdown().await;
}

#[tokio::test]
async fn late_recording_delays_record_stop_and_the_file_after_the_hangup() {
    let fs = FsPeer::start().await.unwrap();
    fs.set_record_delay(Duration::from_millis(600));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.wav");
    let (mut app, _) = app_session(
        &fs,
        CallSpec {
            caller: "+79991234567".into(),
            destination: "9000".into(),
            ..CallSpec::default()
        },
    )
    .await;
    app.send(&execute("answer", "")).await;
    app.send(&execute("record_session", path.to_str().unwrap()))
        .await;
    app.event("RECORD_START").await;
    app.send("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        .await;
    app.event("CHANNEL_HANGUP").await;
    let hung_up = tokio::time::Instant::now();
    assert!(!path.exists(), "the file is late");
    let stop = app.event("RECORD_STOP").await;
    assert!(hung_up.elapsed() >= Duration::from_millis(500));
    assert_eq!(get(&stop, "Record-File-Path"), path.to_str());
    assert_eq!(&std::fs::read(&path).unwrap()[..4], b"RIFF");
    app.event("CHANNEL_HANGUP_COMPLETE").await;
    fs.shutdown().await;
}
