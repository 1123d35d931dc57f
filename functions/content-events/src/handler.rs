//! Builder.io content webhooks → (state change, follow-ups). Pure: no I/O.
//!
//! [`describe`] parses the verified body into the typed [`Webhook`]; [`describe_webhook`] maps
//! it. Builder.io signs nothing: the receiver checks a configured static header
//! (`Authorization: Bearer <secret>`, several secrets for rotation) in constant time.
//!
//! # Keys: no delivery id
//!
//! Builder.io sends no delivery or event id, so the event id is derived from the entry:
//! `<content id>:<operation>:<lastUpdated>`, with `lastUpdated` (ms) of `newValue`, or of
//! `previousValue` for a delete. A resend of one change is a `duplicate`; a new change of the
//! entry has a new `lastUpdated`, hence a new id. A body with values but no `lastUpdated` (not
//! a delete) cannot be keyed and is quarantined rather than keyed by something a later change
//! would share.
//!
//! With the webhook's "disable payload" set, the body has no values: no content id, no time.
//! Such an event is **not deduplicated**: it is keyed by the API Gateway request id
//! (`nopayload:<request id>`, unique per request; `Described::deduplicated` is false and the
//! answer says `"deduplicated": false`), so every delivery, a resend included, is recorded and
//! purges again. That is safe: its one follow-up purges the model's cache, which may be repeated
//! in any order (it carries no content and decides nothing). Without a request id (a stored body
//! replayed) the stored event id stands in; with neither it is quarantined.
//!
//! # State: one entity per entry, ordered by `lastUpdated`
//!
//! | operation | change on `content` `<model>/<id>` | version | follow-ups |
//! |---|---|---|---|
//! | `publish` (first: `previousValue` null; an update otherwise) | upsert, status `newValue.published` | `lastUpdated` × 10 + 1 | `cache` sync |
//! | `scheduledStart` | upsert, status `newValue.published` | max(`lastUpdated`, `startDate`) × 10 + 2 | `cache` sync |
//! | `unpublish` | upsert, status `newValue.published` (`draft`) | `lastUpdated` × 10 + 3 | `cache` sync |
//! | `archive` | upsert, status `newValue.published` (`archived`) | `lastUpdated` × 10 + 4 | `cache` sync |
//! | `scheduledEnd` | upsert, status `expired` | max(`lastUpdated`, `endDate`) × 10 + 5 | `cache` sync |
//! | `delete` (or any null `newValue`) | tombstone (final whatever its version) | – | `cache` sync, `notify_content_deleted` |
//! | any, no values ("disable payload") | none | – | `invalidate_cache` event action, scope `model` |
//! | another operation | ignored | – | – |
//!
//! The version is the time the state took effect, in ms, times ten plus the operation's rank:
//! a scheduled start or end takes effect at the entry's `startDate`/`endDate`, after its last
//! edit; within one millisecond (an operation that does not touch `lastUpdated`, such as an
//! unpublish right after a publish) the lifecycle order decides. Never a delivery time. An
//! older change arriving late is stale: no state change, no sync. Attributes: `model`,
//! `content_id`, `name`, `status`, `paths`, `last_updated` (ms), `effective_at` (ms).
//!
//! # Follow-ups
//!
//! The cache invalidation is the entry's **`cache` sync** to the `invalidate_cache` target, never
//! an event action: one entity decides what the cache is told (docs/FOLLOWUPS.md, "One entity
//! decides"). Its payload, `{"scope": "entry", model, id, status, paths, effective_at}`, is
//! derived from the version applied, with `paths` the URL paths of `newValue` and of
//! `previousValue` (both when the URL changed; `data.url` and `urlPath` targeting). The worker
//! POSTs the entry's *current* desired state, one POST at a time per entry, so a late unpublish
//! is never overtaken by an earlier publish's purge: either the publish is stale and sends
//! nothing, or its purge went out first and the unpublish's follows. Each applied version is a
//! new state (`effective_at`), hence a new purge under a new key; a resend is the same key.
//! Not the baseline: an entry first seen deleted still gets its path purged.
//!
//! `notify_content_deleted` (an event action: a fact about the delete, which is final, so no
//! guard) gets `{model, id, name, paths}`.
//!
//! Known limit: a URL change whose event is made stale by a newer change before it applies
//! (update `/a` → `/b` arriving after the unpublish of `/b`) loses its purge of the old path
//! `/a`; the entry's current paths are still purged by the newer change.
//!
//! # Replays
//!
//! Nothing signs a time, so `provider_ts` is the time the change took effect from the body
//! (`lastUpdated`, or the scheduled start/end), which the receiver holds against the event
//! retention window. A delete's body holds no time of the deletion (only the entry's last edit,
//! possibly years old), and a body without values none at all: `provider_ts` is 0 for both.
//! docs/SECURITY.md says what this prevents and what it cannot.

use hookline::receiver::Described;
use hookline::store::{Action, ChangeMode, Effects, StateAttrs, StateChange, SyncTarget};
use hookline::verify::{ParseError, Verified};
use serde_json::{Value, json};

use crate::model::{Entry, Webhook};

/// Entity kind of a content entry, keyed `<model>/<content id>`.
pub const CONTENT: &str = "content";
/// The sync an entry keeps: its cache invalidation.
pub const CACHE: &str = "cache";
/// Follow-up: purge cached paths (the `cache` sync's target; also the model-wide purge of a
/// delivery without values).
pub const INVALIDATE_CACHE: &str = "invalidate_cache";
/// Follow-up: tell someone an entry was deleted.
pub const NOTIFY_CONTENT_DELETED: &str = "notify_content_deleted";
/// Every action kind this mapping emits: the receiver's
/// [`hookline::receiver::ReceiverSpec::action_kinds`].
pub const ACTION_KINDS: &[&str] = &[INVALIDATE_CACHE, NOTIFY_CONTENT_DELETED];

/// The operations Builder.io reports, in lifecycle order (their rank orders one millisecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Publish,
    ScheduledStart,
    Unpublish,
    Archive,
    ScheduledEnd,
    Delete,
}

impl Operation {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "publish" => Self::Publish,
            "scheduledStart" => Self::ScheduledStart,
            "unpublish" => Self::Unpublish,
            "archive" => Self::Archive,
            "scheduledEnd" => Self::ScheduledEnd,
            "delete" => Self::Delete,
            _ => return None,
        })
    }

    fn rank(self) -> i64 {
        match self {
            Self::Publish => 1,
            Self::ScheduledStart => 2,
            Self::Unpublish => 3,
            Self::Archive => 4,
            Self::ScheduledEnd => 5,
            Self::Delete => 6,
        }
    }
}

/// Parses a verified Builder.io delivery and maps it.
pub fn describe(v: &Verified<'_>) -> Result<Described, ParseError> {
    let request = v.request_id().or(v.meta().delivery_id.as_deref());
    describe_json(v.body(), request)
}

/// [`describe`] minus the proof of origin: the body and the request id.
fn describe_json(body: &[u8], request_id: Option<&str>) -> Result<Described, ParseError> {
    let hook: Webhook = serde_json::from_slice(body)?;
    describe_webhook(&hook, request_id)
}

/// Maps a parsed delivery. `request_id` keys a delivery without values (and only such a one).
pub fn describe_webhook(hook: &Webhook, request_id: Option<&str>) -> Result<Described, ParseError> {
    let op = Operation::parse(&hook.operation);
    let (entry, deleted) = match (&hook.new_value, &hook.previous_value) {
        (None, None) => return no_payload(hook, op, request_id),
        (Some(new), _) => (new, op == Some(Operation::Delete)),
        (None, Some(previous)) => (previous, true),
    };
    let model = hook
        .model_name
        .as_deref()
        .ok_or_else(|| ParseError::missing("modelName"))?;
    let last_updated = entry.last_updated;
    let event_id = format!(
        "{}:{}:{}",
        entry.id,
        hook.operation,
        last_updated.unwrap_or(0)
    );
    let described = |provider_ts, effects| {
        Described::new(
            event_id.clone(),
            hook.operation.clone(),
            provider_ts,
            effects,
        )
    };
    if deleted {
        return Ok(described(0, delete(hook, model, entry)));
    }
    let Some(op) = op else {
        return Ok(described(last_updated.unwrap_or(0), Effects::Ignored));
    };
    let last_updated = last_updated.ok_or_else(|| ParseError::missing("lastUpdated"))?;
    let effective_at = match op {
        Operation::ScheduledStart => entry.start_date.unwrap_or(0).max(last_updated),
        Operation::ScheduledEnd => entry.end_date.unwrap_or(0).max(last_updated),
        _ => last_updated,
    };
    let status = match op {
        Operation::ScheduledEnd => "expired",
        _ => entry.published.as_deref().unwrap_or(match op {
            Operation::Unpublish => "draft",
            Operation::Archive => "archived",
            _ => "published",
        }),
    };
    let paths = paths(hook);
    let sync = cache_sync(model, &entry.id, status, &paths, effective_at);
    let change = StateChange {
        entity_kind: CONTENT.to_owned(),
        entity_id: entity_id(model, &entry.id),
        version: effective_at.saturating_mul(10).saturating_add(op.rank()),
        mode: ChangeMode::Upsert,
        attrs: attrs([
            ("model", json!(model)),
            ("content_id", json!(entry.id)),
            ("name", json!(entry.name)),
            ("status", json!(status)),
            ("paths", json!(paths)),
            ("last_updated", json!(last_updated)),
            ("effective_at", json!(effective_at)),
        ]),
        sync: Some(sync),
    };
    Ok(described(
        effective_at,
        Effects::Apply {
            change: Some(change),
            actions: Vec::new(),
        },
    ))
}

/// A delete: the entry's tombstone, its last purge, and the notification.
fn delete(hook: &Webhook, model: &str, entry: &Entry) -> Effects {
    let paths = paths(hook);
    let effective_at = entry.last_updated.unwrap_or(0);
    Effects::Apply {
        change: Some(StateChange {
            entity_kind: CONTENT.to_owned(),
            entity_id: entity_id(model, &entry.id),
            version: effective_at
                .saturating_mul(10)
                .saturating_add(Operation::Delete.rank()),
            mode: ChangeMode::Tombstone,
            attrs: StateAttrs::new(),
            sync: Some(cache_sync(
                model,
                &entry.id,
                "deleted",
                &paths,
                effective_at,
            )),
        }),
        actions: vec![Action::new(
            NOTIFY_CONTENT_DELETED,
            json!({"model": model, "id": entry.id, "name": entry.name, "paths": paths}),
        )],
    }
}

/// A delivery without values ("disable payload"): keyed by its request, not deduplicated; a
/// model-wide purge for a known operation.
fn no_payload(
    hook: &Webhook,
    op: Option<Operation>,
    request_id: Option<&str>,
) -> Result<Described, ParseError> {
    let request_id =
        request_id.ok_or_else(|| ParseError::missing("request id (a body without values)"))?;
    let effects = match op {
        Some(_) => Effects::Apply {
            change: None,
            actions: vec![Action::new(
                INVALIDATE_CACHE,
                json!({
                    "scope": "model",
                    "model": hook.model_name,
                    "operation": hook.operation,
                    "id": null,
                    "paths": [],
                }),
            )],
        },
        None => Effects::Ignored,
    };
    let mut d = Described::new(
        format!("nopayload:{request_id}"),
        hook.operation.clone(),
        0,
        effects,
    );
    d.deduplicated = false;
    Ok(d)
}

/// The URL paths the change touches: the new value's and the previous value's, sorted, without
/// repeats (both when the URL changed).
fn paths(hook: &Webhook) -> Vec<String> {
    let mut all: Vec<String> = [&hook.new_value, &hook.previous_value]
        .into_iter()
        .flatten()
        .flat_map(Entry::paths)
        .collect();
    all.sort();
    all.dedup();
    all
}

fn cache_sync(model: &str, id: &str, status: &str, paths: &[String], at: i64) -> SyncTarget {
    SyncTarget {
        name: CACHE.to_owned(),
        action: INVALIDATE_CACHE.to_owned(),
        payload: json!({
            "scope": "entry",
            "model": model,
            "id": id,
            "status": status,
            "paths": paths,
            "effective_at": at,
        }),
        baseline: false,
    }
}

fn entity_id(model: &str, id: &str) -> String {
    format!("{model}/{id}")
}

fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> StateAttrs {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hookline::secret::Secrets;
    use hookline::verify::{Incoming, Scheme, Verifier};
    use proptest::prelude::*;

    const ABOUT: &str = "5a3f9c1e7b2d4e80a6c4b1d9e2f70a11";
    const REQUEST: &str = "Ab1cD2eF3gH4iJ5k=";

    fn sample(name: &str) -> &'static str {
        match name {
            "publish" => include_str!("../../../events/content-events/publish.json"),
            "publish.update" => include_str!("../../../events/content-events/publish.update.json"),
            "unpublish" => include_str!("../../../events/content-events/unpublish.json"),
            "delete" => include_str!("../../../events/content-events/delete.json"),
            "archive" => include_str!("../../../events/content-events/archive.json"),
            "scheduledStart" => include_str!("../../../events/content-events/scheduledStart.json"),
            "scheduledEnd" => include_str!("../../../events/content-events/scheduledEnd.json"),
            "publish.no-payload" => {
                include_str!("../../../events/content-events/publish.no-payload.json")
            }
            other => panic!("no sample {other}"),
        }
    }

    fn value(name: &str) -> Value {
        serde_json::from_str(sample(name)).unwrap()
    }

    fn run(body: &[u8]) -> Result<Described, ParseError> {
        describe_json(body, Some(REQUEST))
    }

    fn described(name: &str) -> Described {
        run(sample(name).as_bytes()).unwrap()
    }

    fn from_value(v: &Value) -> Result<Described, ParseError> {
        run(&serde_json::to_vec(v).unwrap())
    }

    fn change(d: &Described) -> &StateChange {
        d.effects.change().expect("a state change")
    }

    fn sync(d: &Described) -> &SyncTarget {
        change(d).sync.as_ref().expect("a sync")
    }

    #[test]
    fn first_publish() {
        let d = described("publish");
        assert_eq!(d.event_id, format!("{ABOUT}:publish:1749990000000"));
        assert_eq!(d.event_type, "publish");
        assert_eq!(d.provider_ts, 1_749_990_000_000);
        assert!(d.deduplicated);
        assert_eq!(d.challenge, None);
        let c = change(&d);
        assert_eq!(
            (c.entity_kind.as_str(), c.entity_id.as_str(), c.mode),
            (
                CONTENT,
                format!("page/{ABOUT}").as_str(),
                ChangeMode::Upsert
            )
        );
        assert_eq!(c.version, 17_499_900_000_000 + 1);
        assert_eq!(c.attrs["status"], "published");
        assert_eq!(c.attrs["paths"], json!(["/about"]));
        assert_eq!(c.attrs["name"], "About us");
        let s = sync(&d);
        assert_eq!(
            (s.name.as_str(), s.action.as_str()),
            (CACHE, INVALIDATE_CACHE)
        );
        assert!(!s.baseline);
        assert_eq!(
            s.payload,
            json!({"scope": "entry", "model": "page", "id": ABOUT, "status": "published",
                   "paths": ["/about"], "effective_at": 1_749_990_000_000_i64})
        );
        assert!(d.effects.actions().is_empty(), "no event action purges");
    }

    #[test]
    fn an_update_that_moves_the_url_purges_both_paths() {
        let d = described("publish.update");
        assert_eq!(d.event_id, format!("{ABOUT}:publish:1749993600000"));
        assert_eq!(
            sync(&d).payload["paths"],
            json!(["/about", "/company/about"])
        );
        assert_eq!(
            change(&d).attrs["paths"],
            json!(["/about", "/company/about"])
        );
        assert!(change(&d).version > change(&described("publish")).version);
    }

    #[test]
    fn unpublish_then_delete() {
        let u = described("unpublish");
        assert_eq!(change(&u).attrs["status"], "draft");
        assert_eq!(sync(&u).payload["status"], "draft");
        assert_eq!(sync(&u).payload["paths"], json!(["/company/about"]));
        let d = described("delete");
        assert_eq!(d.event_id, format!("{ABOUT}:delete:1749997200000"));
        assert_eq!(
            d.provider_ts, 0,
            "a delete's body holds no time of the deletion"
        );
        let c = change(&d);
        assert_eq!(c.mode, ChangeMode::Tombstone);
        assert_eq!(c.entity_id, format!("page/{ABOUT}"));
        assert_eq!(sync(&d).payload["status"], "deleted");
        assert_eq!(sync(&d).payload["paths"], json!(["/company/about"]));
        assert_eq!(d.effects.actions().len(), 1);
        let a = &d.effects.actions()[0];
        assert_eq!(a.kind, NOTIFY_CONTENT_DELETED);
        assert_eq!(a.guard, None);
        assert_eq!(
            a.payload,
            json!({"model": "page", "id": ABOUT, "name": "About us", "paths": ["/company/about"]})
        );
    }

    #[test]
    fn the_lifecycle_samples_are_one_entry_in_order() {
        let versions: Vec<i64> = ["publish", "publish.update", "unpublish"]
            .iter()
            .map(|n| change(&described(n)).version)
            .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        let ids: std::collections::BTreeSet<String> =
            ["publish", "publish.update", "unpublish", "delete"]
                .iter()
                .map(|n| change(&described(n)).entity_id.clone())
                .collect();
        assert_eq!(ids.len(), 1);
        // Each distinct change has its own key; all states differ, so each one purges.
        let keys: std::collections::BTreeSet<String> =
            ["publish", "publish.update", "unpublish", "delete"]
                .iter()
                .map(|n| described(n).event_id)
                .collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn archive_and_scheduled_operations() {
        let a = described("archive");
        assert_eq!(change(&a).attrs["status"], "archived");
        assert_eq!(sync(&a).payload["paths"], json!(["/sale/spring-2025"]));
        let start = described("scheduledStart");
        let end = described("scheduledEnd");
        // They take effect at the entry's start and end dates, after its last edit.
        assert_eq!(start.provider_ts, 1_749_996_000_000);
        assert_eq!(end.provider_ts, 1_749_998_000_000);
        assert_eq!(change(&start).attrs["status"], "published");
        assert_eq!(change(&end).attrs["status"], "expired");
        assert!(change(&start).version < change(&end).version);
        assert_ne!(start.event_id, end.event_id);
        assert_ne!(sync(&start).payload, sync(&end).payload);
        // Without dates they order by lifecycle within the edit's millisecond.
        let mut v = value("scheduledEnd");
        v["newValue"].as_object_mut().unwrap().remove("endDate");
        let end = from_value(&v).unwrap();
        let mut v = value("scheduledStart");
        v["newValue"].as_object_mut().unwrap().remove("startDate");
        let start = from_value(&v).unwrap();
        assert_eq!(start.provider_ts, end.provider_ts);
        assert!(change(&start).version < change(&end).version);
    }

    #[test]
    fn one_millisecond_orders_by_lifecycle() {
        let publish = described("publish");
        let mut v = value("publish");
        v["operation"] = "unpublish".into();
        v["newValue"]["published"] = "draft".into();
        let unpublish = from_value(&v).unwrap();
        assert!(change(&publish).version < change(&unpublish).version);
        v["operation"] = "archive".into();
        v["newValue"]["published"] = "archived".into();
        let archive = from_value(&v).unwrap();
        assert!(change(&publish).version < change(&archive).version);
        // An unpublish without a `published` field is a draft, an archive archived.
        v["newValue"].as_object_mut().unwrap().remove("published");
        assert_eq!(change(&from_value(&v).unwrap()).attrs["status"], "archived");
        v["operation"] = "unpublish".into();
        assert_eq!(change(&from_value(&v).unwrap()).attrs["status"], "draft");
    }

    #[test]
    fn a_null_new_value_is_a_delete_whatever_the_operation() {
        let mut v = value("delete");
        v["operation"] = "unpublish".into();
        let d = from_value(&v).unwrap();
        assert_eq!(change(&d).mode, ChangeMode::Tombstone);
        // A delete without a time still has a key (a delete happens once).
        v["previousValue"]
            .as_object_mut()
            .unwrap()
            .remove("lastUpdated");
        assert_eq!(
            from_value(&v).unwrap().event_id,
            format!("{ABOUT}:unpublish:0")
        );
    }

    #[test]
    fn disable_payload_is_keyed_by_the_request_and_not_deduplicated() {
        let d = described("publish.no-payload");
        assert_eq!(d.event_id, format!("nopayload:{REQUEST}"));
        assert!(!d.deduplicated);
        assert_eq!(d.provider_ts, 0);
        assert_eq!(d.effects.change(), None);
        let a = &d.effects.actions()[0];
        assert_eq!(a.kind, INVALIDATE_CACHE);
        assert_eq!(
            a.payload,
            json!({"scope": "model", "model": "page", "operation": "publish", "id": null, "paths": []})
        );
        // Another request, another event.
        let other = describe_json(sample("publish.no-payload").as_bytes(), Some("r2")).unwrap();
        assert_ne!(other.event_id, d.event_id);
        // Explicit nulls are the same; no model name is tolerated (the purge names none).
        let d = run(br#"{"newValue":null,"previousValue":null,"operation":"unpublish"}"#).unwrap();
        assert_eq!(d.effects.actions()[0].payload["model"], Value::Null);
        // No request id: cannot be keyed.
        assert!(describe_json(sample("publish.no-payload").as_bytes(), None).is_err());
        // An unknown operation without values is ignored (still not deduplicated).
        let d = run(br#"{"modelName":"page","operation":"autosave"}"#).unwrap();
        assert!(d.effects.is_ignored());
        assert!(!d.deduplicated);
    }

    #[test]
    fn unknown_operation_is_ignored() {
        let mut v = value("publish");
        v["operation"] = "autosave".into();
        let d = from_value(&v).unwrap();
        assert!(d.effects.is_ignored());
        assert_eq!(d.event_id, format!("{ABOUT}:autosave:1749990000000"));
        assert_eq!(d.event_type, "autosave");
        assert!(d.deduplicated);
    }

    #[test]
    fn a_change_without_last_updated_or_model_is_not_keyed() {
        let mut v = value("publish");
        v["newValue"].as_object_mut().unwrap().remove("lastUpdated");
        assert!(
            from_value(&v)
                .unwrap_err()
                .to_string()
                .contains("lastUpdated")
        );
        let mut v = value("publish");
        v.as_object_mut().unwrap().remove("modelName");
        assert!(
            from_value(&v)
                .unwrap_err()
                .to_string()
                .contains("modelName")
        );
    }

    #[test]
    fn paths_come_from_data_url_and_url_path_targeting() {
        let mut v = value("publish");
        v["newValue"]["data"]["url"] = json!({"not": "a path"});
        v["newValue"]["query"] = json!([
            {"property": "urlPath", "operator": "is", "value": ["/b", "/a", "relative"]},
            {"property": "device", "operator": "is", "value": "/not-a-path"},
        ]);
        assert_eq!(
            change(&from_value(&v).unwrap()).attrs["paths"],
            json!(["/a", "/b"])
        );
        // A data model has no path: the sync still names the entry.
        v["newValue"].as_object_mut().unwrap().remove("query");
        v["newValue"]["data"] = json!({"title": "x"});
        let d = from_value(&v).unwrap();
        assert_eq!(sync(&d).payload["paths"], json!([]));
        // Fractional times are truncated.
        v["newValue"]["lastUpdated"] = json!(1_749_990_000_000.75);
        assert_eq!(from_value(&v).unwrap().provider_ts, 1_749_990_000_000);
    }

    #[test]
    fn garbage_and_wrong_shapes_are_parse_errors() {
        let bodies: &[&[u8]] = &[
            b"",
            b"\xff not json",
            b"null",
            b"{}",
            br#"{"operation": 1}"#,
            br#"{"operation":"publish","modelName":"page","newValue":{"lastUpdated":1}}"#,
            br#"{"operation":"publish","modelName":"page","newValue":{"id":"x","lastUpdated":"now"}}"#,
            br#"{"operation":"publish","modelName":"page","newValue":[]}"#,
        ];
        for body in bodies {
            assert!(run(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn describe_reads_the_verified_body() {
        let scheme = Scheme::StaticHeader {
            header: http::header::AUTHORIZATION,
        };
        let secret = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=";
        let verifier = Verifier::new(scheme, Secrets::parse_list(secret).unwrap(), 300).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {secret}").parse().unwrap(),
        );
        let body = sample("publish").as_bytes();
        let verified = verifier
            .verify(&Incoming {
                headers: &headers,
                body,
                url: None,
            })
            .unwrap();
        assert_eq!(describe(&verified).unwrap(), described("publish"));
        // Outside a Lambda request there is no request id: a body without values is refused.
        let body = sample("publish.no-payload").as_bytes();
        let verified = verifier
            .verify(&Incoming {
                headers: &headers,
                body,
                url: None,
            })
            .unwrap();
        assert!(describe(&verified).is_err());
    }

    /// Event ids hold `:` and entity ids `/`: the follow-ups' keys still read back.
    #[test]
    fn keys_read_back() {
        use hookline::followup::{FollowUp, action_key, parse_key, sync_key};
        for name in ["publish", "delete", "publish.no-payload"] {
            let d = described(name);
            for a in d.effects.actions() {
                let key = action_key("builder", &d.event_id, &a.kind, 0);
                assert_eq!(
                    parse_key(&key).unwrap().followup,
                    FollowUp::Action {
                        source: "builder".into(),
                        event_id: d.event_id.clone(),
                        action: a.kind.clone(),
                    }
                );
            }
            if let Some(c) = d.effects.change() {
                let key = sync_key("builder", &c.entity_kind, &c.entity_id, 3, CACHE, 1);
                let parts = parse_key(&key).unwrap();
                assert_eq!(
                    parts.followup,
                    FollowUp::Sync {
                        source: "builder".into(),
                        entity_kind: CONTENT.into(),
                        entity_id: format!("page/{ABOUT}"),
                        sync: CACHE.into(),
                    }
                );
                assert_eq!((parts.seq, parts.generation), (Some(3), 1));
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = run(&body);
        }

        #[test]
        fn never_panics_on_arbitrary_times(
            updated in any::<Option<i64>>(),
            start in any::<Option<i64>>(),
            end in any::<Option<i64>>(),
            op in prop::sample::select(vec!["publish", "unpublish", "archive", "delete",
                "scheduledStart", "scheduledEnd", "x"]),
            new in any::<bool>(),
        ) {
            let entry = json!({"id": "c", "lastUpdated": updated, "startDate": start,
                "endDate": end});
            let body = json!({"operation": op, "modelName": "m",
                "newValue": if new { entry.clone() } else { Value::Null },
                "previousValue": entry});
            if let Ok(d) = run(&serde_json::to_vec(&body).unwrap()) {
                prop_assert_eq!(d.effects.is_ignored(), op == "x" && new);
            }
        }
    }
}
