//! Outage replay at the portal's speed: the outbox worker and the real Bitrix24 client against
//! the Bitrix24 peer, which refuses connections for a while. While it is down the worker probes
//! with one request at a time; the first answer releases the whole backlog, which then leaves at
//! the rate of the peer's own leaky bucket. Prints the figures (`-- --nocapture`).

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use fsb24::bitrix::{AuthSettings, BitrixClient, BitrixSettings, RateLimit, WebhookUrl};
use fsb24::ids::{BitrixUserId, ExternalCallId, PhoneNumber};
use fsb24::outbox::op::{CallType, FinishCall, RegisterCall};
use fsb24::outbox::{BitrixWrite, CallWrite, Outbox, RetryBackoff, WorkerConfig, worker};

use crate::support::bitrix_peer::{BitrixPeer, BucketConfig, Outage, PeerOptions, SeedUser};

/// The peer's bucket: 20 requests/s, burst 10 (the client is configured with the same figures).
const RATE: f64 = 20.0;
const BURST: u32 = 10;
/// Calls in the backlog; each needs a register and a finish, one request each (no batching).
const CALLS: usize = 40;

fn writes(n: usize) -> [CallWrite; 2] {
    let call = ExternalCallId::new(format!("fs-outage-{n:03}"));
    let register = BitrixWrite::Register(RegisterCall {
        user: BitrixUserId(1),
        phone: PhoneNumber::parse(&format!("+49301234{n:03}")).unwrap(),
        call_type: CallType::Incoming,
        line_number: None,
        started_at: DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap(),
        crm_create: false,
        show: false,
        crm: None,
    });
    let finish = BitrixWrite::Finish(FinishCall {
        user: BitrixUserId(1),
        duration_secs: 0,
        status_code: "304".into(),
        add_to_chat: false,
        failed_reason: None,
    });
    [register, finish].map(|write| CallWrite {
        call: call.clone(),
        write,
    })
}

#[tokio::test]
async fn after_an_outage_the_backlog_follows_the_portal_within_2_s_at_its_rate() {
    let bx = BitrixPeer::start(PeerOptions {
        bucket: BucketConfig {
            drain_per_sec: RATE,
            burst: BURST,
        },
        ..PeerOptions::default()
    })
    .await;
    bx.set_webhook_wrong_auth_type(false);
    bx.add_user(SeedUser::new(1, "Admin", None));
    bx.go_down(Outage::Refuse).await;

    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("outbox.db")).await.unwrap();
    for n in 0..CALLS {
        outbox.push_all(writes(n).to_vec()).await.unwrap();
    }
    let hook = WebhookUrl::parse(&bx.webhook_url().unwrap()).unwrap();
    let mut settings = BitrixSettings::new(AuthSettings::Webhook(hook));
    settings.batch_window = None;
    settings.rate = RateLimit {
        per_second: RATE,
        burst: BURST,
    };
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let client = BitrixClient::start(settings, &tracker, stop.clone())
        .await
        .unwrap();
    // retry_max 5 min: every entry's own timer would be minutes away after a long outage.
    let config = WorkerConfig {
        backoff: RetryBackoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(300),
            jitter: 0.0,
        },
        ..WorkerConfig::default()
    };
    let worker = tokio::spawn(worker::run(
        outbox.clone(),
        Arc::new(client),
        config,
        stop.clone(),
    ));

    // The outage itself is the scenario: 4 s of refused connections, long enough for the
    // entries' own backoff to reach 4 s (0.5, 1, 2, 4).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let probes_while_down = outbox.metrics().snapshot().retries;
    bx.restore().await;
    let back = Instant::now();
    let mut done = outbox.completions();
    tokio::time::timeout(
        Duration::from_secs(30),
        done.wait_for(|n| *n >= 2 * CALLS as u64),
    )
    .await
    .expect("the backlog drains")
    .unwrap();

    let requests = bx.requests();
    let first = requests[0].at.duration_since(back);
    let last = requests.last().unwrap().at;
    let span = last.duration_since(requests[0].at).as_secs_f64();
    // The peer's own bucket is the reference: from empty, over `span` it admits at most
    // BURST + RATE * span requests.
    let capacity = f64::from(BURST) + RATE * span;
    let share = requests.len() as f64 / capacity;
    eprintln!(
        "outage replay: {CALLS} calls, {} requests; first request {:.0} ms after the portal \
         answered again; drained in {span:.2} s = {:.1} req/s ({:.1} % of the peer's bucket: \
         burst {BURST} + {RATE}/s); {} rejected; {probes_while_down} failed attempts in the \
         4 s outage",
        requests.len(),
        first.as_secs_f64() * 1000.0,
        requests.len() as f64 / span.max(f64::EPSILON),
        share * 100.0,
        bx.count_rejected(),
    );
    assert_eq!(
        requests.len(),
        2 * CALLS,
        "each write once after the outage"
    );
    assert!(
        requests.iter().all(|r| r.status == 200),
        "every write accepted"
    );
    assert!(
        first <= Duration::from_secs(2),
        "first request {first:?} after restore"
    );
    assert!(
        share >= 0.9,
        "drained at {:.1} % of the limit",
        share * 100.0
    );
    assert_eq!(bx.count_rejected(), 0, "never above the portal's limit");
    // The first attempts of the calls in flight when it went down (max_in_flight), then one
    // probe at a time: not one attempt per entry per backoff step.
    let in_flight = fsb24::outbox::WorkerConfig::default().max_in_flight;
    assert!(
        probes_while_down <= in_flight as u64 + 8,
        "{probes_while_down} attempts while down"
    );
    // Oldest call first: the probe that found the portal back was the oldest call's register.
    assert_eq!(requests[0].method, "telephony.externalcall.register");
    assert_eq!(requests[0].params["PHONE_NUMBER"], "+49301234000");

    stop.cancel();
    worker.await.unwrap();
    tracker.close();
    tracker.wait().await;
}
