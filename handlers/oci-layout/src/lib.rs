//! `cimd:oci-layout` — an OCI image layout, as a directory or as a tar of one.
//!
//! The host grants this handler read access to exactly one local path (the layout
//! directory or the archive file) and no network. The handler reads `oci-layout` and
//! `index.json`, picks a manifest by its ref name and platform, and asks the host to
//! ingest the blobs it needs; it parses only what it ingested, read back from the store.

mod archive;
mod layout;
mod point;
mod resolve;

use berth_guest::Error;
use berth_guest::exports::berth::handler::resolver::{Guest, ImageRecord, ResolveOptions};

struct Handler;

impl Guest for Handler {
    fn resolve(point: String, options: ResolveOptions) -> Result<ImageRecord, Error> {
        resolve::resolve(&point, &options)
    }
}

berth_guest::export_handler!(Handler);
