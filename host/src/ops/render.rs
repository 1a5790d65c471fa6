//! Writing a stored image out: `render` (a rootfs), `extract` (rootfs, manifest,
//! config), `export` (an OCI layout or archive), and `verify` of a rendered tree.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Context, Doing, Error};
use crate::export::{self, ExportFormat, ExportReport};
use crate::render::{self, Difference, Inventory, RenderReport};
use crate::store::{Digest, IngestObserver, LockMode, Store, StoredImage};

/// What a render or extract wrote.
#[derive(Debug)]
pub struct Rendered {
    pub image: Digest,
    /// The rootfs: the flattened tree, or the overlay mount point.
    pub rootfs: PathBuf,
    pub report: RenderReport,
    /// Whether the tree's inventory was saved for `verify`.
    pub inventoried: bool,
}

/// Render the image `input` names into `dir`: a flattened copy (`dir` must not exist, or
/// be empty), inventoried unless `inventory` is false; or with `overlay` an overlay of
/// its layer snapshots at `dir/rootfs`, left mounted.
/// `observer` sees each layer blob as it is unpacked.
pub fn render(
    ctx: &Context,
    input: &str,
    dir: &Path,
    overlay: bool,
    inventory: bool,
    observer: Arc<dyn IngestObserver>,
) -> Result<Rendered, Error> {
    let (store, image) = image_to_unpack(ctx, input, observer)?;
    let digest = image.record.manifest.digest.clone();
    if overlay {
        let mut mounted = render::mount_rootfs(&store, &image, dir)
            .doing(|| format!("rendering {digest} as an overlay at {}", dir.display()))?;
        let report = std::mem::take(&mut mounted.report);
        return Ok(Rendered { image: digest, rootfs: mounted.keep_mounted(), report, inventoried: false });
    }
    let report = render::flatten(&store, &image, dir).doing(|| format!("rendering {digest} into {}", dir.display()))?;
    if inventory {
        save_inventory(&store, dir, &image)?;
    }
    Ok(Rendered { image: digest, rootfs: dir.to_path_buf(), report, inventoried: inventory })
}

/// Extract the image `input` names into `dir` as rkt laid one out: `dir/rootfs`
/// (flattened; inventoried unless `inventory` is false), `dir/manifest` and `dir/config`.
pub fn extract(
    ctx: &Context,
    input: &str,
    dir: &Path,
    inventory: bool,
    observer: Arc<dyn IngestObserver>,
) -> Result<Rendered, Error> {
    let (store, image) = image_to_unpack(ctx, input, observer)?;
    let digest = image.record.manifest.digest.clone();
    let report =
        render::extract(&store, &image, dir).doing(|| format!("extracting {digest} into {}", dir.display()))?;
    let rootfs = dir.join("rootfs");
    if inventory {
        save_inventory(&store, &rootfs, &image)?;
    }
    Ok(Rendered { image: digest, rootfs, report, inventoried: inventory })
}

/// The store, watched by `observer` as layers are read, and the image `input` names.
fn image_to_unpack(
    ctx: &Context,
    input: &str,
    observer: Arc<dyn IngestObserver>,
) -> Result<(Arc<Store>, StoredImage), Error> {
    let store = ctx.open_store(LockMode::Shared)?;
    store.observe_layer_reads(observer);
    let image = ctx.find_image(&store, input)?;
    Ok((store, image))
}

fn save_inventory(store: &Store, dir: &Path, image: &StoredImage) -> Result<(), Error> {
    render::save_inventory(store, dir, &image.record.manifest.digest).doing(|| {
        format!(
            "taking the inventory of the rendered tree {} (it was rendered; `verify` cannot check it)",
            dir.display()
        )
    })?;
    Ok(())
}

/// What an export wrote, and the point that reads it back.
#[derive(Debug)]
pub struct Exported {
    pub report: ExportReport,
    /// `oci-layout:OUT:TAG` or `oci-archive:OUT`.
    pub point: String,
}

/// Export the image `input` names to `out`: an OCI layout directory (an existing layout
/// gains it under `tag`) or an oci-archive. `format` `None`: an archive when `out` ends
/// in `.tar`, else a layout.
pub fn export(
    ctx: &Context,
    input: &str,
    out: &Path,
    format: Option<ExportFormat>,
    tag: &str,
) -> Result<Exported, Error> {
    let format = format.unwrap_or(if out.extension().is_some_and(|e| e == "tar") {
        ExportFormat::Archive
    } else {
        ExportFormat::Layout
    });
    let store = ctx.open_store(LockMode::Shared)?;
    let image = ctx.find_image(&store, input)?;
    let report = export::export(&store, &image, out, format, tag)
        .doing(|| format!("exporting {} to {}", image.record.manifest.digest, out.display()))?;
    let point = match format {
        ExportFormat::Layout => format!("oci-layout:{}:{tag}", out.display()),
        ExportFormat::Archive => format!("oci-archive:{}", out.display()),
    };
    Ok(Exported { report, point })
}

/// A rendered tree checked against its inventory.
#[derive(Debug)]
pub struct Verified {
    pub inventory: Inventory,
    /// Empty: unchanged.
    pub differences: Vec<Difference>,
}

/// Check the tree at `dir` (a render's target, or an extract's directory) against the
/// inventory taken when berth wrote it.
pub fn verify(ctx: &Context, dir: &Path) -> Result<Verified, Error> {
    let store = ctx.open_store(LockMode::Shared)?;
    // `extract` inventories DIR/rootfs; let the user name DIR.
    let target = if render::has_inventory(&store, dir)? || !dir.join("rootfs").is_dir() {
        dir.to_path_buf()
    } else {
        dir.join("rootfs")
    };
    let (inventory, differences) = render::verify_tree(&store, &target)?;
    Ok(Verified { inventory, differences })
}
