//! Planning the record of one event (docs/ARCHITECTURE.md, "The receiver, step by step", 5):
//! the writes are built here, without I/O, and sent by `commit.rs`.
//!
//! Invariants kept here:
//! - the event record is put only where none exists (`attribute_not_exists(pk)`: a duplicate),
//!   with its event actions as a PENDING outbox, each due for the reconciler after the grace;
//! - the raw body is an item of its own, kept when it fits ([`MAX_STORED_BODY`]);
//! - the entity's change is conditional on the ordering rule (`ordering.rs` states it; a test in
//!   `memory.rs` holds the two together): a tombstone is final and erases `attrs`, a mapping's
//!   attributes are written whole into `attrs` (docs/DATA.md), and an applied change marks the
//!   entity's sync PENDING;
//! - a stale event is planned too: recorded `stale`, with its event actions and no change.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure};
use sha2::{Digest, Sha256};

use super::codec::{
    ATTRS, BodyItem, Bytes, DELETED, DeliveryItem, EntryItem, EventItem, ID, Item, KIND,
    LAST_EVENT, SYNC_ATTEMPT, SYNC_DESIRED, SYNC_GENERATION, SYNC_NAME, SYNC_SOURCE, SYNC_STATUS,
    UPDATED_AT, VERSION, json_to_attr, n, s, sync_json, to_item,
};
use super::dynamo::build_err;
use super::schema::{
    BODY_SK, EVENT_SK, PENDING_PK, PENDING_SK, PK, entity_pk, event_pk, pending_pk, source_pk,
};
use super::transition::{Change, Cond, Path};
use super::{
    Action, ActionStatus, ChangeMode, Effects, EventStore, FollowUp, Guard, NewEvent, Outcome,
    StateChange, StoreError,
};

/// Largest raw body kept: DynamoDB items are limited to 400 KB, and the body item needs room for
/// its keys.
pub const MAX_STORED_BODY: usize = 350 * 1024;

/// The DynamoDB writes that record one event, built but not yet sent.
#[derive(Debug, Clone)]
pub struct RecordPlan {
    pub(super) event: Put,
    pub(super) body: Option<Put>,
    pub(super) update: Option<EntityWrite>,
    pub(super) outcome: Outcome,
    pub(super) enqueue: Vec<FollowUp>,
    pub(super) stale: Option<(Put, Vec<FollowUp>)>,
}

/// The entity's conditional change within a [`RecordPlan`].
#[derive(Debug, Clone)]
pub(super) struct EntityWrite {
    /// The entity's key.
    pub pk: String,
    /// The update, conditional on the ordering rule.
    pub change: Change<'static>,
    /// The change as described, for the in-memory double (which applies the ordering rule
    /// through [`super::ordering::supersedes`]).
    pub state: StateChange,
    /// The event making it.
    pub event_id: String,
}

impl EventStore {
    /// Builds the DynamoDB request for `event` without sending it: the CPU part of
    /// [`EventStore::record`], separate so it can be measured on its own.
    pub fn plan(&self, event: &NewEvent<'_>, effects: &Effects) -> Result<RecordPlan, StoreError> {
        let now = self.clock.now_millis();
        let body = self.body_put(event, now)?;
        let (change, actions) = match effects {
            Effects::Ignored => {
                return Ok(RecordPlan {
                    event: self.event_put(event, Outcome::Ignored, now, None, &[], None)?,
                    body,
                    update: None,
                    outcome: Outcome::Ignored,
                    enqueue: Vec::new(),
                    stale: None,
                });
            }
            Effects::Apply { change, actions } => (change.as_ref(), actions.as_slice()),
        };
        let follow: Vec<FollowUp> = actions
            .iter()
            .map(|a| FollowUp::Action {
                source: event.source.to_owned(),
                event_id: event.event_id.to_owned(),
                action: a.kind.clone(),
            })
            .collect();
        let mut enqueue = follow.clone();
        if let Some(change) = change
            && let Some(sync) = &change.sync
        {
            enqueue.push(FollowUp::Sync {
                source: event.source.to_owned(),
                entity_kind: change.entity_kind.clone(),
                entity_id: change.entity_id.clone(),
                sync: sync.name.clone(),
            });
        }
        let update = change.map(|change| self.change_update(change, event, now));
        let stale = if change.is_some() {
            let put = self.event_put(event, Outcome::Stale, now, change, actions, None)?;
            Some((put, follow))
        } else {
            None
        };
        Ok(RecordPlan {
            event: self.event_put(event, Outcome::Accepted, now, change, actions, None)?,
            body,
            update,
            outcome: Outcome::Accepted,
            enqueue,
            stale,
        })
    }

    /// The writes that record `event` as `quarantined`, with its raw body and the reason.
    pub(super) fn quarantine_plan(
        &self,
        event: &NewEvent<'_>,
        reason: &str,
    ) -> Result<RecordPlan, StoreError> {
        let now = self.clock.now_millis();
        Ok(RecordPlan {
            event: self.event_put(event, Outcome::Quarantined, now, None, &[], Some(reason))?,
            body: self.body_put(event, now)?,
            update: None,
            outcome: Outcome::Quarantined,
            enqueue: Vec::new(),
            stale: None,
        })
    }

    fn body_put(&self, event: &NewEvent<'_>, now: i64) -> Result<Option<Put>, StoreError> {
        if event.body.len() > MAX_STORED_BODY {
            return Ok(None);
        }
        let item = to_item(&BodyItem {
            pk: event_pk(event.source, event.event_id),
            sk: BODY_SK.to_owned(),
            body: Bytes(event.body.to_vec()),
            expires_at: now / 1000 + self.retention_secs,
        })?;
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map(Some)
            .map_err(build_err)
    }

    fn event_put(
        &self,
        event: &NewEvent<'_>,
        outcome: Outcome,
        now: i64,
        change: Option<&StateChange>,
        actions: &[Action],
        reason: Option<&str>,
    ) -> Result<Put, StoreError> {
        let pk = event_pk(event.source, event.event_id);
        // Each event action's own check time (docs/FOLLOWUPS.md, the reconciler).
        let check = now.saturating_add(self.grace_ms);
        let outbox: BTreeMap<String, EntryItem> = actions
            .iter()
            .map(|a| {
                // An `unless_deleted` guard is also written as the pair a worker of the
                // version before guards honours.
                let legacy = match &a.guard {
                    Some(Guard::UnlessDeleted(e)) => Some(e),
                    _ => None,
                };
                let entry = EntryItem {
                    status: ActionStatus::Pending.as_str().to_owned(),
                    payload: a.payload.to_string(),
                    attempt: 0,
                    generation: 0,
                    last_status: 0,
                    check_at: Some(check),
                    lease_until: None,
                    reason: None,
                    guard: a
                        .guard
                        .as_ref()
                        .map(|g| serde_json::to_string(g).unwrap_or_default()),
                    unless_deleted_kind: legacy.map(|e| e.kind.clone()),
                    unless_deleted_id: legacy.map(|e| e.id.clone()),
                };
                (a.kind.clone(), entry)
            })
            .collect();
        let synced = change.filter(|c| c.sync.is_some() && outcome == Outcome::Accepted);
        let record = EventItem {
            source_pk: Some(source_pk(event.source, event.event_id)),
            received_at: now,
            source: event.source.to_owned(),
            function: event.function.to_owned(),
            event_id: event.event_id.to_owned(),
            event_type: event.event_type.to_owned(),
            status: outcome.status().to_owned(),
            reason: reason.map(str::to_owned),
            provider_ts: event.provider_ts,
            body_sha256: hex::encode(Sha256::digest(event.body)),
            expires_at: now / 1000 + self.retention_secs,
            rev: Some(0),
            entity_kind: synced.map(|c| c.entity_kind.clone()),
            entity_id: synced.map(|c| c.entity_id.clone()),
            entity_sync: synced.and_then(|c| c.sync.as_ref()).map(|s| s.name.clone()),
            pending_pk: (!outbox.is_empty()).then(|| pending_pk(&pk)),
            next_check_at: (!outbox.is_empty()).then_some(check),
            outbox,
            delivery: event.delivery.and_then(DeliveryItem::of),
            sk: EVENT_SK.to_owned(),
            pk,
        };
        let item = to_item(&record)?;
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)
    }

    /// The entity's change: conditional on the ordering rule ([`super::ordering::supersedes`]
    /// states it without I/O; a test holds the two together), marking its sync PENDING.
    fn change_update(&self, change: &StateChange, event: &NewEvent<'_>, now: i64) -> EntityWrite {
        let pk = entity_pk(&change.entity_kind, &change.entity_id);
        let c = Change::item()
            .set_item(VERSION, n(change.version))
            .set_item(LAST_EVENT, s(event.event_id))
            .set_item(KIND, s(&change.entity_kind))
            .set_item(ID, s(&change.entity_id))
            .set_item(UPDATED_AT, n(now));
        let (version, last, deleted) = (
            Path::Item(VERSION),
            Path::Item(LAST_EVENT),
            Path::Item(DELETED),
        );
        let fresh = Cond::Missing(Path::Item(PK));
        let c = match change.mode {
            // Final whatever its version; the attributes (personal data) go.
            ChangeMode::Tombstone => c
                .set_item(DELETED, AttributeValue::Bool(true))
                .remove_item(ATTRS)
                .when(Cond::Any(vec![fresh, Cond::Missing(deleted)])),
            ChangeMode::Upsert => {
                let attrs: Item = change
                    .attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), json_to_attr(v)))
                    .collect();
                // New, or alive and older: (version, event id) strictly smaller than ours.
                let older = Cond::Any(vec![
                    Cond::Less(version, n(change.version)),
                    Cond::All(vec![
                        Cond::Eq(version, n(change.version)),
                        Cond::Less(last, s(event.event_id)),
                    ]),
                ]);
                c.set_item(ATTRS, AttributeValue::M(attrs))
                    .when(Cond::Any(vec![
                        fresh,
                        Cond::All(vec![Cond::Missing(deleted), older]),
                    ]))
            }
        };
        let c = match &change.sync {
            Some(sync) => c
                .set_item(SYNC_NAME, s(&sync.name))
                .set_item(SYNC_SOURCE, s(event.source))
                .set_item(SYNC_DESIRED, s(sync_json(sync)))
                .set_item(SYNC_STATUS, s(ActionStatus::Pending.as_str()))
                .set_item(SYNC_ATTEMPT, n(0))
                .set_item(super::codec::SYNC_REQUEUES, n(0))
                .set_item(PENDING_PK, s(pending_pk(&pk)))
                .set_item(PENDING_SK, n(now.saturating_add(self.grace_ms)))
                .default_item(SYNC_GENERATION, n(0))
                .bump_rev(),
            None => c,
        };
        EntityWrite {
            pk,
            change: c,
            state: change.clone(),
            event_id: event.event_id.to_owned(),
        }
    }
}
