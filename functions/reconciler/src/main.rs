//! Lambda entry point of `reconciler` (scheduled): wiring only. The logic is
//! [`hookline::reconcile`].

use hookline::config::ReconcilerConfig;
use hookline::queue::FollowupQueue;
use hookline::reconcile::{self, Report};
use hookline::store::EventStore;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    hookline::telemetry::init();
    let config = ReconcilerConfig::from_env()?;
    let sdk = hookline::config::aws().await;
    let clock = hookline::clock::system();
    let store = EventStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.store.table_name,
        config.store.retention_days,
        clock.clone(),
    );
    let queue = FollowupQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.queue_url);
    let (store, queue, clock, config) = (&store, &queue, &clock, &config);
    run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report: Report =
                reconcile::run(store, queue, clock, config.grace_secs, config.max_events).await?;
            Ok::<_, Error>(report)
        },
    ))
    .await
}
