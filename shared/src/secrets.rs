//! Signing secrets that rotate without a deploy: read from AWS Secrets Manager once at cold
//! start, cached, and re-read when a signature does not verify or the cache is too old.
//!
//! Why: secrets in environment variables are readable by anyone with
//! `lambda:GetFunctionConfiguration`, and rotating them takes two deploys. With
//! `WEBHOOK_SECRETS_ID` the secret lives in Secrets Manager, readable by its function only, and a
//! rotation is a `put-secret-value`: a new secret is picked up by the first request it signs (a
//! mismatch triggers a re-read), a removed (leaked) secret stops verifying on warm instances once
//! the cache is older than the maximum age.
//!
//! Invariants kept here:
//! - **Bounded reads.** A re-read happens at most once per [`RefreshPolicy::min_interval_secs`],
//!   whatever triggers it, so a burst of forged requests costs at most one `GetSecretValue` per
//!   interval per instance. Concurrent triggers share one read.
//! - **A working secret is never dropped for a failed read.** A read that fails (Secrets Manager
//!   unreachable, a malformed value, a secret the scheme cannot use) keeps the cached verifier;
//!   only a failure at cold start, when there is nothing cached, is an error.
//! - **The request path does not wait on a lock held across I/O.** Requests take the current
//!   [`Verifier`] from a `RwLock<Arc<_>>` held only to clone the `Arc`; a refresh builds the new
//!   verifier (keys precomputed) and swaps it in.
//! - **No secret value is logged or put in an error**: errors name the secret id, never its value
//!   (nor a parser message that could quote it).
//!
//! Time comes from an injected [`Clock`](crate::clock::Clock), so tests move it instead of
//! sleeping.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::clock::SharedClock;
use crate::secret::{Secret, Secrets};
use crate::verify::{Incoming, Scheme, Verified, Verifier, VerifyError};

/// Default of `WEBHOOK_SECRETS_REFRESH_SECS`: least time between two re-reads.
pub const DEFAULT_REFRESH_INTERVAL_SECS: i64 = 60;
/// Default of `WEBHOOK_SECRETS_MAX_AGE_SECS`: a cache older than this is re-read before use.
pub const DEFAULT_MAX_AGE_SECS: i64 = 900;

/// When cached secrets are read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Least time between two reads, in seconds: a failed signature re-reads only if the last
    /// read (successful or not) is at least this old.
    pub min_interval_secs: i64,
    /// Greatest age of the cache, in seconds: an older cache is re-read before the next
    /// verification (still at most once per `min_interval_secs` while reads fail).
    pub max_age_secs: i64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            min_interval_secs: DEFAULT_REFRESH_INTERVAL_SECS,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
        }
    }
}

/// Why secrets could not be loaded. Names the secret id, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The read itself failed (network, permissions, no such secret).
    #[error("could not read webhook secrets from Secrets Manager secret {id}: {cause}")]
    Fetch {
        /// The secret id or ARN.
        id: String,
        /// The SDK's error, which never carries the value.
        cause: String,
    },
    /// The value is not a JSON list of strings nor newline-separated secrets.
    #[error("Secrets Manager secret {id} has no usable value: {reason}")]
    Format {
        /// The secret id or ARN.
        id: String,
        /// Fixed text, never the value.
        reason: &'static str,
    },
    /// A secret cannot serve this function's scheme (e.g. bad base64 after `whsec_`).
    #[error("webhook secrets are not valid for this scheme: {0}")]
    Invalid(#[from] VerifyError),
}

/// A boxed future of a secrets read (the trait must be object-safe to be injected).
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Secrets, SecretsError>> + Send + 'a>>;

/// Reads the current secrets from wherever they live. Production reads Secrets Manager
/// ([`SecretsManagerFetch`]); unit tests inject a scripted source.
pub trait FetchSecrets: Send + Sync + fmt::Debug {
    /// The secret's id, for logs and errors.
    fn id(&self) -> &str;
    /// Reads the secrets once.
    fn fetch(&self) -> FetchFuture<'_>;
}

/// [`FetchSecrets`] from AWS Secrets Manager (`GetSecretValue` on `SecretString`).
#[derive(Debug, Clone)]
pub struct SecretsManagerFetch {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerFetch {
    /// Reads `secret_id` (a name or an ARN) with `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

impl FetchSecrets for SecretsManagerFetch {
    fn id(&self) -> &str {
        &self.secret_id
    }

    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let out = self
                .client
                .get_secret_value()
                .secret_id(&self.secret_id)
                .send()
                .await
                .map_err(|e| SecretsError::Fetch {
                    id: self.secret_id.clone(),
                    cause: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                })?;
            let value = out.secret_string().ok_or_else(|| SecretsError::Format {
                id: self.secret_id.clone(),
                reason: "no SecretString (a binary secret is not supported)",
            })?;
            parse_value(value).map_err(|reason| SecretsError::Format {
                id: self.secret_id.clone(),
                reason,
            })
        })
    }
}

/// Parses a secret's value: a JSON list of strings (`["whsec_new", "whsec_old"]`), or one secret
/// per line. Blanks around entries are trimmed and empty entries dropped; the order is kept
/// (the first signs, in the CLI). The error is fixed text: it never quotes the value.
pub fn parse_value(value: &str) -> Result<Secrets, &'static str> {
    let value = value.trim();
    let secrets: Vec<Secret> = if value.starts_with('[') {
        let items: Vec<String> = serde_json::from_str(value)
            .map_err(|_| "a value starting with `[` must be a JSON list of strings")?;
        items
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| Secret::new(s.as_bytes()))
            .collect()
    } else {
        value
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Secret::new(s.as_bytes()))
            .collect()
    };
    Secrets::new(secrets).ok_or("no non-empty secret in the value")
}

/// A [`Verifier`] whose secrets can be re-read while the function runs: the receiver's view of
/// verification. Built from fixed secrets (`WEBHOOK_SECRETS`, tests: never re-read) or from a
/// [`FetchSecrets`] source with a [`RefreshPolicy`]. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct RefreshingVerifier(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    current: RwLock<Arc<Verifier>>,
    refresh: Option<Refresher>,
}

struct Refresher {
    fetch: Arc<dyn FetchSecrets>,
    scheme: Scheme,
    tolerance_secs: i64,
    clock: SharedClock,
    policy: RefreshPolicy,
    /// When the cached secrets were read (ms).
    loaded_at: AtomicI64,
    /// When the last read was attempted, successful or not (ms).
    last_read: AtomicI64,
    /// Held across a read, so concurrent triggers share one; guards the secrets in use.
    secrets: tokio::sync::Mutex<Secrets>,
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher")
            .field("secret_id", &self.fetch.id())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Why a read was attempted (logged).
#[derive(Debug, Clone, Copy)]
enum Trigger {
    MaxAge,
    Mismatch,
}

impl From<Verifier> for RefreshingVerifier {
    /// Fixed secrets: never re-read.
    fn from(verifier: Verifier) -> Self {
        Self(Arc::new(Inner {
            current: RwLock::new(Arc::new(verifier)),
            refresh: None,
        }))
    }
}

impl RefreshingVerifier {
    /// Reads the secrets once (cold start) and builds the verifier. Fails when the read fails or
    /// yields no secret the scheme can use: there is nothing cached to fall back on.
    pub async fn load(
        scheme: Scheme,
        tolerance_secs: i64,
        fetch: Arc<dyn FetchSecrets>,
        policy: RefreshPolicy,
        clock: SharedClock,
    ) -> Result<Self, SecretsError> {
        let secrets = fetch.fetch().await?;
        let verifier = Verifier::new(scheme.clone(), secrets.clone(), tolerance_secs)?
            .with_clock(clock.clone());
        let now = clock.now_millis();
        Ok(Self(Arc::new(Inner {
            current: RwLock::new(Arc::new(verifier)),
            refresh: Some(Refresher {
                fetch,
                scheme,
                tolerance_secs,
                clock,
                policy,
                loaded_at: AtomicI64::new(now),
                last_read: AtomicI64::new(now),
                secrets: tokio::sync::Mutex::new(secrets),
            }),
        })))
    }

    /// The verifier in use now. Holds the lock only to clone the `Arc`.
    pub fn current(&self) -> Arc<Verifier> {
        self.0
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `check` with the current verifier, re-reading the secrets first if the cache is past
    /// its maximum age, and once more after a failure for which `mismatch` is true, if a re-read
    /// is allowed now and changed the secrets. This is the one place the refresh rules live.
    pub async fn check<T, E>(
        &self,
        check: impl Fn(&Verifier) -> Result<T, E>,
        mismatch: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        self.refresh_if_expired().await;
        match check(&self.current()) {
            Err(e) if mismatch(&e) && self.refresh_after_mismatch().await => check(&self.current()),
            other => other,
        }
    }

    /// Verifies `req` under the refresh rules of [`check`](Self::check): a well-formed signature
    /// that matches no cached secret triggers the (rate-limited) re-read.
    pub async fn verify<'a>(&self, req: &Incoming<'a>) -> Result<Verified<'a>, VerifyError> {
        self.check(|v| v.verify(req), |e| *e == VerifyError::SignatureMismatch)
            .await
    }

    /// Re-reads when the cache is older than the maximum age (and no read was attempted within
    /// the minimum interval). Failures keep the cache.
    pub async fn refresh_if_expired(&self) {
        let Some(r) = &self.0.refresh else { return };
        let now = r.clock.now_millis();
        if now - r.loaded_at.load(Ordering::SeqCst) >= r.policy.max_age_secs * 1000 {
            self.read(r, Trigger::MaxAge).await;
        }
    }

    /// After a signature mismatch: re-reads if no read was attempted within the minimum
    /// interval. True when the secrets changed (verifying again may now succeed).
    pub async fn refresh_after_mismatch(&self) -> bool {
        match &self.0.refresh {
            Some(r) => self.read(r, Trigger::Mismatch).await,
            None => false,
        }
    }

    /// One rate-limited read; true when new secrets were swapped in.
    async fn read(&self, r: &Refresher, trigger: Trigger) -> bool {
        let due = |now: i64| {
            now - r.last_read.load(Ordering::SeqCst) >= r.policy.min_interval_secs * 1000
        };
        if !due(r.clock.now_millis()) {
            return false;
        }
        let mut cached = r.secrets.lock().await;
        // Another trigger may have read while this one waited for the lock.
        let now = r.clock.now_millis();
        if !due(now) {
            return false;
        }
        r.last_read.store(now, Ordering::SeqCst);
        let id = r.fetch.id();
        let fresh = match r.fetch.fetch().await {
            Ok(fresh) => fresh,
            Err(err) => {
                tracing::warn!(secret_id = id, ?trigger, error = %err, "webhook secrets not re-read; keeping the cached ones");
                return false;
            }
        };
        r.loaded_at.store(now, Ordering::SeqCst);
        if fresh == *cached {
            tracing::debug!(
                secret_id = id,
                ?trigger,
                "webhook secrets re-read, unchanged"
            );
            return false;
        }
        match Verifier::new(r.scheme.clone(), fresh.clone(), r.tolerance_secs) {
            Ok(v) => {
                *self
                    .0
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Arc::new(v.with_clock(r.clock.clone()));
                tracing::info!(
                    secret_id = id,
                    ?trigger,
                    secrets = fresh.iter().count(),
                    "webhook secrets re-read and replaced"
                );
                *cached = fresh;
                true
            }
            Err(err) => {
                tracing::error!(secret_id = id, ?trigger, error = %err, "re-read webhook secrets are not valid for this scheme; keeping the cached ones");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use http::HeaderMap;

    use super::*;
    use crate::clock::FixedClock;
    use crate::verify::{SignInput, sign};

    const NOW: i64 = 1_750_000_000;

    /// A scripted Secrets Manager: a value that tests change, an outage switch, a read counter.
    #[derive(Debug, Default)]
    struct Scripted {
        value: Mutex<String>,
        down: std::sync::atomic::AtomicBool,
        reads: AtomicUsize,
    }

    impl Scripted {
        fn new(value: &str) -> Arc<Self> {
            let s = Self::default();
            *s.value.lock().expect("lock") = value.to_owned();
            Arc::new(s)
        }
        fn set(&self, value: &str) {
            *self.value.lock().expect("lock") = value.to_owned();
        }
        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl FetchSecrets for Scripted {
        fn id(&self) -> &str {
            "test/secret"
        }
        fn fetch(&self) -> FetchFuture<'_> {
            Box::pin(async move {
                self.reads.fetch_add(1, Ordering::SeqCst);
                if self.down.load(Ordering::SeqCst) {
                    return Err(SecretsError::Fetch {
                        id: "test/secret".into(),
                        cause: "unreachable".into(),
                    });
                }
                let v = self.value.lock().expect("lock").clone();
                parse_value(&v).map_err(|reason| SecretsError::Format {
                    id: "test/secret".into(),
                    reason,
                })
            })
        }
    }

    fn signed(secret: &str, body: &[u8], timestamp: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        let input = SignInput {
            body,
            timestamp,
            id: "d1",
            url: None,
        };
        for (k, v) in sign(&Scheme::Stripe, &Secret::new(secret), &input).expect("sign") {
            h.insert(k, v.parse().expect("header"));
        }
        h
    }

    /// Whether a request signed with `secret` now (by the verifier's clock) verifies.
    async fn verifies(v: &RefreshingVerifier, secret: &str) -> bool {
        let body = b"{}";
        let headers = signed(secret, body, v.current().now_secs());
        v.verify(&Incoming {
            headers: &headers,
            body,
            url: None,
        })
        .await
        .is_ok()
    }

    const POLICY: RefreshPolicy = RefreshPolicy {
        min_interval_secs: 60,
        max_age_secs: 900,
    };

    async fn loaded(src: &Arc<Scripted>, clock: &Arc<FixedClock>) -> RefreshingVerifier {
        RefreshingVerifier::load(Scheme::Stripe, 300, src.clone(), POLICY, clock.clone())
            .await
            .expect("loaded")
    }

    #[test]
    fn values_are_json_lists_or_lines() {
        let list = |v: &str| -> Vec<Vec<u8>> {
            parse_value(v)
                .expect("parses")
                .iter()
                .map(|s| s.expose().to_vec())
                .collect()
        };
        assert_eq!(
            list(r#"["a", " b ", ""]"#),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(list("a\r\n\n b \n"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(list("only"), vec![b"only".to_vec()]);
        let err = parse_value(r#"["whsec_leak", 3]"#).expect_err("not strings");
        assert!(!err.contains("leak"));
        assert!(parse_value(" \n ").is_err());
        assert!(parse_value("[]").is_err());
    }

    #[tokio::test]
    async fn a_new_secret_is_picked_up_on_its_first_mismatch() {
        let clock = FixedClock::at_secs(NOW);
        let src = Scripted::new("whsec_one");
        let v = loaded(&src, &clock).await;
        assert_eq!(src.reads(), 1, "read once at cold start");
        assert!(verifies(&v, "whsec_one").await);
        assert_eq!(src.reads(), 1, "a valid signature reads nothing");

        src.set("whsec_two\nwhsec_one");
        clock.advance_secs(61);
        assert!(verifies(&v, "whsec_two").await, "picked up by the mismatch");
        assert!(verifies(&v, "whsec_one").await, "both verify");
        assert_eq!(src.reads(), 2);
    }

    #[tokio::test]
    async fn mismatches_reread_at_most_once_per_interval() {
        let clock = FixedClock::at_secs(NOW);
        let src = Scripted::new("whsec_one");
        let v = loaded(&src, &clock).await;
        clock.advance_secs(60);
        for _ in 0..20 {
            assert!(!verifies(&v, "forged").await);
        }
        assert_eq!(src.reads(), 2, "one re-read for the burst");
        clock.advance_secs(59);
        assert!(!verifies(&v, "forged").await);
        assert_eq!(src.reads(), 2, "still inside the interval");
        clock.advance_secs(1);
        assert!(!verifies(&v, "forged").await);
        assert_eq!(src.reads(), 3, "next interval");
    }

    #[tokio::test]
    async fn a_removed_secret_stops_verifying_past_the_maximum_age() {
        let clock = FixedClock::at_secs(NOW);
        let src = Scripted::new("whsec_two\nwhsec_one");
        let v = loaded(&src, &clock).await;
        src.set("whsec_two");
        clock.advance_secs(899);
        assert!(verifies(&v, "whsec_one").await, "cache still fresh");
        assert_eq!(src.reads(), 1);
        clock.advance_secs(1);
        assert!(!verifies(&v, "whsec_one").await, "removed after max age");
        assert!(verifies(&v, "whsec_two").await);
        assert_eq!(src.reads(), 2);
    }

    #[tokio::test]
    async fn an_outage_keeps_the_cached_secrets_and_is_retried_per_interval() {
        let clock = FixedClock::at_secs(NOW);
        let src = Scripted::new("whsec_one");
        let v = loaded(&src, &clock).await;
        src.down.store(true, Ordering::SeqCst);
        clock.advance_secs(1000);
        assert!(
            verifies(&v, "whsec_one").await,
            "cached secret keeps working"
        );
        assert!(verifies(&v, "whsec_one").await);
        assert_eq!(src.reads(), 2, "the failed read is rate-limited too");
        src.down.store(false, Ordering::SeqCst);
        src.set("whsec_two");
        clock.advance_secs(60);
        assert!(
            verifies(&v, "whsec_two").await,
            "recovered on the next interval"
        );
        assert!(!verifies(&v, "whsec_one").await);
    }

    #[tokio::test]
    async fn cold_start_fails_clearly_and_bad_values_never_replace_good_ones() {
        let clock = FixedClock::at_secs(NOW);
        let src = Scripted::new("whsec_one");
        src.down.store(true, Ordering::SeqCst);
        let err = RefreshingVerifier::load(Scheme::Stripe, 300, src.clone(), POLICY, clock.clone())
            .await
            .expect_err("nothing cached");
        assert!(err.to_string().contains("test/secret"), "{err}");

        src.down.store(false, Ordering::SeqCst);
        let v = loaded(&src, &clock).await;
        src.set("[not json");
        clock.advance_secs(60);
        assert!(!verifies(&v, "whsec_other").await);
        assert!(
            verifies(&v, "whsec_one").await,
            "malformed value kept the cache"
        );

        // A Standard Webhooks secret that is not base64 cannot serve: the cache stays.
        let src = Scripted::new("whsec_aG9va2xpbmU=");
        let sw = RefreshingVerifier::load(
            Scheme::StandardWebhooks,
            300,
            src.clone(),
            POLICY,
            clock.clone(),
        )
        .await
        .expect("valid");
        src.set("whsec_!!!");
        clock.advance_secs(60);
        assert!(!sw.refresh_after_mismatch().await);
        assert_eq!(src.reads(), 2);
    }

    #[tokio::test]
    async fn fixed_secrets_are_never_reread() {
        let verifier = Verifier::new(
            Scheme::Stripe,
            Secrets::parse_list("whsec_one").expect("one"),
            300,
        )
        .expect("valid")
        .with_clock(FixedClock::at_secs(NOW));
        let v = RefreshingVerifier::from(verifier);
        assert!(verifies(&v, "whsec_one").await);
        assert!(!verifies(&v, "whsec_two").await);
        assert!(!v.refresh_after_mismatch().await);
    }

    #[test]
    fn debug_names_the_id_only() {
        let clock = FixedClock::at_secs(NOW);
        let src = Scripted::new("whsec_supersecret");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let v = rt.block_on(loaded(&src, &clock));
        let dbg = format!("{v:?}");
        assert!(dbg.contains("test/secret"));
        assert!(!dbg.contains("supersecret"), "{dbg}");
    }
}
