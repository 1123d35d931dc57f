//! Every fuzz target's corpus as ordinary tests, built and run by `make test` without libFuzzer:
//! the seeds `scripts/fuzz.sh` starts a campaign from (the sample bodies in `events/`, with the
//! same prefixes), every crash input kept in `fuzz/regressions/<target>/` (a crash, once fixed,
//! is kept there so it can never come back), and, when a local campaign left one, the whole
//! `fuzz/corpus/<target>/`. A harness panics only on a broken invariant, so a test passes when
//! every input runs through its harness.
//!
//! The timed, instrumented runs are `make fuzz` (scripts/fuzz.sh).

use std::path::{Path, PathBuf};

use hookline::verify::Scheme;

/// A target's name and its harness (the body of its `fuzz_targets/<name>.rs`).
type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] = &[
    ("stripe", |d| hookline_fuzz::run(Scheme::Stripe, d)),
    ("standard_webhooks", |d| {
        hookline_fuzz::run(Scheme::StandardWebhooks, d);
    }),
    ("github", |d| hookline_fuzz::run(Scheme::GitHub, d)),
    ("shopify", |d| hookline_fuzz::run(Scheme::Shopify, d)),
    ("slack", |d| hookline_fuzz::run(Scheme::Slack, d)),
    ("paddle", |d| hookline_fuzz::run(Scheme::Paddle, d)),
    ("twilio", |d| hookline_fuzz::run(Scheme::Twilio, d)),
    ("static_header", |d| {
        hookline_fuzz::run(hookline_fuzz::static_scheme(), d);
    }),
    ("model_stripe", hookline_fuzz::models::stripe),
    ("model_users", hookline_fuzz::models::users),
    ("request_path", hookline_fuzz::request_path::run),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The sample bodies of one receiver, sorted.
fn samples(function: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("../events").join(function);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let body = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name.unwrap_or_default(), body)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no samples in {}", dir.display());
    out
}

fn prefixed(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    [prefix, body].concat()
}

/// The seeds of `target`, as `scripts/fuzz.sh` writes them (keep the two in step).
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let stripe = samples("payment-events");
    let users = samples("user-events");
    match target {
        "model_stripe" => stripe,
        "model_users" => users
            .into_iter()
            .map(|(n, b)| (n, prefixed(b"\x01", &b)))
            .collect(),
        // Every registry receiver's samples, genuinely signed (see fuzz/src/request_path.rs).
        "request_path" => hookline_receivers::all()
            .iter()
            .enumerate()
            .flat_map(|(i, spec)| {
                let index = u8::try_from(i).expect("fewer than 256 receivers");
                samples(spec.function).into_iter().map(move |(n, b)| {
                    (
                        format!("{}-{n}", spec.function),
                        prefixed(&[index, 2, 0, 1, 0, 0], &b),
                    )
                })
            })
            .collect(),
        // The verifiers start from no corpus; replay the samples as bodies, forged and signed.
        _ => stripe
            .into_iter()
            .chain(users)
            .flat_map(|(n, b)| {
                [
                    (format!("forged-{n}"), prefixed(b"\x00", &b)),
                    (format!("signed-{n}"), prefixed(b"\x01\x00\x00\x00\x00", &b)),
                ]
            })
            .collect(),
    }
}

/// Every file under `dir`, if it exists.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter_map(|p| Some((p.display().to_string(), std::fs::read(&p).ok()?)))
        .collect();
    out.sort();
    out
}

fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let mut inputs = seeds(target);
    inputs.extend(files(&root().join("regressions").join(target)));
    inputs.extend(files(&root().join("corpus").join(target)));
    for (name, input) in &inputs {
        let outcome = std::panic::catch_unwind(|| harness(input));
        assert!(outcome.is_ok(), "{target}: input {name} broke an invariant");
    }
    inputs.len()
}

#[test]
fn every_target_replays_its_seeds_and_kept_crashes() {
    for (target, harness) in TARGETS {
        let n = replay(target, *harness);
        assert!(n > 0, "{target}: nothing replayed");
    }
}

#[test]
fn every_fuzz_target_file_is_replayed_here() {
    let dir = root().join("fuzz_targets");
    let mut on_disk: Vec<String> = files(&dir)
        .into_iter()
        .filter_map(|(p, _)| {
            Path::new(&p)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    on_disk.sort();
    let mut here: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    here.sort();
    assert_eq!(
        on_disk, here,
        "a fuzz target without a corpus replay (or the reverse)"
    );
}

#[test]
fn kept_crash_inputs_sit_under_their_target() {
    let dir = root().join("regressions");
    let stray = files(&dir);
    assert!(
        stray.is_empty(),
        "kept crash inputs must sit in regressions/<target>/: {stray:?}"
    );
    let mut kept = 0;
    for entry in std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "regressions/{name} names no target"
        );
        kept += files(&entry.path()).len();
    }
    assert!(kept > 0, "the kept crash inputs are gone");
}
