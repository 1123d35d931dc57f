//! The whole request path of every receiver in the registry: an API Gateway HTTP API (payload
//! v2) event in, converted to a request exactly as `lambda_http` does for a Lambda invocation,
//! through [`Receiver::prepare`] (source allowlist, guards, signature verification, parsing,
//! mapping, the replay window, the quarantine decision and the DynamoDB transaction built), and
//! the error's HTTP answer out. The store and queue are the real SDK clients on a dummy endpoint:
//! `prepare` does no I/O, and `handle`, which does, is not run. A receiver added to the registry
//! is fuzzed here with no change.
//!
//! Input layout, so that a seed is a few bytes followed by a sample body (`scripts/fuzz.sh`
//! builds them from `events/*/*.json`):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | the receiver: registry index `b % n` |
//! | 1 | bit 1: genuinely signed; bit 2: base64 body; bit 3: source allowlist `192.0.2.0/25`; bit 4: 256-byte body limit; bits 5-7: method (0-3 POST, then GET, PUT, DELETE, PATCH) |
//! | 2 | clock skew of the signature, `(b as i8) × 5` seconds |
//! | 3 | last octet of the source address `192.0.2.x` |
//! | 4 | extra headers, `b % 8` of them: each a name index (the scheme's names and a few others), a length `% 64`, the value bytes |
//! | next | length `% 64` and bytes of the signed delivery id (where the scheme signs one), empty for `msg_fuzz` |
//! | rest | the body |
//!
//! Invariants, checked on every input:
//! - nothing panics;
//! - every error maps to a 4xx through [`ApiError::status`] (`prepare` cannot meet a dependency
//!   failure) and answers JSON `{"error", "message"}`, a 401 without its reason;
//! - a request not signed with the secret (forging HMAC-SHA256 is assumed out of the fuzzer's
//!   reach), or, where the scheme signs a time, signed further than the 300 s tolerance from now,
//!   never reaches `Step::Ready` or `Step::Quarantine`: it is a 401, or an earlier guard's
//!   403/405/413/415;
//! - a genuine request left alone (POST, the receiver's media type, within tolerance, from an
//!   allowed address, within the size limit, no signature header changed) is never refused, but
//!   for the replay window's 422 (an event time older than the retention, schemes without a
//!   signed time);
//! - `Ready`: the event id is valid (non-empty, ≤ 256 bytes, no control character), the mapping
//!   emits only action kinds its receiver declares, and it is deterministic (the same request
//!   maps the same way twice);
//! - `Quarantine`: the id is valid, and a `sha256:` id is the body's digest.

use std::sync::OnceLock;

use hookline::allowlist::SourceAllowlist;
use hookline::clock::{FixedClock, SharedClock};
use hookline::http::ApiError;
use hookline::queue::FollowupQueue;
use hookline::receiver::{MAX_EVENT_ID_LEN, Receiver, ReceiverSpec, Step};
use hookline::secret::{Secret, Secrets};
use hookline::store::EventStore;
use hookline::verify::{Scheme, SignInput, Verifier, sign};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request};

use crate::models::{check_described, sha256_hex};

/// The documented local test secret (README), for both schemes.
pub const LOCAL_SECRET: &str = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=";
/// The receivers' clock, seconds since the epoch.
pub const NOW: i64 = 1_750_000_000;
/// The signature tolerance the receivers are built with.
const TOLERANCE: i64 = 300;
/// The `host` API Gateway puts in every event: its own domain.
const HOST: &str = "r4nd0m1d.execute-api.us-east-1.amazonaws.com";
/// The allowlist of bit 3: addresses `192.0.2.0`..`192.0.2.127`.
const ALLOWED: &str = "192.0.2.0/25";

/// Header names an extra header is drawn from: the scheme's own, then ones no verifier reads.
/// Not `host` or `x-forwarded-proto`: API Gateway sets them (its own domain, `https`), and
/// lambda_http 1.3 panics converting an event whose `host` is not a valid URL host.
fn header_names(scheme: &Scheme) -> Vec<HeaderName> {
    let mut names = signed_names(scheme);
    names.extend(["content-type", "user-agent", "x-forwarded-for"].map(HeaderName::from_static));
    names
}

/// The headers a genuine sender of `scheme` sets: changing one can unmake a signature.
fn signed_names(scheme: &Scheme) -> Vec<HeaderName> {
    let input = SignInput {
        body: b"{}",
        timestamp: NOW,
        id: "msg_fuzz",
        url: None,
    };
    sign(scheme, &Secret::new(LOCAL_SECRET), &input)
        .map(|pairs| pairs.into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default()
}

/// One receiver per (registry entry, allowlist, small body limit), built once per process.
fn receivers() -> &'static [Receiver] {
    static RECEIVERS: OnceLock<Vec<Receiver>> = OnceLock::new();
    RECEIVERS.get_or_init(|| {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let clock: SharedClock = FixedClock::at_secs(NOW);
        let creds = Credentials::new("fuzz", "fuzz", None, None, "fuzz");
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(creds.clone())
                .endpoint_url("http://127.0.0.1:9")
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(creds)
                .endpoint_url("http://127.0.0.1:9")
                .build(),
        );
        let mut all = Vec::new();
        for spec in hookline_receivers::all() {
            for allowlist in [false, true] {
                for small in [false, true] {
                    all.push(receiver(&spec, &clock, &dynamo, &sqs, allowlist, small));
                }
            }
        }
        all
    })
}

fn receiver(
    spec: &ReceiverSpec,
    clock: &SharedClock,
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    allowlist: bool,
    small: bool,
) -> Receiver {
    let secrets = Secrets::parse_list(LOCAL_SECRET).expect("local secret");
    let verifier = Verifier::new(spec.scheme.clone(), secrets, TOLERANCE)
        .expect("valid secret")
        .with_clock(clock.clone());
    let store = EventStore::new(dynamo.clone(), "fuzz", 30, clock.clone());
    let queue = FollowupQueue::new(sqs.clone(), "http://127.0.0.1:9/queue/fuzz");
    let limit = if small { 256 } else { 256 * 1024 };
    let allowed = allowlist.then(|| {
        SourceAllowlist::parse(ALLOWED)
            .expect("valid allowlist")
            .expect("non-empty")
    });
    Receiver::from_parts(spec.clone(), verifier, limit, store, queue).with_allowed_sources(allowed)
}

/// A cursor over the input's prefix.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_EVENT_ID_LEN && !id.chars().any(char::is_control)
}

/// Runs one input through the request path. Panics only on a broken invariant.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let specs = hookline_receivers::all();
    let which = usize::from(input.byte()) % specs.len();
    let spec = &specs[which];
    let flags = input.byte();
    let genuine = flags & 2 != 0;
    let base64 = flags & 4 != 0;
    let allowlist = flags & 8 != 0;
    let small = flags & 16 != 0;
    let method = match flags >> 5 {
        0..=3 => Method::POST,
        4 => Method::GET,
        5 => Method::PUT,
        6 => Method::DELETE,
        _ => Method::PATCH,
    };
    let skew = i64::from(input.byte() as i8) * 5;
    let octet = input.byte();
    let names = header_names(&spec.scheme);
    let signing = signed_names(&spec.scheme);
    let count = input.byte() % 8;
    let mut extra = Vec::new();
    for _ in 0..count {
        let name = names[usize::from(input.byte()) % names.len()].clone();
        let len = usize::from(input.byte() % 64);
        extra.push((name, input.bytes(len)));
    }
    let id_len = usize::from(input.byte() % 64);
    let id_bytes = input.bytes(id_len);
    let message_id = if id_bytes.is_empty() {
        "msg_fuzz".to_owned()
    } else {
        String::from_utf8_lossy(id_bytes).into_owned()
    };
    let body = input.0;

    let index = which * 4 + usize::from(allowlist) * 2 + usize::from(small);
    let rx = &receivers()[index];

    // The headers: signed (or not), then the extra ones.
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static(spec.content.mime()),
    );
    headers.insert("host", HeaderValue::from_static(HOST));
    let signed_at = NOW - skew;
    let mut signed = false;
    // A sender's delivery id is header text (visible ASCII); verifiers refuse anything else.
    let sendable = message_id.bytes().all(|b| (0x20..0x7f).contains(&b));
    if genuine && sendable {
        let secret = Secret::new(LOCAL_SECRET);
        let input = SignInput {
            body,
            timestamp: signed_at,
            id: &message_id,
            url: None,
        };
        if let Ok(pairs) = sign(&spec.scheme, &secret, &input) {
            let values: Option<Vec<_>> = pairs
                .into_iter()
                .map(|(n, v)| HeaderValue::from_str(&v).ok().map(|v| (n, v)))
                .collect();
            if let Some(values) = values {
                for (n, v) in values {
                    headers.insert(n, v);
                }
                signed = true;
            }
        }
    }
    let mut touched = false;
    let mut content_type_changed = false;
    for (name, value) in extra {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        touched |= signing.contains(&name);
        content_type_changed |= name == http::header::CONTENT_TYPE;
        if name == http::header::CONTENT_TYPE {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }

    let req = api_gateway_request(spec.route, &method, headers, body, base64, octet);
    assert_eq!(req.body().as_ref(), body, "lambda_http changed the body");
    let result = rx.prepare(&req);

    // Exactly at the tolerance either answer is right; a scheme without a signed time has none.
    let timed = spec.scheme.signs_time();
    let in_tolerance = !timed || skew.abs() < TOLERANCE;
    let late = timed && skew.abs() > TOLERANCE;
    let source_ok = !allowlist || octet < 128;
    let size_ok = !small || body.len() <= 256;
    match &result {
        Err(err) => check_error(err),
        Ok(_) => {
            assert!(
                signed && !late,
                "a request not genuinely signed within tolerance got through: {result:?}"
            );
        }
    }
    if signed
        && !touched
        && in_tolerance
        && method == Method::POST
        && !content_type_changed
        && source_ok
        && size_ok
        && let Err(err) = &result
        && !matches!(err, ApiError::ReplayOutsideWindow { .. })
    {
        panic!("genuine request refused: {err:?} ({})", err.status());
    }
    if (!signed || late)
        && let Err(err) = &result
    {
        assert!(
            [401, 403, 405, 413, 415].contains(&err.status().as_u16()),
            "unsigned request answered {}",
            err.status()
        );
    }
    match result {
        Ok(Step::Ready(prepared)) => {
            let d = &prepared.described;
            assert!(valid_id(&d.event_id), "invalid event id accepted: {d:?}");
            check_described(d, spec.action_kinds);
            match rx.prepare(&req) {
                Ok(Step::Ready(again)) => {
                    assert_eq!(&again.described, d, "the same request mapped two ways")
                }
                other => panic!("the same request prepared two ways: {other:?}"),
            }
        }
        Ok(Step::Quarantine { event_id, .. }) => {
            assert!(valid_id(&event_id), "invalid quarantine id {event_id:?}");
            if let Some(digest) = event_id.strip_prefix("sha256:") {
                // A sender may sign any text as its id, even `sha256:...`: only a hashed id
                // that is not the signed delivery id must be the body's digest.
                if event_id != message_id {
                    assert_eq!(
                        digest,
                        sha256_hex(body),
                        "a sha256 id that is not the body's"
                    );
                }
            }
        }
        Err(_) => {}
    }
}

/// An API Gateway HTTP API (payload v2) event carrying the request, converted as `lambda_http`
/// converts the events Lambda delivers.
fn api_gateway_request(
    path: &str,
    method: &Method,
    headers: HeaderMap,
    body: &[u8],
    base64: bool,
    octet: u8,
) -> Request {
    use base64::Engine as _;
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(format!("POST {path}"));
    event.raw_path = Some(path.into());
    event.raw_query_string = Some(String::new());
    event.headers = headers;
    event.request_context.http.method = method.clone();
    event.request_context.http.path = Some(path.into());
    event.request_context.http.source_ip = Some(format!("192.0.2.{octet}"));
    event.request_context.stage = Some("$default".into());
    event.request_context.domain_name = Some(HOST.into());
    // API Gateway passes text as is and anything else base64-encoded.
    match std::str::from_utf8(body) {
        Ok(text) if !base64 => event.body = Some(text.to_owned()),
        _ => {
            event.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
            event.is_base64_encoded = true;
        }
    }
    LambdaRequest::ApiGatewayV2(event).into()
}

/// Every error is a 4xx with a JSON answer; a 401 does not say why.
fn check_error(err: &ApiError) {
    let status = err.status();
    assert!(
        status.is_client_error(),
        "prepare answered {status}: {err:?}"
    );
    let code = err.code();
    let resp = rebuild(err).into_response();
    assert_eq!(resp.status(), status);
    let text = match resp.body() {
        Body::Text(t) => t.clone(),
        other => panic!("non-text answer {other:?}"),
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON answer");
    assert_eq!(v["error"], code);
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(v["message"], "signature verification failed");
    }
}

/// An owned copy of the error for `into_response` (which consumes it), with the same status.
fn rebuild(err: &ApiError) -> ApiError {
    match err {
        ApiError::MethodNotAllowed => ApiError::MethodNotAllowed,
        ApiError::PayloadTooLarge { limit } => ApiError::PayloadTooLarge { limit: *limit },
        ApiError::Forbidden(ip) => ApiError::Forbidden(ip.clone()),
        ApiError::UnsupportedMediaType { expected } => ApiError::UnsupportedMediaType { expected },
        ApiError::Unauthorized(e) => ApiError::Unauthorized(e.clone()),
        ApiError::ReplayOutsideWindow { max_age_days } => ApiError::ReplayOutsideWindow {
            max_age_days: *max_age_days,
        },
        ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
    }
}
