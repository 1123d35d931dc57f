//! The data model against the emulator (docs/DATA.md): a mapping's attributes cannot
//! collide with the table's own, a tombstone erases personal data and is final, the raw body
//! lives in an item of its own, a permanent store refusal quarantines instead of answering 503,
//! a quarantined event replays once, and the store keeps what `ordering::supersedes` says.

#![allow(clippy::unwrap_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use hookline::clock::{FixedClock, SharedClock};
use hookline::http::ContentKind;
use hookline::receiver::{Described, ReceiverSpec};
use hookline::store::{
    Action, ChangeMode, Effects, NewEvent, Outcome, StateAttrs, StateChange, StoreError,
};
use hookline::verify::{ParseError, Scheme, Verified};
use hookline_tests::{LOCAL_SECRET, Stack, local_receiver, signed_request};
use serde_json::json;

const NOW: i64 = 1_750_000_000;

fn clock() -> SharedClock {
    FixedClock::at_secs(NOW)
}

fn event<'a>(id: &'a str, body: &'a [u8]) -> NewEvent<'a> {
    NewEvent {
        source: "test",
        function: "test-events",
        event_id: id,
        event_type: "thing.changed",
        provider_ts: NOW * 1000,
        body,
        delivery: None,
    }
}

fn change(id: &str, version: i64, mode: ChangeMode, attrs: StateAttrs) -> StateChange {
    StateChange {
        entity_kind: "thing".into(),
        entity_id: id.into(),
        version,
        mode,
        attrs,
        sync: None,
    }
}

async fn raw_item(
    stack: &Stack,
    pk: &str,
    sk: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    stack
        .dynamo
        .get_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

#[tokio::test]
async fn a_mapping_cannot_overwrite_keys_index_attributes_or_the_ttl() {
    let stack = Stack::new().await.unwrap();
    let store = stack.store(clock());
    // Checkout sessions carry their own `expires_at`; other objects a `source`.
    let attrs: StateAttrs = [
        ("expires_at", json!(1)),
        ("source", json!("stripe")),
        ("source_pk", json!("stripe#0")),
        ("pk", json!("EVENT#x#y")),
        ("pending_pk", json!("PENDING#0")),
        ("next_check_at", json!(0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let effects = Effects::Apply {
        change: Some(change("t1", 1, ChangeMode::Upsert, attrs.clone())),
        actions: Vec::new(),
    };
    let done = store.record(&event("e1", b"{}"), &effects).await.unwrap();
    assert_eq!(done.outcome, Outcome::Accepted);
    let item = raw_item(&stack, "ENTITY#thing#t1", "STATE").await;
    for reserved in [
        "expires_at",
        "source",
        "source_pk",
        "pending_pk",
        "next_check_at",
    ] {
        assert!(
            !item.contains_key(reserved),
            "{reserved} leaked out of the namespace"
        );
    }
    assert_eq!(item["pk"], AttributeValue::S("ENTITY#thing#t1".into()));
    let entity = store.get_entity("thing", "t1").await.unwrap().unwrap();
    assert_eq!(
        entity.attrs, attrs,
        "the mapping's attributes are all there, in `attrs`"
    );
    // The first write created the map; an update replaces it (no `SET attrs.x` on a missing map).
    let effects = Effects::Apply {
        change: Some(change(
            "t1",
            2,
            ChangeMode::Upsert,
            [("a".to_owned(), json!(2))].into(),
        )),
        actions: Vec::new(),
    };
    store.record(&event("e2", b"{}"), &effects).await.unwrap();
    let entity = store.get_entity("thing", "t1").await.unwrap().unwrap();
    assert_eq!(entity.attrs, [("a".to_owned(), json!(2))].into());
    // Nothing of the entity is in the by-source index.
    assert_eq!(store.recent("stripe", 10).await.unwrap(), []);
}

#[tokio::test]
async fn a_tombstone_erases_personal_data_and_is_final_whatever_its_version() {
    let stack = Stack::new().await.unwrap();
    let store = stack.store(clock());
    let personal: StateAttrs = [
        ("email", json!("ada@example.com")),
        ("first_name", json!("Ada")),
        ("phone", json!("+15550001111")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let up = |v| Effects::Apply {
        change: Some(change("u1", v, ChangeMode::Upsert, personal.clone())),
        actions: Vec::new(),
    };
    store.record(&event("e1", b"{}"), &up(100)).await.unwrap();
    // A delete older than the state still wins.
    let delete = Effects::Apply {
        change: Some(change("u1", 50, ChangeMode::Tombstone, StateAttrs::new())),
        actions: Vec::new(),
    };
    let done = store.record(&event("e2", b"{}"), &delete).await.unwrap();
    assert_eq!(done.outcome, Outcome::Accepted);
    let item = raw_item(&stack, "ENTITY#thing#u1", "STATE").await;
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "_deleted",
            "_id",
            "_kind",
            "_last_event_id",
            "_updated_at",
            "_version",
            "pk",
            "sk"
        ],
        "nothing but the id, kind and deletion marker (and ordering bookkeeping)"
    );
    // A later update changes nothing; a second delete neither.
    let done = store.record(&event("e3", b"{}"), &up(200)).await.unwrap();
    assert_eq!(done.outcome, Outcome::Stale);
    let done = store.record(&event("e4", b"{}"), &delete).await.unwrap();
    assert_eq!(done.outcome, Outcome::Stale);
    let entity = store.get_entity("thing", "u1").await.unwrap().unwrap();
    assert!(entity.deleted && entity.attrs.is_empty());
    assert_eq!(entity.last_event_id, "e2");
}

#[tokio::test]
async fn the_raw_body_is_an_item_of_its_own_and_marks_never_touch_it() {
    let stack = Stack::new().await.unwrap();
    let store = stack.store(clock());
    let body = vec![b'x'; 200 * 1024];
    let effects = Effects::Apply {
        change: None,
        actions: vec![Action::new("receipt", json!({"n": 1}))],
    };
    store.record(&event("big", &body), &effects).await.unwrap();
    let record = raw_item(&stack, "EVENT#test#big", "EVENT").await;
    assert!(!record.contains_key("body"), "the event record stays small");
    assert_eq!(
        store.get_body("test", "big").await.unwrap().unwrap().len(),
        body.len()
    );
    let claim = store
        .claim_action("test", "big", "receipt", 25_000, 180_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.entry.attempt, 1);
    let before = raw_item(&stack, "EVENT#test#big", "BODY").await;
    store
        .finish_action(
            "test",
            "big",
            "receipt",
            &claim.lease,
            &hookline::store::Finish::Done { status: 200 },
        )
        .await
        .unwrap();
    assert_eq!(raw_item(&stack, "EVENT#test#big", "BODY").await, before);
}

#[tokio::test]
async fn a_write_dynamodb_refuses_for_good_is_a_permanent_error_not_an_outage() {
    let stack = Stack::new().await.unwrap();
    let store = stack.store(clock());
    let huge: StateAttrs = [("blob".to_owned(), json!("y".repeat(420 * 1024)))].into();
    let effects = Effects::Apply {
        change: Some(change("big", 1, ChangeMode::Upsert, huge)),
        actions: Vec::new(),
    };
    let err = store
        .record(&event("huge", b"{}"), &effects)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Permanent { .. }), "{err:?}");
    assert!(
        store.get_event("test", "huge").await.unwrap().is_none(),
        "nothing half-written"
    );
}

/// A mapping whose state would not fit in a DynamoDB item: the receiver quarantines the event.
fn describe_huge(v: &Verified<'_>) -> Result<Described, ParseError> {
    let body: serde_json::Value = v.parse_json()?;
    Ok(Described {
        event_id: body["id"].as_str().unwrap_or_default().to_owned(),
        event_type: "thing.changed".into(),
        provider_ts: NOW * 1000,
        effects: Effects::Apply {
            change: Some(change(
                "huge",
                1,
                ChangeMode::Upsert,
                [("blob".to_owned(), json!("y".repeat(420 * 1024)))].into(),
            )),
            actions: Vec::new(),
        },
        deduplicated: true,
        challenge: None,
    })
}

#[tokio::test]
async fn the_receiver_quarantines_what_the_store_refuses_for_good() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let spec = ReceiverSpec {
        source: "test",
        function: "test-events",
        route: "/webhooks/test",
        scheme: Scheme::Stripe,
        content: ContentKind::Json,
        sender_timeout: std::time::Duration::from_secs(10),
        describe: describe_huge,
        action_kinds: &[],
    };
    let rx = local_receiver(
        spec.clone(),
        &clock,
        stack.store(clock.clone()),
        stack.queue(),
    );
    let req = signed_request(
        &spec.scheme,
        br#"{"id":"evt_huge"}"#,
        LOCAL_SECRET,
        "d",
        NOW,
    );
    let resp = rx.handle(req).await;
    assert_eq!(resp.status(), 200);
    let record = stack
        .store(clock)
        .get_event("test", "evt_huge")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, hookline::store::Outcome::Quarantined);
    assert!(record.reason.unwrap().starts_with("not storable"));
}

#[tokio::test]
async fn a_quarantined_event_replays_once_with_its_state_and_followups() {
    let stack = Stack::new().await.unwrap();
    let clock = clock();
    let store = stack.store(clock.clone());
    let body = br#"{"id":"evt_q"}"#;
    let quarantined = store
        .quarantine(&event("evt_q", body), "shape changed")
        .await
        .unwrap();
    assert_eq!(quarantined.outcome, Outcome::Quarantined);
    let effects = Effects::Apply {
        change: Some(change(
            "q1",
            1,
            ChangeMode::Upsert,
            [("a".to_owned(), json!(1))].into(),
        )),
        actions: vec![Action::new("receipt", json!({}))],
    };
    let replayed = store.replay(&event("evt_q", body), &effects).await.unwrap();
    assert_eq!(replayed.outcome, Outcome::Accepted);
    assert_eq!(replayed.enqueue.len(), 1);
    let record = store.get_event("test", "evt_q").await.unwrap().unwrap();
    assert_eq!(record.status, hookline::store::Outcome::Accepted);
    assert_eq!(record.outbox.len(), 1);
    assert_eq!(
        store
            .get_entity("thing", "q1")
            .await
            .unwrap()
            .unwrap()
            .last_event_id,
        "evt_q"
    );
    // A second replay finds it no longer quarantined: nothing applied twice.
    let again = store.replay(&event("evt_q", body), &effects).await.unwrap();
    assert_eq!(again.outcome, Outcome::Duplicate);
    // A body whose hash does not match is not accepted as verified.
    assert!(Verified::stored(b"other", &record.body_sha256, None).is_none());
    assert!(Verified::stored(body, &record.body_sha256, None).is_some());
}

/// The store's conditional update and the rule tools fold by (`ordering::supersedes`, used by
/// `hookline describe --finals` and so by the storm) agree on every case: newer, older, a tie
/// broken by event id, the same version and id again, tombstones before and after.
#[tokio::test]
async fn the_store_keeps_what_the_ordering_rule_says() {
    use hookline::store::ordering::{Applied, supersedes};
    let stack = Stack::new().await.unwrap();
    let store = stack.store(clock());
    let up = ChangeMode::Upsert;
    let gone = ChangeMode::Tombstone;
    // (event id, version, mode), recorded in this order on one entity.
    let steps = [
        ("e5", 100, up),
        ("e3", 90, up),
        ("e4", 100, up),
        ("e6", 100, up),
        ("e2", 200, up),
        ("e1", 10, gone),
        ("e7", 300, up),
        ("e8", 5, gone),
    ];
    let mut kept: Option<(i64, String, bool)> = None;
    for (id, version, mode) in steps {
        let change = change(
            "o1",
            version,
            mode,
            [("v".to_owned(), json!(version))].into(),
        );
        let current = kept.as_ref().map(|(v, e, d)| Applied {
            version: *v,
            event_id: e,
            deleted: *d,
        });
        let applies = supersedes(&change, id, current.as_ref());
        let effects = Effects::apply(Some(change), Vec::new());
        let done = store.record(&event(id, b"{}"), &effects).await.unwrap();
        let expected = if applies {
            Outcome::Accepted
        } else {
            Outcome::Stale
        };
        assert_eq!(done.outcome, expected, "{id} at {version}");
        if applies {
            kept = Some((version, id.to_owned(), mode == ChangeMode::Tombstone));
        }
        let entity = store.get_entity("thing", "o1").await.unwrap().unwrap();
        assert_eq!(
            Some(entity.last_event_id.as_str()),
            kept.as_ref().map(|k| k.1.as_str())
        );
    }
    assert_eq!(kept, Some((10, "e1".to_owned(), true)));
}
