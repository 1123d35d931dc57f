//! `hookline send`: signs a payload file the way the function's sender would and POSTs it.

use anyhow::Context;
use hookline::http::ContentKind;
use hookline::secret::Secret;
use hookline::verify::{Scheme, SignInput, sign};

use crate::cli::SendArgs;
use crate::{LOCAL_SECRET, now_secs, receiver};

/// Sends once; `Ok(false)` when the answer is not 2xx.
pub async fn run(args: &SendArgs) -> anyhow::Result<bool> {
    let (scheme, content) = match (&args.scheme, receiver(&args.function)) {
        (Some(name), known) => (
            name.parse::<Scheme>()
                .map_err(|_| anyhow::anyhow!("unknown scheme {name:?}"))?,
            known.map_or(ContentKind::Json, |spec| spec.content),
        ),
        (None, Ok(spec)) => (spec.scheme, spec.content),
        (None, Err(err)) => return Err(err.context("pass --scheme for another function")),
    };
    let body = std::fs::read(&args.payload)
        .with_context(|| format!("reading payload {}", args.payload.display()))?;
    let url = args.url.clone().unwrap_or_else(|| {
        format!(
            "{}/lambda-url/{}/",
            args.watch.trim_end_matches('/'),
            args.function
        )
    });
    let id = delivery_id(&scheme, &body, args.id.as_deref());
    let secret = Secret::new(args.secret.as_deref().unwrap_or(LOCAL_SECRET).as_bytes());
    let now = now_secs();
    let headers = sign(
        &scheme,
        &secret,
        &SignInput {
            body: &body,
            timestamp: now,
            id: &id,
            url: Some(&url),
        },
    )
    .map_err(|e| anyhow::anyhow!("signing with the {scheme:?} scheme: {e}"))?;

    let content_type = content.mime();
    if args.apigw {
        // The route the template gives the function: /webhooks/<source>.
        let route = receiver(&args.function)
            .map_or_else(|_| args.function.clone(), |s| s.source.to_owned());
        let event = apigw_event(&route, content_type, &headers, &body, now);
        out!("{}", serde_json::to_string_pretty(&event)?);
        return Ok(true);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    let mut request = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.with_context(|| {
        format!(
            "POST {url} failed (is `make dev` running? it serves the functions on \
             $HOOKLINE_WATCH_PORT, default 9000)"
        )
    })?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    out!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => out!("{}", serde_json::to_string_pretty(&json)?),
        Err(_) if text.is_empty() => {}
        Err(_) => out!("{text}"),
    }
    Ok(status.is_success())
}

/// The API Gateway HTTP API (payload v2) request event that delivers `body` with `headers` to
/// `POST /webhooks/<route>`: the shape `cargo lambda invoke --data-file` feeds the function.
fn apigw_event(
    route: &str,
    content_type: &str,
    headers: &[(http::HeaderName, String)],
    body: &[u8],
    now: i64,
) -> serde_json::Value {
    let path = format!("/webhooks/{route}");
    let mut hdrs = serde_json::Map::new();
    hdrs.insert("content-type".into(), content_type.into());
    hdrs.insert("host".into(), "hookline.local".into());
    for (name, value) in headers {
        hdrs.insert(name.as_str().into(), value.as_str().into());
    }
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, body),
            true,
        ),
    };
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "hookline.local",
            "domainPrefix": "hookline",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "hookline-cli"},
            "requestId": format!("local-{now}"),
            "routeKey": format!("POST {path}"),
            "stage": "$default",
            "time": "",
            "timeEpoch": now * 1000,
        },
        "body": body,
        "isBase64Encoded": base64,
    })
}

/// The id the scheme's headers carry: `--id`, else the body's own `id` for Stripe (which puts its
/// event id in the body), else a fresh `msg_<random>`.
fn delivery_id(scheme: &Scheme, body: &[u8], given: Option<&str>) -> String {
    if let Some(id) = given {
        return id.to_owned();
    }
    if *scheme == Scheme::Stripe
        && let Some(id) = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
    {
        return id;
    }
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids() {
        assert_eq!(
            delivery_id(&Scheme::StandardWebhooks, b"{}", Some("x")),
            "x"
        );
        assert_eq!(
            delivery_id(&Scheme::Stripe, br#"{"id":"evt_1"}"#, None),
            "evt_1"
        );
        let fresh = delivery_id(&Scheme::StandardWebhooks, br#"{"id":"evt_1"}"#, None);
        assert!(fresh.starts_with("msg_") && fresh.len() > 10);
    }
}
