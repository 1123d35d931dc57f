//! `payment-events`: receives Stripe webhooks. The pipeline is the shared
//! [`hookline::receiver`]; this crate only names its scheme and maps events in [`handler`].

pub mod handler;

use hookline::http::ContentKind;
use hookline::receiver::ReceiverSpec;
use hookline::verify::Scheme;

/// Every action kind the mapping emits (the registry gives the worker their union).
pub const ACTION_KINDS: &[&str] = handler::ACTION_KINDS;

/// This function's receiver: source `stripe`, Stripe signatures, JSON bodies.
pub fn spec() -> ReceiverSpec {
    ReceiverSpec {
        source: "stripe",
        function: "payment-events",
        route: "/webhooks/stripe",
        scheme: Scheme::Stripe,
        content: ContentKind::Json,
        // Stripe and Svix give up on an attempt after about 15 s; stay well inside it.
        sender_timeout: std::time::Duration::from_secs(10),
        describe: handler::describe,
        action_kinds: ACTION_KINDS,
    }
}
