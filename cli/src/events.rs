//! `hookline events get|list` and `hookline state get`: read the table the way the functions
//! wrote it.

use std::io::Write as _;
use std::time::Duration;

use clap::{Args, Subcommand};
use hookline::config::DEFAULT_RETENTION_DAYS;
use hookline::store::{EventStore, Outcome};

use crate::args::{JsonArg, QueueArg, TableArg};
use crate::exit::Exit;
use crate::{Aws, parse_duration};

pub(crate) fn store(aws: &Aws, table: &str) -> EventStore {
    EventStore::new(
        aws.dynamo(),
        table,
        DEFAULT_RETENTION_DAYS,
        hookline::clock::system(),
    )
}

/// Prints one event record as JSON, then its stored raw body as UTF-8 text after a `--- body`
/// line; with `body_only`, just the raw body (to save it, or replay it with `hookline send`).
/// `Ok(false)` if absent.
pub async fn get(
    aws: &Aws,
    table: &str,
    source: &str,
    event_id: &str,
    body_only: bool,
) -> anyhow::Result<bool> {
    let store = store(aws, table);
    let record = store
        .get_event(source, event_id)
        .await
        .map_err(|e| aws.fail(&format!("reading event {source}/{event_id}"), e))?;
    let Some(record) = record else {
        eprintln!("no event {source}/{event_id} in table {table}");
        return Ok(false);
    };
    let body = store
        .get_body(source, event_id)
        .await
        .map_err(|e| aws.fail(&format!("reading the body of {source}/{event_id}"), e))?;
    if body_only {
        let Some(body) = &body else {
            eprintln!("event {source}/{event_id} was stored without its body (too large)");
            return Ok(false);
        };
        // Byte for byte, so that a replay signs exactly what the sender sent.
        let mut stdout = std::io::stdout().lock();
        if let Err(err) = stdout.write_all(body).and_then(|()| stdout.flush())
            && err.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(err.into());
        }
        return Ok(true);
    }
    out!("{}", serde_json::to_string_pretty(&record)?);
    match &body {
        Some(body) => out!("--- body\n{}", String::from_utf8_lossy(body).trim_end()),
        None => out!("--- body not stored (too large for the item)"),
    }
    Ok(true)
}

/// One line of `events list`: the record's lifecycle fields, never its body or payloads.
#[derive(Debug, serde::Serialize)]
pub struct EventRow {
    /// Source.
    pub source: String,
    /// Provider event id.
    pub event_id: String,
    /// Provider event type.
    pub event_type: String,
    /// `accepted`, `stale`, `ignored` or `quarantined`.
    pub status: Outcome,
    /// Why it was quarantined.
    pub reason: Option<String>,
    /// When it was recorded, ms.
    pub received_at: i64,
    /// Its event actions: kind and status.
    pub followups: Vec<OutboxRow>,
}

/// One event action in an [`EventRow`].
#[derive(Debug, serde::Serialize)]
pub struct OutboxRow {
    /// Action kind.
    pub kind: String,
    /// Lifecycle status.
    pub status: hookline::store::ActionStatus,
    /// Attempts.
    pub attempt: i64,
}

/// A stored event status, as `events list --status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    /// Recorded, state applied (if any).
    Accepted,
    /// Recorded, older than the entity's state: event actions only.
    Stale,
    /// An event type the function does not handle.
    Ignored,
    /// A verified body that does not fit the model, kept for `events replay`.
    Quarantined,
}

impl From<StatusArg> for Outcome {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Accepted => Self::Accepted,
            StatusArg::Stale => Self::Stale,
            StatusArg::Ignored => Self::Ignored,
            StatusArg::Quarantined => Self::Quarantined,
        }
    }
}

/// How many of a source's latest events `events list --status` looks through.
pub const STATUS_WINDOW: i32 = 1000;

/// Prints the most recent events of `source`, newest first (with `status`, only those in it,
/// among the latest [`STATUS_WINDOW`]): a table, or JSON.
pub async fn list(
    aws: &Aws,
    table: &str,
    source: &str,
    limit: i32,
    status: Option<Outcome>,
    json: bool,
) -> anyhow::Result<()> {
    let store = store(aws, table);
    let window = if status.is_some() {
        STATUS_WINDOW.max(limit)
    } else {
        limit
    };
    let recent = store
        .recent(source, window)
        .await
        .map_err(|e| aws.fail(&format!("listing events of {source}"), e))?;
    let progress = crate::progress::bar(
        u64::try_from(recent.len()).unwrap_or(u64::MAX),
        "reading events",
        json,
    );
    let mut rows = Vec::new();
    for (source, id) in recent {
        if rows.len() >= usize::try_from(limit).unwrap_or(0) {
            break;
        }
        progress.inc(1);
        let Some(event) = store
            .get_event(&source, &id)
            .await
            .map_err(|e| aws.fail(&format!("reading event {source}/{id}"), e))?
        else {
            continue;
        };
        if status.is_some_and(|st| st != event.status) {
            continue;
        }
        rows.push(EventRow {
            followups: event
                .outbox
                .iter()
                .map(|o| OutboxRow {
                    kind: o.kind.clone(),
                    status: o.status,
                    attempt: o.attempt,
                })
                .collect(),
            source: event.source,
            event_id: event.event_id,
            event_type: event.event_type,
            status: event.status,
            reason: event.reason,
            received_at: event.received_at,
        });
    }
    progress.finish_and_clear();
    let what = status.map_or(String::new(), |st| format!("{st} "));
    crate::output::print(
        json,
        &["RECEIVED", "EVENT ID", "TYPE", "STATUS", "FOLLOW-UPS"],
        &rows,
        |r| {
            let outbox: Vec<String> = r
                .followups
                .iter()
                .map(|o| format!("{}={}", o.kind, o.status.as_str()))
                .collect();
            let status = match &r.reason {
                Some(reason) => format!("{} ({reason})", r.status),
                None => r.status.to_string(),
            };
            vec![
                crate::output::time(Some(r.received_at)),
                r.event_id.clone(),
                r.event_type.clone(),
                status,
                outbox.join(" "),
            ]
        },
        &format!("no {what}events of source {source} in table {table}"),
    )
}

/// Prints one entity's state as JSON, its sync with the state last sent, its sequence and the
/// `Idempotency-Key` it goes out under (`sent_key`). `Ok(false)` if absent.
pub async fn state(aws: &Aws, table: &str, kind: &str, id: &str) -> anyhow::Result<bool> {
    let entity = store(aws, table)
        .get_entity(kind, id)
        .await
        .map_err(|e| aws.fail(&format!("reading entity {kind}/{id}"), e))?;
    let Some(entity) = entity else {
        eprintln!("no entity {kind}/{id} in table {table}");
        return Ok(false);
    };
    let mut shown = serde_json::to_value(&entity)?;
    // The key the sync's last sent state goes out under (docs/FOLLOWUPS.md).
    if let Some(key) = entity
        .sync
        .as_ref()
        .and_then(|s| s.sent_key(&entity.kind, &entity.id))
    {
        shown["sync"]["sent_key"] = key.into();
    }
    out!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(true)
}

/// Keys per query page when `events replay --status` lists a source's events
/// (`HOOKLINE_REPLAY_PAGE` overrides it, for the tests that page with a few events).
const REPLAY_PAGE: i32 = 1000;

fn replay_page() -> i32 {
    std::env::var("HOOKLINE_REPLAY_PAGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|p| *p > 0)
        .unwrap_or(REPLAY_PAGE)
}

/// `hookline events replay`: one quarantined event, or every one of a source (`--status`).
/// `Ok(false)` when any could not be replayed (it stays quarantined; the reason is printed).
pub async fn replay(aws: &Aws, args: &ReplayArgs) -> anyhow::Result<bool> {
    let spec = crate::receiver_for_source(&args.source)?;
    let store = store(aws, &args.table.name(aws));
    let ids: Vec<String> = match &args.event_id {
        Some(id) => vec![id.clone()],
        None => {
            let since = args.since.map_or(0, |d| {
                hookline::clock::system().now_millis()
                    - i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            });
            let mut ids = Vec::new();
            // Every event of the window, page after page (not only the newest page).
            let window = store
                .events_since(&args.source, since, replay_page())
                .await
                .map_err(|e| aws.fail("listing events", e))?;
            let progress = crate::progress::bar(len(window.len()), "reading events", false);
            for (source, id) in window {
                progress.inc(1);
                if let Some(ev) = store.get_event(&source, &id).await?
                    && ev.status == Outcome::Quarantined
                    && ev.received_at >= since
                {
                    ids.push(id);
                }
            }
            progress.finish_and_clear();
            ids
        }
    };
    if ids.is_empty() {
        out!("replay: nothing quarantined to replay");
        return Ok(true);
    }
    let queue = hookline::queue::FollowupQueue::new(aws.sqs(), args.queue.url(aws).await?);
    let mut ok = true;
    let progress = crate::progress::bar(len(ids.len()), "replaying", false);
    for id in ids {
        let line = match replay_one(&store, &queue, &spec, &id, args.dry_run).await {
            Ok(line) => format!("replay: {}/{id}: {line}", args.source),
            Err(e) => {
                ok = false;
                format!("replay: {}/{id}: not replayed: {e:#}", args.source)
            }
        };
        progress.suspend(|| out!("{line}"));
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(ok)
}

/// A count as a progress bar's length.
fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

async fn replay_one(
    store: &EventStore,
    queue: &hookline::queue::FollowupQueue,
    spec: &hookline::receiver::ReceiverSpec,
    id: &str,
    dry_run: bool,
) -> anyhow::Result<String> {
    let record = store
        .get_event(spec.source, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no such event"))?;
    anyhow::ensure!(
        record.status == Outcome::Quarantined,
        "it is {}, not quarantined",
        record.status
    );
    let body = store
        .get_body(spec.source, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("its body was not stored (too large) or has expired"))?;
    // The delivery's headers as received (GitHub's and Shopify's event type is one), else the
    // record's id standing in for the delivery id (records written before they were kept).
    let meta = record
        .delivery
        .clone()
        .unwrap_or_else(|| hookline::verify::VerifiedMeta {
            delivery_id: Some(id.to_owned()),
            ..Default::default()
        });
    let verified = hookline::verify::Verified::stored_with(&body, &record.body_sha256, meta)
        .ok_or_else(|| anyhow::anyhow!("the stored body does not match its recorded hash"))?;
    let described = (spec.describe)(&verified)
        .map_err(|e| anyhow::anyhow!("the current mapping still refuses it: {e}"))?;
    let actions: Vec<&str> = described
        .effects
        .actions()
        .iter()
        .map(|a| a.kind.as_str())
        .collect();
    if dry_run {
        return Ok(format!(
            "would apply {} as {} with follow-ups {actions:?} (dry run)",
            described.event_type,
            described
                .effects
                .change()
                .map_or("no state change".to_owned(), |c| format!(
                    "{}/{}",
                    c.entity_kind, c.entity_id
                ))
        ));
    }
    // The record keeps its key: the id it was quarantined under.
    let event = hookline::store::NewEvent {
        source: spec.source,
        function: spec.function,
        event_id: id,
        event_type: &described.event_type,
        provider_ts: described.provider_ts,
        body: &body,
        delivery: record.delivery.as_ref(),
    };
    let committed = store.replay(&event, &described.effects).await?;
    if !committed.enqueue.is_empty()
        && let Err(e) = queue.send(&committed.enqueue).await
    {
        return Ok(format!(
            "{} (follow-ups left for the reconciler: {e})",
            committed.outcome.status()
        ));
    }
    Ok(format!(
        "{}, {} follow-up(s) enqueued",
        committed.outcome.status(),
        committed.enqueue.len()
    ))
}

// The command line of `hookline events ...` and `hookline state ...`, and their dispatch.

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
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Table.
        #[command(flatten)]
        table: TableArg,
        /// Output.
        #[command(flatten)]
        output: JsonArg,
    },
    /// Run the current mapping on a quarantined event's stored body: `quarantined -> accepted`
    /// (or `stale`), state applied once, follow-ups enqueued once. With `--status`, an event
    /// that could not be replayed exits 3.
    Replay(ReplayArgs),
}

impl EventsCommand {
    /// Runs the subcommand.
    pub async fn run(self, aws: &Aws) -> anyhow::Result<Exit> {
        match self {
            Self::Get {
                source,
                event_id,
                body,
                table,
            } => get(aws, &table.name(aws), &source, &event_id, body)
                .await
                .map(|ok| Exit::ok_or(ok, Exit::Failure)),
            Self::List {
                source,
                limit,
                status,
                table,
                output,
            } => list(
                aws,
                &table.name(aws),
                &source,
                limit,
                status.map(Outcome::from),
                output.json,
            )
            .await
            .map(|()| Exit::Ok),
            Self::Replay(args) => {
                let ok = replay(aws, &args).await?;
                let otherwise = if args.status.is_some() {
                    Exit::Refused
                } else {
                    Exit::Failure
                };
                Ok(Exit::ok_or(ok, otherwise))
            }
        }
    }
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
    /// One entity's state, as JSON.
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

impl StateCommand {
    /// Runs the subcommand.
    pub async fn run(self, aws: &Aws) -> anyhow::Result<Exit> {
        match self {
            Self::Get { kind, id, table } => state(aws, &table.name(aws), &kind, &id)
                .await
                .map(|ok| Exit::ok_or(ok, Exit::Failure)),
        }
    }
}
