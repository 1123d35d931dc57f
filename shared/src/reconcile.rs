//! The reconciler: finds the follow-ups nobody is working on, by time, and enqueues them again.
//!
//! This is what makes "nothing is lost" hold when SQS refused a send after the commit, a worker
//! crashed holding a lease, or a sender (GitHub) never retries. Each item with anything not final
//! carries `next_check_at` (the pending index's sort key); one range query per shard returns
//! exactly the items whose time has passed. Follow-ups under a live lease are left alone (their
//! check moves to the lease's end), so a target that is down for an hour never has more than one
//! copy of a follow-up in flight. Work per run is bounded (`RECONCILE_MAX_EVENTS` per shard),
//! and a record this code cannot read is skipped and reported, never a reason to stop.

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

/// One reconciler run.
pub async fn run(
    store: &EventStore,
    queue: &FollowupQueue,
    max_per_shard: i32,
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
    tracing::info!(
        items = report.items,
        enqueued = report.enqueued,
        corrupt = report.corrupt.len(),
        oldest_due_ms = report.oldest_due_ms,
        "reconcile run"
    );
    Ok(report)
}
