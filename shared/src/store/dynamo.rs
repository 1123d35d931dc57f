//! DynamoDB implementation of the event store: recording events. The follow-up lifecycle
//! (claims, marks, the reconciler's scan) is in `followups.rs`. See the module above for the
//! invariants.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use sha2::{Digest, Sha256};

use super::schema::{
    BODY_SK, ENTITY_SK, EVENT_SK, PENDING_PK, PENDING_SK, PK, SK, SOURCE_INDEX, SOURCE_PK,
    SOURCE_SK, TTL_ATTR, entity_pk, event_pk, pending_pk, source_pk, source_pks,
};
use super::{
    Action, ActionStatus, ChangeMode, Effects, EntityRecord, EntityRef, EventRecord, FollowUp,
    Guard, NewEvent, OutboxEntry, Outcome, StateAttrs, StateChange, StoreError, SyncRecord,
    SyncTarget,
};
use crate::clock::SharedClock;

/// Largest raw body kept: DynamoDB items are limited to 400 KB, and the body item needs room for
/// its keys.
pub const MAX_STORED_BODY: usize = 350 * 1024;

/// How often a transaction that lost a race (`TransactionConflict`) is tried again before the
/// request fails with a 503 and the sender retries (the caller's deadline bounds it too).
const CONFLICT_RETRIES: u32 = 3;

// Attribute names. Entity bookkeeping starts with `_`; a mapping's attributes live in `attrs`.
pub(super) const VERSION: &str = "_version";
pub(super) const LAST_EVENT: &str = "_last_event_id";
pub(super) const DELETED: &str = "_deleted";
pub(super) const KIND: &str = "_kind";
pub(super) const ID: &str = "_id";
pub(super) const UPDATED_AT: &str = "_updated_at";
pub(super) const ATTRS: &str = "attrs";
pub(super) const OUTBOX: &str = "outbox";
/// Bumped by every lifecycle transition of an item, so that a cleanup conditioned on it cannot
/// undo a transition it did not see.
pub(super) const REV: &str = "rev";
// Sync attributes on entity records.
pub(super) const SYNC_NAME: &str = "sync_name";
pub(super) const SYNC_SOURCE: &str = "sync_source";
pub(super) const SYNC_STATUS: &str = "sync_status";
pub(super) const SYNC_DESIRED: &str = "sync_desired";
pub(super) const SYNC_SYNCED: &str = "sync_synced";
pub(super) const SYNC_SYNCED_VERSION: &str = "sync_synced_version";
pub(super) const SYNC_ATTEMPT: &str = "sync_attempt";
pub(super) const SYNC_GENERATION: &str = "sync_generation";
pub(super) const SYNC_LEASE: &str = "sync_lease";
pub(super) const SYNC_LEASE_UNTIL: &str = "sync_lease_until";
pub(super) const SYNC_LAST_STATUS: &str = "sync_last_status";
pub(super) const SYNC_REASON: &str = "sync_reason";
/// The state last maybe sent (written under the lease before its POST), and its sequence.
pub(super) const SYNC_SENT: &str = "sync_sent";
pub(super) const SYNC_SEQ: &str = "sync_seq";
/// An outbox entry's guard (JSON); entries of earlier versions carry `unless_deleted_kind`/`_id`.
const GUARD: &str = "guard";

/// The DynamoDB writes that record one event, built but not yet sent.
#[derive(Debug, Clone)]
pub struct RecordPlan {
    event: Put,
    body: Option<Put>,
    update: Option<Update>,
    outcome: Outcome,
    enqueue: Vec<FollowUp>,
    stale: Option<(Put, Vec<FollowUp>)>,
}

/// What recording an event came to: the outcome, and the follow-ups to enqueue now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// What happened.
    pub outcome: Outcome,
    /// Follow-ups to send to the queue: the new ones, or, for a duplicate, those the stored
    /// event still has PENDING (a sender's retry after a lost response recovers at once).
    pub enqueue: Vec<FollowUp>,
}

/// The event store on one DynamoDB table. Cheap to clone; built once per cold start.
#[derive(Debug, Clone)]
pub struct EventStore {
    pub(super) client: Client,
    pub(super) table: String,
    retention_secs: i64,
    pub(super) clock: SharedClock,
    /// How long after it is recorded a pending follow-up is due for the reconciler, ms.
    pub(super) grace_ms: i64,
}

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Sorts an SDK failure into transient (retry) or permanent (the request itself is refused).
pub(super) fn dynamo_err<E>(op: &'static str, err: SdkError<E>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let permanent = match &err {
        SdkError::ServiceError(se) => matches!(
            se.err().code(),
            Some(
                "ValidationException"
                    | "ItemCollectionSizeLimitExceededException"
                    | "SerializationException"
            )
        ),
        SdkError::ConstructionFailure(_) => true,
        _ => false,
    };
    let message = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
    if permanent {
        StoreError::Permanent { op, message }
    } else {
        StoreError::Transient { op, message }
    }
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent {
        op: "build",
        message: e.to_string(),
    }
}

/// Converts a JSON value to an attribute: scalars natively, nested values as their JSON text.
fn json_to_attr(v: &serde_json::Value) -> AttributeValue {
    match v {
        serde_json::Value::Null => AttributeValue::Null(true),
        serde_json::Value::Bool(b) => AttributeValue::Bool(*b),
        serde_json::Value::Number(num) => AttributeValue::N(num.to_string()),
        serde_json::Value::String(st) => s(st.clone()),
        other => s(other.to_string()),
    }
}

fn attr_to_json(v: &AttributeValue) -> serde_json::Value {
    match v {
        AttributeValue::Null(_) => serde_json::Value::Null,
        AttributeValue::Bool(b) => (*b).into(),
        AttributeValue::N(num) => serde_json::from_str(num).unwrap_or_else(|_| num.clone().into()),
        AttributeValue::S(st) => st.clone().into(),
        _ => serde_json::Value::Null,
    }
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    opt_s(item, name)
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing or not a string")))
}

pub(super) fn opt_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(super) fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    opt_n(item, name)
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing or not a number")))
}

pub(super) fn opt_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

impl EventStore {
    /// A store on `table`, keeping event records for `retention_days`.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        retention_days: i64,
        clock: SharedClock,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            retention_secs: retention_days.saturating_mul(86_400),
            clock,
            grace_ms: 300_000,
        }
    }

    /// The same store, with pending follow-ups due for the reconciler `grace` after they are
    /// recorded or released (default 5 minutes; `RECONCILE_GRACE_SECS`).
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The clock the store stamps records with.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// How long an event record is kept (its TTL), in seconds: the deduplication window.
    pub fn retention_secs(&self) -> i64 {
        self.retention_secs
    }

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

    /// Records a verified delivery that could not be mapped (or that the store refused for good)
    /// as `quarantined`, with its raw body and the reason, for a later `events replay`.
    pub async fn quarantine(
        &self,
        event: &NewEvent<'_>,
        reason: &str,
    ) -> Result<Committed, StoreError> {
        let now = self.clock.now_millis();
        let put = self.event_put(event, Outcome::Quarantined, now, None, &[], Some(reason))?;
        let body = self.body_put(event, now)?;
        self.put_event(put, body, Outcome::Quarantined, Vec::new())
            .await
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

    fn body_put(&self, event: &NewEvent<'_>, now: i64) -> Result<Option<Put>, StoreError> {
        if event.body.len() > MAX_STORED_BODY {
            return Ok(None);
        }
        let item: Item = HashMap::from([
            (PK.to_owned(), s(event_pk(event.source, event.event_id))),
            (SK.to_owned(), s(BODY_SK)),
            ("body".to_owned(), AttributeValue::B(Blob::new(event.body))),
            (TTL_ATTR.to_owned(), n(now / 1000 + self.retention_secs)),
        ]);
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
        let mut item: Item = HashMap::new();
        item.insert(SOURCE_PK.into(), s(source_pk(event.source, event.event_id)));
        item.insert(SOURCE_SK.into(), n(now));
        item.insert("source".into(), s(event.source));
        item.insert("function".into(), s(event.function));
        item.insert("event_id".into(), s(event.event_id));
        item.insert("event_type".into(), s(event.event_type));
        item.insert("status".into(), s(outcome.status()));
        item.insert("provider_ts".into(), n(event.provider_ts));
        item.insert(
            "body_sha256".into(),
            s(hex::encode(Sha256::digest(event.body))),
        );
        item.insert(TTL_ATTR.into(), n(now / 1000 + self.retention_secs));
        item.insert(REV.into(), n(0));
        if let Some(d) = event.delivery {
            let m: Item = [
                ("id", d.delivery_id.as_ref().map(s)),
                ("type", d.event_type.as_ref().map(s)),
                ("ts", d.timestamp.map(n)),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            if !m.is_empty() {
                item.insert("delivery".into(), AttributeValue::M(m));
            }
        }
        if let Some(reason) = reason {
            item.insert("reason".into(), s(reason));
        }
        if let Some(change) = change
            && change.sync.is_some()
            && outcome == Outcome::Accepted
        {
            item.insert("entity_kind".into(), s(&change.entity_kind));
            item.insert("entity_id".into(), s(&change.entity_id));
            if let Some(sync) = &change.sync {
                item.insert("entity_sync".into(), s(&sync.name));
            }
        }
        let outbox: Item = actions
            .iter()
            .map(|a| {
                let mut entry = HashMap::from([
                    ("status".to_owned(), s(ActionStatus::Pending.as_str())),
                    ("payload".to_owned(), s(a.payload.to_string())),
                    ("attempt".to_owned(), n(0)),
                    ("generation".to_owned(), n(0)),
                    ("last_status".to_owned(), n(0)),
                    // Each event action's own check time (docs/FOLLOWUPS.md, the reconciler).
                    (
                        super::reconcile::ENTRY_CHECK_AT.to_owned(),
                        n(now.saturating_add(self.grace_ms)),
                    ),
                ]);
                if let Some(guard) = &a.guard {
                    entry.insert(
                        GUARD.to_owned(),
                        s(serde_json::to_string(guard).unwrap_or_default()),
                    );
                    // Still honoured by a worker of the version before guards.
                    if let Guard::UnlessDeleted(e) = guard {
                        entry.insert("unless_deleted_kind".to_owned(), s(&e.kind));
                        entry.insert("unless_deleted_id".to_owned(), s(&e.id));
                    }
                }
                (a.kind.clone(), AttributeValue::M(entry))
            })
            .collect();
        if !outbox.is_empty() {
            item.insert(PENDING_PK.into(), s(pending_pk(&pk)));
            item.insert(PENDING_SK.into(), n(now.saturating_add(self.grace_ms)));
        }
        item.insert(OUTBOX.into(), AttributeValue::M(outbox));
        item.insert(PK.into(), s(pk));
        item.insert(SK.into(), s(EVENT_SK));
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

    /// A strongly consistent read of one item.
    pub(super) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err("GetItem", e))?;
        Ok(out.item)
    }

    /// Reads one event record (without its body).
    pub async fn get_event(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<EventRecord>, StoreError> {
        self.get_item(event_pk(source, event_id), EVENT_SK)
            .await?
            .as_ref()
            .map(parse_event)
            .transpose()
    }

    /// Reads one event's raw body, as received (absent when it was larger than
    /// [`MAX_STORED_BODY`], or expired).
    pub async fn get_body(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .get_item(event_pk(source, event_id), BODY_SK)
            .await?
            .and_then(|item| match item.get("body") {
                Some(AttributeValue::B(b)) => Some(b.as_ref().to_vec()),
                _ => None,
            }))
    }

    /// Reads one entity's state.
    pub async fn get_entity(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<EntityRecord>, StoreError> {
        self.get_item(entity_pk(kind, id), ENTITY_SK)
            .await?
            .as_ref()
            .map(parse_entity)
            .transpose()
    }

    /// The most recent events of `source`, newest first (every shard of the index, merged).
    pub async fn recent(
        &self,
        source: &str,
        limit: i32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        for spk in source_pks(source) {
            self.source_page(&spk, None, limit, None, &mut found)
                .await?;
        }
        Ok(newest_first(found, usize::try_from(limit).unwrap_or(0)))
    }

    /// Every event of `source` received at or after `since_ms`, newest first: each shard of the
    /// index read page after page (`page` keys a page) to the end of the window, not just its
    /// newest page.
    pub async fn events_since(
        &self,
        source: &str,
        since_ms: i64,
        page: i32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        for spk in source_pks(source) {
            let mut start = None;
            loop {
                start = self
                    .source_page(&spk, Some(since_ms), page.max(1), start, &mut found)
                    .await?;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(newest_first(found, usize::MAX))
    }

    /// One page of one by-source shard, newest first (received at or after `since_ms` when
    /// given), appended to `found` as `(received_at, source, event id)`; the key to go on from,
    /// when there is more.
    async fn source_page(
        &self,
        spk: &str,
        since_ms: Option<i64>,
        limit: i32,
        start: Option<Item>,
        found: &mut Vec<(i64, String, String)>,
    ) -> Result<Option<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(SOURCE_INDEX)
            .expression_attribute_names("#s", SOURCE_PK)
            .expression_attribute_values(":s", s(spk))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start);
        let query = match since_ms {
            None => query.key_condition_expression("#s = :s"),
            Some(since) => query
                .key_condition_expression("#s = :s AND #t >= :since")
                .expression_attribute_names("#t", SOURCE_SK)
                .expression_attribute_values(":since", n(since)),
        };
        let out = query.send().await.map_err(|e| dynamo_err("Query", e))?;
        for item in out.items() {
            let pk = get_s(item, PK)?;
            let (src, id) = parse_event_pk(pk)
                .ok_or_else(|| StoreError::Corrupt(format!("event key {pk:?}")))?;
            found.push((get_n(item, SOURCE_SK)?, src, id));
        }
        Ok(out.last_evaluated_key().cloned())
    }
}

/// `(received_at, source, id)` newest first, at most `limit` of them, as `(source, id)`.
fn newest_first(mut found: Vec<(i64, String, String)>, limit: usize) -> Vec<(String, String)> {
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.truncate(limit);
    found.into_iter().map(|(_, s, i)| (s, i)).collect()
}

/// The answer to a duplicate: the stored event's still-PENDING event actions, and its entity's
/// sync when it changed one, re-enqueued (an extra copy is harmless: only a claimant runs).
fn duplicate(old: Option<Item>) -> Committed {
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

/// The stored JSON text of a sync target.
pub(super) fn sync_json(t: &SyncTarget) -> String {
    serde_json::to_string(t).unwrap_or_default()
}

/// `EVENT#<source>#<event id>` → (source, event id). Sources never contain `#`.
pub(super) fn parse_event_pk(pk: &str) -> Option<(String, String)> {
    let rest = pk.strip_prefix("EVENT#")?;
    let (source, id) = rest.split_once('#')?;
    Some((source.to_owned(), id.to_owned()))
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

pub(super) fn parse_outbox_entry(kind: &str, entry: &Item) -> Result<OutboxEntry, StoreError> {
    let status = ActionStatus::parse(get_s(entry, "status")?)
        .ok_or_else(|| StoreError::Corrupt(format!("outbox status of {kind}")))?;
    let payload = serde_json::from_str(get_s(entry, "payload")?)
        .map_err(|e| StoreError::Corrupt(format!("outbox payload of {kind}: {e}")))?;
    let guard = match opt_s(entry, GUARD) {
        Some(g) => Some(
            serde_json::from_str(g)
                .map_err(|e| StoreError::Corrupt(format!("outbox guard of {kind}: {e}")))?,
        ),
        None => match (
            opt_s(entry, "unless_deleted_kind"),
            opt_s(entry, "unless_deleted_id"),
        ) {
            (Some(k), Some(i)) => Some(Guard::UnlessDeleted(EntityRef {
                kind: k.to_owned(),
                id: i.to_owned(),
            })),
            _ => None,
        },
    };
    Ok(OutboxEntry {
        kind: kind.to_owned(),
        status,
        payload,
        attempt: opt_n(entry, "attempt").unwrap_or(0),
        generation: opt_n(entry, "generation").unwrap_or(0),
        lease_until: opt_n(entry, "lease_until"),
        last_status: opt_n(entry, "last_status").unwrap_or(0),
        reason: opt_s(entry, "reason").map(str::to_owned),
        guard,
    })
}

pub(super) fn parse_event(item: &Item) -> Result<EventRecord, StoreError> {
    let mut outbox = Vec::new();
    if let Some(AttributeValue::M(entries)) = item.get(OUTBOX) {
        for (kind, entry) in entries {
            let AttributeValue::M(entry) = entry else {
                return Err(StoreError::Corrupt(format!("outbox entry {kind}")));
            };
            outbox.push(parse_outbox_entry(kind, entry)?);
        }
    }
    outbox.sort_by(|a, b| a.kind.cmp(&b.kind));
    let entity = match (opt_s(item, "entity_kind"), opt_s(item, "entity_id")) {
        (Some(k), Some(i)) => Some(EntityRef {
            kind: k.to_owned(),
            id: i.to_owned(),
        }),
        _ => None,
    };
    Ok(EventRecord {
        source: get_s(item, "source")?.to_owned(),
        function: get_s(item, "function")?.to_owned(),
        event_id: get_s(item, "event_id")?.to_owned(),
        event_type: get_s(item, "event_type")?.to_owned(),
        status: Outcome::parse_stored(get_s(item, "status")?)
            .ok_or_else(|| StoreError::Corrupt("event status".into()))?,
        reason: opt_s(item, "reason").map(str::to_owned),
        provider_ts: get_n(item, "provider_ts")?,
        received_at: get_n(item, SOURCE_SK)?,
        body_sha256: get_s(item, "body_sha256")?.to_owned(),
        entity,
        entity_sync: opt_s(item, "entity_sync").map(str::to_owned),
        outbox,
        expires_at: get_n(item, TTL_ATTR)?,
        delivery: match item.get("delivery") {
            Some(AttributeValue::M(m)) => Some(crate::verify::VerifiedMeta {
                delivery_id: opt_s(m, "id").map(str::to_owned),
                event_type: opt_s(m, "type").map(str::to_owned),
                timestamp: get_n(m, "ts").ok(),
            }),
            _ => None,
        },
    })
}

pub(super) fn parse_target(item: &Item, name: &str) -> Result<Option<SyncTarget>, StoreError> {
    opt_s(item, name)
        .map(|t| serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("{name}: {e}"))))
        .transpose()
}

pub(super) fn parse_entity(item: &Item) -> Result<EntityRecord, StoreError> {
    let attrs: StateAttrs = match item.get(ATTRS) {
        Some(AttributeValue::M(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), attr_to_json(v)))
            .collect(),
        _ => StateAttrs::new(),
    };
    let sync = match parse_target(item, SYNC_DESIRED)? {
        Some(desired) => Some(SyncRecord {
            name: get_s(item, SYNC_NAME)?.to_owned(),
            status: ActionStatus::parse(get_s(item, SYNC_STATUS)?)
                .ok_or_else(|| StoreError::Corrupt("sync status".into()))?,
            desired,
            synced: parse_target(item, SYNC_SYNCED)?,
            sent: parse_target(item, SYNC_SENT)?,
            seq: opt_n(item, SYNC_SEQ).unwrap_or(0),
            source: opt_s(item, SYNC_SOURCE).unwrap_or_default().to_owned(),
            synced_version: opt_n(item, SYNC_SYNCED_VERSION),
            attempt: opt_n(item, SYNC_ATTEMPT).unwrap_or(0),
            generation: opt_n(item, SYNC_GENERATION).unwrap_or(0),
            lease_until: opt_n(item, SYNC_LEASE_UNTIL),
            last_status: opt_n(item, SYNC_LAST_STATUS).unwrap_or(0),
            reason: opt_s(item, SYNC_REASON).map(str::to_owned),
        }),
        None => None,
    };
    Ok(EntityRecord {
        kind: get_s(item, KIND)?.to_owned(),
        id: get_s(item, ID)?.to_owned(),
        version: get_n(item, VERSION)?,
        last_event_id: get_s(item, LAST_EVENT)?.to_owned(),
        deleted: item
            .get(DELETED)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        attrs,
        sync,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_round_trip() {
        let pk = event_pk("stripe", "evt_1#odd");
        assert_eq!(
            parse_event_pk(&pk),
            Some(("stripe".into(), "evt_1#odd".into()))
        );
        assert_eq!(parse_event_pk("ENTITY#x#y"), None);
    }

    #[test]
    fn an_outbox_entry_of_an_earlier_version_reads_its_unless_deleted_as_a_guard() {
        let legacy: Item = HashMap::from([
            ("status".to_owned(), s("PENDING")),
            ("payload".to_owned(), s("{}")),
            ("unless_deleted_kind".to_owned(), s("user")),
            ("unless_deleted_id".to_owned(), s("u_1")),
        ]);
        let want = Some(Guard::UnlessDeleted(EntityRef {
            kind: "user".into(),
            id: "u_1".into(),
        }));
        assert_eq!(
            parse_outbox_entry("welcome", &legacy).map(|e| e.guard).ok(),
            Some(want.clone())
        );
        // Written now: the guard's JSON (which wins), and the legacy pair beside it.
        let mut current = legacy;
        current.insert(
            GUARD.to_owned(),
            s(serde_json::to_string(&want).unwrap_or_default()),
        );
        assert_eq!(
            parse_outbox_entry("welcome", &current)
                .map(|e| e.guard)
                .ok(),
            Some(want)
        );
        current.insert(GUARD.to_owned(), s("not json"));
        assert!(parse_outbox_entry("welcome", &current).is_err());
    }

    #[test]
    fn an_event_record_with_an_unknown_status_is_corrupt() {
        let mut item: Item = HashMap::from([
            ("source".to_owned(), s("stripe")),
            ("function".to_owned(), s("payment-events")),
            ("event_id".to_owned(), s("evt_1")),
            ("event_type".to_owned(), s("invoice.paid")),
            ("status".to_owned(), s("stale")),
            ("provider_ts".to_owned(), n(1)),
            (SOURCE_SK.to_owned(), n(2)),
            ("body_sha256".to_owned(), s("00")),
            (TTL_ATTR.to_owned(), n(3)),
        ]);
        assert_eq!(
            parse_event(&item).map(|e| e.status).ok(),
            Some(Outcome::Stale)
        );
        for unknown in ["duplicate", "ACCEPTED", "done"] {
            item.insert("status".to_owned(), s(unknown));
            assert!(
                matches!(parse_event(&item), Err(StoreError::Corrupt(_))),
                "{unknown}"
            );
        }
    }

    #[test]
    fn json_scalars_map_to_attributes_and_back() {
        for v in [
            serde_json::json!("a"),
            serde_json::json!(12),
            serde_json::json!(true),
            serde_json::Value::Null,
        ] {
            assert_eq!(attr_to_json(&json_to_attr(&v)), v);
        }
    }
}
