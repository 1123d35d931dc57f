//! The follow-up lifecycle: claims and marks (the reconciler's pages are in `reconcile.rs`),
//! written once over any store that runs a [`Change`] (DynamoDB's [`EventStore`], the in-memory
//! double). Each transition is one conditional update of the event record (event actions, an
//! entry of its `outbox` map) or the entity record (its sync), so that only the lease holder
//! moves a follow-up on and a retry, a crash or a copy of a message can never run one twice at
//! the same time; each recognises its own earlier success after a lost answer (`transition.rs`,
//! docs/FOLLOWUPS.md).
//!
//! Items with anything not final carry `pending_pk`/`next_check_at` (the sparse pending index).
//! Each follow-up has its own check time (an event action's `check_at` on its outbox entry; a
//! sync's is the entity's `next_check_at`): recorded → now + grace; claimed → lease end +
//! visibility; backed off → visible again + grace. The item's `next_check_at` is never later
//! than the earliest of its open follow-ups': a transition writes its follow-up's own time and
//! then, from the item it wrote (`ALL_NEW`), lowers the item's time when a sibling needs a look
//! sooner (`settle`); the reconciler re-derives it on each visit.

use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{
    Item, OUTBOX, REV, SYNC_LEASE, SYNC_SENT, SYNC_SEQ, SYNC_STATUS, SYNC_SYNCED,
    SYNC_SYNCED_VERSION, VERSION, n, opt_n, opt_s, parse_entity, parse_event, parse_outbox_entry,
    parse_target, s, sync_json,
};
use super::reconcile::earliest_open_check;
use super::schema::{ENTITY_SK, EVENT_SK, PENDING_PK, PENDING_SK, entity_pk, event_pk, pending_pk};
use super::transition::{
    Change, Cond, Field, Path, Slot, Stamp, Transition, Updates, lease_token, transition,
    transition_if,
};
use super::{
    ActionStatus, EntityRecord, EventStore, OutboxEntry, RetryScope, StoreError, SyncTarget,
};

/// A claimed event action: the lease is ours until `lease_until`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedAction {
    /// The outbox entry as claimed (attempt already counted).
    pub entry: OutboxEntry,
    /// The lease token.
    pub lease: String,
}

/// A claimed sync: the entity's state as claimed, and the lease token.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedSync {
    /// The entity as claimed.
    pub entity: EntityRecord,
    /// The lease token.
    pub lease: String,
}

/// How a claimed follow-up ends this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Done (2xx, or for a sync, nothing to send). For a sync: what is now synced.
    Done {
        /// The target's status (0: nothing was sent).
        status: u16,
    },
    /// Back to PENDING; the message becomes visible again at `visible_at` (ms).
    Retry {
        /// The target's status (0: no answer).
        status: u16,
        /// Why, short and log-safe.
        reason: String,
        /// When the message reappears, ms.
        visible_at: i64,
    },
    /// FAILED: the message goes to the dead-letter queue.
    Failed {
        /// The target's status (0: no answer).
        status: u16,
        /// Why.
        reason: String,
    },
    /// SKIPPED (target disabled, guard failed).
    Skipped {
        /// Why.
        reason: String,
    },
}

/// What a mark did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The transition was written.
    Written,
    /// The lease was no longer ours (it expired and someone else claimed): nothing written.
    LeaseLost,
    /// Sync only: the entity moved on while we worked; the sync is PENDING again and must be
    /// enqueued again.
    Moved,
}

/// How much earlier than its message's reappearance a backed-off follow-up becomes claimable:
/// room for the clocks of SQS and the worker to differ, so the message that carries the retry
/// always finds it claimable.
const BACKOFF_SLACK_MS: i64 = 1_000;

/// Until when a follow-up that backs off until `visible_at` stays unclaimable: no other copy of
/// its message (a duplicate's re-kick, a reconciler's) can run it before its backoff ends.
fn hold_until(finish: &Finish) -> Option<i64> {
    match finish {
        Finish::Retry { visible_at, .. } => Some(visible_at.saturating_sub(BACKOFF_SLACK_MS)),
        _ => None,
    }
}

impl EventStore {
    /// Claims event action `action` of an event: PENDING (or RUNNING with an expired lease) →
    /// RUNNING, attempt + 1. `None` when it is not claimable (someone holds it, it is finished,
    /// or it does not exist): the caller drops its message.
    pub async fn claim_action(
        &self,
        source: &str,
        event_id: &str,
        action: &str,
        lease_ms: i64,
        visibility_ms: i64,
    ) -> Result<Option<ClaimedAction>, StoreError> {
        claim_action(self, source, event_id, action, lease_ms, visibility_ms).await
    }

    /// Ends this attempt of a claimed event action, if the lease is still ours.
    pub async fn finish_action(
        &self,
        source: &str,
        event_id: &str,
        action: &str,
        lease: &str,
        finish: &Finish,
    ) -> Result<Marked, StoreError> {
        finish_action(self, source, event_id, action, lease, finish).await
    }

    /// Claims an entity's sync: PENDING (or RUNNING with an expired lease) → RUNNING. `None`
    /// when it is not claimable: someone holds it, or it is finished.
    pub async fn claim_sync(
        &self,
        kind: &str,
        id: &str,
        lease_ms: i64,
        visibility_ms: i64,
    ) -> Result<Option<ClaimedSync>, StoreError> {
        claim_sync(self, kind, id, lease_ms, visibility_ms).await
    }

    /// Ends this attempt of a claimed sync of `entity` (as claimed). `posted` is the state the
    /// target acknowledged in this attempt, if any: recorded as synced even when the entity
    /// moved on meanwhile (the next attempt compares against it). When the entity's version is
    /// no longer the one claimed, the sync stays PENDING and [`Marked::Moved`] says to enqueue it
    /// again.
    pub async fn finish_sync(
        &self,
        entity: &EntityRecord,
        lease: &str,
        finish: &Finish,
        posted: Option<&SyncTarget>,
    ) -> Result<Marked, StoreError> {
        finish_sync(self, entity, lease, finish, posted).await
    }

    /// The pre-POST mark of a claimed sync (docs/FOLLOWUPS.md, "State syncs"): before the
    /// worker POSTs a state that differs from the one last sent, it records that state as
    /// *maybe sent* (`sync_sent`) with the next sequence (`sync_seq`, part of the
    /// `Idempotency-Key`), conditionally on our lease and on the sequence as claimed. From then
    /// on the state counts as sent whatever the POST's answer: a timeout, a 5xx after the target
    /// committed, exhausted attempts or a lost DONE mark no longer make a later baseline (a
    /// revoke) look unnecessary.
    ///
    /// A repeat of this write whose first answer was lost finds its own write (ALL_OLD: our
    /// lease, this state, this sequence) and carries on. Returns the sequence to POST under, or
    /// `None` when the lease is no longer ours (nothing may be POSTed).
    pub async fn mark_sync_sent(
        &self,
        entity: &EntityRecord,
        lease: &str,
        state: &SyncTarget,
    ) -> Result<Option<i64>, StoreError> {
        mark_sync_sent(self, entity, lease, state).await
    }

    /// An operator's retry of an event action in a state `scope` covers (FAILED or SKIPPED, and
    /// with [`RetryScope::AlsoDone`] DONE too): back to PENDING with a new generation (a new
    /// `Idempotency-Key`), attempts reset. False when it was not in a state `scope` covers (or is
    /// running now).
    pub async fn retry_action(
        &self,
        source: &str,
        event_id: &str,
        action: &str,
        scope: RetryScope,
    ) -> Result<bool, StoreError> {
        let statuses: &[ActionStatus] = match scope {
            RetryScope::AlsoDone => &[
                ActionStatus::Failed,
                ActionStatus::Skipped,
                ActionStatus::Done,
            ],
            RetryScope::FailedOrSkipped => &[ActionStatus::Failed, ActionStatus::Skipped],
        };
        reset(
            self,
            &event_pk(source, event_id),
            Slot::Action(action),
            statuses,
        )
        .await
    }

    /// An operator's retry of an entity's FAILED or SKIPPED sync: PENDING, new generation.
    pub async fn retry_sync(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        reset(
            self,
            &entity_pk(kind, id),
            Slot::Sync,
            &[ActionStatus::Failed, ActionStatus::Skipped],
        )
        .await
    }
}

/// [`EventStore::claim_action`] on any store.
pub(super) async fn claim_action(
    store: &impl Updates,
    source: &str,
    event_id: &str,
    action: &str,
    lease_ms: i64,
    visibility_ms: i64,
) -> Result<Option<ClaimedAction>, StoreError> {
    let pk = event_pk(source, event_id);
    let Some((item, lease)) =
        claim(store, &pk, Slot::Action(action), lease_ms, visibility_ms).await?
    else {
        return Ok(None);
    };
    let entry = match item.get(OUTBOX) {
        Some(AttributeValue::M(o)) => match o.get(action) {
            Some(AttributeValue::M(e)) => parse_outbox_entry(action, e)?,
            _ => return Err(StoreError::Corrupt(format!("outbox entry {action}"))),
        },
        _ => return Err(StoreError::Corrupt("outbox".into())),
    };
    Ok(Some(ClaimedAction { entry, lease }))
}

/// [`EventStore::claim_sync`] on any store.
pub(super) async fn claim_sync(
    store: &impl Updates,
    kind: &str,
    id: &str,
    lease_ms: i64,
    visibility_ms: i64,
) -> Result<Option<ClaimedSync>, StoreError> {
    let pk = entity_pk(kind, id);
    let Some((item, lease)) = claim(store, &pk, Slot::Sync, lease_ms, visibility_ms).await? else {
        return Ok(None);
    };
    Ok(Some(ClaimedSync {
        entity: parse_entity(&item)?,
        lease,
    }))
}

/// A claim: PENDING (or RUNNING with an expired lease) → RUNNING under a fresh lease, one more
/// attempt, its check at the lease's end plus the message's visibility. The item as claimed and
/// the lease, or `None` when not claimable.
async fn claim(
    store: &impl Updates,
    pk: &str,
    slot: Slot<'_>,
    lease_ms: i64,
    visibility_ms: i64,
) -> Result<Option<(Item, String)>, StoreError> {
    let now = store.now_millis();
    let lease = lease_token();
    let lease_until = now.saturating_add(lease_ms);
    let check = lease_until.saturating_add(visibility_ms);
    let change = Change::of(slot)
        .set(Field::Status, s(ActionStatus::Running.as_str()))
        .set(Field::Lease, s(&lease))
        .set(Field::LeaseUntil, n(lease_until))
        .add_one(Field::Attempt)
        .set(Field::CheckAt, n(check))
        .set(Field::Requeues, n(0))
        .set_item(PENDING_PK, s(pending_pk(pk)))
        .set_item(PENDING_SK, n(check))
        .bump_rev()
        .when_status(&[ActionStatus::Pending, ActionStatus::Running])
        .when_lease_free(now);
    let stamp = Stamp {
        slot,
        field: Field::Lease,
        token: &lease,
        status: ActionStatus::Running,
    };
    match transition(store, pk, &change, &stamp).await? {
        Transition::Written(item) => {
            // The item's time is now this claim's; a sibling due sooner lowers it again.
            settle(store, &item, pk, slot.sk()).await?;
            Ok(Some((item, lease)))
        }
        Transition::Refused(_) => Ok(None),
    }
}

/// What a finish writes: the status, the target's HTTP status, the reason, and (a backoff) the
/// follow-up's own next check.
fn ending(finish: &Finish, grace_ms: i64) -> (ActionStatus, u16, Option<&str>, Option<i64>) {
    match finish {
        Finish::Done { status } => (ActionStatus::Done, *status, None, None),
        Finish::Failed { status, reason } => (ActionStatus::Failed, *status, Some(reason), None),
        Finish::Skipped { reason } => (ActionStatus::Skipped, 0, Some(reason), None),
        Finish::Retry {
            status,
            reason,
            visible_at,
        } => (
            ActionStatus::Pending,
            *status,
            Some(reason),
            Some(visible_at.saturating_add(grace_ms)),
        ),
    }
}

/// The end of an attempt under `lease`: `status`, the lease released (a backoff keeps its end:
/// see [`hold_until`]), `last_lease` as the finish's own mark. An event action keeps its last
/// reason when none is given; a sync's is cleared.
#[allow(clippy::too_many_arguments)]
fn finishing<'a>(
    slot: Slot<'a>,
    lease: &'a str,
    status: ActionStatus,
    http: u16,
    reason: Option<&str>,
    check: Option<i64>,
    hold: Option<i64>,
    now: i64,
) -> Change<'a> {
    let c = Change::of(slot)
        .set(Field::Status, s(status.as_str()))
        .set(Field::LastStatus, n(i64::from(http)))
        .set(Field::FinishedAt, n(now))
        .set(Field::LastLease, s(lease))
        .bump_rev()
        .remove(Field::Lease);
    let c = match hold {
        Some(hold) => c.set(Field::LeaseUntil, n(hold)),
        None => c.remove(Field::LeaseUntil),
    };
    let c = match (reason, slot) {
        (Some(r), _) => c.set(Field::Reason, s(r)),
        (None, Slot::Sync) => c.remove(Field::Reason),
        (None, Slot::Action(_)) => c,
    };
    let c = match check {
        // The follow-up's own time; the item's is lowered by `settle` if this is sooner.
        Some(check) => c.set(Field::CheckAt, n(check)),
        None => c,
    };
    c.when_eq(Field::Lease, s(lease))
}

/// The stamp a finish leaves: the lease as `last_lease`, next to the status it wrote.
fn finished<'a>(slot: Slot<'a>, lease: &'a str, status: ActionStatus) -> Stamp<'a> {
    Stamp {
        slot,
        field: Field::LastLease,
        token: lease,
        status,
    }
}

/// [`EventStore::finish_action`] on any store.
pub(super) async fn finish_action(
    store: &impl Updates,
    source: &str,
    event_id: &str,
    action: &str,
    lease: &str,
    finish: &Finish,
) -> Result<Marked, StoreError> {
    let pk = event_pk(source, event_id);
    let slot = Slot::Action(action);
    let (status, http, reason, check) = ending(finish, store.grace_ms());
    let change = finishing(
        slot,
        lease,
        status,
        http,
        reason,
        check,
        hold_until(finish),
        store.now_millis(),
    );
    match transition(store, &pk, &change, &finished(slot, lease, status)).await? {
        Transition::Written(item) => {
            if !item.is_empty() {
                settle(store, &item, &pk, EVENT_SK).await?;
            }
            Ok(Marked::Written)
        }
        Transition::Refused(_) => Ok(Marked::LeaseLost),
    }
}

/// [`EventStore::finish_sync`] on any store.
pub(super) async fn finish_sync(
    store: &impl Updates,
    entity: &EntityRecord,
    lease: &str,
    finish: &Finish,
    posted: Option<&SyncTarget>,
) -> Result<Marked, StoreError> {
    let now = store.now_millis();
    let pk = entity_pk(&entity.kind, &entity.id);
    let (status, http, reason, check) = ending(finish, store.grace_ms());
    let hold = hold_until(finish);
    let first = finishing(Slot::Sync, lease, status, http, reason, check, hold, now);
    let first = synced(first, status, posted, entity.version)
        .when(Cond::Eq(Path::Item(VERSION), n(entity.version)));
    match transition(store, &pk, &first, &finished(Slot::Sync, lease, status)).await? {
        Transition::Written(item) => {
            if !item.is_empty() {
                settle(store, &item, &pk, ENTITY_SK).await?;
            }
            Ok(Marked::Written)
        }
        Transition::Refused(Some(old)) if opt_s(&old, SYNC_LEASE) == Some(lease) => {
            // Ours, but the entity moved on: record what was posted, release, go again.
            let pending = ActionStatus::Pending;
            let reason = Some("entity changed while syncing");
            let check = Some(now.saturating_add(store.grace_ms()));
            let again = finishing(Slot::Sync, lease, pending, http, reason, check, None, now);
            let again = synced(again, pending, posted, entity.version);
            match transition(store, &pk, &again, &finished(Slot::Sync, lease, pending)).await? {
                Transition::Written(_) => Ok(Marked::Moved),
                Transition::Refused(_) => Ok(Marked::LeaseLost),
            }
        }
        Transition::Refused(_) => Ok(Marked::LeaseLost),
    }
}

/// A sync's finish records what the target acknowledged (`posted`) and at which version of the
/// entity, whatever else happened meanwhile; a DONE without a POST records the version only.
fn synced<'a>(
    c: Change<'a>,
    status: ActionStatus,
    posted: Option<&SyncTarget>,
    version: i64,
) -> Change<'a> {
    match posted {
        Some(posted) => c
            .set_item(SYNC_SYNCED, s(sync_json(posted)))
            .set_item(SYNC_SYNCED_VERSION, n(version)),
        None if status == ActionStatus::Done => c.set_item(SYNC_SYNCED_VERSION, n(version)),
        None => c,
    }
}

/// [`EventStore::mark_sync_sent`] on any store.
pub(super) async fn mark_sync_sent(
    store: &impl Updates,
    entity: &EntityRecord,
    lease: &str,
    state: &SyncTarget,
) -> Result<Option<i64>, StoreError> {
    let Some(sync) = &entity.sync else {
        return Err(StoreError::Corrupt(format!(
            "{}/{} keeps no sync",
            entity.kind, entity.id
        )));
    };
    let seq = sync.seq.saturating_add(1);
    let pk = entity_pk(&entity.kind, &entity.id);
    let seq_at = Path::Item(SYNC_SEQ);
    let change = Change::of(Slot::Sync)
        .set_item(SYNC_SENT, s(sync_json(state)))
        .set_item(SYNC_SEQ, n(seq))
        .bump_rev()
        .when_eq(Field::Lease, s(lease))
        .when(Cond::Any(vec![
            Cond::Missing(seq_at),
            Cond::Eq(seq_at, n(sync.seq)),
        ]));
    let ours = |old: &Item| {
        opt_s(old, SYNC_LEASE) == Some(lease)
            && opt_n(old, SYNC_SEQ) == Some(seq)
            && parse_target(old, SYNC_SENT).ok().flatten().as_ref() == Some(state)
    };
    match transition_if(store, &pk, &change, "sent", ours).await? {
        Transition::Written(_) => Ok(Some(seq)),
        Transition::Refused(_) => Ok(None),
    }
}

/// An operator's reset of the follow-up in `slot` when it is in one of `statuses`: PENDING, a
/// new generation (a new `Idempotency-Key`), attempts reset, due after the grace, with a fresh
/// `reset_token` as its own mark.
async fn reset(
    store: &impl Updates,
    pk: &str,
    slot: Slot<'_>,
    statuses: &[ActionStatus],
) -> Result<bool, StoreError> {
    let token = lease_token();
    let check = store.now_millis().saturating_add(store.grace_ms());
    let change = Change::of(slot)
        .set(Field::Status, s(ActionStatus::Pending.as_str()))
        .add_one(Field::Generation)
        .set(Field::Attempt, n(0))
        .set(Field::ResetToken, s(&token))
        .set(Field::CheckAt, n(check))
        .set(Field::Requeues, n(0))
        .set_item(PENDING_PK, s(pending_pk(pk)))
        .set_item(PENDING_SK, n(check))
        .bump_rev()
        .when_status(statuses);
    let stamp = Stamp {
        slot,
        field: Field::ResetToken,
        token: &token,
        status: ActionStatus::Pending,
    };
    match transition(store, pk, &change, &stamp).await? {
        Transition::Written(item) => {
            // A sibling due sooner than the grace keeps its time.
            if !item.is_empty() {
                settle(store, &item, pk, slot.sk()).await?;
            }
            Ok(true)
        }
        Transition::Refused(_) => Ok(false),
    }
}

/// After a transition, from the item it wrote: when nothing on the item is left to run, it
/// leaves the pending index; when an open follow-up's own time is earlier than the item's,
/// the item's time is lowered to it (never raised: the reconciler does that on its visit).
/// Conditional on the item's revision, so a concurrent transition is never undone (it
/// settles the item itself).
async fn settle(
    store: &impl Updates,
    item: &Item,
    pk: &str,
    sk: &'static str,
) -> Result<(), StoreError> {
    let open = if sk == EVENT_SK {
        parse_event(item)?
            .outbox
            .iter()
            .any(|o| !o.status.is_final())
    } else {
        opt_s(item, SYNC_STATUS)
            .and_then(ActionStatus::parse)
            .is_some_and(|st| !st.is_final())
    };
    let change = if open {
        match (earliest_open_check(item), opt_n(item, PENDING_SK)) {
            (Some(earliest), Some(current)) if sk == EVENT_SK && earliest < current => {
                Change::item().set_item(PENDING_SK, n(earliest))
            }
            _ => return Ok(()),
        }
    } else {
        Change::item()
            .remove_item(PENDING_PK)
            .remove_item(PENDING_SK)
    };
    let rev = opt_n(item, REV).unwrap_or(0);
    // Refused: someone moved the item on meanwhile; the reconciler settles it later.
    store
        .update(pk, sk, &change.when(Cond::Eq(Path::Item(REV), n(rev))))
        .await?;
    Ok(())
}
