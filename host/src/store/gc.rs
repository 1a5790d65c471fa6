//! Garbage collection: remove blobs no image needs, and leftovers of interrupted
//! ingests. Runs under the exclusive lock, so no fetch is between ingest and commit.

use std::collections::HashSet;
use std::fs;

use serde::Serialize;

use super::error::io;
use super::{Digest, Store, StoreError};

/// The digest a registry point is pinned to (`cimd:docker:v=0:host/name:tag@sha256:…`).
/// Other point types escape or forbid `@`, so only registry points have one.
pub fn pinned_digest(point: &str) -> Option<Digest> {
    point.rsplit_once('@').and_then(|(_, d)| d.parse().ok())
}

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    pub temp_files_removed: u64,
    /// Blobs whose entries in the file index were dropped with them.
    pub indexed_blobs_forgotten: u64,
}

impl Store {
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let mut reachable = HashSet::new();
        for image in self.images()? {
            reachable.extend(image.record.blobs().map(|d| d.digest.clone()));
            // A point pinned to a digest (`…:tag@sha256:…`) keeps the document it names,
            // which may be an index above the image's manifest (`berth serve` serves it).
            reachable.extend(image.refs.iter().filter_map(|r| pinned_digest(r)));
        }
        let mut report = GcReport::default();
        for (path, digest) in self.blobs.list()? {
            // A file whose name is no digest is no blob; leave it for fsck to report.
            let Some(digest) = digest else { continue };
            if reachable.contains(&digest) {
                continue;
            }
            let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(io("removing", &path))?;
            report.blobs_removed += 1;
            report.bytes_freed += size;
        }
        report.indexed_blobs_forgotten = self.prune_file_index()? as u64;
        let tmp = self.blobs.tmp_dir();
        for entry in fs::read_dir(tmp).map_err(io("listing", tmp))? {
            let path = entry.map_err(io("listing", tmp))?.path();
            let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(io("removing", &path))?;
            report.temp_files_removed += 1;
            report.bytes_freed += size;
        }
        Ok(report)
    }
}
