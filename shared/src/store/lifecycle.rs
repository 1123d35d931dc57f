//! The rules of a follow-up's leased lifecycle, without I/O: the timers and how they nest, the
//! backoff, what a target's answer means, what a sync sends ([`sync_step`]), and the
//! `Idempotency-Key`.
//!
//! ```text
//! PENDING --claim (conditional: lease free, attempt+1)--> RUNNING --2xx--> DONE
//!    ^         ^                                             |--408/409/425/429/5xx/timeout--> PENDING (backoff)
//!    |         +--------- lease expired (crash) -------------+--attempts exhausted, 3xx, other 4xx--> FAILED
//!    +---- operator retry (conditional reset, generation+1) --+--target disabled, guard failed--> SKIPPED
//! ```
//!
//! Invariant kept here: the timers nest, `action timeout < lease <= worker timeout < queue
//! visibility`, and the whole backoff schedule fits well inside the queue's retention, so a
//! lease never ends while its holder can still POST, a message never reappears while its claim
//! is held, and no message expires while attempts remain. [`Timers::validate`] refuses anything
//! else at start-up.
//!
//! And for syncs (docs/FOLLOWUPS.md, "State syncs"): a state that may have reached the target
//! counts as sent, so the baseline is skipped only when nothing was ever sent, and a sync's key
//! follows the state sent (its sequence), not the entity's version.

use std::time::Duration;

use super::SyncTarget;

/// The shortest backoff.
pub const MIN_BACKOFF: Duration = Duration::from_secs(2);

/// The worker's Lambda timeout (`template.yaml`): a lease may not outlive it.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(30);

/// The follow-up lifecycle's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Timeout of one POST to a target.
    pub action_timeout: Duration,
    /// How long a claim holds the follow-up.
    pub lease: Duration,
    /// The follow-up queue's visibility timeout.
    pub visibility: Duration,
    /// The follow-up queue's message retention.
    pub retention: Duration,
    /// First backoff; doubled per attempt.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_cap: Duration,
    /// Attempts before a transiently failing follow-up is FAILED.
    pub max_attempts: u32,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            action_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(25),
            visibility: Duration::from_secs(180),
            retention: Duration::from_secs(4 * 86_400),
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(3_600),
            max_attempts: 8,
        }
    }
}

/// Timers that do not nest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("follow-up timers do not nest: {0}")]
pub struct TimerError(String);

impl Timers {
    /// Checks `action timeout < lease <= worker timeout < visibility` and that the attempts'
    /// backoff fits in half the retention.
    pub fn validate(&self) -> Result<(), TimerError> {
        if self.action_timeout >= self.lease {
            return Err(TimerError(format!(
                "action timeout {:?} must be shorter than the lease {:?}",
                self.action_timeout, self.lease
            )));
        }
        if self.lease > WORKER_TIMEOUT || WORKER_TIMEOUT >= self.visibility {
            return Err(TimerError(format!(
                "lease {:?} <= worker timeout {WORKER_TIMEOUT:?} < visibility {:?} does not hold",
                self.lease, self.visibility
            )));
        }
        if self.backoff_base.is_zero() || self.backoff_cap < self.backoff_base {
            return Err(TimerError("backoff base must be > 0 and <= its cap".into()));
        }
        let worst = self.backoff_cap.saturating_mul(self.max_attempts);
        if worst.saturating_mul(2) > self.retention {
            return Err(TimerError(format!(
                "{} attempts x {:?} backoff exceed half the queue retention {:?}",
                self.max_attempts, self.backoff_cap, self.retention
            )));
        }
        Ok(())
    }

    /// The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed: the
    /// target's `Retry-After` when it gave one (capped), else exponential with full jitter
    /// (`jitter` in [0, 1)), at least two seconds (a backoff holds its follow-up until one second
    /// before its message reappears, so every retry is at least a second after the last).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(after) = retry_after {
            return after.clamp(MIN_BACKOFF, self.backoff_cap);
        }
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.backoff_cap);
        exp.mul_f64(jitter.clamp(0.0, 1.0)).max(MIN_BACKOFF)
    }
}

/// What a target's answer means for the follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Done,
    /// Try again later: 408, 409 (still processing the same key), 425, 429, 5xx, or no answer.
    Retry,
    /// Never again without an operator: 3xx (redirects are not followed: a POST must not become
    /// a GET) and every other 4xx.
    Fail,
}

/// The verdict on HTTP status `status`.
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        408 | 409 | 425 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Fail,
    }
}

/// Parses `Retry-After`: delta seconds, or an HTTP date relative to `now_secs`.
pub fn retry_after(value: &str, now_secs: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate_secs(value)?;
    Some(Duration::from_secs(u64::try_from(at - now_secs).ok()?))
}

/// Seconds since the epoch of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_secs(value: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(value).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// The `Idempotency-Key` of an event action: `<source>:<event id>:<action>:<generation>`.
pub fn action_key(source: &str, event_id: &str, action: &str, generation: i64) -> String {
    format!("{source}:{event_id}:{action}:{generation}")
}

/// The `Idempotency-Key` of a sync: `<source>:<kind>/<id>#<seq>:<sync>:<generation>`. The
/// sequence moves only when the state sent changes ([`sync_step`]): a repeat of one state (a
/// retry after an ambiguous answer, or after a metadata-only change of the entity) carries the
/// same key, a new state (a re-subscribe after a revoke included) a new one.
pub fn sync_key(
    source: &str,
    kind: &str,
    id: &str,
    seq: i64,
    sync: &str,
    generation: i64,
) -> String {
    format!("{source}:{kind}/{id}#{seq}:{sync}:{generation}")
}

/// What a claimed sync does next ([`sync_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStep {
    /// The target has the desired state (acknowledged), or it is the baseline and no state was
    /// ever sent: DONE without a POST.
    UpToDate,
    /// POST the desired state. `advance`: it differs from the state last sent, so it is
    /// recorded as sent (a new sequence, a new key) before the POST; otherwise it repeats the
    /// last sent state under the same key.
    Post {
        /// True when the state differs from the one last sent.
        advance: bool,
    },
}

/// The sync rule: compare the desired state with what was last *maybe sent* (`sent`, or for a
/// record written before `sent` existed, `synced`), never only with what was acknowledged. The
/// baseline is skipped only when no state was ever sent; a state sent but not acknowledged is
/// sent again under the same key.
pub fn sync_step(
    desired: &SyncTarget,
    synced: Option<&SyncTarget>,
    sent: Option<&SyncTarget>,
) -> SyncStep {
    match sent.or(synced) {
        None if desired.baseline => SyncStep::UpToDate,
        None => SyncStep::Post { advance: true },
        Some(last) if last == desired => {
            if synced == Some(desired) {
                SyncStep::UpToDate
            } else {
                SyncStep::Post { advance: false }
            }
        }
        Some(_) => SyncStep::Post { advance: true },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timers_nest() {
        assert_eq!(Timers::default().validate(), Ok(()));
        let t = Timers {
            lease: Duration::from_secs(5),
            ..Timers::default()
        };
        assert!(t.validate().is_err(), "timeout must be < lease");
        let t = Timers {
            lease: Duration::from_secs(31),
            ..Timers::default()
        };
        assert!(t.validate().is_err(), "lease must be <= worker timeout");
        let t = Timers {
            visibility: Duration::from_secs(30),
            ..Timers::default()
        };
        assert!(t.validate().is_err(), "worker timeout must be < visibility");
        let t = Timers {
            max_attempts: 60,
            ..Timers::default()
        };
        assert!(
            t.validate().is_err(),
            "attempts x backoff must fit the retention"
        );
    }

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        let t = Timers::default();
        assert_eq!(t.backoff(1, None, 0.999_999).as_secs(), 29);
        assert_eq!(t.backoff(2, None, 0.999_999).as_secs(), 59);
        assert_eq!(t.backoff(30, None, 0.999_999).as_secs(), 3_599);
        assert_eq!(t.backoff(3, None, 0.0), MIN_BACKOFF);
        assert_eq!(
            t.backoff(1, Some(Duration::from_secs(120)), 0.5),
            Duration::from_secs(120)
        );
        assert_eq!(
            t.backoff(1, Some(Duration::from_secs(86_400)), 0.5),
            t.backoff_cap
        );
    }

    #[test]
    fn verdicts() {
        for s in [200, 201, 204] {
            assert_eq!(verdict(s), Verdict::Done);
        }
        for s in [408, 409, 425, 429, 500, 502, 503] {
            assert_eq!(verdict(s), Verdict::Retry, "{s}");
        }
        for s in [301, 302, 307, 400, 401, 403, 404, 410, 422] {
            assert_eq!(verdict(s), Verdict::Fail, "{s}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(retry_after("120", 0), Some(Duration::from_secs(120)));
        let now = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:48:37 GMT", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn keys() {
        assert_eq!(
            action_key("stripe", "evt_1", "receipt", 0),
            "stripe:evt_1:receipt:0"
        );
        assert_eq!(
            sync_key("stripe", "subscription", "sub_1", 7, "access", 2),
            "stripe:subscription/sub_1#7:access:2"
        );
    }

    fn target(action: &str, baseline: bool) -> SyncTarget {
        SyncTarget {
            name: "access".into(),
            action: action.into(),
            payload: serde_json::json!({"a": action}),
            baseline,
        }
    }

    #[test]
    fn a_sync_compares_with_what_was_maybe_sent() {
        let grant = target("provision_access", false);
        let revoke = target("revoke_access", true);
        let post = |advance| SyncStep::Post { advance };
        // Nothing ever sent: the baseline is skipped, anything else is sent.
        assert_eq!(sync_step(&revoke, None, None), SyncStep::UpToDate);
        assert_eq!(sync_step(&grant, None, None), post(true));
        // A grant sent but never acknowledged (timeout, 5xx, lost mark): a revoke is sent...
        assert_eq!(sync_step(&revoke, None, Some(&grant)), post(true));
        // ...and the grant itself is repeated under the same key.
        assert_eq!(sync_step(&grant, None, Some(&grant)), post(false));
        // Acknowledged: up to date; a change back is a new state.
        assert_eq!(
            sync_step(&grant, Some(&grant), Some(&grant)),
            SyncStep::UpToDate
        );
        assert_eq!(sync_step(&revoke, Some(&grant), Some(&grant)), post(true));
        // A revoke sent after an acknowledged grant, unanswered: a re-grant is a new state.
        assert_eq!(sync_step(&grant, Some(&grant), Some(&revoke)), post(true));
        // Records written before `sent` existed: what was acknowledged was sent.
        assert_eq!(sync_step(&grant, Some(&grant), None), SyncStep::UpToDate);
        assert_eq!(sync_step(&revoke, Some(&grant), None), post(true));
    }
}
