//! Lambda entry point of `followup-worker`: wiring only. The logic is [`hookline::worker`]; the
//! action kinds it needs targets for come from the receiver registry (constants only: no mapping
//! code is linked).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookline::config::WorkerConfig;
use hookline::worker::Worker;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    hookline::telemetry::init();
    let config = WorkerConfig::from_env(&hookline_receivers::action_kinds())?;
    let sdk = hookline::config::aws().await;
    let worker = Worker::new(&config, &sdk)?;
    let worker = &worker;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(worker.handle(event.payload).await)
    }))
    .await
}
