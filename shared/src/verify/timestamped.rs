//! The header shape Stripe and Paddle share: one item naming the signed Unix time and any number
//! of hex HMAC-SHA256 signatures, `key=value` items split by one separator; the MAC covers
//! `{time}{separator}{body}`. Each of those schemes is one [`TimestampedHex`] value.
//!
//! The time key must appear exactly once and lie within the tolerance; every signature item is
//! tried (senders send one per active secret while a secret rolls); other keys are ignored;
//! blanks around an item are ignored; an item without `=` makes the header malformed.

use hmac::Mac;
use http::HeaderName;

use super::common::{self, Candidates, Hdr};
use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

/// One scheme of this shape.
pub(super) struct TimestampedHex {
    /// The signature header.
    pub header: Hdr,
    /// Separator between items (`,` for Stripe, `;` for Paddle).
    pub item_sep: char,
    /// Key of the time item (`t`, `ts`).
    pub time_key: &'static str,
    /// Key of a signature item (`v1`, `h1`).
    pub sig_key: &'static str,
    /// What joins the time and the body in the signed string (`.`, `:`).
    pub mac_sep: &'static [u8],
}

impl TimestampedHex {
    pub(super) fn verify(
        &self,
        ctx: &Ctx<'_>,
        req: &Incoming<'_>,
    ) -> Result<VerifiedMeta, VerifyError> {
        let name = self.header.name;
        let header = common::signature_str(common::optional_str(req.headers, &self.header)?, name)?;
        let mut t = None;
        let mut candidates = Candidates::<32>::new();
        for item in header.split(self.item_sep).map(str::trim) {
            let (key, value) = item
                .split_once('=')
                .ok_or(VerifyError::MalformedHeader(name))?;
            if key == self.time_key {
                if t.replace(value).is_some() {
                    return Err(VerifyError::MalformedHeader(name));
                }
            } else if key == self.sig_key {
                candidates.push(common::decode_hex(value));
            }
        }
        let raw_ts = t.ok_or(VerifyError::MalformedHeader(name))?;
        let ts = common::parse_timestamp(raw_ts)?;
        common::check_tolerance(ctx, ts)?;
        let sigs = candidates.into_sigs()?;
        common::match_sha256(ctx, &sigs, |mac| {
            mac.update(raw_ts.as_bytes());
            mac.update(self.mac_sep);
            mac.update(req.body);
        })?;
        Ok(VerifiedMeta {
            delivery_id: None,
            timestamp: Some(ts),
            event_type: None,
        })
    }

    pub(super) fn sign(
        &self,
        secret: &Secret,
        input: &SignInput<'_>,
    ) -> Result<Vec<(HeaderName, String)>, VerifyError> {
        let mut mac = common::signing_mac(secret.expose())?;
        let ts = input.timestamp.to_string();
        mac.update(ts.as_bytes());
        mac.update(self.mac_sep);
        mac.update(input.body);
        let sig = hex::encode(mac.finalize().into_bytes());
        Ok(vec![(
            self.header.key.clone(),
            format!(
                "{}={ts}{}{}={sig}",
                self.time_key, self.item_sep, self.sig_key
            ),
        )])
    }
}
