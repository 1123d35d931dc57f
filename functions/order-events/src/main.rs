//! Lambda entry point of `order-events`: wiring only.

use hookline::config::ReceiverConfig;
use hookline::receiver::Receiver;
use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    hookline::telemetry::init();
    let config = ReceiverConfig::from_env()?;
    let sdk = hookline::config::aws().await;
    let receiver = Receiver::new(order_events::spec(), &config, &sdk).await?;
    let receiver = &receiver;
    run(service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(receiver.handle(req).await)
    }))
    .await
}
