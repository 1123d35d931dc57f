//! The `hookline` command: run the stack on one machine, sign and send sample events, inspect the
//! table, feed the follow-up queue to the worker, receive follow-up actions, and operate a stack:
//! list and retry follow-ups, list and redrive the dead-letter queue.
//!
//! Every command talks to the local AWS emulator by default (`http://127.0.0.1:4566`, or the port
//! in `HOOKLINE_MOTO_PORT` as `make dev` uses it; dummy
//! credentials, `us-east-1`), so a fresh clone needs no AWS account. `--endpoint aws` (or
//! `AWS_ENDPOINT_URL=aws`) uses the real AWS endpoints and the default credential chain instead.
//! `--stack NAME` takes the table and queues from a deployed stack's outputs ([`stack`]).
//! The commands live in one module each, with their own arguments and the dispatch of their
//! subcommands; [`cli`] is only the top of the grammar (global options, the list of commands),
//! [`args`] the argument groups several commands share, [`exit`] the exit codes. Listings print a
//! table by default and JSON with `--json` (offered only by the commands that print rows); no
//! command prints a payload or body unless it is explicitly about showing one (`events get`).

#![allow(clippy::print_stdout)]

/// `println!` that ends the process quietly when stdout is closed (`hookline ... | head`).
macro_rules! out {
    ($($arg:tt)*) => { $crate::emit(format_args!($($arg)*)) };
}

pub mod args;
pub mod cli;
pub mod describe;
pub mod dlq;
pub mod events;
pub mod exit;
pub mod followups;
pub mod local;
pub mod output;
pub mod progress;
pub mod pump;
pub mod receivers;
pub mod send;
pub mod server;
pub mod sign;
pub mod sink;
pub mod stack;

use anyhow::Context;
use hookline::config::TrustedRoots;
use hookline::receiver::ReceiverSpec;

/// The documented local test secret, used by every function in `make dev` and the tests.
///
/// Not a real secret: Stripe keys its HMAC with the whole string, Standard Webhooks base64-decodes
/// what follows `whsec_` (`hookline-local-test-secret`).
pub const LOCAL_SECRET: &str = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=";

/// `EVENT_RETENTION_DAYS` of the local stack: ten years. The samples in `events/` carry fixed
/// provider times, and a receiver whose scheme signs no time refuses an event older than the
/// retention as a possible replay (docs/SECURITY.md, "Replays"); locally every sample must stay
/// sendable.
pub const LOCAL_RETENTION_DAYS: i64 = 3650;

/// Port of the local emulator (moto server) in `make dev`; `HOOKLINE_MOTO_PORT` moves it.
pub const DEFAULT_MOTO_PORT: u16 = 4566;
/// Region used locally when `AWS_REGION` is unset.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Table name of the local stack.
pub const DEFAULT_TABLE: &str = "hookline-local";
/// Follow-up queue name of the local stack (its DLQ is `<name>-dlq`).
pub const DEFAULT_QUEUE: &str = "hookline-followups";
/// Port of `cargo lambda watch` in `make dev`; `HOOKLINE_WATCH_PORT` moves it.
pub const DEFAULT_WATCH_PORT: u16 = 9000;
/// Port of `hookline sink` in `make dev`; `HOOKLINE_SINK_PORT` moves it.
pub const DEFAULT_SINK_PORT: u16 = 9100;

/// The port in environment variable `var` (what `make dev` honours), else `default`. A value
/// that is not a port is ignored here and refused by `make dev` itself.
fn local_port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The local emulator's URL: `http://127.0.0.1:$HOOKLINE_MOTO_PORT` (default 4566).
pub fn default_endpoint() -> String {
    format!(
        "http://127.0.0.1:{}",
        local_port("HOOKLINE_MOTO_PORT", DEFAULT_MOTO_PORT)
    )
}

/// `cargo lambda watch`'s URL: `http://127.0.0.1:$HOOKLINE_WATCH_PORT` (default 9000).
pub fn default_watch() -> String {
    format!(
        "http://127.0.0.1:{}",
        local_port("HOOKLINE_WATCH_PORT", DEFAULT_WATCH_PORT)
    )
}

/// The sink's address: `127.0.0.1:$HOOKLINE_SINK_PORT` (default 9100).
pub fn default_sink_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from((
        [127, 0, 0, 1],
        local_port("HOOKLINE_SINK_PORT", DEFAULT_SINK_PORT),
    ))
}

/// The webhook receivers `hookline send` knows, by function name (the registry's).
pub fn receiver(function: &str) -> anyhow::Result<ReceiverSpec> {
    hookline_receivers::by_function(function)
        .ok_or_else(|| unknown("function", function, |s| s.function))
}

/// The webhook receiver whose events carry `source` (e.g. `stripe`), for a replay.
pub fn receiver_for_source(source: &str) -> anyhow::Result<ReceiverSpec> {
    hookline_receivers::by_source(source).ok_or_else(|| unknown("source", source, |s| s.source))
}

/// An unknown receiver's error, listing the known names.
fn unknown(what: &str, name: &str, field: fn(&ReceiverSpec) -> &'static str) -> anyhow::Error {
    let names: Vec<_> = hookline_receivers::all().iter().map(field).collect();
    anyhow::anyhow!("unknown {what} {name:?}; known: {}", names.join(", "))
}

/// Deletes `messages` from `queue_url`, ten per `DeleteMessageBatch`; `what` names the step in
/// an error. Returns how many SQS refused to delete (they will be delivered again).
pub(crate) async fn delete_messages(
    aws: &Aws,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[&aws_sdk_sqs::types::Message],
    what: &str,
) -> anyhow::Result<usize> {
    let mut refused = 0;
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws.fail(what, sdk_msg(e)))?;
        refused += out.failed().len();
    }
    Ok(refused)
}

/// Where AWS calls go.
#[derive(Debug, Clone)]
pub struct Aws {
    /// The SDK configuration.
    pub sdk: aws_config::SdkConfig,
    /// Human-readable endpoint, for error messages.
    pub endpoint: String,
    /// The deployed stack's table and queues, with `--stack`.
    pub stack: Option<stack::StackOutputs>,
}

impl Aws {
    /// Loads the SDK configuration for `endpoint` (a URL, or `aws` for the real endpoints).
    ///
    /// Against an emulator, missing credentials and region default to dummy values.
    pub async fn load(endpoint: &str) -> Self {
        let region = std::env::var("AWS_REGION")
            .ok()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let loader = aws_config::from_env()
            .region(aws_config::Region::new(region))
            .http_client(hookline::config::aws_http_client(TrustedRoots::System));
        if endpoint == "aws" {
            return Self {
                sdk: loader.load().await,
                endpoint: "AWS".to_owned(),
                stack: None,
            };
        }
        let mut loader = loader.endpoint_url(endpoint);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "hookline-local",
            ));
        }
        Self {
            sdk: loader.load().await,
            endpoint: endpoint.to_owned(),
            stack: None,
        }
    }

    /// A DynamoDB client.
    pub fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// An SQS client.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// The configured region.
    pub fn region(&self) -> String {
        self.sdk
            .region()
            .map_or_else(|| DEFAULT_REGION.to_owned(), ToString::to_string)
    }

    /// The error for a failed AWS call: what was attempted, and why; when the emulator cannot be
    /// reached, only that (and how to start it) instead of the SDK's long connector error.
    pub fn fail(&self, what: &str, err: impl std::fmt::Display) -> anyhow::Error {
        let msg = err.to_string();
        if self.endpoint != "AWS" && msg.contains("dispatch failure") {
            anyhow::anyhow!(
                "{what}: cannot reach the AWS emulator at {} (is it running? `make dev` starts it)",
                self.endpoint
            )
        } else {
            anyhow::anyhow!("{what}: {msg}")
        }
    }

    /// The URL of the queue named `name`.
    pub async fn queue_url(&self, name: &str) -> anyhow::Result<String> {
        self.sqs()
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| self.fail(&format!("looking up queue {name:?}"), sdk_msg(e)))?
            .queue_url
            .context("GetQueueUrl returned no URL")
    }
}

/// An AWS SDK error with its whole cause chain (the SDK's own Display says only "service error").
pub fn sdk_msg(err: impl std::error::Error + Send + Sync + 'static) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}

/// Writes one line to stdout; exits with status 0 if the reader has gone away.
pub fn emit(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("hookline: writing to stdout: {err}");
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Parses a duration like `30s`, `500ms`, `2m`, `24h`, `7d` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 500ms, 2m, 24h or 7d"))?;
    let secs = |per: u64| {
        n.checked_mul(per)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long"))
    };
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("30s"),
            Ok(std::time::Duration::from_secs(30))
        );
        assert_eq!(parse_duration("45"), Ok(std::time::Duration::from_secs(45)));
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("2m"),
            Ok(std::time::Duration::from_secs(120))
        );
        assert_eq!(
            parse_duration("24h"),
            Ok(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_duration("7d"),
            Ok(std::time::Duration::from_secs(7 * 86_400))
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn receivers_are_known_by_function_name() {
        assert!(receiver("payment-events").is_ok());
        assert!(receiver("user-events").is_ok());
        let err = receiver("nope").expect_err("unknown");
        assert!(err.to_string().contains("payment-events"));
    }

    #[test]
    fn local_secret_signs_under_both_schemes() {
        use hookline::secret::Secret;
        use hookline::verify::{Scheme, SignInput, sign};
        let input = SignInput {
            body: b"{}",
            timestamp: 1_700_000_000,
            id: "msg_1",
            url: None,
        };
        for scheme in [Scheme::Stripe, Scheme::StandardWebhooks] {
            let headers = sign(&scheme, &Secret::new(LOCAL_SECRET), &input);
            assert!(headers.is_ok(), "{scheme:?}: {headers:?}");
        }
    }
}
