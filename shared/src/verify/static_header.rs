//! A shared token in a configured header, for senders that sign nothing (Builder.io).
//!
//! The header value must equal one of the configured secrets. Both sides are hashed with SHA-256
//! (the secrets once, when the verifier is built) and the digests compared in constant time, so
//! neither the token's bytes nor its length leak through timing. A blank value is
//! [`VerifyError::MalformedSignature`]. Since the header name is configured at run time, a
//! missing or repeated header is reported under the fixed name [`STATIC_HEADER`].

use http::HeaderName;
use sha2::{Digest, Sha256};

use super::common;
use super::{Ctx, Incoming, Keys, VerifiedMeta, VerifyError};

/// The name errors carry for the configured token header.
pub(super) const STATIC_HEADER: &str = "configured static token header";

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
    let digest = Sha256::digest(value.as_bytes());
    if common::matches_any(&digest, tokens) {
        Ok(VerifiedMeta::default())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}
