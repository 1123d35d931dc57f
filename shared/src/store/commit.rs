//! Committing an event: ONE `TransactWriteItems` (docs/ARCHITECTURE.md, invariants 1 and 2).
//!
//! Invariants kept here:
//! - nothing is half-written: the event record, its body and the entity's change go in one
//!   transaction, whose `ClientRequestToken` (the SDK's, the same on its retries) makes DynamoDB
//!   answer a retried commit with the first success;
//! - the cancellation reasons tell the outcome apart: the event record's condition failed → a
//!   duplicate, answered with what its stored event still has PENDING (re-enqueued); the
//!   entity's → stale, recorded by a second transaction without the change;
//! - a lost race (`TransactionConflict`) is tried again a few times, then is transient (503); a
//!   refusal for good (validation) is permanent, and the receiver quarantines the event.

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::schema::{ENTITY_SK, PK, SK};

use super::codec::{Item, parse_event, s};
use super::dynamo::{build_err, dynamo_err};
use super::{
    ActionStatus, Effects, EventStore, FollowUp, NewEvent, Outcome, RecordPlan, StoreError,
};

/// How often a transaction that lost a race (`TransactionConflict`) is tried again before the
/// request fails with a 503 and the sender retries (the caller's deadline bounds it too).
const CONFLICT_RETRIES: u32 = 3;

/// What recording an event came to: the outcome, and the follow-ups to enqueue now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// What happened.
    pub outcome: Outcome,
    /// Follow-ups to send to the queue: the new ones, or, for a duplicate, those the stored
    /// event still has PENDING (a sender's retry after a lost response recovers at once).
    pub enqueue: Vec<FollowUp>,
}

impl EventStore {
    /// Records `event` with its `effects` and says what happened. One call for a new, duplicate
    /// or ignored event; a stale event costs a second (it is recorded as `stale`, with its event
    /// actions and without a state change).
    pub async fn record(
        &self,
        event: &NewEvent<'_>,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let plan = self.plan(event, effects)?;
        self.commit(plan).await
    }

    /// Records a verified delivery that could not be mapped (or that the store refused for good)
    /// as `quarantined`, with its raw body and the reason, for a later `events replay`.
    pub async fn quarantine(
        &self,
        event: &NewEvent<'_>,
        reason: &str,
    ) -> Result<Committed, StoreError> {
        let plan = self.quarantine_plan(event, reason)?;
        self.commit(plan).await
    }

    /// Runs the current mapping's `effects` for a `quarantined` event (an operator's replay,
    /// once the model is fixed): the record moves `quarantined → accepted` (or `stale`) with a
    /// conditional update (not `attribute_not_exists`, which would call every replay a
    /// duplicate), in one transaction with the state change and the outbox, so the state applies
    /// once and the follow-ups run once. A second replay finds it no longer quarantined:
    /// `Duplicate`.
    pub async fn replay(
        &self,
        event: &NewEvent<'_>,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut plan = self.plan(event, effects)?;
        let quarantined = |put: &Put| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(put.item().clone()))
                .condition_expression("#st = :q")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":q", s(Outcome::Quarantined.status()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_err)
        };
        plan.event = quarantined(&plan.event)?;
        if let Some((put, actions)) = plan.stale.take() {
            plan.stale = Some((quarantined(&put)?, actions));
        }
        // The body is stored already.
        plan.body = None;
        self.commit(plan).await
    }

    /// Sends a [`RecordPlan`]: the event record and its body, plus the entity's change when
    /// there is one, in one `TransactWriteItems`, told apart by its cancellation reasons.
    pub async fn commit(&self, plan: RecordPlan) -> Result<Committed, StoreError> {
        let RecordPlan {
            event,
            body,
            update,
            outcome,
            enqueue,
            stale,
        } = plan;
        let Some(update) = update else {
            return self.put_event(event, body, outcome, enqueue).await;
        };
        let mut items = vec![TransactWriteItem::builder().put(event).build()];
        if let Some(body) = body.clone() {
            items.push(TransactWriteItem::builder().put(body).build());
        }
        let update_at = items.len();
        let r = update.change.render();
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(&update.pk))
            .key(SK, s(ENTITY_SK))
            .update_expression(r.update)
            .set_condition_expression(r.condition)
            .set_expression_attribute_names(Some(r.names))
            .set_expression_attribute_values(Some(r.values))
            .build()
            .map_err(build_err)?;
        items.push(TransactWriteItem::builder().update(update).build());
        match self.transact(items).await? {
            Ok(()) => Ok(Committed { outcome, enqueue }),
            Err((codes, old)) if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") => {
                Ok(duplicate(old.first().cloned().flatten()))
            }
            Err((codes, _))
                if codes
                    .get(update_at)
                    .is_some_and(|c| c == "ConditionalCheckFailed") =>
            {
                let Some((put, actions)) = stale else {
                    return Err(StoreError::Corrupt("stale without a plan".into()));
                };
                self.put_event(put, body, Outcome::Stale, actions).await
            }
            Err((codes, _)) => Err(StoreError::Permanent {
                op: "TransactWriteItems",
                message: format!("transaction cancelled: {codes:?}"),
            }),
        }
    }

    /// Runs a transaction, retrying conflicts. `Ok(Err((codes, old items)))` when it was
    /// cancelled by conditions: one code per item, and the ALL_OLD item of those that asked.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), (Vec<String>, Vec<Option<Item>>)>, StoreError> {
        let mut attempt = 0;
        loop {
            let res = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match res {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            let (codes, old) = cancellation(&err);
            if codes.iter().any(|c| c == "ConditionalCheckFailed") {
                return Ok(Err((codes, old)));
            }
            if codes.iter().any(|c| c == "TransactionConflict") && attempt < CONFLICT_RETRIES {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                continue;
            }
            if codes.iter().any(|c| c == "ValidationError") {
                return Err(StoreError::Permanent {
                    op: "TransactWriteItems",
                    message: format!("transaction refused: {codes:?}"),
                });
            }
            return Err(dynamo_err("TransactWriteItems", err));
        }
    }

    /// Puts an event record (and its body) if the event is new; a duplicate re-kicks what the
    /// stored event still has pending.
    async fn put_event(
        &self,
        event: Put,
        body: Option<Put>,
        outcome: Outcome,
        enqueue: Vec<FollowUp>,
    ) -> Result<Committed, StoreError> {
        let mut items = vec![TransactWriteItem::builder().put(event).build()];
        if let Some(body) = body {
            items.push(TransactWriteItem::builder().put(body).build());
        }
        match self.transact(items).await? {
            Ok(()) => Ok(Committed { outcome, enqueue }),
            Err((codes, old)) if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") => {
                Ok(duplicate(old.first().cloned().flatten()))
            }
            Err((codes, _)) => Err(StoreError::Permanent {
                op: "TransactWriteItems",
                message: format!("transaction cancelled: {codes:?}"),
            }),
        }
    }
}

/// The answer to a duplicate: the stored event's still-PENDING event actions, and its entity's
/// sync when it changed one, re-enqueued (an extra copy is harmless: only a claimant runs).
pub(super) fn duplicate(old: Option<Item>) -> Committed {
    let enqueue = old
        .as_ref()
        .and_then(|item| parse_event(item).ok())
        .map(|ev| {
            let mut out: Vec<FollowUp> = ev
                .outbox
                .iter()
                .filter(|o| o.status == ActionStatus::Pending)
                .map(|o| FollowUp::Action {
                    source: ev.source.clone(),
                    event_id: ev.event_id.clone(),
                    action: o.kind.clone(),
                })
                .collect();
            if let (Some(e), Some(sync)) = (&ev.entity, &ev.entity_sync) {
                out.push(FollowUp::Sync {
                    source: ev.source.clone(),
                    entity_kind: e.kind.clone(),
                    entity_id: e.id.clone(),
                    sync: sync.clone(),
                });
            }
            out
        })
        .unwrap_or_default();
    Committed {
        outcome: Outcome::Duplicate,
        enqueue,
    }
}

/// The cancellation reasons' codes, and their ALL_OLD items, one per transaction item.
fn cancellation(err: &SdkError<TransactWriteItemsError>) -> (Vec<String>, Vec<Option<Item>>) {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .map(|r| (r.code().unwrap_or("None").to_owned(), r.item().cloned()))
            .unzip(),
        Some(other) => (
            other.code().map(|c| vec![c.to_owned()]).unwrap_or_default(),
            Vec::new(),
        ),
        None => (Vec::new(), Vec::new()),
    }
}
