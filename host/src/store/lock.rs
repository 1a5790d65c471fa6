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
    /// The conversion is not atomic (flock(2)): after `false`, hold nothing for granted.
    pub fn try_exclusive(&self) -> bool {
        flock(&self.file, FlockOperation::NonBlockingLockExclusive).is_ok()
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
}
