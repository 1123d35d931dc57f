//! The Slack Events API body, typed: an envelope whose `type` says what it is.
//!
//! | `type` | body |
//! |---|---|
//! | `url_verification` | `challenge` (and the legacy `token`): Slack checks the URL with it |
//! | `event_callback` | `event_id` (the same on every retry), `event_time` (s), `team_id`, `authorizations` (who the app acts as), `event` (the inner event, its own `type`) |
//! | anything else (`app_rate_limited`, ...) | read as [`Envelope::Other`] |
//!
//! The inner event is kept as JSON and only read as a [`Message`] when its type is one the
//! mapping handles: inner events differ widely (a `user_change`'s `user` is an object, a
//! message's a string), and one the mapping ignores must never fail to parse.

use serde::Deserialize;
use serde_json::Value;

/// One Events API delivery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type")]
pub enum Envelope {
    /// Slack checks the request URL: answer its challenge.
    #[serde(rename = "url_verification")]
    UrlVerification {
        /// The value to echo.
        challenge: String,
    },
    /// An event the app subscribed to.
    #[serde(rename = "event_callback")]
    EventCallback(Callback),
    /// Another envelope type.
    #[serde(other)]
    Other,
}

/// An `event_callback` envelope.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Callback {
    /// The event's id, the same on every retry (`X-Slack-Retry-Num`).
    pub event_id: String,
    /// When the event happened, seconds since the epoch (Slack's clock).
    pub event_time: i64,
    /// The workspace.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The users the app acts as in this workspace; the bot user among them is ours.
    #[serde(default)]
    pub authorizations: Vec<Authorization>,
    /// The inner event, read by its `type`.
    pub event: InnerEvent,
}

/// One installation the event is visible to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Authorization {
    /// The user (or bot user) id.
    #[serde(default)]
    pub user_id: Option<String>,
    /// True for the app's bot user.
    #[serde(default)]
    pub is_bot: bool,
}

/// The inner event: its type, and the rest as JSON.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InnerEvent {
    /// `app_mention`, `message`, `reaction_added`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Every other field.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

/// An `app_mention` or `message` event: who wrote what, where.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    /// Set for a message of a special kind (`bot_message`, `message_changed`, ...); a plain user
    /// message has none.
    #[serde(default)]
    pub subtype: Option<String>,
    /// Set when a bot (ours included) posted it.
    #[serde(default)]
    pub bot_id: Option<String>,
    /// The author.
    #[serde(default)]
    pub user: Option<String>,
    /// The conversation.
    #[serde(default)]
    pub channel: Option<String>,
    /// The text, with mentions as `<@U...>`.
    #[serde(default)]
    pub text: Option<String>,
    /// The message's own timestamp (its id in the channel).
    #[serde(default)]
    pub ts: Option<String>,
    /// The thread it belongs to, if any.
    #[serde(default)]
    pub thread_ts: Option<String>,
    /// `channel`, `im`, `group`, `mpim` (messages only).
    #[serde(default)]
    pub channel_type: Option<String>,
}

impl InnerEvent {
    /// The event read as a message.
    pub fn message(&self) -> Result<Message, serde_json::Error> {
        serde_json::from_value(Value::Object(self.fields.clone()))
    }
}
