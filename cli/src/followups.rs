//! `hookline followups list|retry`: what every follow-up (event action, entity sync) is doing,
//! and an operator's retry of those that ended FAILED or SKIPPED (or, with `--force`, DONE).
//!
//! A retry is the store's conditional reset (`EventStore::retry_action` / `retry_sync`: PENDING,
//! generation + 1, attempts 0, back in the pending index with a check after the grace), then one
//! message per reset follow-up on the queue. The order matters: a follow-up reset but not
//! enqueued (SQS refused) is still found by the reconciler, so nothing is lost; a follow-up that
//! moved on between the listing and the reset is left alone and reported, never run twice.
//! The old dead-letter message of a retried follow-up stays on the DLQ until `dlq redrive`,
//! which drops it (its follow-up is no longer FAILED), so it never causes a second run.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use serde::Serialize;

use hookline::queue::FollowupQueue;
use hookline::store::{
    ActionStatus, EventStore, FollowUp, FollowupFilter, FollowupView, RetryScope,
};

use crate::args::{JsonArg, QueueArg, TableArg};
use crate::exit::{Exit, usage};
use crate::output::{self, time};
use crate::{Aws, parse_duration};

/// `hookline followups ...`
#[derive(Debug, Subcommand)]
pub enum FollowupsCommand {
    /// Each follow-up with its attempts, last status, last reason and next check.
    ///
    /// FAILED, SKIPPED and DONE follow-ups have left the pending index, so listing them (or
    /// listing without `--status`) Scans the table: a Scan reads, and is billed for, every item
    /// (raw bodies included; about 0.5 read unit per 4 KB) whatever the filters, at most
    /// `--max-scan` items per run. `--status PENDING` / `RUNNING` alone read the pending index.
    List(FollowupsListArgs),
    /// Reset follow-ups to PENDING with a new generation (a new `Idempotency-Key`) and enqueue
    /// them.
    ///
    /// One event's actions (`<source> <event id> [--action KIND]`), one entity's sync
    /// (`--entity <kind>/<id>`), or every FAILED one (`--all-failed`). Each reset is conditional:
    /// a follow-up that moved on meanwhile is left alone and reported (with `--all-failed`, exit
    /// code 3).
    Retry(FollowupsRetryArgs),
}

impl FollowupsCommand {
    /// Runs the subcommand.
    pub async fn run(self, aws: &Aws) -> anyhow::Result<Exit> {
        match self {
            Self::List(args) => list(aws, &args).await.map(|()| Exit::Ok),
            Self::Retry(args) => retry(aws, &args).await,
        }
    }
}

/// `hookline followups list`
#[derive(Debug, Args)]
pub struct FollowupsListArgs {
    /// Only these states (repeat or comma-separate; default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    pub status: Vec<ActionStatus>,
    /// Only follow-ups of this source, e.g. `stripe`.
    #[arg(long)]
    pub source: Option<String>,
    /// Only those whose event was received (or entity changed) within this long, e.g. `24h`.
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Print at most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Read at most this many items of the table (bounds a Scan's cost).
    #[arg(long, default_value_t = 10_000)]
    pub max_scan: usize,
    /// Table.
    #[command(flatten)]
    pub table: TableArg,
    /// Output.
    #[command(flatten)]
    pub output: JsonArg,
}

/// `hookline followups retry`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["event_id", "entity", "all_failed"])))]
pub struct FollowupsRetryArgs {
    /// Source of the event, e.g. `stripe` (with `--all-failed`: only this source).
    pub source: Option<String>,
    /// The event whose actions to retry.
    #[arg(requires = "source")]
    pub event_id: Option<String>,
    /// Only this action of the event, e.g. `receipt`.
    #[arg(long, requires = "event_id")]
    pub action: Option<String>,
    /// An entity's sync, as `<kind>/<id>`, e.g. `subscription/sub_123`.
    #[arg(long, conflicts_with_all = ["source", "event_id"])]
    pub entity: Option<String>,
    /// Every FAILED follow-up (found by a bounded Scan, see `followups list --help`).
    #[arg(long)]
    pub all_failed: bool,
    /// With `--all-failed`: only those received (or changed) within this long, e.g. `24h`.
    #[arg(long, value_parser = parse_duration, requires = "all_failed")]
    pub since: Option<Duration>,
    /// With `--all-failed`: read at most this many items of the table.
    #[arg(long, default_value_t = 10_000, requires = "all_failed")]
    pub max_scan: usize,
    /// Also run DONE event actions again (a new POST with a new key), after a confirmation.
    #[arg(long, conflicts_with_all = ["all_failed", "entity"])]
    pub force: bool,
    /// Confirm `--force` without asking (required when stdin is not a terminal).
    #[arg(long, requires = "force")]
    pub yes: bool,
    /// Print what would be reset, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Table.
    #[command(flatten)]
    pub table: TableArg,
    /// The follow-up queue the reset follow-ups go to.
    #[command(flatten)]
    pub queue: QueueArg,
    /// Output.
    #[command(flatten)]
    pub output: JsonArg,
}

/// A `--status` value: a follow-up state, in any case.
fn parse_status(s: &str) -> Result<ActionStatus, String> {
    ActionStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
        format!("{s:?} is not a follow-up status: PENDING, RUNNING, DONE, FAILED or SKIPPED")
    })
}

/// Items read per DynamoDB page.
const PAGE: usize = 500;

/// The follow-ups passing `filter`, at most `limit`, reading at most `max_scan` items. Also says
/// how many items were read and whether more remain unread. `progress` counts the items read.
pub async fn find(
    store: &EventStore,
    filter: &FollowupFilter,
    limit: usize,
    max_scan: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Found> {
    let mut found = Found::default();
    let mut start = None;
    loop {
        let budget = max_scan.saturating_sub(found.scanned).clamp(1, PAGE);
        let page = store
            .list_followups(filter, start, i32::try_from(budget).unwrap_or(i32::MAX))
            .await?;
        found.scanned += page.scanned;
        progress.set_position(u64::try_from(found.scanned).unwrap_or(u64::MAX));
        found.followups.extend(page.followups);
        found.corrupt.extend(page.corrupt);
        start = page.next;
        if start.is_none() {
            break;
        }
        if found.followups.len() >= limit || found.scanned >= max_scan {
            found.truncated = true;
            break;
        }
    }
    found.followups.sort_by_key(|v| std::cmp::Reverse(v.at));
    if found.followups.len() > limit {
        found.truncated = true;
        found.followups.truncate(limit);
    }
    Ok(found)
}

/// What [`find`] found.
#[derive(Debug, Default)]
pub struct Found {
    /// The follow-ups, newest first.
    pub followups: Vec<FollowupView>,
    /// Items read.
    pub scanned: usize,
    /// True when it stopped at a bound with items left unread.
    pub truncated: bool,
    /// Keys of items that could not be read (skipped).
    pub corrupt: Vec<String>,
}

/// One line of `followups list`.
#[derive(Debug, Serialize)]
pub struct Row<'a> {
    /// `<source>:<event id>:<action>` or `<source>:<kind>/<id>:<sync>`.
    pub name: String,
    /// The follow-up and where it stands.
    #[serde(flatten)]
    pub view: &'a FollowupView,
}

/// `hookline followups list`.
pub async fn list(aws: &Aws, args: &FollowupsListArgs) -> anyhow::Result<()> {
    let json = args.output.json;
    let table = args.table.name(aws);
    let store = crate::events::store(aws, &table);
    let filter = FollowupFilter {
        statuses: args.status.clone(),
        source: args.source.clone(),
        since_ms: args.since.map(output::since_ms),
    };
    let progress = scan_progress(&filter, args.max_scan, json);
    let found = find(&store, &filter, args.limit, args.max_scan, &progress).await;
    progress.finish_and_clear();
    let found = found.map_err(|e| aws.fail(&format!("listing follow-ups in {table}"), e))?;
    let rows: Vec<Row<'_>> = found
        .followups
        .iter()
        .map(|view| Row {
            name: view.followup.name(),
            view,
        })
        .collect();
    output::print(
        json,
        &[
            "FOLLOW-UP",
            "STATUS",
            "ATTEMPTS",
            "GEN",
            "LAST",
            "NEXT CHECK",
            "AT",
            "REASON",
        ],
        &rows,
        |r| {
            vec![
                r.name.clone(),
                r.view.status.as_str().to_owned(),
                r.view.attempt.to_string(),
                r.view.generation.to_string(),
                match r.view.last_status {
                    0 => "-".to_owned(),
                    s => s.to_string(),
                },
                time(r.view.next_check_at),
                time(Some(r.view.at)),
                r.view.reason.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        },
        &format!("no follow-ups match in table {table}"),
    )?;
    report_bounds(&found, args.max_scan);
    Ok(())
}

/// A progress bar for a Scan of at most `max_scan` items (hidden when the pending index is read).
fn scan_progress(filter: &FollowupFilter, max_scan: usize, json: bool) -> ProgressBar {
    if filter.pending_only() {
        return ProgressBar::hidden();
    }
    crate::progress::bar(
        u64::try_from(max_scan).unwrap_or(u64::MAX),
        "scanning the table",
        json,
    )
}

/// Says on stderr what a listing read, and when it stopped short.
fn report_bounds(found: &Found, max_scan: usize) {
    if found.truncated {
        eprintln!(
            "read {} item(s) and stopped at a bound (--limit, --max-scan {max_scan}): more may match",
            found.scanned
        );
    }
    for pk in &found.corrupt {
        eprintln!("skipped a malformed item: {pk}");
    }
}

/// What a retry did to one follow-up.
#[derive(Debug, Serialize)]
pub struct Retried {
    /// The follow-up's name.
    pub name: String,
    /// Its status before.
    pub was: ActionStatus,
    /// `reset` (PENDING, new generation, enqueued), `would_reset` (dry run), `not_enqueued`
    /// (reset, but SQS refused: the reconciler sends it after its grace), or `left` (not in a
    /// retryable state; see `reason`).
    pub result: &'static str,
    /// Why it was left alone.
    pub reason: Option<String>,
}

/// `hookline followups retry`. [`Exit::Failure`] when a named follow-up could not be retried
/// or an enqueue failed; [`Exit::Refused`] when `--all-failed` left some follow-ups alone.
pub async fn retry(aws: &Aws, args: &FollowupsRetryArgs) -> anyhow::Result<Exit> {
    let json = args.output.json;
    let table = args.table.name(aws);
    let store = crate::events::store(aws, &table);
    let views: Vec<FollowupView> = if args.all_failed {
        let filter = FollowupFilter {
            statuses: vec![ActionStatus::Failed],
            source: args.source.clone(),
            since_ms: args.since.map(output::since_ms),
        };
        let progress = scan_progress(&filter, args.max_scan, json);
        let found = find(&store, &filter, usize::MAX, args.max_scan, &progress).await;
        progress.finish_and_clear();
        let found =
            found.map_err(|e| aws.fail(&format!("finding FAILED follow-ups in {table}"), e))?;
        report_bounds(&found, args.max_scan);
        found.followups
    } else if let Some(entity) = &args.entity {
        let (kind, id) = entity
            .split_once('/')
            .filter(|(k, i)| !k.is_empty() && !i.is_empty())
            .ok_or_else(|| usage(format!("--entity {entity:?}: expected <kind>/<id>")))?;
        let view = store
            .entity_followup(kind, id)
            .await
            .map_err(|e| aws.fail(&format!("reading entity {kind}/{id}"), e))?;
        vec![view.with_context(|| format!("no entity {kind}/{id} with a sync in table {table}"))?]
    } else {
        let (Some(source), Some(event_id)) = (&args.source, &args.event_id) else {
            bail!("name an event (<source> <event id>), --entity or --all-failed");
        };
        let all = store
            .event_followups(source, event_id)
            .await
            .map_err(|e| aws.fail(&format!("reading event {source}/{event_id}"), e))?
            .with_context(|| format!("no event {source}/{event_id} in table {table}"))?;
        match &args.action {
            Some(kind) => {
                let kinds: Vec<&str> = all.iter().map(|v| v.followup.kind()).collect();
                let one = all
                    .iter()
                    .find(|v| v.followup.kind() == kind)
                    .with_context(|| {
                        format!(
                            "event {source}/{event_id} has no action {kind:?} (it has: {})",
                            kinds.join(", ")
                        )
                    })?;
                vec![one.clone()]
            }
            None => all,
        }
    };
    let scope = if args.force {
        RetryScope::AlsoDone
    } else {
        RetryScope::FailedOrSkipped
    };
    if args.force
        && !args.dry_run
        && views.iter().any(|v| v.status == ActionStatus::Done)
        && !output::confirm(
            &format!(
                "--force runs {} DONE follow-up(s) again: each target gets one more POST",
                views
                    .iter()
                    .filter(|v| v.status == ActionStatus::Done)
                    .count()
            ),
            args.yes,
        )?
    {
        bail!("not confirmed; nothing changed");
    }
    let mut results = Vec::new();
    let mut to_send = Vec::new();
    for v in &views {
        let name = v.followup.name();
        if !scope.covers(v.status) {
            results.push(Retried {
                name,
                was: v.status,
                result: "left",
                reason: Some(why_left(v.status)),
            });
            continue;
        }
        if args.dry_run {
            results.push(Retried {
                name,
                was: v.status,
                result: "would_reset",
                reason: None,
            });
            continue;
        }
        let reset = match &v.followup {
            FollowUp::Action {
                source,
                event_id,
                action,
            } => store.retry_action(source, event_id, action, scope).await,
            FollowUp::Sync {
                entity_kind,
                entity_id,
                ..
            } => store.retry_sync(entity_kind, entity_id).await,
        }
        .map_err(|e| aws.fail(&format!("resetting {name}"), e))?;
        if reset {
            to_send.push(v.followup.clone());
            results.push(Retried {
                name,
                was: v.status,
                result: "reset",
                reason: None,
            });
        } else {
            results.push(Retried {
                name,
                was: v.status,
                result: "left",
                reason: Some("it moved on meanwhile (someone else retried or claimed it)".into()),
            });
        }
    }
    let mut exit = Exit::Ok;
    if !to_send.is_empty() {
        let queue = FollowupQueue::new(aws.sqs(), args.queue.url(aws).await?);
        if let Err(e) = queue.send(&to_send).await {
            exit = Exit::Failure;
            eprintln!(
                "enqueueing failed ({}): the reset follow-ups are PENDING and the reconciler \
                 sends them after its grace",
                aws.fail("sending to the follow-up queue", e)
            );
            for r in results.iter_mut().filter(|r| r.result == "reset") {
                r.result = "not_enqueued";
            }
        }
    }
    let left = results.iter().filter(|r| r.result == "left").count();
    if exit == Exit::Ok && args.all_failed && left > 0 {
        // Bulk: the rest were reset; these moved on between the Scan and their reset.
        exit = Exit::Refused;
    }
    if !args.all_failed && left == results.len() {
        exit = Exit::Failure;
    }
    output::print(
        json,
        &["FOLLOW-UP", "WAS", "RESULT"],
        &results,
        |r| {
            vec![
                r.name.clone(),
                r.was.as_str().to_owned(),
                match (&r.reason, r.result) {
                    (Some(why), _) => format!("left: {why}"),
                    (None, "reset") => "reset to PENDING (new generation), enqueued".to_owned(),
                    (None, "would_reset") => "would reset to PENDING (dry run)".to_owned(),
                    (None, other) => other.replace('_', " "),
                },
            ]
        },
        "nothing to retry",
    )?;
    Ok(exit)
}

/// Why a follow-up in `status` is not retried.
fn why_left(status: ActionStatus) -> String {
    match status {
        ActionStatus::Done => "DONE (--force runs an event action again)".into(),
        ActionStatus::Pending => "PENDING: queued already".into(),
        ActionStatus::Running => "RUNNING: a worker holds it".into(),
        ActionStatus::Failed | ActionStatus::Skipped => "not retryable".into(),
    }
}
