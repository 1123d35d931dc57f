//! The receiver's EMF metric lines against the emulator: one line per request, parsed as
//! CloudWatch would, naming the outcome (accepted, duplicate, rejected by status, enqueue
//! failure, unavailable) under the function and source dimensions.

#![allow(clippy::unwrap_used)]

use hookline::clock::{FixedClock, SharedClock};
use hookline::metrics::{Captured, Metrics};
use hookline::queue::FollowupQueue;
use hookline::receiver::Receiver;
use hookline_tests::{LOCAL_SECRET, Stack, local_receiver, signed_request};
use serde_json::Value;

const NOW: i64 = 1_750_000_000;

fn event(id: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../events/payment-events/invoice.paid.json"
    ))
    .unwrap();
    v["id"] = id.into();
    v["created"] = NOW.into();
    serde_json::to_vec(&v).unwrap()
}

fn receiver(stack: &Stack, queue: FollowupQueue, out: &Captured) -> Receiver {
    let clock: SharedClock = FixedClock::at_secs(NOW);
    local_receiver(
        payment_events::spec(),
        &clock,
        stack.store(clock.clone()),
        queue,
    )
    .with_metrics(Metrics::to_writer(out.clone(), clock))
}

/// The names of the metrics a line declares, checking the EMF shape on the way.
fn declared(line: &Value) -> Vec<String> {
    let cw = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(cw["Namespace"], "Hookline");
    assert_eq!(
        cw["Dimensions"],
        serde_json::json!([["function", "source"], []])
    );
    assert_eq!(line["_aws"]["Timestamp"], NOW * 1000);
    assert_eq!(line["function"], "payment-events");
    assert_eq!(line["source"], "stripe");
    cw["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["Name"].as_str().unwrap().to_owned();
            assert!(line[&name].is_number(), "value of {name} at the top level");
            name
        })
        .collect()
}

#[tokio::test]
async fn one_line_per_request_names_its_outcome() {
    let stack = Stack::new().await.unwrap();
    let out = Captured::default();
    let rx = receiver(&stack, stack.queue(), &out);
    let scheme = payment_events::spec().scheme;
    let body = event("evt_metrics_1");

    let ok = signed_request(&scheme, &body, LOCAL_SECRET, "a", NOW);
    assert_eq!(rx.handle(ok).await.status(), 200);
    let again = signed_request(&scheme, &body, LOCAL_SECRET, "a", NOW);
    assert_eq!(rx.handle(again).await.status(), 200);
    let forged = signed_request(&scheme, &body, "whsec_forged", "f", NOW);
    assert_eq!(rx.handle(forged).await.status(), 401);
    let mut text = signed_request(&scheme, &body, LOCAL_SECRET, "t", NOW);
    text.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(rx.handle(text).await.status(), 415);

    let lines = out.lines();
    assert_eq!(lines.len(), 4, "one line per request: {lines:?}");
    let names: Vec<Vec<String>> = lines.iter().map(declared).collect();
    let d = "handler_duration_ms".to_owned();
    assert_eq!(names[0], ["received", "accepted", d.as_str()]);
    assert_eq!(names[1], ["received", "duplicate", d.as_str()]);
    assert_eq!(
        names[2],
        ["received", "rejected_401", "rejected", d.as_str()]
    );
    assert_eq!(
        names[3],
        ["received", "rejected_415", "rejected", d.as_str()]
    );
    assert!(lines.iter().all(|l| l["received"] == 1.0));
    assert!(lines.iter().all(|l| l[&d].as_f64().unwrap() >= 0.0));
    for l in &lines {
        let text = l.to_string();
        assert!(!text.contains(LOCAL_SECRET) && !text.contains("evt_metrics_1"));
    }
}

#[tokio::test]
async fn enqueue_failures_and_outages_are_counted() {
    let stack = Stack::new().await.unwrap();
    let out = Captured::default();
    let missing = FollowupQueue::new(stack.sqs.clone(), format!("{}-missing", stack.queue_url));
    let rx = receiver(&stack, missing, &out);
    let scheme = payment_events::spec().scheme;
    let req = signed_request(&scheme, &event("evt_metrics_2"), LOCAL_SECRET, "b", NOW);
    assert_eq!(rx.handle(req).await.status(), 200);

    let clock: SharedClock = FixedClock::at_secs(NOW);
    let down = local_receiver(
        payment_events::spec(),
        &clock,
        hookline::store::EventStore::new(stack.dynamo.clone(), "no-such-table", 30, clock.clone()),
        stack.queue(),
    )
    .with_metrics(Metrics::to_writer(out.clone(), clock));
    let req = signed_request(&scheme, &event("evt_metrics_3"), LOCAL_SECRET, "c", NOW);
    assert_eq!(down.handle(req).await.status(), 503);

    let lines = out.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        declared(&lines[0]),
        [
            "received",
            "accepted",
            "followup_enqueue_failed",
            "handler_duration_ms"
        ]
    );
    assert_eq!(
        declared(&lines[1]),
        ["received", "unavailable", "handler_duration_ms"]
    );
}
