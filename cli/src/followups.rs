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

use anyhow::{Context, bail};
use serde::Serialize;

use hookline::queue::FollowupQueue;
use hookline::store::{ActionStatus, EventStore, FollowUp, FollowupFilter, FollowupView};

use crate::Aws;
use crate::cli::{FollowupsListArgs, FollowupsRetryArgs};
use crate::output::{self, time};

/// Items read per DynamoDB page.
const PAGE: usize = 500;

/// The follow-ups passing `filter`, at most `limit`, reading at most `max_scan` items. Also says
/// how many items were read and whether more remain unread.
pub async fn find(
    store: &EventStore,
    filter: &FollowupFilter,
    limit: usize,
    max_scan: usize,
) -> anyhow::Result<Found> {
    let mut found = Found::default();
    let mut start = None;
    loop {
        let budget = max_scan.saturating_sub(found.scanned).clamp(1, PAGE);
        let page = store
            .list_followups(filter, start, i32::try_from(budget).unwrap_or(i32::MAX))
            .await?;
        found.scanned += page.scanned;
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
pub async fn list(aws: &Aws, args: &FollowupsListArgs, json: bool) -> anyhow::Result<()> {
    let table = args.table.name(aws);
    let store = crate::events::store(aws, &table);
    let filter = FollowupFilter {
        statuses: args.status.clone(),
        source: args.source.clone(),
        since_ms: args.since.map(output::since_ms),
    };
    let found = find(&store, &filter, args.limit, args.max_scan)
        .await
        .map_err(|e| aws.fail(&format!("listing follow-ups in {table}"), e))?;
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

/// `hookline followups retry`. `Ok(false)` when a named follow-up could not be retried or an
/// enqueue failed.
pub async fn retry(aws: &Aws, args: &FollowupsRetryArgs, json: bool) -> anyhow::Result<bool> {
    let table = args.table.name(aws);
    let store = crate::events::store(aws, &table);
    let views: Vec<FollowupView> = if args.all_failed {
        let filter = FollowupFilter {
            statuses: vec![ActionStatus::Failed],
            source: args.source.clone(),
            since_ms: args.since.map(output::since_ms),
        };
        let found = find(&store, &filter, usize::MAX, args.max_scan)
            .await
            .map_err(|e| aws.fail(&format!("finding FAILED follow-ups in {table}"), e))?;
        report_bounds(&found, args.max_scan);
        found.followups
    } else if let Some(entity) = &args.entity {
        let (kind, id) = entity
            .split_once('/')
            .filter(|(k, i)| !k.is_empty() && !i.is_empty())
            .with_context(|| format!("--entity {entity:?}: expected <kind>/<id>"))?;
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
    let retryable = |st: ActionStatus| {
        matches!(st, ActionStatus::Failed | ActionStatus::Skipped)
            || (args.force && st == ActionStatus::Done)
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
        if !retryable(v.status) {
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
            } => {
                store
                    .retry_action(source, event_id, action, args.force)
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
    let mut ok = true;
    if !to_send.is_empty() {
        let queue = FollowupQueue::new(aws.sqs(), args.queue.url(aws).await?);
        if let Err(e) = queue.send(&to_send).await {
            ok = false;
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
    if !args.all_failed && !results.iter().any(|r| r.result != "left") {
        ok = false;
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
    Ok(ok)
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
