//! `order-events` (Shopify) against the emulator, with the real SDK clients, the worker and a
//! local target: an order's lifecycle converges in every arrival order (create → paid →
//! fulfilled, create → paid → cancelled), and an unpaid order's body resent as `orders/paid`
//! fulfils nothing. The generic battery (tests/tests/battery.rs) covers accepted, duplicate,
//! forged, quarantined and concurrent copies; the mapping's own rules are the handler's tests.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hookline::clock::{Clock, FixedClock, SharedClock};
use hookline::followup::Timers;
use hookline::receiver::Receiver;
use hookline::store::{ActionStatus, EventStore};
use hookline_tests::{LOCAL_SECRET, Stack, Target, init_test_log, local_receiver, sample};
use serde_json::Value;

/// Two days after the samples' times: inside the replay window.
const NOW: i64 = 1_796_400_000;

struct Harness {
    stack: Stack,
    clock: Arc<FixedClock>,
    target: Target,
    worker: hookline::worker::Worker,
}

impl Harness {
    async fn new() -> Self {
        init_test_log();
        let stack = Stack::new().await.unwrap();
        let clock = FixedClock::at_secs(NOW);
        let target = Target::start(Vec::new()).await.unwrap();
        let worker = stack.worker(&target, Timers::default(), clock.clone());
        Self {
            stack,
            clock,
            target,
            worker,
        }
    }

    fn store(&self) -> EventStore {
        let clock: SharedClock = self.clock.clone();
        self.stack.store(clock)
    }

    fn receiver(&self) -> Receiver {
        let clock: SharedClock = self.clock.clone();
        local_receiver(
            order_events::spec(),
            &clock,
            self.store(),
            self.stack.queue(),
        )
    }

    /// Posts `body` under `topic`, signed; the answer's `status`.
    async fn deliver(&self, topic: &str, body: &Value, webhook_id: &str) -> String {
        let body = serde_json::to_vec(body).unwrap();
        let mut req = hookline_tests::signed_request(
            &hookline::verify::Scheme::Shopify,
            &body,
            LOCAL_SECRET,
            webhook_id,
            self.clock.now_secs(),
        );
        req.headers_mut()
            .insert("x-shopify-topic", topic.parse().unwrap());
        let resp = self.receiver().handle(req).await;
        assert_eq!(resp.status(), 200, "{topic} {webhook_id}");
        let answer: Value = match resp.body() {
            lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
            lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap(),
            _ => Value::Null,
        };
        answer["status"].as_str().unwrap().to_owned()
    }

    async fn settle(&self, seed: u64) {
        for round in 0..50 {
            let fed = self
                .stack
                .feed(&self.worker, 3, seed + round)
                .await
                .unwrap();
            self.stack.release(&fed.failed).await.unwrap();
            if fed.received == 0 {
                return;
            }
        }
        panic!("the queue did not settle");
    }

    /// The target's requests about order `id`: (path, body).
    fn posts_about(&self, id: u64) -> Vec<(String, String)> {
        self.target
            .received()
            .into_iter()
            .filter(|r| r.body.contains(&format!("\"{id}\"")))
            .map(|r| (r.path, r.body))
            .collect()
    }
}

/// Every ordering of `n` items.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// The sample of `topic` (`orders/paid` → `orders.paid.json`) as order `id`.
fn order(topic: &str, id: u64) -> Value {
    let mut v = sample("order-events", &topic.replace('/', "."));
    v["id"] = id.into();
    v
}

async fn lifecycle_converges(last: &str) -> Harness {
    let h = Harness::new().await;
    let topics = ["orders/create", "orders/paid", last];
    for (n, arrival) in permutations(topics.len()).into_iter().enumerate() {
        let id = 7_000_000 + u64::try_from(n).unwrap();
        for (step, &i) in arrival.iter().enumerate() {
            let topic = topics[i];
            let answer = h
                .deliver(topic, &order(topic, id), &format!("wh-{n}-{i}"))
                .await;
            assert!(answer == "accepted" || answer == "stale", "{answer}");
            if (n + step) % 2 == 0 {
                h.settle(u64::try_from(n * 10 + step).unwrap()).await;
            }
        }
        h.settle(u64::try_from(n).unwrap()).await;
        let entity = h
            .store()
            .get_entity(order_events::handler::ORDER, &id.to_string())
            .await
            .unwrap()
            .unwrap();
        let sync = entity.sync.as_ref().unwrap();
        assert_eq!(sync.status, ActionStatus::Done, "{arrival:?}");
        let posts = h.posts_about(id);
        let paths: Vec<&str> = posts.iter().map(|(p, _)| p.as_str()).collect();
        let fulfils = paths.iter().filter(|p| **p == "/fulfil_order").count();
        if last == "orders/fulfilled" {
            assert_eq!(
                entity.attrs["fulfillment_status"], "fulfilled",
                "{arrival:?}"
            );
            assert_eq!(fulfils, 1, "{arrival:?}: {paths:?}");
            assert_eq!(paths.last(), Some(&"/fulfil_order"), "{arrival:?}");
        } else {
            assert_eq!(entity.attrs["cancelled"], true, "{arrival:?}");
            // Never left fulfilled: nothing sent, or the fulfilment taken back last.
            assert!(
                fulfils == 0
                    || paths.iter().rev().find(|p| **p != "/notify_admin")
                        == Some(&"/cancel_fulfilment"),
                "{arrival:?}: {paths:?}"
            );
            let notices = paths.iter().filter(|p| **p == "/notify_admin").count();
            assert_eq!(notices, 1, "{arrival:?}: {paths:?}");
        }
    }
    h
}

#[tokio::test]
async fn create_paid_fulfilled_in_every_order_fulfils_once() {
    lifecycle_converges("orders/fulfilled").await;
}

#[tokio::test]
async fn create_paid_cancelled_in_every_order_ends_unfulfilled_and_notifies_once() {
    lifecycle_converges("orders/cancelled").await;
}

#[tokio::test]
async fn an_unpaid_order_resent_as_orders_paid_fulfils_nothing() {
    let h = Harness::new().await;
    let id = 7_100_000;
    let body = order("orders/create", id);
    assert_eq!(h.deliver("orders/create", &body, "wh-a").await, "accepted");
    // The same body under another webhook id: a duplicate.
    assert_eq!(h.deliver("orders/create", &body, "wh-b").await, "duplicate");
    // Relabelled: a new key, the same unpaid state.
    let again = h.deliver("orders/paid", &body, "wh-c").await;
    assert!(again == "accepted" || again == "stale", "{again}");
    h.settle(1).await;
    assert!(h.posts_about(id).is_empty(), "{:?}", h.posts_about(id));
    let entity = h
        .store()
        .get_entity(order_events::handler::ORDER, &id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entity.attrs["financial_status"], "pending");
}

#[tokio::test]
async fn an_uninstall_is_cleaned_up_once() {
    let h = Harness::new().await;
    let body = sample("order-events", "app.uninstalled");
    assert_eq!(
        h.deliver("app/uninstalled", &body, "wh-u1").await,
        "accepted"
    );
    assert_eq!(
        h.deliver("app/uninstalled", &body, "wh-u2").await,
        "duplicate"
    );
    h.settle(2).await;
    let cleanups = h
        .target
        .received()
        .iter()
        .filter(|r| r.path == "/cleanup_shop")
        .count();
    assert_eq!(cleanups, 1);
}
