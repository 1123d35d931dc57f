//! Pieces every scheme shares: header access with precise errors, strict timestamps, the
//! tolerance check, signature decoding into fixed-size buffers, and the constant-time match of
//! one MAC per secret against every candidate signature.
//!
//! Policies kept here, so that every scheme behaves alike:
//! - A header that must appear once and appears twice is [`VerifyError::RepeatedHeader`]; this
//!   holds for the optional id/topic headers too, since an ambiguous id is no id.
//! - A timestamp is 1 to 19 ASCII digits (no sign, no blanks); the MAC is fed the header's own
//!   bytes, so `0012` and `12` are different signed strings, as for the sender.
//! - Hex signatures are decoded to bytes before comparison, so upper-case hex is accepted: the
//!   MAC is the same 32 bytes whatever the letter case, and refusing it would buy no security.
//! - Base64 signatures use the standard alphabet with padding, strictly (no trailing bits).
//! - A blank signature header is [`VerifyError::MalformedSignature`] for every scheme.
//! - Among several signatures of the supported version, one match suffices. When none matches,
//!   the answer is [`VerifyError::SignatureMismatch`] if at least one was well formed, else
//!   [`VerifyError::MalformedSignature`]; with none of the supported version at all,
//!   [`VerifyError::NoSupportedSignature`]. Malformed input is refused before any MAC is run.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq;

use super::{Ctx, HmacSha256, Keys, VerifyError};

/// A header a scheme reads: the lowercase key it is looked up by (a ready [`HeaderName`], which
/// makes a lookup about twice as fast as one by `&str`) and the canonical name errors carry.
pub(super) struct Hdr {
    /// The lowercase lookup key.
    pub(super) key: HeaderName,
    /// The canonical spelling, as [`VerifyError`] reports it.
    pub(super) name: &'static str,
}

impl Hdr {
    /// `key` must be `name` in lower case; checked at compile time for `const` items.
    pub(super) const fn new(name: &'static str, key: &'static str) -> Self {
        let (a, b) = (name.as_bytes(), key.as_bytes());
        assert!(a.len() == b.len(), "key is not the lower-case name");
        let mut i = 0;
        while i < a.len() {
            assert!(
                a[i].to_ascii_lowercase() == b[i],
                "key is not the lower-case name"
            );
            i += 1;
        }
        Self {
            key: HeaderName::from_static(key),
            name,
        }
    }
}

/// The one value of header `h`: absent, present once, or an error when repeated.
pub(super) fn header_once<'r>(
    headers: &'r HeaderMap,
    h: &Hdr,
) -> Result<Option<&'r HeaderValue>, VerifyError> {
    let mut values = headers.get_all(&h.key).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(VerifyError::RepeatedHeader(h.name));
    }
    Ok(first)
}

/// The value of an optional header as text (visible ASCII).
pub(super) fn optional_str<'r>(
    headers: &'r HeaderMap,
    h: &Hdr,
) -> Result<Option<&'r str>, VerifyError> {
    header_once(headers, h)?
        .map(|v| v.to_str().map_err(|_| VerifyError::MalformedHeader(h.name)))
        .transpose()
}

/// The value of a required header as text (visible ASCII).
pub(super) fn required_str<'r>(headers: &'r HeaderMap, h: &Hdr) -> Result<&'r str, VerifyError> {
    optional_str(headers, h)?.ok_or(VerifyError::MissingHeader(h.name))
}

/// A signature header's value: required, and blank is [`VerifyError::MalformedSignature`]
/// whatever the scheme's syntax (an empty signature is no signature of any version).
pub(super) fn signature_str<'r>(
    value: Option<&'r str>,
    name: &'static str,
) -> Result<&'r str, VerifyError> {
    let value = value.ok_or(VerifyError::MissingHeader(name))?;
    if value.trim().is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    Ok(value)
}

/// The first of `hs` that is present (each checked for repetition), else `None`.
pub(super) fn first_present<'r>(
    headers: &'r HeaderMap,
    hs: &[Hdr],
) -> Result<Option<&'r str>, VerifyError> {
    for h in hs {
        if let Some(v) = optional_str(headers, h)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Parses a Unix timestamp in seconds: ASCII digits only; overflow is an error.
pub(super) fn parse_timestamp(raw: &str) -> Result<i64, VerifyError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::InvalidTimestamp);
    }
    raw.parse().map_err(|_| VerifyError::InvalidTimestamp)
}

/// `|now - ts| <= tolerance` passes; anything further is too old or in the future.
pub(super) fn check_tolerance(ctx: &Ctx<'_>, ts: i64) -> Result<(), VerifyError> {
    let age = ctx.now.saturating_sub(ts);
    let tolerance = ctx.tolerance.max(0);
    if age > tolerance {
        Err(VerifyError::TimestampTooOld)
    } else if age < -tolerance {
        Err(VerifyError::TimestampInFuture)
    } else {
        Ok(())
    }
}

/// Decodes exactly `N` bytes of hex (either letter case).
pub(super) fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    (s.len() == 2 * N && hex::decode_to_slice(s, &mut out).is_ok()).then_some(out)
}

/// Decodes exactly `N` bytes of padded standard base64.
pub(super) fn decode_b64<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Padded base64 of N bytes is exactly this long; anything else is refused before decoding.
    if s.len() != N.div_ceil(3) * 4 {
        return None;
    }
    let mut buf = [0u8; 64];
    let n = STANDARD.decode_slice(s, &mut buf).ok()?;
    (n == N).then(|| {
        let mut out = [0u8; N];
        out.copy_from_slice(&buf[..N]);
        out
    })
}

/// Signatures of the supported version collected from a header, decoded.
pub(super) struct Candidates<const N: usize> {
    sigs: Vec<[u8; N]>,
    seen: bool,
}

impl<const N: usize> Candidates<N> {
    pub(super) fn new() -> Self {
        Self {
            sigs: Vec::new(),
            seen: false,
        }
    }

    /// Records one signature of the supported version; `decoded` is `None` when malformed.
    pub(super) fn push(&mut self, decoded: Option<[u8; N]>) {
        self.seen = true;
        if let Some(sig) = decoded {
            self.sigs.push(sig);
        }
    }

    /// The well-formed signatures, or the error that says why there are none.
    pub(super) fn into_sigs(self) -> Result<Vec<[u8; N]>, VerifyError> {
        match (self.sigs.is_empty(), self.seen) {
            (false, _) => Ok(self.sigs),
            (true, true) => Err(VerifyError::MalformedSignature),
            (true, false) => Err(VerifyError::NoSupportedSignature),
        }
    }
}

/// True when `tag` equals any of `sigs`, compared in constant time.
pub(super) fn matches_any<const N: usize>(tag: &[u8], sigs: &[[u8; N]]) -> bool {
    sigs.iter().any(|sig| bool::from(tag.ct_eq(sig)))
}

/// Runs one HMAC-SHA256 per configured secret over what `feed` writes (prefix, then the body,
/// with no copy of the body) and accepts when any result equals any of `sigs`.
pub(super) fn match_sha256(
    ctx: &Ctx<'_>,
    sigs: &[[u8; 32]],
    feed: impl Fn(&mut HmacSha256),
) -> Result<(), VerifyError> {
    let Keys::Sha256(keys) = ctx.keys else {
        return Err(VerifyError::InvalidSecret);
    };
    for key in keys {
        let mut mac = key.clone();
        feed(&mut mac);
        if matches_any(&mac.finalize().into_bytes(), sigs) {
            return Ok(());
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// A keyed HMAC-SHA256 for signing; an empty key is refused.
pub(super) fn signing_mac(key: &[u8]) -> Result<HmacSha256, VerifyError> {
    if key.is_empty() {
        return Err(VerifyError::InvalidSecret);
    }
    HmacSha256::new_from_slice(key).map_err(|_| VerifyError::InvalidSecret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_strict_digits() {
        assert_eq!(parse_timestamp("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_timestamp("0012"), Ok(12));
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1.5",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_timestamp(bad),
                Err(VerifyError::InvalidTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hex_accepts_both_cases_and_exact_length_only() {
        assert_eq!(decode_hex::<2>("abCD"), Some([0xab, 0xcd]));
        assert_eq!(decode_hex::<2>("abc"), None);
        assert_eq!(decode_hex::<2>("abcdef"), None);
        assert_eq!(decode_hex::<2>("zzzz"), None);
    }

    #[test]
    fn base64_is_strict_and_exact_length() {
        assert_eq!(decode_b64::<2>("AAE="), Some([0, 1]));
        assert_eq!(decode_b64::<2>("AAE"), None);
        assert_eq!(decode_b64::<2>("AAF="), None, "trailing bits");
        assert_eq!(decode_b64::<3>("AAEC"), Some([0, 1, 2]));
        assert_eq!(decode_b64::<32>(""), None);
        assert_eq!(decode_b64::<2>("A*E="), None);
    }
}
