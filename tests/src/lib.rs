//! Test support for the integration and end-to-end tests: each test gets its own uniquely named
//! table and queues in the local emulator (moto server, started by `scripts/test.sh` on a free
//! port and named by `AWS_ENDPOINT_URL`), the real SDK clients, an AWS call counter, and a
//! scripted HTTP target for follow-up actions.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use aws_sdk_dynamodb::config::Intercept;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

    /// An event store on this test's table, with `clock`.
    pub fn store(&self, clock: hookline::clock::SharedClock) -> hookline::store::EventStore {
        hookline::store::EventStore::new(self.dynamo.clone(), &self.table, 30, clock)
    }

    /// The follow-up queue.
    pub fn queue(&self) -> hookline::queue::FollowupQueue {
        hookline::queue::FollowupQueue::new(self.sqs.clone(), &self.queue_url)
    }

    /// Receives (and deletes) every message visible on `queue_url` now.
    pub async fn drain(&self, queue_url: &str) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
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
            for m in &msgs {
                if let Some(handle) = m.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
            all.extend(msgs);
        }
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
/// 200) and records every request.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    hits: Arc<AtomicUsize>,
}

impl Target {
    /// Starts a target answering `script` in order, then 200 forever.
    pub async fn start(script: Vec<u16>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let received = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (rec, h) = (received.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (rec, h, script) = (rec.clone(), h.clone(), script.clone());
                tokio::spawn(async move {
                    let Ok(req) = read_request(&mut sock).await else {
                        return;
                    };
                    h.fetch_add(1, Ordering::SeqCst);
                    rec.lock().unwrap().push(req);
                    let status = script.lock().unwrap().pop_front().unwrap_or(200);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Ok(Self {
            base,
            received,
            hits,
        })
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

async fn read_request(sock: &mut tokio::net::TcpStream) -> anyhow::Result<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the headers ended");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Received {
        path,
        idempotency_key: header("idempotency-key"),
        body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
    })
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
