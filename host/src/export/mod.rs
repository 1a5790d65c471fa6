//! Export: a stored image → an OCI image layout (a directory) or an oci-archive (that
//! layout as one tar file), so skopeo, umoci, podman or another berth can take it.
//!
//! Blobs are written exactly as stored (manifest, config, layers), so the image keeps
//! its digests: exporting and fetching back yields the same image ID. Every blob is
//! re-hashed while it is copied; a store blob that no longer matches its digest stops
//! the export (run `berth fsck`) instead of spreading. Nothing is parsed but the target
//! layout's own `index.json`, which berth rewrites to add the image under its tag.
//!
//! A new layout or archive is written under a temporary name and renamed into place; an
//! existing layout gains blobs first and its `index.json` last (replaced by rename), so
//! an interrupted export leaves at most unreferenced blobs behind.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::store::{Descriptor, Digest, Hasher, Store, StoreError, StoredImage};
use crate::{ErrorKind, HasKind};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// An `index.json` larger than this is not one berth wrote or will rewrite.
const MAX_INDEX: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// A directory: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.
    Layout,
    /// The same, as an uncompressed tar file (what skopeo calls `oci-archive`).
    Archive,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0} exists and is not an OCI image layout (no oci-layout file); choose a new path")]
    NotALayout(PathBuf),
    #[error("{0} already exists; an oci-archive is written only to a new path")]
    ArchiveExists(PathBuf),
    #[error("{path}: index.json is not an OCI image index berth can add to: {reason}")]
    BadIndex { path: PathBuf, reason: String },
    #[error("{path}: index.json is not JSON")]
    IndexSyntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "stored blob {digest} now hashes to {actual}: the store is damaged (run `berth fsck`); nothing was exported"
    )]
    CorruptBlob { digest: Digest, actual: Digest },
    #[error(
        "layer {layer} of {image} was pulled partially (--partial): its blob is not in the store; \
         fetch the image again without --partial to export it"
    )]
    PartialLayer { image: Digest, layer: Digest },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HasKind for ExportError {
    fn kind(&self) -> ErrorKind {
        match self {
            ExportError::NotALayout(_) | ExportError::ArchiveExists(_) => ErrorKind::Usage,
            ExportError::BadIndex { .. } | ExportError::IndexSyntax { .. } => ErrorKind::Invalid,
            ExportError::CorruptBlob { .. } => ErrorKind::Corrupt,
            ExportError::PartialLayer { .. } => ErrorKind::NotFound,
            ExportError::Io { .. } => ErrorKind::Io,
            ExportError::Store(e) => e.kind(),
        }
    }
}

fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.into();
    move |source| ExportError::Io { action, path, source }
}

/// What an export wrote.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    pub out: PathBuf,
    pub format: ExportFormat,
    pub tag: String,
    pub manifest: Digest,
    /// Blobs copied, and blobs the target layout already held.
    pub blobs_written: usize,
    pub blobs_present: usize,
    pub bytes_written: u64,
}

/// Export `image` to `out` under `tag` (the `org.opencontainers.image.ref.name`
/// annotation; an existing entry with that tag is replaced).
pub fn export(
    store: &Store,
    image: &StoredImage,
    out: &Path,
    format: ExportFormat,
    tag: &str,
) -> Result<ExportReport, ExportError> {
    if let Some(layer) = image.record.layers.iter().find(|l| l.assembled.is_some()) {
        return Err(ExportError::PartialLayer {
            image: image.record.manifest.digest.clone(),
            layer: layer.blob.digest.clone(),
        });
    }
    let mut report = ExportReport {
        out: out.to_path_buf(),
        format,
        tag: tag.to_string(),
        manifest: image.record.manifest.digest.clone(),
        blobs_written: 0,
        blobs_present: 0,
        bytes_written: 0,
    };
    match format {
        ExportFormat::Layout => export_layout(store, image, out, tag, &mut report)?,
        ExportFormat::Archive => export_archive(store, image, out, tag, &mut report)?,
    }
    Ok(report)
}

/// The index entry naming the image's manifest under `tag`.
fn manifest_entry(image: &StoredImage, tag: &str) -> Value {
    let m = &image.record.manifest;
    let mut annotations: BTreeMap<String, String> = m.annotations.clone();
    annotations.insert(REF_NAME.to_string(), tag.to_string());
    let mut entry = json!({ "mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.size });
    if let Some(p) = &image.record.platform {
        let mut platform = json!({ "architecture": p.architecture, "os": p.os });
        if let Some(v) = &p.variant {
            platform["variant"] = json!(v);
        }
        entry["platform"] = platform;
    }
    entry["annotations"] = json!(annotations);
    entry
}

fn index_with(entries: Vec<Value>) -> Vec<u8> {
    let index = json!({ "schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries });
    serde_json::to_vec_pretty(&index).expect("a JSON value serialises")
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs").join(digest.algorithm().name()).join(digest.hex())
}

fn export_layout(
    store: &Store,
    image: &StoredImage,
    out: &Path,
    tag: &str,
    report: &mut ExportReport,
) -> Result<(), ExportError> {
    let existing = match std::fs::symlink_metadata(out) {
        Ok(m) if m.is_dir() && out.join("oci-layout").is_file() => true,
        Ok(m) if m.is_dir() && std::fs::read_dir(out).map_err(io("listing", out))?.next().is_none() => false,
        Ok(_) => return Err(ExportError::NotALayout(out.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io("inspecting", out)(e)),
    };
    if existing {
        let mut entries = read_index(out)?;
        for d in image.record.blobs() {
            copy_blob(store, d, out, report)?;
        }
        entries.retain(|e| e["annotations"][REF_NAME].as_str() != Some(tag));
        entries.push(manifest_entry(image, tag));
        write_atomically(&out.join("index.json"), &index_with(entries))?;
        return Ok(());
    }
    let parent = parent_of(out);
    let tmp = tempfile::Builder::new()
        .prefix(".berth-export-")
        .tempdir_in(&parent)
        .map_err(io("creating a temporary directory in", &parent))?;
    std::fs::write(tmp.path().join("oci-layout"), LAYOUT_FILE).map_err(io("writing", tmp.path()))?;
    for d in image.record.blobs() {
        copy_blob(store, d, tmp.path(), report)?;
    }
    std::fs::write(tmp.path().join("index.json"), index_with(vec![manifest_entry(image, tag)]))
        .map_err(io("writing", tmp.path()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(io("setting the mode of", tmp.path()))?;
    let _ = std::fs::remove_dir(out);
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, out) {
        let _ = std::fs::remove_dir_all(&kept);
        return Err(io("renaming the exported layout to", out)(e));
    }
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The `manifests` of an existing layout's index.json.
fn read_index(layout: &Path) -> Result<Vec<Value>, ExportError> {
    let path = layout.join("index.json");
    let bad = |reason: String| ExportError::BadIndex { path: layout.to_path_buf(), reason };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("opening", &path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_INDEX + 1).read_to_end(&mut bytes).map_err(io("reading", &path))?;
    if bytes.len() as u64 > MAX_INDEX {
        return Err(bad(format!("larger than {MAX_INDEX} bytes")));
    }
    let index: Value = serde_json::from_slice(&bytes)
        .map_err(|source| ExportError::IndexSyntax { path: layout.to_path_buf(), source })?;
    match index.get("manifests") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => Ok(entries.clone()),
        Some(_) => Err(bad("`manifests` is not an array".to_string())),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let parent = parent_of(path);
    let mut tmp = tempfile::NamedTempFile::new_in(&parent).map_err(io("creating a temporary file in", &parent))?;
    tmp.write_all(bytes).map_err(io("writing", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io("syncing", tmp.path()))?;
    tmp.persist(path).map_err(|e| io("replacing", path)(e.error))?;
    Ok(())
}

/// A reader of a stored blob that hashes what passes through; [`Verified::check`] then
/// tells whether the bytes were the blob's.
struct Verified<R> {
    inner: R,
    hasher: Option<Hasher>,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

impl<R> Verified<R> {
    fn check(&mut self, expected: &Digest) -> Result<(), ExportError> {
        let actual = self.hasher.take().expect("checked once").finish();
        if actual != *expected {
            return Err(ExportError::CorruptBlob { digest: expected.clone(), actual });
        }
        Ok(())
    }
}

fn open_verified(store: &Store, digest: &Digest) -> Result<Verified<std::fs::File>, ExportError> {
    Ok(Verified { inner: store.blobs().open_blob(digest)?, hasher: Some(Hasher::new(digest.algorithm())) })
}

/// Copy one blob into `layout/blobs/…` unless it is there already (content-addressed:
/// a file of the right size under its digest's name is taken as that blob).
fn copy_blob(store: &Store, d: &Descriptor, layout: &Path, report: &mut ExportReport) -> Result<(), ExportError> {
    let target = blob_path(layout, &d.digest);
    if std::fs::metadata(&target).is_ok_and(|m| m.len() == d.size) {
        report.blobs_present += 1;
        return Ok(());
    }
    let dir = parent_of(&target);
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let mut from = open_verified(store, &d.digest)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io("creating a temporary file in", &dir))?;
    let n = std::io::copy(&mut from, tmp.as_file_mut()).map_err(io("writing", tmp.path()))?;
    from.check(&d.digest)?;
    tmp.persist(&target).map_err(|e| io("committing", &target)(e.error))?;
    report.blobs_written += 1;
    report.bytes_written += n;
    Ok(())
}

fn export_archive(
    store: &Store,
    image: &StoredImage,
    out: &Path,
    tag: &str,
    report: &mut ExportReport,
) -> Result<(), ExportError> {
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(ExportError::ArchiveExists(out.to_path_buf()));
    }
    let parent = parent_of(out);
    let tmp = tempfile::Builder::new()
        .prefix(".berth-export-")
        .suffix(".tar")
        .tempfile_in(&parent)
        .map_err(io("creating a temporary file in", &parent))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, tmp.as_file()));
    let add = |tar: &mut tar::Builder<_>, path: &str, size: u64, data: &mut dyn Read, dir: bool| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
        header.set_mode(if dir { 0o755 } else { 0o644 });
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        tar.append_data(&mut header, path, data).map_err(io("writing", out))
    };
    add(&mut tar, "oci-layout", LAYOUT_FILE.len() as u64, &mut &LAYOUT_FILE[..], false)?;
    add(&mut tar, "blobs/", 0, &mut std::io::empty(), true)?;
    let mut dirs = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    for d in image.record.blobs() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let alg = d.digest.algorithm().name();
        if dirs.insert(alg) {
            add(&mut tar, &format!("blobs/{alg}/"), 0, &mut std::io::empty(), true)?;
        }
        let mut from = open_verified(store, &d.digest)?;
        add(&mut tar, &format!("blobs/{alg}/{}", d.digest.hex()), d.size, &mut from, false)?;
        from.check(&d.digest)?;
        report.blobs_written += 1;
        report.bytes_written += d.size;
    }
    let index = index_with(vec![manifest_entry(image, tag)]);
    add(&mut tar, "index.json", index.len() as u64, &mut &index[..], false)?;
    let buffered = tar.into_inner().map_err(io("writing", out))?;
    let file = buffered.into_inner().map_err(|e| io("writing", out)(e.into_error()))?;
    file.sync_all().map_err(io("syncing", out))?;
    // persist_noclobber: an archive that appeared meanwhile is not overwritten.
    tmp.persist_noclobber(out).map_err(|e| io("committing", out)(e.error))?;
    Ok(())
}
