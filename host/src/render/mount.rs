//! The overlay rootfs: the image's snapshots as lower directories (top layer first),
//! plus a fresh upper and work directory, mounted at `<dir>/rootfs`.
//!
//! `berth run IMAGE` keeps such a directory per container under `containers/<name>/`
//! ([`containers_root`]) for as long as it holds the store's shared lock; on exit it
//! removes all of it, or all but `upper/` with `--keep`. A run killed outright leaves
//! its directory and its mount: [`remove_crashed_containers`] clears them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use super::error::io;
use super::{RenderError, RenderReport, Snapshotter, choose_snapshotter, ensure_snapshots};
use crate::store::{Store, StoredImage};

/// `containers/`: one directory per container of `berth run IMAGE`.
pub fn containers_root(store: &Store) -> PathBuf {
    store.root().join("containers")
}

/// Remove what crashed runs left under [`containers_root`]: a directory holding anything
/// but a kept `upper/` (its rootfs, mounted or flattened, `work/`, a half-made render).
/// Its overlay is detached first, so the removal cannot reach through it into `upper/`. The upper
/// directory goes too: the run never finished, so `--keep` never applied. Call under the
/// store's exclusive lock: every live run holds the shared one. Returns how many
/// containers were removed.
pub fn remove_crashed_containers(store: &Store) -> Result<u64, RenderError> {
    let root = containers_root(store);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("listing", &root)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let dir = entry.map_err(io("listing", &root))?.path();
        let names: Vec<std::ffi::OsString> = std::fs::read_dir(&dir)
            .and_then(|rd| rd.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(io("listing", &dir))?;
        if names.len() == 1 && names[0] == "upper" {
            continue;
        }
        detach_mounts_under(&dir)?;
        std::fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
        removed += 1;
    }
    Ok(removed)
}

/// A mounted overlay rootfs. Unmounted when dropped (lazily, so an open file in it
/// cannot make the drop fail), or by [`MountedRootfs::unmount`] to see errors.
#[derive(Debug)]
pub struct MountedRootfs {
    rootfs: PathBuf,
    upper: PathBuf,
    mounted: bool,
    pub report: RenderReport,
}

impl MountedRootfs {
    /// Where the rootfs is mounted: `<dir>/rootfs`.
    pub fn path(&self) -> &Path {
        &self.rootfs
    }

    /// The upper directory: what the container changed.
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// Keep the overlay mounted after this value is gone (for `berth image render
    /// --overlay`); returns where it is mounted.
    pub fn keep_mounted(mut self) -> PathBuf {
        self.mounted = false;
        self.rootfs.clone()
    }

    pub fn unmount(mut self) -> Result<(), RenderError> {
        self.mounted = false;
        rustix::mount::unmount(&self.rootfs, UnmountFlags::empty())
            .map_err(|e| io("unmounting", &self.rootfs)(e.into()))
    }
}

impl Drop for MountedRootfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.rootfs, UnmountFlags::DETACH);
        }
    }
}

/// Unpack what is missing of `image`'s snapshots and mount its rootfs under `dir`
/// (created if needed): `dir/upper`, `dir/work`, `dir/rootfs`. Needs CAP_SYS_ADMIN and
/// an overlayfs that accepts trusted.* xattrs (root, or a user namespace on ≥ 5.11).
/// Snapshots are EROFS layer images where they can be (see [`choose_snapshotter`]); an
/// image with an entry EROFS cannot hold gets directory snapshots.
pub fn mount_rootfs(store: &Store, image: &StoredImage, dir: &Path) -> Result<MountedRootfs, RenderError> {
    let snapshotter = choose_snapshotter(store)?;
    let (snapshots, report) = match ensure_snapshots(store, image, snapshotter) {
        Err(e @ RenderError::NotStorable { .. }) => {
            tracing::warn!("{e}; using directory snapshots for this image");
            ensure_snapshots(store, image, Snapshotter::Dir)?
        }
        r => r?,
    };
    let lowers: Vec<PathBuf> = snapshots.iter().map(|s| s.dir.clone()).collect();
    let mounted = mount_overlay(&lowers, dir, report)?;
    // Through the mount: what is removed becomes a whiteout in this rootfs's upper
    // directory, and the shared snapshots stay whole.
    super::apply_whitelists(store, image, &mounted.rootfs)?;
    Ok(mounted)
}

/// Mount an overlay of `lowers` (bottom layer first) and a fresh upper directory at
/// `dir/rootfs` (`dir/upper`, `dir/work` beside it); the root takes the top layer's
/// owner, mode and xattrs.
pub fn mount_overlay(lowers: &[PathBuf], dir: &Path, report: RenderReport) -> Result<MountedRootfs, RenderError> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    let rootfs = dir.join("rootfs");
    for d in [&upper, &work, &rootfs] {
        std::fs::create_dir_all(d).map_err(io("creating", d))?;
    }
    if let Some(top) = lowers.last() {
        // overlayfs shows the upper directory's own owner and mode at the root: the
        // image's (its top snapshot holds the merged view's root).
        inherit_root(top, &upper)?;
    }
    let mut lowers: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    if lowers.is_empty() {
        // overlayfs needs a lower directory; an image without layers has an empty one.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).map_err(io("creating", &empty))?;
        lowers.push(empty);
    }
    let lowerdir: Vec<String> = lowers.iter().map(|p| escape(p)).collect();
    let options = format!("lowerdir={},upperdir={},workdir={}", lowerdir.join(":"), escape(&upper), escape(&work));
    let data = CString::new(options).map_err(|e| io("mounting at", &rootfs)(std::io::Error::other(e)))?;
    rustix::mount::mount("overlay", &rootfs, "overlay", MountFlags::empty(), data.as_c_str())
        .map_err(|e| RenderError::Mount { path: rootfs.clone(), source: e.into() })?;
    Ok(MountedRootfs { rootfs, upper, mounted: true, report })
}

/// Give `upper` the owner, mode and xattrs of the root of `snapshot`.
fn inherit_root(snapshot: &Path, upper: &Path) -> Result<(), RenderError> {
    use rustix::fs::{Gid, Mode, OFlags, Uid, XattrFlags};
    let open = |p: &Path| {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io("opening", p)(e.into()))
    };
    let (from, to) = (open(snapshot)?, open(upper)?);
    let meta =
        super::resolve::dir_meta(std::os::fd::AsFd::as_fd(&from)).map_err(|e| io("reading", snapshot)(e.into()))?;
    let set = |e: rustix::io::Errno| io("setting the owner and mode of", upper)(e.into());
    let now = rustix::fs::fstat(&to).map_err(set)?;
    if (now.st_uid, now.st_gid) != (meta.uid, meta.gid) {
        rustix::fs::fchown(&to, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid))).map_err(set)?;
    }
    rustix::fs::fchmod(&to, Mode::from_raw_mode(meta.mode)).map_err(set)?;
    for (k, v) in &meta.xattrs {
        rustix::fs::fsetxattr(&to, std::ffi::OsStr::from_bytes(k), v, XattrFlags::empty()).map_err(set)?;
    }
    Ok(())
}

/// overlayfs splits its options on `,` and lower directories on `:`; escape both.
fn escape(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "\\\\").replace(',', "\\,").replace(':', "\\:")
}

/// Detach every mount at or below `dir` (deepest first), as listed in
/// `/proc/self/mountinfo`: layer mounts, container rootfs overlays. Returns how many.
pub fn detach_mounts_under(dir: &Path) -> Result<usize, RenderError> {
    let dir = std::path::absolute(dir).map_err(io("resolving", dir))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(io("reading", "/proc/self/mountinfo"))?;
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mountinfo(point)))
        .filter(|point| point.starts_with(&dir))
        .collect();
    // Deepest first: an overlay on a layer mount's parent goes before it.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    for m in &mounts {
        match rustix::mount::unmount(m, UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io("detaching the mount", m)(e.into())),
        }
    }
    Ok(mounts.len())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // A byte is at most \377: the first digit is 0 to 3.
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && (b'0'..=b'3').contains(&d[0]) && d[1..].iter().all(|b| (b'0'..=b'7').contains(b))
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/var/lib/my\040store/mounts"), "/var/lib/my store/mounts");
        assert_eq!(unescape_mountinfo(r"/a\134b"), r"/a\b");
        assert_eq!(unescape_mountinfo(r"/plain\9"), r"/plain\9");
    }
}
