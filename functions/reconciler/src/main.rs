//! Lambda entry point of `reconciler` (scheduled): wiring only. The logic is
//! [`hookline::reconcile`].

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use hookline::config::ReconcilerConfig;
use hookline::metrics::Metrics;
use hookline::queue::FollowupQueue;
use hookline::reconcile::{self, Limits, Report};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    hookline::telemetry::init();
    let config = ReconcilerConfig::from_env()?;
    let sdk = hookline::config::aws().await;
    let store = config.store.store(
        aws_sdk_dynamodb::Client::new(&sdk),
        hookline::clock::system(),
    );
    let queue = FollowupQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.queue_url);
    let limits = Limits {
        budget: std::time::Duration::from_secs(config.budget_secs),
        max_per_shard: config.max_events,
        ..Limits::default()
    };
    let metrics = Metrics::stdout();
    let (store, queue, limits, metrics) = (&store, &queue, &limits, &metrics);
    run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            let report: Report = reconcile::run_limited(store, queue, limits, metrics).await?;
            Ok::<_, Error>(report)
        },
    ))
    .await
}
