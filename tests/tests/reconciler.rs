//! The reconciler keeps up and never stalls (docs/FOLLOWUPS.md, "The reconciler finds what
//! nobody works on, by time"), against the emulator with the real SDK clients, each test on its
//! own table and queues, time a [`FixedClock`]:
//! - each follow-up keeps its own check time: one event action backing off for an hour does not
//!   hold back a sibling whose message was lost;
//! - a shard's due items are read page after page, so more than a page of due items is handled
//!   in one run, and more than a page of malformed records ahead of a good one does not block it
//!   (a malformed record's check moves out, and it is counted);
//! - a follow-up that is re-enqueued and never claimed is not sent again every grace period: its
//!   check moves out further each time, until a claim.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use hookline::clock::{Clock, FixedClock};
use hookline::store::schema::{PENDING_SHARDS, event_pk, pending_pk, shard};
use hookline::store::{Action, Effects, EventStore, Finish, FollowUp, NewEvent};
use hookline_tests::Stack;
use serde_json::json;

const NOW: i64 = 1_750_000_000;
const GRACE_SECS: i64 = 300;

struct Rig {
    stack: Stack,
    clock: Arc<FixedClock>,
}

impl Rig {
    async fn new() -> Self {
        hookline_tests::init_test_log();
        Self {
            stack: Stack::new().await.unwrap(),
            clock: FixedClock::at_secs(NOW),
        }
    }

    fn store(&self) -> EventStore {
        self.stack.store(self.clock.clone())
    }

    /// Records event `id` of source `test` with event actions `kinds`; drops its messages (as if
    /// SQS had refused them).
    async fn record(&self, id: &str, kinds: &[&str]) {
        let effects = Effects::apply(
            None,
            kinds
                .iter()
                .map(|k| Action::new(k, json!({ "id": id })))
                .collect(),
        );
        let event = NewEvent {
            source: "test",
            function: "test-events",
            event_id: id,
            event_type: "thing.happened",
            provider_ts: NOW * 1000,
            body: b"{}",
            delivery: None,
        };
        self.store().record(&event, &effects).await.unwrap();
    }

    /// One reconciler run, `page` items per query page.
    async fn reconcile(&self, page: i32) -> hookline::reconcile::Report {
        hookline::reconcile::run(&self.store(), &self.stack.queue(), page)
            .await
            .unwrap()
    }

    /// The follow-ups on the queue now (received and deleted).
    async fn sent(&self) -> Vec<FollowUp> {
        let mut out: Vec<FollowUp> = self
            .stack
            .drain(&self.stack.queue_url)
            .await
            .unwrap()
            .iter()
            .map(|m| hookline::queue::decode(m.body().unwrap()).unwrap())
            .collect();
        out.sort_by_key(FollowUp::name);
        out
    }
}

fn action(id: &str, kind: &str) -> FollowUp {
    FollowUp::Action {
        source: "test".into(),
        event_id: id.into(),
        action: kind.into(),
    }
}

/// `n` event ids whose records all fall in one shard of the pending index (the shard of the
/// first), so that one shard has more than a page of due items.
fn ids_in_one_shard(prefix: &str, n: usize) -> Vec<String> {
    let target = shard(&event_pk("test", &format!("{prefix}0")), PENDING_SHARDS);
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|id| shard(&event_pk("test", id), PENDING_SHARDS) == target)
        .take(n)
        .collect()
}

#[tokio::test]
async fn one_action_backing_off_for_an_hour_does_not_hold_back_a_sibling_whose_message_was_lost() {
    let rig = Rig::new().await;
    rig.record("evt_sib", &["alpha", "beta"]).await;
    assert_eq!(rig.sent().await.len(), 0, "record sends nothing itself");
    // `alpha` runs and its target asks for an hour; `beta`'s message was lost.
    let store = rig.store();
    let claimed = store
        .claim_action("test", "evt_sib", "alpha", 25_000, 180_000)
        .await
        .unwrap()
        .unwrap();
    let visible_at = rig.clock.now_millis() + 3_600_000;
    store
        .finish_action(
            "test",
            "evt_sib",
            "alpha",
            &claimed.lease,
            &Finish::Retry {
                status: 503,
                reason: "503".into(),
                visible_at,
            },
        )
        .await
        .unwrap();
    rig.clock.advance_secs(GRACE_SECS + 1);
    let report = rig.reconcile(100).await;
    assert_eq!(report.enqueued, 1, "{report:?}");
    assert_eq!(
        rig.sent().await,
        [action("evt_sib", "beta")],
        "the sibling whose message was lost, not the one backing off"
    );
    // An hour and a grace on, `alpha`'s own time has come too (its message may be lost as well);
    // `beta`, re-enqueued once already and never claimed, is due again by then as well.
    rig.clock.advance_secs(3_600 + GRACE_SECS);
    let report = rig.reconcile(100).await;
    assert_eq!(
        rig.sent().await,
        [action("evt_sib", "alpha"), action("evt_sib", "beta")],
        "{report:?}"
    );
}

#[tokio::test]
async fn more_than_a_page_of_due_items_in_one_shard_is_handled_in_one_run() {
    let rig = Rig::new().await;
    let ids = ids_in_one_shard("evt_page_", 12);
    for id in &ids {
        rig.record(id, &["alpha"]).await;
    }
    rig.clock.advance_secs(GRACE_SECS + 1);
    let report = rig.reconcile(5).await;
    assert_eq!(report.items, 12, "{report:?}");
    assert_eq!(report.enqueued, 12);
    let mut want: Vec<FollowUp> = ids.iter().map(|id| action(id, "alpha")).collect();
    want.sort_by_key(FollowUp::name);
    assert_eq!(rig.sent().await, want, "each once");
}

#[tokio::test]
async fn more_than_a_page_of_corrupt_records_ahead_of_a_good_one_does_not_block_the_shard() {
    let rig = Rig::new().await;
    let good = "evt_good";
    rig.record(good, &["alpha"]).await;
    let shard_pk = pending_pk(&event_pk("test", good));
    // 101 records no code of ours wrote, due before the good one, in its shard.
    for i in 0..101 {
        rig.stack
            .dynamo
            .put_item()
            .table_name(&rig.stack.table)
            .item(
                "pk",
                AttributeValue::S(format!("EVENT#test#evt_garbage_{i}")),
            )
            .item("sk", AttributeValue::S("EVENT".into()))
            .item("pending_pk", AttributeValue::S(shard_pk.clone()))
            .item("next_check_at", AttributeValue::N(i.to_string()))
            .item("outbox", AttributeValue::S("not a map".into()))
            .send()
            .await
            .unwrap();
    }
    rig.clock.advance_secs(GRACE_SECS + 1);
    let report = rig.reconcile(100).await;
    assert_eq!(
        report.enqueued, 1,
        "the good record is handled in the first run"
    );
    assert_eq!(rig.sent().await, [action(good, "alpha")]);
    assert_eq!(report.corrupt_count, 101, "each malformed record counted");
    // Their checks moved out: the next run (a minute on) does not read them again.
    rig.clock.advance_secs(60);
    let report = rig.reconcile(100).await;
    assert_eq!(report.items, 0, "{report:?}");
    assert_eq!(report.corrupt_count, 0);
}

#[tokio::test]
async fn a_followup_re_enqueued_and_never_claimed_backs_off_until_a_claim() {
    let rig = Rig::new().await;
    rig.record("evt_lost", &["alpha"]).await;
    let me = action("evt_lost", "alpha");
    // Re-enqueued after the grace period; nobody claims it (the worker is down, say).
    rig.clock.advance_secs(GRACE_SECS + 1);
    assert_eq!(rig.reconcile(100).await.enqueued, 1);
    assert_eq!(rig.sent().await, std::slice::from_ref(&me));
    // Not a new copy every grace period: twice the grace this time.
    rig.clock.advance_secs(GRACE_SECS + 1);
    assert_eq!(rig.reconcile(100).await.enqueued, 0, "backed off");
    rig.clock.advance_secs(GRACE_SECS);
    assert_eq!(
        rig.reconcile(100).await.enqueued,
        1,
        "after twice the grace"
    );
    assert_eq!(rig.sent().await, std::slice::from_ref(&me));
    // Four times the grace next.
    rig.clock.advance_secs(3 * GRACE_SECS);
    assert_eq!(rig.reconcile(100).await.enqueued, 0, "backed off further");
    rig.clock.advance_secs(GRACE_SECS + 1);
    assert_eq!(
        rig.reconcile(100).await.enqueued,
        1,
        "after four times the grace"
    );
    rig.sent().await;
    // A claim resets it: a worker claims and dies; once its lease and the visibility are over
    // (and a grace), it is due again, then again a grace later, not four.
    let store = rig.store();
    assert!(
        store
            .claim_action("test", "evt_lost", "alpha", 25_000, 180_000)
            .await
            .unwrap()
            .is_some()
    );
    rig.clock.advance_secs(25 + 180 + GRACE_SECS + 1);
    assert_eq!(rig.reconcile(100).await.enqueued, 1, "the crashed claim");
    rig.clock.advance_secs(2 * GRACE_SECS + 1);
    assert_eq!(
        rig.reconcile(100).await.enqueued,
        1,
        "the backoff started again from the grace"
    );
}

/// The reconciler's rate on the emulator (ignored by default; docs/RELIABILITY.md, "Reconciler
/// throughput"): `RECONCILE_BENCH_ITEMS` (default 5,000) stuck follow-ups (recorded, their
/// messages lost) seeded straight into the table, then one run timed, then runs 5, 10 and 15
/// minutes later (by the clock) to count the copies sent within 15 minutes.
///
/// `cargo nextest run -p hookline-tests --test reconciler --run-ignored only --no-capture`
#[tokio::test]
#[ignore = "a measurement: minutes on the emulator"]
#[allow(clippy::print_stdout)] // a measurement: its figures are its output
async fn reconciler_throughput_on_the_emulator() {
    let rig = Rig::new().await;
    let n: usize = std::env::var("RECONCILE_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let now_ms = rig.clock.now_millis();
    let seeded = std::time::Instant::now();
    let items: Vec<_> = (0..n)
        .map(|i| {
            let id = format!("evt_bench_{i}");
            let pk = event_pk("test", &id);
            let entry = AttributeValue::M(
                [
                    ("status", AttributeValue::S("PENDING".into())),
                    ("payload", AttributeValue::S("{}".into())),
                    ("attempt", AttributeValue::N("0".into())),
                    ("generation", AttributeValue::N("0".into())),
                    ("last_status", AttributeValue::N("0".into())),
                    ("check_at", AttributeValue::N(now_ms.to_string())),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            );
            let item: std::collections::HashMap<String, AttributeValue> = [
                ("pk", AttributeValue::S(pk.clone())),
                ("sk", AttributeValue::S("EVENT".into())),
                ("source", AttributeValue::S("test".into())),
                ("function", AttributeValue::S("test-events".into())),
                ("event_id", AttributeValue::S(id)),
                ("event_type", AttributeValue::S("thing.happened".into())),
                ("status", AttributeValue::S("accepted".into())),
                ("provider_ts", AttributeValue::N(now_ms.to_string())),
                ("received_at", AttributeValue::N(now_ms.to_string())),
                ("body_sha256", AttributeValue::S("0".into())),
                ("expires_at", AttributeValue::N((NOW + 86_400).to_string())),
                ("rev", AttributeValue::N("0".into())),
                (
                    "outbox",
                    AttributeValue::M([("alpha".to_owned(), entry)].into()),
                ),
                ("pending_pk", AttributeValue::S(pending_pk(&pk))),
                ("next_check_at", AttributeValue::N(now_ms.to_string())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            aws_sdk_dynamodb::types::WriteRequest::builder()
                .put_request(
                    aws_sdk_dynamodb::types::PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    for group in items.chunks(25 * 8) {
        let writes = group.chunks(25).map(|chunk| {
            rig.stack
                .dynamo
                .batch_write_item()
                .request_items(&rig.stack.table, chunk.to_vec())
                .send()
        });
        for out in futures_util::future::join_all(writes).await {
            assert!(
                out.unwrap()
                    .unprocessed_items()
                    .is_none_or(|u| u.is_empty())
            );
        }
    }
    println!("seeded {n} stuck follow-ups in {:?}", seeded.elapsed());
    let limits = hookline::reconcile::Limits {
        budget: std::time::Duration::from_secs(3_600),
        ..hookline::reconcile::Limits::default()
    };
    let metrics = hookline::metrics::Metrics::stdout();
    let mut copies: Vec<usize> = Vec::new();
    for (run, advance) in [(0, 1), (1, 300), (2, 300), (3, 300)] {
        rig.clock.advance_secs(advance);
        let report =
            hookline::reconcile::run_limited(&rig.store(), &rig.stack.queue(), &limits, &metrics)
                .await
                .unwrap();
        let secs = report.elapsed_ms as f64 / 1000.0;
        println!(
            "run {run} (+{}s): {} items looked at, {} enqueued, {} pages, complete {}, {secs:.1} s, {:.0} items/s",
            rig.clock.now_millis().saturating_sub(now_ms) / 1000,
            report.items,
            report.enqueued,
            report.pages,
            report.complete,
            report.items as f64 / secs.max(0.001),
        );
        if run == 0 {
            assert_eq!(report.enqueued, n, "every stuck follow-up in one run");
        }
        // Copies: a run visits each item once (a visited item's time moves past the run's
        // cutoff), so each run sends at most one copy of each follow-up. The queue is not read
        // back: on a loaded emulator a receive slower than the visibility timeout sees messages
        // twice and never ends.
        copies.push(report.enqueued);
    }
    println!("re-enqueued per run: {copies:?} (N = {n})");
    assert_eq!(copies[1..3], [0, 0], "nothing new at +5 and +10 minutes");
    assert!(
        copies.iter().sum::<usize>() <= 2 * n,
        "at most two copies each in 15 minutes"
    );
}
