//! `telephony.externalLine.add/get/update/delete` (reference §6.1-§6.4). Lines are
//! namespaced per application; webhook calls share one app-less namespace.

use serde_json::{Value, json};

use super::envelope::{ApiError, MethodOk};
use super::methods::Ctx;
use super::params::Params;
use super::state::{Line, PeerState};

const MAX_NUMBER_LEN: usize = 50;

/// Creates the line if this namespace lacks it (register with an unknown `LINE_NUMBER` [impl]).
pub fn ensure_line(st: &mut PeerState, number: &str, webhook_ns: bool) {
    let number = stored_number(number);
    if !st
        .lines
        .iter()
        .any(|l| l.webhook_ns == webhook_ns && l.number == number)
    {
        let id = st.next_id();
        st.lines.push(Line {
            id,
            number,
            name: String::new(),
            crm_auto_create: true,
            webhook_ns,
        });
    }
}

fn stored_number(number: &str) -> String {
    number.trim().chars().take(MAX_NUMBER_LEN).collect()
}

fn guard(st: &PeerState, ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.auth.is_webhook() && st.switches.webhook_wrong_auth_type {
        return Err(ApiError::wrong_auth_type());
    }
    Ok(())
}

/// `telephony.externalline.add`.
pub fn add(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    guard(st, ctx)?;
    let style = st.switches.error_style;
    let number = p
        .non_empty("NUMBER")
        .map(|n| stored_number(&n))
        .ok_or_else(|| ApiError::core(style, "NUMBER should not be empty"))?;
    let ns = ctx.auth.is_webhook();
    if st
        .lines
        .iter()
        .any(|l| l.webhook_ns == ns && l.number == number)
    {
        return Err(ApiError::core(style, "Line already exists"));
    }
    let id = st.next_id();
    let line = Line {
        id,
        number,
        name: p.str("NAME").unwrap_or_default(),
        crm_auto_create: p.str("CRM_AUTO_CREATE").is_none_or(|v| v == "Y"),
        webhook_ns: ns,
    };
    st.lines.push(line);
    Ok(MethodOk::of(json!({"ID": id})))
}

/// `telephony.externalline.get`.
pub fn get(st: &PeerState, ctx: &Ctx) -> Result<MethodOk, ApiError> {
    guard(st, ctx)?;
    let ns = ctx.auth.is_webhook();
    let lines: Vec<Value> = st
        .lines
        .iter()
        .filter(|l| l.webhook_ns == ns)
        .map(|l| json!({"NUMBER": l.number, "NAME": l.name, "CRM_AUTO_CREATE": if l.crm_auto_create { "Y" } else { "N" }}))
        .collect();
    Ok(MethodOk::of(Value::Array(lines)))
}

fn find(st: &PeerState, ctx: &Ctx, p: &Params) -> Result<usize, ApiError> {
    let style = st.switches.error_style;
    let number = p
        .non_empty("NUMBER")
        .map(|n| stored_number(&n))
        .ok_or_else(|| ApiError::core(style, "NUMBER should not be empty"))?;
    let ns = ctx.auth.is_webhook();
    st.lines
        .iter()
        .position(|l| l.webhook_ns == ns && l.number == number)
        .ok_or_else(|| ApiError::core(style, format!("Could not find line with number {number}")))
}

/// `telephony.externalline.update`.
pub fn update(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    guard(st, ctx)?;
    let (name, auto) = (p.str("NAME"), p.str("CRM_AUTO_CREATE"));
    if name.is_none() && auto.is_none() {
        return Err(ApiError::core(
            st.switches.error_style,
            "There are no fields to update",
        ));
    }
    let index = find(st, ctx, p)?;
    let line = &mut st.lines[index];
    if let Some(name) = name {
        line.name = name;
    }
    if let Some(auto) = auto {
        line.crm_auto_create = auto == "Y";
    }
    Ok(MethodOk::of(json!({"ID": line.id.to_string()})))
}

/// `telephony.externalline.delete`.
pub fn delete(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    guard(st, ctx)?;
    let index = find(st, ctx, p)?;
    st.lines.remove(index);
    Ok(MethodOk::of(json!([])))
}
