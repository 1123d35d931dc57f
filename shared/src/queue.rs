//! The SQS follow-up queue: one message per (event, action).
//!
//! Sending happens after the event is durable; a failed send is not an error for the sender (the
//! outbox stays PENDING and the reconciler re-enqueues it), so nothing accepted is lost even when
//! SQS refuses. Delivery is at-least-once: the worker's claims make it effectively once.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};

use crate::followup::{
    DLQ_RETENTION_SECS, FollowUp, MAX_RECEIVE_COUNT, RETENTION_SECS, VISIBILITY_TIMEOUT_SECS,
};

/// SQS accepts at most ten entries per `SendMessageBatch`.
pub const BATCH_LIMIT: usize = 10;

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// SQS refused or could not be reached.
    #[error("sqs {op} failed: {message}")]
    Sqs {
        /// The operation attempted.
        op: &'static str,
        /// The SDK error with its cause chain.
        message: String,
    },
    /// Some entries of a batch were refused.
    #[error("sqs refused {failed} of {total} follow-up messages")]
    Partial {
        /// Refused entries.
        failed: usize,
        /// Entries sent.
        total: usize,
    },
    /// A message body is not a follow-up.
    #[error("message is not a follow-up: {0}")]
    BadMessage(#[from] serde_json::Error),
}

fn sqs_err(op: &'static str, err: impl std::error::Error + Send + Sync + 'static) -> QueueError {
    QueueError::Sqs {
        op,
        message: aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
    }
}

/// The message body for one follow-up.
pub fn encode(f: &FollowUp) -> String {
    serde_json::to_string(f).unwrap_or_default()
}

/// Parses a message body.
pub fn decode(body: &str) -> Result<FollowUp, QueueError> {
    Ok(serde_json::from_str(body)?)
}

/// The follow-up queue. Cheap to clone; built once per cold start.
#[derive(Debug, Clone)]
pub struct FollowupQueue {
    client: Client,
    url: String,
}

impl FollowupQueue {
    /// The queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The queue URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the SQS connection ahead of the first send: one `GetQueueAttributes` naming no
    /// attribute, whose answer (or refusal) is not used. See [`crate::receiver::serve`]. Naming
    /// none keeps it constant-time: the emulator computes every attribute of the queue, walking
    /// its messages, as soon as one is named (50 ms at 1,000 messages, docs/BENCHMARKS.md).
    pub async fn open_connection(&self) {
        let sent = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "SQS warm-up");
        }
    }

    /// Makes a received message visible again only after `delay` (the worker's backoff; SQS caps
    /// it at 12 hours).
    pub async fn delay(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        let secs = visibility_secs(delay);
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| sqs_err("ChangeMessageVisibility", e))?;
        Ok(())
    }

    /// Sends one raw message body to the queue at `url` (the worker moving a FAILED follow-up to
    /// the dead-letter queue).
    pub async fn send_body_to(&self, url: &str, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sqs_err("SendMessage", e))?;
        Ok(())
    }

    /// Sends every follow-up, ten per `SendMessageBatch`. Fails if any entry was refused.
    pub async fn send(&self, followups: &[FollowUp]) -> Result<(), QueueError> {
        let (mut failed, total) = (0, followups.len());
        for chunk in followups.chunks(BATCH_LIMIT) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(encode(f))
                        .build()
                        .map_err(|e| sqs_err("SendMessageBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_err("SendMessageBatch", e))?;
            failed += out.failed().len();
        }
        if failed > 0 {
            return Err(QueueError::Partial { failed, total });
        }
        Ok(())
    }
}

/// Creates the follow-up queue and its dead-letter queue as `template.yaml` declares them.
/// Returns (queue URL, dead-letter queue URL).
pub async fn create_queues(client: &Client, name: &str) -> Result<(String, String), QueueError> {
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )
        .send()
        .await
        .map_err(|e| sqs_err("CreateQueue", e))?;
    let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sqs_err("GetQueueAttributes", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    });
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY_TIMEOUT_SECS.to_string(),
        )
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            RETENTION_SECS.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| sqs_err("CreateQueue", e))?;
    Ok((queue.queue_url().unwrap_or_default().to_owned(), dlq_url))
}

/// A backoff as an SQS visibility timeout: whole seconds, rounded up so the message never comes
/// back before its backoff ends (rounded down, a 1.9 s backoff came back after 1 s and a 0.9 s
/// one at once), at most SQS's 12 hours.
fn visibility_secs(delay: std::time::Duration) -> i32 {
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    i32::try_from(secs.min(43_200)).unwrap_or(43_200)
}

/// A queue nothing answers on (connections refused at once, no retries): unit tests of the
/// receiver and the worker, where a send that fails is the case under test or beside it.
#[cfg(test)]
pub(crate) fn unreachable() -> FollowupQueue {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    FollowupQueue::new(Client::from_conf(config), "http://127.0.0.1:1/queue")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_becomes_a_visibility_rounded_up_and_capped() {
        use std::time::Duration;
        assert_eq!(visibility_secs(Duration::from_millis(900)), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1_900)), 2);
        assert_eq!(visibility_secs(Duration::from_secs(2)), 2);
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_secs(86_400)), 43_200);
    }

    #[test]
    fn messages_round_trip() {
        let f = FollowUp::Action {
            source: "stripe".into(),
            event_id: "evt_1".into(),
            action: "receipt".into(),
        };
        assert_eq!(decode(&encode(&f)).expect("decodes"), f);
        let f = FollowUp::Sync {
            source: "stripe".into(),
            entity_kind: "subscription".into(),
            entity_id: "sub_1".into(),
            sync: "access".into(),
        };
        assert_eq!(decode(&encode(&f)).expect("decodes"), f);
        assert!(decode("{\"source\":1}").is_err());
    }
}
