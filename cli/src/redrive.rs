//! `hookline redrive`: moves every message of the dead-letter queue back to the follow-up queue
//! (receive, reset, send, then delete what was sent), for after the cause of the failures is
//! fixed. Consistent with the outbox: a message whose follow-up is FAILED or SKIPPED is reset to
//! PENDING with a new generation (a new `Idempotency-Key`) before it is sent, so it runs; one
//! whose follow-up is already DONE (or was reset by someone else) is dropped and reported.

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};

use hookline::store::FollowUp;

use crate::cli::RedriveArgs;
use crate::{Aws, sdk_msg};

/// Moves messages until the DLQ shows none; prints how many moved.
pub async fn run(aws: &Aws, args: &RedriveArgs) -> anyhow::Result<()> {
    let queue_url = args.queue.url(aws).await?;
    let dlq_url = match &args.dlq_url {
        Some(url) => url.clone(),
        None => aws.queue_url(&format!("{}-dlq", args.queue.queue)).await?,
    };
    let sqs = aws.sqs();
    let store = crate::events::store(aws, &args.table.name);
    let mut moved = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| aws.fail("receiving from the dead-letter queue", sdk_msg(e)))?;
        let received = out.messages();
        if received.is_empty() {
            break;
        }
        let mut messages = Vec::new();
        let mut dropped = Vec::new();
        for m in received {
            match hookline::queue::decode(m.body().unwrap_or_default()) {
                Ok(f) => {
                    let reset = match &f {
                        FollowUp::Action {
                            source,
                            event_id,
                            action,
                        } => store.retry_action(source, event_id, action, false).await,
                        FollowUp::Sync {
                            entity_kind,
                            entity_id,
                            ..
                        } => store.retry_sync(entity_kind, entity_id).await,
                    }
                    .map_err(|e| aws.fail(&format!("resetting {}", f.name()), e))?;
                    if reset {
                        out!("redrive: {} reset to PENDING", f.name());
                        messages.push(m);
                    } else {
                        out!(
                            "redrive: {} is not FAILED or SKIPPED (done already?); dropped",
                            f.name()
                        );
                        dropped.push(m);
                    }
                }
                // Not a follow-up: moved back as it is; the worker reports it malformed.
                Err(_) => messages.push(m),
            }
        }
        delete(aws, &sqs, &dlq_url, &dropped).await?;
        if messages.is_empty() {
            continue;
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = sqs
            .send_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws.fail("sending to the follow-up queue", sdk_msg(e)))?;
        // Delete only what was sent; a refused entry stays on the DLQ for the next run.
        let deletes = sent
            .successful()
            .iter()
            .filter_map(|ok| {
                let i: usize = ok.id().parse().ok()?;
                let handle = messages.get(i)?.receipt_handle()?;
                DeleteMessageBatchRequestEntry::builder()
                    .id(ok.id())
                    .receipt_handle(handle)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if deletes.is_empty() {
            anyhow::bail!(
                "the follow-up queue refused every message: {:?}",
                sent.failed()
            );
        }
        moved += deletes.len();
        sqs.delete_message_batch()
            .queue_url(&dlq_url)
            .set_entries(Some(deletes))
            .send()
            .await
            .map_err(|e| aws.fail("deleting from the dead-letter queue", sdk_msg(e)))?;
    }
    out!("redrive: moved {moved} message(s) from {dlq_url} to {queue_url}");
    Ok(())
}

/// Deletes `messages` from the dead-letter queue.
async fn delete(
    aws: &Aws,
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    messages: &[&aws_sdk_sqs::types::Message],
) -> anyhow::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    sqs.delete_message_batch()
        .queue_url(dlq_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| aws.fail("deleting from the dead-letter queue", sdk_msg(e)))?;
    Ok(())
}
