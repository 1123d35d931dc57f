//! Every conditional transition of the follow-up lifecycle recognises its own earlier success
//! (docs/FOLLOWUPS.md, "Every transition recognises its own earlier success"). The SDK retries a
//! write whose answer was lost, and that retry fails the write's own condition; each test lets
//! one write reach the emulator and apply, then loses its answer ([`LoseAnswer`]), so the SDK's
//! own retry meets the state the write left. The transition must still report what it did.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hookline::clock::{Clock, FixedClock, SharedClock};
use hookline::config::Target as Configured;
use hookline::followup::Timers;
use hookline::store::schema;
use hookline::store::{ActionStatus, EventStore, FollowUp, Marked};
use hookline::worker::{Handled, Retry, Worker};
use hookline_tests::{LOCAL_SECRET, LoseAnswer, Stack, Target, init_test_log, local_receiver};
use serde_json::Value;

const NOW: i64 = 1_750_000_000;

/// A Stripe sample payload (`events/payment-events/<name>.json`).
fn sample(name: &str) -> Value {
    hookline_tests::sample("payment-events", name)
}

struct Harness {
    stack: Stack,
    clock: Arc<FixedClock>,
    target: Target,
}

impl Harness {
    async fn new(script: Vec<u16>) -> Self {
        init_test_log();
        Self {
            stack: Stack::new().await.unwrap(),
            clock: FixedClock::at_secs(NOW),
            target: Target::start(script).await.unwrap(),
        }
    }

    fn shared(&self) -> SharedClock {
        self.clock.clone()
    }

    fn store(&self) -> EventStore {
        self.stack.store(self.shared())
    }

    /// A store whose DynamoDB client loses the answer `lose` names.
    fn lossy_store(&self, lose: &LoseAnswer) -> EventStore {
        EventStore::new(
            lose.dynamo(&self.stack.sdk),
            &self.stack.table,
            30,
            self.shared(),
        )
    }

    /// A worker on a store that loses the answer `lose` names; `disabled` kinds are turned off.
    fn worker(&self, lose: &LoseAnswer, disabled: &[&str]) -> Worker {
        let targets = hookline_receivers::action_kinds()
            .iter()
            .map(|k| {
                let t = if disabled.contains(k) {
                    Configured::Disabled
                } else {
                    Configured::Url(self.target.url(k))
                };
                ((*k).to_owned(), t)
            })
            .collect();
        Worker::from_parts(
            self.lossy_store(lose),
            self.stack.queue(),
            &self.stack.dlq_url,
            targets,
            Timers::default(),
            self.shared(),
        )
        .unwrap()
    }

    /// Records a signed Stripe delivery of `body`; its messages are left on the queue.
    async fn deliver(&self, body: &Value) {
        let spec = payment_events::spec();
        let rx = local_receiver(
            spec.clone(),
            &self.shared(),
            self.store(),
            self.stack.queue(),
        );
        let req = hookline_tests::signed_request(
            &spec.scheme,
            &serde_json::to_vec(body).unwrap(),
            LOCAL_SECRET,
            "d",
            self.clock.now_secs(),
        );
        assert_eq!(rx.handle(req).await.status(), 200);
    }

    /// Records `invoice.paid` `evt_<tag>` and clears the queue: returns its receipt's message.
    async fn invoice(&self, tag: &str) -> String {
        let mut v = sample("invoice.paid");
        v["id"] = format!("evt_{tag}").into();
        v["data"]["object"]["id"] = format!("in_{tag}").into();
        self.deliver(&v).await;
        self.stack.drain(&self.stack.queue_url).await.unwrap();
        hookline::queue::encode(&FollowUp::Action {
            source: "stripe".into(),
            event_id: format!("evt_{tag}"),
            action: "receipt".into(),
        })
    }

    /// Records a subscription `sub` (`stage` created/updated) at `created`, active, and clears the
    /// queue: returns its access sync's message.
    async fn subscription(&self, stage: &str, sub: &str, created: i64) -> String {
        let mut v = sample(&format!("customer.subscription.{stage}"));
        v["id"] = format!("evt_{sub}_{stage}").into();
        v["created"] = created.into();
        v["data"]["object"]["id"] = sub.into();
        v["data"]["object"]["status"] = "active".into();
        if stage == "updated" {
            v["data"]["previous_attributes"] = serde_json::json!({"metadata": {"note": "old"}});
        }
        self.deliver(&v).await;
        self.stack.drain(&self.stack.queue_url).await.unwrap();
        hookline::queue::encode(&FollowUp::Sync {
            source: "stripe".into(),
            entity_kind: "subscription".into(),
            entity_id: sub.into(),
            sync: "access".into(),
        })
    }

    async fn action_status(&self, tag: &str) -> ActionStatus {
        let event = self
            .store()
            .get_event("stripe", &format!("evt_{tag}"))
            .await
            .unwrap()
            .unwrap();
        event.outbox[0].status
    }

    async fn sync_status(&self, sub: &str) -> ActionStatus {
        let entity = self
            .store()
            .get_entity("subscription", sub)
            .await
            .unwrap()
            .unwrap();
        entity.sync.unwrap().status
    }

    /// True while the item `pk` is in the pending index.
    async fn pending(&self, pk: &str, sk: &str) -> bool {
        let out = self
            .stack
            .dynamo
            .get_item()
            .table_name(&self.stack.table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
            .send()
            .await
            .unwrap();
        out.item().unwrap().contains_key("pending_pk")
    }
}

#[tokio::test]
async fn an_action_claim_whose_answer_was_lost_still_runs_the_action() {
    let h = Harness::new(Vec::new()).await;
    let message = h.invoice("claim").await;
    let lose = LoseAnswer::nth("UpdateItem", 1);
    let result = h.worker(&lose, &[]).handle_message(&message).await;
    assert!(lose.lost());
    assert_eq!(result, Ok(Handled::Done), "the claim was ours");
    assert_eq!(h.target.hits(), 1);
    assert_eq!(h.action_status("claim").await, ActionStatus::Done);
}

/// Runs one attempt of a fresh invoice's receipt whose mark (the worker's second `UpdateItem`)
/// loses its answer.
async fn lost_action_mark(
    script: Vec<u16>,
    disabled: &[&str],
) -> (Harness, Result<Handled, Retry>) {
    let h = Harness::new(script).await;
    let message = h.invoice("mark").await;
    let lose = LoseAnswer::nth("UpdateItem", 2);
    let result = h.worker(&lose, disabled).handle_message(&message).await;
    assert!(lose.lost());
    (h, result)
}

#[tokio::test]
async fn an_action_done_mark_whose_answer_was_lost_is_done_and_leaves_the_pending_index() {
    let (h, result) = lost_action_mark(Vec::new(), &[]).await;
    assert_eq!(result, Ok(Handled::Done));
    assert_eq!(h.action_status("mark").await, ActionStatus::Done);
    assert!(
        !h.pending(&schema::event_pk("stripe", "evt_mark"), schema::EVENT_SK)
            .await,
        "settled: nothing left to run"
    );
}

#[tokio::test]
async fn an_action_backoff_mark_whose_answer_was_lost_still_backs_off() {
    let (h, result) = lost_action_mark(vec![503], &[]).await;
    assert!(matches!(result, Err(Retry::Backoff { .. })), "{result:?}");
    assert_eq!(h.action_status("mark").await, ActionStatus::Pending);
}

#[tokio::test]
async fn an_action_skipped_mark_whose_answer_was_lost_is_skipped() {
    let (h, result) = lost_action_mark(Vec::new(), &["receipt"]).await;
    assert_eq!(result, Ok(Handled::Skipped));
    assert_eq!(h.action_status("mark").await, ActionStatus::Skipped);
    assert_eq!(h.target.hits(), 0);
}

#[tokio::test]
async fn an_action_failed_mark_whose_answer_was_lost_is_dead_lettered_and_counted() {
    let h = Harness::new(vec![401]).await;
    let message = h.invoice("failed").await;
    h.stack
        .queue()
        .send_body_to(&h.stack.queue_url, &message)
        .await
        .unwrap();
    let lose = LoseAnswer::nth("UpdateItem", 2);
    let captured = hookline::metrics::Captured::default();
    let worker = h
        .worker(&lose, &[])
        .with_metrics(hookline::metrics::Metrics::to_writer(
            captured.clone(),
            h.shared(),
        ));
    let fed = h.stack.feed(&worker, 10, 1).await.unwrap();
    assert!(lose.lost());
    assert_eq!(
        (fed.received, fed.failed.len()),
        (1, 0),
        "the message is done"
    );
    assert_eq!(h.action_status("failed").await, ActionStatus::Failed);
    let dlq = h.stack.drain(&h.stack.dlq_url).await.unwrap();
    assert_eq!(dlq.len(), 1, "the FAILED one is on the dead-letter queue");
    let failed: f64 = captured
        .lines()
        .iter()
        .filter_map(|l| l["followups_failed"].as_f64())
        .sum();
    assert!(
        (failed - 1.0).abs() < f64::EPSILON,
        "counted once: {failed}"
    );
}

#[tokio::test]
async fn a_sync_claim_whose_answer_was_lost_still_runs_the_sync() {
    let h = Harness::new(Vec::new()).await;
    let message = h.subscription("created", "sub_claim", NOW - 100).await;
    let lose = LoseAnswer::nth("UpdateItem", 1);
    let result = h.worker(&lose, &[]).handle_message(&message).await;
    assert!(lose.lost());
    assert_eq!(result, Ok(Handled::Done), "the claim was ours");
    assert_eq!(h.target.hits(), 1);
    assert_eq!(h.sync_status("sub_claim").await, ActionStatus::Done);
}

#[tokio::test]
async fn a_sync_done_mark_whose_answer_was_lost_is_done() {
    let h = Harness::new(Vec::new()).await;
    let message = h.subscription("created", "sub_done", NOW - 100).await;
    let lose = LoseAnswer::nth("UpdateItem", 2);
    let result = h.worker(&lose, &[]).handle_message(&message).await;
    assert!(lose.lost());
    assert_eq!(result, Ok(Handled::Done));
    assert_eq!(h.sync_status("sub_done").await, ActionStatus::Done);
    assert!(
        !h.pending(
            &schema::entity_pk("subscription", "sub_done"),
            schema::ENTITY_SK
        )
        .await
    );
}

#[tokio::test]
async fn a_sync_failed_mark_whose_answer_was_lost_is_failed() {
    let h = Harness::new(vec![401]).await;
    let message = h.subscription("created", "sub_failed", NOW - 100).await;
    let lose = LoseAnswer::nth("UpdateItem", 2);
    let result = h.worker(&lose, &[]).handle_message(&message).await;
    assert!(lose.lost());
    assert_eq!(result, Ok(Handled::Failed));
    assert_eq!(h.sync_status("sub_failed").await, ActionStatus::Failed);
}

#[tokio::test]
async fn a_sync_backoff_mark_whose_answer_was_lost_still_backs_off() {
    let h = Harness::new(vec![503]).await;
    let message = h.subscription("created", "sub_backoff", NOW - 100).await;
    let lose = LoseAnswer::nth("UpdateItem", 2);
    let result = h.worker(&lose, &[]).handle_message(&message).await;
    assert!(lose.lost());
    assert!(matches!(result, Err(Retry::Backoff { .. })), "{result:?}");
    assert_eq!(h.sync_status("sub_backoff").await, ActionStatus::Pending);
}

#[tokio::test]
async fn a_sync_skipped_mark_whose_answer_was_lost_is_skipped() {
    let h = Harness::new(Vec::new()).await;
    let message = h.subscription("created", "sub_skipped", NOW - 100).await;
    let lose = LoseAnswer::nth("UpdateItem", 2);
    let result = h
        .worker(&lose, &["provision_access"])
        .handle_message(&message)
        .await;
    assert!(lose.lost());
    assert_eq!(result, Ok(Handled::Skipped));
    assert_eq!(h.sync_status("sub_skipped").await, ActionStatus::Skipped);
    assert_eq!(h.target.hits(), 0);
}

#[tokio::test]
async fn a_moved_sync_mark_whose_answer_was_lost_is_moved() {
    let h = Harness::new(Vec::new()).await;
    h.subscription("created", "sub_moved", NOW - 100).await;
    let claim = h
        .store()
        .claim_sync("subscription", "sub_moved", 25_000, 180_000)
        .await
        .unwrap()
        .unwrap();
    // The entity moves on while the claimant works.
    h.subscription("updated", "sub_moved", NOW - 50).await;
    // Its first write is refused (another version); the second one's answer is lost.
    let lose = LoseAnswer::nth("UpdateItem", 1);
    let marked = h
        .lossy_store(&lose)
        .finish_sync(
            &claim.entity,
            &claim.lease,
            &hookline::store::Finish::Done { status: 200 },
            claim.entity.sync.as_ref().map(|s| &s.desired),
        )
        .await
        .unwrap();
    assert!(lose.lost());
    assert_eq!(marked, Marked::Moved, "the sync must be enqueued again");
    assert_eq!(h.sync_status("sub_moved").await, ActionStatus::Pending);
}

#[tokio::test]
async fn an_action_reset_whose_answer_was_lost_says_it_reset() {
    let h = Harness::new(vec![401]).await;
    let message = h.invoice("reset").await;
    let plain = LoseAnswer::nth("UpdateItem", usize::MAX);
    assert_eq!(
        h.worker(&plain, &[]).handle_message(&message).await,
        Ok(Handled::Failed)
    );
    let lose = LoseAnswer::nth("UpdateItem", 1);
    let reset = h
        .lossy_store(&lose)
        .retry_action(
            "stripe",
            "evt_reset",
            "receipt",
            hookline::store::RetryScope::FailedOrSkipped,
        )
        .await
        .unwrap();
    assert!(lose.lost());
    assert!(
        reset,
        "the reset was ours: its caller enqueues the follow-up"
    );
    assert_eq!(h.action_status("reset").await, ActionStatus::Pending);
    // A second, deliberate reset finds it PENDING: not ours, refused.
    assert!(
        !h.store()
            .retry_action(
                "stripe",
                "evt_reset",
                "receipt",
                hookline::store::RetryScope::FailedOrSkipped
            )
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_sync_reset_whose_answer_was_lost_says_it_reset() {
    let h = Harness::new(vec![401]).await;
    let message = h.subscription("created", "sub_reset", NOW - 100).await;
    let plain = LoseAnswer::nth("UpdateItem", usize::MAX);
    assert_eq!(
        h.worker(&plain, &[]).handle_message(&message).await,
        Ok(Handled::Failed)
    );
    let lose = LoseAnswer::nth("UpdateItem", 1);
    let reset = h
        .lossy_store(&lose)
        .retry_sync("subscription", "sub_reset")
        .await
        .unwrap();
    assert!(lose.lost());
    assert!(
        reset,
        "the reset was ours: its caller enqueues the follow-up"
    );
    assert_eq!(h.sync_status("sub_reset").await, ActionStatus::Pending);
    assert!(
        !h.store()
            .retry_sync("subscription", "sub_reset")
            .await
            .unwrap()
    );
}

/// `events replay` is one transaction, conditional on the record still being quarantined; the
/// SDK fills its `ClientRequestToken` once per call, so DynamoDB answers the retry of a replay
/// whose answer was lost with the first success instead of refusing it as a duplicate.
#[tokio::test]
async fn a_replay_whose_answer_was_lost_is_accepted_with_its_followups() {
    use hookline::store::{Action, ChangeMode, Effects, NewEvent, Outcome, StateChange};
    let h = Harness::new(Vec::new()).await;
    let body = br#"{"id":"evt_replay"}"#;
    let event = NewEvent {
        source: "test",
        function: "test-events",
        event_id: "evt_replay",
        event_type: "thing.changed",
        provider_ts: NOW * 1000,
        body,
        delivery: None,
    };
    h.store().quarantine(&event, "shape changed").await.unwrap();
    let effects = Effects::Apply {
        change: Some(StateChange {
            entity_kind: "thing".into(),
            entity_id: "r1".into(),
            version: 1,
            mode: ChangeMode::Upsert,
            attrs: [("a".to_owned(), serde_json::json!(1))].into(),
            sync: None,
        }),
        actions: vec![Action::new("receipt", serde_json::json!({}))],
    };
    let lose = LoseAnswer::nth("TransactWriteItems", 1);
    let replayed = h.lossy_store(&lose).replay(&event, &effects).await.unwrap();
    assert!(lose.lost());
    assert_eq!(replayed.outcome, Outcome::Accepted);
    assert_eq!(replayed.enqueue.len(), 1);
    let record = h
        .store()
        .get_event("test", "evt_replay")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, hookline::store::Outcome::Accepted);
}
