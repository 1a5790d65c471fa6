use thiserror::Error;

/// What can be wrong with appc input. Every case is malformed input to the handlers
/// (`invalid-input`); the message names the field or the label at fault.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AppcError {
    #[error("invalid ACI image manifest: {field}: {reason}")]
    InvalidManifest { field: String, reason: String },
    #[error("invalid appc distribution point {point:?}: {reason}")]
    InvalidPoint { point: String, reason: String },
    #[error("the image manifest names {found:?}, not the {asked:?} asked for")]
    NameMismatch { asked: String, found: String },
    #[error("label {label}: asked for {asked:?}, the image manifest of {name} has {}", found.as_ref().map_or("no such label".to_string(), |f| format!("{f:?}")))]
    LabelMismatch { name: String, label: String, asked: String, found: Option<String> },
}

impl AppcError {
    pub(crate) fn manifest(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AppcError::InvalidManifest { field: field.into(), reason: reason.into() }
    }
}
