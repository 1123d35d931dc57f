//! The argument grammar of `hookline`, and the dispatch to each command's module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use hookline::store::ActionStatus;

use crate::{
    Aws, DEFAULT_QUEUE, DEFAULT_TABLE, default_endpoint, default_sink_addr, default_watch, dlq,
    events, followups, local, parse_duration, pump, send, sink, stack,
};

/// Hookline's command: local stack, sign-and-send, inspect, pump, sink, and operating a stack's
/// follow-ups and dead-letter queue.
#[derive(Debug, Parser)]
#[command(name = "hookline", version, about)]
pub struct Cli {
    /// AWS endpoint: the local emulator's URL, or `aws` for the real AWS endpoints.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", default_value_t = default_endpoint())]
    pub endpoint: String,
    /// A deployed stack: its outputs name the table and queues (`TableName`, `FollowupQueueUrl`,
    /// `FollowupDeadLetterQueueUrl`); `--table`, `--queue-url` and `--dlq-url` still override.
    #[arg(long, global = true, env = "HOOKLINE_STACK")]
    pub stack: Option<String>,
    /// Print JSON (one document) instead of a table, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The local stack's AWS resources.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Sign a payload file as the function's sender would, and POST it.
    Send(SendArgs),
    /// Inspect recorded events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Inspect entity state.
    #[command(subcommand)]
    State(StateCommand),
    /// Feed the follow-up queue to the worker (what the SQS event source does in AWS), and run
    /// the reconciler on a timer.
    Pump(PumpArgs),
    /// A tiny HTTP server that prints the follow-up actions it receives.
    Sink(SinkArgs),
    /// List and retry follow-ups (event actions and entity syncs).
    #[command(subcommand)]
    Followups(FollowupsCommand),
    /// The dead-letter queue: list it, and move messages back after a fix.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Same as `hookline dlq redrive --all` (kept for existing scripts).
    #[command(hide = true)]
    Redrive(RedriveArgs),
}

/// `hookline followups ...`
#[derive(Debug, Subcommand)]
pub enum FollowupsCommand {
    /// Each follow-up with its attempts, last status, last reason and next check.
    ///
    /// FAILED, SKIPPED and DONE follow-ups have left the pending index, so listing them (or
    /// listing without `--status`) Scans the table: a Scan reads, and is billed for, every item
    /// (raw bodies included; about 0.5 read unit per 4 KB) whatever the filters, at most
    /// `--max-scan` items per run. `--status PENDING` / `RUNNING` alone read the pending index.
    List(FollowupsListArgs),
    /// Reset follow-ups to PENDING with a new generation (a new `Idempotency-Key`) and enqueue
    /// them.
    ///
    /// One event's actions (`<source> <event id> [--action KIND]`), one entity's sync
    /// (`--entity <kind>/<id>`), or every FAILED one (`--all-failed`). Each reset is conditional:
    /// a follow-up that moved on meanwhile is left alone and reported.
    Retry(FollowupsRetryArgs),
}

/// `hookline followups list`
#[derive(Debug, Args)]
pub struct FollowupsListArgs {
    /// Only these states (repeat or comma-separate; default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    pub status: Vec<ActionStatus>,
    /// Only follow-ups of this source, e.g. `stripe`.
    #[arg(long)]
    pub source: Option<String>,
    /// Only those whose event was received (or entity changed) within this long, e.g. `24h`.
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Print at most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Read at most this many items of the table (bounds a Scan's cost).
    #[arg(long, default_value_t = 10_000)]
    pub max_scan: usize,
    /// Table.
    #[command(flatten)]
    pub table: TableArg,
}

/// `hookline followups retry`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["event_id", "entity", "all_failed"])))]
pub struct FollowupsRetryArgs {
    /// Source of the event, e.g. `stripe` (with `--all-failed`: only this source).
    pub source: Option<String>,
    /// The event whose actions to retry.
    #[arg(requires = "source")]
    pub event_id: Option<String>,
    /// Only this action of the event, e.g. `receipt`.
    #[arg(long, requires = "event_id")]
    pub action: Option<String>,
    /// An entity's sync, as `<kind>/<id>`, e.g. `subscription/sub_123`.
    #[arg(long, conflicts_with_all = ["source", "event_id"])]
    pub entity: Option<String>,
    /// Every FAILED follow-up (found by a bounded Scan, see `followups list --help`).
    #[arg(long)]
    pub all_failed: bool,
    /// With `--all-failed`: only those received (or changed) within this long, e.g. `24h`.
    #[arg(long, value_parser = parse_duration, requires = "all_failed")]
    pub since: Option<Duration>,
    /// With `--all-failed`: read at most this many items of the table.
    #[arg(long, default_value_t = 10_000, requires = "all_failed")]
    pub max_scan: usize,
    /// Also run DONE event actions again (a new POST with a new key), after a confirmation.
    #[arg(long, conflicts_with_all = ["all_failed", "entity"])]
    pub force: bool,
    /// Confirm `--force` without asking (required when stdin is not a terminal).
    #[arg(long, requires = "force")]
    pub yes: bool,
    /// Print what would be reset, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Table.
    #[command(flatten)]
    pub table: TableArg,
    /// The follow-up queue the reset follow-ups go to.
    #[command(flatten)]
    pub queue: QueueArg,
}

/// `hookline dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The messages on the dead-letter queue: id, follow-up, receive count, sent time, and the
    /// follow-up's status now (never a payload).
    ///
    /// Reading a queue receives its messages: each listed message's receive count goes up by one
    /// and it is made visible again at once.
    List(DlqListArgs),
    /// Move messages back to the follow-up queue, consistent with the outbox: a message whose
    /// follow-up is FAILED or SKIPPED is reset to PENDING (new generation) and moved; one whose
    /// follow-up is DONE, already PENDING again (retried) or gone is dropped and reported; a
    /// message that is not a follow-up is left on the queue and reported.
    Redrive(DlqRedriveArgs),
}

/// The dead-letter queue.
#[derive(Debug, Args)]
pub struct DlqArg {
    /// Dead-letter queue URL (default: `--stack`'s, else the queue named `<queue>-dlq`).
    #[arg(long, env = "FOLLOWUP_DLQ_URL")]
    pub dlq_url: Option<String>,
}

impl DlqArg {
    /// The dead-letter queue's URL.
    pub async fn url(&self, aws: &Aws, queue: &QueueArg) -> anyhow::Result<String> {
        match (&self.dlq_url, &aws.stack) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(stack)) => Ok(stack.dlq_url.clone()),
            (None, None) => aws.queue_url(&format!("{}-dlq", queue.queue)).await,
        }
    }
}

/// `hookline dlq list`
#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// List at most this many messages.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// The dead-letter queue.
    #[command(flatten)]
    pub dlq: DlqArg,
    /// The follow-up queue (its name locates the DLQ locally).
    #[command(flatten)]
    pub queue: QueueArg,
    /// The table holding the follow-ups.
    #[command(flatten)]
    pub table: TableArg,
}

/// `hookline dlq redrive`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["message_id", "all"])))]
pub struct DlqRedriveArgs {
    /// One message, by the id `dlq list` shows.
    pub message_id: Option<String>,
    /// Every message on the queue.
    #[arg(long)]
    pub all: bool,
    /// Print what would be moved or dropped, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The dead-letter queue (source).
    #[command(flatten)]
    pub dlq: DlqArg,
    /// The follow-up queue (destination).
    #[command(flatten)]
    pub queue: QueueArg,
    /// The table holding the follow-ups (each is reset before its message moves).
    #[command(flatten)]
    pub table: TableArg,
}

fn parse_status(s: &str) -> Result<ActionStatus, String> {
    ActionStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
        format!("{s:?} is not a follow-up status: PENDING, RUNNING, DONE, FAILED or SKIPPED")
    })
}

/// `hookline local ...`
#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Create the table (TTL, indexes) and the follow-up queue with its DLQ, if missing.
    Up(LocalUpArgs),
}

/// `hookline local up`
#[derive(Debug, Args)]
pub struct LocalUpArgs {
    /// Table name.
    #[arg(long, default_value = DEFAULT_TABLE)]
    pub table: String,
    /// Follow-up queue name (the DLQ is `<name>-dlq`).
    #[arg(long, default_value = DEFAULT_QUEUE)]
    pub queue: String,
    /// Also write the functions' environment (KEY=VALUE lines, for `cargo lambda watch
    /// --env-file`): local secret, table, queue, AWS endpoint, action URLs pointing at the sink.
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// Base URL of the action sink, used in the env file (`ACTION_<KIND>_URL=<sink>/<kind>`).
    #[arg(long, default_value_t = format!("http://{}", default_sink_addr()))]
    pub sink_url: String,
    /// `RECONCILE_GRACE_SECS` in the env file: re-enqueue pending follow-ups after this long.
    #[arg(long, default_value_t = 30)]
    pub reconcile_grace_secs: u32,
}

/// `hookline send`
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Function name, e.g. `payment-events`.
    pub function: String,
    /// The JSON payload to sign and send, e.g. `events/payment-events/invoice.paid.json`.
    pub payload: PathBuf,
    /// Where to POST (default: `cargo lambda watch`'s URL for the function).
    #[arg(long)]
    pub url: Option<String>,
    /// Signing secret (default: the documented local test secret).
    #[arg(long, env = "HOOKLINE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Delivery id for schemes that carry one in a header (default: a fresh `msg_<random>`).
    #[arg(long)]
    pub id: Option<String>,
    /// Base URL of `cargo lambda watch`, used when `--url` is not given.
    #[arg(long, default_value_t = default_watch())]
    pub watch: String,
    /// Signature scheme (`stripe`, `standard-webhooks`, `github`, ...), for a function this
    /// command does not know yet; JSON bodies.
    #[arg(long)]
    pub scheme: Option<String>,
    /// Print the signed API Gateway (HTTP API, payload v2) request event instead of posting it,
    /// for `cargo lambda invoke --data-file`.
    #[arg(long)]
    pub apigw: bool,
}

/// `hookline events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// One event record, with its outbox and raw body.
    Get {
        /// Source, e.g. `stripe`.
        source: String,
        /// The provider's event id.
        event_id: String,
        /// Print only the raw body, exactly as received (e.g. to replay it with `send`).
        #[arg(long)]
        body: bool,
        /// Table.
        #[command(flatten)]
        table: TableArg,
    },
    /// The most recent events of a source, newest first: id, type, status, follow-ups.
    List {
        /// Source, e.g. `stripe`.
        source: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i32,
        /// Only events in this status (among the source's latest 1000).
        #[arg(long, value_parser = ["accepted", "stale", "ignored", "quarantined"])]
        status: Option<String>,
        /// Table.
        #[command(flatten)]
        table: TableArg,
    },
    /// Run the current mapping on a quarantined event's stored body: `quarantined -> accepted`
    /// (or `stale`), state applied once, follow-ups enqueued once.
    Replay(ReplayArgs),
}

/// `hookline events replay`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Source, e.g. `stripe` or `users`.
    pub source: String,
    /// The event id (`sha256:<hex>` for a body that had no signed id). Omit with `--status`.
    #[arg(required_unless_present = "status")]
    pub event_id: Option<String>,
    /// Replay every event of the source in this status (`quarantined`).
    #[arg(long, value_parser = ["quarantined"], conflicts_with = "event_id")]
    pub status: Option<String>,
    /// With `--status`: only events received within this long (e.g. `24h`, `30m`).
    #[arg(long, value_parser = parse_duration, requires = "status")]
    pub since: Option<Duration>,
    /// Print what would be replayed and what the mapping says, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Table.
    #[command(flatten)]
    pub table: TableArg,
    /// The follow-up queue the replayed follow-ups go to.
    #[command(flatten)]
    pub queue: QueueArg,
}

/// `hookline state ...`
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// One entity's state.
    Get {
        /// Entity kind, e.g. `customer`.
        kind: String,
        /// Entity id.
        id: String,
        /// Table.
        #[command(flatten)]
        table: TableArg,
    },
}

/// The table to read.
#[derive(Debug, Args)]
pub struct TableArg {
    /// Table name (default: `--stack`'s, else the local stack's `hookline-local`).
    #[arg(long = "table", env = "TABLE_NAME")]
    pub name: Option<String>,
}

impl TableArg {
    /// The table: `--table`, else the stack's, else the local stack's.
    pub fn name(&self, aws: &Aws) -> String {
        match (&self.name, &aws.stack) {
            (Some(name), _) => name.clone(),
            (None, Some(stack)) => stack.table.clone(),
            (None, None) => DEFAULT_TABLE.to_owned(),
        }
    }
}

/// The follow-up queue, by URL or by name.
#[derive(Debug, Args)]
pub struct QueueArg {
    /// Follow-up queue URL (default: `--stack`'s, else looked up by `--queue`).
    #[arg(long, env = "FOLLOWUP_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// Follow-up queue name, used when no URL is given.
    #[arg(long, default_value = DEFAULT_QUEUE)]
    pub queue: String,
}

impl QueueArg {
    /// The queue URL.
    pub async fn url(&self, aws: &Aws) -> anyhow::Result<String> {
        match (&self.queue_url, &aws.stack) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(stack)) => Ok(stack.queue_url.clone()),
            (None, None) => aws.queue_url(&self.queue).await,
        }
    }
}

/// `hookline pump`
#[derive(Debug, Args)]
pub struct PumpArgs {
    /// The follow-up queue.
    #[command(flatten)]
    pub queue: QueueArg,
    /// The worker's Lambda invoke URL.
    #[arg(long, default_value_t = format!("{}/2015-03-31/functions/followup-worker/invocations", default_watch()))]
    pub worker_url: String,
    /// The reconciler's Lambda invoke URL.
    #[arg(long, default_value_t = format!("{}/2015-03-31/functions/reconciler/invocations", default_watch()))]
    pub reconciler_url: String,
    /// How often to run the reconciler (`0s` never).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub reconcile_every: Duration,
    /// Drain what is visible now, then exit (no reconciler).
    #[arg(long)]
    pub once: bool,
}

/// `hookline sink`
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Listen address.
    #[arg(long, default_value_t = default_sink_addr())]
    pub addr: SocketAddr,
    /// Answer 503 to the first N requests, to show retries.
    #[arg(long, default_value_t = 0)]
    pub fail_first: usize,
    /// Answer 503 to this share of the requests (0 to 1), chosen by `--seed` and the request's
    /// number.
    #[arg(long, default_value_t = 0.0, value_parser = sink::parse_rate)]
    pub fail_rate: f64,
    /// Seed of `--fail-rate`: the same seed fails the same request numbers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Go down after the Nth request: answer 503 to everything for `--down-for`.
    #[arg(long, requires = "down_for")]
    pub down_after: Option<usize>,
    /// How long the sink stays down (e.g. `20s`, `2m`), with `--down-after`.
    #[arg(long, value_parser = parse_duration, requires = "down_after")]
    pub down_for: Option<Duration>,
    /// Also append each request as one JSON line to this file.
    #[arg(long)]
    pub record: Option<PathBuf>,
}

/// `hookline redrive` (hidden): `hookline dlq redrive --all`.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// The dead-letter queue (source).
    #[command(flatten)]
    pub dlq: DlqArg,
    /// The follow-up queue (destination).
    #[command(flatten)]
    pub queue: QueueArg,
    /// The table holding the follow-ups (each is reset before its message moves).
    #[command(flatten)]
    pub table: TableArg,
}

impl Cli {
    /// Runs the command. `Ok(false)` means it ran but failed (e.g. a non-2xx answer): exit 1.
    pub async fn run(self) -> anyhow::Result<bool> {
        let mut aws = Aws::load(&self.endpoint).await;
        if let Some(name) = &self.stack {
            aws.stack = Some(stack::StackOutputs::describe(&aws, name).await?);
        }
        let json = self.json;
        match self.command {
            Command::Local(LocalCommand::Up(args)) => local::up(&aws, &args).await.map(|()| true),
            Command::Send(args) => send::run(&args).await,
            Command::Events(EventsCommand::Get {
                source,
                event_id,
                body,
                table,
            }) => events::get(&aws, &table.name(&aws), &source, &event_id, body).await,
            Command::Events(EventsCommand::List {
                source,
                limit,
                status,
                table,
            }) => events::list(
                &aws,
                &table.name(&aws),
                &source,
                limit,
                status.as_deref(),
                json,
            )
            .await
            .map(|()| true),
            Command::Events(EventsCommand::Replay(args)) => events::replay(&aws, &args).await,
            Command::State(StateCommand::Get { kind, id, table }) => {
                events::state(&aws, &table.name(&aws), &kind, &id).await
            }
            Command::Pump(args) => pump::run(&aws, &args).await.map(|()| true),
            Command::Sink(args) => sink::run(&args).await.map(|()| true),
            Command::Followups(FollowupsCommand::List(args)) => {
                followups::list(&aws, &args, json).await.map(|()| true)
            }
            Command::Followups(FollowupsCommand::Retry(args)) => {
                followups::retry(&aws, &args, json).await
            }
            Command::Dlq(DlqCommand::List(args)) => dlq::list(&aws, &args, json).await,
            Command::Dlq(DlqCommand::Redrive(args)) => dlq::redrive(&aws, &args, json).await,
            Command::Redrive(RedriveArgs { dlq, queue, table }) => {
                let args = DlqRedriveArgs {
                    message_id: None,
                    all: true,
                    dry_run: false,
                    dlq,
                    queue,
                    table,
                };
                dlq::redrive(&aws, &args, json).await
            }
        }
    }
}
