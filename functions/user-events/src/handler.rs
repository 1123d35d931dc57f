//! User lifecycle events (Clerk and other senders through Standard Webhooks / Svix) →
//! (state change, follow-ups). Pure: no I/O.
//!
//! [`describe`] parses the verified body into the typed [`Event`] and takes the event id from the
//! verified `webhook-id` (`svix-id`) header: the message id, the same on every retry (the body
//! has no id of its own). [`describe_event`] maps it.
//!
//! One entity, `user`, keyed by `data.id`:
//!
//! | event | change | version | follow-ups |
//! |---|---|---|---|
//! | `user.created` | upsert | `data.updated_at`, else `data.created_at`, else the body's `timestamp` | `welcome` (not for a deleted user), `analytics` |
//! | `user.updated` | upsert | `data.updated_at`, else the body's `timestamp` | `analytics` |
//! | `user.deleted` | tombstone (final whatever its version; erases the attributes) | the body's `timestamp` | `analytics` |
//!
//! Versions come from the user's own `updated_at`, so an update that arrives after a newer one
//! is stale, whichever delivery came first; it still gets its `analytics` event action. Never
//! from the signed `webhook-timestamp`: Svix re-signs every attempt, so a retry would look newer
//! than the original. Equal versions are ordered by message id. `provider_ts` is the body's
//! `timestamp`, else the signed time.
//!
//! Attributes: `email` (the primary address), `first_name`, `last_name`, `created_at`,
//! `updated_at` (ms; null when the sender omits them). `welcome` gets the user id, email and
//! names; `analytics` gets only the event type, user id and time: no personal data.

use hookline::model::users::{Event, Payload, User};
use hookline::receiver::Described;
use hookline::store::{Action, ChangeMode, Effects, StateAttrs, StateChange};
use hookline::verify::{ParseError, Verified};
use serde_json::json;

/// Entity kind of a user's state.
pub const USER: &str = "user";
/// Follow-up: send the welcome message.
pub const WELCOME: &str = "welcome";
/// Follow-up: record the lifecycle event in analytics.
pub const ANALYTICS: &str = "analytics";
/// Every action kind this mapping emits: the receiver's
/// [`hookline::receiver::ReceiverSpec::action_kinds`].
pub const ACTION_KINDS: &[&str] = &[WELCOME, ANALYTICS];

/// Parses a verified delivery and maps it, keyed by its Standard Webhooks message id.
pub fn describe(v: &Verified<'_>) -> Result<Described, ParseError> {
    let meta = v.meta();
    describe_json(v.body(), meta.delivery_id.as_deref(), meta.timestamp)
}

/// [`describe`] minus the proof of origin: the body, the message id and the signed timestamp
/// (seconds).
fn describe_json(
    body: &[u8],
    message_id: Option<&str>,
    signed_ts_secs: Option<i64>,
) -> Result<Described, ParseError> {
    let message_id = message_id.ok_or_else(|| ParseError::missing("webhook-id (message id)"))?;
    let event: Event = serde_json::from_slice(body)?;
    Ok(describe_event(
        &event,
        message_id,
        signed_ts_secs.map(|s| s.saturating_mul(1000)),
    ))
}

/// Maps a parsed user event. `message_id` is the delivery's stable id, `delivery_ts_ms` the
/// signed delivery time in milliseconds (the fallback for an event without `timestamp`).
/// Total: never panics.
pub fn describe_event(event: &Event, message_id: &str, delivery_ts_ms: Option<i64>) -> Described {
    // Ordering never uses the signed delivery time: Svix re-signs every attempt, so a retry
    // would carry a newer time than the original. Without a body timestamp the version is 0 and
    // ties are broken by the message id.
    let order_ts = event.timestamp.unwrap_or(0);
    let event_ts = event.timestamp.or(delivery_ts_ms).unwrap_or(0);
    let effects = match &event.payload {
        Payload::Created(u) => {
            let version = u.updated_at.or(u.created_at).unwrap_or(order_ts);
            Effects::Apply {
                change: Some(upsert(u, version)),
                actions: vec![
                    welcome(u).unless_deleted(USER, &u.id),
                    analytics(event, &u.id, event_ts),
                ],
            }
        }
        Payload::Updated(u) => Effects::Apply {
            change: Some(upsert(u, u.updated_at.unwrap_or(order_ts))),
            actions: vec![analytics(event, &u.id, event_ts)],
        },
        Payload::Deleted(d) => Effects::Apply {
            change: Some(StateChange {
                entity_kind: USER.to_owned(),
                entity_id: d.id.clone(),
                version: order_ts,
                mode: ChangeMode::Tombstone,
                attrs: StateAttrs::new(),
                sync: None,
            }),
            actions: vec![analytics(event, &d.id, event_ts)],
        },
        Payload::Unhandled => Effects::Ignored,
    };
    Described {
        event_id: message_id.to_owned(),
        event_type: event.event_type.clone(),
        provider_ts: event_ts,
        effects,
        deduplicated: true,
        challenge: None,
    }
}

fn upsert(u: &User, version: i64) -> StateChange {
    let attrs = [
        ("email", json!(u.primary_email())),
        ("first_name", json!(u.first_name)),
        ("last_name", json!(u.last_name)),
        ("created_at", json!(u.created_at)),
        ("updated_at", json!(u.updated_at)),
    ];
    StateChange {
        entity_kind: USER.to_owned(),
        entity_id: u.id.clone(),
        version,
        mode: ChangeMode::Upsert,
        attrs: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        sync: None,
    }
}

fn welcome(u: &User) -> Action {
    Action::new(
        WELCOME,
        json!({
            "user_id": u.id,
            "email": u.primary_email(),
            "first_name": u.first_name,
            "last_name": u.last_name,
        }),
    )
}

fn analytics(event: &Event, user_id: &str, ts: i64) -> Action {
    Action::new(
        ANALYTICS,
        json!({"event": event.event_type, "user_id": user_id, "timestamp": ts}),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hookline::clock::FixedClock;
    use hookline::secret::{Secret, Secrets};
    use hookline::verify::{Incoming, Scheme, SignInput, Verifier};
    use proptest::prelude::*;
    use serde_json::Value;

    const USER_ID: &str = "user_2yHookLine0Example0User01";
    const SIGNED_AT: i64 = 1_750_000_000;

    fn sample(name: &str) -> &'static str {
        match name {
            "user.created" => include_str!("../../../events/user-events/user.created.json"),
            "user.updated" => include_str!("../../../events/user-events/user.updated.json"),
            "user.deleted" => include_str!("../../../events/user-events/user.deleted.json"),
            "session.created" => include_str!("../../../events/user-events/session.created.json"),
            other => panic!("no sample {other}"),
        }
    }

    fn value(name: &str) -> Value {
        serde_json::from_str(sample(name)).unwrap()
    }

    fn run(body: &[u8]) -> Result<Described, ParseError> {
        describe_json(body, Some("msg_test"), Some(SIGNED_AT))
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

    fn kinds(d: &Described) -> Vec<&str> {
        d.effects
            .actions()
            .iter()
            .map(|a| a.kind.as_str())
            .collect()
    }

    #[test]
    fn user_created_sample() {
        let d = described("user.created");
        assert_eq!(d.event_id, "msg_test");
        assert_eq!(d.event_type, "user.created");
        assert_eq!(d.provider_ts, 1_749_988_800_902);
        let c = change(&d);
        assert_eq!(
            (c.entity_kind.as_str(), c.entity_id.as_str()),
            (USER, USER_ID)
        );
        assert_eq!((c.mode, c.version), (ChangeMode::Upsert, 1_749_988_800_835));
        assert_eq!(
            Value::from(
                c.attrs
                    .clone()
                    .into_iter()
                    .collect::<serde_json::Map<_, _>>()
            ),
            json!({"email": "ada.lovelace@example.com", "first_name": "Ada",
                   "last_name": "Lovelace", "created_at": 1_749_988_800_514_i64,
                   "updated_at": 1_749_988_800_835_i64})
        );
        assert_eq!(kinds(&d), [WELCOME, ANALYTICS]);
        assert_eq!(
            d.effects.actions()[0].payload,
            json!({"user_id": USER_ID, "email": "ada.lovelace@example.com",
                   "first_name": "Ada", "last_name": "Lovelace"})
        );
        assert_eq!(
            d.effects.actions()[1].payload,
            json!({"event": "user.created", "user_id": USER_ID, "timestamp": 1_749_988_800_902_i64})
        );
    }

    #[test]
    fn user_updated_sample() {
        let d = described("user.updated");
        assert_eq!(d.provider_ts, 1_750_075_200_211);
        let c = change(&d);
        assert_eq!(
            (c.entity_id.as_str(), c.mode),
            (USER_ID, ChangeMode::Upsert)
        );
        assert_eq!(c.version, 1_750_075_200_123);
        assert_eq!(
            c.attrs["email"], "ada@analytical-engines.example",
            "the new primary"
        );
        assert_eq!(c.attrs["last_name"], "King");
        assert_eq!(kinds(&d), [ANALYTICS]);
    }

    #[test]
    fn user_deleted_sample() {
        let d = described("user.deleted");
        let c = change(&d);
        assert_eq!(
            (c.entity_id.as_str(), c.mode),
            (USER_ID, ChangeMode::Tombstone)
        );
        assert_eq!(
            (c.version, d.provider_ts),
            (1_750_161_600_000, 1_750_161_600_000)
        );
        assert!(c.attrs.is_empty());
        assert_eq!(kinds(&d), [ANALYTICS]);
        assert_eq!(d.effects.actions()[0].payload["event"], "user.deleted");
    }

    #[test]
    fn samples_are_one_user_in_time_order() {
        let versions: Vec<i64> = ["user.created", "user.updated", "user.deleted"]
            .iter()
            .map(|n| change(&described(n)).version)
            .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        for name in [
            "user.created",
            "user.updated",
            "user.deleted",
            "session.created",
        ] {
            assert_eq!(value(name)["object"], "event");
            assert_eq!(value(name)["instance_id"], "ins_2yHookLine0Instance0001");
        }
        assert_eq!(value("session.created")["data"]["user_id"], USER_ID);
    }

    #[test]
    fn unknown_type_is_ignored() {
        let d = described("session.created");
        assert_eq!(d.event_type, "session.created");
        assert_eq!(d.event_id, "msg_test");
        assert_eq!(d.provider_ts, 1_749_988_801_207);
        assert_eq!(d.effects, Effects::Ignored);
    }

    #[test]
    fn an_older_update_just_has_the_older_version() {
        let newer = described("user.updated");
        let mut v = value("user.updated");
        v["data"]["updated_at"] = 1_750_075_100_000_i64.into();
        v["data"]["last_name"] = "Byron".into();
        let older = from_value(&v).unwrap();
        assert!(change(&older).version < change(&newer).version);
        assert_eq!(change(&older).version, 1_750_075_100_000);
        // Same envelope time: the version is the user's own updated_at, not the delivery time.
        assert_eq!(older.provider_ts, newer.provider_ts);
    }

    #[test]
    fn version_and_time_fallbacks() {
        // created: updated_at, else created_at, else the envelope timestamp.
        let mut v = value("user.created");
        v["data"].as_object_mut().unwrap().remove("updated_at");
        assert_eq!(change(&from_value(&v).unwrap()).version, 1_749_988_800_514);
        v["data"]["created_at"] = Value::Null;
        assert_eq!(change(&from_value(&v).unwrap()).version, 1_749_988_800_902);
        // ...never the signed delivery time (Svix re-signs each attempt): 0, ties broken by the
        // message id. The delivery time is still the event's `provider_ts`.
        v.as_object_mut().unwrap().remove("timestamp");
        let d = from_value(&v).unwrap();
        assert_eq!((change(&d).version, d.provider_ts), (0, SIGNED_AT * 1000));

        let mut v = value("user.updated");
        v["data"].as_object_mut().unwrap().remove("updated_at");
        assert_eq!(change(&from_value(&v).unwrap()).version, 1_750_075_200_211);

        let mut v = value("user.deleted");
        v.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(change(&from_value(&v).unwrap()).version, 0);
        // Standard Webhooks' recommended RFC 3339 timestamp is understood too.
        v["timestamp"] = "2025-06-17T12:00:00.000Z".into();
        assert_eq!(change(&from_value(&v).unwrap()).version, 1_750_161_600_000);
        // Nothing at all (cannot happen after verification): still an answer.
        let d = describe_json(
            br#"{"type":"user.deleted","data":{"id":"u"}}"#,
            Some("m"),
            None,
        )
        .unwrap();
        assert_eq!(change(&d).version, 0);
    }

    #[test]
    fn minimal_and_sparse_users_are_accepted() {
        let d = run(br#"{"type":"user.created","data":{"id":"u_1"}}"#).unwrap();
        let c = change(&d);
        assert_eq!(c.entity_id, "u_1");
        assert!(c.attrs.values().all(Value::is_null));
        assert_eq!(d.effects.actions()[0].payload["email"], Value::Null);
    }

    #[test]
    fn missing_message_id_is_an_error() {
        let err = describe_json(sample("user.created").as_bytes(), None, Some(SIGNED_AT));
        assert!(err.unwrap_err().to_string().contains("webhook-id"));
    }

    #[test]
    fn garbage_and_wrong_shapes_are_parse_errors() {
        let bodies: &[&[u8]] = &[
            b"",
            b"\xff\xfe not json",
            b"null",
            b"{}",
            br#"{"type":42,"data":{}}"#,
            br#"{"type":"user.created"}"#,
            br#"{"type":"user.created","data":{"first_name":"no id"}}"#,
            br#"{"type":"user.deleted","data":{"id":null}}"#,
        ];
        for body in bodies {
            assert!(run(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        for (name, field, bad) in [
            ("user.created", "updated_at", json!("yesterday")),
            ("user.created", "email_addresses", json!("a@example.com")),
            ("user.updated", "id", json!(12)),
            ("user.updated", "first_name", json!({"given": "Ada"})),
            ("user.deleted", "id", json!(["user_1"])),
        ] {
            let mut v = value(name);
            v["data"][field] = bad;
            assert!(from_value(&v).is_err(), "{name}.{field}");
        }
    }

    #[test]
    fn describe_uses_the_verified_message_id() {
        let secret = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=";
        let verifier = Verifier::new(
            Scheme::StandardWebhooks,
            Secrets::parse_list(secret).unwrap(),
            300,
        )
        .unwrap()
        .with_clock(FixedClock::at_secs(SIGNED_AT));
        let body = sample("user.created").as_bytes();
        let headers = hookline::verify::sign(
            &Scheme::StandardWebhooks,
            &Secret::new(secret),
            &SignInput {
                body,
                timestamp: SIGNED_AT,
                id: "msg_2yHookLineSvixMessage01",
                url: None,
            },
        )
        .unwrap();
        let headers: http::HeaderMap = headers
            .into_iter()
            .map(|(k, v)| (k, v.parse().unwrap()))
            .collect();
        let verified = verifier
            .verify(&Incoming {
                headers: &headers,
                body,
                url: None,
            })
            .unwrap();
        let d = describe(&verified).unwrap();
        assert_eq!(d.event_id, "msg_2yHookLineSvixMessage01");
        assert_eq!(d.effects, described("user.created").effects);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = run(&body);
        }

        #[test]
        fn never_panics_on_arbitrary_times(
            ts in any::<Option<i64>>(),
            updated in any::<Option<i64>>(),
            signed in any::<Option<i64>>(),
            kind in prop::sample::select(vec!["user.created", "user.updated", "user.deleted", "x"]),
        ) {
            let body = json!({"type": kind, "timestamp": ts,
                "data": {"id": "u", "updated_at": updated, "created_at": updated}});
            let d = describe_json(&serde_json::to_vec(&body).unwrap(), Some("m"), signed).unwrap();
            prop_assert_eq!(d.effects.is_ignored(), kind == "x");
        }
    }
}
