//! Method dispatch: lower-case method name -> implementation, with the per-method
//! operating budget around it. `batch` is handled by the batch module on top of this.

use serde_json::json;
use tokio::time::Instant;

use super::auth::AuthKind;
use super::crm::EntityKind;
use super::envelope::{ApiError, MethodOk, Operating};
use super::options::Fault;
use super::params::Params;
use super::state::{PeerState, Shared};
use super::{events, lines, offline, record, telephony, transcript, users};

/// Who is calling and when.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Credentials used.
    pub auth: AuthKind,
    /// Acting user (token owner or webhook creator).
    pub user_id: u64,
    /// Arrival time of the HTTP request.
    pub arrived: Instant,
    /// `REST_APP_ID` for results.
    pub app_id: u64,
    /// `REST_APP_NAME` for results.
    pub app_name: String,
    /// Server UTC offset.
    pub utc_offset_secs: i32,
}

/// Every method the peer implements (lower case), `batch` included.
pub const METHODS: [&str; 25] = [
    "telephony.externalcall.register",
    "telephony.externalcall.show",
    "telephony.externalcall.hide",
    "telephony.externalcall.finish",
    "telephony.externalcall.attachrecord",
    "telephony.externalcall.searchcrmentities",
    "telephony.call.attachtranscription",
    "telephony.externalline.add",
    "telephony.externalline.get",
    "telephony.externalline.update",
    "telephony.externalline.delete",
    "user.get",
    "user.current",
    "crm.lead.get",
    "crm.contact.get",
    "crm.company.get",
    "crm.deal.get",
    "event.bind",
    "event.unbind",
    "event.get",
    "event.offline.get",
    "event.offline.clear",
    "event.offline.error",
    "app.info",
    "batch",
];

/// Whether the peer knows `method` (lower case).
pub fn is_known(method: &str) -> bool {
    METHODS.contains(&method)
}

/// Runs one non-batch method with the operating budget; returns its operating figures too.
pub async fn call(
    shared: &Shared,
    ctx: &Ctx,
    method: &str,
    p: Params,
) -> (Result<MethodOk, ApiError>, Option<Operating>) {
    if !is_known(method) || method == "batch" {
        return (Err(ApiError::method_not_found()), None);
    }
    if let Some(budget) = &shared.opts.operating {
        let mut st = shared.lock();
        let now = st.now_unix();
        if st.operating.blocked(budget, method, now) {
            let figures = st.operating.figures(method, now);
            return (Err(ApiError::operation_time_limit()), Some(figures));
        }
    }
    let fault = shared.update(|st| take_fault(st, method));
    if let Some(Fault::Reject {
        status,
        code,
        description,
    }) = &fault
    {
        let status = axum::http::StatusCode::from_u16(*status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        return (Err(ApiError::new(status, code, description.clone())), None);
    }
    let outcome = if method == "telephony.externalcall.attachrecord" {
        record::attach(shared, ctx, &p).await
    } else {
        shared.update(|st| call_sync(st, ctx, method, &p))
    };
    let figures = shared.opts.operating.as_ref().map(|budget| {
        let mut st = shared.lock();
        let now = st.now_unix();
        st.operating.charge(budget, method, now);
        st.operating.figures(method, now)
    });
    if fault == Some(Fault::LoseResponse) {
        return (Err(ApiError::internal()), figures);
    }
    (outcome, figures)
}

fn take_fault(st: &mut PeerState, method: &str) -> Option<Fault> {
    let index = st.faults.iter().position(|(m, _)| m == method)?;
    Some(st.faults.remove(index).1)
}

fn call_sync(
    st: &mut PeerState,
    ctx: &Ctx,
    method: &str,
    p: &Params,
) -> Result<MethodOk, ApiError> {
    // §3.6: `telephony.*` needs `telephony`, `crm.*` `crm`, `user.*` `user`; `event.*` and
    // `batch` are in the always-granted `basic` scope. Docs: 403; [impl] OAuth path 401.
    let scope = method.split('.').next().unwrap_or_default();
    if matches!(scope, "telephony" | "crm" | "user")
        && st.switches.missing_scopes.iter().any(|s| s == scope)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "insufficient_scope",
            "The request requires higher privileges than provided by the access token",
        ));
    }
    match method {
        "telephony.externalcall.register" => telephony::register(st, ctx, p),
        "telephony.externalcall.show" => telephony::show_hide(st, ctx, p, true),
        "telephony.externalcall.hide" => telephony::show_hide(st, ctx, p, false),
        "telephony.externalcall.finish" => telephony::finish(st, ctx, p),
        "telephony.externalcall.searchcrmentities" => telephony::search_crm_entities(st, p),
        "telephony.call.attachtranscription" => transcript::attach(st, p),
        "telephony.externalline.add" => lines::add(st, ctx, p),
        "telephony.externalline.get" => lines::get(st, ctx),
        "telephony.externalline.update" => lines::update(st, ctx, p),
        "telephony.externalline.delete" => lines::delete(st, ctx, p),
        "user.get" => Ok(users::user_get(&st.crm.users, p)),
        "user.current" => user_current(st, ctx),
        "crm.lead.get" => st.crm.entity_get(EntityKind::Lead, p),
        "crm.contact.get" => st.crm.entity_get(EntityKind::Contact, p),
        "crm.company.get" => st.crm.entity_get(EntityKind::Company, p),
        "crm.deal.get" => st.crm.entity_get(EntityKind::Deal, p),
        "event.bind" => events::bind(st, ctx, p),
        "event.unbind" => events::unbind(st, ctx, p),
        "event.get" => events::get(st, ctx),
        "event.offline.get" => offline::get(st, ctx, p),
        "event.offline.clear" => offline::clear(st, ctx, p),
        "event.offline.error" => offline::error(st, ctx, p),
        "app.info" => Ok(MethodOk::of(
            json!({"ID": ctx.app_id, "CODE": "local.fsb24", "STATUS": "L", "INSTALLED": true}),
        )),
        _ => Err(ApiError::method_not_found()),
    }
}

fn user_current(st: &PeerState, ctx: &Ctx) -> Result<MethodOk, ApiError> {
    let mut filter = Params::default();
    filter
        .0
        .insert("ID".to_owned(), json!(ctx.user_id.to_string()));
    let found = users::user_get(&st.crm.users, &filter).result;
    match found.as_array().and_then(|a| a.first()) {
        Some(user) => Ok(MethodOk::of(user.clone())),
        None => Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "authorization_error",
            "Unable to authorize user",
        )),
    }
}
