//! appc images, once their handler has resolved them: their dependencies are fetched
//! (through discovery, as any `cimd:appc` point) before the image itself is committed,
//! so a stored appc image can always be rendered.

use std::sync::Arc;

use super::{FetchError, FetchOptions, fetch};
use crate::cimd::DistributionPoint;
use crate::sandbox::Sandbox;
use crate::store::{Dependency, ImageRecord, IngestObserver, Store};

/// Longest chain of dependencies followed; a longer one is treated as a loop.
const MAX_DEPTH: usize = 16;

/// Fetch every dependency of `record` (recursively), checking the image ID a
/// dependency is named with, and refusing loops.
pub(super) fn fetch_dependencies(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    record: &ImageRecord,
    options: &FetchOptions,
    observer: &Arc<dyn IngestObserver>,
) -> Result<(), FetchError> {
    for dep in &record.dependencies {
        let bad = |reason: String| FetchError::BadDependency {
            image: record.canonical.clone(),
            dependency: describe(dep),
            reason,
        };
        let point = DistributionPoint::appc(&dep.name, &dep.labels).map_err(|e| bad(e.to_string()))?;
        let key = point.to_string();
        let mut chain = options.appc_chain.clone();
        chain.push(record.canonical.clone());
        if chain.contains(&key) {
            chain.push(key);
            return Err(bad(format!("dependency loop: {}", chain.join(" -> "))));
        }
        if chain.len() > MAX_DEPTH {
            return Err(bad(format!("dependencies nest deeper than {MAX_DEPTH}")));
        }
        let dep_options = FetchOptions { appc_chain: chain, ..options.clone() };
        let fetched = fetch(store, sandbox, &point, &dep_options, observer.clone()).map_err(|e| {
            FetchError::Dependency { image: record.canonical.clone(), dependency: describe(dep), source: Box::new(e) }
        })?;
        if let Some(id) = &dep.image_id {
            let actual: Vec<_> = fetched.record.layers.iter().filter_map(|l| l.diff_id.as_ref()).collect();
            if !actual.contains(&id) {
                let got = actual.first().map_or("none".to_string(), |d| d.to_string());
                return Err(bad(format!("the image fetched for it has image ID {got}, not {id}")));
            }
        }
    }
    Ok(())
}

fn describe(dep: &Dependency) -> String {
    let mut s = dep.name.clone();
    for (k, v) in &dep.labels {
        s.push_str(&format!(",{k}={v}"));
    }
    s
}

/// The URLs of the signing keys appc discovery announces for `prefix`
/// (`ac-discovery-pubkeys`), found by the appc handler in its sandbox. The caller
/// fetches and reviews the keys.
pub fn discover_pubkeys(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    prefix: &str,
    options: &FetchOptions,
) -> Result<Vec<String>, FetchError> {
    let kind = crate::cimd::PointKind::Appc;
    let point = DistributionPoint::new(kind.clone(), prefix).map_err(|e| FetchError::BadDependency {
        image: prefix.to_string(),
        dependency: "discovery".into(),
        reason: e.to_string(),
    })?;
    let chosen = super::handlers::choose(&kind, options.dropins.as_deref())?;
    let handler = sandbox.load(&chosen.scheme, &chosen.bytes)?;
    let grant = super::grant_for(&point, options)?;
    let http = options.http.clone().unwrap_or_else(|| Arc::new(crate::transport::HttpClient::new(Default::default())));
    let observer: Arc<dyn IngestObserver> = Arc::new(crate::store::NoProgress);
    let ctx = crate::sandbox::RunContext { store: store.clone(), observer, http: Some(http) };
    sandbox
        .discover_pubkeys(&handler, &grant, ctx, point.data())?
        .map_err(|error| FetchError::Handler { point: point.to_string(), error })
}
