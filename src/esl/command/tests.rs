//! Unit tests of `esl::command`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const A: &str = "449ad704-957e-486b-b4a3-b5bb712ae0d0";
const B: &str = "0582d2f0-bc9f-4925-bb76-8b865ee40888";

fn user(ext: &str) -> Endpoint {
    Endpoint::User {
        ext: Extension::parse(ext).unwrap(),
        domain: Domain::parse("127.0.0.1").unwrap(),
    }
}

#[test]
fn dial_strings_render_per_leg_variables_and_separators() {
    let a = DialLeg::new(LegId::new(A), user("1001"))
        .unwrap()
        .leg_timeout(7);
    let b = DialLeg::new(LegId::new(B), user("1002")).unwrap();
    assert_eq!(
        DialString::simultaneous(vec![a.clone(), b.clone()])
            .unwrap()
            .to_string(),
        format!(
            "[origination_uuid={A},leg_timeout=7]user/1001@127.0.0.1,[origination_uuid={B}]user/1002@127.0.0.1"
        )
    );
    assert_eq!(
        DialString::sequential(vec![a, b]).unwrap().to_string(),
        format!(
            "[origination_uuid={A},leg_timeout=7]user/1001@127.0.0.1|[origination_uuid={B}]user/1002@127.0.0.1"
        )
    );
    assert_eq!(DialString::sequential(vec![]), Err(CommandError::NoLegs));
}

#[test]
fn external_numbers_go_through_gateway_or_profile() {
    let number = PhoneNumber::parse("+7 999 000-11-22").unwrap();
    let gw = Endpoint::Gateway {
        gateway: Name::parse("provider").unwrap(),
        number: number.clone(),
    };
    assert_eq!(gw.to_string(), "sofia/gateway/provider/+79990001122");
    let profile = Endpoint::Profile {
        profile: Name::parse("internal").unwrap(),
        number,
        host: Domain::parse("127.0.0.1:5074").unwrap(),
    };
    assert_eq!(
        profile.to_string(),
        "sofia/internal/+79990001122@127.0.0.1:5074"
    );
}

#[test]
fn injection_attempts_are_refused_at_construction() {
    for bad in [
        "1001,user/1002",
        "1001|x",
        "{a=b}",
        "10 01",
        "1001'",
        "",
        "a@b",
        "x\n",
    ] {
        assert!(Extension::parse(bad).is_err(), "{bad:?}");
    }
    assert!(Domain::parse("h/../x").is_err());
    assert!(DialLeg::new(LegId::new("not-a-uuid,x"), user("1")).is_err());
    assert!(VarSet::new().with("a b", "1").is_err());
    assert!(VarSet::new().with("a", "x|y").is_err());
    assert!(MediaPath::parse("/tmp/a b.wav").is_err());
}

#[test]
fn var_sets_render_as_one_multiset_with_a_safe_delimiter() {
    let vars = VarSet::new()
        .with("continue_on_fail", "true")
        .unwrap()
        .with("transfer_ringback", "%(2000,4000,440,480)")
        .unwrap();
    assert_eq!(
        vars.multiset_arg(),
        "^^|continue_on_fail=true|transfer_ringback=%(2000,4000,440,480)"
    );
}

#[test]
fn originate_bridges_the_answered_agent_to_the_customer() {
    let agent = DialLeg::new(LegId::new(A), user("1001")).unwrap();
    let customer = DialLeg::new(
        LegId::new(B),
        Endpoint::Gateway {
            gateway: Name::parse("gw").unwrap(),
            number: PhoneNumber::parse("5550100").unwrap(),
        },
    )
    .unwrap();
    let req = OriginateRequest {
        leg: agent,
        then: OriginateThen::Bridge(DialString::single(customer)),
        timeout_secs: 30,
    };
    assert_eq!(
        req.api_args(),
        format!(
            "{{ignore_early_media=true}}[origination_uuid={A}]user/1001@127.0.0.1 \
             &bridge([origination_uuid={B}]sofia/gateway/gw/5550100) XML default undef undef 30"
        )
    );
}

#[test]
fn ring_times_become_whole_seconds_rounded_up_and_never_zero() {
    use std::time::Duration;
    assert_eq!(whole_secs(Duration::from_secs(30)), 30);
    assert_eq!(whole_secs(Duration::from_millis(2500)), 3);
    assert_eq!(whole_secs(Duration::ZERO), 1);
}
