//! appc images, once their handler has resolved them: their dependencies are fetched
//! (through discovery, as any `cimd:appc` point) before the image itself is committed,
//! so a stored appc image can always be rendered.

use std::sync::Arc;

use super::{FetchError, FetchOptions, fetch};
use crate::cimd::DistributionPoint;
use crate::sandbox::Sandbox;
use crate::store::{ImageRecord, IngestObserver, Store};
use crate::transport::TransportError;

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
            dependency: dep.to_string(),
            reason,
        };
        let point = DistributionPoint::appc(&dep.name, &dep.labels).map_err(|source| FetchError::DependencyName {
            image: record.canonical.clone(),
            dependency: dep.to_string(),
            source,
        })?;
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
            FetchError::Dependency { image: record.canonical.clone(), dependency: dep.to_string(), source: Box::new(e) }
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
    let point = DistributionPoint::new(kind.clone(), prefix)?;
    let chosen = super::handlers::choose(&kind, options.dropins.as_deref())?;
    let handler = sandbox.load(&chosen.scheme, &chosen.bytes)?;
    let grant = super::grant_for(&point, options)?;
    let http = options.http_client();
    let observer: Arc<dyn IngestObserver> = Arc::new(crate::store::NoProgress);
    let ctx =
        crate::sandbox::RunContext { store: store.clone(), observer, http: Some(http), partial: false, lazy: false };
    sandbox
        .discover_pubkeys(&handler, &grant, ctx, point.data())?
        .map_err(|error| FetchError::Handler { point: point.to_string(), error })
}

/// Annotations the appc handlers put on a record (handlers/appc-spec).
const NAME_ANNOTATION: &str = "org.appc.name";
const SIGNATURE_ANNOTATION: &str = "org.appc.signature";

/// Largest detached signature read (an `.aci.asc` is a few hundred bytes).
const MAX_SIGNATURE: usize = 64 << 10;

/// Check the ACI's detached signature against the keys trusted for the image's name,
/// unless `--insecure-options=image`. The host fetches the signature itself from where
/// the handler says it is, and hashes the stored ACI bytes.
pub(super) fn verify_signature(store: &Store, record: &ImageRecord, options: &FetchOptions) -> Result<(), FetchError> {
    let image = record.canonical.clone();
    if options.insecure_image {
        tracing::warn!("{image}: signature not checked (--insecure-options=image)");
        return Ok(());
    }
    let unsigned =
        |url: &str, reason: String| FetchError::Unsigned { image: image.clone(), url: url.to_string(), reason };
    let name = record
        .annotations
        .get(NAME_ANNOTATION)
        .ok_or_else(|| unsigned("", "the handler did not say the image's name".into()))?;
    let url = record
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| unsigned("", "the handler named no signature".into()))?;
    let signature = fetch_signature(url, options).map_err(|source| FetchError::SignatureUnreadable {
        image: image.clone(),
        url: url.to_string(),
        source: Box::new(source),
    })?;
    let layer = record.layers.first().ok_or_else(|| unsigned(url, "the record holds no ACI".into()))?;
    let mut aci = store.blobs().open_blob(&layer.blob.digest)?;
    let signer = crate::trust::Keyring::new(store.root())
        .verify(name, &mut aci, &signature)
        .map_err(|source| FetchError::Trust { image: image.clone(), source: Box::new(source) })?;
    tracing::info!(image = %image, key = %signer.fingerprint, "signature verified");
    Ok(())
}

/// Why a detached signature could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SignatureSourceError {
    #[error("{url:?} is not a URL")]
    Url {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("{url:?} names no local file")]
    NotAFile { url: String },
    #[error("{path} is {size} bytes, larger than any signature")]
    TooLarge { path: std::path::PathBuf, size: u64 },
    #[error("reading {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// The bytes of a detached signature at a `file://` or `http(s)://` URL.
pub(super) fn fetch_signature(url: &str, options: &FetchOptions) -> Result<Vec<u8>, SignatureSourceError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|source| SignatureSourceError::Url { url: url.to_string(), source })?;
    if parsed.scheme() == "file" {
        let path = parsed.to_file_path().map_err(|_| SignatureSourceError::NotAFile { url: url.to_string() })?;
        let meta =
            std::fs::metadata(&path).map_err(|source| SignatureSourceError::Read { path: path.clone(), source })?;
        if meta.len() > MAX_SIGNATURE as u64 {
            return Err(SignatureSourceError::TooLarge { path, size: meta.len() });
        }
        return std::fs::read(&path).map_err(|source| SignatureSourceError::Read { path, source });
    }
    let http = options.http_client();
    let request =
        crate::transport::Request { method: "GET".into(), url: url.to_string(), headers: Vec::new(), body: None };
    let resp = http.request(&request, MAX_SIGNATURE)?;
    if resp.status != 200 {
        return Err(TransportError::Status { url: resp.url, status: resp.status }.into());
    }
    Ok(resp.body)
}
