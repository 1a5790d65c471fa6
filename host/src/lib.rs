//! berth: fetch, store, render and run container images, with every format- and
//! protocol-specific parser inside a capability-restricted WebAssembly component.
//!
//! Data flows one way, and every caller (the `berth` command, `berth serve`, the OCI
//! runtime front end) enters through [`ops`], one function per user-visible verb:
//!
//! ```text
//! cli ──> ops ──> fetch ──> sandbox ──(a handler component)──> store
//!          │        │          │                                 ▲
//!          │        │          └── transport (HTTP, local files) ┘ blobs stream
//!          │        ├── policy   (before fetch, after resolve)      into the CAS
//!          │        └── trust    (appc signatures; drop-in handler keys)
//!          ├──> render ──> (snapshots, overlay or flattened rootfs) ──> run
//!          ├──> policy   (before run)
//!          ├──> export   (store ──> OCI layout or archive)
//!          ├──> serve    (store ──> the distribution API; push and pull-through call ops)
//!          └──> runtime  (bundle config.json ──> run::create; the OCI runtime's verbs)
//! ```
//!
//! - [`cimd`] names images (distribution points); [`store`] holds blobs, images and refs;
//!   [`fetch`] runs the handler of a point in the [`sandbox`] and commits what it resolved;
//!   [`transport`] is the host side of the handler's I/O; [`trust`] decides whose
//!   signatures count; [`policy`] runs policy components at each decision point;
//!   [`render`] turns layers into a rootfs; [`run`] launches a process in one;
//!   [`export`] writes stored images out; [`serve`] is the store as a registry;
//!   [`runtime`] is berth as an OCI runtime (`berth-runtime`, runc's command line) on top
//!   of [`run`].
//! - Errors: each subsystem has one error enum implementing [`HasKind`]; [`ops::Error`]
//!   wraps them, and its [`ErrorKind`] is the process exit code.

pub mod chunked;
pub mod cimd;
pub mod export;
pub mod fetch;
pub mod lazy;
pub mod ops;
pub mod policy;
pub mod render;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod serve;
pub mod store;
pub mod transport;
pub mod trust;

/// An error that knows what kind of failure it is. Every subsystem's error type
/// implements it; [`ops::Error`] delegates to the error it wraps.
pub trait HasKind {
    fn kind(&self) -> ErrorKind;
}

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

/// An error and its sources as one line (`a: b: c`), as a user reads it in a warning or
/// a note; a source whose text the line already ends with is not repeated.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
