//! Read-only access to one granted directory or file.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
use rustix::io::Errno;

use super::TransportError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    Directory,
    File,
}

/// An open grant root. Paths are resolved beneath it by the kernel; the root itself is
/// opened once, so renaming it away later changes nothing.
pub struct LocalAccess {
    root: OwnedFd,
    kind: LocalKind,
    display: PathBuf,
}

impl LocalAccess {
    pub fn open(path: &Path, kind: LocalKind) -> Result<LocalAccess, TransportError> {
        let flags = match kind {
            LocalKind::Directory => OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            LocalKind::File => OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        };
        let root = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| map_errno(e, "opening", "", path))?;
        let access = LocalAccess { root, kind, display: path.to_path_buf() };
        if kind == LocalKind::File {
            access.check_regular(
                File::from(
                    access
                        .root
                        .try_clone()
                        .map_err(|e| map_errno(Errno::from_io_error(&e).unwrap_or(Errno::IO), "opening", "", path))?,
                ),
                "",
            )?;
        }
        Ok(access)
    }

    pub fn kind(&self) -> LocalKind {
        self.kind
    }

    pub fn root(&self) -> &Path {
        &self.display
    }

    /// Open a regular file: `rel` beneath a directory grant, or `""` for a file grant.
    pub fn open_file(&self, rel: &str) -> Result<File, TransportError> {
        let escapes = || TransportError::Escapes { path: rel.to_string(), root: self.display.clone() };
        match self.kind {
            LocalKind::File if rel.is_empty() => {
                let fd = self.root.try_clone().map_err(|e| {
                    map_errno(Errno::from_io_error(&e).unwrap_or(Errno::IO), "opening", rel, &self.display)
                })?;
                Ok(File::from(fd))
            }
            LocalKind::File => Err(escapes()),
            LocalKind::Directory => {
                if rel.is_empty() || rel.starts_with('/') || rel.contains('\0') {
                    return Err(escapes());
                }
                // NONBLOCK: opening a FIFO planted in the layout must not hang the host.
                let fd = openat2(
                    &self.root,
                    rel,
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
                )
                .map_err(|e| map_errno(e, "opening", rel, &self.display))?;
                let file = File::from(fd);
                self.check_regular(file, rel)
            }
        }
    }

    fn check_regular(&self, file: File, rel: &str) -> Result<File, TransportError> {
        let meta = file.metadata().map_err(|e| TransportError::Io {
            action: "inspecting",
            path: rel.to_string(),
            root: self.display.clone(),
            source: e,
        })?;
        if !meta.is_file() {
            return Err(TransportError::NotAFile { path: rel.to_string(), root: self.display.clone() });
        }
        Ok(file)
    }

    pub fn size(&self, rel: &str) -> Result<u64, TransportError> {
        let file = self.open_file(rel)?;
        file.metadata().map(|m| m.len()).map_err(|e| TransportError::Io {
            action: "inspecting",
            path: rel.to_string(),
            root: self.display.clone(),
            source: e,
        })
    }

    /// Read up to `len` bytes at `offset`; fewer only at the end of the file.
    pub fn read_at(&self, rel: &str, offset: u64, len: usize) -> Result<Vec<u8>, TransportError> {
        let file = self.open_file(rel)?;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = file.read_at(&mut buf[filled..], offset + filled as u64).map_err(|e| TransportError::Io {
                action: "reading",
                path: rel.to_string(),
                root: self.display.clone(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

fn map_errno(e: Errno, action: &'static str, rel: &str, root: &Path) -> TransportError {
    let (path, root) = (rel.to_string(), root.to_path_buf());
    match e {
        // EXDEV: resolution left the root; ELOOP: a symlink loop or a magic link.
        Errno::XDEV | Errno::LOOP => TransportError::Escapes { path, root },
        Errno::NOENT | Errno::NOTDIR => TransportError::NotFound { path, root },
        other => TransportError::Io { action, path, root, source: other.into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_beneath_the_root_and_refuses_to_leave_it() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret"), b"outside").unwrap();
        let root = outer.path().join("layout");
        std::fs::create_dir_all(root.join("blobs")).unwrap();
        std::fs::write(root.join("index.json"), b"{}").unwrap();
        symlink("../index.json", root.join("blobs/inside")).unwrap();
        symlink("../../secret", root.join("blobs/relative-out")).unwrap();
        symlink(outer.path().join("secret"), root.join("blobs/absolute-out")).unwrap();
        symlink("loop", root.join("blobs/loop")).unwrap();

        let access = LocalAccess::open(&root, LocalKind::Directory).unwrap();
        assert_eq!(access.read_at("index.json", 0, 100).unwrap(), b"{}");
        assert_eq!(access.read_at("blobs/inside", 1, 100).unwrap(), b"}");
        for escape in ["../secret", "/etc/passwd", "blobs/relative-out", "blobs/absolute-out", "blobs/loop", ""] {
            let err = access.size(escape).unwrap_err();
            assert!(matches!(err, TransportError::Escapes { .. }), "{escape}: {err}");
        }
        assert!(matches!(access.size("missing").unwrap_err(), TransportError::NotFound { .. }));
        assert!(matches!(access.size("blobs").unwrap_err(), TransportError::NotAFile { .. }));
    }

    #[test]
    fn a_file_grant_reads_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("image.tar");
        std::fs::write(&file, b"tarball").unwrap();
        let access = LocalAccess::open(&file, LocalKind::File).unwrap();
        assert_eq!(access.read_at("", 3, 2).unwrap(), b"ba");
        assert!(matches!(access.size("x").unwrap_err(), TransportError::Escapes { .. }));
    }
}
