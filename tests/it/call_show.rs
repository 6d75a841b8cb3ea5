//! `fsb24 call show`: the real binary reads a call's audit trail from the outbox a run left:
//! every write with its time, request, answers and retries, and the event behind it.

use std::path::Path;
use std::time::Duration;

use crate::support::app::World;
use crate::support::bitrix_peer::Fault;
use crate::support::esl_peer::caller::CallSpec;

const EMPLOYEE_ROUTE: &str = r#"
[[routes]]
destination = "9001"
target = { agent = "1001" }
"#;

/// Runs `fsb24 call show <query>`; returns its exit success and stdout.
fn call_show(config: &Path, query: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fsb24"))
        .args(["call", "show", query, "--config"])
        .arg(config)
        .env_remove("FSB24_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn call_show_prints_every_write_with_its_cause_request_answers_and_retries() {
    let w = World::start(&[("1001", 11)], EMPLOYEE_ROUTE).await;
    w.fs.phone("1001")
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(1));
    // The first finish meets a portal fault: the trail shows the retry.
    w.bx.fail_next(
        "telephony.externalcall.finish",
        1,
        Fault::Reject {
            status: 500,
            code: "INTERNAL_SERVER_ERROR".into(),
            description: "Internal server error".into(),
        },
    );
    let spec = CallSpec {
        caller: "+79995550101".into(),
        destination: "9001".into(),
        ..CallSpec::default()
    };
    let caller = w.fs.offer_call(w.app.esl_addr, spec).await.unwrap();
    let external = format!("fs-{}", caller.uuid);
    let call_id = w.bx.finished_call(&external, true).await.call_id;
    w.app.shutdown().await;

    let config = w.dir.path().join("fsb24.toml");
    let (ok, by_channel) = call_show(&config, &caller.uuid);
    assert!(ok, "{by_channel}");
    eprintln!("{by_channel}");
    assert!(by_channel.starts_with(&format!("call {external} (CALL_ID {call_id})")));
    for kind in ["note", "register", "finish", "attach_record"] {
        assert!(
            by_channel.contains(&format!(" {kind} ")),
            "{kind}: {by_channel}"
        );
    }
    // Why: the switch event behind each write.
    assert!(
        by_channel.contains("why:     CHANNEL_EXECUTE bridge: phones ring"),
        "{by_channel}"
    );
    assert!(
        by_channel.contains("why:     CHANNEL_HANGUP"),
        "{by_channel}"
    );
    // The request as stored and the answers, a retry included.
    assert!(
        by_channel.contains("\"phone\":\"+79995550101\""),
        "{by_channel}"
    );
    assert!(
        by_channel.contains(&format!("registered {call_id}")),
        "{by_channel}"
    );
    assert!(by_channel.contains("retry at "), "{by_channel}");
    assert!(by_channel.contains("INTERNAL_SERVER_ERROR"), "{by_channel}");
    assert!(
        !by_channel.contains("pending"),
        "everything settled: {by_channel}"
    );

    let (_, by_call_id) = call_show(&config, &call_id);
    let (_, by_phone) = call_show(&config, "+79995550101");
    let (_, by_phone_digits) = call_show(&config, "79995550101");
    assert_eq!(by_call_id, by_channel);
    assert_eq!(by_phone, by_channel);
    assert_eq!(by_phone_digits, by_channel);
    let (found, _) = call_show(&config, "+70000000000");
    assert!(!found, "no call: exit code 1");
}
