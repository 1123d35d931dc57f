//! The reconciler: re-enqueues follow-ups whose outbox is still PENDING after a grace period.
//!
//! This is what makes "nothing is lost" hold when SQS refused a send after the commit, or for
//! senders such as GitHub that never retry. Work per run is bounded (`RECONCILE_MAX_EVENTS`), and
//! it is idempotent with the worker: re-enqueueing an action that is meanwhile done costs a
//! message the worker acknowledges without running anything. Each re-enqueued event moves to the
//! back of the pending index, so it waits a full grace period before its next try.

use crate::clock::SharedClock;
use crate::queue::FollowupQueue;
use crate::store::{ActionStatus, EventStore, FollowUp};

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Pending events examined.
    pub events: usize,
    /// Messages enqueued.
    pub enqueued: usize,
}

/// A reconciler failure: the run is reported as failed and the next scheduled run tries again.
#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
pub struct ReconcileError(String);

/// One reconciler run.
pub async fn run(
    store: &EventStore,
    queue: &FollowupQueue,
    clock: &SharedClock,
    grace_secs: i64,
    max_events: i32,
) -> Result<Report, ReconcileError> {
    let cutoff = clock.now_millis() - grace_secs.saturating_mul(1000);
    let pending = store
        .pending_before(cutoff, max_events)
        .await
        .map_err(|e| ReconcileError(e.to_string()))?;
    let mut report = Report::default();
    for (source, event_id) in pending {
        report.events += 1;
        let Some(event) = store
            .get_event(&source, &event_id)
            .await
            .map_err(|e| ReconcileError(e.to_string()))?
        else {
            continue;
        };
        let followups: Vec<FollowUp> = event
            .outbox
            .iter()
            .filter(|o| o.status == ActionStatus::Pending)
            .map(|o| FollowUp {
                source: source.clone(),
                event_id: event_id.clone(),
                action: o.kind.clone(),
            })
            .collect();
        queue
            .send(&followups)
            .await
            .map_err(|e| ReconcileError(e.to_string()))?;
        report.enqueued += followups.len();
        store
            .touch_pending(&source, &event_id)
            .await
            .map_err(|e| ReconcileError(e.to_string()))?;
    }
    tracing::info!(
        events = report.events,
        enqueued = report.enqueued,
        "reconcile run"
    );
    Ok(report)
}
