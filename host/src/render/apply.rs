//! The applier: walks a layer's tar stream and writes each entry under a root
//! directory, resolving every path inside that root with `openat2(RESOLVE_BENEATH)`.
//!
//! One walker, two whiteout strategies ([`Whiteouts`]): a flattened render deletes what a
//! whiteout names; a snapshot keeps the whiteout, in overlayfs's form, for the mount.
//!
//! Safety rules (a violation rejects the layer, naming the entry):
//! - entry and hardlink paths are relative and have no `..` component;
//! - the directories on an entry's path are resolved by the kernel beneath the root,
//!   with no magic links: a symlink on the way that leads out (absolute, or `..` past
//!   the root) fails with EXDEV, a loop with ELOOP;
//! - the entry itself is never followed: it is created with `O_EXCL`/`*at` calls on its
//!   parent's descriptor, after whatever was there is removed.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags, fchmod, fchown,
    fsetxattr, futimens, linkat, makedev, mkdirat, mknodat, openat2, statat, symlinkat, unlinkat, utimensat,
};
use rustix::io::Errno;
use tar::EntryType;

use super::RenderError;
use crate::store::Digest;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to hide a directory's lower contents.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a whiteout entry does to the tree being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// The tree holds all lower layers: remove what the whiteout names (flattened render).
    Delete,
    /// The tree is one layer: record the whiteout as overlayfs does (char device 0/0;
    /// opaque directory = `trusted.overlay.opaque=y`).
    Overlay,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ApplyStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
    /// Device nodes the kernel did not let us create (unprivileged, or a user namespace).
    pub devices_skipped: u64,
}

/// A path inside the root: its components, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RelPath(pub(super) PathBuf);

impl RelPath {
    /// Parse a tar path: no absolute paths, no `..`, no NUL byte (a PAX `path` record can
    /// hold one; no file name can); `.` and empty components dropped.
    pub(super) fn parse(raw: &[u8]) -> Result<RelPath, &'static str> {
        if raw.first() == Some(&b'/') {
            return Err("absolute path");
        }
        if raw.contains(&0) {
            return Err("path has a NUL byte");
        }
        let mut out = PathBuf::new();
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err("path has a `..` component"),
                _ => out.push(OsStr::from_bytes(part)),
            }
        }
        Ok(RelPath(out))
    }

    pub(super) fn is_root(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    pub(super) fn split(&self) -> (&Path, &OsStr) {
        (self.0.parent().unwrap_or(Path::new("")), self.0.file_name().unwrap_or_default())
    }
}

/// How a tar stream's entry names map onto the tree it renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TarDialect {
    /// An OCI or Docker layer: names are tree paths; `.wh.` names are whiteouts.
    #[default]
    Layer,
    /// An appc image archive (ACI): the tree is under `rootfs/`; `manifest` (and anything
    /// else outside `rootfs/`) is not part of it; appc has no whiteouts.
    Aci,
}

impl TarDialect {
    pub fn of(layer: &crate::store::Layer) -> TarDialect {
        if layer.blob.media_type == super::layer::ACI_MEDIA_TYPE { TarDialect::Aci } else { TarDialect::Layer }
    }

    /// The tree path an entry name stands for; `None`: the entry is not part of the tree.
    pub(super) fn tree_path(self, raw: &[u8]) -> Option<&[u8]> {
        match self {
            TarDialect::Layer => Some(raw),
            TarDialect::Aci => {
                let mut name = raw;
                while let Some(rest) = name.strip_prefix(b"./") {
                    name = rest;
                }
                let rest = name.strip_prefix(b"rootfs")?;
                if rest.is_empty() {
                    return Some(rest);
                }
                let rest = rest.strip_prefix(b"/")?;
                let start = rest.iter().position(|b| *b != b'/').unwrap_or(rest.len());
                Some(&rest[start..])
            }
        }
    }

    /// Classify a name in this dialect: appc archives hold no whiteouts.
    pub(super) fn name_kind(self, name: &OsStr) -> Result<EntryName<'_>, &'static str> {
        match self {
            TarDialect::Layer => EntryName::of(name),
            TarDialect::Aci => Ok(EntryName::Plain),
        }
    }
}

/// Header facts of one entry, decoded once.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: Timespec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What an entry's name makes of it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum EntryName<'a> {
    /// `.wh..wh..opq`: hide all lower entries of the directory.
    Opaque,
    /// `.wh.<name>`: hide the lower entry `<name>`.
    Whiteout(&'a OsStr),
    Plain,
}

impl EntryName<'_> {
    /// Classify a name; a whiteout that names nothing it could hide is refused.
    pub(super) fn of(name: &OsStr) -> Result<EntryName<'_>, &'static str> {
        let bytes = name.as_bytes();
        if bytes == OPAQUE_WHITEOUT {
            return Ok(EntryName::Opaque);
        }
        match bytes.strip_prefix(WHITEOUT_PREFIX) {
            Some(b"" | b"." | b"..") => Err("whiteout names no entry it could hide"),
            Some(target) => Ok(EntryName::Whiteout(OsStr::from_bytes(target))),
            None => Ok(EntryName::Plain),
        }
    }
}

/// Decode an entry's header and PAX records; `bad(what)` makes the error for an
/// unreadable field.
pub(super) fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    bad: impl Fn(&str) -> RenderError,
) -> Result<Meta, RenderError> {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode().map_err(|_| bad("mode"))?,
        uid: u32::try_from(h.uid().map_err(|_| bad("uid"))?).map_err(|_| bad("uid"))?,
        gid: u32::try_from(h.gid().map_err(|_| bad("gid"))?).map_err(|_| bad("gid"))?,
        mtime: ts(h.mtime().map_err(|_| bad("mtime"))? as i64, 0),
        xattrs: Vec::new(),
    };
    if let Ok(Some(pax)) = entry.pax_extensions() {
        for ext in pax.flatten() {
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                meta.xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                if let Some(t) = ext.value().ok().and_then(parse_pax_time) {
                    meta.mtime = t;
                }
            } else if key == b"uid" {
                meta.uid = ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(meta.uid);
            } else if key == b"gid" {
                meta.gid = ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(meta.gid);
            }
        }
    }
    Ok(meta)
}

/// A device entry's numbers (0 where the header has none).
pub(super) fn device_numbers(h: &tar::Header) -> (u32, u32) {
    (h.device_major().ok().flatten().unwrap_or(0), h.device_minor().ok().flatten().unwrap_or(0))
}

pub struct Applier {
    root: OwnedFd,
    layer: Digest,
    whiteouts: Whiteouts,
    dialect: TarDialect,
    stats: ApplyStats,
    /// Paths this layer wrote: whiteouts only hide what lower layers hold.
    written: HashSet<PathBuf>,
    /// Directories whose mtime to set once the layer is done (after their contents).
    dir_times: HashMap<PathBuf, Timespec>,
    /// Directories whose mtime to put back as it was before this layer changed their
    /// contents; set before `dir_times`, which wins where a path through a symlink and
    /// the directory's own entry name the same directory.
    kept_times: HashMap<PathBuf, Timespec>,
    /// Overlay form: paths this layer whited out (a directory of that name becomes opaque).
    whited: HashSet<PathBuf>,
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec { tv_sec: sec, tv_nsec: nsec as _ }
}

impl Applier {
    /// Apply into the directory `root` (which must exist).
    pub fn new(root: &Path, layer: Digest, whiteouts: Whiteouts) -> Result<Applier, RenderError> {
        let fd = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| super::error::io("opening", root)(e.into()))?;
        Ok(Applier {
            root: fd,
            layer,
            whiteouts,
            dialect: TarDialect::Layer,
            stats: ApplyStats::default(),
            written: HashSet::new(),
            dir_times: HashMap::new(),
            kept_times: HashMap::new(),
            whited: HashSet::new(),
        })
    }

    /// Read entry names as `dialect` has them.
    pub fn with_dialect(mut self, dialect: TarDialect) -> Applier {
        self.dialect = dialect;
        self
    }

    fn hostile(&self, entry: &Path, reason: impl Into<String>) -> RenderError {
        RenderError::Hostile { layer: self.layer.clone(), entry: entry.display().to_string(), reason: reason.into() }
    }

    fn entry_err(&self, entry: &Path, action: &'static str) -> impl FnOnce(Errno) -> RenderError + '_ {
        let entry = entry.display().to_string();
        move |e| RenderError::Entry { layer: self.layer.clone(), entry, action, source: e.into() }
    }

    /// Map the errors of resolving a path beneath the root: escapes are hostile.
    fn resolve_err(&self, entry: &Path, e: Errno) -> RenderError {
        match e {
            Errno::XDEV => self.hostile(entry, "its path goes through a symlink that leads outside the rootfs"),
            Errno::LOOP => self.hostile(entry, "its path goes through a symlink loop"),
            Errno::NOTDIR => self.hostile(entry, "a component of its path is not a directory"),
            e => self.entry_err(entry, "resolving its path inside the rootfs")(e),
        }
    }

    /// Apply a whole tar stream; directory mtimes are set at the end.
    pub fn apply(mut self, tar: impl Read) -> Result<ApplyStats, RenderError> {
        let layer = self.layer.clone();
        let tar_err = |source| RenderError::Tar { layer: layer.clone(), source };
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries().map_err(tar_err)? {
            let mut entry = entry.map_err(tar_err)?;
            self.entry(&mut entry)?;
        }
        // Drain the archive's padding so the caller can finish the stream's digest.
        let mut rest = archive.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(tar_err)?;
        self.finish_dirs()?;
        Ok(self.stats)
    }

    fn finish_dirs(&mut self) -> Result<(), RenderError> {
        let kept = std::mem::take(&mut self.kept_times);
        let explicit = std::mem::take(&mut self.dir_times);
        for (path, mtime) in kept.into_iter().chain(explicit) {
            let times = Timestamps { last_access: mtime, last_modification: mtime };
            let fd = if path.as_os_str().is_empty() {
                None
            } else {
                Some(self.open_dir(&path).map_err(|e| self.resolve_err(&path, e))?)
            };
            let fd = fd.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            futimens(fd, &times).map_err(self.entry_err(&path, "setting the directory mtime"))?;
        }
        Ok(())
    }

    fn open_dir(&self, path: &Path) -> Result<OwnedFd, Errno> {
        let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
        openat2(&self.root, path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty(), beneath())
    }

    /// Open the parent directory of an entry, creating missing directories (0755).
    fn parent(&mut self, entry: &Path, parent: &Path) -> Result<OwnedFd, RenderError> {
        match self.open_dir(parent) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(self.resolve_err(entry, e)),
        }
        let mut fd = self.open_dir(Path::new("")).map_err(|e| self.resolve_err(entry, e))?;
        let mut so_far = PathBuf::new();
        for part in parent.iter() {
            so_far.push(part);
            match mkdirat(&fd, part, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(self.entry_err(entry, "creating a parent directory")(e)),
            }
            fd = openat2(&fd, part, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty(), beneath())
                .map_err(|e| self.resolve_err(entry, e))?;
        }
        Ok(fd)
    }

    /// Remember a directory's current mtime, to restore it after this layer changes it.
    fn keep_dir_time(&mut self, parent: &Path, fd: BorrowedFd<'_>) {
        if self.dir_times.contains_key(parent) || self.kept_times.contains_key(parent) {
            return;
        }
        if let Ok(st) = rustix::fs::fstat(fd) {
            self.kept_times.insert(parent.to_path_buf(), ts(st.st_mtime, st.st_mtime_nsec as i64));
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), RenderError> {
        let raw = entry.path_bytes().into_owned();
        let shown = PathBuf::from(OsStr::from_bytes(&raw));
        let Some(tree_path) = self.dialect.tree_path(&raw) else { return Ok(()) };
        let path = RelPath::parse(tree_path).map_err(|r| self.hostile(&shown, r))?;
        self.stats.entries += 1;
        let meta = self.meta(entry, &shown)?;
        let kind = entry.header().entry_type();

        if path.is_root() {
            // `./`: the root directory's own metadata.
            if kind == EntryType::Directory {
                self.set_meta(self.root.as_fd(), &shown, &meta)?;
                self.dir_times.insert(PathBuf::new(), meta.mtime);
                return Ok(());
            }
            return Err(self.hostile(&shown, "the root can only be a directory"));
        }

        let (parent_path, name) = path.split();
        let kind_of_name = self.dialect.name_kind(name).map_err(|r| self.hostile(&shown, r))?;
        if kind_of_name != EntryName::Plain {
            self.stats.whiteouts += 1;
            let parent = match self.whiteouts {
                // Nothing below a missing directory to hide; do not create it.
                Whiteouts::Delete => match self.open_dir(parent_path) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(self.resolve_err(&shown, e)),
                },
                Whiteouts::Overlay => self.parent(&shown, parent_path)?,
            };
            self.keep_dir_time(parent_path, parent.as_fd());
            return match kind_of_name {
                EntryName::Whiteout(target) => self.whiteout(&shown, parent_path, parent.as_fd(), target),
                _ => self.opaque(&shown, parent_path, parent.as_fd()),
            };
        }

        let parent = self.parent(&shown, parent_path)?;
        self.keep_dir_time(parent_path, parent.as_fd());
        let existing = statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir =
            existing.as_ref().is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
        let was_whited_out = self.whiteouts == Whiteouts::Overlay
            && (self.whited.contains(&path.0) || existing.as_ref().is_some_and(is_overlay_whiteout));
        if existing.is_some() && !(kind == EntryType::Directory && existing_is_dir) {
            remove_all(parent.as_fd(), name).map_err(self.entry_err(&shown, "removing what it replaces"))?;
        }
        self.written.insert(path.0.clone());

        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let fd = openat2(
                    &parent,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                    beneath(),
                )
                .map_err(self.entry_err(&shown, "creating the file"))?;
                let mut file = std::fs::File::from(fd);
                let n = std::io::copy(entry, &mut file).map_err(|source| RenderError::Entry {
                    layer: self.layer.clone(),
                    entry: shown.display().to_string(),
                    action: "writing the file",
                    source,
                })?;
                self.stats.bytes += n;
                self.set_meta(file.as_fd(), &shown, &meta)?;
                let times = Timestamps { last_access: meta.mtime, last_modification: meta.mtime };
                futimens(&file, &times).map_err(self.entry_err(&shown, "setting the mtime"))?;
            }
            EntryType::Directory => {
                if !existing_is_dir {
                    mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                        .map_err(self.entry_err(&shown, "creating the directory"))?;
                }
                let fd = openat2(
                    &parent,
                    name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    beneath(),
                )
                .map_err(|e| self.resolve_err(&shown, e))?;
                self.set_meta(fd.as_fd(), &shown, &meta)?;
                if was_whited_out {
                    fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                        .map_err(self.entry_err(&shown, "marking the directory opaque"))?;
                }
                self.dir_times.insert(path.0.clone(), meta.mtime);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&shown, "symlink without a target"))?
                    .into_owned();
                symlinkat(OsStr::from_bytes(&target), &parent, name)
                    .map_err(self.entry_err(&shown, "creating the symlink"))?;
                self.set_meta_at(parent.as_fd(), name, &shown, &meta, false)?;
            }
            EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&shown, "hardlink without a target"))?
                    .into_owned();
                let raw_target = self
                    .dialect
                    .tree_path(&raw_target)
                    .ok_or_else(|| self.hostile(&shown, "hardlink target outside the archive's tree"))?;
                let target =
                    RelPath::parse(raw_target).map_err(|r| self.hostile(&shown, format!("hardlink target {r}")))?;
                if target.is_root() {
                    return Err(self.hostile(&shown, "hardlink to the root directory"));
                }
                let (tparent_path, tname) = target.split();
                let tparent = self.open_dir(tparent_path).map_err(|e| self.resolve_err(&shown, e))?;
                match linkat(&tparent, tname, &parent, name, AtFlags::empty()) {
                    Ok(()) => {}
                    Err(Errno::NOENT) if self.whiteouts == Whiteouts::Overlay => {
                        return Err(RenderError::LowerHardlink {
                            layer: self.layer.clone(),
                            entry: shown.display().to_string(),
                            target: target.0.display().to_string(),
                        });
                    }
                    Err(e) => return Err(self.entry_err(&shown, "creating the hardlink")(e)),
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ft, dev) = match kind {
                    EntryType::Char => (FileType::CharacterDevice, self.device(entry)),
                    EntryType::Block => (FileType::BlockDevice, self.device(entry)),
                    _ => (FileType::Fifo, makedev(0, 0)),
                };
                match mknodat(&parent, name, ft, Mode::from_raw_mode(meta.mode & 0o777), dev) {
                    Ok(()) => {}
                    Err(Errno::PERM) if ft != FileType::Fifo => {
                        tracing::warn!(entry = %shown.display(), "device node not permitted here; skipped");
                        self.stats.devices_skipped += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(self.entry_err(&shown, "creating the special file")(e)),
                }
                self.set_meta_at(parent.as_fd(), name, &shown, &meta, true)?;
            }
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {}
            other => return Err(self.hostile(&shown, format!("unsupported tar entry type {other:?}"))),
        }
        Ok(())
    }

    fn device<R: Read>(&self, entry: &tar::Entry<'_, R>) -> rustix::fs::Dev {
        let (major, minor) = device_numbers(entry.header());
        makedev(major, minor)
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, shown: &Path) -> Result<Meta, RenderError> {
        read_meta(entry, |what| self.hostile(shown, format!("unreadable {what} in its header")))
    }

    /// Owner, then mode (chown clears setuid/setgid), then xattrs (chown also clears
    /// `security.capability`). Times are set by the caller.
    fn set_meta(&self, fd: BorrowedFd<'_>, shown: &Path, meta: &Meta) -> Result<(), RenderError> {
        fchown(fd, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
            .map_err(self.entry_err(shown, "setting the owner"))?;
        fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(self.entry_err(shown, "setting the mode"))?;
        for (name, value) in &meta.xattrs {
            fsetxattr(fd, OsStr::from_bytes(name), value, XattrFlags::empty())
                .map_err(self.entry_err(shown, "setting an xattr"))?;
        }
        Ok(())
    }

    /// Metadata of a symlink or special file, which cannot be opened for writing: by
    /// name under its parent, never following it.
    fn set_meta_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        shown: &Path,
        meta: &Meta,
        chmod: bool,
    ) -> Result<(), RenderError> {
        rustix::fs::chownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(self.entry_err(shown, "setting the owner"))?;
        if chmod {
            // The entry was just created by mknodat in a directory only we write to; it
            // is no symlink.
            rustix::fs::chmodat(parent, name, Mode::from_raw_mode(meta.mode & 0o7777), AtFlags::empty())
                .map_err(self.entry_err(shown, "setting the mode"))?;
        }
        if !meta.xattrs.is_empty() {
            // lsetxattr on /proc/self/fd/<parent>/<name>: the parent is pinned by its
            // descriptor and the last component is not followed.
            use std::os::fd::AsRawFd;
            let proc = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(name);
            for (key, value) in &meta.xattrs {
                rustix::fs::lsetxattr(&proc, OsStr::from_bytes(key), value, XattrFlags::empty())
                    .map_err(self.entry_err(shown, "setting an xattr"))?;
            }
        }
        let times = Timestamps { last_access: meta.mtime, last_modification: meta.mtime };
        utimensat(parent, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(self.entry_err(shown, "setting the mtime"))
    }

    /// `.wh.<name>`: hide the lower entry `<name>`.
    fn whiteout(
        &mut self,
        shown: &Path,
        parent_path: &Path,
        parent: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<(), RenderError> {
        let full = parent_path.join(name);
        if self.written.contains(&full) {
            // A whiteout hides only what lower layers hold. In the overlay form, a
            // directory this layer wrote must still hide the lower one.
            if self.whiteouts == Whiteouts::Overlay
                && statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
            {
                let fd = openat2(
                    parent,
                    name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW,
                    Mode::empty(),
                    beneath(),
                )
                .map_err(|e| self.resolve_err(shown, e))?;
                fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(self.entry_err(shown, "marking the directory opaque"))?;
            }
            return Ok(());
        }
        match self.whiteouts {
            Whiteouts::Delete => match remove_all(parent, name) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(self.entry_err(shown, "removing the whited-out entry")(e)),
            },
            Whiteouts::Overlay => {
                match remove_all(parent, name) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(self.entry_err(shown, "replacing an entry with a whiteout")(e)),
                }
                mknodat(parent, name, FileType::CharacterDevice, Mode::empty(), makedev(0, 0))
                    .map_err(self.entry_err(shown, "creating the overlay whiteout"))?;
                self.whited.insert(full);
                Ok(())
            }
        }
    }

    /// `.wh..wh..opq`: hide every lower entry of the directory.
    fn opaque(&mut self, shown: &Path, parent_path: &Path, parent: BorrowedFd<'_>) -> Result<(), RenderError> {
        match self.whiteouts {
            Whiteouts::Overlay => fsetxattr(parent, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(self.entry_err(shown, "marking the directory opaque")),
            Whiteouts::Delete => {
                let dir = Dir::read_from(parent).map_err(self.entry_err(shown, "listing the opaque directory"))?;
                let mut names = Vec::new();
                for item in dir {
                    let item = item.map_err(self.entry_err(shown, "listing the opaque directory"))?;
                    let n = OsStr::from_bytes(item.file_name().to_bytes()).to_os_string();
                    if n != "." && n != ".." && !self.written.contains(&parent_path.join(&n)) {
                        names.push(n);
                    }
                }
                for n in names {
                    remove_all(parent, &n).map_err(self.entry_err(shown, "removing a lower entry"))?;
                }
                Ok(())
            }
        }
    }
}

fn is_overlay_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// `"1700000000.123456789"` → Timespec.
pub(super) fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (sec, frac) = v.split_once('.').unwrap_or((v, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut nsec = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nsec = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
        if sec < 0 && nsec > 0 {
            return Some(ts(sec - 1, 1_000_000_000 - nsec));
        }
    }
    Some(ts(sec, nsec))
}

/// Remove `name` under `dir`, recursively if it is a directory, never following a
/// symlink.
fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return unlinkat(dir, name, AtFlags::empty());
    }
    let child = openat2(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )?;
    let mut names = Vec::new();
    for item in Dir::read_from(&child)? {
        let item = item?;
        let n = item.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for n in names {
        remove_all(child.as_fd(), &n)?;
    }
    unlinkat(dir, name, AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_dotdot_or_a_leading_slash_are_refused() {
        assert_eq!(RelPath::parse(b"./etc/passwd").unwrap().0, PathBuf::from("etc/passwd"));
        assert_eq!(RelPath::parse(b"etc//x/./y/").unwrap().0, PathBuf::from("etc/x/y"));
        assert!(RelPath::parse(b"./").unwrap().is_root());
        assert!(RelPath::parse(b"../etc").is_err());
        assert!(RelPath::parse(b"a/../../etc").is_err());
        assert!(RelPath::parse(b"/etc/passwd").is_err());
        assert!(RelPath::parse(b"a\0b/c").is_err());
        // A name that merely starts with dots is fine.
        assert!(RelPath::parse(b"a/..b/...").is_ok());
    }

    /// A tar of (path, kind, data): kind 'd' directory, 'f' file, 's' symlink to data.
    fn tar_of(entries: &[(&str, char, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_path(path).unwrap();
            h.set_mode(if *kind == 'd' { 0o755 } else { 0o644 });
            h.set_uid(rustix::process::geteuid().as_raw() as u64);
            h.set_gid(rustix::process::getegid().as_raw() as u64);
            h.set_mtime(1_700_000_000);
            h.set_size(0);
            match kind {
                'd' => h.set_entry_type(EntryType::Directory),
                's' => {
                    h.set_entry_type(EntryType::Symlink);
                    h.set_link_name(data).unwrap();
                }
                _ => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(data.len() as u64);
                }
            }
            h.set_cksum();
            let body = if *kind == 'f' { data.as_bytes() } else { &[][..] };
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn apply(root: &Path, mode: Whiteouts, entries: &[(&str, char, &str)]) -> Result<ApplyStats, RenderError> {
        let layer = Digest::of_bytes(crate::store::Algorithm::Sha256, b"test layer");
        Applier::new(root, layer, mode)?.apply(&tar_of(entries)[..])
    }

    #[test]
    fn whiteouts_hide_lower_entries_but_not_this_layers() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        apply(r, Whiteouts::Delete, &[("a", 'f', "lower"), ("gone", 'f', "x"), ("o", 'd', ""), ("o/lower", 'f', "x")])
            .unwrap();
        apply(
            r,
            Whiteouts::Delete,
            &[
                ("a", 'f', "upper"),
                (".wh.a", 'f', ""),
                (".wh.gone", 'f', ""),
                ("o/mine", 'f', "y"),
                ("o/.wh..wh..opq", 'f', ""),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read(r.join("a")).unwrap(), b"upper", "a whiteout after an entry keeps the entry");
        assert!(!r.join("gone").exists());
        assert!(!r.join("o/lower").exists(), "the opaque whiteout hides lower entries");
        assert!(r.join("o/mine").exists(), "but not this layer's");
    }

    #[test]
    fn overlay_form_records_whiteouts_for_the_mount() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        apply(
            r,
            Whiteouts::Overlay,
            &[(".wh.gone", 'f', ""), (".wh.d", 'f', ""), ("d", 'd', ""), ("o/.wh..wh..opq", 'f', "")],
        )
        .unwrap();
        let st = statat(rustix::fs::CWD, r.join("gone"), AtFlags::SYMLINK_NOFOLLOW).unwrap();
        assert!(is_overlay_whiteout(&st));
        if rustix::process::geteuid().is_root() {
            let mut buf = [0u8; 4];
            let n = rustix::fs::getxattr(r.join("d"), OVERLAY_OPAQUE_XATTR, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"y", "a directory replacing a whiteout hides the lower one");
            let n = rustix::fs::getxattr(r.join("o"), OVERLAY_OPAQUE_XATTR, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"y");
        }
    }

    #[test]
    fn a_symlink_leading_out_cannot_carry_a_later_entry() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("root");
        std::fs::create_dir(&r).unwrap();
        let err = apply(&r, Whiteouts::Delete, &[("up", 's', ".."), ("up/escaped", 'f', "x")]).unwrap_err();
        assert!(matches!(err, RenderError::Hostile { ref entry, .. } if entry == "up/escaped"), "{err}");
        assert!(!dir.path().join("escaped").exists());
        // A relative symlink that stays inside is followed.
        apply(&r, Whiteouts::Delete, &[("usr", 'd', ""), ("bin", 's', "usr"), ("bin/sh", 'f', "x")]).unwrap();
        assert!(r.join("usr/sh").exists());
    }

    #[test]
    fn pax_times_keep_their_fraction() {
        let t = parse_pax_time("1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time("12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        assert!(parse_pax_time("x").is_none());
    }
}
