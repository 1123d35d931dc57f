//! `hookline sink`: the target of every follow-up action in the local stack. A small HTTP/1.1
//! server ([`crate::server`], on hyper) that prints each request and answers 200, or 503 where a
//! fault is injected so the retry path can be watched:
//!
//! - `--fail-first N`: the first N requests;
//! - `--fail-rate R --seed S`: a share R of the requests, chosen by a hash of the seed and the
//!   request's number (the same seed fails the same request numbers);
//! - `--down-after N --down-for D`: every request for D from the (N+1)th on, as a target that
//!   goes down for a while.
//!
//! With `--record`, each request is one JSON line carrying the fault that answered it, so a test
//! can tell an injected 503 from anything else, and the follow-up its `Idempotency-Key` names as
//! the store's own parser reads it ([`followup_json`]).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use hookline::followup;
use hookline::store::FollowUp;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::server::{Answer, Received};
use crate::{default_sink_addr, parse_duration};

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
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
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

/// Why a request was answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Among the first `--fail-first` requests.
    FailFirst,
    /// Drawn by `--fail-rate`.
    FailRate,
    /// Inside the `--down-after` / `--down-for` window.
    Down,
}

impl Fault {
    /// The name recorded in the `fault` field and named in the answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailFirst => "fail-first",
            Self::FailRate => "fail-rate",
            Self::Down => "down",
        }
    }
}

/// The injected faults, deciding each request by its number (1-based) and arrival time.
#[derive(Debug, Default)]
pub struct Faults {
    fail_first: usize,
    fail_rate: f64,
    seed: u64,
    down: Option<(usize, Duration)>,
    down_since: OnceLock<Instant>,
}

impl Faults {
    /// The faults `args` asks for.
    pub fn new(args: &SinkArgs) -> Self {
        Self {
            fail_first: args.fail_first,
            fail_rate: args.fail_rate,
            seed: args.seed,
            down: args.down_after.zip(args.down_for),
            down_since: OnceLock::new(),
        }
    }

    /// The fault answering request number `n` (1-based), arriving at `now`, if any. The down
    /// window opens when the first request numbered above `--down-after` arrives.
    pub fn decide(&self, n: usize, now: Instant) -> Option<Fault> {
        if n <= self.fail_first {
            return Some(Fault::FailFirst);
        }
        if let Some((after, length)) = self.down
            && n > after
            && now < *self.down_since.get_or_init(|| now) + length
        {
            return Some(Fault::Down);
        }
        (self.fail_rate > 0.0 && unit(self.seed, n) < self.fail_rate).then_some(Fault::FailRate)
    }

    /// When the down window opened, if it has.
    pub fn down_since(&self) -> Option<Instant> {
        self.down_since.get().copied()
    }
}

/// A number in [0, 1) from the seed and the request number (SplitMix64).
fn unit(seed: u64, n: usize) -> f64 {
    let mut z = seed.wrapping_add((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 53 bits, exactly representable.
    #[allow(clippy::cast_precision_loss)]
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

/// The `--fail-rate` value: a share between 0 and 1.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a share between 0 and 1, e.g. 0.3")),
    }
}

struct State {
    seen: AtomicUsize,
    faults: Faults,
    announced_down: AtomicBool,
    record: Option<std::sync::Mutex<std::fs::File>>,
}

/// Serves until interrupted.
pub async fn run(args: &SinkArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    serve(listener, args).await
}

/// Serves on `listener` (already bound) until accepting fails.
pub async fn serve(listener: TcpListener, args: &SinkArgs) -> anyhow::Result<()> {
    let record = match &args.record {
        Some(path) => Some(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        )),
        None => None,
    };
    let state = Arc::new(State {
        seen: AtomicUsize::new(0),
        faults: Faults::new(args),
        announced_down: AtomicBool::new(false),
        record,
    });
    let mut faults = format!("first {} request(s) get 503", args.fail_first);
    if args.fail_rate > 0.0 {
        faults += &format!(", then {} of them (seed {})", args.fail_rate, args.seed);
    }
    if let (Some(after), Some(length)) = (args.down_after, args.down_for) {
        faults += &format!(", all for {length:?} after request #{after}");
    }
    out!(
        "sink: listening on http://{} ({faults})",
        listener.local_addr()?
    );
    crate::server::serve(listener, move |request| {
        let state = state.clone();
        async move {
            answer(&state, &request).unwrap_or_else(|err| {
                eprintln!("sink: {err:#}");
                Answer::json(500, &json!({"error": err.to_string()}))
            })
        }
    })
    .await
    .context("accepting")
}

/// The follow-up an `Idempotency-Key` names, parsed by the store's own
/// [`followup::parse_key`], as the record's `followup`: `{kind: "action", source, event_id,
/// action, generation}` or `{kind: "sync", source, entity_kind, entity_id, action (the sync's
/// name), seq, generation}`; `None` for a key no follow-up could carry.
pub fn followup_json(key: &str) -> Option<Value> {
    let parts = followup::parse_key(key).ok()?;
    Some(match parts.followup {
        FollowUp::Action {
            source,
            event_id,
            action,
        } => json!({
            "kind": "action",
            "source": source,
            "event_id": event_id,
            "action": action,
            "generation": parts.generation,
        }),
        FollowUp::Sync {
            source,
            entity_kind,
            entity_id,
            sync,
        } => json!({
            "kind": "sync",
            "source": source,
            "entity_kind": entity_kind,
            "entity_id": entity_id,
            "action": sync,
            "seq": parts.seq,
            "generation": parts.generation,
        }),
    })
}

/// Decides, prints and records one request; the answer.
fn answer(state: &State, request: &Received) -> anyhow::Result<Answer> {
    let n = state.seen.fetch_add(1, Ordering::SeqCst) + 1;
    let now = Instant::now();
    let fault = state.faults.decide(n, now);
    if fault == Some(Fault::Down) && !state.announced_down.swap(true, Ordering::SeqCst) {
        out!("sink: down from request #{n}");
    }
    let status = if fault.is_some() { 503 } else { 200 };
    let body: Value = serde_json::from_slice(&request.body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&request.body).into_owned()));
    let key = request.header("idempotency-key").unwrap_or("-");
    out!(
        "sink: #{n} {} {}  Idempotency-Key: {key}  -> {status}{}\n{}",
        request.method,
        request.path,
        fault.map_or(String::new(), |f| format!(" ({})", f.as_str())),
        serde_json::to_string_pretty(&body)?
    );
    if let Some(file) = &state.record {
        let line = json!({
            "n": n,
            "method": request.method,
            "path": request.path,
            "idempotency_key": request.header("idempotency-key"),
            "followup": request.header("idempotency-key").and_then(followup_json),
            "status": status,
            "fault": fault.map(Fault::as_str),
            "at_ms": SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            "body": body,
        });
        let mut file = file
            .lock()
            .map_err(|_| anyhow::anyhow!("record file lock poisoned"))?;
        writeln!(file, "{line}").context("writing the record file")?;
    }
    let answer = match fault {
        None => json!({"ok": true}),
        Some(f) => json!({"error": format!("failing on purpose (--{})", f.as_str())}),
    };
    Ok(Answer::json(status, &answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(fail_first: usize, fail_rate: f64, seed: u64, down: Option<(usize, u64)>) -> Faults {
        Faults::new(&SinkArgs {
            addr: ([127, 0, 0, 1], 0).into(),
            fail_first,
            fail_rate,
            seed,
            down_after: down.map(|(after, _)| after),
            down_for: down.map(|(_, secs)| Duration::from_secs(secs)),
            record: None,
        })
    }

    fn failing(f: &Faults, requests: usize) -> Vec<usize> {
        let now = Instant::now();
        (1..=requests)
            .filter(|&n| f.decide(n, now).is_some())
            .collect()
    }

    #[test]
    fn fail_rate_fails_that_share_the_same_way_for_the_same_seed() {
        let (a, b, c) = (
            faults(0, 0.3, 7, None),
            faults(0, 0.3, 7, None),
            faults(0, 0.3, 8, None),
        );
        let failed = failing(&a, 10_000);
        assert!((2_800..=3_200).contains(&failed.len()), "{}", failed.len());
        assert_eq!(failed, failing(&b, 10_000));
        assert_ne!(failed, failing(&c, 10_000));
        assert_eq!(a.decide(failed[0], Instant::now()), Some(Fault::FailRate));
        assert!(failing(&faults(0, 0.0, 7, None), 1_000).is_empty());
        assert_eq!(failing(&faults(0, 1.0, 7, None), 1_000).len(), 1_000);
    }

    #[test]
    fn fail_first_comes_before_the_rate() {
        let f = faults(3, 0.0, 0, None);
        let now = Instant::now();
        assert_eq!(f.decide(1, now), Some(Fault::FailFirst));
        assert_eq!(f.decide(3, now), Some(Fault::FailFirst));
        assert_eq!(f.decide(4, now), None);
    }

    #[test]
    fn down_window_opens_after_the_nth_request_and_closes_after_its_length() {
        let f = faults(0, 0.0, 0, Some((10, 20)));
        let t0 = Instant::now();
        assert_eq!(f.decide(10, t0), None);
        assert_eq!(f.down_since(), None);
        let opened = t0 + Duration::from_secs(5);
        assert_eq!(f.decide(11, opened), Some(Fault::Down));
        assert_eq!(f.down_since(), Some(opened));
        let inside = opened + Duration::from_millis(19_999);
        assert_eq!(f.decide(12, inside), Some(Fault::Down));
        assert_eq!(f.decide(13, opened + Duration::from_secs(20)), None);
        // Only once: later requests are past the window for good.
        assert_eq!(f.decide(500, opened + Duration::from_secs(60)), None);
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        assert_eq!(parse_rate("0.3"), Ok(0.3));
        assert_eq!(parse_rate("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "NaN", "often"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    /// `hookline sink`'s grammar on its own.
    #[derive(Debug, clap::Parser)]
    struct Sink {
        #[command(flatten)]
        args: SinkArgs,
    }

    #[test]
    fn down_after_and_down_for_come_together() -> Result<(), clap::Error> {
        use clap::Parser as _;
        let parse = |args: &[&str]| Sink::try_parse_from(["sink"].iter().chain(args).copied());
        assert!(parse(&["--down-after", "5"]).is_err());
        assert!(parse(&["--down-for", "5s"]).is_err());
        assert!(parse(&["--fail-rate", "2"]).is_err());
        let cli = parse(&[
            "--down-after",
            "5",
            "--down-for",
            "20s",
            "--fail-rate",
            "0.3",
        ])?;
        let args = cli.args;
        assert_eq!(args.down_after, Some(5));
        assert_eq!(args.down_for, Some(Duration::from_secs(20)));
        assert_eq!(args.fail_rate, 0.3);
        Ok(())
    }

    #[test]
    fn the_record_names_the_followup_its_key_carries() {
        let key = followup::sync_key("stripe", "subscription", "sub_1", 3, "access", 1);
        assert_eq!(
            followup_json(&key),
            Some(
                json!({"kind": "sync", "source": "stripe", "entity_kind": "subscription",
                        "entity_id": "sub_1", "action": "access", "seq": 3, "generation": 1})
            )
        );
        let key = followup::action_key("users", "msg_1", "welcome", 0);
        assert_eq!(
            followup_json(&key),
            Some(
                json!({"kind": "action", "source": "users", "event_id": "msg_1",
                        "action": "welcome", "generation": 0})
            )
        );
        assert_eq!(followup_json("k1"), None);
    }

    #[tokio::test]
    async fn answers_503_then_200_and_records() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("sink-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let record = dir.join("requests.jsonl");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let args = SinkArgs {
            addr: ([127, 0, 0, 1], port).into(),
            fail_first: 1,
            fail_rate: 0.0,
            seed: 0,
            down_after: None,
            down_for: None,
            record: Some(record.clone()),
        };
        let server = tokio::spawn(async move { serve(listener, &args).await });
        let client = hookline::config::http_client()
            .build()
            .expect("an HTTP client");
        let url = format!("http://127.0.0.1:{port}/receipt");
        let mut statuses = Vec::new();
        for _ in 0..2 {
            let r = client
                .post(&url)
                .header("Idempotency-Key", "k1")
                .json(&json!({"a": 1}))
                .send()
                .await?;
            statuses.push(r.status().as_u16());
        }
        server.abort();
        assert_eq!(statuses, [503, 200]);
        let lines = std::fs::read_to_string(&record)?;
        let last: Value = serde_json::from_str(lines.lines().last().unwrap_or_default())?;
        assert_eq!(last["path"], "/receipt");
        assert_eq!(last["idempotency_key"], "k1");
        assert_eq!(last["body"]["a"], 1);
        assert_eq!(last["fault"], Value::Null);
        let first: Value = serde_json::from_str(lines.lines().next().unwrap_or_default())?;
        assert_eq!(first["fault"], "fail-first");
        // `k1` is no follow-up's key: recorded as such, not guessed at.
        assert_eq!(first["followup"], Value::Null);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
