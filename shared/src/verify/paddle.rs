//! Paddle Billing: `Paddle-Signature: ts=<unix secs>;h1=<hex>[;h1=<hex>...]`.
//!
//! The MAC is HMAC-SHA256 keyed with the endpoint secret over `{ts}:{body}`. Every `h1` is tried
//! (Paddle sends several while a secret rotates); other keys are ignored. `ts` must appear
//! exactly once and lie within the tolerance. Items are separated by `;`; blanks around an item
//! are ignored; an item without `=` makes the header malformed.

use http::HeaderName;

use super::common::Hdr;
use super::timestamped::TimestampedHex;
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const SCHEME: TimestampedHex = TimestampedHex {
    header: Hdr::new("Paddle-Signature", "paddle-signature"),
    item_sep: ';',
    time_key: "ts",
    sig_key: "h1",
    mac_sep: b":",
};

pub(super) fn verify(ctx: &Ctx<'_>, req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    SCHEME.verify(ctx, req)
}

pub(super) fn sign(
    secret: &Secret,
    input: &SignInput<'_>,
) -> Result<Vec<(HeaderName, String)>, VerifyError> {
    SCHEME.sign(secret, input)
}
