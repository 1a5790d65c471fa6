//! The FUSE file system of one lazily pulled layer: read-only, metadata from the TOC
//! (so `stat` and `readdir` never wait), contents through [`LazyPull`] (a read waits
//! only for its own file, checked before a byte is returned; a fetch that fails or does
//! not match answers `EIO`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, IoctlFlags, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyXattr,
    Request,
};

use super::tree::{Content, Node, NodeKind, Tree};
use crate::chunked::LazyPull;

/// Nothing in the tree ever changes: the kernel may keep what it was told.
const TTL: Duration = Duration::from_secs(24 * 3600);
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

pub struct LayerFs {
    pub(super) tree: Tree,
    pub(super) pull: LazyPull,
}

impl LayerFs {
    fn node(&self, ino: INodeNo) -> Result<&Node, Errno> {
        self.tree.get(ino.0).ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let (size, rdev) = match &node.kind {
            NodeKind::Dir { .. } => (4096, 0),
            NodeKind::File { size, .. } => (*size, 0),
            NodeKind::Symlink(target) => (target.len() as u64, 0),
            NodeKind::Char { major, minor } | NodeKind::Block { major, minor } => (0, encode_dev(*major, *minor)),
            NodeKind::Fifo => (0, 0),
        };
        let kind = file_type(node);
        let mtime = if node.mtime >= 0 {
            UNIX_EPOCH + Duration::from_secs(node.mtime as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(node.mtime.unsigned_abs())
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm: (node.mode & 0o7777) as u16,
            nlink: node.nlink,
            uid: node.uid,
            gid: node.gid,
            rdev,
            blksize: 4096,
            flags: 0,
        }
    }

    fn xattrs(node: &Node) -> Vec<(&str, &[u8])> {
        let mut out: Vec<(&str, &[u8])> = node.xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        if matches!(node.kind, NodeKind::Dir { opaque: true, .. }) {
            out.push((OPAQUE_XATTR, b"y"));
        }
        out
    }

    /// Make a file's content readable; `EIO` (and a logged reason) when it cannot be.
    fn ensure(&self, node: &Node) -> Result<(), Errno> {
        let NodeKind::File { content: Content::Entry(i), .. } = node.kind else { return Ok(()) };
        let entry = &self.pull.toc().entries[i];
        self.pull.ensure(entry).map_err(|e| {
            tracing::error!(layer = %self.pull.layer(), name = %entry.name, "lazy read failed: {e}");
            Errno::EIO
        })
    }
}

fn file_type(node: &Node) -> FileType {
    match node.kind {
        NodeKind::Dir { .. } => FileType::Directory,
        NodeKind::File { .. } => FileType::RegularFile,
        NodeKind::Symlink(_) => FileType::Symlink,
        NodeKind::Char { .. } => FileType::CharDevice,
        NodeKind::Block { .. } => FileType::BlockDevice,
        NodeKind::Fifo => FileType::NamedPipe,
    }
}

/// The kernel's 32-bit device number encoding (`new_encode_dev`).
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

fn reply_xattr(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

impl Filesystem for LayerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.tree.lookup(parent.0, name.as_bytes()).and_then(|ino| Some((ino, self.tree.get(ino)?))) {
            Some((ino, node)) => reply.entry(&TTL, &self.attr(ino, node), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(node) => reply.attr(&TTL, &self.attr(ino.0, node)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino).map(|n| &n.kind) {
            Ok(NodeKind::Symlink(target)) => reply.data(target),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.node(ino).and_then(|node| self.ensure(node)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let node = match self.node(ino) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        let NodeKind::File { content, size: file_size } = &node.kind else { return reply.error(Errno::EISDIR) };
        let len = file_size.saturating_sub(offset).min(size as u64) as usize;
        let mut buf = vec![0u8; len];
        let read = match content {
            Content::Empty => Ok(0),
            Content::Toc => {
                let toc = self.pull.toc_in_tar().unwrap_or_default();
                let start = (offset as usize).min(toc.len());
                buf.copy_from_slice(&toc[start..start + len]);
                Ok(len)
            }
            Content::Entry(i) => match self.ensure(node) {
                Ok(()) => self.pull.read_at(&self.pull.toc().entries[*i], offset, &mut buf).map_err(|e| {
                    tracing::error!(layer = %self.pull.layer(), "reading the spool: {e}");
                    Errno::EIO
                }),
                Err(e) => Err(e),
            },
        };
        match read {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let node = match self.node(ino) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        let Some(children) = node.children() else { return reply.error(Errno::ENOTDIR) };
        let dots = [(ino.0, b".".as_slice()), (node.parent, b"..".as_slice())];
        let listed = dots.into_iter().chain(children.iter().map(|(name, &child)| (child, name.as_slice())));
        for (i, (child, name)) in listed.enumerate().skip(offset as usize) {
            let kind = self.tree.get(child).map_or(FileType::Directory, file_type);
            if reply.add(INodeNo(child), i as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let node = match self.node(ino) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        match Self::xattrs(node).into_iter().find(|(k, _)| k.as_bytes() == name.as_bytes()) {
            Some((_, value)) => reply_xattr(value, size, reply),
            None => reply.error(Errno::ENODATA),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let node = match self.node(ino) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        let mut names = Vec::new();
        for (k, _) in Self::xattrs(node) {
            names.extend_from_slice(k.as_bytes());
            names.push(0);
        }
        reply_xattr(&names, size, reply);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_numbers_use_the_kernels_encoding() {
        // What stat(2) decodes: major 8 minor 0 (sda), major 1 minor 3 (null), and a
        // minor over 255.
        assert_eq!(super::encode_dev(8, 0), libc::makedev(8, 0) as u32);
        assert_eq!(super::encode_dev(1, 3), libc::makedev(1, 3) as u32);
        assert_eq!(super::encode_dev(259, 300), libc::makedev(259, 300) as u32);
    }
}
