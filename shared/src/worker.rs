//! The follow-up worker: runs each queued action and marks it on the event record.
//!
//! Invariant kept here (DESIGN.md 3): an action runs effectively once. Before running, the worker
//! reads the outbox and skips anything no longer PENDING; after a 2xx it marks the action DONE with
//! a conditional update, so a redelivered message finds it done. Every call carries an
//! `Idempotency-Key` (`<source>:<event id>:<action>`), so a target can also drop the rare second
//! call of two deliveries racing each other. Failures are reported per message
//! (`batchItemFailures`), never as a whole-batch retry.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::clock;
use crate::config::WorkerConfig;
use crate::queue;
use crate::store::{ActionStatus, EventStore, FollowUp, MarkResult};

/// The header naming the action instance, stable across retries.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The target answered 2xx; marked DONE.
    Done,
    /// No target configured for this kind; marked SKIPPED.
    Skipped,
    /// Already finished by an earlier delivery; nothing run.
    AlreadyFinished,
    /// The event record no longer exists (expired); nothing to run.
    EventGone,
}

/// Why a message must come back (reported as a batch item failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Retry {
    /// The target failed transiently (408, 429, 5xx, timeout, connection).
    #[error("action target failed transiently: {0}")]
    Transient(String),
    /// The target refused permanently (another 4xx); recorded FAILED, left for the dead-letter
    /// queue. Redelivery does not run it again.
    #[error("action failed permanently: {0}")]
    Permanent(String),
    /// DynamoDB failed.
    #[error("store unavailable: {0}")]
    Store(String),
    /// The message is not a follow-up.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// The worker: store, HTTP client and action targets, built once per cold start.
#[derive(Debug, Clone)]
pub struct Worker {
    store: EventStore,
    http: reqwest::Client,
    targets: BTreeMap<String, url::Url>,
}

impl Worker {
    /// Builds the worker from configuration.
    pub fn new(config: &WorkerConfig, sdk: &SdkConfig) -> Result<Self, reqwest::Error> {
        let store = EventStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &config.store.table_name,
            config.store.retention_days,
            clock::system(),
        );
        Self::from_parts(store, config.action_urls.clone(), config.action_timeout)
    }

    /// Assembles a worker from ready parts (tests).
    pub fn from_parts(
        store: EventStore,
        targets: BTreeMap<String, url::Url>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            store,
            http,
            targets,
        })
    }

    /// Handles one SQS batch, reporting each failed message by id. The messages run
    /// concurrently, so a batch of ten slow targets takes one action timeout, not ten, and stays
    /// inside the function's timeout.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let runs = event.records.into_iter().map(|record| async move {
            let id = record.message_id.unwrap_or_default();
            let result = self
                .handle_message(record.body.as_deref().unwrap_or_default())
                .await;
            (id, result)
        });
        let mut response = SqsBatchResponse::default();
        for (id, result) in futures_util::future::join_all(runs).await {
            match result {
                Ok(handled) => tracing::info!(message_id = %id, ?handled, "follow-up handled"),
                Err(err) => {
                    tracing::warn!(message_id = %id, error = %err, "follow-up will be retried");
                    response.add_failure(id);
                }
            }
        }
        response
    }

    /// Handles one message body.
    pub async fn handle_message(&self, body: &str) -> Result<Handled, Retry> {
        let followup = queue::decode(body).map_err(|e| Retry::Malformed(e.to_string()))?;
        let event = self
            .store
            .get_event(&followup.source, &followup.event_id)
            .await
            .map_err(|e| Retry::Store(e.to_string()))?;
        let Some(event) = event else {
            return Ok(Handled::EventGone);
        };
        let Some(entry) = event.outbox.iter().find(|o| o.kind == followup.action) else {
            return Err(Retry::Malformed(format!(
                "event has no action {:?}",
                followup.action
            )));
        };
        match entry.status {
            ActionStatus::Pending => {}
            ActionStatus::Failed => {
                return Err(Retry::Permanent("recorded as failed earlier".into()));
            }
            ActionStatus::Done | ActionStatus::Skipped => return Ok(Handled::AlreadyFinished),
        }
        let Some(url) = self.targets.get(&followup.action) else {
            return self
                .mark(&followup, ActionStatus::Skipped, Handled::Skipped)
                .await;
        };
        let key = format!(
            "{}:{}:{}",
            followup.source, followup.event_id, followup.action
        );
        let sent = self
            .http
            .post(url.clone())
            .header(IDEMPOTENCY_KEY, key)
            .json(&entry.payload)
            .send()
            .await;
        let status = match sent {
            Ok(resp) => resp.status(),
            Err(err) => return Err(Retry::Transient(err.without_url().to_string())),
        };
        if status.is_success() {
            return self
                .mark(&followup, ActionStatus::Done, Handled::Done)
                .await;
        }
        let transient = status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
            || !status.is_client_error();
        if transient {
            return Err(Retry::Transient(format!("target answered {status}")));
        }
        self.mark(&followup, ActionStatus::Failed, Handled::Done)
            .await?;
        Err(Retry::Permanent(format!("target answered {status}")))
    }

    async fn mark(
        &self,
        f: &FollowUp,
        status: ActionStatus,
        handled: Handled,
    ) -> Result<Handled, Retry> {
        match self.store.mark_action(f, status).await {
            Ok(MarkResult::Marked) => Ok(handled),
            Ok(MarkResult::AlreadyFinished) => Ok(Handled::AlreadyFinished),
            Err(e) => Err(Retry::Store(e.to_string())),
        }
    }
}
