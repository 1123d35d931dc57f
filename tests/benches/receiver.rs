//! The receiver's in-process work for a 4 KiB Stripe event — guards, verification, parsing,
//! mapping to state change and follow-ups, and building the DynamoDB request (the network call
//! excluded) — beside the floor measured in the same run: a bare HMAC-SHA256 plus a serde_json
//! parse of the same bytes. Target: at most 1.5x the floor. `cargo bench -p hookline-tests`.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use hookline::clock::FixedClock;
use hookline::queue::FollowupQueue;
use hookline::store::EventStore;
use sha2::Sha256;

use hookline_tests::LOCAL_SECRET as SECRET;
const NOW: i64 = 1_750_000_000;

/// The invoice.paid sample padded with metadata to 4 KiB.
fn body_4k() -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../../events/payment-events/invoice.paid.json"
    ))
    .unwrap();
    let mut pad = 0;
    loop {
        let len = serde_json::to_vec(&v).unwrap().len();
        if len >= 4096 {
            break;
        }
        v["data"]["object"]["metadata"][format!("key_{pad}")] =
            "x".repeat(((4096 - len) / 2).clamp(1, 64)).into();
        pad += 1;
    }
    serde_json::to_vec(&v).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sdk = rt.block_on(async {
        aws_config::from_env()
            .http_client(hookline::config::aws_http_client(
                hookline::config::TrustedRoots::System,
            ))
            .endpoint_url("http://127.0.0.1:1")
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "x", "x", None, None, "bench",
            ))
            .load()
            .await
    });
    let clock = FixedClock::at_secs(NOW);
    let spec = payment_events::spec();
    let clock: hookline::clock::SharedClock = clock;
    let store = EventStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "bench",
        30,
        clock.clone(),
    );
    let queue = FollowupQueue::new(aws_sdk_sqs::Client::new(&sdk), "http://127.0.0.1:1/q");
    let rx = hookline_tests::local_receiver(spec.clone(), &clock, store, queue);

    let body = body_4k();
    let req = hookline_tests::signed_request(&spec.scheme, &body, SECRET, "b", NOW);
    assert!(rx.prepare(&req).is_ok(), "the benchmarked request is valid");

    let mut g = c.benchmark_group("receiver_4KiB");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("floor: hmac-sha256 + serde_json parse", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(NOW.to_string().as_bytes());
            mac.update(b".");
            mac.update(std::hint::black_box(&body));
            let tag = mac.finalize().into_bytes();
            let v: serde_json::Value = serde_json::from_slice(std::hint::black_box(&body)).unwrap();
            (tag, v)
        });
    });
    g.bench_function(
        "receiver: guards + verify + parse + map + build request",
        |b| {
            b.iter(|| rx.prepare(std::hint::black_box(&req)).unwrap());
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
