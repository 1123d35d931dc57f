//! The Builder.io webhook body, typed: `{"newValue", "previousValue", "modelName",
//! "operation"}`, each value a content entry (or `null`). Only the fields the mapping uses are
//! read; every other field (the entry's `data` blocks, variations, targeting...) is skipped
//! unread, and an unknown operation still parses.
//!
//! | field | meaning |
//! |---|---|
//! | `operation` | `publish`, `unpublish`, `archive`, `delete`, `scheduledStart`, `scheduledEnd` |
//! | `modelName` | the model, e.g. `page` (absent is tolerated only without values) |
//! | `newValue` | the entry after the operation; `null` for a delete |
//! | `previousValue` | the entry before it; `null` for a first publish |
//!
//! With "disable payload" set on the webhook, both values are absent (or `null`).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One Builder.io webhook delivery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Webhook {
    /// What happened to the entry.
    pub operation: String,
    /// The model's name, e.g. `page`.
    #[serde(default, rename = "modelName")]
    pub model_name: Option<String>,
    /// The entry after the operation (`None`: a delete, or no payload).
    #[serde(default, rename = "newValue")]
    pub new_value: Option<Entry>,
    /// The entry before it (`None`: a first publish, or no payload).
    #[serde(default, rename = "previousValue")]
    pub previous_value: Option<Entry>,
}

/// A content entry, as the Content API returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Entry {
    /// The entry's id (unique in the space).
    pub id: String,
    /// The entry's name in the editor.
    #[serde(default)]
    pub name: Option<String>,
    /// `published`, `draft` or `archived`.
    #[serde(default)]
    pub published: Option<String>,
    /// When the entry was last changed, ms since the epoch (set by Builder.io).
    #[serde(default, rename = "lastUpdated", deserialize_with = "millis")]
    pub last_updated: Option<i64>,
    /// When a scheduled entry goes live, ms.
    #[serde(default, rename = "startDate", deserialize_with = "millis")]
    pub start_date: Option<i64>,
    /// When a scheduled entry stops being live, ms.
    #[serde(default, rename = "endDate", deserialize_with = "millis")]
    pub end_date: Option<i64>,
    /// The entry's fields; only `url` is read.
    #[serde(default)]
    pub data: Option<EntryData>,
    /// The entry's targeting; a `urlPath` condition names the page's path.
    #[serde(default)]
    pub query: Option<Vec<Condition>>,
}

/// An entry's `data`: arbitrary fields of the model; only `url` is read, and only when it is a
/// string (a model may well have a `url` field of another type).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EntryData {
    /// A page model's path, e.g. `/about`.
    #[serde(default)]
    pub url: Option<Value>,
}

/// One targeting condition of an entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Condition {
    /// The targeted attribute, e.g. `urlPath`.
    #[serde(default)]
    pub property: Option<String>,
    /// The value (a string, or a list of strings).
    #[serde(default)]
    pub value: Option<Value>,
}

impl Entry {
    /// The URL paths this entry is served at: `data.url`, and the values of its `urlPath`
    /// targeting, each a string starting with `/`. Sorted, without repeats.
    pub fn paths(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |v: &Value| {
            if let Some(p) = v.as_str().filter(|p| p.starts_with('/')) {
                out.push(p.to_owned());
            }
        };
        if let Some(url) = self.data.as_ref().and_then(|d| d.url.as_ref()) {
            push(url);
        }
        for c in self.query.iter().flatten() {
            if c.property.as_deref() != Some("urlPath") {
                continue;
            }
            match &c.value {
                Some(Value::Array(items)) => items.iter().for_each(&mut push),
                Some(v) => push(v),
                None => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// A time in ms: an integer, or a number with a fraction (truncated); `null` is none.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    Ok(n.and_then(|n| {
        n.as_i64().or_else(|| {
            #[allow(clippy::cast_possible_truncation)]
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
    }))
}
