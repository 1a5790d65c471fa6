//! Snapshots: one per layer under `snapshots/`, named by the layer's *chain ID* (the
//! layer with everything below it, as containerd names snapshots), in one of two forms
//! ([`Snapshotter`]): a directory `<alg>-<hex>/`, or an EROFS image `<alg>-<hex>.erofs`
//! mounted at `mounts/<alg>-<hex>/`. Either is written under a temporary name and renamed
//! into place when complete. Two renders of the same layer race harmlessly: the first
//! rename wins, the loser discards its copy.
//!
//! A layer is unpacked over the snapshots below it: its paths resolve in their merged
//! view (an entry under `var/run` lands in `run` when a lower layer has `var/run -> /run`),
//! and directories it writes into without describing them take the lower's metadata.
//! Layers unpack in parallel; one waits for its lowers only when a path needs them.
//!
//! EROFS is used when it can be: as root, on a kernel listing erofs in
//! `/proc/filesystems`, once a probe image mounts. `BERTH_SNAPSHOTTER=dir` (or `erofs`)
//! forces a form; falling back says so in one line.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::error::io;
use super::resolve::LowerSource;
use super::{LayerReport, RenderError, RenderReport, Whiteouts, apply_layer, erofs};
use crate::store::{Algorithm, Digest, Layer, Store, StoredImage};

/// The environment variable that forces a snapshot form: `dir`, `erofs` or `auto`.
pub const SNAPSHOTTER_ENV: &str = "BERTH_SNAPSHOTTER";

/// The form of a layer's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Snapshotter {
    /// A directory per layer: portable, rootless; one file created per entry.
    Dir,
    /// An EROFS image per layer, mounted read-only: one file per layer.
    Erofs,
}

/// Pick the snapshot form: `$BERTH_SNAPSHOTTER`, else EROFS where it works, else
/// directories (saying why, once per process).
pub fn choose_snapshotter(store: &Store) -> Result<Snapshotter, RenderError> {
    let wanted = std::env::var(SNAPSHOTTER_ENV).unwrap_or_default();
    match wanted.as_str() {
        "dir" => Ok(Snapshotter::Dir),
        "erofs" => match probe_erofs(store) {
            Ok(()) => Ok(Snapshotter::Erofs),
            Err(reason) => Err(RenderError::ErofsUnavailable { reason }),
        },
        "" | "auto" => match probe_erofs(store) {
            Ok(()) => Ok(Snapshotter::Erofs),
            Err(reason) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| tracing::warn!("EROFS snapshots unavailable ({reason}); using directory snapshots"));
                Ok(Snapshotter::Dir)
            }
        },
        other => Err(RenderError::UnknownSnapshotter(other.to_string())),
    }
}

/// Can this process mount an EROFS image from a file? Asked once per process.
fn probe_erofs(store: &Store) -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            // The kernel mounts EROFS only for root of the initial user namespace (its
            // uid_map maps every id to itself).
            let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
            let initial = uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
            if !rustix::process::geteuid().is_root() || !initial {
                return Err("EROFS mounts need root outside user namespaces".into());
            }
            let listed = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
            if !listed.lines().any(|l| l.split_whitespace().last() == Some("erofs")) {
                return Err("the kernel has no EROFS".into());
            }
            // A layer mount of this store already shows that mounting works.
            if let Ok(mounts) = std::fs::read_dir(mounts_root(store))
                && mounts.flatten().any(|m| erofs::is_mounted(&m.path()))
            {
                return Ok(());
            }
            let root = snapshots_root(store);
            std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
            let dir = tempfile::Builder::new()
                .prefix(".tmp-probe-")
                .tempdir_in(&root)
                .map_err(|e| format!("creating a probe directory: {e}"))?;
            let image = dir.path().join("probe.erofs");
            let mnt = dir.path().join("mnt");
            std::fs::create_dir(&mnt).map_err(|e| format!("creating {}: {e}", mnt.display()))?;
            let file = std::fs::File::create(&image).map_err(|e| format!("creating {}: {e}", image.display()))?;
            erofs::write_empty_image(file).map_err(|e| format!("writing a probe image: {e}"))?;
            erofs::mount_image(&image, &mnt).map_err(|e| {
                let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
                format!("the kernel cannot mount an EROFS file here{cause}")
            })?;
            erofs::unmount_image(&mnt).map_err(|e| e.to_string())
        })
        .clone()
}

/// A layer of an image and the snapshot that holds it.
#[derive(Debug, Clone)]
pub struct SnapshotUse {
    pub layer: Digest,
    pub dir: PathBuf,
    pub reused: bool,
}

/// A layer's own key: its diff ID, or the blob digest when the image has none (the blob
/// then is checked by the store, and the key still names one content).
fn layer_key(layer: &Layer) -> &Digest {
    layer.diff_id.as_ref().unwrap_or(&layer.blob.digest)
}

/// The keys of the snapshots of a stack of layers (lowest first): OCI's chain IDs,
/// `ChainID(L0) = DiffID(L0)`, `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " +
/// DiffID(Ln))`. A layer's snapshot depends on the layers below it (paths resolve
/// through their symlinks), so it is shared by images with the same layers below.
pub fn chain_ids(layers: &[Layer]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(layers.len());
    for layer in layers {
        let key = match out.last() {
            None => layer_key(layer).clone(),
            Some(below) => Digest::of_bytes(Algorithm::Sha256, format!("{below} {}", layer_key(layer)).as_bytes()),
        };
        out.push(key);
    }
    out
}

fn key_name(key: &Digest) -> String {
    format!("{}-{}", key.algorithm().name(), key.hex())
}

pub fn snapshots_root(store: &Store) -> PathBuf {
    store.root().join("snapshots")
}

/// `snapshots/<alg>-<hex>` of a chain ID: no `:` in the name, since overlayfs options
/// split on it.
pub fn snapshot_dir(store: &Store, chain_id: &Digest) -> PathBuf {
    snapshots_root(store).join(key_name(chain_id))
}

/// `snapshots/<alg>-<hex>.erofs`: a layer's EROFS image.
pub fn layer_image_path(store: &Store, chain_id: &Digest) -> PathBuf {
    snapshots_root(store).join(format!("{}.erofs", key_name(chain_id)))
}

pub fn mounts_root(store: &Store) -> PathBuf {
    store.root().join("mounts")
}

/// `mounts/<alg>-<hex>`: where a layer image is mounted.
pub fn layer_mount_dir(store: &Store, chain_id: &Digest) -> PathBuf {
    mounts_root(store).join(key_name(chain_id))
}

/// The snapshots of the layers below one being unpacked, as they are completed.
struct Progress {
    done: std::sync::Mutex<Vec<Option<Result<PathBuf, ()>>>>,
    changed: std::sync::Condvar,
}

impl Progress {
    fn new(layers: usize) -> Progress {
        Progress { done: std::sync::Mutex::new(vec![None; layers]), changed: std::sync::Condvar::new() }
    }

    fn finished(&self, i: usize, tree: Result<PathBuf, ()>) {
        self.done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(tree);
        self.changed.notify_all();
    }
}

/// The snapshots below layer `layer` of a stack.
struct Below<'p> {
    progress: &'p Progress,
    below: usize,
    layer: &'p Digest,
}

impl LowerSource for Below<'_> {
    fn lower_trees(&self) -> Result<Vec<PathBuf>, RenderError> {
        let mut done = self.progress.done.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let lower = &done[..self.below];
            if lower.iter().any(|d| matches!(d, Some(Err(())))) {
                return Err(RenderError::LowerFailed { layer: self.layer.clone() });
            }
            if lower.iter().all(Option::is_some) {
                return Ok(lower.iter().rev().map(|d| d.clone().expect("all done").expect("none failed")).collect());
            }
            done = self.progress.changed.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Convert a layer into its EROFS image unless it has one, and mount it unless it is.
fn ensure_one_erofs(
    store: &Store,
    layer: &Layer,
    key: &Digest,
    lowers: Option<&dyn LowerSource>,
) -> Result<(SnapshotUse, Option<super::ApplyStats>), RenderError> {
    let image = layer_image_path(store, key);
    let mnt = layer_mount_dir(store, key);
    let mut stats = None;
    if !image.is_file() {
        let root = snapshots_root(store);
        std::fs::create_dir_all(&root).map_err(io("creating", &root))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".erofs")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(&root)
            .map_err(io("creating a temporary layer image in", &root))?;
        let file = tmp.as_file().try_clone().map_err(io("opening", tmp.path()))?;
        stats = Some(erofs::write_layer_image(store, layer, file, tmp.path(), lowers)?);
        match tmp.persist_noclobber(&image) {
            Ok(_) => {}
            // Another render committed the same image first; ours is redundant.
            Err(_) if image.is_file() => stats = None,
            Err(e) => return Err(io("committing the layer image", &image)(e.error)),
        }
    }
    std::fs::create_dir_all(&mnt).map_err(io("creating", &mnt))?;
    // Two renders mounting the same layer at once: one mounts, the other sees it.
    let lock = std::fs::File::open(&image).map_err(io("opening", &image))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| io("locking", &image)(e.into()))?;
    if !erofs::is_mounted(&mnt) {
        erofs::mount_image(&image, &mnt)?;
    }
    let reused = stats.is_none();
    Ok((SnapshotUse { layer: layer.blob.digest.clone(), dir: mnt, reused }, stats))
}

fn ensure_one(
    store: &Store,
    layer: &Layer,
    key: &Digest,
    lowers: Option<&dyn LowerSource>,
) -> Result<(SnapshotUse, Option<super::ApplyStats>), RenderError> {
    let dir = snapshot_dir(store, key);
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
    let stats = apply_layer(store, layer, tmp.path(), Whiteouts::Overlay, lowers)?;
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

/// Make sure every layer of `image` has its snapshot in the form `snapshotter`; unpack
/// the missing ones, two at a time. Returns them bottom layer first, with a report.
pub fn ensure_snapshots(
    store: &Store,
    image: &StoredImage,
    snapshotter: Snapshotter,
) -> Result<(Vec<SnapshotUse>, RenderReport), RenderError> {
    let layers = &super::image_layers(store, image)?;
    let keys = &chain_ids(layers);
    let progress = &Progress::new(layers.len());
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
                        let below = Below { progress, below: i, layer: &layer.blob.digest };
                        let lowers = (i > 0).then_some(&below as &dyn LowerSource);
                        let r = match snapshotter {
                            Snapshotter::Dir => ensure_one(store, layer, &keys[i], lowers),
                            Snapshotter::Erofs => ensure_one_erofs(store, layer, &keys[i], lowers),
                        };
                        progress.finished(i, r.as_ref().map(|(u, _)| u.dir.clone()).map_err(drop));
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
    let mut report = RenderReport { snapshotter: Some(snapshotter), ..RenderReport::default() };
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

/// Remove snapshots no stored image needs, and leftovers of interrupted unpacks; detach
/// every layer mount (the next render mounts what it needs again). Detaching never
/// breaks a rootfs in use: overlayfs holds private clones of its lower layers. Call under
/// the store's exclusive lock. Returns how many snapshots (directories and layer images)
/// were removed.
pub fn remove_unused_snapshots(store: &Store) -> Result<u64, RenderError> {
    let root = snapshots_root(store);
    let mounts = mounts_root(store);
    let mut needed = std::collections::HashSet::new();
    for image in store.images()? {
        // An appc image's stack holds its dependencies; one that cannot be stacked now
        // cannot be rendered either, and its own layers are what it would need.
        let layers = super::image_layers(store, &image)
            .unwrap_or_else(|_| image.record.layers.iter().map(Layer::as_rendered).collect());
        for key in chain_ids(&layers) {
            needed.insert(snapshot_dir(store, &key));
            needed.insert(layer_image_path(store, &key));
            needed.insert(layer_mount_dir(store, &key));
        }
    }
    // Mounts first: a layer image is removed only once nothing new can be mounted from it.
    for path in list(&mounts)? {
        if erofs::is_mounted(&path) {
            erofs::unmount_image(&path)?;
        }
        if !needed.contains(&path) {
            std::fs::remove_dir(&path).map_err(io("removing", &path))?;
        }
    }
    let mut removed = 0;
    for path in list(&root)? {
        if needed.contains(&path) {
            continue;
        }
        if std::fs::symlink_metadata(&path).map_err(io("inspecting", &path))?.is_dir() {
            // An EROFS probe killed while its image was mounted leaves the mount inside.
            super::mount::detach_mounts_under(&path)?;
            remove_tree(&path)?;
        } else {
            std::fs::remove_file(&path).map_err(io("removing", &path))?;
        }
        removed += 1;
    }
    Ok(removed)
}

/// A damaged layer image.
#[derive(Debug, serde::Serialize)]
pub struct DamagedImage {
    pub path: PathBuf,
    pub reason: String,
}

/// What checking the layer images found.
#[derive(Debug, Default, serde::Serialize)]
pub struct LayerImagesCheck {
    pub checked: u64,
    /// Removed (and their mounts detached); each is rebuilt from its layer when needed.
    pub damaged: Vec<DamagedImage>,
}

/// Check every layer image under `snapshots/`; remove the damaged ones so the next render
/// rebuilds them from their layers. Call under the store's exclusive lock.
pub fn check_layer_images(store: &Store) -> Result<LayerImagesCheck, RenderError> {
    let mut report = LayerImagesCheck::default();
    for path in list(&snapshots_root(store))? {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".erofs").filter(|_| !name.starts_with('.')) else { continue };
        report.checked += 1;
        match erofs::check_image(&path) {
            Ok(_) => {}
            Err(e @ RenderError::BadImage { .. }) => {
                let mnt = mounts_root(store).join(stem);
                if erofs::is_mounted(&mnt) {
                    erofs::unmount_image(&mnt)?;
                }
                std::fs::remove_file(&path).map_err(io("removing", &path))?;
                report.damaged.push(DamagedImage { path, reason: e.to_string() });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// The entries of a directory (none if it does not exist).
fn list(dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("listing", dir)(e)),
    };
    entries.map(|e| e.map(|e| e.path()).map_err(io("listing", dir))).collect()
}

fn remove_tree(path: &Path) -> Result<(), RenderError> {
    std::fs::remove_dir_all(path).map_err(io("removing", path))
}
