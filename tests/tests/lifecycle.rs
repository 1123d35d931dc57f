//! The follow-up lifecycle against the emulator with the real SDK clients (docs/FOLLOWUPS.md):
//! event actions once per distinct event whatever the arrival order (guards read when they run),
//! state syncs that converge on the entity's final state (one entity decides each grant; a state
//! maybe sent counts as sent; keys follow the state), only the claimant POSTs, the DLQ holds
//! a copy of every FAILED one, the reconciler finds by time what nobody works on, and faults
//! injected where the guarantee lives (a failed mark after a 2xx, a crash after a claim, a lost
//! response, a slow SQS, a corrupt record). Time is a [`FixedClock`]; a message's backoff is
//! ended with [`Stack::release`] instead of waiting.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::Intercept;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline::clock::{Clock, FixedClock, SharedClock};
use hookline::followup::Timers;
use hookline::queue::FollowupQueue;
use hookline::receiver::{Receiver, ReceiverSpec};
use hookline::store::{ActionStatus, EventStore, FollowUp};
use hookline::worker::{Handled, Retry, Worker};
use hookline_tests::{LOCAL_SECRET, Received, Stack, Target, init_test_log, local_receiver};
use serde_json::{Value, json};

const NOW: i64 = 1_750_000_000;

use hookline_tests::sample;

/// Everything one scenario needs: a private table and queues, a clock, the receivers, a target
/// and a worker pointed at it.
struct Harness {
    stack: Stack,
    clock: Arc<FixedClock>,
    target: Target,
    worker: Worker,
}

impl Harness {
    async fn new(script: Vec<u16>) -> Self {
        init_test_log();
        let stack = Stack::new().await.unwrap();
        let clock = FixedClock::at_secs(NOW);
        let target = Target::start(script).await.unwrap();
        let worker = stack.worker(&target, Timers::default(), clock.clone());
        Self {
            stack,
            clock,
            target,
            worker,
        }
    }

    fn shared(&self) -> SharedClock {
        self.clock.clone()
    }

    fn store(&self) -> EventStore {
        self.stack.store(self.shared())
    }

    fn receiver(&self, spec: ReceiverSpec) -> Receiver {
        local_receiver(spec, &self.shared(), self.store(), self.stack.queue())
    }

    /// Posts a signed delivery; returns the answer's `status`.
    async fn deliver(&self, spec: &ReceiverSpec, body: &Value, delivery_id: &str) -> String {
        let body = serde_json::to_vec(body).unwrap();
        let req = hookline_tests::signed_request(
            &spec.scheme,
            &body,
            LOCAL_SECRET,
            delivery_id,
            self.clock.now_secs(),
        );
        let resp = self.receiver(spec.clone()).handle(req).await;
        assert_eq!(resp.status(), 200, "delivery {delivery_id}");
        let answer: Value = match resp.body() {
            lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
            lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap(),
            _ => Value::Null,
        };
        answer["status"].as_str().unwrap().to_owned()
    }

    /// Feeds the queue to the worker until nothing is left, ending every backoff at once.
    async fn settle(&self, seed: u64) {
        for round in 0..50 {
            let fed = self
                .stack
                .feed(&self.worker, 3, seed + round)
                .await
                .unwrap();
            self.stack.release(&fed.failed).await.unwrap();
            if fed.received == 0 {
                return;
            }
        }
        panic!("the queue did not settle");
    }

    /// Requests the target received, by Idempotency-Key.
    fn posts_by_key(&self) -> BTreeMap<String, Vec<Received>> {
        let mut by: BTreeMap<String, Vec<Received>> = BTreeMap::new();
        for r in self.target.received() {
            by.entry(r.idempotency_key.clone().unwrap_or_default())
                .or_default()
                .push(r);
        }
        by
    }

    async fn reconcile(&self) -> hookline::reconcile::Report {
        hookline::reconcile::run(&self.store(), &self.stack.queue(), 100)
            .await
            .unwrap()
    }

    async fn action_status(&self, source: &str, id: &str, kind: &str) -> ActionStatus {
        self.store()
            .get_event(source, id)
            .await
            .unwrap()
            .unwrap()
            .outbox
            .iter()
            .find(|o| o.kind == kind)
            .unwrap()
            .status
    }
}

/// A fresh `invoice.paid`: event `evt_<tag>` for invoice `in_<tag>`.
fn invoice_paid(tag: &str) -> Value {
    let mut v = sample("payment-events", "invoice.paid");
    v["id"] = format!("evt_{tag}").into();
    v["data"]["object"]["id"] = format!("in_{tag}").into();
    v
}

/// A queue message for the `receipt` of Stripe event `evt_<tag>`.
fn receipt_message(tag: &str) -> String {
    hookline::queue::encode(&FollowUp::Action {
        source: "stripe".into(),
        event_id: format!("evt_{tag}"),
        action: "receipt".into(),
    })
}

/// Every ordering of `n` items.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// A Stripe subscription event: `stage` is created/updated/deleted, at `created`, with `status`.
fn subscription_event(stage: &str, id: &str, sub: &str, created: i64, status: &str) -> Value {
    let mut v = sample("payment-events", &format!("customer.subscription.{stage}"));
    v["id"] = id.into();
    v["created"] = created.into();
    v["data"]["object"]["id"] = sub.into();
    v["data"]["object"]["status"] = status.into();
    if stage == "updated" {
        v["data"]["previous_attributes"] = json!({"metadata": {"plan_note": "old"}});
    }
    v
}

/// Delivers a subscription lifecycle in every order and checks the access sync converged.
async fn subscription_lifecycle_converges(
    events: &[(&str, &str)],
    final_status: &str,
    grants: bool,
) {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    for (n, order) in permutations(events.len()).into_iter().enumerate() {
        let sub = format!("sub_order{n}");
        let bodies: Vec<Value> = events
            .iter()
            .enumerate()
            .map(|(i, (stage, status))| {
                subscription_event(
                    stage,
                    &format!("evt_{sub}_{i}"),
                    &sub,
                    NOW - 100 + 10 * i64::try_from(i).unwrap(),
                    status,
                )
            })
            .collect();
        for (step, &i) in order.iter().enumerate() {
            let answer = h.deliver(&spec, &bodies[i], &format!("d{n}{i}")).await;
            assert!(answer == "accepted" || answer == "stale", "{answer}");
            // Interleave the worker with the senders in half of the orders.
            if (n + step) % 2 == 0 {
                h.settle(u64::try_from(n * 10 + step).unwrap()).await;
            }
        }
        h.settle(u64::try_from(n).unwrap()).await;

        let entity = h
            .store()
            .get_entity("subscription", &sub)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entity.attrs["status"], final_status, "order {order:?}");
        assert_eq!(
            entity.last_event_id,
            format!("evt_{sub}_{}", events.len() - 1)
        );
        let sync = entity.sync.unwrap();
        assert_eq!(sync.status, ActionStatus::Done, "order {order:?}");
        let access: Vec<String> = h
            .target
            .received()
            .into_iter()
            .filter(|r| r.body.contains(&format!("\"{sub}\"")))
            .map(|r| r.path)
            .collect();
        match (grants, access.last().map(String::as_str)) {
            (true, Some("/provision_access")) => {}
            (false, None | Some("/revoke_access")) => {}
            other => panic!("order {order:?}: access POSTs {access:?} ({other:?})"),
        }
        if !grants && access.iter().any(|p| p == "/provision_access") {
            assert_eq!(access.last().map(String::as_str), Some("/revoke_access"));
        }
    }
    // Each access state was POSTed under its own key, and no key twice.
    assert!(
        h.posts_by_key().values().all(|v| v.len() == 1),
        "{:?}",
        h.posts_by_key().keys()
    );
    assert_eq!(h.stack.depth(&h.stack.dlq_url).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_subscription_created_active_after_a_metadata_update_is_provisioned_in_every_order() {
    subscription_lifecycle_converges(
        &[("created", "active"), ("updated", "active")],
        "active",
        true,
    )
    .await;
}

#[tokio::test]
async fn a_canceled_subscription_ends_revoked_in_every_order() {
    subscription_lifecycle_converges(
        &[
            ("created", "active"),
            ("updated", "active"),
            ("deleted", "canceled"),
        ],
        "canceled",
        false,
    )
    .await;
}

#[tokio::test]
async fn user_lifecycle_in_every_order_runs_each_event_action_once_and_erases_the_user() {
    let h = Harness::new(Vec::new()).await;
    let spec = user_events::spec();
    let stages = ["created", "updated", "deleted"];
    for (n, order) in permutations(3).into_iter().enumerate() {
        let user = format!("user_order{n}");
        let bodies: Vec<Value> = stages
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let mut v = sample("user-events", &format!("user.{stage}"));
                v["data"]["id"] = user.clone().into();
                let ts = (NOW - 100 + 10 * i64::try_from(i).unwrap()) * 1000;
                v["timestamp"] = ts.into();
                if *stage != "deleted" {
                    v["data"]["updated_at"] = ts.into();
                }
                v
            })
            .collect();
        for &i in &order {
            let answer = h
                .deliver(&spec, &bodies[i], &format!("msg_{user}_{i}"))
                .await;
            assert!(answer == "accepted" || answer == "stale", "{answer}");
        }
        h.settle(u64::try_from(n).unwrap()).await;

        let entity = h.store().get_entity("user", &user).await.unwrap().unwrap();
        assert!(entity.deleted, "user.deleted always wins (order {order:?})");
        assert!(entity.attrs.is_empty(), "a tombstone erases the attributes");
        for i in 0..3 {
            let id = format!("msg_{user}_{i}");
            let key = format!("users:{id}:analytics:0");
            assert_eq!(
                h.posts_by_key().get(&key).map(Vec::len),
                Some(1),
                "analytics of {id} exactly once, stale or not (order {order:?})"
            );
        }
        // Every order delivers the delete before the worker runs: the welcome is not sent.
        let welcome = h
            .action_status("users", &format!("msg_{user}_0"), "welcome")
            .await;
        assert_eq!(welcome, ActionStatus::Skipped, "order {order:?}");
        assert!(
            !h.posts_by_key()
                .contains_key(&format!("users:msg_{user}_0:welcome:0"))
        );
    }
}

#[tokio::test]
async fn copies_of_one_message_post_once_in_one_batch_and_in_concurrent_batches() {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    for (n, batch) in [(0, 10), (1, 1)] {
        let v = invoice_paid(&format!("copies_{n}"));
        assert_eq!(h.deliver(&spec, &v, "d").await, "accepted");
        let copy = receipt_message(&format!("copies_{n}"));
        for _ in 0..3 {
            h.stack
                .queue()
                .send_body_to(&h.stack.queue_url, &copy)
                .await
                .unwrap();
        }
        // batch 10: the four copies run concurrently in one batch; batch 1: in four
        // concurrent batches.
        let fed = h.stack.feed(&h.worker, batch, 7).await.unwrap();
        assert_eq!(fed.received, 4);
        assert!(fed.failed.is_empty());
        let key = format!("stripe:evt_copies_{n}:receipt:0");
        assert_eq!(
            h.posts_by_key()[&key].len(),
            1,
            "one POST (batch size {batch})"
        );
        assert_eq!(
            h.action_status("stripe", &format!("evt_copies_{n}"), "receipt")
                .await,
            ActionStatus::Done
        );
    }
}

#[tokio::test]
async fn a_target_refusing_with_401_fails_to_the_dlq_and_a_retry_after_the_fix_runs_once_more() {
    let h = Harness::new(vec![401, 401, 401]).await;
    let spec = payment_events::spec();
    for n in 0..3 {
        let v = invoice_paid(&format!("401_{n}"));
        assert_eq!(h.deliver(&spec, &v, "d").await, "accepted");
    }
    let fed = h.stack.feed(&h.worker, 10, 1).await.unwrap();
    assert_eq!(
        (fed.received, fed.failed.len()),
        (3, 0),
        "FAILED messages leave the queue"
    );
    for n in 0..3 {
        let event = h
            .store()
            .get_event("stripe", &format!("evt_401_{n}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.outbox[0].status, ActionStatus::Failed);
        assert_eq!(event.outbox[0].last_status, 401);
    }
    assert_eq!(h.stack.depth(&h.stack.queue_url).await.unwrap(), (0, 0));
    let dlq = h.stack.drain(&h.stack.dlq_url).await.unwrap();
    let mut names: Vec<String> = dlq
        .iter()
        .map(|m| hookline::queue::decode(m.body().unwrap()).unwrap().name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "stripe:evt_401_0:receipt",
            "stripe:evt_401_1:receipt",
            "stripe:evt_401_2:receipt"
        ],
        "the DLQ holds exactly the FAILED ones"
    );
    // Fixed target: an operator's retry resets with a new generation and runs once more.
    assert!(
        h.store()
            .retry_action(
                "stripe",
                "evt_401_0",
                "receipt",
                hookline::store::RetryScope::FailedOrSkipped
            )
            .await
            .unwrap()
    );
    assert!(
        !h.store()
            .retry_action(
                "stripe",
                "evt_401_0",
                "receipt",
                hookline::store::RetryScope::FailedOrSkipped
            )
            .await
            .unwrap()
    );
    let again = receipt_message("401_0");
    h.stack
        .queue()
        .send_body_to(&h.stack.queue_url, &again)
        .await
        .unwrap();
    h.settle(2).await;
    assert_eq!(
        h.action_status("stripe", "evt_401_0", "receipt").await,
        ActionStatus::Done
    );
    let posts = h.posts_by_key();
    assert_eq!(posts["stripe:evt_401_0:receipt:0"].len(), 1);
    assert_eq!(
        posts["stripe:evt_401_0:receipt:1"].len(),
        1,
        "a new key for the deliberate retry"
    );
}

/// A target down for three days loses nothing (docs/FOLLOWUPS.md, "Timers"): the clock follows
/// the real schedule (each cycle ends exactly when the longest backoff held ends, never sooner:
/// a copy released earlier would find its follow-up held and be dropped), each wait is at least
/// the jitter's minimum, and after 72 hours of refusals no follow-up is FAILED.
#[tokio::test]
async fn a_target_down_for_three_days_has_one_copy_in_flight_and_each_action_runs_once_after() {
    let h = Harness::new(Vec::new()).await;
    h.target.set_default(503);
    let timers = Timers::default();
    let spec = payment_events::spec();
    for n in 0..3 {
        let v = invoice_paid(&format!("down_{n}"));
        assert_eq!(h.deliver(&spec, &v, "d").await, "accepted");
    }
    let start = h.clock.now_millis();
    let fed = h.stack.feed(&h.worker, 10, 0).await.unwrap();
    assert_eq!(fed.failed.len(), 3);
    let mut failed = fed.failed;
    let mut attempts = 1;
    loop {
        // Each follow-up holds until one second before its message reappears.
        let failed_at = h.clock.now_millis();
        let mut reappear = failed_at;
        for n in 0..3 {
            let event = h
                .store()
                .get_event("stripe", &format!("evt_down_{n}"))
                .await
                .unwrap()
                .unwrap();
            let entry = &event.outbox[0];
            assert_eq!(
                (entry.status, entry.attempt),
                (ActionStatus::Pending, attempts),
                "attempt {attempts}: backing off, not FAILED"
            );
            let at = entry.lease_until.unwrap() + 1_000;
            let least = timers.backoff(u32::try_from(attempts).unwrap(), None, 0.0);
            assert!(
                at - failed_at >= i64::try_from(least.as_millis()).unwrap(),
                "attempt {attempts}: waits at least {least:?}"
            );
            reappear = reappear.max(at);
        }
        let report = h.reconcile().await;
        assert_eq!(
            report.enqueued, 0,
            "attempt {attempts}: in flight, not re-sent"
        );
        let (visible, in_flight) = h.stack.depth(&h.stack.queue_url).await.unwrap();
        assert_eq!(
            visible + in_flight,
            3,
            "attempt {attempts}: one copy of each"
        );
        assert_eq!(h.stack.depth(&h.stack.dlq_url).await.unwrap(), (0, 0));
        h.clock.advance_secs((reappear - failed_at + 999) / 1_000);
        if h.clock.now_millis() - start >= 72 * 3_600 * 1_000 {
            break;
        }
        h.stack.release(&failed).await.unwrap();
        let fed = h
            .stack
            .feed(&h.worker, 10, u64::try_from(attempts).unwrap())
            .await
            .unwrap();
        assert_eq!(fed.received, 3, "attempt {attempts}: each follow-up once");
        failed = fed.failed;
        assert_eq!(failed.len(), 3);
        attempts += 1;
    }
    assert!(
        attempts < i64::from(timers.max_attempts),
        "three days took {attempts} of {} attempts",
        timers.max_attempts
    );
    // Back after three days: each runs once more, with the key it always had.
    h.target.set_default(200);
    h.stack.release(&failed).await.unwrap();
    h.settle(9).await;
    for n in 0..3 {
        let id = format!("evt_down_{n}");
        assert_eq!(
            h.action_status("stripe", &id, "receipt").await,
            ActionStatus::Done
        );
        let posts = h.posts_by_key()[&format!("stripe:{id}:receipt:0")].len();
        assert_eq!(
            i64::try_from(posts).unwrap(),
            attempts + 1,
            "every refused attempt and one accepted, all with one key"
        );
    }
    assert_eq!(h.stack.depth(&h.stack.dlq_url).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn conflict_is_retried_redirect_fails_without_following_and_retry_after_is_honoured() {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    let record = invoice_paid;
    let message = receipt_message;
    let target = Target::start_with_retry_after(vec![
        (409, None),
        (200, None),
        (302, None),
        (429, Some("120")),
    ])
    .await
    .unwrap();
    let worker = h.stack.worker(&target, Timers::default(), h.shared());
    for n in ["409", "302", "429"] {
        assert_eq!(h.deliver(&spec, &record(n), "d").await, "accepted");
    }
    h.stack.drain(&h.stack.queue_url).await.unwrap();

    let first = worker.handle_message(&message("409")).await;
    assert!(matches!(first, Err(Retry::Backoff { .. })), "{first:?}");
    h.clock.advance_secs(60);
    assert_eq!(
        worker.handle_message(&message("409")).await,
        Ok(Handled::Done)
    );

    assert_eq!(
        worker.handle_message(&message("302")).await,
        Ok(Handled::Failed)
    );
    let event = h
        .store()
        .get_event("stripe", "evt_302")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.outbox[0].status, event.outbox[0].last_status),
        (ActionStatus::Failed, 302)
    );
    assert!(
        target.received().iter().all(|r| r.path != "/redirected"),
        "a redirect is never followed"
    );

    match worker.handle_message(&message("429")).await {
        Err(Retry::Backoff { delay, .. }) => assert_eq!(delay, Duration::from_secs(120)),
        other => panic!("{other:?}"),
    }
    assert_eq!(target.hits(), 4);
}

/// Fails the `nth` (1-based) DynamoDB call of operation `op` before it is sent.
#[derive(Debug, Clone)]
struct FailNth {
    op: &'static str,
    nth: usize,
    seen: Arc<AtomicUsize>,
}

impl Intercept for FailNth {
    fn name(&self) -> &'static str {
        "FailNth"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = ctx.request().headers().get("x-amz-target").unwrap_or("");
        if target.ends_with(self.op) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            return Err("injected: the connection dropped".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_mark_that_fails_after_the_2xx_repeats_the_post_with_the_same_key() {
    let h = Harness::new(Vec::new()).await;
    assert_eq!(
        h.deliver(
            &payment_events::spec(),
            &sample("payment-events", "invoice.paid"),
            "d"
        )
        .await,
        "accepted"
    );
    // The worker's second UpdateItem is the mark after the POST (the first is the claim).
    let failing = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&h.stack.sdk)
            .interceptor(FailNth {
                op: "UpdateItem",
                nth: 2,
                seen: Arc::default(),
            })
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    );
    let targets = hookline_receivers::action_kinds()
        .iter()
        .map(|k| {
            (
                (*k).to_owned(),
                hookline::config::Target::Url(h.target.url(k)),
            )
        })
        .collect();
    let worker = Worker::from_parts(
        EventStore::new(failing, &h.stack.table, 30, h.shared()),
        h.stack.queue(),
        &h.stack.dlq_url,
        targets,
        Timers::default(),
        h.shared(),
    )
    .unwrap();
    let fed = h.stack.feed(&worker, 10, 1).await.unwrap();
    assert_eq!(fed.failed.len(), 1, "the message comes back");
    h.stack.release(&fed.failed).await.unwrap();
    let fed = h.stack.feed(&worker, 10, 2).await.unwrap();
    assert_eq!((fed.received, fed.failed.len()), (1, 0));
    assert_eq!(
        h.target.hits(),
        1,
        "still leased: the copy is dropped, no second POST yet"
    );
    // The lease runs out (the message that carried it was dropped): the reconciler finds it.
    h.clock.advance_secs(25 + 180 + 1);
    assert_eq!(h.reconcile().await.enqueued, 1);
    h.settle(3).await;
    let id = sample("payment-events", "invoice.paid")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.action_status("stripe", &id, "receipt").await,
        ActionStatus::Done
    );
    let posts = h.posts_by_key();
    assert_eq!(posts.len(), 1, "one key: {:?}", posts.keys());
    assert_eq!(
        posts.values().next().unwrap().len(),
        2,
        "the repeat carries the same key"
    );
}

#[tokio::test]
async fn a_worker_crash_between_claim_and_post_is_recovered_by_the_reconciler_with_one_post() {
    let h = Harness::new(Vec::new()).await;
    let body = sample("payment-events", "invoice.paid");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.deliver(&payment_events::spec(), &body, "d").await,
        "accepted"
    );
    // A worker claims, then dies before its POST; its message is gone with it.
    let claim = h
        .store()
        .claim_action("stripe", &id, "receipt", 25_000, 180_000)
        .await
        .unwrap();
    assert!(claim.is_some());
    h.stack.drain(&h.stack.queue_url).await.unwrap();
    assert_eq!(h.reconcile().await.enqueued, 0, "leased: not due yet");
    h.clock.advance_secs(25 + 180 + 1);
    assert_eq!(
        h.reconcile().await.enqueued,
        1,
        "the lease and the visibility are over"
    );
    h.settle(4).await;
    assert_eq!(
        h.action_status("stripe", &id, "receipt").await,
        ActionStatus::Done
    );
    assert_eq!(h.target.hits(), 1);
}

#[tokio::test]
async fn a_corrupt_record_in_the_pending_index_does_not_stop_the_reconciler() {
    let h = Harness::new(Vec::new()).await;
    let body = sample("payment-events", "invoice.paid");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.deliver(&payment_events::spec(), &body, "d").await,
        "accepted"
    );
    h.stack.drain(&h.stack.queue_url).await.unwrap();
    // An item in the pending index that no code of ours wrote.
    h.stack
        .dynamo
        .put_item()
        .table_name(&h.stack.table)
        .item("pk", AttributeValue::S("EVENT#stripe#evt_garbage".into()))
        .item("sk", AttributeValue::S("EVENT".into()))
        .item("pending_pk", AttributeValue::S("PENDING#0".into()))
        .item("next_check_at", AttributeValue::N("0".into()))
        .item("outbox", AttributeValue::S("not a map".into()))
        .send()
        .await
        .unwrap();
    h.clock.advance_secs(301);
    let report = h.reconcile().await;
    assert_eq!(report.corrupt, ["EVENT#stripe#evt_garbage"]);
    assert_eq!(report.enqueued, 1, "the good record is still handled");
    h.settle(5).await;
    assert_eq!(
        h.action_status("stripe", &id, "receipt").await,
        ActionStatus::Done
    );
}

#[tokio::test]
async fn a_retry_after_a_lost_response_answers_duplicate_and_enqueues_the_followups_itself() {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    let body = sample("payment-events", "invoice.paid");
    // The first delivery commits, but its follow-ups never reach SQS (the caller timed out and
    // the send was cut short): a receiver whose queue does not exist stands in for it.
    let gone = FollowupQueue::new(h.stack.sqs.clone(), format!("{}-gone", h.stack.queue_url));
    let first = local_receiver(spec.clone(), &h.shared(), h.store(), gone);
    let req = hookline_tests::signed_request(
        &spec.scheme,
        &serde_json::to_vec(&body).unwrap(),
        LOCAL_SECRET,
        "d",
        NOW,
    );
    assert_eq!(first.handle(req).await.status(), 200);
    assert_eq!(h.stack.depth(&h.stack.queue_url).await.unwrap(), (0, 0));
    h.stack.calls.reset();
    assert_eq!(h.deliver(&spec, &body, "d").await, "duplicate");
    assert_eq!(
        h.stack.calls.calls(),
        ["TransactWriteItems", "SendMessageBatch"],
        "no extra read: the failed condition's ALL_OLD item carries the outbox"
    );
    h.settle(6).await;
    assert_eq!(h.target.hits(), 1);
}

#[tokio::test]
async fn a_slow_sqs_does_not_hold_the_answer_and_the_reconciler_sends() {
    let h = Harness::new(Vec::new()).await;
    // An SQS endpoint that accepts connections and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_url = format!("http://{}", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = hole.accept().await {
            held.push(sock);
        }
    });
    let slow_sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&h.stack.sdk)
            .endpoint_url(hole_url)
            .build(),
    );
    let mut spec = payment_events::spec();
    spec.sender_timeout = Duration::from_secs(2);
    let rx = local_receiver(
        spec.clone(),
        &h.shared(),
        h.store(),
        FollowupQueue::new(slow_sqs, &h.stack.queue_url),
    );
    let body = sample("payment-events", "invoice.paid");
    let req = hookline_tests::signed_request(
        &spec.scheme,
        &serde_json::to_vec(&body).unwrap(),
        LOCAL_SECRET,
        "d",
        NOW,
    );
    let resp = rx.handle(req).await;
    assert_eq!(
        resp.status(),
        200,
        "answered within its budget, the event durable"
    );
    assert_eq!(h.stack.depth(&h.stack.queue_url).await.unwrap(), (0, 0));
    h.clock.advance_secs(301);
    assert_eq!(h.reconcile().await.enqueued, 1);
    h.settle(7).await;
    assert_eq!(h.target.hits(), 1);
}

#[tokio::test]
async fn the_worker_and_the_reconciler_emit_their_metric_lines() {
    let h = Harness::new(vec![503, 401]).await;
    let captured = hookline::metrics::Captured::default();
    let metrics = hookline::metrics::Metrics::to_writer(captured.clone(), h.shared());
    let worker = h
        .stack
        .worker(&h.target, Timers::default(), h.shared())
        .with_metrics(metrics.clone());
    let spec = payment_events::spec();
    for n in 0..3 {
        let v = invoice_paid(&format!("metrics_{n}"));
        assert_eq!(h.deliver(&spec, &v, "d").await, "accepted");
    }
    h.stack.feed(&worker, 1, 3).await.unwrap();
    let report = hookline::reconcile::run_with(&h.store(), &h.stack.queue(), 100, &metrics)
        .await
        .unwrap();
    assert_eq!(report.enqueued, 0);
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    for line in captured.lines() {
        assert!(line["_aws"]["CloudWatchMetrics"].is_array(), "{line}");
        for name in [
            "followups_done",
            "followups_retried",
            "followups_failed",
            "reconciler_reenqueued",
        ] {
            if let Some(v) = line[name].as_f64() {
                *seen
                    .entry(format!("{name}/{}", line["source"].as_str().unwrap()))
                    .or_default() += v;
            }
        }
    }
    assert_eq!(
        seen,
        BTreeMap::from([
            ("followups_done/stripe".to_owned(), 1.0),
            ("followups_failed/stripe".to_owned(), 1.0),
            ("followups_retried/stripe".to_owned(), 1.0),
            ("reconciler_reenqueued/all".to_owned(), 0.0),
        ])
    );
}

#[tokio::test]
async fn the_invocation_deadline_bounds_the_budget_and_a_past_one_is_ignored() {
    use lambda_http::RequestExt as _;
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    let rx = h.receiver(spec.clone());
    let signed = |id: &str| {
        let mut v = sample("payment-events", "invoice.paid");
        v["id"] = id.into();
        hookline_tests::signed_request(
            &spec.scheme,
            &serde_json::to_vec(&v).unwrap(),
            LOCAL_SECRET,
            "d",
            NOW,
        )
    };
    // A deadline already past when the request arrives (a local runtime's): the sender's
    // timeout bounds the request instead, and it is handled.
    let mut past = lambda_http::Context::default();
    past.deadline = 1;
    let resp = rx
        .handle(signed("evt_past").with_lambda_context(past))
        .await;
    assert_eq!(resp.status(), 200);
    // A deadline too close to do anything: the commit is not attempted past it, the sender
    // retries (503), and nothing was written.
    let mut close = lambda_http::Context::default();
    close.deadline = u64::try_from(h.clock.now_millis() + 100).unwrap();
    let resp = rx
        .handle(signed("evt_close").with_lambda_context(close))
        .await;
    assert_eq!(resp.status(), 503);
    assert!(
        h.store()
            .get_event("stripe", "evt_close")
            .await
            .unwrap()
            .is_none()
    );
}

/// Found by `scripts/storm.py` (docs/RELIABILITY.md): a backoff held only the message that carried
/// the failed attempt, so any other copy of its message (a duplicate delivery re-enqueues what is
/// still PENDING; the reconciler; a redrive) claimed it at once and POSTed again; under a storm
/// with the target down, eight attempts went by in about three seconds. A backoff now keeps the
/// follow-up's `lease_until` until its message reappears.
#[tokio::test]
async fn a_backoff_holds_every_copy_of_the_followup_not_only_the_message_that_failed() {
    let h = Harness::new(Vec::new()).await;
    h.target.set_default(503);
    let spec = payment_events::spec();
    let v = invoice_paid("backoff");
    // Three deliveries, as providers make: the accepted one and two duplicates, each enqueueing
    // the still PENDING receipt.
    assert_eq!(h.deliver(&spec, &v, "d").await, "accepted");
    assert_eq!(h.deliver(&spec, &v, "d").await, "duplicate");
    assert_eq!(h.deliver(&spec, &v, "d").await, "duplicate");
    let copy = receipt_message("backoff");
    // The first copy fails against the target and backs off (30 s or more from now)...
    assert!(matches!(
        h.worker.handle_message(&copy).await,
        Err(Retry::Backoff { .. })
    ));
    // ...and at the same instant, the other copies must not POST again.
    for _ in 0..2 {
        let _ = h.worker.handle_message(&copy).await;
    }
    let posts = h.posts_by_key()["stripe:evt_backoff:receipt:0"].len();
    let event = h
        .store()
        .get_event("stripe", "evt_backoff")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (posts, event.outbox[0].attempt),
        (1, 1),
        "POSTs and attempts within one backoff"
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 14: one entity decides; nothing hidden by an ambiguous answer (docs/FOLLOWUPS.md).

/// A checkout event `name` for session `cs` at `created`: `mode`, `payment_status`, and the
/// subscription it started (subscription mode).
fn checkout_event(
    name: &str,
    id: &str,
    cs: &str,
    created: i64,
    mode: &str,
    payment_status: &str,
    subscription: Option<&str>,
) -> Value {
    let mut v = sample("payment-events", name);
    v["data"]["object"] =
        sample("payment-events", "checkout.session.async_payment_succeeded")["data"]["object"]
            .clone();
    v["id"] = id.into();
    v["created"] = created.into();
    let obj = &mut v["data"]["object"];
    obj["id"] = cs.into();
    obj["mode"] = mode.into();
    obj["payment_status"] = payment_status.into();
    obj["subscription"] = subscription.into();
    v
}

/// The access POSTs (path, key) whose body names `needle`, in the order the target got them.
fn access_posts(h: &Harness, needle: &str) -> Vec<(String, String)> {
    h.target
        .received()
        .into_iter()
        .filter(|r| r.body.contains(&format!("\"{needle}\"")))
        .map(|r| (r.path, r.idempotency_key.unwrap_or_default()))
        .collect()
}

/// (a) A subscription-mode checkout granted access as an event action of its own: landing after
/// the subscription's revoke (or beside a `deleted` that overtook its `created`), it left a
/// canceled subscription with access for good.
#[tokio::test]
async fn a_checkout_beside_a_canceled_subscription_never_grants_after_the_revoke_in_any_order() {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    for (n, order) in permutations(3).into_iter().enumerate() {
        let sub = format!("sub_chk{n}");
        let bodies = [
            subscription_event(
                "created",
                &format!("evt_{sub}_0"),
                &sub,
                NOW - 100,
                "active",
            ),
            checkout_event(
                "checkout.session.completed",
                &format!("evt_{sub}_1"),
                &format!("cs_{sub}"),
                NOW - 99,
                "subscription",
                "paid",
                Some(&sub),
            ),
            subscription_event(
                "deleted",
                &format!("evt_{sub}_2"),
                &sub,
                NOW - 80,
                "canceled",
            ),
        ];
        for (step, &i) in order.iter().enumerate() {
            let answer = h.deliver(&spec, &bodies[i], &format!("d{n}{i}")).await;
            assert!(answer == "accepted" || answer == "stale", "{answer}");
            if (n + step) % 2 == 0 {
                h.settle(u64::try_from(n * 10 + step).unwrap()).await;
            }
        }
        h.settle(u64::try_from(n).unwrap()).await;
        let paths: Vec<String> = access_posts(&h, &sub).into_iter().map(|p| p.0).collect();
        assert!(
            matches!(
                paths.last().map(String::as_str),
                None | Some("/revoke_access")
            ),
            "order {order:?}: the target ends revoked: {paths:?}"
        );
        if let Some(first_revoke) = paths.iter().position(|p| p == "/revoke_access") {
            assert!(
                paths[first_revoke..].iter().all(|p| p == "/revoke_access"),
                "order {order:?}: no grant after the revoke: {paths:?}"
            );
        }
        let checkout = h
            .store()
            .get_event("stripe", &format!("evt_{sub}_1"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            checkout.outbox.is_empty(),
            "a checkout sends nothing itself"
        );
    }
}

/// Fails the first DynamoDB `op` call whose request body contains `needle`, before it is sent.
#[derive(Debug, Clone)]
struct FailFirstWith {
    op: &'static str,
    needle: &'static str,
    done: Arc<AtomicUsize>,
}

impl Intercept for FailFirstWith {
    fn name(&self) -> &'static str {
        "FailFirstWith"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = ctx.request().headers().get("x-amz-target").unwrap_or("");
        let body = ctx.request().body().bytes().unwrap_or_default();
        let hit = String::from_utf8_lossy(body).contains(self.needle);
        if target.ends_with(self.op) && hit && self.done.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("injected: the connection dropped".into());
        }
        Ok(())
    }
}

/// How the grant of [`a_grant_without_a_clear_answer_is_revoked`] ends without a clear answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unclear {
    /// The target records the grant, then answers 503.
    Status503,
    /// The target never answers within the action timeout.
    Timeout,
    /// The target answers 503 and the only attempt allowed is used up: FAILED.
    Exhausted,
    /// The target answers 200, and the DONE mark is lost.
    LostMark,
}

/// A worker on the harness' table whose DynamoDB client and targets are adjusted for `how`.
fn unclear_worker(h: &Harness, how: Unclear, hole: &str) -> Worker {
    let mut dynamo = aws_sdk_dynamodb::config::Builder::from(&h.stack.sdk);
    if how == Unclear::LostMark {
        dynamo = dynamo
            .interceptor(FailFirstWith {
                op: "UpdateItem",
                needle: "sync_synced",
                done: Arc::default(),
            })
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled());
    }
    let targets = hookline_receivers::action_kinds()
        .iter()
        .map(|k| {
            let url = if how == Unclear::Timeout && *k == "provision_access" {
                url::Url::parse(&format!("{hole}/{k}")).unwrap()
            } else {
                h.target.url(k)
            };
            ((*k).to_owned(), hookline::config::Target::Url(url))
        })
        .collect();
    let timers = Timers {
        max_attempts: if how == Unclear::Exhausted { 1 } else { 8 },
        action_timeout: Duration::from_millis(300),
        ..Timers::default()
    };
    Worker::from_parts(
        EventStore::new(
            aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
            &h.stack.table,
            30,
            h.shared(),
        ),
        h.stack.queue(),
        &h.stack.dlq_url,
        targets,
        timers,
        h.shared(),
    )
    .unwrap()
}

/// (b) `synced` is written only after a 2xx and a successful mark: a grant that got a 503 after
/// the target recorded it, that timed out, that ran out of attempts, or whose DONE mark was lost
/// left it empty, and the cancellation then counted as the baseline: no revoke was ever sent.
async fn a_grant_without_a_clear_answer_is_revoked(how: Unclear) {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    // A target that accepts connections and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_url = format!("http://{}", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = hole.accept().await {
            held.push(sock);
        }
    });
    let worker = unclear_worker(&h, how, &hole_url);
    let sub = "sub_unclear";
    if matches!(how, Unclear::Status503 | Unclear::Exhausted) {
        h.target.set_default(503);
    }
    let created = subscription_event("created", "evt_unclear_0", sub, NOW, "active");
    assert_eq!(h.deliver(&spec, &created, "d").await, "accepted");
    let fed = h.stack.feed(&worker, 10, 1).await.unwrap();
    assert_eq!(fed.received, 1);
    let comes_back = usize::from(how != Unclear::Exhausted);
    assert_eq!(
        fed.failed.len(),
        comes_back,
        "{how:?}: FAILED leaves the queue"
    );
    let granted = usize::from(how != Unclear::Timeout);
    assert_eq!(access_posts(&h, sub).len(), granted, "the grant went out");
    h.target.set_default(200);
    let deleted = subscription_event("deleted", "evt_unclear_1", sub, NOW + 10, "canceled");
    assert_eq!(h.deliver(&spec, &deleted, "d").await, "accepted");
    // Past every backoff and lease: the held message and the reconciler bring it back.
    h.clock.advance_secs(3_600);
    h.stack.release(&fed.failed).await.unwrap();
    h.reconcile().await;
    h.settle(2).await;
    let paths: Vec<String> = access_posts(&h, sub).into_iter().map(|p| p.0).collect();
    assert_eq!(
        paths.last().map(String::as_str),
        Some("/revoke_access"),
        "{how:?}: a grant that may have landed is revoked: {paths:?}"
    );
    let sync = h
        .store()
        .get_entity("subscription", sub)
        .await
        .unwrap()
        .unwrap()
        .sync
        .unwrap();
    assert_eq!(sync.status, ActionStatus::Done);
    assert_eq!(sync.synced.unwrap().action, "revoke_access");
}

#[tokio::test]
async fn a_grant_answered_503_after_the_target_recorded_it_is_revoked_on_cancel() {
    a_grant_without_a_clear_answer_is_revoked(Unclear::Status503).await;
}

#[tokio::test]
async fn a_grant_that_timed_out_is_revoked_on_cancel() {
    a_grant_without_a_clear_answer_is_revoked(Unclear::Timeout).await;
}

#[tokio::test]
async fn a_grant_that_ran_out_of_attempts_is_revoked_on_cancel() {
    a_grant_without_a_clear_answer_is_revoked(Unclear::Exhausted).await;
}

#[tokio::test]
async fn a_grant_whose_done_mark_was_lost_is_revoked_on_cancel() {
    a_grant_without_a_clear_answer_is_revoked(Unclear::LostMark).await;
}

/// (c) The sync key carried the entity's version: a metadata-only change re-POSTed an
/// ambiguous grant under a new key, which a target deduplicating by key cannot recognise.
#[tokio::test]
async fn a_metadata_only_update_repeats_an_ambiguous_grants_key_and_a_resubscribe_gets_a_new_one() {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    let sub = "sub_keys";
    h.target.set_default(503);
    let created = subscription_event("created", "evt_keys_0", sub, NOW - 100, "active");
    assert_eq!(h.deliver(&spec, &created, "d").await, "accepted");
    let fed = h.stack.feed(&h.worker, 10, 1).await.unwrap();
    assert_eq!(fed.failed.len(), 1, "the grant's answer was a 503");
    // The same subscription, one field of metadata changed: the same desired state.
    let mut metadata = subscription_event("updated", "evt_keys_1", sub, NOW - 90, "active");
    metadata["data"]["object"] = created["data"]["object"].clone();
    metadata["data"]["object"]["metadata"] = json!({"plan_note": "new"});
    assert_eq!(h.deliver(&spec, &metadata, "d").await, "accepted");
    h.target.set_default(200);
    h.clock.advance_secs(3_600);
    h.stack.release(&fed.failed).await.unwrap();
    h.settle(2).await;
    let posts = access_posts(&h, sub);
    assert_eq!(posts.len(), 2, "{posts:?}");
    let grant = format!("stripe:subscription/{sub}#1:access:0");
    assert_eq!(
        posts,
        [
            ("/provision_access".to_owned(), grant.clone()),
            ("/provision_access".to_owned(), grant.clone())
        ],
        "the repeat of one state carries its key"
    );
    // Past due (revoke), then active again (a re-subscribe): each a new state, a new key.
    for (i, status) in [(2, "past_due"), (3, "active")] {
        let v = subscription_event(
            "updated",
            &format!("evt_keys_{i}"),
            sub,
            NOW - 100 + 10 * i,
            status,
        );
        assert_eq!(h.deliver(&spec, &v, "d").await, "accepted");
        h.settle(3 + u64::try_from(i).unwrap()).await;
    }
    let posts = access_posts(&h, sub);
    assert_eq!(
        posts[2..],
        [
            (
                "/revoke_access".to_owned(),
                format!("stripe:subscription/{sub}#2:access:0")
            ),
            (
                "/provision_access".to_owned(),
                format!("stripe:subscription/{sub}#3:access:0")
            ),
        ]
    );
    assert_ne!(
        posts[3].1, grant,
        "a re-subscribe is not swallowed as a repeat"
    );
}

/// (d) A late `invoice.payment_failed` for an invoice already paid alerted the admin anyway.
#[tokio::test]
async fn a_payment_failure_alert_processed_after_the_invoice_is_paid_is_skipped() {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    let failed = |tag: &str| {
        let mut v = sample("payment-events", "invoice.payment_failed");
        v["id"] = format!("evt_{tag}_failed").into();
        v["created"] = (NOW - 100).into();
        v["data"]["object"]["id"] = format!("in_{tag}").into();
        v
    };
    let paid = |tag: &str| {
        let mut v = invoice_paid(tag);
        v["id"] = format!("evt_{tag}_paid").into();
        v["created"] = (NOW - 50).into();
        v
    };
    // Paid first (the failure arrives late and stale), and failed first with the worker only
    // running once the payment is recorded.
    for (tag, first_paid) in [("late_a", true), ("late_b", false)] {
        let (one, two) = if first_paid {
            (paid(tag), failed(tag))
        } else {
            (failed(tag), paid(tag))
        };
        assert_eq!(h.deliver(&spec, &one, "d").await, "accepted");
        let answer = h.deliver(&spec, &two, "d").await;
        assert!(answer == "accepted" || answer == "stale", "{answer}");
        h.settle(1).await;
        let event = h
            .store()
            .get_event("stripe", &format!("evt_{tag}_failed"))
            .await
            .unwrap()
            .unwrap();
        let alert = event
            .outbox
            .iter()
            .find(|o| o.kind == "notify_admin")
            .unwrap();
        assert_eq!(alert.status, ActionStatus::Skipped, "{tag}");
        assert_eq!(alert.reason.as_deref(), Some("invoice paid meanwhile"));
    }
    // A failure that is still a failure when its alert runs is told.
    assert_eq!(h.deliver(&spec, &failed("open"), "d").await, "accepted");
    h.settle(2).await;
    let alerts: Vec<String> = h
        .target
        .received()
        .into_iter()
        .filter(|r| r.path == "/notify_admin")
        .map(|r| r.body)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("in_open"));
}

/// (e) A one-time payment was provisioned by each checkout event that said "paid", each under
/// its own event's key: `completed` (paid) and `async_payment_succeeded` were two grants.
#[tokio::test]
async fn a_one_time_payment_is_fulfilled_once_whichever_checkout_event_says_paid() {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    let completed = "checkout.session.completed";
    let succeeded = "checkout.session.async_payment_succeeded";
    // (event, payment status) in arrival order; the worker runs between the two in odd cases.
    let cases: [&[(&str, &str)]; 5] = [
        &[(completed, "paid")],
        &[(completed, "unpaid"), (succeeded, "paid")],
        &[(succeeded, "paid"), (completed, "unpaid")],
        &[(completed, "paid"), (succeeded, "paid")],
        &[(succeeded, "paid"), (completed, "paid")],
    ];
    for (n, case) in cases.iter().enumerate() {
        let cs = format!("cs_once{n}");
        for (i, (name, status)) in case.iter().enumerate() {
            // `completed` is always the older event of a session.
            let created = if *name == completed {
                NOW - 100
            } else {
                NOW - 50
            };
            let v = checkout_event(
                name,
                &format!("evt_{cs}_{i}"),
                &cs,
                created,
                "payment",
                status,
                None,
            );
            let answer = h.deliver(&spec, &v, &format!("d{n}{i}")).await;
            assert!(answer == "accepted" || answer == "stale", "{answer}");
            assert!(
                h.store()
                    .get_event("stripe", &format!("evt_{cs}_{i}"))
                    .await
                    .unwrap()
                    .unwrap()
                    .outbox
                    .is_empty(),
                "no event action grants"
            );
            if n % 2 == 1 {
                h.settle(u64::try_from(n * 10 + i).unwrap()).await;
            }
        }
        h.settle(u64::try_from(n).unwrap()).await;
        assert_eq!(
            access_posts(&h, &cs),
            [(
                "/provision_access".to_owned(),
                format!("stripe:checkout_session/{cs}#1:fulfilment:0")
            )],
            "case {n}: fulfilled once, under the session's key"
        );
    }
}

/// The pre-POST mark is one conditional write that recognises its own earlier success: a repeat
/// after a lost answer (the sequence already moved, by us) carries on with the same sequence; a
/// mark under a lease that is not ours is refused, and nothing may be POSTed.
#[tokio::test]
async fn the_pre_post_mark_recognises_its_own_earlier_write_and_refuses_a_stale_lease() {
    let h = Harness::new(Vec::new()).await;
    let spec = payment_events::spec();
    let created = subscription_event("created", "evt_mark_0", "sub_mark", NOW, "active");
    assert_eq!(h.deliver(&spec, &created, "d").await, "accepted");
    let store = h.store();
    let claim = store
        .claim_sync("subscription", "sub_mark", 25_000, 180_000)
        .await
        .unwrap()
        .unwrap();
    let desired = claim.entity.sync.clone().unwrap().desired;
    let mark = || store.mark_sync_sent(&claim.entity, &claim.lease, &desired);
    assert_eq!(mark().await.unwrap(), Some(1));
    assert_eq!(mark().await.unwrap(), Some(1), "its own write, answer lost");
    let other = hookline::store::SyncTarget {
        action: "revoke_access".into(),
        ..desired.clone()
    };
    assert_eq!(
        store
            .mark_sync_sent(&claim.entity, &claim.lease, &other)
            .await
            .unwrap(),
        None,
        "another state under the old sequence is not ours"
    );
    assert_eq!(
        store
            .mark_sync_sent(&claim.entity, "not-our-lease", &desired)
            .await
            .unwrap(),
        None
    );
    let sync = store
        .get_entity("subscription", "sub_mark")
        .await
        .unwrap()
        .unwrap()
        .sync
        .unwrap();
    assert_eq!((sync.seq, sync.sent.as_ref()), (1, Some(&desired)));
    assert_eq!(sync.synced, None, "maybe sent, not acknowledged");
    assert_eq!(
        sync.sent_key("subscription", "sub_mark").as_deref(),
        Some("stripe:subscription/sub_mark#1:access:0")
    );
}

/// FAILED is always seen: the worker sends the message to the dead-letter queue before it marks
/// the follow-up FAILED, so a refused send leaves the follow-up not FAILED and the message comes
/// back (docs/FOLLOWUPS.md, "The lifecycle").
#[tokio::test]
async fn a_dead_letter_send_that_fails_leaves_the_followup_not_failed_and_the_message_back() {
    let h = Harness::new(vec![401, 401]).await;
    let spec = payment_events::spec();
    assert_eq!(
        h.deliver(&spec, &invoice_paid("dlq_down"), "d").await,
        "accepted"
    );
    let targets = hookline_receivers::action_kinds()
        .iter()
        .map(|k| {
            (
                (*k).to_owned(),
                hookline::config::Target::Url(h.target.url(k)),
            )
        })
        .collect();
    // A dead-letter queue that does not exist: every send to it is refused.
    let gone = format!("{}-gone", h.stack.dlq_url);
    let worker = Worker::from_parts(
        h.store(),
        h.stack.queue(),
        &gone,
        targets,
        Timers::default(),
        h.shared(),
    )
    .unwrap();
    let fed = h.stack.feed(&worker, 10, 1).await.unwrap();
    assert_eq!(
        (fed.received, fed.failed.len()),
        (1, 1),
        "the message comes back"
    );
    assert_ne!(
        h.action_status("stripe", "evt_dlq_down", "receipt").await,
        ActionStatus::Failed,
        "not FAILED while no dead-letter copy exists"
    );
    // Its lease runs out; the message comes back to a worker whose dead-letter queue works.
    h.clock.advance_secs(26);
    h.stack.release(&fed.failed).await.unwrap();
    let fed = h.stack.feed(&h.worker, 10, 2).await.unwrap();
    assert_eq!((fed.received, fed.failed.len()), (1, 0));
    assert_eq!(
        h.action_status("stripe", "evt_dlq_down", "receipt").await,
        ActionStatus::Failed
    );
    assert_eq!(h.stack.drain(&h.stack.dlq_url).await.unwrap().len(), 1);
}
