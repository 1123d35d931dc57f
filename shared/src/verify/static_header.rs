//! A shared token in a configured header, for senders that sign nothing (Builder.io).
//!
//! The header value must equal one of the configured secrets. Both sides are hashed with SHA-256
//! (the secrets once, when the verifier is built) and the digests compared in constant time, so
//! neither the token's bytes nor its length leak through timing. A blank value is
//! [`VerifyError::MalformedSignature`]. Since the header name is configured at run time, a
//! missing or repeated header is reported under the fixed name [`STATIC_HEADER`].
//!
//! When the configured header is `Authorization`, the value may also be `Bearer <token>` (the
//! scheme word in any letter case, one space), compared as `<token>`: a sender configured with
//! `Authorization: Bearer <secret>` verifies against the secret alone, and a secret configured as
//! the whole `Bearer <secret>` value still matches the header as sent. [`sign`] sends
//! `Authorization: Bearer <secret>`, as such a sender does. Whether a value carries the prefix is
//! no secret; the token itself is still only compared through its digest.

use http::HeaderName;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use super::common;
use super::{Ctx, Incoming, Keys, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

/// The name errors carry for the configured token header.
pub(super) const STATIC_HEADER: &str = "configured static token header";

/// The authentication scheme word an `Authorization` value may carry before the token.
const BEARER: &[u8] = b"bearer ";

pub(super) fn verify(
    ctx: &Ctx<'_>,
    header: &HeaderName,
    req: &Incoming<'_>,
) -> Result<VerifiedMeta, VerifyError> {
    let mut values = req.headers.get_all(header).iter();
    let value = values
        .next()
        .ok_or(VerifyError::MissingHeader(STATIC_HEADER))?;
    if values.next().is_some() {
        return Err(VerifyError::RepeatedHeader(STATIC_HEADER));
    }
    if value.as_bytes().iter().all(u8::is_ascii_whitespace) {
        return Err(VerifyError::MalformedSignature);
    }
    let Keys::Token(tokens) = ctx.keys else {
        return Err(VerifyError::InvalidSecret);
    };
    let value = value.as_bytes();
    let matches = |token: &[u8]| common::matches_any(&Sha256::digest(token), tokens);
    let bearer = (header == AUTHORIZATION)
        .then(|| bearer_token(value))
        .flatten();
    if matches(value) || bearer.is_some_and(matches) {
        Ok(VerifiedMeta::default())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// The token of an `Authorization: Bearer <token>` value (`Bearer` in any letter case).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(BEARER.len())?;
    scheme.eq_ignore_ascii_case(BEARER).then_some(token)
}

/// The header a sender configured with this token adds: `Authorization: Bearer <secret>` for
/// the `Authorization` header (unless the secret already is a whole `Bearer ...` value), the
/// secret itself for any other header.
pub(super) fn sign(
    header: &HeaderName,
    secret: &Secret,
    _input: &SignInput<'_>,
) -> Result<Vec<(HeaderName, String)>, VerifyError> {
    let token =
        String::from_utf8(secret.expose().to_vec()).map_err(|_| VerifyError::InvalidSecret)?;
    let value = if header == AUTHORIZATION && bearer_token(token.as_bytes()).is_none() {
        format!("Bearer {token}")
    } else {
        token
    };
    Ok(vec![(header.clone(), value)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::{HeaderMap, HeaderValue};

    use super::super::{Scheme, Verifier, sign as sign_with};
    use super::*;
    use crate::secret::Secrets;

    const LOCAL: &str = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=";

    fn check(header: HeaderName, configured: &str, sent: &str) -> Result<(), VerifyError> {
        let scheme = Scheme::StaticHeader {
            header: header.clone(),
        };
        let v = Verifier::new(scheme, Secrets::parse_list(configured).unwrap(), 300).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header, HeaderValue::from_str(sent).unwrap());
        v.verify(&Incoming {
            headers: &headers,
            body: b"{}",
            url: None,
        })
        .map(|_| ())
    }

    #[test]
    fn authorization_takes_the_bare_token_or_bearer_and_the_token() {
        for sent in [
            LOCAL.to_owned(),
            format!("Bearer {LOCAL}"),
            format!("bearer {LOCAL}"),
            format!("BEARER {LOCAL}"),
        ] {
            assert_eq!(check(AUTHORIZATION, LOCAL, &sent), Ok(()), "{sent}");
        }
        // A secret configured as the whole header value matches the header as sent.
        let whole = format!("Bearer {LOCAL}");
        assert_eq!(check(AUTHORIZATION, &whole, &whole), Ok(()));
        for wrong in [
            format!("Bearer  {LOCAL}"),
            format!("Basic {LOCAL}"),
            format!("Bearer{LOCAL}"),
            "Bearer ".to_owned() + "x",
            format!("Bearer Bearer {LOCAL}"),
        ] {
            assert_eq!(
                check(AUTHORIZATION, LOCAL, &wrong),
                Err(VerifyError::SignatureMismatch),
                "{wrong}"
            );
        }
    }

    #[test]
    fn other_headers_compare_the_whole_value() {
        let h = HeaderName::from_static("x-builder-token");
        assert_eq!(check(h.clone(), LOCAL, LOCAL), Ok(()));
        assert_eq!(
            check(h, LOCAL, &format!("Bearer {LOCAL}")),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn signing_sends_what_a_configured_sender_sends_and_it_verifies() {
        let input = SignInput {
            body: b"{}",
            timestamp: 0,
            id: "",
            url: None,
        };
        let auth = Scheme::StaticHeader {
            header: AUTHORIZATION,
        };
        let headers = sign_with(&auth, &Secret::new(LOCAL), &input).unwrap();
        assert_eq!(headers, [(AUTHORIZATION, format!("Bearer {LOCAL}"))]);
        assert_eq!(check(AUTHORIZATION, LOCAL, &headers[0].1), Ok(()));
        let whole = format!("Bearer {LOCAL}");
        let headers = sign_with(&auth, &Secret::new(whole.clone()), &input).unwrap();
        assert_eq!(headers[0].1, whole, "no second Bearer");
        let other = Scheme::StaticHeader {
            header: HeaderName::from_static("x-token"),
        };
        let headers = sign_with(&other, &Secret::new(LOCAL), &input).unwrap();
        assert_eq!(headers[0].1, LOCAL);
    }
}
