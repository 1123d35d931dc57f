//! Test support for the integration and end-to-end tests: each test gets its own uniquely named
//! table and queues in the local emulator (moto server, started by `scripts/test.sh` on a free
//! port and named by `AWS_ENDPOINT_URL`), the real SDK clients, an AWS call counter, and a
//! scripted HTTP target for follow-up actions (on the same hyper server as `hookline sink`,
//! `hookline_cli::server`).

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use aws_sdk_dynamodb::config::Intercept;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline_cli::server::Answer;
use tokio::net::TcpListener;

/// Counts the AWS operations made through the clients it is attached to.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<Vec<String>>>);

impl CallCounter {
    /// Operation names seen so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    /// Forgets what was counted.
    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }
    /// Counts each transmission (retries included): `X-Amz-Target` names the operation in both
    /// the DynamoDB and the SQS JSON protocols, e.g. `DynamoDB_20120810.PutItem`.
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = ctx
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("unknown");
        let op = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.0.lock().unwrap().push(op);
        Ok(())
    }
}

/// Loses the answer of the `nth` (1-based) successful call of operation `op` (e.g. `UpdateItem`)
/// once: the write reaches the emulator and applies, then its answer is replaced with a timeout,
/// as a response lost on the way back is. The SDK's retry classifier retries a timeout, so the
/// SDK's own retry of the write meets the state the write itself left.
#[derive(Debug, Clone)]
pub struct LoseAnswer {
    op: &'static str,
    nth: usize,
    seen: Arc<AtomicUsize>,
}

impl LoseAnswer {
    /// Loses the answer of the `nth` successful `op`.
    pub fn nth(op: &'static str, nth: usize) -> Self {
        Self {
            op,
            nth,
            seen: Arc::default(),
        }
    }

    /// True once the answer was lost.
    pub fn lost(&self) -> bool {
        self.seen.load(Ordering::SeqCst) >= self.nth
    }

    /// A DynamoDB client on `sdk` that loses that answer.
    pub fn dynamo(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(self.clone())
                .build(),
        )
    }
}

impl Intercept for LoseAnswer {
    fn name(&self) -> &'static str {
        "LoseAnswer"
    }
    fn modify_before_attempt_completion(
        &self,
        ctx: &mut FinalizerInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ours = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .is_some_and(|m| m.name() == self.op);
        let Some(result) = ctx.output_or_error_mut() else {
            return Ok(());
        };
        if ours && result.is_ok() && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            *result = Err(OrchestratorError::timeout(
                "injected: the answer was lost on the way back".into(),
            ));
        }
        Ok(())
    }
}

/// One test's private slice of the emulator.
#[derive(Debug, Clone)]
pub struct Stack {
    /// DynamoDB client (counted).
    pub dynamo: aws_sdk_dynamodb::Client,
    /// SQS client (counted).
    pub sqs: aws_sdk_sqs::Client,
    /// Every AWS call made through the two clients.
    pub calls: CallCounter,
    /// This test's table.
    pub table: String,
    /// This test's follow-up queue.
    pub queue_url: String,
    /// Its dead-letter queue.
    pub dlq_url: String,
    /// The SDK configuration (endpoint, region, dummy credentials).
    pub sdk: aws_config::SdkConfig,
}

/// The emulator endpoint; the test command sets it.
pub fn endpoint() -> anyhow::Result<String> {
    std::env::var("AWS_ENDPOINT_URL").context(
        "AWS_ENDPOINT_URL is not set: run the tests with `make test` (it starts the emulator)",
    )
}

/// SDK configuration for the emulator.
pub async fn sdk_config() -> anyhow::Result<aws_config::SdkConfig> {
    Ok(sdk_config_for(&endpoint()?).await)
}

/// SDK configuration for an emulator at `endpoint`, with dummy credentials.
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::from_env()
        .http_client(hookline::config::aws_http_client(
            hookline::config::TrustedRoots::System,
        ))
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

impl Stack {
    /// A fresh, uniquely named table and queues.
    pub async fn new() -> anyhow::Result<Self> {
        let sdk = sdk_config().await?;
        let calls = CallCounter::default();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .build(),
        );
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let table = format!("t-{suffix}");
        hookline::store::schema::create_table(&dynamo, &table)
            .await
            .context("create table (is the emulator running?)")?;
        let (queue_url, dlq_url) = hookline::queue::create_queues(&sqs, &format!("q-{suffix}"))
            .await
            .context("create queues")?;
        calls.reset();
        Ok(Self {
            dynamo,
            sqs,
            calls,
            table,
            queue_url,
            dlq_url,
            sdk,
        })
    }

    /// An event store on this test's table, with `clock` (grace 300 s).
    pub fn store(&self, clock: hookline::clock::SharedClock) -> hookline::store::EventStore {
        hookline::store::EventStore::new(self.dynamo.clone(), &self.table, 30, clock)
    }

    /// A store on this test's table with the local stack's retention
    /// ([`hookline_cli::LOCAL_RETENTION_DAYS`]), so that no sample in `events/` is refused as a
    /// replay whatever its provider time.
    pub fn local_store(&self, clock: hookline::clock::SharedClock) -> hookline::store::EventStore {
        hookline::store::EventStore::new(
            self.dynamo.clone(),
            &self.table,
            hookline_cli::LOCAL_RETENTION_DAYS,
            clock,
        )
    }

    /// A worker on this test's table and queues, every action kind pointing at `target`, with
    /// `timers` and `clock`.
    pub fn worker(
        &self,
        target: &Target,
        timers: hookline::followup::Timers,
        clock: hookline::clock::SharedClock,
    ) -> hookline::worker::Worker {
        let targets = hookline_receivers::action_kinds()
            .iter()
            .map(|k| {
                (
                    (*k).to_owned(),
                    hookline::config::Target::Url(target.url(k)),
                )
            })
            .collect();
        hookline::worker::Worker::from_parts(
            self.store(clock.clone()),
            self.queue(),
            &self.dlq_url,
            targets,
            timers,
            clock,
        )
        .unwrap()
    }

    /// Receives every message visible on `queue_url` now, without deleting them: the SQS event
    /// a worker would get (message ids, bodies, receipt handles).
    pub async fn receive(
        &self,
        queue_url: &str,
    ) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
        let mut all = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await?;
            let msgs = out.messages.unwrap_or_default();
            if msgs.is_empty() {
                return Ok(all);
            }
            all.extend(msgs);
        }
    }

    /// The follow-up queue.
    pub fn queue(&self) -> hookline::queue::FollowupQueue {
        hookline::queue::FollowupQueue::new(self.sqs.clone(), &self.queue_url)
    }

    /// Receives (and deletes) every message visible on `queue_url` now.
    pub async fn drain(&self, queue_url: &str) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
        let all = self.receive(queue_url).await?;
        for m in &all {
            if let Some(handle) = m.receipt_handle() {
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
        Ok(all)
    }
}

/// What one [`Stack::feed`] pass did.
#[derive(Debug, Default, Clone)]
pub struct Fed {
    /// Messages handed to the worker.
    pub received: usize,
    /// Receipt handles of the messages the worker reported as failed (still on the queue,
    /// invisible until their backoff ends; [`Stack::release`] ends it now).
    pub failed: Vec<String>,
}

impl Stack {
    /// Does what the SQS event source does, once: receives every visible message, shuffles them
    /// (deterministically, by `seed`), hands them to `worker` in batches of `batch` running
    /// concurrently, and deletes the messages not reported in `batchItemFailures`.
    pub async fn feed(
        &self,
        worker: &hookline::worker::Worker,
        batch: usize,
        seed: u64,
    ) -> anyhow::Result<Fed> {
        let mut messages = self.receive(&self.queue_url).await?;
        shuffle(&mut messages, seed);
        let mut fed = Fed {
            received: messages.len(),
            ..Fed::default()
        };
        let mut runs = Vec::new();
        for chunk in messages.chunks(batch.max(1)) {
            let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
            event.records = chunk
                .iter()
                .map(|m| {
                    let mut r = aws_lambda_events::event::sqs::SqsMessage::default();
                    r.message_id = m.message_id().map(str::to_owned);
                    r.receipt_handle = m.receipt_handle().map(str::to_owned);
                    r.body = m.body().map(str::to_owned);
                    r
                })
                .collect();
            let worker = worker.clone();
            runs.push((
                chunk.to_vec(),
                tokio::spawn(async move { worker.handle(event).await }),
            ));
        }
        for (chunk, run) in runs {
            let response = run.await?;
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for m in chunk {
                let handle = m.receipt_handle().unwrap_or_default().to_owned();
                if m.message_id().is_some_and(|id| failed.contains(&id)) {
                    fed.failed.push(handle);
                } else {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
        }
        Ok(fed)
    }

    /// Ends the backoff of messages left in flight: visible again now.
    pub async fn release(&self, handles: &[String]) -> anyhow::Result<()> {
        for h in handles {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(h)
                .visibility_timeout(0)
                .send()
                .await?;
        }
        Ok(())
    }

    /// Messages on `queue_url`: (visible, in flight).
    pub async fn depth(&self, queue_url: &str) -> anyhow::Result<(i64, i64)> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let get = |name: A| -> i64 {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            get(A::ApproximateNumberOfMessages),
            get(A::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

/// A sample payload from `events/<function>/<name>.json`, as the provider sends it.
pub fn sample(function: &str, name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../events/{function}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A deterministic shuffle (xorshift), so a failing order can be replayed from its seed.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = usize::try_from(x % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

/// A request the [`Target`] received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// Body as text.
    pub body: String,
}

/// A local HTTP target for follow-up actions that answers from a script of status codes (then
/// its default, 200 unless set) and records every request. A 3xx carries a `Location` pointing
/// back at the target (so a followed redirect would show as a second request); a status scripted
/// with [`Target::start_with_retry_after`] carries `Retry-After`.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    hits: Arc<AtomicUsize>,
    default: Arc<AtomicU16>,
}

impl Target {
    /// Starts a target answering `script` in order, then 200 forever.
    pub async fn start(script: Vec<u16>) -> anyhow::Result<Self> {
        Self::start_with_retry_after(script.into_iter().map(|s| (s, None)).collect()).await
    }

    /// Starts a target answering `(status, Retry-After)` in order, then its default.
    pub async fn start_with_retry_after(script: Vec<(u16, Option<&str>)>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let script: VecDeque<(u16, Option<String>)> = script
            .into_iter()
            .map(|(s, r)| (s, r.map(str::to_owned)))
            .collect();
        let script = Arc::new(Mutex::new(script));
        let received = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let default = Arc::new(AtomicU16::new(200));
        let (rec, h, d, here) = (
            received.clone(),
            hits.clone(),
            default.clone(),
            base.clone(),
        );
        tokio::spawn(hookline_cli::server::serve(listener, move |req| {
            let (rec, h, d, script, here) = (
                rec.clone(),
                h.clone(),
                d.clone(),
                script.clone(),
                here.clone(),
            );
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                rec.lock().unwrap().push(Received {
                    idempotency_key: req.header("idempotency-key").map(str::to_owned),
                    path: req.path,
                    body: String::from_utf8_lossy(&req.body).into_owned(),
                });
                let (status, retry_after) = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((d.load(Ordering::SeqCst), None));
                let mut answer = Answer {
                    status,
                    headers: Vec::new(),
                    body: b"{}".to_vec(),
                };
                if (300..400).contains(&status) {
                    answer = answer.with_header("location", format!("{here}/redirected"));
                }
                if let Some(r) = retry_after {
                    answer = answer.with_header("retry-after", r);
                }
                answer
            }
        }));
        Ok(Self {
            base,
            received,
            hits,
            default,
        })
    }

    /// What the target answers once its script is used up (e.g. 503 while it is "down").
    pub fn set_default(&self, status: u16) {
        self.default.store(status, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Number of requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The URL for an action kind.
    pub fn url(&self, kind: &str) -> url::Url {
        url::Url::parse(&format!("{}/{kind}", self.base)).unwrap()
    }
}

/// The documented local test secret (the same one `make dev` uses).
pub const LOCAL_SECRET: &str = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=";

/// A receiver for `spec` that verifies with [`LOCAL_SECRET`] on `clock` (300 s tolerance,
/// 256 KiB body limit) and writes through `store` and `queue`.
pub fn local_receiver(
    spec: hookline::receiver::ReceiverSpec,
    clock: &hookline::clock::SharedClock,
    store: hookline::store::EventStore,
    queue: hookline::queue::FollowupQueue,
) -> hookline::receiver::Receiver {
    let secrets = hookline::secret::Secrets::parse_list(LOCAL_SECRET).unwrap();
    let verifier = hookline::verify::Verifier::new(spec.scheme.clone(), secrets, 300)
        .unwrap()
        .with_clock(clock.clone());
    hookline::receiver::Receiver::from_parts(spec, verifier, 256 * 1024, store, queue)
}

/// A JSON POST of `body` signed under `scheme` as its sender would, with `secret`, at `timestamp`.
pub fn signed_request(
    scheme: &hookline::verify::Scheme,
    body: &[u8],
    secret: &str,
    delivery_id: &str,
    timestamp: i64,
) -> lambda_http::Request {
    let headers = hookline::verify::sign(
        scheme,
        &hookline::secret::Secret::new(secret),
        &hookline::verify::SignInput {
            body,
            timestamp,
            id: delivery_id,
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
    b.body(lambda_http::Body::Binary(body.to_vec())).unwrap()
}

/// Test logging: silent unless `TEST_LOG` is set.
pub fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    }
}
