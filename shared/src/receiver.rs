//! The receiver pipeline shared by every webhook function: guards → verify → describe → one
//! transaction → one batch send → JSON answer, inside a time budget.
//!
//! Invariants kept here:
//! - a request from outside `ALLOWED_SOURCE_CIDRS` is refused before any other work (403);
//! - a 2xx is answered only after the event is durable (invariant 1);
//! - a request that fails verification touches neither DynamoDB nor SQS (invariant 4);
//! - a verified body is never lost because our model did not fit it: it is recorded as
//!   `quarantined` with its raw body and the parse error's kind and position (never a body
//!   value), answered 200, and replayable (`hookline events replay`). Its id is a signed one
//!   where the scheme has one, else the body's SHA-256, never an unsigned header. A permanent
//!   store refusal quarantines it too; only a transient failure answers 503;
//! - a failed or late SQS send after the commit still answers 200: the follow-ups stay PENDING
//!   and the reconciler enqueues them (invariant 3). A duplicate re-enqueues what the stored event
//!   still has PENDING, so a sender's retry after a lost response recovers at once;
//! - a scheme that signs no time (GitHub, Shopify, a static header) cannot tell a captured
//!   delivery sent again from the original: once the event's record has expired, it would be
//!   new. Such an event whose own time is older than the record retention is refused (422,
//!   `rejected_422`) before any write (docs/SECURITY.md, "Replays");
//! - the whole request fits a budget: the lower of the invocation's deadline and the sender's own
//!   timeout (Slack 3 s, Shopify 5 s, others 10 s), so the sender hears an answer it will act on.
//!
//! The store is a [`Store`](crate::store::Store): DynamoDB's in production; its in-memory double
//! in the unit tests beside this file (`receiver/tests.rs`), which reach throttling, conflicts
//! and lost answers without an emulator.
//!
//! Each function supplies only a [`ReceiverSpec`]: its scheme, sender timeout and pure
//! [`Describe`] mapping.
//!
//! The numbered invariants are those of docs/ARCHITECTURE.md.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::allowlist::SourceAllowlist;
use crate::clock::{self, SharedClock};
use crate::config::ReceiverConfig;
use crate::http::{ApiError, ContentKind, guard, json_response};
use crate::metrics::{self, Metric, Metrics};
use crate::queue::FollowupQueue;
use crate::secrets::{RefreshingVerifier, SecretsError};
use crate::store::{
    Committed, Effects, NewEvent, Outcome, RecordPlan, SharedStore, Store, StoreError,
};
use crate::verify::{Incoming, ParseError, Scheme, Verified, VerifiedMeta, Verifier};

/// What a function's handler learns from one verified delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// The provider's stable event id (same on redelivery): the idempotency key.
    pub event_id: String,
    /// The provider's event type, e.g. `invoice.paid`.
    pub event_type: String,
    /// The provider's event time, milliseconds since the epoch.
    pub provider_ts: i64,
    /// The state change and follow-ups the event calls for.
    pub effects: Effects,
    /// True when `event_id` is the same on every delivery of the event, so a resend is answered
    /// `duplicate`. False when the delivery holds no stable id and the mapping keyed it by the
    /// request ([`Verified::request_id`], e.g. Builder.io's "disable payload" mode): every
    /// delivery is then recorded as new, and the answer says `"deduplicated": false`.
    pub deduplicated: bool,
    /// A value the sender wants echoed in the answer (Slack's `url_verification` challenge),
    /// added to the JSON answer as `challenge`, whatever the outcome. A mapping sets it, so it is
    /// only ever answered after verification.
    pub challenge: Option<String>,
}

impl Described {
    /// An event keyed by a stable id (`deduplicated`), with nothing to echo.
    pub fn new(event_id: String, event_type: String, provider_ts: i64, effects: Effects) -> Self {
        Self {
            event_id,
            event_type,
            provider_ts,
            effects,
            deduplicated: true,
            challenge: None,
        }
    }
}

/// A function's mapping from a verified delivery to what it means. Pure: no I/O.
pub type Describe = fn(&Verified<'_>) -> Result<Described, ParseError>;

/// Longest event id accepted (DynamoDB keys allow 2 KB; provider ids are far shorter).
pub const MAX_EVENT_ID_LEN: usize = 256;

/// The most [`Receiver::open_connections`] may add to a cold start.
pub const WARM_UP_BUDGET: Duration = Duration::from_millis(500);

/// Kept back from the budget for answering.
const ANSWER_MARGIN: Duration = Duration::from_millis(250);
/// Below this, the SQS send is not even tried: the reconciler sends.
const MIN_SEND_BUDGET: Duration = Duration::from_millis(100);

/// What distinguishes one receiver function from another.
#[derive(Debug, Clone)]
pub struct ReceiverSpec {
    /// Source name stored with each event, e.g. `stripe` (no `#`).
    pub source: &'static str,
    /// Function name, e.g. `payment-events`: the binary, the folder under `functions/` and the
    /// local URL `/lambda-url/<function>/`.
    pub function: &'static str,
    /// The HTTP API route `template.yaml` gives the function, e.g. `/webhooks/stripe`.
    pub route: &'static str,
    /// Signature scheme.
    pub scheme: Scheme,
    /// Accepted media type.
    pub content: ContentKind,
    /// How long the sender waits for an answer before it counts the delivery as failed.
    pub sender_timeout: Duration,
    /// Event → effects mapping.
    pub describe: Describe,
    /// Every action kind the mapping emits: its event actions' kinds and its syncs' target
    /// actions. Declared once, as the receiver crate's `ACTION_KINDS`; the registry gives the
    /// worker their union, and each needs a template parameter (tests/tests/action_kinds.rs and
    /// tests/tests/template_parity.rs fail otherwise).
    pub action_kinds: &'static [&'static str],
}

/// A ready receiver: configuration, verifier and clients, built once per cold start.
#[derive(Debug, Clone)]
pub struct Receiver {
    spec: ReceiverSpec,
    verifier: RefreshingVerifier,
    max_body_bytes: usize,
    store: SharedStore,
    queue: FollowupQueue,
    clock: SharedClock,
    allowed_sources: Option<SourceAllowlist>,
    metrics: Metrics,
}

/// Opens the DynamoDB and SQS connections concurrently, within [`WARM_UP_BUDGET`], answers
/// unused: a receiver's warm-up during init ([`Receiver::open_connections`]), and the
/// benchmark's SDK floor's, so that both measure the same calls.
pub async fn open_connections(store: &dyn Store, queue: &FollowupQueue) {
    let both = async { tokio::join!(store.open_connection(), queue.open_connection()) };
    if tokio::time::timeout(WARM_UP_BUDGET, both).await.is_err() {
        tracing::debug!("warm-up cut short");
    }
}

/// A receiver function's whole `main`: telemetry, configuration from the environment, the AWS
/// clients built once, then the Lambda runtime loop. A function's `main.rs` is one call:
/// `hookline::receiver::serve(<crate>::spec()).await`.
///
/// # Errors
/// A configuration error or an unreadable signing secret at start-up (the init fails, and Lambda
/// reports it), or the runtime's own failure.
pub async fn serve(spec: ReceiverSpec) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let config = ReceiverConfig::from_env()?;
    let sdk = crate::config::aws().await;
    let receiver = Receiver::new(spec, &config, &sdk).await?;
    receiver.open_connections().await;
    let receiver = &receiver;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(receiver.handle(req).await)
    }))
    .await
}

/// What one request's metric line reports besides `received` and the duration.
#[derive(Debug, Clone, Copy)]
struct Reception {
    /// The outcome's metric name (`accepted`, ..., `rejected_401`, `unavailable`).
    outcome: &'static str,
    /// Whether the follow-ups reached SQS.
    enqueued: Enqueued,
}

/// Whether a request's follow-ups reached SQS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enqueued {
    /// Sent, or nothing to send.
    Sent,
    /// Not sent (SQS refused, or no budget left): left PENDING for the reconciler.
    Failed,
}

/// A request ready to commit: what it means and the DynamoDB writes that record it.
#[derive(Debug)]
pub struct Prepared {
    /// The mapping's result.
    pub described: Described,
    plan: RecordPlan,
    /// The delivery's headers, kept on the record.
    delivery: VerifiedMeta,
}

/// What a verified request comes to before any I/O.
#[derive(Debug)]
pub enum Step {
    /// The mapping understood it.
    Ready(Box<Prepared>),
    /// The body is genuine but does not fit the model: quarantine it under this id.
    Quarantine {
        /// A signed id, or `sha256:<hex of the body>`.
        event_id: String,
        /// The event type, where a header named it.
        event_type: String,
        /// The parse error's kind and position.
        reason: String,
        /// The delivery's headers, kept on the record so that a replay has them.
        delivery: VerifiedMeta,
    },
}

impl Receiver {
    /// Builds the receiver from configuration and the AWS SDK configuration. With
    /// `WEBHOOK_SECRETS_ID` this reads the secrets from Secrets Manager, and fails when it cannot.
    pub async fn new(
        spec: ReceiverSpec,
        config: &ReceiverConfig,
        sdk: &SdkConfig,
    ) -> Result<Self, SecretsError> {
        let clock = clock::system();
        let verifier = config
            .secrets
            .verifier(
                spec.scheme.clone(),
                config.tolerance_secs,
                sdk,
                clock.clone(),
            )
            .await?;
        let store = config
            .store
            .store(aws_sdk_dynamodb::Client::new(sdk), clock.clone());
        let queue = FollowupQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url);
        Ok(
            Self::from_parts(spec, verifier, config.max_body_bytes, store, queue)
                .with_allowed_sources(config.allowed_sources.clone()),
        )
    }

    /// Assembles a receiver from ready parts (tests inject clients, clocks and the in-memory
    /// store here). A plain [`Verifier`] has fixed secrets; a [`RefreshingVerifier`] re-reads
    /// them.
    pub fn from_parts(
        spec: ReceiverSpec,
        verifier: impl Into<RefreshingVerifier>,
        max_body_bytes: usize,
        store: impl Into<SharedStore>,
        queue: FollowupQueue,
    ) -> Self {
        let store = store.into();
        Self {
            spec,
            verifier: verifier.into(),
            max_body_bytes,
            clock: store.clock().clone(),
            store,
            queue,
            allowed_sources: None,
            metrics: Metrics::stdout(),
        }
    }

    /// Opens the DynamoDB and SQS connections (TCP and TLS) at the same time, during init,
    /// instead of one after the other inside the first request: one `DescribeEndpoints` and one
    /// `GetQueueAttributes`, whose answers are not used, within [`WARM_UP_BUDGET`]. A failure
    /// changes nothing: the first request connects as it would have (docs/BENCHMARKS.md).
    pub async fn open_connections(&self) {
        open_connections(self.store.as_ref(), &self.queue).await;
    }

    /// Writes metric lines to `metrics` instead of stdout (tests).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Accepts requests only from `allowed` (`ALLOWED_SOURCE_CIDRS`); `None`: from anywhere.
    #[must_use]
    pub fn with_allowed_sources(mut self, allowed: Option<SourceAllowlist>) -> Self {
        self.allowed_sources = allowed;
        self
    }

    /// 403 unless the API Gateway source address is in the allowlist (when there is one).
    fn check_source(&self, req: &Request) -> Result<(), ApiError> {
        let Some(allowed) = &self.allowed_sources else {
            return Ok(());
        };
        let source_ip = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref(),
            _ => None,
        };
        if allowed.allows_source(source_ip) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(source_ip.map(str::to_owned)))
        }
    }

    /// Handles one API Gateway request. Never fails: every error becomes its HTTP answer. Emits
    /// the request's one metric line (see [`crate::metrics`]).
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let (resp, Reception { outcome, enqueued }) = match self.process(&req, started).await {
            Ok(done) => done,
            Err(err) => {
                let outcome = metrics::rejection(err.status());
                (
                    err.into_response(),
                    Reception {
                        outcome,
                        enqueued: Enqueued::Sent,
                    },
                )
            }
        };
        let mut line = vec![
            Metric::count(metrics::RECEIVED, 1),
            Metric::count(outcome, 1),
        ];
        if outcome.starts_with(metrics::REJECTED) {
            line.push(Metric::count(metrics::REJECTED, 1));
        }
        if enqueued == Enqueued::Failed {
            line.push(Metric::count(metrics::ENQUEUE_FAILED, 1));
        }
        line.push(Metric::duration(
            metrics::HANDLER_DURATION_MS,
            started.elapsed(),
        ));
        self.metrics
            .emit(self.spec.function, self.spec.source, &line);
        resp
    }

    /// Everything before the network: guards, verification, parsing, mapping, and the DynamoDB
    /// request built. Separate so that its cost can be measured on its own (benches/receiver.rs).
    pub fn prepare(&self, req: &Request) -> Result<Step, ApiError> {
        self.check_source(req)?;
        self.prepare_with(&self.verifier.current(), req)
    }

    /// [`prepare`](Self::prepare) with a given verifier (the one current, or a refreshed one).
    fn prepare_with(&self, verifier: &Verifier, req: &Request) -> Result<Step, ApiError> {
        let body: &[u8] = req.body().as_ref();
        guard(
            req.method(),
            req.headers(),
            body.len(),
            self.max_body_bytes,
            self.spec.content,
        )?;
        let url = (self.spec.scheme == Scheme::Twilio).then(|| full_url(req));
        let verified = verifier
            .verify(&Incoming {
                headers: req.headers(),
                body,
                url: url.as_deref(),
            })?
            .with_request_id(Some(request_id(req)));
        let described = match (self.spec.describe)(&verified) {
            Ok(d) if valid_id(&d.event_id) => d,
            Ok(_) => return Ok(self.quarantine_step(&verified, "event id missing or invalid")),
            Err(e) => return Ok(self.quarantine_step(&verified, &e.to_string())),
        };
        self.check_replay_window(&described)?;
        match self.store.plan(
            &self.event(&described, body, Some(verified.meta())),
            &described.effects,
        ) {
            Ok(plan) => Ok(Step::Ready(Box::new(Prepared {
                described,
                plan,
                delivery: verified.meta().clone(),
            }))),
            Err(e) => Ok(self.quarantine_step(&verified, &format!("not storable: {e}"))),
        }
    }

    /// A scheme that signs no time lets anyone resend a captured delivery; once its event record
    /// has expired it would be new again. So such an event whose own (signed, provider-set) time
    /// is older than the record retention is refused (docs/SECURITY.md, "Replays"). An event
    /// without a provider time (`provider_ts` 0) cannot be checked and passes.
    fn check_replay_window(&self, described: &Described) -> Result<(), ApiError> {
        if self.spec.scheme.signs_time() || described.provider_ts <= 0 {
            return Ok(());
        }
        let window_ms = self.store.retention_secs().saturating_mul(1000);
        let age_ms = self
            .clock
            .now_millis()
            .saturating_sub(described.provider_ts);
        if age_ms > window_ms {
            return Err(ApiError::ReplayOutsideWindow {
                max_age_days: self.store.retention_secs() / 86_400,
            });
        }
        Ok(())
    }

    fn quarantine_step(&self, verified: &Verified<'_>, reason: &str) -> Step {
        Step::Quarantine {
            event_id: quarantine_id(&self.spec.scheme, verified),
            event_type: verified.meta().event_type.clone().unwrap_or_default(),
            reason: reason.to_owned(),
            delivery: verified.meta().clone(),
        }
    }

    fn event<'a>(
        &self,
        described: &'a Described,
        body: &'a [u8],
        delivery: Option<&'a VerifiedMeta>,
    ) -> NewEvent<'a> {
        NewEvent {
            source: self.spec.source,
            function: self.spec.function,
            event_id: &described.event_id,
            event_type: &described.event_type,
            provider_ts: described.provider_ts,
            body,
            delivery,
        }
    }

    /// The time this request may still take: the lower of the invocation's deadline and the
    /// sender's timeout, less a margin for answering. A deadline that is not in the future when
    /// the request is handled is no deadline Lambda would send (local runtimes send odd ones) and
    /// is ignored: the sender's timeout still bounds the request.
    fn budget(&self, req: &Request, started: Instant) -> Duration {
        let sender = self.spec.sender_timeout.saturating_sub(started.elapsed());
        let lambda = req.lambda_context_ref().and_then(|ctx| {
            let left = i64::try_from(ctx.deadline).unwrap_or(i64::MAX) - self.clock.now_millis();
            u64::try_from(left)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
        });
        lambda
            .map_or(sender, |l| l.min(sender))
            .saturating_sub(ANSWER_MARGIN)
    }

    async fn process(
        &self,
        req: &Request,
        started: Instant,
    ) -> Result<(Response<Body>, Reception), ApiError> {
        let body: &[u8] = req.body().as_ref();
        self.check_source(req)?; // before any other work, secrets refresh included
        // Secrets are re-read when too old, or (rate-limited) when no secret matched a signature.
        let step = self
            .verifier
            .check(
                |v| self.prepare_with(v, req),
                ApiError::is_signature_mismatch,
            )
            .await?;
        let budget = self.budget(req, started);
        let mut extra = serde_json::Map::new();
        let (committed, event_id, event_type) = match step {
            Step::Ready(prepared) => {
                let Prepared {
                    described,
                    plan,
                    delivery,
                } = *prepared;
                if let Some(challenge) = &described.challenge {
                    extra.insert("challenge".into(), challenge.clone().into());
                }
                if !described.deduplicated {
                    extra.insert("deduplicated".into(), false.into());
                }
                let event = self.event(&described, body, Some(&delivery));
                match within(budget, self.store.commit(plan)).await {
                    Ok(c) => (c, described.event_id.clone(), described.event_type.clone()),
                    Err(StoreError::Permanent { message, .. }) => {
                        let reason = format!("not storable: {message}");
                        let left = budget.saturating_sub(started.elapsed());
                        let c = self.quarantine(&event, &reason, left).await?;
                        (c, described.event_id.clone(), described.event_type.clone())
                    }
                    Err(e) => return Err(store_failure(e)),
                }
            }
            Step::Quarantine {
                event_id,
                event_type,
                reason,
                delivery,
            } => {
                let event = NewEvent {
                    source: self.spec.source,
                    function: self.spec.function,
                    event_id: &event_id,
                    event_type: &event_type,
                    provider_ts: 0,
                    body,
                    delivery: Some(&delivery),
                };
                let c = self.quarantine(&event, &reason, budget).await?;
                (c, event_id, event_type)
            }
        };
        let enqueued = self
            .enqueue(
                &committed,
                &event_id,
                budget.saturating_sub(started.elapsed()),
            )
            .await;
        tracing::info!(
            function = self.spec.function,
            event_id = %event_id,
            event_type = %event_type,
            outcome = committed.outcome.status(),
            "webhook received"
        );
        let mut answer = json!({"status": committed.outcome.status(), "event_id": event_id});
        if let Some(fields) = answer.as_object_mut() {
            fields.extend(extra);
        }
        Ok((
            json_response(http::StatusCode::OK, &answer),
            Reception {
                outcome: committed.outcome.status(),
                enqueued,
            },
        ))
    }

    /// Records `event` as quarantined within `left` of the budget, and says so in the log (the
    /// metric line counts it too).
    async fn quarantine(
        &self,
        event: &NewEvent<'_>,
        reason: &str,
        left: Duration,
    ) -> Result<Committed, ApiError> {
        let c = within(left, self.store.quarantine(event, reason))
            .await
            .map_err(store_failure)?;
        if c.outcome == Outcome::Quarantined {
            tracing::warn!(
                metric = "event_quarantined",
                function = self.spec.function,
                event_id = %event.event_id,
                reason = %reason,
                "verified event quarantined: it does not fit the model, or the store refused it"
            );
        }
        Ok(c)
    }

    /// Sends the follow-ups within what is left of the budget; whatever does not make it stays
    /// PENDING for the reconciler.
    async fn enqueue(&self, committed: &Committed, event_id: &str, left: Duration) -> Enqueued {
        if committed.enqueue.is_empty() {
            return Enqueued::Sent;
        }
        let failure = if left < MIN_SEND_BUDGET {
            Some("no time left in the request's budget".to_owned())
        } else {
            match tokio::time::timeout(left, self.queue.send(&committed.enqueue)).await {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(err.to_string()),
                Err(_) => Some("the send did not finish within the request's budget".to_owned()),
            }
        };
        let Some(error) = failure else {
            return Enqueued::Sent;
        };
        tracing::warn!(
            metric = "followup_enqueue_failed",
            event_id = %event_id,
            error = %error,
            "follow-ups not enqueued; left pending for the reconciler"
        );
        Enqueued::Failed
    }
}

/// Runs a store write within `left` of the request's budget; running out is a transient
/// failure (503: the sender retries).
async fn within<T>(
    left: Duration,
    write: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(left, write).await.unwrap_or_else(|_| {
        Err(StoreError::Transient {
            op: "TransactWriteItems",
            message: "the request's time budget ran out".into(),
        })
    })
}

fn store_failure(e: StoreError) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_EVENT_ID_LEN && !id.chars().any(char::is_control)
}

/// The id a quarantined delivery is stored under: the scheme's signed id where it has one (the
/// Standard Webhooks message id, the `id` of a Stripe body, the `event_id` of a Slack body),
/// else `sha256:<hex>` of the body, which is stable across retries (they re-sign headers, not
/// bodies). Never an unsigned header: anyone could mint unlimited quarantine records with one.
pub fn quarantine_id(scheme: &Scheme, verified: &Verified<'_>) -> String {
    #[derive(serde::Deserialize)]
    struct Ids {
        id: Option<String>,
        event_id: Option<String>,
    }
    let ids = || serde_json::from_slice::<Ids>(verified.body()).ok();
    let signed = match scheme {
        Scheme::StandardWebhooks => verified.meta().delivery_id.clone(),
        Scheme::Stripe => ids().and_then(|i| i.id),
        Scheme::Slack => ids().and_then(|i| i.event_id),
        _ => None,
    };
    signed
        .filter(|id| valid_id(id))
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(verified.body()))))
}

/// The id of this one HTTP request: API Gateway's `requestId`, else the Lambda invocation's,
/// else (a request handled outside Lambda: tests, a local runtime that sets neither) one made up
/// here, `local-<uuid>`. Unique per request in every case.
fn request_id(req: &Request) -> String {
    let gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    gateway
        .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4().simple()))
}

/// The URL the sender posted to, as it saw it: `https://{host}{path}?{query}` (Twilio signs it).
fn full_url(req: &Request) -> String {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let path = req.raw_http_path();
    match req.uri().query() {
        Some(q) => format!("https://{host}{path}?{q}"),
        None => format!("https://{host}{path}"),
    }
}

#[cfg(test)]
mod tests;
