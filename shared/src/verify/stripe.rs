//! Stripe: `Stripe-Signature: t=<unix secs>,v1=<hex>[,v1=<hex>...][,v0=...]`.
//!
//! The MAC is HMAC-SHA256 keyed with the whole `whsec_...` string as bytes, over
//! `{t}.{body}`. Every `v1` is tried (Stripe sends one per active secret while a secret rolls);
//! `v0` and any other scheme are ignored. `t` must appear exactly once and lie within the
//! tolerance. Items are separated by `,`; blanks around an item are ignored; an item without `=`
//! makes the header malformed.

use hmac::Mac;
use http::HeaderName;

use super::common::{self, Candidates, Hdr};
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const SIGNATURE: Hdr = Hdr::new("Stripe-Signature", "stripe-signature");

pub(super) fn verify(ctx: &Ctx<'_>, req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    let header = common::signature_str(
        common::optional_str(req.headers, &SIGNATURE)?,
        SIGNATURE.name,
    )?;
    let mut t = None;
    let mut candidates = Candidates::<32>::new();
    for item in header.split(',').map(str::trim) {
        let (key, value) = item
            .split_once('=')
            .ok_or(VerifyError::MalformedHeader(SIGNATURE.name))?;
        match key {
            "t" if t.is_some() => return Err(VerifyError::MalformedHeader(SIGNATURE.name)),
            "t" => t = Some(value),
            "v1" => candidates.push(common::decode_hex(value)),
            _ => {}
        }
    }
    let raw_ts = t.ok_or(VerifyError::MalformedHeader(SIGNATURE.name))?;
    let ts = common::parse_timestamp(raw_ts)?;
    common::check_tolerance(ctx, ts)?;
    let sigs = candidates.into_sigs()?;
    common::match_sha256(ctx, &sigs, |mac| {
        mac.update(raw_ts.as_bytes());
        mac.update(b".");
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
    mac.update(b".");
    mac.update(input.body);
    let sig = hex::encode(mac.finalize().into_bytes());
    Ok(vec![(
        HeaderName::from_static("stripe-signature"),
        format!("t={ts},v1={sig}"),
    )])
}
