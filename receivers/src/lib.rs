//! The registry: the one list of webhook receivers. The CLI (`hookline send`, `receivers`,
//! `local up`, replay), the local stack (`scripts/dev.sh` asks `hookline receivers`), the
//! worker's action kinds, the fuzz target, the storm and the template checks all read it, so
//! adding a receiver is its folder, one line here (and its crate in Cargo.toml), and its block in
//! `template.yaml` (README, "Add a receiver"). `tests/tests/template_parity.rs` fails when the
//! template and this list disagree.
//!
//! Linking: [`ACTION_KINDS`] holds only constants, so a binary that reads it (the worker) links
//! no mapping code; [`all`] links every receiver's mapping (the CLI, tests and fuzzing).

use std::collections::BTreeSet;

use hookline::receiver::ReceiverSpec;

macro_rules! registry {
    ($($krate:ident),+ $(,)?) => {
        /// Every receiver's spec, in registry order.
        pub fn all() -> Vec<ReceiverSpec> {
            vec![$($krate::spec()),+]
        }

        /// Each receiver's declared action kinds, in registry order.
        pub const ACTION_KINDS: &[&[&str]] = &[$($krate::ACTION_KINDS),+];
    };
}

registry! {
    payment_events,
    user_events,
    content_events,
    chat_events,
    order_events,
    repo_events,
}

/// The union of every receiver's action kinds: the targets the follow-up worker refuses to start
/// without (`ACTION_<KIND>_URL`).
pub fn action_kinds() -> BTreeSet<&'static str> {
    ACTION_KINDS
        .iter()
        .flat_map(|k| k.iter().copied())
        .collect()
}

/// The receiver named `function` (e.g. `payment-events`).
pub fn by_function(function: &str) -> Option<ReceiverSpec> {
    all().into_iter().find(|s| s.function == function)
}

/// The receiver whose events carry `source` (e.g. `stripe`).
pub fn by_source(source: &str) -> Option<ReceiverSpec> {
    all().into_iter().find(|s| s.source == source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_routes_and_sources_are_unique_and_kinds_match_the_specs() {
        let specs = all();
        assert_eq!(specs.len(), ACTION_KINDS.len());
        let unique = |f: fn(&ReceiverSpec) -> &'static str| {
            specs.iter().map(f).collect::<BTreeSet<_>>().len() == specs.len()
        };
        assert!(
            unique(|s| s.function),
            "two receivers share a function name"
        );
        assert!(unique(|s| s.source), "two receivers share a source");
        assert!(unique(|s| s.route), "two receivers share a route");
        for (spec, kinds) in specs.iter().zip(ACTION_KINDS) {
            assert_eq!(spec.action_kinds, *kinds, "{}", spec.function);
            assert!(spec.route.starts_with("/webhooks/"), "{}", spec.function);
            assert_eq!(
                by_function(spec.function).map(|s| s.source),
                Some(spec.source)
            );
        }
    }
}
