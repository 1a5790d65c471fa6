//! Host implementations of the handler world's imports, one file per interface, each
//! on the narrow context of its capability.

mod log;
mod store;
mod transport;

pub use log::LogCtx;
pub use store::{IngestStats, StoreCtx};
pub use transport::TransportCtx;

use super::bindings::berth::handler::types::{Error as WitError, Mismatch};
use crate::store::StoreError;
use crate::transport::TransportError;
use crate::{ErrorKind, HasKind};

fn transport_error(e: TransportError) -> WitError {
    let msg = crate::error_chain(&e);
    if let TransportError::Status { status: 401 | 403, .. } | TransportError::Token { .. } = e {
        return WitError::Unauthorized(msg);
    }
    match e.kind() {
        ErrorKind::Denied => WitError::Denied(msg),
        ErrorKind::NotFound => WitError::NotFound(msg),
        ErrorKind::Invalid | ErrorKind::Usage => WitError::InvalidInput(msg),
        ErrorKind::Unavailable => WitError::Unavailable(msg),
        _ => WitError::Io(msg),
    }
}

fn store_error(e: StoreError) -> WitError {
    let msg = crate::error_chain(&e);
    match e {
        StoreError::DigestMismatch { subject, expected, actual } => {
            WitError::DigestMismatch(Mismatch { expected: expected.to_string(), actual: actual.to_string(), subject })
        }
        StoreError::SizeMismatch { subject, expected, actual } => WitError::DigestMismatch(Mismatch {
            expected: format!("{expected} bytes"),
            actual: format!("{actual} bytes"),
            subject,
        }),
        StoreError::BlobNotFound(_) | StoreError::ImageNotFound(_) => WitError::NotFound(msg),
        StoreError::InvalidDigest { .. } => WitError::InvalidInput(msg),
        StoreError::TooLarge { .. } => WitError::Denied(msg),
        _ => WitError::Io(msg),
    }
}

/// A partial pull's failure, as the guest sees it: mismatches keep what was expected.
fn chunked_error(e: crate::chunked::ChunkedError) -> WitError {
    use crate::chunked::ChunkedError;
    let msg = crate::error_chain(&e);
    match e {
        ChunkedError::TocMismatch { expected, actual, .. } => WitError::DigestMismatch(Mismatch {
            expected: expected.to_string(),
            actual: actual.to_string(),
            subject: msg,
        }),
        ChunkedError::ContentMismatch(m) => WitError::DigestMismatch(Mismatch {
            expected: m.expected.to_string(),
            actual: m.actual.to_string(),
            subject: msg,
        }),
        ChunkedError::Store(e) => store_error(e),
        // The transport's kind, with the whole chain (layer and byte range) as message.
        ChunkedError::Range { source, .. } => match transport_error(source) {
            WitError::Unauthorized(_) => WitError::Unauthorized(msg),
            WitError::Denied(_) => WitError::Denied(msg),
            WitError::NotFound(_) => WitError::NotFound(msg),
            WitError::InvalidInput(_) => WitError::InvalidInput(msg),
            WitError::Unavailable(_) => WitError::Unavailable(msg),
            _ => WitError::Io(msg),
        },
        e => match e.kind() {
            ErrorKind::Invalid => WitError::InvalidInput(msg),
            ErrorKind::Unavailable => WitError::Unavailable(msg),
            _ => WitError::Io(msg),
        },
    }
}
