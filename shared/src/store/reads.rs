//! Reads: single records, strongly consistent (a guard reads the entity as it is now:
//! docs/FOLLOWUPS.md, "Guards"), and the by-source listing, every shard merged (docs/DATA.md,
//! "Indexes"). Records are decoded by `codec.rs`.

use super::codec::{
    BodyItem, Item, from_item, get_n, get_s, n, parse_entity, parse_event, parse_event_pk, s,
};
use super::dynamo::dynamo_err;
use super::schema::{
    BODY_SK, ENTITY_SK, EVENT_SK, PK, SK, SOURCE_INDEX, SOURCE_PK, SOURCE_SK, entity_pk, event_pk,
    source_pks,
};
use super::{EntityRecord, EventRecord, EventStore, StoreError};

impl EventStore {
    /// A strongly consistent read of one item.
    pub(super) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err("GetItem", e))?;
        Ok(out.item)
    }

    /// Reads one event record (without its body).
    pub async fn get_event(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<EventRecord>, StoreError> {
        self.get_item(event_pk(source, event_id), EVENT_SK)
            .await?
            .as_ref()
            .map(parse_event)
            .transpose()
    }

    /// Reads one event's raw body, as received (absent when it was larger than
    /// [`MAX_STORED_BODY`](super::MAX_STORED_BODY), or expired).
    pub async fn get_body(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .get_item(event_pk(source, event_id), BODY_SK)
            .await?
            .and_then(|item| from_item::<BodyItem>("body", &item).ok())
            .map(|b| b.body.0))
    }

    /// Reads one entity's state.
    pub async fn get_entity(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<EntityRecord>, StoreError> {
        self.get_item(entity_pk(kind, id), ENTITY_SK)
            .await?
            .as_ref()
            .map(parse_entity)
            .transpose()
    }

    /// The most recent events of `source`, newest first (every shard of the index, merged).
    pub async fn recent(
        &self,
        source: &str,
        limit: i32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        for spk in source_pks(source) {
            self.source_page(&spk, None, limit, None, &mut found)
                .await?;
        }
        Ok(newest_first(found, usize::try_from(limit).unwrap_or(0)))
    }

    /// Every event of `source` received at or after `since_ms`, newest first: each shard of the
    /// index read page after page (`page` keys a page) to the end of the window, not just its
    /// newest page.
    pub async fn events_since(
        &self,
        source: &str,
        since_ms: i64,
        page: i32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        for spk in source_pks(source) {
            let mut start = None;
            loop {
                start = self
                    .source_page(&spk, Some(since_ms), page.max(1), start, &mut found)
                    .await?;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(newest_first(found, usize::MAX))
    }

    /// One page of one by-source shard, newest first (received at or after `since_ms` when
    /// given), appended to `found` as `(received_at, source, event id)`; the key to go on from,
    /// when there is more.
    async fn source_page(
        &self,
        spk: &str,
        since_ms: Option<i64>,
        limit: i32,
        start: Option<Item>,
        found: &mut Vec<(i64, String, String)>,
    ) -> Result<Option<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(SOURCE_INDEX)
            .expression_attribute_names("#s", SOURCE_PK)
            .expression_attribute_values(":s", s(spk))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start);
        let query = match since_ms {
            None => query.key_condition_expression("#s = :s"),
            Some(since) => query
                .key_condition_expression("#s = :s AND #t >= :since")
                .expression_attribute_names("#t", SOURCE_SK)
                .expression_attribute_values(":since", n(since)),
        };
        let out = query.send().await.map_err(|e| dynamo_err("Query", e))?;
        for item in out.items() {
            let pk = get_s(item, PK)?;
            let (src, id) = parse_event_pk(pk)
                .ok_or_else(|| StoreError::Corrupt(format!("event key {pk:?}")))?;
            found.push((get_n(item, SOURCE_SK)?, src, id));
        }
        Ok(out.last_evaluated_key().cloned())
    }
}

/// `(received_at, source, id)` newest first, at most `limit` of them, as `(source, id)`.
fn newest_first(mut found: Vec<(i64, String, String)>, limit: usize) -> Vec<(String, String)> {
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.truncate(limit);
    found.into_iter().map(|(_, s, i)| (s, i)).collect()
}
