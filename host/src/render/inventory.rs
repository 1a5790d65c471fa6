//! Inventories of rendered trees: what a tree held when berth wrote it, so `berth image
//! verify` can tell later whether anything in it changed (as rkt's tree store did).
//!
//! An inventory lists every entry of the tree by its path inside it (`/` is the root)
//! with its type, mode, owner, size, mtime, content digest (regular files), link target
//! (symlinks), device number (devices) and xattrs. Inventories live in the store at
//! `renders/<sha256 of the tree's absolute path>.json`, so the tree itself holds nothing
//! of berth's and stays exactly the image's rootfs. (The store's image *records* are
//! another thing: see [`crate::store::ImageRecord`].)

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::RenderError;
use super::error::io;
use crate::store::{Digest, Store};

/// One entry of a tree, in a form that compares field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// `dir`, `file`, `symlink`, `char`, `block`, `fifo` or `socket`.
    pub kind: String,
    /// Permission bits with setuid/setgid/sticky, in octal.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, `seconds.nanoseconds`.
    pub mtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<String>,
    /// `name` → hex of the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

/// A tree's inventory: which image it was rendered from, and its entries by path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inventory {
    pub dir: PathBuf,
    pub image: Digest,
    /// Unix seconds.
    pub recorded_at: i64,
    pub entries: BTreeMap<String, InventoryEntry>,
}

/// One difference between an inventory and the tree as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Difference {
    Added { path: String },
    Removed { path: String },
    Changed { path: String, fields: Vec<&'static str> },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Added { path } => write!(f, "added    {path}"),
            Difference::Removed { path } => write!(f, "removed  {path}"),
            Difference::Changed { path, fields } => write!(f, "changed  {path} ({})", fields.join(", ")),
        }
    }
}

/// Walk `dir` (never following symlinks) and describe every entry.
pub fn walk_tree(dir: &Path) -> Result<BTreeMap<String, InventoryEntry>, RenderError> {
    let mut entries = BTreeMap::new();
    walk(dir, Path::new(""), &mut entries)?;
    Ok(entries)
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, InventoryEntry>) -> Result<(), RenderError> {
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).map_err(io("inspecting", &path))?;
    let described = entry(&path, &meta)?;
    let is_dir = meta.is_dir();
    out.insert(format!("/{}", rel.to_string_lossy()), described);
    if is_dir {
        let mut names: Vec<_> = std::fs::read_dir(&path)
            .map_err(io("listing", &path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io("listing", &path))?;
        names.sort();
        for name in names {
            walk(root, &rel.join(name), out)?;
        }
    }
    Ok(())
}

fn entry(path: &Path, meta: &std::fs::Metadata) -> Result<InventoryEntry, RenderError> {
    let t = meta.file_type();
    let kind = if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_char_device() {
        "char"
    } else if t.is_block_device() {
        "block"
    } else if t.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let (size, sha256) = if t.is_file() { (Some(meta.len()), Some(hash_file(path)?)) } else { (None, None) };
    let link = if t.is_symlink() {
        Some(std::fs::read_link(path).map_err(io("reading the link", path))?.to_string_lossy().into_owned())
    } else {
        None
    };
    let rdev = (t.is_char_device() || t.is_block_device()).then(|| {
        let dev = meta.rdev();
        format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev))
    });
    Ok(InventoryEntry {
        kind: kind.to_string(),
        mode: format!("{:o}", meta.mode() & 0o7777),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: format!("{}.{:09}", meta.mtime(), meta.mtime_nsec()),
        size,
        sha256,
        link,
        rdev,
        xattrs: xattrs(path)?,
    })
}

fn hash_file(path: &Path) -> Result<String, RenderError> {
    let mut file = std::fs::File::open(path).map_err(io("opening", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io("reading", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn xattrs(path: &Path) -> Result<BTreeMap<String, String>, RenderError> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(out),
            Err(e) => return Err(io("listing the xattrs of", path)(e.into())),
        }
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, name, &mut value) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 16, 0),
                // Removed between listing and reading: it is not there.
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(io("reading an xattr of", path)(e.into())),
            }
        };
        if len != usize::MAX {
            out.insert(name.to_string_lossy().into_owned(), hex::encode(&value[..len]));
        }
    }
    Ok(out)
}

/// What differs between an inventory and a fresh walk: entries added, removed, or changed
/// (naming the fields), in path order.
pub fn compare(recorded: &BTreeMap<String, InventoryEntry>, now: &BTreeMap<String, InventoryEntry>) -> Vec<Difference> {
    let mut out = Vec::new();
    for (path, was) in recorded {
        match now.get(path) {
            None => out.push(Difference::Removed { path: path.clone() }),
            Some(is) if is != was => {
                let mut fields = Vec::new();
                let checks: [(&'static str, bool); 10] = [
                    ("type", was.kind != is.kind),
                    ("mode", was.mode != is.mode),
                    ("uid", was.uid != is.uid),
                    ("gid", was.gid != is.gid),
                    ("mtime", was.mtime != is.mtime),
                    ("size", was.size != is.size),
                    ("content", was.sha256 != is.sha256),
                    ("link target", was.link != is.link),
                    ("device", was.rdev != is.rdev),
                    ("xattrs", was.xattrs != is.xattrs),
                ];
                fields.extend(checks.iter().filter(|(_, differs)| *differs).map(|(name, _)| *name));
                out.push(Difference::Changed { path: path.clone(), fields });
            }
            Some(_) => {}
        }
    }
    for path in now.keys() {
        if !recorded.contains_key(path) {
            out.push(Difference::Added { path: path.clone() });
        }
    }
    out.sort_by(|a, b| diff_path(a).cmp(diff_path(b)));
    out
}

fn diff_path(d: &Difference) -> &str {
    match d {
        Difference::Added { path } | Difference::Removed { path } | Difference::Changed { path, .. } => path,
    }
}

fn inventories_dir(store: &Store) -> PathBuf {
    store.root().join("renders")
}

/// Where the inventory of the tree at `dir` lives: named by its absolute path's digest.
fn inventory_path(store: &Store, dir: &Path) -> Result<PathBuf, RenderError> {
    let abs = std::path::absolute(dir).map_err(io("resolving", dir))?;
    let name = hex::encode(Sha256::digest(abs.as_os_str().as_bytes()));
    Ok(inventories_dir(store).join(format!("{name}.json")))
}

/// Record the tree at `dir`, rendered from `image`, in the store (replacing an earlier
/// inventory of the same path). Returns how many entries it holds.
pub fn save_inventory(store: &Store, dir: &Path, image: &Digest) -> Result<usize, RenderError> {
    let entries = walk_tree(dir)?;
    let count = entries.len();
    let inventory = Inventory {
        dir: std::path::absolute(dir).map_err(io("resolving", dir))?,
        image: image.clone(),
        recorded_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        entries,
    };
    let target = inventory_path(store, dir)?;
    let parent = inventories_dir(store);
    std::fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&parent).map_err(io("creating a temporary file in", &parent))?;
    serde_json::to_writer(std::io::BufWriter::new(tmp.as_file_mut()), &inventory)
        .map_err(|e| io("writing", tmp.path())(e.into()))?;
    tmp.as_file().sync_all().map_err(io("syncing", tmp.path()))?;
    tmp.persist(&target).map_err(|e| io("committing", &target)(e.error))?;
    Ok(count)
}

/// Whether berth holds an inventory of the tree at `dir`.
pub fn has_inventory(store: &Store, dir: &Path) -> Result<bool, RenderError> {
    Ok(inventory_path(store, dir)?.is_file())
}

/// The inventory of the tree at `dir`, if berth rendered one there.
pub fn load_inventory(store: &Store, dir: &Path) -> Result<Option<Inventory>, RenderError> {
    let path = inventory_path(store, dir)?;
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", &path)(e)),
    };
    let inventory = serde_json::from_slice(&bytes).map_err(|e| io("parsing", &path)(e.into()))?;
    Ok(Some(inventory))
}

/// Re-walk the tree at `dir` and compare it with its inventory.
pub fn verify_tree(store: &Store, dir: &Path) -> Result<(Inventory, Vec<Difference>), RenderError> {
    let inventory = load_inventory(store, dir)?.ok_or_else(|| RenderError::NoInventory(dir.to_path_buf()))?;
    let now = walk_tree(dir)?;
    let differences = compare(&inventory.entries, &now);
    Ok((inventory, differences))
}

/// Forget inventories of trees that no longer exist. Returns how many were removed.
pub fn remove_stale_inventories(store: &Store) -> Result<u64, RenderError> {
    let dir = inventories_dir(store);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("listing", &dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(io("listing", &dir))?.path();
        let stale = match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Inventory>(&b).ok()) {
            Some(inventory) => !inventory.dir.is_dir(),
            // Unreadable, or a temporary file of an interrupted save.
            None => true,
        };
        if stale {
            std::fs::remove_file(&path).map_err(io("removing", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"one").unwrap();
        std::fs::write(dir.path().join("b"), b"two").unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("l")).unwrap();
        let before = walk_tree(dir.path()).unwrap();
        assert_eq!(compare(&before, &walk_tree(dir.path()).unwrap()), vec![]);

        std::fs::remove_file(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("c"), b"new").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(dir.path().join("a")).unwrap();
        let mtime = std::fs::metadata(dir.path().join("a")).unwrap().modified().unwrap();
        std::io::Write::write_all(&mut &f, b"ONE").unwrap();
        f.set_modified(mtime).unwrap();
        let diffs = compare(&before, &walk_tree(dir.path()).unwrap());
        let shown: Vec<String> = diffs.iter().map(|d| d.to_string()).collect();
        assert!(shown.contains(&"changed  /a (content)".to_string()), "{shown:?}");
        assert!(shown.contains(&"removed  /b".to_string()), "{shown:?}");
        assert!(shown.contains(&"added    /c".to_string()), "{shown:?}");
        // The root directory's mtime changed with its entries.
        assert!(shown.iter().any(|s| s.starts_with("changed  / (mtime")), "{shown:?}");
        assert!(!shown.iter().any(|s| s.contains("/l")), "{shown:?}");
    }
}
