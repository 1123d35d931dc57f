//! `template.yaml` (AWS) and the local emulator (`hookline local up`, the tests) must declare the
//! same table and queues: this test creates them with the shared code and compares them with the
//! template, so the two cannot drift.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use aws_sdk_sqs::types::QueueAttributeName;
use hookline_tests::Stack;
use serde_yaml::Value;

/// An index as compared: name, key schema, projection type.
type Gsi = (String, Vec<(String, String)>, String);

fn template() -> Value {
    let path = format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resources_of(t: &Value, ty: &str) -> Vec<(String, Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r["Properties"].clone()))
        .collect()
}

fn keys(schema: &Value) -> Vec<(String, String)> {
    schema
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn table_in_template_matches_the_local_table() {
    let t = template();
    let tables = resources_of(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let props = &tables[0].1;
    let stack = Stack::new().await.unwrap();
    let desc = stack
        .dynamo
        .describe_table()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let local = desc.table().unwrap();

    assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        local
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str()),
        Some("PAY_PER_REQUEST")
    );
    let local_keys: Vec<(String, String)> = local
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(keys(&props["KeySchema"]), local_keys);

    let tmpl_attrs: BTreeSet<(String, String)> = props["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().to_owned(),
                a["AttributeType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let local_attrs: BTreeSet<(String, String)> = local
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(tmpl_attrs, local_attrs);

    let mut tmpl_gsis: Vec<Gsi> = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["IndexName"].as_str().unwrap().to_owned(),
                keys(&g["KeySchema"]),
                g["Projection"]["ProjectionType"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let mut local_gsis: Vec<Gsi> = local
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name().unwrap().to_owned(),
                g.key_schema()
                    .iter()
                    .map(|k| {
                        (
                            k.attribute_name().to_owned(),
                            k.key_type().as_str().to_owned(),
                        )
                    })
                    .collect(),
                g.projection()
                    .unwrap()
                    .projection_type()
                    .unwrap()
                    .as_str()
                    .to_owned(),
            )
        })
        .collect();
    tmpl_gsis.sort();
    local_gsis.sort();
    assert_eq!(tmpl_gsis, local_gsis);

    let ttl = stack
        .dynamo
        .describe_time_to_live()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let local_ttl = ttl
        .time_to_live_description()
        .unwrap()
        .attribute_name()
        .unwrap()
        .to_owned();
    assert_eq!(
        props["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(local_ttl.as_str())
    );
    assert_eq!(
        props["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true),
        "point-in-time recovery in AWS"
    );
}

#[tokio::test]
async fn queues_in_template_match_the_local_queues() {
    let t = template();
    let queues = resources_of(&t, "AWS::SQS::Queue");
    let main = queues
        .iter()
        .find(|(_, p)| !p["RedrivePolicy"].is_null())
        .map(|(_, p)| p.clone())
        .expect("a queue with a redrive policy");
    let dlq = queues
        .iter()
        .find(|(_, p)| p["RedrivePolicy"].is_null())
        .map(|(_, p)| p.clone())
        .expect("a dead-letter queue");

    let stack = Stack::new().await.unwrap();
    let attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    let local_visibility: u64 = attrs[&QueueAttributeName::VisibilityTimeout]
        .parse()
        .unwrap();
    assert_eq!(main["VisibilityTimeout"].as_u64(), Some(local_visibility));
    let redrive: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    let local_max = redrive["maxReceiveCount"].as_u64().unwrap();
    assert_eq!(
        main["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(local_max)
    );

    let dlq_attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.dlq_url)
        .attribute_names(QueueAttributeName::MessageRetentionPeriod)
        .send()
        .await
        .unwrap();
    let local_retention: u64 = dlq_attrs.attributes().unwrap()
        [&QueueAttributeName::MessageRetentionPeriod]
        .parse()
        .unwrap();
    assert_eq!(
        dlq["MessageRetentionPeriod"].as_u64(),
        Some(local_retention)
    );
}
