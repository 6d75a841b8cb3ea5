//! Worker tests on paused time with a scripted FakeDeliver: retries, dead letters, order, replay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::ids::BitrixCallId;
use crate::outbox::deliver::{DeliverError, Delivered};
use crate::outbox::op::{BitrixWrite, CallWrite};
use crate::outbox::store::kind_of;
use crate::outbox::testkit::{call, cw, finish, hide, register, result, show};
use crate::outbox::{OutboxError, SqliteStore};

type Answer = Result<Delivered, DeliverError>;

/// What the fake Bitrix24 received.
#[derive(Debug, Clone)]
struct Seen {
    call: ExternalCallId,
    call_id: Option<BitrixCallId>,
    write: BitrixWrite,
    at: Instant,
}

/// A scripted Bitrix24: per (call, kind) answers, then success; optional pacing (a limiter),
/// a fixed latency, and per-call / total concurrency bookkeeping.
#[derive(Default)]
struct FakeDeliver {
    script: Mutex<HashMap<(ExternalCallId, &'static str), VecDeque<Answer>>>,
    seen: Mutex<Vec<Seen>>,
    tx: Mutex<Option<mpsc::Sender<Seen>>>,
    latency: Duration,
    pace: Option<Duration>,
    next_slot: Mutex<Option<Instant>>,
    hang: bool,
    busy: Mutex<(HashMap<ExternalCallId, usize>, usize)>,
    max_per_call: Mutex<usize>,
    max_total: Mutex<usize>,
    /// Every request fails as unreachable until this instant (a portal outage).
    down_until: Mutex<Option<Instant>>,
}

impl FakeDeliver {
    fn script(&self, n: u32, kind: &'static str, answers: impl IntoIterator<Item = Answer>) {
        self.script
            .lock()
            .unwrap()
            .entry((call(n), kind))
            .or_default()
            .extend(answers);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn kinds(&self, n: u32) -> Vec<&'static str> {
        self.seen()
            .iter()
            .filter(|s| s.call == call(n))
            .map(|s| kind_of(&s.write))
            .collect()
    }

    fn enter(&self, call: &ExternalCallId) {
        let mut busy = self.busy.lock().unwrap();
        let per = busy.0.entry(call.clone()).or_default();
        *per += 1;
        let per = *per;
        busy.1 += 1;
        let mut m = self.max_per_call.lock().unwrap();
        *m = (*m).max(per);
        let mut t = self.max_total.lock().unwrap();
        *t = (*t).max(busy.1);
    }

    fn leave(&self, call: &ExternalCallId) {
        let mut busy = self.busy.lock().unwrap();
        *busy.0.entry(call.clone()).or_default() -= 1;
        busy.1 -= 1;
    }

    /// A leaky-bucket stand-in for the client's limiter: one request per `pace`.
    fn slot(&self) -> Option<Instant> {
        let pace = self.pace?;
        let mut next = self.next_slot.lock().unwrap();
        let at = next.unwrap_or_else(Instant::now).max(Instant::now());
        *next = Some(at + pace);
        Some(at)
    }
}

impl Deliver for FakeDeliver {
    async fn deliver(
        &self,
        call: &ExternalCallId,
        call_id: Option<&BitrixCallId>,
        write: &BitrixWrite,
    ) -> Answer {
        if self.hang {
            std::future::pending::<()>().await;
        }
        if let Some(at) = self.slot() {
            tokio::time::sleep_until(at).await;
        }
        self.enter(call);
        tokio::time::sleep(self.latency).await;
        self.leave(call);
        let seen = Seen {
            call: call.clone(),
            call_id: call_id.cloned(),
            write: write.clone(),
            at: Instant::now(),
        };
        self.seen.lock().unwrap().push(seen.clone());
        let tx = self.tx.lock().unwrap().clone();
        if let Some(tx) = tx {
            let _ = tx.try_send(seen);
        }
        if self
            .down_until
            .lock()
            .unwrap()
            .is_some_and(|until| Instant::now() < until)
        {
            return retryable("connect: connection refused");
        }
        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(&(call.clone(), kind_of(write)))
            .and_then(VecDeque::pop_front);
        scripted.unwrap_or_else(|| match write {
            BitrixWrite::Register(_) => Ok(Delivered::Registered(result(call_number(call)))),
            _ => Ok(Delivered::Done),
        })
    }
}

fn call_number(call: &ExternalCallId) -> u32 {
    call.as_str()
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn retryable(reason: &str) -> Answer {
    Err(DeliverError::Retryable {
        reason: reason.into(),
        retry_after: None,
    })
}

fn config() -> WorkerConfig {
    WorkerConfig {
        backoff: RetryBackoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            jitter: 0.0,
        },
        prune_every: Duration::from_secs(3600),
        ..WorkerConfig::default()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    outbox: Outbox,
    fake: Arc<FakeDeliver>,
    shutdown: CancellationToken,
    worker: Option<JoinHandle<()>>,
}

/// Every write of an ended call `n` whose card showed to user 2: register, show, hide, finish.
fn whole_call(n: u32) -> [CallWrite; 4] {
    [
        cw(n, register(true)),
        cw(n, show(2)),
        cw(n, hide(2)),
        cw(n, finish()),
    ]
}

impl Harness {
    async fn new(fake: FakeDeliver) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("outbox.db"))
            .await
            .unwrap();
        let outbox = Outbox::with_store(Arc::new(store));
        Self {
            _dir: dir,
            outbox,
            fake: Arc::new(fake),
            shutdown: CancellationToken::new(),
            worker: None,
        }
    }

    fn start(&mut self, config: WorkerConfig) {
        let run = run(
            self.outbox.clone(),
            Arc::clone(&self.fake),
            config,
            self.shutdown.clone(),
        );
        self.worker = Some(tokio::spawn(run));
    }

    async fn push(&self, writes: impl IntoIterator<Item = CallWrite>) {
        for w in writes {
            self.outbox.push(w).await.unwrap();
        }
    }

    /// Waits (failsafe: 1 h of virtual time) until `n` entries have been completed.
    async fn completed(&self, n: u64) {
        let mut rx = self.outbox.completions();
        tokio::time::timeout(Duration::from_secs(3600), rx.wait_for(|c| *c >= n))
            .await
            .expect("entries completed in time")
            .unwrap();
    }

    async fn stop(mut self) -> (Outbox, Arc<FakeDeliver>) {
        self.shutdown.cancel();
        if let Some(worker) = self.worker.take() {
            tokio::time::timeout(Duration::from_secs(5), worker)
                .await
                .unwrap()
                .unwrap();
        }
        (self.outbox.clone(), Arc::clone(&self.fake))
    }
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_entry_is_probed_again_on_the_capped_probe_schedule() {
    let fake = FakeDeliver::default();
    fake.script(
        1,
        "finish",
        [
            retryable("QUERY_LIMIT_EXCEEDED"),
            retryable("QUERY_LIMIT_EXCEEDED"),
        ],
    );
    let mut h = Harness::new(fake).await;
    h.push([cw(1, register(false)), cw(1, finish())]).await;
    h.start(config());
    h.completed(2).await;
    let finishes: Vec<_> = h
        .fake
        .seen()
        .into_iter()
        .filter(|s| kind_of(&s.write) == "finish")
        .collect();
    assert_eq!(finishes.len(), 3);
    // The portal said "not now": the entry is the probe, 1 s apart (backoff base 1 s, capped
    // by probe_max 1 s), each attempt with the CALL_ID from register.
    assert_eq!(finishes[1].at - finishes[0].at, Duration::from_secs(1));
    assert_eq!(finishes[2].at - finishes[1].at, Duration::from_secs(1));
    assert!(
        finishes
            .iter()
            .all(|s| s.call_id == Some(result(1).call_id))
    );
    let (outbox, _) = h.stop().await;
    let report = outbox.status().await.unwrap();
    assert_eq!((report.pending, report.dead_letters.len()), (0, 0));
    assert_eq!(outbox.metrics().snapshot().retries, 2);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_dead_letters_the_entry_and_retry_redrives_the_call_in_order() {
    let fake = FakeDeliver::default();
    fake.script(
        1,
        "register",
        [Err(DeliverError::Permanent {
            reason: "User is not found or is not active".into(),
        })],
    );
    let mut h = Harness::new(fake).await;
    h.push([cw(1, register(false)), cw(1, finish())]).await;
    let waiter = {
        let outbox = h.outbox.clone();
        tokio::spawn(async move { outbox.register_result(&call(1)).await })
    };
    h.start(config());
    h.completed(2).await;
    assert!(matches!(
        waiter.await.unwrap(),
        Err(OutboxError::RegisterFailed { .. })
    ));
    let report = h.outbox.status().await.unwrap();
    let reasons: Vec<_> = report
        .dead_letters
        .iter()
        .map(|d| (d.kind.as_str(), d.reason.clone()))
        .collect();
    assert_eq!(
        reasons[0],
        (
            "register",
            "permanent: User is not found or is not active".to_owned()
        )
    );
    assert_eq!(reasons[1].0, "finish");
    assert_eq!(
        h.fake.kinds(1),
        ["register"],
        "nothing is sent without a CALL_ID"
    );

    assert_eq!(h.outbox.retry_dead_letters(None).await.unwrap(), 2);
    h.completed(4).await;
    assert_eq!(h.fake.kinds(1), ["register", "register", "finish"]);
    let (outbox, _) = h.stop().await;
    assert!(outbox.status().await.unwrap().dead_letters.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_finish_whose_answer_was_lost_counts_as_done_when_the_retry_finds_no_call() {
    let fake = FakeDeliver::default();
    fake.script(
        1,
        "finish",
        [
            retryable("timeout"),
            Err(DeliverError::CallNotFound {
                reason: "Call is not found".into(),
            }),
        ],
    );
    let mut h = Harness::new(fake).await;
    let rec = tempfile::NamedTempFile::with_suffix(".mp3").unwrap();
    std::fs::write(rec.path(), b"ID3").unwrap();
    let attach = BitrixWrite::AttachRecord {
        path: rec.path().to_path_buf(),
    };
    h.push([cw(1, register(false)), cw(1, finish()), cw(1, attach)])
        .await;
    h.start(config());
    h.completed(3).await;
    assert_eq!(
        h.fake.kinds(1),
        ["register", "finish", "finish", "attach_record"]
    );
    let (outbox, _) = h.stop().await;
    let report = outbox.status().await.unwrap();
    assert_eq!(
        (report.pending, report.done, report.dead_letters.len()),
        (0, 3, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_register_whose_answer_was_lost_is_retried_with_identical_parameters() {
    let fake = FakeDeliver::default();
    fake.script(1, "register", [retryable("timeout")]);
    let mut h = Harness::new(fake).await;
    h.push([cw(1, register(true)), cw(1, show(2))]).await;
    h.start(config());
    let got = tokio::time::timeout(Duration::from_secs(60), h.outbox.register_result(&call(1)))
        .await
        .unwrap();
    assert_eq!(got.unwrap(), result(1));
    h.completed(2).await;
    let seen = h.fake.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].write, seen[1].write,
        "same EXTERNAL_CALL_ID and params on retry"
    );
    assert_eq!(seen[0].call, seen[1].call);
    assert_eq!(seen[2].call_id, Some(result(1).call_id));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn calls_run_concurrently_but_each_call_has_one_delivery_in_flight_in_order() {
    let fake = FakeDeliver {
        latency: Duration::from_millis(200),
        ..FakeDeliver::default()
    };
    let mut h = Harness::new(fake).await;
    // Live calls (no finish yet), so every write is really sent.
    for n in 0..20 {
        h.push([cw(n, register(true)), cw(n, show(2)), cw(n, hide(2))])
            .await;
    }
    h.start(WorkerConfig {
        max_in_flight: 8,
        ..config()
    });
    h.completed(60).await;
    assert_eq!(*h.fake.max_per_call.lock().unwrap(), 1);
    assert_eq!(*h.fake.max_total.lock().unwrap(), 8);
    for n in 0..20 {
        assert_eq!(h.fake.kinds(n), ["register", "show", "hide"], "call {n}");
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_the_request_in_flight_and_the_entry_stays_pending() {
    let fake = FakeDeliver {
        hang: true,
        ..FakeDeliver::default()
    };
    let mut h = Harness::new(fake).await;
    h.push([cw(1, register(false))]).await;
    h.start(config());
    let metrics = h.outbox.metrics();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(metrics.snapshot().in_flight, 1);
    let (outbox, _) = h.stop().await;
    assert_eq!(outbox.status().await.unwrap().pending, 1);
}

#[tokio::test(start_paused = true)]
async fn a_missing_recording_is_skipped_and_the_call_still_finishes() {
    let mut h = Harness::new(FakeDeliver::default()).await;
    let gone = BitrixWrite::AttachRecord {
        path: "/nonexistent/fsb24/rec.wav".into(),
    };
    h.push([cw(1, register(false)), cw(1, finish()), cw(1, gone)])
        .await;
    h.start(config());
    h.completed(3).await;
    assert_eq!(h.fake.kinds(1), ["register", "finish"]);
    let (outbox, _) = h.stop().await;
    assert_eq!(outbox.metrics().snapshot().skipped, 1);
    assert!(outbox.status().await.unwrap().dead_letters.is_empty());
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_over_calls_are_recorded_without_cards_and_live_calls_get_theirs() {
    let fake = FakeDeliver::default();
    for n in 0..3 {
        fake.script(n, "register", (0..4).map(|_| retryable("connect refused")));
    }
    let mut h = Harness::new(fake).await;
    for n in 0..2 {
        h.push(whole_call(n)).await;
    }
    h.push([cw(2, register(true)), cw(2, show(3))]).await;
    h.start(config());
    h.completed(10).await;
    for n in 0..2 {
        let sent: Vec<_> = h
            .fake
            .seen()
            .into_iter()
            .filter(|s| s.call == call(n))
            .collect();
        assert_eq!(
            sent.iter().map(|s| kind_of(&s.write)).collect::<Vec<_>>(),
            ["register"; 5]
                .iter()
                .copied()
                .chain(["finish"])
                .collect::<Vec<_>>()
        );
        assert!(
            sent.iter()
                .all(|s| !matches!(&s.write, BitrixWrite::Register(r) if r.show)),
            "no card for an over call"
        );
    }
    assert_eq!(
        h.fake.kinds(2),
        [
            "register", "register", "register", "register", "register", "show"
        ]
    );
    let (outbox, _) = h.stop().await;
    assert_eq!(outbox.metrics().snapshot().skipped, 4);
}

#[tokio::test(start_paused = true)]
#[allow(clippy::print_stdout)]
async fn a_backlog_replays_at_the_portal_rate_and_reports_progress() {
    const CALLS: u32 = 300;
    let pace = Duration::from_millis(200); // 5 requests/s, an Enterprise portal
    let fake = FakeDeliver {
        pace: Some(pace),
        latency: Duration::from_millis(50),
        ..FakeDeliver::default()
    };
    let mut h = Harness::new(fake).await;
    for n in 0..CALLS {
        h.push(whole_call(n)).await;
    }
    let t0 = Instant::now();
    h.start(config());
    let metrics = h.outbox.metrics();
    // A quarter of the way: register + finish delivered (at the portal's pace) and show + hide
    // skipped, with two batches' worth of calls in flight.
    h.completed(u64::from(CALLS)).await;
    let mid = metrics.snapshot();
    h.completed(u64::from(CALLS) * 4).await;
    let elapsed = Instant::now() - t0;
    let sent = h.fake.seen();
    assert_eq!(
        sent.len(),
        CALLS as usize * 2,
        "register + finish per call; show/hide skipped"
    );
    let min_gap = sent.windows(2).map(|w| w[1].at - w[0].at).min().unwrap();
    assert!(
        min_gap >= pace,
        "never faster than the portal limit: {min_gap:?}"
    );
    assert!(
        mid.eta_secs > 0 && mid.rate_per_min > 0,
        "progress gauges published: {mid:?}"
    );
    let per_sec = sent.len() as f64 / elapsed.as_secs_f64();
    println!(
        "backlog replay: {} requests for {CALLS} calls in {elapsed:?} (virtual) = {per_sec:.2} req/s; mid-way eta {} s",
        sent.len(),
        mid.eta_secs
    );
    assert!(per_sec > 4.5, "close to the 5/s limit: {per_sec}");
    h.stop().await;
}

/// The graceful stop: once `drain` fires, the worker delivers what is due (each call in order)
/// and returns; an entry that fails is left for the next start instead of being waited for.
#[tokio::test(start_paused = true)]
async fn draining_delivers_what_is_due_then_returns_without_waiting_for_retries() {
    let fake = FakeDeliver::default();
    fake.script(2, "register", [retryable("timeout")]);
    let h = Harness::new(fake).await;
    h.push([cw(1, register(false)), cw(1, finish())]).await;
    h.push([cw(2, register(false))]).await;
    let drain = CancellationToken::new();
    drain.cancel();
    let worker = tokio::spawn(run_draining(
        h.outbox.clone(),
        Arc::clone(&h.fake),
        config(),
        drain,
        h.shutdown.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(1), worker)
        .await
        .expect("a draining worker returns once nothing is due")
        .unwrap();
    assert_eq!(h.fake.kinds(1), ["register", "finish"]);
    assert_eq!(
        h.fake.kinds(2),
        ["register"],
        "tried once, retried next start"
    );
    let status = h.outbox.store().status(h.outbox.now()).await.unwrap();
    assert_eq!((status.pending, status.waiting_retry), (1, 1));
}

/// Regression: after an outage every entry slept out its own backoff (up to retry_max), so a
/// backlog reached the portal seconds to minutes after it was back (10.1 s after a 20 s outage
/// on the real switch). Now one probe runs on a schedule capped at probe_max, and its first
/// answer releases everything.
#[tokio::test(start_paused = true)]
async fn after_a_long_outage_the_backlog_follows_the_portal_within_the_probe_cap() {
    let fake = FakeDeliver::default();
    let t0 = Instant::now();
    let outage = Duration::from_secs(30 * 60);
    *fake.down_until.lock().unwrap() = Some(t0 + outage);
    let mut h = Harness::new(fake).await;
    for n in 1..=5 {
        h.push([cw(n, register(false)), cw(n, finish())]).await;
    }
    h.start(WorkerConfig {
        backoff: RetryBackoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.0,
        },
        ..config()
    });
    h.completed(10).await;
    let seen = h.fake.seen();
    let during: Vec<_> = seen.iter().filter(|s| s.at < t0 + outage).collect();
    let after: Vec<_> = seen.iter().filter(|s| s.at >= t0 + outage).collect();
    let first = after[0].at - (t0 + outage);
    assert!(
        first <= Duration::from_secs(1),
        "first request {first:?} after the portal is back"
    );
    let last = after.last().unwrap().at - (t0 + outage);
    assert!(
        last <= Duration::from_secs(1),
        "whole backlog within {last:?}"
    );
    assert_eq!(after.len(), 10, "every entry once after the outage");
    // One probe a second at most while down (plus the first attempts of the 5 calls).
    assert!(
        during.len() <= 5 + 30 * 60,
        "{} requests during the outage",
        during.len()
    );
    let (outbox, _) = h.stop().await;
    assert_eq!(outbox.metrics().snapshot().portal_down, 0);
}
