//! reconciler (being written).
fn main() {}
