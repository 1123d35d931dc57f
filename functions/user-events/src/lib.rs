//! `user-events`: receives Standard Webhooks (Svix, Clerk, ...) webhooks. The pipeline is the shared
//! [`hookline::receiver`]; this crate only names its scheme and maps events in [`handler`].

pub mod handler;

use hookline::http::ContentKind;
use hookline::receiver::ReceiverSpec;
use hookline::verify::Scheme;

/// This function's receiver: source `users`, Standard Webhooks (Svix, Clerk, ...) signatures, JSON bodies.
pub fn spec() -> ReceiverSpec {
    ReceiverSpec {
        source: "users",
        function: "user-events",
        scheme: Scheme::StandardWebhooks,
        content: ContentKind::Json,
        describe: handler::describe,
    }
}
