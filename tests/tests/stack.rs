//! The local stack as a user runs it: `scripts/dev.sh` (what `make dev` runs) starts its own
//! emulator, table and queues, sink, pump (worker feed and reconciler timer) and `cargo lambda
//! watch` serving every function, on free ports and in a private state directory. Once it says it
//! is ready, senders post fresh events with `hookline send` (reading the same port variables as
//! `make dev`): one at a time, then 16 at a time, then every event again.
//!
//! Asserted: every first delivery answers `accepted` (none 503, none `duplicate`), every
//! redelivery `duplicate`, and every follow-up reaches the sink exactly once, keyed by its
//! `Idempotency-Key`, with every outbox DONE and the queue empty at the end. Then lifecycles
//! sent out of order (docs/FOLLOWUPS.md, "one entity decides"): a checkout beside a
//! cancellation never leaves the access target granted, and a paid invoice's late payment
//! failure alerts nobody.
//!
//! Every child runs in its own process group, which a guard terminates on the way out, pass or
//! fail.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_sqs::types::QueueAttributeName;
use hookline::store::{ActionStatus, EventStore};
use serde_json::Value;
use tokio::process::Command;

/// Upper bound for `make dev` to build everything and say it is ready (cold CI target dir).
const READY_TIMEOUT: Duration = Duration::from_secs(1200);
/// Upper bound for one `hookline send`.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for every follow-up to be done after the last send.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Concurrent senders in the burst.
const SENDERS: usize = 16;
/// Events sent one at a time, then in the burst (each source alternately).
const SERIAL_EVENTS: usize = 6;
const BURST_EVENTS: usize = 48;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child leading its own process group, terminated (group-wide) on drop.
struct Group(Option<tokio::process::Child>);

/// `kill -<signal> -- -<pgid>`; true if the group existed.
fn signal_group(signal: &str, pgid: u32) -> bool {
    std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for Group {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let Some(pgid) = child.id() else { return };
        // dev.sh stops what it started on TERM (its EXIT trap), then the group goes.
        signal_group("-TERM", pgid);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let _ = child.try_wait();
            if !signal_group("-0", pgid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group("-KILL", pgid);
    }
}

/// The stack's ports and files.
struct Dev {
    root: PathBuf,
    dir: PathBuf,
    moto_port: u16,
    watch_port: u16,
    hookline: PathBuf,
}

impl Dev {
    /// `hookline` with the stack's port variables, as a user's second terminal would have them.
    fn hookline(&self) -> Command {
        let mut cmd = Command::new(&self.hookline);
        cmd.current_dir(&self.root)
            .env_remove("AWS_ENDPOINT_URL")
            .env("HOOKLINE_MOTO_PORT", self.moto_port.to_string())
            .env("HOOKLINE_WATCH_PORT", self.watch_port.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!("--- {name} (tail)\n{}", lines[from..].join("\n"))
    }
}

/// One event to send: which function, the payload file, the delivery id, and its source.
#[derive(Debug, Clone)]
struct Delivery {
    function: &'static str,
    source: &'static str,
    payload: PathBuf,
    id: String,
}

/// Writes fresh copies of the samples: a new invoice per Stripe event, a new user per user event.
fn deliveries(root: &Path, dir: &Path, n: usize, prefix: &str) -> anyhow::Result<Vec<Delivery>> {
    let read = |p: &str| -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&std::fs::read(root.join(p))?)?)
    };
    let invoice = read("events/payment-events/invoice.paid.json")?;
    let user = read("events/user-events/user.created.json")?;
    (0..n)
        .map(|i| {
            let tag = format!("{prefix}{i}");
            let (function, source, body, id) = if i % 2 == 0 {
                let mut body = invoice.clone();
                let id = format!("evt_stack_{tag}");
                body["id"] = id.clone().into();
                body["data"]["object"]["id"] = format!("in_stack_{tag}").into();
                ("payment-events", "stripe", body, id)
            } else {
                let mut body = user.clone();
                body["data"]["id"] = format!("user_stack_{tag}").into();
                ("user-events", "users", body, format!("msg_stack_{tag}"))
            };
            let payload = dir.join(format!("{id}.json"));
            std::fs::write(&payload, serde_json::to_vec(&body)?)?;
            Ok(Delivery {
                function,
                source,
                payload,
                id,
            })
        })
        .collect()
}

/// `hookline send`; returns the HTTP status line and the answer's `status` word.
async fn send(dev: &Dev, d: &Delivery) -> anyhow::Result<(String, String)> {
    let mut cmd = dev.hookline();
    cmd.args(["send", d.function])
        .arg(&d.payload)
        .args(["--id", &d.id]);
    let out = tokio::time::timeout(SEND_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("send {}: no answer within {SEND_TIMEOUT:?}", d.id))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (head, json) = stdout.split_once('\n').unwrap_or((&stdout, ""));
    let status = serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok((head.trim().to_owned(), status))
}

/// Sends every delivery with `senders` at a time; returns the answers in delivery order.
async fn send_all(
    dev: &Arc<Dev>,
    all: &[Delivery],
    senders: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(senders));
    let mut tasks = Vec::new();
    for d in all {
        let (dev, gate, d) = (dev.clone(), gate.clone(), d.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            send(&dev, &d).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await??);
    }
    Ok(answers)
}

fn expect_all(all: &[Delivery], answers: &[(String, String)], want: &str) -> anyhow::Result<()> {
    let wrong: Vec<String> = all
        .iter()
        .zip(answers)
        .filter(|(_, (head, status))| !head.starts_with("200") || status != want)
        .map(|(d, (head, status))| format!("{}: {head} {status}", d.id))
        .collect();
    ensure!(
        wrong.is_empty(),
        "{} of {} answers were not 200 {want}: {wrong:?}",
        wrong.len(),
        all.len()
    );
    Ok(())
}

/// One out-of-order lifecycle step: a sample with its ids rewritten, sent with `hookline send`.
fn stripe_delivery(
    root: &Path,
    dir: &Path,
    sample: &str,
    id: &str,
    edit: impl FnOnce(&mut Value),
) -> anyhow::Result<Delivery> {
    let mut body: Value = serde_json::from_slice(&std::fs::read(
        root.join("events/payment-events").join(sample),
    )?)?;
    body["id"] = id.into();
    edit(&mut body);
    let payload = dir.join(format!("{id}.json"));
    std::fs::write(&payload, serde_json::to_vec(&body)?)?;
    Ok(Delivery {
        function: "payment-events",
        source: "stripe",
        payload,
        id: id.to_owned(),
    })
}

/// Lifecycles sent out of order, as a user would with `hookline send`, one at a time:
/// - a cancellation that overtakes its subscription's creation, then the checkout that created
///   it, late: the customer must never get access;
/// - a subscription created, canceled, and then its checkout, late: whatever reached the
///   access target, it ends revoked (no provision after the last revoke);
/// - an invoice paid, then a payment failure of the same invoice from before it was paid: no
///   alert (the action ends SKIPPED with its reason).
///
/// Returns the subscriptions that must end without access and the late failure's event id.
async fn send_lifecycles(dev: &Arc<Dev>) -> anyhow::Result<(Vec<String>, String)> {
    let (root, dir) = (&dev.root, &dev.dir);
    let mut sends = Vec::new();
    let mut subs = Vec::new();
    for (case, order) in [
        ("cancel_first", ["deleted", "created", "checkout"]),
        ("late_checkout", ["created", "deleted", "checkout"]),
    ] {
        let sub = format!("sub_stack_{case}");
        let cs = format!("cs_stack_{case}");
        subs.push(sub.clone());
        for step in order {
            let (sample, id) = match step {
                "created" => (
                    "customer.subscription.created.json",
                    format!("evt_stack_{case}_cr"),
                ),
                "deleted" => (
                    "customer.subscription.deleted.json",
                    format!("evt_stack_{case}_dl"),
                ),
                _ => (
                    "checkout.session.completed.json",
                    format!("evt_stack_{case}_cs"),
                ),
            };
            let (sub, cs) = (sub.clone(), cs.clone());
            sends.push(stripe_delivery(root, dir, sample, &id, move |b| {
                let o = &mut b["data"]["object"];
                if step == "checkout" {
                    o["id"] = cs.into();
                    o["subscription"] = sub.into();
                } else {
                    o["id"] = sub.into();
                }
            })?);
        }
    }
    // The paid invoice's failure from before it was paid, delivered after it.
    let paid = stripe_delivery(root, dir, "invoice.paid.json", "evt_stack_inv_paid", |b| {
        b["data"]["object"]["id"] = "in_stack_late_failure".into();
    })?;
    let failed_id = "evt_stack_inv_failed".to_owned();
    let failed = stripe_delivery(root, dir, "invoice.payment_failed.json", &failed_id, |b| {
        let paid_at = 1_749_988_802i64;
        b["created"] = (paid_at - 3_600).into();
        b["data"]["object"]["id"] = "in_stack_late_failure".into();
    })?;
    sends.push(paid);
    sends.push(failed);
    for d in &sends {
        let (head, status) = send(dev, d).await?;
        ensure!(
            head.starts_with("200") && (status == "accepted" || status == "stale"),
            "{}: {head} {status}",
            d.id
        );
    }
    Ok((subs, failed_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_answers_every_first_delivery_and_runs_each_followup_once()
-> anyhow::Result<()> {
    hookline_tests::endpoint()?; // only under the test command
    let root = workspace_root();
    let dir =
        std::env::temp_dir().join(format!("hookline-stack-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let profile_dir = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .context("test binary outside target/<profile>/deps")?
        .to_owned();
    let dev = Arc::new(Dev {
        root: root.clone(),
        dir: dir.clone(),
        moto_port: free_port()?,
        watch_port: free_port()?,
        hookline: profile_dir.join("hookline"),
    });
    let sink_port = free_port()?;

    let log = std::fs::File::create(dir.join("dev.log"))?;
    let mut make_dev = Command::new("bash");
    make_dev
        .arg("scripts/dev.sh")
        .current_dir(&root)
        .env_remove("AWS_ENDPOINT_URL")
        .env("HOOKLINE_MOTO_PORT", dev.moto_port.to_string())
        .env("HOOKLINE_WATCH_PORT", dev.watch_port.to_string())
        .env("HOOKLINE_SINK_PORT", sink_port.to_string())
        .env("HOOKLINE_STATE_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let mut group = Group(Some(make_dev.spawn().context("starting scripts/dev.sh")?));

    let result = scenario(&dev, &mut group).await;
    drop(group);
    if result.is_err() {
        for name in ["dev.log", "pump.log", "sink.log", "watch.log"] {
            eprintln!("{}", dev.log(name));
        }
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn scenario(dev: &Arc<Dev>, group: &mut Group) -> anyhow::Result<()> {
    // Ready means ready: wait for the line that tells the user to send.
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let log = std::fs::read_to_string(dev.dir.join("dev.log")).unwrap_or_default();
        if log.contains("dev: ready") {
            ensure!(
                log.contains(&format!("HOOKLINE_WATCH_PORT={}", dev.watch_port)),
                "the ready line must carry the moved port:\n{log}"
            );
            break;
        }
        if let Some(child) = group.0.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!("scripts/dev.sh exited ({status}) before it was ready");
        }
        ensure!(
            Instant::now() < deadline,
            "not ready within {READY_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Fresh events one at a time, then SENDERS at a time, then every one of them again.
    let serial = deliveries(&dev.root, &dev.dir, SERIAL_EVENTS, "s")?;
    let answers = send_all(dev, &serial, 1).await?;
    expect_all(&serial, &answers, "accepted")?;
    let burst = deliveries(&dev.root, &dev.dir, BURST_EVENTS, "b")?;
    let answers = send_all(dev, &burst, SENDERS).await?;
    expect_all(&burst, &answers, "accepted")?;
    let all: Vec<Delivery> = serial.into_iter().chain(burst).collect();
    let answers = send_all(dev, &all, SENDERS).await?;
    expect_all(&all, &answers, "duplicate")?;

    // Every follow-up done, the queue empty, and each one received by the sink exactly once.
    let endpoint = format!("http://127.0.0.1:{}", dev.moto_port);
    let sdk = hookline_tests::sdk_config_for(&endpoint).await;
    let store = EventStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "hookline-local",
        30,
        hookline::clock::system(),
    );
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let expected: BTreeSet<String> = loop {
        let mut keys = BTreeSet::new();
        let mut pending = Vec::new();
        for d in &all {
            let event = store
                .get_event(d.source, &d.id)
                .await?
                .with_context(|| format!("event {} not recorded", d.id))?;
            ensure!(!event.outbox.is_empty(), "{} has no follow-ups", d.id);
            for o in &event.outbox {
                keys.insert(format!("{}:{}:{}:{}", d.source, d.id, o.kind, o.generation));
                if o.status != ActionStatus::Done {
                    pending.push(format!("{}:{} {:?}", d.id, o.kind, o.status));
                }
            }
        }
        if pending.is_empty() {
            break keys;
        }
        ensure!(
            Instant::now() < deadline,
            "follow-ups not done within {SETTLE_TIMEOUT:?}: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .get_queue_url()
        .queue_name("hookline-followups")
        .send()
        .await?
        .queue_url()
        .context("no queue url")?
        .to_owned();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let count = |name: QueueAttributeName| -> i64 {
            attrs
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1)
        };
        let (visible, in_flight) = (
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        );
        if visible == 0 && in_flight == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "queue not drained: {visible} visible, {in_flight} in flight"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let recorded = std::fs::read_to_string(dev.dir.join("sink.jsonl"))?;
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    for line in recorded.lines() {
        let request: Value = serde_json::from_str(line)?;
        ensure!(request["status"] == 200, "sink answered: {request}");
        let key = request["idempotency_key"]
            .as_str()
            .context("a follow-up without an Idempotency-Key")?;
        *received.entry(key.to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        twice.is_empty(),
        "follow-ups POSTed more than once: {twice:?}"
    );
    let got: BTreeSet<String> = received.into_keys().collect();
    ensure!(
        got == expected,
        "sink received {} follow-ups, expected {}: missing {:?}, unexpected {:?}",
        got.len(),
        expected.len(),
        expected.difference(&got).collect::<Vec<_>>(),
        got.difference(&expected).collect::<Vec<_>>()
    );

    // Then lifecycles out of order, as a user would send them.
    let seen = recorded.lines().count();
    let (subs, late_failure) = send_lifecycles(dev).await?;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut open = Vec::new();
        for sub in &subs {
            let entity = store.get_entity("subscription", sub).await?;
            let status = entity.and_then(|e| e.sync).map(|s| s.status);
            if !status.is_some_and(ActionStatus::is_final) {
                open.push(format!("{sub}: {status:?}"));
            }
        }
        let failure = store
            .get_event("stripe", &late_failure)
            .await?
            .context("the late failure was not recorded")?;
        for o in failure.outbox.iter().filter(|o| !o.status.is_final()) {
            open.push(format!("{late_failure}:{} {:?}", o.kind, o.status));
        }
        if open.is_empty() {
            let alert = failure.outbox.iter().find(|o| o.kind == "notify_admin");
            ensure!(
                alert.is_some_and(|o| o.status == ActionStatus::Skipped),
                "the late alert about a paid invoice must end SKIPPED: {alert:?}"
            );
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "lifecycles not settled within {SETTLE_TIMEOUT:?}: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recorded = std::fs::read_to_string(dev.dir.join("sink.jsonl"))?;
    let posts: Vec<Value> = recorded
        .lines()
        .skip(seen)
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let alerted: Vec<&Value> = posts
        .iter()
        .filter(|p| {
            p["idempotency_key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&format!("stripe:{late_failure}:")))
        })
        .collect();
    ensure!(
        alerted.is_empty(),
        "a paid invoice's late failure alerted: {alerted:?}"
    );
    for sub in &subs {
        // The access target's view of this subscription, in the order the sink saw it.
        let paths: Vec<&str> = posts
            .iter()
            .filter(|p| p["body"]["subscription"] == sub.as_str() && p["status"] == 200)
            .filter_map(|p| p["path"].as_str())
            .collect();
        let last_revoke = paths.iter().rposition(|p| p.contains("revoke_access"));
        let last_grant = paths.iter().rposition(|p| p.contains("provision_access"));
        ensure!(
            last_grant.is_none_or(|g| last_revoke.is_some_and(|r| r > g)),
            "{sub} was canceled but the access target ends granted: {paths:?}"
        );
        if sub.ends_with("cancel_first") {
            ensure!(
                last_grant.is_none(),
                "{sub} was canceled before it was created: never granted: {paths:?}"
            );
        }
    }
    Ok(())
}
