//! Load bench: the real fsb24 binary against a synthetic FreeSWITCH (real ESL on 127.0.0.1,
//! event bodies from the real transcripts), simulated phones and a fast Bitrix24 peer with the
//! portal's leaky bucket. Prints setups/s, concurrency, decision and card latencies, CPU and
//! RSS per call, requests per call, budget used, dropped events and rate-limit errors.
//!
//! ```sh
//! cargo bench --bench load -- --cps 500 --concurrent 10000 \
//!     --mix direct:40,ringall:30,sequential:20,abandon:10
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod portal;
mod real;
mod stats;
mod switch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::time::Instant;

use stats::{Stats, percentiles, sample};
use switch::{Switch, Timing};

#[derive(Parser, Debug, Clone)]
#[command(about = "fsb24 load bench")]
pub struct Args {
    /// New calls per second offered to fsb24.
    #[arg(long, default_value_t = 50.0)]
    pub cps: f64,
    /// Concurrent calls to reach and hold (sets the call length: concurrent / cps seconds).
    #[arg(long, default_value_t = 1000)]
    pub concurrent: u64,
    /// Call mix in percent: direct, ringall, sequential, abandon.
    #[arg(long, default_value = "direct:40,ringall:30,sequential:20,abandon:10")]
    pub mix: String,
    /// How long a phone rings before it answers.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub ring: Duration,
    /// How long the load is offered once the target concurrency is reached.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// The portal's leaky bucket: requests per second.
    #[arg(long, default_value_t = 2.0)]
    pub portal_rate: f64,
    /// The portal's leaky bucket: burst.
    #[arg(long, default_value_t = 50)]
    pub portal_burst: u32,
    /// Longest wait for fsb24's outbox to drain after the last call.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// The share of each call kind, in percent.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub direct: u32,
    pub ringall: u32,
    pub sequential: u32,
    pub abandon: u32,
}

fn parse_mix(s: &str) -> anyhow::Result<Mix> {
    let mut m = Mix {
        direct: 0,
        ringall: 0,
        sequential: 0,
        abandon: 0,
    };
    for part in s.split(',') {
        let (k, v) = part.split_once(':').context("mix: kind:percent")?;
        let v: u32 = v.parse().context("mix: percent")?;
        match k {
            "direct" => m.direct = v,
            "ringall" => m.ringall = v,
            "sequential" => m.sequential = v,
            "abandon" => m.abandon = v,
            other => anyhow::bail!("mix: unknown kind {other}"),
        }
    }
    anyhow::ensure!(
        m.direct + m.ringall + m.sequential + m.abandon > 0,
        "mix: all zero"
    );
    Ok(m)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary with the test
    // harness's arguments instead: then a few calls check that the bench still works.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let args = if smoke {
        Args::parse_from(["load", "--cps", "5", "--concurrent", "5", "--ring", "200ms"])
    } else {
        Args::parse()
    };
    let args = Args {
        hold: if smoke {
            Duration::from_secs(1)
        } else {
            args.hold
        },
        ..args
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(args, smoke))
}

async fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?)
}

async fn run(args: Args, smoke: bool) -> anyhow::Result<()> {
    let mix = parse_mix(&args.mix)?;
    let call_len = Duration::from_secs_f64(args.concurrent as f64 / args.cps);
    let talk = call_len
        .saturating_sub(args.ring)
        .max(Duration::from_secs(1));
    let timing = Timing {
        ring: args.ring,
        talk,
        abandon_after: args.ring,
    };
    let stats = Arc::new(Stats::default());
    let portal_l = TcpListener::bind("127.0.0.1:0").await?;
    let portal_addr = portal_l.local_addr()?;
    let bucket = portal::Bucket::new(args.portal_rate, args.portal_burst);
    let app = portal::router(Arc::clone(&stats), bucket);
    tokio::spawn(async move { axum::serve(portal_l, app).await });
    let inbound_l = TcpListener::bind("127.0.0.1:0").await?;
    let inbound_addr = inbound_l.local_addr()?;
    let (esl_addr, admin_addr) = (free_port().await?, free_port().await?);
    let dir = tempfile::tempdir()?;
    let plan = config::Plan::new(&args, mix, call_len);
    let conf = plan.toml(esl_addr, inbound_addr, portal_addr, admin_addr, dir.path());
    let conf_path = dir.path().join("fsb24.toml");
    std::fs::write(&conf_path, conf)?;
    let cat = real::Catalog::load()?;
    let sw = Switch::new(cat, Arc::clone(&stats), timing, esl_addr);
    tokio::spawn(switch::serve_inbound(
        Arc::clone(&sw),
        inbound_l,
        config::PASSWORD.to_owned(),
    ));
    let log_path = dir.path().join("fsb24.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fsb24"))
        .args(["run", "--config"])
        .arg(&conf_path)
        .current_dir(dir.path())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("info".into()),
        )
        .stderr(std::fs::File::create(&log_path)?)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let result = drive(&args, &plan, &sw, &stats, pid, admin_addr, call_len).await;
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    if let Some(keep) = std::env::var_os("BENCH_KEEP_LOG") {
        let _ = std::fs::write(keep, &log);
    }
    if let Err(e) = &result {
        eprintln!("fsb24 log tail:\n{}", tail(&log, 30));
        return Err(anyhow::anyhow!("{e:#}"));
    }
    let report = result?;
    report.print(&args, &stats, &sw, &log);
    if smoke {
        let started = stats.started.load(Ordering::Relaxed);
        let finished = stats.finishes.load(Ordering::Relaxed);
        anyhow::ensure!(
            started > 0 && stats.ended.load(Ordering::Relaxed) == started && finished == started,
            "smoke run: {started} calls started, {finished} finished in Bitrix24"
        );
    }
    Ok(())
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn metrics(admin: SocketAddr) -> String {
    let url = format!("http://{admin}/metrics");
    match reqwest::get(&url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Sum of every sample of `family` (all label sets) in a Prometheus text page.
fn metric(page: &str, family: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Report {
    offered_s: f64,
    setups_in_window: u64,
    base: stats::ProcSample,
    peak_rss_kib: u64,
    cpu_s: f64,
    drained: bool,
    backlog_left: f64,
    fsb24_dropped: f64,
    fsb24_rate_hits: f64,
    budget_used: f64,
    wall_s: f64,
}

async fn wait_ready(admin: SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{admin}/readyz");
    let until = Instant::now() + Duration::from_secs(180);
    while Instant::now() < until {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("fsb24 not ready within 180 s")
}

async fn drive(
    args: &Args,
    plan: &config::Plan,
    sw: &Arc<Switch>,
    stats: &Arc<Stats>,
    pid: u32,
    admin: SocketAddr,
    call_len: Duration,
) -> anyhow::Result<Report> {
    wait_ready(admin).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = sample(pid);
    eprintln!(
        "fsb24 ready: {} agents, RSS {} KiB; offering {} calls/s, calls of {:.1} s",
        plan.agents(),
        base.rss_kib,
        args.cps,
        call_len.as_secs_f64()
    );
    let offered = call_len + args.hold;
    let total = (args.cps * offered.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let sampler = {
        let stats = Arc::clone(stats);
        tokio::spawn(async move {
            let mut peak = 0u64;
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let s = sample(pid);
                if s.rss_kib == 0 {
                    return peak;
                }
                peak = peak.max(s.rss_kib);
                PEAK.fetch_max(s.rss_kib, Ordering::Relaxed);
                if last.elapsed() >= Duration::from_secs(5) {
                    last = Instant::now();
                    eprintln!(
                        "  t={:>5.1}s live={} started={} setups={} requests={} rss={} KiB cpu={:.1}s",
                        start.elapsed().as_secs_f64(),
                        stats.live(),
                        stats.started.load(Ordering::Relaxed),
                        stats.setups.load(Ordering::Relaxed),
                        stats.requests.load(Ordering::Relaxed),
                        s.rss_kib,
                        s.cpu_s
                    );
                }
            }
        })
    };
    let mut setups_at_window = (0u64, 0u64);
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / args.cps);
        tokio::time::sleep_until(at).await;
        if i == (args.cps * call_len.as_secs_f64()) as u64 {
            setups_at_window.0 = stats.setups.load(Ordering::Relaxed);
        }
        let (kind, dest) = plan.call(i);
        let caller = format!("+4930{:07}", 1_000_000 + i % 9_000_000);
        tokio::spawn(switch::run_call(Arc::clone(sw), kind, dest, caller));
    }
    setups_at_window.1 = stats.setups.load(Ordering::Relaxed);
    let offered_s = start.elapsed().as_secs_f64();
    let until = Instant::now() + call_len + Duration::from_secs(40);
    while stats.live() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain_until = Instant::now() + args.drain;
    let (mut backlog, mut last_backlog_at) = (f64::MAX, Instant::now());
    while Instant::now() < drain_until {
        let page = metrics(admin).await;
        backlog = metric(&page, "fsb24_outbox_backlog");
        if backlog > 0.0 {
            last_backlog_at = Instant::now();
        } else {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let page = metrics(admin).await;
    let end = sample(pid);
    sampler.abort();
    let budget_used = budget(stats, args, last_backlog_at);
    Ok(Report {
        offered_s,
        setups_in_window: setups_at_window.1 - setups_at_window.0,
        base,
        peak_rss_kib: end.rss_kib.max(PEAK.load(Ordering::Relaxed)),
        cpu_s: end.cpu_s - base.cpu_s,
        drained: backlog == 0.0,
        backlog_left: if backlog == f64::MAX { 0.0 } else { backlog },
        fsb24_dropped: metric(&page, "fsb24_esl_events_dropped_total"),
        fsb24_rate_hits: metric(&page, "fsb24_bitrix_rate_limit_hits_total"),
        budget_used,
        wall_s: start.elapsed().as_secs_f64(),
    })
}

static PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Requests admitted between the first request and the last moment a backlog waited, over
/// what the bucket allows in that time (burst + rate x time).
fn budget(stats: &Stats, args: &Args, until: Instant) -> f64 {
    let times = stats
        .request_times
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    let Some(first) = times.first().copied() else {
        return 0.0;
    };
    let span = until.saturating_duration_since(first).as_secs_f64();
    let sent = times.iter().filter(|t| **t <= until).count() as f64
        - stats.rate_limited.load(Ordering::Relaxed) as f64;
    let allowed = f64::from(args.portal_burst) + args.portal_rate * span;
    sent / allowed
}

impl Report {
    fn print(&self, args: &Args, stats: &Stats, sw: &Switch, log: &str) {
        let calls = stats.ended.load(Ordering::Relaxed).max(1);
        let window = args.hold.as_secs_f64().max(1.0);
        let (d50, d99, dmax) = percentiles(stats.decisions());
        let (c50, c99, _) = percentiles(stats.cards());
        let requests = stats.requests.load(Ordering::Relaxed);
        let commands = stats.commands.load(Ordering::Relaxed);
        let max_live = stats.max_live.load(Ordering::Relaxed).max(1);
        let queue_full = log.matches("Event queue full").count();
        let rss_per_call =
            (self.peak_rss_kib.saturating_sub(self.base.rss_kib)) as f64 / max_live as f64;
        println!(
            "fsb24 load bench ({} cores)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "  offered                 {} calls/s for {:.0} s, mix {}",
            args.cps, self.offered_s, args.mix
        );
        println!(
            "  setups/s sustained      {:.1} (first bridge, over the last {:.0} s)",
            self.setups_in_window as f64 / window,
            window
        );
        println!("  concurrent calls held   {max_live}");
        println!(
            "  calls started/ended     {}/{} (connect failures {})",
            stats.started.load(Ordering::Relaxed),
            stats.ended.load(Ordering::Relaxed),
            stats.connect_failed.load(Ordering::Relaxed)
        );
        println!(
            "  calls finished (portal) {} finish writes, {} registers",
            stats.finishes.load(Ordering::Relaxed),
            stats.registers.load(Ordering::Relaxed)
        );
        println!(
            "  event -> decision       p50 {d50:.2} ms, p99 {d99:.2} ms, max {dmax:.2} ms ({} samples)",
            stats.decisions().len()
        );
        println!(
            "  event -> card on wire   p50 {c50:.1} ms, p99 {c99:.1} ms ({} cards)",
            stats.cards().len()
        );
        println!(
            "  CPU                     {:.1} s, {:.2} ms per call",
            self.cpu_s,
            self.cpu_s * 1000.0 / calls as f64
        );
        println!(
            "  RSS                     idle {} KiB, peak {} KiB, {:.1} KiB per concurrent call",
            self.base.rss_kib, self.peak_rss_kib, rss_per_call
        );
        println!(
            "  HTTP requests           {requests} ({:.3} per call), {commands} writes, {:.1} writes per request, largest batch {}",
            requests as f64 / calls as f64,
            commands as f64 / requests.max(1) as f64,
            stats.max_batch.load(Ordering::Relaxed)
        );
        println!(
            "  portal budget used      {:.1} % (while a backlog waited)",
            self.budget_used * 100.0
        );
        println!(
            "  outbox after {:.0} s       {}",
            self.wall_s,
            if self.drained {
                "drained".to_owned()
            } else {
                format!("{} writes still waiting", self.backlog_left)
            }
        );
        println!(
            "  events dropped          fsb24 {} (metric), {queue_full} 'Event queue full' log lines, switch side {}",
            self.fsb24_dropped,
            sw.hub_dropped.load(Ordering::Relaxed)
        );
        println!(
            "  rate-limit errors       {} (portal 503), {} (fsb24 metric)",
            stats.rate_limited.load(Ordering::Relaxed),
            self.fsb24_rate_hits
        );
    }
}
