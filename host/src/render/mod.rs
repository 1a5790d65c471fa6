//! Render: an image's layers → a root file system.
//!
//! Two ways, one tar walker ([`apply::Applier`]) underneath:
//! - [`flatten`] applies every layer, in order, into one fresh directory, carrying out
//!   whiteouts as deletions. Portable; what `berth image render` writes.
//! - [`extract`] is [`flatten`] into `DIR/rootfs`, with the image's manifest and config
//!   beside it (as `rkt image extract` lays out an image).
//! - [`mount_rootfs`] unpacks each layer once into its *snapshot* and mounts an overlay
//!   of the image's snapshots plus a fresh upper directory. Layers shared by images are
//!   unpacked once.
//!
//! Glossary:
//! - *layer*: a tar stream (maybe gzip or zstd compressed) stored as a blob; its
//!   *diff ID* is the digest of the uncompressed stream, checked while it is applied.
//! - *whiteout*: an OCI layer entry `.wh.<name>` that hides `<name>` of lower layers;
//!   the *opaque whiteout* `.wh..wh..opq` hides all lower entries of its directory.
//! - *snapshot*: `snapshots/<alg>-<hex of chain ID>/`, one layer unpacked over the
//!   snapshots below it, with its whiteouts in overlayfs form (char device 0/0,
//!   `trusted.overlay.opaque=y`). Written in `snapshots/.tmp-*` and renamed when
//!   complete: a visible snapshot is complete.
//!   Where the kernel allows, the snapshot is instead an EROFS *layer image*
//!   (`snapshots/<alg>-<hex>.erofs`, mounted at `mounts/<alg>-<hex>`; see [`erofs`]).
//! - *rootfs*: what a container sees as `/`.
//!
//! A flattened tree's inventory can be saved ([`save_inventory`]) and the tree later
//! checked against it ([`verify_tree`]): see [`inventory`].
//!
//! Nothing in a layer can create or change anything outside the directory it is
//! applied to: every path resolves inside it ([`resolve`], RESOLVE_IN_ROOT semantics);
//! see [`apply`] for the rules. A render that fails leaves nothing behind.

mod appc;
mod apply;
mod erofs;
mod error;
mod inventory;
mod layer;
mod mount;
mod resolve;
mod snapshot;
mod sparse;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use appc::{PATH_WHITELIST_ANNOTATION, apply_whitelists, find_dependency, image_layers};
pub use apply::{Applier, ApplyStats, OVERLAY_OPAQUE_XATTR, TarDialect, Whiteouts};
pub use erofs::{check_image as check_erofs_image, write_tar_image as write_erofs_image};
pub use error::RenderError;
pub use inventory::{Difference, Inventory, has_inventory, remove_stale_inventories, save_inventory, verify_tree};
pub use layer::{ACI_MEDIA_TYPE, Compression, EndPadded, HashingReader, sniffed_decoder};
pub use mount::{
    MountedRootfs, containers_root, detach_mounts_under, mount_overlay, mount_rootfs, remove_crashed_containers,
};
pub use snapshot::{
    DamagedImage, LayerImagesCheck, SNAPSHOTTER_ENV, SnapshotUse, Snapshotter, chain_ids, check_layer_images,
    choose_snapshotter, ensure_snapshots, layer_image_path, layer_mount_dir, remove_unused_snapshots, snapshot_dir,
    snapshots_root,
};

use error::io;

use crate::store::{Layer, Store, StoredImage};

/// What a render did, layer by layer.
#[derive(Debug, Default, serde::Serialize)]
pub struct RenderReport {
    pub layers: Vec<LayerReport>,
    /// The form of the layer snapshots, for an overlay rootfs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshotter: Option<Snapshotter>,
}

#[derive(Debug, serde::Serialize)]
pub struct LayerReport {
    pub digest: String,
    pub diff_id: Option<String>,
    /// "unpacked", or "reused" (a snapshot already held it).
    pub action: &'static str,
    pub stats: Option<ApplyStats>,
}

/// Apply one layer's stream into `root`, checking its diff ID; paths resolve over the
/// snapshots `lowers` gives (a snapshot's; a flattened tree holds its lowers itself).
fn apply_layer(
    store: &Store,
    layer: &Layer,
    root: &Path,
    whiteouts: Whiteouts,
    lowers: Option<&dyn resolve::LowerSource>,
) -> Result<ApplyStats, RenderError> {
    let digest = &layer.blob.digest;
    let mut stream = layer::open(store, layer)?;
    let applier = apply::Applier::new(root, digest.clone(), whiteouts)?
        .with_dialect(apply::TarDialect::of(layer))
        .with_lowers(lowers);
    let stats = if layer.diff_id.is_some() {
        let padded = layer::EndPadded::new(&mut stream);
        let end = padded.end();
        applier.with_stream_end(end).apply(padded)?
    } else {
        applier.apply(&mut stream)?
    };
    let actual = stream.finish().map_err(|source| RenderError::Tar { layer: digest.clone(), source })?;
    if let Some(expected) = &layer.diff_id
        && *expected != actual
    {
        return Err(RenderError::DiffIdMismatch { layer: digest.clone(), expected: expected.clone(), actual });
    }
    Ok(stats)
}

/// Render `image` as one flattened tree at `dir`, which must not exist (or be an empty
/// directory). The tree is built in a temporary sibling and renamed into place, so a
/// failed render leaves nothing.
pub fn flatten(store: &Store, image: &StoredImage, dir: &Path) -> Result<RenderReport, RenderError> {
    let (parent, name) = claim_target(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.berth-", name.to_string_lossy()))
        .tempdir_in(&parent)
        .map_err(io("creating a temporary directory in", &parent))?;
    // A rootfs is world-readable unless a layer says otherwise (`./` entry).
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(io("setting the mode of", tmp.path()))?;
    let mut report = RenderReport::default();
    for layer in &image_layers(store, image)? {
        let stats = apply_layer(store, layer, tmp.path(), Whiteouts::Delete, None)?;
        report.layers.push(LayerReport {
            digest: layer.blob.digest.to_string(),
            diff_id: layer.diff_id.as_ref().map(|d| d.to_string()),
            action: "unpacked",
            stats: Some(stats),
        });
    }
    apply_whitelists(store, image, tmp.path())?;
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(io("renaming the rendered rootfs to", dir)(e));
    }
    Ok(report)
}

/// Extract `image` into `dir` (which must not exist, or be empty): the flattened rootfs at
/// `dir/rootfs`, the manifest as stored at `dir/manifest`, and the config, when the image
/// has one, at `dir/config`. Built in a temporary sibling and renamed into place.
pub fn extract(store: &Store, image: &StoredImage, dir: &Path) -> Result<RenderReport, RenderError> {
    let (parent, name) = claim_target(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.berth-", name.to_string_lossy()))
        .tempdir_in(&parent)
        .map_err(io("creating a temporary directory in", &parent))?;
    let report = flatten(store, image, &tmp.path().join("rootfs"))?;
    let blobs = [("manifest", Some(&image.record.manifest)), ("config", image.record.config.as_ref())];
    for (file, descriptor) in blobs {
        let Some(descriptor) = descriptor else { continue };
        let target = tmp.path().join(file);
        let mut from = store.blobs().open_blob(&descriptor.digest)?;
        let mut to = std::fs::File::create(&target).map_err(io("creating", &target))?;
        std::io::copy(&mut from, &mut to).map_err(io("writing", &target))?;
    }
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(io("setting the mode of", tmp.path()))?;
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(io("renaming the extracted image to", dir)(e));
    }
    Ok(report)
}

/// Make sure a render target can be created: it must not exist, or be an empty directory
/// (which is removed, to be replaced by a rename). Returns its parent and file name.
fn claim_target(dir: &Path) -> Result<(PathBuf, std::ffi::OsString), RenderError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir(dir).map_err(|_| RenderError::TargetExists(dir.to_path_buf()))?;
        }
        Ok(_) => return Err(RenderError::TargetExists(dir.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspecting", dir)(e)),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir.file_name().ok_or_else(|| RenderError::TargetExists(dir.to_path_buf()))?.to_os_string();
    Ok((parent, name))
}
