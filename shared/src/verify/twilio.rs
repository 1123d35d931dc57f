//! Twilio: `X-Twilio-Signature: <base64>`, HMAC-SHA1 keyed with the auth token.
//!
//! What is signed depends on the request:
//! - **Form bodies** (`Content-Type: application/x-www-form-urlencoded`): the full URL, then
//!   every parameter's name and value concatenated, sorted by name (then by value, for repeated
//!   names; byte order, as Twilio's libraries do). Parameters are decoded strictly: a body that
//!   is not UTF-8, or a name or value that is not UTF-8 after percent-decoding, can never have
//!   been signed by Twilio and is [`VerifyError::SignatureMismatch`]. Because Twilio signs the decoded parameters, equivalent
//!   encodings of the same form (`%20` or `+`, another order) verify alike; that is the scheme.
//! - **JSON and other bodies**: Twilio adds `bodySHA256=<hex SHA-256 of the body>` to the URL's
//!   query and signs the URL alone. The body must hash to that value (compared in constant time);
//!   no parameters are appended. A non-empty body with neither a form content type nor a
//!   `bodySHA256` would be unsigned and is refused: [`VerifyError::MissingHeader`]`("Content-Type")`
//!   or [`VerifyError::MalformedHeader`]`("Content-Type")`.
//! - An empty body: the URL alone.
//!
//! The URL is the one the sender posted to, query included ([`Incoming::url`]); without it,
//! [`VerifyError::MissingUrl`]. As in Twilio's own validators, the URL is tried as given and
//! with the scheme's default port added (or removed, when present), since Twilio is not
//! consistent about it. `I-Twilio-Idempotency-Token` is reported as the delivery id.
//!
//! Signing ([`super::sign`]): for a JSON body the caller must first put the body hash in the URL
//! with [`twilio_url_with_body_sha256`] and post to that URL; any other non-empty body is signed
//! as a form and must be sent with the form content type.

use std::borrow::Cow;

use hmac::{KeyInit, Mac};
use http::HeaderName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::common::{self, Candidates, Hdr};
use super::{Ctx, HmacSha1, Incoming, Keys, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const SIGNATURE: Hdr = Hdr::new("X-Twilio-Signature", "x-twilio-signature");
const IDEMPOTENCY: Hdr = Hdr::new("I-Twilio-Idempotency-Token", "i-twilio-idempotency-token");
const CONTENT_TYPE: Hdr = Hdr::new("Content-Type", "content-type");
const FORM: &str = "application/x-www-form-urlencoded";
const BODY_SHA256: &str = "bodySHA256";

/// `url` with `bodySHA256=<hex SHA-256 of body>` added to its query (before any fragment): the
/// URL to post a JSON body to, and to sign, under the Twilio scheme.
pub fn twilio_url_with_body_sha256(url: &str, body: &[u8]) -> String {
    let (base, fragment) = url.split_at(url.find('#').unwrap_or(url.len()));
    let sep = match base.find('?') {
        None => "?",
        Some(i) if i + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let hash = hex::encode(Sha256::digest(body));
    format!("{base}{sep}{BODY_SHA256}={hash}{fragment}")
}

/// What is appended to the URL before signing.
enum Signed<'a> {
    /// Nothing: an empty body, or a body pinned by `bodySHA256`.
    UrlOnly,
    /// Sorted, decoded form parameters.
    Params(Vec<(Cow<'a, str>, Cow<'a, str>)>),
}

pub(super) fn verify(ctx: &Ctx<'_>, req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    let header = common::signature_str(
        common::optional_str(req.headers, &SIGNATURE)?,
        SIGNATURE.name,
    )?;
    let delivery_id = common::optional_str(req.headers, &IDEMPOTENCY)?;
    let url = req.url.ok_or(VerifyError::MissingUrl)?;
    let mut candidates = Candidates::<20>::new();
    candidates.push(common::decode_b64(header));
    let sigs = candidates.into_sigs()?;

    let (signed, body_ok) = match body_sha256(url)? {
        Some(expected) => {
            let expected =
                common::decode_hex::<32>(expected).ok_or(VerifyError::MalformedSignature)?;
            let ok = bool::from(Sha256::digest(req.body).ct_eq(&expected));
            (Signed::UrlOnly, ok)
        }
        None if req.body.is_empty() => (Signed::UrlOnly, true),
        None => {
            let ct = common::required_str(req.headers, &CONTENT_TYPE)?;
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if !essence.eq_ignore_ascii_case(FORM) {
                return Err(VerifyError::MalformedHeader(CONTENT_TYPE.name));
            }
            let params = sorted_params(req.body).ok_or(VerifyError::SignatureMismatch)?;
            (Signed::Params(params), true)
        }
    };

    let Keys::Sha1(keys) = ctx.keys else {
        return Err(VerifyError::InvalidSecret);
    };
    let alternate = port_variant(url);
    let mut urls = std::iter::once(url).chain(alternate.as_deref());
    let sig_ok = urls.any(|u| {
        keys.iter().any(|key| {
            let mut mac = key.clone();
            feed(&mut mac, u, &signed);
            common::matches_any(&mac.finalize().into_bytes(), &sigs)
        })
    });
    if sig_ok && body_ok {
        Ok(VerifiedMeta {
            delivery_id: delivery_id.map(str::to_owned),
            timestamp: None,
            event_type: None,
        })
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

pub(super) fn sign(
    secret: &Secret,
    input: &SignInput<'_>,
) -> Result<Vec<(HeaderName, String)>, VerifyError> {
    let url = input.url.ok_or(VerifyError::MissingUrl)?;
    if secret.expose().is_empty() {
        return Err(VerifyError::InvalidSecret);
    }
    let mut mac =
        HmacSha1::new_from_slice(secret.expose()).map_err(|_| VerifyError::InvalidSecret)?;
    let signed = if body_sha256(url)?.is_some() || input.body.is_empty() {
        Signed::UrlOnly
    } else {
        Signed::Params(
            sorted_params(input.body).ok_or(VerifyError::MalformedHeader(CONTENT_TYPE.name))?,
        )
    };
    feed(&mut mac, url, &signed);
    let sig = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        mac.finalize().into_bytes(),
    );
    let mut headers = vec![(HeaderName::from_static("x-twilio-signature"), sig)];
    if !input.id.is_empty() {
        headers.push((
            HeaderName::from_static("i-twilio-idempotency-token"),
            input.id.to_owned(),
        ));
    }
    Ok(headers)
}

fn feed(mac: &mut HmacSha1, url: &str, signed: &Signed<'_>) {
    mac.update(url.as_bytes());
    if let Signed::Params(params) = signed {
        for (name, value) in params {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
}

/// The raw `bodySHA256` query value, if the URL has one; twice is ambiguous and refused.
fn body_sha256(url: &str) -> Result<Option<&str>, VerifyError> {
    let before_fragment = url.split('#').next().unwrap_or_default();
    let Some((_, query)) = before_fragment.split_once('?') else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == BODY_SHA256 {
            if found.is_some() {
                return Err(VerifyError::MalformedSignature);
            }
            found = Some(value);
        }
    }
    Ok(found)
}

/// The form's parameters, decoded strictly (UTF-8), sorted by name then value. A form body is
/// ASCII by construction, so a body that is not UTF-8 is refused before any decoding. Names and
/// values with nothing to decode are borrowed from the body, not copied.
fn sorted_params(body: &[u8]) -> Option<Vec<(Cow<'_, str>, Cow<'_, str>)>> {
    let body = std::str::from_utf8(body).ok()?;
    let mut params = body
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((form_decode(name)?, form_decode(value)?))
        })
        .collect::<Option<Vec<_>>>()?;
    params.sort_unstable();
    Some(params)
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space; a `%` not followed by two hex
/// digits stays literal, as in the WHATWG URL standard), refusing non-UTF-8 results.
fn form_decode(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') && !raw.contains('+') {
        return Some(Cow::Borrowed(raw));
    }
    let special = |b: &u8| matches!(b, b'+' | b'%');
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some(i) = rest.iter().position(special) {
        out.extend_from_slice(&rest[..i]);
        let escaped = match rest.get(i + 1..i + 3) {
            Some(&[hi, lo]) if rest[i] == b'%' => hex_digit(hi).zip(hex_digit(lo)),
            _ => None,
        };
        match (rest[i], escaped) {
            (b'+', _) => {
                out.push(b' ');
                rest = &rest[i + 1..];
            }
            (_, Some((hi, lo))) => {
                out.push(hi << 4 | lo);
                rest = &rest[i + 3..];
            }
            _ => {
                out.push(b'%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The URL with the scheme's default port added, or removed when it is there; `None` for a
/// non-default port or a scheme other than http(s).
fn port_variant(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return None;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let (userinfo, hostport) = authority.split_at(host_start);
    match hostport
        .rfind(':')
        .filter(|&i| !hostport[i..].contains(']'))
    {
        Some(i) if &hostport[i + 1..] == default => {
            Some(format!("{scheme}://{userinfo}{}{tail}", &hostport[..i]))
        }
        Some(_) => None,
        None => Some(format!("{scheme}://{authority}:{default}{tail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variants() {
        assert_eq!(
            port_variant("https://a.example/x?y=1").as_deref(),
            Some("https://a.example:443/x?y=1")
        );
        assert_eq!(
            port_variant("https://a.example:443/x").as_deref(),
            Some("https://a.example/x")
        );
        assert_eq!(
            port_variant("http://a.example").as_deref(),
            Some("http://a.example:80")
        );
        assert_eq!(port_variant("https://a.example:8443/x"), None);
        assert_eq!(
            port_variant("https://u:p@[::1]:443/").as_deref(),
            Some("https://u:p@[::1]/")
        );
        assert_eq!(port_variant("ftp://a.example/"), None);
        assert_eq!(port_variant("not a url"), None);
    }

    #[test]
    fn form_decoding_is_strict_about_utf8_only() {
        assert_eq!(form_decode("a+b%20c%zz%4").as_deref(), Some("a b c%zz%4"));
        assert_eq!(form_decode("%C3%A9%c3%a9").as_deref(), Some("\u{e9}\u{e9}"));
        assert_eq!(form_decode("%%41%").as_deref(), Some("%A%"));
        assert!(matches!(form_decode("plain"), Some(Cow::Borrowed("plain"))));
        assert_eq!(form_decode("%FF"), None);
        assert_eq!(sorted_params(b"a=\xff"), None);
        assert_eq!(
            sorted_params(b"a=\xc3%A9"),
            None,
            "raw non-UTF-8, even if it decodes"
        );
        assert_eq!(
            sorted_params(b"b=2&a=1&&c&a=0"),
            Some(vec![
                ("a".into(), "0".into()),
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "".into()),
            ])
        );
    }

    #[test]
    fn body_hash_goes_before_the_fragment() {
        let h = hex::encode(Sha256::digest(b"{}"));
        assert_eq!(
            twilio_url_with_body_sha256("https://a/x", b"{}"),
            format!("https://a/x?bodySHA256={h}")
        );
        assert_eq!(
            twilio_url_with_body_sha256("https://a/x?q=1#f", b"{}"),
            format!("https://a/x?q=1&bodySHA256={h}#f")
        );
        assert_eq!(
            body_sha256("https://a/x?bodySHA256=1&bodySHA256=2"),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(body_sha256("https://a/x#bodySHA256=1"), Ok(None));
    }
}
