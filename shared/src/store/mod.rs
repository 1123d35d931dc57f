//! The DynamoDB event store: one table, one transaction per event, and the leased lifecycle of
//! every follow-up.
//!
//! Invariants kept here (docs/DATA.md; the follow-ups' lifecycle: docs/FOLLOWUPS.md):
//! - an event is recorded with ONE `TransactWriteItems` holding the event record (condition
//!   `attribute_not_exists(pk)`), its raw body (an item of its own, so marks and claims never
//!   read or rewrite it), the entity's state change (condition on ordering) and the outbox of
//!   event actions; nothing is ever half-written;
//! - an older event never overwrites newer state: an entity keeps the `(version, event_id)` of the
//!   last event applied, and a change applies only when its own pair is strictly greater
//!   (versions compared first, then event ids, so ties resolve the same way whatever the arrival
//!   order). A tombstone is final whatever its version, and erases the entity's attributes;
//! - a stale event still gets its event actions (they are facts about the event), never a state
//!   change; every applied change marks the entity's sync PENDING, and the sync converges on the
//!   entity's final state;
//! - a mapping's attributes live in a map of their own (`attrs`), so no mapping can overwrite
//!   keys, index attributes or the TTL attribute;
//! - only the holder of a follow-up's lease may POST it or mark it DONE or FAILED; every
//!   transition is one conditional update, and recognises its own earlier success when the SDK
//!   retries it after a lost answer;
//! - a sync records the state it is about to POST as *maybe sent* (`sync_sent`, with the
//!   sequence `sync_seq` of its `Idempotency-Key`) under its lease before the POST, so a POST
//!   without a clear answer is never taken for "never sent" (docs/FOLLOWUPS.md, "State syncs");
//! - an event action's [`Guard`] is stored with it and read when it runs.
//!
//! Each step of the flow has its file: `record.rs` plans an event's writes (the event record, its
//! body, the entity's change), `commit.rs` sends them as the one transaction and tells its
//! cancellation reasons apart, `codec.rs` is the item layout (docs/DATA.md), `reads.rs` the
//! strongly consistent reads and the by-source listing, `transition.rs` the one conditional
//! transition of a follow-up that `followups.rs` claims and marks with, `reconcile.rs` the
//! reconciler's pages, `admin.rs` the operator's listings; `ordering.rs` states the ordering rule
//! without I/O. `api.rs` is the [`Store`] trait the receiver and the worker take; `memory.rs`
//! its in-memory double ([`memory::MemoryStore`]), with injected faults, for unit tests.

mod admin;
mod api;
mod codec;
mod commit;
mod dynamo;
mod followups;
pub mod memory;
pub mod ordering;
mod reads;
mod reconcile;
mod record;
pub mod schema;
mod transition;

pub use crate::followup::{FollowUp, SyncTarget};
pub use admin::{FollowupFilter, FollowupPage, FollowupView, PageKey};
pub use api::{SharedStore, Store, StoreFuture};
pub use commit::Committed;
pub use dynamo::EventStore;
pub use followups::{ClaimedAction, ClaimedSync, Finish, Marked};
pub use reconcile::{
    CORRUPT_RETRY_MS, REQUEUE_CAP_MS, ReconcilePage, ShardCursor, requeue_delay_ms,
};
pub use record::{MAX_STORED_BODY, RecordPlan};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An event action: a fact about one event, run exactly once per distinct event, whatever the
/// order of arrival (a stale event still gets its event actions).
///
/// Its `kind` names the action and selects its target (`ACTION_<KIND>_URL`); an event holds at
/// most one action of each kind. An action never grants or revokes anything an entity's sync
/// decides (docs/FOLLOWUPS.md, "One entity decides").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ActionRepr")]
pub struct Action {
    /// Action kind, lower-case letters, digits and `_` (e.g. `receipt`, `notify_failure`).
    pub kind: String,
    /// JSON payload posted to the action's target.
    pub payload: serde_json::Value,
    /// When set, read when the action runs: an action whose guard fails ends SKIPPED with the
    /// guard's reason instead of being sent (no welcome to a user erased meanwhile, no alert
    /// about an invoice paid meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
}

/// How an [`Action`] is read: with its guard, or with the `unless_deleted` entity of earlier
/// versions.
#[derive(Deserialize)]
struct ActionRepr {
    kind: String,
    payload: serde_json::Value,
    #[serde(default)]
    guard: Option<Guard>,
    #[serde(default)]
    unless_deleted: Option<EntityRef>,
}

impl From<ActionRepr> for Action {
    fn from(r: ActionRepr) -> Self {
        Self {
            kind: r.kind,
            payload: r.payload,
            guard: r.guard.or(r.unless_deleted.map(Guard::UnlessDeleted)),
        }
    }
}

impl Action {
    /// An action of `kind` with `payload`.
    pub fn new(kind: &str, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.to_owned(),
            payload,
            guard: None,
        }
    }

    /// The same action, not run once the entity `kind`/`id` is deleted.
    #[must_use]
    pub fn unless_deleted(mut self, kind: &str, id: &str) -> Self {
        self.guard = Some(Guard::UnlessDeleted(EntityRef {
            kind: kind.to_owned(),
            id: id.to_owned(),
        }));
        self
    }

    /// The same action, not run when, by the time it runs, attribute `attr` of the entity
    /// `kind`/`id` equals `equals` (e.g. an alert about an invoice's failed payment, not sent
    /// once the invoice is paid): it ends SKIPPED with `reason`.
    #[must_use]
    pub fn unless_attr(
        mut self,
        kind: &str,
        id: &str,
        attr: &str,
        equals: serde_json::Value,
        reason: &str,
    ) -> Self {
        self.guard = Some(Guard::UnlessAttr {
            entity: EntityRef {
                kind: kind.to_owned(),
                id: id.to_owned(),
            },
            attr: attr.to_owned(),
            equals,
            reason: reason.to_owned(),
        });
        self
    }
}

/// A condition an event action re-checks against an entity's state when it runs: an event
/// action is a fact about its event, but some facts stop being worth telling once the entity
/// moved on. A failed guard ends the action SKIPPED with the guard's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "guard")]
pub enum Guard {
    /// Not run once the entity is deleted (reason: `entity deleted`).
    UnlessDeleted(EntityRef),
    /// Not run while the entity's attribute `attr` equals `equals`.
    UnlessAttr {
        /// The entity read.
        entity: EntityRef,
        /// The attribute compared (a key of the entity's `attrs`).
        attr: String,
        /// The value that makes the action pointless.
        equals: serde_json::Value,
        /// Why it is skipped then, short and log-safe, e.g. `invoice paid meanwhile`.
        reason: String,
    },
}

impl Guard {
    /// The entity this guard reads.
    pub fn entity(&self) -> &EntityRef {
        match self {
            Self::UnlessDeleted(e) | Self::UnlessAttr { entity: e, .. } => e,
        }
    }

    /// Why the action must be skipped given the entity as it is now (`None`: not recorded), or
    /// `None` when it may run.
    pub fn fails(&self, entity: Option<&EntityRecord>) -> Option<String> {
        let entity = entity?;
        match self {
            Self::UnlessDeleted(_) => entity.deleted.then(|| "entity deleted".to_owned()),
            Self::UnlessAttr {
                attr,
                equals,
                reason,
                ..
            } => (entity.attrs.get(attr) == Some(equals)).then(|| reason.clone()),
        }
    }
}

/// One entity, by kind and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntityRef {
    /// Entity kind, e.g. `subscription`.
    pub kind: String,
    /// Entity id within its kind.
    pub id: String,
}

/// A scalar attribute of an entity's state.
pub type StateAttrs = BTreeMap<String, serde_json::Value>;

/// How a state change treats the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeMode {
    /// Create or replace the entity's attributes (ordering applies).
    Upsert,
    /// Mark the entity deleted, for good, whatever its version: its attributes are erased and
    /// later changes are stale.
    Tombstone,
}

/// The state change one event makes to one entity, applied only if it is newer than the last.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// Entity kind, e.g. `customer`, `user`.
    pub entity_kind: String,
    /// Entity id within its kind, e.g. a Stripe customer id.
    pub entity_id: String,
    /// Ordering version: the provider's timestamp of this state, in milliseconds.
    pub version: i64,
    /// Upsert or tombstone.
    pub mode: ChangeMode,
    /// The entity's attributes at this version (replaced whole; ignored for a tombstone).
    pub attrs: StateAttrs,
    /// The sync this entity keeps, with its desired target state at this version.
    pub sync: Option<SyncTarget>,
}

/// The event being recorded: what the receiver learnt from the verified delivery.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// Sender, e.g. `stripe`, `users`.
    pub source: &'a str,
    /// The function that received it, e.g. `payment-events`.
    pub function: &'a str,
    /// The provider's stable event/delivery id (same on redelivery).
    pub event_id: &'a str,
    /// Provider event type, e.g. `invoice.paid`.
    pub event_type: &'a str,
    /// Provider timestamp of the event, milliseconds since the epoch.
    pub provider_ts: i64,
    /// The raw verified body (kept in an item of its own when it fits the item size limit).
    pub body: &'a [u8],
    /// The delivery's headers (id, event type, signed time), kept on the record for a replay.
    pub delivery: Option<&'a crate::verify::VerifiedMeta>,
}

/// What a receiver's mapping decided for one event: ignored, or a state change and event
/// actions to apply. An ignored event carries neither, by construction.
#[derive(Debug, Clone, PartialEq)]
pub enum Effects {
    /// The event type is not handled by this function: recorded as `ignored`, nothing applied.
    Ignored,
    /// The event is handled: recorded as `accepted` (or `stale`).
    Apply {
        /// The state change, if the event describes one.
        change: Option<StateChange>,
        /// Event actions to run once the event is durable.
        actions: Vec<Action>,
    },
}

impl Effects {
    /// A handled event's `change` and `actions`.
    pub fn apply(change: Option<StateChange>, actions: Vec<Action>) -> Self {
        Self::Apply { change, actions }
    }

    /// The state change to apply (`None` for an ignored event, or one that changes no state).
    pub fn change(&self) -> Option<&StateChange> {
        match self {
            Self::Ignored => None,
            Self::Apply { change, .. } => change.as_ref(),
        }
    }

    /// The event actions to run (none for an ignored event).
    pub fn actions(&self) -> &[Action] {
        match self {
            Self::Ignored => &[],
            Self::Apply { actions, .. } => actions,
        }
    }

    /// True when the event type is not handled: recorded as `ignored`.
    pub fn is_ignored(&self) -> bool {
        matches!(self, Self::Ignored)
    }
}

/// The outcome of recording an event; all but `Duplicate` are also the stored record's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// New event: state applied (if any), its follow-ups PENDING.
    Accepted,
    /// Already recorded: nothing written.
    Duplicate,
    /// Recorded, but older than the entity's state: no state change; event actions PENDING.
    Stale,
    /// Recorded as an event type this function does not handle.
    Ignored,
    /// A verified body that does not fit the model (or that the store refused for good):
    /// recorded with its raw body and the reason, replayable once the model is fixed.
    Quarantined,
}

impl Outcome {
    /// The `status` word of the HTTP answer and of the stored record.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
            Self::Quarantined => "quarantined",
        }
    }

    /// Parses a stored record's `status`: `accepted`, `stale`, `ignored` or `quarantined`
    /// (`duplicate` is an answer, never stored).
    pub fn parse_stored(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => Self::Accepted,
            "stale" => Self::Stale,
            "ignored" => Self::Ignored,
            "quarantined" => Self::Quarantined,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.status())
    }
}

/// Which final states an operator's retry of an event action resets
/// ([`EventStore::retry_action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryScope {
    /// FAILED or SKIPPED only: what never reached its target, or was not sent.
    FailedOrSkipped,
    /// DONE too: the target gets one more POST, with a new `Idempotency-Key`
    /// (`hookline followups retry --force`, after a confirmation).
    AlsoDone,
}

impl RetryScope {
    /// True when a retry of this scope resets a follow-up in `status`.
    pub fn covers(self, status: ActionStatus) -> bool {
        match status {
            ActionStatus::Failed | ActionStatus::Skipped => true,
            ActionStatus::Done => self == Self::AlsoDone,
            ActionStatus::Pending | ActionStatus::Running => false,
        }
    }
}

/// The lifecycle state of one follow-up (an event action, or an entity's sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionStatus {
    /// To run (or to run again after a backoff, or after an expired lease).
    Pending,
    /// Claimed: a worker holds the lease until `lease_until`.
    Running,
    /// The target answered 2xx (or, for a sync, the target already had the desired state).
    Done,
    /// The target refused it for good (3xx, 4xx other than 408/409/425/429), or the attempts ran
    /// out. Its message is in the dead-letter queue; an operator retry runs it again.
    Failed,
    /// Not run: its target is `disabled`, or its guard failed (the reason says which). Retryable.
    Skipped,
}

impl ActionStatus {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
        }
    }
    /// Parses the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Self::Pending,
            "RUNNING" => Self::Running,
            "DONE" => Self::Done,
            "FAILED" => Self::Failed,
            "SKIPPED" => Self::Skipped,
            _ => return None,
        })
    }
    /// True for DONE, FAILED and SKIPPED: nothing runs it again without an operator.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Skipped)
    }
}

/// One outbox entry of a stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEntry {
    /// Action kind.
    pub kind: String,
    /// Current status.
    pub status: ActionStatus,
    /// Payload to post.
    pub payload: serde_json::Value,
    /// Attempts started (claims).
    pub attempt: i64,
    /// Bumped by an operator's retry only; part of the `Idempotency-Key`.
    pub generation: i64,
    /// The lease's end, ms, while claimed.
    pub lease_until: Option<i64>,
    /// The target's last HTTP status (0: none, or no answer).
    pub last_status: i64,
    /// A short reason for the last outcome (never a body).
    pub reason: Option<String>,
    /// Re-checked when it runs: a failed guard ends it SKIPPED.
    pub guard: Option<Guard>,
}

/// A stored event record, as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Sender.
    pub source: String,
    /// Receiving function.
    pub function: String,
    /// Provider event id.
    pub event_id: String,
    /// Provider event type (empty for a quarantined body that had none).
    pub event_type: String,
    /// `accepted`, `stale`, `ignored` or `quarantined` (never `duplicate`).
    pub status: Outcome,
    /// Why it was quarantined (the parse error's kind and position, never a body value).
    pub reason: Option<String>,
    /// Provider timestamp, ms.
    pub provider_ts: i64,
    /// When Hookline recorded it, ms.
    pub received_at: i64,
    /// Hex SHA-256 of the raw body.
    pub body_sha256: String,
    /// The entity whose sync this event's change marked, if any.
    pub entity: Option<EntityRef>,
    /// That entity's sync name.
    pub entity_sync: Option<String>,
    /// The event actions and their lifecycles.
    pub outbox: Vec<OutboxEntry>,
    /// TTL: seconds since the epoch after which DynamoDB may delete the record.
    pub expires_at: i64,
    /// The delivery's headers as received (`delivery`: id, event type, signed time), if any.
    pub delivery: Option<crate::verify::VerifiedMeta>,
}

/// The sync of one entity, as stored on the entity record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRecord {
    /// Sync name.
    pub name: String,
    /// Lifecycle state.
    pub status: ActionStatus,
    /// The desired target state, from the entity's last applied change.
    pub desired: SyncTarget,
    /// What was last POSTed and acknowledged (2xx, then marked), if anything.
    pub synced: Option<SyncTarget>,
    /// What was last *maybe sent*: written under the lease before each POST of a new state, so
    /// a POST whose answer was lost, a 5xx or a timeout still counts (docs/FOLLOWUPS.md).
    pub sent: Option<SyncTarget>,
    /// The sequence of the sent state: moves only when the state sent changes; part of the
    /// `Idempotency-Key` (`<source>:<kind>/<id>#<seq>:<sync>:<generation>`). 0: nothing sent.
    pub seq: i64,
    /// The source of the events that change the entity (first part of the key).
    pub source: String,
    /// The entity version that was last synced.
    pub synced_version: Option<i64>,
    /// Attempts since the desired state last changed.
    pub attempt: i64,
    /// Bumped by an operator's retry only.
    pub generation: i64,
    /// The lease's end, ms, while claimed.
    pub lease_until: Option<i64>,
    /// The target's last HTTP status.
    pub last_status: i64,
    /// A short reason for the last outcome.
    pub reason: Option<String>,
}

impl SyncRecord {
    /// The `Idempotency-Key` of the state last sent, at the current generation (what a repeat
    /// of it carries); `None` while nothing was ever sent.
    pub fn sent_key(&self, kind: &str, id: &str) -> Option<String> {
        (self.seq > 0).then(|| {
            crate::followup::sync_key(
                &self.source,
                kind,
                id,
                self.seq,
                &self.name,
                self.generation,
            )
        })
    }
}

/// The state of one entity as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityRecord {
    /// Entity kind.
    pub kind: String,
    /// Entity id.
    pub id: String,
    /// Version of the last event applied (ms).
    pub version: i64,
    /// Id of the last event applied.
    pub last_event_id: String,
    /// True once a tombstone was applied.
    pub deleted: bool,
    /// Current attributes (empty once deleted).
    pub attrs: StateAttrs,
    /// The entity's sync, if its mapping keeps one.
    pub sync: Option<SyncRecord>,
}

/// Store failures, typed so that the HTTP status is decided in one place.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB could not be reached, timed out, throttled or failed on its side: try again
    /// (a receiver answers 503 so the sender retries).
    #[error("dynamodb {op} failed (transient): {message}")]
    Transient {
        /// The operation attempted.
        op: &'static str,
        /// The SDK error, rendered with its cause chain.
        message: String,
    },
    /// DynamoDB refused the request for good (item too large, a number it cannot hold, a
    /// validation error): retrying the same request cannot succeed. A receiver quarantines the
    /// event instead.
    #[error("dynamodb {op} refused the request: {message}")]
    Permanent {
        /// The operation attempted.
        op: &'static str,
        /// The SDK error, rendered with its cause chain.
        message: String,
    },
    /// A stored item did not have the shape this code writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn entity(deleted: bool, status: &str) -> EntityRecord {
        EntityRecord {
            kind: "invoice".into(),
            id: "in_1".into(),
            version: 1,
            last_event_id: "evt_1".into(),
            deleted,
            attrs: StateAttrs::from([("payment_status".to_owned(), json!(status))]),
            sync: None,
        }
    }

    #[test]
    fn guards_skip_only_when_the_entity_says_so_now() {
        let paid = Action::new("notify_admin", json!({}))
            .unless_attr(
                "invoice",
                "in_1",
                "payment_status",
                json!("paid"),
                "invoice paid meanwhile",
            )
            .guard
            .unwrap();
        assert_eq!(
            paid.fails(Some(&entity(false, "paid"))).as_deref(),
            Some("invoice paid meanwhile")
        );
        assert_eq!(paid.fails(Some(&entity(false, "failed"))), None);
        assert_eq!(paid.fails(None), None, "an entity never recorded: run");
        let deleted = Action::new("welcome", json!({}))
            .unless_deleted("invoice", "in_1")
            .guard
            .unwrap();
        assert_eq!(
            deleted.fails(Some(&entity(true, "paid"))).as_deref(),
            Some("entity deleted")
        );
        assert_eq!(deleted.fails(Some(&entity(false, "paid"))), None);
    }

    #[test]
    fn an_ignored_event_carries_no_change_and_no_action() {
        assert_eq!(Effects::Ignored.change(), None);
        assert!(Effects::Ignored.actions().is_empty());
        assert!(Effects::Ignored.is_ignored());
        let change = StateChange {
            entity_kind: "invoice".into(),
            entity_id: "in_1".into(),
            version: 1,
            mode: ChangeMode::Upsert,
            attrs: StateAttrs::new(),
            sync: None,
        };
        let apply = Effects::apply(
            Some(change.clone()),
            vec![Action::new("receipt", json!({}))],
        );
        assert!(!apply.is_ignored());
        assert_eq!(apply.change(), Some(&change));
        assert_eq!(apply.actions()[0].kind, "receipt");
        assert!(!Effects::apply(None, Vec::new()).is_ignored());
    }

    #[test]
    fn stored_statuses_read_back_as_their_outcome_and_nothing_else_does() {
        for o in [
            Outcome::Accepted,
            Outcome::Stale,
            Outcome::Ignored,
            Outcome::Quarantined,
        ] {
            assert_eq!(Outcome::parse_stored(o.status()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), json!(o.status()));
            assert_eq!(o.to_string(), o.status());
        }
        for other in ["duplicate", "ACCEPTED", "", "rejected"] {
            assert_eq!(Outcome::parse_stored(other), None, "{other}");
        }
    }

    #[test]
    fn a_retry_scope_covers_done_only_when_it_says_so() {
        use ActionStatus::*;
        for st in [Failed, Skipped] {
            assert!(RetryScope::FailedOrSkipped.covers(st), "{st:?}");
            assert!(RetryScope::AlsoDone.covers(st), "{st:?}");
        }
        assert!(!RetryScope::FailedOrSkipped.covers(Done));
        assert!(RetryScope::AlsoDone.covers(Done));
        for st in [Pending, Running] {
            assert!(!RetryScope::FailedOrSkipped.covers(st), "{st:?}");
            assert!(!RetryScope::AlsoDone.covers(st), "{st:?}");
        }
    }

    #[test]
    fn an_action_written_with_unless_deleted_reads_as_its_guard() {
        let old: Action = serde_json::from_value(json!({
            "kind": "welcome", "payload": {},
            "unless_deleted": {"kind": "user", "id": "u_1"}
        }))
        .unwrap();
        assert_eq!(
            old,
            Action::new("welcome", json!({})).unless_deleted("user", "u_1")
        );
        let guarded = Action::new("notify_admin", json!({"a": 1})).unless_attr(
            "invoice",
            "in_1",
            "payment_status",
            json!("paid"),
            "invoice paid meanwhile",
        );
        let back: Action = serde_json::from_value(serde_json::to_value(&guarded).unwrap()).unwrap();
        assert_eq!(back, guarded);
    }
}
