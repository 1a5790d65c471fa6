//! Resolving a layer entry's directory inside the rootfs, with the semantics of
//! `openat2(RESOLVE_IN_ROOT)` (and of the `securejoin` that umoci, containerd and Docker
//! use), over the merged view of the layer being written and the snapshots below it.
//!
//! Glossary:
//! - *upper*: the tree this layer is written into: a flattened rootfs (which already holds
//!   every lower layer), a directory snapshot, or the in-memory tree of an EROFS image.
//! - *lowers*: the snapshots below the layer, top first; none for a flattened render.
//! - *merged view*: what overlayfs shows of upper + lowers: for each name the topmost
//!   layer that has it decides; a directory merges with the directories below it unless
//!   it is opaque; a whiteout (char 0/0) hides the name in the layers below.
//!
//! Rules:
//! - `..` is the parent directory, and at the root stays at the root;
//! - a symlink met on the way is followed inside the rootfs: an absolute target starts
//!   again at the root, a relative one from the symlink's directory; after
//!   [`MAX_SYMLINKS`] the path is a loop;
//! - a file, device or fifo met on the way is an error (ENOTDIR).
//!
//! Nothing is resolved by the kernel across a symlink: each step opens one name under a
//! directory descriptor with `O_NOFOLLOW`, and `..` pops a stack this module keeps, so no
//! content of the tree can lead a path out of it.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec};
use rustix::io::Errno;

use super::RenderError;
use super::apply::OVERLAY_OPAQUE_XATTR;

/// Symlinks followed while resolving one path before it counts as a loop (Linux's
/// MAXSYMLINKS).
pub(super) const MAX_SYMLINKS: u32 = 40;

/// What a name is in one layer's directory.
pub(super) enum Node<D> {
    Dir(D),
    Symlink(Vec<u8>),
    /// An overlay whiteout (char 0/0): the name is gone from the layers below.
    Whiteout,
    /// A file, device, fifo or socket.
    Other,
    Missing,
}

/// Why a path could not be resolved.
#[derive(Debug)]
pub(super) enum Unresolved {
    Loop,
    NotDir,
    Missing,
    Os(Errno),
    /// The lower snapshots could not be had (one failed to unpack).
    Lowers(Box<RenderError>),
}

impl From<Errno> for Unresolved {
    fn from(e: Errno) -> Self {
        match e {
            Errno::NOENT => Unresolved::Missing,
            Errno::NOTDIR => Unresolved::NotDir,
            e => Unresolved::Os(e),
        }
    }
}

/// How much of a path [`resolve`] may create in the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Create {
    /// Nothing: the directory must exist in the merged view (it may be in lowers only).
    Never,
    /// Directories of the merged view that only lowers hold get an upper copy (their
    /// metadata copied up, as overlayfs copies up); a missing one is an error.
    Existing,
    /// As `Existing`, and missing directories are made.
    Always,
}

/// Owner, mode, mtime and xattrs of a lower directory, for the upper copy of it.
#[derive(Debug, Clone)]
pub(super) struct DirMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The layer being written: looked up and extended by [`resolve`].
pub(super) trait Upper {
    type Dir;
    fn root(&mut self) -> Result<Self::Dir, Errno>;
    /// What `name` is in `dir`; never follows it.
    fn lookup(&mut self, dir: &Self::Dir, name: &OsStr) -> Result<Node<Self::Dir>, Errno>;
    fn is_opaque(&mut self, dir: &Self::Dir) -> bool;
    /// Make the directory `name` in `parent` (its path in the tree is `path`), replacing a
    /// whiteout there: with the metadata of `like` (the lower directory the merged view
    /// shows at `path`), or as a directory the layer implies; `opaque` hides what the
    /// lowers hold at `path`.
    fn make_dir(
        &mut self,
        parent: &Self::Dir,
        path: &Path,
        name: &OsStr,
        like: Option<DirMeta>,
        opaque: bool,
    ) -> Result<Self::Dir, Errno>;
}

/// Where the snapshots below a layer come from: asked only when a path needs them (a
/// snapshot unpacked in parallel with its lowers waits for them there).
pub trait LowerSource: Sync {
    /// The lower trees, top first.
    fn lower_trees(&self) -> Result<Vec<PathBuf>, RenderError>;
}

/// The lower snapshots of a layer, opened on first use.
#[derive(Default)]
pub(super) struct Lowers<'a> {
    source: Option<&'a dyn LowerSource>,
    roots: Option<Vec<OwnedFd>>,
}

impl<'a> Lowers<'a> {
    pub(super) fn new(source: Option<&'a dyn LowerSource>) -> Lowers<'a> {
        Lowers { source, roots: None }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.source.is_none()
    }

    /// The metadata of the merged view's root, when there are lowers: the root of the
    /// snapshot just below (which took it from those below it, or its layer's `./`).
    pub(super) fn root_meta(&mut self) -> Result<Option<DirMeta>, Unresolved> {
        match self.roots()?.first() {
            Some(top) => Ok(Some(dir_meta(top.as_fd())?)),
            None => Ok(None),
        }
    }

    fn roots(&mut self) -> Result<Vec<OwnedFd>, Unresolved> {
        if self.roots.is_none() {
            let trees = match self.source {
                Some(s) => s.lower_trees().map_err(|e| Unresolved::Lowers(Box::new(e)))?,
                None => Vec::new(),
            };
            let mut roots = Vec::with_capacity(trees.len());
            for t in &trees {
                roots.push(open_dir_at(rustix::fs::CWD, t.as_os_str())?);
            }
            self.roots = Some(roots);
        }
        let roots = self.roots.as_ref().expect("just set");
        roots.iter().map(|r| rustix::io::dup(r).map_err(Unresolved::Os)).collect()
    }
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What `name` is under the directory `dir` of a tree on disk; `whiteouts`: a char 0/0
/// device is an overlay whiteout (in snapshots, not in a flattened rootfs).
pub(super) fn lookup_fd(dir: BorrowedFd<'_>, name: &OsStr, whiteouts: bool) -> Result<Node<OwnedFd>, Errno> {
    match open_dir_at(dir, name) {
        Ok(fd) => Ok(Node::Dir(fd)),
        // Not a directory (O_DIRECTORY), or a symlink (O_NOFOLLOW; reported as either).
        Err(Errno::NOTDIR | Errno::LOOP) => {
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            Ok(match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => Node::Symlink(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes()),
                FileType::CharacterDevice if whiteouts && st.st_rdev == 0 => Node::Whiteout,
                _ => Node::Other,
            })
        }
        Err(Errno::NOENT) => Ok(Node::Missing),
        Err(e) => Err(e),
    }
}

/// Is the directory marked opaque for overlayfs?
pub(super) fn is_opaque_fd(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 2];
    rustix::fs::fgetxattr(dir, OVERLAY_OPAQUE_XATTR, &mut buf).is_ok_and(|n| &buf[..n] == b"y")
}

/// Owner, mode, mtime and xattrs (but overlayfs's own) of a directory.
pub(super) fn dir_meta(dir: BorrowedFd<'_>) -> Result<DirMeta, Errno> {
    let st = rustix::fs::fstat(dir)?;
    let mut xattrs = Vec::new();
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(dir, &mut names) {
        Ok(n) => n,
        Err(Errno::RANGE) => {
            names = vec![0u8; 64 * 1024];
            rustix::fs::flistxattr(dir, &mut names)?
        }
        Err(Errno::NOTSUP) => 0,
        Err(e) => return Err(e),
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        let len = rustix::fs::fgetxattr(dir, OsStr::from_bytes(name), &mut value)?;
        value.truncate(len);
        xattrs.push((name.to_vec(), value));
    }
    Ok(DirMeta {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: Timespec { tv_sec: st.st_mtime as _, tv_nsec: st.st_mtime_nsec as _ },
        xattrs,
    })
}

/// One directory of the path resolved so far.
struct Frame<D> {
    name: OsString,
    /// The upper's directory here, if the upper has (or was given) one.
    upper: Option<D>,
    /// The lower directories merged here, top first; `None` until asked for.
    lowers: Option<Vec<OwnedFd>>,
    /// A new directory replacing a whiteout: it must hide the lowers.
    opaque: bool,
}

/// A resolved directory.
pub(super) struct Resolved<D> {
    /// Its path in the tree: every component a directory of the merged view.
    pub path: PathBuf,
    /// The upper's directory there; `None` (only with [`Create::Never`]) when only lowers
    /// hold it.
    pub dir: Option<D>,
}

/// Resolve the directory `path` (components as a tar entry names them) in the merged view
/// of `upper` over `lowers`, creating what `create` allows in the upper.
pub(super) fn resolve<U: Upper>(
    upper: &mut U,
    lowers: &mut Lowers<'_>,
    path: &Path,
    create: Create,
) -> Result<Resolved<U::Dir>, Unresolved> {
    let root = upper.root()?;
    let root_opaque = upper.is_opaque(&root);
    let mut stack = vec![Frame {
        name: OsString::new(),
        upper: Some(root),
        lowers: if root_opaque || lowers.is_empty() { Some(Vec::new()) } else { None },
        opaque: false,
    }];
    let mut todo: Vec<OsString> = path.iter().rev().map(OsStr::to_os_string).collect();
    let mut followed = 0;
    while let Some(part) = todo.pop() {
        match part.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            _ => {}
        }
        let here = stack.last().expect("the root stays on the stack");
        let found = match &here.upper {
            Some(dir) => upper.lookup(dir, &part)?,
            None => Node::Missing,
        };
        let mut whited_out = false;
        let target = match found {
            Node::Dir(dir) => {
                let opaque = upper.is_opaque(&dir);
                let lowers = if opaque { Some(Vec::new()) } else { None };
                stack.push(Frame { name: part, upper: Some(dir), lowers, opaque: false });
                continue;
            }
            Node::Symlink(target) => Some(target),
            Node::Other => return Err(Unresolved::NotDir),
            Node::Whiteout => {
                whited_out = true;
                None
            }
            Node::Missing => match lower_lookup(&mut stack, lowers, &part)? {
                LowerFound::Dirs(dirs) => {
                    stack.push(Frame { name: part, upper: None, lowers: Some(dirs), opaque: false });
                    continue;
                }
                LowerFound::Symlink(target) => Some(target),
                LowerFound::NotDir => return Err(Unresolved::NotDir),
                LowerFound::Nothing => None,
            },
        };
        match target {
            Some(target) => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(Unresolved::Loop);
                }
                if target.first() == Some(&b'/') {
                    stack.truncate(1);
                }
                todo.extend(target.split(|b| *b == b'/').rev().map(|c| OsStr::from_bytes(c).to_os_string()));
            }
            None if create == Create::Always => {
                stack.push(Frame { name: part, upper: None, lowers: Some(Vec::new()), opaque: whited_out });
            }
            None => return Err(Unresolved::Missing),
        }
    }
    // Give the upper what it lacks of the path, top-down.
    let mut path = PathBuf::new();
    for i in 1..stack.len() {
        path.push(&stack[i].name);
        if stack[i].upper.is_some() || create == Create::Never {
            continue;
        }
        let like = match stack[i].lowers.as_ref().and_then(|l| l.first()) {
            Some(lower) => Some(dir_meta(lower.as_fd())?),
            None => None,
        };
        let (before, rest) = stack.split_at_mut(i);
        let frame = &mut rest[0];
        let parent = before[i - 1].upper.as_ref().expect("parents are made first");
        frame.upper = Some(upper.make_dir(parent, &path, &frame.name, like, frame.opaque)?);
    }
    let last = stack.pop().expect("the root stays on the stack");
    Ok(Resolved { path, dir: last.upper })
}

enum LowerFound {
    Dirs(Vec<OwnedFd>),
    Symlink(Vec<u8>),
    NotDir,
    Nothing,
}

/// Look `name` up in the lowers merged at the top of `stack`.
fn lower_lookup<D>(stack: &mut [Frame<D>], lowers: &mut Lowers<'_>, name: &OsStr) -> Result<LowerFound, Unresolved> {
    let top = stack.len() - 1;
    merged_lowers(stack, lowers, top)?;
    let mut dirs = Vec::new();
    for dir in stack[top].lowers.as_ref().expect("just merged") {
        match lookup_fd(dir.as_fd(), name, true)? {
            Node::Dir(d) => {
                let opaque = is_opaque_fd(d.as_fd());
                dirs.push(d);
                if opaque {
                    break;
                }
            }
            Node::Missing => {}
            // A whiteout hides the name below; a non-directory below a directory is
            // hidden by it, and so is everything under it.
            Node::Whiteout => break,
            Node::Symlink(target) if dirs.is_empty() => return Ok(LowerFound::Symlink(target)),
            Node::Other if dirs.is_empty() => return Ok(LowerFound::NotDir),
            Node::Symlink(_) | Node::Other => break,
        }
    }
    Ok(if dirs.is_empty() { LowerFound::Nothing } else { LowerFound::Dirs(dirs) })
}

/// Fill in the lower directories merged at `stack[i]`, from its parent's.
fn merged_lowers<D>(stack: &mut [Frame<D>], lowers: &mut Lowers<'_>, i: usize) -> Result<(), Unresolved> {
    if stack[i].lowers.is_some() {
        return Ok(());
    }
    if i == 0 {
        stack[0].lowers = Some(lowers.roots()?);
        return Ok(());
    }
    merged_lowers(stack, lowers, i - 1)?;
    let name = stack[i].name.clone();
    let found = match lower_lookup(&mut stack[..i], lowers, &name)? {
        LowerFound::Dirs(dirs) => dirs,
        // The upper's directory hides a lower non-directory of that name.
        _ => Vec::new(),
    };
    stack[i].lowers = Some(found);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upper on disk, without whiteouts: what a flattened render resolves in.
    struct Plain(OwnedFd);

    impl Upper for Plain {
        type Dir = OwnedFd;
        fn root(&mut self) -> Result<OwnedFd, Errno> {
            rustix::io::dup(&self.0)
        }
        fn lookup(&mut self, dir: &OwnedFd, name: &OsStr) -> Result<Node<OwnedFd>, Errno> {
            lookup_fd(dir.as_fd(), name, false)
        }
        fn is_opaque(&mut self, _: &OwnedFd) -> bool {
            false
        }
        fn make_dir(
            &mut self,
            p: &OwnedFd,
            _: &Path,
            n: &OsStr,
            _: Option<DirMeta>,
            _: bool,
        ) -> Result<OwnedFd, Errno> {
            rustix::fs::mkdirat(p, n, Mode::from_raw_mode(0o755))?;
            open_dir_at(p.as_fd(), n)
        }
    }

    fn plain(root: &Path) -> Plain {
        Plain(open_dir_at(rustix::fs::CWD, root.as_os_str()).unwrap())
    }

    #[test]
    fn absolute_symlinks_and_dotdot_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("root");
        std::fs::create_dir_all(r.join("run")).unwrap();
        std::fs::create_dir_all(r.join("var")).unwrap();
        std::os::unix::fs::symlink("/run", r.join("var/run")).unwrap();
        std::os::unix::fs::symlink("../../../..", r.join("up")).unwrap();
        let mut up = plain(&r);
        let mut none = Lowers::default();
        let got = resolve(&mut up, &mut none, Path::new("var/run/lock"), Create::Always).unwrap();
        assert_eq!(got.path, Path::new("run/lock"));
        assert!(r.join("run/lock").is_dir(), "made inside the root, through the symlink");
        let got = resolve(&mut up, &mut none, Path::new("up/var/../up/run"), Create::Never).unwrap();
        assert_eq!(got.path, Path::new("run"));
        assert!(!dir.path().join("var").exists());
    }

    #[test]
    fn loops_and_files_on_the_way_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::os::unix::fs::symlink("b", r.join("a")).unwrap();
        std::os::unix::fs::symlink("/a", r.join("b")).unwrap();
        std::fs::write(r.join("f"), b"").unwrap();
        let mut up = plain(r);
        let mut none = Lowers::default();
        assert!(matches!(resolve(&mut up, &mut none, Path::new("a/x"), Create::Always), Err(Unresolved::Loop)));
        assert!(matches!(resolve(&mut up, &mut none, Path::new("f/x"), Create::Always), Err(Unresolved::NotDir)));
        assert!(matches!(resolve(&mut up, &mut none, Path::new("m/x"), Create::Never), Err(Unresolved::Missing)));
    }

    struct Below(Vec<PathBuf>);

    impl LowerSource for Below {
        fn lower_trees(&self) -> Result<Vec<PathBuf>, RenderError> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn a_symlink_of_a_lower_layer_leads_the_upper_path() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
        std::fs::create_dir_all(lower.join("run")).unwrap();
        std::fs::create_dir_all(lower.join("var")).unwrap();
        std::os::unix::fs::symlink("/run", lower.join("var/run")).unwrap();
        std::fs::create_dir(&upper).unwrap();
        let below = Below(vec![lower.clone()]);
        let mut lowers = Lowers::new(Some(&below));
        let got = resolve(&mut plain(&upper), &mut lowers, Path::new("var/run"), Create::Existing).unwrap();
        assert_eq!(got.path, Path::new("run"));
        assert!(upper.join("run").is_dir() && !upper.join("var").exists(), "only the resolved path is copied up");
        let got = resolve(&mut plain(&upper), &mut lowers, Path::new("var"), Create::Never).unwrap();
        assert!(got.dir.is_none(), "a directory only lowers hold");
        let missing = resolve(&mut plain(&upper), &mut lowers, Path::new("var/nope"), Create::Existing);
        assert!(matches!(missing, Err(Unresolved::Missing)));
    }
}
