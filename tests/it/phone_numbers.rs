//! One normalisation (`[numbers] default_country`) for the numbers fsb24 sends to Bitrix24: the
//! same customer written four ways is bound to the same CRM contact.

use std::time::Duration;

use crate::support::app::World;
use crate::support::bitrix_peer::{CrmEntity, EntityKind};
use crate::support::esl_peer::caller::CallSpec;

const ROUTE: &str = r#"
[[routes]]
destination = "9001"
target = { agent = "1001" }
"#;

/// Offers one call per caller number and returns the (phone, CRM binding) Bitrix24 registered
/// for each, once every call is finished.
async fn registered(country: &str, contact_phone: &str, callers: &[&str]) -> Vec<(String, u64)> {
    let body = format!("{ROUTE}\n[numbers]\ndefault_country = \"{country}\"\n");
    let w = World::start(&[("1001", 11)], &body).await;
    w.bx.add_entity(CrmEntity::contact(311, "Customer", contact_phone, 11));
    w.fs.phone("1001").rings_forever();
    let mut externals = Vec::new();
    for caller in callers {
        let spec = CallSpec {
            caller: (*caller).into(),
            destination: "9001".into(),
            hang_up_after: Some(Duration::from_millis(300)),
            ..CallSpec::default()
        };
        let call = w.fs.offer_call(w.app.esl_addr, spec).await.unwrap();
        externals.push(format!("fs-{}", call.uuid));
    }
    let calls =
        w.bx.wait_for_value("every call registered and finished", |s| {
            externals
                .iter()
                .map(|ext| {
                    let call = s
                        .calls
                        .iter()
                        .find(|c| c.external_call_id.as_deref() == Some(ext.as_str()))?;
                    call.finished.as_ref()?;
                    Some(call.clone())
                })
                .collect::<Option<Vec<_>>>()
        })
        .await;
    w.app.shutdown().await;
    calls
        .into_iter()
        .map(|c| {
            let contact = match c.crm {
                Some((EntityKind::Contact, id)) => id,
                other => panic!("{} bound to {other:?}", c.phone),
            };
            (c.phone, contact)
        })
        .collect()
}

#[tokio::test]
async fn german_numbers_in_three_formats_bind_to_the_same_contact() {
    let got = registered(
        "DE",
        "+49 30 1234567",
        &["+49301234567", "0049 30 1234567", "030 1234567"],
    )
    .await;
    assert_eq!(got, vec![("+49301234567".to_owned(), 311); 3]);
}

#[tokio::test]
async fn russian_numbers_with_trunk_prefix_eight_bind_to_the_same_contact() {
    let got = registered(
        "RU",
        "+7 495 123-45-67",
        &["8 495 123-45-67", "+7 495 123 45 67"],
    )
    .await;
    assert_eq!(got, vec![("+74951234567".to_owned(), 311); 2]);
}
