//! `fsck`: re-hash every blob, quarantine those whose bytes do not match their name,
//! and report images that need a blob the store does not have.

use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::blobs::hash_file;
use super::error::io;
use super::{Digest, Store, StoreError};

#[derive(Debug, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    /// The blob's bytes hash to something else; it was moved to `quarantine`.
    Corrupt { digest: Digest, actual: Digest, quarantined_as: String },
    /// A file under `blobs/` whose name is not a digest.
    StrayFile { path: String },
    /// An image needs a blob the store does not have.
    Missing { image: Digest, digest: Digest },
    /// A blob's size differs from what an image records.
    WrongSize { image: Digest, digest: Digest, expected: u64, actual: u64 },
    /// A partially pulled layer's assembled tar disagrees with its table of contents, or
    /// the TOC with the manifest (checked by the caller, which reads layers).
    Assembled { image: Digest, layer: Digest, reason: String },
}

#[derive(Debug, Default, Serialize)]
pub struct FsckReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub images_checked: u64,
    /// Partially pulled layers whose assembled tar was checked file by file against the
    /// TOC (by the caller).
    pub assembled_layers_checked: u64,
    pub problems: Vec<Problem>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Move the blob stored as `digest`, whose bytes were found not to match it, to
    /// `quarantine/<alg>-<hex>-<unix time>`: kept for inspection, never read as content
    /// again. A rename, so a reader that opened it before keeps its descriptor. Safe under
    /// the shared lock: no one may use bytes that do not match their name. Returns where
    /// it went.
    pub fn quarantine(&self, digest: &Digest) -> Result<PathBuf, StoreError> {
        let quarantine = self.root.join("quarantine");
        fs::create_dir_all(&quarantine).map_err(io("creating", &quarantine))?;
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let dest = quarantine.join(format!("{}-{}-{stamp}", digest.algorithm().name(), digest.hex()));
        let path = self.blobs.path(digest);
        fs::rename(&path, &dest).map_err(io("quarantining", &path))?;
        Ok(dest)
    }

    /// Check every blob and image. Needs the exclusive lock (it moves corrupt blobs).
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        let mut report = FsckReport::default();
        for (path, digest) in self.blobs.list()? {
            let Some(digest) = digest else {
                report.problems.push(Problem::StrayFile { path: path.display().to_string() });
                continue;
            };
            let (actual, size) = hash_file(&path, digest.algorithm())?;
            report.blobs_checked += 1;
            report.bytes_checked += size;
            if actual != digest {
                let dest = self.quarantine(&digest)?;
                report.problems.push(Problem::Corrupt { digest, actual, quarantined_as: dest.display().to_string() });
            }
        }
        for image in self.images()? {
            report.images_checked += 1;
            let image_digest = image.record.manifest.digest.clone();
            for d in image.record.blobs() {
                match self.blobs.size(&d.digest) {
                    Ok(size) if size == d.size => {}
                    Ok(size) => report.problems.push(Problem::WrongSize {
                        image: image_digest.clone(),
                        digest: d.digest.clone(),
                        expected: d.size,
                        actual: size,
                    }),
                    Err(StoreError::BlobNotFound(_)) => {
                        report.problems.push(Problem::Missing { image: image_digest.clone(), digest: d.digest.clone() })
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(report)
    }
}
