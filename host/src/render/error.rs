use std::path::PathBuf;

use thiserror::Error;

use crate::store::{Digest, StoreError};
use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum RenderError {
    /// A layer entry tried to reach outside the rootfs, or is otherwise malformed in a
    /// way that only a hostile or broken layer produces.
    #[error("layer {layer}: entry {entry:?} rejected: {reason}")]
    Hostile { layer: Digest, entry: String, reason: String },
    #[error("layer {layer}: entry {entry:?}: {action}")]
    Entry {
        layer: Digest,
        entry: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The layer's tar stream ends inside an entry's data: truncated (a stream cut at an
    /// entry boundary is read as complete, as Go's reader reads it).
    #[error("layer {layer}: the tar stream ends inside entry {entry:?}: the layer is truncated")]
    Truncated { layer: Digest, entry: String },
    #[error("layer {layer}: reading the tar stream")]
    Tar {
        layer: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: uncompressed digest is {actual}, the image says {expected}; the rootfs was discarded")]
    DiffIdMismatch { layer: Digest, expected: Digest, actual: Digest },
    #[error("layer {layer}: media type {media_type:?} is not a tar layer berth can unpack")]
    UnsupportedMediaType { layer: Digest, media_type: String },
    #[error(
        "layer {layer}: entry {entry:?} is a hardlink to {target:?} in a lower layer, which a snapshot cannot hold; render with --no-overlay"
    )]
    LowerHardlink { layer: Digest, entry: String, target: String },
    /// An entry EROFS cannot hold (a name longer than 255 bytes, an xattr outside the
    /// user/trusted/security namespaces and POSIX ACLs, a value over 64 KiB).
    #[error("layer {layer}: entry {entry:?} cannot be stored in an EROFS snapshot: {reason}")]
    NotStorable { layer: Digest, entry: String, reason: String },
    /// A snapshot waited for the snapshots below it, and one of them failed.
    #[error("layer {layer}: a lower layer's snapshot could not be made")]
    LowerFailed { layer: Digest },
    #[error("EROFS image {path} is damaged: {reason}")]
    BadImage { path: PathBuf, reason: String },
    #[error("EROFS snapshots are unavailable ({reason}); unset BERTH_SNAPSHOTTER to fall back to directories")]
    ErofsUnavailable { reason: String },
    #[error("BERTH_SNAPSHOTTER={0:?} is not a snapshot form: use dir, erofs or auto")]
    UnknownSnapshotter(String),
    #[error("render target {0} already exists and is not an empty directory")]
    TargetExists(PathBuf),
    #[error("berth has no inventory of {0}: only trees written by `berth image render` or `extract` can be verified")]
    NoInventory(PathBuf),
    #[error("mounting the overlay rootfs at {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An appc dependency that is not in the store, or does not match, or loops.
    #[error("appc image {image}: dependency {dependency}: {reason}")]
    Dependency { image: String, dependency: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HasKind for RenderError {
    fn kind(&self) -> ErrorKind {
        match self {
            RenderError::Hostile { .. } | RenderError::UnsupportedMediaType { .. } => ErrorKind::Invalid,
            RenderError::LowerHardlink { .. } | RenderError::NotStorable { .. } => ErrorKind::Invalid,
            RenderError::BadImage { .. } => ErrorKind::Corrupt,
            RenderError::DiffIdMismatch { .. } | RenderError::Truncated { .. } => ErrorKind::Corrupt,
            // A layer the store verified but that does not decompress or parse as tar is
            // damaged content; an error of the system reading it is I/O.
            RenderError::Tar { source, .. } if !has_os_error(source) => ErrorKind::Corrupt,
            RenderError::LowerFailed { .. } => ErrorKind::Io,
            RenderError::TargetExists(_) | RenderError::UnknownSnapshotter(_) => ErrorKind::Usage,
            RenderError::ErofsUnavailable { .. } => ErrorKind::Unavailable,
            RenderError::NoInventory(_) => ErrorKind::NotFound,
            RenderError::Dependency { .. } => ErrorKind::Invalid,
            RenderError::Mount { .. } => ErrorKind::Unavailable,
            RenderError::Entry { .. } | RenderError::Tar { .. } | RenderError::Io { .. } => ErrorKind::Io,
            RenderError::Store(e) => e.kind(),
        }
    }
}

/// Does an I/O error come from the system (an errno anywhere in its chain) rather than
/// from a decoder or the tar reader finding the bytes wrong?
fn has_os_error(e: &std::io::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.raw_os_error().is_some() {
                return true;
            }
            // A wrapped io::Error is the payload, not the source, of its wrapper.
            if io.get_ref().and_then(|inner| inner.downcast_ref::<std::io::Error>()).is_some_and(has_os_error) {
                return true;
            }
        }
        // tar's error type gives the io::Error it met as its source.
        current = err.source();
    }
    false
}

/// Attach the action and path to an io::Error.
pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RenderError {
    let path = path.into();
    move |source| RenderError::Io { action, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_stream_is_corrupt_and_a_failing_disk_is_io() {
        let layer = Digest::of_bytes(crate::store::Algorithm::Sha256, b"l");
        let tar = |source| RenderError::Tar { layer: layer.clone(), source };
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "unexpected end of file");
        assert_eq!(tar(eof).kind(), ErrorKind::Corrupt);
        assert_eq!(tar(std::io::Error::from_raw_os_error(libc::EIO)).kind(), ErrorKind::Io);
        let wrapped = std::io::Error::other(std::io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(tar(wrapped).kind(), ErrorKind::Io);
    }
}
