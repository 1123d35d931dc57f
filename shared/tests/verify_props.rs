//! Properties over arbitrary input, 64 cases each so the suite stays fast:
//! sign → verify round trips for every scheme (arbitrary bodies, secrets, timestamps, ids);
//! arbitrary header values and URLs never panic a verifier; a flipped body byte never verifies.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use hookline::clock::FixedClock;
use hookline::secret::{Secret, Secrets};
use hookline::verify::{Incoming, Scheme, SignInput, Verifier, sign, twilio_url_with_body_sha256};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

const URL: &str = "https://hooks.example.com/in?x=1";

fn hmac_schemes() -> Vec<Scheme> {
    vec![
        Scheme::Stripe,
        Scheme::StandardWebhooks,
        Scheme::GitHub,
        Scheme::Shopify,
        Scheme::Slack,
        Scheme::Paddle,
        Scheme::Twilio,
    ]
}

fn all_schemes() -> Vec<Scheme> {
    let mut all = hmac_schemes();
    all.push(Scheme::StaticHeader {
        header: HeaderName::from_static("x-token"),
    });
    all
}

/// A secret the scheme accepts, made from arbitrary bytes.
fn secret_for(scheme: &Scheme, raw: &[u8]) -> Secret {
    match scheme {
        Scheme::StandardWebhooks => Secret::new(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )),
        // A header value: visible ASCII.
        Scheme::StaticHeader { .. } => {
            Secret::new(raw.iter().map(|b| b'!' + b % 94).collect::<Vec<u8>>())
        }
        _ => Secret::new(raw.to_vec()),
    }
}

fn verifier(scheme: &Scheme, secrets: Vec<Secret>, now: i64) -> Verifier {
    Verifier::new(scheme.clone(), Secrets::new(secrets).unwrap(), 300)
        .unwrap()
        .with_clock(FixedClock::at_secs(now))
}

/// Signs `body` and returns the headers and the URL to verify against. Twilio signs arbitrary
/// bytes through `bodySHA256` in the URL.
fn signed(scheme: &Scheme, secret: &Secret, body: &[u8], ts: i64, id: &str) -> (HeaderMap, String) {
    let url = match scheme {
        Scheme::Twilio => twilio_url_with_body_sha256(URL, body),
        _ => URL.to_owned(),
    };
    let input = SignInput {
        body,
        timestamp: ts,
        id,
        url: Some(&url),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in sign(scheme, secret, &input).unwrap() {
        headers.append(name, HeaderValue::from_str(&value).unwrap());
    }
    (headers, url)
}

fn header_names(scheme: &Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::Stripe => &["stripe-signature"],
        Scheme::StandardWebhooks => &[
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-id",
            "svix-timestamp",
            "svix-signature",
        ],
        Scheme::GitHub => &["x-hub-signature-256", "x-github-delivery", "x-github-event"],
        Scheme::Shopify => &[
            "x-shopify-hmac-sha256",
            "shopify-hmac-sha256",
            "x-shopify-webhook-id",
            "x-shopify-topic",
        ],
        Scheme::Slack => &["x-slack-signature", "x-slack-request-timestamp"],
        Scheme::Paddle => &["paddle-signature"],
        Scheme::Twilio => &[
            "x-twilio-signature",
            "content-type",
            "i-twilio-idempotency-token",
        ],
        Scheme::StaticHeader { .. } => &["x-token"],
    }
}

/// Header values shaped like the schemes' syntax, or arbitrary bytes.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        "((t|ts|v0|v1|v1a|h1|sha256)[=,]?[0-9a-fA-F+/=]{0,70}[,; ]?){0,4}"
            .prop_map(String::into_bytes),
        "[0-9]{0,25}".prop_map(String::into_bytes),
        "(v1,[A-Za-z0-9+/]{0,46}={0,2} ?){0,3}".prop_map(String::into_bytes),
        Just(b"application/x-www-form-urlencoded".to_vec()),
    ]
}

fn timestamp() -> impl Strategy<Value = i64> {
    // Where a FixedClock can stand (it keeps milliseconds in an i64).
    prop_oneof![1_600_000_000i64..1_900_000_000, 0..=i64::MAX / 1000]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_then_verify_round_trips(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        raw_secret in proptest::collection::vec(any::<u8>(), 1..100),
        other_secret in proptest::collection::vec(any::<u8>(), 1..100),
        ts in timestamp(),
        id in "[A-Za-z0-9_-]{1,40}",
    ) {
        for scheme in all_schemes() {
            let secret = secret_for(&scheme, &raw_secret);
            let other = secret_for(&scheme, &other_secret);
            let (headers, url) = signed(&scheme, &secret, &body, ts, &id);
            // Rotation: the signing secret second in the list.
            let v = verifier(&scheme, vec![other, secret.clone()], ts);
            let req = Incoming { headers: &headers, body: &body, url: Some(&url) };
            let verified = v.verify(&req);
            prop_assert!(verified.is_ok(), "{:?}: {:?}", scheme, verified.err());
            let verified = verified.unwrap();
            prop_assert_eq!(verified.body(), &body[..]);
            match scheme {
                Scheme::Stripe | Scheme::StandardWebhooks | Scheme::Slack | Scheme::Paddle => {
                    prop_assert_eq!(verified.meta().timestamp, Some(ts));
                }
                _ => prop_assert_eq!(verified.meta().timestamp, None),
            }
        }
    }

    #[test]
    fn twilio_form_round_trips(
        params in proptest::collection::vec(("[^\u{0}]{0,12}", "\\PC{0,20}"), 0..8),
        raw_secret in proptest::collection::vec(any::<u8>(), 1..40),
    ) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        let secret = Secret::new(raw_secret);
        let input = SignInput { body: body.as_bytes(), timestamp: 0, id: "", url: Some(URL) };
        let mut headers = HeaderMap::new();
        for (name, value) in sign(&Scheme::Twilio, &secret, &input).unwrap() {
            headers.append(name, HeaderValue::from_str(&value).unwrap());
        }
        headers.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        let v = verifier(&Scheme::Twilio, vec![secret], 0);
        let req = Incoming { headers: &headers, body: body.as_bytes(), url: Some(URL) };
        prop_assert!(v.verify(&req).is_ok());
        // The same parameters in reverse order are the same signed string.
        let reversed = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().rev().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        let req = Incoming { headers: &headers, body: reversed.as_bytes(), url: Some(URL) };
        prop_assert!(v.verify(&req).is_ok());
    }

    #[test]
    fn flipped_body_byte_never_verifies(
        body in proptest::collection::vec(any::<u8>(), 1..2048),
        raw_secret in proptest::collection::vec(any::<u8>(), 1..64),
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
        ts in timestamp(),
    ) {
        for scheme in hmac_schemes() {
            let secret = secret_for(&scheme, &raw_secret);
            let (headers, url) = signed(&scheme, &secret, &body, ts, "msg_1");
            let mut flipped = body.clone();
            flipped[index.index(body.len())] ^= mask;
            let v = verifier(&scheme, vec![secret], ts);
            let req = Incoming { headers: &headers, body: &flipped, url: Some(&url) };
            prop_assert!(v.verify(&req).is_err(), "{:?}", scheme);
        }
    }

    #[test]
    fn arbitrary_headers_never_panic(
        values in proptest::collection::vec((0usize..8, header_value()), 0..10),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        url in proptest::option::of("\\PC{0,80}"),
        now in any::<i64>(),
        tolerance in any::<i64>(),
    ) {
        for scheme in all_schemes() {
            let names = header_names(&scheme);
            let mut headers = HeaderMap::new();
            for (i, value) in &values {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    headers.append(HeaderName::from_static(names[i % names.len()]), value);
                }
            }
            let secrets = Secrets::new(vec![secret_for(&scheme, b"k")]).unwrap();
            let v = Verifier::new(scheme.clone(), secrets, tolerance)
                .unwrap()
                .with_clock(FixedClock::at_secs(now));
            let req = Incoming { headers: &headers, body: &body, url: url.as_deref() };
            let _ = v.verify(&req);
        }
    }

    #[test]
    fn tampered_signature_headers_never_verify(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        ts in 1_600_000_000i64..1_900_000_000,
        which in 0usize..8,
        pos in any::<prop::sample::Index>(),
        replacement in any::<char>().prop_filter("visible", |c| c.is_ascii_graphic()),
    ) {
        let schemes = all_schemes();
        let scheme = &schemes[which];
        let secret = secret_for(scheme, b"a fixed test secret");
        let (headers, url) = signed(scheme, &secret, &body, ts, "msg_1");
        let name = header_names(scheme)[0];
        let value = headers.get(name).unwrap().to_str().unwrap().to_owned();
        let i = pos.index(value.len());
        let original = value.as_bytes()[i] as char;
        prop_assume!(original != replacement);
        // Hex letter case is not a change (upper-case hex is accepted by design).
        prop_assume!(!(original.eq_ignore_ascii_case(&replacement) && original.is_ascii_hexdigit()));
        let mut tampered = value.clone();
        tampered.replace_range(i..=i, &replacement.to_string());
        let mut h = headers.clone();
        h.insert(HeaderName::from_static(name), HeaderValue::from_str(&tampered).unwrap());
        let v = verifier(scheme, vec![secret], ts);
        let req = Incoming { headers: &h, body: &body, url: Some(&url) };
        let got = v.verify(&req);
        // A changed timestamp with a leading zero kept (`t=0…`) or the like is a different signed
        // string, so nothing here may ever verify.
        prop_assert!(got.is_err(), "{:?} {} -> {}", scheme, value, tampered);
    }
}
