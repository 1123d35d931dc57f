//! Paddle Billing: `Paddle-Signature: ts=<unix secs>;h1=<hex>[;h1=<hex>...]`.
//!
//! The MAC is HMAC-SHA256 keyed with the endpoint secret over `{ts}:{body}`. Every `h1` is tried
//! (Paddle sends several while a secret rotates); other keys are ignored. `ts` must appear
//! exactly once and lie within the tolerance. Items are separated by `;`; blanks around an item
//! are ignored; an item without `=` makes the header malformed.

use hmac::Mac;
use http::HeaderName;

use super::common::{self, Candidates, Hdr};
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const SIGNATURE: Hdr = Hdr::new("Paddle-Signature", "paddle-signature");

pub(super) fn verify(ctx: &Ctx<'_>, req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    let header = common::signature_str(
        common::optional_str(req.headers, &SIGNATURE)?,
        SIGNATURE.name,
    )?;
    let mut t = None;
    let mut candidates = Candidates::<32>::new();
    for item in header.split(';').map(str::trim) {
        let (key, value) = item
            .split_once('=')
            .ok_or(VerifyError::MalformedHeader(SIGNATURE.name))?;
        match key {
            "ts" if t.is_some() => return Err(VerifyError::MalformedHeader(SIGNATURE.name)),
            "ts" => t = Some(value),
            "h1" => candidates.push(common::decode_hex(value)),
            _ => {}
        }
    }
    let raw_ts = t.ok_or(VerifyError::MalformedHeader(SIGNATURE.name))?;
    let ts = common::parse_timestamp(raw_ts)?;
    common::check_tolerance(ctx, ts)?;
    let sigs = candidates.into_sigs()?;
    common::match_sha256(ctx, &sigs, |mac| {
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
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(input.body);
    let sig = hex::encode(mac.finalize().into_bytes());
    Ok(vec![(
        HeaderName::from_static("paddle-signature"),
        format!("ts={ts};h1={sig}"),
    )])
}
