//! The live status page: plain server-rendered HTML that reloads itself every 2 s. Calls in
//! progress, queues with waiting callers, agents, the outbox and the portal's last errors.
//! Pure: renders a [`Snapshot`]; every value from outside is HTML-escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use super::scrape::Snapshot;
use crate::bitrix::PortalState;
use crate::call::board::{CallView, Phase};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}\
table{border-collapse:collapse;min-width:40em}\
th,td{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.ok{color:#1a7f37}.bad{color:#cf222e}.muted{color:#777}\
.phase-ringing{color:#9a6700}.phase-talking{color:#1a7f37}";

/// The whole page.
pub(super) fn render(s: &Snapshot) -> String {
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\"><title>fsb24 status</title>\
         <style>{STYLE}</style></head><body>\
         <h1>fsb24 {} <span class=\"muted\">up {} · {}</span></h1>",
        env!("CARGO_PKG_VERSION"),
        dur(s.uptime),
        s.wall.format("%Y-%m-%d %H:%M:%S UTC")
    );
    health(&mut h, s);
    calls(&mut h, s);
    queues(&mut h, s);
    agents(&mut h, s);
    outbox(&mut h, s);
    errors(&mut h, s);
    h.push_str("</body></html>\n");
    h
}

fn health(h: &mut String, s: &Snapshot) {
    let (portal, class) = match s.portal {
        PortalState::Up => ("answers", "ok"),
        PortalState::Down => ("does not answer", "bad"),
        PortalState::Unknown => ("not asked yet", "muted"),
    };
    let (esl, esl_class) = if s.esl_connected {
        ("connected", "ok")
    } else {
        ("disconnected", "bad")
    };
    let _ = write!(
        h,
        "<p id=\"health\">FreeSWITCH inbound: <b class=\"{esl_class}\">{esl}</b> \
         ({} reconnects) · Bitrix24 portal: <b class=\"{class}\">{portal}</b></p>",
        s.esl_connects.saturating_sub(1)
    );
}

fn calls(h: &mut String, s: &Snapshot) {
    let _ = write!(
        h,
        "<h2>Calls in progress ({})</h2><table id=\"calls\"><tr><th>Caller</th><th>Dialled</th>\
         <th>Route</th><th>Queue</th><th>State</th><th>Ringing</th><th>Talking</th>\
         <th>Card open for</th><th>Call age</th></tr>",
        s.calls.len()
    );
    if s.calls.is_empty() {
        h.push_str("<tr><td colspan=\"9\" class=\"muted\">no calls</td></tr>");
    }
    for c in &s.calls {
        call_row(h, c, s.now);
    }
    h.push_str("</table>");
}

fn call_row(h: &mut String, c: &CallView, now: Instant) {
    let ringing: Vec<String> = c.ringing.iter().map(|a| esc(a.as_str())).collect();
    let talking = c
        .talking
        .as_ref()
        .map(|a| esc(a.as_str()))
        .unwrap_or_default();
    let cards: Vec<String> = c
        .cards
        .iter()
        .map(|(user, since)| format!("user {user} ({})", dur(now - *since)))
        .collect();
    let a = &c.arrived;
    let _ = write!(
        h,
        "<tr class=\"call\" data-channel=\"{}\"><td class=\"caller\">{}</td><td>{}</td>\
         <td class=\"route\">{}</td><td class=\"queue\">{}</td>\
         <td class=\"phase phase-{}\">{} for {}</td><td class=\"ringing\">{}</td>\
         <td class=\"talking\">{}</td><td class=\"cards\">{}</td><td>{}</td></tr>",
        esc(a.channel.as_str()),
        esc(&a.caller),
        esc(&a.destination),
        esc(&a.route),
        esc(a.queue.as_deref().unwrap_or("")),
        c.phase.as_str(),
        c.phase.as_str(),
        dur(now - c.phase_since),
        ringing.join(", "),
        talking,
        cards.join(", "),
        dur(now - c.since),
    );
}

fn queues(h: &mut String, s: &Snapshot) {
    let mut by_queue: BTreeMap<String, Vec<&CallView>> = BTreeMap::new();
    for agent in &s.agents {
        for q in &agent.status.queues {
            by_queue.entry(q.clone()).or_default();
        }
    }
    for c in &s.calls {
        if let Some(q) = &c.arrived.queue
            && matches!(c.phase, Phase::Waiting | Phase::Ringing)
        {
            by_queue.entry(q.clone()).or_default().push(c);
        }
    }
    h.push_str(
        "<h2>Queues</h2><table id=\"queues\"><tr><th>Queue</th><th>Waiting callers</th>\
         <th>Longest wait</th></tr>",
    );
    for (queue, waiting) in &by_queue {
        let callers: Vec<String> = waiting.iter().map(|c| esc(&c.arrived.caller)).collect();
        let longest = waiting
            .iter()
            .map(|c| s.now - c.since)
            .max()
            .map(dur)
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr class=\"queue\" data-queue=\"{q}\"><td>{q}</td><td>{} {}</td><td>{longest}</td></tr>",
            waiting.len(),
            callers.join(", "),
            q = esc(queue),
        );
    }
    h.push_str("</table>");
}

fn agents(h: &mut String, s: &Snapshot) {
    h.push_str(
        "<h2>Agents</h2><table id=\"agents\"><tr><th>Agent</th><th>Extension</th>\
         <th>Bitrix24 user</th><th>Phone</th><th>State</th><th>Queues</th></tr>",
    );
    for a in &s.agents {
        let phone = match (a.registered, a.live_channels) {
            (false, _) => "not registered".to_owned(),
            (true, 0) => "registered, idle".to_owned(),
            (true, n) => format!("registered, {n} channel(s) up"),
        };
        let until = a
            .until
            .map(|u| format!(" ({} left)", dur(u.saturating_duration_since(s.now))))
            .unwrap_or_default();
        let info = &a.status.info;
        let _ = write!(
            h,
            "<tr class=\"agent\" data-agent=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td>\
             <td>{phone}</td><td class=\"state\">{}{until}</td><td>{}</td></tr>",
            esc(&info.extension),
            info.user,
            a.state,
            esc(&a.status.queues.join(", ")),
            id = esc(info.agent.as_str()),
        );
    }
    h.push_str("</table>");
}

fn outbox(h: &mut String, s: &Snapshot) {
    h.push_str("<h2>Outbox</h2><table id=\"outbox\">");
    match &s.outbox {
        Some(r) => {
            let oldest = r
                .oldest_pending
                .map(|t| dur((s.wall - t).to_std().unwrap_or_default()))
                .unwrap_or_else(|| "-".to_owned());
            let _ = write!(
                h,
                "<tr><th>Backlog</th><td id=\"backlog\">{} entries in {} calls ({} waiting for a \
                 retry)</td></tr><tr><th>Oldest entry</th><td>{oldest}</td></tr>\
                 <tr><th>Dead letters</th><td>{}</td></tr>",
                r.pending,
                r.calls_pending,
                r.waiting_retry,
                r.dead_letters.len()
            );
        }
        None => h.push_str("<tr><td class=\"bad\">the outbox store did not answer</td></tr>"),
    }
    let o = &s.outbox_counts;
    let _ = write!(
        h,
        "<tr><th>Delivered</th><td>{} ({} retries) since start</td></tr>\
         <tr><th>Probing a silent portal</th><td>{}</td></tr></table>",
        o.delivered,
        o.retries,
        if o.portal_down == 1 { "yes" } else { "no" }
    );
}

fn errors(h: &mut String, s: &Snapshot) {
    h.push_str(
        "<h2>Last Bitrix24 errors</h2><table id=\"errors\"><tr><th>When</th><th>Method</th>\
         <th>Error</th></tr>",
    );
    if s.last_errors.is_empty() {
        h.push_str("<tr><td colspan=\"3\" class=\"muted\">none</td></tr>");
    }
    for e in &s.last_errors {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at.format("%H:%M:%S"),
            esc(e.method),
            esc(&e.error)
        );
    }
    h.push_str("</table>");
}

/// `1h02m`, `3m05s`, `12s`, `0.4s`.
fn dur(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{:.1}s", d.as_secs_f64()),
        1..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_callers_cannot_inject_markup_and_durations_read_like_a_clock() {
        assert_eq!(
            esc("<script>\"x\"&'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;"
        );
        assert_eq!(dur(Duration::from_millis(400)), "0.4s");
        assert_eq!(dur(Duration::from_secs(65)), "1m05s");
        assert_eq!(dur(Duration::from_secs(3720)), "1h02m");
    }
}
