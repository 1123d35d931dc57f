//! `hookline send`: signs a payload file the way the function's sender would and POSTs it.

use std::path::PathBuf;

use anyhow::Context;
use aws_lambda_events::event::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use clap::Args;
use hookline::http::ContentKind;
use hookline::secret::Secret;
use hookline::verify::{Scheme, SignInput, sign};

use crate::{LOCAL_SECRET, default_watch, now_secs, receiver};

/// `hookline send`
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Function name, e.g. `payment-events`.
    pub function: String,
    /// The JSON payload to sign and send, e.g. `events/payment-events/invoice.paid.json`.
    pub payload: PathBuf,
    /// Where to POST (default: `cargo lambda watch`'s URL for the function).
    #[arg(long)]
    pub url: Option<String>,
    /// Signing secret (default: the documented local test secret).
    #[arg(long, env = "HOOKLINE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Delivery id for schemes that carry one in a header (default: a fresh `msg_<random>`).
    #[arg(long)]
    pub id: Option<String>,
    /// Base URL of `cargo lambda watch`, used when `--url` is not given.
    #[arg(long, default_value_t = default_watch())]
    pub watch: String,
    /// Signature scheme (`stripe`, `standard-webhooks`, `github`, ...), for a function this
    /// command does not know yet; JSON bodies.
    #[arg(long)]
    pub scheme: Option<String>,
    /// Print the signed API Gateway (HTTP API, payload v2) request event instead of posting it,
    /// for `cargo lambda invoke --data-file`.
    #[arg(long)]
    pub apigw: bool,
    /// Send the payload form-encoded, as `payload=<url-encoded JSON>` (a GitHub webhook whose
    /// content type is `application/x-www-form-urlencoded`); signed over the encoded bytes.
    #[arg(long)]
    pub form: bool,
}

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
    let mut body = std::fs::read(&args.payload)
        .with_context(|| format!("reading payload {}", args.payload.display()))?;
    if args.form {
        body = form_payload(&body).into_bytes();
    }
    let url = args.url.clone().unwrap_or_else(|| {
        format!(
            "{}/lambda-url/{}/",
            args.watch.trim_end_matches('/'),
            args.function
        )
    });
    let secret = Secret::new(args.secret.as_deref().unwrap_or(LOCAL_SECRET).as_bytes());
    let now = now_secs();
    let mut headers = signed_headers(&scheme, &secret, &body, args.id.as_deref(), &url, now)?;
    // GitHub and Shopify name the event in a header of its own: the sample's file name says it.
    if let Some(header) = scheme.event_type_header()
        && let Some(event) = args
            .payload
            .file_name()
            .and_then(|n| scheme.sample_event_type(&n.to_string_lossy()))
    {
        headers.push((header, event));
    }

    let content_type = if args.form {
        ContentKind::Form.mime()
    } else {
        content.mime()
    };
    if args.apigw {
        // The route the template gives the function (the registry's).
        let route = receiver(&args.function).map_or_else(
            |_| format!("/webhooks/{}", args.function),
            |s| s.route.to_owned(),
        );
        let event = apigw_event(&route, content_type, &headers, &body, now)?;
        out!("{}", serde_json::to_string_pretty(&event)?);
        return Ok(true);
    }
    let client = hookline::config::http_client()
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

/// `body` as a form-encoded delivery's body: `payload=<url-encoded body>`.
pub fn form_payload(body: &[u8]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &String::from_utf8_lossy(body))
        .finish()
}

/// The headers a genuine sender of `scheme` adds to `body` posted to `url` at `now` (seconds):
/// what `hookline send` sends, and what `hookline sign` and `hookline describe` compute. `id` is
/// the delivery id for schemes that carry one ([`delivery_id`]).
pub fn signed_headers(
    scheme: &Scheme,
    secret: &Secret,
    body: &[u8],
    id: Option<&str>,
    url: &str,
    now: i64,
) -> anyhow::Result<Vec<(http::HeaderName, String)>> {
    let id = delivery_id(scheme, body, id);
    sign(
        scheme,
        secret,
        &SignInput {
            body,
            timestamp: now,
            id: &id,
            url: Some(url),
        },
    )
    .map_err(|e| anyhow::anyhow!("signing with the {scheme:?} scheme: {e}"))
}

/// The API Gateway HTTP API (payload v2) request event that delivers `body` with `headers` to
/// `POST <route>`: the shape `cargo lambda invoke --data-file` feeds the function.
#[allow(deprecated)] // `http_method`: set too, so the deprecated field does not say GET.
fn apigw_event(
    route: &str,
    content_type: &str,
    headers: &[(http::HeaderName, String)],
    body: &[u8],
    now: i64,
) -> anyhow::Result<ApiGatewayV2httpRequest> {
    let path = route.to_owned();
    let route_key = format!("POST {path}");
    let mut hdrs = http::HeaderMap::new();
    hdrs.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_str(content_type)?,
    );
    hdrs.insert(
        http::header::HOST,
        http::HeaderValue::from_static("hookline.local"),
    );
    for (name, value) in headers {
        hdrs.insert(name.clone(), http::HeaderValue::from_str(value)?);
    }
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, body),
            true,
        ),
    };
    let mut described = ApiGatewayV2httpRequestContextHttpDescription::default();
    described.method = http::Method::POST;
    described.path = Some(path.clone());
    described.protocol = Some("HTTP/1.1".to_owned());
    described.source_ip = Some("127.0.0.1".to_owned());
    described.user_agent = Some("hookline-cli".to_owned());
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.account_id = Some("123456789012".to_owned());
    context.apiid = Some("local".to_owned());
    context.domain_name = Some("hookline.local".to_owned());
    context.domain_prefix = Some("hookline".to_owned());
    context.http = described;
    context.request_id = Some(format!("local-{now}"));
    context.route_key = Some(route_key.clone());
    context.stage = Some("$default".to_owned());
    context.time = Some(String::new());
    context.time_epoch = now * 1000;
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some(route_key);
    event.raw_path = Some(path);
    event.raw_query_string = Some(String::new());
    event.http_method = http::Method::POST;
    event.headers = hdrs;
    event.request_context = context;
    event.body = Some(body);
    event.is_base64_encoded = base64;
    Ok(event)
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
    fn a_form_payload_decodes_back_to_the_json() {
        let json = br#"{"ref": "refs/heads/main", "note": "a&b=c d+e"}"#;
        let form = form_payload(json);
        assert!(form.starts_with("payload=%7B"), "{form}");
        let decoded: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            decoded,
            [(
                "payload".to_owned(),
                String::from_utf8_lossy(json).into_owned()
            )]
        );
    }

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

    /// `send --apigw`'s event is what the function's runtime reads: an HTTP API v2 POST with the
    /// signature headers and the body as sent.
    #[test]
    fn the_apigw_event_is_read_as_a_signed_post() -> anyhow::Result<()> {
        let headers = vec![(
            http::HeaderName::from_static("stripe-signature"),
            "t=1,v1=ab".to_owned(),
        )];
        let event = apigw_event(
            "/webhooks/stripe",
            "application/json",
            &headers,
            br#"{"id":"evt_1"}"#,
            1_700_000_000,
        )?;
        let json = serde_json::to_value(&event)?;
        assert_eq!(json["version"], "2.0");
        assert_eq!(json["routeKey"], "POST /webhooks/stripe");
        assert_eq!(json["requestContext"]["http"]["method"], "POST");
        assert_eq!(json["headers"]["stripe-signature"], "t=1,v1=ab");
        assert_eq!(json["isBase64Encoded"], false);
        let request = lambda_http::request::from_str(&json.to_string())?;
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri().path(), "/webhooks/stripe");
        assert_eq!(
            request
                .headers()
                .get("stripe-signature")
                .and_then(|v| v.to_str().ok()),
            Some("t=1,v1=ab")
        );
        assert_eq!(request.body().as_ref(), br#"{"id":"evt_1"}"#);
        let binary = apigw_event(
            "/webhooks/stripe",
            "application/json",
            &headers,
            &[0xff, 0x00],
            1,
        )?;
        assert!(binary.is_base64_encoded);
        Ok(())
    }
}
