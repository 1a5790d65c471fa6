use thiserror::Error;

use crate::{ErrorKind, HasKind};

/// What is wrong with a distribution point; every message names the offending part.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CimdError {
    #[error(
        "{input:?} is not a distribution point: {reason} (forms: cimd:<type>:v=0:<data>, docker://NAME[:TAG], oci-layout:PATH[:REF], oci-archive:PATH[:REF], ./image.aci)"
    )]
    Malformed { input: String, reason: String },
    #[error("distribution point type {kind:?}: version {version:?} is not supported (berth speaks v=0)")]
    UnsupportedVersion { kind: String, version: String },
    #[error("distribution point {kind}: invalid data {data:?}: {reason}")]
    InvalidData { kind: String, data: String, reason: String },
    #[error("{path}: {reason}")]
    Path { path: String, reason: String },
}

impl HasKind for CimdError {
    fn kind(&self) -> ErrorKind {
        match self {
            CimdError::Path { .. } => ErrorKind::NotFound,
            _ => ErrorKind::Usage,
        }
    }
}
