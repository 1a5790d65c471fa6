use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: &'static str },
    #[error("invalid {what} document: {reason}")]
    InvalidDocument { what: &'static str, reason: String },
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: &'static str, media_type: String },
    #[error("no manifest for platform {wanted} in the index; it offers: {offered}")]
    NoMatchingPlatform { wanted: String, offered: String },
}
