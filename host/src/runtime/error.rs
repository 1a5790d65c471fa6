use std::io;
use std::path::PathBuf;

use crate::{ErrorKind, HasKind};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container ID {id:?} is not valid: use letters, digits, `_`, `+`, `-` and `.`")]
    InvalidId { id: String },

    #[error("container {id} already exists")]
    Exists { id: String },

    /// Worded as runc words it: podman and containerd look for "does not exist".
    #[error("container {id} does not exist")]
    NotFound { id: String },

    #[error("cannot {action} container {id}: it is {status}")]
    WrongStatus { id: String, action: &'static str, status: &'static str },

    #[error("cannot read {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// config.json does not parse; `field` is the JSON path (`linux.seccomp.syscalls[3]`).
    #[error("config.json: {field}: {message}")]
    Config { field: String, message: String },

    /// A field berth does not honour: the container is not created half-configured.
    #[error("config.json: {field} is not supported: {reason}")]
    Unsupported { field: String, reason: String },

    #[error("cannot compile the seccomp profile ({what})")]
    Seccomp {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{kind} hook #{index} ({path}) failed: {reason}")]
    Hook { kind: &'static str, index: usize, path: PathBuf, reason: String },

    #[error("cannot send the terminal to the console socket {path}")]
    Console {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{value:?} is not a signal: use a name (TERM, SIGKILL) or a number")]
    BadSignal { value: String },

    #[error("{verb} is not supported by berth-runtime")]
    UnsupportedVerb { verb: String },

    #[error("berth-runtime needs root (rootless containers are not supported)")]
    NeedsRoot,

    #[error("container {id} did not stop within {seconds} s of SIGKILL")]
    StillRunning { id: String, seconds: u64 },

    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl HasKind for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::InvalidId { .. }
            | RuntimeError::Exists { .. }
            | RuntimeError::WrongStatus { .. }
            | RuntimeError::BadSignal { .. }
            | RuntimeError::UnsupportedVerb { .. } => ErrorKind::Usage,
            RuntimeError::NotFound { .. } => ErrorKind::NotFound,
            RuntimeError::ReadConfig { source, .. } if source.kind() == io::ErrorKind::NotFound => ErrorKind::NotFound,
            RuntimeError::Config { .. } | RuntimeError::Unsupported { .. } | RuntimeError::Seccomp { .. } => {
                ErrorKind::Invalid
            }
            RuntimeError::NeedsRoot => ErrorKind::Denied,
            RuntimeError::StillRunning { .. } => ErrorKind::Unavailable,
            RuntimeError::ReadConfig { .. }
            | RuntimeError::Hook { .. }
            | RuntimeError::Console { .. }
            | RuntimeError::Io { .. } => ErrorKind::Io,
        }
    }
}

impl RuntimeError {
    pub(crate) fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::Unsupported { field: field.into(), reason: reason.into() }
    }

    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> RuntimeError {
        RuntimeError::Config { field: field.into(), message: message.into() }
    }
}

/// Attach the action and path to an io::Error.
pub(crate) fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> RuntimeError {
    let path = path.into();
    move |source| RuntimeError::Io { action, path, source }
}
