//! Chunked layers: eStargz layers read in parts, for partial pulls.
//!
//! An eStargz layer is a valid gzip tar layer (every other tool reads it whole) whose
//! regular files each start a new gzip member, followed by a table of contents (TOC,
//! `stargz.index.json`) naming each file's member offset and digests, and a footer naming
//! the TOC's offset. The producer puts the TOC's digest in the manifest's layer
//! annotations (`containerd.io/snapshot/stargz/toc.digest`), so the manifest digest covers
//! it. With it, berth fetches the footer, the TOC, and only the files the store lacks.
//!
//! The TOC is untrusted input parsed by the host, next to the layer tars it already
//! parses, not in a handler: it is layer data (the data plane), its answer drives the
//! host's own range requests, and it is fuzzed like the tar reader (docs/decisions.md).
//!
//! Glossary:
//! - *TOC*: the table of contents; *entry*: one tar entry in it; *chunk*: one gzip
//!   member holding a piece of a regular file, with its own `chunkDigest`.
//! - *footer*: the last 51 bytes (47 in legacy stargz), an empty gzip member whose
//!   extra field holds the TOC offset.
//! - *file index*: the store's table of where it holds file contents, by digest.
//! - *assembled layer*: a partially pulled layer, stored as a tar berth wrote from the
//!   TOC and the checked contents, plus the TOC ([`crate::store::Assembled`]).

mod error;
pub mod footer;
mod partial;
pub mod toc;

pub use error::ChunkedError;
pub use partial::{Attempt, PartialPull, RemoteBlob, check_assembled, index_stored_layer, pull, read_toc};

/// The manifest annotation naming the TOC digest of an eStargz layer, as
/// stargz-snapshotter's `estargz` package writes it.
pub const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";
