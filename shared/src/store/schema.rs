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
/// TTL attribute on event records (seconds since the epoch).
pub const TTL_ATTR: &str = "expires_at";
/// Sparse index of events whose outbox still has PENDING follow-ups.
pub const PENDING_INDEX: &str = "pending-outbox";
/// Partition key of [`PENDING_INDEX`]; present only while something is pending.
pub const PENDING_PK: &str = "pending_pk";
/// Sort key of [`PENDING_INDEX`]: received-at, ms.
pub const PENDING_SK: &str = "pending_since";
/// Index of recent events per source.
pub const SOURCE_INDEX: &str = "by-source";
/// Partition key of [`SOURCE_INDEX`].
pub const SOURCE_PK: &str = "source";
/// Sort key of [`SOURCE_INDEX`]: received-at, ms.
pub const SOURCE_SK: &str = "received_at";
/// The single value of [`PENDING_PK`].
pub const PENDING_VALUE: &str = "PENDING";
/// Sort key value of event records.
pub const EVENT_SK: &str = "EVENT";
/// Sort key value of entity records.
pub const ENTITY_SK: &str = "STATE";

/// Partition key of an event record.
pub fn event_pk(source: &str, event_id: &str) -> String {
    format!("EVENT#{source}#{event_id}")
}

/// Partition key of an entity record.
pub fn entity_pk(kind: &str, id: &str) -> String {
    format!("ENTITY#{kind}#{id}")
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
