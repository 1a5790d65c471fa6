//! The host side of a handler's I/O capabilities: reads of its granted local path, small
//! HTTP requests and blob streams. Every access is checked here against the grant, and
//! resolution of local paths happens in the kernel, beneath the granted directory.
//!
//! Glossary:
//! - *grant root*: the one directory or file a handler may read, opened once.
//! - *beneath*: `openat2(RESOLVE_BENEATH)`: `..`, absolute paths and symlinks that
//!   would leave the grant root fail in the kernel, whatever the path says.

pub mod auth;
mod error;
mod http;
mod local;
pub mod registries;

pub use error::TransportError;
pub use http::{BlobReader, HttpClient, HttpOptions, HttpResponse, RangeAnswer, Request, authority};
pub use local::{LocalAccess, LocalKind};
