//! The receiver pipeline shared by every webhook function: guards → verify → describe → one
//! transaction → one batch send → JSON answer.
//!
//! Invariants kept here: a request from outside `ALLOWED_SOURCE_CIDRS` is refused before any
//! other work (403); a 2xx is answered only after [`EventStore::record`] returned (the event
//! is durable, invariant 1); a request that fails verification touches neither DynamoDB nor SQS
//! (invariant 4); a failed SQS send after the commit still answers 200, because the outbox stays
//! PENDING and the reconciler re-enqueues it (invariant 3). Each function supplies only a
//! [`ReceiverSpec`]: its scheme and its pure [`Describe`] mapping.

use aws_config::SdkConfig;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::allowlist::SourceAllowlist;
use crate::clock;
use crate::config::ReceiverConfig;
use crate::http::{ApiError, ContentKind, guard, json_response};
use crate::metrics::{self, Metric, Metrics};
use crate::queue::FollowupQueue;
use crate::secrets::{RefreshingVerifier, SecretsError};
use crate::store::{Effects, EventStore, NewEvent, Outcome, RecordPlan};
use crate::verify::{Incoming, ParseError, Scheme, Verified, Verifier};

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
}

/// A function's mapping from a verified delivery to what it means. Pure: no I/O.
pub type Describe = fn(&Verified<'_>) -> Result<Described, ParseError>;

/// Longest event id accepted (DynamoDB keys allow 2 KB; provider ids are far shorter).
pub const MAX_EVENT_ID_LEN: usize = 256;

/// What distinguishes one receiver function from another.
#[derive(Debug, Clone)]
pub struct ReceiverSpec {
    /// Source name stored with each event, e.g. `stripe` (no `#`).
    pub source: &'static str,
    /// Function name, e.g. `payment-events`.
    pub function: &'static str,
    /// Signature scheme.
    pub scheme: Scheme,
    /// Accepted media type.
    pub content: ContentKind,
    /// Event → effects mapping.
    pub describe: Describe,
}

/// A ready receiver: configuration, verifier and clients, built once per cold start.
#[derive(Debug, Clone)]
pub struct Receiver {
    spec: ReceiverSpec,
    verifier: RefreshingVerifier,
    max_body_bytes: usize,
    store: EventStore,
    queue: FollowupQueue,
    allowed_sources: Option<SourceAllowlist>,
    metrics: Metrics,
}

/// What one request's metric line reports besides `received` and the duration: the outcome's
/// metric name (`accepted`, ..., `rejected_401`, `unavailable`) and whether SQS refused the
/// follow-ups.
type Reception = (&'static str, bool);

impl Receiver {
    /// Builds the receiver from configuration and the AWS SDK configuration. With
    /// `WEBHOOK_SECRETS_ID` this reads the secrets from Secrets Manager, and fails when it cannot.
    pub async fn new(
        spec: ReceiverSpec,
        config: &ReceiverConfig,
        sdk: &SdkConfig,
    ) -> Result<Self, SecretsError> {
        let clock = clock::system();
        let verifier = RefreshingVerifier::from_config(
            spec.scheme.clone(),
            &config.secrets,
            config.tolerance_secs,
            sdk,
            clock.clone(),
        )
        .await?;
        let store = EventStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &config.store.table_name,
            config.store.retention_days,
            clock,
        );
        let queue = FollowupQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url);
        Ok(
            Self::from_parts(spec, verifier, config.max_body_bytes, store, queue)
                .with_allowed_sources(config.allowed_sources.clone()),
        )
    }

    /// Assembles a receiver from ready parts (tests inject clients and clocks here). A plain
    /// [`Verifier`] has fixed secrets; a [`RefreshingVerifier`] re-reads them.
    pub fn from_parts(
        spec: ReceiverSpec,
        verifier: impl Into<RefreshingVerifier>,
        max_body_bytes: usize,
        store: EventStore,
        queue: FollowupQueue,
    ) -> Self {
        Self {
            spec,
            verifier: verifier.into(),
            max_body_bytes,
            store,
            queue,
            allowed_sources: None,
            metrics: Metrics::stdout(),
        }
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
        let started = std::time::Instant::now();
        let (resp, (outcome, enqueue_failed)) = match self.process(&req).await {
            Ok(done) => done,
            Err(err) => {
                let outcome = metrics::rejection(err.status());
                (err.into_response(), (outcome, false))
            }
        };
        let mut line = vec![
            Metric::count(metrics::RECEIVED, 1),
            Metric::count(outcome, 1),
        ];
        if outcome.starts_with(metrics::REJECTED) {
            line.push(Metric::count(metrics::REJECTED, 1));
        }
        if enqueue_failed {
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
    pub fn prepare(&self, req: &Request) -> Result<Prepared, ApiError> {
        self.check_source(req)?;
        self.prepare_with(&self.verifier.current(), req)
    }

    /// [`prepare`](Self::prepare) with a given verifier (the one current, or a refreshed one).
    fn prepare_with(&self, verifier: &Verifier, req: &Request) -> Result<Prepared, ApiError> {
        let body: &[u8] = req.body().as_ref();
        guard(
            req.method(),
            req.headers(),
            body.len(),
            self.max_body_bytes,
            self.spec.content,
        )?;
        let url = (self.spec.scheme == Scheme::Twilio).then(|| full_url(req));
        let verified = verifier.verify(&Incoming {
            headers: req.headers(),
            body,
            url: url.as_deref(),
        })?;
        let described = (self.spec.describe)(&verified)?;
        let id = &described.event_id;
        if id.is_empty() || id.len() > MAX_EVENT_ID_LEN || id.chars().any(char::is_control) {
            return Err(ApiError::InvalidEvent(format!(
                "event id must be 1 to {MAX_EVENT_ID_LEN} printable characters"
            )));
        }
        let plan = self
            .store
            .plan(&self.event(&described, body), &described.effects)
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        Ok(Prepared { described, plan })
    }

    fn event<'a>(&self, described: &'a Described, body: &'a [u8]) -> NewEvent<'a> {
        NewEvent {
            source: self.spec.source,
            function: self.spec.function,
            event_id: &described.event_id,
            event_type: &described.event_type,
            provider_ts: described.provider_ts,
            body,
        }
    }

    async fn process(&self, req: &Request) -> Result<(Response<Body>, Reception), ApiError> {
        self.check_source(req)?; // before any other work, secrets refresh included
        // Secrets are re-read when too old, or (rate-limited) when no secret matched a signature.
        let Prepared { described, plan } = self
            .verifier
            .check(
                |v| self.prepare_with(v, req),
                ApiError::is_signature_mismatch,
            )
            .await?;
        let id = &described.event_id;
        let outcome = self
            .store
            .commit(&self.event(&described, req.body().as_ref()), plan)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let mut enqueue_failed = false;
        if let Outcome::Accepted(followups) = &outcome
            && !followups.is_empty()
            && let Err(err) = self.queue.send(followups).await
        {
            // The event is durable and its outbox PENDING: the reconciler will enqueue it.
            enqueue_failed = true;
            tracing::warn!(
                metric = "followup_enqueue_failed",
                event_id = %id,
                error = %err,
                "follow-ups not enqueued; left pending for the reconciler"
            );
        }
        tracing::info!(
            function = self.spec.function,
            event_id = %id,
            event_type = %described.event_type,
            outcome = outcome.status(),
            "webhook received"
        );
        Ok((
            json_response(
                http::StatusCode::OK,
                &json!({"status": outcome.status(), "event_id": id}),
            ),
            (outcome.status(), enqueue_failed),
        ))
    }
}

/// A request ready to commit: what it means and the DynamoDB writes that record it.
#[derive(Debug)]
pub struct Prepared {
    /// The mapping's result.
    pub described: Described,
    plan: RecordPlan,
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
