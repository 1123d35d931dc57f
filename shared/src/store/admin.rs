//! Operator reads of the follow-up lifecycle: every follow-up of the table (event actions and
//! entity syncs) with its status, attempts, last answer and next check, for `hookline followups
//! list` and `retry --all-failed`.
//!
//! Why a module of its own: FAILED and SKIPPED follow-ups are final, so they have left the sparse
//! pending index and no key leads to them; finding them takes a `Scan`. A Scan reads (and is
//! billed for) every item of the table, raw bodies included, whatever its filter, so it is an
//! operator's tool, paginated and bounded by its caller, never on a function's path. PENDING and
//! RUNNING ones are still in the pending index and are read from it instead (one `Query` per
//! shard, then a consistent read of each item).
//!
//! Invariant: this module only reads. Every change an operator makes goes through the
//! conditional transitions of `followups.rs` (`retry_action`, `retry_sync`), so a listing that is
//! already out of date can never move a follow-up that someone else moved meanwhile.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use super::codec::{
    Item, OUTBOX, SYNC_SOURCE, SYNC_STATUS, UPDATED_AT, opt_n, opt_s, parse_entity, parse_event, s,
};
use super::dynamo::dynamo_err;
use super::schema::{
    ENTITY_SK, EVENT_SK, PENDING_INDEX, PENDING_PK, PENDING_SK, PK, SK, SOURCE_SK, entity_pk,
    pending_pks,
};
use super::{ActionStatus, EventStore, FollowUp, StoreError};

/// One follow-up as an operator sees it: what it is, where it stands, never its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowupView {
    /// The follow-up (what a queue message for it carries).
    pub followup: FollowUp,
    /// Its lifecycle state.
    pub status: ActionStatus,
    /// Attempts started since it was recorded (or last retried by an operator).
    pub attempt: i64,
    /// Operator retries so far; part of the `Idempotency-Key`.
    pub generation: i64,
    /// The target's last HTTP status (0: none, or no answer).
    pub last_status: i64,
    /// Short reason for the last outcome (never a body).
    pub reason: Option<String>,
    /// When the reconciler looks at it next, ms (not final ones only).
    pub next_check_at: Option<i64>,
    /// When its lease ends, ms, while claimed.
    pub lease_until: Option<i64>,
    /// When its event was received (event action) or its entity last changed (sync), ms.
    pub at: i64,
}

/// Which follow-ups a listing keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowupFilter {
    /// Only these states (empty: any).
    pub statuses: Vec<ActionStatus>,
    /// Only follow-ups of this source.
    pub source: Option<String>,
    /// Only those whose event was received (or entity changed) at or after this time, ms.
    pub since_ms: Option<i64>,
}

impl FollowupFilter {
    /// True when `view` passes the filter.
    pub fn keeps(&self, view: &FollowupView) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&view.status))
            && self
                .source
                .as_deref()
                .is_none_or(|src| view.followup.source() == src)
            && self.since_ms.is_none_or(|since| view.at >= since)
    }

    /// True when only PENDING or RUNNING follow-ups are asked for: the pending index holds them
    /// all, and a Scan is not needed.
    pub fn pending_only(&self) -> bool {
        !self.statuses.is_empty()
            && self
                .statuses
                .iter()
                .all(|s| matches!(s, ActionStatus::Pending | ActionStatus::Running))
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct FollowupPage {
    /// The follow-ups on this page that pass the filter.
    pub followups: Vec<FollowupView>,
    /// Items DynamoDB read for this page (what the page cost, before the filter).
    pub scanned: usize,
    /// Where the next page starts; `None` once the table (or index) is exhausted.
    pub next: Option<PageKey>,
    /// Keys of items that could not be read as this code writes them (skipped, reported).
    pub corrupt: Vec<String>,
}

/// Where a listing resumes: DynamoDB's `LastEvaluatedKey` (a Scan), or the shard of the pending
/// index and its key.
#[derive(Debug, Clone, PartialEq)]
pub struct PageKey {
    shard: usize,
    key: Option<HashMap<String, AttributeValue>>,
}

impl FollowupView {
    /// Every follow-up of an event record, or of an entity record (its sync), in the item.
    pub(super) fn from_item(item: &Item) -> Result<Vec<Self>, StoreError> {
        let next_check_at = opt_n(item, PENDING_SK);
        match opt_s(item, SK) {
            Some(EVENT_SK) => {
                let ev = parse_event(item)?;
                Ok(ev
                    .outbox
                    .into_iter()
                    .map(|o| Self {
                        followup: FollowUp::Action {
                            source: ev.source.clone(),
                            event_id: ev.event_id.clone(),
                            action: o.kind,
                        },
                        next_check_at: next_check_at.filter(|_| !o.status.is_final()),
                        status: o.status,
                        attempt: o.attempt,
                        generation: o.generation,
                        last_status: o.last_status,
                        reason: o.reason,
                        lease_until: o.lease_until,
                        at: ev.received_at,
                    })
                    .collect())
            }
            Some(ENTITY_SK) => {
                let en = parse_entity(item)?;
                let Some(sync) = en.sync else {
                    return Ok(Vec::new());
                };
                Ok(vec![Self {
                    followup: FollowUp::Sync {
                        source: opt_s(item, SYNC_SOURCE).unwrap_or_default().to_owned(),
                        entity_kind: en.kind,
                        entity_id: en.id,
                        sync: sync.name,
                    },
                    next_check_at: next_check_at.filter(|_| !sync.status.is_final()),
                    status: sync.status,
                    attempt: sync.attempt,
                    generation: sync.generation,
                    last_status: sync.last_status,
                    reason: sync.reason,
                    lease_until: sync.lease_until,
                    at: opt_n(item, UPDATED_AT).unwrap_or(0),
                }])
            }
            _ => Ok(Vec::new()),
        }
    }
}

impl EventStore {
    /// Every follow-up of one event (its event actions), `None` when the event is not recorded.
    pub async fn event_followups(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<Vec<FollowupView>>, StoreError> {
        self.get_item(super::schema::event_pk(source, event_id), EVENT_SK)
            .await?
            .as_ref()
            .map(FollowupView::from_item)
            .transpose()
    }

    /// One entity's sync, `None` when the entity is not recorded or keeps no sync.
    pub async fn entity_followup(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<FollowupView>, StoreError> {
        Ok(match self.get_item(entity_pk(kind, id), ENTITY_SK).await? {
            Some(item) => FollowupView::from_item(&item)?.into_iter().next(),
            None => None,
        })
    }

    /// The follow-up a queue message names, as it stands now (`None`: its event or entity is not
    /// recorded, e.g. expired).
    pub async fn followup(&self, f: &FollowUp) -> Result<Option<FollowupView>, StoreError> {
        match f {
            FollowUp::Action {
                source,
                event_id,
                action,
            } => Ok(self
                .event_followups(source, event_id)
                .await?
                .and_then(|all| all.into_iter().find(|v| v.followup.kind() == action))),
            FollowUp::Sync {
                entity_kind,
                entity_id,
                ..
            } => self.entity_followup(entity_kind, entity_id).await,
        }
    }

    /// One page of follow-ups passing `filter`, reading at most `page_size` items, starting at
    /// `start` (`None`: the beginning). Reads the pending index when the filter asks only for
    /// PENDING or RUNNING ones, else Scans the table: the caller bounds how many pages it reads.
    pub async fn list_followups(
        &self,
        filter: &FollowupFilter,
        start: Option<PageKey>,
        page_size: i32,
    ) -> Result<FollowupPage, StoreError> {
        if filter.pending_only() {
            self.pending_page(filter, start, page_size).await
        } else {
            self.scan_page(filter, start.and_then(|p| p.key), page_size)
                .await
        }
    }

    async fn scan_page(
        &self,
        filter: &FollowupFilter,
        start: Option<HashMap<String, AttributeValue>>,
        page_size: i32,
    ) -> Result<FollowupPage, StoreError> {
        // Narrow on DynamoDB's side what can be narrowed (it lowers the bytes returned, not the
        // capacity consumed); an outbox's statuses sit under action-kind keys, checked here.
        let mut names = HashMap::from([
            ("#sk".to_owned(), SK.to_owned()),
            ("#o".to_owned(), OUTBOX.to_owned()),
            ("#ss".to_owned(), SYNC_STATUS.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":event".to_owned(), s(EVENT_SK)),
            (":state".to_owned(), s(ENTITY_SK)),
        ]);
        let mut event = vec!["#sk = :event".to_owned(), "attribute_exists(#o)".to_owned()];
        let mut entity = vec![
            "#sk = :state".to_owned(),
            "attribute_exists(#ss)".to_owned(),
        ];
        if let Some(src) = &filter.source {
            names.insert("#src".into(), "source".into());
            names.insert("#ssrc".into(), SYNC_SOURCE.into());
            values.insert(":src".into(), s(src));
            event.push("#src = :src".into());
            entity.push("#ssrc = :src".into());
        }
        if let Some(since) = filter.since_ms {
            names.insert("#ra".into(), SOURCE_SK.into());
            names.insert("#ua".into(), UPDATED_AT.into());
            values.insert(":since".into(), super::codec::n(since));
            event.push("#ra >= :since".into());
            entity.push("#ua >= :since".into());
        }
        if !filter.statuses.is_empty() {
            let mut keys = Vec::new();
            for (i, st) in filter.statuses.iter().enumerate() {
                values.insert(format!(":st{i}"), s(st.as_str()));
                keys.push(format!(":st{i}"));
            }
            entity.push(format!("#ss IN ({})", keys.join(", ")));
        }
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(format!(
                "({}) OR ({})",
                event.join(" AND "),
                entity.join(" AND ")
            ))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .set_exclusive_start_key(start)
            .limit(page_size)
            .send()
            .await
            .map_err(|e| dynamo_err("Scan", e))?;
        let mut page = FollowupPage {
            scanned: usize::try_from(out.scanned_count()).unwrap_or(0),
            next: out
                .last_evaluated_key()
                .filter(|k| !k.is_empty())
                .map(|k| PageKey {
                    shard: 0,
                    key: Some(k.clone()),
                }),
            ..FollowupPage::default()
        };
        for item in out.items() {
            keep(&mut page, filter, item);
        }
        Ok(page)
    }

    async fn pending_page(
        &self,
        filter: &FollowupFilter,
        start: Option<PageKey>,
        page_size: i32,
    ) -> Result<FollowupPage, StoreError> {
        let shards: Vec<String> = pending_pks().collect();
        let (shard, key) = start.map_or((0, None), |p| (p.shard, p.key));
        let mut page = FollowupPage::default();
        let Some(shard_pk) = shards.get(shard) else {
            return Ok(page);
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", PENDING_PK)
            .expression_attribute_values(":p", s(shard_pk))
            .set_exclusive_start_key(key)
            .limit(page_size)
            .send()
            .await
            .map_err(|e| dynamo_err("Query", e))?;
        page.scanned = usize::try_from(out.scanned_count()).unwrap_or(0);
        page.next = match out.last_evaluated_key().filter(|k| !k.is_empty()) {
            Some(k) => Some(PageKey {
                shard,
                key: Some(k.clone()),
            }),
            None if shard + 1 < shards.len() => Some(PageKey {
                shard: shard + 1,
                key: None,
            }),
            None => None,
        };
        for keys in out.items() {
            let (Some(pk), Some(sk)) = (opt_s(keys, PK), opt_s(keys, SK)) else {
                continue;
            };
            // The index holds keys only, and may lag: read the item itself.
            if let Some(item) = self.get_item(pk.to_owned(), sk).await? {
                keep(&mut page, filter, &item);
            }
        }
        Ok(page)
    }
}

/// Adds the follow-ups of `item` that pass `filter` to `page`; a malformed item is reported.
fn keep(page: &mut FollowupPage, filter: &FollowupFilter, item: &Item) {
    match FollowupView::from_item(item) {
        Ok(views) => page
            .followups
            .extend(views.into_iter().filter(|v| filter.keeps(v))),
        Err(_) => page.corrupt.push(opt_s(item, PK).unwrap_or("?").to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: ActionStatus, source: &str, at: i64) -> FollowupView {
        FollowupView {
            followup: FollowUp::Action {
                source: source.into(),
                event_id: "evt_1".into(),
                action: "receipt".into(),
            },
            status,
            attempt: 1,
            generation: 0,
            last_status: 401,
            reason: None,
            next_check_at: None,
            lease_until: None,
            at,
        }
    }

    #[test]
    fn the_filter_keeps_status_source_and_time() {
        let f = FollowupFilter {
            statuses: vec![ActionStatus::Failed],
            source: Some("stripe".into()),
            since_ms: Some(100),
        };
        assert!(f.keeps(&view(ActionStatus::Failed, "stripe", 100)));
        assert!(!f.keeps(&view(ActionStatus::Done, "stripe", 100)));
        assert!(!f.keeps(&view(ActionStatus::Failed, "users", 100)));
        assert!(!f.keeps(&view(ActionStatus::Failed, "stripe", 99)));
        assert!(FollowupFilter::default().keeps(&view(ActionStatus::Done, "x", 0)));
    }

    #[test]
    fn only_pending_and_running_use_the_index() {
        let with = |statuses| FollowupFilter {
            statuses,
            ..FollowupFilter::default()
        };
        assert!(with(vec![ActionStatus::Pending, ActionStatus::Running]).pending_only());
        assert!(!with(vec![ActionStatus::Pending, ActionStatus::Failed]).pending_only());
        assert!(!with(vec![]).pending_only());
    }
}
