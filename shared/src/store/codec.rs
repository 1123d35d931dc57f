//! The item codec: how the store's records are laid out as DynamoDB items (attribute names,
//! scalars, the JSON texts of payloads, guards and sync targets) and read back.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::schema::{SOURCE_SK, TTL_ATTR};
use super::{
    ActionStatus, EntityRecord, EntityRef, EventRecord, Guard, OutboxEntry, Outcome, StateAttrs,
    StoreError, SyncRecord, SyncTarget,
};

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
pub(super) const GUARD: &str = "guard";

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Converts a JSON value to an attribute: scalars natively, nested values as their JSON text.
pub(super) fn json_to_attr(v: &serde_json::Value) -> AttributeValue {
    match v {
        serde_json::Value::Null => AttributeValue::Null(true),
        serde_json::Value::Bool(b) => AttributeValue::Bool(*b),
        serde_json::Value::Number(num) => AttributeValue::N(num.to_string()),
        serde_json::Value::String(st) => s(st.clone()),
        other => s(other.to_string()),
    }
}

pub(super) fn attr_to_json(v: &AttributeValue) -> serde_json::Value {
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
    use crate::store::schema::event_pk;

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
