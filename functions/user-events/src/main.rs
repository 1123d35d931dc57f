//! Lambda entry point of `user-events`: wiring only ([`hookline::receiver::serve`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    hookline::receiver::serve(user_events::spec()).await
}
