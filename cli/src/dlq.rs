//! `hookline dlq list|redrive`: the dead-letter queue, read and moved back consistently with the
//! outbox.
//!
//! The DLQ holds exactly the FAILED follow-ups (the worker moves a message there itself when it
//! marks one FAILED), so a message is only a pointer; the outbox decides what it means now:
//! - follow-up FAILED or SKIPPED: reset to PENDING with a new generation (a new
//!   `Idempotency-Key`), then the message moves to the follow-up queue and runs once more. The
//!   reset comes first: a message moved without it would find its follow-up final, be dropped by
//!   the worker, and the follow-up would stay FAILED with no message left anywhere (which is why
//!   SQS's own redrive, `start-message-move-task`, must not be used for this queue);
//! - follow-up DONE, or PENDING/RUNNING again (an operator's `followups retry` got there first),
//!   or gone (expired): the message is deleted and reported; moving it could not run anything, and
//!   dropping it keeps a retried follow-up's old message from ever causing a second run;
//! - not a follow-up: left on the DLQ and reported, for a person to look at.
//!
//! A redrive works on a snapshot: the messages on the DLQ when it starts. A message that reached
//! the DLQ after the run started (SQS `SentTimestamp`), or whose follow-up this run redrove
//! already, is left for the next run (`deferred`): against a target that still refuses, each
//! redriven follow-up fails again within a second and is back on the DLQ under a new message id,
//! and redriving that again would loop (one more POST and a new generation each time) until a
//! poll came back empty. So each follow-up is redriven at most once per run, and the run ends.
//!
//! Reading a queue means receiving: every message seen is made visible again at once unless it
//! was moved or dropped, and its receive count grows by one (the DLQ has no redrive policy, so
//! that count only informs).

use std::collections::{BTreeMap, HashSet};

use anyhow::bail;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use clap::{Args, Subcommand};
use serde::Serialize;

use hookline::store::{ActionStatus, EventStore, FollowUp, RetryScope};

use crate::args::{JsonArg, QueueArg, TableArg};
use crate::exit::Exit;
use crate::output::{self, time};
use crate::{Aws, sdk_msg};

/// How long a message read by these commands stays hidden from others before it is released
/// (or, if the command dies, before it reappears by itself).
const HOLD_SECS: i32 = 60;

/// One message of the dead-letter queue.
#[derive(Debug, Serialize)]
pub struct DlqRow {
    /// SQS message id.
    pub message_id: String,
    /// The follow-up's name, or `-` for a message that is not one.
    pub followup: String,
    /// SQS `ApproximateReceiveCount`.
    pub receive_count: i64,
    /// SQS `SentTimestamp`: when it reached the DLQ, ms.
    pub sent_at: Option<i64>,
    /// The follow-up's status in the table now (`None`: its record is gone, or not a follow-up).
    pub status_now: Option<ActionStatus>,
}

/// The queue and the messages these commands hold (received, not yet released or deleted).
struct Dlq<'a> {
    aws: &'a Aws,
    sqs: aws_sdk_sqs::Client,
    url: String,
    held: Vec<Message>,
    seen: HashSet<String>,
    /// How far a run has got (hidden unless set: `dlq redrive` on a terminal).
    progress: indicatif::ProgressBar,
}

impl<'a> Dlq<'a> {
    fn new(aws: &'a Aws, url: String) -> Self {
        Self {
            aws,
            sqs: aws.sqs(),
            url,
            held: Vec::new(),
            seen: HashSet::new(),
            progress: indicatif::ProgressBar::hidden(),
        }
    }

    /// Receives the next batch of messages not seen yet (empty once none are left visible).
    async fn next(&mut self) -> anyhow::Result<Vec<Message>> {
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(HOLD_SECS)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await
                .map_err(|e| {
                    self.aws
                        .fail("receiving from the dead-letter queue", sdk_msg(e))
                })?;
            let received = out.messages.unwrap_or_default();
            if received.is_empty() {
                return Ok(Vec::new());
            }
            let new: Vec<Message> = received
                .into_iter()
                .filter(|m| {
                    self.seen
                        .insert(m.message_id().unwrap_or_default().to_owned())
                })
                .collect();
            if !new.is_empty() {
                return Ok(new);
            }
        }
    }

    /// Deletes `messages` from the DLQ.
    async fn delete(&self, messages: &[&Message]) -> anyhow::Result<()> {
        crate::delete_messages(
            self.aws,
            &self.sqs,
            &self.url,
            messages,
            "deleting from the dead-letter queue",
        )
        .await
        .map(drop)
    }

    /// Makes every held message visible again now.
    async fn release(&mut self) -> anyhow::Result<()> {
        let held = std::mem::take(&mut self.held);
        for chunk in held.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                        .visibility_timeout(0)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    self.aws
                        .fail("releasing messages of the dead-letter queue", sdk_msg(e))
                })?;
        }
        Ok(())
    }
}

fn attr(m: &Message, name: MessageSystemAttributeName) -> Option<i64> {
    m.attributes()
        .and_then(|a| a.get(&name))
        .and_then(|v| v.parse().ok())
}

async fn status_now(
    aws: &Aws,
    store: &EventStore,
    f: &FollowUp,
) -> anyhow::Result<Option<ActionStatus>> {
    Ok(store
        .followup(f)
        .await
        .map_err(|e| aws.fail(&format!("reading {}", f.name()), e))?
        .map(|v| v.status))
}

/// `hookline dlq list`.
pub async fn list(aws: &Aws, args: &DlqListArgs, json: bool) -> anyhow::Result<bool> {
    let url = args.dlq.url(aws, &args.queue).await?;
    let store = crate::events::store(aws, &args.table.name(aws));
    let mut dlq = Dlq::new(aws, url.clone());
    let mut rows = Vec::new();
    let result = async {
        while rows.len() < args.limit {
            let batch = dlq.next().await?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let followup = hookline::queue::decode(m.body().unwrap_or_default()).ok();
                let status = match &followup {
                    Some(f) => status_now(aws, &store, f).await?,
                    None => None,
                };
                rows.push(DlqRow {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    followup: followup.map_or_else(|| "-".to_owned(), |f| f.name()),
                    receive_count: attr(&m, MessageSystemAttributeName::ApproximateReceiveCount)
                        .unwrap_or(0),
                    sent_at: attr(&m, MessageSystemAttributeName::SentTimestamp),
                    status_now: status,
                });
                dlq.held.push(m);
            }
        }
        anyhow::Ok(())
    }
    .await;
    dlq.release().await?;
    result?;
    rows.truncate(args.limit);
    output::print(
        json,
        &["MESSAGE ID", "FOLLOW-UP", "RECEIVES", "SENT", "STATUS NOW"],
        &rows,
        |r| {
            vec![
                r.message_id.clone(),
                r.followup.clone(),
                r.receive_count.to_string(),
                time(r.sent_at),
                r.status_now
                    .map_or_else(|| "-".to_owned(), |s| s.as_str().to_owned()),
            ]
        },
        &format!("the dead-letter queue {url} is empty"),
    )?;
    Ok(true)
}

/// What `dlq redrive` did with one message.
#[derive(Debug, Serialize)]
pub struct Redriven {
    /// SQS message id.
    pub message_id: String,
    /// The follow-up's name, or `-`.
    pub followup: String,
    /// `moved` (reset and sent back), `dropped` (deleted: nothing left to run), `left` (stays on
    /// the DLQ), `deferred` (stays on the DLQ for the next run: it arrived after this run
    /// started, or its follow-up was redriven in this run already), or with `--dry-run`
    /// `would_move` / `would_drop`.
    pub result: &'static str,
    /// Why, for `dropped`, `left` and `would_drop`.
    pub reason: Option<String>,
}

/// What `dlq redrive --json` prints: how many messages had each result, and each message.
#[derive(Debug, Serialize)]
pub struct RedriveReport<'a> {
    /// Messages per result (`moved`, `dropped`, `left`, `deferred`, `would_move`, `would_drop`).
    pub counts: BTreeMap<&'static str, usize>,
    /// Each message and what was done with it.
    pub messages: &'a [Redriven],
}

/// Messages per result.
fn counts(report: &[Redriven]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for r in report {
        *counts.entry(r.result).or_insert(0) += 1;
    }
    counts
}

/// What the outbox says about a message's follow-up: `Ok` to move it, `Err(why)` to drop it.
fn verdict(status: Option<ActionStatus>) -> Result<(), String> {
    match status {
        Some(ActionStatus::Failed | ActionStatus::Skipped) => Ok(()),
        Some(ActionStatus::Done) => Err("DONE already".into()),
        Some(ActionStatus::Pending | ActionStatus::Running) => {
            Err("PENDING or RUNNING again (retried already): it has a message of its own".into())
        }
        None => Err("its event or entity is no longer recorded (expired?)".into()),
    }
}

/// The queue's approximate number of visible messages (0 when SQS does not say).
async fn depth(aws: &Aws, url: &str) -> u64 {
    aws.sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .ok()
        .and_then(|out| {
            out.attributes()?
                .get(&QueueAttributeName::ApproximateNumberOfMessages)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `hookline dlq redrive`. `Ok(false)` when a named message was not found, or some message
/// could not be moved.
pub async fn redrive(aws: &Aws, args: &DlqRedriveArgs, json: bool) -> anyhow::Result<bool> {
    check(args)?;
    let queue_url = args.queue.url(aws).await?;
    let dlq_url = args.dlq.url(aws, &args.queue).await?;
    let store = crate::events::store(aws, &args.table.name(aws));
    let mut dlq = Dlq::new(aws, dlq_url.clone());
    let mut report = Vec::new();
    // The snapshot's edge: messages sent to the DLQ from now on are not this run's.
    let started = hookline::clock::system().now_millis();
    // A bar up to the queue's approximate depth now (on a terminal, never with --json).
    dlq.progress = crate::progress::bar(depth(aws, &dlq_url).await, "redriving", json);
    let result = redrive_loop(
        aws,
        args,
        &store,
        &mut dlq,
        &queue_url,
        started,
        &mut report,
    )
    .await;
    dlq.progress.finish_and_clear();
    dlq.release().await?;
    result?;
    let mut ok = report
        .iter()
        .all(|r| !matches!(r.result, "left") || r.followup == "-");
    if let Some(id) = &args.message_id
        && !report.iter().any(|r| &r.message_id == id)
    {
        eprintln!("message {id} is not on the dead-letter queue {dlq_url} (or is being read)");
        ok = false;
    }
    let counts = counts(&report);
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&RedriveReport {
                counts,
                messages: &report,
            })?
        );
        return Ok(ok);
    }
    output::print(
        json,
        &["MESSAGE ID", "FOLLOW-UP", "RESULT"],
        &report,
        |r| {
            let result = r.result.replace('_', " ");
            vec![
                r.message_id.clone(),
                r.followup.clone(),
                match &r.reason {
                    Some(why) => format!("{result}: {why}"),
                    None => result,
                },
            ]
        },
        &format!("nothing to redrive on {dlq_url}"),
    )?;
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if !args.dry_run {
        let count = |what: &str| counts.get(what).copied().unwrap_or(0);
        eprintln!(
            "redrive: moved {}, dropped {}, left {}, deferred {} (arrived during the run or \
             redriven in it already), from {dlq_url} to {queue_url}",
            count("moved"),
            count("dropped"),
            count("left"),
            count("deferred"),
        );
    } else if !summary.is_empty() {
        eprintln!("redrive (dry run): {}", summary.join(", "));
    }
    Ok(ok)
}

async fn redrive_loop(
    aws: &Aws,
    args: &DlqRedriveArgs,
    store: &EventStore,
    dlq: &mut Dlq<'_>,
    queue_url: &str,
    started: i64,
    report: &mut Vec<Redriven>,
) -> anyhow::Result<()> {
    let sqs = aws.sqs();
    // Follow-ups redriven (or looked at, in a dry run) by this run: at most once each.
    let mut redriven: HashSet<String> = HashSet::new();
    loop {
        let seen = u64::try_from(report.len()).unwrap_or(u64::MAX);
        let progress = &dlq.progress;
        progress.set_length(progress.length().unwrap_or(0).max(seen));
        progress.set_position(seen);
        let batch = dlq.next().await?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut to_move = Vec::new();
        let mut to_drop = Vec::new();
        let mut found_target = false;
        for m in batch {
            let id = m.message_id().unwrap_or_default().to_owned();
            if args.message_id.as_ref().is_some_and(|want| *want != id) {
                dlq.held.push(m);
                continue;
            }
            found_target = true;
            let Ok(f) = hookline::queue::decode(m.body().unwrap_or_default()) else {
                report.push(Redriven {
                    message_id: id,
                    followup: "-".into(),
                    result: "left",
                    reason: Some("not a follow-up message; left on the queue".into()),
                });
                dlq.held.push(m);
                continue;
            };
            let name = f.name();
            let arrived_since = attr(&m, MessageSystemAttributeName::SentTimestamp)
                .is_some_and(|sent| sent >= started);
            if arrived_since || !redriven.insert(name.clone()) {
                report.push(Redriven {
                    message_id: id,
                    followup: name,
                    result: "deferred",
                    reason: Some(if arrived_since {
                        "reached the dead-letter queue after this run started: left for the next run".into()
                    } else {
                        "its follow-up was redriven by this run already: left for the next run"
                            .into()
                    }),
                });
                dlq.held.push(m);
                continue;
            }
            if args.dry_run {
                let (result, reason) = match verdict(status_now(aws, store, &f).await?) {
                    Ok(()) => ("would_move", None),
                    Err(why) => ("would_drop", Some(why)),
                };
                report.push(Redriven {
                    message_id: id,
                    followup: name,
                    result,
                    reason,
                });
                dlq.held.push(m);
                continue;
            }
            let reset = match &f {
                FollowUp::Action {
                    source,
                    event_id,
                    action,
                } => {
                    store
                        .retry_action(source, event_id, action, RetryScope::FailedOrSkipped)
                        .await
                }
                FollowUp::Sync {
                    entity_kind,
                    entity_id,
                    ..
                } => store.retry_sync(entity_kind, entity_id).await,
            }
            .map_err(|e| aws.fail(&format!("resetting {name}"), e))?;
            if reset {
                to_move.push((m, id, name));
            } else {
                let why = verdict(status_now(aws, store, &f).await?)
                    .err()
                    .unwrap_or_else(|| "it moved on meanwhile".into());
                report.push(Redriven {
                    message_id: id,
                    followup: name,
                    result: "dropped",
                    reason: Some(why),
                });
                to_drop.push(m);
            }
        }
        dlq.delete(&to_drop.iter().collect::<Vec<_>>()).await?;
        if !to_move.is_empty() {
            let entries = to_move
                .iter()
                .enumerate()
                .map(|(i, (m, _, _))| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(m.body().unwrap_or_default())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sent = sqs
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws.fail("sending to the follow-up queue", sdk_msg(e)))?;
            let ok: HashSet<usize> = sent
                .successful()
                .iter()
                .filter_map(|s| s.id().parse().ok())
                .collect();
            let mut moved = Vec::new();
            for (i, (m, id, name)) in to_move.into_iter().enumerate() {
                if ok.contains(&i) {
                    report.push(Redriven {
                        message_id: id,
                        followup: name,
                        result: "moved",
                        reason: None,
                    });
                    moved.push(m);
                } else {
                    // Reset already: PENDING, so the reconciler sends it; a later redrive drops
                    // this copy.
                    report.push(Redriven {
                        message_id: id,
                        followup: name,
                        result: "left",
                        reason: Some(
                            "reset, but the follow-up queue refused it: the reconciler sends it"
                                .into(),
                        ),
                    });
                    dlq.held.push(m);
                }
            }
            dlq.delete(&moved.iter().collect::<Vec<_>>()).await?;
        }
        if found_target && args.message_id.is_some() {
            return Ok(());
        }
    }
}

/// Refuses a redrive that names neither a message nor `--all` (clap enforces it; kept for
/// callers that build [`DlqRedriveArgs`] by hand).
pub fn check(args: &DlqRedriveArgs) -> anyhow::Result<()> {
    if args.message_id.is_none() && !args.all {
        bail!("name a message id (see `hookline dlq list`) or pass --all");
    }
    Ok(())
}

// The command line of `hookline dlq ...` (and the hidden `hookline redrive`), and its dispatch.

/// `hookline dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The messages on the dead-letter queue: id, follow-up, receive count, sent time, and the
    /// follow-up's status now (never a payload).
    ///
    /// Reading a queue receives its messages: each listed message's receive count goes up by one
    /// and it is made visible again at once.
    List(DlqListArgs),
    /// Move messages back to the follow-up queue, consistent with the outbox: a message whose
    /// follow-up is FAILED or SKIPPED is reset to PENDING (new generation) and moved; one whose
    /// follow-up is DONE, already PENDING again (retried) or gone is dropped and reported; a
    /// message that is not a follow-up is left on the queue and reported. With `--all`, a
    /// message that could not be moved exits 3.
    Redrive(DlqRedriveArgs),
}

impl DlqCommand {
    /// Runs the subcommand.
    pub async fn run(self, aws: &Aws) -> anyhow::Result<Exit> {
        match self {
            Self::List(args) => list(aws, &args, args.output.json)
                .await
                .map(|ok| Exit::ok_or(ok, Exit::Failure)),
            Self::Redrive(args) => run_redrive(aws, &args).await,
        }
    }
}

/// `dlq redrive`: one named message not handled is a failure (1); `--all` leaving some is 3.
pub async fn run_redrive(aws: &Aws, args: &DlqRedriveArgs) -> anyhow::Result<Exit> {
    let ok = redrive(aws, args, args.output.json).await?;
    let otherwise = if args.all {
        Exit::Refused
    } else {
        Exit::Failure
    };
    Ok(Exit::ok_or(ok, otherwise))
}

/// The dead-letter queue.
#[derive(Debug, Args)]
pub struct DlqArg {
    /// Dead-letter queue URL (default: `--stack`'s, else the queue named `<queue>-dlq`).
    #[arg(long, env = "FOLLOWUP_DLQ_URL")]
    pub dlq_url: Option<String>,
}

impl DlqArg {
    /// The dead-letter queue's URL.
    pub async fn url(&self, aws: &Aws, queue: &QueueArg) -> anyhow::Result<String> {
        match (&self.dlq_url, &aws.stack) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(stack)) => Ok(stack.dlq_url.clone()),
            (None, None) => aws.queue_url(&format!("{}-dlq", queue.queue)).await,
        }
    }
}

/// `hookline dlq list`
#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// List at most this many messages.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// The dead-letter queue.
    #[command(flatten)]
    pub dlq: DlqArg,
    /// The follow-up queue (its name locates the DLQ locally).
    #[command(flatten)]
    pub queue: QueueArg,
    /// The table holding the follow-ups.
    #[command(flatten)]
    pub table: TableArg,
    /// Output.
    #[command(flatten)]
    pub output: JsonArg,
}

/// `hookline dlq redrive`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["message_id", "all"])))]
pub struct DlqRedriveArgs {
    /// One message, by the id `dlq list` shows.
    pub message_id: Option<String>,
    /// Every message on the queue.
    #[arg(long)]
    pub all: bool,
    /// Print what would be moved or dropped, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The dead-letter queue (source).
    #[command(flatten)]
    pub dlq: DlqArg,
    /// The follow-up queue (destination).
    #[command(flatten)]
    pub queue: QueueArg,
    /// The table holding the follow-ups (each is reset before its message moves).
    #[command(flatten)]
    pub table: TableArg,
    /// Output.
    #[command(flatten)]
    pub output: JsonArg,
}

/// `hookline redrive` (hidden): `hookline dlq redrive --all`.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// The dead-letter queue (source).
    #[command(flatten)]
    pub dlq: DlqArg,
    /// The follow-up queue (destination).
    #[command(flatten)]
    pub queue: QueueArg,
    /// The table holding the follow-ups (each is reset before its message moves).
    #[command(flatten)]
    pub table: TableArg,
    /// Output.
    #[command(flatten)]
    pub output: JsonArg,
}

impl From<RedriveArgs> for DlqRedriveArgs {
    fn from(
        RedriveArgs {
            dlq,
            queue,
            table,
            output,
        }: RedriveArgs,
    ) -> Self {
        Self {
            message_id: None,
            all: true,
            dry_run: false,
            dlq,
            queue,
            table,
            output,
        }
    }
}
