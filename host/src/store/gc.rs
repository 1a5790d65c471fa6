//! Garbage collection: remove blobs no image needs, and leftovers of interrupted
//! ingests. Runs under the exclusive lock, so no fetch is between ingest and commit.

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
    /// Attached documents (signatures, SBOMs) whose subject was no longer kept.
    pub attachments_removed: u64,
}

impl Store {
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let reachable = self.reachable_blobs()?;
        let mut report = GcReport::default();
        // Attachments whose subject is gone go with it.
        for a in self.attachments()?.into_iter().filter(|a| !reachable.contains(&a.subject)) {
            self.db().remove_attachment(&a.point)?;
            report.attachments_removed += 1;
        }
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

#[cfg(test)]
mod tests {
    use super::super::{Algorithm, Attachment, Expected, LockMode};
    use super::*;

    fn put(store: &Store, bytes: &[u8]) -> Digest {
        let digest = Digest::of_bytes(Algorithm::Sha256, bytes);
        let expected = Expected { digest: digest.clone(), size: bytes.len() as u64 };
        store.blobs().ingest(&mut &bytes[..], &expected, "a test blob", &mut |_| {}).unwrap();
        digest
    }

    #[test]
    fn attachments_live_as_long_as_their_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), LockMode::Exclusive, &mut || {}).unwrap();
        let subject = put(&store, b"a pushed index, pinned by nothing");
        let signature = put(&store, b"a signature manifest");
        let payload = put(&store, b"its payload");
        let of_signature = put(&store, b"a signature of the signature");
        let attach = |point: &str, digest: &Digest, subject: &Digest, blobs: Vec<Digest>| {
            store
                .attach(&Attachment { point: point.into(), digest: digest.clone(), subject: subject.clone(), blobs })
                .unwrap();
        };
        attach("cimd:docker:v=0:localhost/app:sig", &signature, &subject, vec![signature.clone(), payload.clone()]);
        attach("cimd:docker:v=0:localhost/app:sig2", &of_signature, &signature, vec![of_signature.clone()]);
        // A blob it names must be stored.
        let missing = Digest::of_bytes(Algorithm::Sha256, b"never stored");
        let refused =
            Attachment { point: "p".into(), digest: missing.clone(), subject: subject.clone(), blobs: vec![missing] };
        assert!(matches!(store.attach(&refused), Err(StoreError::BlobNotFound(_))));

        // Nothing keeps the subject, so the chain goes: both attachments, every blob.
        assert!(store.reachable_blobs().unwrap().is_empty());
        let report = store.gc().unwrap();
        assert_eq!((report.attachments_removed, report.blobs_removed), (2, 4));
        assert!(store.attachments().unwrap().is_empty());
    }
}
