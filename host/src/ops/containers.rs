//! The containers `run IMAGE` starts, as the store sees them: `containers/<name>/` holds
//! the rootfs mount, its upper and work directories, `container.json` (which image) and
//! `lock`, held (flock) by the `berth run` process for as long as the container runs.
//!
//! Glossary:
//! - *live*: its lock is held: a `berth run` is using it (and holds the store shared).
//! - *dead*: it has a `container.json` but nobody holds its lock: the `berth run` was
//!   killed (SIGKILL, a crash) before it could unmount and remove the directory (its
//!   workload died with it). `gc` detaches its mounts and removes it
//!   ([`crate::render::remove_crashed_containers`]).
//! - *kept*: `run --keep` left its `upper/` (no `container.json`, no lock); gc leaves it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use super::Error;
use super::error::io;

/// What `container.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub name: String,
    /// The canonical point of its image.
    pub image: String,
    /// Its image's manifest digest.
    pub digest: String,
    /// The `berth run` process.
    pub pid: u32,
}

/// A container directory found under the store.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub info: ContainerInfo,
    pub dir: PathBuf,
    pub live: bool,
}

/// The lock of a running container: released (and the record removed) when dropped.
pub(super) struct Claim {
    _lock: File,
}

/// Record a container about to run and hold its lock. `dir` exists.
pub(super) fn claim(dir: &Path, info: &ContainerInfo) -> Result<Claim, Error> {
    let lock_path = dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("creating", &lock_path))?;
    flock(&lock, FlockOperation::NonBlockingLockExclusive).map_err(|e| io("locking", &lock_path)(e.into()))?;
    let record = dir.join("container.json");
    let text = serde_json::to_vec(info).expect("a container record serializes");
    std::fs::write(&record, text).map_err(io("writing", &record))?;
    Ok(Claim { _lock: lock })
}

/// Forget a container that ended but whose directory stays (`--keep`): a kept upper
/// directory is the user's, not a leftover.
pub(super) fn release(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("container.json"));
    let _ = std::fs::remove_file(dir.join("lock"));
}

/// Every recorded container under `root`, live or dead.
pub fn containers(root: &Path) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(root.join("containers")) else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(text) = std::fs::read(dir.join("container.json")) else { continue };
        let Ok(info) = serde_json::from_slice::<ContainerInfo>(&text) else { continue };
        let live = match File::open(dir.join("lock")) {
            // Taking the lock ourselves means nobody holds it; it is released on drop.
            Ok(f) => flock(&f, FlockOperation::NonBlockingLockShared).is_err(),
            Err(_) => false,
        };
        found.push(Found { info, dir, live });
    }
    found.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    found
}

/// `name (image)` of each live container, for messages.
pub(super) fn describe_live(root: &Path) -> Vec<String> {
    containers(root)
        .into_iter()
        .filter(|c| c.live)
        .map(|c| format!("{} ({}, berth pid {})", c.info.name, c.info.image, c.info.pid))
        .collect()
}
