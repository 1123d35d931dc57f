//! Test support: the local emulator and per-test resources (being written).
