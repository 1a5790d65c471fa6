//! Scratch directories for the targets that write files: one per process and thread,
//! on a tmpfs when there is one, removed when the process exits normally.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Overrides where scratch directories go (`just fuzz` points it at a private tmpfs).
pub const SCRATCH_ENV: &str = "BERTH_FUZZ_TMP";

static PROCESS_DIR: OnceLock<PathBuf> = OnceLock::new();
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn remove_process_dir() {
    if let Some(dir) = PROCESS_DIR.get() {
        let _ = remove_tree(dir);
    }
}

/// `$BERTH_FUZZ_TMP`, else `/dev/shm` (a tmpfs: no disk writes per execution), else the
/// temporary directory; inside it `berth-fuzz-<pid>`.
fn process_dir() -> &'static Path {
    PROCESS_DIR.get_or_init(|| {
        let base = std::env::var_os(SCRATCH_ENV)
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|d| d.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("berth-fuzz-{}", std::process::id()));
        let _ = remove_tree(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // SAFETY: registers a plain function with no arguments, as atexit expects.
        unsafe { libc::atexit(remove_process_dir) };
        dir
    })
}

thread_local! {
    static SLOT: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's own empty directory, emptied again afterwards.
pub fn with_slot<T>(f: impl FnOnce(&Path) -> T) -> T {
    let slot = SLOT.with(|s| {
        s.borrow_mut()
            .get_or_insert_with(|| process_dir().join(NEXT_SLOT.fetch_add(1, Ordering::Relaxed).to_string()))
            .clone()
    });
    std::fs::create_dir_all(&slot).unwrap_or_else(|e| panic!("creating {}: {e}", slot.display()));
    let out = f(&slot);
    remove_tree(&slot).unwrap_or_else(|e| panic!("emptying {}: {e}", slot.display()));
    out
}

/// Remove a tree, whatever modes a layer gave its directories.
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(dir);
            std::fs::remove_dir_all(dir)
        }
    }
}

fn make_writable(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}
