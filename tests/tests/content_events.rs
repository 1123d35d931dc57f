//! `content-events` (Builder.io) against the emulator with the real SDK clients, beyond the
//! generic battery: an entry's lifecycle (publish → update → unpublish → delete) delivered in
//! every order converges on the deleted entry, its cache sync never sends an older state after a
//! newer one and ends with the delete's purge, and the delete is notified once; a late older
//! change is stale; an unknown operation is ignored; a delivery without values ("disable
//! payload") is never deduplicated; the static `Authorization` token, bare or `Bearer`; a change
//! older than the retention is refused as a replay. Time is a [`FixedClock`].

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use hookline::clock::{FixedClock, SharedClock};
use hookline::followup::Timers;
use hookline::receiver::{Receiver, ReceiverSpec};
use hookline::store::{ActionStatus, EventStore};
use hookline::worker::Worker;
use hookline_tests::{LOCAL_SECRET, Stack, Target, init_test_log, local_receiver, sample};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Value, json};

const NOW: i64 = 1_750_000_000;
const ABOUT: &str = "5a3f9c1e7b2d4e80a6c4b1d9e2f70a11";

fn spec() -> ReceiverSpec {
    hookline_receivers::by_function("content-events").unwrap()
}

struct Harness {
    stack: Stack,
    clock: SharedClock,
    target: Target,
    worker: Worker,
}

impl Harness {
    async fn new() -> Self {
        init_test_log();
        let stack = Stack::new().await.unwrap();
        let clock: SharedClock = FixedClock::at_secs(NOW);
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
        self.stack.store(self.clock.clone())
    }

    fn receiver(&self) -> Receiver {
        local_receiver(spec(), &self.clock, self.store(), self.stack.queue())
    }

    /// Posts `req`; the status and the JSON answer.
    async fn send(&self, req: Request) -> (u16, Value) {
        let resp = self.receiver().handle(req).await;
        let answer = match resp.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            Body::Binary(b) => serde_json::from_slice(b).unwrap(),
            _ => Value::Null,
        };
        (resp.status().as_u16(), answer)
    }

    /// Posts `body` as Builder.io does (`Authorization: Bearer <token>`); the answer's status.
    async fn deliver(&self, body: &Value) -> String {
        let (status, answer) = self.send(request(body, LOCAL_SECRET)).await;
        assert_eq!(status, 200, "{answer}");
        answer["status"].as_str().unwrap().to_owned()
    }

    /// Feeds the queue to the worker until nothing is left, ending every backoff at once.
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

    /// The bodies POSTed to `kind`'s target that name entry `id`, in order.
    fn posts(&self, kind: &str, id: &str) -> Vec<(Value, String)> {
        self.target
            .received()
            .into_iter()
            .filter(|r| r.path == format!("/{kind}"))
            .map(|r| {
                (
                    serde_json::from_str::<Value>(&r.body).unwrap(),
                    r.idempotency_key.unwrap_or_default(),
                )
            })
            .filter(|(b, _)| b["id"] == id)
            .collect()
    }
}

/// A POST of `body` with `Authorization: Bearer <token>`, as the `hookline send` of this scheme.
fn request(body: &Value, token: &str) -> Request {
    hookline_tests::signed_request(
        &spec().scheme,
        &serde_json::to_vec(body).unwrap(),
        token,
        "",
        NOW,
    )
}

/// A lifecycle sample with its entry's id replaced (in both values).
fn entry_event(name: &str, id: &str) -> Value {
    let mut v = sample("content-events", name);
    for key in ["newValue", "previousValue"] {
        if v[key].is_object() {
            v[key]["id"] = id.into();
        }
    }
    v
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

#[tokio::test]
async fn an_entry_lifecycle_in_every_order_ends_deleted_purged_in_order_and_notified_once() {
    let h = Harness::new().await;
    let stages = ["publish", "publish.update", "unpublish", "delete"];
    for (n, order) in permutations(stages.len()).into_iter().enumerate() {
        let id = format!("entry{n:02}");
        let bodies: Vec<Value> = stages.iter().map(|s| entry_event(s, &id)).collect();
        for (step, &i) in order.iter().enumerate() {
            let answer = h.deliver(&bodies[i]).await;
            assert!(answer == "accepted" || answer == "stale", "{answer}");
            // Interleave the worker with the sender in half of the orders.
            if (n + step) % 2 == 0 {
                h.settle(u64::try_from(n * 10 + step).unwrap()).await;
            }
        }
        h.settle(u64::try_from(n).unwrap()).await;

        let entity = h
            .store()
            .get_entity("content", &format!("page/{id}"))
            .await
            .unwrap()
            .unwrap();
        assert!(entity.deleted, "the delete always wins (order {order:?})");
        let sync = entity.sync.unwrap();
        assert_eq!(sync.status, ActionStatus::Done, "order {order:?}");

        // The cache was told states in the order they took effect, never an older one after a
        // newer one, and last the delete's purge of the entry's last path.
        let purges = h.posts("invalidate_cache", &id);
        let times: Vec<i64> = purges
            .iter()
            .map(|(b, _)| b["effective_at"].as_i64().unwrap())
            .collect();
        // (The delete carries its entry's last edit time, the unpublish's: equal, never older.)
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "order {order:?}: {times:?}"
        );
        let deletes = purges.iter().filter(|(b, _)| b["status"] == "deleted");
        assert_eq!(deletes.count(), 1, "order {order:?}");
        let (last, _) = purges.last().expect("at least the delete's purge");
        assert_eq!(
            (last["status"].as_str(), &last["paths"]),
            (Some("deleted"), &json!(["/company/about"])),
            "order {order:?}"
        );
        let keys: BTreeSet<&String> = purges.iter().map(|(_, k)| k).collect();
        assert_eq!(keys.len(), purges.len(), "one key per state sent");
        // Never a publish's purge after the unpublish's (nor anything after the delete's).
        let rank = |status: &str| match status {
            "published" => 0,
            "draft" => 1,
            "deleted" => 2,
            other => panic!("status {other}"),
        };
        let ranks: Vec<i32> = purges
            .iter()
            .map(|(b, _)| rank(b["status"].as_str().unwrap()))
            .collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]),
            "order {order:?}: {ranks:?}"
        );
        assert_eq!(
            h.posts("notify_content_deleted", &id).len(),
            1,
            "the delete is notified once (order {order:?})"
        );
    }
    assert_eq!(h.stack.depth(&h.stack.dlq_url).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_late_publish_after_the_unpublish_is_stale_and_purges_nothing_more() {
    let h = Harness::new().await;
    assert_eq!(
        h.deliver(&entry_event("unpublish", ABOUT)).await,
        "accepted"
    );
    h.settle(1).await;
    assert_eq!(
        h.deliver(&entry_event("publish.update", ABOUT)).await,
        "stale"
    );
    assert_eq!(h.deliver(&entry_event("publish", ABOUT)).await, "stale");
    h.settle(2).await;
    let purges = h.posts("invalidate_cache", ABOUT);
    assert_eq!(purges.len(), 1, "{purges:?}");
    assert_eq!(purges[0].0["status"], "draft");
    let entity = h
        .store()
        .get_entity("content", &format!("page/{ABOUT}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entity.attrs["status"], "draft");
    assert_eq!(entity.attrs["last_updated"], 1_749_997_200_000_i64);
}

#[tokio::test]
async fn an_unknown_operation_is_recorded_as_ignored() {
    let h = Harness::new().await;
    let mut v = entry_event("publish", ABOUT);
    v["operation"] = "autosave".into();
    assert_eq!(h.deliver(&v).await, "ignored");
    assert!(
        h.store()
            .get_entity("content", &format!("page/{ABOUT}"))
            .await
            .unwrap()
            .is_none()
    );
    let event = h
        .store()
        .get_event("builder", &format!("{ABOUT}:autosave:1749990000000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.status.status(), "ignored");
    assert_eq!(h.stack.depth(&h.stack.queue_url).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_delivery_without_values_is_recorded_every_time_and_purges_the_model() {
    let h = Harness::new().await;
    let body = sample("content-events", "publish.no-payload");
    let mut ids = BTreeSet::new();
    for request_id in ["Ab1cD2eF3gH4iJ5k=", "Zz9yX8wV7uT6sR5q="] {
        let mut gateway = ApiGatewayV2httpRequestContext::default();
        gateway.request_id = Some(request_id.into());
        let req = request(&body, LOCAL_SECRET)
            .with_request_context(RequestContext::ApiGatewayV2(gateway));
        let (status, answer) = h.send(req).await;
        assert_eq!(status, 200);
        assert_eq!(answer["status"], "accepted", "{answer}");
        assert_eq!(answer["deduplicated"], false);
        assert_eq!(answer["event_id"], format!("nopayload:{request_id}"));
        ids.insert(answer["event_id"].as_str().unwrap().to_owned());
    }
    // A resend without an API Gateway context (tests, a local runtime) is new as well.
    let (_, answer) = h.send(request(&body, LOCAL_SECRET)).await;
    assert_eq!(answer["status"], "accepted");
    ids.insert(answer["event_id"].as_str().unwrap().to_owned());
    assert_eq!(ids.len(), 3);
    h.settle(1).await;
    let purges: Vec<Value> = h
        .target
        .received()
        .into_iter()
        .filter(|r| r.path == "/invalidate_cache")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(purges.len(), 3);
    assert!(
        purges
            .iter()
            .all(|p| p["scope"] == "model" && p["model"] == "page"),
        "{purges:?}"
    );
    // A keyed delivery's answer says nothing about deduplication.
    let (_, answer) = h
        .send(request(&entry_event("publish", ABOUT), LOCAL_SECRET))
        .await;
    assert_eq!(answer.get("deduplicated"), None);
}

#[tokio::test]
async fn the_authorization_token_bare_or_bearer_and_nothing_else() {
    let h = Harness::new().await;
    let body = serde_json::to_vec(&entry_event("publish", ABOUT)).unwrap();
    let with = |value: Option<&str>| {
        let mut b = http::Request::builder()
            .method("POST")
            .uri("https://hooks.test/webhooks/builder")
            .header("content-type", "application/json");
        if let Some(v) = value {
            b = b.header("authorization", v);
        }
        b.body(Body::Binary(body.clone())).unwrap()
    };
    for forged in [
        None,
        Some("Bearer whsec_bm90LXRoZS1zZWNyZXQ="),
        Some("Basic whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ="),
        Some("Bearer"),
    ] {
        let (status, answer) = h.send(with(forged)).await;
        assert_eq!(status, 401, "{forged:?}: {answer}");
    }
    assert!(
        h.stack.calls.calls().is_empty(),
        "no AWS call for a forgery"
    );
    let (status, answer) = h.send(with(Some(&format!("Bearer {LOCAL_SECRET}")))).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let (status, answer) = h.send(with(Some(LOCAL_SECRET))).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
}

#[tokio::test]
async fn a_change_older_than_the_retention_is_refused_but_a_delete_has_no_time_to_hold() {
    let h = Harness::new().await;
    // The test store keeps records 30 days.
    let old = (NOW - 31 * 86_400) * 1000;
    let mut v = entry_event("publish", ABOUT);
    v["newValue"]["lastUpdated"] = old.into();
    let (status, answer) = h.send(request(&v, LOCAL_SECRET)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(h.stack.calls.calls().is_empty(), "refused before any write");
    // A delete's body holds only the entry's last edit, not the deletion's time: it passes.
    let mut v = entry_event("delete", ABOUT);
    v["previousValue"]["lastUpdated"] = old.into();
    assert_eq!(h.deliver(&v).await, "accepted");
}
