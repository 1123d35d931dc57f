//! An in-memory [`Store`]: a test double of the DynamoDB event store, with fault injection, so
//! unit tests of the receiver and the worker reach conflicts, throttling and lost answers in
//! milliseconds. The moto suite (tests/tests/*.rs) stays for what only a real DynamoDB API can
//! prove. Not for production: nothing here is durable.
//!
//! Invariants kept here (the same as the DynamoDB store's, docs/DATA.md and docs/FOLLOWUPS.md):
//! - it plans with the DynamoDB store's own code and keeps the very items DynamoDB would (the
//!   item codec reads them back), so a record is `attribute_not_exists` on its key (a duplicate
//!   re-enqueues what its event still has PENDING), and an entity's change applies only when
//!   [`super::ordering::supersedes`] says so (a tombstone is final);
//! - every lifecycle transition is the production one (`followups.rs` over `transition.rs`): the
//!   same conditions, leases, tokens, and recognition of a write whose answer was lost;
//! - a [`Fault`] armed for a [`Call`] hits that call's first write (or read), as DynamoDB would
//!   hit the request: throttled and conflicting writes write nothing; a lost answer writes and
//!   then lets the SDK's retry meet its own write; an applied-but-failed write writes and fails.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::api::{Store, StoreFuture};
use super::codec::{DELETED, Item, LAST_EVENT, VERSION, get_s, opt_n, opt_s, parse_entity};
use super::commit::duplicate;
use super::followups;
use super::ordering::{Applied, supersedes};
use super::schema::{ENTITY_SK, EVENT_SK, PK, SK, entity_pk, event_pk};
use super::transition::{Change, Transition, Updates};
use super::{
    ClaimedAction, ClaimedSync, Committed, Effects, EntityRecord, EventRecord, EventStore, Finish,
    Marked, NewEvent, Outcome, RecordPlan, StoreError, SyncTarget,
};
use crate::clock::SharedClock;

/// A failure injected into the next call of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// DynamoDB throttled the request: nothing written, a transient error (a receiver answers
    /// 503, the worker retries the message).
    Throttle,
    /// A concurrent transaction won (`TransactionConflict`, after the store's own retries):
    /// nothing written, a transient error.
    Conflict,
    /// The write applied but its answer was lost; the SDK's retry of the same request then
    /// meets it (a transaction's `ClientRequestToken` makes DynamoDB answer with the first
    /// success; a conditional update must recognise its own write).
    LostAnswer,
    /// The write applied and every answer was lost: the caller gets a transient error.
    AppliedButFailed,
}

/// The store calls a [`Fault`] can be armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// [`Store::commit`].
    Commit,
    /// [`Store::quarantine`].
    Quarantine,
    /// [`Store::claim_action`].
    ClaimAction,
    /// [`Store::finish_action`].
    FinishAction,
    /// [`Store::claim_sync`].
    ClaimSync,
    /// [`Store::mark_sync_sent`].
    MarkSyncSent,
    /// [`Store::finish_sync`].
    FinishSync,
    /// [`Store::get_entity`] (and so guard reads).
    GetEntity,
}

/// The in-memory event store (a test double; see the module).
pub struct MemoryStore {
    /// Plans exactly as the DynamoDB store does; never sends.
    planner: EventStore,
    state: Mutex<State>,
}

/// Counts only: the items hold bodies and payloads, which never reach a log line.
impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("items", &self.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    items: BTreeMap<(String, String), Item>,
    faults: HashMap<Call, VecDeque<Fault>>,
}

fn injected(op: &'static str, what: &str) -> StoreError {
    StoreError::Transient {
        op,
        message: format!("{what} (injected)"),
    }
}

impl MemoryStore {
    /// An empty store on `clock`, keeping records 30 days, follow-ups due for the reconciler 5
    /// minutes after they are recorded (the defaults).
    pub fn new(clock: SharedClock) -> Self {
        Self {
            planner: EventStore::detached("memory", 30, clock),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Arms `fault` for the next `call` (faults armed for one call hit its next calls in order).
    pub fn fail_next(&self, call: Call, fault: Fault) {
        self.state()
            .faults
            .entry(call)
            .or_default()
            .push_back(fault);
    }

    fn take(&self, call: Call) -> Option<Fault> {
        self.state().faults.get_mut(&call)?.pop_front()
    }

    /// The stored event record, if any.
    pub fn event(&self, source: &str, event_id: &str) -> Option<EventRecord> {
        let key = (event_pk(source, event_id), EVENT_SK.to_owned());
        self.state()
            .items
            .get(&key)
            .and_then(|item| super::codec::parse_event(item).ok())
    }

    /// The stored entity, if any.
    pub fn entity(&self, kind: &str, id: &str) -> Option<EntityRecord> {
        self.read_entity(kind, id).ok().flatten()
    }

    fn read_entity(&self, kind: &str, id: &str) -> Result<Option<EntityRecord>, StoreError> {
        let key = (entity_pk(kind, id), ENTITY_SK.to_owned());
        self.state().items.get(&key).map(parse_entity).transpose()
    }

    /// How many items (event records, bodies, entities) are stored.
    pub fn len(&self) -> usize {
        self.state().items.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One `UpdateItem`: the change applied when its conditions hold; the item after, or as it
    /// was when refused.
    fn update_once(
        &self,
        pk: &str,
        sk: &str,
        change: &Change<'_>,
    ) -> Result<Transition, StoreError> {
        let mut st = self.state();
        let key = (pk.to_owned(), sk.to_owned());
        let current = st.items.get(&key);
        if !change.holds(current) {
            return Ok(Transition::Refused(current.cloned()));
        }
        let mut item = current.cloned().unwrap_or_else(|| keyed(pk, sk));
        change.apply(&mut item)?;
        st.items.insert(key, item.clone());
        Ok(Transition::Written(item))
    }

    fn update_with(
        &self,
        pk: &str,
        sk: &str,
        change: &Change<'_>,
        fault: Option<Fault>,
    ) -> Result<Transition, StoreError> {
        match fault {
            Some(Fault::Throttle) => Err(injected("UpdateItem", "throttled")),
            Some(Fault::Conflict) => Err(injected("UpdateItem", "TransactionConflict")),
            Some(Fault::LostAnswer) => {
                self.update_once(pk, sk, change)?;
                // The SDK sends the same request again.
                self.update_once(pk, sk, change)
            }
            Some(Fault::AppliedButFailed) => {
                self.update_once(pk, sk, change)?;
                Err(injected("UpdateItem", "answer lost"))
            }
            None => self.update_once(pk, sk, change),
        }
    }

    /// One `TransactWriteItems` of a plan (and, when the entity's ordering refuses it, the
    /// second one that records the event as stale), as the DynamoDB store sends them.
    fn commit_once(&self, plan: RecordPlan) -> Result<Committed, StoreError> {
        let RecordPlan {
            event,
            body,
            update,
            outcome,
            enqueue,
            stale,
        } = plan;
        let mut st = self.state();
        let key = key_of(event.item())?;
        if let Some(old) = st.items.get(&key) {
            return Ok(duplicate(Some(old.clone())));
        }
        let put = |st: &mut State, item: &Item| -> Result<(), StoreError> {
            st.items.insert(key_of(item)?, item.clone());
            Ok(())
        };
        if let Some(write) = update {
            let at = (write.pk.clone(), ENTITY_SK.to_owned());
            let current = st.items.get(&at);
            let last = current.map(|i| opt_s(i, LAST_EVENT).unwrap_or_default().to_owned());
            let applied = current.zip(last.as_deref()).map(|(i, event_id)| Applied {
                version: opt_n(i, VERSION).unwrap_or(0),
                event_id,
                deleted: i.contains_key(DELETED),
            });
            if !supersedes(&write.state, &write.event_id, applied.as_ref()) {
                let Some((stale, actions)) = stale else {
                    return Err(StoreError::Corrupt("stale without a plan".into()));
                };
                put(&mut st, stale.item())?;
                if let Some(body) = &body {
                    put(&mut st, body.item())?;
                }
                return Ok(Committed {
                    outcome: Outcome::Stale,
                    enqueue: actions,
                });
            }
            let mut item = current
                .cloned()
                .unwrap_or_else(|| keyed(&write.pk, ENTITY_SK));
            write.change.apply(&mut item)?;
            st.items.insert(at, item);
        }
        put(&mut st, event.item())?;
        if let Some(body) = &body {
            put(&mut st, body.item())?;
        }
        Ok(Committed { outcome, enqueue })
    }

    fn commit_with(&self, plan: RecordPlan, fault: Option<Fault>) -> Result<Committed, StoreError> {
        match fault {
            Some(Fault::Throttle) => Err(injected("TransactWriteItems", "throttled")),
            Some(Fault::Conflict) => Err(injected("TransactWriteItems", "TransactionConflict")),
            // The retry carries the same ClientRequestToken: DynamoDB answers it with the
            // first attempt's success.
            Some(Fault::LostAnswer) | None => self.commit_once(plan),
            Some(Fault::AppliedButFailed) => {
                self.commit_once(plan)?;
                Err(injected("TransactWriteItems", "answer lost"))
            }
        }
    }

    /// The store as one call sees it: its armed fault hits its first write.
    fn engine(&self, call: Call) -> Engine<'_> {
        Engine {
            store: self,
            fault: Mutex::new(self.take(call)),
        }
    }
}

/// An item holding only its key.
fn keyed(pk: &str, sk: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), super::codec::s(pk)),
        (SK.to_owned(), super::codec::s(sk)),
    ])
}

fn key_of(item: &Item) -> Result<(String, String), StoreError> {
    Ok((get_s(item, PK)?.to_owned(), get_s(item, SK)?.to_owned()))
}

/// One call's view of the store: the fault armed for it, used by its first update.
struct Engine<'a> {
    store: &'a MemoryStore,
    fault: Mutex<Option<Fault>>,
}

impl Engine<'_> {
    fn take(&self) -> Option<Fault> {
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Updates for Engine<'_> {
    fn update(
        &self,
        pk: &str,
        sk: &'static str,
        change: &Change<'_>,
    ) -> impl Future<Output = Result<Transition, StoreError>> + Send {
        std::future::ready(self.store.update_with(pk, sk, change, self.take()))
    }

    fn now_millis(&self) -> i64 {
        self.store.planner.clock().now_millis()
    }

    fn grace_ms(&self) -> i64 {
        self.store.planner.grace_ms
    }
}

impl Store for MemoryStore {
    fn clock(&self) -> &SharedClock {
        self.planner.clock()
    }

    fn retention_secs(&self) -> i64 {
        self.planner.retention_secs()
    }

    fn plan(&self, event: &NewEvent<'_>, effects: &Effects) -> Result<RecordPlan, StoreError> {
        self.planner.plan(event, effects)
    }

    fn commit(&self, plan: RecordPlan) -> StoreFuture<'_, Committed> {
        let fault = self.take(Call::Commit);
        Box::pin(std::future::ready(self.commit_with(plan, fault)))
    }

    fn quarantine<'a>(
        &'a self,
        event: &'a NewEvent<'a>,
        reason: &'a str,
    ) -> StoreFuture<'a, Committed> {
        let fault = self.take(Call::Quarantine);
        let done = self
            .planner
            .quarantine_plan(event, reason)
            .and_then(|plan| self.commit_with(plan, fault));
        Box::pin(std::future::ready(done))
    }

    fn claim_action<'a>(
        &'a self,
        source: &'a str,
        event_id: &'a str,
        action: &'a str,
        lease_ms: i64,
        visibility_ms: i64,
    ) -> StoreFuture<'a, Option<ClaimedAction>> {
        let engine = self.engine(Call::ClaimAction);
        Box::pin(async move {
            followups::claim_action(&engine, source, event_id, action, lease_ms, visibility_ms)
                .await
        })
    }

    fn finish_action<'a>(
        &'a self,
        source: &'a str,
        event_id: &'a str,
        action: &'a str,
        lease: &'a str,
        finish: &'a Finish,
    ) -> StoreFuture<'a, Marked> {
        let engine = self.engine(Call::FinishAction);
        Box::pin(async move {
            followups::finish_action(&engine, source, event_id, action, lease, finish).await
        })
    }

    fn claim_sync<'a>(
        &'a self,
        kind: &'a str,
        id: &'a str,
        lease_ms: i64,
        visibility_ms: i64,
    ) -> StoreFuture<'a, Option<ClaimedSync>> {
        let engine = self.engine(Call::ClaimSync);
        Box::pin(
            async move { followups::claim_sync(&engine, kind, id, lease_ms, visibility_ms).await },
        )
    }

    fn mark_sync_sent<'a>(
        &'a self,
        entity: &'a EntityRecord,
        lease: &'a str,
        state: &'a SyncTarget,
    ) -> StoreFuture<'a, Option<i64>> {
        let engine = self.engine(Call::MarkSyncSent);
        Box::pin(async move { followups::mark_sync_sent(&engine, entity, lease, state).await })
    }

    fn finish_sync<'a>(
        &'a self,
        entity: &'a EntityRecord,
        lease: &'a str,
        finish: &'a Finish,
        posted: Option<&'a SyncTarget>,
    ) -> StoreFuture<'a, Marked> {
        let engine = self.engine(Call::FinishSync);
        Box::pin(
            async move { followups::finish_sync(&engine, entity, lease, finish, posted).await },
        )
    }

    fn get_entity<'a>(
        &'a self,
        kind: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<EntityRecord>> {
        let read = match self.take(Call::GetEntity) {
            Some(Fault::Throttle | Fault::Conflict) => Err(injected("GetItem", "throttled")),
            _ => self.read_entity(kind, id),
        };
        Box::pin(std::future::ready(read))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::{ChangeMode, StateAttrs, StateChange};

    /// The condition the DynamoDB store sends with an entity's change and the ordering rule the
    /// double applies ([`supersedes`]) agree, on every kind of entity and change.
    #[test]
    fn the_entity_condition_and_the_ordering_rule_agree() {
        let store = MemoryStore::new(FixedClock::at_secs(1_700_000_000));
        let entities: Vec<Option<(i64, &str, bool)>> = vec![
            None,
            Some((5, "evt_b", false)),
            Some((5, "evt_b", true)),
            Some((4, "evt_z", false)),
            Some((6, "evt_a", false)),
        ];
        for current in entities {
            let item = current.map(|(v, e, deleted)| {
                let mut item = keyed("ENTITY#thing#t_1", ENTITY_SK);
                item.insert(VERSION.into(), super::super::codec::n(v));
                item.insert(LAST_EVENT.into(), super::super::codec::s(e));
                if deleted {
                    item.insert(
                        DELETED.into(),
                        aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                    );
                }
                item
            });
            for (mode, version, event_id) in [
                (ChangeMode::Upsert, 5, "evt_a"),
                (ChangeMode::Upsert, 5, "evt_b"),
                (ChangeMode::Upsert, 5, "evt_c"),
                (ChangeMode::Upsert, 4, "evt_z"),
                (ChangeMode::Upsert, 6, "evt_0"),
                (ChangeMode::Tombstone, 1, "evt_d"),
            ] {
                let change = StateChange {
                    entity_kind: "thing".into(),
                    entity_id: "t_1".into(),
                    version,
                    mode,
                    attrs: StateAttrs::new(),
                    sync: None,
                };
                let event = NewEvent {
                    source: "unit",
                    function: "unit-events",
                    event_id,
                    event_type: "t",
                    provider_ts: version,
                    body: b"{}",
                    delivery: None,
                };
                let plan = store
                    .plan(&event, &Effects::apply(Some(change.clone()), Vec::new()))
                    .unwrap();
                let write = plan.update.unwrap();
                let applied = current.map(|(version, event_id, deleted)| Applied {
                    version,
                    event_id,
                    deleted,
                });
                assert_eq!(
                    write.change.holds(item.as_ref()),
                    supersedes(&change, event_id, applied.as_ref()),
                    "{current:?} <- {mode:?} ({version}, {event_id})"
                );
            }
        }
    }
}
