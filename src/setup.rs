//! `fsb24 setup`: makes the portal match the config, idempotently. It binds
//! `ONEXTERNALCALLSTART` and `ONEXTERNALCALLBACKSTART` (online to `[events] handler_url`, offline,
//! or both, as `[events] delivery` says) and registers the `[[lines]]` as external lines
//! (added when missing, updated when their name or CRM flag differ). Every step is read first
//! (`event.get`, `telephony.externalLine.get`), so a second run sends no writes at all.

use std::fmt;

pub mod agents;
pub mod install;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::bitrix::wire::{CrmEntityType, EventHandler, EventName, ExternalLine};
use crate::bitrix::{BitrixClient, BitrixError, ErrorKind};
use crate::config::{AgentConfig, Config, EventDelivery, LineConfig, PortalConfig};
use crate::ids::PhoneNumber;

/// The events fsb24 handles.
pub const EVENTS: [EventName; 2] = [
    EventName::ExternalCallStart,
    EventName::ExternalCallBackStart,
];

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already as configured: nothing sent.
    Unchanged,
    /// Created (`event.bind`, `externalLine.add`).
    Created,
    /// Changed (`externalLine.update`).
    Updated,
    /// Not done, with the reason (e.g. an incoming webhook cannot bind events).
    Skipped(String),
    /// A scope the credentials have.
    Granted,
    /// A scope the credentials lack, with what needs it.
    Missing(String),
}

/// One line of the report: what, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// E.g. `event ONEXTERNALCALLSTART online https://…` or `line 4930555000`.
    pub what: String,
    /// What happened.
    pub outcome: Outcome,
}

/// What `setup` did, step by step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// In order.
    pub steps: Vec<Step>,
    /// `[[agents]]` against the portal's users, when checked.
    pub agents: Option<agents::AgentCheck>,
}

impl Report {
    /// Whether a needed scope is missing (setup then exits non-zero).
    pub fn scope_missing(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Missing(_)))
    }

    /// Whether anything was sent to the portal.
    pub fn changed(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Created | Outcome::Updated))
    }

    fn push(&mut self, what: String, outcome: Outcome) {
        self.steps.push(Step { what, outcome });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            let outcome = match &step.outcome {
                Outcome::Unchanged => "unchanged".to_owned(),
                Outcome::Created => "created".to_owned(),
                Outcome::Updated => "updated".to_owned(),
                Outcome::Skipped(why) => format!("skipped: {why}"),
                Outcome::Granted => "granted".to_owned(),
                Outcome::Missing(what) => format!("MISSING: grant it to the application; {what}"),
            };
            writeln!(f, "{}: {outcome}", step.what)?;
        }
        if !self.changed() {
            writeln!(f, "nothing changed")?;
        }
        let Some(check) = &self.agents else {
            return Ok(());
        };
        for warning in &check.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        let usable: Vec<_> = check.unconfigured.iter().filter(|u| u.usable()).collect();
        if !usable.is_empty() {
            writeln!(
                f,
                "\n# Bitrix24 users with an inner number and no [[agents]] entry:"
            )?;
            for user in usable {
                writeln!(f, "{}", user.toml())?;
            }
        }
        Ok(())
    }
}

/// `fsb24 setup`: a Bitrix24 client from `config`'s credentials, then [`run`].
pub async fn setup(config: &Config) -> anyhow::Result<Report> {
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    let settings = crate::app::build::bitrix(config)?;
    let client = BitrixClient::start(settings, &tracker, token.clone())
        .await
        .context("starting the Bitrix24 client")?;
    let report = run(&client, &config.portal, &config.agents).await;
    token.cancel();
    tracker.close();
    drop(client);
    tracker.wait().await;
    report.context("setting up the portal")
}

/// Binds the events and registers the lines of `portal`. A step the credentials are not allowed
/// to do (`WRONG_AUTH_TYPE` under an incoming webhook) is reported as skipped; any other error
/// stops the run (what was done so far stays done, and a rerun continues from there).
///
/// First the scopes fsb24 needs (§3.6) are verified with one harmless read each:
/// `telephony` (a CRM search by number), `crm` (`crm.contact.get`), `user` (`user.get`, which
/// also checks `agents` against the portal's users).
pub async fn run(
    client: &BitrixClient,
    portal: &PortalConfig,
    agents: &[AgentConfig],
) -> Result<Report, BitrixError> {
    let mut report = Report::default();
    // The constant always parses; `if let` keeps panics out of the library.
    if let Ok(probe) = PhoneNumber::parse(SCOPE_PROBE_NUMBER) {
        let telephony = client.search_crm_entities(&probe).await.map(drop);
        scope(
            &mut report,
            "telephony",
            "calls, lines and cards need it",
            telephony,
        )?;
    }
    let crm = client.crm_entity(CrmEntityType::Contact, 1).await.map(drop);
    scope(
        &mut report,
        "crm",
        "routing to the responsible manager needs it",
        crm,
    )?;
    match agents::check(client, agents).await {
        Ok(check) => {
            report.push("scope user".to_owned(), Outcome::Granted);
            report.agents = Some(check);
        }
        Err(e) => scope(&mut report, "user", "the [[agents]] check needs it", Err(e))?,
    }
    events(client, portal, &mut report).await?;
    lines(client, &portal.lines, &mut report).await?;
    Ok(report)
}

/// A number no CRM holds: the `telephony` probe must not match anybody.
const SCOPE_PROBE_NUMBER: &str = "+10000000000";

/// Records scope `name` as granted unless `probe` failed for lack of it; an answer that is an
/// error for another reason (e.g. no such contact) still proves the scope.
fn scope(
    report: &mut Report,
    name: &str,
    why: &str,
    probe: Result<(), BitrixError>,
) -> Result<(), BitrixError> {
    let outcome = match probe {
        Ok(()) => Outcome::Granted,
        Err(e) if e.is_missing_scope() => Outcome::Missing(why.to_owned()),
        Err(e @ BitrixError::Api { .. }) => {
            tracing::debug!(error = %e, scope = name, "scope probe answered with an error");
            Outcome::Granted
        }
        Err(e) => return Err(e),
    };
    report.push(format!("scope {name}"), outcome);
    Ok(())
}

async fn events(
    client: &BitrixClient,
    portal: &PortalConfig,
    report: &mut Report,
) -> Result<(), BitrixError> {
    let bound = match client.event_get().await {
        Ok(bound) => bound,
        Err(e) if e.kind() == Some(ErrorKind::Auth) => {
            report.push(
                "events".to_owned(),
                Outcome::Skipped(format!(
                    "{e}; an incoming webhook cannot bind events: use the local application \
                     (OAuth), or an outgoing webhook set up in the portal"
                )),
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for event in EVENTS {
        if portal.delivery.online() {
            online(client, event, portal.handler_url.as_ref(), &bound, report).await?;
        }
        if portal.delivery.offline() {
            let what = format!("event {} offline", event.as_str());
            if bound.iter().any(|b| b.name() == Some(event) && b.offline) {
                report.push(what, Outcome::Unchanged);
            } else {
                client.event_bind_offline(event).await?;
                report.push(what, Outcome::Created);
            }
        }
    }
    if portal.delivery == EventDelivery::Online {
        // Offline handlers left from an earlier `delivery = "offline"` keep queueing events
        // nobody fetches; they are reported, not removed, since another installation may poll.
        for b in bound.iter().filter(|b| b.offline && b.name().is_some()) {
            report.push(
                format!("event {} offline", b.event),
                Outcome::Skipped("bound, but [events] delivery is \"online\"".to_owned()),
            );
        }
    }
    Ok(())
}

async fn online(
    client: &BitrixClient,
    event: EventName,
    handler: Option<&Url>,
    bound: &[EventHandler],
    report: &mut Report,
) -> Result<(), BitrixError> {
    let Some(handler) = handler else {
        report.push(
            format!("event {} online", event.as_str()),
            Outcome::Skipped("[events] handler_url is not set".to_owned()),
        );
        return Ok(());
    };
    let what = format!("event {} online {handler}", event.as_str());
    let same = |b: &EventHandler| {
        b.name() == Some(event) && !b.offline && b.handler.as_deref() == Some(handler.as_str())
    };
    if bound.iter().any(same) {
        report.push(what, Outcome::Unchanged);
    } else {
        client.event_bind(event, handler).await?;
        report.push(what, Outcome::Created);
    }
    Ok(())
}

async fn lines(
    client: &BitrixClient,
    wanted: &[LineConfig],
    report: &mut Report,
) -> Result<(), BitrixError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let existing: Vec<ExternalLine> = match client.external_line_get().await {
        Ok(lines) => lines,
        Err(e) if e.kind() == Some(ErrorKind::Auth) => {
            report.push(
                "lines".to_owned(),
                Outcome::Skipped(format!(
                    "{e}; lines are registered by the first call that uses them instead"
                )),
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for line in wanted {
        let what = format!("line {}", line.number);
        let name = line.name.as_deref();
        match existing.iter().find(|l| l.number == line.number) {
            None => {
                client
                    .external_line_add(&line.number, name, line.crm_auto_create)
                    .await?;
                report.push(what, Outcome::Created);
            }
            Some(l)
                if l.crm_auto_create == line.crm_auto_create
                    && (name.is_none() || l.name.as_deref() == name) =>
            {
                report.push(what, Outcome::Unchanged);
            }
            Some(_) => {
                client
                    .external_line_update(&line.number, name, line.crm_auto_create)
                    .await?;
                report.push(what, Outcome::Updated);
            }
        }
    }
    Ok(())
}
