//! static header scheme (stub, being written).

use http::HeaderName;

use super::{Ctx, Incoming, VerifiedMeta, VerifyError};

pub(super) fn verify(_ctx: &Ctx<'_>, _header: &HeaderName, _req: &Incoming<'_>) -> Result<VerifiedMeta, VerifyError> {
    Err(VerifyError::SignatureMismatch)
}
