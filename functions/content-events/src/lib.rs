//! `content-events`: receives Builder.io content webhooks. The pipeline is the shared
//! [`hookline::receiver`]; this crate names its scheme, types the body in [`model`] and maps it
//! in [`handler`].

pub mod handler;
pub mod model;

use hookline::http::ContentKind;
use hookline::receiver::ReceiverSpec;
use hookline::verify::Scheme;

/// Every action kind the mapping emits (the registry gives the worker their union).
pub const ACTION_KINDS: &[&str] = handler::ACTION_KINDS;

/// This function's receiver: source `builder`, a static `Authorization` token (Builder.io signs
/// nothing), JSON bodies.
pub fn spec() -> ReceiverSpec {
    ReceiverSpec {
        source: "builder",
        function: "content-events",
        route: "/webhooks/builder",
        scheme: Scheme::StaticHeader {
            header: http::header::AUTHORIZATION,
        },
        content: ContentKind::Json,
        // Builder.io documents no timeout; stay with the default most senders allow.
        sender_timeout: std::time::Duration::from_secs(10),
        describe: handler::describe,
        action_kinds: ACTION_KINDS,
    }
}
