//! Slack: `X-Slack-Signature: v0=<hex>` and `X-Slack-Request-Timestamp: <unix secs>`.
//!
//! The MAC is HMAC-SHA256 keyed with the signing secret over `v0:{timestamp}:{body}`. Slack sends
//! one signature; a value of another version (no `v0=` prefix) is
//! [`VerifyError::NoSupportedSignature`]. The timestamp must lie within the tolerance.

use hmac::Mac;
use http::HeaderName;

use super::common::{self, Candidates, Hdr};
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const SIGNATURE: Hdr = Hdr::new("X-Slack-Signature", "x-slack-signature");
const TIMESTAMP: Hdr = Hdr::new("X-Slack-Request-Timestamp", "x-slack-request-timestamp");

pub(super) fn verify(ctx: &Ctx<'_>, req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    let header = common::signature_str(
        common::optional_str(req.headers, &SIGNATURE)?,
        SIGNATURE.name,
    )?;
    let raw_ts = common::required_str(req.headers, &TIMESTAMP)?;
    let ts = common::parse_timestamp(raw_ts)?;
    common::check_tolerance(ctx, ts)?;
    let mut candidates = Candidates::<32>::new();
    if let Some(hex) = header.strip_prefix("v0=") {
        candidates.push(common::decode_hex(hex));
    }
    let sigs = candidates.into_sigs()?;
    common::match_sha256(ctx, &sigs, |mac| {
        mac.update(b"v0:");
        mac.update(raw_ts.as_bytes());
        mac.update(b":");
        mac.update(req.body);
    })?;
    Ok(VerifiedMeta {
        delivery_id: None,
        timestamp: Some(ts),
        event_type: None,
    })
}

pub(super) fn sign(
    secret: &Secret,
    input: &SignInput<'_>,
) -> Result<Vec<(HeaderName, String)>, VerifyError> {
    let mut mac = common::signing_mac(secret.expose())?;
    let ts = input.timestamp.to_string();
    mac.update(b"v0:");
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(input.body);
    let sig = hex::encode(mac.finalize().into_bytes());
    Ok(vec![
        (
            HeaderName::from_static("x-slack-signature"),
            format!("v0={sig}"),
        ),
        (HeaderName::from_static("x-slack-request-timestamp"), ts),
    ])
}
