//! Events the portal POSTs to the connector (reference §4): form-encoded with bracketed
//! keys, every scalar a string, the `auth` block carrying `application_token`.
//! Click-to-call first registers the TYPE=1 call internally, as Bitrix24 does.

use serde_json::json;

use super::auth::TokenPair;
use super::crm::EntityKind;
use super::methods::Ctx;
use super::params::Params;
use super::state::Shared;
use super::telephony;

/// One event POST the portal made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Event code (`ONEXTERNALCALLSTART` ...).
    pub event: String,
    /// Handler URL.
    pub handler: String,
    /// The form pairs sent, in order.
    pub form: Vec<(String, String)>,
    /// HTTP status the handler answered; `None` when the POST failed.
    pub status: Option<u16>,
}

/// A CRM click on a phone number (`ONEXTERNALCALLSTART`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickToCall {
    /// User who clicked.
    pub user_id: u64,
    /// Number as clicked.
    pub phone: String,
    /// App line selected (may be empty).
    pub line_number: String,
    /// Entity the click came from.
    pub crm: Option<(EntityKind, u64)>,
    /// How long the event waited in Bitrix24's queue: the call was registered (its CALL_ID
    /// stamped) this long before the POST.
    pub queued_for: std::time::Duration,
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The `auth[...]` block; tokens only when the event carries a user's tokens.
pub fn auth_block(
    shared: &Shared,
    tokens: Option<&TokenPair>,
    application_token: &str,
) -> Vec<(String, String)> {
    let endpoint = format!("{}/rest/", shared.base_url);
    let mut auth = Vec::new();
    if let Some(t) = tokens {
        auth.extend(pairs(&[
            ("auth[access_token]", t.access.clone()),
            (
                "auth[expires_in]",
                shared.opts.token_ttl.as_secs().to_string(),
            ),
            ("auth[scope]", "telephony,crm,user".to_owned()),
        ]));
    }
    auth.extend(pairs(&[
        (
            "auth[domain]",
            shared.base_url.trim_start_matches("http://").to_owned(),
        ),
        ("auth[server_endpoint]", endpoint.clone()),
        ("auth[status]", "L".to_owned()),
        ("auth[client_endpoint]", endpoint),
        ("auth[member_id]", shared.opts.member_id.clone()),
        ("auth[application_token]", application_token.to_owned()),
    ]));
    auth
}

/// POSTs `form` to `handler` and logs the delivery.
pub async fn deliver(
    shared: &Shared,
    event: &str,
    handler: &str,
    form: Vec<(String, String)>,
) -> Option<u16> {
    let status = match shared.http.post(handler).form(&form).send().await {
        Ok(resp) => Some(resp.status().as_u16()),
        Err(_) => None,
    };
    let delivery = Delivery {
        event: event.to_owned(),
        handler: handler.to_owned(),
        form,
        status,
    };
    shared.update(|st| st.deliveries.push(delivery));
    status
}

fn envelope_head(shared: &Shared, event: &str) -> Vec<(String, String)> {
    let ts = (shared.lock().now_unix() as i64).to_string();
    pairs(&[
        ("event", event.to_owned()),
        ("event_handler_id", "88".to_owned()),
        ("ts", ts),
    ])
}

/// Registers the clicked call (TYPE=1, no EXTERNAL_CALL_ID, no card) and builds the event form.
pub fn click_to_call_form(
    shared: &Shared,
    click: &ClickToCall,
    tokens: &TokenPair,
    application_token: &str,
) -> Result<(String, Vec<(String, String)>), super::envelope::ApiError> {
    let mut params =
        json!({"USER_ID": click.user_id, "PHONE_NUMBER": click.phone, "TYPE": 1, "SHOW": 0});
    if !click.line_number.is_empty() {
        params["LINE_NUMBER"] = json!(click.line_number);
    }
    if let Some((kind, id)) = click.crm {
        params["CRM_ENTITY_TYPE"] = json!(kind.wire());
        params["CRM_ENTITY_ID"] = json!(id);
    }
    let params = Params(params.as_object().cloned().unwrap_or_default());
    let ctx = Ctx {
        auth: super::auth::AuthKind::OAuth {
            token: tokens.access.clone(),
        },
        user_id: click.user_id,
        arrived: tokio::time::Instant::now(),
        app_id: shared.opts.app_id,
        app_name: shared.opts.app_name.clone(),
        utc_offset_secs: shared.opts.utc_offset_secs,
    };
    let registered = shared
        .update(|st| {
            st.unix_rewind = click.queued_for;
            let registered = telephony::register(st, &ctx, &params);
            st.unix_rewind = std::time::Duration::ZERO;
            registered
        })?
        .result;
    let call_id = registered["CALL_ID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (entity_type, entity_id) = match click.crm {
        Some((kind, id)) => (kind.wire().to_owned(), id.to_string()),
        None => (String::new(), String::new()),
    };
    let international = super::crm::normalize_phone(&click.phone);
    let mut form = envelope_head(shared, "ONEXTERNALCALLSTART");
    form.extend(pairs(&[
        ("data[PHONE_NUMBER]", click.phone.clone()),
        ("data[PHONE_NUMBER_INTERNATIONAL]", international),
        ("data[EXTENSION]", String::new()),
        ("data[USER_ID]", click.user_id.to_string()),
        ("data[CALL_LIST_ID]", "0".to_owned()),
        ("data[LINE_NUMBER]", click.line_number.clone()),
        ("data[IS_MOBILE]", "0".to_owned()),
        ("data[CALL_ID]", call_id.clone()),
        ("data[CRM_ENTITY_TYPE]", entity_type),
        ("data[CRM_ENTITY_ID]", entity_id),
    ]));
    form.extend(auth_block(shared, Some(tokens), application_token));
    Ok((call_id, form))
}

/// `ONEXTERNALCALLBACKSTART` form: no CALL_ID; the CRM entity the form made, if any.
pub fn callback_form(
    shared: &Shared,
    phone: &str,
    text: &str,
    line: &str,
    crm: Option<(EntityKind, u64)>,
    application_token: &str,
) -> Vec<(String, String)> {
    let (kind, id) = crm.map_or(("LEAD", 0), |(kind, id)| (kind.wire(), id));
    let mut form = envelope_head(shared, "ONEXTERNALCALLBACKSTART");
    form.extend(pairs(&[
        ("data[PHONE_NUMBER]", phone.to_owned()),
        ("data[TEXT]", text.to_owned()),
        ("data[VOICE]", "ruinternalfemale".to_owned()),
        ("data[CRM_ENTITY_TYPE]", kind.to_owned()),
        ("data[CRM_ENTITY_ID]", id.to_string()),
        ("data[LINE_NUMBER]", line.to_owned()),
    ]));
    form.extend(auth_block(shared, None, application_token));
    form
}

/// `ONAPPINSTALL` form with a fresh refresh token; `ONAPPUNINSTALL` without tokens.
pub fn app_form(
    shared: &Shared,
    install: Option<&TokenPair>,
    application_token: &str,
) -> Vec<(String, String)> {
    let event = if install.is_some() {
        "ONAPPINSTALL"
    } else {
        "ONAPPUNINSTALL"
    };
    let mut form = envelope_head(shared, event);
    match install {
        Some(tokens) => {
            form.extend(pairs(&[
                ("data[VERSION]", "1".to_owned()),
                ("data[ACTIVE]", "Y".to_owned()),
                ("data[INSTALLED]", "Y".to_owned()),
                ("data[LANGUAGE_ID]", "en".to_owned()),
            ]));
            form.extend(auth_block(shared, Some(tokens), application_token));
            form.push(("auth[refresh_token]".to_owned(), tokens.refresh.clone()));
        }
        None => {
            form.extend(pairs(&[
                ("data[LANGUAGE_ID]", "en".to_owned()),
                ("data[CLEAN]", "0".to_owned()),
            ]));
            form.extend(auth_block(shared, None, application_token));
        }
    }
    form
}

// === BitrixPeer: event delivery ===

impl super::BitrixPeer {
    /// A CRM click: registers the TYPE=1 call as Bitrix24 does (no card, no EXTERNAL_CALL_ID)
    /// and POSTs `ONEXTERNALCALLSTART` to `handler`. Returns the CALL_ID and the handler's status.
    pub async fn click_to_call(
        &self,
        handler: &str,
        application_token: &str,
        click: &ClickToCall,
    ) -> (String, Option<u16>) {
        let tokens = self.latest_tokens();
        let (call_id, form) = click_to_call_form(&self.shared, click, &tokens, application_token)
            .unwrap_or_else(|err| {
                panic!("bitrix peer: click-to-call registration refused: {err:?}")
            });
        let status = deliver(&self.shared, "ONEXTERNALCALLSTART", handler, form).await;
        (call_id, status)
    }

    /// A CRM click registered as [`Self::click_to_call`] does, without posting it: the
    /// CALL_ID and the event form, for tests that post (or alter) the form themselves.
    pub fn click_to_call_form(
        &self,
        click: &ClickToCall,
        application_token: &str,
    ) -> (String, Vec<(String, String)>) {
        let tokens = self.latest_tokens();
        click_to_call_form(&self.shared, click, &tokens, application_token).unwrap_or_else(|err| {
            panic!("bitrix peer: click-to-call registration refused: {err:?}")
        })
    }

    /// POSTs `ONEXTERNALCALLBACKSTART` (CRM callback form) to `handler`.
    pub async fn callback_start(
        &self,
        handler: &str,
        application_token: &str,
        phone: &str,
        line: &str,
        crm: Option<(EntityKind, u64)>,
    ) -> Option<u16> {
        let text = "Call the customer back";
        let form = callback_form(&self.shared, phone, text, line, crm, application_token);
        deliver(&self.shared, "ONEXTERNALCALLBACKSTART", handler, form).await
    }

    /// POSTs `ONAPPINSTALL` with a freshly issued token pair for the installer; returns the pair.
    pub async fn app_install(
        &self,
        handler: &str,
        application_token: &str,
    ) -> (TokenPair, Option<u16>) {
        let tokens = self.issue_tokens(self.shared.opts.installer_user_id);
        let form = app_form(&self.shared, Some(&tokens), application_token);
        (
            tokens.clone(),
            deliver(&self.shared, "ONAPPINSTALL", handler, form).await,
        )
    }

    /// POSTs `ONAPPUNINSTALL` (no tokens) to `handler`.
    pub async fn app_uninstall(&self, handler: &str, application_token: &str) -> Option<u16> {
        let form = app_form(&self.shared, None, application_token);
        deliver(&self.shared, "ONAPPUNINSTALL", handler, form).await
    }

    /// Sends delivery number `index` again, unchanged (duplicate-delivery injection).
    pub async fn redeliver(&self, index: usize) -> Option<u16> {
        let original = self.deliveries().get(index).cloned();
        let original = original.unwrap_or_else(|| panic!("bitrix peer: no delivery #{index}"));
        deliver(
            &self.shared,
            &original.event,
            &original.handler,
            original.form,
        )
        .await
    }

    /// Every event POST made so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }
}
