use thiserror::Error;

use crate::ErrorKind;

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("creating the policy engine: {0:#}")]
    Engine(#[source] wasmtime::Error),
    #[error("policy component {source_name}: {reason}")]
    Component { source_name: String, reason: String },
    #[error(
        "policy component {source_name} imports {}; a policy may import only berth:policy/log",
        imports.join(", ")
    )]
    Imports { source_name: String, imports: Vec<String> },
    #[error("reading the policy file {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("policy {policy} denies {subject} ({stage}): {}", reasons.join("; "))]
    Denied { policy: String, stage: &'static str, subject: String, reasons: Vec<String> },
}

impl PolicyError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PolicyError::Denied { .. } => ErrorKind::Denied,
            PolicyError::File { .. } => ErrorKind::Usage,
            PolicyError::Engine(_) | PolicyError::Component { .. } | PolicyError::Imports { .. } => ErrorKind::Invalid,
        }
    }
}
