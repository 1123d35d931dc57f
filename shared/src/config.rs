//! Typed configuration, read once per cold start from the environment.
//!
//! Every function fails fast at start-up with an error that names the variable, instead of failing
//! on the first request. Reading goes through a lookup function so tests never touch the process
//! environment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::allowlist::SourceAllowlist;
use crate::clock::SharedClock;
use crate::secret::Secrets;
use crate::secrets::{
    DEFAULT_MAX_AGE_SECS, DEFAULT_REFRESH_INTERVAL_SECS, RefreshPolicy, RefreshingVerifier,
    SecretsError, SecretsManagerFetch,
};
use crate::verify::DEFAULT_TOLERANCE_SECS;
use crate::verify::{Scheme, Verifier};

/// Comma-separated signing secrets (rotation: old and new at once), for local use.
pub const WEBHOOK_SECRETS: &str = "WEBHOOK_SECRETS";
/// Id or ARN of a Secrets Manager secret holding the signing secrets (AWS).
pub const WEBHOOK_SECRETS_ID: &str = "WEBHOOK_SECRETS_ID";
/// Least seconds between two re-reads of [`WEBHOOK_SECRETS_ID`].
pub const WEBHOOK_SECRETS_REFRESH_SECS: &str = "WEBHOOK_SECRETS_REFRESH_SECS";
/// Greatest age in seconds of the cached [`WEBHOOK_SECRETS_ID`] value before it is re-read.
pub const WEBHOOK_SECRETS_MAX_AGE_SECS: &str = "WEBHOOK_SECRETS_MAX_AGE_SECS";
/// Networks a receiver accepts requests from (CIDR blocks or addresses, comma-separated);
/// unset or empty: any source.
pub const ALLOWED_SOURCE_CIDRS: &str = "ALLOWED_SOURCE_CIDRS";
/// Signature timestamp tolerance in seconds, past and future.
pub const SIGNATURE_TOLERANCE_SECS: &str = "SIGNATURE_TOLERANCE_SECS";
/// Largest accepted body, bytes.
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
/// The DynamoDB table.
pub const TABLE_NAME: &str = "TABLE_NAME";
/// The SQS follow-up queue URL.
pub const FOLLOWUP_QUEUE_URL: &str = "FOLLOWUP_QUEUE_URL";
/// Days an event record is kept (TTL).
pub const EVENT_RETENTION_DAYS: &str = "EVENT_RETENTION_DAYS";
/// Timeout of one outbound action call, milliseconds.
pub const ACTION_TIMEOUT_MS: &str = "ACTION_TIMEOUT_MS";
/// Prefix of per-kind action target URLs: `ACTION_<KIND>_URL`.
pub const ACTION_URL_PREFIX: &str = "ACTION_";
/// Age in seconds after which a still-pending outbox is re-enqueued.
pub const RECONCILE_GRACE_SECS: &str = "RECONCILE_GRACE_SECS";
/// Most items the reconciler looks at per pending-index shard and run: a safety cap behind
/// [`RECONCILE_BUDGET_SECS`].
pub const RECONCILE_MAX_EVENTS: &str = "RECONCILE_MAX_EVENTS";
/// How long one reconciler run keeps starting new pages, seconds (well inside its Lambda
/// timeout in `template.yaml`).
pub const RECONCILE_BUDGET_SECS: &str = "RECONCILE_BUDGET_SECS";
/// The SQS dead-letter queue URL: where the worker moves a follow-up it marks FAILED.
pub const FOLLOWUP_DLQ_URL: &str = "FOLLOWUP_DLQ_URL";
/// How long a worker's claim holds a follow-up, seconds (default 25; at most the worker's 45 s
/// timeout, and long enough for the claim, the entity read and the POST).
pub const FOLLOWUP_LEASE_SECS: &str = "FOLLOWUP_LEASE_SECS";
/// First backoff after a transient failure, seconds (default 30), doubled per attempt.
pub const FOLLOWUP_BACKOFF_BASE_SECS: &str = "FOLLOWUP_BACKOFF_BASE_SECS";
/// Longest backoff, seconds (default 21600, 6 h; at most SQS's 43200).
pub const FOLLOWUP_BACKOFF_CAP_SECS: &str = "FOLLOWUP_BACKOFF_CAP_SECS";
/// Attempts before a transiently failing follow-up is FAILED (default 36: more than 72 h of
/// backoff even at the jitter's minimum; docs/FOLLOWUPS.md, "Timers").
pub const FOLLOWUP_MAX_ATTEMPTS: &str = "FOLLOWUP_MAX_ATTEMPTS";
/// The value of `ACTION_<KIND>_URL` that turns a kind off: its follow-ups end SKIPPED.
pub const DISABLED: &str = "disabled";

/// Default for [`MAX_BODY_BYTES`]: 256 KiB, far above any provider's event size.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default for [`EVENT_RETENTION_DAYS`]: longer than any provider's retry window.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {var} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Why (never the value itself: it may be a secret).
        reason: String,
    },
}

/// Where configuration values come from: the process environment, or a map in tests.
pub trait Source {
    /// The value of `name`, if set and not blank.
    fn get(&self, name: &str) -> Option<String>;
    /// Every variable whose name starts with `prefix`.
    fn with_prefix(&self, prefix: &str) -> Vec<(String, String)>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
    fn with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        std::env::vars()
            .filter(|(k, _)| k.starts_with(prefix))
            .collect()
    }
}

impl Source for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }
    fn with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn required(src: &dyn Source, var: &'static str) -> Result<String, ConfigError> {
    src.get(var).ok_or(ConfigError::Missing(var))
}

fn number<T: std::str::FromStr>(
    src: &dyn Source,
    var: &'static str,
    default: T,
    valid: impl Fn(&T) -> bool,
) -> Result<T, ConfigError> {
    match src.get(var) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<T>() {
            Ok(v) if valid(&v) => Ok(v),
            _ => Err(ConfigError::Invalid {
                var,
                reason: format!("expected a positive whole number, got {raw:?}"),
            }),
        },
    }
}

/// What every function that touches the store needs.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// [`TABLE_NAME`].
    pub table_name: String,
    /// [`EVENT_RETENTION_DAYS`].
    pub retention_days: i64,
    /// [`RECONCILE_GRACE_SECS`], default 300: how long a pending follow-up may wait for its
    /// message before the reconciler looks at it.
    pub grace_secs: i64,
}

impl StoreConfig {
    /// Reads the store configuration.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required(src, TABLE_NAME)?,
            retention_days: number(src, EVENT_RETENTION_DAYS, DEFAULT_RETENTION_DAYS, |d| {
                *d > 0
            })?,
            grace_secs: number(src, RECONCILE_GRACE_SECS, 300, |g| *g >= 0)?,
        })
    }

    /// The event store this configuration names, on `client`.
    pub fn store(
        &self,
        client: aws_sdk_dynamodb::Client,
        clock: crate::clock::SharedClock,
    ) -> crate::store::EventStore {
        crate::store::EventStore::new(client, &self.table_name, self.retention_days, clock)
            .with_grace(Duration::from_secs(self.grace_secs.unsigned_abs()))
    }
}

/// Where a receiver's signing secrets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsConfig {
    /// [`WEBHOOK_SECRETS`]: fixed for the life of the process (local use).
    Fixed(Secrets),
    /// [`WEBHOOK_SECRETS_ID`]: read from Secrets Manager and re-read per the policy.
    SecretsManager {
        /// The secret's name or ARN.
        secret_id: String,
        /// [`WEBHOOK_SECRETS_REFRESH_SECS`] and [`WEBHOOK_SECRETS_MAX_AGE_SECS`].
        policy: RefreshPolicy,
    },
}

impl SecretsConfig {
    /// Builds the verifier this configuration asks for: fixed secrets, or Secrets Manager through
    /// the SDK configuration `sdk` (read now, and re-read per the policy).
    pub async fn verifier(
        &self,
        scheme: Scheme,
        tolerance_secs: i64,
        sdk: &aws_config::SdkConfig,
        clock: SharedClock,
    ) -> Result<RefreshingVerifier, SecretsError> {
        match self {
            Self::Fixed(secrets) => Ok(Verifier::new(scheme, secrets.clone(), tolerance_secs)?
                .with_clock(clock)
                .into()),
            Self::SecretsManager { secret_id, policy } => {
                let client = aws_sdk_secretsmanager::Client::new(sdk);
                let fetch = Arc::new(SecretsManagerFetch::new(client, secret_id.clone()));
                RefreshingVerifier::load(scheme, tolerance_secs, fetch, *policy, clock).await
            }
        }
    }

    /// Reads exactly one of [`WEBHOOK_SECRETS_ID`] and [`WEBHOOK_SECRETS`].
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        match (src.get(WEBHOOK_SECRETS_ID), src.get(WEBHOOK_SECRETS)) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid {
                var: WEBHOOK_SECRETS_ID,
                reason: format!("set {WEBHOOK_SECRETS_ID} or {WEBHOOK_SECRETS}, not both"),
            }),
            (None, None) => Err(ConfigError::Missing(
                "WEBHOOK_SECRETS_ID (or WEBHOOK_SECRETS for local use)",
            )),
            (Some(id), None) => {
                let min_interval_secs = number(
                    src,
                    WEBHOOK_SECRETS_REFRESH_SECS,
                    DEFAULT_REFRESH_INTERVAL_SECS,
                    |s| *s > 0,
                )?;
                let max_age_secs = number(
                    src,
                    WEBHOOK_SECRETS_MAX_AGE_SECS,
                    DEFAULT_MAX_AGE_SECS,
                    |s| *s > 0,
                )?;
                Ok(Self::SecretsManager {
                    secret_id: id.trim().to_owned(),
                    policy: RefreshPolicy {
                        min_interval_secs,
                        max_age_secs,
                    },
                })
            }
            (None, Some(list)) => {
                Secrets::parse_list(&list)
                    .map(Self::Fixed)
                    .ok_or(ConfigError::Invalid {
                        var: WEBHOOK_SECRETS,
                        reason: "no non-empty secret in the comma-separated list".into(),
                    })
            }
        }
    }
}

/// Configuration of a webhook receiver function.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// [`WEBHOOK_SECRETS_ID`] or [`WEBHOOK_SECRETS`].
    pub secrets: SecretsConfig,
    /// [`SIGNATURE_TOLERANCE_SECS`], default 300.
    pub tolerance_secs: i64,
    /// [`MAX_BODY_BYTES`], default 256 KiB.
    pub max_body_bytes: usize,
    /// Table and retention.
    pub store: StoreConfig,
    /// [`FOLLOWUP_QUEUE_URL`].
    pub queue_url: String,
    /// [`ALLOWED_SOURCE_CIDRS`]; `None`: any source.
    pub allowed_sources: Option<SourceAllowlist>,
}

impl ReceiverConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Env)
    }

    /// Reads from any source.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            secrets: SecretsConfig::from_source(src)?,
            tolerance_secs: number(src, SIGNATURE_TOLERANCE_SECS, DEFAULT_TOLERANCE_SECS, |t| {
                *t > 0
            })?,
            max_body_bytes: number(src, MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, |b| *b > 0)?,
            store: StoreConfig::from_source(src)?,
            queue_url: required(src, FOLLOWUP_QUEUE_URL)?,
            allowed_sources: match src.get(ALLOWED_SOURCE_CIDRS) {
                None => None,
                Some(list) => SourceAllowlist::parse(&list).map_err(|e| ConfigError::Invalid {
                    var: ALLOWED_SOURCE_CIDRS,
                    reason: e.to_string(),
                })?,
            },
        })
    }
}

/// Where an action kind's follow-ups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// POST to this URL.
    Url(url::Url),
    /// Turned off (`disabled`): follow-ups end SKIPPED, retryable once a target is set.
    Disabled,
}

/// Configuration of the follow-up worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Table and retention.
    pub store: StoreConfig,
    /// Target per action kind (lower-case), from `ACTION_<KIND>_URL`: one for every kind the
    /// receivers declare (the registry's union, passed in), so that no kind is skipped silently.
    pub targets: BTreeMap<String, Target>,
    /// The lifecycle's timers ([`ACTION_TIMEOUT_MS`], [`FOLLOWUP_LEASE_SECS`], backoff, attempts);
    /// checked to nest.
    pub timers: crate::followup::Timers,
    /// [`FOLLOWUP_QUEUE_URL`]: where a sync that must run again is enqueued.
    pub queue_url: String,
    /// [`FOLLOWUP_DLQ_URL`]: where FAILED follow-ups go.
    pub dlq_url: String,
}

impl WorkerConfig {
    /// Reads the process environment; `kinds` are the action kinds the receivers emit.
    pub fn from_env(kinds: &BTreeSet<&str>) -> Result<Self, ConfigError> {
        Self::from_source(&Env, kinds)
    }

    /// Reads from any source. Every kind in `kinds` needs `ACTION_<KIND>_URL`: an http(s) URL
    /// or `disabled`.
    pub fn from_source(src: &dyn Source, kinds: &BTreeSet<&str>) -> Result<Self, ConfigError> {
        let mut targets = BTreeMap::new();
        for (name, value) in src.with_prefix(ACTION_URL_PREFIX) {
            let Some(kind) = name
                .strip_prefix(ACTION_URL_PREFIX)
                .and_then(|k| k.strip_suffix("_URL"))
            else {
                continue;
            };
            let value = value.trim();
            let target = if value.eq_ignore_ascii_case(DISABLED) {
                Target::Disabled
            } else {
                url::Url::parse(value)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .map(Target::Url)
                    .ok_or_else(|| ConfigError::Invalid {
                        var: "ACTION_<KIND>_URL",
                        reason: format!("{name} is neither an http(s) URL nor `{DISABLED}`"),
                    })?
            };
            targets.insert(kind.to_ascii_lowercase(), target);
        }
        let missing: Vec<String> = kinds
            .iter()
            .filter(|k| !targets.contains_key(**k))
            .map(|k| format!("{ACTION_URL_PREFIX}{}_URL", k.to_ascii_uppercase()))
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::Invalid {
                var: "ACTION_<KIND>_URL",
                reason: format!(
                    "no target for {} (set an https:// URL, or `{DISABLED}` to skip the kind)",
                    missing.join(", ")
                ),
            });
        }
        let secs = |var, default: u64| number(src, var, default, |v: &u64| *v > 0);
        let d = crate::followup::Timers::default();
        let timers = crate::followup::Timers {
            action_timeout: Duration::from_millis(number(
                src,
                ACTION_TIMEOUT_MS,
                u64::try_from(d.action_timeout.as_millis()).unwrap_or(u64::MAX),
                |t| *t > 0,
            )?),
            lease: Duration::from_secs(secs(FOLLOWUP_LEASE_SECS, d.lease.as_secs())?),
            backoff_base: Duration::from_secs(secs(
                FOLLOWUP_BACKOFF_BASE_SECS,
                d.backoff_base.as_secs(),
            )?),
            backoff_cap: Duration::from_secs(secs(
                FOLLOWUP_BACKOFF_CAP_SECS,
                d.backoff_cap.as_secs(),
            )?),
            max_attempts: number(src, FOLLOWUP_MAX_ATTEMPTS, d.max_attempts, |a| *a > 0)?,
            ..d
        };
        timers.validate().map_err(|e| ConfigError::Invalid {
            var: FOLLOWUP_LEASE_SECS,
            reason: e.to_string(),
        })?;
        Ok(Self {
            store: StoreConfig::from_source(src)?,
            targets,
            timers,
            queue_url: required(src, FOLLOWUP_QUEUE_URL)?,
            dlq_url: required(src, FOLLOWUP_DLQ_URL)?,
        })
    }
}

/// Configuration of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Table and retention.
    pub store: StoreConfig,
    /// [`FOLLOWUP_QUEUE_URL`].
    pub queue_url: String,
    /// [`RECONCILE_MAX_EVENTS`], default 50,000 per shard.
    pub max_events: usize,
    /// [`RECONCILE_BUDGET_SECS`], default 240.
    pub budget_secs: u64,
}

impl ReconcilerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Env)
    }

    /// Reads from any source.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_source(src)?,
            queue_url: required(src, FOLLOWUP_QUEUE_URL)?,
            max_events: number(src, RECONCILE_MAX_EVENTS, 50_000, |m| *m > 0)?,
            budget_secs: number(src, RECONCILE_BUDGET_SECS, 240, |b| *b > 0)?,
        })
    }
}

pub use crate::followup::AWS_SDK;

/// The AWS SDK settings Hookline changes from the SDK's defaults, each measured on its own
/// (docs/BENCHMARKS.md, "SDK settings"). [`aws`] applies them all; the SDK floor of the benchmark
/// can turn each back to the SDK's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkTuning {
    /// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`,
    /// and the region from `AWS_REGION`, as Lambda sets them, instead of the provider chains
    /// (environment, profile files, SSO, web identity, container, IMDS). Without the variables,
    /// the chains still run.
    pub env_credentials_and_region: bool,
    /// No stalled-stream protection: it times the throughput of streaming bodies; ours are a few
    /// KiB, and every attempt is bounded by [`AWS_SDK`]'s timeout already.
    pub no_stalled_stream_protection: bool,
    /// Trust the roots of AWS endpoints' certificates compiled in ([`AWS_ROOTS`]) instead of
    /// loading the system's store at the first connection (its bundle and every file of its
    /// directory: a quarter of a cold start's CPU here). Setting `SSL_CERT_FILE` or
    /// `SSL_CERT_DIR` brings the system loading back, for an endpoint signed by another CA
    /// (the TLS benchmark's local one).
    pub compiled_in_roots: bool,
}

/// The root certificates AWS service endpoints chain to (Amazon Trust Services: Amazon Root CA
/// 1 to 4 and Starfield Services Root Certificate Authority G2, the cross-signing root), in PEM.
pub const AWS_ROOTS: &[u8] = include_bytes!("aws-roots.pem");

impl SdkTuning {
    /// What every function runs with.
    pub const HOOKLINE: Self = Self {
        env_credentials_and_region: true,
        no_stalled_stream_protection: true,
        compiled_in_roots: true,
    };
    /// The SDK's own defaults (the benchmark's comparison).
    pub const SDK_DEFAULTS: Self = Self {
        env_credentials_and_region: false,
        no_stalled_stream_protection: false,
        compiled_in_roots: false,
    };
}

/// Builds the AWS SDK configuration once per cold start, with explicit timeouts and retries
/// ([`AWS_SDK`]) and [`SdkTuning::HOOKLINE`]. `AWS_ENDPOINT_URL` (the local emulator) is honoured
/// by the SDK itself.
pub async fn aws() -> aws_config::SdkConfig {
    aws_with(SdkTuning::HOOKLINE).await
}

/// [`aws`] with the given settings.
pub async fn aws_with(tuning: SdkTuning) -> aws_config::SdkConfig {
    let mut loader = aws_config::from_env()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(AWS_SDK.attempt_timeout)
                .operation_timeout(AWS_SDK.operation_timeout)
                .build(),
        )
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(AWS_SDK.max_attempts)
                .with_initial_backoff(AWS_SDK.initial_backoff),
        );
    if tuning.env_credentials_and_region {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                id,
                secret,
                var("AWS_SESSION_TOKEN"),
                None,
                "environment",
            ));
        }
        if let Some(region) = var("AWS_REGION") {
            loader = loader.region(aws_config::Region::new(region));
        }
    }
    if tuning.no_stalled_stream_protection {
        loader = loader.stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        );
    }
    let roots = if tuning.compiled_in_roots {
        TrustedRoots::Aws
    } else {
        TrustedRoots::System
    };
    loader.http_client(aws_http_client(roots)).load().await
}

/// Which root certificates an HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustedRoots {
    /// [`AWS_ROOTS`], compiled in: nothing to load at the first connection. Setting
    /// `SSL_CERT_FILE` or `SSL_CERT_DIR` turns it into [`TrustedRoots::System`], for an endpoint
    /// signed by another CA (the TLS benchmark's local one).
    Aws,
    /// The system's store, read at the first connection (and `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    System,
}

/// The HTTPS client of every AWS SDK client Hookline builds (functions, CLI, tests): the SDK's
/// own (hyper, rustls), with ring as its crypto, trusting `roots`. Plain `http://` endpoints (the
/// local emulator) work too. The SDK crates are built without a client of their own, so a
/// configuration without this one fails its first call instead of bringing a second TLS stack.
pub fn aws_http_client(
    roots: TrustedRoots,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let system = roots == TrustedRoots::System
        || ["SSL_CERT_FILE", "SSL_CERT_DIR"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
    let trust = if system {
        tls::TrustStore::default()
    } else {
        tls::TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AWS_ROOTS)
    };
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_default();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context)
        .build_https()
}

/// A builder of reqwest clients (the worker's deliveries, the CLI) on the same TLS stack as the
/// SDK: rustls with ring, the system's roots. reqwest is built without a crypto provider of its
/// own, so every client starts here (`reqwest::Client::new()` would panic).
pub fn http_client() -> reqwest::ClientBuilder {
    // Err only when a provider is installed already, which is all this needs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const BASE: &[(&str, &str)] = &[
        (WEBHOOK_SECRETS, "whsec_a, whsec_b"),
        (TABLE_NAME, "t"),
        (FOLLOWUP_QUEUE_URL, "http://q"),
    ];

    #[test]
    fn receiver_defaults_apply() {
        let c = ReceiverConfig::from_source(&src(BASE)).expect("valid");
        let SecretsConfig::Fixed(secrets) = &c.secrets else {
            panic!("fixed secrets")
        };
        assert_eq!(secrets.iter().count(), 2);
        assert_eq!(c.tolerance_secs, 300);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.store.retention_days, 30);
        assert_eq!(c.allowed_sources, None);
    }

    #[test]
    fn allowed_source_cidrs_are_parsed_at_start_up() {
        let mut s = src(BASE);
        s.insert(
            ALLOWED_SOURCE_CIDRS.into(),
            "192.0.2.0/24, 2001:db8::/32".into(),
        );
        let c = ReceiverConfig::from_source(&s).expect("valid");
        let allow = c.allowed_sources.expect("an allowlist");
        assert!(allow.allows_source(Some("192.0.2.9")));
        assert!(allow.allows_source(Some("2001:db8::9")));
        assert!(!allow.allows_source(Some("198.51.100.1")));
        s.insert(
            ALLOWED_SOURCE_CIDRS.into(),
            "192.0.2.0/24,192.0.2.300".into(),
        );
        let err = ReceiverConfig::from_source(&s).expect_err("bad entry");
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    var: ALLOWED_SOURCE_CIDRS,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("192.0.2.300"), "{err}");
    }

    #[test]
    fn missing_and_invalid_variables_are_named() {
        let err = ReceiverConfig::from_source(&src(&BASE[1..])).expect_err("no secrets");
        assert!(err.to_string().contains(WEBHOOK_SECRETS_ID), "{err}");
        let mut s = src(BASE);
        s.insert(MAX_BODY_BYTES.into(), "lots".into());
        let err = ReceiverConfig::from_source(&s).expect_err("bad number");
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: MAX_BODY_BYTES,
                ..
            }
        ));
        s.insert(MAX_BODY_BYTES.into(), "0".into());
        assert!(ReceiverConfig::from_source(&s).is_err());
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let err =
            ReceiverConfig::from_source(&src(&[(WEBHOOK_SECRETS, " , ")])).expect_err("empty list");
        assert!(err.to_string().contains(WEBHOOK_SECRETS));
    }

    /// Kinds a test worker needs targets for.
    const KINDS: &[&str] = &["receipt", "welcome", "analytics"];

    fn kinds() -> BTreeSet<&'static str> {
        KINDS.iter().copied().collect()
    }

    fn worker_src(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m = src(&[
            (TABLE_NAME, "t"),
            (FOLLOWUP_QUEUE_URL, "http://q"),
            (FOLLOWUP_DLQ_URL, "http://dlq"),
        ]);
        for kind in KINDS {
            m.insert(
                format!("ACTION_{}_URL", kind.to_ascii_uppercase()),
                format!("https://example.test/{kind}"),
            );
        }
        m.extend(src(extra));
        m
    }

    #[test]
    fn secrets_manager_id_with_its_refresh_policy() {
        let mut s = src(&BASE[1..]);
        s.insert(WEBHOOK_SECRETS_ID.into(), "hookline/stripe".into());
        let c = ReceiverConfig::from_source(&s).expect("valid");
        assert_eq!(
            c.secrets,
            SecretsConfig::SecretsManager {
                secret_id: "hookline/stripe".into(),
                policy: RefreshPolicy::default(),
            }
        );
        s.insert(WEBHOOK_SECRETS_REFRESH_SECS.into(), "30".into());
        s.insert(WEBHOOK_SECRETS_MAX_AGE_SECS.into(), "120".into());
        let c = ReceiverConfig::from_source(&s).expect("valid");
        assert_eq!(
            c.secrets,
            SecretsConfig::SecretsManager {
                secret_id: "hookline/stripe".into(),
                policy: RefreshPolicy {
                    min_interval_secs: 30,
                    max_age_secs: 120
                },
            }
        );
        s.insert(WEBHOOK_SECRETS_MAX_AGE_SECS.into(), "-1".into());
        let err = ReceiverConfig::from_source(&s).expect_err("negative");
        assert!(err.to_string().contains(WEBHOOK_SECRETS_MAX_AGE_SECS));
        s.remove(WEBHOOK_SECRETS_MAX_AGE_SECS);
        s.insert(WEBHOOK_SECRETS.into(), "whsec_x".into());
        let err = ReceiverConfig::from_source(&s).expect_err("both");
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn worker_reads_a_target_for_every_kind() {
        let c =
            WorkerConfig::from_source(&worker_src(&[("ACTION_WELCOME_URL", "disabled")]), &kinds())
                .expect("valid");
        assert_eq!(c.targets.len(), KINDS.len());
        assert_eq!(c.targets["welcome"], Target::Disabled);
        assert!(matches!(&c.targets["receipt"], Target::Url(u) if u.path() == "/receipt"));
        let err =
            WorkerConfig::from_source(&worker_src(&[("ACTION_RECEIPT_URL", "ftp://x")]), &kinds())
                .expect_err("not http");
        assert!(err.to_string().contains("ACTION_RECEIPT_URL"));
        let mut m = worker_src(&[]);
        m.remove("ACTION_WELCOME_URL");
        let err = WorkerConfig::from_source(&m, &kinds()).expect_err("a kind without a target");
        assert!(err.to_string().contains("ACTION_WELCOME_URL"), "{err}");
    }

    #[test]
    fn worker_timers_must_nest() {
        let err = WorkerConfig::from_source(&worker_src(&[(FOLLOWUP_LEASE_SECS, "60")]), &kinds())
            .expect_err("lease longer than the worker timeout");
        assert!(err.to_string().contains("nest"), "{err}");
        let err = WorkerConfig::from_source(&worker_src(&[(ACTION_TIMEOUT_MS, "30000")]), &kinds())
            .expect_err("timeout longer than the lease");
        assert!(err.to_string().contains("nest"), "{err}");
    }
}
