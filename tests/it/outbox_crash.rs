//! Issue 5 acceptance: the real `fsb24` binary on a real SQLite file takes many calls while the
//! Bitrix24 peer is down, is killed with SIGKILL at seeded random points and restarted, then the
//! peer comes back and the backlog replays: every accepted call exactly once, nothing lost.
//!
//! "Every call" means every call fsb24 *accepted*: its outbox file holds the call (the register
//! push returned Ok, before any agent rang). A call offered while fsb24 is down is retried by the
//! harness until fsb24 takes it; a call whose socket died in a kill before fsb24 stored it is, on
//! a real switch, the dialplan fallback's and not fsb24's (the peer hangs it up). Calls cut by a
//! kill after they were stored are finished by startup recovery ([`fsb24::call::recover`]):
//! the peer behaves like FreeSWITCH when the socket dies (a running bridge goes on, the call
//! ends when the conversation does), the restarted fsb24 asks it which calls are still up and
//! follows them to their hang-up, and finishes the others from the notes it stored. So every
//! call, cut or not, carries what the switch really did: a call that was bridged has the
//! agent's USER_ID, 200, its talk time and its recording (when fsb24 had started one); a call
//! that never reached an agent is 304 with DURATION 0. Every call must be registered with SHOW=0
//! (the peer was down until each was over) and no card may ever open.
//!
//! A normally finished call's recording is never lost: the call task stores its finish and
//! attachRecord in one transaction (`Outbox::push_all`), so no kill can split them.

// The acceptance test's job includes printing its figures (seed, kills, replay throughput).
#![allow(clippy::print_stdout)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use fsb24::call::recover::{MISSED_STATUS, UNKNOWN_REASON, WHY_GONE, WHY_HUNG_UP};

use crate::support::app::{Agent, config_text};
use crate::support::audio::{decode_mp3, mp3_beside};
use crate::support::bitrix_peer::{
    BitrixPeer, BucketConfig, Outage, PeerOptions, PeerState, SeedUser,
};
use crate::support::daemon::{Daemon, free_port};
use crate::support::esl_peer::{CallSpec, FsPeer};

const AGENTS: [Agent; 4] = [("1001", 11), ("1002", 12), ("1003", 13), ("1004", 14)];
/// Calls per run (`FSB24_CRASH_CALLS` overrides, e.g. 100 for a quick run). 1,000 is the
/// size issue #5's acceptance names.
const CALLS: usize = 1000;
const CONCURRENCY: usize = 25;
/// Kill points drawn; the run uses those that fall before the calls are all done.
const KILLS: usize = 40;
const TALK: Duration = Duration::from_millis(1000);
/// The portal's (and fsb24's) request rate: how fast the backlog replays is outage_replay's
/// subject; here it only sets how long the replay of the same backlog takes (20/s: 65 s).
const RATE: u32 = 100;
/// `bitrix.defaults.missed_call_owner` of the test config.
const MISSED_CALL_OWNER: u64 = 1;
const BURST: u32 = 50;

/// splitmix64: a tiny seeded generator, so a failing run can be repeated with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn write_config(fs: &FsPeer, bx: &BitrixPeer, dir: &Path, port: u16) -> PathBuf {
    let mut body = String::new();
    for (i, (ext, _)) in AGENTS.iter().enumerate() {
        body.push_str(&format!(
            "[[routes]]\ndestination = \"900{}\"\ntarget = {{ agent = \"{ext}\" }}\n",
            i + 1
        ));
    }
    body.push_str(&format!(
        "[bitrix.rate]\nper_second = {RATE}\nburst = {BURST}\n"
    ));
    let text = config_text(fs, bx, dir, &AGENTS, &body)
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace("lookup_timeout = \"1500ms\"", "lookup_timeout = \"200ms\"");
    let path = dir.join("fsb24.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What the harness knows about one offered call.
#[derive(Debug, Clone)]
struct Offered {
    uuid: String,
    agent: usize,
    caller: String,
    /// Wall-clock unix seconds just before and just after the switch offered it.
    window: (i64, i64),
    /// The switch bridged it to the agent (a conversation took place).
    bridged: bool,
}

/// Shared state of the offering side.
struct Offers {
    fs: Arc<FsPeer>,
    addr: SocketAddr,
    up: watch::Receiver<bool>,
    offered: watch::Sender<usize>,
}

/// Offers call `i` until fsb24 takes the connection, then waits for the call to end.
async fn offer(offers: Arc<Offers>, i: usize) -> Offered {
    let agent = i % AGENTS.len();
    let caller = format!("+7999{i:07}");
    let mut up = offers.up.clone();
    for _attempt in 0..10_000 {
        let back = matches!(
            timeout(Duration::from_secs(30), up.wait_for(|u| *u)).await,
            Ok(Ok(_))
        );
        assert!(back, "fsb24 did not come back");
        let spec = CallSpec {
            caller: caller.clone(),
            destination: format!("900{}", agent + 1),
            ..CallSpec::default()
        };
        let before = Utc::now().timestamp();
        let Ok(mut handle) = offers.fs.offer_call(offers.addr, spec).await else {
            // fsb24 is down: wait for the supervisor to mark it down-then-up again.
            let _ = timeout(Duration::from_secs(30), up.wait_for(|u| !*u)).await;
            continue;
        };
        let after = Utc::now().timestamp();
        offers.offered.send_modify(|n| *n += 1);
        // The peer ends the session when the call is over (or fsb24 died); 5 s failsafe each.
        while !handle.finished().await {}
        // A call cut by a kill goes on in the switch until the conversation ends.
        while !offers.fs.channel_gone(&handle.uuid).await {}
        return Offered {
            bridged: offers.fs.bridged_at_us(&handle.uuid).is_some(),
            uuid: handle.uuid.clone(),
            agent,
            caller,
            window: (before, after),
        };
    }
    panic!("call {i} was never taken by fsb24");
}

/// Kills fsb24 after each seeded uptime (a random point in whatever the calls are doing then:
/// connecting, ringing, talking, recording, pushing) and restarts it; stops once the calls are
/// all done. The sleep picks the kill moment; it waits for no state.
async fn supervise(
    daemon: &mut Daemon,
    up: &watch::Sender<bool>,
    mut all_done: watch::Receiver<bool>,
    uptimes: Vec<Duration>,
) -> usize {
    let mut kills = 0;
    for uptime in uptimes {
        tokio::select! {
            _ = all_done.wait_for(|d| *d) => break,
            () = tokio::time::sleep(uptime) => {}
        }
        up.send_replace(false);
        daemon.kill().await;
        kills += 1;
        daemon.start().await;
        up.send_replace(true);
    }
    kills
}

/// The calls the (final) outbox file holds: the accepted ones.
fn accepted_calls(db: &Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT call FROM calls").unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn calls_per_run() -> usize {
    std::env::var("FSB24_CRASH_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CALLS)
}

fn seed() -> u64 {
    std::env::var("FSB24_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_micros().unsigned_abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_during_an_outage_loses_and_duplicates_no_call() {
    // A thousand calls and a child process load both cores: no real-time edge test meanwhile.
    let _exclusive = crate::support::EXCLUSIVE.lock().await;
    let wall = tokio::time::Instant::now();
    let seed = seed();
    println!("outbox_crash: seed {seed} (FSB24_CRASH_SEED={seed} repeats this run)");
    let mut rng = Rng(seed);

    let fs = Arc::new(FsPeer::start().await.unwrap());
    for (ext, _) in AGENTS {
        fs.phone(ext)
            .answers_then_hangs_up(Duration::from_millis(20), TALK);
    }
    let opts = PeerOptions {
        bucket: BucketConfig {
            drain_per_sec: f64::from(RATE),
            burst: BURST,
        },
        ..PeerOptions::default()
    };
    let bx = BitrixPeer::start(opts).await;
    bx.set_webhook_wrong_auth_type(false);
    for (ext, user) in AGENTS {
        bx.add_user(SeedUser::new(user, &format!("Agent {ext}"), Some(ext)));
    }
    // Missed calls nobody was rung for go to the configured owner.
    bx.add_user(SeedUser::new(MISSED_CALL_OWNER, "Reception", None));
    bx.go_down(Outage::Refuse).await;

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut daemon = Daemon::new(
        write_config(&fs, &bx, dir.path(), port),
        dir.path().join("fsb24.log"),
    );
    daemon.start().await;

    let (up_tx, up_rx) = watch::channel(true);
    let (offered_tx, _offered_rx) = watch::channel(0usize);
    let offers = Arc::new(Offers {
        fs: Arc::clone(&fs),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        up: up_rx,
        offered: offered_tx,
    });
    let n_calls = calls_per_run();
    let uptimes: Vec<Duration> = (0..KILLS)
        .map(|_| Duration::from_millis(500 + rng.below(2000)))
        .collect();
    println!("outbox_crash: kill after uptimes {uptimes:?}");

    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..n_calls {
        let (offers, gate) = (Arc::clone(&offers), Arc::clone(&gate));
        calls.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            offer(offers, i).await
        });
    }
    let (done_tx, done_rx) = watch::channel(false);
    let collect = tokio::spawn(async move {
        let mut offered = Vec::with_capacity(n_calls);
        while let Some(done) = calls.join_next().await {
            offered.push(done.unwrap());
        }
        done_tx.send_replace(true);
        offered
    });
    let kills = supervise(&mut daemon, &up_tx, done_rx, uptimes).await;
    let offered = collect.await.unwrap();
    // Every call is over on the switch now, but the running fsb24 may not have stored the last
    // finishes yet (they are pushed beside the call loop): restoring the portal in that instant
    // would legitimately show a live call's card. Restart it once more, as an operator would;
    // startup recovery finishes what the last run left open before the worker sends anything.
    daemon.kill().await;
    daemon.start().await;
    let calls_over = wall.elapsed();
    println!(
        "outbox_crash: {} calls offered, {kills} SIGKILLs, {} starts, in {calls_over:?}",
        offered.len(),
        daemon.starts
    );

    if let Ok(keep) = std::env::var("FSB24_CRASH_LOG") {
        let _ = std::fs::copy(&daemon.log, keep);
    }
    let (report, unstored) = replay_and_check(&bx, &offered, dir.path()).await;
    daemon.kill().await;
    println!("{report}");
    assert_eq!(unstored, 0, "a finish was stored without its attachRecord");
    println!("outbox_crash: wall time {:?}", wall.elapsed());
    if n_calls == CALLS {
        assert!(kills >= 20, "only {kills} kills");
    }
}

/// Restores the peer, waits for the backlog to drain, checks every call; returns figures.
async fn replay_and_check(bx: &BitrixPeer, offered: &[Offered], dir: &Path) -> (String, usize) {
    let accepted = accepted_calls(&dir.join("outbox.db"));
    let by_key: HashMap<String, &Offered> = offered
        .iter()
        .map(|o| (format!("fs-{}", o.uuid), o))
        .collect();
    assert!(
        accepted.iter().all(|k| by_key.contains_key(k)),
        "the outbox holds a call the switch never offered"
    );
    // fsb24 stores a call before any agent rings: every call the switch bridged to an agent
    // is fsb24's, whatever the kills did.
    let talked_unknown: Vec<&String> = by_key
        .iter()
        .filter(|(k, o)| o.bridged && !accepted.contains(*k))
        .map(|(k, _)| k)
        .collect();
    assert!(
        talked_unknown.is_empty(),
        "calls bridged to an agent but never stored: {talked_unknown:?}"
    );
    let restored = tokio::time::Instant::now();
    bx.restore().await;
    let total = accepted.len();
    let done = |s: &PeerState| {
        s.calls
            .iter()
            .filter(|c| c.finished.is_some())
            .filter(|c| {
                let key = c.external_call_id.as_deref().unwrap_or_default();
                accepted.contains(key)
            })
            .count()
    };
    let db = dir.join("outbox.db");
    wait_progress(bx, &db, "every accepted call finished", total, done).await;
    // Recordings are attached after their finish: wait for those too.
    let stored = calls_with_attach(&dir.join("outbox.db"));
    let (with_rec, unstored): (Vec<_>, Vec<_>) = expected_recordings(bx, &accepted, &by_key, dir)
        .into_iter()
        .partition(|(_, key)| stored.contains(key));
    let with_rec: Vec<String> = with_rec.into_iter().map(|(id, _)| id).collect();
    let attached = |s: &PeerState| {
        let ids: HashSet<&str> = s.records.iter().map(|r| r.call_id.as_str()).collect();
        with_rec
            .iter()
            .filter(|id| ids.contains(id.as_str()))
            .count()
    };
    wait_progress(
        bx,
        &db,
        "every recording attached",
        with_rec.len(),
        attached,
    )
    .await;
    assert_eq!(dead_letters(&db), [], "nothing may be given up");
    let replay = restored.elapsed();
    let unstored: HashSet<String> = unstored.into_iter().map(|(id, _)| id).collect();
    let recovered = recovered_endings(&db, &accepted).await;
    check_calls(bx, &by_key, &unstored, dir, &accepted, &recovered);
    let gap = format!(
        "outbox_crash: recordings lost between finish and attachRecord: {}",
        unstored.len()
    );
    let report = throughput_report(bx, offered.len(), total, replay, &recovered);
    (format!("{report}\n{gap}"), unstored.len())
}

/// Waits until `count` reaches `total`; fails only when no progress is made for the peer's
/// failsafe (5 s), so a long replay is fine as long as it keeps moving.
async fn wait_progress(
    bx: &BitrixPeer,
    db: &Path,
    what: &str,
    total: usize,
    count: impl Fn(&PeerState) -> usize,
) {
    let mut seen = 0;
    while seen < total {
        let before = seen;
        let label = format!("{what} ({before}/{total})");
        let step = bx.wait_for_value(&label, |s| {
            let n = count(s);
            (n > before || n >= total).then_some(n)
        });
        // Stalled: say why (the peer's own failsafe is 5 s).
        match timeout(Duration::from_secs(4), step).await {
            Ok(n) => seen = n,
            Err(_) => panic!(
                "{what}: stuck at {before}/{total}; dead letters: {:?}",
                dead_letters(db)
            ),
        }
    }
}

/// `(call, kind, reason)` of every dead letter in the outbox file.
fn dead_letters(db: &Path) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT call, kind, reason FROM dead_letters ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// (CALL_ID, key) of accepted calls that were answered and whose recording file exists.
fn expected_recordings(
    bx: &BitrixPeer,
    accepted: &HashSet<String>,
    by_key: &HashMap<String, &Offered>,
    dir: &Path,
) -> Vec<(String, String)> {
    bx.calls()
        .into_iter()
        .filter(|c| {
            let key = c.external_call_id.clone().unwrap_or_default();
            let normal = c.finished.as_ref().is_some_and(|f| f.status_code == "200");
            accepted.contains(&key)
                && normal
                && by_key
                    .get(&key)
                    .is_some_and(|o| dir.join("rec").join(format!("{}.wav", o.uuid)).exists())
        })
        .map(|c| (c.call_id, c.external_call_id.unwrap_or_default()))
        .collect()
}

/// Whether fsb24 stored a note that an agent answered the call.
fn answer_noted(dir: &Path, key: &str) -> bool {
    let conn = rusqlite::Connection::open(dir.join("outbox.db")).unwrap();
    let sql =
        "SELECT COUNT(*) FROM entries WHERE call = ?1 AND kind = 'note' AND body LIKE '%Answered%'";
    conn.query_row(sql, [key], |r| r.get::<_, i64>(0)).unwrap() > 0
}

/// Calls whose outbox holds an attachRecord (pending, done or dead-lettered).
fn calls_with_attach(db: &Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let sql = "SELECT call FROM entries WHERE kind = 'attach_record'
               UNION SELECT call FROM dead_letters WHERE kind = 'attach_record'";
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// Exactly one Bitrix24 call and one finish per accepted call, with the right fields.
fn check_calls(
    bx: &BitrixPeer,
    by_key: &HashMap<String, &Offered>,
    unstored: &HashSet<String>,
    dir: &Path,
    accepted: &HashSet<String>,
    recovered: &HashMap<String, &'static str>,
) {
    let calls = bx.calls();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for c in &calls {
        let key = c.external_call_id.clone().unwrap_or_default();
        assert!(
            accepted.contains(&key),
            "Bitrix24 has a call fsb24 never accepted: {key}"
        );
        *per_key.entry(key).or_default() += 1;
    }
    let dups: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicate Bitrix24 calls: {dups:?}");
    let lost: Vec<_> = accepted
        .iter()
        .filter(|k| !per_key.contains_key(*k))
        .collect();
    assert!(lost.is_empty(), "lost calls: {lost:?}");
    let mut finishes: HashMap<String, usize> = HashMap::new();
    for f in bx.method_calls("telephony.externalcall.finish") {
        if f.ok {
            let id = f.params["CALL_ID"].as_str().unwrap_or_default().to_owned();
            *finishes.entry(id).or_default() += 1;
        }
    }
    for c in &calls {
        let key = c.external_call_id.clone().unwrap_or_default();
        let o = by_key[&key];
        assert_eq!(finishes.get(&c.call_id), Some(&1), "{key}: finishes");
        let (user, talk) = (AGENTS[o.agent].1, TALK.as_secs());
        let f = c.finished.clone().unwrap();
        // A call killed before its first card was registered by recovery from its accepted
        // note: the agent if the switch bridged it, else the configured missed-call owner (also
        // when the outcome is unknown).
        let unknown = f.failed_reason == UNKNOWN_REASON;
        let owner_ok =
            c.user_id == user || ((!o.bridged || unknown) && c.user_id == MISSED_CALL_OWNER);
        assert!(owner_ok, "{key}: owner {} (agent {user})", c.user_id);
        assert_eq!(f.user_id, c.user_id, "{key}: finisher");
        assert_eq!(c.phone, o.caller, "{key}: phone");
        assert!(!c.show, "{key}: registered after the call with SHOW=1");
        assert!(bx.timeline(&c.call_id).is_empty(), "{key}: a card opened");
        assert!(
            c.start_unix >= o.window.0 - 1 && c.start_unix <= o.window.1 + 1,
            "{key}: CALL_START_DATE {} outside {:?}",
            c.start_unix,
            o.window
        );
        if unknown {
            // Allowed only for a call nothing recorded an answer of: it ended before the restart
            // could ask the switch, and fsb24 had not seen an agent answer.
            assert!(
                !answer_noted(dir, &key),
                "{key}: answered, yet finished as unknown"
            );
            assert_eq!((f.duration, f.status_code.as_str()), (0, MISSED_STATUS));
            continue;
        }
        if !o.bridged {
            assert_eq!(
                (f.duration, f.status_code.as_str()),
                (0, MISSED_STATUS),
                "{key}: never reached the agent"
            );
            continue;
        }
        assert_eq!(f.status_code, "200", "{key}: status");
        let file = dir.join("rec").join(format!("{}.wav", o.uuid));
        if f.duration == 0 && !file.exists() && recovered.get(&key) == Some(&WHY_GONE) {
            // Answered, then over while fsb24 was down, and no recording to date its end: the
            // talk time is unknown (the agent and the answer are not).
            continue;
        }
        // billsec is whole seconds of the peer's real answer-to-hang-up time (loaded CI: +1).
        let talk = talk as i64;
        assert!(
            (talk..=talk + 1).contains(&f.duration),
            "{key}: DURATION {} for a {talk} s talk",
            f.duration
        );
        if unstored.contains(&c.call_id) {
            continue;
        }
        // The attached MP3 is the one encoded from the WAV, whole, whenever the kill came
        // (an encode cut short leaves only a .part file, which the next run replaces).
        if file.exists() {
            let bytes = std::fs::read(mp3_beside(&file)).expect("the WAV was encoded");
            let stored = bx.record_of(&c.call_id).unwrap();
            assert_eq!(stored.bytes, bytes, "{key}: recording differs");
            decode_mp3(&bytes);
        }
    }
}

/// How recovery finished each call a killed run left open (`WHY_GONE` or `WHY_HUNG_UP`), read
/// from the call's trail as `fsb24 call show` prints it: the "why" of its finish.
async fn recovered_endings(db: &Path, accepted: &HashSet<String>) -> HashMap<String, &'static str> {
    let mut out = HashMap::new();
    for key in accepted {
        let trails = fsb24::outbox::call_trails(db, key).await.unwrap();
        let finishes = trails
            .iter()
            .filter(|t| t.call.as_str() == key)
            .flat_map(|t| &t.entries)
            .filter(|e| e.kind == "finish");
        for why in finishes.filter_map(|e| e.cause.as_ref().map(|(_, why)| why.as_str())) {
            if let Some(ending) = [WHY_GONE, WHY_HUNG_UP].into_iter().find(|w| *w == why) {
                out.insert(key.clone(), ending);
            }
        }
    }
    out
}

fn throughput_report(
    bx: &BitrixPeer,
    offered: usize,
    accepted: usize,
    replay: Duration,
    recovered: &HashMap<String, &'static str>,
) -> String {
    let requests = bx.requests();
    let unknown = bx
        .calls()
        .iter()
        .filter(|c| {
            c.finished
                .as_ref()
                .is_some_and(|f| f.failed_reason == UNKNOWN_REASON)
        })
        .count();
    let gone = recovered.values().filter(|w| **w == WHY_GONE).count();
    let followed = recovered.len() - gone;
    let (first, last) = (
        requests.first().map(|r| r.at),
        requests.last().map(|r| r.at),
    );
    let span = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64().max(0.001),
        _ => 0.001,
    };
    let n = requests.len();
    let subs: usize = requests.iter().map(|r| r.sub_calls.len().max(1)).sum();
    let allowed = f64::from(BURST) + f64::from(RATE) * span;
    format!(
        "outbox_crash: offered {offered}, accepted {accepted}, duplicates 0, losses 0\n\
         outbox_crash: cut by a kill and recovered: {followed} still up at the restart (followed \
         to their hang-up), {gone} already gone (finished from their notes), {unknown} of them \
         with an unknown outcome\n\
         outbox_crash: replay {replay:?}: {n} HTTP requests ({subs} methods) over {span:.2}s = \
         {:.1} req/s vs limit {RATE}/s burst {BURST}: {:.0}% of what the limit allows; \
         rejected by the limit: {}",
        n as f64 / span,
        100.0 * n as f64 / allowed,
        bx.count_rejected()
    )
}

/// Runs the real binary with `args` and the given config; it must succeed; returns stdout.
fn fsb24_cli(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fsb24"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("FSB24_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fsb24 {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn outbox_status_lists_dead_letters_with_their_reason_and_outbox_retry_re_drives_them() {
    let fs = FsPeer::start().await.unwrap();
    let bx = BitrixPeer::start(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&fs, &bx, dir.path(), free_port());
    // The first status creates the (empty) outbox file.
    let empty = fsb24_cli(&config, &["outbox", "status"]);
    assert!(empty.contains("pending: 0"), "{empty}");
    assert!(empty.contains("dead letters: 0"), "{empty}");

    let db = rusqlite::Connection::open(dir.path().join("outbox.db")).unwrap();
    let body = r#"{"Finish":{"user":11,"duration_secs":3,"status_code":"200","add_to_chat":false,"failed_reason":null}}"#;
    db.execute(
        "INSERT INTO dead_letters(seq, call, kind, body, attempts, created_at, failed_at, reason)
         VALUES (7, 'fs-dead-1', 'finish', ?1, 5, 0, 0, 'ERROR_CORE: call not found')",
        [body],
    )
    .unwrap();
    drop(db);

    let status = fsb24_cli(&config, &["outbox", "status"]);
    assert!(status.contains("dead letters: 1"), "{status}");
    assert!(status.contains("call=fs-dead-1 kind=finish"), "{status}");
    assert!(
        status.contains("reason=ERROR_CORE: call not found"),
        "{status}"
    );

    let retried = fsb24_cli(&config, &["outbox", "retry"]);
    assert!(
        retried.contains("1 dead letters moved back to pending"),
        "{retried}"
    );
    let after = fsb24_cli(&config, &["outbox", "status"]);
    assert!(after.contains("dead letters: 0"), "{after}");
    assert!(after.contains("pending: 1"), "{after}");
}
