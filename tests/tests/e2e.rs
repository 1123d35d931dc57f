//! End to end, the way a developer runs it (`make dev`, docs/LOCAL.md), against the emulator the
//! test command started: `hookline local up` creates a private table and queues, `hookline sink`
//! stands in for the action targets, `cargo lambda watch` serves the real function binaries, then
//! `hookline send` posts a signed Stripe sample, `hookline pump --once` feeds the follow-up queue
//! to the worker, and the test checks the sink got the `receipt` action and the outbox is DONE.
//!
//! Every child runs in its own process group, which a guard terminates on the way out, pass or
//! fail (`cargo lambda watch` runs the functions through `cargo run`, so the whole group goes).

#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hookline::store::{ActionStatus, EventStore};
use serde_json::Value;
use tokio::process::Command;

/// The sample sent, and its Stripe event id.
const SAMPLE: &str = "events/payment-events/invoice.paid.json";
/// Upper bound for the builds the test runs (a cold CI target dir on two cores is slow).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
/// Upper bound for anything that may wait on watch starting a function (first invocation).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);
/// Upper bound for a process to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Child processes, each leading its own process group, terminated (group-wide) on drop.
#[derive(Default)]
struct Children {
    running: Vec<(String, tokio::process::Child)>,
}

impl Children {
    fn adopt(&mut self, name: &str, child: tokio::process::Child) {
        self.running.push((name.to_owned(), child));
    }
}

/// `kill -<signal> -- -<pgid>`; true if the group existed.
fn signal_group(signal: &str, pgid: u32) -> bool {
    std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for Children {
    fn drop(&mut self) {
        let groups: Vec<(String, u32)> = self
            .running
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.id()?)))
            .collect();
        for (_, pgid) in &groups {
            signal_group("-TERM", *pgid);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for ((name, pgid), (_, child)) in groups.iter().zip(&mut self.running) {
            loop {
                let _ = child.try_wait(); // reap the leader, so the group can empty
                if !signal_group("-0", *pgid) || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if signal_group("-KILL", *pgid) {
                eprintln!("e2e: {name} outlived SIGTERM; killed");
            }
        }
    }
}

/// A command in its own process group, run from the workspace root, with the venv tools on PATH.
fn command(program: impl AsRef<std::ffi::OsStr>, root: &Path) -> Command {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![root.join(".venv/bin")];
    paths.extend(std::env::split_paths(&path));
    let mut cmd = Command::new(program);
    cmd.current_dir(root)
        .env("PATH", std::env::join_paths(paths).unwrap())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// Runs to completion within `timeout`; returns (success, stdout, stderr).
async fn run(
    mut cmd: Command,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<(bool, String, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .with_context(|| format!("{what}: no result within {timeout:?}"))?
        .with_context(|| format!("{what}: could not start"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs and requires success.
async fn run_ok(cmd: Command, what: &str, timeout: Duration) -> anyhow::Result<String> {
    let (ok, stdout, stderr) = run(cmd, what, timeout).await?;
    ensure!(
        ok,
        "{what} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    Ok(stdout)
}

/// Polls until something accepts connections on `port` (bounded).
async fn wait_listening(port: u16, what: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{what} did not listen on {port} within {START_TIMEOUT:?}\n{}",
        tail(log)
    )
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!("--- {} (tail)\n{}", log.display(), lines[from..].join("\n"))
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(name);
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_stripe_event_reaches_the_action_target() -> anyhow::Result<()> {
    hookline_tests::endpoint()?;
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let dir = std::env::temp_dir().join(format!("hookline-e2e-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut children = Children::default();
    let result = scenario(&root, &cargo, &dir, &mut children).await;
    drop(children);
    if result.is_err() {
        for name in ["watch.log", "sink.log"] {
            eprintln!("{}", tail(&dir.join(name)));
        }
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn scenario(
    root: &Path,
    cargo: &std::ffi::OsStr,
    dir: &Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    // The CLI, and the two functions exercised, built up front so that a compile error shows here
    // rather than as a hung request. The functions are built with the same command-line shape as
    // watch's own `cargo run --bin <name>`, so watch reuses these artifacts.
    let mut build = command(cargo, root);
    build.args(["build", "-p", "hookline-cli", "--bin", "hookline"]);
    run_ok(build, "cargo build -p hookline-cli", BUILD_TIMEOUT).await?;
    let mut build = command(cargo, root);
    build.args([
        "build",
        "--bin",
        "payment-events",
        "--bin",
        "followup-worker",
    ]);
    run_ok(build, "cargo build (functions)", BUILD_TIMEOUT).await?;
    let profile_dir = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .context("test binary outside target/<profile>/deps")?
        .to_owned();
    let hookline = profile_dir.join("hookline");
    ensure!(hookline.exists(), "{} was not built", hookline.display());

    // A private table and queues, and the functions' environment pointing at them and the sink.
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (table, queue) = (format!("e2e-{suffix}"), format!("e2e-{suffix}"));
    let sink_port = free_port()?;
    let env_file = dir.join("lambda.env");
    let local_up = |hookline: &Path| {
        let mut cmd = command(hookline, root);
        cmd.args(["local", "up", "--table", &table, "--queue", &queue])
            .arg("--env-file")
            .arg(&env_file)
            .args(["--sink-url", &format!("http://127.0.0.1:{sink_port}")]);
        cmd
    };
    let up = run_ok(local_up(&hookline), "hookline local up", START_TIMEOUT).await?;
    ensure!(up.contains(&format!("table {table} (created)")), "{up}");
    let queue_url = up
        .lines()
        .find_map(|l| l.strip_prefix("queue "))
        .context("local up printed no queue URL")?
        .trim()
        .to_owned();
    let again = run_ok(
        local_up(&hookline),
        "hookline local up (again)",
        START_TIMEOUT,
    )
    .await?;
    ensure!(again.contains("(exists)"), "second local up: {again}");

    // The sink, recording what it receives.
    let record = dir.join("sink.jsonl");
    let (sink_log, sink_out) = log_file(dir, "sink.log")?;
    let mut sink = command(&hookline, root);
    sink.args(["sink", "--addr", &format!("127.0.0.1:{sink_port}")])
        .arg("--record")
        .arg(&record)
        .stdout(sink_out.try_clone()?)
        .stderr(sink_out);
    children.adopt("sink", sink.spawn().context("starting hookline sink")?);
    wait_listening(sink_port, "hookline sink", &sink_log).await?;

    // cargo lambda watch serving every function with that environment.
    let watch_port = free_port()?;
    let (watch_log, watch_out) = log_file(dir, "watch.log")?;
    let mut watch = command(cargo, root);
    watch
        .args(["lambda", "watch", "--ignore-changes"])
        .args(["--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &watch_port.to_string()])
        .arg("--env-file")
        .arg(&env_file)
        .stdout(watch_out.try_clone()?)
        .stderr(watch_out);
    let watch = watch
        .spawn()
        .context("starting `cargo lambda watch` (cargo-lambda comes from scripts/bootstrap.sh)")?;
    children.adopt("cargo lambda watch", watch);
    wait_listening(watch_port, "cargo lambda watch", &watch_log).await?;
    let base = format!("http://127.0.0.1:{watch_port}");

    // Sign and send the sample; the first request may wait for watch to start the function.
    let mut send = command(&hookline, root);
    send.args(["send", "payment-events", SAMPLE])
        .args(["--url", &format!("{base}/lambda-url/payment-events/")]);
    let sent = run_ok(send, "hookline send", COMPILE_TIMEOUT).await?;
    ensure!(sent.starts_with("200"), "send answered: {sent}");
    let answer: Value = serde_json::from_str(sent.split_once('\n').map_or("", |(_, j)| j))
        .with_context(|| format!("send printed no JSON answer: {sent}"))?;
    ensure!(answer["status"] == "accepted", "answer: {answer}");
    let sample: Value = serde_json::from_slice(&std::fs::read(root.join(SAMPLE))?)?;
    let event_id = sample["id"].as_str().context("sample has no id")?;
    ensure!(answer["event_id"] == event_id, "answer: {answer}");

    // Feed the follow-up queue to the worker once.
    let mut pump = command(&hookline, root);
    pump.args(["pump", "--once", "--queue-url", &queue_url])
        .args([
            "--worker-url",
            &format!("{base}/2015-03-31/functions/followup-worker/invocations"),
        ]);
    let pumped = run_ok(pump, "hookline pump --once", COMPILE_TIMEOUT).await?;
    ensure!(
        pumped.contains("receipt -> done") && pumped.contains("1 done"),
        "pump: {pumped}"
    );

    // The sink received the receipt, keyed for idempotency, and the outbox says DONE.
    let received = std::fs::read_to_string(&record).unwrap_or_default();
    let requests: Vec<Value> = received
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(requests.len() == 1, "sink received: {received}");
    let receipt = &requests[0];
    ensure!(receipt["path"] == "/receipt", "sink received: {receipt}");
    ensure!(receipt["status"] == 200, "sink received: {receipt}");
    ensure!(
        receipt["idempotency_key"]
            .as_str()
            .is_some_and(|k| k.contains(event_id) && k.contains("receipt")),
        "sink received: {receipt}"
    );
    ensure!(
        receipt["body"]["invoice"] == sample["data"]["object"]["id"],
        "receipt payload: {receipt}"
    );

    let sdk = hookline_tests::sdk_config().await?;
    let store = EventStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &table,
        30,
        hookline::clock::system(),
    );
    let event = store
        .get_event("stripe", event_id)
        .await?
        .context("event not recorded")?;
    ensure!(event.status == "accepted", "event: {event:?}");
    let statuses: Vec<_> = event
        .outbox
        .iter()
        .map(|o| (o.kind.as_str(), o.status))
        .collect();
    ensure!(
        statuses == [("receipt", ActionStatus::Done)],
        "outbox: {statuses:?}"
    );

    // The pump left nothing behind.
    let left = aws_sdk_sqs::Client::new(&sdk)
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(0)
        .send()
        .await?;
    ensure!(left.messages().is_empty(), "queue not drained: {left:?}");
    Ok(())
}
