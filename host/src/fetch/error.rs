use thiserror::Error;

use super::dropin::DropInError;
use crate::cimd::CimdError;
use crate::policy::PolicyError;
use crate::sandbox::{HandlerError, SandboxError};
use crate::store::StoreError;
use crate::{ErrorKind, HasKind};

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("no handler for distribution point type {kind:?} (available: {available})")]
    NoHandler { kind: String, available: String },
    #[error(
        "{path}: no such file or directory (check the path in the distribution point; `berth fetch --help` shows the forms)"
    )]
    SourceNotFound { path: String },
    #[error("fetching {point}: {}{}", describe(.error), hint(.error))]
    Handler { point: String, error: HandlerError },
    #[error("handler {handler} returned an unusable image record: {reason}")]
    BadRecord { handler: String, reason: String },
    #[error("{point} is not in the store, and --pull-policy=never forbids fetching it")]
    NeverPull { point: String },
    #[error("{image}: dependency {dependency}")]
    Dependency {
        image: String,
        dependency: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("{image}: dependency {dependency}: {reason}")]
    BadDependency { image: String, dependency: String, reason: String },
    #[error("{image}: dependency {dependency} is not a valid appc name")]
    DependencyName {
        image: String,
        dependency: String,
        #[source]
        source: CimdError,
    },
    #[error(
        "{image}: its signature at {url} cannot be read; sign the ACI (gpg --armor --detach-sign) or fetch with --insecure-options=image"
    )]
    SignatureUnreadable {
        image: String,
        url: String,
        #[source]
        source: Box<super::appc::SignatureSourceError>,
    },
    #[error(transparent)]
    Point(#[from] CimdError),
    #[error(
        "{image}: no signature{}: {reason}; sign the ACI (gpg --armor --detach-sign) or fetch with --insecure-options=image",
        if url.is_empty() { String::new() } else { format!(" at {url}") }
    )]
    Unsigned { image: String, url: String, reason: String },
    #[error("{image}: signature verification failed")]
    Trust {
        image: String,
        #[source]
        source: Box<crate::trust::TrustError>,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    DropIn(#[from] DropInError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stopped waiting for the lazily pulled layers of {image}; the image was not stored")]
    GaveUp { image: String },
    #[error("the lazily pulled layers of {image} did not all arrive; the image was not stored")]
    LazyPull {
        image: String,
        /// Boxed: every fetch returns this type.
        #[source]
        source: Box<crate::chunked::ChunkedError>,
    },
}

pub(super) fn describe(e: &HandlerError) -> String {
    match e {
        HandlerError::NotFound(m)
        | HandlerError::Unauthorized(m)
        | HandlerError::Denied(m)
        | HandlerError::Unsupported(m)
        | HandlerError::InvalidInput(m)
        | HandlerError::Unavailable(m)
        | HandlerError::Io(m) => m.clone(),
        HandlerError::DigestMismatch(m) => {
            let what = if m.expected.ends_with(" bytes") { "size" } else { "digest" };
            format!("{}: wrong {what}: expected {}, got {}; nothing was stored", m.subject, m.expected, m.actual)
        }
    }
}

/// The next step for a failure the handler reported.
fn hint(e: &HandlerError) -> &'static str {
    match e {
        HandlerError::Unavailable(_) => {
            " (the source did not answer: check the host and port, HTTP(S)_PROXY, and try again later)"
        }
        HandlerError::NotFound(_) => " (check the repository and tag; `skopeo list-tags` shows what a registry has)",
        _ => "",
    }
}

impl HasKind for FetchError {
    fn kind(&self) -> ErrorKind {
        match self {
            FetchError::NoHandler { .. } => ErrorKind::Invalid,
            FetchError::SourceNotFound { .. } | FetchError::NeverPull { .. } => ErrorKind::NotFound,
            FetchError::Handler { error, .. } => match error {
                HandlerError::NotFound(_) => ErrorKind::NotFound,
                HandlerError::Unauthorized(_) | HandlerError::Denied(_) => ErrorKind::Denied,
                HandlerError::DigestMismatch(_) => ErrorKind::Corrupt,
                HandlerError::Unsupported(_) | HandlerError::InvalidInput(_) => ErrorKind::Invalid,
                HandlerError::Unavailable(_) => ErrorKind::Unavailable,
                HandlerError::Io(_) => ErrorKind::Io,
            },
            FetchError::BadRecord { .. } => ErrorKind::Sandbox,
            FetchError::Dependency { source, .. } => source.kind(),
            FetchError::BadDependency { .. } | FetchError::DependencyName { .. } => ErrorKind::Invalid,
            FetchError::SignatureUnreadable { .. } => ErrorKind::Denied,
            FetchError::Point(e) => e.kind(),
            FetchError::Unsigned { .. } => ErrorKind::Denied,
            FetchError::Trust { source, .. } => source.kind(),
            FetchError::Policy(e) => e.kind(),
            FetchError::DropIn(e) => e.kind(),
            FetchError::Sandbox(e) => e.kind(),
            FetchError::Store(e) => e.kind(),
            FetchError::LazyPull { source, .. } => source.kind(),
            FetchError::GaveUp { .. } => ErrorKind::Unavailable,
        }
    }
}
