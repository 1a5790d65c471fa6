//! Snapshots: one directory per layer under `snapshots/`, named by the layer's diff ID,
//! written in a temporary directory and renamed into place when complete. Two renders
//! of the same layer race harmlessly: the first rename wins, the loser discards its copy.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::io;
use super::{LayerReport, RenderError, RenderReport, Whiteouts, apply_layer};
use crate::store::{Digest, Layer, Store, StoredImage};

/// A layer of an image and the snapshot that holds it.
#[derive(Debug, Clone)]
pub struct SnapshotUse {
    pub layer: Digest,
    pub dir: PathBuf,
    pub reused: bool,
}

/// The key of a layer's snapshot: its diff ID, or the blob digest when the image has
/// none (the blob then is checked by the store, and the key still names one content).
fn key(layer: &Layer) -> &Digest {
    layer.diff_id.as_ref().unwrap_or(&layer.blob.digest)
}

pub fn snapshots_root(store: &Store) -> PathBuf {
    store.root().join("snapshots")
}

/// `snapshots/<alg>-<hex>`: no `:` in the name, since overlayfs options split on it.
pub fn snapshot_dir(store: &Store, layer: &Layer) -> PathBuf {
    let k = key(layer);
    snapshots_root(store).join(format!("{}-{}", k.algorithm().name(), k.hex()))
}

fn ensure_one(store: &Store, layer: &Layer) -> Result<(SnapshotUse, Option<super::ApplyStats>), RenderError> {
    let dir = snapshot_dir(store, layer);
    let done = |reused| SnapshotUse { layer: layer.blob.digest.clone(), dir: dir.clone(), reused };
    if dir.is_dir() {
        return Ok((done(true), None));
    }
    let root = snapshots_root(store);
    std::fs::create_dir_all(&root).map_err(io("creating", &root))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(&root)
        .map_err(io("creating a temporary snapshot in", &root))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(io("setting the mode of", tmp.path()))?;
    let stats = apply_layer(store, layer, tmp.path(), Whiteouts::Overlay)?;
    let tmp_path = tmp.keep();
    match std::fs::rename(&tmp_path, &dir) {
        Ok(()) => Ok((done(false), Some(stats))),
        Err(e) if dir.is_dir() => {
            // Another render committed the same snapshot first; ours is redundant.
            tracing::debug!(dir = %dir.display(), error = %e, "snapshot committed concurrently; discarding ours");
            let _ = std::fs::remove_dir_all(&tmp_path);
            Ok((done(true), None))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp_path);
            Err(io("committing the snapshot", &dir)(e))
        }
    }
}

/// Make sure every layer of `image` has its snapshot; unpack the missing ones, two at a
/// time. Returns them bottom layer first, with a report.
pub fn ensure_snapshots(store: &Store, image: &StoredImage) -> Result<(Vec<SnapshotUse>, RenderReport), RenderError> {
    let layers = &image.record.layers;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(layers.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(layer) = layers.get(i) else { break };
                        let r = ensure_one(store, layer);
                        let failed = r.is_err();
                        out.push((i, r));
                        if failed {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("snapshot worker panicked")).collect()
    });
    let mut ordered: Vec<Option<Result<_, RenderError>>> = (0..layers.len()).map(|_| None).collect();
    for (i, r) in results {
        ordered[i] = Some(r);
    }
    let mut uses = Vec::new();
    let mut report = RenderReport::default();
    for (layer, r) in layers.iter().zip(ordered) {
        let Some(r) = r else { continue };
        let (u, stats) = r?;
        report.layers.push(LayerReport {
            digest: layer.blob.digest.to_string(),
            diff_id: layer.diff_id.as_ref().map(|d| d.to_string()),
            action: if u.reused { "reused" } else { "unpacked" },
            stats,
        });
        uses.push(u);
    }
    Ok((uses, report))
}

/// Remove snapshots no stored image needs, and leftovers of interrupted unpacks.
/// Call under the store's exclusive lock. Returns how many directories were removed.
pub fn remove_unused_snapshots(store: &Store) -> Result<u64, RenderError> {
    let root = snapshots_root(store);
    let mut needed = std::collections::HashSet::new();
    for image in store.images()? {
        for layer in &image.record.layers {
            needed.insert(snapshot_dir(store, layer));
        }
    }
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("listing", &root)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(io("listing", &root))?.path();
        if needed.contains(&path) {
            continue;
        }
        remove_tree(&path)?;
        removed += 1;
    }
    Ok(removed)
}

fn remove_tree(path: &Path) -> Result<(), RenderError> {
    std::fs::remove_dir_all(path).map_err(io("removing", path))
}
