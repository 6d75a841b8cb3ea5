//! Channels as the switch sees them and the events it fires for them, with the real header
//! names and order of FreeSWITCH 1.10.12 (core block, channel block, caller profile, variables).

use std::sync::Arc;

/// One fired event: ordered headers (values raw, encoded on the wire) and an optional body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsEvent {
    /// Ordered headers; duplicates allowed (CHANNEL_HANGUP_COMPLETE has Hangup-Cause twice).
    pub headers: Vec<(String, String)>,
    /// Inner body (BACKGROUND_JOB).
    pub body: Option<String>,
}

impl FsEvent {
    /// First header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Event-Name`.
    pub fn name(&self) -> &str {
        self.header("Event-Name").unwrap_or("")
    }

    /// `Event-Subclass` for CUSTOM events.
    pub fn subclass(&self) -> Option<&str> {
        self.header("Event-Subclass")
    }
}

/// Shared handle to a fired event.
pub type EventRef = Arc<FsEvent>;

/// A channel (A leg or agent leg) with its profile, state and variables.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Unique-ID.
    pub uuid: String,
    /// Channel-Name, e.g. `sofia/internal/5551000@127.0.0.1:5061`.
    pub name: String,
    /// `inbound` (caller) or `outbound` (originated leg).
    pub direction: &'static str,
    /// CS_* state.
    pub state: &'static str,
    /// Channel-Call-State (RINGING, ACTIVE, RING_WAIT, HANGUP, DOWN, EARLY).
    pub call_state: &'static str,
    /// Answer-State (ringing, early, answered, hangup).
    pub answer_state: &'static str,
    /// Caller-ID name and number, destination, context.
    pub cid_name: String,
    /// Caller-Caller-ID-Number.
    pub cid_number: String,
    /// Caller-Destination-Number.
    pub destination: String,
    /// Channel variables in insertion order.
    pub vars: Vec<(String, String)>,
    /// Bridged partner.
    pub other_leg: Option<String>,
    /// Set once hung up.
    pub hangup_cause: Option<String>,
    /// Microsecond timestamps (0 = not yet).
    pub created_us: u64,
    /// Answer time.
    pub answered_us: u64,
    /// Hangup time.
    pub hangup_us: u64,
    /// First bridge time (`Caller-Channel-Bridged-Time`).
    pub bridged_us: u64,
    /// The leg it was bridged to: the caller profile keeps it as the originatee after the
    /// bridge ends, so the A leg's CHANNEL_HANGUP_COMPLETE still names it (a_answered_agent.txt).
    pub originatee: Option<String>,
}

impl Channel {
    /// Reads a variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or, with an empty value, deletes) a variable, keeping first-insertion order.
    pub fn set_var(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.vars.retain(|(k, _)| k != name);
        } else if let Some(slot) = self.vars.iter_mut().find(|(k, _)| k == name) {
            slot.1 = value.to_owned();
        } else {
            self.vars.push((name.to_owned(), value.to_owned()));
        }
    }

    /// Appends to an `ARRAY::a|:b` variable.
    pub fn push_var(&mut self, name: &str, value: &str) {
        let next = match self.var(name) {
            Some(old) if old.starts_with("ARRAY::") => format!("{old}|:{value}"),
            Some(old) => format!("ARRAY::{old}|:{value}"),
            None => value.to_owned(),
        };
        self.set_var(name, &next);
    }

    fn state_number(&self) -> &'static str {
        match self.state {
            "CS_NEW" => "0",
            "CS_INIT" => "1",
            "CS_ROUTING" => "2",
            "CS_EXECUTE" => "4",
            "CS_EXCHANGE_MEDIA" => "5",
            "CS_PARK" => "6",
            "CS_CONSUME_MEDIA" => "7",
            "CS_HANGUP" => "10",
            "CS_REPORTING" => "11",
            "CS_DESTROY" => "12",
            _ => "3",
        }
    }

    /// Channel block + caller profile + variables, in the real order.
    pub fn channel_headers(&self, out: &mut Vec<(String, String)>, other: Option<&Channel>) {
        let call_uuid = self.var("call_uuid").unwrap_or(&self.uuid).to_owned();
        let mut push = |k: &str, v: &str| out.push((k.to_owned(), v.to_owned()));
        push("Channel-State", self.state);
        push("Channel-Call-State", self.call_state);
        push("Channel-State-Number", self.state_number());
        push("Channel-Name", &self.name);
        push("Unique-ID", &self.uuid);
        push("Call-Direction", self.direction);
        push("Presence-Call-Direction", self.direction);
        push(
            "Channel-HIT-Dialplan",
            if self.direction == "inbound" {
                "true"
            } else {
                "false"
            },
        );
        push("Channel-Call-UUID", &call_uuid);
        push("Answer-State", self.answer_state);
        if let Some(c) = &self.hangup_cause {
            push("Hangup-Cause", c);
        }
        for (k, v) in [("Read", "PCMU"), ("Write", "PCMU")] {
            push(&format!("Channel-{k}-Codec-Name"), v);
            push(&format!("Channel-{k}-Codec-Rate"), "8000");
            push(&format!("Channel-{k}-Codec-Bit-Rate"), "64000");
        }
        self.profile_headers("Caller", out);
        if let Some(o) = other {
            out.push((
                "Other-Type".into(),
                if self.direction == "inbound" {
                    "originatee"
                } else {
                    "originator"
                }
                .into(),
            ));
            o.profile_headers("Other-Leg", out);
        }
        for (k, v) in &self.vars {
            out.push((format!("variable_{k}"), v.clone()));
        }
    }

    fn profile_headers(&self, p: &str, out: &mut Vec<(String, String)>) {
        let created = self.created_us.to_string();
        let rows: [(&str, String); 22] = [
            ("Direction", self.direction.into()),
            ("Logical-Direction", self.direction.into()),
            ("Username", self.cid_number.clone()),
            ("Dialplan", "XML".into()),
            ("Caller-ID-Name", self.cid_name.clone()),
            ("Caller-ID-Number", self.cid_number.clone()),
            ("Orig-Caller-ID-Name", self.cid_name.clone()),
            ("Orig-Caller-ID-Number", self.cid_number.clone()),
            ("Network-Addr", "127.0.0.1".into()),
            ("ANI", self.cid_number.clone()),
            ("Destination-Number", self.destination.clone()),
            ("Unique-ID", self.uuid.clone()),
            ("Source", "mod_sofia".into()),
            ("Context", "default".into()),
            ("Channel-Name", self.name.clone()),
            ("Profile-Index", "1".into()),
            ("Profile-Created-Time", created.clone()),
            ("Channel-Created-Time", created),
            ("Channel-Answered-Time", self.answered_us.to_string()),
            ("Channel-Progress-Time", "0".into()),
            ("Channel-Progress-Media-Time", "0".into()),
            ("Channel-Hangup-Time", self.hangup_us.to_string()),
        ];
        for (k, v) in rows {
            if p == "Other-Leg" && k == "Profile-Index" {
                continue;
            }
            out.push((format!("{p}-{k}"), v));
        }
        for k in ["Transfer-Time", "Resurrect-Time"] {
            out.push((format!("{p}-Channel-{k}"), "0".into()));
        }
        out.push((
            format!("{p}-Channel-Bridged-Time"),
            self.bridged_us.to_string(),
        ));
        for k in ["Last-Hold", "Hold-Accum"] {
            out.push((format!("{p}-Channel-{k}"), "0".into()));
        }
        for (k, v) in [
            ("Screen-Bit", "true"),
            ("Privacy-Hide-Name", "false"),
            ("Privacy-Hide-Number", "false"),
        ] {
            out.push((format!("{p}-{k}"), v.into()));
        }
    }
}

/// DIALSTATUS for an originate result (esl-protocol.md §10.5).
pub fn dialstatus(cause: &str) -> &str {
    match cause {
        "SUCCESS" => "SUCCESS",
        "ORIGINATOR_CANCEL" => "CANCEL",
        "USER_BUSY" => "BUSY",
        "NO_ANSWER" | "NO_USER_RESPONSE" => "NOANSWER",
        "CALL_REJECTED" => "DONTCALL",
        other => other,
    }
}

/// SIP status a phone script implies for a cause (for `sip_term_status`-like variables).
pub fn sip_code(cause: &str) -> &'static str {
    match cause {
        "USER_BUSY" => "486",
        "CALL_REJECTED" => "603",
        "NO_ANSWER" | "ORIGINATOR_CANCEL" | "LOSE_RACE" => "487",
        "USER_NOT_REGISTERED" | "NO_USER_RESPONSE" => "480",
        "SUBSCRIBER_ABSENT" | "UNALLOCATED_NUMBER" => "404",
        _ => "200",
    }
}
