//! `serve`: the store as a registry (see [`crate::serve`]); and `record_push`, how a
//! manifest pushed to it becomes an image record through the handler path.

use std::sync::Arc;
use std::time::Duration;

use super::{Context, Error};
use crate::cimd::DistributionPoint;
use crate::fetch::{self, PullPolicy};
use crate::serve::{ServeError, ServeOptions, Served};
use crate::store::{ImageRecord, LockMode, NoProgress, Platform, pinned_digest};
use crate::transport::registries::{RegistriesConfig, Registry};
use crate::transport::{HttpClient, HttpOptions};

/// Serve the store until SIGTERM or SIGINT: an async runtime for the connections, the
/// blocking library for everything they ask.
pub fn serve(ctx: &Context, options: ServeOptions) -> Result<Served, Error> {
    // Fail before listening when the store cannot be used (a newer schema, permissions).
    drop(ctx.open_store(LockMode::Shared)?);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(options.limits.max_connections.max(64) + 64)
        .thread_name("berth-serve")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let served = runtime.block_on(crate::serve::run(ctx.clone(), options));
    // Blocking work left (a pull nobody waits for) gets a moment; then the process ends.
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(served?)
}

/// A manifest `berth serve` received, stored as the exact bytes pushed, with everything
/// it references.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    /// Where it was pushed, pinned to its digest: `cimd:docker:v=0:<host>/<repo>[:<tag>]@<digest>`.
    pub pinned: DistributionPoint,
    /// The point of the tag it was pushed as, if it was pushed by tag.
    pub tag: Option<DistributionPoint>,
    /// The platform to record from an index that does not list this machine's.
    pub platform: Option<Platform>,
}

/// Record a pushed manifest as an image: the registry handler resolves the pinned point
/// from the store alone (its documents and blobs are there; no host is reachable), so
/// the image record comes from the sandbox exactly as for a fetch, policy included. A
/// tag then points at it, and the tag's earlier pins go.
pub fn record_push(ctx: &Context, pushed: &PushedManifest) -> Result<ImageRecord, Error> {
    let store = ctx.open_store(LockMode::Shared)?;
    let mut options = super::fetch::fetch_options(ctx, pushed.pinned.kind(), &super::FetchRequest::default())?;
    options.pull_policy = Some(PullPolicy::New);
    if let Some(p) = &pushed.platform {
        options.platform = p.clone();
    }
    // Everything is in the store already: a request that still leaves is refused.
    let registry = pushed.pinned.data().split('/').next().unwrap_or_default().to_string();
    let offline =
        RegistriesConfig { registries: vec![Registry { prefix: registry, blocked: true, ..Registry::default() }] };
    options.http =
        Some(Arc::new(HttpClient::new(HttpOptions { registries: offline, retries: 0, ..HttpOptions::default() })));
    let sandbox = ctx.sandbox()?;
    let fetched = fetch::fetch(&store, &sandbox, &pushed.pinned, &options, Arc::new(NoProgress))?;
    if let Some(tag) = &pushed.tag {
        let tag = tag.to_string();
        let mut record = fetched.record.clone();
        record.canonical = tag.clone();
        store.commit_image(&record)?;
        let pinned = pushed.pinned.to_string();
        let earlier = format!("{tag}@");
        for image in store.images()? {
            for r in image.refs.iter().filter(|r| r.starts_with(&earlier) && **r != pinned) {
                if pinned_digest(r).is_some() {
                    store.remove(r, Some(r))?;
                }
            }
        }
    }
    Ok(fetched.record)
}
