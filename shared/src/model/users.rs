//! User lifecycle events sent through Standard Webhooks / Svix (`user-events`), in the shape
//! identity providers such as Clerk use:
//!
//! ```json
//! {"type": "user.created", "object": "event", "timestamp": 1654012591835,
//!  "data": {"id": "user_29w8...", "object": "user", "email_addresses": [...], ...},
//!  "instance_id": "ins_..."}
//! ```
//!
//! [`Event`] is the envelope with `data` parsed by type into a [`Payload`]; other types parse to
//! [`Payload::Unhandled`]. Only `data.id` is required of a user: every other field is optional,
//! so senders other than Clerk that follow the same outline are accepted. The envelope
//! `timestamp` is read as milliseconds (Clerk) or as an RFC 3339 string (the Standard Webhooks
//! payload recommendation); a timestamp in neither form is treated as absent.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// `user.created`
pub const USER_CREATED: &str = "user.created";
/// `user.updated`
pub const USER_UPDATED: &str = "user.updated";
/// `user.deleted`
pub const USER_DELETED: &str = "user.deleted";

/// A user event, its `data` parsed for the types Hookline handles.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawEvent")]
pub struct Event {
    /// Event type, e.g. `user.created`.
    pub event_type: String,
    /// When the provider emitted the event, milliseconds since the epoch, if it says.
    pub timestamp: Option<i64>,
    /// The provider's instance (Clerk: `ins_...`), if any.
    pub instance_id: Option<String>,
    /// The typed data.
    pub payload: Payload,
}

/// The `data` of an event, by event type.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `user.created`.
    Created(Box<User>),
    /// `user.updated`.
    Updated(Box<User>),
    /// `user.deleted`.
    Deleted(DeletedUser),
    /// Any other type (`session.created`, `organization.created`, ...): not looked at.
    Unhandled,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default, deserialize_with = "lenient_millis")]
    timestamp: Option<i64>,
    #[serde(default)]
    instance_id: Option<String>,
    /// Kept as raw text and parsed once into the type the event names (no `Value` tree).
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

impl TryFrom<RawEvent> for Event {
    type Error = serde_json::Error;

    fn try_from(raw: RawEvent) -> Result<Self, Self::Error> {
        fn data<T: de::DeserializeOwned>(
            t: &str,
            data: Option<Box<RawValue>>,
        ) -> Result<T, serde_json::Error> {
            serde_json::from_str(data.as_deref().map_or("null", RawValue::get))
                .map_err(|e| de::Error::custom(format_args!("data of a {t} event: {e}")))
        }
        let t = raw.event_type.as_str();
        let payload = match t {
            USER_CREATED => Payload::Created(data(t, raw.data)?),
            USER_UPDATED => Payload::Updated(data(t, raw.data)?),
            USER_DELETED => Payload::Deleted(data(t, raw.data)?),
            _ => Payload::Unhandled,
        };
        Ok(Self {
            event_type: raw.event_type,
            timestamp: raw.timestamp,
            instance_id: raw.instance_id,
            payload,
        })
    }
}

/// A user, as of `user.created` / `user.updated`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct User {
    /// User id (`user_...`).
    pub id: String,
    /// All the user's email addresses.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub email_addresses: Vec<EmailAddress>,
    /// Which of `email_addresses` is the primary one.
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    /// A single email field, for senders that send one instead of `email_addresses`.
    #[serde(default)]
    pub email: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Username, where the provider has them.
    #[serde(default)]
    pub username: Option<String>,
    /// Creation time, milliseconds since the epoch.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Last update time, milliseconds since the epoch: the user's state version.
    #[serde(default)]
    pub updated_at: Option<i64>,
}

impl User {
    /// The primary email address: the one `primary_email_address_id` names, else the single
    /// `email` field, else the only address if there is exactly one.
    pub fn primary_email(&self) -> Option<&str> {
        let by_id = self.primary_email_address_id.as_deref().and_then(|pid| {
            self.email_addresses
                .iter()
                .find(|e| e.id.as_deref() == Some(pid))
        });
        by_id
            .map(|e| e.email_address.as_str())
            .or(self.email.as_deref())
            .or(match self.email_addresses.as_slice() {
                [only] => Some(only.email_address.as_str()),
                _ => None,
            })
    }
}

/// One email address of a user.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EmailAddress {
    /// Address id (`idn_...`).
    #[serde(default)]
    pub id: Option<String>,
    /// The address.
    pub email_address: String,
}

/// The `data` of `user.deleted`: `{"deleted": true, "id": "user_...", "object": "user"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DeletedUser {
    /// The deleted user's id.
    pub id: String,
    /// Always true when present.
    #[serde(default)]
    pub deleted: bool,
}

impl Payload {
    /// The user the event is about, if it is a handled type.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::Created(u) | Self::Updated(u) => Some(&u.id),
            Self::Deleted(d) => Some(&d.id),
            Self::Unhandled => None,
        }
    }
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Milliseconds from a JSON integer, or from an RFC 3339 string; anything else is `None`.
fn lenient_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => rfc3339_millis(&s),
        _ => None,
    })
}

/// Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`) into milliseconds
/// since the epoch; anything else is `None`.
pub fn rfc3339_millis(s: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn clerk_shaped_user_created_parses() {
        let e: Event = serde_json::from_value(json!({
            "type": "user.created", "object": "event", "timestamp": 1_654_012_591_835_i64,
            "instance_id": "ins_1",
            "data": {"id": "user_1", "object": "user",
                "email_addresses": [
                    {"id": "idn_a", "email_address": "a@example.org"},
                    {"id": "idn_b", "email_address": "b@example.org"}],
                "primary_email_address_id": "idn_b", "first_name": "Ex", "last_name": null,
                "created_at": 1_654_012_591_514_i64, "updated_at": 1_654_012_591_835_i64}
        }))
        .unwrap();
        assert_eq!(e.timestamp, Some(1_654_012_591_835));
        let Payload::Created(u) = &e.payload else {
            panic!("wrong payload")
        };
        assert_eq!(u.primary_email(), Some("b@example.org"));
        assert_eq!(u.last_name, None);
        assert_eq!(e.payload.user_id(), Some("user_1"));
    }

    #[test]
    fn a_minimal_user_is_enough() {
        let e: Event = serde_json::from_str(
            r#"{"type":"user.updated","data":{"id":"u1","email_addresses":null}}"#,
        )
        .unwrap();
        let Payload::Updated(u) = e.payload else {
            panic!("wrong payload")
        };
        assert_eq!(
            (u.id.as_str(), u.primary_email(), u.updated_at),
            ("u1", None, None)
        );
        assert_eq!(e.timestamp, None);
    }

    #[test]
    fn primary_email_falls_back_to_email_field_then_to_a_single_address() {
        let u: User = serde_json::from_value(json!({"id": "u", "email": "e@example.org"})).unwrap();
        assert_eq!(u.primary_email(), Some("e@example.org"));
        let u: User = serde_json::from_value(
            json!({"id": "u", "email_addresses": [{"email_address": "only@example.org"}]}),
        )
        .unwrap();
        assert_eq!(u.primary_email(), Some("only@example.org"));
        let u: User = serde_json::from_value(json!({"id": "u", "primary_email_address_id": "x",
            "email_addresses": [{"id": "a", "email_address": "a@x"}, {"id": "b", "email_address": "b@x"}]}))
        .unwrap();
        assert_eq!(u.primary_email(), None);
    }

    #[test]
    fn deleted_and_unknown_types() {
        let e: Event = serde_json::from_str(
            r#"{"data":{"deleted":true,"id":"user_1","object":"user"},"object":"event","type":"user.deleted","timestamp":1661861640000}"#,
        )
        .unwrap();
        assert_eq!(
            e.payload,
            Payload::Deleted(DeletedUser {
                id: "user_1".into(),
                deleted: true
            })
        );
        let e: Event = serde_json::from_str(r#"{"type":"session.created","data":[1]}"#).unwrap();
        assert_eq!(e.payload, Payload::Unhandled);
        assert_eq!(e.payload.user_id(), None);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for body in [
            r#"{"type":"user.created","data":{"email":"x"}}"#,
            r#"{"type":"user.created"}"#,
            r#"{"type":"user.deleted","data":{"id":5}}"#,
            r#"{"type":"user.updated","data":{"id":"u","updated_at":"soon"}}"#,
            r#"{"type":7,"data":{}}"#,
            r#"{"data":{"id":"u"}}"#,
            "null",
        ] {
            assert!(serde_json::from_str::<Event>(body).is_err(), "{body}");
        }
    }

    #[test]
    fn timestamps_in_millis_or_rfc3339() {
        let ts = |v: Value| {
            serde_json::from_value::<Event>(json!({"type": "x", "timestamp": v}))
                .unwrap()
                .timestamp
        };
        assert_eq!(ts(json!(1_661_861_640_000_i64)), Some(1_661_861_640_000));
        assert_eq!(
            ts(json!("2022-11-03T20:26:10.344522Z")),
            Some(1_667_507_170_344)
        );
        assert_eq!(
            ts(json!("2022-11-03T21:26:10+01:00")),
            Some(1_667_507_170_000)
        );
        assert_eq!(ts(json!("not a time")), None);
        assert_eq!(ts(json!(null)), None);
        assert_eq!(ts(json!(1.5)), None);
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_millis("2000-02-29T12:00:00.5Z"),
            Some(951_825_600_500)
        );
        assert_eq!(rfc3339_millis("1969-12-31T23:59:59Z"), Some(-1000));
        for bad in [
            "2022-13-03T20:26:10Z",
            "2022-11-03T20:26:10",
            "2022-11-03T20:26:10.Z1",
            "2022-11-03T20:26:10+0100",
            "２０22-11-03T20:26:10Z",
            "+022-11-03T20:26:10Z",
            "",
        ] {
            assert_eq!(rfc3339_millis(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_never_panics(s in "\\PC{0,40}") {
            let _ = rfc3339_millis(&s);
        }

        #[test]
        fn rfc3339_round_trips_whole_seconds(secs in -62_135_596_800i64..253_402_300_799) {
            let at = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let s = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute(), at.second()
            );
            proptest::prop_assert_eq!(rfc3339_millis(&s), Some(secs * 1000));
        }
    }
}
