//! Lambda entry point of `content-events`: wiring only ([`hookline::receiver::serve`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    hookline::receiver::serve(content_events::spec()).await
}
