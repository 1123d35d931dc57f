//! GitHub repository webhooks → (state change, follow-ups). Pure: no I/O.
//!
//! GitHub signs only the body (`X-Hub-Signature-256`, no timestamp): `X-GitHub-Delivery` and
//! `X-GitHub-Event` are not covered by the signature. So:
//!
//! - **The key** is the event name plus the SHA-256 of the raw body (`push:<hex>`), never the
//!   delivery id: a redelivery resends the same body, and a captured body resent under a new
//!   delivery id is a duplicate. An event this receiver does not handle is keyed `other:<hex>`
//!   (recorded as `ignored`), so relabelling one captured body mints at most six records.
//! - **Decisions follow the body's shape and fields**: the header only chooses the model, and each
//!   model requires the object that makes its body what it is (`zen`/`hook_id`, `ref`/`after`,
//!   `release`, `workflow_run`, `pull_request`), so a body resent under another event's name does
//!   not fit and is quarantined. What to do is then read from the body: `action`, the release's
//!   `draft`/`prerelease`, the run's `status`/`conclusion`, whether `ref` is the default branch.
//! - A delivery is `application/json` or form-encoded (`payload=<url-encoded JSON>`); the
//!   signature is verified over the raw bytes either way, and the key hashes the raw bytes.
//! - The delivery headers (delivery id, event name) are kept on the event record and used again
//!   by `hookline events replay`.
//!
//! | event | entity (id) | version | follow-ups |
//! |---|---|---|---|
//! | `ping` | — (`accepted`, recorded) | — | — |
//! | `push` | `git_ref` (`<repository id>/<ref>`): repository, ref, sha, before, created, deleted, forced, pushed_at | `repository.pushed_at` | on the default branch (not a deletion): the ref's `deploy` sync (`deploy_branch` target) |
//! | `release` of a published, non-draft, non-prerelease release (`published`, `released`, `created`, `edited`) | `release` (repository id): the latest release's tag, id, name, target, published_at, withdrawn (false) | `published_at` (+100 for `edited`) | the release's `deploy` sync (`deploy_release` target) |
//! | `release` `unpublished` / `deleted` | `release`: withdrawn (true) | `published_at`, else `created_at`, + 900 | the `deploy` sync, to its baseline (`deploy_release` with `withdrawn: true`) |
//! | `release` of a draft or pre-release | — (`accepted`, recorded) | — | — |
//! | `workflow_run` | `workflow` (`<repository id>/<workflow id>`): the latest run's id, number, attempt, status, conclusion, branch, sha | `workflow_run.updated_at` + status offset | `notify_admin` when `completed` with `failure`, `timed_out` or `startup_failure` (guard: skipped once the workflow's latest run recorded is a `success`) |
//! | `pull_request` | `pull_request` (`<repository id>/<number>`): state, merged, title, head/base ref, head sha | `pull_request.updated_at` | — |
//! | any other event | — (`ignored`) | — | — |
//!
//! # Deploys: syncs, one per target
//!
//! A deploy is mirrored state, not a fact: the environment must end on the *latest* commit of the
//! default branch (the latest release), whatever order the deliveries arrive in. As an event
//! action, an older push delivered late would deploy after a newer one and roll the environment
//! back. As the ref's sync, the older push is stale against the ref and changes nothing, and the
//! worker sends what the ref holds now (docs/FOLLOWUPS.md, "One entity decides"). For the same
//! reason pushes and releases feed two targets, `deploy_branch` (e.g. staging) and
//! `deploy_release` (e.g. production), each decided by exactly one entity: two entities' syncs
//! to one target could overtake each other. Both have no baseline for "never deployed", so a ref
//! or a release never sent is never told anything; a withdrawn release that was sent is told.
//! Renaming the default branch makes the new branch's ref a second entity with its own
//! `deploy` sync to the same target; its pushes are newer, so the target ends on them.
//!
//! # Ordering and `provider_ts`
//!
//! Versions and `provider_ts` are times GitHub sets in the signed body, the same on every
//! redelivery: `repository.pushed_at` for a push (Unix seconds in push bodies), the release's
//! `published_at` (`created_at` for an unpublished one), the run's and the pull request's
//! `updated_at`. Never `head_commit.timestamp`, which the commit's author chooses. A run's
//! states within one second are ordered by status (requested / pending 10, waiting 20, queued
//! 30, in_progress 40, completed 50 ms), so any arrival order of requested → in_progress →
//! completed ends on completed. Two pushes to one ref within the same second are ordered by
//! their keys (the body has nothing better).
//!
//! The shared receiver rejects a body whose `provider_ts` is older than the retention window (a
//! captured delivery replayed after its record expired). A `ping` has no such time (its hook's
//! times can be years old) and records nothing but itself: `provider_ts` 0. The check costs
//! something: an `edited` or `deleted` release published more than the window ago is refused too
//! (its only GitHub-set times are that old); the latest release of an active repository is not.

use hookline::receiver::Described;
use hookline::store::{Action, ChangeMode, Effects, StateAttrs, StateChange, SyncTarget};
use hookline::verify::{ParseError, Verified};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::model::{
    EventName, Ping, PullRequestEvent, Push, Release, ReleaseEvent, Repository, WorkflowRunEvent,
    json_body,
};

/// Entity kind of a ref's latest push, keyed `<repository id>/<ref>`.
pub const GIT_REF: &str = "git_ref";
/// Entity kind of a repository's latest release, keyed by repository id.
pub const RELEASE: &str = "release";
/// Entity kind of a workflow's latest run, keyed `<repository id>/<workflow id>`.
pub const WORKFLOW: &str = "workflow";
/// Entity kind of a pull request, keyed `<repository id>/<number>`.
pub const PULL_REQUEST: &str = "pull_request";
/// The sync of a default branch's ref and of a repository's latest release.
pub const DEPLOY: &str = "deploy";

/// Follow-up: deploy the default branch's latest commit.
pub const DEPLOY_BRANCH: &str = "deploy_branch";
/// Follow-up: deploy the repository's latest release (or hear that it was withdrawn).
pub const DEPLOY_RELEASE: &str = "deploy_release";
/// Follow-up: tell an administrator (here: a workflow run failed).
pub const NOTIFY_ADMIN: &str = "notify_admin";
/// Every action kind this mapping emits (event actions, and its syncs' targets).
pub const ACTION_KINDS: &[&str] = &[DEPLOY_BRANCH, DEPLOY_RELEASE, NOTIFY_ADMIN];

/// Run conclusions that are failures worth telling.
const FAILED: &[&str] = &["failure", "timed_out", "startup_failure"];

/// Parses a verified GitHub delivery and maps it; the event name is the `X-GitHub-Event` header.
pub fn describe(v: &Verified<'_>) -> Result<Described, ParseError> {
    let event = v
        .meta()
        .event_type
        .as_deref()
        .ok_or_else(|| ParseError::missing("X-GitHub-Event header"))?;
    describe_body(event, v.body())
}

/// [`describe`] minus the proof of origin: the event header's value and the raw body.
pub fn describe_body(event: &str, body: &[u8]) -> Result<Described, ParseError> {
    let digest = hex::encode(Sha256::digest(body));
    let Some(name) = EventName::parse(event) else {
        // Not ours to read, but still a JSON document (a cut body is quarantined, not ignored).
        let _: serde::de::IgnoredAny = serde_json::from_slice(&json_body(body)?)?;
        return Ok(Described::new(
            format!("other:{digest}"),
            event.to_owned(),
            0,
            Effects::Ignored,
        ));
    };
    let json = json_body(body)?;
    let (event_type, provider_ts, effects) = match name {
        EventName::Ping => {
            let _: Ping = serde_json::from_slice(&json)?;
            ("ping".to_owned(), 0, Effects::apply(None, Vec::new()))
        }
        EventName::Push => {
            let p: Push = serde_json::from_slice(&json)?;
            let at = p
                .repository
                .pushed_at
                .ok_or_else(|| ParseError::missing("repository.pushed_at"))?;
            ("push".to_owned(), at, push(&p, at))
        }
        EventName::Release => {
            let r: ReleaseEvent = serde_json::from_slice(&json)?;
            let at = r
                .release
                .published_at
                .or(r.release.created_at)
                .ok_or_else(|| ParseError::missing("release.published_at or created_at"))?;
            (format!("release.{}", r.action), at, release(&r, at))
        }
        EventName::WorkflowRun => {
            let w: WorkflowRunEvent = serde_json::from_slice(&json)?;
            let at = w
                .workflow_run
                .updated_at
                .ok_or_else(|| ParseError::missing("workflow_run.updated_at"))?;
            (
                format!("workflow_run.{}", w.action),
                at,
                workflow_run(&w, at),
            )
        }
        EventName::PullRequest => {
            let p: PullRequestEvent = serde_json::from_slice(&json)?;
            let at = p
                .pull_request
                .updated_at
                .ok_or_else(|| ParseError::missing("pull_request.updated_at"))?;
            (
                format!("pull_request.{}", p.action),
                at,
                pull_request(&p, at),
            )
        }
    };
    Ok(Described::new(
        format!("{}:{digest}", name.as_str()),
        event_type,
        provider_ts,
        effects,
    ))
}

fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> StateAttrs {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn upsert(kind: &str, id: String, version: i64, attrs: StateAttrs) -> StateChange {
    StateChange {
        entity_kind: kind.to_owned(),
        entity_id: id,
        version,
        mode: ChangeMode::Upsert,
        attrs,
        sync: None,
    }
}

fn push(p: &Push, at: i64) -> Effects {
    let repo = &p.repository;
    let mut change = upsert(
        GIT_REF,
        format!("{}/{}", repo.id, p.git_ref),
        at,
        attrs([
            ("repository", json!(repo.full_name)),
            ("ref", json!(p.git_ref)),
            ("sha", json!(p.after)),
            ("before", json!(p.before)),
            ("created", json!(p.created)),
            ("deleted", json!(p.deleted)),
            ("forced", json!(p.forced)),
            ("pushed_at", json!(at)),
        ]),
    );
    if p.is_default_branch() && !p.deleted {
        change.sync = Some(SyncTarget {
            name: DEPLOY.to_owned(),
            action: DEPLOY_BRANCH.to_owned(),
            payload: json!({
                "repository": repo.full_name,
                "repository_id": repo.id,
                "ref": p.git_ref,
                "sha": p.after,
            }),
            baseline: false,
        });
    }
    Effects::apply(Some(change), Vec::new())
}

fn release(e: &ReleaseEvent, at: i64) -> Effects {
    let r = &e.release;
    let withdrawn = matches!(e.action.as_str(), "unpublished" | "deleted");
    if !withdrawn && (r.draft || r.prerelease || r.published_at.is_none()) {
        // Not (yet) the latest release: recorded, nothing to mirror.
        return Effects::apply(None, Vec::new());
    }
    let offset = match e.action.as_str() {
        _ if withdrawn => 900,
        "edited" => 100,
        _ => 0,
    };
    let mut change = upsert(
        RELEASE,
        e.repository.id.to_string(),
        at.saturating_add(offset),
        attrs([
            ("repository", json!(e.repository.full_name)),
            ("release_id", json!(r.id)),
            ("tag_name", json!(r.tag_name)),
            ("name", json!(r.name)),
            ("target_commitish", json!(r.target_commitish)),
            ("published_at", json!(r.published_at)),
            ("withdrawn", json!(withdrawn)),
        ]),
    );
    change.sync = Some(release_deploy(&e.repository, r, withdrawn));
    Effects::apply(Some(change), Vec::new())
}

fn release_deploy(repo: &Repository, r: &Release, withdrawn: bool) -> SyncTarget {
    let mut payload = json!({
        "repository": repo.full_name,
        "repository_id": repo.id,
        "release_id": r.id,
        "tag_name": r.tag_name,
    });
    if withdrawn {
        payload["withdrawn"] = json!(true);
    } else {
        payload["target_commitish"] = json!(r.target_commitish);
    }
    SyncTarget {
        name: DEPLOY.to_owned(),
        action: DEPLOY_RELEASE.to_owned(),
        payload,
        baseline: withdrawn,
    }
}

/// The millisecond offset ordering one second's states of a run (see the module doc).
fn status_offset(status: Option<&str>) -> i64 {
    match status {
        Some("requested" | "pending") => 10,
        Some("waiting") => 20,
        Some("queued") => 30,
        Some("in_progress") => 40,
        Some("completed") => 50,
        _ => 0,
    }
}

fn workflow_run(e: &WorkflowRunEvent, at: i64) -> Effects {
    let run = &e.workflow_run;
    let id = format!("{}/{}", e.repository.id, run.workflow_id);
    let change = upsert(
        WORKFLOW,
        id.clone(),
        at.saturating_add(status_offset(run.status.as_deref())),
        attrs([
            ("repository", json!(e.repository.full_name)),
            ("workflow", json!(run.name)),
            ("run_id", json!(run.id)),
            ("run_number", json!(run.run_number)),
            ("run_attempt", json!(run.run_attempt)),
            ("status", json!(run.status)),
            ("conclusion", json!(run.conclusion)),
            ("head_branch", json!(run.head_branch)),
            ("head_sha", json!(run.head_sha)),
            ("updated_at", json!(at)),
        ]),
    );
    let failed = e.action == "completed"
        && run.status.as_deref() == Some("completed")
        && run
            .conclusion
            .as_deref()
            .is_some_and(|c| FAILED.contains(&c));
    let actions = if failed {
        vec![
            Action::new(
                NOTIFY_ADMIN,
                json!({
                    "event_type": "workflow_run.completed",
                    "repository": e.repository.full_name,
                    "workflow": run.name,
                    "run_id": run.id,
                    "run_number": run.run_number,
                    "run_attempt": run.run_attempt,
                    "conclusion": run.conclusion,
                    "head_branch": run.head_branch,
                    "head_sha": run.head_sha,
                    "html_url": run.html_url,
                }),
            )
            .unless_attr(
                WORKFLOW,
                &id,
                "conclusion",
                json!("success"),
                "workflow succeeded since",
            ),
        ]
    } else {
        Vec::new()
    };
    Effects::apply(Some(change), actions)
}

fn pull_request(e: &PullRequestEvent, at: i64) -> Effects {
    let pr = &e.pull_request;
    let change = upsert(
        PULL_REQUEST,
        format!("{}/{}", e.repository.id, e.number),
        at,
        attrs([
            ("repository", json!(e.repository.full_name)),
            ("state", json!(pr.state)),
            ("merged", json!(pr.merged)),
            ("title", json!(pr.title)),
            ("head_ref", json!(pr.head.git_ref)),
            ("head_sha", json!(pr.head.sha)),
            ("base_ref", json!(pr.base.git_ref)),
            ("updated_at", json!(at)),
        ]),
    );
    Effects::apply(Some(change), Vec::new())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const REPO: u64 = 871_234_567;

    fn sample(name: &str) -> &'static str {
        match name {
            "ping" => include_str!("../../../events/repo-events/ping.json"),
            "push" => include_str!("../../../events/repo-events/push.json"),
            "release.published" => {
                include_str!("../../../events/repo-events/release.published.json")
            }
            "workflow_run.requested" => {
                include_str!("../../../events/repo-events/workflow_run.requested.json")
            }
            "workflow_run.in_progress" => {
                include_str!("../../../events/repo-events/workflow_run.in_progress.json")
            }
            "workflow_run.completed" => {
                include_str!("../../../events/repo-events/workflow_run.completed.json")
            }
            "pull_request.opened" => {
                include_str!("../../../events/repo-events/pull_request.opened.json")
            }
            "issues.opened" => include_str!("../../../events/repo-events/issues.opened.json"),
            other => panic!("no sample {other}"),
        }
    }

    /// The header GitHub sends with a sample: its name up to the first dot.
    fn event_of(name: &str) -> &str {
        name.split('.').next().unwrap()
    }

    fn value(name: &str) -> Value {
        serde_json::from_str(sample(name)).unwrap()
    }

    fn described(name: &str) -> Described {
        describe_body(event_of(name), sample(name).as_bytes()).unwrap()
    }

    fn with(event: &str, v: &Value) -> Described {
        describe_body(event, &serde_json::to_vec(v).unwrap()).unwrap()
    }

    fn change(d: &Described) -> &StateChange {
        d.effects.change().expect("a state change")
    }

    fn kinds(d: &Described) -> Vec<&str> {
        d.effects
            .actions()
            .iter()
            .map(|a| a.kind.as_str())
            .collect()
    }

    fn digest(body: &[u8]) -> String {
        hex::encode(Sha256::digest(body))
    }

    #[test]
    fn ping_is_recorded_and_changes_nothing() {
        let d = described("ping");
        assert_eq!(
            d.event_id,
            format!("ping:{}", digest(sample("ping").as_bytes()))
        );
        assert_eq!(d.provider_ts, 0);
        assert_eq!(d.effects, Effects::apply(None, Vec::new()));
    }

    #[test]
    fn push_to_the_default_branch_deploys_through_the_ref_sync() {
        let d = described("push");
        assert_eq!(d.event_type, "push");
        // repository.pushed_at (Unix seconds in a push body), not head_commit.timestamp.
        assert_eq!(d.provider_ts, 1_796_306_531_000);
        let c = change(&d);
        assert_eq!(
            (c.entity_kind.as_str(), c.entity_id.as_str()),
            (GIT_REF, "871234567/refs/heads/main")
        );
        assert_eq!(c.version, d.provider_ts);
        assert_eq!(c.attrs["sha"], "6f1c2e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e");
        let s = c.sync.as_ref().unwrap();
        assert_eq!(
            (s.name.as_str(), s.action.as_str()),
            (DEPLOY, DEPLOY_BRANCH)
        );
        assert_eq!(
            s.payload,
            json!({"repository": "hookline-demo/webshop", "repository_id": REPO,
                   "ref": "refs/heads/main", "sha": "6f1c2e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e"})
        );
        assert!(kinds(&d).is_empty(), "no event action deploys");
    }

    #[test]
    fn other_refs_deletions_and_the_commit_time_do_not_deploy() {
        let mut v = value("push");
        v["ref"] = "refs/heads/order-number".into();
        assert!(change(&with("push", &v)).sync.is_none());
        let mut v = value("push");
        v["deleted"] = true.into();
        v["after"] = "0000000000000000000000000000000000000000".into();
        assert!(change(&with("push", &v)).sync.is_none());
        // The author chooses head_commit.timestamp: it moves nothing.
        let mut v = value("push");
        v["head_commit"]["timestamp"] = "2030-01-01T00:00:00Z".into();
        let d = with("push", &v);
        assert_eq!(
            (d.provider_ts, change(&d).version),
            (1_796_306_531_000, 1_796_306_531_000)
        );
        // Without pushed_at there is no version: quarantined, not guessed.
        let mut v = value("push");
        v["repository"]["pushed_at"] = Value::Null;
        assert!(describe_body("push", &serde_json::to_vec(&v).unwrap()).is_err());
    }

    #[test]
    fn a_form_encoded_delivery_is_the_same_event_under_its_own_key() {
        let json = sample("push");
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", json)
            .finish();
        let d = describe_body("push", form.as_bytes()).unwrap();
        assert_eq!(d.event_id, format!("push:{}", digest(form.as_bytes())));
        assert_eq!(d.effects, described("push").effects);
    }

    #[test]
    fn a_body_resent_under_another_event_name_does_not_fit() {
        for (name, as_event) in [
            ("push", "release"),
            ("push", "workflow_run"),
            ("release.published", "push"),
            ("workflow_run.completed", "pull_request"),
            ("pull_request.opened", "ping"),
            ("ping", "push"),
        ] {
            assert!(
                describe_body(as_event, sample(name).as_bytes()).is_err(),
                "{name} as {as_event}"
            );
        }
        // Unknown names: ignored, one key per body whatever the name.
        let a = describe_body("issues", sample("issues.opened").as_bytes()).unwrap();
        let b = describe_body("star", sample("issues.opened").as_bytes()).unwrap();
        assert!(a.effects.is_ignored());
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(a.event_type, "issues");
    }

    #[test]
    fn a_published_release_deploys_through_the_release_sync() {
        let d = described("release.published");
        assert_eq!(d.event_type, "release.published");
        assert_eq!(d.provider_ts, 1_796_307_160_000);
        let c = change(&d);
        assert_eq!(
            (c.entity_kind.as_str(), c.entity_id.as_str()),
            (RELEASE, "871234567")
        );
        let s = c.sync.as_ref().unwrap();
        assert_eq!((s.action.as_str(), s.baseline), (DEPLOY_RELEASE, false));
        assert_eq!(s.payload["tag_name"], "v1.4.0");
        // released / created of the same release: the same desired state.
        let mut v = value("release.published");
        v["action"] = "released".into();
        assert_eq!(change(&with("release", &v)).sync.as_ref(), Some(s));
        // An edit is newer; a deletion newer still, and withdraws.
        v["action"] = "edited".into();
        assert_eq!(change(&with("release", &v)).version, c.version + 100);
        v["action"] = "deleted".into();
        let del = with("release", &v);
        assert_eq!(change(&del).version, c.version + 900);
        let w = change(&del).sync.as_ref().unwrap();
        assert_eq!((w.action.as_str(), w.baseline), (DEPLOY_RELEASE, true));
        assert_eq!(w.payload["withdrawn"], true);
    }

    #[test]
    fn drafts_and_prereleases_are_recorded_but_deploy_nothing() {
        for (field, val) in [
            ("draft", json!(true)),
            ("prerelease", json!(true)),
            ("published_at", Value::Null),
        ] {
            let mut v = value("release.published");
            v["release"][field] = val;
            let d = with("release", &v);
            assert_eq!(d.effects, Effects::apply(None, Vec::new()), "{field}");
        }
    }

    #[test]
    fn workflow_runs_converge_on_completed_and_a_failure_notifies_under_a_guard() {
        let versions: Vec<i64> = [
            "workflow_run.requested",
            "workflow_run.in_progress",
            "workflow_run.completed",
        ]
        .iter()
        .map(|n| change(&described(n)).version)
        .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        let d = described("workflow_run.completed");
        let c = change(&d);
        assert_eq!(
            (c.entity_kind.as_str(), c.entity_id.as_str()),
            (WORKFLOW, "871234567/98123456")
        );
        assert_eq!(c.attrs["conclusion"], "failure");
        assert_eq!(kinds(&d), [NOTIFY_ADMIN]);
        let guard = d.effects.actions()[0].guard.as_ref().unwrap();
        assert_eq!(guard.entity().id, "871234567/98123456");
        assert!(kinds(&described("workflow_run.in_progress")).is_empty());
        // Same second: requested < in_progress < completed.
        let mut v = value("workflow_run.completed");
        v["workflow_run"]["updated_at"] = "2026-12-03T14:02:15Z".into();
        let completed = change(&with("workflow_run", &v)).version;
        v["workflow_run"]["status"] = "in_progress".into();
        let running = change(&with("workflow_run", &v)).version;
        v["workflow_run"]["status"] = "queued".into();
        let queued = change(&with("workflow_run", &v)).version;
        assert!(queued < running && running < completed);
        // Successes and cancellations tell no one.
        for conclusion in ["success", "cancelled", "skipped"] {
            let mut v = value("workflow_run.completed");
            v["workflow_run"]["conclusion"] = conclusion.into();
            assert!(kinds(&with("workflow_run", &v)).is_empty(), "{conclusion}");
        }
    }

    #[test]
    fn pull_requests_are_kept_by_their_updated_at() {
        let d = described("pull_request.opened");
        assert_eq!(d.event_type, "pull_request.opened");
        let c = change(&d);
        assert_eq!(
            (c.entity_kind.as_str(), c.entity_id.as_str()),
            (PULL_REQUEST, "871234567/57")
        );
        assert_eq!(c.version, d.provider_ts);
        assert_eq!(
            c.attrs["head_sha"],
            "6f1c2e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e"
        );
        assert!(kinds(&d).is_empty());
    }

    #[test]
    fn garbage_is_a_parse_error_never_a_panic() {
        for event in ["ping", "push", "release", "workflow_run", "pull_request"] {
            for body in [
                &b""[..],
                b"null",
                b"{}",
                b"payload=",
                b"payload=%7B",
                b"\xff",
            ] {
                assert!(describe_body(event, body).is_err(), "{event}");
            }
        }
    }
}
