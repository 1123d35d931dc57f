//! `hookline pump`: does locally what the SQS event source mapping does in AWS. It long-polls the
//! follow-up queue, hands each batch to the worker as an SQS event through the Lambda invoke API
//! (`cargo lambda watch` serves it at `/2015-03-31/functions/<name>/invocations`), deletes the
//! messages the worker did not report in `batchItemFailures`, and leaves the failed ones as they
//! are, as the event source does (the worker sets their backoff itself). It also invokes the
//! reconciler on a timer with a scheduled event, as its schedule does.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use clap::Args;
use serde_json::{Value, json};

use crate::args::QueueArg;
use crate::{Aws, default_watch, parse_duration, sdk_msg};

/// `hookline pump`
#[derive(Debug, Args)]
pub struct PumpArgs {
    /// The follow-up queue.
    #[command(flatten)]
    pub queue: QueueArg,
    /// The worker's Lambda invoke URL.
    #[arg(long, default_value_t = format!("{}/2015-03-31/functions/followup-worker/invocations", default_watch()))]
    pub worker_url: String,
    /// The reconciler's Lambda invoke URL.
    #[arg(long, default_value_t = format!("{}/2015-03-31/functions/reconciler/invocations", default_watch()))]
    pub reconciler_url: String,
    /// How often to run the reconciler (`0s` never).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub reconcile_every: Duration,
    /// Drain what is visible now, then exit (no reconciler).
    #[arg(long)]
    pub once: bool,
}

/// Most messages in one SQS receive (and one worker batch).
const BATCH: i32 = 10;
/// Long-poll wait while running, seconds (SQS allows up to 20).
const LONG_POLL_SECS: i32 = 5;
/// Wait of a receive in `--once` mode: short, so an empty queue ends the run quickly.
const DRAIN_POLL_SECS: i32 = 1;
/// Pause after an error (emulator or worker down) before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(2);

/// What one batch came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Messages handed to the worker.
    pub received: usize,
    /// Messages done (deleted from the queue).
    pub done: usize,
    /// Messages left for a retry.
    pub failed: usize,
}

struct Pump {
    aws: Aws,
    sqs: aws_sdk_sqs::Client,
    http: reqwest::Client,
    queue_url: String,
    queue_arn: String,
    worker_url: String,
}

/// Runs until interrupted, or (with `--once`) until the queue shows nothing more.
pub async fn run(aws: &Aws, args: &PumpArgs) -> anyhow::Result<()> {
    let queue_url = args.queue.url(aws).await?;
    let sqs = aws.sqs();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws.fail(&format!("reading queue {queue_url}"), sdk_msg(e)))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let http = hookline::config::http_client()
        .connect_timeout(Duration::from_secs(5))
        // The first invocation compiles the function under `cargo lambda watch`.
        .timeout(Duration::from_secs(900))
        .build()
        .context("building the HTTP client")?;
    let pump = Pump {
        aws: aws.clone(),
        sqs,
        http,
        queue_url,
        queue_arn,
        worker_url: args.worker_url.clone(),
    };

    if args.once {
        let mut total = Tally::default();
        loop {
            let t = pump.batch(DRAIN_POLL_SECS).await?;
            if t.received == 0 {
                break;
            }
            total.received += t.received;
            total.done += t.done;
            total.failed += t.failed;
        }
        out!(
            "pump: {} message(s): {} done, {} left for retry",
            total.received,
            total.done,
            total.failed
        );
        return Ok(());
    }

    out!(
        "pump: {} -> {} (reconciler every {:?})",
        pump.queue_url,
        pump.worker_url,
        args.reconcile_every
    );
    let mut last_reconcile = Instant::now();
    loop {
        if !args.reconcile_every.is_zero() && last_reconcile.elapsed() >= args.reconcile_every {
            last_reconcile = Instant::now();
            if let Err(err) = pump.reconcile(&args.reconciler_url).await {
                eprintln!("pump: reconciler: {err:#}");
            }
        }
        if let Err(err) = pump.batch(LONG_POLL_SECS).await {
            eprintln!("pump: {err:#}");
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
}

impl Pump {
    /// Receives one batch, runs it through the worker, settles each message.
    async fn batch(&self, wait_secs: i32) -> anyhow::Result<Tally> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| {
                self.aws
                    .fail("receiving from the follow-up queue", sdk_msg(e))
            })?;
        let messages = out.messages();
        if messages.is_empty() {
            return Ok(Tally::default());
        }
        let event = sqs_event(messages, &self.queue_arn, &self.aws.region());
        let failed = match self.invoke(&event).await {
            Ok(failed) => failed,
            Err(err) => {
                // The whole batch failed (worker down or crashed): retry every message.
                eprintln!("pump: worker invocation failed: {err:#}");
                messages
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_owned))
                    .collect()
            }
        };
        let (retry, done): (Vec<&Message>, Vec<&Message>) = messages
            .iter()
            .partition(|m| m.message_id().is_some_and(|id| failed.contains(id)));
        for m in &done {
            out!("pump: {} -> done", describe(m));
        }
        for m in &retry {
            out!(
                "pump: {} -> failed, retried after its backoff (receive #{})",
                describe(m),
                m.attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .map_or("?", String::as_str)
            );
        }
        // Like the SQS event source: the handled ones are deleted, the failed ones are left as
        // they are (visible again when the worker's backoff, or the queue's visibility, ends).
        self.delete(&done).await?;
        Ok(Tally {
            received: messages.len(),
            done: done.len(),
            failed: retry.len(),
        })
    }

    /// Invokes the worker; returns the ids it reported as failed.
    async fn invoke(&self, event: &SqsEvent) -> anyhow::Result<HashSet<String>> {
        let response = self
            .http
            .post(&self.worker_url)
            .json(event)
            .send()
            .await
            .with_context(|| {
                format!(
                    "POST {} (is `cargo lambda watch` running?)",
                    self.worker_url
                )
            })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("worker answered {status} with a body that is not JSON"))?;
        if !status.is_success() || body.get("errorType").is_some() {
            anyhow::bail!("worker answered {status}: {body}");
        }
        Ok(body
            .get("batchItemFailures")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("itemIdentifier")?.as_str().map(str::to_owned))
            .collect())
    }

    async fn delete(&self, messages: &[&Message]) -> anyhow::Result<()> {
        let refused = crate::delete_messages(
            &self.aws,
            &self.sqs,
            &self.queue_url,
            messages,
            "deleting handled messages",
        )
        .await?;
        if refused > 0 {
            eprintln!(
                "pump: {refused} handled message(s) could not be deleted; they will be delivered \
                 again (the worker's claims make that harmless)"
            );
        }
        Ok(())
    }

    /// One reconciler run, invoked with the scheduled event EventBridge would deliver.
    async fn reconcile(&self, url: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(url)
            .json(&scheduled_event(
                &self.aws.region(),
                hookline::clock::system().now_millis(),
            ))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() || body.get("errorType").is_some() {
            anyhow::bail!("reconciler answered {status}: {body}");
        }
        if body.get("enqueued").and_then(Value::as_u64).unwrap_or(0) > 0 {
            out!("pump: reconciler re-enqueued pending follow-ups: {body}");
        }
        Ok(())
    }
}

/// `source/event_id action` of a follow-up message, or its id if the body is not one.
fn describe(m: &Message) -> String {
    m.body()
        .and_then(|b| hookline::queue::decode(b).ok())
        .map_or_else(
            || format!("message {}", m.message_id().unwrap_or("?")),
            |f| f.name(),
        )
}

/// The SQS event Lambda's event source mapping would deliver for `messages`.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id().map(str::to_owned);
            r.receipt_handle = m.receipt_handle().map(str::to_owned);
            r.body = m.body().map(str::to_owned);
            r.md5_of_body = m.md5_of_body().map(str::to_owned);
            r.attributes = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            r.event_source = Some("aws:sqs".to_owned());
            r.event_source_arn = Some(queue_arn.to_owned());
            r.aws_region = Some(region.to_owned());
            r
        })
        .collect();
    event
}

/// The scheduled event EventBridge delivers to the reconciler, sent at `now_ms`.
pub fn scheduled_event(region: &str, now_ms: i64) -> EventBridgeEvent<Value> {
    let mut event = EventBridgeEvent::<Value>::default();
    event.version = Some("0".to_owned());
    event.id = Some(uuid::Uuid::new_v4().to_string());
    event.detail_type = "Scheduled Event".to_owned();
    event.source = "aws.events".to_owned();
    event.account = Some("000000000000".to_owned());
    // The type's own parser turns the RFC 3339 text into its time type.
    event.time = serde_json::from_value(Value::from(crate::output::time(Some(now_ms)))).ok();
    event.region = Some(region.to_owned());
    event.resources = Some(Vec::new());
    event.detail = json!({});
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_event_the_worker_reads() {
        let m = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body(r#"{"source":"stripe","event_id":"evt_1","action":"receipt"}"#)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .md5_of_body("abc")
            .build();
        let event = sqs_event(
            std::slice::from_ref(&m),
            "arn:aws:sqs:us-east-1:1:q",
            "us-east-1",
        );
        let event = serde_json::to_value(event).expect("serialises");
        let r = &event["Records"][0];
        assert_eq!(r["messageId"], "m1");
        assert_eq!(r["md5OfBody"], "abc");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:us-east-1:1:q");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(describe(&m), "stripe:evt_1:receipt");
        let parsed: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_value(event).expect("the worker's event type reads it");
        assert_eq!(parsed.records[0].message_id.as_deref(), Some("m1"));
    }

    #[test]
    fn builds_the_scheduled_event_the_reconciler_reads() {
        let event = serde_json::to_value(scheduled_event("eu-west-1", 1_750_000_000_000))
            .expect("serialises");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["region"], "eu-west-1");
        assert_eq!(event["detail"], json!({}));
        let time = event["time"].as_str().expect("a time");
        assert!(time.starts_with("2025-06-15T15:06:40"), "{time}");
        let parsed: EventBridgeEvent<Value> =
            serde_json::from_value(event).expect("the reconciler's event type reads it");
        assert_eq!(parsed.detail_type, "Scheduled Event");
        assert!(parsed.time.is_some());
    }
}
