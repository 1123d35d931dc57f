//! Lambda entry point of `chat-events`: wiring only ([`hookline::receiver::serve`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    hookline::receiver::serve(chat_events::spec()).await
}
