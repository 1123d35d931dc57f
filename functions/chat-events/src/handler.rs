//! Slack Events API deliveries → follow-ups. Pure: no I/O.
//!
//! [`describe`] parses the verified body into the typed [`Envelope`]; [`describe_envelope`]
//! maps it. Slack signs `v0:{timestamp}:{body}` (`X-Slack-Signature`), checked within the
//! tolerance before anything here runs, and wants an answer within 3 s (the receiver's budget).
//!
//! | delivery | event id | change | follow-ups | answer |
//! |---|---|---|---|---|
//! | `url_verification` | `url_verification:<SHA-256 of the challenge>` | none (recorded `accepted`, nothing to run) | none | `challenge` echoed |
//! | `event_callback`, `app_mention` | `event_id` | none | `chat_reply`, unless written by a bot | |
//! | `event_callback`, `message` from a user (no `subtype`, no `bot_id`) | `event_id` | none | `chat_reply`, unless it mentions our bot user (the `app_mention` of the same message replies) | |
//! | `event_callback`, `message` with a `subtype` (`bot_message`, `message_changed`, `message_deleted`, `channel_join`, ...) or a `bot_id` | `event_id` | none | none | |
//! | `event_callback`, another inner type | `event_id` | ignored | – | |
//! | another envelope type (`app_rate_limited`, ...) | `<type>:<SHA-256 of the body>` | ignored | – | |
//!
//! # Keys and retries
//!
//! The event id is Slack's `event_id`, the same on every retry: a retry (`X-Slack-Retry-Num`,
//! after a timeout or an error) is answered `duplicate` and re-enqueues only what is still
//! pending. `provider_ts` is `event_time` (s) in ms; a `url_verification` has no time (0).
//!
//! # The challenge
//!
//! A `url_verification` is answered with its `challenge` (Slack accepts a JSON answer with a
//! `challenge` field) only after the signature verified: the mapping runs on a verified body
//! alone, and the receiver adds [`Described::challenge`] to its answer, a `duplicate` included.
//! It is recorded (status `accepted`, no state, no follow-up), so who checked the URL, and
//! when, can be read back; it is keyed by the challenge's hash, so a retry of one check is a
//! duplicate and a new check a new record.
//!
//! # No loops
//!
//! `chat_reply` is an event action (a fact about one message: answer it once) and is never
//! emitted for a message a bot wrote: one with a `bot_id` (our own replies carry our bot's), or
//! a `subtype` (`bot_message`, and the edits, deletions and joins that no one asked to be
//! answered), or whose author is the bot user the delivery's `authorizations` name. Replying to
//! any of them would answer our own answers. A user's message that mentions our bot user comes
//! twice, as `app_mention` and as `message`: only the `app_mention` replies.
//!
//! No entity is kept: the issue asks nothing of a conversation's state beyond deduplication,
//! so nothing here is ever `stale`. `chat_reply` gets `{team, channel, thread_ts, user, text,
//! event_type}`, `thread_ts` being the thread to answer in (the message's own `ts` when it
//! starts one).

use hookline::receiver::Described;
use hookline::store::{Action, Effects};
use hookline::verify::{ParseError, Verified};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::model::{Callback, Envelope, Message};

/// Follow-up: post a reply in the conversation.
pub const CHAT_REPLY: &str = "chat_reply";
/// Every action kind this mapping emits: the receiver's
/// [`hookline::receiver::ReceiverSpec::action_kinds`].
pub const ACTION_KINDS: &[&str] = &[CHAT_REPLY];

/// Parses a verified Slack delivery and maps it.
pub fn describe(v: &Verified<'_>) -> Result<Described, ParseError> {
    describe_json(v.body())
}

/// [`describe`] minus the proof of origin.
fn describe_json(body: &[u8]) -> Result<Described, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    describe_envelope(&envelope, body)
}

/// Maps a parsed delivery; `body` is hashed into the id of an envelope type without one.
pub fn describe_envelope(envelope: &Envelope, body: &[u8]) -> Result<Described, ParseError> {
    Ok(match envelope {
        Envelope::UrlVerification { challenge } => {
            let mut d = Described::new(
                format!("url_verification:{}", sha256_hex(challenge.as_bytes())),
                "url_verification".to_owned(),
                0,
                Effects::Apply {
                    change: None,
                    actions: Vec::new(),
                },
            );
            d.challenge = Some(challenge.clone());
            d
        }
        Envelope::EventCallback(callback) => callback_event(callback)?,
        Envelope::Other => {
            #[derive(serde::Deserialize)]
            struct Kind {
                #[serde(rename = "type")]
                kind: String,
            }
            let kind = serde_json::from_slice::<Kind>(body)?.kind;
            Described::new(
                format!("{kind}:{}", sha256_hex(body)),
                kind,
                0,
                Effects::Ignored,
            )
        }
    })
}

fn callback_event(c: &Callback) -> Result<Described, ParseError> {
    let kind = c.event.kind.as_str();
    let effects = match kind {
        "app_mention" | "message" => {
            let message = c.event.message()?;
            let actions = if should_reply(c, kind, &message) {
                vec![reply(c, kind, &message)]
            } else {
                Vec::new()
            };
            Effects::Apply {
                change: None,
                actions,
            }
        }
        _ => Effects::Ignored,
    };
    Ok(Described::new(
        c.event_id.clone(),
        kind.to_owned(),
        c.event_time.saturating_mul(1000),
        effects,
    ))
}

/// True for a person's message worth an answer: not a bot's (a `bot_id`, a `subtype`, or our
/// bot user as author), and for a `message` not one that mentions our bot (its `app_mention`
/// answers).
fn should_reply(c: &Callback, kind: &str, m: &Message) -> bool {
    let ours: Vec<&str> = c
        .authorizations
        .iter()
        .filter(|a| a.is_bot)
        .filter_map(|a| a.user_id.as_deref())
        .collect();
    let Some(user) = m.user.as_deref() else {
        return false;
    };
    if m.bot_id.is_some() || m.subtype.is_some() || ours.contains(&user) {
        return false;
    }
    let text = m.text.as_deref().unwrap_or_default();
    let mentions_us = ours.iter().any(|id| text.contains(&format!("<@{id}>")));
    !(kind == "message" && mentions_us)
}

fn reply(c: &Callback, kind: &str, m: &Message) -> Action {
    Action::new(
        CHAT_REPLY,
        json!({
            "team": c.team_id,
            "channel": m.channel,
            "thread_ts": m.thread_ts.as_ref().or(m.ts.as_ref()),
            "user": m.user,
            "text": m.text,
            "event_type": kind,
        }),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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

    fn sample(name: &str) -> &'static str {
        match name {
            "url_verification" => include_str!("../../../events/chat-events/url_verification.json"),
            "app_mention" => include_str!("../../../events/chat-events/app_mention.json"),
            "message" => include_str!("../../../events/chat-events/message.json"),
            "message.from_bot" => include_str!("../../../events/chat-events/message.from_bot.json"),
            "message.bot_message" => {
                include_str!("../../../events/chat-events/message.bot_message.json")
            }
            "message.message_changed" => {
                include_str!("../../../events/chat-events/message.message_changed.json")
            }
            "reaction_added" => include_str!("../../../events/chat-events/reaction_added.json"),
            other => panic!("no sample {other}"),
        }
    }

    fn value(name: &str) -> Value {
        serde_json::from_str(sample(name)).unwrap()
    }

    fn described(name: &str) -> Described {
        describe_json(sample(name).as_bytes()).unwrap()
    }

    fn from_value(v: &Value) -> Result<Described, ParseError> {
        describe_json(&serde_json::to_vec(v).unwrap())
    }

    fn kinds(d: &Described) -> Vec<&str> {
        d.effects
            .actions()
            .iter()
            .map(|a| a.kind.as_str())
            .collect()
    }

    #[test]
    fn url_verification_echoes_the_challenge_and_runs_nothing() {
        let d = described("url_verification");
        let challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P";
        assert_eq!(d.challenge.as_deref(), Some(challenge));
        assert_eq!(
            d.event_id,
            format!("url_verification:{}", sha256_hex(challenge.as_bytes()))
        );
        assert_eq!(
            (d.event_type.as_str(), d.provider_ts),
            ("url_verification", 0)
        );
        assert!(d.deduplicated);
        assert!(!d.effects.is_ignored());
        assert_eq!(d.effects.change(), None);
        assert!(d.effects.actions().is_empty());
    }

    #[test]
    fn app_mention_gets_a_reply_in_its_thread() {
        let d = described("app_mention");
        assert_eq!(d.event_id, "Ev0HLMENTION01");
        assert_eq!(d.event_type, "app_mention");
        assert_eq!(d.provider_ts, 1_749_990_000_000);
        assert_eq!(d.challenge, None);
        assert_eq!(d.effects.change(), None);
        assert_eq!(kinds(&d), [CHAT_REPLY]);
        assert_eq!(
            d.effects.actions()[0].payload,
            json!({"team": "T0HOOKLINE1", "channel": "C0HL0GENERAL",
                   "thread_ts": "1749990000.000100", "user": "U0HLUSER001",
                   "text": "<@U0HLBOT0001> what is the status of order 1042?",
                   "event_type": "app_mention"})
        );
    }

    #[test]
    fn a_user_message_gets_a_reply_in_its_thread() {
        let d = described("message");
        assert_eq!(d.event_type, "message");
        assert_eq!(kinds(&d), [CHAT_REPLY]);
        let p = &d.effects.actions()[0].payload;
        assert_eq!(
            p["thread_ts"], "1749990000.000100",
            "the thread, not the message"
        );
        assert_eq!(p["channel"], "D0HL0DIRECT1");
    }

    #[test]
    fn never_a_reply_to_a_bot_or_a_message_event_of_a_subtype() {
        for name in [
            "message.from_bot",
            "message.bot_message",
            "message.message_changed",
        ] {
            let d = described(name);
            assert!(!d.effects.is_ignored(), "{name}: handled, nothing to run");
            assert!(d.effects.actions().is_empty(), "{name}");
        }
        // Our bot user as author, even without a bot_id.
        let mut v = value("message");
        v["event"]["user"] = "U0HLBOT0001".into();
        assert!(from_value(&v).unwrap().effects.actions().is_empty());
        // Any subtype, and any bot_id, on either event type.
        let mut v = value("app_mention");
        v["event"]["bot_id"] = "B0HLOTHER01".into();
        assert!(from_value(&v).unwrap().effects.actions().is_empty());
        let mut v = value("message");
        v["event"]["subtype"] = "thread_broadcast".into();
        assert!(from_value(&v).unwrap().effects.actions().is_empty());
        // No author at all.
        let mut v = value("message");
        v["event"].as_object_mut().unwrap().remove("user");
        assert!(from_value(&v).unwrap().effects.actions().is_empty());
    }

    #[test]
    fn a_message_mentioning_our_bot_is_answered_by_its_app_mention_only() {
        let mut v = value("message");
        v["event"]["text"] = "<@U0HLBOT0001> any news?".into();
        assert!(from_value(&v).unwrap().effects.actions().is_empty());
        // Another user's mention does not count.
        v["event"]["text"] = "<@U0HLUSER002> any news?".into();
        assert_eq!(kinds(&from_value(&v).unwrap()), [CHAT_REPLY]);
    }

    #[test]
    fn other_inner_events_and_envelopes_are_ignored() {
        let d = described("reaction_added");
        assert_eq!(d.event_id, "Ev0HLREACT001");
        assert_eq!(d.event_type, "reaction_added");
        assert!(d.effects.is_ignored());
        // An inner event whose fields the message model would refuse still parses.
        let mut v = value("reaction_added");
        v["event"] = json!({"type": "user_change", "user": {"id": "U1", "name": "x"}});
        assert!(from_value(&v).unwrap().effects.is_ignored());
        let body = br#"{"token":"t","type":"app_rate_limited","team_id":"T1","minute_rate_limited":1518467820,"api_app_id":"A1"}"#;
        let d = describe_json(body).unwrap();
        assert!(d.effects.is_ignored());
        assert_eq!(d.event_type, "app_rate_limited");
        assert_eq!(d.event_id, format!("app_rate_limited:{}", sha256_hex(body)));
    }

    #[test]
    fn garbage_and_wrong_shapes_are_parse_errors() {
        let bodies: &[&[u8]] = &[
            b"",
            b"\xff not json",
            b"null",
            b"{}",
            br#"{"type":"url_verification"}"#,
            br#"{"type":"url_verification","challenge":7}"#,
            br#"{"type":"event_callback","event_time":1,"event":{"type":"message"}}"#,
            br#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}"#,
            br#"{"type":"event_callback","event_id":"Ev1","event_time":1,"event":{}}"#,
            br#"{"type":"event_callback","event_id":"Ev1","event_time":1,"event":{"type":"message","user":{"id":"U1"}}}"#,
            br#"{"type":"event_callback","event_id":"Ev1","event_time":1,"event":{"type":"app_mention","text":["x"]}}"#,
        ];
        for body in bodies {
            assert!(
                describe_json(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn describe_reads_the_verified_body() {
        let secret = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=";
        let now = 1_750_000_000;
        let verifier = Verifier::new(Scheme::Slack, Secrets::parse_list(secret).unwrap(), 300)
            .unwrap()
            .with_clock(FixedClock::at_secs(now));
        let body = sample("url_verification").as_bytes();
        let headers: http::HeaderMap = hookline::verify::sign(
            &Scheme::Slack,
            &Secret::new(secret),
            &SignInput {
                body,
                timestamp: now,
                id: "",
                url: None,
            },
        )
        .unwrap()
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
        assert_eq!(describe(&verified).unwrap(), described("url_verification"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = describe_json(&body);
        }

        #[test]
        fn only_a_person_s_message_is_answered(
            kind in prop::sample::select(vec!["app_mention", "message"]),
            bot_id in any::<bool>(),
            subtype in any::<bool>(),
            ours in any::<bool>(),
            time in any::<i64>(),
        ) {
            let mut v = value("message");
            v["event"]["type"] = kind.into();
            v["event_time"] = time.into();
            if bot_id { v["event"]["bot_id"] = "B1".into(); }
            if subtype { v["event"]["subtype"] = "bot_message".into(); }
            if ours { v["event"]["user"] = "U0HLBOT0001".into(); }
            let d = from_value(&v).unwrap();
            prop_assert_eq!(d.effects.actions().is_empty(), bot_id || subtype || ours);
        }
    }
}
