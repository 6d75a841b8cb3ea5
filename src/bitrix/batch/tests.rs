//! Unit tests of `bitrix::batch`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::bitrix::error::ErrorKind;

fn card(method: Method, call: &str, users: &[u64]) -> Command {
    Command {
        method,
        params: json!({"CALL_ID": format!("cid-{call}"), "USER_ID": users}),
        key: Some(ExternalCallId::new(call)),
    }
}

fn finish(call: &str) -> Command {
    Command {
        method: Method::Finish,
        params: json!({"CALL_ID": format!("cid-{call}")}),
        key: Some(ExternalCallId::new(call)),
    }
}

#[test]
fn show_commands_of_one_call_queued_together_merge_into_one_user_array() {
    let t0 = Instant::now();
    let mut q = Pending::default();
    q.push(card(Method::Show, "a", &[1]), 1, t0);
    q.push(card(Method::Show, "a", &[2, 1]), 2, t0);
    q.push(card(Method::Show, "b", &[3]), 3, t0);
    let planned = q.take(50);
    assert_eq!(planned.len(), 2);
    assert_eq!(planned[0].command.params["USER_ID"], json!([1, 2]));
    assert_eq!(planned[0].waiters, vec![1, 2]);
    assert!(q.is_empty());
}

#[test]
fn merging_never_reorders_across_another_command_of_the_same_call() {
    let t0 = Instant::now();
    let mut q = Pending::default();
    q.push(card(Method::Show, "a", &[1]), 1, t0);
    q.push(card(Method::Hide, "a", &[1]), 2, t0);
    q.push(card(Method::Show, "a", &[2]), 3, t0);
    let planned = q.take(50);
    let methods: Vec<Method> = planned.iter().map(|p| p.command.method).collect();
    assert_eq!(methods, [Method::Show, Method::Hide, Method::Show]);
}

#[test]
fn a_full_batch_leaves_the_rest_of_a_call_behind_in_order() {
    let t0 = Instant::now();
    let mut q = Pending::default();
    for i in 0..49 {
        q.push(finish(&format!("x{i}")), i, t0);
    }
    q.push(card(Method::Hide, "a", &[1]), 100, t0);
    q.push(finish("b"), 101, t0);
    q.push(finish("a"), 102, t0);
    let first = q.take(BATCH_MAX);
    assert_eq!(first.len(), 50);
    assert_eq!(first.last().unwrap().waiters, [100]);
    // The finish of "a" must not ride in this batch ahead of... it may follow its hide, but
    // the batch is full; "b" and "a" stay queued in arrival order.
    let rest = q.take(BATCH_MAX);
    assert_eq!(
        rest.iter().map(|p| p.waiters[0]).collect::<Vec<_>>(),
        [101, 102]
    );
}

#[test]
fn flush_is_due_one_window_after_the_oldest_command_or_at_once_when_full() {
    let t0 = Instant::now();
    let w = Duration::from_millis(10);
    let mut q = Pending::default();
    assert_eq!(q.due_at(w), None);
    q.push(finish("a"), 0, t0);
    q.push(finish("b"), 1, t0 + Duration::from_millis(4));
    assert_eq!(q.due_at(w), Some(t0 + w));
    for i in 0..48 {
        q.push(finish(&format!("c{i}")), i, t0 + Duration::from_millis(5));
    }
    assert_eq!(q.due_at(w), Some(t0));
}

#[test]
fn batch_commands_are_named_non_numerically_and_query_encoded() {
    let a = card(Method::Hide, "a", &[21, 22]);
    let b = Command {
        method: Method::SearchCrmEntities,
        params: json!({"PHONE_NUMBER": "+4930"}),
        key: None,
    };
    let params = build(&[&a, &b]);
    assert_eq!(
        params.cmd["c00"],
        "telephony.externalcall.hide?CALL_ID=cid-a&USER_ID[0]=21&USER_ID[1]=22"
    );
    assert_eq!(
        params.cmd["c01"],
        "telephony.externalcall.searchCrmEntities?PHONE_NUMBER=%2B4930"
    );
    assert_eq!(serde_json::to_value(&params).unwrap()["halt"], json!(0));
}

#[test]
fn batch_answers_split_into_results_and_typed_sub_errors() {
    let answer: BatchResult = serde_json::from_value(json!({
        "result": { "c00": true, "c02": [] },
        "result_error": { "c01": { "error": "", "error_description": "Call is not found (call should be registered prior to finishing" } },
        "result_total": [], "result_next": [], "result_time": []
    }))
    .unwrap();
    let out = split(
        answer,
        &[
            Method::Hide,
            Method::Finish,
            Method::ExternalLineGet,
            Method::Show,
        ],
    );
    assert_eq!(out[0].as_ref().unwrap(), &json!(true));
    let err = out[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::CallNotFound));
    assert_eq!(err.method(), Some("telephony.externalcall.finish"));
    assert_eq!(out[2].as_ref().unwrap(), &json!([]));
    assert!(matches!(out[3], Err(BitrixError::Decode { .. })));
}

#[test]
fn an_all_failed_batch_with_empty_result_array_reports_every_error() {
    let answer: BatchResult = serde_json::from_value(json!({
        "result": [], "result_error": { "c00": { "error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests" },
                                         "c01": { "error": "ERROR_ARGUMENT", "error_description": "bad" } }
    }))
    .unwrap();
    let out = split(answer, &[Method::Show, Method::Hide]);
    assert!(out[0].as_ref().unwrap_err().is_retryable());
    assert!(!out[1].as_ref().unwrap_err().is_retryable());
}

// Regression: with keys `c0..c49` the sorted JSON map put `c10` before `c2`, so the portal ran a
// call's `finish` before its `hide` in batches of more than ten commands.
#[test]
fn batch_command_names_sort_in_send_order() {
    let commands: Vec<Command> = (0..BATCH_MAX)
        .map(|i| finish(&format!("call{i}")))
        .collect();
    let refs: Vec<&Command> = commands.iter().collect();
    let params = build(&refs);
    let names: Vec<&String> = params.cmd.keys().collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.first().map(|s| s.as_str()), Some("c00"));
    assert_eq!(names.get(10).map(|s| s.as_str()), Some("c10"));
    assert!(params.cmd["c02"].contains("call2"));
}
