//! slack scheme (stub, being written).

use http::HeaderName;

use super::{Ctx, Incoming, SignInput, VerifiedMeta, VerifyError};
use crate::secret::Secret;

pub(super) fn verify(_ctx: &Ctx<'_>, _req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    Err(VerifyError::SignatureMismatch)
}

pub(super) fn sign(_secret: &Secret, _input: &SignInput<'_>) -> Result<Vec<(HeaderName, String)>, VerifyError> {
    Err(VerifyError::InvalidSecret)
}
