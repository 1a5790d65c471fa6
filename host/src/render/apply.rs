//! The applier: walks a layer's tar stream and writes each entry under a root
//! directory, every path resolved inside that root ([`super::resolve`]).
//!
//! One walker, two whiteout strategies ([`Whiteouts`]): a flattened render deletes what a
//! whiteout names; a snapshot keeps the whiteout, in overlayfs's form, for the mount, and
//! resolves paths in the merged view of itself over the snapshots below it.
//!
//! Rules, those of umoci, containerd and Docker where they agree (docs/decisions.md):
//! - an entry's name is cleaned lexically (`..` stops at the root, a leading `/` is the
//!   root), so `../x` and `/x` both name `x` in the rootfs;
//! - the directories on an entry's path are resolved inside the rootfs with
//!   `RESOLVE_IN_ROOT` semantics: a symlink on the way is followed, an absolute target
//!   from the rootfs's root, `..` stopping there; a loop or a file on the way rejects the
//!   layer, naming the entry;
//! - the entry itself is never followed: it is created with `O_EXCL`/`*at` calls on its
//!   parent's descriptor, after whatever was there is removed;
//! - hardlink targets are resolved the same way, and must exist and not be directories.

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
use super::layer::StreamEnd;
use super::resolve::{self, Create, DirMeta, LowerSource, Lowers, Node, Unresolved, Upper};
use super::sparse::SparseHeader;
use crate::store::Digest;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to hide a directory's lower contents.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Longest name in a path (NAME_MAX).
pub(super) const NAME_MAX: usize = 255;
/// Longest path, with its leading `/` and the NUL (PATH_MAX).
pub(super) const PATH_MAX: usize = 4096;

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

/// A path inside the root: its components, cleaned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RelPath(pub(super) PathBuf);

impl RelPath {
    /// Clean a tar path as umoci's `CleanPath` and containerd do (`filepath.Clean("/" +
    /// p)`): empty and `.` components go, `..` removes the component before it and stays
    /// at the root, a leading `/` is the root. A name longer than NAME_MAX or a path
    /// longer than PATH_MAX is refused (no peer can create it either), and so is a NUL
    /// byte (a PAX `path` record can hold one; no file name can).
    pub(super) fn parse(raw: &[u8]) -> Result<RelPath, &'static str> {
        if raw.contains(&0) {
            return Err("path has a NUL byte");
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                _ => parts.push(part),
            }
        }
        if parts.iter().any(|p| p.len() > NAME_MAX) {
            return Err("a name in its path is longer than 255 bytes (NAME_MAX)");
        }
        if parts.iter().map(|p| p.len() + 1).sum::<usize>() + 1 > PATH_MAX {
            return Err("its path is longer than 4096 bytes (PATH_MAX)");
        }
        Ok(RelPath(parts.iter().map(|p| OsStr::from_bytes(p)).collect()))
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

    /// The tree path of an archive name, cleaned as the archive's own path first (so
    /// `rootfs/../x` of an ACI is `x` of the archive, not of its tree, as rkt, which
    /// extracts the whole archive, has it); `None`: not part of the tree.
    pub(super) fn clean_tree_path(self, raw: &[u8]) -> Option<Result<RelPath, &'static str>> {
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                _ => parts.push(part),
            }
        }
        let cleaned = parts.join(&b'/');
        self.tree_path(&cleaned).map(RelPath::parse)
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
    /// Classify a name; a whiteout that names nothing it could hide (`.wh.`, `.wh..`,
    /// `.wh...`) is refused, as containerd refuses it.
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

/// xattrs a layer may not set: overlayfs's own (they would steer the overlay mount) and
/// the host-specific ones umoci also ignores.
fn ignored_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name == b"security.selinux" || name == b"system.nfs4_acl"
}

/// One tar entry as the applier and the EROFS tree see it, decoded once.
pub(super) struct Decoded {
    /// The entry's name as the archive has it, for messages.
    pub(super) shown: PathBuf,
    /// Its path in the tree.
    pub(super) path: RelPath,
    pub(super) kind: EntryType,
    pub(super) meta: Meta,
    /// A sparse file's PAX records.
    pub(super) sparse: Option<SparseHeader>,
}

/// Decode an entry: its name (a PAX sparse file's real one), cleaned, and its header;
/// `None`: the entry is not part of the tree (`dialect`).
pub(super) fn decode<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dialect: TarDialect,
    hostile: impl Fn(&Path, String) -> RenderError,
) -> Result<Option<Decoded>, RenderError> {
    let mut raw = entry.path_bytes().into_owned();
    let mut sparse = None;
    if let Ok(Some(pax)) = entry.pax_extensions() {
        let records = pax.flatten().map(|e| (e.key_bytes(), e.value_bytes()));
        let header = SparseHeader::of(records).map_err(|r| hostile(Path::new(OsStr::from_bytes(&raw)), r.into()))?;
        if header.is_sparse() {
            if let Some(name) = &header.name {
                raw = name.clone();
            }
            sparse = Some(header);
        }
    }
    let shown = PathBuf::from(OsStr::from_bytes(&raw));
    let Some(path) = dialect.clean_tree_path(&raw) else { return Ok(None) };
    let path = path.map_err(|r| hostile(&shown, r.into()))?;
    let meta = read_meta(entry, |what| hostile(&shown, format!("unreadable {what} in its header")))?;
    let kind = entry.header().entry_type();
    Ok(Some(Decoded { shown, path, kind, meta, sparse }))
}

/// Decode an entry's header and PAX records; `bad(what)` makes the error for an
/// unreadable field. xattrs a layer may not set are left out.
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
                if ignored_xattr(name) {
                    tracing::debug!(xattr = %String::from_utf8_lossy(name), "xattr a layer may not set; ignored");
                } else {
                    meta.xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                }
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

/// Why an entry's type is refused, for the types no peer unpacks.
pub(super) fn refused_type(kind: EntryType) -> String {
    match kind {
        EntryType::GNUSparse => {
            "old-format GNU sparse file (type 'S'), which umoci, containerd and Docker refuse too; \
             GNU tar writes the PAX form with --format=posix"
                .into()
        }
        EntryType::Continuous => "contiguous file (type '7'), which umoci, containerd and Docker refuse too".into(),
        other => format!("unsupported tar entry type {other:?}"),
    }
}

/// Read errors of an entry's data: a read error is the stream's (corrupt), a write
/// error the tree's (I/O).
pub(super) struct ReadWatch<R> {
    inner: R,
    pub(super) failed: Option<std::io::Error>,
}

impl<R: Read> ReadWatch<R> {
    pub(super) fn new(inner: R) -> Self {
        ReadWatch { inner, failed: None }
    }
}

impl<R: Read> Read for ReadWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// The error for an entry whose data could not be had: the stream ended inside it, or
/// reading it failed.
pub(super) fn data_error(layer: &Digest, shown: &Path, e: std::io::Error) -> RenderError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        RenderError::Truncated { layer: layer.clone(), entry: shown.display().to_string() }
    } else {
        RenderError::Tar { layer: layer.clone(), source: e }
    }
}

/// Has the stream (when it is supplied its end padding) really held the whole of an
/// entry's data? `EndPadded` supplies zeros after the end of an unterminated stream, for
/// the padding and end blocks only: zeros standing in for data mean it was truncated.
/// Ask once the data has been read (reading past the end is what marks it).
pub(super) fn check_complete<R: Read>(
    entry: &tar::Entry<'_, R>,
    end: Option<&StreamEnd>,
    layer: &Digest,
    shown: &Path,
) -> Result<(), RenderError> {
    let stop = entry.raw_file_position() + entry.size();
    match end {
        Some(end) if !end.covers(stop) => {
            Err(RenderError::Truncated { layer: layer.clone(), entry: shown.display().to_string() })
        }
        _ => Ok(()),
    }
}

pub struct Applier<'a> {
    root: OwnedFd,
    layer: Digest,
    whiteouts: Whiteouts,
    dialect: TarDialect,
    stats: ApplyStats,
    /// The snapshots below (overlay form): paths resolve in the merged view.
    lowers: Lowers<'a>,
    /// Where the stream really ends, when it is padded there.
    end: Option<StreamEnd>,
    /// Paths this layer wrote and their ancestors (resolved): whiteouts only hide what
    /// lower layers hold (umoci's `upperPaths`).
    written: HashSet<PathBuf>,
    /// Directories whose mtime to set once the layer is done (after their contents).
    dir_times: HashMap<PathBuf, Timespec>,
    /// Directories whose mtime to put back as it was before this layer changed their
    /// contents; set before `dir_times`, which wins where a path through a symlink and
    /// the directory's own entry name the same directory.
    kept_times: HashMap<PathBuf, Timespec>,
    /// Overlay form: paths this layer whited out (a directory of that name becomes opaque).
    whited: HashSet<PathBuf>,
    /// The layer has a `./` entry.
    root_described: bool,
    /// File data on its way from the stream to the tree.
    buf: Vec<u8>,
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec { tv_sec: sec, tv_nsec: nsec as _ }
}

/// The fast path of resolution: a path with no symlink on it, beneath the root.
fn no_symlinks() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// The applier's tree as the resolver sees it.
struct DirUpper<'t> {
    root: BorrowedFd<'t>,
    overlay: bool,
    kept_times: &'t mut HashMap<PathBuf, Timespec>,
}

impl Upper for DirUpper<'_> {
    type Dir = OwnedFd;

    fn root(&mut self) -> Result<OwnedFd, Errno> {
        rustix::io::dup(self.root)
    }

    fn lookup(&mut self, dir: &OwnedFd, name: &OsStr) -> Result<Node<OwnedFd>, Errno> {
        resolve::lookup_fd(dir.as_fd(), name, self.overlay)
    }

    fn is_opaque(&mut self, dir: &OwnedFd) -> bool {
        self.overlay && resolve::is_opaque_fd(dir.as_fd())
    }

    fn make_dir(
        &mut self,
        parent: &OwnedFd,
        path: &Path,
        name: &OsStr,
        like: Option<DirMeta>,
        opaque: bool,
    ) -> Result<OwnedFd, Errno> {
        match mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
            // A directory replacing a whiteout of this layer.
            Err(Errno::EXIST) if opaque => {
                unlinkat(parent, name, AtFlags::empty())?;
                mkdirat(parent, name, Mode::from_raw_mode(0o755))?;
            }
            r => r?,
        }
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if let Some(like) = like {
            // overlayfs's copy-up: the merged view shows this directory's metadata.
            fchown(&fd, Some(Uid::from_raw(like.uid)), Some(Gid::from_raw(like.gid)))?;
            fchmod(&fd, Mode::from_raw_mode(like.mode))?;
            for (key, value) in &like.xattrs {
                fsetxattr(&fd, OsStr::from_bytes(key), value, XattrFlags::empty())?;
            }
            self.kept_times.entry(path.to_path_buf()).or_insert(like.mtime);
        }
        if opaque {
            fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())?;
        }
        Ok(fd)
    }
}

impl<'a> Applier<'a> {
    /// Apply into the directory `root` (which must exist).
    pub fn new(root: &Path, layer: Digest, whiteouts: Whiteouts) -> Result<Applier<'a>, RenderError> {
        let fd = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| super::error::io("opening", root)(e.into()))?;
        Ok(Applier {
            root: fd,
            layer,
            whiteouts,
            dialect: TarDialect::Layer,
            stats: ApplyStats::default(),
            lowers: Lowers::default(),
            end: None,
            written: HashSet::new(),
            dir_times: HashMap::new(),
            kept_times: HashMap::new(),
            whited: HashSet::new(),
            root_described: false,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Read entry names as `dialect` has them.
    pub fn with_dialect(mut self, dialect: TarDialect) -> Applier<'a> {
        self.dialect = dialect;
        self
    }

    /// Resolve paths over the snapshots `lowers` gives (overlay form).
    pub fn with_lowers(mut self, lowers: Option<&'a dyn LowerSource>) -> Applier<'a> {
        self.lowers = Lowers::new(lowers);
        self
    }

    /// The stream is padded at `end` (see [`super::EndPadded`]): data there is missing.
    pub fn with_stream_end(mut self, end: StreamEnd) -> Applier<'a> {
        self.end = Some(end);
        self
    }

    fn hostile(&self, entry: &Path, reason: impl Into<String>) -> RenderError {
        RenderError::Hostile { layer: self.layer.clone(), entry: entry.display().to_string(), reason: reason.into() }
    }

    fn entry_err(&self, entry: &Path, action: &'static str) -> impl FnOnce(Errno) -> RenderError + '_ {
        let entry = entry.display().to_string();
        move |e| RenderError::Entry { layer: self.layer.clone(), entry, action, source: e.into() }
    }

    /// The error for a path that did not resolve.
    fn unresolved(&self, entry: &Path, why: Unresolved) -> RenderError {
        match why {
            Unresolved::Loop => self.hostile(entry, "its path goes through a symlink loop"),
            Unresolved::NotDir => self.hostile(entry, "a component of its path is not a directory"),
            Unresolved::Missing => self.entry_err(entry, "resolving its path inside the rootfs")(Errno::NOENT),
            Unresolved::Os(e) => self.entry_err(entry, "resolving its path inside the rootfs")(e),
            Unresolved::Lowers(e) => *e,
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
        if !self.root_described {
            self.inherit_root()?;
        }
        self.finish_dirs()?;
        Ok(self.stats)
    }

    /// A snapshot whose layer does not describe the root takes the merged view's root
    /// (overlayfs shows the topmost layer's root; the flattened tree keeps what was set).
    fn inherit_root(&mut self) -> Result<(), RenderError> {
        let shown = Path::new("./");
        let Some(like) = self.lowers.root_meta().map_err(|e| self.unresolved(shown, e))? else { return Ok(()) };
        let meta = Meta { mode: like.mode, uid: like.uid, gid: like.gid, mtime: like.mtime, xattrs: like.xattrs };
        self.set_meta(self.root.as_fd(), shown, &meta)?;
        self.kept_times.insert(PathBuf::new(), meta.mtime);
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<(), RenderError> {
        let kept = std::mem::take(&mut self.kept_times);
        let explicit = std::mem::take(&mut self.dir_times);
        for (path, mtime) in kept.into_iter().chain(explicit) {
            let times = Timestamps { last_access: mtime, last_modification: mtime };
            let fd = if path.as_os_str().is_empty() {
                None
            } else {
                // Resolved paths hold no symlinks; one there now, or a file, replaced the
                // directory later in the layer, and its time no longer matters.
                match self.open_dir(&path) {
                    Ok(fd) => Some(fd),
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                    Err(e) => return Err(self.entry_err(&path, "setting the directory mtime")(e)),
                }
            };
            let fd = fd.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            futimens(fd, &times).map_err(self.entry_err(&path, "setting the directory mtime"))?;
        }
        Ok(())
    }

    /// Open a directory by a path without symlinks.
    fn open_dir(&self, path: &Path) -> Result<OwnedFd, Errno> {
        let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
        openat2(&self.root, path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty(), no_symlinks())
    }

    /// Resolve a directory of an entry's path inside the rootfs (see [`resolve`]): its
    /// path without symlinks and its descriptor (`None`: only lowers hold it).
    fn resolve(&mut self, path: &Path, create: Create) -> Result<(PathBuf, Option<OwnedFd>), Unresolved> {
        // Most paths have no symlink on them, and exist: one call.
        match self.open_dir(path) {
            Ok(fd) => return Ok((path.to_path_buf(), Some(fd))),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => {}
            Err(e) => return Err(Unresolved::Os(e)),
        }
        let mut upper = DirUpper {
            root: self.root.as_fd(),
            overlay: self.whiteouts == Whiteouts::Overlay,
            kept_times: &mut self.kept_times,
        };
        let found = resolve::resolve(&mut upper, &mut self.lowers, path, create)?;
        Ok((found.path, found.dir))
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

    /// Record that this layer wrote `path` (and so its ancestors).
    fn wrote(&mut self, path: &Path) {
        for p in path.ancestors() {
            if p.as_os_str().is_empty() || !self.written.insert(p.to_path_buf()) {
                break;
            }
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), RenderError> {
        let layer = self.layer.clone();
        let hostile = |e: &Path, r: String| RenderError::Hostile {
            layer: layer.clone(),
            entry: e.display().to_string(),
            reason: r,
        };
        let Some(Decoded { shown, path, kind, meta, sparse }) = decode(entry, self.dialect, hostile)? else {
            return Ok(());
        };
        self.stats.entries += 1;

        if path.is_root() {
            // `./`: the root directory's own metadata.
            if kind == EntryType::Directory {
                self.root_described = true;
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
            // A whiteout under a directory the merged view lacks hides nothing: no-op (as
            // umoci); in the overlay form, a directory only lowers hold gets an upper copy.
            let create = match self.whiteouts {
                Whiteouts::Delete => Create::Never,
                Whiteouts::Overlay => Create::Existing,
            };
            let (parent_path, parent) = match self.resolve(parent_path, create) {
                Ok((p, Some(fd))) => (p, fd),
                Ok((_, None)) | Err(Unresolved::Missing | Unresolved::NotDir) => return Ok(()),
                Err(e) => return Err(self.unresolved(&shown, e)),
            };
            self.keep_dir_time(&parent_path, parent.as_fd());
            return match kind_of_name {
                EntryName::Whiteout(target) => self.whiteout(&shown, &parent_path, parent.as_fd(), target),
                _ => self.opaque(&shown, &parent_path, parent.as_fd()),
            };
        }

        let (parent_path, parent) = match self.resolve(parent_path, Create::Always) {
            Ok((p, Some(fd))) => (p, fd),
            Ok((_, None)) => unreachable!("Create::Always gives the upper's directory"),
            Err(e) => return Err(self.unresolved(&shown, e)),
        };
        let full = parent_path.join(name);
        self.keep_dir_time(&parent_path, parent.as_fd());
        let existing = statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir =
            existing.as_ref().is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
        let was_whited_out = self.whiteouts == Whiteouts::Overlay
            && (self.whited.contains(&full) || existing.as_ref().is_some_and(is_overlay_whiteout));

        // A hardlink's target, checked before anything is removed.
        let link_target = if kind == EntryType::Link { Some(self.link_target(entry, &shown)?) } else { None };

        if existing.is_some() && !(kind == EntryType::Directory && existing_is_dir) {
            remove_all(parent.as_fd(), name).map_err(self.entry_err(&shown, "removing what it replaces"))?;
        }

        match kind {
            EntryType::Regular => {
                let fd = openat2(
                    &parent,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(self.entry_err(&shown, "creating the file"))?;
                let file = std::fs::File::from(fd);
                let n = self.write_data(entry, &file, &shown, sparse)?;
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
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(self.entry_err(&shown, "opening the directory"))?;
                self.set_meta(fd.as_fd(), &shown, &meta)?;
                if was_whited_out {
                    fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                        .map_err(self.entry_err(&shown, "marking the directory opaque"))?;
                }
                self.dir_times.insert(full.clone(), meta.mtime);
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                if target.is_empty() {
                    return Err(self.hostile(&shown, "symlink without a target"));
                }
                symlinkat(OsStr::from_bytes(&target), &parent, name).map_err(|e| match e {
                    Errno::NAMETOOLONG => self.hostile(&shown, "symlink target longer than 4095 bytes (PATH_MAX)"),
                    e => self.entry_err(&shown, "creating the symlink")(e),
                })?;
                self.set_meta_at(parent.as_fd(), name, &shown, &meta, false)?;
            }
            EntryType::Link => {
                let (tparent, tname, target) = link_target.expect("decided above");
                match linkat(&tparent, &tname, &parent, name, AtFlags::empty()) {
                    Ok(()) => {}
                    // The target was the entry itself, removed above.
                    Err(Errno::NOENT) => {
                        return Err(self.hostile(&shown, format!("hardlink target {:?} does not exist", target)));
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
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {
                return Ok(());
            }
            other => return Err(self.hostile(&shown, refused_type(other))),
        }
        self.wrote(&full);
        Ok(())
    }

    /// A hardlink's target: its directory, name and path. It must exist in this tree and
    /// not be a directory; in a snapshot, one of a lower layer cannot be held.
    fn link_target<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        shown: &Path,
    ) -> Result<(OwnedFd, std::ffi::OsString, PathBuf), RenderError> {
        let raw = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        let target = self
            .dialect
            .clean_tree_path(&raw)
            .ok_or_else(|| self.hostile(shown, "hardlink target outside the archive's tree"))?
            .map_err(|r| self.hostile(shown, format!("hardlink target: {r}")))?;
        if target.is_root() {
            return Err(self.hostile(shown, "hardlink to the root directory"));
        }
        let (tparent_path, tname) = target.split();
        let missing = |this: &Self| {
            if this.whiteouts == Whiteouts::Overlay && !this.lowers.is_empty() {
                RenderError::LowerHardlink {
                    layer: this.layer.clone(),
                    entry: shown.display().to_string(),
                    target: target.0.display().to_string(),
                }
            } else {
                this.hostile(shown, format!("hardlink target {:?} does not exist", target.0))
            }
        };
        let (_, tparent) = match self.resolve(tparent_path, Create::Never) {
            Ok((p, Some(fd))) => (p, fd),
            Ok((_, None)) | Err(Unresolved::Missing) => return Err(missing(self)),
            Err(e) => return Err(self.unresolved(shown, e)),
        };
        match resolve::lookup_fd(tparent.as_fd(), tname, self.whiteouts == Whiteouts::Overlay) {
            Ok(Node::Dir(_)) => Err(self.hostile(shown, "hardlink to a directory")),
            Ok(Node::Missing | Node::Whiteout) => Err(missing(self)),
            Ok(_) => Ok((tparent, tname.to_os_string(), target.0.clone())),
            Err(e) => Err(self.entry_err(shown, "looking up the hardlink target")(e)),
        }
    }

    /// Write a regular file's data (a sparse file's regions at their offsets, the holes
    /// left as holes); returns the file's size.
    fn write_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &std::fs::File,
        shown: &Path,
        sparse: Option<SparseHeader>,
    ) -> Result<u64, RenderError> {
        let size = entry.size();
        let regions = match &sparse {
            Some(h) => h.regions(entry, size).map_err(|r| self.hostile(shown, r))?,
            None => super::sparse::Regions { regions: vec![(0, size)], real_size: size },
        };
        let mut buf = std::mem::take(&mut self.buf);
        let written = self.write_regions(entry, file, shown, &regions, &mut buf);
        self.buf = buf;
        written?;
        // After the data is read: only a read past the stream's end tells where it is.
        check_complete(entry, self.end.as_ref(), &self.layer, shown)?;
        if sparse.is_some() {
            file.set_len(regions.real_size).map_err(|source| RenderError::Entry {
                layer: self.layer.clone(),
                entry: shown.display().to_string(),
                action: "writing the file",
                source,
            })?;
        }
        Ok(regions.real_size)
    }

    fn write_regions<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        file: &std::fs::File,
        shown: &Path,
        regions: &super::sparse::Regions,
        buf: &mut [u8],
    ) -> Result<(), RenderError> {
        use std::os::unix::fs::FileExt;
        let write_err = |source| RenderError::Entry {
            layer: self.layer.clone(),
            entry: shown.display().to_string(),
            action: "writing the file",
            source,
        };
        for &(offset, len) in &regions.regions {
            let mut done = 0u64;
            while done < len {
                let want = buf.len().min(usize::try_from(len - done).unwrap_or(usize::MAX));
                let n = entry.read(&mut buf[..want]).map_err(|e| data_error(&self.layer, shown, e))?;
                if n == 0 {
                    return Err(RenderError::Truncated {
                        layer: self.layer.clone(),
                        entry: shown.display().to_string(),
                    });
                }
                file.write_all_at(&buf[..n], offset + done).map_err(write_err)?;
                done += n as u64;
            }
        }
        Ok(())
    }

    fn device<R: Read>(&self, entry: &tar::Entry<'_, R>) -> rustix::fs::Dev {
        let (major, minor) = device_numbers(entry.header());
        makedev(major, minor)
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
            // A whiteout hides only what lower layers hold: what this layer wrote there
            // stays (umoci's rule), so a directory it wrote keeps only its entries.
            let is_dir = statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
            if !is_dir {
                return Ok(());
            }
            let fd = openat2(
                parent,
                name,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            )
            .map_err(self.entry_err(shown, "opening the whited-out directory"))?;
            return match self.whiteouts {
                Whiteouts::Overlay => fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(self.entry_err(shown, "marking the directory opaque")),
                Whiteouts::Delete => {
                    self.clear_lower(fd.as_fd(), &full).map_err(self.entry_err(shown, "removing a lower entry"))
                }
            };
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
                self.clear_lower(parent, parent_path).map_err(self.entry_err(shown, "removing a lower entry"))
            }
        }
    }

    /// Remove what lower layers left in the directory `dir` (at `path`): everything this
    /// layer did not write, keeping the way to what it did (umoci's whiteout walk).
    fn clear_lower(&self, dir: BorrowedFd<'_>, path: &Path) -> Result<(), Errno> {
        let mut names = Vec::new();
        for item in Dir::read_from(dir)? {
            let item = item?;
            let n = item.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        for n in names {
            let child = path.join(&n);
            if !self.written.contains(&child) {
                remove_all(dir, &n)?;
                continue;
            }
            match openat2(
                dir,
                &n,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ) {
                Ok(fd) => self.clear_lower(fd.as_fd(), &child)?,
                Err(Errno::NOTDIR | Errno::LOOP) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
    fn paths_are_cleaned_inside_the_root_as_umoci_cleans_them() {
        let clean = |p: &[u8]| RelPath::parse(p).unwrap().0;
        assert_eq!(clean(b"./etc/passwd"), PathBuf::from("etc/passwd"));
        assert_eq!(clean(b"etc//x/./y/"), PathBuf::from("etc/x/y"));
        assert!(RelPath::parse(b"./").unwrap().is_root());
        assert_eq!(clean(b"../etc"), PathBuf::from("etc"));
        assert_eq!(clean(b"a/../../etc"), PathBuf::from("etc"));
        assert_eq!(clean(b"/etc/passwd"), PathBuf::from("etc/passwd"));
        assert!(RelPath::parse(b"..").unwrap().is_root());
        // A name that merely starts with dots is a name.
        assert_eq!(clean(b"a/..b/..."), PathBuf::from("a/..b/..."));
        assert!(RelPath::parse(&[b'n'; 256]).is_err(), "NAME_MAX");
        assert!(RelPath::parse(&[b'n'; 255]).is_ok());
        let deep = [&[b'd'; 200][..]; 21].join(&b'/');
        assert!(RelPath::parse(&deep).is_err(), "PATH_MAX");
        // An ACI's names are paths of the archive first: out of `rootfs/` is out of the tree.
        assert!(TarDialect::Aci.clean_tree_path(b"rootfs/../../x").is_none());
        assert!(TarDialect::Aci.clean_tree_path(b"./manifest").is_none());
        assert_eq!(TarDialect::Aci.clean_tree_path(b"./rootfs/a/../b").unwrap().unwrap().0, PathBuf::from("b"));
        assert_eq!(TarDialect::Layer.clean_tree_path(b"/../b").unwrap().unwrap().0, PathBuf::from("b"));
        assert!(RelPath::parse(b"a\0b/c").is_err(), "a NUL byte");
    }

    /// A tar of (path, kind, data): kind 'd' directory, 'f' file, 's' symlink to data,
    /// 'h' hardlink to data. Names are written raw (hostile ones included).
    fn tar_of(entries: &[(&str, char, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            let name = &mut h.as_gnu_mut().unwrap().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_mode(if *kind == 'd' { 0o755 } else { 0o644 });
            h.set_uid(rustix::process::geteuid().as_raw() as u64);
            h.set_gid(rustix::process::getegid().as_raw() as u64);
            h.set_mtime(1_700_000_000);
            h.set_size(0);
            match kind {
                'd' => h.set_entry_type(EntryType::Directory),
                's' | 'h' => {
                    h.set_entry_type(if *kind == 's' { EntryType::Symlink } else { EntryType::Link });
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
        apply(
            r,
            Whiteouts::Delete,
            &[
                ("a", 'f', "lower"),
                ("gone", 'f', "x"),
                ("o", 'd', ""),
                ("o/lower", 'f', "x"),
                ("o/sub", 'd', ""),
                ("o/sub/lower", 'f', "x"),
            ],
        )
        .unwrap();
        apply(
            r,
            Whiteouts::Delete,
            &[
                ("a", 'f', "upper"),
                (".wh.a", 'f', ""),
                (".wh.gone", 'f', ""),
                ("o/mine", 'f', "y"),
                ("o/sub/mine", 'f', "y"),
                ("o/.wh..wh..opq", 'f', ""),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read(r.join("a")).unwrap(), b"upper", "a whiteout after an entry keeps the entry");
        assert!(!r.join("gone").exists());
        assert!(!r.join("o/lower").exists(), "the opaque whiteout hides lower entries");
        assert!(r.join("o/mine").exists(), "but not this layer's");
        assert!(r.join("o/sub/mine").exists() && !r.join("o/sub/lower").exists(), "also deeper down");
    }

    #[test]
    fn overlay_form_records_whiteouts_for_the_mount() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        apply(
            r,
            Whiteouts::Overlay,
            &[(".wh.gone", 'f', ""), (".wh.d", 'f', ""), ("d", 'd', ""), ("o", 'd', ""), ("o/.wh..wh..opq", 'f', "")],
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
    fn a_symlink_leading_out_carries_a_later_entry_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("root");
        std::fs::create_dir(&r).unwrap();
        apply(&r, Whiteouts::Delete, &[("up", 's', ".."), ("up/escaped", 'f', "x")]).unwrap();
        assert!(!dir.path().join("escaped").exists());
        assert_eq!(std::fs::read(r.join("escaped")).unwrap(), b"x", "`..` stops at the root");
        apply(&r, Whiteouts::Delete, &[("run", 'd', ""), ("var/run", 's', "/run"), ("var/run/pid", 'f', "1")]).unwrap();
        assert_eq!(std::fs::read(r.join("run/pid")).unwrap(), b"1", "an absolute symlink starts at the root");
        // A relative symlink that stays inside is followed.
        apply(&r, Whiteouts::Delete, &[("usr", 'd', ""), ("bin", 's', "usr"), ("bin/sh", 'f', "x")]).unwrap();
        assert!(r.join("usr/sh").exists());
        let err = apply(&r, Whiteouts::Delete, &[("a", 's', "b"), ("b", 's', "/a"), ("a/x", 'f', "x")]).unwrap_err();
        assert!(matches!(err, RenderError::Hostile { ref entry, .. } if entry == "a/x"), "{err}");
    }

    #[test]
    fn hardlinks_resolve_inside_and_must_name_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        apply(r, Whiteouts::Delete, &[("etc", 'd', ""), ("etc/passwd", 'f', "p"), ("h", 'h', "../../etc/passwd")])
            .unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(r.join("h")).unwrap().ino(),
            std::fs::metadata(r.join("etc/passwd")).unwrap().ino()
        );
        for (entries, why) in
            [(vec![("x", 'h', "missing")], "does not exist"), (vec![("d", 'd', ""), ("x", 'h', "d")], "directory")]
        {
            let err = apply(r, Whiteouts::Delete, &entries).unwrap_err();
            assert!(
                matches!(&err, RenderError::Hostile { entry, reason, .. } if entry == "x" && reason.contains(why)),
                "{err}"
            );
        }
    }

    #[test]
    fn a_directory_replaced_by_a_file_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        apply(r, Whiteouts::Delete, &[("x", 'd', ""), ("x/in", 'f', "in"), ("x", 'f', "file")]).unwrap();
        assert_eq!(std::fs::read(r.join("x")).unwrap(), b"file");
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
