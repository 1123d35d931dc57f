//! The SDK floor for `scripts/bench-lambda.py`: the receivers' runtime (`lambda_http`,
//! current-thread tokio) and AWS SDK configuration ([`hookline::config::aws`]), making the two
//! calls a new event costs: one `TransactWriteItems` of the items a receiver writes for a Stripe
//! `invoice.paid` (the event record with its outbox, the raw body as bytes, the entity's
//! conditional update) and one `SendMessageBatch` of its follow-up, on a fixed request, with no
//! verification, parsing or mapping. What a receiver costs beyond this floor is Hookline's own
//! work.
//!
//! Each invocation builds the items with fresh keys, numbered from the process's start time in
//! nanoseconds, so the conditions hold against the emulator in every run, not only the first
//! (with keys from 0 a second run's writes were all cancelled, and cheaper than a new event's).
//!
//! `HOOKLINE_FLOOR_TUNING` picks the SDK settings, to measure each one's effect: `hookline`
//! (default: [`SdkTuning::HOOKLINE`], as the functions run), `sdk-defaults`, or `hookline` with
//! one setting back at the SDK's default: `no-env-credentials`, `no-stalled-stream-off`,
//! `system-roots`; or `warm-up`: both connections opened concurrently before the first event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use hookline::config::SdkTuning;
use hookline::queue::FollowupQueue;
use hookline::store::EventStore;
use lambda_http::{Body, Error, Response, run, service_fn};

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The items of one event, keyed by `k`.
fn items(table: &str, body: &str, k: u64) -> Vec<TransactWriteItem> {
    let pk = format!("EVT#stripe#evt_floor_{k}");
    let outbox: HashMap<String, AttributeValue> = HashMap::from([(
        "receipt".to_owned(),
        AttributeValue::M(HashMap::from([
            ("status".to_owned(), s("PENDING")),
            ("attempt".to_owned(), n(0)),
            ("check_at".to_owned(), n(1_750_000_300_000)),
            ("requeues".to_owned(), n(0)),
            (
                "payload".to_owned(),
                s(r#"{"invoice":"in_1","customer":"cus_1","amount_paid":2000,"currency":"usd"}"#),
            ),
        ])),
    )]);
    let record: Item = HashMap::from([
        ("pk".to_owned(), s(&pk)),
        ("sk".to_owned(), s("EVENT")),
        ("source".to_owned(), s("stripe")),
        ("function".to_owned(), s("payment-events")),
        ("event_id".to_owned(), s(format!("evt_floor_{k}"))),
        ("event_type".to_owned(), s("invoice.paid")),
        ("status".to_owned(), s("accepted")),
        ("provider_ts".to_owned(), n(1_750_000_000_000)),
        ("received_at".to_owned(), n(1_750_000_000_000)),
        ("expires_at".to_owned(), n(1_752_592_000)),
        ("body_sha256".to_owned(), s("0".repeat(64))),
        ("gsi1pk".to_owned(), s("SRC#stripe")),
        ("gsi1sk".to_owned(), n(1_750_000_000_000)),
        ("pending_pk".to_owned(), s("PENDING#3")),
        ("pending_sk".to_owned(), n(1_750_000_300_000)),
        ("outbox".to_owned(), AttributeValue::M(outbox)),
    ]);
    let raw: Item = HashMap::from([
        ("pk".to_owned(), s(&pk)),
        ("sk".to_owned(), s("BODY")),
        (
            "body".to_owned(),
            AttributeValue::B(Blob::new(body.as_bytes())),
        ),
        ("expires_at".to_owned(), n(1_752_592_000)),
    ]);
    let put = |item: Item| {
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("complete put")
    };
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(format!("ENT#invoice#in_floor_{k}")))
        .key("sk", s("STATE"))
        .update_expression("SET #v = :v, #e = :e, #a = :a")
        .condition_expression("attribute_not_exists(#v) OR #v < :v OR (#v = :v AND #e < :e)")
        .expression_attribute_names("#v", "version")
        .expression_attribute_names("#e", "last_event")
        .expression_attribute_names("#a", "attrs")
        .expression_attribute_values(":v", n(1_750_000_000_000))
        .expression_attribute_values(":e", s(format!("evt_floor_{k}")))
        .expression_attribute_values(
            ":a",
            AttributeValue::M(HashMap::from([
                ("status".to_owned(), s("paid")),
                ("customer".to_owned(), s("cus_1")),
                ("amount_paid".to_owned(), n(2000)),
            ])),
        )
        .build()
        .expect("complete update");
    vec![
        TransactWriteItem::builder().put(put(record)).build(),
        TransactWriteItem::builder().put(put(raw)).build(),
        TransactWriteItem::builder().update(update).build(),
    ]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let table = std::env::var("TABLE_NAME")?;
    let queue_url = std::env::var("FOLLOWUP_QUEUE_URL")?;
    let mut tuning = SdkTuning::HOOKLINE;
    let mut warm_up = false;
    match std::env::var("HOOKLINE_FLOOR_TUNING").as_deref() {
        Ok("sdk-defaults") => tuning = SdkTuning::SDK_DEFAULTS,
        Ok("no-env-credentials") => tuning.env_credentials_and_region = false,
        Ok("no-stalled-stream-off") => tuning.no_stalled_stream_protection = false,
        Ok("system-roots") => tuning.compiled_in_roots = false,
        Ok("warm-up") => warm_up = true,
        Ok("hookline") | Err(_) => {}
        Ok(other) => return Err(format!("unknown HOOKLINE_FLOOR_TUNING {other:?}").into()),
    }
    let sdk = hookline::config::aws_with(tuning).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    if warm_up {
        // The receivers' own warm-up, on the same clients.
        let store = EventStore::new(dynamo.clone(), &table, 30, hookline::clock::system());
        let queue = FollowupQueue::new(sqs.clone(), &queue_url);
        hookline::receiver::open_connections(&store, &queue).await;
    }
    let body = include_str!("../../../events/payment-events/invoice.paid.json");
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
    let next = AtomicU64::new(start);
    let (dynamo, sqs, table, queue_url, next) = (&dynamo, &sqs, &table, &queue_url, &next);
    run(service_fn(move |_req| async move {
        let k = next.fetch_add(1, Ordering::Relaxed);
        dynamo
            .transact_write_items()
            .set_transact_items(Some(items(table, body, k)))
            .send()
            .await?;
        let entry = SendMessageBatchRequestEntry::builder()
            .id("0")
            .message_body(format!(
                r#"{{"source":"stripe","event_id":"evt_floor_{k}","kind":"receipt"}}"#
            ))
            .build()?;
        sqs.send_message_batch()
            .queue_url(queue_url)
            .entries(entry)
            .send()
            .await?;
        let mut resp = Response::new(Body::from(format!(
            r#"{{"status":"accepted","event_id":"evt_floor_{k}"}}"#
        )));
        resp.headers_mut().insert(
            "content-type",
            lambda_http::http::HeaderValue::from_static("application/json"),
        );
        Ok::<_, Error>(resp)
    }))
    .await
}
