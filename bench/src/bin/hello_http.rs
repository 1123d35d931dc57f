//! A floor for `scripts/bench-lambda.py` (`hello-http`): a hello-world `lambda_http` function on the same
//! runtime flavour as the receivers (current-thread tokio), answering every API Gateway request
//! with a fixed JSON body and calling no AWS service. What a receiver costs beyond this is
//! Hookline's own work plus its two AWS calls.
//!
//! `make bench-lambda` builds and runs it.

use lambda_http::{Body, Error, Response, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|_req| async {
        let mut resp = Response::new(Body::from(r#"{"status":"hello"}"#));
        resp.headers_mut().insert(
            "content-type",
            lambda_http::http::HeaderValue::from_static("application/json"),
        );
        Ok::<_, std::convert::Infallible>(resp)
    }))
    .await
}
