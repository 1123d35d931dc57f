//! The worker against the in-memory store and a local target: lost answers and throttled
//! writes around a claim, a pre-POST mark and a DONE mark, in milliseconds (the moto suite,
//! tests/tests/lost_answers.rs and lifecycle.rs, proves the same against a real API).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Handled, Retry, Worker};
use crate::clock::{FixedClock, SharedClock};
use crate::config::Target;
use crate::followup::Timers;
use crate::store::memory::{Call, Fault, MemoryStore};
use crate::store::{
    Action, ActionStatus, ChangeMode, Effects, FollowUp, NewEvent, SharedStore, StateAttrs,
    StateChange, Store, SyncTarget,
};

/// A target that answers 200 to every POST and keeps each one's `Idempotency-Key`.
async fn target() -> (url::Url, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let header = |name: &str| {
                        text[..end].lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                    };
                    let len: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    seen.lock()
                        .unwrap()
                        .push(header("idempotency-key").unwrap_or_default());
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, keys)
}

struct Setup {
    worker: Worker,
    store: Arc<MemoryStore>,
    clock: Arc<FixedClock>,
    posts: Arc<Mutex<Vec<String>>>,
}

async fn setup() -> Setup {
    let clock = FixedClock::at_secs(1_700_000_000);
    let shared: SharedClock = clock.clone();
    let store = Arc::new(MemoryStore::new(shared.clone()));
    let (url, posts) = target().await;
    let targets = BTreeMap::from([
        ("receipt".to_owned(), Target::Url(url.clone())),
        ("provision_access".to_owned(), Target::Url(url)),
    ]);
    let worker = Worker::from_parts(
        store.clone() as SharedStore,
        crate::queue::unreachable(),
        "http://127.0.0.1:1/dlq",
        targets,
        Timers::default(),
        shared.clone(),
    )
    .unwrap()
    .with_metrics(crate::metrics::Metrics::to_writer(std::io::sink(), shared));
    Setup {
        worker,
        store,
        clock,
        posts,
    }
}

const EVENT: NewEvent<'static> = NewEvent {
    source: "unit",
    function: "unit-events",
    event_id: "evt_1",
    event_type: "thing.updated",
    provider_ts: 1,
    body: b"{}",
    delivery: None,
};

async fn record(store: &MemoryStore, effects: &Effects) {
    store
        .commit(store.plan(&EVENT, effects).unwrap())
        .await
        .unwrap();
}

/// An event with one `receipt`; its message.
async fn receipt(store: &MemoryStore) -> String {
    record(
        store,
        &Effects::apply(None, vec![Action::new("receipt", json!({"n": 1}))]),
    )
    .await;
    crate::queue::encode(&FollowUp::Action {
        source: "unit".into(),
        event_id: "evt_1".into(),
        action: "receipt".into(),
    })
}

fn receipt_status(store: &MemoryStore) -> ActionStatus {
    store.event("unit", "evt_1").unwrap().outbox[0].status
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_still_runs_the_action_once() {
    let s = setup().await;
    let message = receipt(&s.store).await;
    s.store.fail_next(Call::ClaimAction, Fault::LostAnswer);
    assert_eq!(s.worker.handle_message(&message).await, Ok(Handled::Done));
    assert_eq!(s.posts.lock().unwrap().len(), 1);
    assert_eq!(receipt_status(&s.store), ActionStatus::Done);
    // A copy of the message finds it finished.
    assert_eq!(
        s.worker.handle_message(&message).await,
        Ok(Handled::NotClaimed)
    );
    assert_eq!(s.posts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_claim_whose_every_answer_was_lost_runs_once_its_lease_has_ended() {
    let s = setup().await;
    let message = receipt(&s.store).await;
    s.store
        .fail_next(Call::ClaimAction, Fault::AppliedButFailed);
    assert!(matches!(
        s.worker.handle_message(&message).await,
        Err(Retry::Dependency(_))
    ));
    // The orphaned lease holds every copy off until it ends; nothing was POSTed.
    assert_eq!(
        s.worker.handle_message(&message).await,
        Ok(Handled::NotClaimed)
    );
    assert!(s.posts.lock().unwrap().is_empty());
    s.clock.advance_secs(26);
    assert_eq!(s.worker.handle_message(&message).await, Ok(Handled::Done));
    assert_eq!(s.posts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_done_mark_whose_answer_was_lost_makes_no_second_post() {
    let s = setup().await;
    let message = receipt(&s.store).await;
    // The SDK's retry meets the mark's own write: DONE, counted once.
    s.store.fail_next(Call::FinishAction, Fault::LostAnswer);
    assert_eq!(s.worker.handle_message(&message).await, Ok(Handled::Done));
    assert_eq!(receipt_status(&s.store), ActionStatus::Done);
    assert_eq!(
        s.worker.handle_message(&message).await,
        Ok(Handled::NotClaimed)
    );
    assert_eq!(s.posts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_done_mark_whose_every_answer_was_lost_makes_no_second_post() {
    let s = setup().await;
    let message = receipt(&s.store).await;
    s.store
        .fail_next(Call::FinishAction, Fault::AppliedButFailed);
    assert!(matches!(
        s.worker.handle_message(&message).await,
        Err(Retry::Dependency(_))
    ));
    // The message comes back, even after the lease: DONE was written, nothing runs again.
    s.clock.advance_secs(600);
    assert_eq!(
        s.worker.handle_message(&message).await,
        Ok(Handled::NotClaimed)
    );
    assert_eq!(receipt_status(&s.store), ActionStatus::Done);
    assert_eq!(s.posts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_throttled_claim_or_guard_read_posts_nothing_and_retries() {
    let s = setup().await;
    let message = receipt(&s.store).await;
    s.store.fail_next(Call::ClaimAction, Fault::Throttle);
    assert!(matches!(
        s.worker.handle_message(&message).await,
        Err(Retry::Dependency(_))
    ));
    assert!(s.posts.lock().unwrap().is_empty());
    assert_eq!(receipt_status(&s.store), ActionStatus::Pending);
    assert_eq!(s.worker.handle_message(&message).await, Ok(Handled::Done));
    assert_eq!(s.posts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_pre_post_mark_whose_answer_was_lost_posts_once_under_its_sequence() {
    let s = setup().await;
    let sync = SyncTarget {
        name: "access".into(),
        action: "provision_access".into(),
        payload: json!({"grant": true}),
        baseline: false,
    };
    let change = StateChange {
        entity_kind: "subscription".into(),
        entity_id: "sub_1".into(),
        version: 1,
        mode: ChangeMode::Upsert,
        attrs: StateAttrs::new(),
        sync: Some(sync),
    };
    record(&s.store, &Effects::apply(Some(change), Vec::new())).await;
    let message = crate::queue::encode(&FollowUp::Sync {
        source: "unit".into(),
        entity_kind: "subscription".into(),
        entity_id: "sub_1".into(),
        sync: "access".into(),
    });
    s.store.fail_next(Call::MarkSyncSent, Fault::LostAnswer);
    s.store.fail_next(Call::FinishSync, Fault::LostAnswer);
    assert_eq!(s.worker.handle_message(&message).await, Ok(Handled::Done));
    assert_eq!(
        s.posts.lock().unwrap().as_slice(),
        ["unit:subscription/sub_1#1:access:0"]
    );
    let synced = s
        .store
        .entity("subscription", "sub_1")
        .unwrap()
        .sync
        .unwrap();
    assert_eq!((synced.status, synced.seq), (ActionStatus::Done, 1));
    assert_eq!(synced.synced, synced.sent);
    // Up to date now: a copy POSTs nothing.
    assert_eq!(
        s.worker.handle_message(&message).await,
        Ok(Handled::NotClaimed)
    );
    assert_eq!(s.posts.lock().unwrap().len(), 1);
}
