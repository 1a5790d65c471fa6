//! One layer as an in-memory tree of inodes, built from its tar stream with the same
//! rules as [`super::super::apply::Applier`] in its overlay form: whiteouts become
//! char 0/0 devices and opaque directories `trusted.overlay.opaque=y`; paths are parsed
//! by the same [`RelPath`]; a symlink on an entry's path is followed only while it stays
//! inside the layer (an absolute target or `..` past the root is refused, as
//! `RESOLVE_BENEATH` refuses them). File contents are not held: the [`DataSink`] copies
//! them into the image's data area as they are read, and the inode keeps their place.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::super::RenderError;
use super::super::apply::{
    ApplyStats, EntryName, Meta, OVERLAY_OPAQUE_XATTR, RelPath, TarDialect, device_numbers, read_meta,
};
use super::ondisk::{NAME_MAX, xattr_index};
use crate::store::Digest;

/// Symlinks followed while resolving one path before it counts as a loop (as Linux).
const MAX_SYMLINKS: u32 = 40;

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

/// Why a path could not be resolved inside the layer.
enum Unresolved {
    Escapes,
    Loop,
    NotDir,
    Missing,
}

pub struct Tree {
    /// Every inode ever created; what no directory names any more is not written.
    pub inodes: Vec<Inode>,
    layer: Digest,
    /// Owner and mtime of directories this layer did not describe (the `Applier`
    /// creates them as the current user, at the current time).
    implicit_owner: (u32, u32),
    now: (i64, u32),
    pub stats: ApplyStats,
    written: HashSet<PathBuf>,
    whited: HashSet<PathBuf>,
    /// How entry names map onto the tree.
    pub dialect: TarDialect,
}

impl Tree {
    pub fn new(layer: Digest) -> Tree {
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
        }
    }

    fn hostile(&self, entry: &Path, reason: impl Into<String>) -> RenderError {
        RenderError::Hostile { layer: self.layer.clone(), entry: entry.display().to_string(), reason: reason.into() }
    }

    fn unresolved(&self, entry: &Path, why: Unresolved) -> RenderError {
        match why {
            Unresolved::Escapes => self.hostile(entry, "its path goes through a symlink that leads outside the rootfs"),
            Unresolved::Loop => self.hostile(entry, "its path goes through a symlink loop"),
            Unresolved::NotDir => self.hostile(entry, "a component of its path is not a directory"),
            Unresolved::Missing => RenderError::Entry {
                layer: self.layer.clone(),
                entry: entry.display().to_string(),
                action: "resolving its path inside the rootfs",
                source: std::io::ErrorKind::NotFound.into(),
            },
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
    fn check_storable(&self, shown: &Path, path: &RelPath, meta: &Meta) -> Result<(), RenderError> {
        let refuse = |reason: String| RenderError::NotStorable {
            layer: self.layer.clone(),
            entry: shown.display().to_string(),
            reason,
        };
        if path.0.iter().any(|c| c.len() > NAME_MAX) {
            return Err(refuse(format!("a name is longer than {NAME_MAX} bytes")));
        }
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

    /// Resolve a directory path, following symlinks inside the layer; with `create`,
    /// missing directories are made (0755, as the `Applier` makes them).
    fn resolve_dir(&mut self, path: &Path, create: bool) -> Result<Ino, Unresolved> {
        let mut stack = vec![ROOT];
        let mut todo: Vec<Vec<u8>> = path.iter().rev().map(|c| c.as_bytes().to_vec()).collect();
        let mut followed = 0;
        while let Some(part) = todo.pop() {
            let here = *stack.last().expect("the root stays on the stack");
            match part.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() == 1 {
                        return Err(Unresolved::Escapes);
                    }
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let next = match self.entries(here).get(&part) {
                Some(&ino) => ino,
                None if create => {
                    let (uid, gid) = self.implicit_owner;
                    let ino = self.push(Inode::dir(0o755, uid, gid, self.now));
                    self.entries_mut(here).insert(part, ino);
                    ino
                }
                None => return Err(Unresolved::Missing),
            };
            match &self.inodes[next].kind {
                Kind::Dir { .. } => stack.push(next),
                Kind::Symlink(target) => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(Unresolved::Loop);
                    }
                    if target.first() == Some(&b'/') {
                        return Err(Unresolved::Escapes);
                    }
                    todo.extend(target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
                }
                _ => return Err(Unresolved::NotDir),
            }
        }
        Ok(*stack.last().expect("the root stays on the stack"))
    }

    /// Add one tar entry.
    pub fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        data: &mut dyn DataSink,
    ) -> Result<(), RenderError> {
        let raw = entry.path_bytes().into_owned();
        let shown = PathBuf::from(OsStr::from_bytes(&raw));
        let Some(tree_path) = self.dialect.tree_path(&raw) else { return Ok(()) };
        let path = RelPath::parse(tree_path).map_err(|r| self.hostile(&shown, r))?;
        self.stats.entries += 1;
        let meta = read_meta(entry, |what| self.hostile(&shown, format!("unreadable {what} in its header")))?;
        self.check_storable(&shown, &path, &meta)?;
        let kind = entry.header().entry_type();

        if path.is_root() {
            if kind == EntryType::Directory {
                set_meta(&mut self.inodes[ROOT], &meta);
                return Ok(());
            }
            return Err(self.hostile(&shown, "the root can only be a directory"));
        }

        let (parent_path, name) = path.split();
        let name_kind = self.dialect.name_kind(name).map_err(|r| self.hostile(&shown, r))?;
        let parent = self.resolve_dir(parent_path, true).map_err(|w| self.unresolved(&shown, w))?;
        match name_kind {
            EntryName::Opaque => {
                self.stats.whiteouts += 1;
                self.inodes[parent].xattrs.insert(OVERLAY_OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec());
                return Ok(());
            }
            EntryName::Whiteout(target) => {
                self.stats.whiteouts += 1;
                self.whiteout(parent, parent_path.join(target), target.as_bytes());
                return Ok(());
            }
            EntryName::Plain => {}
        }

        let name = name.as_bytes().to_vec();
        let existing = self.entries(parent).get(&name).copied();
        let existing_is_dir = existing.is_some_and(|e| self.inodes[e].is_dir());
        let was_whited_out =
            self.whited.contains(&path.0) || existing.is_some_and(|e| self.inodes[e].is_overlay_whiteout());
        if existing.is_some() && !(kind == EntryType::Directory && existing_is_dir) {
            self.entries_mut(parent).remove(&name);
        }
        self.written.insert(path.0.clone());

        let mut inode = Inode {
            kind: Kind::Fifo,
            perm: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            mtime: (meta.mtime.tv_sec, meta.mtime.tv_nsec as u32),
            xattrs: meta.xattrs.iter().cloned().collect(),
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let (block, size) = data.write_file(entry).map_err(|source| RenderError::Entry {
                    layer: self.layer.clone(),
                    entry: shown.display().to_string(),
                    action: "writing the file",
                    source,
                })?;
                self.stats.bytes += size;
                inode.kind = Kind::File { block, size };
            }
            EntryType::Directory => {
                if let Some(dir) = existing.filter(|_| existing_is_dir) {
                    set_meta(&mut self.inodes[dir], &meta);
                    if was_whited_out {
                        self.inodes[dir].xattrs.insert(OVERLAY_OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec());
                    }
                    return Ok(());
                }
                inode.kind = Kind::Dir { entries: BTreeMap::new() };
                if was_whited_out {
                    inode.xattrs.insert(OVERLAY_OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec());
                }
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&shown, "symlink without a target"))?
                    .into_owned();
                inode.kind = Kind::Symlink(target);
                inode.perm = 0o777;
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
                let layer = self.layer.clone();
                let lower = || RenderError::LowerHardlink {
                    layer: layer.clone(),
                    entry: shown.display().to_string(),
                    target: target.0.display().to_string(),
                };
                let tparent = match self.resolve_dir(tparent_path, false) {
                    Ok(d) => d,
                    Err(Unresolved::Missing) => return Err(lower()),
                    Err(w) => return Err(self.unresolved(&shown, w)),
                };
                let Some(&linked) = self.entries(tparent).get(tname.as_bytes()) else {
                    return Err(lower());
                };
                if self.inodes[linked].is_dir() {
                    return Err(RenderError::Entry {
                        layer: self.layer.clone(),
                        entry: shown.display().to_string(),
                        action: "creating the hardlink",
                        source: std::io::Error::from_raw_os_error(libc::EPERM),
                    });
                }
                self.entries_mut(parent).insert(name, linked);
                return Ok(());
            }
            EntryType::Char | EntryType::Block => {
                let (major, minor) = device_numbers(entry.header());
                inode.kind =
                    if kind == EntryType::Char { Kind::Char { major, minor } } else { Kind::Block { major, minor } };
            }
            EntryType::Fifo => inode.kind = Kind::Fifo,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {
                return Ok(());
            }
            other => return Err(self.hostile(&shown, format!("unsupported tar entry type {other:?}"))),
        }
        let ino = self.push(inode);
        self.entries_mut(parent).insert(name, ino);
        Ok(())
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
