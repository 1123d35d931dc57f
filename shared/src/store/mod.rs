//! The DynamoDB event store: one table, one transaction per event.
//!
//! Invariants kept here (DESIGN.md 1–3):
//! - an event is recorded with ONE `TransactWriteItems` holding the event record (condition
//!   `attribute_not_exists(pk)`), the entity's state change (condition on ordering) and the outbox
//!   of follow-ups; nothing is ever half-written;
//! - an older event never overwrites newer state: an entity keeps the `(version, event_id)` of the
//!   last event applied, and a change applies only when its own pair is strictly greater
//!   (versions compared first; at equal versions the greater event id wins, so ties are
//!   deterministic whatever the arrival order). A tombstone (delete) is final: no later change
//!   resurrects the entity;
//! - each follow-up is marked done/failed/skipped with a conditional update, so it runs once.

mod dynamo;
pub mod schema;

pub use dynamo::{EventStore, RecordPlan};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A follow-up action to run after the event is recorded, e.g. `receipt` or `welcome`.
///
/// Its `kind` names the action and selects its target (`ACTION_<KIND>_URL`); an event holds at
/// most one action of each kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Action kind, lower-case letters, digits and `_` (e.g. `receipt`, `notify_failure`).
    pub kind: String,
    /// JSON payload posted to the action's target.
    pub payload: serde_json::Value,
}

impl Action {
    /// An action of `kind` with `payload`.
    pub fn new(kind: &str, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.to_owned(),
            payload,
        }
    }
}

/// A scalar attribute of an entity's state.
pub type StateAttrs = BTreeMap<String, serde_json::Value>;

/// How a state change treats the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeMode {
    /// Create or update the entity's attributes (ordering applies).
    Upsert,
    /// Mark the entity deleted, for good: later changes are stale.
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
    /// Attributes to set (ignored for a tombstone beyond being recorded).
    pub attrs: StateAttrs,
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
    /// The raw verified body (kept when it fits the item size limit).
    pub body: &'a [u8],
}

/// What a receiver's mapping decided for one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effects {
    /// The state change, if the event describes one.
    pub change: Option<StateChange>,
    /// Follow-ups to run once the event is durable.
    pub actions: Vec<Action>,
    /// True when the event type is not handled by this function: recorded as `ignored`.
    pub ignored: bool,
}

/// A reference to one follow-up of one recorded event: what a queue message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Event source.
    pub source: String,
    /// Event id.
    pub event_id: String,
    /// Action kind.
    pub action: String,
}

/// The outcome of recording an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New event: state applied (if any) and these follow-ups are PENDING in the outbox.
    Accepted(Vec<FollowUp>),
    /// Already recorded: nothing written.
    Duplicate,
    /// Recorded, but older than the entity's state: no state change, no follow-ups.
    Stale,
    /// Recorded as an event type this function does not handle.
    Ignored,
}

impl Outcome {
    /// The `status` word of the HTTP answer.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Accepted(_) => "accepted",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
        }
    }
}

/// The status of one follow-up in an event's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionStatus {
    /// Not yet run to completion.
    Pending,
    /// The target answered 2xx.
    Done,
    /// The target refused it permanently (4xx other than 408/429).
    Failed,
    /// No target configured for this kind.
    Skipped,
}

impl ActionStatus {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
        }
    }
    /// Parses the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Self::Pending,
            "DONE" => Self::Done,
            "FAILED" => Self::Failed,
            "SKIPPED" => Self::Skipped,
            _ => return None,
        })
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
    /// Provider event type.
    pub event_type: String,
    /// `accepted`, `stale` or `ignored`.
    pub status: String,
    /// Provider timestamp, ms.
    pub provider_ts: i64,
    /// When Hookline recorded it, ms.
    pub received_at: i64,
    /// Hex SHA-256 of the raw body.
    pub body_sha256: String,
    /// The raw body, when it fitted the item size limit.
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
    /// The follow-ups and their statuses.
    pub outbox: Vec<OutboxEntry>,
    /// TTL: seconds since the epoch after which DynamoDB may delete the record.
    pub expires_at: i64,
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
    /// Current attributes.
    pub attrs: StateAttrs,
}

/// The result of marking a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkResult {
    /// This call moved it from PENDING.
    Marked,
    /// It was no longer PENDING (another delivery finished it): nothing written.
    AlreadyFinished,
}

/// Store failures. All are dependency failures: the HTTP layer answers 503 so the sender retries.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB refused or could not be reached.
    #[error("dynamodb {op} failed: {message}")]
    Dynamo {
        /// The operation attempted.
        op: &'static str,
        /// The SDK error, rendered with its cause chain.
        message: String,
    },
    /// A stored item did not have the shape this code writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}
