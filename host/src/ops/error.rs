//! The error of an operation: the subsystem error that stopped it, or a usage error,
//! with what the operation was doing around it.

use std::path::PathBuf;

use thiserror::Error;

use crate::cimd::CimdError;
use crate::export::ExportError;
use crate::fetch::FetchError;
use crate::fetch::dropin::DropInError;
use crate::policy::PolicyError;
use crate::render::RenderError;
use crate::run::RunError;
use crate::runtime::RuntimeError;
use crate::sandbox::SandboxError;
use crate::serve::ServeError;
use crate::store::StoreError;
use crate::transport::TransportError;
use crate::trust::TrustError;
use crate::{ErrorKind, HasKind};

/// The request itself is wrong: a missing or conflicting argument, a malformed value.
/// Exits 2, as clap's own usage errors do.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
}

impl UsageError {
    pub fn new(message: impl Into<String>) -> UsageError {
        UsageError { message: message.into() }
    }
}

impl HasKind for UsageError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Cimd(#[from] CimdError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Boxed: a fetch error is the largest, and every operation returns this type.
    #[error(transparent)]
    Fetch(Box<FetchError>),
    #[error(transparent)]
    DropIn(#[from] DropInError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Lazy(#[from] crate::lazy::LazyError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Boxed: the server's error wraps operation errors in turn.
    #[error(transparent)]
    Serve(Box<ServeError>),
    /// An image another one needs (an appc dependency) cannot be removed alone.
    #[error("{image} is a dependency of {needed_by}, which renders on top of it: remove that image too (or first)")]
    NeededBy { image: String, needed_by: String },
    #[error(
        "{image} is in use by the running container {container} (berth run, pid {pid}): stop it first, then remove the image"
    )]
    InUse { image: String, container: String, pid: u32 },
    #[error("no credentials for {registry} are saved (nothing to log out of)")]
    NotLoggedIn { registry: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// What the operation was doing when `source` stopped it.
    #[error("{doing}")]
    Context {
        doing: String,
        #[source]
        source: Box<Error>,
    },
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(e) => e.kind(),
            Error::Cimd(e) => e.kind(),
            Error::Store(e) => e.kind(),
            Error::Fetch(e) => e.kind(),
            Error::DropIn(e) => e.kind(),
            Error::Render(e) => e.kind(),
            Error::Run(e) => e.kind(),
            Error::Lazy(e) => e.kind(),
            Error::Runtime(e) => e.kind(),
            Error::Export(e) => e.kind(),
            Error::Policy(e) => e.kind(),
            Error::Sandbox(e) => e.kind(),
            Error::Transport(e) => e.kind(),
            Error::Trust(e) => e.kind(),
            Error::Serve(e) => e.kind(),
            Error::NeededBy { .. } => ErrorKind::Usage,
            Error::NotLoggedIn { .. } => ErrorKind::NotFound,
            Error::InUse { .. } => ErrorKind::Unavailable,
            Error::Io { .. } => ErrorKind::Io,
            Error::Context { source, .. } => source.kind(),
        }
    }
}

impl From<ServeError> for Error {
    fn from(e: ServeError) -> Error {
        Error::Serve(Box::new(e))
    }
}

impl From<FetchError> for Error {
    fn from(e: FetchError) -> Error {
        Error::Fetch(Box::new(e))
    }
}

/// Say what an operation was doing when it failed: `.doing(|| format!("rendering {x}"))`.
pub trait Doing<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T, E: Into<Error>> Doing<T> for Result<T, E> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| Error::Context { doing: what(), source: Box::new(e.into()) })
    }
}

/// Attach the action and path to an io::Error.
pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { action, path, source }
}
