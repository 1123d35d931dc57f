//! The reconciler's side of the store: one page of one shard of the pending index at a time.
//!
//! Invariants kept here (docs/FOLLOWUPS.md, "The reconciler finds what nobody works on, by
//! time"):
//! - each open follow-up has its own check time: an event action's `check_at` on its outbox
//!   entry (an entry written before it existed falls back to the item's time), an entity's sync
//!   the entity's `next_check_at` (one sync per entity). The item's `next_check_at`, the index's
//!   sort key, is never later than the earliest of its open follow-ups': a visit sets it to
//!   exactly that earliest time, conditionally on the item's revision;
//! - a follow-up is re-enqueued only when its own time has passed and nobody holds its lease; each
//!   re-enqueue without a claim in between moves its next check out further (grace × 2^n,
//!   capped at [`REQUEUE_CAP_MS`]); a claim resets `n`;
//! - a record this code cannot read never blocks a shard: its check moves out by
//!   [`CORRUPT_RETRY_MS`] with a write conditioned only on the `next_check_at` the index showed
//!   (no parse needed), and it is counted;
//! - a shard is read page after page (`LastEvaluatedKey`); items are read 100 keys per
//!   `BatchGetItem` (unprocessed keys asked again), not one `GetItem` each.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures_util::StreamExt;

use super::codec::{
    ENTRY_CHECK_AT, ENTRY_REQUEUES, Item, OUTBOX, REV, SYNC_REQUEUES, SYNC_SOURCE, get_s, n, opt_n,
    opt_s, parse_entity, parse_event, s,
};
use super::dynamo::dynamo_err;
use super::schema::{ENTITY_SK, EVENT_SK, PENDING_INDEX, PENDING_PK, PENDING_SK, PK, SK};
use super::{ActionStatus, EventStore, FollowUp, StoreError};

/// Longest a never-claimed follow-up waits between two re-enqueues, ms (1 h).
pub const REQUEUE_CAP_MS: i64 = 3_600_000;
/// How far a malformed record's check moves out, ms (1 h): it is looked at (and counted) again
/// then, never ahead of the records behind it.
pub const CORRUPT_RETRY_MS: i64 = 3_600_000;
/// `BatchGetItem` takes at most this many keys.
const BATCH_GET_LIMIT: usize = 100;
/// Item writes in flight at once within a page.
const WRITES_IN_FLIGHT: usize = 16;
/// How often `BatchGetItem`'s unprocessed keys are asked again before the run gives up.
const UNPROCESSED_RETRIES: u32 = 8;

/// Where a shard's reading resumes: DynamoDB's `LastEvaluatedKey` of the pending index.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardCursor(HashMap<String, AttributeValue>);

/// What one page of one shard came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcilePage {
    /// Follow-ups due again (their checks moved out already): send them.
    pub due: Vec<FollowUp>,
    /// Items of the index looked at.
    pub items: usize,
    /// Keys of items that could not be read as this code writes them (their checks moved out).
    pub corrupt: Vec<String>,
    /// How long the longest-overdue re-enqueued follow-up had been due, ms.
    pub oldest_due_ms: i64,
    /// Where the shard resumes; `None` when it has no more due items.
    pub next: Option<ShardCursor>,
}

/// A key of the index, with the time it was listed under.
struct Listed {
    pk: String,
    sk: String,
    check: i64,
}

/// What a visit decided for one item.
struct Visit {
    due: Vec<FollowUp>,
    since: i64,
}

/// The earliest own check time of an item's open follow-ups (an entry without one counts at the
/// item's time); `None` when nothing is open or the item has no time. For an entity, its time.
pub(super) fn earliest_open_check(item: &Item) -> Option<i64> {
    let item_check = opt_n(item, PENDING_SK)?;
    let Some(AttributeValue::M(outbox)) = item.get(OUTBOX) else {
        return Some(item_check);
    };
    outbox
        .values()
        .filter_map(|e| match e {
            AttributeValue::M(e) => Some(e),
            _ => None,
        })
        .filter(|e| {
            opt_s(e, "status")
                .and_then(ActionStatus::parse)
                .is_some_and(|st| !st.is_final())
        })
        .map(|e| opt_n(e, ENTRY_CHECK_AT).unwrap_or(item_check))
        .min()
}

/// How long a follow-up re-enqueued for the `n`-th time since its last claim (n ≥ 1) waits
/// before the next: `grace × 2^n`, at most [`REQUEUE_CAP_MS`] (never less than the grace).
pub fn requeue_delay_ms(grace_ms: i64, n: i64) -> i64 {
    let shift = u32::try_from(n.clamp(0, 20)).unwrap_or(20);
    grace_ms
        .saturating_mul(1_i64 << shift)
        .min(REQUEUE_CAP_MS.max(grace_ms))
}

impl EventStore {
    /// One page of shard `shard_pk`: up to `page` items due before `now`, each visited (its due
    /// follow-ups' checks moved out, the item's time re-derived; malformed ones moved out and
    /// counted). The caller sends [`ReconcilePage::due`].
    pub async fn reconcile_page(
        &self,
        shard_pk: &str,
        now: i64,
        page: i32,
        from: Option<ShardCursor>,
    ) -> Result<ReconcilePage, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("#p = :p AND #c < :cutoff")
            .expression_attribute_names("#p", PENDING_PK)
            .expression_attribute_names("#c", PENDING_SK)
            .expression_attribute_values(":p", s(shard_pk))
            .expression_attribute_values(":cutoff", n(now))
            .limit(page.clamp(1, i32::try_from(BATCH_GET_LIMIT).unwrap_or(100)))
            .set_exclusive_start_key(from.map(|c| c.0))
            .send()
            .await
            .map_err(|e| dynamo_err("Query", e))?;
        let mut result = ReconcilePage {
            next: out.last_evaluated_key().map(|k| ShardCursor(k.clone())),
            ..ReconcilePage::default()
        };
        let mut listed = Vec::new();
        for item in out.items() {
            listed.push(Listed {
                pk: get_s(item, PK)?.to_owned(),
                sk: get_s(item, SK)?.to_owned(),
                check: opt_n(item, PENDING_SK).unwrap_or(0),
            });
        }
        result.items = listed.len();
        let items = self.batch_get(&listed).await?;
        let visits = futures_util::stream::iter(listed.iter().map(|l| {
            let item = items.get(&(l.pk.clone(), l.sk.clone()));
            async move {
                let visit = match item {
                    Some(item) => self.visit(l, item, now).await,
                    // Gone since it was listed (expired): nothing to do.
                    None => Ok(None),
                };
                match visit {
                    Err(StoreError::Corrupt(why)) => {
                        tracing::warn!(item = %l.pk, reason = %why, "reconciler moved a malformed item's check out");
                        self.move_out_corrupt(l, now).await?;
                        Ok((l, Err(())))
                    }
                    Err(e) => Err(e),
                    Ok(v) => Ok((l, Ok(v))),
                }
            }
        }))
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
        for visit in visits {
            match visit? {
                (l, Err(())) => result.corrupt.push(l.pk.clone()),
                (_, Ok(Some(v))) if !v.due.is_empty() => {
                    result.oldest_due_ms = result.oldest_due_ms.max(now.saturating_sub(v.since));
                    result.due.extend(v.due);
                }
                (_, Ok(_)) => {}
            }
        }
        Ok(result)
    }

    /// Strongly consistent reads of the listed items, 100 keys per `BatchGetItem`.
    async fn batch_get(
        &self,
        listed: &[Listed],
    ) -> Result<HashMap<(String, String), Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in listed.chunks(BATCH_GET_LIMIT) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|l| HashMap::from([(PK.to_owned(), s(&l.pk)), (SK.to_owned(), s(&l.sk))]))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Permanent {
                        op: "BatchGetItem",
                        message: e.to_string(),
                    })?,
            );
            let mut tries = 0;
            while let Some(req) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(|e| dynamo_err("BatchGetItem", e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let (Some(pk), Some(sk)) = (opt_s(item, PK), opt_s(item, SK)) {
                        found.insert((pk.to_owned(), sk.to_owned()), item.clone());
                    }
                }
                request = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if request.is_some() {
                    tries += 1;
                    if tries > UNPROCESSED_RETRIES {
                        return Err(StoreError::Transient {
                            op: "BatchGetItem",
                            message: "keys still unprocessed after retries".into(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(25 << tries.min(6))).await;
                }
            }
        }
        Ok(found)
    }

    /// One due item: re-enqueues what nobody holds and whose own time has passed, and sets the
    /// item's time to the earliest its open follow-ups need (or takes it out of the index).
    /// `Ok(None)` when the item moved on meanwhile (whoever moved it carries it).
    async fn visit(&self, l: &Listed, item: &Item, now: i64) -> Result<Option<Visit>, StoreError> {
        let item_check = opt_n(item, PENDING_SK).unwrap_or(l.check);
        let rev = opt_n(item, REV).unwrap_or(0);
        let mut names = HashMap::from([
            ("#nc".to_owned(), PENDING_SK.to_owned()),
            ("#rev".to_owned(), REV.to_owned()),
        ]);
        let mut values = HashMap::from([(":rev".to_owned(), n(rev)), (":one".to_owned(), n(1))]);
        let mut set = vec!["#rev = #rev + :one".to_owned()];
        let mut visit = Visit {
            due: Vec::new(),
            since: now,
        };
        let mut next: Option<i64> = None;
        // One open follow-up: its own time, its lease's end and re-enqueues so far. Returns its
        // next time, and whether it is due now (with its new re-enqueue count).
        let decide = |own: i64, lease_until: Option<i64>, requeues: i64| -> (i64, Option<i64>) {
            match lease_until {
                Some(until) if until >= now => {
                    let at = if own > until {
                        own
                    } else {
                        until.saturating_add(self.grace_ms)
                    };
                    (at, None)
                }
                _ if own <= now => {
                    let n = requeues.max(0).saturating_add(1);
                    (
                        now.saturating_add(requeue_delay_ms(self.grace_ms, n)),
                        Some(n),
                    )
                }
                _ => (own, None),
            }
        };
        if l.sk == EVENT_SK {
            let ev = parse_event(item)?;
            let raw = match item.get(OUTBOX) {
                Some(AttributeValue::M(m)) => m.clone(),
                _ => HashMap::new(),
            };
            names.insert("#o".into(), OUTBOX.to_owned());
            for (i, o) in ev.outbox.iter().enumerate() {
                if o.status.is_final() {
                    continue;
                }
                let entry = match raw.get(&o.kind) {
                    Some(AttributeValue::M(e)) => Some(e),
                    _ => None,
                };
                let own = entry
                    .and_then(|e| opt_n(e, ENTRY_CHECK_AT))
                    .unwrap_or(item_check);
                let requeues = entry.and_then(|e| opt_n(e, ENTRY_REQUEUES)).unwrap_or(0);
                let (at, due) = decide(own, o.lease_until, requeues);
                next = Some(next.map_or(at, |x| x.min(at)));
                if let Some(count) = due {
                    visit.since = visit.since.min(own);
                    visit.due.push(FollowUp::Action {
                        source: ev.source.clone(),
                        event_id: ev.event_id.clone(),
                        action: o.kind.clone(),
                    });
                    names.insert(format!("#k{i}"), o.kind.clone());
                    values.insert(format!(":c{i}"), n(at));
                    values.insert(format!(":q{i}"), n(count));
                    set.push(format!("#o.#k{i}.{ENTRY_CHECK_AT} = :c{i}"));
                    set.push(format!("#o.#k{i}.{ENTRY_REQUEUES} = :q{i}"));
                }
            }
        } else if l.sk == ENTITY_SK {
            let en = parse_entity(item)?;
            if let Some(sync) = en.sync.as_ref().filter(|s| !s.status.is_final()) {
                let requeues = opt_n(item, SYNC_REQUEUES).unwrap_or(0);
                let (at, due) = decide(item_check, sync.lease_until, requeues);
                next = Some(at);
                if let Some(count) = due {
                    visit.since = visit.since.min(item_check);
                    visit.due.push(FollowUp::Sync {
                        source: opt_s(item, SYNC_SOURCE).unwrap_or_default().to_owned(),
                        entity_kind: en.kind.clone(),
                        entity_id: en.id.clone(),
                        sync: sync.name.clone(),
                    });
                    names.insert("#sq".into(), SYNC_REQUEUES.to_owned());
                    values.insert(":sq".into(), n(count));
                    set.push("#sq = :sq".into());
                }
            }
        } else {
            return Err(StoreError::Corrupt(format!(
                "unexpected item {}/{}",
                l.pk, l.sk
            )));
        }
        let expression = match next {
            Some(at) => {
                values.insert(":nc".into(), n(at));
                set.push("#nc = :nc".into());
                format!("SET {}", set.join(", "))
            }
            None => {
                names.insert("#pp".into(), PENDING_PK.to_owned());
                format!("SET {} REMOVE #pp, #nc", set.join(", "))
            }
        };
        if !expression.contains("#o.") {
            names.remove("#o");
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&l.pk))
            .key(SK, s(&l.sk))
            .update_expression(expression)
            .condition_expression("#rev = :rev")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Some(visit)),
            Err(e) if super::transition::is_condition_failure(&e) => Ok(None),
            Err(e) => Err(dynamo_err("UpdateItem", e)),
        }
    }

    /// A record this code cannot read: its check moves out by [`CORRUPT_RETRY_MS`], conditioned
    /// only on the time the index listed it under (no parse). A record that moved on meanwhile
    /// is left as it is.
    async fn move_out_corrupt(&self, l: &Listed, now: i64) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&l.pk))
            .key(SK, s(&l.sk))
            .update_expression("SET #nc = :later")
            .condition_expression("#nc = :seen")
            .expression_attribute_names("#nc", PENDING_SK)
            .expression_attribute_values(":seen", n(l.check))
            .expression_attribute_values(":later", n(now.saturating_add(CORRUPT_RETRY_MS)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if super::transition::is_condition_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_err("UpdateItem", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_never_claimed_followup_waits_twice_as_long_each_time_up_to_the_cap() {
        assert_eq!(requeue_delay_ms(300_000, 1), 600_000);
        assert_eq!(requeue_delay_ms(300_000, 2), 1_200_000);
        assert_eq!(requeue_delay_ms(300_000, 3), 2_400_000);
        assert_eq!(requeue_delay_ms(300_000, 4), REQUEUE_CAP_MS);
        assert_eq!(requeue_delay_ms(300_000, 400), REQUEUE_CAP_MS);
        assert_eq!(
            requeue_delay_ms(7_200_000, 1),
            7_200_000,
            "never under the grace"
        );
        assert_eq!(requeue_delay_ms(0, 3), 0);
    }
}
