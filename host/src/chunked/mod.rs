//! Chunked layers: eStargz and zstd:chunked layers read in parts, for partial pulls.
//! (zstd:chunked has the same TOC, zstd-compressed and located by an annotation, and
//! zstd frames for chunks; see [`Format`]. The description below is eStargz's.)
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

mod assemble;
mod background;
mod error;
pub mod footer;
mod format;
mod index;
mod partial;
pub mod toc;

pub use assemble::check_assembled;
pub use background::{LazyPull, OwnedRemote};
pub use error::ChunkedError;
pub use format::{Codec, Format, TOC_DIGEST_ANNOTATION, ZSTD_CHUNKED_CHECKSUM, ZSTD_CHUNKED_POSITION};
pub use index::index_stored_layer;
pub use partial::{Attempt, PartialPull, RemoteBlob, pull, read_toc};
