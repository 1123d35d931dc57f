//! Metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout: no API call, no agent,
//! no latency on the request path. CloudWatch Logs extracts each line into metrics in the
//! `Hookline` namespace, with the dimensions `function` and `source`, and again with none: the
//! total over every function, which the alarms watch (a receiver added later is covered).
//!
//! Invariants kept here: each emission is ONE line holding ONE top-level JSON object whose
//! `_aws` member declares the metrics (never nested in the log formatter's fields, which
//! CloudWatch would not extract), written with a single `write_all` so it cannot interleave with
//! a log line; values are numbers and names are fixed identifiers, never request data (so no
//! secret, signature or body can reach a metric line, invariant 6).
//!
//! Names: the receivers emit (one line per request, from [`crate::receiver`]) [`RECEIVED`], then
//! the outcome ([`ACCEPTED`], [`DUPLICATE`], [`STALE`], [`IGNORED`], [`QUARANTINED`]) or the
//! rejection ([`REJECTED`] and `rejected_<status>`, see [`rejection`]; a dependency outage is
//! [`UNAVAILABLE`]), [`ENQUEUE_FAILED`] when SQS refused the follow-ups, and
//! [`HANDLER_DURATION_MS`].
//!
//! The follow-up worker and the reconciler should emit, with [`count`] / [`duration_ms`] or a
//! [`Metrics`] value, the source of the event as `source`: [`FOLLOWUPS_DONE`],
//! [`FOLLOWUPS_RETRIED`], [`FOLLOWUPS_FAILED`], [`FOLLOWUPS_SKIPPED`] (worker, one per follow-up
//! finished in that state), [`RECONCILER_REENQUEUED`] and [`RECONCILER_CORRUPT`] (per run) and
//! [`RECONCILER_BACKLOG_AGE_MS`] (per run: age of the oldest pending follow-up, 0 when none;
//! `source` = `all`). `template.yaml` alarms on these names: keep them in step.
//!
//! The numbered invariants are those of docs/ARCHITECTURE.md.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::clock::{self, SharedClock};

/// The CloudWatch namespace of every Hookline metric.
pub const NAMESPACE: &str = "Hookline";

/// A delivery reached the receiver (whatever its fate).
pub const RECEIVED: &str = "received";
/// A new event, recorded.
pub const ACCEPTED: &str = "accepted";
/// A redelivery of a recorded event.
pub const DUPLICATE: &str = "duplicate";
/// An event older than the entity's state, recorded without effect.
pub const STALE: &str = "stale";
/// An event type the function does not handle, recorded and acknowledged.
pub const IGNORED: &str = "ignored";
/// A verified body the model cannot read, kept for replay (alarmed).
pub const QUARANTINED: &str = "quarantined";
/// Any 4xx answer; `rejected_<status>` says which.
pub const REJECTED: &str = "rejected";
/// A dependency outage answered 503 (the sender retries).
pub const UNAVAILABLE: &str = "unavailable";
/// SQS refused the follow-ups of a recorded event (the reconciler will enqueue them).
pub const ENQUEUE_FAILED: &str = "followup_enqueue_failed";
/// Time the receiver spent on one request, milliseconds.
pub const HANDLER_DURATION_MS: &str = "handler_duration_ms";
/// Worker: a follow-up's target answered 2xx.
pub const FOLLOWUPS_DONE: &str = "followups_done";
/// Worker: a follow-up will be retried (408/409/425/429/5xx/timeout).
pub const FOLLOWUPS_RETRIED: &str = "followups_retried";
/// Worker: a follow-up failed for good (moved to the DLQ).
pub const FOLLOWUPS_FAILED: &str = "followups_failed";
/// Worker: a follow-up had no target configured.
pub const FOLLOWUPS_SKIPPED: &str = "followups_skipped";
/// Reconciler: follow-ups re-enqueued in one run.
pub const RECONCILER_REENQUEUED: &str = "reconciler_reenqueued";
/// Reconciler: records it could not read in one run (each moved an hour on; alarmed).
pub const RECONCILER_CORRUPT: &str = "reconciler_corrupt";
/// Reconciler: age of the oldest follow-up still pending, milliseconds.
pub const RECONCILER_BACKLOG_AGE_MS: &str = "reconciler_backlog_age_ms";

/// The metric name of a receiver's error answer: `rejected_<status>` for the 4xx a receiver
/// gives (400, 401, 403, 405, 413, 415), [`UNAVAILABLE`] for a 5xx. The status itself comes from
/// [`crate::http::ApiError::status`], the one error-to-status mapping.
pub fn rejection(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "rejected_400",
        401 => "rejected_401",
        403 => "rejected_403",
        405 => "rejected_405",
        413 => "rejected_413",
        415 => "rejected_415",
        s if s >= 500 => UNAVAILABLE,
        _ => "rejected_other",
    }
}

/// The unit CloudWatch records a value in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of things.
    Count,
    /// A duration or age in milliseconds.
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// The metric's name, one of this module's constants.
    pub name: &'static str,
    /// Its value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
}

impl Metric {
    /// A count.
    pub fn count(name: &'static str, n: u64) -> Self {
        // Counts per line are tiny; the conversion is exact far beyond them.
        #[allow(clippy::cast_precision_loss)]
        let value = n as f64;
        Self {
            name,
            value,
            unit: Unit::Count,
        }
    }
    /// A duration, in milliseconds with microsecond precision.
    pub fn duration(name: &'static str, d: Duration) -> Self {
        Self {
            name,
            value: d.as_secs_f64() * 1000.0,
            unit: Unit::Milliseconds,
        }
    }
}

/// Where metric lines go: stdout (Lambda sends it to CloudWatch Logs) or, in tests, a writer.
#[derive(Clone)]
pub struct Metrics {
    out: Option<Arc<Mutex<dyn Write + Send>>>,
    clock: SharedClock,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.out.is_some() {
            "Metrics(writer)"
        } else {
            "Metrics(stdout)"
        })
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::stdout()
    }
}

impl Metrics {
    /// Lines to stdout, stamped by the system clock.
    pub fn stdout() -> Self {
        Self {
            out: None,
            clock: clock::system(),
        }
    }

    /// Lines to `out`, stamped by `clock` (tests).
    pub fn to_writer(out: impl Write + Send + 'static, clock: SharedClock) -> Self {
        Self {
            out: Some(Arc::new(Mutex::new(out))),
            clock,
        }
    }

    /// Writes one EMF line holding `metrics` under the dimensions `function` and `source`.
    /// A failed write is ignored: metrics never fail a request.
    pub fn emit(&self, function: &str, source: &str, metrics: &[Metric]) {
        if metrics.is_empty() {
            return;
        }
        let mut line = line(self.clock.now_millis(), function, source, metrics).to_string();
        line.push('\n');
        let _ = match &self.out {
            Some(out) => out
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(line.as_bytes()),
            None => std::io::stdout().lock().write_all(line.as_bytes()),
        };
    }

    /// One count.
    pub fn count(&self, function: &str, source: &str, name: &'static str, n: u64) {
        self.emit(function, source, &[Metric::count(name, n)]);
    }

    /// One duration, in milliseconds.
    pub fn duration_ms(&self, function: &str, source: &str, name: &'static str, ms: f64) {
        self.emit(
            function,
            source,
            &[Metric {
                name,
                value: ms,
                unit: Unit::Milliseconds,
            }],
        );
    }
}

/// One count on stdout.
pub fn count(function: &str, source: &str, name: &'static str, n: u64) {
    Metrics::stdout().count(function, source, name, n);
}

/// One duration (milliseconds) on stdout.
pub fn duration_ms(function: &str, source: &str, name: &'static str, ms: f64) {
    Metrics::stdout().duration_ms(function, source, name, ms);
}

/// The EMF object: `_aws` metadata, the two dimension values, one member per metric.
fn line(timestamp_ms: i64, function: &str, source: &str, metrics: &[Metric]) -> Value {
    let declared: Vec<Value> = metrics
        .iter()
        .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
        .collect();
    let mut obj = Map::new();
    obj.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                // Per function and source, and once more with no dimension at all: the total
                // across every function, which the alarms watch, so that a new receiver is
                // covered without a template change.
                "Dimensions": [["function", "source"], []],
                "Metrics": declared,
            }],
        }),
    );
    obj.insert("function".into(), function.into());
    obj.insert("source".into(), source.into());
    for m in metrics {
        obj.insert(m.name.into(), json!(m.value));
    }
    Value::Object(obj)
}

/// A writer tests can read back: a shared buffer of the lines written.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The lines written so far, each parsed as JSON (a line that is not JSON panics the test
    /// that asked: every line must be).
    pub fn lines(&self) -> Vec<Value> {
        let buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.to_owned())))
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    #[test]
    fn each_emission_is_one_top_level_emf_object() {
        let out = Captured::default();
        let m = Metrics::to_writer(out.clone(), FixedClock::at_secs(1_750_000_000));
        m.emit(
            "payment-events",
            "stripe",
            &[
                Metric::count(RECEIVED, 1),
                Metric::count(ACCEPTED, 1),
                Metric::duration(HANDLER_DURATION_MS, Duration::from_micros(1500)),
            ],
        );
        m.count("followup-worker", "stripe", FOLLOWUPS_DONE, 3);
        m.emit("x", "y", &[]);
        let lines = out.lines();
        assert_eq!(lines.len(), 2, "one line per emission, none for nothing");

        let l = &lines[0];
        let aws = &l["_aws"];
        assert_eq!(aws["Timestamp"], 1_750_000_000_000_i64);
        let cw = &aws["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Hookline");
        assert_eq!(cw["Dimensions"], json!([["function", "source"], []]));
        assert_eq!(
            cw["Metrics"],
            json!([
                {"Name": "received", "Unit": "Count"},
                {"Name": "accepted", "Unit": "Count"},
                {"Name": "handler_duration_ms", "Unit": "Milliseconds"},
            ])
        );
        assert_eq!(l["function"], "payment-events");
        assert_eq!(l["source"], "stripe");
        assert_eq!(l["received"], 1.0);
        assert_eq!(l["accepted"], 1.0);
        assert_eq!(l["handler_duration_ms"], 1.5);
        // Every declared metric has its value at the top level.
        for d in cw["Metrics"].as_array().expect("metrics") {
            let name = d["Name"].as_str().expect("name");
            assert!(l[name].is_number(), "{name}");
        }
        assert_eq!(lines[1]["followups_done"], 3.0);
    }

    #[test]
    fn rejections_are_named_by_status() {
        use http::StatusCode;
        assert_eq!(rejection(StatusCode::UNAUTHORIZED), "rejected_401");
        assert_eq!(rejection(StatusCode::FORBIDDEN), "rejected_403");
        assert_eq!(rejection(StatusCode::METHOD_NOT_ALLOWED), "rejected_405");
        assert_eq!(rejection(StatusCode::PAYLOAD_TOO_LARGE), "rejected_413");
        assert_eq!(
            rejection(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            "rejected_415"
        );
        assert_eq!(rejection(StatusCode::BAD_REQUEST), "rejected_400");
        assert_eq!(rejection(StatusCode::SERVICE_UNAVAILABLE), UNAVAILABLE);
    }
}
