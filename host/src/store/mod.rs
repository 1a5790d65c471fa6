//! The content-addressed store and its metadata, under one root directory.
//!
//! Layout of `$BERTH_ROOT`:
//! - `blobs/<alg>/<hex>`: the CAS, laid out as an OCI image layout's blob directory.
//! - `tmp/`: blobs being ingested; nothing here is ever read as content.
//! - `berth.db`: SQLite metadata (refs, images, layers).
//! - `quarantine/`: blobs `fsck` found corrupt, kept for inspection.
//! - `lock`: the store lock (see [`LockMode`]).
//!
//! Glossary:
//! - *blob*: bytes named by their digest. *Ingest* streams them in and verifies them;
//!   *commit* (a rename) makes them visible. A visible blob is always complete.
//! - *image*: a stored [`ImageRecord`], keyed by its manifest digest.
//! - *ref*: a canonical distribution point naming an image; several refs may name one.
//! - *reachable*: a blob some image needs. `gc` removes the rest.

mod blobs;
mod db;
mod digest;
mod error;
mod fsck;
mod gc;
mod lock;
mod progress;
mod record;

use std::path::{Path, PathBuf};

pub use blobs::{BlobWriter, Blobs, Expected, Ingested, hash_file};
pub use db::{SCHEMA_VERSION, StoredImage};
pub use digest::{Algorithm, Digest, Hasher};
pub use error::StoreError;
pub use fsck::{FsckReport, Problem};
pub use gc::{GcReport, pinned_digest};
pub use lock::LockMode;
pub use progress::{IngestObserver, NoProgress};
pub use record::{
    ASSEMBLED_MEDIA_TYPE, Assembled, Attachment, ContentEncoding, Dependency, Descriptor, FileSource, HandlerIdentity,
    ImageFormat, ImageRecord, Layer, Platform, RuntimeConfig, TOC_MEDIA_TYPE,
};

use db::Db;
use error::io;
use lock::StoreLock;

pub struct Store {
    root: PathBuf,
    blobs: Blobs,
    db: std::sync::Mutex<Db>,
    lock: StoreLock,
    /// Told as render reads layer blobs, for progress bars (set once by the caller).
    layer_reads: std::sync::OnceLock<std::sync::Arc<dyn IngestObserver>>,
}

impl Store {
    /// Open (creating if needed) the store at `root`. `on_wait` is called if another
    /// process holds the lock in a conflicting mode, before waiting for it.
    pub fn open(root: &Path, mode: LockMode, on_wait: &mut dyn FnMut()) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root).map_err(io("creating the store root", root))?;
        let lock = StoreLock::acquire(root, mode, on_wait)?;
        let blobs = Blobs::open(root)?;
        let db = Db::open(&root.join("berth.db"))?;
        Ok(Store {
            root: root.to_path_buf(),
            blobs,
            db: std::sync::Mutex::new(db),
            lock,
            layer_reads: std::sync::OnceLock::new(),
        })
    }

    /// Report reads of layer blobs (a render unpacking them) to `observer`: `started`
    /// with the blob's size, `advanced` as it is read, `finished` when the reader is done.
    /// Only the first observer set counts.
    pub fn observe_layer_reads(&self, observer: std::sync::Arc<dyn IngestObserver>) {
        let _ = self.layer_reads.set(observer);
    }

    pub fn layer_read_observer(&self) -> Option<&std::sync::Arc<dyn IngestObserver>> {
        self.layer_reads.get()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        // A panic while holding the lock cannot leave SQLite inconsistent: the
        // transaction rolls back. Keep using the connection.
        self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.db().schema_version()
    }

    /// Record an image whose blobs are all present, and point its canonical ref at it.
    pub fn commit_image(&self, record: &ImageRecord) -> Result<(), StoreError> {
        for d in record.blobs() {
            let size = self.blobs.size(&d.digest)?;
            if size != d.size {
                return Err(StoreError::SizeMismatch { subject: d.digest.to_string(), expected: d.size, actual: size });
            }
        }
        self.db().put_image(record)
    }

    /// Record where `blob` holds file contents, for partial pulls (replacing what was
    /// recorded for it before).
    pub fn index_files(&self, blob: &Digest, files: &[FileSource]) -> Result<(), StoreError> {
        self.db().index_files(blob, files)
    }

    /// Every content digest the file index names (as text): one query, so a TOC of
    /// thousands of files asks only for the contents the store may hold.
    pub fn indexed_contents(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        self.db().indexed_contents()
    }

    /// Where the store may hold content `digest`: blobs that are present, with where in
    /// them. A hint: the caller hashes what it reads.
    pub fn file_sources(&self, digest: &Digest) -> Result<Vec<(Digest, FileSource)>, StoreError> {
        let found = self.db().file_sources(digest)?;
        Ok(found.into_iter().filter(|(blob, _)| self.blobs.has(blob)).collect())
    }

    /// Forget the file index entries of blobs no longer in the store; how many blobs.
    pub fn prune_file_index(&self) -> Result<usize, StoreError> {
        let mut db = self.db();
        let mut pruned = 0;
        for blob in db.indexed_blobs()? {
            if !self.blobs.has(&blob) {
                db.unindex_blob(&blob)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Record a document attached to an image (its blobs must be stored), replacing
    /// what its point named before.
    pub fn attach(&self, attachment: &Attachment) -> Result<(), StoreError> {
        for blob in &attachment.blobs {
            if !self.blobs.has(blob) {
                return Err(StoreError::BlobNotFound(blob.clone()));
            }
        }
        self.db().put_attachment(attachment)
    }

    /// Every attachment, by point.
    pub fn attachments(&self) -> Result<Vec<Attachment>, StoreError> {
        self.db().attachments()
    }

    /// The attachment pushed under `point`.
    pub fn attachment(&self, point: &str) -> Result<Option<Attachment>, StoreError> {
        self.db().attachment(point)
    }

    /// The attachments of `subject`.
    pub fn attachments_of(&self, subject: &Digest) -> Result<Vec<Attachment>, StoreError> {
        self.db().attachments_of(subject)
    }

    /// The blobs the store must keep: every image's, the documents pinned refs name
    /// (an index above an image's manifest, which `berth serve` serves), and the blobs
    /// of attachments whose subject is kept.
    pub fn reachable_blobs(&self) -> Result<std::collections::HashSet<Digest>, StoreError> {
        let mut reachable = std::collections::HashSet::new();
        for image in self.images()? {
            reachable.extend(image.record.blobs().map(|d| d.digest.clone()));
            reachable.extend(image.refs.iter().filter_map(|r| pinned_digest(r)));
        }
        // An attachment may be attached to another (a signature of an SBOM): repeat
        // until nothing more is kept.
        let attachments = self.attachments()?;
        loop {
            let before = reachable.len();
            let kept: Vec<&Attachment> = attachments.iter().filter(|a| reachable.contains(&a.subject)).collect();
            for a in kept {
                reachable.extend(a.blobs.iter().cloned());
            }
            if reachable.len() == before {
                return Ok(reachable);
            }
        }
    }

    pub fn resolve_ref(&self, point: &str) -> Result<Option<StoredImage>, StoreError> {
        let db = self.db();
        match db.resolve_ref(point)? {
            Some(d) => db.image(&d),
            None => Ok(None),
        }
    }

    pub fn image(&self, digest: &Digest) -> Result<Option<StoredImage>, StoreError> {
        self.db().image(digest)
    }

    pub fn images(&self) -> Result<Vec<StoredImage>, StoreError> {
        let db = self.db();
        let mut out = Vec::new();
        for d in db.image_digests()? {
            out.extend(db.image(&d)?);
        }
        Ok(out)
    }

    /// Find an image by the canonical form of what the user typed (if it parsed as a
    /// distribution point), else by full digest or a prefix of its hex (≥ 4 digits).
    pub fn find_image(&self, input: &str, canonical: Option<&str>) -> Result<StoredImage, StoreError> {
        if let Some(point) = canonical
            && let Some(found) = self.resolve_ref(point)?
        {
            return Ok(found);
        }
        if let Some(found) = self.resolve_ref(input)? {
            return Ok(found);
        }
        if let Some(point) = canonical
            && !point.contains('?')
        {
            // The handler may have completed the point (`oci-archive:x.tar` is stored as
            // `…x.tar?ref=latest`): the one image with a ref that only adds parameters.
            let mut matches: Vec<StoredImage> =
                self.images()?.into_iter().filter(|i| !completed_refs(i, point).is_empty()).collect();
            match matches.len() {
                0 => {}
                1 => return Ok(matches.remove(0)),
                _ => {
                    let list: Vec<String> = matches.iter().flat_map(|m| completed_refs(m, point)).collect();
                    return Err(StoreError::AmbiguousImage { query: input.to_string(), matches: list.join(", ") });
                }
            }
        }
        let needle = input.split_once(':').map_or(input, |(_, hex)| hex);
        if needle.len() >= 4 && needle.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<StoredImage> = self
                .images()?
                .into_iter()
                .filter(|i| {
                    let d = &i.record.manifest.digest;
                    d.hex().starts_with(needle) && (!input.contains(':') || input.starts_with(d.algorithm().name()))
                })
                .collect();
            match matches.len() {
                0 => {}
                1 => return Ok(matches.into_iter().next().expect("one match")),
                _ => {
                    let list: Vec<String> = matches.iter().map(|m| m.record.manifest.digest.to_string()).collect();
                    return Err(StoreError::AmbiguousImage { query: input.to_string(), matches: list.join(", ") });
                }
            }
        }
        Err(StoreError::ImageNotFound(input.to_string()))
    }

    /// After a failed fetch: remove the blobs it wrote that no image needs, but only if
    /// no other process is using the store (otherwise a concurrent fetch may be about to
    /// commit an image that needs them; `gc` will remove them later). Returns how many
    /// blobs were removed.
    pub fn discard_unreferenced(&self, written: &[Digest]) -> Result<usize, StoreError> {
        if written.is_empty() || !self.lock.try_exclusive() {
            return Ok(0);
        }
        let removed = self.remove_unreachable(written);
        self.lock.downgrade();
        removed
    }

    fn remove_unreachable(&self, written: &[Digest]) -> Result<usize, StoreError> {
        let reachable = self.reachable_blobs()?;
        let mut removed = 0;
        for d in written.iter().filter(|d| !reachable.contains(*d)) {
            let path = self.blobs.path(d);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("removing", path)(e)),
            }
        }
        Ok(removed)
    }

    /// Remove a ref (when `input` names one) or a whole image (when it is a digest).
    /// Blobs are reclaimed by [`Store::gc`].
    pub fn remove(&self, input: &str, canonical: Option<&str>) -> Result<StoredImage, StoreError> {
        let image = self.find_image(input, canonical)?;
        let mut db = self.db();
        let by_ref = [canonical, Some(input)].into_iter().flatten().find(|p| image.refs.iter().any(|r| r == p));
        let completed = canonical.map(|c| completed_refs(&image, c)).unwrap_or_default();
        match by_ref {
            Some(point) => {
                db.remove_ref(point)?;
            }
            None if !completed.is_empty() => {
                for point in &completed {
                    db.remove_ref(point)?;
                }
            }
            None => db.remove_image(&image.record.manifest.digest)?,
        }
        Ok(image)
    }
}

/// Refs of `image` that are `point` with parameters added (`point?…`).
fn completed_refs(image: &StoredImage, point: &str) -> Vec<String> {
    image.refs.iter().filter(|r| r.strip_prefix(point).is_some_and(|rest| rest.starts_with('?'))).cloned().collect()
}
