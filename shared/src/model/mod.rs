//! Typed payload models, one module per sender.
//!
//! Each model parses the verified body in two steps: a typed envelope (id, type, time) whose
//! object is kept as JSON, then the object for the event types Hookline handles. So an unknown
//! event type is recognised as such (and acknowledged as `ignored`), while a known type whose
//! object has the wrong shape is a parse error (400). Unknown fields are ignored everywhere:
//! providers add fields without notice.

pub mod stripe;
pub mod users;
