//! Hostile handler components against the sandbox: each misbehaviour fails its own
//! fetch with a clear error, and the same sandbox goes on serving good fetches.

use std::sync::Arc;
use std::time::Duration;

use berth::cimd::DistributionPoint;
use berth::fetch::{self, FetchError, FetchOptions};
use berth::sandbox::{CacheOutcome, HandlerError, LoadedHandler, Sandbox, SandboxError};
use berth::store::{LockMode, NoProgress, Store};

use crate::support::fixtures;

const HOSTILE: &[u8] = include_bytes!(env!("BERTH_HOSTILE_HANDLER"));

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    sandbox: Sandbox,
    hostile: LoadedHandler,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("store"), LockMode::Shared, &mut || {}).unwrap());
    let sandbox = Sandbox::new(Some(dir.path().join("cache"))).unwrap();
    let hostile = sandbox.load("hostile", HOSTILE).unwrap();
    Setup { _dir: dir, store, sandbox, hostile }
}

fn options(budget: Duration, memory: usize) -> FetchOptions {
    let mut o = FetchOptions::default();
    o.limits.time_budget = budget;
    o.limits.memory_bytes = memory;
    o
}

/// Run the hostile handler with behaviour `name` against the fixture layout.
fn provoke(s: &Setup, name: &str, opts: &FetchOptions) -> Result<fetch::Fetched, FetchError> {
    let point = DistributionPoint::oci_layout(&fixtures().layout, Some(name)).unwrap();
    fetch::fetch_with_handler(&s.store, &s.sandbox, &s.hostile, &point, opts, Arc::new(NoProgress))
}

fn handler_message(r: Result<fetch::Fetched, FetchError>) -> String {
    match r {
        Err(FetchError::Handler { error: HandlerError::Io(m), .. }) => m,
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the hostile handler succeeded"),
    }
}

/// The sandbox still works: a real fetch through the built-in handler succeeds.
fn assert_still_serves(s: &Setup) {
    let point = DistributionPoint::oci_layout(&fixtures().layout, Some("single")).unwrap();
    let fetched = fetch::fetch(&s.store, &s.sandbox, &point, &FetchOptions::default(), Arc::new(NoProgress)).unwrap();
    assert_eq!(fetched.record.layers.len(), 1);
    assert!(s.store.fsck().unwrap().is_clean());
}

#[test]
fn a_handler_that_loops_forever_is_stopped_at_its_budget() {
    let s = setup();
    // The budget fired (a budget that never fires would hang here, not pass); how soon
    // is not asserted: wall time on a loaded machine says little.
    let err = provoke(&s, "spin", &options(Duration::from_millis(300), 64 << 20)).err().unwrap();
    assert!(matches!(err, FetchError::Sandbox(SandboxError::Timeout { .. })), "{err}");
    assert!(err.to_string().contains("time budget"), "{err}");
    assert_still_serves(&s);
}

#[test]
fn a_handler_that_allocates_without_bound_hits_its_memory_cap() {
    let s = setup();
    let err = provoke(&s, "hog", &options(Duration::from_secs(30), 32 << 20)).err().unwrap();
    match &err {
        FetchError::Sandbox(SandboxError::MemoryCap { cap, wanted, .. }) => {
            assert_eq!(*cap, 32 << 20);
            assert!(wanted > cap);
        }
        other => panic!("expected a memory cap error, got {other}"),
    }
    assert_still_serves(&s);
}

#[test]
fn a_panicking_handler_is_a_crash_with_its_message() {
    let s = setup();
    let err = provoke(&s, "panic", &FetchOptions::default()).err().unwrap();
    assert!(matches!(err, FetchError::Sandbox(SandboxError::Trap { .. })), "{err}");
    assert!(err.to_string().contains("panicked on purpose"), "{err}");
    assert_still_serves(&s);
}

#[test]
fn a_handler_sees_no_files_environment_or_arguments() {
    let s = setup();
    let m = handler_message(provoke(&s, "snoop", &FetchOptions::default()));
    assert!(m.contains("file=Err"), "{m}");
    assert!(m.contains("cwd=Err"), "{m}");
    assert!(m.contains("env=0") && m.contains("args=0"), "{m}");
}

#[test]
fn a_handler_cannot_read_outside_its_grant() {
    let s = setup();
    let m = handler_message(provoke(&s, "escape", &FetchOptions::default()));
    assert!(m.starts_with("up=Err(Error::Denied("), "{m}");
    assert!(m.contains("abs=Err(Error::Denied("), "{m}");
}

#[test]
fn a_local_handler_has_no_network() {
    let s = setup();
    let m = handler_message(provoke(&s, "network", &FetchOptions::default()));
    assert!(m.contains("request=Err(Error::Denied(") && m.contains("outside this handler's network grant"), "{m}");
}

#[test]
fn a_handler_cannot_claim_another_point_or_unstored_blobs() {
    let s = setup();
    let err = provoke(&s, "other-point", &FetchOptions::default()).err().unwrap();
    assert!(matches!(err, FetchError::BadRecord { .. }) && err.to_string().contains("was asked for"), "{err}");
    let err = provoke(&s, "bad-digest", &FetchOptions::default()).err().unwrap();
    assert!(matches!(err, FetchError::BadRecord { .. }), "{err}");
    let err = provoke(&s, "missing-blob", &FetchOptions::default()).err().unwrap();
    assert!(err.to_string().contains("not found in store"), "{err}");
    assert!(s.store.images().unwrap().is_empty());
}

#[test]
fn a_forged_ingest_digest_and_a_traversal_layer_path_are_refused() {
    let s = setup();
    let m = handler_message(provoke(&s, "forged-ingest", &FetchOptions::default()));
    assert!(m.contains("DigestMismatch") && m.contains("2c26b46b"), "{m}");
    let err = provoke(&s, "traversal-layer", &FetchOptions::default()).err().unwrap();
    assert!(matches!(err, FetchError::BadRecord { .. }), "{err}");
    assert!(s.store.images().unwrap().is_empty());
    assert!(s.store.fsck().unwrap().is_clean());
    assert_still_serves(&s);
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let first = Sandbox::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(first.load("hostile", HOSTILE).unwrap().cache, CacheOutcome::Compiled);
    drop(first);
    let second = Sandbox::new(Some(dir.path().to_path_buf())).unwrap();
    let loaded = second.load("hostile", HOSTILE).unwrap();
    assert_eq!(loaded.cache, CacheOutcome::Loaded);

    // A damaged cache entry is ignored and rebuilt, never trusted.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&path, bytes).unwrap();
    }
    let third = Sandbox::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(third.load("hostile", HOSTILE).unwrap().cache, CacheOutcome::Compiled);
}

#[test]
fn a_component_that_is_not_wasm_is_refused() {
    let s = setup();
    let err = s.sandbox.load("junk", b"\0asm\x0d\0\x01\0garbage").err().unwrap();
    assert!(matches!(err, SandboxError::Compile { .. }), "{err}");
}
