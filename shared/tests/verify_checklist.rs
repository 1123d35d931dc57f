//! The attack checklist, scheme by scheme, through the public API only. Every refusal asserts the
//! exact [`VerifyError`] variant.
//!
//! The first half runs the checks every scheme shares over a table of [`Spec`]s (a genuine request
//! is made with [`sign`], which the known-answer tests in `verify_vectors.rs` pin down, then
//! mutated). The second half holds each scheme's own header syntax: bare prefixes, truncated,
//! non-hex and non-base64 signatures, unknown versions beside a valid one, and so on.
#![allow(clippy::unwrap_used)]

use hookline::clock::FixedClock;
use hookline::secret::{Secret, Secrets};
use hookline::verify::{
    Incoming, Scheme, SignInput, VerifiedMeta, Verifier, VerifyError, sign,
    twilio_url_with_body_sha256,
};
use http::{HeaderMap, HeaderName, HeaderValue};

const NOW: i64 = 1_700_000_000;
const TOL: i64 = 300;
const BODY: &[u8] = br#"{"id":"evt_1","type":"thing.happened","n":42}"#;
const FORM_BODY: &[u8] = b"CallSid=CA123&From=%2B15550001111&Body=hello+world&To=%2B15550002222";
const URL: &str = "https://hooks.example.com/twilio/sms?tenant=a";
const ID: &str = "msg_2x7Zq";

// ---------------------------------------------------------------------------------------------
// Support

/// One scheme as the shared checks see it.
struct Spec {
    name: &'static str,
    scheme: Scheme,
    /// Two distinct secrets valid for the scheme.
    secrets: [&'static str; 2],
    /// The headers a request must carry, by their canonical names (as errors report them).
    required: &'static [&'static str],
    /// Whether the scheme signs a timestamp.
    timed: bool,
    /// Whether the signature is hex (upper-case check applies).
    hex: bool,
    /// Whether the body is signed (all but the static header).
    signs_body: bool,
    /// The body a genuine request carries.
    body: &'static [u8],
    /// Extra headers a genuine request carries (Twilio's form content type).
    extra: &'static [(&'static str, &'static str)],
    url: Option<&'static str>,
}

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            name: "stripe",
            scheme: Scheme::Stripe,
            secrets: ["whsec_primary_test_secret", "whsec_second_test_secret"],
            required: &["Stripe-Signature"],
            timed: true,
            hex: true,
            signs_body: true,
            body: BODY,
            extra: &[],
            url: None,
        },
        Spec {
            name: "standard",
            scheme: Scheme::StandardWebhooks,
            secrets: [
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            ],
            required: &["webhook-id", "webhook-timestamp", "webhook-signature"],
            timed: true,
            hex: false,
            signs_body: true,
            body: BODY,
            extra: &[],
            url: None,
        },
        Spec {
            name: "github",
            scheme: Scheme::GitHub,
            secrets: ["gh-secret-one", "gh-secret-two"],
            required: &["X-Hub-Signature-256"],
            timed: false,
            hex: true,
            signs_body: true,
            body: BODY,
            extra: &[],
            url: None,
        },
        Spec {
            name: "shopify",
            scheme: Scheme::Shopify,
            secrets: ["shop-secret-one", "shop-secret-two"],
            required: &["X-Shopify-Hmac-Sha256"],
            timed: false,
            hex: false,
            signs_body: true,
            body: BODY,
            extra: &[],
            url: None,
        },
        Spec {
            name: "slack",
            scheme: Scheme::Slack,
            secrets: ["8f742231b10e8888abcd99yyyzzz85a5", "slack-secret-two"],
            required: &["X-Slack-Signature", "X-Slack-Request-Timestamp"],
            timed: true,
            hex: true,
            signs_body: true,
            body: BODY,
            extra: &[],
            url: None,
        },
        Spec {
            name: "paddle",
            scheme: Scheme::Paddle,
            secrets: ["pdl_ntfset_one", "pdl_ntfset_two"],
            required: &["Paddle-Signature"],
            timed: true,
            hex: true,
            signs_body: true,
            body: BODY,
            extra: &[],
            url: None,
        },
        Spec {
            name: "twilio",
            scheme: Scheme::Twilio,
            secrets: ["twilio-auth-token-1", "twilio-auth-token-2"],
            required: &["X-Twilio-Signature", "Content-Type"],
            timed: false,
            hex: false,
            signs_body: true,
            body: FORM_BODY,
            extra: &[("content-type", "application/x-www-form-urlencoded")],
            url: Some(URL),
        },
        Spec {
            name: "static",
            scheme: Scheme::StaticHeader {
                header: HeaderName::from_static("x-builder-token"),
            },
            secrets: ["builder-token-one", "builder-token-two"],
            required: &["x-builder-token"],
            timed: false,
            hex: false,
            signs_body: false,
            body: BODY,
            extra: &[],
            url: None,
        },
    ]
}

fn verifier(scheme: &Scheme, secrets: &[&str]) -> Verifier {
    let secrets = Secrets::new(secrets.iter().map(|s| Secret::new(*s)).collect()).unwrap();
    Verifier::new(scheme.clone(), secrets, TOL)
        .unwrap()
        .with_clock(FixedClock::at_secs(NOW))
}

fn signed(scheme: &Scheme, secret: &str, body: &[u8], ts: i64, url: Option<&str>) -> HeaderMap {
    let input = SignInput {
        body,
        timestamp: ts,
        id: ID,
        url,
    };
    let mut map = HeaderMap::new();
    for (name, value) in sign(scheme, &Secret::new(secret), &input).unwrap() {
        map.append(name, HeaderValue::from_str(&value).unwrap());
    }
    map
}

fn check(
    v: &Verifier,
    headers: &HeaderMap,
    body: &[u8],
    url: Option<&str>,
) -> Result<VerifiedMeta, VerifyError> {
    v.verify(&Incoming { headers, body, url })
        .map(|ok| ok.meta().clone())
}

fn set(headers: &HeaderMap, name: &str, value: &str) -> HeaderMap {
    let mut h = headers.clone();
    h.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
    h
}

fn get(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).unwrap().to_str().unwrap().to_owned()
}

impl Spec {
    /// A genuine request's headers signed with `secret` at `ts` over `body`.
    fn headers_for(&self, secret: &str, body: &[u8], ts: i64) -> HeaderMap {
        let mut h = signed(&self.scheme, secret, body, ts, self.url);
        for (name, value) in self.extra {
            h = set(&h, name, value);
        }
        h
    }

    fn genuine(&self) -> HeaderMap {
        self.headers_for(self.secrets[0], self.body, NOW)
    }

    fn verifier(&self) -> Verifier {
        verifier(&self.scheme, &self.secrets[..1])
    }

    fn check(
        &self,
        v: &Verifier,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedMeta, VerifyError> {
        check(v, headers, body, self.url)
    }

    /// `headers` with the signed timestamp's text replaced by `raw`.
    fn with_raw_ts(&self, headers: &HeaderMap, raw: &str) -> HeaderMap {
        let now = NOW.to_string();
        match self.scheme {
            Scheme::Stripe => set(
                headers,
                "stripe-signature",
                &get(headers, "stripe-signature").replace(&format!("t={now}"), &format!("t={raw}")),
            ),
            Scheme::Paddle => set(
                headers,
                "paddle-signature",
                &get(headers, "paddle-signature")
                    .replace(&format!("ts={now}"), &format!("ts={raw}")),
            ),
            Scheme::StandardWebhooks => set(headers, "webhook-timestamp", raw),
            Scheme::Slack => set(headers, "x-slack-request-timestamp", raw),
            _ => unreachable!("{} signs no time", self.name),
        }
    }

    /// The header carrying the signature.
    fn signature_header(&self) -> &'static str {
        match self.scheme {
            Scheme::StandardWebhooks => "webhook-signature",
            Scheme::Slack => "X-Slack-Signature",
            Scheme::Twilio => "X-Twilio-Signature",
            _ => self.required[0],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks every scheme shares

#[test]
fn genuine_requests_verify() {
    for spec in specs() {
        let meta = spec.check(&spec.verifier(), &spec.genuine(), spec.body);
        assert!(meta.is_ok(), "{}: {meta:?}", spec.name);
        if spec.timed {
            assert_eq!(meta.unwrap().timestamp, Some(NOW), "{}", spec.name);
        }
    }
}

#[test]
fn wrong_secret_is_a_mismatch() {
    for spec in specs() {
        let h = spec.headers_for(spec.secrets[1], spec.body, NOW);
        assert_eq!(
            spec.check(&spec.verifier(), &h, spec.body),
            Err(VerifyError::SignatureMismatch),
            "{}",
            spec.name
        );
    }
}

#[test]
fn one_changed_body_byte_is_a_mismatch() {
    for spec in specs().into_iter().filter(|s| s.signs_body) {
        let h = spec.genuine();
        for i in [0, spec.body.len() / 2, spec.body.len() - 1] {
            let mut body = spec.body.to_vec();
            // Stays a printable, non-special form character, so Twilio's decoded form changes.
            body[i] = if body[i] == b'x' { b'y' } else { b'x' };
            assert_eq!(
                spec.check(&spec.verifier(), &h, &body),
                Err(VerifyError::SignatureMismatch),
                "{} byte {i}",
                spec.name
            );
        }
    }
}

#[test]
fn second_of_two_secrets_matching_verifies() {
    for spec in specs() {
        let v = verifier(&spec.scheme, &spec.secrets);
        let h = spec.headers_for(spec.secrets[1], spec.body, NOW);
        assert!(spec.check(&v, &h, spec.body).is_ok(), "{}", spec.name);
        let unrelated = match spec.scheme {
            Scheme::StandardWebhooks => "whsec_dW5yZWxhdGVkLWtleQ==",
            _ => "unrelated-secret",
        };
        let h = spec.headers_for(unrelated, spec.body, NOW);
        let expected = spec.check(&v, &h, spec.body);
        assert_eq!(
            expected,
            Err(VerifyError::SignatureMismatch),
            "{}",
            spec.name
        );
    }
}

#[test]
fn empty_body_verifies() {
    for spec in specs() {
        let h = spec.headers_for(spec.secrets[0], b"", NOW);
        assert!(
            spec.check(&spec.verifier(), &h, b"").is_ok(),
            "{}",
            spec.name
        );
    }
}

#[test]
fn non_utf8_body_verifies_where_the_scheme_signs_bytes() {
    let body = b"\xff\xfe\x00binary\x80";
    for spec in specs()
        .into_iter()
        .filter(|s| !matches!(s.scheme, Scheme::Twilio))
    {
        let h = spec.headers_for(spec.secrets[0], body, NOW);
        assert!(
            spec.check(&spec.verifier(), &h, body).is_ok(),
            "{}",
            spec.name
        );
    }
    // Twilio signs bytes only through bodySHA256 (see the Twilio section for forms).
    let url = twilio_url_with_body_sha256(URL, body);
    let h = signed(&Scheme::Twilio, "tok", body, NOW, Some(&url));
    assert!(check(&verifier(&Scheme::Twilio, &["tok"]), &h, body, Some(&url)).is_ok());
}

#[test]
fn each_required_header_missing() {
    for spec in specs() {
        for name in spec.required {
            let mut h = spec.genuine();
            h.remove(*name);
            let expected = match spec.scheme {
                Scheme::StaticHeader { .. } => "configured static token header",
                _ => name,
            };
            assert_eq!(
                spec.check(&spec.verifier(), &h, spec.body),
                Err(VerifyError::MissingHeader(expected)),
                "{} {name}",
                spec.name
            );
        }
    }
}

#[test]
fn each_required_header_repeated() {
    for spec in specs() {
        for name in spec.required {
            let mut h = spec.genuine();
            let value = h.get(*name).unwrap().clone();
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
            let expected = match spec.scheme {
                Scheme::StaticHeader { .. } => "configured static token header",
                _ => name,
            };
            assert_eq!(
                spec.check(&spec.verifier(), &h, spec.body),
                Err(VerifyError::RepeatedHeader(expected)),
                "{} {name}",
                spec.name
            );
        }
    }
}

#[test]
fn empty_signature_is_malformed() {
    for spec in specs() {
        for blank in ["", " "] {
            let h = set(&spec.genuine(), spec.signature_header(), blank);
            assert_eq!(
                spec.check(&spec.verifier(), &h, spec.body),
                Err(VerifyError::MalformedSignature),
                "{} {blank:?}",
                spec.name
            );
        }
    }
}

#[test]
fn timestamp_at_the_tolerance_edges() {
    for spec in specs().into_iter().filter(|s| s.timed) {
        let v = spec.verifier();
        let at = |ts| {
            let h = spec.headers_for(spec.secrets[0], spec.body, ts);
            spec.check(&v, &h, spec.body)
        };
        assert_eq!(
            at(NOW - TOL).unwrap().timestamp,
            Some(NOW - TOL),
            "{}",
            spec.name
        );
        assert_eq!(
            at(NOW + TOL).unwrap().timestamp,
            Some(NOW + TOL),
            "{}",
            spec.name
        );
        assert_eq!(
            at(NOW - TOL - 1),
            Err(VerifyError::TimestampTooOld),
            "{}",
            spec.name
        );
        assert_eq!(
            at(NOW + TOL + 1),
            Err(VerifyError::TimestampInFuture),
            "{}",
            spec.name
        );
        assert_eq!(at(0), Err(VerifyError::TimestampTooOld), "{}", spec.name);
        assert_eq!(
            at(i64::MAX),
            Err(VerifyError::TimestampInFuture),
            "{}",
            spec.name
        );
    }
}

#[test]
fn non_numeric_and_overflowing_timestamps() {
    for spec in specs().into_iter().filter(|s| s.timed) {
        let h = spec.genuine();
        for raw in [
            "abc",
            "99999999999999999999",
            "-5",
            "+1700000000",
            "1700000000.5",
            "0x10",
            "",
        ] {
            assert_eq!(
                spec.check(&spec.verifier(), &spec.with_raw_ts(&h, raw), spec.body),
                Err(VerifyError::InvalidTimestamp),
                "{} {raw:?}",
                spec.name
            );
        }
    }
}

#[test]
fn signed_timestamp_text_is_what_is_verified() {
    // `0` + the same number is the same time but another signed string.
    for spec in specs().into_iter().filter(|s| s.timed) {
        let h = spec.with_raw_ts(&spec.genuine(), &format!("0{NOW}"));
        assert_eq!(
            spec.check(&spec.verifier(), &h, spec.body),
            Err(VerifyError::SignatureMismatch),
            "{}",
            spec.name
        );
    }
}

/// Upper-case hex is accepted: hex is decoded to bytes before the constant-time comparison.
#[test]
fn upper_case_hex_verifies() {
    for spec in specs().into_iter().filter(|s| s.hex) {
        let h = spec.genuine();
        let name = spec.signature_header();
        let value = get(&h, name);
        let cut = value.rfind('=').unwrap() + 1;
        let upper = format!("{}{}", &value[..cut], value[cut..].to_ascii_uppercase());
        assert_ne!(upper, value);
        let h = set(&h, name, &upper);
        assert!(
            spec.check(&spec.verifier(), &h, spec.body).is_ok(),
            "{}",
            spec.name
        );
    }
}

#[test]
fn header_names_are_case_insensitive_and_non_ascii_values_are_malformed() {
    for spec in specs() {
        let name = spec.signature_header();
        let mut h = spec.genuine();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(b"\xc3\xa9t\xc3\xa9").unwrap(),
        );
        let expected = match spec.scheme {
            // The token is compared as raw bytes: a wrong token, not a malformed header.
            Scheme::StaticHeader { .. } => VerifyError::SignatureMismatch,
            _ => VerifyError::MalformedHeader(name),
        };
        assert_eq!(
            spec.check(&spec.verifier(), &h, spec.body),
            Err(expected),
            "{}",
            spec.name
        );
    }
}

#[test]
fn empty_secrets_are_refused_at_construction() {
    for spec in specs() {
        let secrets = Secrets::new(vec![Secret::new(spec.secrets[0]), Secret::new("")]).unwrap();
        assert_eq!(
            Verifier::new(spec.scheme.clone(), secrets, TOL).map(|_| ()),
            Err(VerifyError::InvalidSecret),
            "{}",
            spec.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Stripe

mod stripe {
    use super::*;

    const SECRET: &str = "whsec_primary_test_secret";

    fn v1() -> String {
        let h = signed(&Scheme::Stripe, SECRET, BODY, NOW, None);
        get(&h, "stripe-signature")
            .split_once(",v1=")
            .unwrap()
            .1
            .to_owned()
    }

    fn run(header: &str) -> Result<VerifiedMeta, VerifyError> {
        let mut h = HeaderMap::new();
        h.insert("stripe-signature", HeaderValue::from_str(header).unwrap());
        check(&verifier(&Scheme::Stripe, &[SECRET]), &h, BODY, None)
    }

    #[test]
    fn signature_shapes() {
        let good = v1();
        let wrong = "0".repeat(64);
        assert!(run(&format!("t={NOW},v1={good}")).is_ok());
        assert!(
            run(&format!("t={NOW}, v1={good}")).is_ok(),
            "blanks around items"
        );
        assert!(run(&format!("v1={good},t={NOW}")).is_ok(), "order is free");
        let cases = [
            (format!("t={NOW},v1="), VerifyError::MalformedSignature),
            (
                format!("t={NOW},v1={}", &good[..63]),
                VerifyError::MalformedSignature,
            ),
            (
                format!("t={NOW},v1={}", &good[..32]),
                VerifyError::MalformedSignature,
            ),
            (
                format!("t={NOW},v1={good}00"),
                VerifyError::MalformedSignature,
            ),
            (
                format!("t={NOW},v1={}", "zz".repeat(32)),
                VerifyError::MalformedSignature,
            ),
            (format!("t={NOW}"), VerifyError::NoSupportedSignature),
            (
                format!("t={NOW},v0={good}"),
                VerifyError::NoSupportedSignature,
            ),
            (
                format!("t={NOW},v1={wrong}"),
                VerifyError::SignatureMismatch,
            ),
            (
                format!("t={NOW},v1=,v1={wrong}"),
                VerifyError::SignatureMismatch,
            ),
            (
                format!("v1={good}"),
                VerifyError::MalformedHeader("Stripe-Signature"),
            ),
            (
                format!("t={NOW},t={NOW},v1={good}"),
                VerifyError::MalformedHeader("Stripe-Signature"),
            ),
            (
                format!("t={NOW},garbage,v1={good}"),
                VerifyError::MalformedHeader("Stripe-Signature"),
            ),
            (format!("t=,v1={good}"), VerifyError::InvalidTimestamp),
        ];
        for (header, expected) in cases {
            assert_eq!(run(&header), Err(expected), "{header}");
        }
    }

    #[test]
    fn unknown_schemes_beside_a_valid_v1_are_ignored() {
        let good = v1();
        let header = format!("t={NOW},v0={},v1={good},v9=whatever,x=1", "ab".repeat(32));
        assert!(run(&header).is_ok());
    }

    #[test]
    fn several_v1_one_valid() {
        let good = v1();
        let wrong = "1".repeat(64);
        assert!(run(&format!("t={NOW},v1={wrong},v1={good}")).is_ok());
        assert!(run(&format!("t={NOW},v1={good},v1={wrong}")).is_ok());
        assert!(
            run(&format!("t={NOW},v1=,v1={good}")).is_ok(),
            "a malformed one beside"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks

mod standard {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn good() -> String {
        let h = signed(&Scheme::StandardWebhooks, SECRET, BODY, NOW, None);
        get(&h, "webhook-signature")
    }

    fn headers(prefix: &str, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let name = |s: &str| HeaderName::from_bytes(format!("{prefix}-{s}").as_bytes()).unwrap();
        h.insert(name("id"), HeaderValue::from_static(ID));
        h.insert(
            name("timestamp"),
            HeaderValue::from_str(&NOW.to_string()).unwrap(),
        );
        h.insert(name("signature"), HeaderValue::from_str(signature).unwrap());
        h
    }

    fn run(signature: &str) -> Result<VerifiedMeta, VerifyError> {
        check_headers(&headers("webhook", signature))
    }

    fn check_headers(h: &HeaderMap) -> Result<VerifiedMeta, VerifyError> {
        check(
            &verifier(&Scheme::StandardWebhooks, &[SECRET]),
            h,
            BODY,
            None,
        )
    }

    #[test]
    fn meta_carries_id_and_timestamp() {
        let meta = run(&good()).unwrap();
        assert_eq!(meta.delivery_id.as_deref(), Some(ID));
        assert_eq!(meta.timestamp, Some(NOW));
        assert_eq!(meta.event_type, None);
    }

    #[test]
    fn signature_shapes() {
        let good = good();
        let b64 = good.strip_prefix("v1,").unwrap();
        let wrong = format!("v1,{}", "A".repeat(43) + "=");
        let cases = [
            ("v1,".to_owned(), VerifyError::MalformedSignature),
            (
                format!("v1,{}", &b64[..40]),
                VerifyError::MalformedSignature,
            ),
            (
                format!("v1,{}", &b64[..43]),
                VerifyError::MalformedSignature,
            ),
            (format!("v1,{b64}AAAA"), VerifyError::MalformedSignature),
            (
                format!("v1,{}", "!".repeat(44)),
                VerifyError::MalformedSignature,
            ),
            (
                format!("v1,{}", hex::encode([7u8; 32])),
                VerifyError::MalformedSignature,
            ),
            (format!("v1a,{b64}"), VerifyError::NoSupportedSignature),
            (format!("v2,{b64}"), VerifyError::NoSupportedSignature),
            ("v1".to_owned(), VerifyError::NoSupportedSignature),
            (b64.to_owned(), VerifyError::NoSupportedSignature),
            (wrong.clone(), VerifyError::SignatureMismatch),
            (format!("v1, {wrong}"), VerifyError::SignatureMismatch),
        ];
        for (sig, expected) in cases {
            assert_eq!(run(&sig), Err(expected), "{sig}");
        }
    }

    #[test]
    fn other_versions_beside_a_valid_v1_are_ignored() {
        let good = good();
        assert!(run(&format!("v1a,{} {good}", "A".repeat(86) + "==")).is_ok());
        assert!(run(&format!("v2,abc nonsense {good}")).is_ok());
    }

    #[test]
    fn several_v1_one_valid() {
        let good = good();
        let wrong = format!("v1,{}", "B".repeat(43) + "=");
        assert!(run(&format!("{wrong} {good}")).is_ok());
        assert!(run(&format!("{good} {wrong}")).is_ok());
        assert!(run(&format!("v1, {good}")).is_ok(), "a bare one beside");
    }

    #[test]
    fn svix_headers_and_fallback() {
        assert!(check_headers(&headers("svix", &good())).is_ok());
        // Each header is taken from `webhook-*` first, then `svix-*`.
        let mut h = headers("webhook", &good());
        let ts = h.remove("webhook-timestamp").unwrap();
        h.insert("svix-timestamp", ts);
        assert!(check_headers(&h).is_ok());
        // A wrong svix header does not matter when the webhook one is there.
        h.insert("svix-signature", HeaderValue::from_static("v1,bogus"));
        assert!(check_headers(&h).is_ok());
        let mut h = headers("svix", &good());
        h.remove("svix-id");
        assert_eq!(
            check_headers(&h),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
        let mut h = headers("svix", &good());
        h.append("svix-signature", HeaderValue::from_static("v1,x"));
        assert_eq!(
            check_headers(&h),
            Err(VerifyError::RepeatedHeader("svix-signature"))
        );
    }

    #[test]
    fn id_is_signed_and_must_not_be_empty() {
        let mut h = headers("webhook", &good());
        h.insert("webhook-id", HeaderValue::from_static("msg_other"));
        assert_eq!(check_headers(&h), Err(VerifyError::SignatureMismatch));
        h.insert("webhook-id", HeaderValue::from_static(""));
        assert_eq!(
            check_headers(&h),
            Err(VerifyError::MalformedHeader("webhook-id"))
        );
    }

    #[test]
    fn secret_without_prefix_is_the_same_key() {
        let v = verifier(
            &Scheme::StandardWebhooks,
            &["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        );
        assert!(check(&v, &headers("webhook", &good()), BODY, None).is_ok());
        let bad = Secrets::new(vec![Secret::new("whsec_***")]).unwrap();
        assert_eq!(
            Verifier::new(Scheme::StandardWebhooks, bad, TOL).map(|_| ()),
            Err(VerifyError::InvalidSecret)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub

mod github {
    use super::*;

    const SECRET: &str = "It's a Secret to Everybody";

    fn good() -> String {
        get(
            &signed(&Scheme::GitHub, SECRET, BODY, NOW, None),
            "x-hub-signature-256",
        )
    }

    fn run(h: &HeaderMap) -> Result<VerifiedMeta, VerifyError> {
        check(&verifier(&Scheme::GitHub, &[SECRET]), h, BODY, None)
    }

    fn with_sig(sig: &str) -> HeaderMap {
        set(&HeaderMap::new(), "x-hub-signature-256", sig)
    }

    #[test]
    fn signature_shapes() {
        let good = good();
        let hex = good.strip_prefix("sha256=").unwrap();
        let cases = [
            ("sha256=".to_owned(), VerifyError::MalformedSignature),
            (
                format!("sha256={}", &hex[..63]),
                VerifyError::MalformedSignature,
            ),
            (format!("sha256={hex}0"), VerifyError::MalformedSignature),
            (
                format!("sha256={}", "g".repeat(64)),
                VerifyError::MalformedSignature,
            ),
            (format!("sha256= {hex}"), VerifyError::MalformedSignature),
            (hex.to_owned(), VerifyError::NoSupportedSignature),
            (
                format!("sha1={}", &hex[..40]),
                VerifyError::NoSupportedSignature,
            ),
            (format!("SHA256={hex}"), VerifyError::NoSupportedSignature),
            (
                format!("sha256={}", "0".repeat(64)),
                VerifyError::SignatureMismatch,
            ),
        ];
        for (sig, expected) in cases {
            assert_eq!(run(&with_sig(&sig)), Err(expected), "{sig}");
        }
    }

    #[test]
    fn legacy_sha1_header_beside_a_valid_one_is_ignored() {
        let h = set(&with_sig(&good()), "x-hub-signature", "sha1=0000");
        assert!(run(&h).is_ok());
        // ... and is not enough alone.
        let h = set(&HeaderMap::new(), "x-hub-signature", "sha1=0000");
        assert_eq!(
            run(&h),
            Err(VerifyError::MissingHeader("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn meta_from_delivery_and_event_headers() {
        let h = set(
            &with_sig(&good()),
            "x-github-delivery",
            "72d3162e-cc78-11e3",
        );
        let h = set(&h, "x-github-event", "push");
        let meta = run(&h).unwrap();
        assert_eq!(meta.delivery_id.as_deref(), Some("72d3162e-cc78-11e3"));
        assert_eq!(meta.event_type.as_deref(), Some("push"));
        assert_eq!(meta.timestamp, None);
        let mut twice = h.clone();
        twice.append("x-github-event", HeaderValue::from_static("ping"));
        assert_eq!(
            run(&twice),
            Err(VerifyError::RepeatedHeader("X-GitHub-Event"))
        );
        let mut twice = h;
        twice.append("x-github-delivery", HeaderValue::from_static("other"));
        assert_eq!(
            run(&twice),
            Err(VerifyError::RepeatedHeader("X-GitHub-Delivery"))
        );
    }

    #[test]
    fn sign_sets_the_delivery_header() {
        let h = signed(&Scheme::GitHub, SECRET, BODY, NOW, None);
        assert_eq!(run(&h).unwrap().delivery_id.as_deref(), Some(ID));
    }
}

// ---------------------------------------------------------------------------------------------
// Shopify

mod shopify {
    use super::*;

    const SECRET: &str = "shop-secret";

    fn good() -> String {
        get(
            &signed(&Scheme::Shopify, SECRET, BODY, NOW, None),
            "x-shopify-hmac-sha256",
        )
    }

    fn run(h: &HeaderMap) -> Result<VerifiedMeta, VerifyError> {
        check(&verifier(&Scheme::Shopify, &[SECRET]), h, BODY, None)
    }

    fn with_sig(sig: &str) -> HeaderMap {
        set(&HeaderMap::new(), "x-shopify-hmac-sha256", sig)
    }

    #[test]
    fn signature_shapes() {
        let good = good();
        let cases = [
            (good[..43].to_owned(), VerifyError::MalformedSignature),
            (good[..40].to_owned(), VerifyError::MalformedSignature),
            (format!("{good}AAAA"), VerifyError::MalformedSignature),
            ("*".repeat(44), VerifyError::MalformedSignature),
            (hex::encode([1u8; 32]), VerifyError::MalformedSignature),
            (format!("sha256={good}"), VerifyError::MalformedSignature),
            ("A".repeat(43) + "=", VerifyError::SignatureMismatch),
        ];
        for (sig, expected) in cases {
            assert_eq!(run(&with_sig(&sig)), Err(expected), "{sig}");
        }
    }

    #[test]
    fn unprefixed_header_and_meta() {
        let h = set(&HeaderMap::new(), "shopify-hmac-sha256", &good());
        assert!(run(&h).is_ok());
        let h = set(&with_sig(&good()), "x-shopify-webhook-id", "b54557e4");
        let h = set(&h, "x-shopify-event-id", "evt-1");
        let h = set(&h, "x-shopify-topic", "orders/create");
        let meta = run(&h).unwrap();
        assert_eq!(meta.delivery_id.as_deref(), Some("b54557e4"));
        assert_eq!(meta.event_type.as_deref(), Some("orders/create"));
        let h = set(&with_sig(&good()), "x-shopify-event-id", "evt-1");
        assert_eq!(run(&h).unwrap().delivery_id.as_deref(), Some("evt-1"));
        let h = set(&with_sig(&good()), "shopify-topic", "orders/paid");
        assert_eq!(run(&h).unwrap().event_type.as_deref(), Some("orders/paid"));
    }

    #[test]
    fn prefixed_header_wins_over_unprefixed() {
        let h = set(&with_sig(&good()), "shopify-hmac-sha256", "bogus");
        assert!(run(&h).is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Slack

mod slack {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    fn genuine() -> HeaderMap {
        signed(&Scheme::Slack, SECRET, BODY, NOW, None)
    }

    fn run(h: &HeaderMap) -> Result<VerifiedMeta, VerifyError> {
        check(&verifier(&Scheme::Slack, &[SECRET]), h, BODY, None)
    }

    #[test]
    fn signature_shapes() {
        let good = get(&genuine(), "x-slack-signature");
        let hex = good.strip_prefix("v0=").unwrap();
        let cases = [
            ("v0=".to_owned(), VerifyError::MalformedSignature),
            (
                format!("v0={}", &hex[..63]),
                VerifyError::MalformedSignature,
            ),
            (format!("v0={hex}ab"), VerifyError::MalformedSignature),
            (
                format!("v0={}", "x".repeat(64)),
                VerifyError::MalformedSignature,
            ),
            (format!("v1={hex}"), VerifyError::NoSupportedSignature),
            (hex.to_owned(), VerifyError::NoSupportedSignature),
            (
                format!("v0={}", "f".repeat(64)),
                VerifyError::SignatureMismatch,
            ),
        ];
        for (sig, expected) in cases {
            assert_eq!(
                run(&set(&genuine(), "x-slack-signature", &sig)),
                Err(expected),
                "{sig}"
            );
        }
    }

    #[test]
    fn timestamp_is_signed() {
        let h = set(
            &genuine(),
            "x-slack-request-timestamp",
            &(NOW + 1).to_string(),
        );
        assert_eq!(run(&h), Err(VerifyError::SignatureMismatch));
    }
}

// ---------------------------------------------------------------------------------------------
// Paddle

mod paddle {
    use super::*;

    const SECRET: &str = "pdl_ntfset_secret";

    fn h1() -> String {
        let h = signed(&Scheme::Paddle, SECRET, BODY, NOW, None);
        get(&h, "paddle-signature")
            .split_once(";h1=")
            .unwrap()
            .1
            .to_owned()
    }

    fn run(header: &str) -> Result<VerifiedMeta, VerifyError> {
        let h = set(&HeaderMap::new(), "paddle-signature", header);
        check(&verifier(&Scheme::Paddle, &[SECRET]), &h, BODY, None)
    }

    #[test]
    fn signature_shapes() {
        let good = h1();
        let wrong = "e".repeat(64);
        assert!(run(&format!("ts={NOW};h1={good}")).is_ok());
        assert!(run(&format!("h1={good}; ts={NOW}")).is_ok());
        let cases = [
            (format!("ts={NOW};h1="), VerifyError::MalformedSignature),
            (
                format!("ts={NOW};h1={}", &good[..60]),
                VerifyError::MalformedSignature,
            ),
            (
                format!("ts={NOW};h1={}", "q".repeat(64)),
                VerifyError::MalformedSignature,
            ),
            (format!("ts={NOW}"), VerifyError::NoSupportedSignature),
            (
                format!("ts={NOW};h2={good}"),
                VerifyError::NoSupportedSignature,
            ),
            (
                format!("ts={NOW};h1={wrong}"),
                VerifyError::SignatureMismatch,
            ),
            (format!("ts={NOW},h1={good}"), VerifyError::InvalidTimestamp),
            (
                format!("h1={good}"),
                VerifyError::MalformedHeader("Paddle-Signature"),
            ),
            (
                format!("ts={NOW};ts={NOW};h1={good}"),
                VerifyError::MalformedHeader("Paddle-Signature"),
            ),
            (
                format!("ts={NOW};h1{good}"),
                VerifyError::MalformedHeader("Paddle-Signature"),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(run(&header), Err(expected), "{header}");
        }
    }

    #[test]
    fn unknown_keys_and_several_h1() {
        let good = h1();
        let wrong = "e".repeat(64);
        assert!(run(&format!("ts={NOW};h2=zz;h1={good}")).is_ok());
        assert!(run(&format!("ts={NOW};h1={wrong};h1={good}")).is_ok());
        assert!(run(&format!("ts={NOW};h1={good};h1={wrong}")).is_ok());
        assert!(run(&format!("ts={NOW};h1=;h1={good}")).is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Twilio

mod twilio {
    use super::*;

    const TOKEN: &str = "12345";
    const FORM: &str = "application/x-www-form-urlencoded";

    fn form_request(body: &[u8], url: &str) -> HeaderMap {
        set(
            &signed(&Scheme::Twilio, TOKEN, body, NOW, Some(url)),
            "content-type",
            FORM,
        )
    }

    fn run(h: &HeaderMap, body: &[u8], url: Option<&str>) -> Result<VerifiedMeta, VerifyError> {
        check(&verifier(&Scheme::Twilio, &[TOKEN]), h, body, url)
    }

    #[test]
    fn signature_shapes() {
        let good = get(&form_request(FORM_BODY, URL), "x-twilio-signature");
        assert_eq!(good.len(), 28);
        let cases = [
            (good[..27].to_owned(), VerifyError::MalformedSignature),
            (good[..20].to_owned(), VerifyError::MalformedSignature),
            (format!("{good}AAAA"), VerifyError::MalformedSignature),
            ("%".repeat(28), VerifyError::MalformedSignature),
            (hex::encode([0u8; 20]), VerifyError::MalformedSignature),
            ("A".repeat(27) + "=", VerifyError::SignatureMismatch),
        ];
        for (sig, expected) in cases {
            let h = set(&form_request(FORM_BODY, URL), "x-twilio-signature", &sig);
            assert_eq!(run(&h, FORM_BODY, Some(URL)), Err(expected), "{sig}");
        }
    }

    #[test]
    fn url_is_required_and_signed() {
        let h = form_request(FORM_BODY, URL);
        assert_eq!(run(&h, FORM_BODY, None), Err(VerifyError::MissingUrl));
        let other = URL.replace("tenant=a", "tenant=b");
        assert_eq!(
            run(&h, FORM_BODY, Some(&other)),
            Err(VerifyError::SignatureMismatch)
        );
        let sign_input = SignInput {
            body: FORM_BODY,
            timestamp: NOW,
            id: "",
            url: None,
        };
        assert_eq!(
            sign(&Scheme::Twilio, &Secret::new(TOKEN), &sign_input),
            Err(VerifyError::MissingUrl)
        );
    }

    #[test]
    fn default_port_added_or_removed() {
        let h = form_request(FORM_BODY, URL);
        let with_port = URL.replace("example.com/", "example.com:443/");
        assert!(run(&h, FORM_BODY, Some(&with_port)).is_ok());
        let h = form_request(FORM_BODY, &with_port);
        assert!(run(&h, FORM_BODY, Some(URL)).is_ok());
        let other_port = URL.replace("example.com/", "example.com:8443/");
        assert_eq!(
            run(&h, FORM_BODY, Some(&other_port)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn form_parameters_are_sorted_and_decoded() {
        let h = form_request(FORM_BODY, URL);
        let reordered = b"To=%2B15550002222&Body=hello%20world&CallSid=CA123&From=%2B15550001111";
        assert!(run(&h, reordered, Some(URL)).is_ok());
        let extra = [FORM_BODY, b"&Extra=1"].concat();
        assert_eq!(
            run(&h, &extra, Some(URL)),
            Err(VerifyError::SignatureMismatch)
        );
        let h = set(
            &h,
            "content-type",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        );
        assert!(run(&h, FORM_BODY, Some(URL)).is_ok());
    }

    #[test]
    fn non_utf8_form_never_verifies() {
        let body = b"Body=%FF%FE&From=\xff";
        let input = SignInput {
            body,
            timestamp: NOW,
            id: "",
            url: Some(URL),
        };
        assert_eq!(
            sign(&Scheme::Twilio, &Secret::new(TOKEN), &input),
            Err(VerifyError::MalformedHeader("Content-Type"))
        );
        // The lossy decoding of this body signs as U+FFFD; it still must not verify.
        let lossy = "Body=\u{fffd}\u{fffd}&From=\u{fffd}";
        let h = form_request(lossy.as_bytes(), URL);
        assert!(run(&h, lossy.as_bytes(), Some(URL)).is_ok());
        assert_eq!(
            run(&h, body, Some(URL)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn json_body_through_body_sha256() {
        let url = twilio_url_with_body_sha256(URL, BODY);
        let h = signed(&Scheme::Twilio, TOKEN, BODY, NOW, Some(&url));
        let h = set(&h, "content-type", "application/json");
        assert!(run(&h, BODY, Some(&url)).is_ok());
        // Content type does not matter once the hash pins the body.
        assert!(run(&set(&h, "content-type", FORM), BODY, Some(&url)).is_ok());
        let mut changed = BODY.to_vec();
        changed[3] ^= 1;
        assert_eq!(
            run(&h, &changed, Some(&url)),
            Err(VerifyError::SignatureMismatch)
        );
        // A URL whose hash names another body, signed genuinely: still refused.
        let other = twilio_url_with_body_sha256(URL, b"{}");
        let h2 = signed(&Scheme::Twilio, TOKEN, BODY, NOW, Some(&other));
        assert_eq!(
            run(&h2, BODY, Some(&other)),
            Err(VerifyError::SignatureMismatch)
        );
        // Upper-case hex in bodySHA256 is a different signed URL but the same hash.
        let upper = format!(
            "{URL}&bodySHA256={}",
            url.rsplit_once('=').unwrap().1.to_uppercase()
        );
        let h3 = signed(&Scheme::Twilio, TOKEN, BODY, NOW, Some(&upper));
        assert!(run(&h3, BODY, Some(&upper)).is_ok());
        for bad in ["", "abc", &"zz".repeat(32)] {
            let bad_url = format!("{URL}&bodySHA256={bad}");
            let h = signed(&Scheme::Twilio, TOKEN, BODY, NOW, Some(&bad_url));
            assert_eq!(
                run(&h, BODY, Some(&bad_url)),
                Err(VerifyError::MalformedSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn unsigned_non_form_body_is_refused() {
        let h = signed(&Scheme::Twilio, TOKEN, b"", NOW, Some(URL));
        assert!(run(&h, b"", Some(URL)).is_ok(), "empty body: URL only");
        let h = set(&h, "content-type", "application/json");
        assert_eq!(
            run(&h, BODY, Some(URL)),
            Err(VerifyError::MalformedHeader("Content-Type"))
        );
        let h = signed(&Scheme::Twilio, TOKEN, b"", NOW, Some(URL));
        assert_eq!(
            run(&h, BODY, Some(URL)),
            Err(VerifyError::MissingHeader("Content-Type"))
        );
    }

    #[test]
    fn idempotency_token_is_the_delivery_id() {
        let h = form_request(FORM_BODY, URL);
        assert_eq!(
            run(&h, FORM_BODY, Some(URL))
                .unwrap()
                .delivery_id
                .as_deref(),
            Some(ID)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Static header

mod static_header {
    use super::*;

    fn scheme() -> Scheme {
        "static-header:X-Builder-Token".parse().unwrap()
    }

    fn run(token: &[u8]) -> Result<VerifiedMeta, VerifyError> {
        let mut h = HeaderMap::new();
        h.insert("x-builder-token", HeaderValue::from_bytes(token).unwrap());
        check(
            &verifier(&scheme(), &["token-one", "token-two"]),
            &h,
            BODY,
            None,
        )
    }

    #[test]
    fn token_shapes() {
        assert_eq!(run(b"token-one"), Ok(VerifiedMeta::default()));
        assert!(run(b"token-two").is_ok());
        for wrong in [
            &b"token-on"[..],
            b"token-one ",
            b"token-onex",
            b"TOKEN-ONE",
            b"x",
        ] {
            assert_eq!(run(wrong), Err(VerifyError::SignatureMismatch), "{wrong:?}");
        }
        assert_eq!(run(b""), Err(VerifyError::MalformedSignature));
    }
}

#[test]
fn debug_output_never_shows_key_material() {
    for spec in specs() {
        let v = verifier(&spec.scheme, &spec.secrets);
        let shown = format!("{v:?}");
        for secret in spec.secrets {
            assert!(!shown.contains(secret), "{}: {shown}", spec.name);
        }
        assert!(shown.contains("redacted"), "{}", spec.name);
    }
}
