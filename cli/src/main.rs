//! The `hookline` command (being written).

fn main() {}
