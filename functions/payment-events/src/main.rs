//! payment-events (being written).
fn main() {}
