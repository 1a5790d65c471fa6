use std::path::PathBuf;

use thiserror::Error;

use super::Digest;
use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: &'static str },
    #[error("blob {0} not found in store")]
    BlobNotFound(Digest),
    #[error("{subject}: expected digest {expected}, got {actual}; nothing was stored")]
    DigestMismatch { subject: String, expected: Digest, actual: Digest },
    #[error("{subject}: expected {expected} bytes, got {actual}; nothing was stored")]
    SizeMismatch { subject: String, expected: u64, actual: u64 },
    #[error("{subject}: larger than the {limit}-byte limit; nothing was stored")]
    TooLarge { subject: String, limit: u64 },
    #[error("no image matches {0:?} (try `berth image list`)")]
    ImageNotFound(String),
    #[error("{query:?} matches several images: {matches}")]
    AmbiguousImage { query: String, matches: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the source of {subject}")]
    Source {
        subject: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store database {path} has schema version {found}, newer than this berth ({supported}); upgrade berth")]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("stored image record for {digest} is unreadable")]
    CorruptRecord {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::InvalidDigest { .. } => ErrorKind::Invalid,
            StoreError::BlobNotFound(_) | StoreError::ImageNotFound(_) => ErrorKind::NotFound,
            StoreError::AmbiguousImage { .. } => ErrorKind::Usage,
            StoreError::DigestMismatch { .. } | StoreError::SizeMismatch { .. } => ErrorKind::Corrupt,
            StoreError::TooLarge { .. } => ErrorKind::Invalid,
            StoreError::CorruptRecord { .. } => ErrorKind::Corrupt,
            StoreError::Io { .. } | StoreError::Source { .. } | StoreError::Database { .. } => ErrorKind::Io,
            StoreError::SchemaTooNew { .. } => ErrorKind::Unavailable,
        }
    }
}

/// Attach the action and path to an io::Error.
pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { action, path, source }
}
