//! What `plan` decides for an outgoing call from the config: hand back, refuse or place, and
//! the dial string and register it places with.

use std::collections::HashMap;

use super::*;
use crate::ids::{BitrixUserId, ChannelId};

fn config(outgoing: &str) -> Config {
    let text = format!(
        r#"
[esl.inbound]
password = "pw"
[esl.dial]
template = "user/{{extension}}@{{domain}}"
domain = "pbx.local"
[bitrix.auth.webhook]
url = "https://example.bitrix24.de/rest/1/key/"
[bitrix.defaults]
line_number = "74951234567"
[[agents]]
extension = "1001"
bitrix_user = 17
[[agents]]
extension = "1002"
bitrix_user = 18
[numbers]
default_country = "DE"
[outgoing]
{outgoing}
"#
    );
    Config::from_toml_str(&text).unwrap()
}

fn dialled(from: &str, to: &str) -> ChannelInfo {
    ChannelInfo {
        channel: ChannelId::new("a-leg"),
        caller_id_number: Some(from.to_owned()),
        caller_id_name: None,
        destination_number: Some(to.to_owned()),
        created_at: None,
        answered: false,
        socket_path: None,
        variables: HashMap::from([(KIND_VAR.to_owned(), KIND_OUTGOING.to_owned())]),
    }
}

fn leg() -> LegId {
    LegId::new("3f2b6c1e-9a4d-4e7b-8c21-5d6e7f809a1b")
}

const ON: &str = "enabled = true\ngateway = \"carrier\"";

#[test]
fn calls_fsb24_does_not_report_are_handed_back_to_the_dialplan() {
    let off = config("gateway = \"carrier\"");
    let on = config(ON);
    for (config, info) in [
        (&off, dialled("1001", "030 1234567")),
        (&on, dialled("5555", "030 1234567")),
        (&on, dialled("1001", "1002")),
    ] {
        assert!(
            matches!(plan(config, &info, leg()), Plan::HandBack(_)),
            "{info:?}"
        );
    }
}

#[test]
fn an_implausible_number_is_refused_and_reported_484_without_a_card() {
    let Plan::Refuse(Some((register, finish))) =
        plan(&config(ON), &dialled("1001", "+4930"), leg())
    else {
        panic!("refused with a report");
    };
    assert_eq!((register.user, register.show), (BitrixUserId(17), false));
    assert_eq!(
        (finish.status_code.as_str(), finish.duration_secs),
        ("484", 0)
    );
}

#[test]
fn a_plausible_number_is_placed_through_the_gateway_for_the_employee() {
    let config = config(&format!(
        "{ON}\nring_timeout = \"25s\"\nline_number = \"out-1\""
    ));
    let planned = plan(&config, &dialled("1001", "030 1234567"), leg());
    let Plan::Place(placement) = planned.clone() else {
        panic!("placed: {planned:?}");
    };
    let reg = &placement.register;
    assert_eq!(reg.call_type, CallType::Outgoing);
    assert_eq!(
        (reg.user, reg.phone.as_str()),
        (BitrixUserId(17), "+49301234567")
    );
    assert_eq!(reg.line_number.as_deref(), Some("out-1"));
    assert!(reg.show);
    let dial = placement.dial.to_string();
    assert!(
        dial.contains("sofia/gateway/carrier/+49301234567"),
        "{dial}"
    );
    assert!(
        dial.contains("origination_uuid=3f2b6c1e-9a4d-4e7b-8c21-5d6e7f809a1b")
            && dial.contains("leg_timeout=25"),
        "{dial}"
    );
    assert_eq!(placement.settings.direction, Direction::Outbound);
}

#[test]
fn reported_internal_calls_dial_the_colleague_with_the_agent_template() {
    let config = config(&format!("{ON}\ninternal_calls = true"));
    let planned = plan(&config, &dialled("1001", "1002"), leg());
    let Plan::Place(placement) = planned.clone() else {
        panic!("placed: {planned:?}");
    };
    assert_eq!(placement.register.phone.as_str(), "1002");
    let dial = placement.dial.to_string();
    assert!(dial.contains("user/1002@pbx.local"), "{dial}");
}
