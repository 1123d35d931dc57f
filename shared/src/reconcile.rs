//! The reconciler: finds the follow-ups nobody is working on, by time, and enqueues them again.
//!
//! This is what makes "nothing is lost" hold when SQS refused a send after the commit, a worker
//! crashed holding a lease, or a sender (GitHub) never retries. Each item with anything not final
//! carries `next_check_at` (the pending index's sort key); one range query per shard returns
//! exactly the items whose time has passed. Follow-ups under a live lease are left alone (their
//! check moves to the lease's end), so a target that is down for an hour never has more than one
//! copy of a follow-up in flight. Work per run is bounded (`RECONCILE_MAX_EVENTS` per shard),
//! and a record this code cannot read is skipped and reported, never a reason to stop.

use crate::metrics::{self, Metrics};
use crate::queue::FollowupQueue;
use crate::store::EventStore;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Due items examined.
    pub items: usize,
    /// Messages enqueued.
    pub enqueued: usize,
    /// Keys of items skipped as malformed.
    pub corrupt: Vec<String>,
    /// How long the oldest re-enqueued item had been due, ms (the backlog's age).
    pub oldest_due_ms: i64,
}

/// A reconciler failure: the run is reported as failed and the next scheduled run tries again.
#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
pub struct ReconcileError(String);

/// One reconciler run; its figures go to stdout as a metric line.
pub async fn run(
    store: &EventStore,
    queue: &FollowupQueue,
    max_per_shard: i32,
) -> Result<Report, ReconcileError> {
    run_with(store, queue, max_per_shard, &Metrics::stdout()).await
}

/// One reconciler run, its metric line to `metrics`: [`metrics::RECONCILER_REENQUEUED`] and
/// [`metrics::RECONCILER_BACKLOG_AGE_MS`] (how long the oldest re-enqueued follow-up had been
/// due; 0 when nothing was), under `source = all`.
pub async fn run_with(
    store: &EventStore,
    queue: &FollowupQueue,
    max_per_shard: i32,
    metrics: &Metrics,
) -> Result<Report, ReconcileError> {
    let scan = store
        .reconcile_scan(max_per_shard)
        .await
        .map_err(|e| ReconcileError(e.to_string()))?;
    queue
        .send(&scan.due)
        .await
        .map_err(|e| ReconcileError(e.to_string()))?;
    let report = Report {
        items: scan.items,
        enqueued: scan.due.len(),
        corrupt: scan.corrupt,
        oldest_due_ms: scan.oldest_due_ms,
    };
    metrics.emit(
        "reconciler",
        "all",
        &[
            metrics::Metric::count(
                metrics::RECONCILER_REENQUEUED,
                u64::try_from(report.enqueued).unwrap_or(u64::MAX),
            ),
            metrics::Metric::duration(
                metrics::RECONCILER_BACKLOG_AGE_MS,
                std::time::Duration::from_millis(u64::try_from(report.oldest_due_ms).unwrap_or(0)),
            ),
        ],
    );
    tracing::info!(
        items = report.items,
        enqueued = report.enqueued,
        corrupt = report.corrupt.len(),
        oldest_due_ms = report.oldest_due_ms,
        "reconcile run"
    );
    Ok(report)
}
