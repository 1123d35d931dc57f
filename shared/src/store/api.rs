//! The store as the receiver and the worker see it: one object-safe trait, implemented by the
//! DynamoDB [`EventStore`] and by the in-memory double ([`super::memory::MemoryStore`]).
//!
//! Invariants kept here:
//! - the trait is what a receiver (record an event in one commit, or quarantine it) and the
//!   worker (claim, guard read, pre-POST mark, finish) call, nothing more: the reconciler, the
//!   CLI's listings and replays stay on [`EventStore`], where only a real DynamoDB API proves
//!   them (the moto suite);
//! - both implementations share the planning ([`EventStore::plan`]) and every lifecycle
//!   transition (`followups.rs` over `transition.rs`): the double differs only in where items
//!   live, so a unit test against it exercises the same conditions, leases, tokens and
//!   recognition of a lost answer as production (docs/FOLLOWUPS.md).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    ClaimedAction, ClaimedSync, Committed, Effects, EntityRecord, EventStore, Finish, Guard,
    Marked, NewEvent, RecordPlan, StoreError, SyncTarget,
};
use crate::clock::SharedClock;

/// A boxed future of a store call (the trait must be object-safe to be injected).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The store, shared by a receiver or a worker.
pub type SharedStore = Arc<dyn Store>;

/// What the receiver and the worker need of the event store. See [`EventStore`] for what each
/// call does; every implementation keeps the same semantics.
pub trait Store: Send + Sync + fmt::Debug {
    /// The clock the store stamps records with.
    fn clock(&self) -> &SharedClock;

    /// How long an event record is kept (its TTL), in seconds: the deduplication window.
    fn retention_secs(&self) -> i64;

    /// Opens the connection to the store ahead of the first call (a cold start's warm-up); its
    /// answer is not used and a failure changes nothing. The double has nothing to open.
    fn open_connection(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }

    /// Builds the writes that record `event` with its `effects`, without sending them.
    fn plan(&self, event: &NewEvent<'_>, effects: &Effects) -> Result<RecordPlan, StoreError>;

    /// Sends a plan: the event, its body and the entity's change in one transaction; a
    /// duplicate re-enqueues what its event still has PENDING.
    fn commit(&self, plan: RecordPlan) -> StoreFuture<'_, Committed>;

    /// Records a verified delivery that could not be mapped as `quarantined`.
    fn quarantine<'a>(
        &'a self,
        event: &'a NewEvent<'a>,
        reason: &'a str,
    ) -> StoreFuture<'a, Committed>;

    /// Claims an event action under a lease; `None` when it is not claimable.
    fn claim_action<'a>(
        &'a self,
        source: &'a str,
        event_id: &'a str,
        action: &'a str,
        lease_ms: i64,
        visibility_ms: i64,
    ) -> StoreFuture<'a, Option<ClaimedAction>>;

    /// Ends this attempt of a claimed event action, if the lease is still ours.
    fn finish_action<'a>(
        &'a self,
        source: &'a str,
        event_id: &'a str,
        action: &'a str,
        lease: &'a str,
        finish: &'a Finish,
    ) -> StoreFuture<'a, Marked>;

    /// Claims an entity's sync under a lease; `None` when it is not claimable.
    fn claim_sync<'a>(
        &'a self,
        kind: &'a str,
        id: &'a str,
        lease_ms: i64,
        visibility_ms: i64,
    ) -> StoreFuture<'a, Option<ClaimedSync>>;

    /// The pre-POST mark of a claimed sync: the sequence to POST under, or `None` when the
    /// lease is no longer ours.
    fn mark_sync_sent<'a>(
        &'a self,
        entity: &'a EntityRecord,
        lease: &'a str,
        state: &'a SyncTarget,
    ) -> StoreFuture<'a, Option<i64>>;

    /// Ends this attempt of a claimed sync.
    fn finish_sync<'a>(
        &'a self,
        entity: &'a EntityRecord,
        lease: &'a str,
        finish: &'a Finish,
        posted: Option<&'a SyncTarget>,
    ) -> StoreFuture<'a, Marked>;

    /// Reads one entity's state, strongly consistent.
    fn get_entity<'a>(
        &'a self,
        kind: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<EntityRecord>>;

    /// Why a guarded event action must be skipped now, or `None` when it may run.
    fn guard_fails<'a>(&'a self, guard: &'a Guard) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let e = guard.entity();
            let entity = self.get_entity(&e.kind, &e.id).await?;
            Ok(guard.fails(entity.as_ref()))
        })
    }
}

impl From<EventStore> for SharedStore {
    fn from(store: EventStore) -> Self {
        Arc::new(store)
    }
}

impl Store for EventStore {
    fn clock(&self) -> &SharedClock {
        EventStore::clock(self)
    }

    fn retention_secs(&self) -> i64 {
        EventStore::retention_secs(self)
    }

    fn open_connection(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {
            // DescribeEndpoints: the cheapest DynamoDB call, on the same connection pool.
            if let Err(e) = self.client().describe_endpoints().send().await {
                let e = aws_sdk_dynamodb::error::DisplayErrorContext(e);
                tracing::debug!(error = %e, "DynamoDB warm-up");
            }
        })
    }

    fn plan(&self, event: &NewEvent<'_>, effects: &Effects) -> Result<RecordPlan, StoreError> {
        EventStore::plan(self, event, effects)
    }

    fn commit(&self, plan: RecordPlan) -> StoreFuture<'_, Committed> {
        Box::pin(EventStore::commit(self, plan))
    }

    fn quarantine<'a>(
        &'a self,
        event: &'a NewEvent<'a>,
        reason: &'a str,
    ) -> StoreFuture<'a, Committed> {
        Box::pin(EventStore::quarantine(self, event, reason))
    }

    fn claim_action<'a>(
        &'a self,
        source: &'a str,
        event_id: &'a str,
        action: &'a str,
        lease_ms: i64,
        visibility_ms: i64,
    ) -> StoreFuture<'a, Option<ClaimedAction>> {
        Box::pin(EventStore::claim_action(
            self,
            source,
            event_id,
            action,
            lease_ms,
            visibility_ms,
        ))
    }

    fn finish_action<'a>(
        &'a self,
        source: &'a str,
        event_id: &'a str,
        action: &'a str,
        lease: &'a str,
        finish: &'a Finish,
    ) -> StoreFuture<'a, Marked> {
        Box::pin(EventStore::finish_action(
            self, source, event_id, action, lease, finish,
        ))
    }

    fn claim_sync<'a>(
        &'a self,
        kind: &'a str,
        id: &'a str,
        lease_ms: i64,
        visibility_ms: i64,
    ) -> StoreFuture<'a, Option<ClaimedSync>> {
        Box::pin(EventStore::claim_sync(
            self,
            kind,
            id,
            lease_ms,
            visibility_ms,
        ))
    }

    fn mark_sync_sent<'a>(
        &'a self,
        entity: &'a EntityRecord,
        lease: &'a str,
        state: &'a SyncTarget,
    ) -> StoreFuture<'a, Option<i64>> {
        Box::pin(EventStore::mark_sync_sent(self, entity, lease, state))
    }

    fn finish_sync<'a>(
        &'a self,
        entity: &'a EntityRecord,
        lease: &'a str,
        finish: &'a Finish,
        posted: Option<&'a SyncTarget>,
    ) -> StoreFuture<'a, Marked> {
        Box::pin(EventStore::finish_sync(self, entity, lease, finish, posted))
    }

    fn get_entity<'a>(
        &'a self,
        kind: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<EntityRecord>> {
        Box::pin(EventStore::get_entity(self, kind, id))
    }
}
