//! Store upkeep: `gc` and `fsck`.

use serde::Serialize;

use super::{Context, Error};
use crate::render::{self, LayerImagesCheck};
use crate::store::{FsckReport, GcReport, Problem};

/// What `gc` removed.
#[derive(Debug, Serialize)]
pub struct Collected {
    #[serde(flatten)]
    pub store: GcReport,
    pub snapshots_removed: u64,
    pub render_records_removed: u64,
    /// What killed `berth run`s left (their mounts and directories).
    pub crashed_containers_removed: u64,
}

/// Remove blobs and layer snapshots no stored image needs, inventories of rendered trees
/// that are gone, and leftovers of interrupted work.
pub fn gc(ctx: &Context) -> Result<Collected, Error> {
    let store = ctx.open_store_to_remove()?;
    // Every live run holds the store shared, so under this lock every container is dead.
    let crashed_containers_removed = render::remove_crashed_containers(&store)?;
    let report = store.gc()?;
    let snapshots = render::remove_unused_snapshots(&store)?;
    let inventories = render::remove_stale_inventories(&store)?;
    Ok(Collected {
        store: report,
        snapshots_removed: snapshots,
        render_records_removed: inventories,
        crashed_containers_removed,
    })
}

/// What `fsck` found.
#[derive(Debug, Serialize)]
pub struct Checked {
    #[serde(flatten)]
    pub store: FsckReport,
    pub layer_images: LayerImagesCheck,
}

impl Checked {
    pub fn is_clean(&self) -> bool {
        self.store.is_clean() && self.layer_images.damaged.is_empty()
    }
}

/// Re-hash every blob (corrupt ones go to quarantine), check that every image's blobs
/// are there, and check the EROFS layer images (damaged ones are removed, to be rebuilt).
pub fn fsck(ctx: &Context) -> Result<Checked, Error> {
    let store = ctx.open_store_to_remove()?;
    let mut report = store.fsck()?;
    check_assembled_layers(&store, &mut report)?;
    let layer_images = render::check_layer_images(&store)?;
    Ok(Checked { store: report, layer_images })
}

/// A partially pulled layer has no blob to re-hash: check its stored TOC against the
/// manifest's annotation and its assembled tar file by file against the TOC. A layer
/// whose blobs are missing or corrupt was reported already.
fn check_assembled_layers(store: &crate::store::Store, report: &mut FsckReport) -> Result<(), Error> {
    for image in store.images()? {
        for layer in &image.record.layers {
            let Some(assembled) = &layer.assembled else { continue };
            if !store.blobs().has(&assembled.toc.digest) || !store.blobs().has(&assembled.tar.digest) {
                continue;
            }
            report.assembled_layers_checked += 1;
            // The TOC digest the manifest announces (zstd:chunked producers may announce
            // only the compressed TOC's checksum, which the pull checked).
            let announced = layer.blob.annotations.get(crate::chunked::TOC_DIGEST_ANNOTATION);
            let reason = if announced.is_some_and(|a| *a != assembled.toc.digest.to_string()) {
                Some(format!("its TOC {} is not the one the manifest announces", assembled.toc.digest))
            } else {
                crate::chunked::check_assembled(store, assembled).err()
            };
            if let Some(reason) = reason {
                report.problems.push(Problem::Assembled {
                    image: image.record.manifest.digest.clone(),
                    layer: layer.blob.digest.clone(),
                    reason,
                });
            }
        }
    }
    Ok(())
}

/// What `system reset` removed.
#[derive(Debug, Serialize)]
pub struct Reset {
    pub root: std::path::PathBuf,
    /// Whether there was a store to remove.
    pub existed: bool,
    /// Mounts under the root detached first (layer mounts, leftover container rootfs).
    pub mounts_detached: usize,
}

/// Remove the whole store: wait for other berth processes to finish with it (a running
/// container holds it), detach every mount under it (EROFS layer mounts stay up by
/// design, which makes a plain `rm -rf` fail with "Read-only file system"), then delete
/// it. Keys, handlers and policy logs under the root go too.
pub fn system_reset(ctx: &Context) -> Result<Reset, Error> {
    let root = ctx.root().to_path_buf();
    if !root.exists() {
        return Ok(Reset { root, existed: false, mounts_detached: 0 });
    }
    // Held until the tree is gone: no other berth starts using it half-way.
    let store = ctx.open_store_to_remove()?;
    let mounts_detached = render::detach_mounts_under(&root)?;
    std::fs::remove_dir_all(&root).map_err(super::error::io("removing the store", &root))?;
    drop(store);
    Ok(Reset { root, existed: true, mounts_detached })
}
