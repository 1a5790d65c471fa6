//! A file tree as a comparable manifest: one line per path with its type, mode, owner,
//! size, content hash, link target, device numbers, link count and xattrs. Two renders
//! of the same image must produce equal manifests.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// What to leave out of a manifest.
#[derive(Clone, Copy)]
pub struct Compare {
    /// Directory mtimes (see the callers for why they differ).
    pub dir_mtimes: bool,
}

/// path → description, for every entry under `root` (the root itself is "/").
pub fn manifest(root: &Path, cmp: Compare) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, cmp, &mut out);
    out
}

fn walk(root: &Path, path: &Path, cmp: Compare, out: &mut BTreeMap<String, String>) {
    let m = std::fs::symlink_metadata(path).unwrap();
    let rel = format!("/{}", path.strip_prefix(root).unwrap().display());
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let mut line = format!("{kind} mode={:o} uid={} gid={}", m.mode() & 0o7777, m.uid(), m.gid());
    if ft.is_file() {
        let data = std::fs::read(path).unwrap();
        line += &format!(" size={} sha256={} nlink={}", m.len(), hex::encode(Sha256::digest(&data)), m.nlink());
    }
    if ft.is_symlink() {
        line += &format!(" target={}", std::fs::read_link(path).unwrap().display());
    }
    if ft.is_char_device() || ft.is_block_device() {
        line += &format!(" rdev={}:{}", libc::major(m.rdev()), libc::minor(m.rdev()));
    }
    // Symlink mtimes: umoci sets them; so does berth.
    // The root's own mtime is the render target's (umoci sets it to the epoch).
    if rel != "/" && (!ft.is_dir() || cmp.dir_mtimes) {
        line += &format!(" mtime={}.{:09}", m.mtime(), m.mtime_nsec());
    }
    for (k, v) in xattrs(path) {
        line += &format!(" xattr:{k}={}", hex::encode(v));
    }
    out.insert(rel, line);
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            walk(root, &p, cmp, out);
        }
    }
}

/// xattrs of a path (not following a symlink), without the ones the overlay or the
/// host's security module add.
fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: the buffer is valid for its length; the path is NUL-terminated.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in names[..n as usize].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let key = String::from_utf8_lossy(name).into_owned();
        if key.starts_with("trusted.overlay.") || key == "security.selinux" {
            continue;
        }
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 64 * 1024];
        // SAFETY: as above.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        assert!(len >= 0, "reading xattr {key} of {}", path.display());
        value.truncate(len as usize);
        out.push((key, value));
    }
    out.sort();
    out
}

/// Assert two manifests are equal, showing only the lines that differ.
pub fn assert_same(
    left_name: &str,
    left: &BTreeMap<String, String>,
    right_name: &str,
    right: &BTreeMap<String, String>,
) {
    let mut diff = Vec::new();
    for (k, v) in left {
        match right.get(k) {
            Some(w) if w == v => {}
            Some(w) => diff.push(format!("  {k}\n    {left_name}: {v}\n    {right_name}: {w}")),
            None => diff.push(format!("  {k} only in {left_name}: {v}")),
        }
    }
    for (k, w) in right {
        if !left.contains_key(k) {
            diff.push(format!("  {k} only in {right_name}: {w}"));
        }
    }
    assert!(diff.is_empty(), "{left_name} and {right_name} differ ({} paths):\n{}", diff.len(), diff.join("\n"));
}
