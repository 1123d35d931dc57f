//! The follow-up worker: runs each queued follow-up under a lease (docs/FOLLOWUPS.md).
//!
//! Invariants kept here (docs/FOLLOWUPS.md, "The lifecycle"):
//! - **only the claimant POSTs**: a message first claims its follow-up with a conditional update
//!   (a lease and attempt + 1); a message whose claim fails (someone holds the lease, or it is
//!   finished) is deleted, not retried: the reconciler, not a stray copy, recovers a crashed
//!   claim. DONE and FAILED are written only while the lease is ours;
//! - **the same `Idempotency-Key` on every automatic repeat**
//!   (`<source>:<event id>:<action>:<generation>`; for a sync `<source>:<kind>/<id>#<seq>:<sync>:
//!   <generation>`, the sequence moving only when the state sent changes), the generation
//!   changing only on an operator's retry;
//! - **a sync converges, and ambiguity counts as sent**: the worker compares the entity's
//!   desired state with what was last *maybe sent* ([`followup::sync_step`]); before it POSTs a
//!   new state it records it as sent under the lease (`EventStore::mark_sync_sent`), so a POST
//!   without a clear answer is never mistaken for "never granted" and the baseline (a revoke) is
//!   skipped only when nothing was ever sent. If the entity moved on while it worked the sync
//!   stays PENDING and is enqueued again;
//! - **an event action's guard is read when it runs**: a failed guard (entity deleted, an
//!   invoice paid meanwhile) ends it SKIPPED with the reason, without a POST;
//! - **FAILED is always seen**: the worker sends the message to the DLQ itself BEFORE it marks
//!   FAILED (a refused send marks nothing and the message comes back), then lets the event source
//!   delete it, and counts `followups_failed` for every FAILED, one recognised through its own
//!   retried write included. A copy whose mark then finds the lease lost is dropped by
//!   `hookline dlq redrive` (its follow-up is not FAILED). A transient failure backs off by changing
//!   the message's visibility (capped, jittered, `Retry-After` honoured) and reporting it in
//!   `batchItemFailures`; redirects are never followed (a POST must not become a GET).
//!
//! The store is a [`Store`](crate::store::Store): DynamoDB's in production; its in-memory double
//! in the unit tests beside this file (`worker/tests.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::clock::{self, SharedClock};
use crate::config::{Target, WorkerConfig};
use crate::followup::{self, SyncStep, Timers, Verdict};
use crate::metrics::{self, Metrics};
use crate::queue::{self, FollowupQueue};
use crate::store::{Finish, FollowUp, Marked, SharedStore, SyncTarget};

/// The header naming the follow-up instance, stable across automatic repeats.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// What became of one message (it is deleted from the queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The target answered 2xx; DONE.
    Done,
    /// A sync whose target already has the desired state: DONE without a POST.
    UpToDate,
    /// SKIPPED: the kind's target is `disabled`, or the action's guard failed.
    Skipped,
    /// FAILED and moved to the dead-letter queue.
    Failed,
    /// Not claimable (someone holds it, or it is finished): the copy is dropped.
    NotClaimed,
    /// A sync whose entity moved on while it ran: PENDING again and enqueued again.
    Requeued,
    /// The lease expired before the mark; whoever holds it now finishes it.
    LeaseLost,
}

/// Why a message must come back (reported as a batch item failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Retry {
    /// The target failed transiently; the message reappears after `delay`.
    #[error("target failed transiently ({reason}); retry in {delay:?}")]
    Backoff {
        /// Why.
        reason: String,
        /// The backoff.
        delay: Duration,
    },
    /// DynamoDB or SQS failed.
    #[error("dependency unavailable: {0}")]
    Dependency(String),
    /// The message is not a follow-up (after `maxReceiveCount` receives it goes to the DLQ).
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl From<crate::store::StoreError> for Retry {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Dependency(e.to_string())
    }
}

/// The worker: store, queue, HTTP client, targets and timers, built once per cold start.
#[derive(Debug, Clone)]
pub struct Worker {
    store: SharedStore,
    queue: FollowupQueue,
    dlq_url: String,
    http: reqwest::Client,
    targets: BTreeMap<String, Target>,
    timers: Timers,
    clock: SharedClock,
    metrics: Metrics,
}

/// The function name on the worker's metric lines.
const FUNCTION: &str = "followup-worker";

impl Worker {
    /// Builds the worker from configuration.
    pub fn new(config: &WorkerConfig, sdk: &SdkConfig) -> Result<Self, reqwest::Error> {
        let clock = clock::system();
        let store = config
            .store
            .store(aws_sdk_dynamodb::Client::new(sdk), clock.clone());
        let queue = FollowupQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url);
        Self::from_parts(
            store,
            queue,
            &config.dlq_url,
            config.targets.clone(),
            config.timers,
            clock,
        )
    }

    /// Assembles a worker from ready parts (tests inject clocks, targets and the in-memory store
    /// here).
    pub fn from_parts(
        store: impl Into<SharedStore>,
        queue: FollowupQueue,
        dlq_url: &str,
        targets: BTreeMap<String, Target>,
        timers: Timers,
        clock: SharedClock,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::config::http_client()
            .timeout(timers.action_timeout)
            .connect_timeout(timers.action_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            store: store.into(),
            queue,
            dlq_url: dlq_url.to_owned(),
            http,
            targets,
            timers,
            clock,
            metrics: Metrics::stdout(),
        })
    }

    /// Writes metric lines to `metrics` instead of stdout (tests).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn ms(d: Duration) -> i64 {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }

    /// Handles one SQS batch, reporting each message to retry by id. The messages run
    /// concurrently, so a batch of ten slow targets takes one action timeout, not ten.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let runs = event.records.into_iter().map(|record| async move {
            let id = record.message_id.clone().unwrap_or_default();
            let result = self.handle_record(&record).await;
            (id, result)
        });
        let mut response = SqsBatchResponse::default();
        for (id, result) in futures_util::future::join_all(runs).await {
            if result.is_err() {
                response.add_failure(id);
            }
        }
        response
    }

    async fn handle_record(&self, record: &SqsMessage) -> Result<Handled, Retry> {
        let body = record.body.as_deref().unwrap_or_default();
        let followup = queue::decode(body);
        let result = match &followup {
            Ok(f) => self.run(f, body).await,
            Err(e) => Err(Retry::Malformed(e.to_string())),
        };
        self.report(record, followup.as_ref().ok(), &result);
        // A FAILED one's dead-letter copy was sent before its mark (`dead_letter_first`).
        if let Err(Retry::Backoff { delay, .. }) = &result
            && let Some(handle) = record.receipt_handle.as_deref()
            && let Err(e) = self.queue.delay(handle, *delay).await
        {
            // The queue's own visibility timeout applies instead: later, never lost.
            tracing::warn!(error = %e, "could not set the backoff on the message");
        }
        result
    }

    /// One log line (with the follow-up's source, event or entity, and action: never a payload)
    /// and one metric line per message whose follow-up moved on.
    fn report(
        &self,
        record: &SqsMessage,
        followup: Option<&FollowUp>,
        result: &Result<Handled, Retry>,
    ) {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let (source, subject, action) = match followup {
            Some(FollowUp::Action {
                source,
                event_id,
                action,
            }) => (source.as_str(), event_id.clone(), action.as_str()),
            Some(FollowUp::Sync {
                source,
                entity_kind,
                entity_id,
                sync,
            }) => (
                source.as_str(),
                format!("{entity_kind}/{entity_id}"),
                sync.as_str(),
            ),
            None => ("unknown", String::new(), ""),
        };
        let metric = match result {
            Ok(handled) => {
                tracing::info!(message_id, source = %source, event_id = %subject, action = %action, ?handled, "follow-up handled");
                match handled {
                    Handled::Done | Handled::UpToDate => Some(metrics::FOLLOWUPS_DONE),
                    Handled::Skipped => Some(metrics::FOLLOWUPS_SKIPPED),
                    Handled::Failed => Some(metrics::FOLLOWUPS_FAILED),
                    Handled::NotClaimed | Handled::Requeued | Handled::LeaseLost => None,
                }
            }
            Err(err) => {
                tracing::warn!(message_id, source = %source, event_id = %subject, action = %action, error = %err, "follow-up will be retried");
                matches!(err, Retry::Backoff { .. }).then_some(metrics::FOLLOWUPS_RETRIED)
            }
        };
        if let Some(name) = metric {
            self.metrics.count(FUNCTION, source, name, 1);
        }
    }

    /// Handles one message body. `Ok(Handled::Failed)`: FAILED, and its copy is on the DLQ.
    pub async fn handle_message(&self, body: &str) -> Result<Handled, Retry> {
        let followup = queue::decode(body).map_err(|e| Retry::Malformed(e.to_string()))?;
        self.run(&followup, body).await
    }

    async fn run(&self, followup: &FollowUp, body: &str) -> Result<Handled, Retry> {
        match followup {
            FollowUp::Action {
                source,
                event_id,
                action,
            } => self.run_action(source, event_id, action, body).await,
            FollowUp::Sync {
                source,
                entity_kind,
                entity_id,
                sync: _,
            } => self.run_sync(source, entity_kind, entity_id, body).await,
        }
    }

    /// Before a FAILED mark: the message's copy goes to the dead-letter queue FIRST, so a FAILED
    /// follow-up always has one (and the DLQ-depth alarm sees it). If the send fails, nothing is
    /// marked: the message comes back and runs again once the lease has ended. If the mark then
    /// finds the lease lost, the copy is harmless: `hookline dlq redrive` drops a message whose
    /// follow-up is not FAILED or SKIPPED (docs/FOLLOWUPS.md, "The lifecycle").
    async fn dead_letter_first(&self, finish: &Finish, body: &str) -> Result<(), Retry> {
        if matches!(finish, Finish::Failed { .. }) {
            self.queue
                .send_body_to(&self.dlq_url, body)
                .await
                .map_err(|e| Retry::Dependency(format!("moving to the DLQ: {e}")))?;
        }
        Ok(())
    }

    async fn run_action(
        &self,
        source: &str,
        event_id: &str,
        action: &str,
        body: &str,
    ) -> Result<Handled, Retry> {
        let Some(claim) = self
            .store
            .claim_action(
                source,
                event_id,
                action,
                Self::ms(self.timers.lease),
                Self::ms(self.timers.visibility),
            )
            .await?
        else {
            return Ok(Handled::NotClaimed);
        };
        let entry = &claim.entry;
        let skip = match &entry.guard {
            Some(guard) => self.store.guard_fails(guard).await?,
            None => None,
        };
        let finish = if let Some(reason) = skip {
            Finish::Skipped { reason }
        } else {
            match self.target(action) {
                Ok(url) => {
                    let key = followup::action_key(source, event_id, action, entry.generation);
                    self.post(url, &entry.payload, &key, entry.attempt).await
                }
                Err(finish) => finish,
            }
        };
        self.dead_letter_first(&finish, body).await?;
        let marked = self
            .store
            .finish_action(source, event_id, action, &claim.lease, &finish)
            .await?;
        outcome(&finish, marked, self.clock.now_millis())
    }

    async fn run_sync(
        &self,
        source: &str,
        kind: &str,
        id: &str,
        body: &str,
    ) -> Result<Handled, Retry> {
        let Some(claim) = self
            .store
            .claim_sync(
                kind,
                id,
                Self::ms(self.timers.lease),
                Self::ms(self.timers.visibility),
            )
            .await?
        else {
            return Ok(Handled::NotClaimed);
        };
        let Some(sync) = &claim.entity.sync else {
            return Err(Retry::Malformed(format!("{kind}/{id} keeps no sync")));
        };
        let desired = &sync.desired;
        let step = followup::sync_step(desired, sync.synced.as_ref(), sync.sent.as_ref());
        let (finish, posted): (Finish, Option<&SyncTarget>) = match step {
            SyncStep::UpToDate => (Finish::Done { status: 0 }, None),
            SyncStep::Post { advance } => match self.target(&desired.action) {
                // A disabled or missing target sends nothing: no pre-POST mark.
                Err(finish) => (finish, None),
                Ok(url) => {
                    let seq = if advance {
                        match self
                            .store
                            .mark_sync_sent(&claim.entity, &claim.lease, desired)
                            .await?
                        {
                            Some(seq) => seq,
                            None => return Ok(Handled::LeaseLost),
                        }
                    } else {
                        sync.seq
                    };
                    let key =
                        followup::sync_key(source, kind, id, seq, &sync.name, sync.generation);
                    let finish = self.post(url, &desired.payload, &key, sync.attempt).await;
                    let posted = matches!(finish, Finish::Done { .. }).then_some(desired);
                    (finish, posted)
                }
            },
        };
        self.dead_letter_first(&finish, body).await?;
        let marked = self
            .store
            .finish_sync(&claim.entity, &claim.lease, &finish, posted)
            .await?;
        if marked == Marked::Moved {
            let again = FollowUp::Sync {
                source: source.to_owned(),
                entity_kind: kind.to_owned(),
                entity_id: id.to_owned(),
                sync: sync.name.clone(),
            };
            // If this send fails, the entity's next check (now + grace) brings the reconciler.
            if let Err(e) = self.queue.send(std::slice::from_ref(&again)).await {
                tracing::warn!(error = %e, "sync left for the reconciler");
            }
            return Ok(Handled::Requeued);
        }
        match outcome(&finish, marked, self.clock.now_millis())? {
            Handled::Done if posted.is_none() => Ok(Handled::UpToDate),
            other => Ok(other),
        }
    }

    /// The URL of `action`'s target, or how the attempt ends without a POST: SKIPPED when the
    /// target is `disabled`, FAILED when none is configured.
    fn target(&self, action: &str) -> Result<&str, Finish> {
        match self.targets.get(action) {
            Some(Target::Url(url)) => Ok(url.as_str()),
            Some(Target::Disabled) => Err(Finish::Skipped {
                reason: "target disabled".into(),
            }),
            None => Err(Finish::Failed {
                status: 0,
                reason: format!("no target configured for {action}"),
            }),
        }
    }

    /// POSTs `payload` to `url` and says how this attempt ends.
    async fn post(
        &self,
        url: &str,
        payload: &serde_json::Value,
        key: &str,
        attempt: i64,
    ) -> Finish {
        let sent = self
            .http
            .post(url)
            .header(IDEMPOTENCY_KEY, key)
            .json(payload)
            .send()
            .await;
        let (status, retry_after, reason) = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| followup::retry_after(v, self.clock.now_millis() / 1000));
                (status, after, format!("target answered {status}"))
            }
            Err(err) => (0, None, err.without_url().to_string()),
        };
        let verdict = if status == 0 {
            Verdict::Retry
        } else {
            followup::verdict(status)
        };
        match verdict {
            Verdict::Done => Finish::Done { status },
            Verdict::Fail => Finish::Failed { status, reason },
            Verdict::Retry => {
                let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
                if attempt >= self.timers.max_attempts {
                    return Finish::Failed {
                        status,
                        reason: format!("{reason}; {attempt} attempts exhausted"),
                    };
                }
                let delay = self
                    .timers
                    .backoff(attempt, retry_after, jitter(key, attempt));
                Finish::Retry {
                    status,
                    reason,
                    visible_at: self.clock.now_millis().saturating_add(Self::ms(delay)),
                }
            }
        }
    }
}

/// A jitter in [0, 1) that differs per follow-up and attempt (spreads a burst of retries).
fn jitter(key: &str, attempt: u32) -> f64 {
    let h = crate::store::schema::shard(&format!("{key}/{attempt}"), 1 << 16);
    f64::from(h) / f64::from(1u32 << 16)
}

/// What the message comes to once the attempt is marked.
fn outcome(finish: &Finish, marked: Marked, now: i64) -> Result<Handled, Retry> {
    if marked == Marked::LeaseLost {
        return Ok(Handled::LeaseLost);
    }
    match finish {
        Finish::Done { .. } => Ok(Handled::Done),
        Finish::Skipped { .. } => Ok(Handled::Skipped),
        Finish::Failed { .. } => Ok(Handled::Failed),
        Finish::Retry {
            reason, visible_at, ..
        } => Err(Retry::Backoff {
            reason: reason.clone(),
            delay: Duration::from_millis(u64::try_from(visible_at - now).unwrap_or(0)),
        }),
    }
}

#[cfg(test)]
mod tests;
