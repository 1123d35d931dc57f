//! followup-worker (being written).
fn main() {}
