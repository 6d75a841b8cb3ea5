//! A FreeSWITCH 1.10.12 test peer on 127.0.0.1: it dials fsb24's outbound listener like the
//! `socket` app, serves inbound ESL with auth, simulates calls, bridges and recordings with
//! the real event order and encoding, scripts agent phones, and logs commands and rings.

mod api;
mod attended;
mod bridge;
pub mod caller;
pub mod dialstring;
pub mod event;
mod exec;
pub mod phones;
mod session;
pub mod switch;
mod wav;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

pub use caller::CallSpec;
pub use event::EventRef;
pub use phones::{Phone, RingRecord};
pub use switch::{ConnKind, Received};

use switch::Switch;

/// Failsafe for every wait of the test API.
pub const FAILSAFE: Duration = Duration::from_secs(5);

/// Inbound ESL password of the peer.
pub const PASSWORD: &str = "ClueCon";

/// The running peer.
pub struct FsPeer {
    sw: Arc<Switch>,
    inbound_addr: SocketAddr,
    inbound_stop: Mutex<CancellationToken>,
    serial: Arc<AtomicU64>,
    cursor: Mutex<usize>,
}

impl FsPeer {
    /// Starts the peer with its inbound ESL server on 127.0.0.1:0.
    pub async fn start() -> std::io::Result<Self> {
        let sw = Switch::new();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let inbound_addr = listener.local_addr()?;
        let serial = Arc::new(AtomicU64::new(0));
        let stop = sw.cancel.child_token();
        spawn_inbound(&sw, listener, stop.clone(), Arc::clone(&serial));
        Ok(Self {
            sw,
            inbound_addr,
            inbound_stop: Mutex::new(stop),
            serial,
            cursor: Mutex::new(0),
        })
    }

    /// Address of the inbound ESL server.
    pub fn inbound_addr(&self) -> SocketAddr {
        self.inbound_addr
    }

    /// Kills the inbound server and every inbound connection (TCP reset/close, no notice).
    pub fn kill_inbound(&self) {
        self.inbound_stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .cancel();
    }

    /// Restarts the inbound server on the same port.
    pub async fn restart_inbound(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.inbound_addr).await?;
        let stop = self.sw.cancel.child_token();
        spawn_inbound(&self.sw, listener, stop.clone(), Arc::clone(&self.serial));
        *self
            .inbound_stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stop;
        Ok(())
    }

    /// The scripted phone of `user` (created in the directory on first use: rings forever).
    pub fn phone(&self, user: &str) -> Phone {
        let p = Phone {
            sw: Arc::clone(&self.sw),
            user: user.to_owned(),
        };
        if !self.sw.lock().phones.contains_key(user) {
            p.rings_forever();
        }
        p
    }

    /// Fires `n` DTMF events on channel `uuid` at once: a flood on its outbound socket larger
    /// than any queue between the socket and the call.
    pub fn flood_dtmf(&self, uuid: &str, n: usize) {
        for _ in 0..n {
            self.sw.fire_channel(
                uuid,
                "DTMF",
                &[
                    ("DTMF-Digit", "5"),
                    ("DTMF-Duration", "2000"),
                    ("DTMF-Source", "RTP"),
                ],
            );
        }
    }

    /// Delays the WAV file and RECORD_STOP of every recording by `d` ("late recording").
    pub fn set_record_delay(&self, d: Duration) {
        self.sw.lock().record_delay = d;
    }

    /// The dialplan after `socket` rings these users when a caller who has not talked comes
    /// back from fsb24 (dialplan/fsb24.xml's `fsb24_fallback`); by default nothing follows and
    /// the caller is hung up.
    pub fn set_fallback(&self, users: &[&str]) {
        self.sw.lock().fallback = users.iter().map(|u| (*u).to_owned()).collect();
    }

    /// The dialplan after `socket` of outgoing calls (dialplan/fsb24.xml `fsb24_outgoing_fallback`)
    /// bridges a call fsb24 did not place straight to `sofia/gateway/<gateway>/<number>`.
    pub fn set_outgoing_fallback(&self, gateway: &str) {
        self.sw.lock().outgoing_gateway = Some(gateway.to_owned());
    }

    /// Waits (on the switch tick, 5 s failsafe) until the outbound socket of `uuid` is closed,
    /// then one tick more, so that whatever the switch does about the close has happened.
    pub async fn socket_closed(&self, uuid: &str) -> bool {
        let closed = timeout(FAILSAFE, async {
            while !self.sw.lock().socket_closed.contains(uuid) {
                self.sw.tick().await;
            }
        })
        .await
        .is_ok();
        self.sw.tick().await;
        self.sw.tick().await;
        closed
    }

    /// Hangs channel `uuid` up NORMAL_CLEARING (a BYE from its phone).
    pub fn hang_up(&self, uuid: &str) {
        self.sw.hangup(uuid, "NORMAL_CLEARING");
    }

    /// Whether channel `uuid` still exists on the switch.
    pub fn channel_exists(&self, uuid: &str) -> bool {
        self.sw.lock().channels.contains_key(uuid)
    }

    /// Whether the outbound socket of channel `uuid` sent `resume`.
    pub fn resumed(&self, uuid: &str) -> bool {
        self.sw.lock().resume.contains(uuid)
    }

    /// Every event the switch fires from now on (an inbound "event plain ALL" without a socket).
    pub fn events(&self) -> broadcast::Receiver<EventRef> {
        self.sw.bus.subscribe()
    }

    /// Runs an api command as an operator would from `fs_cli` (not logged as a command fsb24
    /// sent), e.g. `uuid_transfer <agent leg> -bleg 1002 XML default`.
    pub async fn operator_api(&self, line: &str) -> String {
        api::run(&self.sw, line).await
    }

    /// All commands received so far.
    pub fn commands(&self) -> Vec<Received> {
        self.sw.lock().commands.clone()
    }

    /// The next command not yet returned by this method (5 s failsafe).
    pub async fn next_command(&self) -> Option<Received> {
        let want = *self
            .cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rx = self.sw.cmd_count.subscribe();
        timeout(FAILSAFE, rx.wait_for(|n| *n > want))
            .await
            .ok()?
            .ok()?;
        *self
            .cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = want + 1;
        self.sw.lock().commands.get(want).cloned()
    }

    /// Waits (5 s failsafe) for a received command whose text contains `needle`.
    pub async fn wait_command(&self, needle: &str) -> Option<Received> {
        let mut rx = self.sw.cmd_count.subscribe();
        let find = || {
            self.sw
                .lock()
                .commands
                .iter()
                .find(|c| c.text.contains(needle))
                .cloned()
        };
        let _ = timeout(FAILSAFE, rx.wait_for(|_| find().is_some())).await;
        find()
    }

    /// Every ring so far, in start order.
    pub fn ring_log(&self) -> Vec<RingRecord> {
        self.sw.lock().rings.clone()
    }

    /// Waits (5 s failsafe) until `user`'s `n`-th ring (0-based) has ended.
    pub async fn ring_ended(&self, user: &str, n: usize) -> Option<RingRecord> {
        let mut rx = self.sw.ring_count.subscribe();
        let find = || {
            let st = self.sw.lock();
            st.rings
                .iter()
                .filter(|r| r.user == user)
                .nth(n)
                .filter(|r| r.ended.is_some())
                .cloned()
        };
        let _ = timeout(FAILSAFE, rx.wait_for(|_| find().is_some())).await;
        find()
    }

    /// Waits (5 s failsafe) until `user`'s `n`-th ring (0-based) has started.
    pub async fn ring_started(&self, user: &str, n: usize) -> Option<RingRecord> {
        let mut rx = self.sw.ring_count.subscribe();
        let find = || {
            self.sw
                .lock()
                .rings
                .iter()
                .filter(|r| r.user == user)
                .nth(n)
                .cloned()
        };
        let _ = timeout(FAILSAFE, rx.wait_for(|_| find().is_some())).await;
        find()
    }

    /// Waits (5 s failsafe) until channel `uuid` is gone from the switch (its
    /// CHANNEL_HANGUP_COMPLETE has fired); true if it is.
    pub async fn channel_gone(&self, uuid: &str) -> bool {
        let mut events = self.events();
        let gone = || !self.sw.lock().channels.contains_key(uuid);
        let deadline = tokio::time::Instant::now() + FAILSAFE;
        while !gone() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return gone(),
            }
        }
        true
    }

    /// The channel's Bitrix-relevant history: `Some(bridged_us)` if it was ever bridged to
    /// another leg (a conversation took place), `None` if not or unknown.
    pub fn bridged_at_us(&self, uuid: &str) -> Option<u64> {
        let st = self.sw.lock();
        let ch = st.channels.get(uuid).or_else(|| st.departed.get(uuid))?;
        (ch.bridged_us > 0).then_some(ch.bridged_us)
    }

    /// Stops every peer task and waits for them.
    pub async fn shutdown(&self) {
        self.sw.cancel.cancel();
        self.sw.tracker.close();
        let _ = timeout(FAILSAFE, self.sw.tracker.wait()).await;
    }
}

fn spawn_inbound(
    sw: &Arc<Switch>,
    listener: TcpListener,
    stop: CancellationToken,
    serial: Arc<AtomicU64>,
) {
    let sw2 = Arc::clone(sw);
    sw.tracker.spawn(async move {
        loop {
            let accepted =
                tokio::select! { () = stop.cancelled() => break, a = listener.accept() => a };
            let Ok((stream, _)) = accepted else { continue };
            let n = serial.fetch_add(1, Ordering::Relaxed);
            let (tx, _rx) = mpsc::channel(1);
            let task = session::serve(
                Arc::clone(&sw2),
                stop.clone(),
                ConnKind::Inbound(n),
                stream,
                PASSWORD.into(),
                None,
                tx,
            );
            sw2.tracker.spawn(task);
        }
    });
}
