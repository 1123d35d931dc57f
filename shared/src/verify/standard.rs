//! Standard Webhooks (Svix, Clerk, Resend, ...): `webhook-id`, `webhook-timestamp`,
//! `webhook-signature`, or the same three with the `svix-` prefix.
//!
//! The MAC is HMAC-SHA256 over `{id}.{timestamp}.{body}`, base64. The signature header is a
//! space-separated list of `<version>,<signature>`; every `v1` entry is tried, other versions
//! (`v1a`, asymmetric signatures) and entries without a comma are ignored. Each header is looked
//! up as `webhook-*` first, then `svix-*`, as the official libraries do; a missing one is named
//! by its `webhook-*` form.
//!
//! The secret is base64, with or without the `whsec_` prefix (the official libraries decode it
//! the same way); anything else is [`VerifyError::InvalidSecret`] when the verifier is built.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};
use hmac::Mac;
use http::{HeaderMap, HeaderName};

use super::common::{self, Candidates, Hdr};
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const ID: Hdr = Hdr::new("webhook-id", "webhook-id");
const TIMESTAMP: Hdr = Hdr::new("webhook-timestamp", "webhook-timestamp");
const SIGNATURE: Hdr = Hdr::new("webhook-signature", "webhook-signature");
const SVIX_ID: Hdr = Hdr::new("svix-id", "svix-id");
const SVIX_TIMESTAMP: Hdr = Hdr::new("svix-timestamp", "svix-timestamp");
const SVIX_SIGNATURE: Hdr = Hdr::new("svix-signature", "svix-signature");

/// Secrets are decoded whether or not their padding was kept.
const SECRET_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `webhook-<x>` if present, else `svix-<x>`, else missing under the `webhook-` name.
fn either(headers: &HeaderMap, name: Hdr, svix: Hdr) -> Result<&str, VerifyError> {
    let missing = VerifyError::MissingHeader(name.name);
    common::first_present(headers, &[name, svix])?.ok_or(missing)
}

pub(super) fn verify(ctx: &Ctx<'_>, req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    let id = either(req.headers, ID, SVIX_ID)?;
    let raw_ts = either(req.headers, TIMESTAMP, SVIX_TIMESTAMP)?;
    let header = common::signature_str(
        common::first_present(req.headers, &[SIGNATURE, SVIX_SIGNATURE])?,
        SIGNATURE.name,
    )?;
    if id.is_empty() {
        return Err(VerifyError::MalformedHeader(ID.name));
    }
    let ts = common::parse_timestamp(raw_ts)?;
    common::check_tolerance(ctx, ts)?;
    let mut candidates = Candidates::<32>::new();
    for entry in header.split(' ') {
        if let Some(("v1", sig)) = entry.split_once(',') {
            candidates.push(common::decode_b64(sig));
        }
    }
    let sigs = candidates.into_sigs()?;
    common::match_sha256(ctx, &sigs, |mac| {
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(raw_ts.as_bytes());
        mac.update(b".");
        mac.update(req.body);
    })?;
    Ok(VerifiedMeta {
        delivery_id: Some(id.to_owned()),
        timestamp: Some(ts),
        event_type: None,
    })
}

pub(super) fn sign(
    secret: &Secret,
    input: &SignInput<'_>,
) -> Result<Vec<(HeaderName, String)>, VerifyError> {
    let mut mac = common::signing_mac(&key(secret)?)?;
    let ts = input.timestamp.to_string();
    mac.update(input.id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(input.body);
    let sig = STANDARD.encode(mac.finalize().into_bytes());
    Ok(vec![
        (ID.key, input.id.to_owned()),
        (TIMESTAMP.key, ts),
        (SIGNATURE.key, format!("v1,{sig}")),
    ])
}

/// The MAC key: the base64 after an optional `whsec_` prefix.
pub(super) fn key(secret: &Secret) -> Result<Vec<u8>, VerifyError> {
    let raw = secret.expose();
    let b64 = raw.strip_prefix(b"whsec_").unwrap_or(raw);
    match SECRET_B64.decode(b64) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(VerifyError::InvalidSecret),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_prefix_is_optional_and_padding_indifferent() {
        let with = key(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).expect("key");
        let without = key(&Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).expect("key");
        assert_eq!(with, without);
        assert_eq!(with.len(), 24);
        assert_eq!(key(&Secret::new("whsec_AAE")).expect("key"), vec![0, 1]);
        assert_eq!(key(&Secret::new("whsec_AAE=")).expect("key"), vec![0, 1]);
    }

    #[test]
    fn unusable_secrets_are_refused() {
        for bad in ["whsec_", "", "whsec_not base64!", "plain-text-secret!"] {
            assert_eq!(
                key(&Secret::new(bad)),
                Err(VerifyError::InvalidSecret),
                "{bad}"
            );
        }
    }
}
