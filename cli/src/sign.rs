//! `hookline sign --jsonl`: a co-process that signs deliveries the way each function's sender
//! does, with the same code as `hookline send` ([`crate::send::signed_headers`]), for a tool that
//! delivers thousands of attempts itself (the storm, scripts/storm.py) and must sign each afresh.
//!
//! Each line read on stdin is one request, `{"function": "payment-events", "id": "msg_1",
//! "body": "<the body, as text>"}` (`id`: the delivery id for schemes that carry one in a header;
//! optional `url` for schemes that sign it; `event_type`, e.g. `"orders/paid"` or `"push"`, for
//! schemes that name the event in an unsigned header of its own: GitHub, Shopify); each line
//! written on stdout is its answer, in order,
//! flushed at once: `{"headers": {"Content-Type": ..., "<signature header>": ...}}`, or
//! `{"error": "..."}` (never the body or the secret). The timestamp signed is the time of the
//! request, as a provider signs each attempt.

use std::io::{BufRead, Write};

use anyhow::Context;
use clap::Args;
use hookline::secret::Secret;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{LOCAL_SECRET, default_watch, now_secs, receiver, send};

/// `hookline sign`
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Read requests as JSON lines on stdin and answer each with one JSON line (the only mode).
    #[arg(long, required = true)]
    pub jsonl: bool,
    /// Signing secret (default: the documented local test secret).
    #[arg(long, env = "HOOKLINE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

/// One request line of `sign --jsonl` and `describe --jsonl`.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// Function name, e.g. `user-events`.
    pub function: String,
    /// Delivery id for schemes that carry one in a header (Stripe's is the body's `id`).
    #[serde(default)]
    pub id: Option<String>,
    /// The body, as text.
    pub body: String,
    /// The URL posted to, for schemes that sign it (default: `cargo lambda watch`'s).
    #[serde(default)]
    pub url: Option<String>,
    /// The event type, for schemes that name it in an unsigned header of its own (GitHub's
    /// `X-GitHub-Event`, Shopify's `X-Shopify-Topic`), e.g. `push` or `orders/paid`; sent in that
    /// header as `hookline send` sends a sample's. Ignored for other schemes.
    #[serde(default)]
    pub event_type: Option<String>,
}

impl Request {
    /// The URL the request is posted to.
    pub fn url(&self) -> String {
        self.url.clone().unwrap_or_else(|| {
            format!(
                "{}/lambda-url/{}/",
                default_watch().trim_end_matches('/'),
                self.function
            )
        })
    }
}

/// The headers `request` is posted with at `now` (seconds): the function's content type, its
/// scheme's signature headers and, where the scheme has one, the event type header.
pub fn headers(
    secret: &Secret,
    request: &Request,
    now: i64,
) -> anyhow::Result<Vec<(String, String)>> {
    let spec = receiver(&request.function)?;
    let signed = send::signed_headers(
        &spec.scheme,
        secret,
        request.body.as_bytes(),
        request.id.as_deref(),
        &request.url(),
        now,
    )?;
    let mut headers = vec![("Content-Type".to_owned(), spec.content.mime().to_owned())];
    headers.extend(signed.into_iter().map(|(n, v)| (n.as_str().to_owned(), v)));
    if let (Some(header), Some(event)) = (
        spec.scheme.event_type_header(),
        request.event_type.as_deref(),
    ) {
        headers.push((header.as_str().to_owned(), event.to_owned()));
    }
    Ok(headers)
}

/// The answer line to one request line.
pub fn answer(secret: &Secret, line: &str, now: i64) -> Value {
    let signed = serde_json::from_str::<Request>(line)
        .context("not a request line ({function, id, body})")
        .and_then(|request| headers(secret, &request, now));
    match signed {
        Ok(headers) => {
            let map: Map<String, Value> = headers
                .into_iter()
                .map(|(n, v)| (n, Value::String(v)))
                .collect();
            json!({ "headers": map })
        }
        Err(err) => json!({ "error": format!("{err:#}") }),
    }
}

/// Answers every line of `input` on `output`, one line each, flushed as it goes; returns at the
/// end of the input or when the output is closed.
pub fn serve_lines(
    input: impl BufRead,
    mut output: impl Write,
    mut answer: impl FnMut(&str) -> Value,
) -> anyhow::Result<()> {
    for line in input.lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = answer(&line);
        if writeln!(output, "{reply}")
            .and_then(|()| output.flush())
            .is_err()
        {
            break; // the reader went away
        }
    }
    Ok(())
}

/// Runs the co-process on stdin and stdout.
pub fn run(args: &SignArgs) -> anyhow::Result<()> {
    let secret = Secret::new(args.secret.as_deref().unwrap_or(LOCAL_SECRET).as_bytes());
    serve_lines(std::io::stdin().lock(), std::io::stdout().lock(), |line| {
        answer(&secret, line, now_secs())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline::secret::Secrets;
    use hookline::verify::{Incoming, Scheme, Verifier};

    /// What `sign --jsonl` answers verifies with the receiver's own verifier, for both schemes.
    #[test]
    fn signed_lines_verify_with_the_receivers_verifier() -> anyhow::Result<()> {
        let secret = Secret::new(LOCAL_SECRET.as_bytes());
        let input = concat!(
            r#"{"function":"payment-events","body":"{\"id\":\"evt_1\"}"}"#,
            "\n\n",
            r#"{"function":"user-events","id":"msg_1","body":"{\"a\":1}"}"#,
            "\n",
            r#"{"function":"nope","body":"{}"}"#,
            "\n",
        );
        let mut out = Vec::new();
        let now = now_secs();
        serve_lines(input.as_bytes(), &mut out, |l| answer(&secret, l, now))?;
        let lines: Vec<Value> = String::from_utf8(out)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(lines.len(), 3);
        for (line, scheme, body) in [
            (&lines[0], Scheme::Stripe, &br#"{"id":"evt_1"}"#[..]),
            (&lines[1], Scheme::StandardWebhooks, &br#"{"a":1}"#[..]),
        ] {
            let mut headers = http::HeaderMap::new();
            for (name, value) in line["headers"].as_object().into_iter().flatten() {
                headers.insert(
                    http::HeaderName::from_bytes(name.as_bytes())?,
                    http::HeaderValue::from_str(value.as_str().unwrap_or_default())?,
                );
            }
            assert_eq!(
                headers.get("content-type").map(|v| v.as_bytes()),
                Some(&b"application/json"[..])
            );
            let secrets = Secrets::new(vec![Secret::new(LOCAL_SECRET.as_bytes())])
                .ok_or_else(|| anyhow::anyhow!("no secret"))?;
            let verifier = Verifier::new(scheme, secrets, 300)?;
            let verified = verifier.verify(&Incoming {
                headers: &headers,
                body,
                url: None,
            })?;
            assert_eq!(verified.body(), body);
        }
        assert_eq!(
            lines[1]["headers"]["webhook-id"], "msg_1",
            "the delivery id given"
        );
        assert!(
            lines[2]["error"]
                .as_str()
                .is_some_and(|e| e.contains("unknown function"))
        );
        Ok(())
    }
}
