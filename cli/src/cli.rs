//! The argument grammar of `hookline`, and the dispatch to each command's module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::{
    Aws, DEFAULT_QUEUE, DEFAULT_TABLE, default_endpoint, default_sink_addr, default_watch, events,
    local, parse_duration, pump, redrive, send, sink,
};

/// Hookline's developer command: local stack, sign-and-send, inspect, pump, sink, redrive.
#[derive(Debug, Parser)]
#[command(name = "hookline", version, about)]
pub struct Cli {
    /// AWS endpoint: the local emulator's URL, or `aws` for the real AWS endpoints.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", default_value_t = default_endpoint())]
    pub endpoint: String,
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
    /// Move messages from the dead-letter queue back to the follow-up queue.
    Redrive(RedriveArgs),
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
    /// The most recent events of a source, newest first.
    List {
        /// Source, e.g. `stripe`.
        source: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i32,
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
    /// Table name.
    #[arg(long = "table", env = "TABLE_NAME", default_value = DEFAULT_TABLE)]
    pub name: String,
}

/// The follow-up queue, by URL or by name.
#[derive(Debug, Args)]
pub struct QueueArg {
    /// Follow-up queue URL (default: looked up by `--queue`).
    #[arg(long, env = "FOLLOWUP_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// Follow-up queue name, used when no URL is given.
    #[arg(long, default_value = DEFAULT_QUEUE)]
    pub queue: String,
}

impl QueueArg {
    /// The queue URL.
    pub async fn url(&self, aws: &Aws) -> anyhow::Result<String> {
        match &self.queue_url {
            Some(url) => Ok(url.clone()),
            None => aws.queue_url(&self.queue).await,
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

/// `hookline redrive`
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// The follow-up queue (destination).
    #[command(flatten)]
    pub queue: QueueArg,
    /// Dead-letter queue URL (default: the queue named `<queue>-dlq`).
    #[arg(long)]
    pub dlq_url: Option<String>,
    /// The table holding the follow-ups (each is reset before its message moves).
    #[command(flatten)]
    pub table: TableArg,
}

impl Cli {
    /// Runs the command. `Ok(false)` means it ran but failed (e.g. a non-2xx answer): exit 1.
    pub async fn run(self) -> anyhow::Result<bool> {
        let aws = Aws::load(&self.endpoint).await;
        match self.command {
            Command::Local(LocalCommand::Up(args)) => local::up(&aws, &args).await.map(|()| true),
            Command::Send(args) => send::run(&args).await,
            Command::Events(EventsCommand::Get {
                source,
                event_id,
                body,
                table,
            }) => events::get(&aws, &table.name, &source, &event_id, body).await,
            Command::Events(EventsCommand::List {
                source,
                limit,
                table,
            }) => events::list(&aws, &table.name, &source, limit)
                .await
                .map(|()| true),
            Command::Events(EventsCommand::Replay(args)) => events::replay(&aws, &args).await,
            Command::State(StateCommand::Get { kind, id, table }) => {
                events::state(&aws, &table.name, &kind, &id).await
            }
            Command::Pump(args) => pump::run(&aws, &args).await.map(|()| true),
            Command::Sink(args) => sink::run(&args).await.map(|()| true),
            Command::Redrive(args) => redrive::run(&aws, &args).await.map(|()| true),
        }
    }
}
