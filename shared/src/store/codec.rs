//! The item codec: how the store's records are laid out as DynamoDB items and read back
//! (docs/DATA.md, "Item types").
//!
//! Invariants kept here:
//! - the stored format does not change: event records and bodies are written, and every record
//!   is read, through `serde_dynamo` with the attribute names, number and string shapes the
//!   hand-written codec used (payloads, guards and sync targets as JSON text; a mapping's
//!   attributes as scalars, nested values as JSON text). Golden tests below read and write an
//!   item in that format;
//! - records written by earlier versions still read: an outbox entry's `unless_deleted_kind`/`_id`
//!   is its guard, attributes added later default;
//! - attributes this code does not know are ignored; a record of another shape is
//!   [`StoreError::Corrupt`], whose reason never quotes a stored value;
//! - entity records are only ever written by update expressions (`record.rs`, `transition.rs`),
//!   never whole, so a concurrent transition is never overwritten.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::verify::VerifiedMeta;

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
/// An outbox entry's own check time, ms.
pub(super) const ENTRY_CHECK_AT: &str = "check_at";
/// An outbox entry's re-enqueues since its last claim.
pub(super) const ENTRY_REQUEUES: &str = "requeues";
/// An entity sync's re-enqueues since its last claim.
pub(super) const SYNC_REQUEUES: &str = "sync_requeues";
/// The state last maybe sent (written under the lease before its POST), and its sequence.
pub(super) const SYNC_SENT: &str = "sync_sent";
pub(super) const SYNC_SEQ: &str = "sync_seq";

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

/// An event record as stored (`EVENT#<source>#<id>` / `EVENT`), read and written whole through
/// `serde_dynamo`; lifecycle transitions touch it only with update expressions
/// (`transition.rs`). Attributes this code does not know are ignored on reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct EventItem {
    #[serde(default)]
    pub pk: String,
    #[serde(default)]
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_pk: Option<String>,
    pub received_at: i64,
    pub source: String,
    pub function: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub provider_ts: i64,
    pub body_sha256: String,
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_sync: Option<String>,
    /// Always written (a map, empty without event actions): transitions address its entries.
    #[serde(default)]
    pub outbox: BTreeMap<String, EntryItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_at: Option<i64>,
    /// The delivery's headers, kept for a replay (absent when the scheme gave none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryItem>,
}

/// The `delivery` map of an event record: the headers a scheme gave (id, event type, signed
/// time), so a replay describes the event as its delivery did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct DeliveryItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

impl DeliveryItem {
    /// The stored form of `meta`; `None` when it holds nothing (no empty map is written).
    pub fn of(meta: &VerifiedMeta) -> Option<Self> {
        let item = Self {
            id: meta.delivery_id.clone(),
            event_type: meta.event_type.clone(),
            ts: meta.timestamp,
        };
        (item != Self::default()).then_some(item)
    }
}

/// One entry of an event record's `outbox` map, keyed by action kind. The payload and the guard
/// are JSON texts; `unless_deleted_kind`/`_id` are the guard of records written before guards
/// (and still written beside an `unless_deleted` guard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct EntryItem {
    pub status: String,
    pub payload: String,
    #[serde(default)]
    pub attempt: i64,
    #[serde(default)]
    pub generation: i64,
    #[serde(default)]
    pub last_status: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless_deleted_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless_deleted_id: Option<String>,
}

/// An entity record as stored (`ENTITY#<kind>#<id>` / `STATE`), read through `serde_dynamo`.
/// It is written only by update expressions (the receiver's conditional change, the lifecycle
/// transitions), never whole.
#[derive(Debug, Clone, Deserialize)]
struct EntityItem {
    #[serde(rename = "_kind")]
    kind: String,
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_version")]
    version: i64,
    #[serde(rename = "_last_event_id")]
    last_event_id: String,
    #[serde(rename = "_deleted", default)]
    deleted: bool,
    #[serde(default)]
    attrs: StateAttrs,
    sync_name: Option<String>,
    sync_source: Option<String>,
    sync_status: Option<String>,
    sync_desired: Option<String>,
    sync_synced: Option<String>,
    sync_sent: Option<String>,
    sync_seq: Option<i64>,
    sync_synced_version: Option<i64>,
    sync_attempt: Option<i64>,
    sync_generation: Option<i64>,
    sync_lease_until: Option<i64>,
    sync_last_status: Option<i64>,
    sync_reason: Option<String>,
}

/// A raw body as stored (`EVENT#<source>#<id>` / `BODY`): the bytes exactly as received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct BodyItem {
    pub pk: String,
    pub sk: String,
    pub body: Bytes,
    pub expires_at: i64,
}

/// Bytes stored as a binary attribute (`B`), not as a list of numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a binary attribute")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_byte_buf(Visit)
    }
}

/// An item this code wrote, as DynamoDB takes it.
pub(super) fn to_item(value: &impl Serialize) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Permanent {
        op: "encode",
        message: e.to_string(),
    })
}

/// A stored item read as `T`; an item of another shape is [`StoreError::Corrupt`].
pub(super) fn from_item<T: serde::de::DeserializeOwned>(
    what: &str,
    item: &Item,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item.clone())
        .map_err(|e| StoreError::Corrupt(format!("{what}: {}", unquoted(&e.to_string()))))
}

/// A decoding error's text without the values it quotes: a malformed record's reason is logged,
/// and a stored value may be personal data (docs/ARCHITECTURE.md, invariant 6).
fn unquoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for ch in message.chars() {
        match (ch, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, true) => {}
            (ch, false) => out.push(ch),
        }
    }
    out
}

fn entry_record(kind: &str, entry: EntryItem) -> Result<OutboxEntry, StoreError> {
    let status = ActionStatus::parse(&entry.status)
        .ok_or_else(|| StoreError::Corrupt(format!("outbox status of {kind}")))?;
    let payload = serde_json::from_str(&entry.payload)
        .map_err(|e| StoreError::Corrupt(format!("outbox payload of {kind}: {e}")))?;
    let guard = match (
        entry.guard,
        entry.unless_deleted_kind,
        entry.unless_deleted_id,
    ) {
        (Some(g), _, _) => Some(
            serde_json::from_str(&g)
                .map_err(|e| StoreError::Corrupt(format!("outbox guard of {kind}: {e}")))?,
        ),
        (None, Some(kind), Some(id)) => Some(Guard::UnlessDeleted(EntityRef { kind, id })),
        _ => None,
    };
    Ok(OutboxEntry {
        kind: kind.to_owned(),
        status,
        payload,
        attempt: entry.attempt,
        generation: entry.generation,
        lease_until: entry.lease_until,
        last_status: entry.last_status,
        reason: entry.reason,
        guard,
    })
}

pub(super) fn parse_outbox_entry(kind: &str, entry: &Item) -> Result<OutboxEntry, StoreError> {
    entry_record(kind, from_item(&format!("outbox entry {kind}"), entry)?)
}

pub(super) fn parse_event(item: &Item) -> Result<EventRecord, StoreError> {
    let ev: EventItem = from_item("event record", item)?;
    let outbox = ev
        .outbox
        .into_iter()
        .map(|(kind, entry)| entry_record(&kind, entry))
        .collect::<Result<Vec<_>, _>>()?;
    let entity = match (ev.entity_kind, ev.entity_id) {
        (Some(kind), Some(id)) => Some(EntityRef { kind, id }),
        _ => None,
    };
    Ok(EventRecord {
        status: Outcome::parse_stored(&ev.status)
            .ok_or_else(|| StoreError::Corrupt("event status".into()))?,
        source: ev.source,
        function: ev.function,
        event_id: ev.event_id,
        event_type: ev.event_type,
        reason: ev.reason,
        provider_ts: ev.provider_ts,
        received_at: ev.received_at,
        body_sha256: ev.body_sha256,
        entity,
        entity_sync: ev.entity_sync,
        outbox,
        expires_at: ev.expires_at,
        delivery: ev.delivery.map(|d| VerifiedMeta {
            delivery_id: d.id,
            event_type: d.event_type,
            timestamp: d.ts,
        }),
    })
}

/// A sync target stored as JSON text.
fn target(name: &str, json: Option<&str>) -> Result<Option<SyncTarget>, StoreError> {
    json.map(|t| serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("{name}: {e}"))))
        .transpose()
}

pub(super) fn parse_target(item: &Item, name: &str) -> Result<Option<SyncTarget>, StoreError> {
    target(name, opt_s(item, name))
}

pub(super) fn parse_entity(item: &Item) -> Result<EntityRecord, StoreError> {
    let en: EntityItem = from_item("entity record", item)?;
    let sync = match target(SYNC_DESIRED, en.sync_desired.as_deref())? {
        Some(desired) => Some(SyncRecord {
            name: en
                .sync_name
                .ok_or_else(|| StoreError::Corrupt(format!("{SYNC_NAME} missing")))?,
            status: en
                .sync_status
                .as_deref()
                .and_then(ActionStatus::parse)
                .ok_or_else(|| StoreError::Corrupt("sync status".into()))?,
            desired,
            synced: target(SYNC_SYNCED, en.sync_synced.as_deref())?,
            sent: target(SYNC_SENT, en.sync_sent.as_deref())?,
            seq: en.sync_seq.unwrap_or(0),
            source: en.sync_source.unwrap_or_default(),
            synced_version: en.sync_synced_version,
            attempt: en.sync_attempt.unwrap_or(0),
            generation: en.sync_generation.unwrap_or(0),
            lease_until: en.sync_lease_until,
            last_status: en.sync_last_status.unwrap_or(0),
            reason: en.sync_reason,
        }),
        None => None,
    };
    Ok(EntityRecord {
        kind: en.kind,
        id: en.id,
        version: en.version,
        last_event_id: en.last_event_id,
        deleted: en.deleted,
        attrs: en.attrs,
        sync,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::schema::{SOURCE_SK, TTL_ATTR, event_pk};
    use sha2::Digest;

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
            "guard".to_owned(),
            s(serde_json::to_string(&want).unwrap_or_default()),
        );
        assert_eq!(
            parse_outbox_entry("welcome", &current)
                .map(|e| e.guard)
                .ok(),
            Some(want)
        );
        current.insert("guard".to_owned(), s("not json"));
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
    fn a_malformed_record_is_corrupt_without_quoting_its_values() {
        let item = item(&[
            ("_kind", s("user")),
            ("_id", s("u_1")),
            ("_version", s("jane@example.com")),
            ("_last_event_id", s("e")),
        ]);
        let Err(StoreError::Corrupt(why)) = parse_entity(&item) else {
            panic!("not corrupt");
        };
        assert!(!why.contains("jane"), "{why}");
        assert_eq!(unquoted(r#"a "b" c "d""#), r#"a "…" c "…""#);
    }

    #[test]
    fn json_scalars_map_to_attributes_and_back() {
        for v in [
            serde_json::json!("a"),
            serde_json::json!(12),
            serde_json::json!(-1.5),
            serde_json::json!(true),
            serde_json::Value::Null,
        ] {
            let back: serde_json::Value =
                serde_dynamo::from_attribute_value(json_to_attr(&v)).unwrap();
            assert_eq!(back, v);
        }
    }

    fn m(entries: &[(&str, AttributeValue)]) -> AttributeValue {
        AttributeValue::M(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    fn item(entries: &[(&str, AttributeValue)]) -> Item {
        match m(entries) {
            AttributeValue::M(item) => item,
            _ => unreachable!(),
        }
    }

    /// An event record exactly as the hand-written codec before `serde_dynamo` wrote it (one
    /// guarded and one plain event action, a sync marked): the golden item of docs/DATA.md.
    fn todays_event_item() -> Item {
        let guard = r#"{"guard":"unless_deleted","kind":"user","id":"u_1"}"#;
        item(&[
            ("pk", s("EVENT#users#msg_1")),
            ("sk", s("EVENT")),
            (
                "source_pk",
                s(crate::store::schema::source_pk("users", "msg_1")),
            ),
            ("received_at", n(1_700_000_000_000)),
            ("source", s("users")),
            ("function", s("user-events")),
            ("event_id", s("msg_1")),
            ("event_type", s("user.created")),
            ("status", s("accepted")),
            ("provider_ts", n(1_699_999_999_000)),
            ("body_sha256", s(hex::encode(sha2::Sha256::digest(b"{}")))),
            ("expires_at", n(1_700_000_000 + 86_400)),
            ("rev", n(0)),
            ("entity_kind", s("user")),
            ("entity_id", s("u_1")),
            ("entity_sync", s("crm")),
            (
                "outbox",
                m(&[
                    (
                        "welcome",
                        m(&[
                            ("status", s("PENDING")),
                            ("payload", s(r#"{"email":"a@example.com"}"#)),
                            ("attempt", n(0)),
                            ("generation", n(0)),
                            ("last_status", n(0)),
                            ("check_at", n(1_700_000_300_000)),
                            ("guard", s(guard)),
                            ("unless_deleted_kind", s("user")),
                            ("unless_deleted_id", s("u_1")),
                        ]),
                    ),
                    (
                        "analytics",
                        m(&[
                            ("status", s("PENDING")),
                            ("payload", s("{}")),
                            ("attempt", n(0)),
                            ("generation", n(0)),
                            ("last_status", n(0)),
                            ("check_at", n(1_700_000_300_000)),
                        ]),
                    ),
                ]),
            ),
            (
                "pending_pk",
                s(crate::store::schema::pending_pk("EVENT#users#msg_1")),
            ),
            ("next_check_at", n(1_700_000_300_000)),
        ])
    }

    #[test]
    fn an_event_record_in_todays_format_reads_and_is_written_byte_for_byte() {
        use crate::store::{Action, ChangeMode, Effects, NewEvent, StateChange, SyncTarget};
        let golden = todays_event_item();
        let ev = parse_event(&golden).unwrap();
        assert_eq!(ev.status, Outcome::Accepted);
        assert_eq!(ev.received_at, 1_700_000_000_000);
        assert_eq!(ev.entity_sync.as_deref(), Some("crm"));
        assert_eq!(
            ev.outbox
                .iter()
                .map(|o| o.kind.as_str())
                .collect::<Vec<_>>(),
            ["analytics", "welcome"]
        );
        assert_eq!(
            ev.outbox[1].guard,
            Some(Guard::UnlessDeleted(EntityRef {
                kind: "user".into(),
                id: "u_1".into()
            }))
        );
        assert_eq!(
            ev.outbox[1].payload,
            serde_json::json!({"email": "a@example.com"})
        );

        // The writer makes the same item, attribute for attribute.
        let store = crate::store::EventStore::detached(
            "t",
            1,
            crate::clock::FixedClock::at_secs(1_700_000_000),
        );
        let event = NewEvent {
            source: "users",
            function: "user-events",
            event_id: "msg_1",
            event_type: "user.created",
            provider_ts: 1_699_999_999_000,
            body: b"{}",
            delivery: None,
        };
        let change = StateChange {
            entity_kind: "user".into(),
            entity_id: "u_1".into(),
            version: 1,
            mode: ChangeMode::Upsert,
            attrs: StateAttrs::new(),
            sync: Some(SyncTarget {
                name: "crm".into(),
                action: "crm".into(),
                payload: serde_json::json!({}),
                baseline: false,
            }),
        };
        let effects = Effects::apply(
            Some(change),
            vec![
                Action::new("welcome", serde_json::json!({"email": "a@example.com"}))
                    .unless_deleted("user", "u_1"),
                Action::new("analytics", serde_json::json!({})),
            ],
        );
        let plan = store.plan(&event, &effects).unwrap();
        assert_eq!(plan.event.item(), &golden);
        let body = plan.body.unwrap();
        let body = body.item();
        assert_eq!(
            body.get("body"),
            Some(&AttributeValue::B(b"{}".to_vec().into()))
        );
        assert_eq!(body.get("expires_at"), Some(&n(1_700_000_000 + 86_400)));
    }

    #[test]
    fn delivery_headers_are_a_map_of_what_was_given_and_read_back() {
        use crate::store::{Effects, NewEvent};
        let store = crate::store::EventStore::detached(
            "t",
            1,
            crate::clock::FixedClock::at_secs(1_700_000_000),
        );
        let given = VerifiedMeta {
            delivery_id: Some("d-1".into()),
            timestamp: None,
            event_type: Some("push".into()),
        };
        let mut event = NewEvent {
            source: "github",
            function: "repo-events",
            event_id: "push:abc",
            event_type: "push",
            provider_ts: 1,
            body: b"{}",
            delivery: Some(&given),
        };
        let plan = store.plan(&event, &Effects::Ignored).unwrap();
        assert_eq!(
            plan.event.item().get("delivery"),
            Some(&m(&[("id", s("d-1")), ("type", s("push"))])),
            "no ts: the scheme signed none"
        );
        assert_eq!(
            parse_event(plan.event.item()).unwrap().delivery.as_ref(),
            event.delivery
        );
        // Nothing given, nothing written: no empty map.
        let empty = VerifiedMeta::default();
        event.delivery = Some(&empty);
        let plan = store.plan(&event, &Effects::Ignored).unwrap();
        assert_eq!(plan.event.item().get("delivery"), None);
        assert_eq!(parse_event(plan.event.item()).unwrap().delivery, None);
    }

    #[test]
    fn an_entity_record_in_todays_format_reads() {
        let sync =
            r#"{"name":"access","action":"provision_access","payload":{"a":1},"baseline":false}"#;
        let entity = item(&[
            ("pk", s("ENTITY#subscription#sub_1")),
            ("sk", s("STATE")),
            ("_kind", s("subscription")),
            ("_id", s("sub_1")),
            ("_version", n(5)),
            ("_last_event_id", s("evt_5")),
            ("_updated_at", n(9)),
            (
                "attrs",
                m(&[
                    ("status", s("active")),
                    ("seats", n(3)),
                    ("trial", AttributeValue::Bool(false)),
                    ("note", AttributeValue::Null(true)),
                    ("items", s("[1,2]")),
                ]),
            ),
            ("sync_name", s("access")),
            ("sync_source", s("stripe")),
            ("sync_desired", s(sync)),
            ("sync_status", s("RUNNING")),
            ("sync_attempt", n(2)),
            ("sync_generation", n(1)),
            ("sync_lease", s("abc")),
            ("sync_lease_until", n(77)),
            ("sync_sent", s(sync)),
            ("sync_seq", n(4)),
            ("rev", n(12)),
        ]);
        let en = parse_entity(&entity).unwrap();
        assert_eq!((en.version, en.deleted), (5, false));
        assert_eq!(en.attrs["seats"], serde_json::json!(3));
        assert_eq!(en.attrs["trial"], serde_json::json!(false));
        assert_eq!(en.attrs["note"], serde_json::Value::Null);
        assert_eq!(en.attrs["items"], serde_json::json!("[1,2]"));
        let sy = en.sync.unwrap();
        assert_eq!(sy.status, ActionStatus::Running);
        assert_eq!((sy.seq, sy.attempt, sy.generation), (4, 2, 1));
        assert_eq!(sy.lease_until, Some(77));
        assert_eq!(sy.sent.as_ref(), Some(&sy.desired));
        assert_eq!(sy.synced, None);
        assert_eq!(sy.source, "stripe");

        let tomb = item(&[
            ("_kind", s("user")),
            ("_id", s("u_1")),
            ("_version", n(1)),
            ("_last_event_id", s("e")),
            ("_deleted", AttributeValue::Bool(true)),
        ]);
        let en = parse_entity(&tomb).unwrap();
        assert!(en.deleted && en.attrs.is_empty() && en.sync.is_none());
        assert!(parse_entity(&item(&[("_kind", s("user"))])).is_err());
    }
}
