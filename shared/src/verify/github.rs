//! GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body. No timestamp is signed.
//!
//! `X-GitHub-Delivery` (delivery id) and `X-GitHub-Event` (event type) are reported in
//! [`VerifiedMeta`] but are not covered by the signature. The legacy SHA-1 header
//! `X-Hub-Signature` is ignored; a `X-Hub-Signature-256` value without the `sha256=` prefix is
//! [`VerifyError::NoSupportedSignature`].

use hmac::Mac;
use http::HeaderName;

use super::common::{self, Candidates, Hdr};
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const SIGNATURE: Hdr = Hdr::new("X-Hub-Signature-256", "x-hub-signature-256");
const DELIVERY: Hdr = Hdr::new("X-GitHub-Delivery", "x-github-delivery");
const EVENT: Hdr = Hdr::new("X-GitHub-Event", "x-github-event");

pub(super) fn verify(ctx: &Ctx<'_>, req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    let header = common::signature_str(
        common::optional_str(req.headers, &SIGNATURE)?,
        SIGNATURE.name,
    )?;
    let delivery_id = common::optional_str(req.headers, &DELIVERY)?;
    let event_type = common::optional_str(req.headers, &EVENT)?;
    let mut candidates = Candidates::<32>::new();
    if let Some(hex) = header.strip_prefix("sha256=") {
        candidates.push(common::decode_hex(hex));
    }
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
    let sig = hex::encode(mac.finalize().into_bytes());
    let mut headers = vec![(
        HeaderName::from_static("x-hub-signature-256"),
        format!("sha256={sig}"),
    )];
    if !input.id.is_empty() {
        headers.push((
            HeaderName::from_static("x-github-delivery"),
            input.id.to_owned(),
        ));
    }
    Ok(headers)
}
