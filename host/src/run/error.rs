use std::io;
use std::path::PathBuf;

use crate::{ErrorKind, HasKind};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{option} {value:?} is not valid: expected {expected}")]
    BadOption { option: &'static str, value: String, expected: &'static str },

    #[error("no command to run: the image has no entrypoint or cmd; give one after `--`")]
    NoCommand,

    #[error("working directory {0:?} is not absolute")]
    RelativeWorkdir(String),

    #[error("user {name:?} not found in the rootfs's /etc/passwd")]
    UserNotFound { name: String },

    #[error("group {name:?} not found in the rootfs's /etc/group")]
    GroupNotFound { name: String },

    #[error("user {uid}:{gid} is not mapped: a rootless container maps only uid/gid 0 (run as root, or drop --user)")]
    UnmappedUser { uid: u32, gid: u32 },

    #[error("rootfs {path} is not a directory")]
    Rootfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("volume source {path} does not exist")]
    VolumeSource {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("--private-users needs root (rootless runs always get a user namespace)")]
    PrivateUsersNeedRoot,

    #[error("setting up the container failed: {step}")]
    Setup {
        step: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot execute {program:?} in the container")]
    Exec {
        program: String,
        #[source]
        source: io::Error,
    },

    #[error("{what}")]
    Os {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot write the OCI bundle at {path}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot build the OCI runtime config")]
    OciSpec(#[source] Box<dyn std::error::Error + Send + Sync>),

    #[error("cgroup: {what}")]
    Cgroup {
        what: String,
        #[source]
        source: io::Error,
    },

    /// The init exited before it reported that it was set up (killed from outside).
    #[error("the container's init exited during setup")]
    InitVanished,

    /// What the caller of `create` does at a lifecycle point (its hooks) failed.
    #[error(transparent)]
    Lifecycle(Box<dyn std::error::Error + Send + Sync>),
}

impl HasKind for RunError {
    fn kind(&self) -> ErrorKind {
        match self {
            RunError::BadOption { .. }
            | RunError::NoCommand
            | RunError::RelativeWorkdir(_)
            | RunError::UnmappedUser { .. }
            | RunError::PrivateUsersNeedRoot => ErrorKind::Usage,
            RunError::UserNotFound { .. }
            | RunError::GroupNotFound { .. }
            | RunError::Rootfs { .. }
            | RunError::VolumeSource { .. } => ErrorKind::NotFound,
            RunError::Exec { source, .. } if source.kind() == io::ErrorKind::NotFound => ErrorKind::NotFound,
            RunError::Exec { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => ErrorKind::Denied,
            RunError::Cgroup { source, .. } if source.kind() == io::ErrorKind::Unsupported => ErrorKind::Invalid,
            RunError::Exec { .. }
            | RunError::Setup { .. }
            | RunError::Os { .. }
            | RunError::Bundle { .. }
            | RunError::Cgroup { .. }
            | RunError::InitVanished
            | RunError::Lifecycle(_) => ErrorKind::Io,
            RunError::OciSpec(_) => ErrorKind::Invalid,
        }
    }
}

impl RunError {
    pub(crate) fn os(what: impl Into<String>, source: io::Error) -> RunError {
        RunError::Os { what: what.into(), source }
    }
}
