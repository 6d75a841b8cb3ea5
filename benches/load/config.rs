//! The fsb24 config the bench runs with: enough agents for the target concurrency, one route
//! per directly dialled agent, two-agent ring-all and sequential queues, and which destination
//! each offered call dials.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::switch::Kind;
use crate::{Args, Mix};

/// The inbound ESL password of the synthetic switch.
pub(crate) const PASSWORD: &str = "BenchCon";

/// Pools of agents and queues, sized from the offered load.
pub(crate) struct Plan {
    direct: u64,
    ringall: u64,
    sequential: u64,
    abandon: u64,
    /// Kinds in offered order, one period of the mix (100 slots).
    order: Vec<Kind>,
    portal_rate: f64,
    portal_burst: u32,
}

/// Slack over the calls a pool holds at once (wrap-up and no-answer cool-downs).
const SLACK: f64 = 1.5;

impl Plan {
    pub(crate) fn new(args: &Args, mix: Mix, call_len: Duration) -> Self {
        let total = f64::from(mix.direct + mix.ringall + mix.sequential + mix.abandon);
        let held = |share: u32, secs: f64| {
            (args.cps * secs * f64::from(share) / total * SLACK).ceil() as u64 + 2
        };
        let secs = call_len.as_secs_f64() + 2.0;
        let order = spread(&mix);
        Self {
            direct: held(mix.direct, secs),
            ringall: held(mix.ringall, secs),
            sequential: held(mix.sequential, secs + 2.0),
            // Abandoned calls hold their phones for the ring and a no-answer cool-down.
            abandon: held(mix.abandon, args.ring.as_secs_f64() + 6.0),
            order,
            portal_rate: args.portal_rate,
            portal_burst: args.portal_burst,
        }
    }

    /// Agents in the config.
    pub(crate) fn agents(&self) -> u64 {
        self.direct + 2 * (self.ringall + self.sequential + self.abandon)
    }

    /// The kind and dialled number of offered call `i`.
    pub(crate) fn call(&self, i: u64) -> (Kind, String) {
        let kind = self.order[(i % 100) as usize];
        let n = i / 100 * 100
            + self.order[..(i % 100) as usize]
                .iter()
                .filter(|k| **k == kind)
                .count() as u64;
        let dest = match kind {
            Kind::Direct => format!("2{:06}", n % self.direct),
            Kind::RingAll => format!("70{:05}", n % self.ringall),
            Kind::Sequential => format!("71{:05}", n % self.sequential),
            Kind::Abandon => format!("72{:05}", n % self.abandon),
        };
        (kind, dest)
    }

    pub(crate) fn toml(
        &self,
        esl: SocketAddr,
        inbound: SocketAddr,
        portal: SocketAddr,
        admin: SocketAddr,
        dir: &Path,
    ) -> String {
        let mut s = String::with_capacity(4 << 20);
        let _ = write!(
            s,
            r#"shutdown_grace = "2s"
[esl]
listen = "{esl}"
linger = "30s"
[esl.inbound]
host = "127.0.0.1"
port = {port}
password = "{PASSWORD}"
[esl.dial]
template = "user/{{extension}}@{{domain}}"
domain = "bench.local"
[bitrix]
application_token = "bench-application-token-0123456789"
[bitrix.auth.webhook]
url = "http://{portal}/rest/1/benchwebhookkey/"
[bitrix.rate]
per_second = {rate}
burst = {burst}
[bitrix.defaults]
missed_call_owner = 1
[recording]
enabled = false
[outbox]
path = "{db}"
[admin]
listen = "{admin}"
"#,
            port = inbound.port(),
            rate = self.portal_rate.round().max(1.0) as u32,
            burst = self.portal_burst,
            db = dir.join("outbox.db").display(),
        );
        let mut user = 100u64;
        let mut agent = |s: &mut String, ext: &str| {
            user += 1;
            let _ = writeln!(s, "[[agents]]\nextension = \"{ext}\"\nbitrix_user = {user}");
        };
        for i in 0..self.direct {
            agent(&mut s, &format!("2{i:06}"));
        }
        for (prefix, count) in [
            ("3", self.ringall),
            ("4", self.sequential),
            ("5", self.abandon),
        ] {
            for i in 0..count {
                agent(&mut s, &format!("{prefix}{i:06}a"));
                agent(&mut s, &format!("{prefix}{i:06}b"));
            }
        }
        for (prefix, qp, count, strategy, ring) in [
            ("3", "70", self.ringall, "simultaneous", "[\"30s\"]"),
            (
                "4",
                "71",
                self.sequential,
                "sequential",
                "[\"2s\", \"30s\"]",
            ),
            ("5", "72", self.abandon, "simultaneous", "[\"30s\"]"),
        ] {
            for i in 0..count {
                let _ = writeln!(
                    s,
                    "[[queues]]\nname = \"q{qp}{i:05}\"\nstrategy = \"{strategy}\"\nagents = [\"{prefix}{i:06}a\", \"{prefix}{i:06}b\"]\nring = {ring}\nwrap_up = \"1s\"\nmax_no_answer = 0\n"
                );
            }
        }
        for i in 0..self.direct {
            let _ = writeln!(
                s,
                "[[routes]]\ndestination = \"2{i:06}\"\ntarget = {{ agent = \"2{i:06}\" }}"
            );
        }
        for (qp, count) in [
            ("70", self.ringall),
            ("71", self.sequential),
            ("72", self.abandon),
        ] {
            for i in 0..count {
                let _ = writeln!(
                    s,
                    "[[routes]]\ndestination = \"{qp}{i:05}\"\ntarget = {{ queue = \"q{qp}{i:05}\" }}"
                );
            }
        }
        s
    }
}

/// 100 slots with each kind spread evenly (largest remainder), so every second sees the mix.
fn spread(mix: &Mix) -> Vec<Kind> {
    let total = f64::from(mix.direct + mix.ringall + mix.sequential + mix.abandon);
    let shares = [
        (Kind::Direct, f64::from(mix.direct) / total),
        (Kind::RingAll, f64::from(mix.ringall) / total),
        (Kind::Sequential, f64::from(mix.sequential) / total),
        (Kind::Abandon, f64::from(mix.abandon) / total),
    ];
    let mut given = [0f64; 4];
    (0..100)
        .map(|slot| {
            let t = f64::from(slot + 1);
            let (i, _) = shares
                .iter()
                .enumerate()
                .map(|(i, (_, share))| (i, share * t - given[i]))
                .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best });
            given[i] += 1.0;
            shares[i].0
        })
        .collect()
}
