//! Stripe: `Stripe-Signature: t=<unix secs>,v1=<hex>[,v1=<hex>...][,v0=...]`.
//!
//! The MAC is HMAC-SHA256 keyed with the whole `whsec_...` string as bytes, over
//! `{t}.{body}`. Every `v1` is tried (Stripe sends one per active secret while a secret rolls);
//! `v0` and any other scheme are ignored. `t` must appear exactly once and lie within the
//! tolerance. Items are separated by `,`; blanks around an item are ignored; an item without `=`
//! makes the header malformed.

use http::HeaderName;

use super::common::Hdr;
use super::timestamped::TimestampedHex;
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

const SCHEME: TimestampedHex = TimestampedHex {
    header: Hdr::new("Stripe-Signature", "stripe-signature"),
    item_sep: ',',
    time_key: "t",
    sig_key: "v1",
    mac_sep: b".",
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
