//! Why a call wrote to Bitrix24: the input that made its machine emit the write, in the words
//! of the switch event (or timer) behind it. Stored with every outbox entry for
//! `fsb24 call show`. Pure.

use crate::call::machine::{BridgeOutcome, Input};

/// A short description of `input` for the audit trail.
pub(crate) fn why(input: &Input) -> String {
    match input {
        Input::Started { .. } => "call arrived (socket connect) and was routed".to_owned(),
        Input::AgentsOffered { agents } => {
            let names: Vec<&str> = agents.iter().map(|a| a.agent.as_str()).collect();
            format!("queue offered {}", names.join(", "))
        }
        Input::NoAgentFree => "queue had nobody free".to_owned(),
        Input::BridgeStarted { .. } => "CHANNEL_EXECUTE bridge: phones ring".to_owned(),
        Input::LegAnswered { leg } => format!("CHANNEL_BRIDGE: leg {leg} answered"),
        Input::BridgeEnded {
            outcome: BridgeOutcome::Failed { cause, .. },
            ..
        } => format!("CHANNEL_EXECUTE_COMPLETE bridge: {}", cause.as_str()),
        Input::BridgeEnded { .. } => "CHANNEL_EXECUTE_COMPLETE bridge: talk ended".to_owned(),
        Input::Unbridged => "CHANNEL_UNBRIDGE".to_owned(),
        Input::Transferred { to: Some(to) } => format!("transfer to user {}", to.user),
        Input::Transferred { to: None } => "transfer to an unknown party".to_owned(),
        Input::RecordStarted { .. } => "RECORD_START".to_owned(),
        Input::RecordStopped { .. } => "RECORD_STOP: recording complete".to_owned(),
        Input::CallerHungUp { cause, .. } => {
            format!("CHANNEL_HANGUP of the caller: {}", cause.as_str())
        }
        Input::HangupComplete { cause, billsec, .. } => format!(
            "CHANNEL_HANGUP_COMPLETE: {}, billsec {billsec}",
            cause.as_str()
        ),
        Input::LookupFinished { responsible } => match responsible {
            Some((user, _)) => format!("CRM lookup: responsible user {user}"),
            None => "CRM lookup: no responsible agent".to_owned(),
        },
        Input::LookupTimedOut => "CRM lookup timed out".to_owned(),
        Input::DeadlinePassed => "timer: ring step or wait over".to_owned(),
        Input::Shutdown => "fsb24 stopping (SIGTERM)".to_owned(),
    }
}
