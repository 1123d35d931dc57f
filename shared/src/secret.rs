//! Secrets as a newtype whose `Debug` and `Display` print `[redacted]`, so a secret cannot reach a
//! log line by formatting (invariant 6). The bytes are reachable only through [`Secret::expose`].
//!
//! The numbered invariants are those of docs/ARCHITECTURE.md.

use std::fmt;

/// One webhook signing secret (or shared token). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
    /// The secret's bytes, for keying a MAC. Do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Every secret currently accepted for one sender: during a rotation, the old and the new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    /// Builds a non-empty list; `None` when `secrets` is empty.
    pub fn new(secrets: Vec<Secret>) -> Option<Self> {
        (!secrets.is_empty()).then_some(Self(secrets))
    }
    /// Parses a comma-separated list (`WEBHOOK_SECRETS`); blanks around entries are trimmed and
    /// empty entries dropped. `None` when no secret remains.
    pub fn parse_list(list: &str) -> Option<Self> {
        Self::new(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Secret::new(s.as_bytes()))
                .collect(),
        )
    }
    /// The secrets, newest first as configured.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }
    /// The first secret: the one used to sign.
    pub fn primary(&self) -> &Secret {
        &self.0[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("whsec_supersecret");
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{s:?}").contains("supersecret"));
        let list = Secrets::parse_list("a-secret-1, b-secret-2").expect("two secrets");
        assert!(!format!("{list:?}").contains("secret-"));
    }

    #[test]
    fn parse_list_trims_and_drops_empty_entries() {
        let list = Secrets::parse_list(" one ,, two ,").expect("two secrets");
        let got: Vec<&[u8]> = list.iter().map(Secret::expose).collect();
        assert_eq!(got, vec![b"one".as_slice(), b"two".as_slice()]);
        assert!(Secrets::parse_list(" , ").is_none());
    }
}
