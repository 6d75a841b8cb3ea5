//! Dial settings from the config and the rendered `originate` of a click-to-call.

use super::*;

const BASE: &str = r#"
[esl.inbound]
password = "pw"
[esl.dial]
domain = "127.0.0.1"
[bitrix.auth.webhook]
url = "https://example.bitrix24.de/rest/1/key/"
[bitrix.defaults]
add_to_chat = false
[[agents]]
extension = "1001"
bitrix_user = 17
[[agents]]
extension = "1002"
bitrix_user = 17
[[agents]]
extension = "1003"
bitrix_user = 21
"#;

fn config(click: &str) -> Config {
    Config::from_toml_str(&format!("{BASE}\n[click_to_call]\n{click}")).unwrap()
}

fn legs() -> Legs {
    Legs {
        agent: crate::ids::LegId::new("c6a2adba-c0fb-44d0-a600-4cf2716d72b6"),
        customer: crate::ids::LegId::new("f78cf26b-659c-4b7e-b506-d394d0799be4"),
    }
}

/// The `originate` arguments when agent 1001 clicks to call `phone`.
fn args_for_1001(dial: &ClickDial, phone: &str) -> String {
    let ext = Extension::parse("1001").unwrap();
    let phone = PhoneNumber::parse(phone).unwrap();
    originate_request(dial, &ext, &phone, &legs())
        .unwrap()
        .api_args()
}

#[test]
fn originate_rings_the_agent_then_bridges_the_customer_with_both_leg_ids() {
    let c = config(
        "profile = \"internal\"\nhost = \"127.0.0.1:5074\"\ncaller_id_number = \"+4930555000\"\noriginate_timeout = \"20s\"\ncustomer_ring_timeout = \"45s\"",
    );
    let dial = ClickDial::from_config(&c).unwrap();
    let ext = Extension::parse("1001").unwrap();
    let phone = PhoneNumber::parse("5550100").unwrap();
    let request = originate_request(&dial, &ext, &phone, &legs()).unwrap();
    assert_eq!(
        request.api_args(),
        "{ignore_early_media=true}[origination_uuid=c6a2adba-c0fb-44d0-a600-4cf2716d72b6,\
         leg_timeout=20,origination_caller_id_number=5550100]user/1001@127.0.0.1 \
         &bridge([origination_uuid=f78cf26b-659c-4b7e-b506-d394d0799be4,leg_timeout=45,\
         origination_caller_id_number=+4930555000]sofia/internal/5550100@127.0.0.1:5074) \
         XML default undef undef 20"
    );
}

#[test]
fn a_gateway_route_dials_the_number_through_the_gateway() {
    let dial = ClickDial::from_config(&config("gateway = \"carrier\"")).unwrap();
    assert_eq!(
        dial.customer,
        CustomerRoute::Gateway(Name::parse("carrier").unwrap())
    );
    assert!(!dial.add_to_chat, "ADD_TO_CHAT follows bitrix.defaults");
    assert_eq!(dial.limits.max_duration, Duration::from_secs(4 * 3600));
    let args = args_for_1001(&dial, "+4930123456789");
    assert!(
        args.contains("]sofia/gateway/carrier/+4930123456789)"),
        "{args}"
    );
}

#[test]
fn without_a_customer_route_click_to_call_cannot_start() {
    let err = ClickDial::from_config(&config("")).unwrap_err();
    assert!(matches!(err, ClickError::Missing { .. }), "{err}");
}

#[test]
fn each_bitrix_user_rings_their_first_agent() {
    let map = agents_by_user(&config("").agents);
    assert_eq!(map.len(), 2);
    assert_eq!(map[&BitrixUserId(17)].as_str(), "1001");
    assert_eq!(map[&BitrixUserId(21)].as_str(), "1003");
}

#[test]
fn the_employee_is_dialled_through_the_configured_template_like_queue_calls() {
    let text = format!("{BASE}\n[click_to_call]\ngateway = \"carrier\"\n").replace(
        "[esl.dial]\ndomain = \"127.0.0.1\"",
        "[esl.dial]\ndomain = \"pbx.local\"\ntemplate = \"sofia/internal/{extension}%{domain}\"",
    );
    let dial = ClickDial::from_config(&Config::from_toml_str(&text).unwrap()).unwrap();
    let args = args_for_1001(&dial, "+4930123456789");
    assert!(
        args.contains("]sofia/internal/1001%pbx.local &bridge("),
        "{args}"
    );
}
