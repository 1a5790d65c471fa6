use std::path::PathBuf;

use thiserror::Error;

use crate::ErrorKind;

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("{path:?} is not under the granted path {root}")]
    Escapes { path: String, root: PathBuf },
    #[error("{path:?} not found under {root}")]
    NotFound { path: String, root: PathBuf },
    #[error("{path:?} under {root} is not a regular file")]
    NotAFile { path: String, root: PathBuf },
    #[error("no local path was granted to this handler")]
    NoLocalGrant,
    #[error("{action} {path:?} under {root}")]
    Io {
        action: &'static str,
        path: String,
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TransportError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransportError::Escapes { .. } | TransportError::NoLocalGrant => ErrorKind::Denied,
            TransportError::NotFound { .. } => ErrorKind::NotFound,
            TransportError::NotAFile { .. } => ErrorKind::Invalid,
            TransportError::Io { .. } => ErrorKind::Io,
        }
    }
}
