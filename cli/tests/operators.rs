//! The operator commands against the emulator, run the way an operator runs them: the built
//! `hookline` binary, with `--json` parsed, each test on its own table and queues.
//!
//! The headline scenario is issue 9's: a target answering 401 makes a follow-up FAILED and puts
//! its message on the DLQ; once the target is fixed, `dlq redrive` or `followups retry` runs it
//! once more (one more POST, under a new key) and the DLQ ends empty, and the old DLQ message of
//! a follow-up retried another way never causes a second run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hookline::followup::Timers;
use hookline::store::{ActionStatus, NewEvent};
use hookline::worker::Worker;
use hookline_tests::{LOCAL_SECRET, Stack, Target, init_test_log, local_receiver};
use serde_json::Value;

/// One test's stack, target and worker, on the system clock (the CLI's own clock).
struct Ops {
    stack: Stack,
    target: Target,
    worker: Worker,
}

impl Ops {
    async fn new(script: Vec<u16>) -> Self {
        init_test_log();
        let stack = Stack::new().await.unwrap();
        let target = Target::start(script).await.unwrap();
        let worker = stack.worker(&target, Timers::default(), hookline::clock::system());
        Self {
            stack,
            target,
            worker,
        }
    }

    /// Delivers a Stripe sample with its ids replaced; returns the answer's status.
    async fn deliver(&self, v: &Value) -> String {
        let spec = hookline_receivers::by_function("payment-events").unwrap();
        let clock = hookline::clock::system();
        let body = serde_json::to_vec(v).unwrap();
        let req = hookline_tests::signed_request(
            &spec.scheme,
            &body,
            LOCAL_SECRET,
            "d",
            clock.now_secs(),
        );
        let receiver = local_receiver(
            spec,
            &clock,
            self.stack.store(clock.clone()),
            self.stack.queue(),
        );
        let resp = receiver.handle(req).await;
        assert_eq!(resp.status(), 200);
        let answer: Value = match resp.body() {
            lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
            lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap(),
            _ => Value::Null,
        };
        answer["status"].as_str().unwrap_or_default().to_owned()
    }

    /// An invoice paid: one `receipt` event action.
    async fn invoice(&self, n: &str) {
        let mut v = sample("invoice.paid");
        v["id"] = format!("evt_{n}").into();
        v["data"]["object"]["id"] = format!("in_{n}").into();
        assert_eq!(self.deliver(&v).await, "accepted");
    }

    /// Feeds the queue to the worker until it is empty, ending every backoff at once. Returns
    /// how many messages the worker got.
    async fn settle(&self) -> usize {
        let mut total = 0;
        for round in 0..20 {
            let fed = self.stack.feed(&self.worker, 10, round).await.unwrap();
            self.stack.release(&fed.failed).await.unwrap();
            total += fed.received;
            if fed.received == 0 {
                return total;
            }
        }
        panic!("the queue did not settle");
    }

    /// The flags that point a command at this test's table and queues.
    fn table(&self) -> Vec<String> {
        vec!["--table".into(), self.stack.table.clone()]
    }

    fn queues(&self) -> Vec<String> {
        vec![
            "--queue-url".into(),
            self.stack.queue_url.clone(),
            "--dlq-url".into(),
            self.stack.dlq_url.clone(),
        ]
    }

    /// Runs `hookline <args> --json` with stdin closed: (success, parsed stdout, stderr).
    async fn json(&self, args: &[&str], extra: Vec<String>) -> (bool, Value, String) {
        let (ok, stdout, stderr) = run(args.iter().map(|s| (*s).to_owned()), extra, true).await;
        let parsed = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}\n{stderr}"));
        (ok, parsed, stderr)
    }

    fn action_posts(&self, key_prefix: &str) -> Vec<String> {
        self.target
            .received()
            .into_iter()
            .filter_map(|r| r.idempotency_key)
            .filter(|k| k.starts_with(key_prefix))
            .collect()
    }

    async fn receipt_status(&self, event_id: &str) -> ActionStatus {
        let ev = self
            .stack
            .store(hookline::clock::system())
            .get_event("stripe", event_id)
            .await
            .unwrap()
            .unwrap();
        ev.outbox
            .iter()
            .find(|o| o.kind == "receipt")
            .unwrap()
            .status
    }
}

/// Runs the built binary against the emulator.
async fn run(
    args: impl IntoIterator<Item = String>,
    extra: Vec<String>,
    json: bool,
) -> (bool, String, String) {
    let (code, stdout, stderr) = run_code(args, extra, json).await;
    (code == Some(0), stdout, stderr)
}

/// Runs the built binary against the emulator: (exit code, stdout, stderr).
async fn run_code(
    args: impl IntoIterator<Item = String>,
    extra: Vec<String>,
    json: bool,
) -> (Option<i32>, String, String) {
    let mut all: Vec<String> = args.into_iter().collect();
    all.extend(extra);
    if json {
        all.push("--json".into());
    }
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(&all)
            .env("AWS_ENDPOINT_URL", hookline_tests::endpoint().unwrap())
            .env_remove("TABLE_NAME")
            .env_remove("FOLLOWUP_QUEUE_URL")
            .env_remove("HOOKLINE_STACK")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Stripe sample payload (`events/payment-events/<name>.json`).
fn sample(name: &str) -> Value {
    hookline_tests::sample("payment-events", name)
}

/// The rows of a listing (`dlq redrive` prints them under `messages`, beside `counts`).
fn rows(v: &Value) -> &Vec<Value> {
    v.get("messages")
        .unwrap_or(v)
        .as_array()
        .expect("a JSON array")
}

#[tokio::test]
async fn a_401_follow_up_fails_to_the_dlq_and_dlq_redrive_runs_it_once_more_after_the_fix() {
    let ops = Ops::new(vec![401]).await;
    ops.invoice("dlq_1").await;
    assert_eq!(ops.settle().await, 1);
    assert_eq!(ops.receipt_status("evt_dlq_1").await, ActionStatus::Failed);

    // The DLQ as an operator sees it: the follow-up's name and its status now, no payload.
    let (ok, listed, _) = ops
        .json(&["dlq", "list"], [ops.queues(), ops.table()].concat())
        .await;
    assert!(ok);
    let listed = rows(&listed);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["followup"], "stripe:evt_dlq_1:receipt");
    assert_eq!(listed[0]["status_now"], "FAILED");
    assert!(listed[0]["receive_count"].as_i64().unwrap() >= 1);
    assert!(listed[0]["sent_at"].as_i64().unwrap() > 0);
    assert!(!listed[0].to_string().contains("amount"), "no payload");
    let message_id = listed[0]["message_id"].as_str().unwrap().to_owned();
    assert_eq!(
        ops.stack.depth(&ops.stack.dlq_url).await.unwrap(),
        (1, 0),
        "listing leaves the message visible"
    );

    // The FAILED one in `followups list`, with its last answer.
    let (ok, failed, _) = ops
        .json(&["followups", "list", "--status", "FAILED"], ops.table())
        .await;
    assert!(ok);
    let failed = rows(&failed);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["name"], "stripe:evt_dlq_1:receipt");
    assert_eq!(failed[0]["last_status"], 401);
    assert_eq!(failed[0]["attempt"], 1);

    // A dry run changes nothing.
    let (ok, dry, _) = ops
        .json(
            &["dlq", "redrive", "--all", "--dry-run"],
            [ops.queues(), ops.table()].concat(),
        )
        .await;
    assert!(ok);
    assert_eq!(rows(&dry)[0]["result"], "would_move");
    assert_eq!(ops.stack.depth(&ops.stack.dlq_url).await.unwrap(), (1, 0));
    assert_eq!(ops.receipt_status("evt_dlq_1").await, ActionStatus::Failed);

    // The fix is in (the target answers 200 now): redrive that one message.
    let (ok, moved, _) = ops
        .json(
            &["dlq", "redrive", &message_id],
            [ops.queues(), ops.table()].concat(),
        )
        .await;
    assert!(ok);
    assert_eq!(rows(&moved).len(), 1);
    assert_eq!(rows(&moved)[0]["result"], "moved");
    assert_eq!(ops.stack.depth(&ops.stack.dlq_url).await.unwrap(), (0, 0));
    assert_eq!(ops.receipt_status("evt_dlq_1").await, ActionStatus::Pending);
    assert_eq!(ops.settle().await, 1);
    assert_eq!(ops.receipt_status("evt_dlq_1").await, ActionStatus::Done);
    assert_eq!(
        ops.action_posts("stripe:evt_dlq_1:receipt:"),
        ["stripe:evt_dlq_1:receipt:0", "stripe:evt_dlq_1:receipt:1"],
        "one more POST, under a new key"
    );
    // Nothing left: a second redrive finds nothing, and the message id is gone.
    let (ok, again, _) = ops
        .json(
            &["dlq", "redrive", "--all"],
            [ops.queues(), ops.table()].concat(),
        )
        .await;
    assert!(ok);
    assert!(rows(&again).is_empty());
    let (ok, _, stderr) = ops
        .json(
            &["dlq", "redrive", &message_id],
            [ops.queues(), ops.table()].concat(),
        )
        .await;
    assert!(!ok, "a message id not on the DLQ is an error");
    assert!(stderr.contains("not on the dead-letter queue"), "{stderr}");
}

#[tokio::test]
async fn followups_retry_runs_a_failed_one_once_more_and_its_old_dlq_message_is_dropped() {
    let ops = Ops::new(vec![401]).await;
    ops.invoice("retry_1").await;
    ops.settle().await;
    assert_eq!(
        ops.receipt_status("evt_retry_1").await,
        ActionStatus::Failed
    );

    let (ok, retried, _) = ops
        .json(
            &["followups", "retry", "stripe", "evt_retry_1"],
            [ops.table(), ops.queues()[..2].to_vec()].concat(),
        )
        .await;
    assert!(ok);
    assert_eq!(rows(&retried).len(), 1);
    assert_eq!(rows(&retried)[0]["result"], "reset");
    assert_eq!(rows(&retried)[0]["was"], "FAILED");
    assert_eq!(ops.settle().await, 1);
    assert_eq!(ops.receipt_status("evt_retry_1").await, ActionStatus::Done);
    assert_eq!(ops.target.hits(), 2, "one more POST");

    // The old DLQ message: the redrive drops it (DONE), nothing runs again, the DLQ is empty.
    let (ok, report, _) = ops
        .json(
            &["dlq", "redrive", "--all"],
            [ops.queues(), ops.table()].concat(),
        )
        .await;
    assert!(ok);
    let report = rows(&report);
    assert_eq!(report.len(), 1);
    assert_eq!(report[0]["result"], "dropped");
    assert!(
        report[0]["reason"].as_str().unwrap().contains("DONE"),
        "{report:?}"
    );
    assert_eq!(ops.stack.depth(&ops.stack.dlq_url).await.unwrap(), (0, 0));
    assert_eq!(ops.settle().await, 0);
    assert_eq!(ops.target.hits(), 2);

    // DONE is not retried without --force; --force wants a confirmation, refused without a
    // terminal unless --yes.
    let (ok, left, _) = ops
        .json(
            &[
                "followups",
                "retry",
                "stripe",
                "evt_retry_1",
                "--action",
                "receipt",
            ],
            [ops.table(), ops.queues()[..2].to_vec()].concat(),
        )
        .await;
    assert!(!ok, "nothing retried is a failure");
    assert_eq!(rows(&left)[0]["result"], "left");
    let (ok, _, stderr) = run(
        [
            "followups",
            "retry",
            "stripe",
            "evt_retry_1",
            "--force",
            "--table",
            &ops.stack.table,
        ]
        .map(str::to_owned),
        Vec::new(),
        false,
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(ops.receipt_status("evt_retry_1").await, ActionStatus::Done);
    let (ok, forced, _) = ops
        .json(
            &[
                "followups",
                "retry",
                "stripe",
                "evt_retry_1",
                "--force",
                "--yes",
            ],
            [ops.table(), ops.queues()[..2].to_vec()].concat(),
        )
        .await;
    assert!(ok);
    assert_eq!(rows(&forced)[0]["result"], "reset");
    ops.settle().await;
    assert_eq!(
        ops.action_posts("stripe:evt_retry_1:receipt:"),
        [
            "stripe:evt_retry_1:receipt:0",
            "stripe:evt_retry_1:receipt:1",
            "stripe:evt_retry_1:receipt:2"
        ]
    );
}

#[tokio::test]
async fn retry_all_failed_resets_event_actions_and_syncs_and_a_dry_run_changes_nothing() {
    let ops = Ops::new(Vec::new()).await;
    ops.target.set_default(401);
    ops.invoice("all_1").await;
    ops.invoice("all_2").await;
    let mut sub = sample("customer.subscription.created");
    sub["id"] = "evt_sub_all".into();
    sub["data"]["object"]["id"] = "sub_all".into();
    sub["data"]["object"]["status"] = "active".into();
    assert_eq!(ops.deliver(&sub).await, "accepted");
    ops.settle().await;
    let store = ops.stack.store(hookline::clock::system());
    let sync = store
        .entity_followup("subscription", "sub_all")
        .await
        .unwrap();
    assert_eq!(sync.map(|v| v.status), Some(ActionStatus::Failed));

    let (ok, failed, _) = ops
        .json(&["followups", "list", "--status", "failed"], ops.table())
        .await;
    assert!(ok);
    let mut names: Vec<String> = rows(&failed)
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert!(
        names.contains(&"stripe:evt_all_1:receipt".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"stripe:evt_all_2:receipt".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"stripe:subscription/sub_all:access".to_owned()),
        "{names:?}"
    );
    // --source filters; PENDING (the pending index) finds none now.
    let (_, other, _) = ops
        .json(
            &[
                "followups",
                "list",
                "--status",
                "FAILED",
                "--source",
                "users",
            ],
            ops.table(),
        )
        .await;
    assert!(rows(&other).is_empty());
    let (_, pending, _) = ops
        .json(&["followups", "list", "--status", "PENDING"], ops.table())
        .await;
    assert!(rows(&pending).is_empty(), "{pending}");

    let (ok, dry, _) = ops
        .json(
            &["followups", "retry", "--all-failed", "--dry-run"],
            [ops.table(), ops.queues()[..2].to_vec()].concat(),
        )
        .await;
    assert!(ok);
    assert_eq!(rows(&dry).len(), names.len());
    assert!(rows(&dry).iter().all(|r| r["result"] == "would_reset"));
    assert_eq!(ops.receipt_status("evt_all_1").await, ActionStatus::Failed);
    assert_eq!(ops.stack.depth(&ops.stack.queue_url).await.unwrap(), (0, 0));

    // The target is fixed; every FAILED one runs once more.
    ops.target.set_default(200);
    let before = ops.target.hits();
    let (ok, all, _) = ops
        .json(
            &["followups", "retry", "--all-failed", "--since", "1h"],
            [ops.table(), ops.queues()[..2].to_vec()].concat(),
        )
        .await;
    assert!(ok);
    assert_eq!(rows(&all).len(), names.len());
    assert!(rows(&all).iter().all(|r| r["result"] == "reset"), "{all}");
    assert_eq!(ops.settle().await, names.len());
    assert_eq!(ops.target.hits(), before + names.len());
    assert_eq!(ops.receipt_status("evt_all_2").await, ActionStatus::Done);
    let sync = store
        .entity_followup("subscription", "sub_all")
        .await
        .unwrap();
    assert_eq!(sync.map(|v| v.status), Some(ActionStatus::Done));
    // The DLQ's copies are all dropped by a redrive: nothing runs twice.
    let (ok, report, _) = ops
        .json(
            &["dlq", "redrive", "--all"],
            [ops.queues(), ops.table()].concat(),
        )
        .await;
    assert!(ok);
    assert_eq!(rows(&report).len(), names.len());
    assert!(rows(&report).iter().all(|r| r["result"] == "dropped"));
    assert_eq!(ops.stack.depth(&ops.stack.dlq_url).await.unwrap(), (0, 0));
    assert_eq!(ops.settle().await, 0);
}

#[tokio::test]
async fn an_entity_sync_is_retried_by_kind_and_id() {
    let ops = Ops::new(Vec::new()).await;
    ops.target.set_default(401);
    let mut sub = sample("customer.subscription.created");
    sub["id"] = "evt_sub_one".into();
    sub["data"]["object"]["id"] = "sub_one".into();
    sub["data"]["object"]["status"] = "active".into();
    assert_eq!(ops.deliver(&sub).await, "accepted");
    ops.settle().await;
    ops.target.set_default(200);
    let before = ops.target.hits();

    let (ok, _, stderr) = run(
        [
            "followups",
            "retry",
            "--entity",
            "subscription",
            "--table",
            &ops.stack.table,
        ]
        .map(str::to_owned),
        Vec::new(),
        false,
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("<kind>/<id>"), "{stderr}");
    let (ok, retried, _) = ops
        .json(
            &["followups", "retry", "--entity", "subscription/sub_one"],
            [ops.table(), ops.queues()[..2].to_vec()].concat(),
        )
        .await;
    assert!(ok);
    assert_eq!(
        rows(&retried)[0]["name"],
        "stripe:subscription/sub_one:access"
    );
    assert_eq!(rows(&retried)[0]["result"], "reset");
    ops.settle().await;
    let posts: Vec<_> = ops.target.received()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(posts, ["/provision_access"]);
}

#[tokio::test]
async fn events_list_filters_by_status_and_prints_no_body() {
    let ops = Ops::new(Vec::new()).await;
    ops.invoice("list_1").await;
    let store = ops.stack.store(hookline::clock::system());
    let body = br#"{"id":"evt_q","object":"event","secret_field":"x"}"#;
    store
        .quarantine(
            &NewEvent {
                source: "stripe",
                function: "payment-events",
                event_id: "evt_q",
                event_type: "",
                provider_ts: 1,
                body,
                delivery: None,
            },
            "missing field `type` at line 1 column 40",
        )
        .await
        .unwrap();
    let (ok, q, _) = ops
        .json(
            &["events", "list", "stripe", "--status", "quarantined"],
            ops.table(),
        )
        .await;
    assert!(ok);
    let q = rows(&q);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["event_id"], "evt_q");
    assert!(q[0]["reason"].as_str().unwrap().contains("missing field"));
    assert!(!q[0].to_string().contains("secret_field"), "no body");
    let (_, accepted, _) = ops
        .json(
            &["events", "list", "stripe", "--status", "accepted"],
            ops.table(),
        )
        .await;
    assert_eq!(rows(&accepted).len(), 1);
    assert_eq!(rows(&accepted)[0]["event_id"], "evt_list_1");
    assert_eq!(rows(&accepted)[0]["followups"][0]["kind"], "receipt");
    assert!(!rows(&accepted)[0].to_string().contains("payload"));

    // The default output is a table with a header.
    let (ok, table, _) = run(
        ["events", "list", "stripe", "--table", &ops.stack.table].map(str::to_owned),
        Vec::new(),
        false,
    )
    .await;
    assert!(ok);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("RECEIVED"));
    assert_eq!(lines.count(), 2);
}

#[tokio::test]
async fn stack_outputs_name_the_table_and_queues_and_explicit_flags_still_win() {
    let ops = Ops::new(vec![401]).await;
    ops.invoice("stack_1").await;
    ops.settle().await;
    let name = format!("s-{}", ops.stack.table);
    let template = serde_json::json!({
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {
            "TableName": {"Value": ops.stack.table},
            "FollowupQueueUrl": {"Value": ops.stack.queue_url},
            "FollowupDeadLetterQueueUrl": {"Value": ops.stack.dlq_url},
        }
    });
    aws_sdk_cloudformation::Client::new(&ops.stack.sdk)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();

    let (ok, listed, stderr) = ops
        .json(&["dlq", "list", "--stack", &name], Vec::new())
        .await;
    assert!(ok, "{stderr}");
    assert_eq!(rows(&listed)[0]["followup"], "stripe:evt_stack_1:receipt");
    assert_eq!(rows(&listed)[0]["status_now"], "FAILED");
    let (ok, failed, _) = ops
        .json(
            &["followups", "list", "--status", "FAILED", "--stack", &name],
            Vec::new(),
        )
        .await;
    assert!(ok);
    assert_eq!(rows(&failed).len(), 1);
    // An explicit --table wins over the stack's.
    let (ok, _, stderr) = run(
        [
            "followups",
            "list",
            "--stack",
            &name,
            "--table",
            "t-no-such-table",
        ]
        .map(str::to_owned),
        Vec::new(),
        false,
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("t-no-such-table"), "{stderr}");
    // A stack that does not exist is a clear error.
    let (ok, _, stderr) = run(
        ["dlq", "list", "--stack", "no-such-stack"].map(str::to_owned),
        Vec::new(),
        false,
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("no-such-stack"), "{stderr}");
}

#[tokio::test]
async fn the_old_redrive_command_still_moves_the_dlq_back() {
    let ops = Ops::new(vec![401]).await;
    ops.invoice("alias_1").await;
    ops.settle().await;
    let (ok, report, _) = ops
        .json(&["redrive"], [ops.queues(), ops.table()].concat())
        .await;
    assert!(ok);
    assert_eq!(rows(&report)[0]["result"], "moved");
    assert_eq!(ops.settle().await, 1);
    assert_eq!(ops.receipt_status("evt_alias_1").await, ActionStatus::Done);
}

#[test]
fn usage_errors_are_caught_by_the_grammar() {
    use clap::Parser as _;
    use hookline_cli::cli::Cli;
    for bad in [
        vec!["hookline", "followups", "retry"],
        vec![
            "hookline",
            "followups",
            "retry",
            "stripe",
            "evt",
            "--all-failed",
        ],
        vec!["hookline", "followups", "retry", "--all-failed", "--force"],
        vec!["hookline", "followups", "retry", "stripe", "evt", "--yes"],
        vec!["hookline", "dlq", "redrive"],
        vec!["hookline", "followups", "list", "--status", "LOST"],
        vec!["hookline", "events", "list", "stripe", "--status", "weird"],
    ] {
        assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?} parsed");
    }
    for good in [
        vec![
            "hookline",
            "followups",
            "retry",
            "stripe",
            "evt",
            "--action",
            "receipt",
        ],
        vec![
            "hookline",
            "followups",
            "retry",
            "--all-failed",
            "--since",
            "24h",
        ],
        vec!["hookline", "followups", "retry", "stripe", "--all-failed"],
        vec![
            "hookline",
            "followups",
            "list",
            "--status",
            "FAILED,SKIPPED",
        ],
        vec!["hookline", "dlq", "redrive", "--all", "--dry-run"],
        vec!["hookline", "redrive"],
    ] {
        assert!(Cli::try_parse_from(&good).is_ok(), "{good:?} refused");
    }
}

/// The commands that accept `--json`, as `hookline <words>`; every other command refuses it.
const JSON_COMMANDS: [&[&str]; 7] = [
    &["receivers"],
    &["events", "list"],
    &["followups", "list"],
    &["followups", "retry"],
    &["dlq", "list"],
    &["dlq", "redrive"],
    &["redrive"],
];

/// Every leaf command of the grammar, as its words, with whether it takes `--json`.
fn leaf_commands(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, bool)>) {
    if cmd.get_subcommands().next().is_none() {
        let json = cmd.get_arguments().any(|a| a.get_long() == Some("json"));
        out.push((path.clone(), json));
        return;
    }
    for sub in cmd.get_subcommands() {
        path.push(sub.get_name().to_owned());
        leaf_commands(sub, path, out);
        path.pop();
    }
}

#[test]
fn json_is_offered_exactly_by_the_commands_that_print_rows() {
    use clap::CommandFactory as _;
    let mut leaves = Vec::new();
    leaf_commands(
        &hookline_cli::cli::Cli::command(),
        &mut Vec::new(),
        &mut leaves,
    );
    assert!(leaves.len() >= 12, "{leaves:?}");
    let offering: Vec<Vec<String>> = leaves
        .iter()
        .filter(|(_, json)| *json)
        .map(|(path, _)| path.clone())
        .collect();
    let expected: Vec<Vec<String>> = JSON_COMMANDS
        .iter()
        .map(|words| words.iter().map(|w| (*w).to_owned()).collect())
        .collect();
    assert_eq!(offering, expected, "a new --json needs a test below");
}

#[tokio::test]
async fn each_command_offering_json_prints_one_json_document() {
    let ops = Ops::new(Vec::new()).await;
    ops.invoice("json_1").await;
    let both = [ops.queues(), ops.table()].concat();
    let queue = [ops.table(), ops.queues()[..2].to_vec()].concat();
    for (words, extra) in [
        (vec!["events", "list", "stripe"], ops.table()),
        (vec!["followups", "list"], ops.table()),
        (
            vec!["followups", "retry", "--all-failed", "--dry-run"],
            queue,
        ),
        (vec!["dlq", "list"], both.clone()),
        (vec!["dlq", "redrive", "--all", "--dry-run"], both.clone()),
        (vec!["redrive"], both.clone()),
        (vec!["receivers"], Vec::new()),
    ] {
        assert!(
            JSON_COMMANDS.iter().any(|c| words.starts_with(c)),
            "{words:?} is not in JSON_COMMANDS"
        );
        let (ok, parsed, stderr) = ops.json(&words, extra).await;
        assert!(ok, "{words:?}: {stderr}");
        // `dlq redrive` prints its counts beside the rows: {"counts": {...}, "messages": [...]}.
        assert!(
            parsed.is_array() || parsed["messages"].is_array(),
            "{words:?}: {parsed}"
        );
    }
    let (_, events, _) = ops.json(&["events", "list", "stripe"], ops.table()).await;
    assert_eq!(rows(&events)[0]["event_id"], "evt_json_1");
    let (_, listed, _) = ops.json(&["followups", "list"], ops.table()).await;
    assert_eq!(rows(&listed)[0]["name"], "stripe:evt_json_1:receipt");
}

#[tokio::test]
async fn a_command_without_rows_refuses_json_as_a_usage_error() {
    for words in [
        vec!["state", "get", "customer", "cus_1"],
        vec!["events", "get", "stripe", "evt_1"],
        vec!["send", "payment-events", "x.json"],
        vec!["local", "up"],
        vec!["pump", "--once"],
        vec!["sink"],
    ] {
        let (code, stdout, stderr) =
            run_code(words.iter().map(|w| (*w).to_owned()), Vec::new(), true).await;
        assert_eq!(code, Some(2), "{words:?}: {stdout}{stderr}");
        assert!(stderr.contains("--json"), "{words:?}: {stderr}");
    }
}

#[tokio::test]
async fn exit_codes_tell_usage_failure_and_refused_items_apart() {
    let ops = Ops::new(Vec::new()).await;
    let code = |words: &[&str], extra: Vec<String>| {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        async move { run_code(words, extra, false).await }
    };
    // 2: the grammar's own usage errors, and one found after parsing.
    assert_eq!(code(&["followups", "retry"], ops.table()).await.0, Some(2));
    let (c, _, stderr) = code(
        &["followups", "retry", "--entity", "subscription"],
        ops.table(),
    )
    .await;
    assert_eq!(c, Some(2), "{stderr}");
    assert!(stderr.contains("<kind>/<id>"), "{stderr}");
    // 1: a named item that is not there.
    assert_eq!(
        code(&["events", "get", "stripe", "evt_none"], ops.table())
            .await
            .0,
        Some(1)
    );
    // 3: a bulk replay that could not replay one of its events (the mapping still refuses it);
    // the same event named alone is a failure, 1.
    let store = ops.stack.store(hookline::clock::system());
    store
        .quarantine(
            &NewEvent {
                source: "stripe",
                function: "payment-events",
                event_id: "evt_bad",
                event_type: "",
                provider_ts: 1,
                body: br#"{"id":"evt_bad","object":"event"}"#,
                delivery: None,
            },
            "missing field `type`",
        )
        .await
        .unwrap();
    let both = [ops.table(), ops.queues()[..2].to_vec()].concat();
    let (c, stdout, stderr) = code(
        &["events", "replay", "stripe", "--status", "quarantined"],
        both.clone(),
    )
    .await;
    assert_eq!(c, Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("not replayed"), "{stdout}");
    let (c, _, _) = code(&["events", "replay", "stripe", "evt_bad"], both).await;
    assert_eq!(c, Some(1));
    // And `--help` says so.
    let (c, help, _) = code(&["--help"], Vec::new()).await;
    assert_eq!(c, Some(0));
    assert!(help.contains("Exit codes:"), "{help}");
    assert!(help.contains("3  some items refused"), "{help}");
}

/// Issue 14: `events replay --status quarantined --since 24h` read only the newest 1,000 events
/// of the source; it pages to the end of the window now (here with 60-key pages, so each of the
/// index's shards takes several).
#[tokio::test]
async fn replay_of_quarantined_events_pages_to_the_end_of_the_window() {
    init_test_log();
    let stack = Stack::new().await.unwrap();
    let now = hookline::clock::system().now_secs();
    // Outside the window: quarantined 25 hours ago.
    let old = stack.store(hookline::clock::FixedClock::at_secs(now - 25 * 3600));
    fn event(id: &str, now: i64) -> NewEvent<'_> {
        NewEvent {
            source: "stripe",
            function: "payment-events",
            event_id: id,
            event_type: "invoice.paid",
            provider_ts: now * 1000,
            body: b"{}",
            delivery: None,
        }
    }
    old.quarantine(&event("evt_q_old", now), "unmapped")
        .await
        .unwrap();
    // 1,001 within the window.
    let ids: Vec<String> = (0..1001).map(|i| format!("evt_q_{i}")).collect();
    let store = stack.store(hookline::clock::system());
    for chunk in ids.chunks(50) {
        let runs = chunk.iter().map(|id| {
            let store = store.clone();
            async move { store.quarantine(&event(id, now), "unmapped").await.unwrap() }
        });
        futures_util::future::join_all(runs).await;
    }
    let endpoint = hookline_tests::endpoint().unwrap();
    let table = stack.table.clone();
    let queue = stack.queue_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args([
                "events",
                "replay",
                "stripe",
                "--status",
                "quarantined",
                "--since",
                "24h",
                "--dry-run",
                "--table",
                &table,
                "--queue-url",
                &queue,
            ])
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("HOOKLINE_REPLAY_PAGE", "60")
            .env_remove("TABLE_NAME")
            .env_remove("FOLLOWUP_QUEUE_URL")
            .env_remove("HOOKLINE_STACK")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("replay: stripe/"))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(seen.len(), 1001, "every quarantined event of the window");
    assert!(ids.iter().all(|id| seen.contains(id.as_str())));
    assert!(!seen.contains("evt_q_old"), "none older than the window");
}

/// Issue 14: `dlq redrive --all` against a target that still refuses looped: each redriven
/// message failed again within a second and was back on the DLQ under a new id, and the redrive
/// reset it again (a new generation, one more POST) until a poll came back empty. Now it works
/// on the messages present when it starts: each follow-up is redriven once, and it ends.
#[tokio::test]
async fn redrive_all_against_a_target_still_refusing_redrives_each_followup_once_and_ends() {
    let ops = Ops::new(Vec::new()).await;
    ops.target.set_default(401);
    ops.invoice("loop_1").await;
    ops.invoice("loop_2").await;
    assert_eq!(ops.settle().await, 2);
    assert_eq!(ops.stack.depth(&ops.stack.dlq_url).await.unwrap(), (2, 0));
    // The event source keeps feeding the worker beside the command, as in AWS.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = tokio::spawn({
        let (stack, worker, stop) = (ops.stack.clone(), ops.worker.clone(), stop.clone());
        async move {
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                stack.feed(&worker, 10, round).await.unwrap();
                round += 1;
            }
        }
    });
    let redrive = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        ops.json(
            &["dlq", "redrive", "--all"],
            [ops.queues(), ops.table()].concat(),
        ),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    feeder.await.unwrap();
    let (ok, report, stderr) = redrive.expect("the redrive ends");
    assert!(ok, "{stderr}");
    assert_eq!(report["counts"]["moved"], 2, "{report}");
    for n in ["loop_1", "loop_2"] {
        assert_eq!(
            ops.action_posts(&format!("stripe:evt_{n}:receipt:")),
            [
                format!("stripe:evt_{n}:receipt:0"),
                format!("stripe:evt_{n}:receipt:1")
            ],
            "one more POST per follow-up, not one per loop"
        );
        assert_eq!(
            ops.receipt_status(&format!("evt_{n}")).await,
            ActionStatus::Failed
        );
    }
    // Each failed again, once: its new message waits on the DLQ for the next redrive.
    assert_eq!(ops.stack.depth(&ops.stack.dlq_url).await.unwrap(), (2, 0));
}

/// A GitHub or Shopify body names its event only in an unsigned header: the record keeps the
/// delivery's headers, and a replay describes the stored body with them (before, a replay
/// re-described it with the record's id alone, and such an event could never be replayed).
#[tokio::test]
async fn a_replay_describes_the_stored_body_with_its_delivery_headers() {
    let ops = Ops::new(Vec::new()).await;
    let store = ops.stack.store(hookline::clock::system());
    let body = std::fs::read(format!(
        "{}/../events/repo-events/push.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let headers = hookline::verify::VerifiedMeta {
        delivery_id: Some("9f3c1a2e-delivery".into()),
        event_type: Some("push".into()),
        timestamp: None,
    };
    for (id, delivery) in [("sha256:kept", Some(&headers)), ("sha256:lost", None)] {
        store
            .quarantine(
                &NewEvent {
                    source: "github",
                    function: "repo-events",
                    event_id: id,
                    event_type: "push",
                    provider_ts: 0,
                    body: &body,
                    delivery,
                },
                "a model that has been fixed since",
            )
            .await
            .unwrap();
    }
    let stored = store
        .get_event("github", "sha256:kept")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.delivery.as_ref(), Some(&headers));
    let both = [ops.table(), ops.queues()[..2].to_vec()].concat();
    let replay = |id: &str| {
        let words = vec!["events".into(), "replay".into(), "github".into(), id.into()];
        run_code(words, both.clone(), false)
    };
    let (c, stdout, stderr) = replay("sha256:kept").await;
    assert_eq!(c, Some(0), "{stdout}{stderr}");
    let record = store
        .get_event("github", "sha256:kept")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status.status(), "accepted");
    assert_eq!(record.event_type, "push");
    assert_eq!(record.delivery, Some(headers));
    // Without the headers (a record written before they were kept) the mapping cannot tell.
    let (c, stdout, _) = replay("sha256:lost").await;
    assert_eq!(c, Some(1), "{stdout}");
}
