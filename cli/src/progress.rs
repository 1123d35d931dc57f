//! Progress bars for the commands that work through many items (a `followups list` Scan,
//! `events list`, `events replay --status`, `dlq redrive`): on stderr, and only when stderr is a
//! terminal and the output is not `--json`, so a script or a pipe never sees one.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting `what` up to `len` on stderr, or a hidden one (every call on it does nothing)
/// when `json` is set or stderr is not a terminal. Finish it with `finish_and_clear` before
/// printing the result.
pub fn bar(len: u64, what: &str, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_never_gets_a_bar() {
        assert!(bar(10, "reading", true).is_hidden());
    }
}
