//! Shopify: `X-Shopify-Hmac-Sha256: <base64>` (or the newer unprefixed `Shopify-Hmac-Sha256`),
//! HMAC-SHA256 of the body. No timestamp is signed.
//!
//! The delivery id is `X-Shopify-Webhook-Id`, else `X-Shopify-Event-Id`; the topic is
//! `X-Shopify-Topic` (each also without the `X-` prefix). They are reported in
//! [`VerifiedMeta`] but are not covered by the signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use http::HeaderName;

use super::common::{self, Candidates, Hdr};
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const SIGNATURE: Hdr = Hdr::new("X-Shopify-Hmac-Sha256", "x-shopify-hmac-sha256");
const SIGNATURE_NEW: Hdr = Hdr::new("Shopify-Hmac-Sha256", "shopify-hmac-sha256");
const IDS: [Hdr; 4] = [
    Hdr::new("X-Shopify-Webhook-Id", "x-shopify-webhook-id"),
    Hdr::new("Shopify-Webhook-Id", "shopify-webhook-id"),
    Hdr::new("X-Shopify-Event-Id", "x-shopify-event-id"),
    Hdr::new("Shopify-Event-Id", "shopify-event-id"),
];
const TOPICS: [Hdr; 2] = [
    Hdr::new("X-Shopify-Topic", "x-shopify-topic"),
    Hdr::new("Shopify-Topic", "shopify-topic"),
];

pub(super) fn verify(ctx: &Ctx<'_>, req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    let header = common::signature_str(
        common::first_present(req.headers, &[SIGNATURE, SIGNATURE_NEW])?,
        SIGNATURE.name,
    )?;
    let delivery_id = common::first_present(req.headers, &IDS)?;
    let event_type = common::first_present(req.headers, &TOPICS)?;
    let mut candidates = Candidates::<32>::new();
    candidates.push(common::decode_b64(header));
    let sigs = candidates.into_sigs()?;
    common::match_sha256(ctx, &sigs, |mac| mac.update(req.body))?;
    Ok(VerifiedMeta {
        delivery_id: delivery_id.map(str::to_owned),
        timestamp: None,
        event_type: event_type.map(str::to_owned),
    })
}

pub(super) fn sign(
    secret: &Secret,
    input: &SignInput<'_>,
) -> Result<Vec<(HeaderName, String)>, VerifyError> {
    let mut mac = common::signing_mac(secret.expose())?;
    mac.update(input.body);
    let sig = STANDARD.encode(mac.finalize().into_bytes());
    let mut headers = vec![(HeaderName::from_static("x-shopify-hmac-sha256"), sig)];
    if !input.id.is_empty() {
        headers.push((
            HeaderName::from_static("x-shopify-webhook-id"),
            input.id.to_owned(),
        ));
    }
    Ok(headers)
}
