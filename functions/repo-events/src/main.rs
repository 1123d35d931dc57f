//! Lambda entry point of `repo-events`: wiring only ([`hookline::receiver::serve`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    hookline::receiver::serve(repo_events::spec()).await
}
