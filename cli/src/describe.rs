//! `hookline describe --jsonl`: what each receiver makes of a delivery, as its own mapping says,
//! and (with `--finals`) which event each entity's final state must come from, by the store's own
//! ordering rule ([`hookline::store::ordering::supersedes`]). A tool that generates deliveries
//! (the storm, scripts/storm.py) learns the expected effects here instead of re-implementing the
//! mappings and the ordering rule.
//!
//! Each line read on stdin is a request, as for `hookline sign --jsonl` (`{function, id, body}`,
//! with `event_type` for GitHub and Shopify, which name the event in a header of its own).
//! It is signed with the local secret, verified by the function's own verifier and described by
//! the function's own `describe`, exactly as the receiver would, with no I/O. Each answer line
//! is, in order, `{"event": {...}}` or `{"error": "..."}`:
//!
//! ```text
//! {"event": {"function", "source", "event_id", "event_type", "provider_ts", "ignored",
//!            "change": null | {"entity_kind", "entity_id", "version", "tombstone", "attrs",
//!                              "sync": null | {"name", "action", "baseline"}},
//!            "actions": [{"kind", "guard": null | {"guard": "unless_deleted", "kind", "id"}
//!                                             | {"guard": "unless_attr", "entity", "attr",
//!                                                "equals", "reason"}}]}}
//! ```
//!
//! With `--finals`, once stdin ends, one line per entity changed, in order of first appearance:
//! `{"final": {"entity_kind", "entity_id", "event_id", "version", "tombstone"}}`, the event whose
//! change the entity keeps whatever the order of arrival (of several tombstones, the first read
//! here: the store keeps whichever arrives first). Nothing printed holds a secret or signature;
//! `attrs` and payload-free action kinds are the mapping's output.

use std::collections::HashMap;

use clap::Args;
use hookline::receiver::Described;
use hookline::secret::{Secret, Secrets};
use hookline::store::ordering::{Applied, supersedes};
use hookline::store::{ChangeMode, StateChange};
use hookline::verify::{Incoming, Verifier};
use serde_json::{Value, json};

use crate::sign::{self, Request};
use crate::{LOCAL_SECRET, now_secs, receiver};

/// How far the verifier's clock may be from the signed timestamp; both are now here.
const TOLERANCE_SECS: i64 = 300;

/// `hookline describe`
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Read requests as JSON lines on stdin and answer each with one JSON line (the only mode).
    #[arg(long, required = true)]
    pub jsonl: bool,
    /// Once stdin ends, print the event each entity's final state comes from.
    #[arg(long)]
    pub finals: bool,
}

/// The mapping's result for one request: signed, verified and described as the receiver does.
pub fn describe(request: &Request) -> anyhow::Result<(&'static str, Described)> {
    let spec = receiver(&request.function)?;
    let secret = Secret::new(LOCAL_SECRET.as_bytes());
    let headers = sign::headers(&secret, request, now_secs())?;
    let mut map = http::HeaderMap::new();
    for (name, value) in &headers {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes())?,
            http::HeaderValue::from_str(value)?,
        );
    }
    let secrets =
        Secrets::new(vec![secret]).ok_or_else(|| anyhow::anyhow!("no secret to verify with"))?;
    let verifier = Verifier::new(spec.scheme.clone(), secrets, TOLERANCE_SECS)?;
    let url = request.url();
    let verified = verifier.verify(&Incoming {
        headers: &map,
        body: request.body.as_bytes(),
        url: Some(&url),
    })?;
    let described = (spec.describe)(&verified)?;
    Ok((spec.source, described))
}

/// The `event` line's object.
pub fn event_json(function: &str, source: &str, d: &Described) -> Value {
    let effects = &d.effects;
    let change = effects.change().map(|c| {
        json!({
            "entity_kind": c.entity_kind,
            "entity_id": c.entity_id,
            "version": c.version,
            "tombstone": c.mode == ChangeMode::Tombstone,
            "attrs": c.attrs,
            "sync": c.sync.as_ref().map(|s| json!({
                "name": s.name, "action": s.action, "baseline": s.baseline,
            })),
        })
    });
    let actions: Vec<Value> = effects
        .actions()
        .iter()
        .map(|a| json!({"kind": a.kind, "guard": a.guard}))
        .collect();
    json!({
        "function": function,
        "source": source,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "provider_ts": d.provider_ts,
        "ignored": effects.is_ignored(),
        "change": change,
        "actions": actions,
    })
}

/// Per entity, the change it keeps so far: folded through the store's rule.
#[derive(Debug, Default)]
pub struct Finals {
    order: Vec<(String, String)>,
    kept: HashMap<(String, String), (i64, String, bool)>,
}

impl Finals {
    /// Folds in `change`, made by event `event_id`.
    pub fn add(&mut self, change: &StateChange, event_id: &str) {
        let key = (change.entity_kind.clone(), change.entity_id.clone());
        let current = self.kept.get(&key).map(|(version, id, deleted)| Applied {
            version: *version,
            event_id: id,
            deleted: *deleted,
        });
        if supersedes(change, event_id, current.as_ref()) {
            if current.is_none() {
                self.order.push(key.clone());
            }
            let deleted = change.mode == ChangeMode::Tombstone;
            self.kept
                .insert(key, (change.version, event_id.to_owned(), deleted));
        }
    }

    /// The `final` lines, in order of first appearance.
    pub fn lines(&self) -> Vec<Value> {
        self.order
            .iter()
            .filter_map(|key| {
                let (version, event_id, tombstone) = self.kept.get(key)?;
                Some(json!({"final": {
                    "entity_kind": key.0, "entity_id": key.1, "event_id": event_id,
                    "version": version, "tombstone": tombstone,
                }}))
            })
            .collect()
    }
}

/// Runs the co-process on stdin and stdout.
pub fn run(args: &DescribeArgs) -> anyhow::Result<()> {
    let mut finals = Finals::default();
    let mut stdout = std::io::stdout().lock();
    sign::serve_lines(std::io::stdin().lock(), &mut stdout, |line| {
        answer(line, &mut finals)
    })?;
    if args.finals {
        use std::io::Write as _;
        for line in finals.lines() {
            if writeln!(stdout, "{line}").is_err() {
                break;
            }
        }
        let _ = stdout.flush();
    }
    Ok(())
}

/// The answer line to one request line; folds its change into `finals`.
pub fn answer(line: &str, finals: &mut Finals) -> Value {
    let described = serde_json::from_str::<Request>(line)
        .map_err(|_| anyhow::anyhow!("not a request line ({{function, id, body}})"))
        .and_then(|request| {
            describe(&request).map(|(source, d)| (request.function.clone(), source, d))
        });
    match described {
        Ok((function, source, d)) => {
            if let Some(change) = d.effects.change() {
                finals.add(change, &d.event_id);
            }
            json!({"event": event_json(&function, source, &d)})
        }
        Err(err) => json!({"error": format!("{err:#}")}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(function: &str, id: &str, body: &Value) -> String {
        json!({"function": function, "id": id, "body": body.to_string()}).to_string()
    }

    fn user(id: &str, name: &str, ts: i64, deleted: bool) -> anyhow::Result<String> {
        let sample = if deleted {
            "user.deleted"
        } else {
            "user.updated"
        };
        let path = format!(
            "{}/../events/user-events/{sample}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut body: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        body["timestamp"] = json!(ts);
        body["data"]["id"] = json!("user_d1");
        if !deleted {
            // The mapping orders a user's upserts by `updated_at`.
            body["data"]["updated_at"] = json!(ts);
            body["data"]["last_name"] = json!(name);
        }
        Ok(request("user-events", id, &body))
    }

    /// Each line is described by the receiver's own mapping, and the finals follow the store's
    /// rule: the newest version, whatever the order read, until a tombstone ends it.
    #[test]
    fn describes_with_the_mapping_and_keeps_the_newest_then_the_tombstone() -> anyhow::Result<()> {
        let mut finals = Finals::default();
        let newer = answer(&user("msg_b", "B", 2_000, false)?, &mut finals);
        let older = answer(&user("msg_a", "A", 1_000, false)?, &mut finals);
        assert_eq!(newer["event"]["event_id"], "msg_b");
        assert_eq!(newer["event"]["source"], "users");
        assert_eq!(newer["event"]["event_type"], "user.updated");
        assert_eq!(newer["event"]["change"]["entity_kind"], "user");
        assert_eq!(newer["event"]["change"]["entity_id"], "user_d1");
        assert_eq!(newer["event"]["change"]["version"], 2_000);
        assert_eq!(newer["event"]["change"]["tombstone"], false);
        assert_eq!(older["event"]["change"]["attrs"]["last_name"], "A");
        assert_eq!(finals.lines()[0]["final"]["event_id"], "msg_b");
        let gone = answer(&user("msg_0", "", 500, true)?, &mut finals);
        assert_eq!(gone["event"]["change"]["tombstone"], true);
        answer(&user("msg_c", "C", 3_000, false)?, &mut finals);
        let lines = finals.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["final"]["event_id"], "msg_0");
        assert_eq!(lines[0]["final"]["tombstone"], true);
        Ok(())
    }

    /// Shopify (and GitHub) name the event in a header of its own: the line's `event_type`.
    #[test]
    fn a_sender_that_names_the_event_in_a_header_gets_it_from_the_line() -> anyhow::Result<()> {
        let path = format!(
            "{}/../events/order-events/orders.paid.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read_to_string(path)?;
        let mut finals = Finals::default();
        let line = json!({"function": "order-events", "body": body, "event_type": "orders/paid"});
        let paid = answer(&line.to_string(), &mut finals);
        assert_eq!(paid["event"]["event_type"], "orders/paid", "{paid}");
        assert_eq!(paid["event"]["change"]["entity_kind"], "order", "{paid}");
        let line = json!({"function": "order-events", "body": body});
        let untyped = answer(&line.to_string(), &mut finals);
        assert!(untyped["error"].is_string(), "{untyped}");
        Ok(())
    }

    #[test]
    fn a_line_the_mapping_refuses_is_an_error_line() {
        let mut finals = Finals::default();
        let bad = answer(&request("user-events", "m", &json!([1])), &mut finals);
        assert!(
            bad["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}"
        );
        let bad = answer("not json", &mut finals);
        assert!(bad["error"].is_string());
        assert!(finals.lines().is_empty());
    }
}
