//! Action kinds are declared once, per receiver (its crate's `ACTION_KINDS`), and the worker's
//! `hookline_receivers::action_kinds()` (the targets it refuses to start without) is their union: a
//! kind a mapping emits but no receiver declares would otherwise fail only at run time, as a
//! follow-up without a target. Every sample in `events/<function>/` runs through its mapping.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use hookline::verify::{Verified, VerifiedMeta};
use sha2::{Digest, Sha256};

/// The samples of `function`: (file name, body).
fn samples(function: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/../events/{function}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The action kinds one mapping result emits: its event actions and its sync's target.
fn emitted(d: &hookline::receiver::Described) -> Vec<String> {
    let mut kinds: Vec<String> = d.effects.actions().iter().map(|a| a.kind.clone()).collect();
    if let Some(sync) = d.effects.change().and_then(|c| c.sync.as_ref()) {
        kinds.push(sync.action.clone());
    }
    kinds
}

#[test]
fn every_sample_emits_only_kinds_its_receiver_declares() {
    let mut seen = BTreeSet::new();
    for spec in hookline_receivers::all() {
        let samples = samples(spec.function);
        assert!(!samples.is_empty(), "{}: no samples", spec.function);
        for (name, body) in samples {
            let digest: String = Sha256::digest(&body)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            // The headers its sender would add: a delivery id, and the event type where the
            // scheme names it in a header of its own (GitHub, Shopify: the sample's file name).
            let meta = VerifiedMeta {
                delivery_id: Some("msg_sample".into()),
                event_type: spec.scheme.sample_event_type(&name),
                ..VerifiedMeta::default()
            };
            let verified = Verified::stored_with(&body, &digest, meta).unwrap();
            let d = (spec.describe)(&verified).unwrap();
            for kind in emitted(&d) {
                assert!(
                    spec.action_kinds.contains(&kind.as_str()),
                    "{}/{name} emits {kind:?}, not among {:?}",
                    spec.function,
                    spec.action_kinds
                );
                seen.insert(kind);
            }
        }
    }
    let declared: BTreeSet<String> = hookline_receivers::all()
        .iter()
        .flat_map(|s| s.action_kinds.iter().map(|k| (*k).to_owned()))
        .collect();
    assert_eq!(
        seen, declared,
        "every declared kind is emitted by some sample (else a sample is missing, or a kind is dead)"
    );
}

#[test]
fn the_workers_kinds_are_the_union_of_the_receivers_kinds() {
    let mut declared = Vec::new();
    for spec in hookline_receivers::all() {
        for kind in spec.action_kinds {
            assert!(
                !kind.is_empty()
                    && kind
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}: kind {kind:?} is lower-case letters, digits and `_`",
                spec.function
            );
            declared.push(*kind);
        }
    }
    let unique: BTreeSet<&str> = declared.iter().copied().collect();
    assert_eq!(hookline_receivers::action_kinds(), unique);
}
