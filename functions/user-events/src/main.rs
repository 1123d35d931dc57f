//! user-events (being written).
fn main() {}
