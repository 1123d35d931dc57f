//! The one harness every fuzz target runs: the fuzzer's bytes become a clock reading, a set of
//! header values (drawn from the scheme's own header names, repeats allowed), an optional URL and
//! a body, fed to [`Verifier::verify`]. Half the inputs start from a genuinely signed request and
//! change at most one header, so the fuzzer also reaches the MAC comparison; those must verify
//! when nothing was changed.
//!
//! The payload-model harness is [`models`], the whole request path's [`request_path`].

pub mod models;
pub mod request_path;

use arbitrary::{Result, Unstructured};
use hookline::clock::FixedClock;
use hookline::secret::{Secret, Secrets};
use hookline::verify::{Incoming, Scheme, SignInput, Verifier, sign};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The headers each scheme reads (lower case), plus one it ignores.
fn names(scheme: &Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::Stripe => &["stripe-signature", "content-type"],
        Scheme::StandardWebhooks => &[
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-id",
            "svix-timestamp",
            "svix-signature",
        ],
        Scheme::GitHub => &[
            "x-hub-signature-256",
            "x-hub-signature",
            "x-github-delivery",
            "x-github-event",
        ],
        Scheme::Shopify => &[
            "x-shopify-hmac-sha256",
            "shopify-hmac-sha256",
            "x-shopify-webhook-id",
            "x-shopify-event-id",
            "x-shopify-topic",
        ],
        Scheme::Slack => &["x-slack-signature", "x-slack-request-timestamp"],
        Scheme::Paddle => &["paddle-signature", "content-type"],
        Scheme::Twilio => &[
            "x-twilio-signature",
            "content-type",
            "i-twilio-idempotency-token",
        ],
        Scheme::StaticHeader { .. } => &["x-token", "authorization"],
    }
}

/// A scheme's signing secret and a second, older one (rotation); Standard Webhooks wants base64
/// after `whsec_`.
fn secrets(scheme: &Scheme) -> (Secret, Secret) {
    match scheme {
        Scheme::StandardWebhooks => (
            Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Secret::new("whsec_YW5vdGhlciBzZWNyZXQ="),
        ),
        _ => (Secret::new("fuzz-secret"), Secret::new("another-secret")),
    }
}

/// The static-header scheme the `static_header` target uses.
pub fn static_scheme() -> Scheme {
    Scheme::StaticHeader {
        header: HeaderName::from_static("x-token"),
    }
}

/// Runs one fuzz input against `scheme`. Panics only on a broken invariant.
pub fn run(scheme: Scheme, data: &[u8]) {
    let _ = try_run(scheme, data);
}

fn try_run(scheme: Scheme, data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let names = names(&scheme);
    let genuine: bool = u.arbitrary()?;
    let now: i64 = if genuine {
        u.int_in_range(0..=4_000_000_000)?
    } else {
        u.arbitrary()?
    };
    let tolerance: i64 = if genuine { 300 } else { u.arbitrary()? };
    let url: Option<String> = u.arbitrary()?;
    let mut headers = HeaderMap::new();
    let mut touched = false;
    let count = u.int_in_range(0..=6)?;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let name = names[u.choose_index(names.len())?];
        let value: Vec<u8> = u.arbitrary()?;
        values.push((name, value));
    }
    let body = u.take_rest();

    let (key, older) = secrets(&scheme);
    let secrets = Secrets::new(vec![older, key.clone()]).expect("non-empty");
    let verifier = Verifier::new(scheme.clone(), secrets, tolerance)
        .expect("valid secrets")
        .with_clock(FixedClock::at_secs(now));

    if genuine {
        let input = SignInput {
            body,
            timestamp: now,
            id: "msg_fuzz",
            url: url.as_deref(),
        };
        if let Ok(signed) = sign(&scheme, &key, &input) {
            for (name, value) in signed {
                headers.append(name, HeaderValue::from_str(&value).expect("signer output"));
            }
            if matches!(scheme, Scheme::Twilio) {
                headers.insert(
                    "content-type",
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
            }
        }
        // At most one header changed.
        if let Some((name, value)) = values.into_iter().next()
            && let Ok(value) = HeaderValue::from_bytes(&value)
        {
            headers.insert(HeaderName::from_static(name), value);
            touched = true;
        }
    } else {
        for (name, value) in values {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.append(HeaderName::from_static(name), value);
            }
        }
    }

    let req = Incoming {
        headers: &headers,
        body,
        url: url.as_deref(),
    };
    let result = verifier.verify(&req);
    // An untouched, genuinely signed request verifies. (Not for a Twilio URL that carries its own
    // `bodySHA256`: that one names some other body.)
    let foreign_hash = url.as_deref().is_some_and(|u| u.contains("bodySHA256"));
    if genuine && !touched && !headers.is_empty() && !foreign_hash {
        assert!(result.is_ok(), "genuine request refused: {result:?}");
    }
    if let Ok(verified) = result {
        assert_eq!(verified.body(), body);
    }
    Ok(())
}
