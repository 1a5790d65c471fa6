use thiserror::Error;

use crate::store::{Digest, StoreError};
use crate::transport::TransportError;
use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum ChunkedError {
    #[error("layer {layer}: no eStargz footer in its last bytes")]
    NoFooter { layer: Digest },
    #[error("layer {layer}: its footer puts the table of contents at byte {offset}, outside the {size}-byte blob")]
    FooterOutOfRange { layer: Digest, offset: u64, size: u64 },
    #[error("layer {layer}: its table of contents is unreadable")]
    TocUnreadable {
        layer: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: its table of contents is over the {limit}-byte limit")]
    TocTooLarge { layer: Digest, limit: u64 },
    #[error(
        "layer {layer}: table of contents hashes to {actual}, but the manifest announces {expected}; nothing was stored"
    )]
    TocMismatch { layer: Digest, expected: Digest, actual: Digest },
    #[error("layer {layer}: invalid table of contents: {reason}")]
    InvalidToc { layer: Digest, reason: String },
    #[error(
        "layer {}: {} of {:?} hashes to {}, not {}; nothing was stored",
        .0.layer, .0.part, .0.name, .0.actual, .0.expected
    )]
    ContentMismatch(Box<ContentMismatch>),
    #[error("layer {layer}: chunk of {name:?} at byte {offset} does not decompress")]
    ChunkUnreadable {
        layer: Digest,
        name: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: fetching bytes {start}-{end}")]
    Range {
        layer: Digest,
        start: u64,
        end: u64,
        #[source]
        source: TransportError,
    },
    #[error("layer {layer}: {url} does not serve byte ranges (answered {status} to a Range request)")]
    RangesUnsupported { layer: Digest, url: String, status: u16 },
    #[error("layer {layer}: writing the assembled layer")]
    Assemble {
        layer: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Fetched content that is not what the TOC says (boxed: errors travel by value).
#[derive(Debug)]
pub struct ContentMismatch {
    pub layer: Digest,
    /// `the chunk at byte N` or `the content`.
    pub part: String,
    pub name: String,
    pub expected: Digest,
    pub actual: Digest,
}

impl HasKind for ChunkedError {
    fn kind(&self) -> ErrorKind {
        match self {
            ChunkedError::NoFooter { .. }
            | ChunkedError::FooterOutOfRange { .. }
            | ChunkedError::TocUnreadable { .. }
            | ChunkedError::TocTooLarge { .. }
            | ChunkedError::InvalidToc { .. }
            | ChunkedError::ChunkUnreadable { .. } => ErrorKind::Invalid,
            ChunkedError::TocMismatch { .. } | ChunkedError::ContentMismatch(_) => ErrorKind::Corrupt,
            ChunkedError::Range { source, .. } => source.kind(),
            ChunkedError::RangesUnsupported { .. } => ErrorKind::Unavailable,
            ChunkedError::Assemble { .. } => ErrorKind::Io,
            ChunkedError::Store(e) => e.kind(),
        }
    }
}
