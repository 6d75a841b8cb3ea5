//! The test-facing observation half of [`BitrixPeer`]: request log, waits with a failsafe,
//! calls, card timelines, recordings and leaky-bucket figures. Read-only on the portal.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{
    Arrival, BitrixPeer, CallRecord, CardInterval, EventBinding, FAILSAFE, Line, MethodCall,
    PeerState, RecordedRequest, StoredRecord,
};

impl BitrixPeer {
    // === Observation ===

    /// Every answered HTTP request so far (REST, token endpoint, uploads, redirects).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every invocation of `method` (lower case), direct or inside batches, in order.
    pub fn method_calls(&self, method: &str) -> Vec<MethodCall> {
        let method = method.to_ascii_lowercase();
        let st = self.shared.lock();
        let mut out = Vec::new();
        for req in &st.requests {
            if req.method == method && req.method != "batch" {
                out.push(MethodCall {
                    method: req.method.clone(),
                    params: req.params.clone(),
                    at: req.at,
                    batch_name: None,
                    ok: req.status == 200,
                });
            }
            for sub in req.sub_calls.iter().filter(|s| s.method == method) {
                let name = Some(sub.name.clone());
                out.push(MethodCall {
                    method: sub.method.clone(),
                    params: sub.params.clone(),
                    at: req.at,
                    batch_name: name,
                    ok: sub.ok,
                });
            }
        }
        out
    }

    /// The next request not yet returned by this method (waits up to [`FAILSAFE`]).
    pub async fn next_request(&self) -> RecordedRequest {
        let index = self.cursor.load(Ordering::SeqCst);
        let req = self
            .wait_for_value("next request", |st| st.requests.get(index).cloned())
            .await;
        self.cursor.store(index + 1, Ordering::SeqCst);
        req
    }

    /// Waits until `pred` holds on the state; panics after [`FAILSAFE`].
    pub async fn wait_for(&self, what: &str, mut pred: impl FnMut(&PeerState) -> bool) {
        self.wait_for_value(what, |st| pred(st).then_some(())).await;
    }

    /// Waits until `f` yields a value; panics after [`FAILSAFE`].
    pub async fn wait_for_value<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&PeerState) -> Option<T>,
    ) -> T {
        let mut changes = self.shared.subscribe();
        let waited = tokio::time::timeout(FAILSAFE, async {
            loop {
                if let Some(value) = f(&self.shared.lock()) {
                    return value;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        match waited {
            Ok(value) => value,
            Err(_) => panic!(
                "bitrix peer: {what}: not reached within {FAILSAFE:?}; requests: {:#?}",
                self.request_summary()
            ),
        }
    }

    fn request_summary(&self) -> Vec<String> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|r| format!("{} {} -> {}", r.http_method, r.method, r.status))
            .collect()
    }

    /// The call registered with `EXTERNAL_CALL_ID` `external` once it is finished, and its
    /// recording attached when `with_record` (failsafe-bounded).
    pub async fn finished_call(&self, external: &str, with_record: bool) -> CallRecord {
        self.wait_for_value(&format!("{external} finished"), |s| {
            let call = s
                .calls
                .iter()
                .find(|c| c.external_call_id.as_deref() == Some(external))?;
            call.finished.as_ref()?;
            let recorded = s.records.iter().any(|r| r.call_id == call.call_id);
            (recorded || !with_record).then(|| call.clone())
        })
        .await
    }

    /// All calls (active and finished) in registration order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.lock().calls.clone()
    }

    /// One call by `CALL_ID`.
    pub fn call(&self, call_id: &str) -> Option<CallRecord> {
        self.shared.lock().call(call_id).cloned()
    }

    /// Card intervals of a call, in opening order.
    pub fn timeline(&self, call_id: &str) -> Vec<CardInterval> {
        self.shared.lock().card_timeline(call_id)
    }

    /// Users whose card for the call is open now.
    pub fn shown(&self, call_id: &str) -> Vec<u64> {
        self.shared
            .lock()
            .timeline
            .shown(call_id)
            .into_iter()
            .collect()
    }

    /// Every recording received, in order (a later one for a call replaces the earlier).
    pub fn records(&self) -> Vec<StoredRecord> {
        self.shared.lock().records.clone()
    }

    /// The current recording of a call.
    pub fn record_of(&self, call_id: &str) -> Option<StoredRecord> {
        self.shared
            .lock()
            .records
            .iter()
            .rev()
            .find(|r| r.call_id == call_id)
            .cloned()
    }

    /// Accepted transcripts.
    pub fn transcripts(&self) -> Vec<super::Transcript> {
        self.shared.lock().transcripts.clone()
    }

    /// External lines.
    pub fn lines(&self) -> Vec<Line> {
        self.shared.lock().lines.clone()
    }

    /// Event bindings.
    pub fn event_bindings(&self) -> Vec<EventBinding> {
        self.shared.lock().events.clone()
    }

    // === Rate limit figures ===

    /// Every request the bucket judged (admitted or rejected), in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.lock().limiter.arrivals().to_vec()
    }

    /// The largest number of REST requests that arrived within any `window`.
    pub fn max_requests_in_any_window(&self, window: Duration) -> usize {
        self.shared.lock().limiter.max_in_window(window)
    }

    /// Arrival times of requests answered 503 QUERY_LIMIT_EXCEEDED.
    pub fn limit_violations(&self) -> Vec<Instant> {
        self.arrivals()
            .into_iter()
            .filter(|a| !a.admitted)
            .map(|a| a.at)
            .collect()
    }

    /// How many requests were answered 503 QUERY_LIMIT_EXCEEDED.
    pub fn count_rejected(&self) -> usize {
        self.limit_violations().len()
    }
}
