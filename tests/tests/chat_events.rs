//! `chat-events` (Slack Events API) against the emulator with the real SDK clients, beyond the
//! generic battery: `url_verification` is answered with its challenge only once verified (a
//! forgery gets a bare 401), recorded and enqueues nothing; a retry (`X-Slack-Retry-Num`,
//! re-signed later) is a duplicate and the reply runs once; no reply ever goes to a bot's
//! message; a user's message that mentions the bot is answered once (by its `app_mention`); an
//! unknown inner event is ignored; the receiver's budget is Slack's 3 s. No entity is kept, so
//! nothing is stale here (the handler's header says why). Time is a [`FixedClock`].

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hookline::clock::{Clock, FixedClock, SharedClock};
use hookline::followup::Timers;
use hookline::receiver::{Receiver, ReceiverSpec};
use hookline::store::EventStore;
use hookline::worker::Worker;
use hookline_tests::{LOCAL_SECRET, Stack, Target, init_test_log, local_receiver, sample};
use lambda_http::{Body, Request};
use serde_json::Value;

const NOW: i64 = 1_750_000_000;

fn spec() -> ReceiverSpec {
    hookline_receivers::by_function("chat-events").unwrap()
}

struct Harness {
    stack: Stack,
    clock: Arc<FixedClock>,
    target: Target,
    worker: Worker,
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

    fn shared(&self) -> SharedClock {
        self.clock.clone()
    }

    fn store(&self) -> EventStore {
        self.stack.store(self.shared())
    }

    fn receiver(&self) -> Receiver {
        local_receiver(spec(), &self.shared(), self.store(), self.stack.queue())
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

    /// `body` signed by Slack now with `secret`.
    fn request(&self, body: &Value, secret: &str) -> Request {
        hookline_tests::signed_request(
            &spec().scheme,
            &serde_json::to_vec(body).unwrap(),
            secret,
            "",
            self.clock.now_secs(),
        )
    }

    /// Posts a genuine delivery of `body`; the answer's status.
    async fn deliver(&self, body: &Value) -> String {
        let (status, answer) = self.send(self.request(body, LOCAL_SECRET)).await;
        assert_eq!(status, 200, "{answer}");
        answer["status"].as_str().unwrap().to_owned()
    }

    /// Feeds the queue to the worker until nothing is left.
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

    fn replies(&self) -> Vec<(Value, String)> {
        self.target
            .received()
            .into_iter()
            .filter(|r| r.path == "/chat_reply")
            .map(|r| {
                (
                    serde_json::from_str(&r.body).unwrap(),
                    r.idempotency_key.unwrap_or_default(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn url_verification_is_answered_with_its_challenge_only_once_verified() {
    let h = Harness::new().await;
    let body = sample("chat-events", "url_verification");
    let challenge = body["challenge"].as_str().unwrap();

    let (status, answer) = h.send(h.request(&body, "whsec_bm90LXRoZS1zZWNyZXQ=")).await;
    assert_eq!(status, 401);
    assert_eq!(answer.get("challenge"), None, "a forgery learns nothing");
    assert!(!answer.to_string().contains(challenge));
    assert!(h.stack.calls.calls().is_empty());

    let (status, answer) = h.send(h.request(&body, LOCAL_SECRET)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["challenge"], challenge);
    assert_eq!(answer["status"], "accepted");
    let id = answer["event_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("url_verification:"), "{id}");
    // Slack checks again (a retry of the same check): still answered, a duplicate.
    h.clock.advance_secs(30);
    let (status, again) = h.send(h.request(&body, LOCAL_SECRET)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (again["status"].as_str(), again["challenge"].as_str()),
        (Some("duplicate"), Some(challenge))
    );
    // Recorded, with nothing to run.
    let event = h.store().get_event("slack", &id).await.unwrap().unwrap();
    assert_eq!(event.status.status(), "accepted");
    assert!(event.outbox.is_empty());
    assert_eq!(event.entity, None);
    assert_eq!(h.stack.depth(&h.stack.queue_url).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_retry_is_a_duplicate_and_the_mention_is_answered_once() {
    let h = Harness::new().await;
    let body = sample("chat-events", "app_mention");
    assert_eq!(h.deliver(&body).await, "accepted");
    // Slack retries after its 3 s: the same body, signed again later, with X-Slack-Retry-Num.
    for retry in 1..=3 {
        h.clock.advance_secs(60);
        let mut req = h.request(&body, LOCAL_SECRET);
        req.headers_mut()
            .insert("x-slack-retry-num", retry.to_string().parse().unwrap());
        req.headers_mut()
            .insert("x-slack-retry-reason", "http_timeout".parse().unwrap());
        let (status, answer) = h.send(req).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("duplicate"))
        );
        assert_eq!(answer["event_id"], "Ev0HLMENTION01");
    }
    h.settle(1).await;
    let replies = h.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].1, "slack:Ev0HLMENTION01:chat_reply:0");
    assert_eq!(replies[0].0["thread_ts"], "1749990000.000100");
}

#[tokio::test]
async fn a_bot_s_message_is_never_answered() {
    let h = Harness::new().await;
    for name in [
        "message.from_bot",
        "message.bot_message",
        "message.message_changed",
    ] {
        assert_eq!(
            h.deliver(&sample("chat-events", name)).await,
            "accepted",
            "{name}"
        );
    }
    // Our own bot user as author, without a bot_id.
    let mut v = sample("chat-events", "message");
    v["event_id"] = "Ev0HLOWNUSER1".into();
    v["event"]["user"] = "U0HLBOT0001".into();
    assert_eq!(h.deliver(&v).await, "accepted");
    assert_eq!(h.stack.depth(&h.stack.queue_url).await.unwrap(), (0, 0));
    h.settle(1).await;
    assert!(h.target.received().is_empty(), "{:?}", h.target.received());
}

#[tokio::test]
async fn a_mention_arriving_as_app_mention_and_message_is_answered_once() {
    let h = Harness::new().await;
    let mention = sample("chat-events", "app_mention");
    let mut message = sample("chat-events", "message");
    message["event_id"] = "Ev0HLMSGMENTN1".into();
    message["event"]["text"] = mention["event"]["text"].clone();
    message["event"]["ts"] = mention["event"]["ts"].clone();
    message["event"]["channel"] = mention["event"]["channel"].clone();
    message["event"]
        .as_object_mut()
        .unwrap()
        .remove("thread_ts");
    for body in [&message, &mention] {
        assert_eq!(h.deliver(body).await, "accepted");
    }
    // A user's plain message is answered too.
    assert_eq!(
        h.deliver(&sample("chat-events", "message")).await,
        "accepted"
    );
    h.settle(1).await;
    let keys: Vec<String> = h.replies().into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        keys.len(),
        2,
        "one reply to the mention, one to the plain message: {keys:?}"
    );
    assert!(keys.contains(&"slack:Ev0HLMENTION01:chat_reply:0".to_owned()));
    assert!(keys.contains(&"slack:Ev0HLMESSAGE01:chat_reply:0".to_owned()));
}

#[tokio::test]
async fn an_unknown_inner_event_is_recorded_as_ignored() {
    let h = Harness::new().await;
    assert_eq!(
        h.deliver(&sample("chat-events", "reaction_added")).await,
        "ignored"
    );
    let event = h
        .store()
        .get_event("slack", "Ev0HLREACT001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.status.status(), "ignored");
    assert_eq!(event.event_type, "reaction_added");
    assert_eq!(h.stack.depth(&h.stack.queue_url).await.unwrap(), (0, 0));
}

#[test]
fn the_budget_is_slack_s_three_seconds() {
    assert_eq!(spec().sender_timeout, std::time::Duration::from_secs(3));
    assert_eq!(spec().route, "/webhooks/slack");
}
