//! The battery every receiver of the registry passes, on every sample in `events/<function>/`,
//! against the emulator with the real SDK clients: a first delivery is recorded (accepted, or
//! ignored for an event type the mapping does not handle), a redelivery is a duplicate that
//! writes nothing, a forgery is a 401 that makes no AWS call, a verified body the model cannot
//! read is quarantined (200, kept for replay), and concurrent copies of one delivery are
//! recorded once. A receiver added to the registry runs it with no change here; what is special
//! to a receiver (ordering, lifecycles, its own rules) lives in its own test file.
//!
//! A delivery whose event id differs each time it is sent is one its receiver does not
//! deduplicate by design (Builder.io's "disable payload" mode, docs/DATA.md): the battery then
//! demands a new record instead of a duplicate.

#![allow(clippy::unwrap_used)]

use hookline::clock::{FixedClock, SharedClock};
use hookline::receiver::{Receiver, ReceiverSpec};
use hookline::secret::Secret;
use hookline::verify::{SignInput, sign};
use hookline_tests::{LOCAL_SECRET, Stack, init_test_log, local_receiver};
use lambda_http::{Body, Request};
use serde_json::Value;

const NOW: i64 = 1_750_000_000;

/// The samples of `function`: (file name, body).
fn samples(function: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/../events/{function}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{function}: no samples in {dir}");
    out
}

/// `body` (the sample `name`) as its sender posts it to `spec`'s route: its media type, signed
/// with `secret` at [`NOW`] under `delivery_id` where the scheme carries one, and the event type
/// the file is named after where the scheme puts it in a header of its own.
fn delivery(
    spec: &ReceiverSpec,
    name: &str,
    body: &[u8],
    secret: &str,
    delivery_id: &str,
) -> Request {
    let headers = sign(
        &spec.scheme,
        &Secret::new(secret),
        &SignInput {
            body,
            timestamp: NOW,
            id: delivery_id,
            url: None,
        },
    )
    .unwrap();
    let mut b = http::Request::builder()
        .method("POST")
        .uri(format!("https://hooks.test{}", spec.route))
        .header("content-type", spec.content.mime());
    for (k, v) in headers {
        b = b.header(k, v);
    }
    if let (Some(header), Some(event)) = (
        spec.scheme.event_type_header(),
        spec.scheme.sample_event_type(name),
    ) {
        b = b.header(header, event);
    }
    b.body(Body::Binary(body.to_vec())).unwrap()
}

fn answer(resp: &lambda_http::Response<Body>) -> Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Binary(b) => serde_json::from_slice(b).unwrap(),
        _ => Value::Null,
    }
}

fn receiver(stack: &Stack, spec: &ReceiverSpec) -> Receiver {
    let clock: SharedClock = FixedClock::at_secs(NOW);
    local_receiver(
        spec.clone(),
        &clock,
        stack.local_store(clock.clone()),
        stack.queue(),
    )
}

/// Sends `req`; the status and the JSON answer.
async fn send(rx: &Receiver, req: Request) -> (u16, Value) {
    let resp = rx.handle(req).await;
    (resp.status().as_u16(), answer(&resp))
}

#[tokio::test]
async fn every_sample_is_recorded_once_and_its_redelivery_is_a_duplicate() {
    init_test_log();
    for spec in hookline_receivers::all() {
        let stack = Stack::new().await.unwrap();
        let rx = receiver(&stack, &spec);
        for (name, body) in samples(spec.function) {
            let what = format!("{}/{name}", spec.function);
            let id = format!("dlv_{name}");
            let (status, first) = send(&rx, delivery(&spec, &name, &body, LOCAL_SECRET, &id)).await;
            assert_eq!(status, 200, "{what}: {first}");
            assert!(
                ["accepted", "ignored", "stale"].contains(&first["status"].as_str().unwrap()),
                "{what}: first delivery {first}"
            );
            let (status, again) = send(&rx, delivery(&spec, &name, &body, LOCAL_SECRET, &id)).await;
            assert_eq!(status, 200, "{what}: {again}");
            if again["event_id"] == first["event_id"] {
                assert_eq!(again["status"], "duplicate", "{what}: redelivery {again}");
            } else {
                // Not deduplicated by design: a new record each time.
                assert_eq!(again["status"], first["status"], "{what}: {again}");
            }
        }
    }
}

#[tokio::test]
async fn a_forgery_is_refused_before_any_aws_call() {
    for spec in hookline_receivers::all() {
        let stack = Stack::new().await.unwrap();
        let rx = receiver(&stack, &spec);
        for (name, body) in samples(spec.function) {
            let what = format!("{}/{name}", spec.function);
            let (status, err) = send(
                &rx,
                delivery(
                    &spec,
                    &name,
                    &body,
                    "whsec_bm90LXRoZS1zZWNyZXQ=",
                    "dlv_forged",
                ),
            )
            .await;
            assert_eq!(status, 401, "{what}: {err}");
            assert_eq!(err["error"], "unauthorized", "{what}");
            assert_eq!(
                err["message"], "signature verification failed",
                "{what}: no reason given"
            );
        }
        assert!(
            stack.calls.calls().is_empty(),
            "{}: a forged request made an AWS call",
            spec.function
        );
    }
}

#[tokio::test]
async fn a_verified_body_the_model_cannot_read_is_quarantined_and_kept() {
    for spec in hookline_receivers::all() {
        let stack = Stack::new().await.unwrap();
        let rx = receiver(&stack, &spec);
        // Truncated JSON (and, in a form body, a truncated `payload=`): verified, unreadable.
        let (name, sample) = samples(spec.function).remove(0);
        let cut = &sample[..sample.len() / 2];
        let (status, ans) = send(&rx, delivery(&spec, &name, cut, LOCAL_SECRET, "dlv_cut")).await;
        assert_eq!(status, 200, "{}: {ans}", spec.function);
        assert_eq!(ans["status"], "quarantined", "{}: {ans}", spec.function);
        let id = ans["event_id"].as_str().unwrap();
        let record = stack
            .local_store(FixedClock::at_secs(NOW))
            .get_event(spec.source, id)
            .await
            .unwrap();
        assert!(
            record.is_some(),
            "{}: the quarantined body is kept",
            spec.function
        );
        let (_, again) = send(&rx, delivery(&spec, &name, cut, LOCAL_SECRET, "dlv_cut")).await;
        assert_eq!(again["status"], "duplicate", "{}: {again}", spec.function);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_of_one_delivery_are_recorded_once() {
    for spec in hookline_receivers::all() {
        let stack = Stack::new().await.unwrap();
        let rx = receiver(&stack, &spec);
        let (name, body) = samples(spec.function).remove(0);
        let sends =
            (0..8).map(|_| send(&rx, delivery(&spec, &name, &body, LOCAL_SECRET, "dlv_copy")));
        let answers = futures_util::future::join_all(sends).await;
        let ids: std::collections::BTreeSet<String> = answers
            .iter()
            .map(|(_, a)| a["event_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if ids.len() > 1 {
            continue; // not deduplicated by design (see the module header)
        }
        let firsts = answers
            .iter()
            .filter(|(s, a)| *s == 200 && a["status"] != "duplicate")
            .count();
        let duplicates = answers
            .iter()
            .filter(|(s, a)| *s == 200 && a["status"] == "duplicate")
            .count();
        assert_eq!(
            (firsts, duplicates),
            (1, 7),
            "{}/{name}: {answers:?}",
            spec.function
        );
    }
}
