//! Pure click-to-call machine scenarios, shaped after originate_click_to_call.txt.

use std::time::Duration;

use tokio::time::Instant;

use super::*;

const USER: BitrixUserId = BitrixUserId(17);
const MAX: Duration = Duration::from_secs(3600);
const SETTLE: Duration = Duration::from_secs(5);

struct Sim {
    call: ClickCall,
    t0: Instant,
    legs: Legs,
    finishes: Vec<FinishCall>,
}

impl Sim {
    fn new() -> Self {
        let t0 = Instant::now();
        let legs = Legs {
            agent: LegId::random(),
            customer: LegId::random(),
        };
        let limits = Limits {
            max_duration: MAX,
            settle: SETTLE,
        };
        Self {
            call: ClickCall::new(t0, USER, legs.clone(), limits, false),
            t0,
            legs,
            finishes: Vec::new(),
        }
    }

    fn at(&mut self, ms: u64, input: Input) -> &mut Self {
        let now = self.t0 + Duration::from_millis(ms);
        self.finishes.extend(self.call.handle(now, input));
        self
    }

    fn agent(&self) -> String {
        self.legs.agent.as_str().to_owned()
    }

    fn customer(&self) -> String {
        self.legs.customer.as_str().to_owned()
    }

    fn ended(leg: String, cause: &str, sip: Option<u16>) -> Input {
        Input::LegEnded {
            leg,
            cause: Cause::parse(cause),
            sip_term_status: sip,
        }
    }

    fn only_finish(&self) -> &FinishCall {
        assert_eq!(
            self.finishes.len(),
            1,
            "exactly one finish: {:?}",
            self.finishes
        );
        &self.finishes[0]
    }
}

#[test]
fn both_answer_and_talk_finishes_200_with_the_customers_talk_time() {
    let mut s = Sim::new();
    let (x, y) = (s.agent(), s.customer());
    s.at(20, Input::LegCreated { leg: x.clone() })
        .at(1030, Input::LegAnswered { leg: x.clone() })
        .at(1050, Input::OriginateAnswered)
        .at(1051, Input::LegCreated { leg: y.clone() })
        .at(3060, Input::LegAnswered { leg: y.clone() })
        .at(6070, Sim::ended(y, "NORMAL_CLEARING", Some(200)))
        .at(6090, Sim::ended(x, "NORMAL_CLEARING", None));
    let f = s.only_finish();
    assert_eq!(f.user, USER);
    assert_eq!(f.status_code, "200");
    assert_eq!(f.duration_secs, 3, "customer talk time, not the agent's");
    assert!(s.call.is_finished() && s.call.wake_at().is_none());
}

#[test]
fn agent_busy_finishes_cancelled_at_once() {
    let mut s = Sim::new();
    let x = s.agent();
    s.at(5, Input::LegCreated { leg: x.clone() })
        .at(24, Sim::ended(x, "USER_BUSY", Some(486)))
        .at(
            25,
            Input::OriginateFailed {
                cause: Cause::parse("USER_BUSY"),
            },
        );
    let f = s.only_finish();
    assert_eq!(f.status_code, "603-S");
    assert_eq!(f.duration_secs, 0);
    assert!(f.failed_reason.as_deref().unwrap().contains("USER_BUSY"));
}

#[test]
fn agent_busy_job_first_also_finishes_once() {
    let mut s = Sim::new();
    let x = s.agent();
    s.at(
        25,
        Input::OriginateFailed {
            cause: Cause::parse("USER_BUSY"),
        },
    )
    .at(26, Sim::ended(x, "USER_BUSY", Some(486)));
    assert_eq!(s.only_finish().status_code, "603-S");
}

#[test]
fn customer_busy_finishes_486_from_the_customer_leg() {
    let mut s = Sim::new();
    let (x, y) = (s.agent(), s.customer());
    s.at(1030, Input::LegAnswered { leg: x.clone() })
        .at(1050, Input::OriginateAnswered)
        .at(1051, Input::LegCreated { leg: y.clone() })
        .at(1052, Sim::ended(y, "USER_BUSY", Some(486)))
        .at(1053, Sim::ended(x, "USER_BUSY", None));
    let f = s.only_finish();
    assert_eq!(f.status_code, "486");
    assert_eq!(f.duration_secs, 0);
}

#[test]
fn customer_busy_seen_only_on_the_agent_leg_finishes_486() {
    let mut s = Sim::new();
    let x = s.agent();
    s.at(1050, Input::OriginateAnswered)
        .at(1053, Sim::ended(x, "USER_BUSY", None));
    assert_eq!(s.only_finish().status_code, "486");
}

#[test]
fn agent_no_answer_finishes_cancelled() {
    let mut s = Sim::new();
    let x = s.agent();
    s.at(5, Input::LegCreated { leg: x.clone() })
        .at(30_000, Sim::ended(x, "NO_ANSWER", None))
        .at(
            30_001,
            Input::OriginateFailed {
                cause: Cause::parse("NO_ANSWER"),
            },
        );
    let f = s.only_finish();
    assert_eq!(f.status_code, "603-S");
    assert!(f.failed_reason.as_deref().unwrap().contains("NO_ANSWER"));
}

#[test]
fn customer_no_answer_finishes_480() {
    let mut s = Sim::new();
    let (x, y) = (s.agent(), s.customer());
    s.at(1050, Input::OriginateAnswered)
        .at(1051, Input::LegCreated { leg: y.clone() })
        .at(61_051, Sim::ended(y, "NO_ANSWER", None))
        .at(61_052, Sim::ended(x, "NO_ANSWER", None));
    assert_eq!(s.only_finish().status_code, "480");
}

#[test]
fn agent_hanging_up_while_the_customer_rings_is_cancelled() {
    let mut s = Sim::new();
    let (x, y) = (s.agent(), s.customer());
    s.at(1050, Input::OriginateAnswered)
        .at(1051, Input::LegCreated { leg: y.clone() })
        .at(4000, Sim::ended(x, "NORMAL_CLEARING", None))
        .at(4001, Sim::ended(y, "ORIGINATOR_CANCEL", Some(487)));
    assert_eq!(s.only_finish().status_code, "603-S");
}

#[test]
fn agent_hanging_up_mid_talk_counts_talk_until_the_customer_leg_ends() {
    let mut s = Sim::new();
    let (x, y) = (s.agent(), s.customer());
    s.at(1050, Input::OriginateAnswered)
        .at(1051, Input::LegCreated { leg: y.clone() })
        .at(2000, Input::LegAnswered { leg: y.clone() })
        .at(12_000, Sim::ended(x, "NORMAL_CLEARING", None));
    assert!(s.finishes.is_empty(), "waits for the customer leg");
    s.at(12_020, Sim::ended(y, "NORMAL_CLEARING", None));
    let f = s.only_finish();
    assert_eq!((f.status_code.as_str(), f.duration_secs), ("200", 10));
}

#[test]
fn a_lost_customer_end_finishes_after_the_settle_time() {
    let mut s = Sim::new();
    let (x, y) = (s.agent(), s.customer());
    s.at(1050, Input::OriginateAnswered)
        .at(2000, Input::LegAnswered { leg: y })
        .at(9000, Sim::ended(x, "NORMAL_CLEARING", None));
    let wake = s.call.wake_at().unwrap();
    assert_eq!(wake, s.t0 + Duration::from_millis(9000) + SETTLE);
    s.at(13_999, Input::Timer);
    assert!(s.finishes.is_empty(), "an early timer does nothing");
    s.at(14_000, Input::Timer);
    let f = s.only_finish();
    assert_eq!((f.status_code.as_str(), f.duration_secs), ("200", 7));
}

#[test]
fn lost_events_finish_at_the_deadline() {
    let mut s = Sim::new();
    assert_eq!(s.call.wake_at(), Some(s.t0 + MAX));
    s.at(1000, Input::Timer);
    assert!(s.finishes.is_empty());
    s.at(3_600_000, Input::Timer);
    assert_eq!(s.only_finish().status_code, "603-S");
    s.at(3_600_001, Input::Timer)
        .at(3_600_002, Input::OriginateAnswered);
    assert_eq!(s.finishes.len(), 1, "nothing after the finish");
}

#[test]
fn lost_events_after_the_agent_answered_finish_480_at_the_deadline() {
    let mut s = Sim::new();
    s.at(1050, Input::OriginateAnswered)
        .at(3_600_000, Input::Timer);
    assert_eq!(s.only_finish().status_code, "480");
}

#[test]
fn events_of_other_channels_change_nothing() {
    let mut s = Sim::new();
    s.at(
        10,
        Input::LegAnswered {
            leg: "other".into(),
        },
    )
    .at(20, Sim::ended("other".into(), "NORMAL_CLEARING", None));
    assert!(s.finishes.is_empty());
    assert!(!s.call.is_finished());
}

#[test]
fn originate_never_sent_finishes_cancelled() {
    let mut s = Sim::new();
    s.at(
        1,
        Input::OriginateNotSent {
            reason: "not connected".into(),
        },
    );
    assert_eq!(s.only_finish().status_code, "603-S");
}

#[test]
fn unknown_user_is_cancelled_with_a_reason() {
    let f = unknown_user_finish(BitrixUserId(99), true);
    assert_eq!(f.status_code, "603-S");
    assert_eq!(
        (f.user, f.duration_secs, f.add_to_chat),
        (BitrixUserId(99), 0, true)
    );
    assert!(f.failed_reason.unwrap().contains("99"));
}
