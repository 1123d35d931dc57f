//! The receiver flow against the emulator with the real SDK clients: invariants 1, 2, 4, 5, 6
//! and the AWS call budget of docs/ARCHITECTURE.md. Each test has its own table and queues.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use hookline::clock::{FixedClock, SharedClock};
use hookline::queue::FollowupQueue;
use hookline::receiver::{Receiver, ReceiverSpec};
use hookline::store::ActionStatus;
use hookline_tests::{
    LOCAL_SECRET as SECRET, Stack, init_test_log, local_receiver, signed_request,
};
use lambda_http::{Body, Request};
use serde_json::Value;

const NOW: i64 = 1_750_000_000;

fn receiver(stack: &Stack, spec: ReceiverSpec, clock: &SharedClock, queue_url: &str) -> Receiver {
    let queue = FollowupQueue::new(stack.sqs.clone(), queue_url);
    local_receiver(spec, clock, stack.store(clock.clone()), queue)
}

use hookline_tests::sample;

/// A Stripe event from a sample file, with its id and creation time replaced.
fn stripe_event(name: &str, id: &str, created: i64) -> Vec<u8> {
    let mut v = sample("payment-events", name);
    v["id"] = id.into();
    v["created"] = created.into();
    serde_json::to_vec(&v).unwrap()
}

fn signed(spec: &ReceiverSpec, body: &[u8], secret: &str, delivery_id: &str) -> Request {
    signed_request(&spec.scheme, body, secret, delivery_id, NOW)
}

fn answer(resp: &lambda_http::Response<Body>) -> Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Binary(b) => serde_json::from_slice(b).unwrap(),
        Body::Empty => Value::Null,
        _ => Value::Null,
    }
}

fn clock() -> SharedClock {
    FixedClock::at_secs(NOW)
}

#[tokio::test]
async fn accepted_event_is_recorded_with_state_outbox_and_one_message_per_followup() {
    init_test_log();
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = payment_events::spec();
    let rx = receiver(&stack, spec.clone(), &clock, &stack.queue_url);
    let body = stripe_event("invoice.paid", "evt_accept_1", NOW - 5);

    let resp = rx.handle(signed(&spec, &body, SECRET, "d1")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        answer(&resp),
        serde_json::json!({"status": "accepted", "event_id": "evt_accept_1"})
    );
    assert_eq!(
        stack.calls.calls(),
        ["TransactWriteItems", "SendMessageBatch"],
        "two AWS round trips"
    );

    let store = stack.store(clock.clone());
    let event = store
        .get_event("stripe", "evt_accept_1")
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(event.status, hookline::store::Outcome::Accepted);
    assert_eq!(event.event_type, "invoice.paid");
    assert_eq!(
        store
            .get_body("stripe", "evt_accept_1")
            .await
            .unwrap()
            .as_deref(),
        Some(body.as_slice()),
        "raw body kept for replay, in an item of its own"
    );
    assert!(!event.outbox.is_empty());
    assert!(
        event
            .outbox
            .iter()
            .all(|o| o.status == ActionStatus::Pending)
    );
    assert_eq!(event.expires_at, NOW + 30 * 86_400);

    let invoice = sample("payment-events", "invoice.paid")["data"]["object"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = store
        .get_entity("invoice", &invoice)
        .await
        .unwrap()
        .expect("state");
    assert_eq!(state.last_event_id, "evt_accept_1");
    assert_eq!(state.version, (NOW - 5) * 1000);

    let msgs = stack.drain(&stack.queue_url).await.unwrap();
    let mut kinds: Vec<String> = msgs
        .iter()
        .map(|m| hookline::queue::decode(m.body().unwrap()).unwrap().name())
        .collect();
    kinds.sort();
    let mut expected: Vec<String> = event
        .outbox
        .iter()
        .map(|o| format!("stripe:evt_accept_1:{}", o.kind))
        .collect();
    expected.sort();
    assert_eq!(kinds, expected);
}

#[tokio::test]
async fn a_duplicate_writes_nothing_and_re_enqueues_only_what_is_still_pending() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = payment_events::spec();
    let rx = receiver(&stack, spec.clone(), &clock, &stack.queue_url);
    let body = stripe_event("invoice.paid", "evt_dup_1", NOW);
    assert_eq!(
        answer(&rx.handle(signed(&spec, &body, SECRET, "d")).await)["status"],
        "accepted"
    );
    let first = stack.drain(&stack.queue_url).await.unwrap().len();
    assert_eq!(first, 1);

    // Still pending (the first messages may have been lost): the retry re-enqueues them, from
    // the failed condition's ALL_OLD item, with no extra read.
    stack.calls.reset();
    let resp = rx.handle(signed(&spec, &body, SECRET, "d")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(answer(&resp)["status"], "duplicate");
    assert_eq!(
        stack.calls.calls(),
        ["TransactWriteItems", "SendMessageBatch"]
    );
    assert_eq!(stack.drain(&stack.queue_url).await.unwrap().len(), 1);

    // Done: a duplicate is one round trip and sends nothing.
    let target = hookline_tests::Target::start(Vec::new()).await.unwrap();
    let worker = stack.worker(&target, Default::default(), clock.clone());
    let message = hookline::queue::encode(&hookline::store::FollowUp::Action {
        source: "stripe".into(),
        event_id: "evt_dup_1".into(),
        action: "receipt".into(),
    });
    assert_eq!(
        worker.handle_message(&message).await,
        Ok(hookline::worker::Handled::Done)
    );
    stack.calls.reset();
    let resp = rx.handle(signed(&spec, &body, SECRET, "d")).await;
    assert_eq!(answer(&resp)["status"], "duplicate");
    assert_eq!(
        stack.calls.calls(),
        ["TransactWriteItems"],
        "a duplicate costs one round trip"
    );
    assert!(stack.drain(&stack.queue_url).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_older_event_is_stale_leaves_state_unchanged_and_keeps_its_event_actions() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = user_events::spec();
    let rx = receiver(&stack, spec.clone(), &clock, &stack.queue_url);
    // Svix delivers in parallel: the update (newer) lands before the creation (older).
    let updated = serde_json::to_vec(&sample("user-events", "user.updated")).unwrap();
    let created = serde_json::to_vec(&sample("user-events", "user.created")).unwrap();
    assert_eq!(
        answer(&rx.handle(signed(&spec, &updated, SECRET, "m1")).await)["status"],
        "accepted"
    );
    stack.drain(&stack.queue_url).await.unwrap();
    let resp = rx.handle(signed(&spec, &created, SECRET, "m2")).await;
    assert_eq!(answer(&resp)["status"], "stale");

    let user = sample("user-events", "user.created")["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = stack.store(clock);
    let state = store.get_entity("user", &user).await.unwrap().unwrap();
    assert_eq!(state.last_event_id, "m1", "the newer state stays");
    let stale = store.get_event("users", "m2").await.unwrap().unwrap();
    assert_eq!(stale.status, hookline::store::Outcome::Stale);
    let kinds: Vec<(&str, ActionStatus)> = stale
        .outbox
        .iter()
        .map(|o| (o.kind.as_str(), o.status))
        .collect();
    assert_eq!(
        kinds,
        [
            ("analytics", ActionStatus::Pending),
            ("welcome", ActionStatus::Pending)
        ],
        "a stale event still gets its event actions"
    );
    let mut sent: Vec<String> = stack
        .drain(&stack.queue_url)
        .await
        .unwrap()
        .iter()
        .map(|m| hookline::queue::decode(m.body().unwrap()).unwrap().name())
        .collect();
    sent.sort();
    assert_eq!(sent, ["users:m2:analytics", "users:m2:welcome"]);
    // Redelivery of the stale event is a duplicate.
    assert_eq!(
        answer(&rx.handle(signed(&spec, &created, SECRET, "m2")).await)["status"],
        "duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_deliveries_apply_once() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = payment_events::spec();
    let rx = Arc::new(receiver(&stack, spec.clone(), &clock, &stack.queue_url));
    let body = stripe_event("invoice.paid", "evt_race_1", NOW);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (rx, req) = (rx.clone(), signed(&spec, &body, SECRET, "race"));
            tokio::spawn(async move { answer(&rx.handle(req).await)["status"].clone() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let accepted = statuses.iter().filter(|s| *s == "accepted").count();
    let duplicate = statuses.iter().filter(|s| *s == "duplicate").count();
    assert_eq!((accepted, duplicate), (1, 49), "{statuses:?}");
    let event = stack
        .store(clock.clone())
        .get_event("stripe", "evt_race_1")
        .await
        .unwrap()
        .unwrap();
    let invoice = sample("payment-events", "invoice.paid")["data"]["object"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = stack
        .store(clock.clone())
        .get_entity("invoice", &invoice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.last_event_id, "evt_race_1");
    // Duplicates racing the first delivery re-enqueue its pending follow-ups: extra copies, every
    // one of the same follow-up (the worker's claim makes them harmless).
    let msgs = stack.drain(&stack.queue_url).await.unwrap();
    assert!(msgs.len() >= event.outbox.len());
    assert!(msgs.iter().all(|m| {
        hookline::queue::decode(m.body().unwrap()).unwrap().name() == "stripe:evt_race_1:receipt"
    }));
}

#[tokio::test]
async fn forged_and_malformed_requests_write_nothing() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = payment_events::spec();
    let rx = receiver(&stack, spec.clone(), &clock, &stack.queue_url);
    let body = stripe_event("invoice.paid", "evt_forged", NOW);

    let resp = rx
        .handle(signed(&spec, &body, "whsec_not_the_secret", "f"))
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(answer(&resp)["error"], "unauthorized");
    assert!(
        stack.calls.calls().is_empty(),
        "a forged request makes no AWS call"
    );

    let mut unsigned = signed(&spec, &body, SECRET, "f");
    unsigned.headers_mut().remove("stripe-signature");
    assert_eq!(rx.handle(unsigned).await.status(), 401);

    let mut wrong_type = signed(&spec, &body, SECRET, "f");
    wrong_type
        .headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(rx.handle(wrong_type).await.status(), 415);

    let mut get = signed(&spec, &body, SECRET, "f");
    *get.method_mut() = http::Method::GET;
    assert_eq!(rx.handle(get).await.status(), 405);

    let big = vec![b' '; 256 * 1024 + 1];
    assert_eq!(
        rx.handle(signed(&spec, &big, SECRET, "i")).await.status(),
        413
    );

    assert!(stack.calls.calls().is_empty(), "no bad request reached AWS");
    assert!(
        stack
            .store(clock)
            .get_event("stripe", "evt_forged")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn unknown_type_is_ignored_but_recorded() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = payment_events::spec();
    let rx = receiver(&stack, spec.clone(), &clock, &stack.queue_url);
    let mut v = sample("payment-events", "invoice.paid");
    v["id"] = "evt_unknown_1".into();
    v["type"] = "radar.early_fraud_warning.created".into();
    let body = serde_json::to_vec(&v).unwrap();
    let resp = rx.handle(signed(&spec, &body, SECRET, "u")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(answer(&resp)["status"], "ignored");
    assert_eq!(
        stack.calls.calls(),
        ["TransactWriteItems"],
        "event and body, nothing else"
    );
    let ev = stack
        .store(clock)
        .get_event("stripe", "evt_unknown_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.status, hookline::store::Outcome::Ignored);
    assert!(stack.drain(&stack.queue_url).await.unwrap().is_empty());
}

#[tokio::test]
async fn dynamodb_outage_answers_503_so_the_sender_retries() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = payment_events::spec();
    // A table that does not exist stands in for DynamoDB refusing service.
    let store =
        hookline::store::EventStore::new(stack.dynamo.clone(), "no-such-table", 30, clock.clone());
    let rx = local_receiver(spec.clone(), &clock, store, stack.queue());
    let body = stripe_event("invoice.paid", "evt_outage", NOW);
    let resp = rx.handle(signed(&spec, &body, SECRET, "o")).await;
    assert_eq!(resp.status(), 503);
    let a = answer(&resp);
    assert_eq!(a["error"], "unavailable");
    assert!(
        !a.to_string().contains("no-such-table"),
        "internal detail is not returned"
    );
    assert!(stack.drain(&stack.queue_url).await.unwrap().is_empty());
}

#[tokio::test]
async fn user_lifecycle_orders_by_updated_at_and_tombstones_are_final() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = user_events::spec();
    let rx = receiver(&stack, spec.clone(), &clock, &stack.queue_url);
    let created = serde_json::to_vec(&sample("user-events", "user.created")).unwrap();
    let updated = serde_json::to_vec(&sample("user-events", "user.updated")).unwrap();
    let deleted = serde_json::to_vec(&sample("user-events", "user.deleted")).unwrap();
    let user_id = sample("user-events", "user.created")["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Out of order: the update arrives before the creation.
    assert_eq!(
        answer(&rx.handle(signed(&spec, &updated, SECRET, "msg_u")).await)["status"],
        "accepted"
    );
    assert_eq!(
        answer(&rx.handle(signed(&spec, &created, SECRET, "msg_c")).await)["status"],
        "stale"
    );
    assert_eq!(
        answer(&rx.handle(signed(&spec, &deleted, SECRET, "msg_d")).await)["status"],
        "accepted"
    );
    // A late update (same payload, new delivery id) cannot resurrect the user.
    assert_eq!(
        answer(&rx.handle(signed(&spec, &updated, SECRET, "msg_u2")).await)["status"],
        "stale"
    );
    let state = stack
        .store(clock)
        .get_entity("user", &user_id)
        .await
        .unwrap()
        .unwrap();
    assert!(state.deleted);
    assert_eq!(state.last_event_id, "msg_d");
}

/// A `MakeWriter` that captures every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_signature_or_body_reaches_a_log_line() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = payment_events::spec();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rx = receiver(&stack, spec.clone(), &clock, &stack.queue_url);
    let body = stripe_event("invoice.paid", "evt_logs_1", NOW);
    let good = signed(&spec, &body, SECRET, "l");
    let signature = good.headers()["stripe-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(rx.handle(good).await.status(), 200);
    let forged = signed(&spec, &body, "whsec_forger", "l");
    let forged_sig = forged.headers()["stripe-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(rx.handle(forged).await.status(), 401);
    // serde's own message would quote the value ("invalid type: string \"BODY-MARKER\"").
    let bad =
        b"{\"id\":\"evt_x\",\"type\":\"invoice.paid\",\"created\":\"BODY-MARKER\",\"data\":{}}"
            .to_vec();
    let resp = rx.handle(signed(&spec, &bad, SECRET, "l")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(answer(&resp)["status"], "quarantined");
    let reason = stack
        .store(clock.clone())
        .get_event("stripe", "evt_x")
        .await
        .unwrap()
        .unwrap()
        .reason
        .unwrap();
    assert!(reason.contains("line 1"), "{reason}");
    assert!(!reason.contains("BODY-MARKER"), "{reason}");
    // SQS refusing: the failure path logs too.
    let rx_noq = receiver(
        &stack,
        spec.clone(),
        &clock,
        "http://127.0.0.1:1/000000000000/none",
    );
    let body2 = stripe_event("invoice.paid", "evt_logs_2", NOW);
    assert_eq!(
        rx_noq
            .handle(signed(&spec, &body2, SECRET, "l"))
            .await
            .status(),
        200
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("evt_logs_1"),
        "the logs do say what happened: {logs}"
    );
    assert!(logs.contains("followup_enqueue_failed"));
    assert!(logs.contains("event_quarantined"));
    for needle in [
        SECRET,
        "aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ",
        "whsec_forger",
        &signature,
        &forged_sig,
        "BODY-MARKER",
    ] {
        assert!(!logs.contains(needle), "log leaked {needle:?}");
    }
    let sig_hex = signature.split("v1=").nth(1).unwrap();
    assert!(!logs.contains(sig_hex));
    let body_text = String::from_utf8(body.clone()).unwrap();
    assert!(!logs.contains(&body_text[..40]));
}

#[tokio::test]
async fn a_verified_body_that_does_not_fit_the_model_is_quarantined_under_a_signed_or_hashed_id() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let stripe = payment_events::spec();
    let rx = receiver(&stack, stripe.clone(), &clock, &stack.queue_url);
    let store = stack.store(clock.clone());

    // A field whose type changed in a new API version: the signed body's own id.
    let changed = br#"{"id": "evt_bad", "type": "invoice.paid", "created": "yesterday"}"#.to_vec();
    let resp = rx.handle(signed(&stripe, &changed, SECRET, "g")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        answer(&resp),
        serde_json::json!({"status": "quarantined", "event_id": "evt_bad"})
    );
    let record = store.get_event("stripe", "evt_bad").await.unwrap().unwrap();
    assert_eq!(record.status, hookline::store::Outcome::Quarantined);
    assert!(record.outbox.is_empty());
    assert!(
        !record.reason.unwrap().contains("yesterday"),
        "no body value in the reason"
    );
    assert_eq!(
        store
            .get_body("stripe", "evt_bad")
            .await
            .unwrap()
            .as_deref(),
        Some(changed.as_slice()),
        "the raw body is kept for a replay"
    );
    // The sender's retry is a duplicate, not a second record.
    let resp = rx.handle(signed(&stripe, &changed, SECRET, "g")).await;
    assert_eq!(answer(&resp)["status"], "duplicate");

    // Not JSON at all: the body's SHA-256 (stable across retries, which re-sign headers).
    let not_json = b"\xff\xfe not json".to_vec();
    let resp = rx.handle(signed(&stripe, &not_json, SECRET, "h")).await;
    let id = answer(&resp)["event_id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&resp)["status"], "quarantined");
    assert!(id.starts_with("sha256:") && id.len() == 7 + 64, "{id}");

    // Standard Webhooks signs the message id: that is the id.
    let users = user_events::spec();
    let rx = receiver(&stack, users.clone(), &clock, &stack.queue_url);
    let odd = br#"{"type": "user.created", "data": {"id": 42}}"#.to_vec();
    let resp = rx.handle(signed(&users, &odd, SECRET, "msg_odd")).await;
    assert_eq!(
        answer(&resp),
        serde_json::json!({"status": "quarantined", "event_id": "msg_odd"})
    );
    assert!(stack.drain(&stack.queue_url).await.unwrap().is_empty());
}
