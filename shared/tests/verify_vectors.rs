//! Known-answer tests: every published vector in `fixtures/signatures.json` (a copy of the
//! provider vectors, so the project stands on its own) goes through the public API with a clock
//! standing at the vector's timestamp. Valid vectors must verify and must be reproduced by
//! [`sign`]; invalid ones must be refused with the exact error.
#![allow(clippy::unwrap_used)]

use hookline::clock::FixedClock;
use hookline::secret::{Secret, Secrets};
use hookline::verify::{
    DEFAULT_TOLERANCE_SECS, Incoming, Scheme, SignInput, Verifier, VerifyError, sign,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/signatures.json");

fn vectors(group: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(FIXTURE).unwrap();
    let list = all[group].as_array().unwrap().clone();
    assert!(!list.is_empty(), "no vectors for {group}");
    list
}

fn s<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} missing"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

struct Case<'a> {
    scheme: Scheme,
    secret: &'a str,
    now: i64,
    headers: HeaderMap,
    body: Vec<u8>,
    url: Option<&'a str>,
    valid: bool,
}

impl Case<'_> {
    fn verify(&self) -> Result<hookline::verify::VerifiedMeta, VerifyError> {
        let secrets = Secrets::new(vec![Secret::new(self.secret)]).unwrap();
        let verifier = Verifier::new(self.scheme.clone(), secrets, DEFAULT_TOLERANCE_SECS)
            .unwrap()
            .with_clock(FixedClock::at_secs(self.now));
        let req = Incoming {
            headers: &self.headers,
            body: &self.body,
            url: self.url,
        };
        verifier.verify(&req).map(|v| v.meta().clone())
    }

    /// Valid vectors verify, and `sign` reproduces the header `signature_header` carries;
    /// invalid ones fail with `invalid_error`.
    fn check(&self, invalid_error: VerifyError, signature_header: &str, id: &str) {
        self.check_as(invalid_error, signature_header, signature_header, id);
    }

    /// As [`Case::check`], when the request carries the signature under another name.
    fn check_as(&self, invalid_error: VerifyError, signed: &str, received: &str, id: &str) {
        let got = self.verify();
        if !self.valid {
            assert_eq!(got, Err(invalid_error));
            return;
        }
        got.unwrap();
        let input = SignInput {
            body: &self.body,
            timestamp: self.now,
            id,
            url: self.url,
        };
        let produced = sign(&self.scheme, &Secret::new(self.secret), &input).unwrap();
        let (_, value) = produced
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(signed))
            .unwrap();
        assert_eq!(value, self.headers.get(received).unwrap().to_str().unwrap());
    }
}

#[test]
fn standard_webhooks_vectors() {
    let mut seen_invalid = 0;
    for v in vectors("standard_webhooks") {
        let ts = v["webhook_timestamp"].as_i64().unwrap();
        let ts_s = ts.to_string();
        let valid = v["valid"].as_bool().unwrap();
        let sig = s(&v, "webhook_signature");
        let error = if sig == "v1," {
            VerifyError::MalformedSignature
        } else {
            VerifyError::SignatureMismatch
        };
        seen_invalid += usize::from(!valid);
        for prefix in ["webhook", "svix"] {
            let case = Case {
                scheme: Scheme::StandardWebhooks,
                secret: s(&v, "secret"),
                now: ts,
                headers: headers(&[
                    (&format!("{prefix}-id"), s(&v, "webhook_id")),
                    (&format!("{prefix}-timestamp"), &ts_s),
                    (&format!("{prefix}-signature"), sig),
                ]),
                body: s(&v, "body").as_bytes().to_vec(),
                url: None,
                valid,
            };
            if valid {
                let meta = case.verify().unwrap();
                assert_eq!(meta.timestamp, Some(ts));
                assert_eq!(meta.delivery_id.as_deref(), Some(s(&v, "webhook_id")));
            }
            case.check_as(
                error.clone(),
                "webhook-signature",
                &format!("{prefix}-signature"),
                s(&v, "webhook_id"),
            );
        }
    }
    assert_eq!(seen_invalid, 2);
}

#[test]
fn github_vectors() {
    for v in vectors("github") {
        let case = Case {
            scheme: Scheme::GitHub,
            secret: s(&v, "secret"),
            now: 1_700_000_000,
            headers: headers(&[("x-hub-signature-256", s(&v, "x_hub_signature_256"))]),
            body: s(&v, "body").as_bytes().to_vec(),
            url: None,
            valid: v["valid"].as_bool().unwrap(),
        };
        case.check(VerifyError::SignatureMismatch, "x-hub-signature-256", "");
    }
}

#[test]
fn slack_vectors() {
    for v in vectors("slack") {
        let ts = v["x_slack_request_timestamp"].as_i64().unwrap();
        let case = Case {
            scheme: Scheme::Slack,
            secret: s(&v, "secret"),
            now: ts,
            headers: headers(&[
                ("x-slack-signature", s(&v, "x_slack_signature")),
                ("x-slack-request-timestamp", &ts.to_string()),
            ]),
            body: s(&v, "body").as_bytes().to_vec(),
            url: None,
            valid: v["valid"].as_bool().unwrap(),
        };
        assert_eq!(case.verify().unwrap().timestamp, Some(ts));
        case.check(VerifyError::SignatureMismatch, "x-slack-signature", "");
    }
}

#[test]
fn stripe_vectors() {
    for v in vectors("stripe") {
        let ts = v["timestamp"].as_i64().unwrap();
        let case = Case {
            scheme: Scheme::Stripe,
            secret: s(&v, "secret"),
            now: ts,
            headers: headers(&[("stripe-signature", s(&v, "stripe_signature"))]),
            body: s(&v, "body").as_bytes().to_vec(),
            url: None,
            valid: v["valid"].as_bool().unwrap(),
        };
        assert_eq!(case.verify().unwrap().timestamp, Some(ts));
        case.check(VerifyError::SignatureMismatch, "stripe-signature", "");
    }
}

#[test]
fn shopify_vectors() {
    for v in vectors("shopify") {
        let case = Case {
            scheme: Scheme::Shopify,
            secret: s(&v, "secret"),
            now: 1_700_000_000,
            headers: headers(&[("x-shopify-hmac-sha256", s(&v, "x_shopify_hmac_sha256"))]),
            body: s(&v, "body").as_bytes().to_vec(),
            url: None,
            valid: v["valid"].as_bool().unwrap(),
        };
        case.check(VerifyError::SignatureMismatch, "x-shopify-hmac-sha256", "");
    }
}

#[test]
fn paddle_vectors() {
    for v in vectors("paddle") {
        let ts = v["timestamp"].as_i64().unwrap();
        let case = Case {
            scheme: Scheme::Paddle,
            secret: s(&v, "secret"),
            now: ts,
            headers: headers(&[("paddle-signature", s(&v, "paddle_signature"))]),
            body: s(&v, "body").as_bytes().to_vec(),
            url: None,
            valid: v["valid"].as_bool().unwrap(),
        };
        assert_eq!(case.verify().unwrap().timestamp, Some(ts));
        case.check(VerifyError::SignatureMismatch, "paddle-signature", "");
    }
}

#[test]
fn twilio_vectors() {
    for v in vectors("twilio") {
        let params = v["params"].as_object().unwrap();
        // Twilio signs the decoded parameters, so the order in the body does not matter: send
        // them in reverse to prove the sort.
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().rev().map(|(k, v)| (k, v.as_str().unwrap())))
            .finish();
        let case = Case {
            scheme: Scheme::Twilio,
            secret: s(&v, "auth_token"),
            now: 1_700_000_000,
            headers: headers(&[
                ("x-twilio-signature", s(&v, "x_twilio_signature")),
                ("content-type", "application/x-www-form-urlencoded"),
            ]),
            body: body.into_bytes(),
            url: Some(s(&v, "url")),
            valid: v["valid"].as_bool().unwrap(),
        };
        case.check(VerifyError::SignatureMismatch, "x-twilio-signature", "");
    }
}

#[test]
fn fixture_covers_every_hmac_scheme() {
    let all: Value = serde_json::from_str(FIXTURE).unwrap();
    for group in [
        "standard_webhooks",
        "github",
        "slack",
        "stripe",
        "shopify",
        "paddle",
        "twilio",
    ] {
        assert!(
            all[group].as_array().is_some_and(|l| !l.is_empty()),
            "{group}"
        );
    }
}
