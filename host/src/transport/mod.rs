//! The host side of a handler's I/O capabilities: reads of its granted local path, and
//! (later) small HTTP requests. Every access is checked here against the grant, and
//! resolution of local paths happens in the kernel, beneath the granted directory.
//!
//! Glossary:
//! - *grant root*: the one directory or file a handler may read, opened once.
//! - *beneath*: `openat2(RESOLVE_BENEATH)`: `..`, absolute paths and symlinks that
//!   would leave the grant root fail in the kernel, whatever the path says.

mod error;
mod local;

pub use error::TransportError;
pub use local::{LocalAccess, LocalKind};
