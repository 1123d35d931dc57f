//! The table layout, in one place: key formats, attribute names, indexes, and the code that
//! creates the table in the local emulator. `template.yaml` declares the same table for AWS; a test
//! (`tests/tests/template_parity.rs`) holds the two against each other so they cannot drift.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// TTL attribute on event records and their bodies (seconds since the epoch). Never on entities.
pub const TTL_ATTR: &str = "expires_at";
/// Sparse index of items with a follow-up nobody is working on by `next_check_at`: event
/// records with a non-final event action, entities with a non-final sync.
pub const PENDING_INDEX: &str = "pending-outbox";
/// Partition key of [`PENDING_INDEX`] (`PENDING#<shard>`); present only while something is
/// not final.
pub const PENDING_PK: &str = "pending_pk";
/// Sort key of [`PENDING_INDEX`]: when the reconciler should look at the item, ms.
pub const PENDING_SK: &str = "next_check_at";
/// Partition values of [`PENDING_INDEX`]: a backlog spreads over this many keys, so one hot key
/// cannot throttle the table. The reconciler queries each.
pub const PENDING_SHARDS: u32 = 8;
/// Index of recent events per source.
pub const SOURCE_INDEX: &str = "by-source";
/// Partition key of [`SOURCE_INDEX`]: `<source>#<shard>`.
pub const SOURCE_PK: &str = "source_pk";
/// Sort key of [`SOURCE_INDEX`]: received-at, ms.
pub const SOURCE_SK: &str = "received_at";
/// Partition values per source of [`SOURCE_INDEX`]; listings merge them.
pub const SOURCE_SHARDS: u32 = 4;
/// Sort key value of event records.
pub const EVENT_SK: &str = "EVENT";
/// Sort key value of an event's raw body (an item of its own, written in the same transaction).
pub const BODY_SK: &str = "BODY";
/// Sort key value of entity records.
pub const ENTITY_SK: &str = "STATE";

/// Partition key of an event record and its body.
pub fn event_pk(source: &str, event_id: &str) -> String {
    format!("EVENT#{source}#{event_id}")
}

/// Partition key of an entity record.
pub fn entity_pk(kind: &str, id: &str) -> String {
    format!("ENTITY#{kind}#{id}")
}

/// A stable shard of `key` in `0..shards` (FNV-1a: the same on every machine and release).
pub fn shard(key: &str, shards: u32) -> u32 {
    let hash = key.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % shards.max(1)
}

/// The [`PENDING_PK`] value of the item with partition key `pk`.
pub fn pending_pk(pk: &str) -> String {
    format!("PENDING#{}", shard(pk, PENDING_SHARDS))
}

/// Every [`PENDING_PK`] value.
pub fn pending_pks() -> impl Iterator<Item = String> {
    (0..PENDING_SHARDS).map(|i| format!("PENDING#{i}"))
}

/// The [`SOURCE_PK`] value of an event.
pub fn source_pk(source: &str, event_id: &str) -> String {
    format!("{source}#{}", shard(event_id, SOURCE_SHARDS))
}

/// Every [`SOURCE_PK`] value of `source`.
pub fn source_pks(source: &str) -> impl Iterator<Item = String> + '_ {
    (0..SOURCE_SHARDS).map(move |i| format!("{source}#{i}"))
}

/// Creates the table (on-demand, both indexes) and enables TTL: what `template.yaml` declares.
pub async fn create_table(client: &Client, table: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    let attr = |name: &str, ty: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ty)
            .build()
    };
    let key = |name: &str, ty: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(ty)
            .build()
    };
    let gsi = |name: &str, pk: &str, sk: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
    };
    let built = (|| -> Result<_, aws_sdk_dynamodb::error::BuildError> {
        Ok((
            vec![
                attr(PK, ScalarAttributeType::S)?,
                attr(SK, ScalarAttributeType::S)?,
                attr(PENDING_PK, ScalarAttributeType::S)?,
                attr(PENDING_SK, ScalarAttributeType::N)?,
                attr(SOURCE_PK, ScalarAttributeType::S)?,
                attr(SOURCE_SK, ScalarAttributeType::N)?,
            ],
            vec![key(PK, KeyType::Hash)?, key(SK, KeyType::Range)?],
            vec![
                gsi(PENDING_INDEX, PENDING_PK, PENDING_SK)?,
                gsi(SOURCE_INDEX, SOURCE_PK, SOURCE_SK)?,
            ],
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTR)
                .enabled(true)
                .build()?,
        ))
    })();
    let (attrs, keys, gsis, ttl) = built.map_err(aws_sdk_dynamodb::Error::from)?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attrs))
        .set_key_schema(Some(keys))
        .set_global_secondary_indexes(Some(gsis))
        .send()
        .await?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(
            shard("EVENT#stripe#evt_1", 8),
            shard("EVENT#stripe#evt_1", 8)
        );
        let used: std::collections::BTreeSet<u32> =
            (0..200).map(|i| shard(&format!("evt_{i}"), 8)).collect();
        assert_eq!(used.len(), 8, "200 keys spread over every shard");
        assert!(pending_pks().any(|p| p == pending_pk("EVENT#stripe#evt_1")));
        assert!(source_pks("stripe").any(|p| p == source_pk("stripe", "evt_1")));
    }
}
