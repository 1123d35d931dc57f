//! The payload-model harness: the fuzzer's bytes are a webhook body, parsed into the typed model
//! and fed to the function's pure mapping, both directly (`describe_event`) and as the receiver
//! does (`describe` on a [`Verified`] built from the bytes and their SHA-256).
//!
//! What must hold for any body:
//! - nothing panics: not the model's custom deserialisers (expandable ids, lenient timestamps,
//!   RFC 3339 parsing), not the mapping (documented total), not the state/follow-up building;
//! - `describe` agrees with parse-then-`describe_event`: the same `Described` when the body
//!   parses, an error when it does not;
//! - the mapping keeps the envelope: event id, type and `provider_ts` as documented;
//! - a parse error's message is one of the documented shapes (kind and position, or a missing
//!   field of the model's own) and never repeats text from the body: it is logged and stored as
//!   the quarantine reason (invariant 6);
//! - a body is only ever `Verified` under its own SHA-256.
//!
//! The numbered invariants are those of docs/ARCHITECTURE.md.

use hookline::receiver::Described;
use hookline::verify::{ParseError, Verified};
use sha2::{Digest, Sha256};

/// Fields the Stripe model requires (serde's "missing field" can only name one of these).
const STRIPE_REQUIRED: &[&str] = &[
    "id",
    "type",
    "created",
    "payment_status",
    "mode",
    "customer",
    "status",
    "amount_paid",
    "amount_due",
    "currency",
    "amount",
];

/// Fields the users model requires.
const USERS_REQUIRED: &[&str] = &["type", "id", "email_address"];

/// The body's SHA-256, lower-case hex (what the store records for a quarantined body).
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// A `Verified` of `body` as a replay builds it; also checks that a wrong digest is refused.
fn stored(body: &[u8], delivery_id: Option<String>) -> Verified<'_> {
    let digest = sha256_hex(body);
    let mut wrong = digest.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).expect("hex");
    assert!(
        Verified::stored(body, &wrong, None).is_none(),
        "wrong digest accepted"
    );
    assert!(
        Verified::stored(body, "", None).is_none(),
        "empty digest accepted"
    );
    Verified::stored(body, &digest, delivery_id).expect("own digest refused")
}

/// Panics unless `err`'s message is one of [`ParseError`]'s documented shapes, naming only one of
/// `required` as a missing field: a name from the model, never text from the body.
pub fn check_parse_error(err: &ParseError, required: &[&str]) {
    let msg = err.to_string();
    let detail = msg
        .strip_prefix("payload does not match the expected shape: ")
        .unwrap_or_else(|| panic!("unexpected parse error message: {msg:?}"));
    let rest = if let Some(after) = detail.strip_prefix("missing field `") {
        let (field, rest) = after
            .split_once("` at ")
            .unwrap_or_else(|| panic!("malformed missing-field message: {msg:?}"));
        assert!(
            required.contains(&field),
            "parse error names a field the model does not require (body text?): {msg:?}"
        );
        rest
    } else {
        [
            "invalid JSON at ",
            "truncated JSON at ",
            "unexpected type or value at ",
            "unreadable body at ",
        ]
        .iter()
        .find_map(|p| detail.strip_prefix(p))
        .unwrap_or_else(|| panic!("unexpected parse error kind: {msg:?}"))
    };
    let position = rest
        .strip_prefix("line ")
        .and_then(|r| r.split_once(", column "))
        .unwrap_or_else(|| panic!("no position in parse error: {msg:?}"));
    assert!(
        position.0.parse::<u64>().is_ok() && position.1.parse::<u64>().is_ok(),
        "malformed position in parse error: {msg:?}"
    );
}

/// Checks what holds of every `Described`: a mapping result the store can take or quarantine,
/// whose action kinds (event actions and sync targets) are all among its receiver's `declared`.
pub(crate) fn check_described(d: &Described, declared: &[&str]) {
    if let Some(change) = d.effects.change() {
        assert!(
            !change.entity_kind.is_empty(),
            "state change without an entity kind"
        );
        if let Some(sync) = &change.sync {
            assert!(
                declared.contains(&sync.action.as_str()),
                "undeclared sync target {}",
                sync.action
            );
        }
    }
    for a in d.effects.actions() {
        assert!(!a.kind.is_empty(), "follow-up without a kind");
        assert!(
            declared.contains(&a.kind.as_str()),
            "undeclared action kind {}",
            a.kind
        );
    }
}

/// One Stripe body: `hookline::model::stripe::Event` and `payment_events::handler`.
pub fn stripe(body: &[u8]) {
    use hookline::model::stripe::Event;
    use payment_events::handler::{describe, describe_event};

    let parsed = serde_json::from_slice::<Event>(body);
    let via_verified = describe(&stored(body, None));
    match parsed {
        Ok(event) => {
            let d = describe_event(&event);
            assert_eq!(d.event_id, event.id);
            assert_eq!(d.event_type, event.event_type);
            assert_eq!(d.provider_ts, event.created.saturating_mul(1000));
            assert_eq!(
                d.effects.is_ignored(),
                event.payload == hookline::model::stripe::Payload::Unhandled
            );
            check_described(&d, payment_events::handler::ACTION_KINDS);
            assert_eq!(
                via_verified.as_ref(),
                Ok(&d),
                "describe disagrees with describe_event"
            );
        }
        Err(e) => {
            let err = via_verified.expect_err("describe accepted what the model refused");
            assert_eq!(err, ParseError::from(e));
            check_parse_error(&err, STRIPE_REQUIRED);
        }
    }
}

/// One Standard Webhooks body: `hookline::model::users::Event` and `user_events::handler`. The
/// message id and signed time come from the first bytes, so both the id and its absence are
/// exercised.
pub fn users(data: &[u8]) {
    use hookline::model::users::{Event, Payload};
    use user_events::handler::{describe, describe_event};

    let (with_id, body) = match data.split_first() {
        Some((flag, rest)) => (flag & 1 == 1, rest),
        None => (false, data),
    };
    let message_id = with_id.then(|| "msg_2LJNp1zL8uVYkOqwj5ZqhxPEPDN".to_owned());
    let parsed = serde_json::from_slice::<Event>(body);
    let via_verified = describe(&stored(body, message_id.clone()));
    match (parsed, &message_id) {
        (Ok(event), Some(id)) => {
            let d = describe_event(&event, id, None);
            assert_eq!(&d.event_id, id);
            assert_eq!(d.event_type, event.event_type);
            assert_eq!(d.provider_ts, event.timestamp.unwrap_or(0));
            assert_eq!(d.effects.is_ignored(), event.payload == Payload::Unhandled);
            if let (Some(change), Some(user)) = (d.effects.change(), event.payload.user_id()) {
                assert_eq!(change.entity_id, user);
            }
            check_described(&d, user_events::handler::ACTION_KINDS);
            assert_eq!(
                via_verified.as_ref(),
                Ok(&d),
                "describe disagrees with describe_event"
            );
            // Any delivery time: still total, same id and change.
            let at = describe_event(&event, id, Some(i64::MAX));
            assert_eq!(at.effects.change(), d.effects.change());
        }
        (Ok(_), None) => {
            let err = via_verified.expect_err("describe accepted a delivery without message id");
            assert_eq!(err, ParseError::missing("webhook-id (message id)"));
        }
        (Err(e), _) => {
            let err = via_verified.expect_err("describe accepted what the model refused");
            if message_id.is_some() {
                assert_eq!(err, ParseError::from(e));
            }
            if err != ParseError::missing("webhook-id (message id)") {
                check_parse_error(&err, USERS_REQUIRED);
            }
        }
    }
}
