//! The OCI distribution protocol for the `docker` and `oci` handlers.
//!
//! The handler asks for manifests with `transport.request` (the host adds credentials,
//! follows the token flow, tries mirrors), stores each with `store.put` (the host hashes
//! and verifies it), chooses a platform from an index, and has the host stream config
//! and layers from `/v2/<name>/blobs/<digest>` into the store.
//!
//! Glossary:
//! - *flavor*: `docker` applies Docker's naming defaults; `oci` is the plain spec.
//! - *reference*: `host[:port]/name[:tag][@digest]`.

mod reference;
mod resolve;

pub use reference::{Flavor, Reference};
pub use resolve::resolve;
