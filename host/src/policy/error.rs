use thiserror::Error;

use crate::sandbox::SandboxError;
use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("creating the policy engine")]
    Engine(#[source] wasmtime::Error),
    #[error("policy component {source_name} cannot be loaded")]
    Compile {
        source_name: String,
        #[source]
        source: Box<SandboxError>,
    },
    #[error("policy component {source_name} does not fit the berth:policy world")]
    Link {
        source_name: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error(
        "policy component {source_name} imports {}; a policy may import only berth:policy/log",
        imports.join(", ")
    )]
    Imports { source_name: String, imports: Vec<String> },
    #[error("policy {policy} denies {subject} ({stage}): {}", reasons.join("; "))]
    Denied { policy: String, stage: &'static str, subject: String, reasons: Vec<String> },
}

impl HasKind for PolicyError {
    fn kind(&self) -> ErrorKind {
        match self {
            PolicyError::Denied { .. } => ErrorKind::Denied,
            PolicyError::Engine(_)
            | PolicyError::Compile { .. }
            | PolicyError::Link { .. }
            | PolicyError::Imports { .. } => ErrorKind::Invalid,
        }
    }
}
