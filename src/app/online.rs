//! `fsb24 check-config --online`: asks the portal whether the configured credentials may use
//! the telephony methods fsb24 writes with, and says what to change when they may not.

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bitrix::BitrixClient;
use crate::bitrix::error::WRONG_AUTH_TYPE_ADVICE;
use crate::config::{BitrixAuth, Config};

/// What the online check found: lines to print, and whether fsb24 can work with the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineReport {
    /// Human-readable findings.
    pub lines: Vec<String>,
    /// False when a setting must change first.
    pub ok: bool,
}

/// Calls `telephony.externalLine.get`, which the portal allows only where `register` and
/// `finish` are allowed (the same application-context check), and nothing that writes. Under
/// OAuth nothing is sent: a token refresh here would rotate the running daemon's single-use
/// refresh token.
pub async fn check(config: &Config) -> anyhow::Result<OnlineReport> {
    if let BitrixAuth::OAuth(o) = &config.bitrix.auth {
        let line = format!(
            "bitrix: application (OAuth) auth for {}: register/finish allowed; \
             online check skipped (it would rotate the daemon's refresh token)",
            o.portal
        );
        return Ok(OnlineReport {
            lines: vec![line],
            ok: true,
        });
    }
    let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
    let mut settings = super::build::bitrix(config)?;
    settings.batch_window = None;
    let client = BitrixClient::start(settings, &tracker, shutdown.clone())
        .await
        .context("starting the Bitrix24 client")?;
    let answer = client.external_line_get().await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(match answer {
        Ok(lines) => OnlineReport {
            lines: vec![format!(
                "bitrix: webhook accepted for telephony methods ({} external lines)",
                lines.len()
            )],
            ok: true,
        },
        Err(err) if err.is_wrong_auth_type() => OnlineReport {
            lines: vec![format!("bitrix: WRONG_AUTH_TYPE: {WRONG_AUTH_TYPE_ADVICE}")],
            ok: false,
        },
        Err(err) => OnlineReport {
            lines: vec![format!("bitrix: online check failed: {err}")],
            ok: false,
        },
    })
}
