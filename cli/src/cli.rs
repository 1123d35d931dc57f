//! The top of `hookline`'s command line: the global options, the list of commands, and the
//! dispatch to each command's module. Each command's own arguments live in its module (e.g.
//! [`crate::followups::FollowupsRetryArgs`]); the groups several commands share are in
//! [`crate::args`]. Nothing here is imported back by the command modules.

use clap::{Parser, Subcommand};

use crate::describe::DescribeArgs;
use crate::dlq::{DlqCommand, RedriveArgs};
use crate::events::{EventsCommand, StateCommand};
use crate::exit::{EXIT_CODES, Exit};
use crate::followups::FollowupsCommand;
use crate::local::LocalCommand;
use crate::pump::PumpArgs;
use crate::receivers::ReceiversArgs;
use crate::send::SendArgs;
use crate::sign::SignArgs;
use crate::sink::SinkArgs;
use crate::{Aws, default_endpoint, describe, dlq, pump, receivers, send, sign, sink, stack};

/// Hookline's command: local stack, sign-and-send, inspect, pump, sink, and operating a stack's
/// follow-ups and dead-letter queue.
#[derive(Debug, Parser)]
#[command(name = "hookline", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// AWS endpoint: the local emulator's URL, or `aws` for the real AWS endpoints.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", default_value_t = default_endpoint())]
    pub endpoint: String,
    /// A deployed stack: its outputs name the table and queues (`TableName`, `FollowupQueueUrl`,
    /// `FollowupDeadLetterQueueUrl`); `--table`, `--queue-url` and `--dlq-url` still override.
    #[arg(long, global = true, env = "HOOKLINE_STACK")]
    pub stack: Option<String>,
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
    /// The webhook receivers of the registry: function, route, source, scheme, action kinds.
    Receivers(ReceiversArgs),
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
    /// Sign deliveries as each function's sender would: a JSON-lines co-process.
    Sign(SignArgs),
    /// What each receiver's mapping makes of deliveries, and which event each entity keeps: JSON
    /// lines.
    Describe(DescribeArgs),
    /// Same as `hookline dlq redrive --all` (kept for existing scripts).
    #[command(hide = true)]
    Redrive(RedriveArgs),
}

impl Cli {
    /// Runs the command; the [`Exit`] says how it ended (an `Err` exits 1, or 2 for a
    /// [`crate::exit::UsageError`]).
    pub async fn run(self) -> anyhow::Result<Exit> {
        let mut aws = Aws::load(&self.endpoint).await;
        if let Some(name) = &self.stack {
            aws.stack = Some(stack::StackOutputs::describe(&aws, name).await?);
        }
        match self.command {
            Command::Local(cmd) => cmd.run(&aws).await,
            Command::Receivers(args) => receivers::run(&args).map(|()| Exit::Ok),
            Command::Send(args) => send::run(&args)
                .await
                .map(|ok| Exit::ok_or(ok, Exit::Failure)),
            Command::Events(cmd) => cmd.run(&aws).await,
            Command::State(cmd) => cmd.run(&aws).await,
            Command::Pump(args) => pump::run(&aws, &args).await.map(|()| Exit::Ok),
            Command::Sink(args) => sink::run(&args).await.map(|()| Exit::Ok),
            Command::Followups(cmd) => cmd.run(&aws).await,
            Command::Dlq(cmd) => cmd.run(&aws).await,
            Command::Sign(args) => sign::run(&args).map(|()| Exit::Ok),
            Command::Describe(args) => describe::run(&args).map(|()| Exit::Ok),
            Command::Redrive(args) => dlq::run_redrive(&aws, &args.into()).await,
        }
    }
}
