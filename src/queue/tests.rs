//! Unit tests of `queue`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::ids::BitrixUserId;

/// Presence the test can change while the actor runs.
#[derive(Default)]
struct Phones {
    busy: Mutex<Vec<String>>,
}

impl AgentPresence for Phones {
    fn is_registered(&self, _extension: &str) -> bool {
        true
    }
    fn live_channels(&self, extension: &str) -> u32 {
        let busy = self
            .busy
            .lock()
            .map(|b| b.iter().any(|e| e == extension))
            .unwrap_or(false);
        u32::from(busy)
    }
}

fn start(phones: Arc<Phones>) -> (QueueHandle, TaskTracker, CancellationToken) {
    let agents = ["a", "b"]
        .iter()
        .zip(1u64..)
        .map(|(name, user)| AgentInfo {
            agent: AgentId::from(*name),
            user: BitrixUserId(user),
            extension: format!("100{user}"),
        })
        .collect();
    let rules = Rules {
        no_answer_cooldown: Duration::from_secs(2),
        ..Rules::default()
    };
    let queue = QueueSettings {
        name: QueueName::from("sales"),
        agents: vec![AgentId::from("a"), AgentId::from("b")],
        order: Order::ListOrder,
        rules,
    };
    let policy = Policy::new(agents, vec![queue], Rules::default()).unwrap();
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let handle = QueueHandle::spawn(policy, phones, &tracker, shutdown.clone());
    (handle, tracker, shutdown)
}

fn name(info: Option<AgentInfo>) -> Option<String> {
    info.map(|i| i.agent.to_string())
}

#[tokio::test(start_paused = true)]
async fn the_actor_reserves_agents_and_frees_them_after_their_cool_down() {
    let phones = Arc::new(Phones::default());
    let (queue, tracker, shutdown) = start(phones.clone());
    let sales = QueueName::from("sales");
    assert_eq!(
        name(queue.next_agent(&sales, &[]).await.unwrap()),
        Some("a".into())
    );
    assert_eq!(
        name(queue.next_agent(&sales, &[]).await.unwrap()),
        Some("b".into())
    );
    assert_eq!(
        queue.next_agent(&sales, &[]).await.unwrap(),
        None,
        "both are reserved"
    );

    assert!(
        queue
            .release(&AgentId::from("a"), Outcome::NoAnswer)
            .await
            .unwrap()
    );
    assert!(
        !queue
            .release(&AgentId::from("a"), Outcome::NoAnswer)
            .await
            .unwrap(),
        "second release is a no-op"
    );
    assert!(matches!(
        queue.availability(&AgentId::from("a")).await.unwrap(),
        Availability::Resting { .. }
    ));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        name(queue.next_agent(&sales, &[]).await.unwrap()),
        Some("a".into())
    );

    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .unwrap();
    assert!(matches!(
        queue.next_agent(&sales, &[]).await,
        Err(QueueError::Stopped { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn the_actor_reads_presence_and_reports_unknown_queues_and_reserves_by_name() {
    let phones = Arc::new(Phones::default());
    let (queue, _tracker, _shutdown) = start(phones.clone());
    phones.busy.lock().unwrap().push("1001".into());
    let sales = QueueName::from("sales");
    assert_eq!(
        name(queue.next_agent(&sales, &[]).await.unwrap()),
        Some("b".into())
    );
    assert_eq!(
        queue.reserve(&AgentId::from("a")).await.unwrap(),
        None,
        "a is on a call"
    );
    phones.busy.lock().unwrap().clear();
    assert_eq!(
        name(queue.reserve(&AgentId::from("a")).await.unwrap()),
        Some("a".into())
    );
    let err = queue
        .next_agents(&QueueName::from("nope"), &[], 3)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        QueueError::Policy(PolicyError::UnknownQueue { .. })
    ));
}
