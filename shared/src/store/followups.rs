//! The follow-up lifecycle in DynamoDB: claims and marks (the reconciler's pages are in
//! `reconcile.rs`). Each transition is one conditional `UpdateItem` on the event record (event
//! actions, an entry of its `outbox` map) or the entity record (its sync), so that only the lease
//! holder moves a follow-up on and a retry, a crash or a copy of a message can never run one
//! twice at the same time; each recognises its own earlier success after a lost answer
//! (`transition.rs`, docs/FOLLOWUPS.md).
//!
//! Items with anything not final carry `pending_pk`/`next_check_at` (the sparse pending index).
//! Each follow-up has its own check time (an event action's `check_at` on its outbox entry; a
//! sync's is the entity's `next_check_at`): recorded → now + grace; claimed → lease end +
//! visibility; backed off → visible again + grace. The item's `next_check_at` is never later
//! than the earliest of its open follow-ups': a transition writes its follow-up's own time and
//! then, from the item it wrote (`ALL_NEW`), lowers the item's time when a sibling needs a look
//! sooner ([`EventStore::settle`]); the reconciler re-derives it on each visit.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{
    Item, OUTBOX, REV, SYNC_ATTEMPT, SYNC_GENERATION, SYNC_LAST_STATUS, SYNC_LEASE,
    SYNC_LEASE_UNTIL, SYNC_REASON, SYNC_SENT, SYNC_SEQ, SYNC_STATUS, SYNC_SYNCED,
    SYNC_SYNCED_VERSION, VERSION, n, opt_n, opt_s, parse_entity, parse_event, parse_outbox_entry,
    parse_target, s, sync_json,
};
use super::dynamo::dynamo_err;
use super::reconcile::{ENTRY_CHECK_AT, ENTRY_REQUEUES, SYNC_REQUEUES, earliest_open_check};
use super::schema::{
    ENTITY_SK, EVENT_SK, PENDING_PK, PENDING_SK, PK, SK, entity_pk, event_pk, pending_pk,
};
use super::transition::{
    LAST_LEASE, RESET_TOKEN, SYNC_LAST_LEASE, SYNC_RESET_TOKEN, Stamp, Transition,
    is_condition_failure, lease_token, transition, transition_if,
};
use super::{
    ActionStatus, EntityRecord, EventStore, Guard, OutboxEntry, RetryScope, StoreError, SyncTarget,
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
    fn visibility_check(&self, lease_until: i64, visibility_ms: i64) -> i64 {
        lease_until.saturating_add(visibility_ms)
    }

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
        let now = self.clock.now_millis();
        let lease = lease_token();
        let lease_until = now.saturating_add(lease_ms);
        let pk = event_pk(source, event_id);
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(EVENT_SK))
            .update_expression(
                "SET #o.#k.#st = :running, #o.#k.lease = :lease, #o.#k.lease_until = :lu, \
                 #o.#k.attempt = #o.#k.attempt + :one, #o.#k.#ca = :nc, #o.#k.#rq = :zero, \
                 #pp = :pp, #nc = :nc, #rev = #rev + :one",
            )
            .condition_expression(
                "(#o.#k.#st = :pending OR #o.#k.#st = :running) AND \
                 (attribute_not_exists(#o.#k.lease_until) OR #o.#k.lease_until < :now)",
            )
            .expression_attribute_names("#o", OUTBOX)
            .expression_attribute_names("#k", action)
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#pp", PENDING_PK)
            .expression_attribute_names("#nc", PENDING_SK)
            .expression_attribute_names("#rev", REV)
            .expression_attribute_names("#ca", ENTRY_CHECK_AT)
            .expression_attribute_names("#rq", ENTRY_REQUEUES)
            .expression_attribute_values(":running", s(ActionStatus::Running.as_str()))
            .expression_attribute_values(":pending", s(ActionStatus::Pending.as_str()))
            .expression_attribute_values(":lease", s(&lease))
            .expression_attribute_values(":lu", n(lease_until))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":pp", s(pending_pk(&pk)))
            .expression_attribute_values(
                ":nc",
                n(self.visibility_check(lease_until, visibility_ms)),
            )
            .expression_attribute_values(":now", n(now));
        let stamp = Stamp {
            entry: Some(action),
            token_attr: "lease",
            token: &lease,
            status_attr: "status",
            status: ActionStatus::Running,
        };
        let item = match transition(req, &stamp).await? {
            Transition::Written(item) => item,
            Transition::Refused(_) => return Ok(None),
        };
        let entry = match item.get(OUTBOX) {
            Some(AttributeValue::M(o)) => match o.get(action) {
                Some(AttributeValue::M(e)) => parse_outbox_entry(action, e)?,
                _ => return Err(StoreError::Corrupt(format!("outbox entry {action}"))),
            },
            _ => return Err(StoreError::Corrupt("outbox".into())),
        };
        // The item's time is now this claim's; a sibling due sooner lowers it again.
        self.settle(&item, &pk, EVENT_SK).await?;
        Ok(Some(ClaimedAction { entry, lease }))
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
        let now = self.clock.now_millis();
        let pk = event_pk(source, event_id);
        let (status, http, reason, check) = match finish {
            Finish::Done { status } => (ActionStatus::Done, *status, None, None),
            Finish::Failed { status, reason } => {
                (ActionStatus::Failed, *status, Some(reason.as_str()), None)
            }
            Finish::Skipped { reason } => (ActionStatus::Skipped, 0, Some(reason.as_str()), None),
            Finish::Retry {
                status,
                reason,
                visible_at,
            } => (
                ActionStatus::Pending,
                *status,
                Some(reason.as_str()),
                Some(visible_at.saturating_add(self.grace_ms)),
            ),
        };
        let mut set = vec![
            "#o.#k.#st = :st",
            "#o.#k.last_status = :ls",
            "#o.#k.finished_at = :now",
            "#o.#k.#ll = :lease",
            "#rev = #rev + :one",
        ];
        let mut values = HashMap::from([
            (":st".to_owned(), s(status.as_str())),
            (":ls".to_owned(), n(i64::from(http))),
            (":now".to_owned(), n(now)),
            (":one".to_owned(), n(1)),
            (":lease".to_owned(), s(lease)),
        ]);
        if let Some(reason) = reason {
            set.push("#o.#k.reason = :r");
            values.insert(":r".into(), s(reason));
        }
        if let Some(check) = check {
            // The follow-up's own time; the item's is lowered by `settle` if this is sooner.
            set.push("#o.#k.#ca = :nc");
            values.insert(":nc".into(), n(check));
        }
        let mut names = HashMap::from([
            ("#o".to_owned(), OUTBOX.to_owned()),
            ("#k".to_owned(), action.to_owned()),
            ("#st".to_owned(), "status".to_owned()),
            ("#ll".to_owned(), LAST_LEASE.to_owned()),
            ("#rev".to_owned(), REV.to_owned()),
        ]);
        if check.is_some() {
            names.insert("#ca".into(), ENTRY_CHECK_AT.to_owned());
        }
        // A backoff keeps `lease_until` (and drops only the lease token): copies of the message
        // cannot claim the follow-up before its backoff ends.
        let remove = match hold_until(finish) {
            Some(hold) => {
                set.push("#o.#k.lease_until = :hold");
                values.insert(":hold".into(), n(hold));
                "#o.#k.lease"
            }
            None => "#o.#k.lease, #o.#k.lease_until",
        };
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(EVENT_SK))
            .update_expression(format!("SET {} REMOVE {remove}", set.join(", ")))
            .condition_expression("#o.#k.lease = :lease")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values));
        let stamp = Stamp {
            entry: Some(action),
            token_attr: LAST_LEASE,
            token: lease,
            status_attr: "status",
            status,
        };
        match transition(req, &stamp).await? {
            Transition::Written(item) => {
                if !item.is_empty() {
                    self.settle(&item, &pk, EVENT_SK).await?;
                }
                Ok(Marked::Written)
            }
            Transition::Refused(_) => Ok(Marked::LeaseLost),
        }
    }

    /// After a transition, from the item it wrote: when nothing on the item is left to run, it
    /// leaves the pending index; when an open follow-up's own time is earlier than the item's,
    /// the item's time is lowered to it (never raised: the reconciler does that on its visit).
    /// Conditional on the item's revision, so a concurrent transition is never undone (it
    /// settles the item itself).
    pub(super) async fn settle(&self, item: &Item, pk: &str, sk: &str) -> Result<(), StoreError> {
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
        let rev = opt_n(item, REV).unwrap_or(0);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .condition_expression("#rev = :rev")
            .expression_attribute_names("#nc", PENDING_SK)
            .expression_attribute_names("#rev", REV)
            .expression_attribute_values(":rev", n(rev));
        let update = if open {
            let current = opt_n(item, PENDING_SK);
            match (earliest_open_check(item), current) {
                (Some(earliest), Some(current)) if sk == EVENT_SK && earliest < current => update
                    .update_expression("SET #nc = :nc")
                    .expression_attribute_values(":nc", n(earliest)),
                _ => return Ok(()),
            }
        } else {
            update
                .update_expression("REMOVE #pp, #nc")
                .expression_attribute_names("#pp", PENDING_PK)
        };
        let res = update.send().await;
        match res {
            Ok(_) => Ok(()),
            // Someone moved the item on meanwhile; the reconciler settles it later.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_err("UpdateItem", e)),
        }
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
        let now = self.clock.now_millis();
        let lease = lease_token();
        let lease_until = now.saturating_add(lease_ms);
        let pk = entity_pk(kind, id);
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(ENTITY_SK))
            .update_expression(
                "SET #st = :running, #l = :lease, #lu = :lu, #a = if_not_exists(#a, :zero) + :one, \
                 #rq = :zero, #pp = :pp, #nc = :nc, #rev = if_not_exists(#rev, :zero) + :one",
            )
            .condition_expression(
                "(#st = :pending OR #st = :running) AND (attribute_not_exists(#lu) OR #lu < :now)",
            )
            .expression_attribute_names("#st", SYNC_STATUS)
            .expression_attribute_names("#l", SYNC_LEASE)
            .expression_attribute_names("#lu", SYNC_LEASE_UNTIL)
            .expression_attribute_names("#a", SYNC_ATTEMPT)
            .expression_attribute_names("#rq", SYNC_REQUEUES)
            .expression_attribute_names("#pp", PENDING_PK)
            .expression_attribute_names("#nc", PENDING_SK)
            .expression_attribute_names("#rev", REV)
            .expression_attribute_values(":running", s(ActionStatus::Running.as_str()))
            .expression_attribute_values(":pending", s(ActionStatus::Pending.as_str()))
            .expression_attribute_values(":lease", s(&lease))
            .expression_attribute_values(":lu", n(lease_until))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":pp", s(pending_pk(&pk)))
            .expression_attribute_values(
                ":nc",
                n(self.visibility_check(lease_until, visibility_ms)),
            )
            .expression_attribute_values(":now", n(now));
        let stamp = Stamp {
            entry: None,
            token_attr: SYNC_LEASE,
            token: &lease,
            status_attr: SYNC_STATUS,
            status: ActionStatus::Running,
        };
        let item = match transition(req, &stamp).await? {
            Transition::Written(item) => item,
            Transition::Refused(_) => return Ok(None),
        };
        Ok(Some(ClaimedSync {
            entity: parse_entity(&item)?,
            lease,
        }))
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
        let now = self.clock.now_millis();
        let pk = entity_pk(&entity.kind, &entity.id);
        let (status, http, reason, check) = match finish {
            Finish::Done { status } => (ActionStatus::Done, *status, None, None),
            Finish::Failed { status, reason } => {
                (ActionStatus::Failed, *status, Some(reason.clone()), None)
            }
            Finish::Skipped { reason } => (ActionStatus::Skipped, 0, Some(reason.clone()), None),
            Finish::Retry {
                status,
                reason,
                visible_at,
            } => (
                ActionStatus::Pending,
                *status,
                Some(reason.clone()),
                Some(visible_at.saturating_add(self.grace_ms)),
            ),
        };
        let first = self
            .sync_update(
                &pk,
                lease,
                posted,
                entity.version,
                status,
                http,
                reason.as_deref(),
                check,
                hold_until(finish),
                true,
            )
            .await?;
        match first {
            Transition::Written(item) => {
                if !item.is_empty() {
                    self.settle(&item, &pk, ENTITY_SK).await?;
                }
                Ok(Marked::Written)
            }
            Transition::Refused(Some(old)) if opt_s(&old, SYNC_LEASE) == Some(lease) => {
                // Ours, but the entity moved on: record what was posted, release, go again.
                let check = now.saturating_add(self.grace_ms);
                match self
                    .sync_update(
                        &pk,
                        lease,
                        posted,
                        entity.version,
                        ActionStatus::Pending,
                        http,
                        Some("entity changed while syncing"),
                        Some(check),
                        None,
                        false,
                    )
                    .await?
                {
                    Transition::Written(_) => Ok(Marked::Moved),
                    Transition::Refused(_) => Ok(Marked::LeaseLost),
                }
            }
            Transition::Refused(_) => Ok(Marked::LeaseLost),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_update(
        &self,
        pk: &str,
        lease: &str,
        posted: Option<&SyncTarget>,
        version: i64,
        status: ActionStatus,
        http: u16,
        reason: Option<&str>,
        check: Option<i64>,
        hold: Option<i64>,
        same_version: bool,
    ) -> Result<Transition, StoreError> {
        let mut names = HashMap::from([
            ("#st".to_owned(), SYNC_STATUS.to_owned()),
            ("#l".to_owned(), SYNC_LEASE.to_owned()),
            ("#ll".to_owned(), SYNC_LAST_LEASE.to_owned()),
            ("#lu".to_owned(), SYNC_LEASE_UNTIL.to_owned()),
            ("#ls".to_owned(), SYNC_LAST_STATUS.to_owned()),
            ("#rev".to_owned(), REV.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":st".to_owned(), s(status.as_str())),
            (":ls".to_owned(), n(i64::from(http))),
            (":lease".to_owned(), s(lease)),
            (":one".to_owned(), n(1)),
        ]);
        let mut set = vec![
            "#st = :st",
            "#ls = :ls",
            "#ll = :lease",
            "#rev = #rev + :one",
        ];
        // A backoff keeps the lease's end (see `hold_until`); anything else ends the lease.
        let mut remove = vec!["#l"];
        match hold {
            Some(hold) => {
                values.insert(":hold".into(), n(hold));
                set.push("#lu = :hold");
            }
            None => remove.push("#lu"),
        }
        if let Some(posted) = posted {
            names.insert("#sy".into(), SYNC_SYNCED.to_owned());
            names.insert("#sv".into(), SYNC_SYNCED_VERSION.to_owned());
            values.insert(":sy".into(), s(sync_json(posted)));
            values.insert(":sv".into(), n(version));
            set.push("#sy = :sy");
            set.push("#sv = :sv");
        } else if status == ActionStatus::Done {
            names.insert("#sv".into(), SYNC_SYNCED_VERSION.to_owned());
            values.insert(":sv".into(), n(version));
            set.push("#sv = :sv");
        }
        names.insert("#r".into(), SYNC_REASON.to_owned());
        match reason {
            Some(r) => {
                values.insert(":r".into(), s(r));
                set.push("#r = :r");
            }
            None => remove.push("#r"),
        }
        if let Some(check) = check {
            names.insert("#nc".into(), PENDING_SK.to_owned());
            values.insert(":nc".into(), n(check));
            set.push("#nc = :nc");
        }
        let mut condition = "#l = :lease".to_owned();
        if same_version {
            names.insert("#v".into(), VERSION.to_owned());
            values.insert(":v".into(), n(version));
            condition.push_str(" AND #v = :v");
        }
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(ENTITY_SK))
            .update_expression(format!(
                "SET {} REMOVE {}",
                set.join(", "),
                remove.join(", ")
            ))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values));
        let stamp = Stamp {
            entry: None,
            token_attr: SYNC_LAST_LEASE,
            token: lease,
            status_attr: SYNC_STATUS,
            status,
        };
        transition(req, &stamp).await
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
        let Some(sync) = &entity.sync else {
            return Err(StoreError::Corrupt(format!(
                "{}/{} keeps no sync",
                entity.kind, entity.id
            )));
        };
        let seq = sync.seq.saturating_add(1);
        let pk = entity_pk(&entity.kind, &entity.id);
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(ENTITY_SK))
            .update_expression(
                "SET #sent = :sent, #seq = :seq, #rev = if_not_exists(#rev, :zero) + :one",
            )
            .condition_expression("#l = :lease AND (attribute_not_exists(#seq) OR #seq = :claimed)")
            .expression_attribute_names("#sent", SYNC_SENT)
            .expression_attribute_names("#seq", SYNC_SEQ)
            .expression_attribute_names("#rev", REV)
            .expression_attribute_names("#l", SYNC_LEASE)
            .expression_attribute_values(":sent", s(sync_json(state)))
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":claimed", n(sync.seq))
            .expression_attribute_values(":lease", s(lease))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        let ours = |old: &Item| {
            opt_s(old, SYNC_LEASE) == Some(lease)
                && opt_n(old, SYNC_SEQ) == Some(seq)
                && parse_target(old, SYNC_SENT).ok().flatten().as_ref() == Some(state)
        };
        match transition_if(req, "sent", ours).await? {
            Transition::Written(_) => Ok(Some(seq)),
            Transition::Refused(_) => Ok(None),
        }
    }

    /// Why a guarded event action must be skipped now (its guard read against the entity as it
    /// is, strongly consistent), or `None` when it may run.
    pub async fn guard_fails(&self, guard: &Guard) -> Result<Option<String>, StoreError> {
        let e = guard.entity();
        let entity = self.get_entity(&e.kind, &e.id).await?;
        Ok(guard.fails(entity.as_ref()))
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
        let now = self.clock.now_millis();
        let token = lease_token();
        let pk = event_pk(source, event_id);
        let (condition, done) = match scope {
            RetryScope::AlsoDone => (
                "#o.#k.#st IN (:failed, :skipped, :done)",
                Some(HashMap::from([(
                    ":done".to_owned(),
                    s(ActionStatus::Done.as_str()),
                )])),
            ),
            RetryScope::FailedOrSkipped => ("#o.#k.#st IN (:failed, :skipped)", None),
        };
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(EVENT_SK))
            .update_expression(
                "SET #o.#k.#st = :pending, #o.#k.generation = #o.#k.generation + :one, \
                 #o.#k.attempt = :zero, #o.#k.#rt = :rt, #o.#k.#ca = :nc, #o.#k.#rq = :zero, \
                 #pp = :pp, #nc = :nc, #rev = #rev + :one",
            )
            .condition_expression(condition)
            .expression_attribute_names("#o", OUTBOX)
            .expression_attribute_names("#rt", RESET_TOKEN)
            .expression_attribute_values(":rt", s(&token))
            .expression_attribute_names("#k", action)
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#ca", ENTRY_CHECK_AT)
            .expression_attribute_names("#rq", ENTRY_REQUEUES)
            .expression_attribute_names("#pp", PENDING_PK)
            .expression_attribute_names("#nc", PENDING_SK)
            .expression_attribute_names("#rev", REV)
            .expression_attribute_values(":pending", s(ActionStatus::Pending.as_str()))
            .expression_attribute_values(":failed", s(ActionStatus::Failed.as_str()))
            .expression_attribute_values(":skipped", s(ActionStatus::Skipped.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":pp", s(pending_pk(&pk)))
            .expression_attribute_values(":nc", n(now.saturating_add(self.grace_ms)));
        for (k, v) in done.into_iter().flatten() {
            req = req.expression_attribute_values(k, v);
        }
        let stamp = Stamp {
            entry: Some(action),
            token_attr: RESET_TOKEN,
            token: &token,
            status_attr: "status",
            status: ActionStatus::Pending,
        };
        match transition(req, &stamp).await? {
            Transition::Written(item) => {
                // A sibling due sooner than the grace keeps its time.
                if !item.is_empty() {
                    self.settle(&item, &pk, EVENT_SK).await?;
                }
                Ok(true)
            }
            Transition::Refused(_) => Ok(false),
        }
    }

    /// An operator's retry of an entity's FAILED or SKIPPED sync: PENDING, new generation.
    pub async fn retry_sync(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        let now = self.clock.now_millis();
        let token = lease_token();
        let pk = entity_pk(kind, id);
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(ENTITY_SK))
            .update_expression(
                "SET #st = :pending, #g = if_not_exists(#g, :zero) + :one, #a = :zero, \
                 #rt = :rt, #rq = :zero, #pp = :pp, #nc = :nc, #rev = if_not_exists(#rev, :zero) + :one",
            )
            .condition_expression("#st IN (:failed, :skipped)")
            .expression_attribute_names("#rt", SYNC_RESET_TOKEN)
            .expression_attribute_values(":rt", s(&token))
            .expression_attribute_names("#st", SYNC_STATUS)
            .expression_attribute_names("#g", SYNC_GENERATION)
            .expression_attribute_names("#a", SYNC_ATTEMPT)
            .expression_attribute_names("#rq", SYNC_REQUEUES)
            .expression_attribute_names("#pp", PENDING_PK)
            .expression_attribute_names("#nc", PENDING_SK)
            .expression_attribute_names("#rev", REV)
            .expression_attribute_values(":pending", s(ActionStatus::Pending.as_str()))
            .expression_attribute_values(":failed", s(ActionStatus::Failed.as_str()))
            .expression_attribute_values(":skipped", s(ActionStatus::Skipped.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":pp", s(pending_pk(&pk)))
            .expression_attribute_values(":nc", n(now.saturating_add(self.grace_ms)));
        let stamp = Stamp {
            entry: None,
            token_attr: SYNC_RESET_TOKEN,
            token: &token,
            status_attr: SYNC_STATUS,
            status: ActionStatus::Pending,
        };
        Ok(matches!(
            transition(req, &stamp).await?,
            Transition::Written(_)
        ))
    }
}
