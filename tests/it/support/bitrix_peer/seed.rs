//! The portal most method and client tests start from: a few employees and one CRM entity of
//! each kind, so a test names only what it adds.

use super::{BitrixPeer, CrmEntity, PeerOptions, SeedUser};

/// The contact's phone (as its card spells it: `+49 30 123456789`).
pub const CONTACT_PHONE: &str = "+4930123456789";
/// The lead's phone.
pub const LEAD_PHONE: &str = "+4989555666";
/// The company's phone.
pub const COMPANY_PHONE: &str = "+4940111222";

impl BitrixPeer {
    /// A peer with users 17 (ext 205), 21 (206), 22 (207), fired 30 (299), contact 311 (user
    /// 17's), lead 700 (21's), company 501 (22's) and deal 800 (on contact 311).
    pub async fn seeded(opts: PeerOptions) -> BitrixPeer {
        let peer = BitrixPeer::start(opts).await;
        peer.add_user(SeedUser::new(17, "Erika", Some("205")));
        peer.add_user(SeedUser::new(21, "Max", Some("206")));
        peer.add_user(SeedUser::new(22, "Lena", Some("207")));
        peer.add_user(SeedUser::new(30, "Fired", Some("299")).inactive());
        peer.add_entity(CrmEntity::contact(
            311,
            "Erika Mustermann",
            "+49 30 123456789",
            17,
        ));
        peer.add_entity(CrmEntity::lead(700, "Lead from web", LEAD_PHONE, 21));
        peer.add_entity(CrmEntity::company(501, "ACME GmbH", COMPANY_PHONE, 22));
        peer.add_entity(CrmEntity::deal(800, "Big deal", Some(311), 17));
        peer
    }
}
