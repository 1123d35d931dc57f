//! Webhook signature verification: one scheme per sender, all behind [`Verifier`].
//!
//! Invariant kept here (docs/ARCHITECTURE.md, invariant 4): a body can only be parsed through a [`Verified`],
//! and a [`Verified`] can only be made by [`Verifier::verify`] after a signature over the *raw
//! body bytes* matched one of the configured secrets in constant time. Every way to fail has its
//! own [`VerifyError`] variant, for logs and tests; the HTTP layer answers all of them with a bare
//! 401 so a forger learns nothing.

mod common;
mod github;
mod paddle;
mod shopify;
mod slack;
mod standard;
mod static_header;
mod stripe;
mod timestamped;
mod twilio;

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit};
use http::{HeaderMap, HeaderName};
use serde::de::DeserializeOwned;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::clock::{self, SharedClock};
use crate::secret::{Secret, Secrets};

pub use twilio::twilio_url_with_body_sha256;

/// Default timestamp tolerance, past and future, for schemes that sign a time.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The signature schemes Hookline verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// Stripe: `Stripe-Signature: t=..,v1=..`.
    Stripe,
    /// Standard Webhooks / Svix: `webhook-id`, `webhook-timestamp`, `webhook-signature` (or `svix-*`).
    StandardWebhooks,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`.
    GitHub,
    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>`.
    Shopify,
    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{ts}:{body}`.
    Slack,
    /// Paddle Billing: `Paddle-Signature: ts=..;h1=..`.
    Paddle,
    /// Twilio: `X-Twilio-Signature`, HMAC-SHA1 over the URL and sorted form parameters.
    Twilio,
    /// A shared token in a configured header, for senders that sign nothing (Builder.io).
    StaticHeader {
        /// The header carrying the token.
        header: HeaderName,
    },
}

impl FromStr for Scheme {
    type Err = VerifyError;
    /// Parses `stripe`, `standard-webhooks` (or `svix`), `github`, `shopify`, `slack`, `paddle`,
    /// `twilio`, or `static-header:<header-name>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "stripe" => Self::Stripe,
            "standard-webhooks" | "standard_webhooks" | "svix" => Self::StandardWebhooks,
            "github" => Self::GitHub,
            "shopify" => Self::Shopify,
            "slack" => Self::Slack,
            "paddle" => Self::Paddle,
            "twilio" => Self::Twilio,
            other => match other.strip_prefix("static-header:") {
                Some(h) => Self::StaticHeader {
                    header: HeaderName::from_str(h).map_err(|_| VerifyError::UnknownScheme)?,
                },
                None => return Err(VerifyError::UnknownScheme),
            },
        })
    }
}

impl Scheme {
    /// Whether the signature covers a delivery time, so that a captured delivery stops verifying
    /// after the tolerance. GitHub, Shopify, Twilio and a static header sign none: anyone holding
    /// a captured delivery can send it again, and the receiver refuses one whose provider time is
    /// older than the dedup window (docs/SECURITY.md, "Replays").
    pub fn signs_time(&self) -> bool {
        match self {
            Self::Stripe | Self::StandardWebhooks | Self::Slack | Self::Paddle => true,
            Self::GitHub | Self::Shopify | Self::Twilio | Self::StaticHeader { .. } => false,
        }
    }
}

impl Scheme {
    /// The unsigned header in which the sender names the event type (GitHub's `X-GitHub-Event`,
    /// Shopify's `X-Shopify-Topic`), for schemes whose body does not.
    pub fn event_type_header(&self) -> Option<HeaderName> {
        match self {
            Self::GitHub => Some(HeaderName::from_static("x-github-event")),
            Self::Shopify => Some(HeaderName::from_static("x-shopify-topic")),
            _ => None,
        }
    }

    /// The event-type header's value for a sample file `events/<function>/<name>`, which is
    /// named after its event: GitHub's event is the name up to its first dot
    /// (`workflow_run.completed.json` → `workflow_run`), Shopify's topic the name without
    /// `.json` whose first dot is a slash (`orders.paid.json` → `orders/paid`). `None` for a
    /// scheme without such a header.
    pub fn sample_event_type(&self, file_name: &str) -> Option<String> {
        let stem = file_name.strip_suffix(".json").unwrap_or(file_name);
        match self {
            Self::GitHub => stem.split('.').next().map(str::to_owned),
            Self::Shopify => Some(stem.replacen('.', "/", 1)),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    /// The name [`Scheme::from_str`] parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Stripe => "stripe",
            Self::StandardWebhooks => "standard-webhooks",
            Self::GitHub => "github",
            Self::Shopify => "shopify",
            Self::Slack => "slack",
            Self::Paddle => "paddle",
            Self::Twilio => "twilio",
            Self::StaticHeader { header } => return write!(f, "static-header:{header}"),
        };
        f.write_str(name)
    }
}

/// What a verifier looks at: the raw body bytes, the headers, and (Twilio only) the full URL the
/// sender posted to, query string included.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// Request headers (names are case-insensitive).
    pub headers: &'a HeaderMap,
    /// The raw body, exactly as received.
    pub body: &'a [u8],
    /// The full request URL, when the scheme signs it.
    pub url: Option<&'a str>,
}

/// What the scheme's headers said, available to receivers after verification (and kept on the
/// event record, so that a replay describes the event as its delivery did).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedMeta {
    /// The delivery or message id from a header (`webhook-id`, `X-GitHub-Delivery`, ...).
    pub delivery_id: Option<String>,
    /// The signed timestamp, seconds since the epoch, where the scheme signs one.
    pub timestamp: Option<i64>,
    /// The event type or topic from a header (`X-GitHub-Event`, `X-Shopify-Topic`), if any.
    pub event_type: Option<String>,
}

/// A body whose signature has been verified. The only value from which a payload is parsed.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    body: &'a [u8],
    meta: VerifiedMeta,
    request_id: Option<String>,
}

/// The verified body is not the JSON shape expected.
///
/// Its message says what kind of problem and where (line and column, and the name of a missing
/// field), never a value from the body: serde's own messages quote values (`invalid type: string
/// "..."`), and this message is logged and returned (invariant 6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload does not match the expected shape: {detail}")]
pub struct ParseError {
    detail: String,
}

impl ParseError {
    /// A required part of the delivery is absent; `what` is fixed text, never body data.
    pub fn missing(what: &'static str) -> Self {
        Self {
            detail: format!("missing {what}"),
        }
    }
}

impl From<serde_json::Error> for ParseError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let kind = match e.classify() {
            Category::Syntax => "invalid JSON",
            Category::Eof => "truncated JSON",
            Category::Data => "unexpected type or value",
            Category::Io => "unreadable body",
        };
        let message = e.to_string();
        let missing = missing_field(&message);
        let detail = match missing {
            Some(field) => format!(
                "missing field `{field}` at line {}, column {}",
                e.line(),
                e.column()
            ),
            None => format!("{kind} at line {}, column {}", e.line(), e.column()),
        };
        Self { detail }
    }
}

/// The field a serde "missing field" message names. Field names come from our own types, so they
/// are safe to repeat; but the same words can also appear inside a body value that serde quotes
/// (`invalid type: string "... missing field `x` ..."`), so the phrase counts only where serde
/// puts it: at the start of the message, or right after the prefix the models give a nested
/// object's errors (`data.object of a <type> event: `, `data of a <type> event: `, the type one
/// of the models' own), and the name must be an identifier.
fn missing_field(message: &str) -> Option<&str> {
    let (before, rest) = message.split_once("missing field `")?;
    let nested = || {
        let t = before.strip_suffix(" event: ")?;
        let t = t
            .strip_prefix("data.object of a ")
            .or_else(|| t.strip_prefix("data of a "))?;
        let ours = !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
        ours.then_some(())
    };
    if !before.is_empty() && nested().is_none() {
        return None;
    }
    let (field, _) = rest.split_once('`')?;
    let identifier = !field.is_empty()
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    identifier.then_some(field)
}

impl<'a> Verified<'a> {
    pub(crate) fn new(body: &'a [u8], meta: VerifiedMeta) -> Self {
        Self {
            body,
            meta,
            request_id: None,
        }
    }
    /// The same delivery, with the id the front door gave this one request (set by the receiver).
    #[must_use]
    pub(crate) fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }
    /// A body verified earlier and stored by Hookline (a quarantined event being replayed):
    /// `Some` only when `body` still hashes to the SHA-256 recorded when it was verified.
    /// `delivery_id` is the stored event id, standing in for the header that carried it.
    pub fn stored(body: &'a [u8], body_sha256: &str, delivery_id: Option<String>) -> Option<Self> {
        Self::stored_with(
            body,
            body_sha256,
            VerifiedMeta {
                delivery_id,
                ..VerifiedMeta::default()
            },
        )
    }

    /// [`Verified::stored`] with the delivery's headers as the event record kept them.
    pub fn stored_with(body: &'a [u8], body_sha256: &str, meta: VerifiedMeta) -> Option<Self> {
        use sha2::Digest as _;
        let digest = hex::encode(sha2::Sha256::digest(body));
        bool::from(subtle::ConstantTimeEq::ct_eq(
            digest.as_bytes(),
            body_sha256.as_bytes(),
        ))
        .then(|| Self::new(body, meta))
    }
    /// The raw verified bytes (for storage and replay).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    /// Header-borne facts about the delivery.
    pub fn meta(&self) -> &VerifiedMeta {
        &self.meta
    }
    /// The id API Gateway (else Lambda) gave this one HTTP request: unique per request, so a
    /// resend of the same delivery has another. Not the sender's and not signed: a mapping keys
    /// an event by it only when the delivery holds no stable id at all, and then does not
    /// deduplicate ([`crate::receiver::Described::deduplicated`]). The receiver always sets one
    /// (made up when the request came from outside Lambda); `None` only for a verifier called
    /// directly or a stored body being replayed.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// Parses the verified body as JSON into `T`.
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, ParseError> {
        Ok(serde_json::from_slice(self.body)?)
    }
}

/// Why a request failed verification. Logged, never returned to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The scheme name in configuration is not one we know.
    #[error("unknown signature scheme")]
    UnknownScheme,
    /// A secret in configuration is unusable for this scheme (e.g. bad base64 after `whsec_`).
    #[error("a configured secret is not valid for this scheme")]
    InvalidSecret,
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header that must appear once appears more than once.
    #[error("header {0} appears more than once")]
    RepeatedHeader(&'static str),
    /// A header is not valid ASCII/UTF-8 or has the wrong structure.
    #[error("header {0} is malformed")]
    MalformedHeader(&'static str),
    /// The timestamp is not a number, or overflows.
    #[error("timestamp is not a valid number")]
    InvalidTimestamp,
    /// The timestamp is older than the tolerance.
    #[error("timestamp is older than the tolerance")]
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance.
    #[error("timestamp is further in the future than the tolerance")]
    TimestampInFuture,
    /// No signature of a version this scheme supports was present.
    #[error("no signature of a supported version")]
    NoSupportedSignature,
    /// A signature was present but empty, or not valid hex/base64, or of the wrong length.
    #[error("signature is empty or not validly encoded")]
    MalformedSignature,
    /// Well-formed signatures, none matching any configured secret.
    #[error("no signature matched any configured secret")]
    SignatureMismatch,
    /// The scheme signs the request URL but none was available.
    #[error("request URL unavailable to a scheme that signs it")]
    MissingUrl,
}

/// Inputs for producing a signature (CLI and tests).
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    /// The raw body to sign.
    pub body: &'a [u8],
    /// Timestamp to sign, seconds since the epoch (ignored by schemes that sign none).
    pub timestamp: i64,
    /// Delivery/message id (Standard Webhooks signs it; others put it in their id header).
    pub id: &'a str,
    /// Full URL (Twilio signs it).
    pub url: Option<&'a str>,
}

/// A configured verifier: scheme, secrets (rotation), tolerance, clock. Built once per cold start.
#[derive(Debug, Clone)]
pub struct Verifier {
    scheme: Scheme,
    secrets: Secrets,
    /// Per-secret MAC states keyed once here, so a request pays no key schedule.
    keys: Keys,
    tolerance_secs: i64,
    clock: SharedClock,
}

impl Verifier {
    /// A verifier on the system clock. Fails with [`VerifyError::InvalidSecret`] when a secret
    /// cannot serve this scheme.
    ///
    /// An empty secret is refused for every scheme; Standard Webhooks secrets must be base64,
    /// with or without the `whsec_` prefix (as in the official libraries).
    pub fn new(scheme: Scheme, secrets: Secrets, tolerance_secs: i64) -> Result<Self, VerifyError> {
        let keys = Keys::new(&scheme, &secrets)?;
        Ok(Self {
            scheme,
            secrets,
            keys,
            tolerance_secs,
            clock: clock::system(),
        })
    }

    /// Replaces the clock (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The time now by this verifier's clock, seconds since the epoch.
    pub fn now_secs(&self) -> i64 {
        self.clock.now_secs()
    }

    /// The scheme this verifier checks.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Verifies `req`; on success the body becomes parseable.
    pub fn verify<'a>(&self, req: &Incoming<'a>) -> Result<Verified<'a>, VerifyError> {
        let now = self.clock.now_secs();
        let ctx = Ctx {
            keys: &self.keys,
            now,
            tolerance: self.tolerance_secs,
        };
        let meta = match &self.scheme {
            Scheme::Stripe => stripe::verify(&ctx, req)?,
            Scheme::StandardWebhooks => standard::verify(&ctx, req)?,
            Scheme::GitHub => github::verify(&ctx, req)?,
            Scheme::Shopify => shopify::verify(&ctx, req)?,
            Scheme::Slack => slack::verify(&ctx, req)?,
            Scheme::Paddle => paddle::verify(&ctx, req)?,
            Scheme::Twilio => twilio::verify(&ctx, req)?,
            Scheme::StaticHeader { header } => static_header::verify(&ctx, header, req)?,
        };
        Ok(Verified::new(req.body, meta))
    }

    /// Signs with the primary secret: the headers a genuine sender would add.
    pub fn sign(&self, input: &SignInput<'_>) -> Result<Vec<(HeaderName, String)>, VerifyError> {
        sign(&self.scheme, self.secrets.primary(), input)
    }
}

/// Signs `input` with `secret` under `scheme`: the headers a genuine sender would add.
pub fn sign(
    scheme: &Scheme,
    secret: &Secret,
    input: &SignInput<'_>,
) -> Result<Vec<(HeaderName, String)>, VerifyError> {
    match scheme {
        Scheme::Stripe => stripe::sign(secret, input),
        Scheme::StandardWebhooks => standard::sign(secret, input),
        Scheme::GitHub => github::sign(secret, input),
        Scheme::Shopify => shopify::sign(secret, input),
        Scheme::Slack => slack::sign(secret, input),
        Scheme::Paddle => paddle::sign(secret, input),
        Scheme::Twilio => twilio::sign(secret, input),
        Scheme::StaticHeader { header } => static_header::sign(header, secret, input),
    }
}

/// The MAC key a secret yields under a scheme (Standard Webhooks base64-decodes `whsec_` keys).
fn key_for(scheme: &Scheme, secret: &Secret) -> Result<Vec<u8>, VerifyError> {
    let key = match scheme {
        Scheme::StandardWebhooks => standard::key(secret)?,
        _ => secret.expose().to_vec(),
    };
    if key.is_empty() {
        return Err(VerifyError::InvalidSecret);
    }
    Ok(key)
}

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<Sha1>;

/// Key material derived once from the configured secrets, in the order configured.
#[derive(Clone)]
pub(crate) enum Keys {
    /// HMAC-SHA256 states with the key already absorbed (every scheme but Twilio and static).
    Sha256(Vec<HmacSha256>),
    /// HMAC-SHA1 states (Twilio).
    Sha1(Vec<HmacSha1>),
    /// SHA-256 digests of the static tokens: comparing digests hides the token's length.
    Token(Vec<[u8; 32]>),
}

impl Keys {
    fn new(scheme: &Scheme, secrets: &Secrets) -> Result<Self, VerifyError> {
        // `new_from_slice` accepts any key length for HMAC; the error arm cannot happen.
        let keys = secrets.iter().map(|s| key_for(scheme, s));
        Ok(match scheme {
            Scheme::Twilio => Self::Sha1(
                keys.map(|k| HmacSha1::new_from_slice(&k?).map_err(|_| VerifyError::InvalidSecret))
                    .collect::<Result<_, _>>()?,
            ),
            Scheme::StaticHeader { .. } => Self::Token(
                keys.map(|k| k.map(|k| Sha256::digest(k).into()))
                    .collect::<Result<_, _>>()?,
            ),
            _ => Self::Sha256(
                keys.map(|k| {
                    HmacSha256::new_from_slice(&k?).map_err(|_| VerifyError::InvalidSecret)
                })
                .collect::<Result<_, _>>()?,
            ),
        })
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

/// What every scheme's `verify` receives besides the request.
pub(crate) struct Ctx<'s> {
    keys: &'s Keys,
    now: i64,
    tolerance: i64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn detail(body: &[u8]) -> String {
        let err = serde_json::from_slice::<crate::model::stripe::Event>(body).unwrap_err();
        ParseError::from(err).to_string()
    }

    #[test]
    fn samples_name_their_event_type_header() {
        let gh = Scheme::GitHub;
        assert_eq!(gh.event_type_header().unwrap(), "x-github-event");
        assert_eq!(
            gh.sample_event_type("workflow_run.completed.json").unwrap(),
            "workflow_run"
        );
        assert_eq!(gh.sample_event_type("push.json").unwrap(), "push");
        let shop = Scheme::Shopify;
        assert_eq!(shop.event_type_header().unwrap(), "x-shopify-topic");
        assert_eq!(
            shop.sample_event_type("orders.paid.json").unwrap(),
            "orders/paid"
        );
        assert_eq!(
            shop.sample_event_type("app.uninstalled.json").unwrap(),
            "app/uninstalled"
        );
        assert_eq!(Scheme::Stripe.event_type_header(), None);
        assert_eq!(Scheme::Stripe.sample_event_type("invoice.paid.json"), None);
    }

    #[test]
    fn parse_errors_name_missing_fields_of_the_model() {
        assert_eq!(
            detail(br#"{"type": "x", "created": 1}"#),
            "payload does not match the expected shape: missing field `id` at line 1, column 27"
        );
        let nested = detail(br#"{"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {"object": {"id": "in_1"}}}"#);
        assert!(
            nested.contains("missing field `amount_paid` at line 1"),
            "{nested}"
        );
    }

    /// Found by the `model_stripe` fuzz target: a body string holding the words "missing field `"
    /// got its text into the parse error (logged and stored as the quarantine reason).
    #[test]
    fn parse_errors_repeat_no_body_text_that_looks_like_a_missing_field() {
        let crash = [
            br#""aaaa@aaaaaaacurrencymymissing field `a+aaaaaaaaaaissing field `a+aaaaaaaaaaaaaaaaaaaaaaaaaa_en\""n\""#.as_slice(),
            b"\nd\nd",
        ]
        .concat();
        let msg = detail(&crash);
        assert!(!msg.contains("aaaa"), "{msg}");
        assert!(!msg.contains("missing field"), "{msg}");
        for body in [
            &br#"{"id": "evt_1", "type": "x", "created": "missing field `secret_value` here"}"#[..],
            br#"{"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {"object": {"id": "in_1", "amount_paid": "missing field `secret_value`"}}}"#,
        ] {
            let msg = detail(body);
            assert!(!msg.contains("secret_value"), "{msg}");
            assert!(msg.contains("unexpected type or value"), "{msg}");
        }
    }
}
