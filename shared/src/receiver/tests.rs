//! The receiver against the in-memory store: what DynamoDB's failures come to for the sender,
//! in milliseconds (the moto suite, tests/tests/receiver.rs, proves the same against a real API).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use lambda_http::{Body, Request};
use serde_json::{Value, json};

use aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Context, RequestExt};

use super::{Described, Receiver, ReceiverSpec, request_id};
use crate::clock::{FixedClock, SharedClock};
use crate::http::ContentKind;
use crate::secret::{Secret, Secrets};
use crate::store::memory::{Call, Fault, MemoryStore};
use crate::store::{Action, ChangeMode, Effects, SharedStore, StateAttrs, StateChange, Store};
use crate::verify::{ParseError, Scheme, SignInput, Verified, Verifier};

const SECRET: &str = "unit-test-secret";

/// `{"id": ..., "version": n}`: sets entity `thing`/`t_1` to that version, one receipt.
fn describe(v: &Verified<'_>) -> Result<Described, ParseError> {
    let body: Value = v.parse_json()?;
    let version = body["version"].as_i64().unwrap_or(0);
    // GitHub signs no time: an event older than the record retention is refused (the replay
    // window); most of these tests send none.
    Ok(Described::new(
        body["id"].as_str().unwrap_or_default().to_owned(),
        "thing.updated".into(),
        body["ts"].as_i64().unwrap_or(0),
        Effects::apply(
            Some(StateChange {
                entity_kind: "thing".into(),
                entity_id: "t_1".into(),
                version,
                mode: ChangeMode::Upsert,
                attrs: StateAttrs::from([("version".to_owned(), json!(version))]),
                sync: None,
            }),
            vec![Action::new("receipt", json!({"v": version}))],
        ),
    ))
}

fn setup() -> (Receiver, Arc<MemoryStore>) {
    let clock: SharedClock = FixedClock::at_secs(1_700_000_000);
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let spec = ReceiverSpec {
        source: "unit",
        function: "unit-events",
        route: "/webhooks/unit",
        scheme: Scheme::GitHub,
        content: ContentKind::Json,
        sender_timeout: Duration::from_secs(10),
        describe,
        action_kinds: &["receipt"],
    };
    let secrets = Secrets::parse_list(SECRET).unwrap();
    let verifier = Verifier::new(Scheme::GitHub, secrets, 300)
        .unwrap()
        .with_clock(clock.clone());
    let receiver = Receiver::from_parts(
        spec,
        verifier,
        64 * 1024,
        store.clone() as SharedStore,
        crate::queue::unreachable(),
    )
    .with_metrics(crate::metrics::Metrics::to_writer(std::io::sink(), clock));
    (receiver, store)
}

fn request(id: &str, version: i64) -> Request {
    signed(&json!({"id": id, "version": version}))
}

fn signed(body: &Value) -> Request {
    let body = serde_json::to_vec(body).unwrap();
    let headers = crate::verify::sign(
        &Scheme::GitHub,
        &Secret::new(SECRET),
        &SignInput {
            body: &body,
            timestamp: 1_700_000_000,
            id: "delivery-1",
            url: None,
        },
    )
    .unwrap();
    let mut b = http::Request::builder()
        .method("POST")
        .uri("https://hooks.test/webhooks")
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Body::Binary(body)).unwrap()
}

async fn post(receiver: &Receiver, id: &str, version: i64) -> (u16, String) {
    let resp = receiver.handle(request(id, version)).await;
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
    (
        status,
        body["status"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_throttled_commit_answers_503_and_writes_nothing() {
    let (receiver, store) = setup();
    store.fail_next(Call::Commit, Fault::Throttle);
    assert_eq!(post(&receiver, "evt_1", 1).await.0, 503);
    assert!(store.is_empty());
    // The sender's retry goes through.
    assert_eq!(post(&receiver, "evt_1", 1).await, (200, "accepted".into()));
}

#[tokio::test]
async fn a_commit_that_lost_a_conflict_answers_503() {
    let (receiver, store) = setup();
    store.fail_next(Call::Commit, Fault::Conflict);
    assert_eq!(post(&receiver, "evt_1", 1).await.0, 503);
    assert!(store.event("unit", "evt_1").is_none());
}

#[tokio::test]
async fn a_transaction_cancelled_on_a_duplicate_answers_duplicate() {
    let (receiver, store) = setup();
    assert_eq!(post(&receiver, "evt_1", 5).await, (200, "accepted".into()));
    assert_eq!(post(&receiver, "evt_1", 5).await, (200, "duplicate".into()));
    assert_eq!(store.entity("thing", "t_1").unwrap().version, 5);
    // An older event is recorded, stale, with its event actions and no state change.
    assert_eq!(post(&receiver, "evt_0", 4).await, (200, "stale".into()));
    let thing = store.entity("thing", "t_1").unwrap();
    assert_eq!((thing.version, thing.last_event_id.as_str()), (5, "evt_1"));
    assert_eq!(store.event("unit", "evt_0").unwrap().outbox.len(), 1);
}

#[tokio::test]
async fn a_lost_answer_on_commit_is_accepted_exactly_once() {
    let (receiver, store) = setup();
    // The SDK's retry carries the transaction's token: the first success is the answer.
    store.fail_next(Call::Commit, Fault::LostAnswer);
    assert_eq!(post(&receiver, "evt_1", 1).await, (200, "accepted".into()));
    assert_eq!(post(&receiver, "evt_1", 1).await, (200, "duplicate".into()));
    // Every answer lost: 503, the sender retries and hears `duplicate`; applied once.
    store.fail_next(Call::Commit, Fault::AppliedButFailed);
    assert_eq!(post(&receiver, "evt_2", 2).await.0, 503);
    assert_eq!(post(&receiver, "evt_2", 2).await, (200, "duplicate".into()));
    let thing = store.entity("thing", "t_1").unwrap();
    assert_eq!((thing.version, thing.last_event_id.as_str()), (2, "evt_2"));
    assert_eq!(store.len(), 5, "two events with their bodies, one entity");
}

#[tokio::test]
async fn a_duplicate_re_enqueues_what_its_event_still_has_pending() {
    let (receiver, store) = setup();
    assert_eq!(post(&receiver, "evt_1", 1).await.1, "accepted");
    let body = serde_json::to_vec(&json!({"id": "evt_1", "version": 1})).unwrap();
    let event = crate::store::NewEvent {
        source: "unit",
        function: "unit-events",
        event_id: "evt_1",
        event_type: "thing.updated",
        provider_ts: 1,
        body: &body,
        delivery: None,
    };
    let effects = Effects::apply(None, vec![Action::new("receipt", json!({}))]);
    let again = store
        .commit(store.plan(&event, &effects).unwrap())
        .await
        .unwrap();
    assert_eq!(again.outcome, crate::store::Outcome::Duplicate);
    assert_eq!(again.enqueue.len(), 1, "{again:?}");
}

#[tokio::test]
async fn an_event_older_than_the_store_keeps_records_is_refused_before_any_write() {
    let (receiver, store) = setup();
    let now_ms = 1_700_000_000_000_i64;
    let day_ms = 86_400_000;
    let old = signed(&json!({"id": "evt_old", "version": 1, "ts": now_ms - 31 * day_ms}));
    assert_eq!(receiver.handle(old).await.status().as_u16(), 422);
    assert!(store.is_empty());
    let recent = signed(&json!({"id": "evt_new", "version": 1, "ts": now_ms - 29 * day_ms}));
    assert_eq!(receiver.handle(recent).await.status().as_u16(), 200);
}

/// A bare POST with no request context.
fn bare_request() -> Request {
    http::Request::builder()
        .method("POST")
        .uri("https://hooks.test/webhooks")
        .body(Body::Empty)
        .unwrap()
}

#[test]
fn the_request_id_is_api_gateway_s_else_the_invocation_s_else_a_new_one() {
    let (a, b) = (request_id(&bare_request()), request_id(&bare_request()));
    assert!(
        a.starts_with("local-") && b.starts_with("local-"),
        "{a} {b}"
    );
    assert_ne!(a, b, "unique per request");
    let mut lambda = Context::default();
    lambda.request_id = "lambda-1".into();
    let req = bare_request().with_lambda_context(lambda);
    assert_eq!(request_id(&req), "lambda-1");
    let mut gateway = ApiGatewayV2httpRequestContext::default();
    gateway.request_id = Some("Ab1cD2eF3gH4iJ5k=".into());
    let req = req.with_request_context(RequestContext::ApiGatewayV2(gateway));
    assert_eq!(request_id(&req), "Ab1cD2eF3gH4iJ5k=");
    let mut empty = ApiGatewayV2httpRequestContext::default();
    empty.request_id = Some(String::new());
    let req = bare_request().with_request_context(RequestContext::ApiGatewayV2(empty));
    assert!(request_id(&req).starts_with("local-"));
}

#[test]
fn described_new_is_deduplicated_with_nothing_to_echo() {
    let d = Described::new("e".into(), "t".into(), 1, Effects::Ignored);
    assert!(d.deduplicated);
    assert_eq!(d.challenge, None);
}
