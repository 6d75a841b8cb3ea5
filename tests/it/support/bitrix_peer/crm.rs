//! The portal's small CRM and user directory, seeded by tests: users with extensions,
//! contacts/companies/leads/deals with phones and a responsible. Serves phone lookups
//! (§6.5, §6.6) and `crm.*.get` (§7.2); users live in `users`.

use serde_json::{Value, json};

use super::envelope::{ApiError, MethodOk};
use super::params::Params;
pub use super::users::SeedUser;

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

pub(super) fn yn(b: bool) -> &'static str {
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
}
