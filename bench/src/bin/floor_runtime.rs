//! A floor for `scripts/bench-lambda.py`: a hello-world `lambda_runtime` function that answers
//! every invocation with a fixed JSON value. The tokio flavour is `HOOKLINE_FLOOR_FLAVOR`
//! (`current`, the receivers' flavour, or `multi`, `#[tokio::main]`'s default), read before the
//! runtime is built, so one binary is both floors.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

fn main() -> Result<(), Error> {
    let multi = std::env::var("HOOKLINE_FLOOR_FLAVOR").is_ok_and(|f| f == "multi");
    let mut builder = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "{\"status\":\"hello\"}"}))
    })))
}
