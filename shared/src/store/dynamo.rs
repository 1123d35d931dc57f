//! DynamoDB implementation of the event store. See the module above for the invariants.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use sha2::{Digest, Sha256};

use super::schema::{
    ENTITY_SK, EVENT_SK, PENDING_INDEX, PENDING_PK, PENDING_SK, PENDING_VALUE, PK, SK, SOURCE_PK,
    SOURCE_SK, TTL_ATTR, entity_pk, event_pk,
};
use super::{
    ActionStatus, ChangeMode, Effects, EntityRecord, EventRecord, FollowUp, MarkResult, NewEvent,
    OutboxEntry, Outcome, StateAttrs, StateChange, StoreError,
};
use crate::clock::SharedClock;

/// Largest raw body kept on the event record: DynamoDB items are limited to 400 KB, and the
/// record needs room for its other attributes and outbox.
pub const MAX_STORED_BODY: usize = 300 * 1024;

/// How often a transaction that lost a race (`TransactionConflict`) is tried again before the
/// request fails with a 503 and the sender retries.
const CONFLICT_RETRIES: u32 = 3;

// Bookkeeping attributes of entity records. Mapping attributes are stored beside them under their
// own names; names starting with `_` are reserved for these.
const VERSION: &str = "_version";
const LAST_EVENT: &str = "_last_event_id";
const DELETED: &str = "_deleted";
const KIND: &str = "_kind";
const ID: &str = "_id";
const UPDATED_AT: &str = "_updated_at";

/// The DynamoDB writes that record one event, built but not yet sent.
#[derive(Debug, Clone)]
pub struct RecordPlan {
    put: Put,
    update: Option<Update>,
    now: i64,
    outcome: Outcome,
}

/// The event store on one DynamoDB table. Cheap to clone; built once per cold start.
#[derive(Debug, Clone)]
pub struct EventStore {
    client: Client,
    table: String,
    retention_secs: i64,
    clock: SharedClock,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn dynamo_err<E>(op: &'static str, err: SdkError<E>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::Dynamo {
        op,
        message: aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
    }
}

/// Converts a JSON scalar to an attribute; nested values are stored as their JSON text.
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

type Item = HashMap<String, AttributeValue>;

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing or not a string")))
}

fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing or not a number")))
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
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Records `event` with its `effects` in one transaction and says what happened.
    ///
    /// One DynamoDB call for a new, duplicate or ignored event; a stale event costs a second call
    /// (the event is then recorded as `stale`, without state change or follow-ups).
    pub async fn record(
        &self,
        event: &NewEvent<'_>,
        effects: &Effects,
    ) -> Result<Outcome, StoreError> {
        let plan = self.plan(event, effects)?;
        self.commit(event, plan).await
    }

    /// Builds the DynamoDB request for `event` without sending it: the CPU part of
    /// [`EventStore::record`], separate so it can be measured on its own.
    pub fn plan(&self, event: &NewEvent<'_>, effects: &Effects) -> Result<RecordPlan, StoreError> {
        let now = self.clock.now_millis();
        if effects.ignored {
            let put = self.event_put(event, "ignored", now, &Effects::default())?;
            return Ok(RecordPlan {
                put,
                update: None,
                now,
                outcome: Outcome::Ignored,
            });
        }
        let followups: Vec<FollowUp> = effects
            .actions
            .iter()
            .map(|a| FollowUp {
                source: event.source.to_owned(),
                event_id: event.event_id.to_owned(),
                action: a.kind.clone(),
            })
            .collect();
        let put = self.event_put(event, "accepted", now, effects)?;
        let update = effects
            .change
            .as_ref()
            .map(|change| self.change_update(change, event.event_id, now))
            .transpose()?;
        Ok(RecordPlan {
            put,
            update,
            now,
            outcome: Outcome::Accepted(followups),
        })
    }

    /// Sends a [`RecordPlan`]: a conditional `PutItem` when there is no state change, else one
    /// `TransactWriteItems`, told apart by its cancellation reasons.
    pub async fn commit(
        &self,
        event: &NewEvent<'_>,
        plan: RecordPlan,
    ) -> Result<Outcome, StoreError> {
        let RecordPlan {
            put,
            update,
            now,
            outcome,
        } = plan;
        let Some(update) = update else {
            return self.put_once(put, outcome).await;
        };
        let mut attempt = 0;
        loop {
            let res = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put.clone()).build())
                .transact_items(TransactWriteItem::builder().update(update.clone()).build())
                .send()
                .await;
            let err = match res {
                Ok(_) => return Ok(outcome),
                Err(e) => e,
            };
            let codes = cancellation_codes(&err);
            match (
                codes.first().map(String::as_str),
                codes.get(1).map(String::as_str),
            ) {
                (Some("ConditionalCheckFailed"), _) => return Ok(Outcome::Duplicate),
                (_, Some("ConditionalCheckFailed")) => {
                    let stale = self.event_put(event, "stale", now, &Effects::default())?;
                    return self.put_once(stale, Outcome::Stale).await;
                }
                _ if codes.iter().any(|c| c == "TransactionConflict")
                    && attempt < CONFLICT_RETRIES =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                _ => return Err(dynamo_err("TransactWriteItems", err)),
            }
        }
    }

    /// Puts an event record alone, if absent.
    async fn put_once(&self, put: Put, outcome: Outcome) -> Result<Outcome, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item().clone()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(outcome),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(Outcome::Duplicate)
            }
            Err(e) => Err(dynamo_err("PutItem", e)),
        }
    }

    fn event_put(
        &self,
        event: &NewEvent<'_>,
        status: &str,
        now: i64,
        effects: &Effects,
    ) -> Result<Put, StoreError> {
        let mut item: Item = HashMap::new();
        item.insert(PK.into(), s(event_pk(event.source, event.event_id)));
        item.insert(SK.into(), s(EVENT_SK));
        item.insert(SOURCE_PK.into(), s(event.source));
        item.insert(SOURCE_SK.into(), n(now));
        item.insert("function".into(), s(event.function));
        item.insert("event_id".into(), s(event.event_id));
        item.insert("event_type".into(), s(event.event_type));
        item.insert("status".into(), s(status));
        item.insert("provider_ts".into(), n(event.provider_ts));
        item.insert(
            "body_sha256".into(),
            s(hex::encode(Sha256::digest(event.body))),
        );
        item.insert(TTL_ATTR.into(), n(now / 1000 + self.retention_secs));
        if event.body.len() <= MAX_STORED_BODY {
            item.insert("body".into(), AttributeValue::B(Blob::new(event.body)));
        }
        let outbox: Item = effects
            .actions
            .iter()
            .map(|a| {
                let entry = HashMap::from([
                    ("status".to_owned(), s(ActionStatus::Pending.as_str())),
                    ("payload".to_owned(), s(a.payload.to_string())),
                ]);
                (a.kind.clone(), AttributeValue::M(entry))
            })
            .collect();
        if !outbox.is_empty() {
            item.insert(PENDING_PK.into(), s(PENDING_VALUE));
            item.insert(PENDING_SK.into(), n(now));
        }
        item.insert("outbox".into(), AttributeValue::M(outbox));
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn change_update(
        &self,
        change: &StateChange,
        event_id: &str,
        now: i64,
    ) -> Result<Update, StoreError> {
        let mut names = HashMap::from([
            ("#v".to_owned(), VERSION.to_owned()),
            ("#e".to_owned(), LAST_EVENT.to_owned()),
            ("#d".to_owned(), DELETED.to_owned()),
            ("#k".to_owned(), KIND.to_owned()),
            ("#i".to_owned(), ID.to_owned()),
            ("#u".to_owned(), UPDATED_AT.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":v".to_owned(), n(change.version)),
            (":e".to_owned(), s(event_id)),
            (":k".to_owned(), s(&change.entity_kind)),
            (":i".to_owned(), s(&change.entity_id)),
            (":u".to_owned(), n(now)),
        ]);
        let mut set = vec!["#v = :v", "#e = :e", "#k = :k", "#i = :i", "#u = :u"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        if change.mode == ChangeMode::Tombstone {
            values.insert(":d".into(), AttributeValue::Bool(true));
            set.push("#d = :d".into());
        } else {
            for (idx, (name, value)) in change
                .attrs
                .iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .enumerate()
            {
                names.insert(format!("#a{idx}"), name.clone());
                values.insert(format!(":a{idx}"), json_to_attr(value));
                set.push(format!("#a{idx} = :a{idx}"));
            }
        }
        Update::builder()
            .table_name(&self.table)
            .key(PK, s(entity_pk(&change.entity_kind, &change.entity_id)))
            .key(SK, s(ENTITY_SK))
            .update_expression(format!("SET {}", set.join(", ")))
            // Applies when the entity is new, or alive and older: (version, event id) strictly
            // smaller than ours. A tombstone is final.
            .condition_expression(
                "attribute_not_exists(pk) OR (attribute_not_exists(#d) AND (#v < :v OR (#v = :v AND #e < :e)))",
            )
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// A strongly consistent read of one item.
    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
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

    /// Reads one event record.
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

    /// Reads one entity's state.
    pub async fn get_entity(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<EntityRecord>, StoreError> {
        let Some(item) = self.get_item(entity_pk(kind, id), ENTITY_SK).await? else {
            return Ok(None);
        };
        let attrs: StateAttrs = item
            .iter()
            .filter(|(k, _)| !k.starts_with('_') && *k != PK && *k != SK)
            .map(|(k, v)| (k.clone(), attr_to_json(v)))
            .collect();
        Ok(Some(EntityRecord {
            kind: get_s(&item, KIND)?.to_owned(),
            id: get_s(&item, ID)?.to_owned(),
            version: get_n(&item, VERSION)?,
            last_event_id: get_s(&item, LAST_EVENT)?.to_owned(),
            deleted: item
                .get(DELETED)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            attrs,
        }))
    }

    /// Moves one follow-up from PENDING to `status`, conditionally, so that it is marked once.
    /// When the outbox then holds nothing pending, the event leaves the pending index.
    pub async fn mark_action(
        &self,
        f: &FollowUp,
        status: ActionStatus,
    ) -> Result<MarkResult, StoreError> {
        let pk = event_pk(&f.source, &f.event_id);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(EVENT_SK))
            .update_expression("SET outbox.#k.#st = :new, outbox.#k.finished_at = :now")
            .condition_expression("outbox.#k.#st = :pending")
            .expression_attribute_names("#k", &f.action)
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":new", s(status.as_str()))
            .expression_attribute_values(":pending", s(ActionStatus::Pending.as_str()))
            .expression_attribute_values(":now", n(self.clock.now_millis()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                return Ok(MarkResult::AlreadyFinished);
            }
            Err(e) => return Err(dynamo_err("UpdateItem", e)),
        };
        let still_pending = out
            .attributes
            .as_ref()
            .map(parse_event)
            .transpose()?
            .is_some_and(|ev| ev.outbox.iter().any(|o| o.status == ActionStatus::Pending));
        if !still_pending {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(pk))
                .key(SK, s(EVENT_SK))
                .update_expression("REMOVE #p, #ps")
                .expression_attribute_names("#p", PENDING_PK)
                .expression_attribute_names("#ps", PENDING_SK)
                .send()
                .await
                .map_err(|e| dynamo_err("UpdateItem", e))?;
        }
        Ok(MarkResult::Marked)
    }

    /// Events whose outbox has been pending since before `cutoff_ms`, oldest first, at most `limit`.
    pub async fn pending_before(
        &self,
        cutoff_ms: i64,
        limit: i32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("#p = :p AND #ps < :cutoff")
            .expression_attribute_names("#p", PENDING_PK)
            .expression_attribute_names("#ps", PENDING_SK)
            .expression_attribute_values(":p", s(PENDING_VALUE))
            .expression_attribute_values(":cutoff", n(cutoff_ms))
            .limit(limit)
            .send()
            .await
            .map_err(|e| dynamo_err("Query", e))?;
        event_keys(out.items())
    }

    /// Moves a pending event's place in the pending index to now, after re-enqueueing it, so the
    /// reconciler waits a full grace period before trying it again. No-op once nothing is pending.
    pub async fn touch_pending(&self, source: &str, event_id: &str) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(event_pk(source, event_id)))
            .key(SK, s(EVENT_SK))
            .update_expression("SET #ps = :now")
            .condition_expression("attribute_exists(#p)")
            .expression_attribute_names("#p", PENDING_PK)
            .expression_attribute_names("#ps", PENDING_SK)
            .expression_attribute_values(":now", n(self.clock.now_millis()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(dynamo_err("UpdateItem", e)),
        }
    }

    /// The most recent events of `source`, newest first.
    pub async fn recent(
        &self,
        source: &str,
        limit: i32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(super::schema::SOURCE_INDEX)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", SOURCE_PK)
            .expression_attribute_values(":s", s(source))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| dynamo_err("Query", e))?;
        event_keys(out.items())
    }
}

/// The (source, event id) of each event item an index query returned.
fn event_keys(items: &[Item]) -> Result<Vec<(String, String)>, StoreError> {
    items
        .iter()
        .map(|item| {
            let pk = get_s(item, PK)?;
            parse_event_pk(pk).ok_or_else(|| StoreError::Corrupt(format!("event key {pk:?}")))
        })
        .collect()
}

/// `EVENT#<source>#<event id>` → (source, event id). Sources never contain `#`.
fn parse_event_pk(pk: &str) -> Option<(String, String)> {
    let rest = pk.strip_prefix("EVENT#")?;
    let (source, id) = rest.split_once('#')?;
    Some((source.to_owned(), id.to_owned()))
}

fn cancellation_codes(err: &SdkError<TransactWriteItemsError>) -> Vec<String> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None").to_owned())
            .collect(),
        Some(other) => other.code().map(|c| vec![c.to_owned()]).unwrap_or_default(),
        None => Vec::new(),
    }
}

fn parse_event(item: &Item) -> Result<EventRecord, StoreError> {
    let mut outbox = Vec::new();
    if let Some(AttributeValue::M(entries)) = item.get("outbox") {
        for (kind, entry) in entries {
            let AttributeValue::M(entry) = entry else {
                return Err(StoreError::Corrupt(format!("outbox entry {kind}")));
            };
            let status = ActionStatus::parse(get_s(entry, "status")?)
                .ok_or_else(|| StoreError::Corrupt(format!("outbox status of {kind}")))?;
            let payload = serde_json::from_str(get_s(entry, "payload")?)
                .map_err(|e| StoreError::Corrupt(format!("outbox payload of {kind}: {e}")))?;
            outbox.push(OutboxEntry {
                kind: kind.clone(),
                status,
                payload,
            });
        }
    }
    outbox.sort_by(|a, b| a.kind.cmp(&b.kind));
    Ok(EventRecord {
        source: get_s(item, SOURCE_PK)?.to_owned(),
        function: get_s(item, "function")?.to_owned(),
        event_id: get_s(item, "event_id")?.to_owned(),
        event_type: get_s(item, "event_type")?.to_owned(),
        status: get_s(item, "status")?.to_owned(),
        provider_ts: get_n(item, "provider_ts")?,
        received_at: get_n(item, SOURCE_SK)?,
        body_sha256: get_s(item, "body_sha256")?.to_owned(),
        body: item
            .get("body")
            .and_then(|b| b.as_b().ok())
            .map(|b| b.as_ref().to_vec()),
        outbox,
        expires_at: get_n(item, TTL_ATTR)?,
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
