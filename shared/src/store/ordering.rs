//! The ordering rule of entity state, without I/O: which of two state changes an entity keeps.
//!
//! This is the rule the store's conditional update encodes (`record.rs`, `change_update`): a
//! change applies to an entity that does not exist yet, or to a live one whose `(version,
//! event_id)` is strictly smaller than the change's own (versions first, then event ids, so ties
//! resolve the same way whatever the arrival order); a tombstone applies to any live entity,
//! whatever its version, and nothing applies after it. Tools that predict an entity's final
//! state (`hookline describe`, the storm) fold changes through [`supersedes`] instead of
//! re-implementing it.

use super::{ChangeMode, StateChange};

/// Where an entity stands: the last change applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied<'a> {
    /// The ordering version of the last change applied.
    pub version: i64,
    /// The event that made it.
    pub event_id: &'a str,
    /// True once a tombstone applied: final.
    pub deleted: bool,
}

/// True when `change`, made by event `event_id`, applies over `current` (`None`: the entity
/// does not exist yet).
pub fn supersedes(change: &StateChange, event_id: &str, current: Option<&Applied<'_>>) -> bool {
    let Some(current) = current else {
        return true;
    };
    if current.deleted {
        return false;
    }
    match change.mode {
        ChangeMode::Tombstone => true,
        ChangeMode::Upsert => (change.version, event_id) > (current.version, current.event_id),
    }
}

#[cfg(test)]
mod tests {
    use super::super::StateAttrs;
    use super::*;

    fn change(version: i64, mode: ChangeMode) -> StateChange {
        StateChange {
            entity_kind: "user".into(),
            entity_id: "u1".into(),
            version,
            mode,
            attrs: StateAttrs::new(),
            sync: None,
        }
    }

    fn at(version: i64, event_id: &str, deleted: bool) -> Applied<'_> {
        Applied {
            version,
            event_id,
            deleted,
        }
    }

    #[test]
    fn a_newer_version_applies_and_a_tie_goes_to_the_greater_event_id() {
        let upsert = change(10, ChangeMode::Upsert);
        assert!(supersedes(&upsert, "m1", None));
        assert!(supersedes(&upsert, "m1", Some(&at(9, "m9", false))));
        assert!(!supersedes(&upsert, "m1", Some(&at(11, "m0", false))));
        assert!(supersedes(&upsert, "m2", Some(&at(10, "m1", false))));
        assert!(!supersedes(&upsert, "m1", Some(&at(10, "m2", false))));
        // The same event again is not newer than itself.
        assert!(!supersedes(&upsert, "m1", Some(&at(10, "m1", false))));
    }

    #[test]
    fn a_tombstone_applies_whatever_its_version_and_is_final() {
        let tombstone = change(1, ChangeMode::Tombstone);
        assert!(supersedes(&tombstone, "m0", Some(&at(50, "m9", false))));
        assert!(!supersedes(&tombstone, "m1", Some(&at(1, "m0", true))));
        let upsert = change(99, ChangeMode::Upsert);
        assert!(!supersedes(&upsert, "m9", Some(&at(1, "m0", true))));
    }
}
