//! GitHub repository webhook bodies: `ping`, `push`, `release`, `workflow_run`, `pull_request`.
//! Only the fields the mapping uses; unknown fields are ignored. The event name comes in the
//! unsigned `X-GitHub-Event` header, so each model requires the object that makes its body what
//! it is (`zen` and `hook_id`, `ref` and `after`, `release`, `workflow_run`, `pull_request`): a
//! body resent under another event's name does not fit, and is quarantined rather than misread.
//!
//! A delivery is `application/json`, or form-encoded with the JSON in its `payload` field
//! ([`json_body`]); the signature covers the raw bytes either way.

use std::borrow::Cow;

use hookline::model::users::rfc3339_millis;
use hookline::verify::ParseError;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The events this receiver handles, from `X-GitHub-Event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    /// `ping`: sent when the webhook is created (or on demand).
    Ping,
    /// `push`.
    Push,
    /// `release`.
    Release,
    /// `workflow_run`.
    WorkflowRun,
    /// `pull_request`.
    PullRequest,
}

impl EventName {
    /// Every handled event.
    pub const ALL: [Self; 5] = [
        Self::Ping,
        Self::Push,
        Self::Release,
        Self::WorkflowRun,
        Self::PullRequest,
    ];

    /// The name GitHub gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Push => "push",
            Self::Release => "release",
            Self::WorkflowRun => "workflow_run",
            Self::PullRequest => "pull_request",
        }
    }

    /// The event named `s`, if handled.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The JSON of a delivery: the body itself, or the `payload` field of a form-encoded body.
pub fn json_body(body: &[u8]) -> Result<Cow<'_, [u8]>, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return Ok(Cow::Borrowed(body));
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| Cow::Owned(v.into_owned().into_bytes()))
        .ok_or_else(|| ParseError::missing("a JSON body or a form field `payload`"))
}

/// A GitHub time in milliseconds: an RFC 3339 string, or (in `push` bodies, whose `repository`
/// carries Unix times) an integer of seconds. `null` is `None`; anything else is an error.
fn github_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|s| s.checked_mul(1000))
            .map(Some)
            .ok_or_else(|| D::Error::custom("a time out of range")),
        Some(Value::String(s)) => rfc3339_millis(&s)
            .map(Some)
            .ok_or_else(|| D::Error::custom("a time that is not RFC 3339")),
        Some(_) => Err(D::Error::custom("a time of the wrong type")),
    }
}

/// The repository an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    /// Its id (stable across renames and transfers).
    pub id: u64,
    /// `owner/name`.
    pub full_name: String,
    /// The default branch's name, e.g. `main`.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// When it was last pushed to (ms): GitHub sets it.
    #[serde(default, deserialize_with = "github_time")]
    pub pushed_at: Option<i64>,
}

/// `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ping {
    /// A line of GitHub zen.
    pub zen: String,
    /// The webhook's id.
    pub hook_id: u64,
    /// The repository, for a repository webhook.
    #[serde(default)]
    pub repository: Option<Repository>,
}

/// `push`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Push {
    /// The full ref pushed, e.g. `refs/heads/main`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The ref's commit before the push.
    pub before: String,
    /// The ref's commit after the push (all zeros when the ref was deleted).
    pub after: String,
    /// The push created the ref.
    #[serde(default)]
    pub created: bool,
    /// The push deleted the ref.
    #[serde(default)]
    pub deleted: bool,
    /// The push was forced.
    #[serde(default)]
    pub forced: bool,
    /// The repository.
    pub repository: Repository,
}

impl Push {
    /// True when the push is to the repository's default branch.
    pub fn is_default_branch(&self) -> bool {
        self.repository
            .default_branch
            .as_deref()
            .is_some_and(|b| self.git_ref.strip_prefix("refs/heads/") == Some(b))
    }
}

/// `release`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleaseEvent {
    /// `published`, `unpublished`, `created`, `edited`, `deleted`, `prereleased`, `released`.
    pub action: String,
    /// The release.
    pub release: Release,
    /// The repository.
    pub repository: Repository,
}

/// A release.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Release {
    /// Its id.
    pub id: u64,
    /// Its tag.
    pub tag_name: String,
    /// Its title.
    #[serde(default)]
    pub name: Option<String>,
    /// A draft (not published).
    #[serde(default)]
    pub draft: bool,
    /// A pre-release.
    #[serde(default)]
    pub prerelease: bool,
    /// The commit or branch the tag is made from.
    #[serde(default)]
    pub target_commitish: Option<String>,
    /// When it was created (ms).
    #[serde(default, deserialize_with = "github_time")]
    pub created_at: Option<i64>,
    /// When it was published (ms); `null` for a draft.
    #[serde(default, deserialize_with = "github_time")]
    pub published_at: Option<i64>,
    /// Its page.
    #[serde(default)]
    pub html_url: Option<String>,
}

/// `workflow_run`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkflowRunEvent {
    /// `requested`, `in_progress` or `completed`.
    pub action: String,
    /// The run.
    pub workflow_run: WorkflowRun,
    /// The repository.
    pub repository: Repository,
}

/// A workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkflowRun {
    /// The run's id.
    pub id: u64,
    /// The workflow's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The workflow's id.
    pub workflow_id: u64,
    /// The run's number within its workflow.
    #[serde(default)]
    pub run_number: Option<u64>,
    /// The attempt (re-runs count up).
    #[serde(default)]
    pub run_attempt: Option<u64>,
    /// `requested`, `queued`, `waiting`, `pending`, `in_progress` or `completed`.
    #[serde(default)]
    pub status: Option<String>,
    /// Once completed: `success`, `failure`, `timed_out`, `cancelled`, `skipped`, ...
    #[serde(default)]
    pub conclusion: Option<String>,
    /// The branch it ran on.
    #[serde(default)]
    pub head_branch: Option<String>,
    /// The commit it ran on.
    #[serde(default)]
    pub head_sha: Option<String>,
    /// Its page.
    #[serde(default)]
    pub html_url: Option<String>,
    /// When the run last changed (ms): GitHub sets it.
    #[serde(deserialize_with = "github_time")]
    pub updated_at: Option<i64>,
}

/// `pull_request`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestEvent {
    /// `opened`, `closed`, `synchronize`, ...
    pub action: String,
    /// The pull request's number.
    pub number: u64,
    /// The pull request.
    pub pull_request: PullRequest,
    /// The repository.
    pub repository: Repository,
}

/// A pull request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    /// Its id.
    pub id: u64,
    /// `open` or `closed`.
    pub state: String,
    /// Merged (once closed).
    #[serde(default)]
    pub merged: Option<bool>,
    /// Its title.
    #[serde(default)]
    pub title: Option<String>,
    /// When it last changed (ms): GitHub sets it.
    #[serde(deserialize_with = "github_time")]
    pub updated_at: Option<i64>,
    /// Its head branch and commit.
    pub head: Branch,
    /// The branch it merges into.
    pub base: Branch,
}

/// A branch and its commit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Branch {
    /// The branch name.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit.
    pub sha: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn times_are_seconds_or_rfc3339() {
        let r: Repository =
            serde_json::from_str(r#"{"id": 1, "full_name": "o/r", "pushed_at": 1796299200}"#)
                .unwrap();
        assert_eq!(r.pushed_at, Some(1_796_299_200_000));
        let r: Repository = serde_json::from_str(
            r#"{"id": 1, "full_name": "o/r", "pushed_at": "2026-12-03T12:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(r.pushed_at, Some(1_796_299_200_000));
        for bad in [r#""soon""#, "true", "9223372036854775807", "[1]"] {
            let body = format!(r#"{{"id": 1, "full_name": "o/r", "pushed_at": {bad}}}"#);
            assert!(serde_json::from_str::<Repository>(&body).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_form_body_carries_the_json_in_payload() {
        assert_eq!(&*json_body(b" {\"a\":1}").unwrap(), b" {\"a\":1}");
        assert_eq!(
            &*json_body(b"payload=%7B%22a%22%3A+1%7D").unwrap(),
            b"{\"a\": 1}"
        );
        assert_eq!(&*json_body(b"other=1&payload=%7B%7D").unwrap(), b"{}");
        assert!(json_body(b"").is_err());
        assert!(json_body(b"other=1").is_err());
    }
}
