//! The store lock: shared for work that adds (fetch, read), exclusive for work that
//! removes (gc, rm, fsck's quarantine), so a blob cannot vanish between its ingest and
//! the commit of the image that needs it.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use super::StoreError;
use super::error::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// Held for as long as the `Store` lives; released by the kernel if the process dies.
pub struct StoreLock {
    file: File,
}

impl StoreLock {
    /// Take the lock, calling `on_wait` once if another process holds it first.
    pub fn acquire(root: &Path, mode: LockMode, on_wait: &mut dyn FnMut()) -> Result<StoreLock, StoreError> {
        let path = root.join("lock");
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io("opening", &path))?;
        let (try_op, wait_op) = match mode {
            LockMode::Shared => (FlockOperation::NonBlockingLockShared, FlockOperation::LockShared),
            LockMode::Exclusive => (FlockOperation::NonBlockingLockExclusive, FlockOperation::LockExclusive),
        };
        if flock(&file, try_op).is_err() {
            on_wait();
            flock(&file, wait_op).map_err(|e| io("locking", &path)(e.into()))?;
        }
        Ok(StoreLock { file })
    }

    /// Convert to exclusive without waiting; false if another process holds the lock.
    /// The conversion is not atomic (flock(2)): a failed one drops the shared lock, which
    /// is then taken again (waiting, if an exclusive holder came in between).
    pub fn try_exclusive(&self) -> bool {
        if flock(&self.file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return true;
        }
        let _ = flock(&self.file, FlockOperation::LockShared);
        false
    }

    /// Go back to shared after [`StoreLock::try_exclusive`].
    pub fn downgrade(&self) {
        let _ = flock(&self.file, FlockOperation::LockShared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclusive_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut waited = 0;
        let a = StoreLock::acquire(dir.path(), LockMode::Shared, &mut || waited += 1).unwrap();
        let _b = StoreLock::acquire(dir.path(), LockMode::Shared, &mut || waited += 1).unwrap();
        assert_eq!(waited, 0);
        drop(a);
        drop(_b);
        let x = StoreLock::acquire(dir.path(), LockMode::Exclusive, &mut || waited += 1).unwrap();
        let root = dir.path().to_path_buf();
        let handle = std::thread::spawn(move || {
            let mut w = 0;
            let _s = StoreLock::acquire(&root, LockMode::Shared, &mut || w += 1).unwrap();
            w
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(x);
        assert_eq!(handle.join().unwrap(), 1, "the shared lock should have waited for the exclusive one");
    }

    /// Regression: a failed upgrade left the process holding no lock at all (Linux drops
    /// the old lock before trying the new one), so gc could run under a live fetch.
    #[test]
    fn a_failed_upgrade_keeps_the_shared_lock() {
        let dir = tempfile::tempdir().unwrap();
        let a = StoreLock::acquire(dir.path(), LockMode::Shared, &mut || {}).unwrap();
        let b = StoreLock::acquire(dir.path(), LockMode::Shared, &mut || {}).unwrap();
        assert!(!a.try_exclusive(), "b holds it shared");
        drop(b);
        let c = StoreLock::acquire(dir.path(), LockMode::Shared, &mut || {}).unwrap();
        assert!(!c.try_exclusive(), "a must still hold its shared lock");
        drop(a);
        assert!(c.try_exclusive());
        c.downgrade();
    }
}
