//! `[[agents]]` against the portal's users (`user.get`, `UF_PHONE_INNER`): configured users who
//! are not active (or have no extension), extensions that differ, and active users with an
//! extension that no agent names yet (printed by `fsb24 setup` as `[[agents]]` to paste).

use std::collections::HashMap;
use std::fmt;

use crate::bitrix::wire::User;
use crate::bitrix::{BitrixClient, BitrixError};
use crate::config::AgentConfig;
use crate::ids::BitrixUserId;

/// One disagreement between `[[agents]]` and the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentWarning {
    /// The agent's user is not an active portal user with an extension (fired, or no
    /// `UF_PHONE_INNER`): its cards go to nobody who can see them.
    NotActive {
        /// The configured agent's extension.
        extension: String,
        /// Its Bitrix24 user.
        user: BitrixUserId,
    },
    /// The portal knows the user under another extension.
    InnerDiffers {
        /// The configured agent's extension.
        extension: String,
        /// Its Bitrix24 user.
        user: BitrixUserId,
        /// `UF_PHONE_INNER` in the portal.
        portal: String,
    },
}

impl fmt::Display for AgentWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotActive { extension, user } => write!(
                f,
                "agent {extension}: Bitrix24 user {user} is not active or has no inner number"
            ),
            Self::InnerDiffers {
                extension,
                user,
                portal,
            } => write!(
                f,
                "agent {extension}: Bitrix24 user {user} has inner number {portal:?} in the portal"
            ),
        }
    }
}

/// An active portal user with an extension that no `[[agents]]` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconfigured {
    /// The user.
    pub user: BitrixUserId,
    /// `UF_PHONE_INNER`.
    pub inner: String,
    /// First and last name.
    pub name: String,
}

impl Unconfigured {
    /// The `[[agents]]` entry for this user (TOML). Only an extension made of letters and
    /// digits can be an agent, so the caller filters with [`Unconfigured::usable`].
    pub fn toml(&self) -> String {
        let name = self.name.replace(['"', '\\'], "");
        format!(
            "[[agents]]\nextension = \"{}\"\nbitrix_user = {}\nname = \"{name}\"\n",
            self.inner, self.user
        )
    }

    /// Whether the extension is one the config accepts (1-32 ASCII letters or digits).
    pub fn usable(&self) -> bool {
        (1..=32).contains(&self.inner.len())
            && self.inner.chars().all(|c| c.is_ascii_alphanumeric())
    }
}

/// What [`compare`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCheck {
    /// Configured agents the portal disagrees with.
    pub warnings: Vec<AgentWarning>,
    /// Portal users an `[[agents]]` entry could be added for.
    pub unconfigured: Vec<Unconfigured>,
}

/// Compares `agents` with `users`, the portal's active users that have an extension.
pub fn compare(agents: &[AgentConfig], users: &[User]) -> AgentCheck {
    let by_id: HashMap<BitrixUserId, &User> = users.iter().map(|u| (u.id, u)).collect();
    let mut check = AgentCheck::default();
    for agent in agents {
        let extension = agent.extension.as_str().to_owned();
        let inner = by_id
            .get(&agent.bitrix_user)
            .filter(|u| u.active)
            .and_then(|u| u.inner_number.as_deref())
            .map(str::trim)
            .filter(|i| !i.is_empty());
        match inner {
            None => check.warnings.push(AgentWarning::NotActive {
                extension,
                user: agent.bitrix_user,
            }),
            Some(inner) if inner != extension => check.warnings.push(AgentWarning::InnerDiffers {
                extension,
                user: agent.bitrix_user,
                portal: inner.to_owned(),
            }),
            Some(_) => {}
        }
    }
    for user in users {
        let configured = agents.iter().any(|a| a.bitrix_user == user.id);
        let inner = user.inner_number.as_deref().map(str::trim).unwrap_or("");
        if user.active && !configured && !inner.is_empty() {
            let name = [user.name.as_deref(), user.last_name.as_deref()]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            check.unconfigured.push(Unconfigured {
                user: user.id,
                inner: inner.to_owned(),
                name,
            });
        }
    }
    check
}

/// Fetches the portal's users and [`compare`]s.
pub async fn check(
    client: &BitrixClient,
    agents: &[AgentConfig],
) -> Result<AgentCheck, BitrixError> {
    let users = client.users_with_inner_numbers().await?;
    Ok(compare(agents, &users))
}

/// Warns once at start about `[[agents]]` whose Bitrix24 user is inactive or has another inner
/// number (`user.get`); never delays calls, and gives up quietly on shutdown.
pub async fn warn_at_start(
    bitrix: BitrixClient,
    agents: Vec<AgentConfig>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let check = tokio::select! {
        () = shutdown.cancelled() => return,
        check = check(&bitrix, &agents) => check,
    };
    match check {
        Ok(check) => {
            for warning in &check.warnings {
                tracing::warn!(%warning, "[[agents]] disagrees with Bitrix24");
            }
        }
        Err(e) => tracing::warn!(
            error = &e as &dyn std::error::Error,
            "could not check [[agents]] against Bitrix24 users"
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn user(id: u64, inner: &str, active: bool) -> User {
        serde_json::from_value(serde_json::json!({
            "ID": id.to_string(), "ACTIVE": active, "UF_PHONE_INNER": inner,
            "NAME": "Erika", "LAST_NAME": "Muster",
        }))
        .unwrap()
    }

    fn agents() -> Vec<AgentConfig> {
        let text = r#"
[esl.inbound]
password = "pw"
[esl.dial]
domain = "pbx.local"
[bitrix.auth.webhook]
url = "https://example.bitrix24.de/rest/1/key/"
[[agents]]
extension = "1001"
bitrix_user = 11
[[agents]]
extension = "1002"
bitrix_user = 12
[[agents]]
extension = "1003"
bitrix_user = 13
"#;
        Config::from_toml_str(text).unwrap().agents
    }

    #[test]
    fn inactive_users_and_differing_extensions_are_warned_about_and_new_users_suggested() {
        let users = [
            user(11, "1001", true),
            user(12, "2002", true),
            user(13, "1003", false),
            user(17, "205", true),
            user(18, "ext 9", true),
        ];
        let check = compare(&agents(), &users);
        assert_eq!(
            check.warnings,
            vec![
                AgentWarning::InnerDiffers {
                    extension: "1002".into(),
                    user: BitrixUserId(12),
                    portal: "2002".into()
                },
                AgentWarning::NotActive {
                    extension: "1003".into(),
                    user: BitrixUserId(13)
                },
            ]
        );
        let usable: Vec<String> = check
            .unconfigured
            .iter()
            .filter(|u| u.usable())
            .map(Unconfigured::toml)
            .collect();
        assert_eq!(
            usable,
            ["[[agents]]\nextension = \"205\"\nbitrix_user = 17\nname = \"Erika Muster\"\n"]
        );
    }
}
