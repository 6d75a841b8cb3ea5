//! `ONAPPINSTALL` for the local application: the portal POSTs the installation's first tokens to
//! the event endpoint (after its `application_token` check, as every event). The installer
//!
//! 1. refuses an installation from another portal than the one installed (`member_id`, the
//!    portal's stable id, §4.3; the first installation is taken);
//! 2. tries the new access token once with `app.info` on the configured portal, so tokens are
//!    trusted only once the portal accepted them (§3.2), and refuses endpoints other than the
//!    configured ones;
//! 3. writes the token file (0600, durably, as a refresh does) and uses the tokens;
//! 4. does what `fsb24 setup` does (scopes, event bindings, external lines, agents), logging
//!    each step. A re-install changes only what is missing (Bitrix24 drops bindings then).

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::bitrix::{BitrixClient, TokenFile};
use crate::config::{AgentConfig, PortalConfig};
use crate::http::AppInstall;

/// What the installer needs.
#[derive(Debug, Clone)]
pub struct Installer {
    /// The application's client (OAuth).
    pub client: BitrixClient,
    /// `[events]` and `[[lines]]`.
    pub portal: PortalConfig,
    /// `[[agents]]`, checked against the portal's users.
    pub agents: Vec<AgentConfig>,
}

impl Installer {
    /// Handles installations from `rx` one at a time until `shutdown`.
    pub async fn run(self, mut rx: mpsc::Receiver<AppInstall>, shutdown: CancellationToken) {
        loop {
            let install = tokio::select! {
                () = shutdown.cancelled() => return,
                install = rx.recv() => match install {
                    Some(install) => install,
                    None => return,
                },
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.install(install) => {}
            }
        }
    }

    async fn install(&self, install: AppInstall) {
        let member = install.member_id.clone();
        if let Some(known) = self.client.installed_member().await
            && known != member
        {
            warn!(
                installed = known.as_str(),
                member_id = member.as_str(),
                "ONAPPINSTALL from another portal refused; the token file is unchanged"
            );
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tokens = TokenFile {
            access_token: install.access_token,
            refresh_token: install.refresh_token,
            expires: install.expires_in.map(|s| now.saturating_add(s)),
            client_endpoint: install.client_endpoint,
            server_endpoint: install.server_endpoint,
            member_id: Some(member.clone()),
        };
        match self.client.install(tokens).await {
            Ok(true) => info!(
                member_id = member.as_str(),
                "application installed: tokens stored"
            ),
            Ok(false) => {
                warn!("ONAPPINSTALL ignored: fsb24 uses a webhook, not the local application");
                return;
            }
            Err(e) => {
                error!(error = %e, "ONAPPINSTALL refused: its tokens were not accepted");
                return;
            }
        }
        match super::run(&self.client, &self.portal, &self.agents).await {
            Ok(report) => {
                for step in &report.steps {
                    info!(step = step.what.as_str(), outcome = ?step.outcome, "install: setup step");
                }
                if report.scope_missing() {
                    warn!("install: the application lacks a scope fsb24 needs (see above)");
                }
            }
            Err(e) => error!(error = %e, "install: setting up the portal failed; run fsb24 setup"),
        }
    }
}
