//! Lazy start: a chunked layer (eStargz, zstd:chunked) mounted as a FUSE file system
//! while it is still arriving, as a lower layer of the container's overlay.
//!
//! The layer's TOC gives the whole tree at once; file contents come through
//! [`crate::chunked::LazyPull`], which streams the layer in the background and fetches a
//! file out of turn when something reads it first. Every content is checked against the
//! TOC before a byte of it is served; a fetch that fails answers `EIO`. When the stream
//! is complete the layer is stored as a partial pull stores it, and the next run uses
//! its snapshot. Why FUSE and not EROFS over fscache: docs/decisions.md.
//!
//! Glossary: *layer mount*: one [`LayerMount`], `containers/<name>/lazy/<i>`.

mod fs;
mod tree;

use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::chunked::LazyPull;

#[derive(Debug, Error)]
pub enum LazyError {
    #[error("mounting the lazily pulled layer {layer} at {path}")]
    Mount {
        layer: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::HasKind for LazyError {
    fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::Io
    }
}

/// A lazily pulled layer's FUSE mount; unmounted when dropped.
pub struct LayerMount {
    path: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl LayerMount {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Threads answering the kernel: a read that waits for the network must not hold up
/// `stat` or other files' reads.
const THREADS: usize = 4;

/// Mount `pull`'s layer at `path` (an empty directory), read-only, for every user.
pub fn mount(pull: LazyPull, path: &Path) -> Result<LayerMount, LazyError> {
    let layer = pull.layer().to_string();
    let err = |source: std::io::Error| LazyError::Mount { layer: layer.clone(), path: path.to_path_buf(), source };
    let toc_size = pull.toc_in_tar().map(|t| t.len() as u64);
    let tree = tree::Tree::build(&pull.toc().entries, toc_size);
    let device = rustix::fs::open(
        "/dev/fuse",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    // The kernel answers permission checks itself (default_permissions) from the modes
    // the TOC gives; allow_other lets the container's users in.
    let options =
        format!("fd={},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions", device.as_raw_fd());
    let data = std::ffi::CString::new(options).expect("no NUL in the options");
    use rustix::mount::MountFlags;
    rustix::mount::mount(
        "berth-lazy",
        path,
        "fuse.berth-lazy",
        MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID,
        data.as_c_str(),
    )
    .map_err(|e| err(e.into()))?;
    let mut config = fuser::Config::default();
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(THREADS);
    let started = fuser::Session::from_fd(fs::LayerFs { tree, pull }, device, fuser::SessionACL::All, config)
        .and_then(|session| session.spawn());
    match started {
        Ok(session) => Ok(LayerMount { path: path.to_path_buf(), session: Some(session) }),
        Err(e) => {
            let _ = rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH);
            Err(err(e))
        }
    }
}

impl Drop for LayerMount {
    fn drop(&mut self) {
        // The overlay above is gone by now; detach in case a reader still holds it. The
        // session's threads end when the kernel lets go of the connection.
        if let Err(e) = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!("unmounting the lazy layer at {}: {e}", self.path.display());
            return;
        }
        if let Some(session) = self.session.take() {
            // Joined only if it has ended: a reader elsewhere may keep the connection.
            if session.guard.is_finished() {
                let _ = session.join();
            }
        }
    }
}
