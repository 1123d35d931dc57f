//! Follow-ups against the emulator: the worker against a local HTTP target, the reconciler
//! recovering from SQS refusing sends, and exactly-once execution under redelivery (invariant 3).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use hookline::clock::{FixedClock, SharedClock};
use hookline::queue::FollowupQueue;
use hookline::reconcile;
use hookline::store::{Action, ActionStatus, Effects, FollowUp, NewEvent, Outcome};
use hookline::worker::{Handled, Retry, Worker};
use hookline_tests::{Stack, Target};
use serde_json::json;

const NOW: i64 = 1_750_000_000;

async fn record(stack: &Stack, clock: &SharedClock, id: &str, kinds: &[&str]) -> Vec<FollowUp> {
    let effects = Effects {
        change: None,
        actions: kinds
            .iter()
            .map(|k| Action::new(k, json!({"event": id, "kind": k})))
            .collect(),
        ignored: false,
    };
    let event = NewEvent {
        source: "stripe",
        function: "payment-events",
        event_id: id,
        event_type: "invoice.paid",
        provider_ts: NOW * 1000,
        body: b"{}",
    };
    match stack
        .store(clock.clone())
        .record(&event, &effects)
        .await
        .unwrap()
    {
        Outcome::Accepted(f) => f,
        other => panic!("expected accepted, got {other:?}"),
    }
}

fn worker(stack: &Stack, clock: &SharedClock, target: &Target, kinds: &[&str]) -> Worker {
    let targets: BTreeMap<String, url::Url> = kinds
        .iter()
        .map(|k| ((*k).to_owned(), target.url(k)))
        .collect();
    Worker::from_parts(stack.store(clock.clone()), targets, Duration::from_secs(2)).unwrap()
}

fn body(f: &FollowUp) -> String {
    hookline::queue::encode(f)
}

async fn status(stack: &Stack, clock: &SharedClock, id: &str, kind: &str) -> ActionStatus {
    let ev = stack
        .store(clock.clone())
        .get_event("stripe", id)
        .await
        .unwrap()
        .unwrap();
    ev.outbox.iter().find(|o| o.kind == kind).unwrap().status
}

#[tokio::test]
async fn a_2xx_marks_done_with_an_idempotency_key_and_redelivery_does_not_rerun() {
    let stack = Stack::new().await.unwrap();
    let clock: SharedClock = FixedClock::at_secs(NOW);
    let target = Target::start(vec![]).await.unwrap();
    let f = record(&stack, &clock, "evt_w1", &["receipt"]).await;
    let w = worker(&stack, &clock, &target, &["receipt"]);

    assert_eq!(w.handle_message(&body(&f[0])).await, Ok(Handled::Done));
    assert_eq!(
        w.handle_message(&body(&f[0])).await,
        Ok(Handled::AlreadyFinished)
    );
    assert_eq!(target.hits(), 1, "run once");
    let got = &target.received()[0];
    assert_eq!(got.path, "/receipt");
    assert_eq!(
        got.idempotency_key.as_deref(),
        Some("stripe:evt_w1:receipt")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got.body).unwrap(),
        json!({"event": "evt_w1", "kind": "receipt"})
    );
    assert_eq!(
        status(&stack, &clock, "evt_w1", "receipt").await,
        ActionStatus::Done
    );
    let pending = stack
        .store(clock.clone())
        .pending_before(i64::MAX, 10)
        .await
        .unwrap();
    assert!(
        pending.is_empty(),
        "a finished outbox leaves the pending index"
    );
}

#[tokio::test]
async fn a_5xx_is_retried_and_then_runs_once() {
    let stack = Stack::new().await.unwrap();
    let clock: SharedClock = FixedClock::at_secs(NOW);
    let target = Target::start(vec![503, 429]).await.unwrap();
    let f = record(&stack, &clock, "evt_w2", &["receipt"]).await;
    let w = worker(&stack, &clock, &target, &["receipt"]);
    assert!(matches!(
        w.handle_message(&body(&f[0])).await,
        Err(Retry::Transient(_))
    ));
    assert!(matches!(
        w.handle_message(&body(&f[0])).await,
        Err(Retry::Transient(_))
    ));
    assert_eq!(
        status(&stack, &clock, "evt_w2", "receipt").await,
        ActionStatus::Pending
    );
    assert_eq!(w.handle_message(&body(&f[0])).await, Ok(Handled::Done));
    assert_eq!(
        w.handle_message(&body(&f[0])).await,
        Ok(Handled::AlreadyFinished)
    );
    assert_eq!(target.hits(), 3);
}

#[tokio::test]
async fn a_4xx_is_recorded_failed_and_left_for_the_dead_letter_queue() {
    let stack = Stack::new().await.unwrap();
    let clock: SharedClock = FixedClock::at_secs(NOW);
    let target = Target::start(vec![422]).await.unwrap();
    let f = record(&stack, &clock, "evt_w3", &["receipt"]).await;
    let w = worker(&stack, &clock, &target, &["receipt"]);
    assert!(matches!(
        w.handle_message(&body(&f[0])).await,
        Err(Retry::Permanent(_))
    ));
    assert_eq!(
        status(&stack, &clock, "evt_w3", "receipt").await,
        ActionStatus::Failed
    );
    // Redelivered until the queue moves it to the DLQ, never run again.
    assert!(matches!(
        w.handle_message(&body(&f[0])).await,
        Err(Retry::Permanent(_))
    ));
    assert_eq!(target.hits(), 1);
}

#[tokio::test]
async fn unconfigured_kinds_are_skipped_and_unreachable_targets_retried() {
    let stack = Stack::new().await.unwrap();
    let clock: SharedClock = FixedClock::at_secs(NOW);
    let f = record(&stack, &clock, "evt_w4", &["welcome", "analytics"]).await;
    let mut targets = BTreeMap::new();
    targets.insert(
        "analytics".to_owned(),
        url::Url::parse("http://127.0.0.1:1/analytics").unwrap(),
    );
    let w = Worker::from_parts(
        stack.store(clock.clone()),
        targets,
        Duration::from_millis(500),
    )
    .unwrap();
    let welcome = f.iter().find(|x| x.action == "welcome").unwrap();
    let analytics = f.iter().find(|x| x.action == "analytics").unwrap();
    assert_eq!(w.handle_message(&body(welcome)).await, Ok(Handled::Skipped));
    assert_eq!(
        status(&stack, &clock, "evt_w4", "welcome").await,
        ActionStatus::Skipped
    );
    assert!(matches!(
        w.handle_message(&body(analytics)).await,
        Err(Retry::Transient(_))
    ));
    assert!(matches!(
        w.handle_message("not json").await,
        Err(Retry::Malformed(_))
    ));
}

#[tokio::test]
async fn a_batch_reports_only_its_failed_messages() {
    let stack = Stack::new().await.unwrap();
    let clock: SharedClock = FixedClock::at_secs(NOW);
    let target = Target::start(vec![]).await.unwrap();
    let ok = record(&stack, &clock, "evt_b1", &["receipt"]).await;
    let w = worker(&stack, &clock, &target, &["receipt"]);
    let mut event = SqsEvent::default();
    for (id, body) in [("m-ok", body(&ok[0])), ("m-bad", "{}".to_owned())] {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        event.records.push(m);
    }
    let resp = w.handle(event).await;
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-bad"]);
}

#[tokio::test]
async fn sqs_refusing_sends_loses_nothing_the_reconciler_enqueues_and_each_action_runs_once() {
    let stack = Stack::new().await.unwrap();
    let clock = FixedClock::at_secs(NOW);
    let shared: SharedClock = clock.clone();
    let spec = payment_events::spec();
    let secret = hookline_tests::LOCAL_SECRET;
    // SQS refuses: the queue does not exist.
    let missing = FollowupQueue::new(stack.sqs.clone(), format!("{}-missing", stack.queue_url));
    let rx =
        hookline_tests::local_receiver(spec.clone(), &shared, stack.store(shared.clone()), missing);
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../../events/payment-events/invoice.paid.json"
    ))
    .unwrap();
    v["id"] = "evt_lost_1".into();
    let body_bytes = serde_json::to_vec(&v).unwrap();
    let req = hookline_tests::signed_request(&spec.scheme, &body_bytes, secret, "x", NOW);
    let resp = rx.handle(req).await;
    assert_eq!(
        resp.status(),
        200,
        "the event is durable: the sender must not retry"
    );

    let store = stack.store(shared.clone());
    let queue = stack.queue();
    // Within the grace period the reconciler leaves it alone.
    let r = reconcile::run(&store, &queue, &shared, 300, 10)
        .await
        .unwrap();
    assert_eq!(
        r,
        reconcile::Report {
            events: 0,
            enqueued: 0
        }
    );
    clock.advance_secs(301);
    let r = reconcile::run(&store, &queue, &shared, 300, 10)
        .await
        .unwrap();
    let event = store
        .get_event("stripe", "evt_lost_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.events, 1);
    assert_eq!(r.enqueued, event.outbox.len());
    // Re-enqueued events wait a full grace period before the next try.
    let again = reconcile::run(&store, &queue, &shared, 300, 10)
        .await
        .unwrap();
    assert_eq!(again.enqueued, 0);

    let target = Target::start(vec![]).await.unwrap();
    let kinds: Vec<&str> = event.outbox.iter().map(|o| o.kind.as_str()).collect();
    let w = worker(&stack, &shared, &target, &kinds);
    let msgs = stack.drain(&stack.queue_url).await.unwrap();
    assert_eq!(msgs.len(), event.outbox.len());
    for m in msgs.iter().chain(msgs.iter()) {
        // Every message delivered twice: each action still runs once.
        w.handle_message(m.body().unwrap()).await.unwrap();
    }
    assert_eq!(target.hits(), event.outbox.len());
    clock.advance_secs(301);
    let done = reconcile::run(&store, &queue, &shared, 300, 10)
        .await
        .unwrap();
    assert_eq!(done.events, 0, "nothing pending any more");
}
