//! Pure batching: a queue of pending commands that keeps each call's order and merges
//! neighbouring show/hide of one call, the `batch` request builder (≤ 50 sub-commands) and the
//! splitting of its answer back into per-command results. No IO, no clock reads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::error::BitrixError;
use super::wire::{BATCH_MAX, BatchParams, BatchResult, CardParams, Flag, Method, to_query};
use crate::ids::ExternalCallId;

/// One REST call waiting to be sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command {
    /// The method.
    pub method: Method,
    /// Its parameters (a JSON object).
    pub params: Value,
    /// The call it belongs to: commands of one call queued together are never reordered (and
    /// neighbouring show/hide merge). Across requests the caller keeps the order: the outbox
    /// worker, the one owner of per-call ordering, has at most one write of a call in flight.
    pub key: Option<ExternalCallId>,
}

/// A command ready to send, with everyone waiting for its result (several when merged).
#[derive(Debug)]
pub(crate) struct Planned<T> {
    /// What to send.
    pub command: Command,
    /// Who gets the result.
    pub waiters: Vec<T>,
}

#[derive(Debug)]
struct Entry<T> {
    command: Command,
    since: Instant,
    waiter: T,
}

/// Commands waiting for the next flush, in arrival order.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    entries: VecDeque<Entry<T>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
        }
    }
}

impl<T> Pending<T> {
    /// Queues a command that arrived at `now`.
    pub(crate) fn push(&mut self, command: Command, waiter: T, now: Instant) {
        self.entries.push_back(Entry {
            command,
            since: now,
            waiter,
        });
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes everything (shutdown).
    pub(crate) fn drain_all(&mut self) -> impl Iterator<Item = (Command, T)> + '_ {
        self.entries.drain(..).map(|e| (e.command, e.waiter))
    }

    /// When a flush is due: `window` after the oldest command, or at once when a full batch is
    /// ready. `None` when nothing is queued.
    pub(crate) fn due_at(&self, window: Duration) -> Option<Instant> {
        let oldest = self.entries.front()?.since;
        if self.entries.len() >= BATCH_MAX {
            return Some(oldest);
        }
        Some(oldest + window)
    }

    /// Takes up to `max` commands that may be sent now, merging show (or hide) commands of one
    /// call that follow each other in that call's sequence into one with a `USER_ID` array.
    pub(crate) fn take(&mut self, max: usize) -> Vec<Planned<T>> {
        let mut planned: Vec<Planned<T>> = Vec::new();
        let mut last_of_key: HashMap<ExternalCallId, usize> = HashMap::new();
        let mut blocked: HashSet<ExternalCallId> = HashSet::new();
        let mut kept = VecDeque::new();
        while let Some(entry) = self.entries.pop_front() {
            let key = entry.command.key.clone();
            if let Some(k) = &key {
                if blocked.contains(k) {
                    kept.push_back(entry);
                    continue;
                }
                let merge_into = last_of_key.get(k).copied();
                if let Some(i) =
                    merge_into.filter(|&i| mergeable(&planned[i].command, &entry.command))
                {
                    merge_users(&mut planned[i].command.params, &entry.command.params);
                    planned[i].waiters.push(entry.waiter);
                    continue;
                }
            }
            if planned.len() >= max {
                if let Some(k) = key {
                    blocked.insert(k);
                }
                kept.push_back(entry);
                continue;
            }
            if let Some(k) = key {
                last_of_key.insert(k, planned.len());
            }
            planned.push(Planned {
                command: entry.command,
                waiters: vec![entry.waiter],
            });
        }
        self.entries = kept;
        planned
    }
}

fn mergeable(earlier: &Command, later: &Command) -> bool {
    matches!(earlier.method, Method::Show | Method::Hide)
        && earlier.method == later.method
        && earlier.params.get(CardParams::CALL_ID) == later.params.get(CardParams::CALL_ID)
}

fn merge_users(into: &mut Value, from: &Value) {
    let extra: Vec<Value> = match from.get(CardParams::USER_ID) {
        Some(Value::Array(users)) => users.clone(),
        Some(user) => vec![user.clone()],
        None => Vec::new(),
    };
    let Some(obj) = into.as_object_mut() else {
        return;
    };
    let users = obj
        .entry(CardParams::USER_ID)
        .or_insert_with(|| Value::Array(Vec::new()));
    if !users.is_array() {
        *users = Value::Array(vec![users.clone()]);
    }
    if let Value::Array(list) = users {
        for user in extra {
            if !list.contains(&user) {
                list.push(user);
            }
        }
    }
}

/// The name of sub-command `i` in a batch. Never purely numeric: PHP would read a map with
/// numeric keys as a list. Zero-padded: the portal runs sub-commands in key order, and the
/// JSON map is sorted, so `c10` must not sort before `c2` (a `finish` would overtake a `hide`).
fn name(i: usize) -> String {
    format!("c{i:02}")
}

/// Builds the `batch` parameters for at most [`BATCH_MAX`] commands (the caller splits).
pub(crate) fn build(commands: &[&Command]) -> BatchParams {
    let cmd = commands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let query = to_query(&c.params);
            let line = if query.is_empty() {
                c.method.name().to_owned()
            } else {
                format!("{}?{query}", c.method.name())
            };
            (name(i), line)
        })
        .collect();
    BatchParams {
        halt: Flag(false),
        cmd,
    }
}

/// Splits a batch answer into one result per command, in order. A sub-command with neither a
/// result nor an error is reported as a decode error of its method.
pub(crate) fn split(answer: BatchResult, methods: &[Method]) -> Vec<Result<Value, BitrixError>> {
    let BatchResult {
        mut result,
        mut result_error,
        ..
    } = answer;
    methods
        .iter()
        .enumerate()
        .map(|(i, method)| {
            let key = name(i);
            if let Some(err) = result_error.0.remove(&key) {
                return Err(BitrixError::api(
                    method.name(),
                    0,
                    &err.error,
                    &err.error_description,
                ));
            }
            result.0.remove(&key).ok_or_else(|| {
                BitrixError::decode(
                    method.name(),
                    serde::de::Error::custom(format!("batch answer lacks sub-command {key}")),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
