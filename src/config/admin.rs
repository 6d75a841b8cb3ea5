//! Raw → typed for `[admin]`: the operators' listener (metrics, health, status page).

use super::error::Problems;
use super::model::AdminConfig;
use super::raw::RawAdmin;
use super::validate::socket_addr;

pub(crate) fn admin(p: &mut Problems, raw: RawAdmin) -> AdminConfig {
    let listen = socket_addr(p, "admin.listen", raw.listen.as_deref(), "127.0.0.1:9184");
    // The page shows callers' numbers and the metrics name agents: keep it off the network
    // unless an operator says otherwise on purpose.
    if !listen.ip().is_loopback() && !raw.expose.unwrap_or(false) {
        p.push(
            "admin.listen",
            format!(
                "{listen} is not a loopback address; the status page shows callers' numbers \
                 (set admin.expose = true to serve it there anyway, behind a firewall)"
            ),
        );
    }
    AdminConfig { listen }
}
