//! The real `fsb24` binary against event POSTs that carry the valid application_token but
//! hostile fields: they cannot forge log lines, and a thousand oversized ones cost no more
//! memory, outbox or log than a thousand normal clicks.

use std::path::Path;
use std::time::Duration;

use crate::support::app::config_text;
use crate::support::bitrix_peer::{BitrixPeer, BucketConfig, ClickToCall, PeerOptions, SeedUser};
use crate::support::daemon::{Daemon, free_port};
use crate::support::esl_peer::FsPeer;

const TOKEN: &str = "2c6e0b9f4d1a8e7c3b5f9a0d2e4c6b81";
/// A Bitrix24 user without a phone in fsb24: the click is finished at once (603-S).
const NO_PHONE_USER: u64 = 77;
/// What the click task logs for each such click.
const PROCESSED: &str = "no agent for the bitrix user";

struct Rig {
    fs: FsPeer,
    bx: BitrixPeer,
    dir: tempfile::TempDir,
    daemon: Daemon,
    handler: String,
    http: reqwest::Client,
}

impl Rig {
    /// fsb24 with click-to-call; `http` adds keys to its `[http]` section.
    async fn start(http: &str) -> Self {
        let fs = FsPeer::start().await.unwrap();
        let bx = BitrixPeer::start(PeerOptions {
            bucket: BucketConfig {
                drain_per_sec: 10_000.0,
                burst: 10_000,
            },
            ..PeerOptions::default()
        })
        .await;
        bx.set_webhook_wrong_auth_type(false);
        bx.add_user(SeedUser::new(NO_PHONE_USER, "No phone", None));
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let body = format!(
            "[bitrix.rate]\nper_second = 1000\nburst = 1000\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\npath = \"/bitrix24/event\"\n{http}\n\
             [click_to_call]\ngateway = \"carrier\"\n"
        );
        let text = config_text(&fs, &bx, dir.path(), &[("1001", 11)], &body).replace(
            "[bitrix]\n",
            &format!("[bitrix]\napplication_token = \"{TOKEN}\"\n"),
        );
        let config = dir.path().join("fsb24.toml");
        std::fs::write(&config, text).unwrap();
        let mut daemon = Daemon::new(config, dir.path().join("fsb24.log"));
        daemon.start().await;
        Self {
            fs,
            bx,
            dir,
            daemon,
            handler: format!("http://127.0.0.1:{port}/bitrix24/event"),
            // A fresh connection per event: one answered 413 is closed with its body unread.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// POSTs form pairs (encoded here, so any value can be sent); the status.
    async fn post(&self, form: &[(&str, &str)]) -> u16 {
        let body = serde_urlencoded::to_string(form).unwrap();
        let sent = self
            .http
            .post(&self.handler)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        // A body over the cap may be answered 413 and closed before it is all sent.
        sent.map_or(0, |r| r.status().as_u16())
    }

    /// Bytes of the outbox database and its -wal and -shm.
    fn outbox_bytes(&self) -> u64 {
        ["outbox.db", "outbox.db-wal", "outbox.db-shm"]
            .iter()
            .filter_map(|name| std::fs::metadata(self.dir.path().join(name)).ok())
            .map(|m| m.len())
            .sum()
    }

    fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.daemon.log).map_or(0, |m| m.len())
    }

    /// The daemon's resident set now and at its peak, in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let pid = self.daemon.pid().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn stop(mut self) {
        self.daemon.kill().await;
        self.fs.shutdown().await;
        self.bx.shutdown().await;
    }
}

fn click_form<'a>(call_id: &'a str, line: &'a str, extra: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("event", "ONEXTERNALCALLSTART"),
        ("data[PHONE_NUMBER]", "+49 30 123456789"),
        ("data[PHONE_NUMBER_INTERNATIONAL]", "+4930123456789"),
        ("data[USER_ID]", "77"),
        ("data[CALL_LIST_ID]", "0"),
        ("data[LINE_NUMBER]", line),
        ("data[CALL_ID]", call_id),
        ("data[CRM_CREATED_LEAD]", extra),
        ("auth[application_token]", TOKEN),
    ]
}

/// Every line fsb24 wrote starts with a timestamp (or is the harness's start marker).
fn assert_no_forged_lines(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "an escape sequence reached the log"
    );
    for line in text.lines() {
        let stamped = line.len() > 20
            && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && line.as_bytes()[4] == b'-';
        assert!(
            stamped || line.starts_with("=== start"),
            "forged or broken log line: {line:?}"
        );
    }
}

#[tokio::test]
async fn event_fields_cannot_forge_log_lines() {
    let rig = Rig::start("").await;
    let forged = "\n2026-01-01T00:00:00.000000Z  INFO fsb24: FORGED admin logged in\n";
    let escape = "\u{1b}[2J\u{1b}[31mFORGED";
    let hostile = [
        format!("externalCall.ab.1{forged}"),
        format!("externalCall.ab.2{escape}"),
    ];
    for call_id in &hostile {
        // Twice: a redelivery is logged as a duplicate, with its CALL_ID.
        for _ in 0..2 {
            rig.post(&click_form(call_id, "", "")).await;
        }
    }
    let mut statuses = Vec::new();
    for (key, value) in [
        ("event", forged),
        ("data[LINE_NUMBER]", forged),
        ("data[USER_ID]", forged),
        ("data[CRM_CREATED_LEAD]", escape),
    ] {
        let mut form = click_form("externalCall.ab.3", "", "");
        form.retain(|(k, _)| *k != key);
        form.push((key, value));
        statuses.push((key, rig.post(&form).await));
    }
    // A valid click last: once it is processed, everything before it has been logged.
    assert_eq!(
        rig.post(&click_form("externalCall.ab.4", "", "")).await,
        200
    );
    assert!(
        rig.daemon
            .wait_log_count(PROCESSED, 1, Duration::from_secs(10))
            .await
    );
    assert_no_forged_lines(&rig.daemon.log);
    for (key, status) in statuses {
        assert_eq!(status, 400, "{key}");
    }
    rig.stop().await;
}

/// Sends 1000 events produced by `event(i)` in rounds of 50; when they are to be `accepted`,
/// each round is awaited in the log before the next (the click queue holds 64).
async fn thousand(rig: &Rig, accepted: bool, event: impl Fn(&Rig, usize) -> Vec<(String, String)>) {
    for round in 0..20 {
        for i in round * 50..(round + 1) * 50 {
            let form = event(rig, i);
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let status = rig.post(&pairs).await;
            if accepted {
                assert_eq!(status, 200, "event {i}");
            } else {
                assert!([0, 400, 413].contains(&status), "event {i}: {status}");
            }
        }
        if accepted {
            let done = (round + 1) * 50;
            let seen = rig
                .daemon
                .wait_log_count(PROCESSED, done, Duration::from_secs(60))
                .await;
            if !seen {
                let log = std::fs::read_to_string(&rig.daemon.log).unwrap();
                let tail: Vec<_> = log.lines().rev().take(30).collect();
                panic!("{done} clicks not processed; log tail: {tail:#?}");
            }
        }
    }
}

struct Usage {
    rss_kib: u64,
    peak_kib: u64,
    outbox: u64,
    log: u64,
}

async fn measure(oversized: bool) -> Usage {
    let rig = Rig::start("").await;
    if oversized {
        thousand(&rig, false, |_, i| {
            let big = "f".repeat(60 * 1024);
            let id = format!("externalCall.{i:x}.1777879000");
            let (call_id, line, extra) = match i % 4 {
                0 => (
                    format!("externalCall.{big}.{i}"),
                    String::new(),
                    String::new(),
                ),
                1 => (id, big, String::new()),
                2 => (id, String::new(), big),
                // Over the 64 KiB body cap.
                _ => (
                    format!("externalCall.{big}{big}.{i}"),
                    String::new(),
                    String::new(),
                ),
            };
            click_form(&call_id, &line, &extra)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .await;
        // Nothing was accepted; one valid click marks the end of the log for both runs.
        let form = click_form("externalCall.e0.1", "", "");
        assert_eq!(rig.post(&form).await, 200);
        assert!(
            rig.daemon
                .wait_log_count(PROCESSED, 1, Duration::from_secs(10))
                .await
        );
    } else {
        thousand(&rig, true, |rig, i| {
            // The portal registers each click first, as Bitrix24 does (another number each:
            // the same user and number within 30 minutes would be the same call).
            let click = ClickToCall {
                user_id: NO_PHONE_USER,
                phone: format!("+49 30 1234{i:04}"),
                line_number: String::new(),
                crm: None,
                queued_for: Duration::ZERO,
            };
            let (_, form) = rig.bx.click_to_call_form(&click, TOKEN);
            form
        })
        .await;
    }
    let (rss_kib, peak_kib) = rig.rss_kib();
    let usage = Usage {
        rss_kib,
        peak_kib,
        outbox: rig.outbox_bytes(),
        log: rig.log_bytes(),
    };
    rig.stop().await;
    usage
}

#[tokio::test]
async fn a_thousand_oversized_events_cost_no_more_than_a_thousand_normal_clicks() {
    let _exclusive = crate::support::EXCLUSIVE.lock().await;
    let normal = measure(false).await;
    let oversized = measure(true).await;
    let figures = format!(
        "RSS {} -> {} KiB (peak {} -> {}), outbox {} -> {} bytes, log {} -> {} bytes",
        normal.rss_kib,
        oversized.rss_kib,
        normal.peak_kib,
        oversized.peak_kib,
        normal.outbox,
        oversized.outbox,
        normal.log,
        oversized.log
    );
    eprintln!("normal -> oversized: {figures}");
    assert!(oversized.rss_kib <= 2 * normal.rss_kib, "{figures}");
    assert!(oversized.peak_kib <= 2 * normal.peak_kib, "{figures}");
    assert!(oversized.outbox <= 2 * normal.outbox, "{figures}");
    assert!(oversized.log <= 2 * normal.log, "{figures}");
}

#[tokio::test]
async fn the_configured_header_read_timeout_closes_half_open_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rig = Rig::start("header_read_timeout = \"1s\"").await;
    let addr = rig.handler.trim_start_matches("http://");
    let addr = addr.split('/').next().unwrap();
    let mut half_open = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /bitrix24/event HTTP/1.1\r\nHost: fsb24\r\n")
            .await
            .unwrap();
        half_open.push(stream);
    }
    let sent = tokio::time::Instant::now();
    for stream in &mut half_open {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest));
        assert!(closed.await.is_ok(), "a half-open connection stayed open");
    }
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "closed before the timeout"
    );
    rig.stop().await;
}
