//! Scriptable agent phones: how each answers an INVITE, the ring log, and the sofia
//! registration events (CUSTOM sofia::register / unregister / expire) used for presence.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::event::{Channel, sip_code};
use super::switch::{LegStatus, Switch};

/// What a phone does when rung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Rings, answers after `ring`, hangs up after `talk` (None = only when the other side ends).
    Answer {
        /// Ring time before 200 OK.
        ring: Duration,
        /// Talk time before BYE.
        talk: Option<Duration>,
    },
    /// Rings until cancelled.
    RingForever,
    /// 486 Busy Here -> USER_BUSY.
    Busy,
    /// 603 Decline -> CALL_REJECTED.
    Reject,
    /// No registration: the dial fails at once with USER_NOT_REGISTERED.
    Unregistered,
}

/// A phone's script and registration.
#[derive(Debug, Clone)]
pub struct PhoneScript {
    /// Reaction to an INVITE.
    pub behaviour: Behaviour,
    /// SIP port of its contact.
    pub port: u16,
}

/// One ring of one phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingRecord {
    /// The user rung.
    pub user: String,
    /// The agent leg's uuid.
    pub leg: String,
    /// When the INVITE went out.
    pub started: Instant,
    /// When ringing stopped (answer or hangup).
    pub ended: Option<Instant>,
    /// `ANSWERED` or the leg's hangup cause.
    pub why: Option<String>,
}

/// Builder returned by `FsPeer::phone`.
pub struct Phone {
    pub(super) sw: Arc<Switch>,
    pub(super) user: String,
}

impl Phone {
    fn script(&self, behaviour: Behaviour) -> &Self {
        let mut st = self.sw.lock();
        let port = 5070 + u16::try_from(st.phones.len() % 900).unwrap_or(0) + 1;
        let entry = st.phones.entry(self.user.clone()).or_insert(PhoneScript {
            behaviour: Behaviour::RingForever,
            port,
        });
        entry.behaviour = behaviour;
        self
    }

    /// Answers after `ring` and stays until the other side hangs up.
    pub fn answers_after(&self, ring: Duration) -> &Self {
        self.script(Behaviour::Answer { ring, talk: None })
    }

    /// Answers after `ring` and hangs up after talking `talk`.
    pub fn answers_then_hangs_up(&self, ring: Duration, talk: Duration) -> &Self {
        self.script(Behaviour::Answer {
            ring,
            talk: Some(talk),
        })
    }

    /// Rings until cancelled.
    pub fn rings_forever(&self) -> &Self {
        self.script(Behaviour::RingForever)
    }

    /// Answers every INVITE with 486.
    pub fn busy(&self) -> &Self {
        self.script(Behaviour::Busy)
    }

    /// Answers every INVITE with 603.
    pub fn rejects(&self) -> &Self {
        self.script(Behaviour::Reject)
    }

    /// Not registered: dials fail at once.
    pub fn unregistered(&self) -> &Self {
        self.script(Behaviour::Unregistered)
    }

    /// Fires `sofia::register` (and makes the phone reachable if it was unregistered).
    pub fn register(&self, expires: u32) -> &Self {
        let port = {
            let mut st = self.sw.lock();
            let n = st.phones.len();
            let p = st.phones.entry(self.user.clone()).or_insert(PhoneScript {
                behaviour: Behaviour::RingForever,
                port: 5071 + u16::try_from(n % 900).unwrap_or(0),
            });
            if p.behaviour == Behaviour::Unregistered {
                p.behaviour = Behaviour::RingForever;
            }
            p.port
        };
        let u = &self.user;
        let rows = [
            ("profile-name", "internal".to_owned()),
            ("from-user", u.clone()),
            ("from-host", "127.0.0.1".into()),
            ("presence-hosts", "n/a".into()),
            ("contact", format!("\"\" <sip:{u}@127.0.0.1:{port}>")),
            ("call-id", format!("reg-{u}@127.0.0.1")),
            ("rpid", "unknown".into()),
            ("status", "Registered(UDP)".into()),
            ("expires", expires.to_string()),
            ("to-user", u.clone()),
            ("to-host", "127.0.0.1".into()),
            ("network-ip", "127.0.0.1".into()),
            ("network-port", port.to_string()),
            ("username", "unknown".into()),
            ("realm", "127.0.0.1".into()),
            ("user-agent", format!("agent-{u}")),
        ];
        self.fire_custom("sofia::register", &rows);
        self
    }

    /// Fires `sofia::unregister` (REGISTER with Expires 0) and makes the phone unreachable.
    pub fn unregister(&self) -> &Self {
        let port = self.mark_unregistered();
        let u = &self.user;
        let rows = [
            ("profile-name", "internal".to_owned()),
            ("username", "unknown".into()),
            ("from-user", u.clone()),
            ("from-host", "127.0.0.1".into()),
            ("contact", format!("\"\" <sip:{u}@127.0.0.1:{port}>")),
            ("call-id", format!("reg-{u}@127.0.0.1")),
            ("rpid", "unknown".into()),
            ("realm", "unknown".into()),
            ("network-ip", "127.0.0.1".into()),
            ("network-port", port.to_string()),
            ("user-agent", format!("agent-{u}")),
            ("expires", "0".into()),
        ];
        self.fire_custom("sofia::unregister", &rows);
        self
    }

    /// Fires `sofia::expire` (registration lapsed) and makes the phone unreachable.
    pub fn expire(&self) -> &Self {
        let port = self.mark_unregistered();
        let u = &self.user;
        let when = self.sw.micros(Instant::now()) / 1_000_000;
        let rows = [
            ("profile-name", "internal".to_owned()),
            ("call-id", format!("reg-{u}@127.0.0.1")),
            ("user", u.clone()),
            ("username", u.clone()),
            ("host", "127.0.0.1".into()),
            ("contact", format!("\"\" <sip:{u}@127.0.0.1:{port}>")),
            ("expires", when.to_string()),
            ("user-agent", format!("agent-{u}")),
            ("realm", "127.0.0.1".into()),
            ("network-ip", "127.0.0.1".into()),
            ("network-port", port.to_string()),
        ];
        self.fire_custom("sofia::expire", &rows);
        self
    }

    fn mark_unregistered(&self) -> u16 {
        let mut st = self.sw.lock();
        match st.phones.get_mut(&self.user) {
            Some(p) => {
                p.behaviour = Behaviour::Unregistered;
                p.port
            }
            None => {
                st.phones.insert(
                    self.user.clone(),
                    PhoneScript {
                        behaviour: Behaviour::Unregistered,
                        port: 5071,
                    },
                );
                5071
            }
        }
    }

    fn fire_custom(&self, subclass: &str, rows: &[(&str, String)]) {
        let extra = rows
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let ev = self.sw.plain_event("CUSTOM", Some(subclass), extra, None);
        self.sw.fire(ev);
    }
}

/// Result of trying to create an agent leg.
pub enum Dialled {
    /// A leg exists and rings; its uuid and lifecycle watcher.
    Leg(String, tokio::sync::watch::Receiver<LegStatus>),
    /// Failed before any leg existed.
    Failed(&'static str),
}

/// Creates the leg for `user` (per `[..]`/`{..}` vars) and starts its phone script.
pub fn dial(
    sw: &Arc<Switch>,
    user: &str,
    a: Option<&Channel>,
    vars: &[(String, String)],
) -> Dialled {
    let script = sw.lock().phones.get(user).cloned();
    let Some(script) = script else {
        return Dialled::Failed("SUBSCRIBER_ABSENT");
    };
    if script.behaviour == Behaviour::Unregistered {
        return Dialled::Failed("USER_NOT_REGISTERED");
    }
    let uuid = vars
        .iter()
        .find(|(k, _)| k == "origination_uuid")
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |(_, v)| v.clone());
    let now = Instant::now();
    let mut ch = Channel {
        uuid: uuid.clone(),
        name: format!("sofia/internal/{user}@127.0.0.1:{}", script.port),
        direction: "outbound",
        state: "CS_INIT",
        call_state: "DOWN",
        answer_state: "ringing",
        cid_name: a.map_or_else(|| user.to_owned(), |a| a.cid_name.clone()),
        // An originated leg shows `origination_caller_id_number` when it is set.
        cid_number: vars
            .iter()
            .find(|(k, _)| k == "origination_caller_id_number")
            .map(|(_, v)| v.clone())
            .or_else(|| a.map(|a| a.cid_number.clone()))
            .unwrap_or_else(|| user.to_owned()),
        destination: user.to_owned(),
        vars: Vec::new(),
        other_leg: None,
        hangup_cause: None,
        created_us: sw.micros(now),
        answered_us: 0,
        hangup_us: 0,
        bridged_us: 0,
        originatee: None,
    };
    for (k, v) in vars {
        ch.set_var(k, v);
    }
    ch.set_var("call_uuid", a.map_or(&uuid, |a| &a.uuid));
    let rx = sw.add_channel(ch);
    sw.fire_channel(&uuid, "CHANNEL_CREATE", &[]);
    sw.with_channel(&uuid, |c| {
        c.state = "CS_CONSUME_MEDIA";
        c.call_state = "RINGING";
    });
    sw.fire_channel(&uuid, "CHANNEL_PROGRESS", &[]);
    sw.lock().rings.push(RingRecord {
        user: user.to_owned(),
        leg: uuid.clone(),
        started: now,
        ended: None,
        why: None,
    });
    sw.rings_changed();
    let task_sw = Arc::clone(sw);
    let leg = uuid.clone();
    sw.tracker
        .spawn(async move { run_phone(task_sw, leg, script.behaviour).await });
    Dialled::Leg(uuid, rx)
}

fn end_ring(sw: &Switch, leg: &str, why: &str) {
    let mut changed = false;
    if let Some(r) = sw
        .lock()
        .rings
        .iter_mut()
        .find(|r| r.leg == leg && r.ended.is_none())
    {
        r.ended = Some(Instant::now());
        r.why = Some(why.to_owned());
        changed = true;
    }
    if changed {
        sw.rings_changed();
    }
}

/// Drives one agent leg: its phone's reaction, then its teardown once it ends.
async fn run_phone(sw: Arc<Switch>, leg: String, behaviour: Behaviour) {
    let Some(mut status) = sw.watch(&leg) else {
        return;
    };
    let script = async {
        match behaviour {
            Behaviour::Answer { ring, talk } => {
                tokio::time::sleep(ring).await;
                sw.tick().await;
                end_ring(&sw, &leg, "ANSWERED");
                sw.answer(&leg);
                match talk {
                    Some(t) => {
                        tokio::time::sleep(t).await;
                        sw.hangup(&leg, "NORMAL_CLEARING");
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            Behaviour::Busy | Behaviour::Reject => {
                sw.tick().await;
                let cause = if behaviour == Behaviour::Busy {
                    "USER_BUSY"
                } else {
                    "CALL_REJECTED"
                };
                sw.with_channel(&leg, |c| c.set_var("sip_term_status", sip_code(cause)));
                sw.hangup(&leg, cause);
            }
            Behaviour::RingForever | Behaviour::Unregistered => std::future::pending::<()>().await,
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = script => {}
        _ = status.wait_for(|s| matches!(s, LegStatus::Ended(_))) => {}
        () = sw.cancel.cancelled() => return,
    }
    let cause = sw
        .with_channel(&leg, |c| c.hangup_cause.clone())
        .flatten()
        .unwrap_or_default();
    end_ring(&sw, &leg, &cause);
    sw.finish_channel(&leg);
}
