//! Lambda entry point of `order-events`: wiring only ([`hookline::receiver::serve`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    hookline::receiver::serve(order_events::spec()).await
}
