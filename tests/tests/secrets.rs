//! Signing secrets from the emulator's Secrets Manager through a whole receiver, with the real
//! SDK client: a rotation is picked up without a restart, a removed secret stops verifying, the
//! re-read is rate-limited (counted), and an outage keeps the cached secret (or, at cold start,
//! stops the function with an error naming the secret). Each test has its own secret, table and
//! queues; time moves by an injected clock, never by sleeping.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::config::Intercept;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline::clock::{FixedClock, SharedClock};
use hookline::config::{ReceiverConfig, Source};
use hookline::receiver::{Receiver, ReceiverSpec};
use hookline::secrets::{RefreshPolicy, RefreshingVerifier, SecretsManagerFetch};
use hookline_tests::{CallCounter, Stack, signed_request};
use serde_json::Value;

const NOW: i64 = 1_750_000_000;
const ONE: &str = "whsec_first-signing-secret";
const TWO: &str = "whsec_second-signing-secret";
const POLICY: RefreshPolicy = RefreshPolicy {
    min_interval_secs: 60,
    max_age_secs: 900,
};

/// Fails every request while switched on: Secrets Manager unreachable, after start-up.
#[derive(Debug, Clone, Default)]
struct Outage(Arc<AtomicBool>);

impl Intercept for Outage {
    fn name(&self) -> &'static str {
        "Outage"
    }
    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.load(Ordering::SeqCst) {
            return Err("simulated Secrets Manager outage".into());
        }
        Ok(())
    }
}

/// One test's secret, receiver and counters.
struct Fixture {
    stack: Stack,
    sm: aws_sdk_secretsmanager::Client,
    secret_id: String,
    calls: CallCounter,
    outage: Outage,
    clock: Arc<FixedClock>,
    spec: ReceiverSpec,
    rx: Receiver,
}

impl Fixture {
    /// A fresh secret holding `value`, and a receiver that loaded it at cold start.
    async fn new(value: &str) -> Self {
        let stack = Stack::new().await.unwrap();
        let calls = CallCounter::default();
        let outage = Outage::default();
        let sm = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&stack.sdk)
                .interceptor(calls.clone())
                .interceptor(outage.clone())
                .build(),
        );
        let secret_id = format!("hookline/test-{}", uuid::Uuid::new_v4().simple());
        sm.create_secret()
            .name(&secret_id)
            .secret_string(value)
            .send()
            .await
            .unwrap();
        calls.reset();
        let clock = FixedClock::at_secs(NOW);
        let shared: SharedClock = clock.clone();
        let spec = payment_events::spec();
        let verifier = RefreshingVerifier::load(
            spec.scheme.clone(),
            300,
            Arc::new(SecretsManagerFetch::new(sm.clone(), &secret_id)),
            POLICY,
            shared.clone(),
        )
        .await
        .unwrap();
        assert_eq!(calls.calls(), ["GetSecretValue"], "read at cold start");
        calls.reset();
        let rx = Receiver::from_parts(
            spec.clone(),
            verifier,
            256 * 1024,
            stack.store(shared),
            stack.queue(),
        );
        Self {
            stack,
            sm,
            secret_id,
            calls,
            outage,
            clock,
            spec,
            rx,
        }
    }

    async fn put(&self, value: &str) {
        self.sm
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }

    /// `GetSecretValue` calls made by the receiver so far (the cold-start read excluded: the
    /// counter is reset after it).
    fn reads(&self) -> usize {
        self.calls
            .calls()
            .iter()
            .filter(|c| *c == "GetSecretValue")
            .count()
    }

    /// Posts a new `invoice.paid` event signed with `secret` now; the answer's status.
    async fn post(&self, secret: &str, event_id: &str) -> u16 {
        let now = hookline::clock::Clock::now_secs(&*self.clock);
        let path = format!(
            "{}/../events/payment-events/invoice.paid.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["id"] = event_id.into();
        v["created"] = now.into();
        let body = serde_json::to_vec(&v).unwrap();
        let req = signed_request(&self.spec.scheme, &body, secret, event_id, now);
        self.rx.handle(req).await.status().as_u16()
    }
}

#[tokio::test]
async fn a_rotation_is_picked_up_and_a_removed_secret_stops_verifying() {
    let f = Fixture::new(&format!(r#"["{ONE}"]"#)).await;
    assert_eq!(f.post(ONE, "evt_rot_1").await, 200);
    assert_eq!(f.post(TWO, "evt_rot_2").await, 401, "not yet configured");
    assert_eq!(f.reads(), 0, "within the interval of the cold-start read");

    // Add the second secret: the first delivery it signs re-reads, and both verify.
    f.put(&format!("{TWO}\n{ONE}")).await;
    f.clock.advance_secs(60);
    assert_eq!(f.post(TWO, "evt_rot_3").await, 200);
    assert_eq!(f.post(ONE, "evt_rot_4").await, 200);
    assert_eq!(f.reads(), 1);

    // Remove the first: after the next re-read it no longer verifies.
    f.put(&format!(r#"["{TWO}"]"#)).await;
    f.clock.advance_secs(60);
    assert_eq!(
        f.post("whsec_forged", "evt_rot_5").await,
        401,
        "a mismatch re-reads"
    );
    assert_eq!(f.reads(), 2);
    assert_eq!(f.post(ONE, "evt_rot_6").await, 401, "removed");
    assert_eq!(f.post(TWO, "evt_rot_7").await, 200);
    assert_eq!(f.reads(), 2);
}

#[tokio::test]
async fn a_burst_of_forged_requests_reads_at_most_once_per_interval_and_writes_nothing() {
    let f = Fixture::new(ONE).await;
    f.clock.advance_secs(60);
    f.stack.calls.reset();
    for i in 0..25 {
        assert_eq!(
            f.post("whsec_forged", &format!("evt_forged_{i}")).await,
            401
        );
    }
    assert_eq!(f.reads(), 1, "one read for the whole burst");
    assert!(f.stack.calls.calls().is_empty(), "no DynamoDB or SQS call");
    f.clock.advance_secs(59);
    assert_eq!(f.post("whsec_forged", "evt_forged_x").await, 401);
    assert_eq!(f.reads(), 1);
    f.clock.advance_secs(1);
    assert_eq!(f.post("whsec_forged", "evt_forged_y").await, 401);
    assert_eq!(f.reads(), 2, "the next interval allows one more");
}

#[tokio::test]
async fn past_the_maximum_age_a_removed_secret_stops_verifying() {
    let f = Fixture::new(&format!("{TWO}\n{ONE}")).await;
    f.put(TWO).await;
    // A matching signature triggers no read: only the age can retire the removed secret.
    f.clock.advance_secs(POLICY.max_age_secs - 1);
    assert_eq!(f.post(ONE, "evt_age_1").await, 200, "cache not yet expired");
    assert_eq!(f.reads(), 0);
    f.clock.advance_secs(1);
    assert_eq!(
        f.post(ONE, "evt_age_2").await,
        401,
        "retired on a warm instance"
    );
    assert_eq!(f.reads(), 1);
    assert_eq!(f.post(TWO, "evt_age_3").await, 200);
    assert_eq!(f.reads(), 1);
}

#[tokio::test]
async fn a_later_outage_keeps_the_cached_secret_working() {
    let f = Fixture::new(ONE).await;
    f.outage.0.store(true, Ordering::SeqCst);
    f.clock.advance_secs(POLICY.max_age_secs + 1);
    assert_eq!(
        f.post(ONE, "evt_out_1").await,
        200,
        "cached secret verifies"
    );
    assert_eq!(f.post("whsec_forged", "evt_out_2").await, 401);
    assert_eq!(f.post(ONE, "evt_out_3").await, 200);
    assert_eq!(
        f.reads(),
        1,
        "the failed read is rate-limited like any other"
    );

    f.outage.0.store(false, Ordering::SeqCst);
    f.put(TWO).await;
    f.clock.advance_secs(60);
    assert_eq!(f.post(TWO, "evt_out_4").await, 200, "recovered");
    assert_eq!(f.post(ONE, "evt_out_5").await, 401);
}

fn config(secret_id: &str, stack: &Stack) -> ReceiverConfig {
    let src: std::collections::BTreeMap<String, String> = [
        ("WEBHOOK_SECRETS_ID", secret_id),
        ("TABLE_NAME", stack.table.as_str()),
        ("FOLLOWUP_QUEUE_URL", stack.queue_url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    ReceiverConfig::from_source(&src as &dyn Source).unwrap()
}

#[tokio::test]
async fn cold_start_without_secrets_manager_is_a_clear_start_up_error() {
    let stack = Stack::new().await.unwrap();
    let secret_id = format!("hookline/missing-{}", uuid::Uuid::new_v4().simple());
    let config = config(&secret_id, &stack);

    // Unreachable: nothing listens on the port of a listener just closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = hookline_tests::sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
    let err = Receiver::new(payment_events::spec(), &config, &down)
        .await
        .expect_err("no secrets, no receiver");
    let msg = err.to_string();
    assert!(msg.contains(&secret_id), "names the secret: {msg}");
    assert!(msg.contains("could not read"), "{msg}");

    // Reachable, but the secret does not exist.
    let err = Receiver::new(payment_events::spec(), &config, &stack.sdk)
        .await
        .expect_err("no such secret");
    assert!(err.to_string().contains(&secret_id), "{err}");
}

#[tokio::test]
async fn receiver_new_reads_the_secret_named_by_the_configuration() {
    let f = Fixture::new(ONE).await;
    let config = config(&f.secret_id, &f.stack);
    let rx = Receiver::new(payment_events::spec(), &config, &f.stack.sdk)
        .await
        .unwrap();
    // The system clock: sign now.
    let now = hookline::clock::Clock::now_secs(&hookline::clock::SystemClock);
    let body = br#"{"id":"evt_new_1","object":"event","type":"unknown.type","created":1,"data":{"object":{}}}"#;
    let ok = rx
        .handle(signed_request(&f.spec.scheme, body, ONE, "d", now))
        .await;
    assert_eq!(
        ok.status(),
        200,
        "verified with the secret read at start-up"
    );
    let forged = rx
        .handle(signed_request(&f.spec.scheme, body, TWO, "d", now))
        .await;
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn no_secret_value_reaches_a_log_line_on_any_refresh_path() {
    let logs = hookline::metrics::Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let f = Fixture::new(ONE).await;
    f.put(&format!("{TWO}\n{ONE}")).await;
    f.clock.advance_secs(60);
    assert_eq!(f.post(TWO, "evt_logs_1").await, 200, "replaced");
    f.put(r#"["whsec_malformed-value", 7]"#).await;
    f.clock.advance_secs(POLICY.max_age_secs);
    assert_eq!(
        f.post(TWO, "evt_logs_2").await,
        200,
        "malformed value kept the cache"
    );
    f.outage.0.store(true, Ordering::SeqCst);
    f.clock.advance_secs(POLICY.max_age_secs);
    assert_eq!(
        f.post(TWO, "evt_logs_3").await,
        200,
        "outage kept the cache"
    );

    let text: String = logs.lines().iter().map(|l| format!("{l}\n")).collect();
    assert!(
        text.contains("webhook secrets re-read and replaced"),
        "{text}"
    );
    assert!(text.contains("keeping the cached ones"), "{text}");
    assert!(text.contains(&f.secret_id), "logs name the secret's id");
    for needle in [
        ONE,
        TWO,
        "first-signing",
        "second-signing",
        "malformed-value",
    ] {
        assert!(!text.contains(needle), "{needle} in the logs:\n{text}");
    }
}
