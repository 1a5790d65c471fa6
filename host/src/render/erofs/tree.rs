//! One layer as an in-memory tree of inodes, built from its tar stream with the same
//! rules as [`super::super::apply::Applier`] in its overlay form: whiteouts become
//! char 0/0 devices and opaque directories `trusted.overlay.opaque=y`; names are decoded
//! and cleaned by the same [`decode`], and paths resolve inside the rootfs by the same
//! [`resolve`] (RESOLVE_IN_ROOT semantics, over the merged view of this layer and the
//! snapshots below it). File contents are not held: the [`DataSink`] copies them into the
//! image's data area as they are read, and the inode keeps their place.
//!
//! The tree is built from the entries once the stream has been read ([`Tree::finish`]):
//! only then may it need the lower snapshots, so the expensive part (decompressing,
//! hashing, writing data) of a layer runs in parallel with its lowers'.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use tar::EntryType;

use super::super::RenderError;
use super::super::apply::{
    ApplyStats, Decoded, EntryName, Meta, OVERLAY_OPAQUE_XATTR, ReadWatch, RelPath, TarDialect, check_complete,
    data_error, decode, device_numbers, refused_type,
};
use super::super::layer::StreamEnd;
use super::super::resolve::{self, Create, DirMeta, LowerSource, Lowers, Node, Unresolved, Upper};
use super::super::sparse::Expanded;
use super::ondisk::xattr_index;
use crate::store::Digest;

/// An index into [`Tree::inodes`].
pub type Ino = usize;

/// The root directory's index.
pub const ROOT: Ino = 0;

#[derive(Debug)]
pub enum Kind {
    /// `blocks` is the first block of its data in the image (meaningless when `size` is 0).
    File {
        block: u32,
        size: u64,
    },
    Dir {
        entries: BTreeMap<Vec<u8>, Ino>,
    },
    Symlink(Vec<u8>),
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
}

#[derive(Debug)]
pub struct Inode {
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky (no file type).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Inode {
    fn dir(perm: u32, uid: u32, gid: u32, mtime: (i64, u32)) -> Inode {
        Inode { kind: Kind::Dir { entries: BTreeMap::new() }, perm, uid, gid, mtime, xattrs: BTreeMap::new() }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }

    fn is_overlay_whiteout(&self) -> bool {
        matches!(self.kind, Kind::Char { major: 0, minor: 0 })
    }
}

/// Where file contents go as they are read: returns the first block and the byte count.
pub trait DataSink {
    fn write_file(&mut self, data: &mut dyn Read) -> std::io::Result<(u32, u64)>;
}

/// An entry read from the stream, its data already in the image.
struct Pending {
    shown: PathBuf,
    path: RelPath,
    meta: Meta,
    what: What,
}

enum What {
    File {
        block: u32,
        size: u64,
    },
    Dir,
    Symlink(Vec<u8>),
    /// A hardlink to the raw target.
    Link(Vec<u8>),
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
    /// `.wh.` names.
    Whiteout,
}

pub struct Tree<'a> {
    /// Every inode ever created; what no directory names any more is not written.
    pub inodes: Vec<Inode>,
    layer: Digest,
    /// Owner and mtime of directories this layer did not describe (the `Applier`
    /// creates them as the current user, at the current time).
    implicit_owner: (u32, u32),
    now: (i64, u32),
    pub stats: ApplyStats,
    /// Paths this layer wrote and their ancestors (resolved).
    written: HashSet<PathBuf>,
    whited: HashSet<PathBuf>,
    /// How entry names map onto the tree.
    pub dialect: TarDialect,
    lowers: Lowers<'a>,
    end: Option<StreamEnd>,
    pending: Vec<Pending>,
    /// The layer has a `./` entry.
    root_described: bool,
}

/// The tree's inodes as the resolver sees them.
struct TreeUpper<'t> {
    inodes: &'t mut Vec<Inode>,
    implicit_owner: (u32, u32),
    now: (i64, u32),
}

impl Upper for TreeUpper<'_> {
    type Dir = Ino;

    fn root(&mut self) -> Result<Ino, Errno> {
        Ok(ROOT)
    }

    fn lookup(&mut self, dir: &Ino, name: &OsStr) -> Result<Node<Ino>, Errno> {
        let Kind::Dir { entries } = &self.inodes[*dir].kind else { return Err(Errno::NOTDIR) };
        let Some(&ino) = entries.get(name.as_bytes()) else { return Ok(Node::Missing) };
        Ok(match &self.inodes[ino].kind {
            Kind::Dir { .. } => Node::Dir(ino),
            Kind::Symlink(target) => Node::Symlink(target.clone()),
            _ if self.inodes[ino].is_overlay_whiteout() => Node::Whiteout,
            _ => Node::Other,
        })
    }

    fn is_opaque(&mut self, dir: &Ino) -> bool {
        self.inodes[*dir].xattrs.get(OVERLAY_OPAQUE_XATTR.as_bytes()).is_some_and(|v| v == b"y")
    }

    fn make_dir(
        &mut self,
        parent: &Ino,
        _path: &Path,
        name: &OsStr,
        like: Option<DirMeta>,
        opaque: bool,
    ) -> Result<Ino, Errno> {
        let mut inode = Inode::dir(0o755, self.implicit_owner.0, self.implicit_owner.1, self.now);
        if let Some(like) = like {
            // overlayfs's copy-up: the merged view shows this directory's metadata.
            inode.perm = like.mode;
            (inode.uid, inode.gid) = (like.uid, like.gid);
            inode.mtime = (like.mtime.tv_sec, like.mtime.tv_nsec as u32);
            inode.xattrs = like.xattrs.into_iter().collect();
        }
        if opaque {
            inode.xattrs.insert(OVERLAY_OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec());
        }
        self.inodes.push(inode);
        let ino = self.inodes.len() - 1;
        let Kind::Dir { entries } = &mut self.inodes[*parent].kind else { return Err(Errno::NOTDIR) };
        entries.insert(name.as_bytes().to_vec(), ino);
        Ok(ino)
    }
}

impl<'a> Tree<'a> {
    pub fn new(layer: Digest) -> Tree<'a> {
        let owner = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now = (now.as_secs() as i64, now.subsec_nanos());
        Tree {
            inodes: vec![Inode::dir(0o755, owner.0, owner.1, now)],
            layer,
            implicit_owner: owner,
            now,
            stats: ApplyStats::default(),
            written: HashSet::new(),
            whited: HashSet::new(),
            dialect: TarDialect::Layer,
            lowers: Lowers::default(),
            end: None,
            pending: Vec::new(),
            root_described: false,
        }
    }

    /// Resolve paths over the snapshots `lowers` gives.
    pub fn with_lowers(mut self, lowers: Option<&'a dyn LowerSource>) -> Tree<'a> {
        self.lowers = Lowers::new(lowers);
        self
    }

    /// The stream is padded at `end` (see [`super::super::EndPadded`]).
    pub fn with_stream_end(mut self, end: StreamEnd) -> Tree<'a> {
        self.end = Some(end);
        self
    }

    fn hostile(&self, entry: &Path, reason: impl Into<String>) -> RenderError {
        RenderError::Hostile { layer: self.layer.clone(), entry: entry.display().to_string(), reason: reason.into() }
    }

    fn unresolved(&self, entry: &Path, why: Unresolved) -> RenderError {
        let io = |source: std::io::Error| RenderError::Entry {
            layer: self.layer.clone(),
            entry: entry.display().to_string(),
            action: "resolving its path inside the rootfs",
            source,
        };
        match why {
            Unresolved::Loop => self.hostile(entry, "its path goes through a symlink loop"),
            Unresolved::NotDir => self.hostile(entry, "a component of its path is not a directory"),
            Unresolved::Missing => io(std::io::ErrorKind::NotFound.into()),
            Unresolved::Os(e) => io(e.into()),
            Unresolved::Lowers(e) => *e,
        }
    }

    fn entries(&self, dir: Ino) -> &BTreeMap<Vec<u8>, Ino> {
        match &self.inodes[dir].kind {
            Kind::Dir { entries } => entries,
            _ => unreachable!("inode {dir} is no directory"),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> &mut BTreeMap<Vec<u8>, Ino> {
        match &mut self.inodes[dir].kind {
            Kind::Dir { entries } => entries,
            _ => unreachable!("inode {dir} is no directory"),
        }
    }

    fn push(&mut self, inode: Inode) -> Ino {
        self.inodes.push(inode);
        self.inodes.len() - 1
    }

    /// Refuse what EROFS cannot hold, before anything of the entry is written.
    fn check_storable(&self, shown: &Path, meta: &Meta) -> Result<(), RenderError> {
        let refuse = |reason: String| RenderError::NotStorable {
            layer: self.layer.clone(),
            entry: shown.display().to_string(),
            reason,
        };
        for (name, value) in &meta.xattrs {
            let shown_name = String::from_utf8_lossy(name);
            match xattr_index(name) {
                Some((_, rest)) if rest.len() <= 255 && value.len() <= usize::from(u16::MAX) => {}
                Some(_) => return Err(refuse(format!("xattr {shown_name} is too long"))),
                None => return Err(refuse(format!("xattr {shown_name} is in a namespace EROFS does not store"))),
            }
        }
        Ok(())
    }

    /// Resolve a directory in the merged view (see [`resolve`]).
    fn resolve(&mut self, path: &Path, create: Create) -> Result<(PathBuf, Option<Ino>), Unresolved> {
        let mut upper = TreeUpper { inodes: &mut self.inodes, implicit_owner: self.implicit_owner, now: self.now };
        let found = resolve::resolve(&mut upper, &mut self.lowers, path, create)?;
        Ok((found.path, found.dir))
    }

    /// Record that this layer wrote `path` (and so its ancestors).
    fn wrote(&mut self, path: &Path) {
        for p in path.ancestors() {
            if p.as_os_str().is_empty() || !self.written.insert(p.to_path_buf()) {
                break;
            }
        }
    }

    /// Read one tar entry: its data goes to `data` now, its place in the tree is decided
    /// by [`Tree::finish`].
    pub fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        data: &mut dyn DataSink,
    ) -> Result<(), RenderError> {
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
        self.check_storable(&shown, &meta)?;
        if path.is_root() && kind != EntryType::Directory {
            return Err(self.hostile(&shown, "the root can only be a directory"));
        }
        if !path.is_root() {
            let (_, name) = path.split();
            if self.dialect.name_kind(name).map_err(|r| self.hostile(&shown, r))? != EntryName::Plain {
                self.stats.whiteouts += 1;
                self.pending.push(Pending { shown, path, meta, what: What::Whiteout });
                return Ok(());
            }
        }
        let what = match kind {
            EntryType::Regular => {
                let stored = entry.size();
                let (expected, written) = match sparse {
                    Some(h) => {
                        let regions = h.regions(entry, stored).map_err(|r| self.hostile(&shown, r))?;
                        let size = regions.real_size;
                        let mut watch = ReadWatch::new(Expanded::new(&mut *entry, regions));
                        (size, data.write_file(&mut watch).map_err(|e| self.data_err(&shown, watch.failed, e)))
                    }
                    None => {
                        let mut watch = ReadWatch::new(&mut *entry);
                        (stored, data.write_file(&mut watch).map_err(|e| self.data_err(&shown, watch.failed, e)))
                    }
                };
                let (block, size) = written?;
                check_complete(entry, self.end.as_ref(), &self.layer, &shown)?;
                if size != expected {
                    return Err(RenderError::Truncated {
                        layer: self.layer.clone(),
                        entry: shown.display().to_string(),
                    });
                }
                self.stats.bytes += size;
                What::File { block, size }
            }
            EntryType::Directory => What::Dir,
            EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                if target.is_empty() {
                    return Err(self.hostile(&shown, "symlink without a target"));
                }
                if target.len() >= super::super::apply::PATH_MAX {
                    return Err(self.hostile(&shown, "symlink target longer than 4095 bytes (PATH_MAX)"));
                }
                What::Symlink(target)
            }
            EntryType::Link => What::Link(entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default()),
            EntryType::Char | EntryType::Block => {
                let (major, minor) = device_numbers(entry.header());
                if kind == EntryType::Char { What::Char { major, minor } } else { What::Block { major, minor } }
            }
            EntryType::Fifo => What::Fifo,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {
                return Ok(());
            }
            other => return Err(self.hostile(&shown, refused_type(other))),
        };
        self.pending.push(Pending { shown, path, meta, what });
        Ok(())
    }

    fn data_err(&self, shown: &Path, read: Option<std::io::Error>, e: std::io::Error) -> RenderError {
        match read {
            Some(read) => data_error(&self.layer, shown, read),
            None => RenderError::Entry {
                layer: self.layer.clone(),
                entry: shown.display().to_string(),
                action: "writing the file",
                source: e,
            },
        }
    }

    /// Build the tree from the entries read, in their order.
    pub fn finish(&mut self) -> Result<(), RenderError> {
        for op in std::mem::take(&mut self.pending) {
            self.apply(op)?;
        }
        if !self.root_described {
            // The merged view's root, as the layer does not describe it (overlayfs shows
            // the topmost layer's root).
            let like = self.lowers.root_meta().map_err(|e| self.unresolved(Path::new("./"), e))?;
            if let Some(like) = like {
                let root = &mut self.inodes[ROOT];
                root.perm = like.mode;
                (root.uid, root.gid) = (like.uid, like.gid);
                root.mtime = (like.mtime.tv_sec, like.mtime.tv_nsec as u32);
                for (k, v) in like.xattrs {
                    root.xattrs.entry(k).or_insert(v);
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: Pending) -> Result<(), RenderError> {
        let Pending { shown, path, meta, what } = op;
        if path.is_root() {
            self.root_described = true;
            set_meta(&mut self.inodes[ROOT], &meta);
            return Ok(());
        }
        let (parent_path, name) = path.split();
        if let What::Whiteout = what {
            // A whiteout under a directory the merged view lacks hides nothing.
            let (parent_path, parent) = match self.resolve(parent_path, Create::Existing) {
                Ok((p, Some(ino))) => (p, ino),
                Ok((_, None)) | Err(Unresolved::Missing | Unresolved::NotDir) => return Ok(()),
                Err(w) => return Err(self.unresolved(&shown, w)),
            };
            match self.dialect.name_kind(name).map_err(|r| self.hostile(&shown, r))? {
                EntryName::Opaque => {
                    self.inodes[parent].xattrs.insert(OVERLAY_OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec());
                }
                EntryName::Whiteout(target) => self.whiteout(parent, parent_path.join(target), target.as_bytes()),
                EntryName::Plain => unreachable!("classified when read"),
            }
            return Ok(());
        }
        let (parent_path, parent) = match self.resolve(parent_path, Create::Always) {
            Ok((p, Some(ino))) => (p, ino),
            Ok((_, None)) => unreachable!("Create::Always gives the upper's directory"),
            Err(w) => return Err(self.unresolved(&shown, w)),
        };
        let full = parent_path.join(name);
        let name = name.as_bytes().to_vec();
        // A hardlink's target, found before anything is replaced.
        let linked = match &what {
            What::Link(raw) => Some(self.link_target(&shown, raw)?),
            _ => None,
        };
        let existing = self.entries(parent).get(&name).copied();
        let existing_is_dir = existing.is_some_and(|e| self.inodes[e].is_dir());
        let was_whited_out =
            self.whited.contains(&full) || existing.is_some_and(|e| self.inodes[e].is_overlay_whiteout());
        let is_dir = matches!(what, What::Dir);
        if existing.is_some() && !(is_dir && existing_is_dir) {
            self.entries_mut(parent).remove(&name);
        }
        self.wrote(&full);

        let mut inode = Inode {
            kind: Kind::Fifo,
            perm: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            mtime: (meta.mtime.tv_sec, meta.mtime.tv_nsec as u32),
            xattrs: meta.xattrs.iter().cloned().collect(),
        };
        inode.kind = match what {
            What::File { block, size } => Kind::File { block, size },
            What::Dir => {
                if let Some(dir) = existing.filter(|_| existing_is_dir) {
                    set_meta(&mut self.inodes[dir], &meta);
                    if was_whited_out {
                        self.inodes[dir].xattrs.insert(OVERLAY_OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec());
                    }
                    return Ok(());
                }
                if was_whited_out {
                    inode.xattrs.insert(OVERLAY_OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec());
                }
                Kind::Dir { entries: BTreeMap::new() }
            }
            What::Symlink(target) => {
                inode.perm = 0o777;
                Kind::Symlink(target)
            }
            What::Link(_) => {
                self.entries_mut(parent).insert(name, linked.expect("found above"));
                return Ok(());
            }
            What::Char { major, minor } => Kind::Char { major, minor },
            What::Block { major, minor } => Kind::Block { major, minor },
            What::Fifo => Kind::Fifo,
            What::Whiteout => unreachable!("handled above"),
        };
        let ino = self.push(inode);
        self.entries_mut(parent).insert(name, ino);
        Ok(())
    }

    /// The inode a hardlink names: it must be in this layer and not be a directory.
    fn link_target(&mut self, shown: &Path, raw: &[u8]) -> Result<Ino, RenderError> {
        let target = self
            .dialect
            .clean_tree_path(raw)
            .ok_or_else(|| self.hostile(shown, "hardlink target outside the archive's tree"))?
            .map_err(|r| self.hostile(shown, format!("hardlink target: {r}")))?;
        if target.is_root() {
            return Err(self.hostile(shown, "hardlink to the root directory"));
        }
        let (tparent_path, tname) = target.split();
        let missing = |this: &Self| {
            if this.lowers.is_empty() {
                this.hostile(shown, format!("hardlink target {:?} does not exist", target.0))
            } else {
                RenderError::LowerHardlink {
                    layer: this.layer.clone(),
                    entry: shown.display().to_string(),
                    target: target.0.display().to_string(),
                }
            }
        };
        let tparent = match self.resolve(tparent_path, Create::Never) {
            Ok((_, Some(ino))) => ino,
            Ok((_, None)) | Err(Unresolved::Missing) => return Err(missing(self)),
            Err(w) => return Err(self.unresolved(shown, w)),
        };
        match self.entries(tparent).get(tname.as_bytes()) {
            Some(&ino) if self.inodes[ino].is_dir() => Err(self.hostile(shown, "hardlink to a directory")),
            Some(&ino) if !self.inodes[ino].is_overlay_whiteout() => Ok(ino),
            _ => Err(missing(self)),
        }
    }

    /// `.wh.<name>` in `parent`: hide the lower entry (`full` is its path in the layer).
    fn whiteout(&mut self, parent: Ino, full: PathBuf, name: &[u8]) {
        if self.written.contains(&full) {
            // A whiteout hides only what lower layers hold; a directory this layer wrote
            // must still hide the lower one.
            if let Some(&dir) = self.entries(parent).get(name)
                && self.inodes[dir].is_dir()
            {
                self.inodes[dir].xattrs.insert(OVERLAY_OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec());
            }
            return;
        }
        let (uid, gid) = self.implicit_owner;
        let ino = self.push(Inode {
            kind: Kind::Char { major: 0, minor: 0 },
            perm: 0,
            uid,
            gid,
            mtime: self.now,
            xattrs: BTreeMap::new(),
        });
        self.entries_mut(parent).insert(name.to_vec(), ino);
        self.whited.insert(full);
    }
}

/// Owner, mode and xattrs (added to what the inode has), and the mtime of an entry.
fn set_meta(inode: &mut Inode, meta: &Meta) {
    inode.uid = meta.uid;
    inode.gid = meta.gid;
    inode.perm = meta.mode & 0o7777;
    inode.mtime = (meta.mtime.tv_sec, meta.mtime.tv_nsec as u32);
    for (k, v) in &meta.xattrs {
        inode.xattrs.insert(k.clone(), v.clone());
    }
}
