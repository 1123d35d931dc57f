//! The committed API Gateway v2 request events (`events/<function>/apigw/`, made by
//! `scripts/apigw-events.sh`, used with `cargo lambda invoke --data-file`) parse as Lambda would
//! hand them over, and the receiver accepts each one with the clock at its signing time.

#![allow(clippy::unwrap_used)]

use hookline::clock::{FixedClock, SharedClock};
use hookline::receiver::ReceiverSpec;
use hookline_tests::Stack;
use lambda_http::Body;

use hookline_tests::local_receiver;

async fn check(function: &str, spec: ReceiverSpec) {
    let dir = format!("{}/../events/{function}/apigw", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "fixtures in {dir}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
        let signed_at = raw["requestContext"]["timeEpoch"].as_i64().unwrap() / 1000;
        let req = lambda_http::request::from_str(&text).unwrap();
        let stack = Stack::new().await.unwrap();
        let clock: SharedClock = FixedClock::at_secs(signed_at + 1);
        let rx = local_receiver(
            spec.clone(),
            &clock,
            stack.store(clock.clone()),
            stack.queue(),
        );
        let resp = rx.handle(req).await;
        let Body::Text(answer) = resp.body() else {
            panic!("JSON answer")
        };
        assert_eq!(resp.status(), 200, "{}: {answer}", file.display());
        let status: serde_json::Value = serde_json::from_str(answer).unwrap();
        // The two samples of event types the functions do not handle.
        let ignored = ["customer.created.json", "session.created.json"]
            .iter()
            .any(|name| file.ends_with(name));
        let expected = if ignored { "ignored" } else { "accepted" };
        assert_eq!(status["status"], expected, "{}", file.display());
    }
}

#[tokio::test]
async fn payment_events_fixtures_are_accepted() {
    check("payment-events", payment_events::spec()).await;
}

#[tokio::test]
async fn user_events_fixtures_are_accepted() {
    check("user-events", user_events::spec()).await;
}
