//! `payment-events`: receives Stripe webhooks. The pipeline is the shared
//! [`hookline::receiver`]; this crate only names its scheme and maps events in [`handler`].

pub mod handler;

use hookline::http::ContentKind;
use hookline::receiver::ReceiverSpec;
use hookline::verify::Scheme;

/// This function's receiver: source `stripe`, Stripe signatures, JSON bodies.
pub fn spec() -> ReceiverSpec {
    ReceiverSpec {
        source: "stripe",
        function: "payment-events",
        scheme: Scheme::Stripe,
        content: ContentKind::Json,
        describe: handler::describe,
    }
}
