//! EROFS snapshots: each layer converted, straight from its blob, into one read-only
//! EROFS image that the kernel mounts from the file (Linux ≥ 6.12, no loop device). A
//! layer becomes one file instead of thousands, which is what makes rendering fast
//! where creating a file costs a millisecond.
//!
//! Glossary:
//! - *layer image*: `snapshots/<alg>-<hex of chain ID>.erofs`, the layer with its whiteouts
//!   in overlayfs form (char 0/0, `trusted.overlay.opaque=y`), so images stack as
//!   overlay lower directories exactly as directory snapshots do.
//! - *layer mount*: `mounts/<alg>-<hex>`, where a layer image is mounted read-only,
//!   shared by every rootfs that has the layer, until `berth gc` finds no image needing it.
//!
//! The conversion walks the tar once: [`tree`] applies the entries to an in-memory tree
//! of inodes by the rules of the directory applier (the same path parsing, whiteout
//! names and refusals), while [`writer`] streams file data into the image; the metadata
//! is written when the tar ends. [`check`] reads an image back for `berth fsck`.

mod check;
mod ondisk;
mod tree;
mod writer;

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::mount::{MountFlags, UnmountFlags};

pub use check::check_image;

use super::error::io;
use super::layer::{self, EndPadded};
use super::resolve::LowerSource;
use super::{ApplyStats, RenderError, TarDialect};
use crate::store::{Digest, Layer, Store};

/// `f_type` of a mounted EROFS file system.
const EROFS_SUPER_MAGIC: i64 = ondisk::MAGIC as i64;

/// Convert `layer` into an EROFS image written to `out` (a new, empty file at `path`),
/// checking the layer's diff ID; its paths resolve over the snapshots `lowers` gives.
/// Nothing but metadata is held in memory.
pub fn write_layer_image(
    store: &Store,
    layer: &Layer,
    out: std::fs::File,
    path: &Path,
    lowers: Option<&dyn LowerSource>,
) -> Result<ApplyStats, RenderError> {
    let digest = &layer.blob.digest;
    let tar_err = |source| RenderError::Tar { layer: digest.clone(), source };
    let mut stream = layer::open(store, layer)?;
    let mut tree = tree::Tree::new(digest.clone()).with_lowers(lowers);
    tree.dialect = super::apply::TarDialect::of(layer);
    let mut writer = writer::ImageWriter::new(out).map_err(io("writing", path))?;
    {
        let reader: Box<dyn Read + '_> = if layer.diff_id.is_some() {
            let padded = EndPadded::new(&mut stream);
            tree = tree.with_stream_end(padded.end());
            Box::new(padded)
        } else {
            Box::new(&mut stream)
        };
        read_tar(reader, digest, &mut tree, &mut writer)?;
    }
    let actual = stream.finish().map_err(tar_err)?;
    if let Some(expected) = &layer.diff_id
        && *expected != actual
    {
        return Err(RenderError::DiffIdMismatch { layer: digest.clone(), expected: expected.clone(), actual });
    }
    tree.finish()?;
    // Durable before the caller renames it into place, as blobs are.
    writer.finish(&tree).and_then(|f| f.sync_all()).map_err(io("writing", path))?;
    Ok(tree.stats)
}

/// Convert a plain (uncompressed) tar stream into an EROFS image written to `out`, read
/// with `dialect`: [`write_layer_image`] without a store, decompression or diff-ID check.
/// The fuzz targets drive the writer through it.
pub fn write_tar_image(
    tar: impl Read,
    layer: Digest,
    dialect: TarDialect,
    out: std::fs::File,
) -> Result<ApplyStats, RenderError> {
    let mut tree = tree::Tree::new(layer.clone());
    tree.dialect = dialect;
    let io_err = |source| RenderError::Tar { layer: layer.clone(), source };
    let mut writer = writer::ImageWriter::new(out).map_err(io_err)?;
    read_tar(tar, &layer, &mut tree, &mut writer)?;
    tree.finish()?;
    writer.finish(&tree).map_err(io_err)?;
    Ok(tree.stats)
}

/// Walk a tar stream into `tree`, file data into `writer`, and drain its padding.
fn read_tar(
    tar: impl Read,
    layer: &Digest,
    tree: &mut tree::Tree,
    writer: &mut writer::ImageWriter,
) -> Result<(), RenderError> {
    let tar_err = |source| RenderError::Tar { layer: layer.clone(), source };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        tree.entry(&mut entry, writer)?;
    }
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(tar_err)?;
    Ok(())
}

/// An image of an empty layer (just its root), for probing the kernel.
pub fn write_empty_image(out: std::fs::File) -> std::io::Result<()> {
    let tree = tree::Tree::new(crate::store::Digest::of_bytes(crate::store::Algorithm::Sha256, b""));
    writer::ImageWriter::new(out)?.finish(&tree).map(drop)
}

/// Is an EROFS file system mounted at `dir`?
pub fn is_mounted(dir: &Path) -> bool {
    // f_type is i64 on x86_64 but narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as i64 == EROFS_SUPER_MAGIC)
}

/// Mount the image file `image` read-only at `dir` (which must exist).
pub fn mount_image(image: &Path, dir: &Path) -> Result<(), RenderError> {
    let source = CString::new(image.as_os_str().as_bytes())
        .map_err(|e| io("mounting", image)(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    rustix::mount::mount(source.as_c_str(), dir, c"erofs", MountFlags::RDONLY, c"")
        .map_err(|e| io("mounting an EROFS layer image at", dir)(e.into()))
}

/// Detach the layer mount at `dir`. A rootfs already using it keeps its own reference
/// (overlayfs holds private clones of its lower layers), so this never breaks one.
pub fn unmount_image(dir: &Path) -> Result<(), RenderError> {
    rustix::mount::unmount(dir, UnmountFlags::DETACH).map_err(|e| io("unmounting", dir)(e.into()))
}

#[cfg(test)]
mod tests;
