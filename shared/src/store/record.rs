//! Planning the record of one event: the event record, its raw body and the entity's change,
//! built as DynamoDB writes but not yet sent.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, Update};
use sha2::{Digest, Sha256};

use super::codec::{
    ATTRS, BodyItem, Bytes, DELETED, EntryItem, EventItem, ID, Item, KIND, LAST_EVENT, REV,
    SYNC_ATTEMPT, SYNC_DESIRED, SYNC_GENERATION, SYNC_NAME, SYNC_SOURCE, SYNC_STATUS, UPDATED_AT,
    VERSION, json_to_attr, n, s, sync_json, to_item,
};
use super::dynamo::build_err;
use super::schema::{
    BODY_SK, ENTITY_SK, EVENT_SK, PENDING_PK, PENDING_SK, PK, SK, entity_pk, event_pk, pending_pk,
    source_pk,
};
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
    pub(super) update: Option<Update>,
    pub(super) outcome: Outcome,
    pub(super) enqueue: Vec<FollowUp>,
    pub(super) stale: Option<(Put, Vec<FollowUp>)>,
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
        let update = change
            .map(|change| self.change_update(change, event, now))
            .transpose()?;
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

    pub(super) fn body_put(
        &self,
        event: &NewEvent<'_>,
        now: i64,
    ) -> Result<Option<Put>, StoreError> {
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

    pub(super) fn event_put(
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

    fn change_update(
        &self,
        change: &StateChange,
        event: &NewEvent<'_>,
        now: i64,
    ) -> Result<Update, StoreError> {
        let pk = entity_pk(&change.entity_kind, &change.entity_id);
        let mut names = HashMap::from([
            ("#v".to_owned(), VERSION.to_owned()),
            ("#e".to_owned(), LAST_EVENT.to_owned()),
            ("#d".to_owned(), DELETED.to_owned()),
            ("#k".to_owned(), KIND.to_owned()),
            ("#i".to_owned(), ID.to_owned()),
            ("#u".to_owned(), UPDATED_AT.to_owned()),
            ("#a".to_owned(), ATTRS.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":v".to_owned(), n(change.version)),
            (":e".to_owned(), s(event.event_id)),
            (":k".to_owned(), s(&change.entity_kind)),
            (":i".to_owned(), s(&change.entity_id)),
            (":u".to_owned(), n(now)),
        ]);
        let mut set: Vec<String> = ["#v = :v", "#e = :e", "#k = :k", "#i = :i", "#u = :u"]
            .map(str::to_owned)
            .to_vec();
        let mut remove = Vec::new();
        let condition = match change.mode {
            ChangeMode::Tombstone => {
                // Final whatever its version; the attributes (personal data) go.
                values.insert(":d".into(), AttributeValue::Bool(true));
                set.push("#d = :d".into());
                remove.push("#a");
                "attribute_not_exists(pk) OR attribute_not_exists(#d)"
            }
            ChangeMode::Upsert => {
                let attrs: Item = change
                    .attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), json_to_attr(v)))
                    .collect();
                values.insert(":a".into(), AttributeValue::M(attrs));
                set.push("#a = :a".into());
                // New, or alive and older: (version, event id) strictly smaller than ours
                // (the rule `ordering::supersedes` states for tools; keep the two alike).
                "attribute_not_exists(pk) OR (attribute_not_exists(#d) AND (#v < :v OR (#v = :v AND #e < :e)))"
            }
        };
        if let Some(sync) = &change.sync {
            for (i, (name, value)) in [
                (SYNC_NAME, s(&sync.name)),
                (SYNC_SOURCE, s(event.source)),
                (SYNC_DESIRED, s(sync_json(sync))),
                (SYNC_STATUS, s(ActionStatus::Pending.as_str())),
                (SYNC_ATTEMPT, n(0)),
                (super::reconcile::SYNC_REQUEUES, n(0)),
                (PENDING_PK, s(pending_pk(&pk))),
                (PENDING_SK, n(now.saturating_add(self.grace_ms))),
            ]
            .into_iter()
            .enumerate()
            {
                names.insert(format!("#s{i}"), name.to_owned());
                values.insert(format!(":s{i}"), value);
                set.push(format!("#s{i} = :s{i}"));
            }
            names.insert("#sg".into(), SYNC_GENERATION.to_owned());
            names.insert("#rev".into(), REV.to_owned());
            values.insert(":zero".into(), n(0));
            values.insert(":one".into(), n(1));
            set.push("#sg = if_not_exists(#sg, :zero)".into());
            set.push("#rev = if_not_exists(#rev, :zero) + :one".into());
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        Update::builder()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(ENTITY_SK))
            .update_expression(expr)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_err)
    }
}
