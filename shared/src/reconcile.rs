//! The reconciler: finds the follow-ups nobody is working on, by time, and enqueues them again.
//!
//! This is what makes "nothing is lost" hold when SQS refused a send after the commit, a worker
//! crashed holding a lease, or a sender (GitHub) never retries. Each follow-up not final has its
//! own check time, and its item's `next_check_at` (the pending index's sort key) is the earliest
//! of them; range queries per shard return exactly the items with something due. Invariants kept
//! here (docs/FOLLOWUPS.md, "The reconciler finds what nobody works on, by time"):
//! - a run works by a time budget ([`Limits::budget`]), reading every shard concurrently, page
//!   after page, until the shard has nothing due (or the budget or the per-shard cap
//!   [`Limits::max_per_shard`] is spent: [`Report::complete`] says so, and the next run goes on);
//! - a follow-up under a live lease is left alone, and one re-enqueued without a claim waits
//!   twice as long before the next copy (grace × 2^n, capped), so a backlog never gains a copy
//!   of each follow-up every run;
//! - a record this code cannot read is moved out of the way (its check an hour on) and counted
//!   ([`metrics::RECONCILER_CORRUPT`]), never a reason to stop or to block its shard.

use std::time::{Duration, Instant};

use crate::metrics::{self, Metrics};
use crate::queue::FollowupQueue;
use crate::store::schema::pending_pks;
use crate::store::{EventStore, ShardCursor};

/// How many malformed records' keys a report lists (all are counted).
pub const CORRUPT_KEYS_LISTED: usize = 100;

/// What bounds one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// No new page is started after this much time (`RECONCILE_BUDGET_SECS`).
    pub budget: Duration,
    /// At most this many items per shard per run (`RECONCILE_MAX_EVENTS`): a safety cap.
    pub max_per_shard: usize,
    /// Items per query page (100: one `BatchGetItem`).
    pub page: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(240),
            max_per_shard: 50_000,
            page: 100,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Due items examined.
    pub items: usize,
    /// Messages enqueued.
    pub enqueued: usize,
    /// Keys of items skipped as malformed (the first [`CORRUPT_KEYS_LISTED`]).
    pub corrupt: Vec<String>,
    /// Items skipped as malformed (their checks moved an hour on).
    pub corrupt_count: usize,
    /// How long the oldest re-enqueued follow-up had been due, ms (the backlog's age).
    pub oldest_due_ms: i64,
    /// Query pages read.
    pub pages: usize,
    /// True when every shard was read to its end; false when the budget or the cap stopped it
    /// (the next run goes on where the index stands then).
    pub complete: bool,
    /// Wall time of the run, ms.
    pub elapsed_ms: u64,
}

/// A reconciler failure: the run is reported as failed and the next scheduled run tries again.
#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
pub struct ReconcileError(String);

/// One reconciler run with the default budget and cap, `page` items per query page; its
/// figures go to stdout as a metric line.
pub async fn run(
    store: &EventStore,
    queue: &FollowupQueue,
    page: i32,
) -> Result<Report, ReconcileError> {
    run_with(store, queue, page, &Metrics::stdout()).await
}

/// [`run`], its metric line to `metrics`.
pub async fn run_with(
    store: &EventStore,
    queue: &FollowupQueue,
    page: i32,
    metrics: &Metrics,
) -> Result<Report, ReconcileError> {
    let limits = Limits {
        page,
        ..Limits::default()
    };
    run_limited(store, queue, &limits, metrics).await
}

/// One reconciler run within `limits`, its metric line to `metrics`:
/// [`metrics::RECONCILER_REENQUEUED`], [`metrics::RECONCILER_CORRUPT`] and
/// [`metrics::RECONCILER_BACKLOG_AGE_MS`] (how long the oldest re-enqueued follow-up had been
/// due; 0 when nothing was), under `source = all`.
pub async fn run_limited(
    store: &EventStore,
    queue: &FollowupQueue,
    limits: &Limits,
    metrics: &Metrics,
) -> Result<Report, ReconcileError> {
    let started = Instant::now();
    let deadline = started + limits.budget;
    let now = store.clock().now_millis();
    let shards = futures_util::future::join_all(
        pending_pks().map(|shard| run_shard(store, queue, shard, now, limits, deadline)),
    )
    .await;
    let mut report = Report {
        complete: true,
        ..Report::default()
    };
    for shard in shards {
        let shard = shard?;
        report.items += shard.items;
        report.enqueued += shard.enqueued;
        report.corrupt_count += shard.corrupt.len();
        report.corrupt.extend(shard.corrupt);
        report.oldest_due_ms = report.oldest_due_ms.max(shard.oldest_due_ms);
        report.pages += shard.pages;
        report.complete &= shard.complete;
    }
    report.corrupt.truncate(CORRUPT_KEYS_LISTED);
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let count = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    metrics.emit(
        "reconciler",
        "all",
        &[
            metrics::Metric::count(metrics::RECONCILER_REENQUEUED, count(report.enqueued)),
            metrics::Metric::count(metrics::RECONCILER_CORRUPT, count(report.corrupt_count)),
            metrics::Metric::duration(
                metrics::RECONCILER_BACKLOG_AGE_MS,
                Duration::from_millis(u64::try_from(report.oldest_due_ms).unwrap_or(0)),
            ),
        ],
    );
    tracing::info!(
        items = report.items,
        enqueued = report.enqueued,
        corrupt = report.corrupt_count,
        oldest_due_ms = report.oldest_due_ms,
        pages = report.pages,
        complete = report.complete,
        elapsed_ms = report.elapsed_ms,
        "reconcile run"
    );
    Ok(report)
}

/// What one shard came to in a run.
#[derive(Debug, Default)]
struct ShardReport {
    items: usize,
    enqueued: usize,
    corrupt: Vec<String>,
    oldest_due_ms: i64,
    pages: usize,
    complete: bool,
}

/// Reads shard `shard` page after page until nothing due is left, the budget is spent or the
/// cap is reached, sending each page's due follow-ups in batches of ten.
async fn run_shard(
    store: &EventStore,
    queue: &FollowupQueue,
    shard: String,
    now: i64,
    limits: &Limits,
    deadline: Instant,
) -> Result<ShardReport, ReconcileError> {
    let mut report = ShardReport::default();
    let mut cursor: Option<ShardCursor> = None;
    loop {
        if Instant::now() >= deadline || report.items >= limits.max_per_shard {
            return Ok(report);
        }
        let page = store
            .reconcile_page(&shard, now, limits.page, cursor.take())
            .await
            .map_err(|e| ReconcileError(format!("{shard}: {e}")))?;
        queue
            .send(&page.due)
            .await
            .map_err(|e| ReconcileError(format!("{shard}: {e}")))?;
        report.pages += 1;
        report.items += page.items;
        report.enqueued += page.due.len();
        report.corrupt.extend(page.corrupt);
        report.oldest_due_ms = report.oldest_due_ms.max(page.oldest_due_ms);
        match page.next {
            Some(next) => cursor = Some(next),
            None => {
                report.complete = true;
                return Ok(report);
            }
        }
    }
}
