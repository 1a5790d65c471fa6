//! `info` and `system df`: what this berth is, and where its disk space goes.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Context, Error};
use crate::fetch::handlers;
use crate::render::{self, Snapshotter};
use crate::store::{Algorithm, Digest, LockMode};

/// What `berth info` shows.
#[derive(Debug, Serialize)]
pub struct Info {
    pub version: &'static str,
    pub root: PathBuf,
    /// `false`: nothing was ever stored there (the store is created on first use).
    pub store_exists: bool,
    pub rootless: bool,
    pub images: usize,
    /// `dir` or `erofs`, as a render would choose now; with why EROFS is not used.
    pub snapshotter: Option<Snapshotter>,
    pub snapshotter_note: Option<String>,
    /// Whether the kernel lists the file system (`/proc/filesystems`).
    pub overlayfs: bool,
    pub erofs: bool,
    pub handlers: Vec<HandlerVersion>,
    /// The policy file in effect, if any.
    pub policy: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HandlerVersion {
    pub scheme: String,
    pub digest: Digest,
    /// `builtin`, or a drop-in's path.
    pub source: String,
}

pub fn info(ctx: &Context) -> Result<Info, Error> {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let listed = |fs: &str| filesystems.lines().any(|l| l.split_whitespace().last() == Some(fs));
    let store_exists = ctx.root().join("berth.db").exists();
    let mut info = Info {
        version: env!("CARGO_PKG_VERSION"),
        root: ctx.root().to_path_buf(),
        store_exists,
        rootless: !rustix::process::geteuid().is_root(),
        images: 0,
        snapshotter: None,
        snapshotter_note: None,
        overlayfs: listed("overlay"),
        erofs: listed("erofs"),
        handlers: handlers::builtin_types()
            .into_iter()
            .map(|scheme| HandlerVersion {
                scheme: scheme.to_string(),
                digest: Digest::of_bytes(Algorithm::Sha256, handlers::builtin_named(scheme).unwrap_or_default()),
                source: "builtin".into(),
            })
            .collect(),
        policy: ctx.policy(false)?.map(|p| format!("{} ({})", p.config_origin(), p.digest().short())),
    };
    for d in crate::fetch::dropin::discover(&crate::fetch::dropin::default_dirs(ctx.root())).into_iter().flatten() {
        info.handlers.push(HandlerVersion {
            scheme: d.declaration.scheme.clone(),
            digest: d.digest.clone(),
            source: d.path.display().to_string(),
        });
    }
    if store_exists {
        let store = ctx.open_store(LockMode::Shared)?;
        info.images = store.images()?.len();
        match render::choose_snapshotter(&store) {
            Ok(s) => info.snapshotter = Some(s),
            Err(e) => info.snapshotter_note = Some(e.to_string()),
        }
    }
    Ok(info)
}

/// One line of `system df`.
#[derive(Debug, Serialize)]
pub struct Usage {
    /// `blobs`, `snapshots`, `layer images`, `containers`, `component cache`, `other`.
    pub kind: &'static str,
    pub count: u64,
    /// Bytes on disk (allocated blocks).
    pub bytes: u64,
    /// What `berth gc` would free.
    pub reclaimable: u64,
}

#[derive(Debug, Serialize)]
pub struct DiskUsage {
    pub root: PathBuf,
    pub images: usize,
    pub usage: Vec<Usage>,
    pub total: u64,
}

/// Where the store's disk space goes, and what `gc` would free.
pub fn disk_usage(ctx: &Context) -> Result<DiskUsage, Error> {
    let root = ctx.root().to_path_buf();
    if !root.join("berth.db").exists() {
        return Ok(DiskUsage { root, images: 0, usage: Vec::new(), total: 0 });
    }
    let store = ctx.open_store(LockMode::Shared)?;
    let images = store.images()?;
    let reachable = store.reachable_blobs()?;
    let mut needed_snapshots = HashSet::new();
    for image in &images {
        // Snapshots are named by chain ID (a layer over the layers below it).
        let layers = render::image_layers(&store, image)
            .unwrap_or_else(|_| image.record.layers.iter().map(crate::store::Layer::as_rendered).collect());
        for key in render::chain_ids(&layers) {
            needed_snapshots.insert(name_of(&render::snapshot_dir(&store, &key)));
            needed_snapshots.insert(name_of(&render::layer_image_path(&store, &key)));
        }
    }
    let mut blobs = Usage { kind: "blobs", count: 0, bytes: 0, reclaimable: 0 };
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let dir = root.join("blobs").join(alg.name());
        for entry in read_dir(&dir) {
            let size = disk_bytes(&entry.path());
            blobs.count += 1;
            blobs.bytes += size;
            let digest = format!("{}:{}", alg.name(), entry.file_name().to_string_lossy()).parse::<Digest>().ok();
            if digest.is_none_or(|d| !reachable.contains(&d)) {
                blobs.reclaimable += size;
            }
        }
    }
    let mut snapshots = Usage { kind: "snapshots", count: 0, bytes: 0, reclaimable: 0 };
    let mut layer_images = Usage { kind: "layer images", count: 0, bytes: 0, reclaimable: 0 };
    for entry in read_dir(&render::snapshots_root(&store)) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let usage = if name.ends_with(".erofs") { &mut layer_images } else { &mut snapshots };
        let size = disk_bytes(&entry.path());
        usage.count += 1;
        usage.bytes += size;
        if !needed_snapshots.contains(&name) {
            usage.reclaimable += size;
        }
    }
    let mut containers = Usage { kind: "containers", count: 0, bytes: 0, reclaimable: 0 };
    for entry in read_dir(&root.join("containers")) {
        containers.count += 1;
        containers.bytes += disk_bytes(&entry.path());
    }
    let cache_dir = root.join("cache");
    let cache = Usage {
        kind: "component cache",
        count: read_dir(&cache_dir.join("components")).len() as u64,
        bytes: disk_bytes(&cache_dir),
        reclaimable: 0,
    };
    let counted = blobs.bytes + snapshots.bytes + layer_images.bytes + containers.bytes + cache.bytes;
    let total = disk_bytes(&root);
    let other = Usage { kind: "other", count: 0, bytes: total.saturating_sub(counted), reclaimable: 0 };
    Ok(DiskUsage {
        root,
        images: images.len(),
        usage: vec![blobs, snapshots, layer_images, containers, cache, other],
        total,
    })
}

fn name_of(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The entries of a directory; none when it is missing or unreadable.
fn read_dir(dir: &Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir).map(|entries| entries.flatten().collect()).unwrap_or_default()
}

/// Bytes allocated to `path` and, for a directory, everything below it on the same file
/// system (layer mounts are other file systems, counted as their image files).
fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in read_dir(&dir) {
                let Ok(m) = entry.metadata() else { continue };
                if m.dev() != meta.dev() {
                    continue;
                }
                total += m.blocks() * 512;
                if m.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
    }
    total
}
