//! Tracing set-up for every function and the CLI.
//!
//! Honours `AWS_LAMBDA_LOG_FORMAT` (`JSON` or text) and `AWS_LAMBDA_LOG_LEVEL`, with `RUST_LOG`
//! taking precedence for finer filters. Log lines carry ids, types and outcomes, never a secret,
//! a signature or a body (invariant 6): nothing in this crate formats those into a field.
//!
//! The numbered invariants are those of docs/ARCHITECTURE.md.

use tracing_subscriber::EnvFilter;

/// The filter: `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `info`.
fn filter() -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_env("RUST_LOG") {
        return f;
    }
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|l| l.to_ascii_lowercase())
        .filter(|l| matches!(l.as_str(), "trace" | "debug" | "info" | "warn" | "error"))
        .unwrap_or_else(|| "info".into());
    EnvFilter::new(level)
}

/// Installs the global subscriber; call once at the top of `main`. A second call is a no-op.
pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_ansi(false);
    let _ = if json {
        builder
            .json()
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.without_time().try_init()
    };
}
