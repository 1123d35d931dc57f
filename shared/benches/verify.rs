//! Verification cost per scheme at 1 KiB and 64 KiB, beside a bare HMAC over the same bytes in
//! the same run (the floor any verifier pays). Target: within 1.1x of the bare HMAC at 64 KiB.
//!
//! `cargo bench -p hookline --bench verify -- --warm-up-time 1 --measurement-time 3`
//! Figures are recorded in `docs/BENCHMARKS.md`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use hookline::clock::FixedClock;
use hookline::secret::{Secret, Secrets};
use hookline::verify::{Incoming, Scheme, SignInput, Verifier, sign, twilio_url_with_body_sha256};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const NOW: i64 = 1_700_000_000;
const URL: &str = "https://hooks.example.com/twilio/sms";
const SIZES: [usize; 2] = [1024, 64 * 1024];

/// A JSON-looking body of exactly `len` bytes.
fn json_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"id":"evt_1","data":""#.to_vec();
    body.resize(len - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// A form body of exactly `len` bytes: a few short fields and one long one.
fn form_body(len: usize) -> Vec<u8> {
    let mut body = b"AccountSid=AC123&From=%2B15550001111&To=%2B15550002222&Body=".to_vec();
    body.resize(len, b'a');
    body
}

struct Case {
    name: &'static str,
    verifier: Verifier,
    headers: HeaderMap,
    body: Vec<u8>,
    url: Option<String>,
}

fn case(
    name: &'static str,
    scheme: Scheme,
    secret: &str,
    body: Vec<u8>,
    url: Option<String>,
) -> Case {
    let secrets = Secrets::new(vec![Secret::new(secret)]).unwrap();
    let verifier = Verifier::new(scheme.clone(), secrets, 300)
        .unwrap()
        .with_clock(FixedClock::at_secs(NOW));
    let input = SignInput {
        body: &body,
        timestamp: NOW,
        id: "msg_1",
        url: url.as_deref(),
    };
    let mut headers = HeaderMap::new();
    for (n, v) in sign(&scheme, &Secret::new(secret), &input).unwrap() {
        headers.append(n, HeaderValue::from_str(&v).unwrap());
    }
    if matches!(scheme, Scheme::Twilio) && url.as_deref() == Some(URL) {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let case = Case {
        name,
        verifier,
        headers,
        body,
        url,
    };
    assert!(case.run(), "{name} must verify");
    case
}

impl Case {
    fn run(&self) -> bool {
        let req = Incoming {
            headers: &self.headers,
            body: &self.body,
            url: self.url.as_deref(),
        };
        self.verifier.verify(black_box(&req)).is_ok()
    }
}

fn cases(len: usize) -> Vec<Case> {
    let json = json_body(len);
    let key = "whsec_test_secret_0123456789abcdef";
    vec![
        case("stripe", Scheme::Stripe, key, json.clone(), None),
        case(
            "standard-webhooks",
            Scheme::StandardWebhooks,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            json.clone(),
            None,
        ),
        case("github", Scheme::GitHub, key, json.clone(), None),
        case("shopify", Scheme::Shopify, key, json.clone(), None),
        case("slack", Scheme::Slack, key, json.clone(), None),
        case("paddle", Scheme::Paddle, key, json.clone(), None),
        case(
            "twilio-json",
            Scheme::Twilio,
            key,
            json.clone(),
            Some(twilio_url_with_body_sha256(URL, &json)),
        ),
        case(
            "twilio-form",
            Scheme::Twilio,
            key,
            form_body(len),
            Some(URL.to_owned()),
        ),
        case(
            "static-header",
            Scheme::StaticHeader {
                header: HeaderName::from_static("x-token"),
            },
            key,
            json,
            None,
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let key = b"whsec_test_secret_0123456789abcdef";
    for len in SIZES {
        let mut group = c.benchmark_group(format!("verify/{}KiB", len / 1024));
        group.throughput(Throughput::Bytes(len as u64));
        let json = json_body(len);
        let form = form_body(len);
        group.bench_function("bare-hmac-sha256", |b| {
            b.iter(|| {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
                mac.update(black_box(&json));
                black_box(mac.finalize().into_bytes())
            });
        });
        group.bench_function("bare-sha256", |b| {
            b.iter(|| black_box(Sha256::digest(black_box(&json))));
        });
        group.bench_function("bare-hmac-sha1", |b| {
            b.iter(|| {
                let mut mac = Hmac::<Sha1>::new_from_slice(key).unwrap();
                mac.update(black_box(&form));
                black_box(mac.finalize().into_bytes())
            });
        });
        for case in cases(len) {
            group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
                b.iter(|| case.run());
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
