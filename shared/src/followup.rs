//! A follow-up and the rules of its leased lifecycle, without I/O: what a queue message carries
//! ([`FollowUp`]), what a sync mirrors ([`SyncTarget`]), the timers and how they nest (the AWS
//! SDK's retries and the queue's own timers included), the backoff, what a target's answer means,
//! what a sync sends ([`sync_step`]), and the `Idempotency-Key`. The store, the queue, the worker
//! and the configuration build on it; it depends on none of them.
//!
//! ```text
//! PENDING --claim (conditional: lease free, attempt+1)--> RUNNING --2xx--> DONE
//!    ^         ^                                             |--408/409/425/429/5xx/timeout--> PENDING (backoff)
//!    |         +--------- lease expired (crash) -------------+--attempts exhausted, 3xx, other 4xx--> FAILED
//!    +---- operator retry (conditional reset, generation+1) --+--target disabled, guard failed--> SKIPPED
//! ```
//!
//! Invariants kept here (docs/FOLLOWUPS.md, "Timers, and why they nest"):
//! - the timers nest with the AWS SDK's own: the claim, the entity read and the POST, each AWS
//!   call counted at its worst ([`SdkRetry::worst_call`]: every attempt timing out, with the
//!   retries' backoff), end before the lease does, so a lease never ends while its holder can
//!   still POST; the worker's worst path (those, then the dead-letter send or the backoff's
//!   visibility change, the mark and the settle or the sync's second write) ends before the
//!   worker's timeout, which ends before the queue's visibility, so a message never reappears
//!   while its claim is held;
//! - the retry horizon outlives a target down for days: the backoff keeps half of its exponential
//!   whatever the jitter, so even at the jitter's minimum the default schedule spans more than
//!   72 hours, and at its maximum (every wait at the cap, as a `Retry-After` may ask) it ends
//!   inside the queue's retention, so no message expires while attempts remain.
//! - for syncs (docs/FOLLOWUPS.md, "State syncs"): a state that may have reached the target
//!   counts as sent, so the baseline is skipped only when nothing was ever sent, and a sync's key
//!   follows the state sent (its sequence), not the entity's version.
//!
//! [`Timers::validate`] refuses anything else at start-up.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Receives before SQS itself moves a message to the dead-letter queue (also in
/// `template.yaml`): above the worker's attempt cap (each attempt is a receive of the same
/// message; `Timers::validate` keeps the cap below it), a net for malformed messages only. The
/// worker moves the FAILED ones there itself.
pub const MAX_RECEIVE_COUNT: u32 = 50;
/// Retention of the follow-up queue, seconds (14 days, the SQS maximum): the whole backoff
/// schedule fits inside, even at its longest (`Timers::longest_schedule`, 8.8 days by default).
pub const RETENTION_SECS: u32 = 1_209_600;
/// Visibility timeout of the follow-up queue, seconds: four times the worker's 45 s
/// timeout (a message never reappears while its claim is held).
pub const VISIBILITY_TIMEOUT_SECS: u32 = 180;
/// Dead-letter queue retention, seconds (14 days, the SQS maximum).
pub const DLQ_RETENTION_SECS: u32 = 1_209_600;

/// Longest a single AWS call attempt may take before it is abandoned (and retried).
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest an AWS call may take, retries included: well inside the receivers' 10 s Lambda timeout,
/// so a hung dependency becomes our 503 (the sender retries) rather than a Lambda timeout.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(6);
/// Attempts of one AWS call (the SDK's standard retry), the first included.
pub const AWS_MAX_ATTEMPTS: u32 = 3;
/// The SDK's first retry backoff (doubled per retry, jittered).
pub const AWS_INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// How every AWS client retries, as [`crate::config::aws`] configures them: the follow-up timers
/// count it ([`Timers::validate`]), so the two cannot drift apart.
pub const AWS_SDK: SdkRetry = SdkRetry {
    attempt_timeout: AWS_ATTEMPT_TIMEOUT,
    max_attempts: AWS_MAX_ATTEMPTS,
    initial_backoff: AWS_INITIAL_BACKOFF,
    operation_timeout: AWS_OPERATION_TIMEOUT,
};

/// The target state an entity's sync mirrors somewhere else, derived by the mapping from the
/// entity's state at this version. The worker POSTs it to the target of `action` only when it
/// differs from what was last sent (docs/FOLLOWUPS.md, "State syncs").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncTarget {
    /// The sync's name, e.g. `access` (one sync per entity).
    pub name: String,
    /// The action kind whose target receives this state, e.g. `provision_access`.
    pub action: String,
    /// The payload to POST.
    pub payload: serde_json::Value,
    /// True for the state a target already assumes of an entity it never heard of (e.g. "no
    /// access"): nothing is POSTed when this is desired and no state was ever *sent* (a POST
    /// that may have reached the target counts as sent, whatever its answer).
    #[serde(default)]
    pub baseline: bool,
}

/// One follow-up: what a queue message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FollowUp {
    /// An event action of one recorded event.
    Action {
        /// Event source.
        source: String,
        /// Event id.
        event_id: String,
        /// Action kind.
        action: String,
    },
    /// The sync of one entity.
    Sync {
        /// Source of the events that change the entity.
        source: String,
        /// Entity kind.
        entity_kind: String,
        /// Entity id.
        entity_id: String,
        /// Sync name.
        sync: String,
    },
}

impl FollowUp {
    /// The source of the events it belongs to.
    pub fn source(&self) -> &str {
        match self {
            Self::Action { source, .. } | Self::Sync { source, .. } => source,
        }
    }

    /// The action kind (event action) or sync name.
    pub fn kind(&self) -> &str {
        match self {
            Self::Action { action, .. } => action,
            Self::Sync { sync, .. } => sync,
        }
    }

    /// A short, log-safe name: `<source>:<event id>:<action>` or `<source>:<kind>/<id>:<sync>`.
    pub fn name(&self) -> String {
        match self {
            Self::Action {
                source,
                event_id,
                action,
            } => format!("{source}:{event_id}:{action}"),
            Self::Sync {
                source,
                entity_kind,
                entity_id,
                sync,
            } => format!("{source}:{entity_kind}/{entity_id}:{sync}"),
        }
    }
}

/// The shortest backoff.
pub const MIN_BACKOFF: Duration = Duration::from_secs(2);

/// The worker's Lambda timeout (`template.yaml`): a lease may not outlive it, and the worker's
/// worst path ([`WORST_PATH_CALLS`] AWS calls and one POST) must fit inside it.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(45);

/// The longest backoff SQS can hold a message for (`ChangeMessageVisibility`'s limit, 12 h).
pub const MAX_BACKOFF_CAP: Duration = Duration::from_secs(43_200);

/// AWS calls a claimant makes before its POST ends, at most: an event action's claim, the write
/// that lowers its item's check time when a sibling is due sooner, and its guard read; or a
/// sync's claim and its pre-POST mark (`EventStore::mark_sync_sent`).
pub const CALLS_BEFORE_POST: u32 = 3;

/// AWS calls on the worker's worst path, one message: for an event action the claim, the
/// lowering of its item's check time, the guard read, the dead-letter send (FAILED) or the
/// visibility change (backoff), the mark and the settle; for a sync the claim, the pre-POST mark,
/// the dead-letter send or visibility change, the mark, and, when its entity moved on meanwhile,
/// the second write and its re-enqueue.
pub const WORST_PATH_CALLS: u32 = 6;

/// How the AWS SDK clients retry (`shared/src/config.rs` configures them from
/// [`AWS_SDK`], the default here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkRetry {
    /// Longest one attempt may take.
    pub attempt_timeout: Duration,
    /// Attempts of one call, the first included.
    pub max_attempts: u32,
    /// The first retry's backoff, doubled per retry (the SDK jitters below it).
    pub initial_backoff: Duration,
    /// Longest one call may take, its retries included.
    pub operation_timeout: Duration,
}

impl SdkRetry {
    /// The longest one AWS call can take: every attempt timing out, with the longest backoff
    /// between them, but never more than the operation timeout.
    pub fn worst_call(&self) -> Duration {
        let mut total = self.attempt_timeout.saturating_mul(self.max_attempts);
        for retry in 1..self.max_attempts {
            total = total.saturating_add(
                self.initial_backoff
                    .saturating_mul(1u32 << (retry - 1).min(20)),
            );
        }
        total.min(self.operation_timeout)
    }
}

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
    /// How the AWS SDK clients retry each call.
    pub sdk: SdkRetry,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            action_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(25),
            visibility: Duration::from_secs(180),
            retention: Duration::from_secs(14 * 86_400),
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(6 * 3_600),
            max_attempts: 36,
            sdk: AWS_SDK,
        }
    }
}

/// Timers that do not nest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("follow-up timers do not nest: {0}")]
pub struct TimerError(String);

impl Timers {
    /// Checks that the timers nest with the SDK's own (see the module's invariants): the calls
    /// before the POST and the POST fit in the lease; `lease <= worker timeout < visibility`;
    /// the worker's worst path fits in its timeout; `base <= cap <= 12 h`; the attempts stay
    /// below the queue's `maxReceiveCount`; and the longest schedule, with one visibility timeout
    /// per attempt, fits in the queue's retention.
    pub fn validate(&self) -> Result<(), TimerError> {
        let call = self.sdk.worst_call();
        let before_post = call
            .saturating_mul(CALLS_BEFORE_POST)
            .saturating_add(self.action_timeout);
        if before_post > self.lease {
            return Err(TimerError(format!(
                "the claim, the entity read ({call:?} each at worst) and the POST ({:?}) take up \
                 to {before_post:?}, longer than the lease {:?}",
                self.action_timeout, self.lease
            )));
        }
        if self.lease > WORKER_TIMEOUT || WORKER_TIMEOUT >= self.visibility {
            return Err(TimerError(format!(
                "lease {:?} <= worker timeout {WORKER_TIMEOUT:?} < visibility {:?} does not hold",
                self.lease, self.visibility
            )));
        }
        let path = self.worst_path();
        if path > WORKER_TIMEOUT {
            return Err(TimerError(format!(
                "the worker's worst path ({WORST_PATH_CALLS} AWS calls of {call:?} and a POST) \
                 takes {path:?}, longer than its timeout {WORKER_TIMEOUT:?}"
            )));
        }
        if self.backoff_base.is_zero()
            || self.backoff_cap < self.backoff_base
            || self.backoff_cap > MAX_BACKOFF_CAP
        {
            return Err(TimerError(format!(
                "backoff base must be > 0 and <= its cap, and the cap at most {MAX_BACKOFF_CAP:?} \
                 (SQS's visibility limit)"
            )));
        }
        // Each attempt is one more receive of the same message: SQS's own redrive must not take
        // it while attempts remain.
        if self.max_attempts >= MAX_RECEIVE_COUNT {
            return Err(TimerError(format!(
                "{} attempts reach the queue's maxReceiveCount {}",
                self.max_attempts, MAX_RECEIVE_COUNT
            )));
        }
        let longest = self.longest_schedule();
        if longest > self.retention {
            return Err(TimerError(format!(
                "{} attempts take up to {longest:?}, longer than the queue retention {:?}",
                self.max_attempts, self.retention
            )));
        }
        Ok(())
    }

    /// The worker's worst path for one message: [`WORST_PATH_CALLS`] AWS calls at their worst
    /// and one POST.
    pub fn worst_path(&self) -> Duration {
        self.sdk
            .worst_call()
            .saturating_mul(WORST_PATH_CALLS)
            .saturating_add(self.action_timeout)
    }

    /// The shortest time from a follow-up's first failed attempt to its last attempt, every
    /// wait at the jitter's minimum and no `Retry-After`: how long a target may be down before
    /// a follow-up is FAILED.
    pub fn shortest_horizon(&self) -> Duration {
        (1..self.max_attempts).fold(Duration::ZERO, |sum, a| {
            sum.saturating_add(self.backoff(a, None, 0.0))
        })
    }

    /// The longest a follow-up's messages may take through all its attempts: every wait at the
    /// cap (a `Retry-After` may ask for it) and one visibility timeout per attempt (a message
    /// whose backoff could not be set reappears after it).
    pub fn longest_schedule(&self) -> Duration {
        self.backoff_cap
            .saturating_mul(self.max_attempts.saturating_sub(1))
            .saturating_add(self.visibility.saturating_mul(self.max_attempts))
    }

    /// The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed:
    /// exponential from the base, capped, keeping at least half of it whatever the jitter
    /// (`exp x (0.5 + 0.5 x jitter)`, `jitter` in [0, 1)), at least two seconds (a backoff holds
    /// its follow-up until one second before its message reappears, so every retry is at least a
    /// second after the last). A target's `Retry-After` (capped) is honoured as "not sooner":
    /// it may lengthen the wait, never shorten the schedule.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.backoff_cap);
        let own = exp
            .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
            .max(MIN_BACKOFF);
        match retry_after {
            Some(after) => after.clamp(MIN_BACKOFF, self.backoff_cap).max(own),
            None => own,
        }
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

/// A follow-up's identity and attempt series, read back from its `Idempotency-Key`
/// ([`parse_key`]): what a target (or a test of one) learns from the key alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParts {
    /// The follow-up: an event action, or an entity's sync (`action` / `sync` as written in
    /// the key).
    pub followup: FollowUp,
    /// A sync's sequence: the state sent (`None` for an event action).
    pub seq: Option<i64>,
    /// The operator-retry generation.
    pub generation: i64,
}

/// An `Idempotency-Key` that neither [`action_key`] nor [`sync_key`] could have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a follow-up's Idempotency-Key: {0}")]
pub struct KeyError(&'static str);

/// Reads an `Idempotency-Key` back into its parts: the inverse of [`action_key`] and
/// [`sync_key`]. The source is what precedes the first `:`, the generation and the action (or
/// sync name) what follow the last two; what lies between is a sync's `<kind>/<id>#<seq>` when
/// it has a `/` and ends in `#<digits>`, else the event id (which may itself hold `:`, as a
/// `sha256:` id does).
pub fn parse_key(key: &str) -> Result<KeyParts, KeyError> {
    let (source, rest) = key.split_once(':').ok_or(KeyError("no source"))?;
    let (rest, generation) = rest.rsplit_once(':').ok_or(KeyError("no generation"))?;
    let (head, action) = rest.rsplit_once(':').ok_or(KeyError("no action"))?;
    let generation: i64 = generation
        .parse()
        .map_err(|_| KeyError("the generation is not a number"))?;
    if source.is_empty() || head.is_empty() || action.is_empty() {
        return Err(KeyError("an empty part"));
    }
    let sync = head.rsplit_once('#').and_then(|(entity, seq)| {
        let (kind, id) = entity.split_once('/')?;
        let digits = !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit());
        (digits && !kind.is_empty() && !id.is_empty()).then_some((kind, id, seq.parse().ok()?))
    });
    Ok(match sync {
        Some((kind, id, seq)) => KeyParts {
            followup: FollowUp::Sync {
                source: source.to_owned(),
                entity_kind: kind.to_owned(),
                entity_id: id.to_owned(),
                sync: action.to_owned(),
            },
            seq: Some(seq),
            generation,
        },
        None => KeyParts {
            followup: FollowUp::Action {
                source: source.to_owned(),
                event_id: head.to_owned(),
                action: action.to_owned(),
            },
            seq: None,
            generation,
        },
    })
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
    fn keys_read_back_into_what_wrote_them() -> Result<(), KeyError> {
        let action = parse_key(&action_key("stripe", "evt_1", "receipt", 2))?;
        assert_eq!(
            action,
            KeyParts {
                followup: FollowUp::Action {
                    source: "stripe".into(),
                    event_id: "evt_1".into(),
                    action: "receipt".into(),
                },
                seq: None,
                generation: 2,
            }
        );
        let sync = parse_key(&sync_key("stripe", "subscription", "sub_1", 7, "access", 0))?;
        assert_eq!(
            sync,
            KeyParts {
                followup: FollowUp::Sync {
                    source: "stripe".into(),
                    entity_kind: "subscription".into(),
                    entity_id: "sub_1".into(),
                    sync: "access".into(),
                },
                seq: Some(7),
                generation: 0,
            }
        );
        // An event id holding `:` (a quarantined body's `sha256:` id) or a `/` without a
        // sequence stays an event id.
        for id in ["sha256:ab12", "a/b", "a/b#x", "x#3"] {
            let parts = parse_key(&action_key("users", id, "analytics", 1))?;
            assert_eq!(
                parts.followup,
                FollowUp::Action {
                    source: "users".into(),
                    event_id: id.into(),
                    action: "analytics".into(),
                },
                "{id}"
            );
        }
        Ok(())
    }

    #[test]
    fn keys_no_writer_could_have_written_are_refused() {
        for key in [
            "",
            "-",
            "stripe",
            "stripe:evt_1",
            "stripe:evt_1:receipt",
            "stripe:evt_1:receipt:x",
            ":evt_1:receipt:0",
            "stripe::receipt:0",
            "stripe:evt_1::0",
        ] {
            assert!(parse_key(key).is_err(), "{key:?}");
        }
    }

    #[test]
    fn default_timers_nest() {
        assert_eq!(Timers::default().validate(), Ok(()));
        let t = Timers {
            lease: Duration::from_secs(5),
            ..Timers::default()
        };
        assert!(t.validate().is_err(), "timeout must be < lease");
        let t = Timers {
            lease: WORKER_TIMEOUT + Duration::from_secs(1),
            ..Timers::default()
        };
        assert!(t.validate().is_err(), "lease must be <= worker timeout");
        let t = Timers {
            visibility: WORKER_TIMEOUT,
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
        let t = Timers {
            max_attempts: 50,
            backoff_cap: Duration::from_secs(60),
            ..Timers::default()
        };
        assert!(t.validate().is_err(), "below SQS's own redrive");
        let t = Timers {
            backoff_cap: Duration::from_secs(43_201),
            max_attempts: 8,
            ..Timers::default()
        };
        assert!(t.validate().is_err(), "the cap is at most SQS's 12 h");
    }

    #[test]
    fn the_sdk_retries_count_in_the_lease_and_the_worker_timeout() {
        let sdk = AWS_SDK;
        // 3 attempts x 2 s + 1 s + 2 s of backoff = 9 s, capped by the 6 s operation timeout.
        assert_eq!(sdk.worst_call(), Duration::from_secs(6));
        let uncapped = SdkRetry {
            operation_timeout: Duration::from_secs(60),
            ..sdk
        };
        assert_eq!(uncapped.worst_call(), Duration::from_secs(9));
        let t = Timers::default();
        // Claim + lowering + guard read (or claim + pre-POST mark) + POST: 3 x 6 + 5 = 23 s <= 25 s.
        assert!(sdk.worst_call() * CALLS_BEFORE_POST + t.action_timeout <= t.lease);
        // Claim, pre-POST mark, POST, DLQ send, mark, second write, re-enqueue: 6 x 6 + 5 = 41 s <= 45 s.
        assert_eq!(t.worst_path(), Duration::from_secs(41));
        assert!(t.worst_path() <= WORKER_TIMEOUT);
        // The first 30 s worker timeout could not hold it, nor 40 s once syncs mark before a POST.
        assert!(t.worst_path() > Duration::from_secs(40));
        // SDK clients that retry more would not fit: the timers refuse them.
        let t = Timers {
            sdk: SdkRetry {
                max_attempts: 10,
                operation_timeout: Duration::from_secs(20),
                ..sdk
            },
            ..Timers::default()
        };
        assert!(t.validate().is_err());
        let t = Timers {
            action_timeout: Duration::from_secs(14),
            ..Timers::default()
        };
        assert!(t.validate().is_err(), "6 + 6 + 14 s > 25 s lease");
    }

    #[test]
    fn the_default_horizon_outlives_a_target_down_for_three_days() {
        let t = Timers::default();
        let hours = |d: Duration| d.as_secs_f64() / 3_600.0;
        let sum = |jitter: f64| {
            (1..t.max_attempts).fold(Duration::ZERO, |s, a| s + t.backoff(a, None, jitter))
        };
        let (min, avg, max) = (sum(0.0), sum(0.5), sum(0.999_999));
        assert_eq!(min, t.shortest_horizon());
        // 36 attempts, 35 waits: 30 s doubling to 6 h, halved at the jitter's minimum.
        assert!(hours(min) >= 72.0, "min {:.1} h", hours(min));
        assert_eq!(min.as_secs(), 285_345, "79.3 h");
        assert_eq!(avg.as_secs(), 428_017, "118.9 h");
        assert_eq!(max.as_secs(), 570_689, "158.5 h");
        // At its longest (every wait at the cap, one visibility per attempt) it ends inside
        // the queue's 14-day retention: 35 x 6 h + 36 x 180 s = 762,480 s (8.8 days).
        assert_eq!(t.longest_schedule().as_secs(), 762_480);
        assert!(max + t.visibility * t.max_attempts < t.retention);
        assert!(t.longest_schedule() < t.retention);
        assert_eq!(t.retention.as_secs(), 1_209_600);
        // The queues the code creates (locally, in tests) are the ones the timers count.
        assert_eq!(t.retention.as_secs(), u64::from(RETENTION_SECS));
        assert_eq!(t.visibility.as_secs(), u64::from(VISIBILITY_TIMEOUT_SECS));
    }

    #[test]
    fn backoff_doubles_is_capped_keeps_half_and_honours_retry_after() {
        let t = Timers::default();
        assert_eq!(t.backoff(1, None, 0.999_999).as_secs(), 29);
        assert_eq!(t.backoff(1, None, 0.0).as_secs(), 15);
        assert_eq!(t.backoff(2, None, 0.999_999).as_secs(), 59);
        assert_eq!(t.backoff(2, None, 0.0).as_secs(), 30);
        assert_eq!(t.backoff(30, None, 0.999_999).as_secs(), 21_599);
        assert_eq!(t.backoff(30, None, 0.0).as_secs(), 10_800);
        let local = Timers {
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(30),
            ..Timers::default()
        };
        assert_eq!(local.backoff(1, None, 0.0), MIN_BACKOFF);
        assert_eq!(
            t.backoff(1, Some(Duration::from_secs(120)), 0.5),
            Duration::from_secs(120)
        );
        assert_eq!(
            t.backoff(1, Some(Duration::from_secs(86_400)), 0.5),
            t.backoff_cap
        );
        // A short Retry-After never shortens the schedule.
        assert_eq!(
            t.backoff(10, Some(Duration::from_secs(1)), 0.0),
            t.backoff(10, None, 0.0)
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
