//! A small HTTP/1.1 server on hyper (the one the AWS SDK already brings), for the local stand-ins
//! of follow-up targets: `hookline sink` and the tests' scripted target (`hookline-tests`). It
//! reads each request whole (up to [`MAX_BODY`]), hands it to a handler as a [`Received`], and
//! writes the handler's [`Answer`]; HTTP parsing, keep-alive and chunked bodies are hyper's.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Largest body accepted; a larger one is answered 413 without calling the handler.
pub const MAX_BODY: usize = 1024 * 1024;

/// One received request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path (and query).
    pub path: String,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Extra headers (`content-length` is added).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// Serves `listener` until accepting fails, each connection on its own task, each request
/// answered by `handler`. A connection that breaks off (the client went away, a malformed
/// request hyper refused) ends quietly.
pub async fn serve<H, F>(listener: TcpListener, handler: H) -> std::io::Result<()>
where
    H: Fn(Received) -> F + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let (stream, _) = listener.accept().await?;
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(respond(handler.as_ref(), req).await) }
            });
            // Errors here are the connection's (reset, malformed): nothing to answer.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond<H, F>(
    handler: &H,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>>
where
    H: Fn(Received) -> F,
    F: Future<Output = Answer>,
{
    let (parts, body) = req.into_parts();
    let answer = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => {
            let received = Received {
                method: parts.method.to_string(),
                path: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_bytes().to_vec(),
            };
            handler(received).await
        }
        Err(err) => {
            let status = if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                413
            } else {
                400
            };
            Answer::json(
                status,
                &serde_json::json!({"error": format!("reading the body: {err}")}),
            )
        }
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(answer.status).unwrap_or(hyper::StatusCode::OK);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_the_request_to_the_handler_and_writes_its_answer() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(serve(listener, |r: Received| async move {
            Answer::json(
                201,
                &serde_json::json!({
                    "method": r.method,
                    "path": r.path,
                    "key": r.header("Idempotency-Key"),
                    "len": r.body.len(),
                }),
            )
            .with_header("retry-after", "7")
        }));
        let client = hookline::config::http_client()
            .build()
            .expect("an HTTP client");
        let resp = client
            .post(format!("http://{addr}/receipt?x=1"))
            .header("Idempotency-Key", "k1")
            .body("hello")
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 201);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        let got: serde_json::Value = resp.json().await?;
        assert_eq!(
            got,
            serde_json::json!({"method": "POST", "path": "/receipt?x=1", "key": "k1", "len": 5})
        );
        let too_big = client
            .post(format!("http://{addr}/receipt"))
            .body(vec![b'x'; MAX_BODY + 1])
            .send()
            .await?;
        assert_eq!(too_big.status().as_u16(), 413);
        server.abort();
        Ok(())
    }
}
