//! The CAS: `blobs/<alg>/<hex>`, written by ingest-then-commit.
//!
//! A blob is streamed into a temporary file under `tmp/`, hashed as it is written,
//! checked against the expected digest and size, synced, and only then renamed to its
//! name. A reader never sees a partial or unverified blob; a crash leaves at most a
//! file in `tmp/`, which `gc` removes.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::digest::Hasher;
use super::error::io;
use super::{Algorithm, Digest, StoreError};

/// Bytes copied per read while ingesting.
const COPY_BUFFER: usize = 1 << 20;

/// What an ingest must produce.
#[derive(Debug, Clone)]
pub struct Expected {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// The blob was already in the store; the source was not read.
    AlreadyPresent,
    /// The blob was written and verified.
    Written,
}

pub struct Blobs {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Blobs {
    pub(super) fn open(root: &Path) -> Result<Blobs, StoreError> {
        let dir = root.join("blobs");
        let tmp = root.join("tmp");
        for alg in Algorithm::all() {
            let d = dir.join(alg.name());
            fs::create_dir_all(&d).map_err(io("creating", d))?;
        }
        fs::create_dir_all(&tmp).map_err(io("creating", &tmp))?;
        Ok(Blobs { dir, tmp })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.algorithm().name()).join(digest.hex())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    pub fn has(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.path(digest)).is_ok_and(|m| m.is_file())
    }

    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        match fs::symlink_metadata(self.path(digest)) {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(StoreError::BlobNotFound(digest.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::BlobNotFound(digest.clone())),
            Err(e) => Err(io("inspecting", self.path(digest))(e)),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        File::open(self.path(digest)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::BlobNotFound(digest.clone()),
            _ => io("opening", self.path(digest))(e),
        })
    }

    /// Read up to `len` bytes at `offset`; fewer only at the end of the blob.
    pub fn read_at(&self, digest: &Digest, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        let file = self.open_blob(digest)?;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n =
                file.read_at(&mut buf[filled..], offset + filled as u64).map_err(io("reading", self.path(digest)))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// Stream `source` into the store as `expect`. `subject` names the source in errors;
    /// `on_progress` receives byte counts as they are written.
    pub fn ingest(
        &self,
        source: &mut dyn Read,
        expect: &Expected,
        subject: &str,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<Ingested, StoreError> {
        if self.has(&expect.digest) {
            return Ok(Ingested::AlreadyPresent);
        }
        // Stop reading as soon as the source is longer than announced.
        let too_long =
            |actual| StoreError::SizeMismatch { subject: subject.to_string(), expected: expect.size, actual };
        let (tmp, actual, written) =
            self.spool(source, expect.digest.algorithm(), expect.size, subject, on_progress, too_long)?;
        if written != expect.size {
            return Err(StoreError::SizeMismatch {
                subject: subject.to_string(),
                expected: expect.size,
                actual: written,
            });
        }
        if actual != expect.digest {
            return Err(StoreError::DigestMismatch {
                subject: subject.to_string(),
                expected: expect.digest.clone(),
                actual,
            });
        }
        self.commit(tmp, &expect.digest)?;
        Ok(Ingested::Written)
    }

    /// Stream `source`, whose digest is not known in advance, into the store under its
    /// `algorithm` digest. More than `max_size` bytes is refused. Returns the digest, the
    /// size, and whether the blob was new.
    pub fn ingest_unknown(
        &self,
        source: &mut dyn Read,
        algorithm: Algorithm,
        max_size: u64,
        subject: &str,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<(Digest, u64, Ingested), StoreError> {
        let too_large = |_| StoreError::TooLarge { subject: subject.to_string(), limit: max_size };
        let (tmp, digest, written) = self.spool(source, algorithm, max_size, subject, on_progress, too_large)?;
        if self.has(&digest) {
            return Ok((digest, written, Ingested::AlreadyPresent));
        }
        self.commit(tmp, &digest)?;
        Ok((digest, written, Ingested::Written))
    }

    /// A blob to be written by the caller (a tar berth assembles), named by its digest
    /// when [`BlobWriter::commit`]ted; dropped uncommitted, it leaves nothing.
    pub fn writer(&self, algorithm: Algorithm) -> Result<BlobWriter<'_>, StoreError> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("ingest-{}-", std::process::id()))
            .tempfile_in(&self.tmp)
            .map_err(io("creating a temporary file in", &self.tmp))?;
        let file = std::io::BufWriter::with_capacity(COPY_BUFFER, tmp.reopen().map_err(io("opening", tmp.path()))?);
        Ok(BlobWriter { blobs: self, tmp, file, hasher: Hasher::new(algorithm), written: 0 })
    }

    /// Copy `source` into a new temporary file under `tmp/`, hashing it with `algorithm`.
    /// Reading stops with `over(bytes read)` once more than `limit` bytes came.
    fn spool(
        &self,
        source: &mut dyn Read,
        algorithm: Algorithm,
        limit: u64,
        subject: &str,
        on_progress: &mut dyn FnMut(u64),
        over: impl Fn(u64) -> StoreError,
    ) -> Result<(tempfile::NamedTempFile, Digest, u64), StoreError> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("ingest-{}-", std::process::id()))
            .tempfile_in(&self.tmp)
            .map_err(io("creating a temporary file in", &self.tmp))?;
        let mut hasher = Hasher::new(algorithm);
        let mut buf = vec![0u8; COPY_BUFFER];
        let mut written: u64 = 0;
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(StoreError::Source { subject: subject.to_string(), source }),
            };
            written += n as u64;
            if written > limit {
                return Err(over(written));
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io("writing", tmp.path()))?;
            on_progress(n as u64);
        }
        Ok((tmp, hasher.finish(), written))
    }

    /// Make a verified temporary file visible under its digest: read-only, synced,
    /// renamed, and the directory synced so the name survives a crash.
    fn commit(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<(), StoreError> {
        let file = tmp.as_file();
        file.set_permissions(fs::Permissions::from_mode(0o444)).map_err(io("setting permissions of", tmp.path()))?;
        file.sync_all().map_err(io("syncing", tmp.path()))?;
        let dest = self.path(digest);
        tmp.persist(&dest).map_err(|e| io("renaming a verified blob to", &dest)(e.error))?;
        let parent = dest.parent().expect("blob paths have a parent");
        File::open(parent).and_then(|d| d.sync_all()).map_err(io("syncing", parent))?;
        Ok(())
    }

    /// Every file under `blobs/`, whether or not its name is a valid digest.
    pub fn list(&self) -> Result<Vec<(PathBuf, Option<Digest>)>, StoreError> {
        let mut out = Vec::new();
        for alg in Algorithm::all() {
            let dir = self.dir.join(alg.name());
            for entry in fs::read_dir(&dir).map_err(io("listing", &dir))? {
                let entry = entry.map_err(io("listing", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let digest = format!("{}:{name}", alg.name()).parse().ok();
                out.push((entry.path(), digest));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A blob being written under `tmp/`, hashed as it is written; see [`Blobs::writer`].
pub struct BlobWriter<'b> {
    blobs: &'b Blobs,
    tmp: tempfile::NamedTempFile,
    file: std::io::BufWriter<File>,
    hasher: Hasher,
    written: u64,
}

impl BlobWriter<'_> {
    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.written
    }

    /// Make the blob visible under its digest (synced, renamed). Returns the digest, the
    /// size and whether it was new.
    pub fn commit(self) -> Result<(Digest, u64, Ingested), StoreError> {
        let BlobWriter { blobs, tmp, file, hasher, written } = self;
        file.into_inner().map_err(|e| io("writing", tmp.path())(e.into_error()))?;
        let digest = hasher.finish();
        if blobs.has(&digest) {
            return Ok((digest, written, Ingested::AlreadyPresent));
        }
        blobs.commit(tmp, &digest)?;
        Ok((digest, written, Ingested::Written))
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Hash a file as `algorithm`.
pub fn hash_file(path: &Path, algorithm: Algorithm) -> Result<(Digest, u64), StoreError> {
    let mut file = File::open(path).map_err(io("opening", path))?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io("reading", path))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finish(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> (tempfile::TempDir, Blobs) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        (dir, blobs)
    }

    fn expect(bytes: &[u8]) -> Expected {
        Expected { digest: Digest::of_bytes(Algorithm::Sha256, bytes), size: bytes.len() as u64 }
    }

    fn tmp_is_empty(b: &Blobs) -> bool {
        fs::read_dir(b.tmp_dir()).unwrap().next().is_none()
    }

    #[test]
    fn ingest_stores_under_digest_and_skips_a_second_copy() {
        let (_d, b) = blobs();
        let e = expect(b"hello");
        let mut seen = 0;
        assert_eq!(b.ingest(&mut &b"hello"[..], &e, "t", &mut |n| seen += n).unwrap(), Ingested::Written);
        assert_eq!(seen, 5);
        assert_eq!(fs::read(b.path(&e.digest)).unwrap(), b"hello");
        assert_eq!(b.ingest(&mut &b"hello"[..], &e, "t", &mut |_| {}).unwrap(), Ingested::AlreadyPresent);
        assert_eq!(b.read_at(&e.digest, 1, 10).unwrap(), b"ello");
    }

    #[test]
    fn a_written_blob_is_named_by_its_digest_and_an_abandoned_one_leaves_nothing() {
        let (_d, b) = blobs();
        let mut w = b.writer(Algorithm::Sha256).unwrap();
        w.write_all(b"hel").unwrap();
        w.write_all(b"lo").unwrap();
        assert_eq!(w.position(), 5);
        let (digest, size, outcome) = w.commit().unwrap();
        assert_eq!((digest, size, outcome), (expect(b"hello").digest, 5, Ingested::Written));
        let mut abandoned = b.writer(Algorithm::Sha256).unwrap();
        abandoned.write_all(b"half").unwrap();
        drop(abandoned);
        assert!(tmp_is_empty(&b));
    }

    #[test]
    fn wrong_bytes_leave_nothing_behind() {
        let (_d, b) = blobs();
        let e = expect(b"hello");
        let err = b.ingest(&mut &b"jello"[..], &e, "t", &mut |_| {}).unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        let err = b.ingest(&mut &b"hell"[..], &e, "t", &mut |_| {}).unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { actual: 4, .. }), "{err}");
        let err = b.ingest(&mut &b"hello, world"[..], &e, "t", &mut |_| {}).unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
        assert!(!b.has(&e.digest));
        assert!(tmp_is_empty(&b));
    }
}
