//! The portal's small CRM and user directory, seeded by tests: users with extensions,
//! contacts/companies/leads/deals with phones and a responsible. Serves phone lookups
//! (§6.5, §6.6), `user.get` (§7.1) and `crm.*.get` (§7.2).

use serde_json::{Value, json};

use super::envelope::{ApiError, MethodOk};
use super::params::{Params, scalar_string, truthy};

/// A Bitrix24 user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedUser {
    /// User id.
    pub id: u64,
    /// First name.
    pub name: String,
    /// Last name.
    pub last_name: String,
    /// Internal extension (`UF_PHONE_INNER`).
    pub inner: Option<String>,
    /// Whether the user is active (fired users are not).
    pub active: bool,
    /// Time-tracking status shown by `searchCrmEntities`.
    pub timeman_status: String,
    /// Mobile number.
    pub personal_mobile: Option<String>,
}

impl SeedUser {
    /// An active user with an optional extension.
    pub fn new(id: u64, name: &str, inner: Option<&str>) -> Self {
        Self {
            id,
            name: name.to_owned(),
            last_name: String::new(),
            inner: inner.map(str::to_owned),
            active: true,
            timeman_status: "OPENED".to_owned(),
            personal_mobile: None,
        }
    }

    /// The same user, fired.
    pub fn inactive(mut self) -> Self {
        self.active = false;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "ID": self.id.to_string(),
            "ACTIVE": self.active,
            "NAME": self.name,
            "LAST_NAME": self.last_name,
            "EMAIL": format!("user{}@example.test", self.id),
            "UF_PHONE_INNER": self.inner,
            "PERSONAL_MOBILE": self.personal_mobile,
            "WORK_PHONE": null,
            "USER_TYPE": "employee",
        })
    }
}

/// CRM entity types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// `LEAD`.
    Lead,
    /// `CONTACT`.
    Contact,
    /// `COMPANY`.
    Company,
    /// `DEAL`.
    Deal,
}

impl EntityKind {
    /// The wire spelling (`CONTACT` ...).
    pub fn wire(self) -> &'static str {
        match self {
            Self::Lead => "LEAD",
            Self::Contact => "CONTACT",
            Self::Company => "COMPANY",
            Self::Deal => "DEAL",
        }
    }

    /// Parses a wire spelling (also with a `CRM_` prefix).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().trim_start_matches("CRM_") {
            "LEAD" => Some(Self::Lead),
            "CONTACT" => Some(Self::Contact),
            "COMPANY" => Some(Self::Company),
            "DEAL" => Some(Self::Deal),
            _ => None,
        }
    }

    // searchCrmEntities priority [impl]: contacts, then leads, then companies.
    fn priority(self) -> u8 {
        match self {
            Self::Contact => 0,
            Self::Lead => 1,
            Self::Company => 2,
            Self::Deal => 3,
        }
    }
}

/// One CRM entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmEntity {
    /// Its type.
    pub kind: EntityKind,
    /// Its id (unique per type).
    pub id: u64,
    /// Name (contact) or title (lead, company, deal).
    pub title: String,
    /// Phone numbers as entered.
    pub phones: Vec<String>,
    /// Responsible user.
    pub assigned_by: u64,
    /// `SOURCE_ID` of a lead.
    pub source: Option<String>,
    /// Deal's contact.
    pub contact_id: Option<u64>,
    /// Deal's company.
    pub company_id: Option<u64>,
}

impl CrmEntity {
    /// An entity of `kind` with one phone.
    pub fn new(
        kind: EntityKind,
        id: u64,
        title: &str,
        phone: Option<&str>,
        assigned_by: u64,
    ) -> Self {
        let phones = phone.map(|p| vec![p.to_owned()]).unwrap_or_default();
        Self {
            kind,
            id,
            title: title.to_owned(),
            phones,
            assigned_by,
            source: None,
            contact_id: None,
            company_id: None,
        }
    }

    /// A contact with one phone.
    pub fn contact(id: u64, name: &str, phone: &str, assigned_by: u64) -> Self {
        Self::new(EntityKind::Contact, id, name, Some(phone), assigned_by)
    }

    /// A company with one phone.
    pub fn company(id: u64, title: &str, phone: &str, assigned_by: u64) -> Self {
        Self::new(EntityKind::Company, id, title, Some(phone), assigned_by)
    }

    /// A lead with one phone.
    pub fn lead(id: u64, title: &str, phone: &str, assigned_by: u64) -> Self {
        Self::new(EntityKind::Lead, id, title, Some(phone), assigned_by)
    }

    /// A deal (no phones of its own), optionally bound to a contact.
    pub fn deal(id: u64, title: &str, contact_id: Option<u64>, assigned_by: u64) -> Self {
        Self {
            contact_id,
            ..Self::new(EntityKind::Deal, id, title, None, assigned_by)
        }
    }

    fn to_json(&self) -> Value {
        let phones: Vec<Value> = self
            .phones
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"ID": (i + 1).to_string(), "VALUE_TYPE": "WORK", "VALUE": p, "TYPE_ID": "PHONE"}))
            .collect();
        let mut entity = json!({
            "ID": self.id.to_string(),
            "ASSIGNED_BY_ID": self.assigned_by.to_string(),
            "OPENED": "Y",
        });
        let fields = match self.kind {
            EntityKind::Contact => {
                json!({"NAME": self.title, "LAST_NAME": "", "HAS_PHONE": yn(!phones.is_empty()), "PHONE": phones})
            }
            EntityKind::Company => {
                json!({"TITLE": self.title, "HAS_PHONE": yn(!phones.is_empty()), "PHONE": phones})
            }
            EntityKind::Lead => {
                json!({"TITLE": self.title, "STATUS_ID": "NEW", "SOURCE_ID": self.source,
                                       "HAS_PHONE": yn(!phones.is_empty()), "PHONE": phones})
            }
            EntityKind::Deal => json!({"TITLE": self.title, "STAGE_ID": "NEW",
                                       "CONTACT_ID": self.contact_id.map(|v| v.to_string()),
                                       "COMPANY_ID": self.company_id.map(|v| v.to_string())}),
        };
        if let (Some(map), Value::Object(extra)) = (entity.as_object_mut(), fields) {
            map.extend(extra);
        }
        entity
    }
}

fn yn(b: bool) -> &'static str {
    if b { "Y" } else { "N" }
}

/// Bitrix24's stored form of a phone number: digits and `+ # * , ;` only (§6.6).
pub fn normalize_phone(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_digit() || "+#*,;".contains(*c))
        .collect()
}

// CRM matching compares digits only, so `+4930…` and `4930…` match but `030…` does not.
fn phone_key(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_digit).collect()
}

/// Users and CRM entities.
#[derive(Debug, Default)]
pub struct Crm {
    /// Users by insertion order.
    pub users: Vec<SeedUser>,
    /// Entities by insertion order.
    pub entities: Vec<CrmEntity>,
}

impl Crm {
    /// Adds or replaces a user.
    pub fn upsert_user(&mut self, user: SeedUser) {
        self.users.retain(|u| u.id != user.id);
        self.users.push(user);
        self.users.sort_by_key(|u| u.id);
    }

    /// Adds or replaces an entity.
    pub fn upsert_entity(&mut self, entity: CrmEntity) {
        self.entities
            .retain(|e| !(e.kind == entity.kind && e.id == entity.id));
        self.entities.push(entity);
    }

    /// An active user by id.
    pub fn active_user(&self, id: u64) -> Option<&SeedUser> {
        self.users.iter().find(|u| u.id == id && u.active)
    }

    /// The active user with this exact extension.
    pub fn user_by_inner(&self, inner: &str) -> Option<&SeedUser> {
        self.users
            .iter()
            .find(|u| u.active && u.inner.as_deref() == Some(inner))
    }

    /// Whether a client number is in fact some active user's extension (internal call).
    pub fn is_internal(&self, phone: &str) -> bool {
        self.users.iter().any(|u| {
            u.active
                && u.inner
                    .as_deref()
                    .is_some_and(|i| !i.is_empty() && i == phone)
        })
    }

    /// An entity by type and id.
    pub fn entity(&self, kind: EntityKind, id: u64) -> Option<&CrmEntity> {
        self.entities.iter().find(|e| e.kind == kind && e.id == id)
    }

    /// Entities carrying this phone, contacts first, then leads, then companies.
    pub fn find_by_phone(&self, phone: &str) -> Vec<&CrmEntity> {
        let key = phone_key(phone);
        if key.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<&CrmEntity> = self
            .entities
            .iter()
            .filter(|e| e.phones.iter().any(|p| phone_key(p) == key))
            .collect();
        found.sort_by_key(|e| (e.kind.priority(), e.id));
        found
    }

    /// Creates a lead for an unknown number; returns its id.
    pub fn create_lead(&mut self, phone: &str, assigned_by: u64, source: Option<String>) -> u64 {
        let id = self
            .entities
            .iter()
            .filter(|e| e.kind == EntityKind::Lead)
            .map(|e| e.id)
            .max()
            .unwrap_or(900)
            + 1;
        let mut lead = CrmEntity::lead(id, &format!("Call from {phone}"), phone, assigned_by);
        lead.source = source;
        self.entities.push(lead);
        id
    }

    /// Makes `user` responsible for an entity (finish re-assigns auto-created entities).
    pub fn reassign(&mut self, kind: EntityKind, id: u64, user: u64) {
        if let Some(e) = self
            .entities
            .iter_mut()
            .find(|e| e.kind == kind && e.id == id)
        {
            e.assigned_by = user;
        }
    }

    /// `telephony.externalCall.searchCrmEntities` result items.
    pub fn search_result(&self, phone: &str) -> Value {
        let items: Vec<Value> = self
            .find_by_phone(phone)
            .into_iter()
            .filter(|e| e.kind != EntityKind::Deal)
            .map(|e| {
                let user = self.users.iter().find(|u| u.id == e.assigned_by);
                json!({
                    "CRM_ENTITY_TYPE": e.kind.wire(),
                    "CRM_ENTITY_ID": e.id,
                    "ASSIGNED_BY_ID": e.assigned_by,
                    "NAME": e.title,
                    "ASSIGNED_BY": {
                        "ID": e.assigned_by.to_string(),
                        "TIMEMAN_STATUS": user.map_or("NOT_INSTALLED", |u| u.timeman_status.as_str()),
                        "USER_PHONE_INNER": user.and_then(|u| u.inner.clone()),
                        "WORK_PHONE": null,
                        "PERSONAL_PHONE": null,
                        "PERSONAL_MOBILE": user.and_then(|u| u.personal_mobile.clone()),
                    }
                })
            })
            .collect();
        Value::Array(items)
    }

    /// `crm.{lead,contact,company,deal}.get`.
    pub fn entity_get(&self, kind: EntityKind, p: &Params) -> Result<MethodOk, ApiError> {
        let id = p.int("id").or_else(|| p.int("ID")).filter(|id| *id > 0);
        let Some(id) = id else {
            return Err(ApiError::core(
                super::options::ErrorStyle::Empty,
                "ID is not defined or invalid",
            ));
        };
        match self.entity(kind, id as u64) {
            Some(e) => Ok(MethodOk::of(e.to_json())),
            None => Err(ApiError::core(
                super::options::ErrorStyle::Empty,
                "Not found",
            )),
        }
    }

    /// `user.get` with FILTER (operator prefixes `=`, `!`, `%`, `@`), order and paging by 50.
    pub fn user_get(&self, p: &Params) -> MethodOk {
        let filter = user_filter(p);
        let descending = p
            .raw_any(&["order", "ORDER"])
            .and_then(scalar_string)
            .is_some_and(|o| o.eq_ignore_ascii_case("DESC"));
        let mut matching: Vec<Value> = self
            .users
            .iter()
            .map(SeedUser::to_json)
            .filter(|u| filter.iter().all(|(k, v)| matches_filter(u, k, v)))
            .collect();
        if descending {
            matching.reverse();
        }
        let start = p
            .raw_any(&["start", "START"])
            .map(super::params::intval)
            .unwrap_or(0);
        let count_total = start >= 0;
        let start = start.max(0) as usize;
        let total = matching.len();
        let page: Vec<Value> = matching.into_iter().skip(start).take(PAGE).collect();
        let next = (start + PAGE < total).then_some((start + PAGE) as u64);
        MethodOk {
            result: Value::Array(page),
            total: count_total.then_some(total as u64),
            next,
        }
    }
}

const PAGE: usize = 50;
const USER_GET_CONTROL_KEYS: [&str; 10] = [
    "sort",
    "order",
    "start",
    "select",
    "admin_mode",
    "filter",
    "SORT",
    "ORDER",
    "SELECT",
    "ADMIN_MODE",
];

fn user_filter(p: &Params) -> Vec<(String, Value)> {
    match p.raw_any(&["FILTER", "filter"]) {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        // user.get also takes filter fields at the top level when no FILTER is given.
        _ => {
            p.0.iter()
                .filter(|(k, _)| !USER_GET_CONTROL_KEYS.contains(&k.as_str()) && *k != "START")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    }
}

fn matches_filter(user: &Value, key: &str, wanted: &Value) -> bool {
    let field = key.trim_start_matches(['!', '=', '%', '@', '>', '<']);
    let op = &key[..key.len() - field.len()];
    let field = field.to_ascii_uppercase();
    let actual = comparable(&field, user.get(&field).unwrap_or(&Value::Null));
    let wanted_list: Vec<String> = match wanted {
        Value::Array(items) => items.iter().map(|v| comparable(&field, v)).collect(),
        other => vec![comparable(&field, other)],
    };
    let hit = match op.trim_start_matches('!') {
        "%" => wanted_list
            .iter()
            .any(|w| actual.to_lowercase().contains(&w.to_lowercase())),
        ">" => wanted_list
            .iter()
            .any(|w| actual.parse::<f64>().ok() > w.parse::<f64>().ok()),
        "<" => wanted_list
            .iter()
            .any(|w| actual.parse::<f64>().ok() < w.parse::<f64>().ok()),
        _ => wanted_list.contains(&actual),
    };
    if op.starts_with('!') { !hit } else { hit }
}

fn comparable(field: &str, value: &Value) -> String {
    if field == "ACTIVE" {
        let active = match value {
            Value::String(s) => matches!(s.to_ascii_uppercase().as_str(), "Y" | "TRUE" | "1"),
            other => truthy(other),
        };
        return yn(active).to_owned();
    }
    scalar_string(value).unwrap_or_default()
}
