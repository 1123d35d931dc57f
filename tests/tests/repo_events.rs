//! `repo-events` (GitHub) against the emulator, with the real SDK clients, the worker and a local
//! target: a workflow run's lifecycle converges in every arrival order and a failed run notifies
//! once; two pushes to the default branch deploy the newer one last whatever their order; a
//! form-encoded delivery is accepted like its JSON twin. The generic battery covers the rest.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hookline::clock::{Clock, FixedClock, SharedClock};
use hookline::followup::Timers;
use hookline::store::EventStore;
use hookline_tests::{LOCAL_SECRET, Stack, Target, init_test_log, local_receiver, sample};
use serde_json::Value;

/// A day after the samples' times: inside the replay window.
const NOW: i64 = 1_796_480_000;

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

    /// Posts `body` as event `event`, signed, with `content_type`; the answer's `status`.
    async fn deliver_raw(&self, event: &str, body: &[u8], content_type: &str, id: &str) -> String {
        let clock: SharedClock = self.clock.clone();
        let rx = local_receiver(
            repo_events::spec(),
            &clock,
            self.store(),
            self.stack.queue(),
        );
        let mut req = hookline_tests::signed_request(
            &hookline::verify::Scheme::GitHub,
            body,
            LOCAL_SECRET,
            id,
            self.clock.now_secs(),
        );
        req.headers_mut()
            .insert("x-github-event", event.parse().unwrap());
        req.headers_mut()
            .insert("content-type", content_type.parse().unwrap());
        let resp = rx.handle(req).await;
        assert_eq!(resp.status(), 200, "{event} {id}");
        let answer: Value = match resp.body() {
            lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
            lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap(),
            _ => Value::Null,
        };
        answer["status"].as_str().unwrap().to_owned()
    }

    async fn deliver(&self, event: &str, body: &Value, id: &str) -> String {
        self.deliver_raw(
            event,
            &serde_json::to_vec(body).unwrap(),
            "application/json",
            id,
        )
        .await
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
}

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
async fn a_failed_run_in_every_order_ends_completed_and_notifies_once() {
    let h = Harness::new().await;
    let names = [
        "workflow_run.requested",
        "workflow_run.in_progress",
        "workflow_run.completed",
    ];
    for (n, arrival) in permutations(names.len()).into_iter().enumerate() {
        let workflow = 5_000 + u64::try_from(n).unwrap();
        for (step, &i) in arrival.iter().enumerate() {
            let mut v = sample("repo-events", names[i]);
            v["workflow_run"]["workflow_id"] = workflow.into();
            let answer = h.deliver("workflow_run", &v, &format!("d-{n}-{i}")).await;
            assert!(answer == "accepted" || answer == "stale", "{answer}");
            if (n + step) % 2 == 0 {
                h.settle(u64::try_from(n * 10 + step).unwrap()).await;
            }
        }
        h.settle(u64::try_from(n).unwrap()).await;
        let id = format!("871234567/{workflow}");
        let entity = h
            .store()
            .get_entity(repo_events::handler::WORKFLOW, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entity.attrs["status"], "completed", "{arrival:?}");
        assert_eq!(entity.attrs["conclusion"], "failure", "{arrival:?}");
    }
    let notices = h
        .target
        .received()
        .iter()
        .filter(|r| r.path == "/notify_admin")
        .count();
    assert_eq!(notices, 6, "one per permutation's failed run");
}

#[tokio::test]
async fn two_pushes_in_either_order_deploy_the_newer_last() {
    let h = Harness::new().await;
    for (n, newer_first) in [false, true].into_iter().enumerate() {
        let repo = 900_000 + u64::try_from(n).unwrap();
        let push = |sha: &str, at: i64| {
            let mut v = sample("repo-events", "push");
            v["repository"]["id"] = repo.into();
            v["after"] = sha.into();
            v["repository"]["pushed_at"] = at.into();
            v
        };
        let older = push("1111111111111111111111111111111111111111", 1_796_306_531);
        let newer = push("2222222222222222222222222222222222222222", 1_796_306_600);
        let order = if newer_first {
            [&newer, &older]
        } else {
            [&older, &newer]
        };
        for (i, body) in order.into_iter().enumerate() {
            h.deliver("push", body, &format!("p-{n}-{i}")).await;
            h.settle(u64::try_from(n * 10 + i).unwrap()).await;
        }
        let deploys: Vec<String> = h
            .target
            .received()
            .into_iter()
            .filter(|r| r.path == "/deploy_branch" && r.body.contains(&format!("{repo}")))
            .map(|r| r.body)
            .collect();
        assert!(
            deploys.last().unwrap().contains("2222222222"),
            "newer first: {newer_first}: {deploys:?}"
        );
        assert_eq!(deploys.len(), if newer_first { 1 } else { 2 });
    }
}

#[tokio::test]
async fn a_form_encoded_push_is_accepted_and_a_ping_recorded() {
    let h = Harness::new().await;
    let json = serde_json::to_string(&sample("repo-events", "push")).unwrap();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    let answer = h
        .deliver_raw(
            "push",
            form.as_bytes(),
            "application/x-www-form-urlencoded",
            "f-1",
        )
        .await;
    assert_eq!(answer, "accepted");
    assert_eq!(
        h.deliver("ping", &sample("repo-events", "ping"), "f-2")
            .await,
        "accepted"
    );
}

/// `cargo lambda watch` (and API Gateway) hand a form body to the function base64-encoded: the
/// request the receiver sees is the decoded bytes, verified and hashed as GitHub sent them.
#[tokio::test]
async fn a_base64_encoded_form_body_from_api_gateway_is_verified_over_the_raw_bytes() {
    use base64::Engine as _;
    let h = Harness::new().await;
    let json = serde_json::to_string(&sample("repo-events", "workflow_run.completed")).unwrap();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    let signed = hookline::verify::sign(
        &hookline::verify::Scheme::GitHub,
        &hookline::secret::Secret::new(LOCAL_SECRET),
        &hookline::verify::SignInput {
            body: form.as_bytes(),
            timestamp: NOW,
            id: "b64-1",
            url: None,
        },
    )
    .unwrap();
    let mut headers = serde_json::Map::new();
    headers.insert(
        "content-type".into(),
        "application/x-www-form-urlencoded".into(),
    );
    headers.insert("x-github-event".into(), "workflow_run".into());
    for (k, v) in signed {
        headers.insert(k.to_string(), v.into());
    }
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/github",
        "rawPath": "/webhooks/github",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "hookline.local",
            "domainPrefix": "hookline", "requestId": "local-b64", "routeKey": "POST /webhooks/github",
            "stage": "$default", "time": "", "timeEpoch": NOW * 1000,
            "http": {"method": "POST", "path": "/webhooks/github", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "GitHub-Hookshot/abc1234"}
        },
        "body": base64::engine::general_purpose::STANDARD.encode(form.as_bytes()),
        "isBase64Encoded": true,
    });
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let clock: SharedClock = h.clock.clone();
    let rx = local_receiver(repo_events::spec(), &clock, h.store(), h.stack.queue());
    let resp = rx.handle(req).await;
    let answer: Value = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => Value::Null,
    };
    assert_eq!(resp.status(), 200, "{answer}");
    assert_eq!(answer["status"], "accepted", "{answer}");
    use sha2::Digest as _;
    let key = format!(
        "workflow_run:{}",
        hex_digest(&sha2::Sha256::digest(form.as_bytes()))
    );
    assert_eq!(answer["event_id"], key.as_str());
    let record = h.store().get_event("github", &key).await.unwrap().unwrap();
    let delivery = record.delivery.unwrap();
    assert_eq!(delivery.event_type.as_deref(), Some("workflow_run"));
    assert_eq!(delivery.delivery_id.as_deref(), Some("b64-1"));
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
