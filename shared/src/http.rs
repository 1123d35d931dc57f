//! Request guards and the one place where errors become HTTP answers.
//!
//! Invariants kept here: every failure has a precise status and a JSON body
//! `{"error": "<code>", "message": "..."}`; a verification failure is a bare 401 whose reason is
//! logged, never returned (invariant 4); internal and dependency failures are logged with their
//! cause and answered opaquely, a dependency outage with 503 so the sender retries (invariant 5).
//! Nothing here logs a header value or the body (invariant 6).
//!
//! The numbered invariants are those of docs/ARCHITECTURE.md.

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Response};
use serde_json::json;

use crate::verify::VerifyError;

/// The media type a receiver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// `application/json` (charset parameters allowed).
    Json,
    /// `application/x-www-form-urlencoded` (Slack, Twilio).
    Form,
    /// Either of them, as the sender's configuration chooses (GitHub: `payload=<JSON>` when
    /// form-encoded). The mapping tells them apart from the verified bytes.
    JsonOrForm,
}

impl ContentKind {
    /// The media type, as sent in `Content-Type` (for [`ContentKind::JsonOrForm`], JSON).
    pub fn mime(self) -> &'static str {
        match self {
            Self::Json | Self::JsonOrForm => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
        }
    }

    /// True when a request whose media type is `mime` (no parameters) is accepted.
    pub fn accepts(self, mime: &str) -> bool {
        let is = |kind: Self| mime.eq_ignore_ascii_case(kind.mime());
        match self {
            Self::JsonOrForm => is(Self::Json) || is(Self::Form),
            kind => is(kind),
        }
    }

    /// What a 415 answer says is expected.
    pub fn expected(self) -> &'static str {
        match self {
            Self::JsonOrForm => "application/json or application/x-www-form-urlencoded",
            kind => kind.mime(),
        }
    }
}

/// Everything that can go wrong while receiving a webhook.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Not a POST.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Body larger than `MAX_BODY_BYTES`.
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The source address is outside `ALLOWED_SOURCE_CIDRS` (or unknown); carries it for the log.
    #[error("source address not allowed")]
    Forbidden(Option<String>),
    /// Wrong or missing `Content-Type`.
    #[error("content type must be {expected}")]
    UnsupportedMediaType {
        /// The media type expected.
        expected: &'static str,
    },
    /// Signature verification failed; the reason is only logged.
    #[error("verification failed: {0}")]
    Unauthorized(#[from] VerifyError),
    /// A verified delivery of a scheme that signs no time, whose provider time is older than the
    /// dedup window: its event record may have expired, so it could be a captured delivery sent
    /// again (docs/SECURITY.md, "Replays"). 422, counted as `rejected_422`.
    #[error(
        "the event's own time is more than {max_age_days} days old, beyond the deduplication \
         window: refused as a possible replay"
    )]
    ReplayOutsideWindow {
        /// The window: the event retention.
        max_age_days: i64,
    },
    /// A dependency (DynamoDB) failed: 503, the sender retries.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::ReplayOutsideWindow { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A well-formed signature that matched no configured secret: the one failure after which
    /// re-reading the secrets (a rotation) can help.
    pub fn is_signature_mismatch(&self) -> bool {
        matches!(self, Self::Unauthorized(VerifyError::SignatureMismatch))
    }

    /// The machine-readable error code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::Forbidden(_) => "forbidden",
            Self::Unauthorized(_) => "unauthorized",
            Self::ReplayOutsideWindow { .. } => "replay_outside_window",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// The message of the JSON body: precise for bad input, nothing for verification or
    /// dependency failures.
    fn public_message(&self) -> String {
        match self {
            Self::Unauthorized(_) => "signature verification failed".into(),
            Self::Unavailable(_) => "temporarily unavailable, retry later".into(),
            other => other.to_string(),
        }
    }

    /// Logs the failure (with its private cause) and builds the answer.
    pub fn into_response(self) -> Response<Body> {
        match &self {
            Self::Unavailable(cause) => tracing::error!(error = %cause, "dependency failure"),
            Self::Unauthorized(reason) => {
                tracing::warn!(reason = %reason, "rejected: verification failed")
            }
            Self::Forbidden(source_ip) => tracing::warn!(
                source_ip = source_ip.as_deref().unwrap_or("unknown"),
                "rejected: source address not allowed"
            ),
            other => tracing::info!(status = other.status().as_u16(), error = %other, "rejected"),
        }
        let mut resp = json_response(
            self.status(),
            &json!({"error": self.code(), "message": self.public_message()}),
        );
        if matches!(self, Self::MethodNotAllowed) {
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        resp
    }
}

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Request guards, cheapest first: method (405), size (413), content type (415).
pub fn guard(
    method: &Method,
    headers: &HeaderMap,
    body_len: usize,
    max_body_bytes: usize,
    content: ContentKind,
) -> Result<(), ApiError> {
    if method != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    if body_len > max_body_bytes {
        return Err(ApiError::PayloadTooLarge {
            limit: max_body_bytes,
        });
    }
    let ok = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| content.accepts(m.trim()));
    if !ok {
        return Err(ApiError::UnsupportedMediaType {
            expected: content.expected(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        h
    }

    #[test]
    fn guards_in_order() {
        let json = headers(Some("application/json; charset=utf-8"));
        assert!(guard(&Method::POST, &json, 10, 10, ContentKind::Json).is_ok());
        let e = guard(&Method::GET, &json, 10, 10, ContentKind::Json).expect_err("GET");
        assert_eq!(e.status(), StatusCode::METHOD_NOT_ALLOWED);
        let e = guard(&Method::POST, &json, 11, 10, ContentKind::Json).expect_err("size");
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let e = guard(
            &Method::POST,
            &headers(Some("text/plain")),
            1,
            10,
            ContentKind::Json,
        )
        .expect_err("type");
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let e = guard(&Method::POST, &headers(None), 1, 10, ContentKind::Json).expect_err("none");
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            guard(
                &Method::POST,
                &headers(Some("Application/X-WWW-Form-Urlencoded")),
                1,
                10,
                ContentKind::Form
            )
            .is_ok()
        );
    }

    #[test]
    fn json_or_form_accepts_either_and_nothing_else() {
        let kind = ContentKind::JsonOrForm;
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "application/x-www-form-urlencoded",
        ] {
            assert!(
                guard(&Method::POST, &headers(Some(ct)), 1, 10, kind).is_ok(),
                "{ct}"
            );
        }
        let e = guard(&Method::POST, &headers(Some("text/plain")), 1, 10, kind).expect_err("type");
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            e.to_string(),
            "content type must be application/json or application/x-www-form-urlencoded"
        );
        assert!(guard(&Method::POST, &headers(None), 1, 10, kind).is_err());
        // Json and Form stay strict.
        let form = headers(Some("application/x-www-form-urlencoded"));
        assert!(guard(&Method::POST, &form, 1, 10, ContentKind::Json).is_err());
        assert_eq!(kind.mime(), "application/json");
    }

    #[test]
    fn answers_are_json_and_opaque_where_they_must_be() {
        let r = ApiError::Unauthorized(VerifyError::TimestampTooOld).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let Body::Text(t) = r.body() else {
            panic!("text body")
        };
        let v: serde_json::Value = serde_json::from_str(t).expect("json");
        assert_eq!(v["error"], "unauthorized");
        assert!(!t.contains("timestamp"), "the reason is not returned: {t}");

        let r = ApiError::Unavailable("dynamodb timeout at 10.0.0.1".into()).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let Body::Text(t) = r.body() else {
            panic!("text body")
        };
        assert!(!t.contains("10.0.0.1"));

        let r = ApiError::Forbidden(Some("203.0.113.9".into())).into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let Body::Text(t) = r.body() else {
            panic!("text body")
        };
        let v: serde_json::Value = serde_json::from_str(t).expect("json");
        assert_eq!(v["error"], "forbidden");
        assert_eq!(v["message"], "source address not allowed");

        let r = ApiError::MethodNotAllowed.into_response();
        assert_eq!(r.headers()[ALLOW], "POST");
    }
}
