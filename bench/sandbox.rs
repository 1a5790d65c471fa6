//! Sandbox start-up and per-fetch costs, in-process (run by `just bench`).
//!
//! - cold start: Cranelift compiles the built-in oci-layout handler (no cache);
//! - warm start: the compiled component is deserialized from the on-disk cache;
//! - per fetch: a fetch whose blobs are all stored, so what remains is a fresh
//!   instance, the handler's parsing and host calls, and the SQLite commit;
//! - resolve only: the same without the commit.
//!
//! Needs `BERTH_BENCH_LAYOUT` (an OCI layout) and `BERTH_BENCH_REF`.

use std::sync::Arc;

use berth::cimd::{DistributionPoint, PointKind};
use berth::fetch::{self, FetchOptions, handlers};
use berth::sandbox::{Grant, ResolveOptions, RunContext, Sandbox, WitPlatform};
use berth::store::{LockMode, NoProgress, Store};
use berth::transport::LocalKind;

#[path = "timing.rs"]
mod timing;
use timing::time;

fn main() {
    let layout = std::path::PathBuf::from(std::env::var("BERTH_BENCH_LAYOUT").expect("BERTH_BENCH_LAYOUT"));
    let reference = std::env::var("BERTH_BENCH_REF").unwrap_or_else(|_| "latest".into());
    let bytes = handlers::builtin(&PointKind::OciLayout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    let new_sandbox = time(5, || Sandbox::new(None).unwrap());
    let cold = time(5, || Sandbox::new(None).unwrap().load("oci-layout", bytes).unwrap());
    Sandbox::new(Some(cache.clone())).unwrap().load("oci-layout", bytes).unwrap();
    let warm = time(20, || Sandbox::new(Some(cache.clone())).unwrap().load("oci-layout", bytes).unwrap());

    let store = Arc::new(Store::open(&dir.path().join("store"), LockMode::Shared, &mut || {}).unwrap());
    let sandbox = Sandbox::new(Some(cache)).unwrap();
    let point = DistributionPoint::oci_layout(&layout, Some(&reference)).unwrap();
    let options = FetchOptions::default();
    fetch::fetch(&store, &sandbox, &point, &options, Arc::new(NoProgress)).unwrap();
    let per_fetch = time(200, || fetch::fetch(&store, &sandbox, &point, &options, Arc::new(NoProgress)).unwrap());

    let handler = sandbox.load("oci-layout", bytes).unwrap();
    let grant = Grant::local(layout.clone(), LocalKind::Directory);
    let platform = fetch::host_platform();
    let resolve_options = ResolveOptions {
        platform: WitPlatform { os: platform.os, architecture: platform.architecture, variant: platform.variant },
    };
    let resolve_only = time(200, || {
        let ctx = RunContext {
            store: store.clone(),
            observer: Arc::new(NoProgress),
            http: None,
            partial: false,
            lazy: false,
        };
        sandbox.resolve(&handler, &grant, ctx, &point.to_string(), &resolve_options).unwrap()
    });

    println!("sandbox: engine + linker setup      {:>10.2?}", new_sandbox);
    println!("sandbox: cold start (compile)        {:>10.2?}", cold);
    println!("sandbox: warm start (cached)         {:>10.2?}", warm);
    println!("sandbox: cold/warm ratio             {:>10.1}x", cold.as_secs_f64() / warm.as_secs_f64());
    println!("fetch:   warm, all blobs stored      {:>10.2?}  (instantiate + handler + commit)", per_fetch);
    println!("fetch:   resolve only                {:>10.2?}  (instantiate + handler run)", resolve_only);
}
