//! berth: fetch, store, render and run container images, with every format- and
//! protocol-specific parser inside a capability-restricted WebAssembly component.
//!
//! Data flows one way: `cli` → [`fetch`] → [`sandbox`] (a handler component, using
//! [`transport`] and [`store`] through its grant) → [`store`].

pub mod cimd;
pub mod export;
pub mod fetch;
pub mod policy;
pub mod render;
pub mod run;
pub mod sandbox;
pub mod store;
pub mod transport;
pub mod trust;

/// What kind of failure an error is; drives exit codes (and, later, retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad flags or a malformed argument.
    Usage,
    /// The image, ref, file or blob does not exist.
    NotFound,
    /// A grant, trust or policy refused it.
    Denied,
    /// The image is malformed or of a kind berth does not handle.
    Invalid,
    /// Content does not match its digest or size.
    Corrupt,
    /// A handler component crashed, ran out of time or memory.
    Sandbox,
    /// Something needed is not reachable now (a lock, a service).
    Unavailable,
    /// The file system or another OS call failed.
    Io,
}

impl ErrorKind {
    /// The process exit code for this kind; `berth --help` documents the table.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Io => 1,
            ErrorKind::Usage => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Denied => 4,
            ErrorKind::Invalid => 5,
            ErrorKind::Corrupt => 6,
            ErrorKind::Sandbox => 7,
            ErrorKind::Unavailable => 8,
        }
    }
}
