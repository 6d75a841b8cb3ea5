//! Operations (issue 12): `/metrics`, `/healthz` and `/readyz` on fsb24's admin listener, read
//! over a real socket as Prometheus and a load balancer read them, across a call, a portal
//! outage and an ESL reconnect; and the status page rendered by headless Chromium.

use std::time::Duration;

use crate::support::admin::{get, scrape, scrape_until, status_until};
use crate::support::app::World;
use crate::support::bitrix_peer::{CallRecord, Outage, PeerState};
use crate::support::esl_peer::caller::CallSpec;

mod page;

pub(crate) const AGENTS: &[(&str, u64)] = &[("1001", 11), ("1002", 12)];

pub(crate) const SALES: &str = r#"
[[queues]]
name = "sales"
strategy = "simultaneous"
agents = ["1001", "1002"]
ring = ["30s"]
rounds = 1
overflow = { hangup = "NO_ANSWER" }

[[routes]]
destination = "9100"
target = { queue = "sales" }
"#;

pub(crate) fn spec(caller: &str) -> CallSpec {
    CallSpec {
        caller: caller.into(),
        destination: "9100".into(),
        ..CallSpec::default()
    }
}

/// The peer's record of the call with this EXTERNAL_CALL_ID, if registered.
pub(crate) fn call_of(s: &PeerState, external: &str) -> Option<CallRecord> {
    s.calls
        .iter()
        .find(|c| c.external_call_id.as_deref() == Some(external))
        .cloned()
}

/// Waits until both agents' phones are registered and free.
async fn agents_free(admin: std::net::SocketAddr) -> crate::support::admin::Scrape {
    scrape_until(admin, "both agents free", |s| {
        s.value("fsb24_agents", &[("state", "free")]) == 2.0
    })
    .await
}

#[tokio::test]
async fn metrics_follow_a_call_from_ringing_to_answered_and_ended() {
    let w = World::start(AGENTS, SALES).await;
    let admin = w.app.admin_addr;
    assert_eq!(get(admin, "/healthz").await, (200, "ok\n".to_owned()));
    w.fs.phone("1001")
        .register(3600)
        .answers_then_hangs_up(Duration::from_millis(600), Duration::from_secs(1));
    w.fs.phone("1002").register(3600).rings_forever();
    let idle = agents_free(admin).await;
    assert_eq!(idle.get("fsb24_calls_in_progress", &[]), Some(0.0));
    assert_eq!(
        idle.types
            .get("fsb24_ring_step_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    let caller =
        w.fs.offer_call(w.app.esl_addr, spec("+79991234567"))
            .await
            .unwrap();
    let external = format!("fs-{}", caller.uuid);
    // The card opens when the phones ring; the board is updated before the card is stored.
    let call_id =
        w.bx.wait_for_value("cards open while ringing", |s| {
            let call = call_of(s, &external)?;
            (s.timeline.shown(&call.call_id).len() == 2).then_some(call.call_id)
        })
        .await;
    let ringing = scrape(admin).await;
    assert_eq!(ringing.get("fsb24_calls_in_progress", &[]), Some(1.0));
    assert_eq!(ringing.value("fsb24_agents", &[("state", "ringing")]), 2.0);

    w.bx.wait_for("the call is finished", |s| {
        s.call(&call_id).is_some_and(|c| c.finished.is_some())
    })
    .await;
    let done = scrape_until(admin, "the call ended and its writes settled", |s| {
        s.get("fsb24_calls_in_progress", &[]) == Some(0.0)
            && s.value("fsb24_outbox_backlog", &[]) == 0.0
            && s.value("fsb24_recording_attach_total", &[("outcome", "attached")]) == 1.0
    })
    .await;
    let labels = [
        ("route", "9100"),
        ("queue", "sales"),
        ("outcome", "answered"),
    ];
    assert_eq!(done.get("fsb24_calls_total", &labels), Some(1.0));
    assert_eq!(
        done.value("fsb24_agents", &[("state", "wrap_up")])
            + done.value("fsb24_agents", &[("state", "free")]),
        2.0
    );
    // One ring step (both phones at once), ended by the answer.
    assert_eq!(done.get("fsb24_ring_step_seconds_count", &[]), Some(1.0));
    let ring = done.value("fsb24_ring_step_seconds_sum", &[]);
    assert!(
        (0.3..3.0).contains(&ring),
        "ring step {ring} s (phone answered after 0.6 s)"
    );
    // Register (with the card), show, hide, finish: each timed from its event to the wire.
    let cards = done.value("fsb24_card_write_latency_seconds_count", &[]);
    let latency = done.value("fsb24_card_write_latency_seconds_sum", &[]) / cards;
    assert!(cards >= 3.0, "{cards} card writes timed");
    assert!(latency < 1.0, "mean card-write latency {latency} s");
    let register = [
        ("method", "telephony.externalcall.register"),
        ("status", "200"),
    ];
    assert_eq!(
        done.get("fsb24_bitrix_requests_total", &register),
        Some(1.0)
    );
    assert_eq!(done.value("fsb24_bitrix_portal", &[("state", "up")]), 1.0);
    assert_eq!(done.value("fsb24_outbox_dead_letters", &[]), 0.0);
    eprintln!(
        "call metrics: ring step {ring:.3} s, {cards} card writes, mean event->wire {:.1} ms",
        latency * 1000.0
    );
    w.app.shutdown().await;
}

#[tokio::test]
async fn an_outage_shows_as_backlog_and_a_down_portal_but_fsb24_stays_ready() {
    let w = World::start(AGENTS, SALES).await;
    let admin = w.app.admin_addr;
    // The portal's state is unknown until fsb24 asks: /readyz asks once and is then ready.
    let ready = status_until(admin, "/readyz", 200).await;
    assert!(ready.contains("ok   portal: up"), "{ready}");

    w.fs.phone("1001").register(3600).rings_forever();
    w.fs.phone("1002").register(3600).rings_forever();
    agents_free(admin).await;
    w.bx.go_down(Outage::Refuse).await;
    let caller =
        w.fs.offer_call(w.app.esl_addr, spec("+79990000001"))
            .await
            .unwrap();
    let down = scrape_until(admin, "the portal is down with a backlog", |s| {
        s.value("fsb24_bitrix_portal", &[("state", "down")]) == 1.0
            && s.value("fsb24_outbox_backlog", &[]) >= 1.0
            && s.value("fsb24_outbox_probing", &[]) == 1.0
    })
    .await;
    assert!(
        down.value("fsb24_bitrix_requests_total", &[("status", "error")]) > 0.0
            || down.sum("fsb24_bitrix_requests_total", &[("status", "error")]) > 0.0
    );
    assert!(down.value("fsb24_outbox_oldest_entry_age_seconds", &[]) >= 0.0);
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!(status, 200, "a down portal leaves fsb24 ready: {body}");
    assert!(body.contains("portal: down"), "{body}");

    w.bx.restore().await;
    let external = format!("fs-{}", caller.uuid);
    w.bx.wait_for("the held call registered after the outage", |s| {
        call_of(s, &external).is_some()
    })
    .await;
    let back = scrape_until(admin, "the portal is back and nothing is held", |s| {
        s.value("fsb24_bitrix_portal", &[("state", "up")]) == 1.0
            && s.value("fsb24_outbox_probing", &[]) == 0.0
    })
    .await;
    assert!(back.sum("fsb24_bitrix_requests_total", &[("status", "200")]) >= 1.0);
    caller.hang_up();
    w.app.shutdown().await;
}

#[tokio::test]
async fn an_esl_reconnect_makes_fsb24_unready_until_the_switch_is_back_and_is_counted() {
    let w = World::start(AGENTS, SALES).await;
    let admin = w.app.admin_addr;
    status_until(admin, "/readyz", 200).await;
    let before = scrape(admin).await;
    assert_eq!(before.get("fsb24_esl_inbound_connected", &[]), Some(1.0));
    assert_eq!(before.get("fsb24_esl_reconnects_total", &[]), Some(0.0));
    // The outbound drop counter is process-wide: the flood tests in this binary may have added
    // to it. This test's own sessions must add nothing.
    let dropped_before = before.get("fsb24_esl_events_dropped_total", &[]);

    w.fs.kill_inbound();
    let body = status_until(admin, "/readyz", 503).await;
    assert!(body.contains("FAIL esl_inbound"), "{body}");
    let lost = scrape(admin).await;
    assert_eq!(lost.get("fsb24_esl_inbound_connected", &[]), Some(0.0));
    assert_eq!(get(admin, "/healthz").await.0, 200, "alive all along");

    w.fs.restart_inbound().await.unwrap();
    status_until(admin, "/readyz", 200).await;
    let after = scrape_until(admin, "one reconnect counted", |s| {
        s.get("fsb24_esl_reconnects_total", &[]) == Some(1.0)
    })
    .await;
    assert_eq!(after.get("fsb24_esl_inbound_connected", &[]), Some(1.0));
    assert_eq!(
        after.get("fsb24_esl_events_dropped_total", &[]),
        dropped_before
    );
    w.app.shutdown().await;
}
