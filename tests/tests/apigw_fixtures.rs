//! The committed API Gateway v2 request events (`events/<function>/apigw/`, made by
//! `scripts/apigw-events.sh`, used with `cargo lambda invoke --data-file`) parse as Lambda would
//! hand them over, and the receiver accepts each one with the clock at its signing time.

#![allow(clippy::unwrap_used)]

use hookline::clock::{FixedClock, SharedClock};
use hookline::receiver::ReceiverSpec;
use hookline_tests::Stack;
use lambda_http::Body;

use hookline_tests::local_receiver;

async fn check(spec: ReceiverSpec) {
    let function = spec.function;
    let dir = format!("{}/../events/{function}/apigw", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e} (run scripts/apigw-events.sh)"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let samples = std::fs::read_dir(format!("{dir}/.."))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(
        files.len(),
        samples,
        "{function}: one fixture per sample in {dir}"
    );
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
            stack.local_store(clock.clone()),
            stack.queue(),
        );
        let resp = rx.handle(req).await;
        let Body::Text(answer) = resp.body() else {
            panic!("JSON answer")
        };
        assert_eq!(resp.status(), 200, "{}: {answer}", file.display());
        let status: serde_json::Value = serde_json::from_str(answer).unwrap();
        assert!(
            ["accepted", "ignored"].contains(&status["status"].as_str().unwrap_or_default()),
            "{}: {answer}",
            file.display()
        );
    }
}

/// Every receiver of the registry: its fixtures are accepted (or ignored, for the event types it
/// does not handle).
#[tokio::test]
async fn every_receivers_fixtures_are_accepted() {
    for spec in hookline_receivers::all() {
        check(spec).await;
    }
}
