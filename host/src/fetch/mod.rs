//! Fetch: resolve a distribution point into a stored image by running its handler.
//!
//! The host decides the grant from the point (for `oci-layout`: read-only access to
//! that one path, no network), runs the handler in a fresh sandbox instance, checks the
//! record it returns against the store, and commits the image and its ref.
//!
//! Glossary:
//! - *handler*: the component serving a point's type (built-in, or later a drop-in).
//! - *answer*: what the handler resolved the point to (a WIT image record), checked
//!   and turned into the store's [`ImageRecord`].
//! - *commit*: recording the image and pointing the canonical ref at it, atomically.

mod answer;
mod appc;
pub use appc::{SignatureSourceError, discover_pubkeys};
pub mod dropin;
mod error;
pub mod handlers;
mod signatures;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use error::FetchError;
pub use signatures::Checked as CheckedSignatures;

use crate::cimd::{DistributionPoint, PointKind};
use crate::policy::{self, DecisionPoint, Policy, PolicyError};
use crate::sandbox::{
    CacheOutcome, Grant, IngestStats, Limits, LoadedHandler, ResolveOptions, RunContext, Sandbox, WitPlatform,
};
use crate::store::{Digest, HandlerIdentity, ImageFormat, ImageRecord, IngestObserver, Platform, Store};
use crate::transport::{HttpClient, HttpOptions, LocalKind};
use dropin::Declaration;
pub use handlers::{DropIns, HandlerSource};

/// When to contact the source, as rkt's `--pull-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Only the store: fail if the point was never fetched.
    Never,
    /// The store when the point was fetched before, else the source.
    New,
    /// Always resolve at the source (blobs already stored are not transferred again).
    Update,
}

impl PullPolicy {
    /// `update` for local sources (cheap, and they change in place), `new` for remote.
    pub fn default_for(kind: &PointKind) -> PullPolicy {
        match kind {
            PointKind::OciLayout | PointKind::AciArchive => PullPolicy::Update,
            _ => PullPolicy::New,
        }
    }
}

#[derive(Clone)]
pub struct FetchOptions {
    /// Which manifest to take from a multi-platform index.
    pub platform: Platform,
    pub limits: Limits,
    /// `None`: [`PullPolicy::default_for`] the point's type.
    pub pull_policy: Option<PullPolicy>,
    /// The HTTP client for remote points; `None` makes one with default options.
    pub http: Option<Arc<HttpClient>>,
    /// Decides before the fetch and after the resolve; `None`: everything is allowed.
    pub policy: Option<Arc<Policy>>,
    /// Where signed drop-in handlers may come from; `None`: built-ins only.
    pub dropins: Option<Arc<DropIns>>,
    /// Store appc images without a valid signature from a trusted key
    /// (`--insecure-options=image`).
    pub insecure_image: bool,
    /// The appc images whose dependencies are being fetched, outermost first (loops).
    pub appc_chain: Vec<String>,
    /// Pull eStargz layers partially: only the TOC and the files the store lacks
    /// (`--partial`). Off by default: such a layer's blob digest and diff ID cannot be
    /// checked (docs/decisions.md), and it cannot be exported.
    pub partial: bool,
    /// Pull chunked layers lazily (`berth run --lazy`): when every layer is chunked, the
    /// fetch returns once their TOCs are read, with a [`Pending`] image that is stored
    /// when the layers are complete. Implies `partial`.
    pub lazy: bool,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            platform: host_platform(),
            limits: Limits::default(),
            pull_policy: None,
            http: None,
            policy: None,
            dropins: None,
            insecure_image: false,
            appc_chain: Vec::new(),
            partial: false,
            lazy: false,
        }
    }
}

impl FetchOptions {
    /// The configured HTTP client, or one with default options.
    fn http_client(&self) -> Arc<HttpClient> {
        self.http.clone().unwrap_or_else(|| Arc::new(HttpClient::new(HttpOptions::default())))
    }
}

/// What a fetch did.
#[derive(Debug)]
pub struct Fetched {
    pub record: ImageRecord,
    /// Served from the store by the pull policy; no handler ran.
    pub from_store: bool,
    pub ingest: IngestStats,
    pub handler_cache: CacheOutcome,
    pub elapsed: Duration,
    /// A lazy fetch's image, not stored yet: its layers are still arriving.
    pub pending: Option<Pending>,
    /// The trusted keys whose image signatures verified (registry images, checked when
    /// a policy decides and a key is trusted for the image's name).
    pub signers: Vec<crate::trust::ImageSigner>,
}

/// An image whose layers are all being pulled lazily ([`FetchOptions::lazy`]): resolved,
/// checked by the policy, but not stored until [`Pending::finish`] finds every layer
/// complete. Dropped unfinished, it leaves only blobs no image references (gc's).
pub struct Pending {
    record: ImageRecord,
    /// One per layer, in the record's order.
    pulls: Vec<crate::chunked::LazyPull>,
    store: Arc<Store>,
    journal: Option<Arc<Journal>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("image", &self.record.canonical).field("layers", &self.pulls.len()).finish()
    }
}

impl Pending {
    pub fn record(&self) -> &ImageRecord {
        &self.record
    }

    /// The layers' pulls, bottom layer first.
    pub fn pulls(&self) -> &[crate::chunked::LazyPull] {
        &self.pulls
    }

    /// Wait for every layer, then store the image; on a failure, or when `give_up` says
    /// so (asked while waiting), remove what the fetch wrote.
    pub fn finish(mut self, give_up: &dyn Fn() -> bool) -> Result<ImageRecord, FetchError> {
        let mut failure = None;
        for (layer, pull) in self.record.layers.iter_mut().zip(&self.pulls) {
            match pull.wait_unless(give_up) {
                Some(Ok(pulled)) => layer.assembled = Some(pulled.assembled),
                Some(Err(e)) => {
                    failure.get_or_insert(FetchError::LazyPull {
                        image: self.record.canonical.clone(),
                        source: Box::new(e),
                    });
                }
                None => {
                    failure = Some(FetchError::GaveUp { image: self.record.canonical.clone() });
                    break;
                }
            }
        }
        let outcome = match failure {
            None => self.store.commit_image(&self.record).map_err(FetchError::from),
            Some(e) => Err(e),
        };
        if outcome.is_err()
            && let Some(journal) = &self.journal
        {
            journal.discard(&self.store);
        }
        outcome.map(|()| self.record)
    }
}

/// The platform of this machine in OCI terms (`linux/amd64`, `linux/arm64/v8`, …).
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "x86" => ("386", None),
        "arm" => ("arm", Some("v7")),
        "powerpc64" => ("ppc64le", None),
        "loongarch64" => ("loong64", None),
        other => (other, None),
    };
    Platform {
        os: std::env::consts::OS.to_string(),
        architecture: architecture.to_string(),
        variant: variant.map(str::to_string),
    }
}

/// Parse `os/arch[/variant]`.
pub fn parse_platform(s: &str) -> Option<Platform> {
    let mut parts = s.split('/');
    let os = parts.next().filter(|p| !p.is_empty())?;
    let architecture = parts.next().filter(|p| !p.is_empty())?;
    let variant = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    Some(Platform { os: os.to_string(), architecture: architecture.to_string(), variant })
}

/// The least a handler needs for `point`.
fn grant_for(point: &DistributionPoint, options: &FetchOptions) -> Result<Grant, FetchError> {
    let mut grant = match point.kind() {
        PointKind::OciLayout => local_grant(point.local_path().expect("oci-layout points have a path"))?,
        PointKind::Docker | PointKind::Oci => {
            // The registry host is the data's first component (canonical points name it).
            let registry = point.data().split('/').next().unwrap_or_default().to_ascii_lowercase();
            Grant::network(vec![registry])
        }
        PointKind::AciArchive => match point.local_path() {
            Some(path) => local_grant(path)?,
            None => {
                let url = crate::cimd::unescape(point.data()).unwrap_or_default();
                let host = reqwest::Url::parse(&url).map(|u| crate::transport::authority(&u)).map_err(|e| {
                    FetchError::BadRecord { handler: "aci-archive".into(), reason: format!("{url:?}: {e}") }
                })?;
                Grant::network(vec![host])
            }
        },
        // Discovery may lead anywhere (templates name other hosts); plain HTTP still
        // needs `--insecure-options=http`.
        PointKind::Appc => Grant::network(vec!["*".to_string()]),
        _ => Grant::default(),
    };
    grant.limits = options.limits.clone();
    Ok(grant)
}

/// What the handler from `source` gets for `point`: a built-in the least the point needs,
/// a drop-in the intersection with its declaration.
fn handler_grant(
    point: &DistributionPoint,
    source: &HandlerSource,
    options: &FetchOptions,
) -> Result<Grant, FetchError> {
    match source {
        HandlerSource::Builtin => grant_for(point, options),
        HandlerSource::DropIn { declaration, .. } => dropin_grant(point, declaration, options),
    }
}

/// Read-only access to one local directory or file.
fn local_grant(path: std::path::PathBuf) -> Result<Grant, FetchError> {
    let meta = std::fs::metadata(&path).map_err(|_| FetchError::SourceNotFound { path: path.display().to_string() })?;
    let kind = if meta.is_dir() { LocalKind::Directory } else { LocalKind::File };
    Ok(Grant::local(path, kind))
}

/// What a drop-in gets: the intersection of its declaration and the point. The network
/// grant is the point's host, if the declaration allows it; local access is the point's
/// path, if it declares `local`; limits are the lower of the declared and the configured.
fn dropin_grant(point: &DistributionPoint, decl: &Declaration, options: &FetchOptions) -> Result<Grant, FetchError> {
    let facts = policy::facts::point(point);
    let mut grant = match (point.local_path(), facts.host) {
        (Some(path), _) if decl.local => local_grant(path)?,
        (None, Some(host)) if decl.allows_host(&host) => Grant::network(vec![host]),
        (None, Some(host)) if !decl.network.is_empty() => {
            return Err(FetchError::Policy(PolicyError::Denied {
                policy: "the handler's grant declaration".into(),
                stage: "grant",
                subject: point.to_string(),
                reasons: vec![format!("host {host} is not among the declared hosts {}", decl.network.join(", "))],
            }));
        }
        _ => Grant::default(),
    };
    grant.limits = options.limits.clone();
    if let Some(ms) = decl.time_budget_ms {
        grant.limits.time_budget = grant.limits.time_budget.min(Duration::from_millis(ms));
    }
    if let Some(cap) = decl.max_response_bytes {
        grant.limits.read_cap = grant.limits.read_cap.min(u32::try_from(cap).unwrap_or(u32::MAX));
    }
    if let Some(mem) = decl.memory_bytes {
        grant.limits.memory_bytes = grant.limits.memory_bytes.min(usize::try_from(mem).unwrap_or(usize::MAX));
    }
    Ok(grant)
}

/// Fetch `point` into `store` with the handler for its type: a trusted drop-in, else
/// the built-in.
pub fn fetch(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    point: &DistributionPoint,
    options: &FetchOptions,
    observer: Arc<dyn IngestObserver>,
) -> Result<Fetched, FetchError> {
    let chosen = handlers::choose(point.kind(), options.dropins.as_deref())?;
    let handler = sandbox.load(&chosen.scheme, &chosen.bytes)?;
    fetch_from(store, sandbox, &handler, &chosen.source, point, options, observer)
}

/// Fetch `point` with a given handler. On failure, blobs this fetch wrote that no image
/// needs are removed again when no other process is using the store.
pub fn fetch_with_handler(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    handler: &LoadedHandler,
    point: &DistributionPoint,
    options: &FetchOptions,
    observer: Arc<dyn IngestObserver>,
) -> Result<Fetched, FetchError> {
    fetch_from(store, sandbox, handler, &HandlerSource::Builtin, point, options, observer)
}

fn fetch_from(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    handler: &LoadedHandler,
    source: &HandlerSource,
    point: &DistributionPoint,
    options: &FetchOptions,
    observer: Arc<dyn IngestObserver>,
) -> Result<Fetched, FetchError> {
    let journal = Arc::new(Journal { inner: observer, written: Mutex::new(Vec::new()) });
    let mut result = run_handler(store, sandbox, handler, source, point, options, journal.clone());
    match &mut result {
        Err(_) => journal.discard(store),
        Ok(Fetched { pending: Some(pending), .. }) => pending.journal = Some(journal),
        Ok(_) => {}
    }
    result
}

fn run_handler(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    handler: &LoadedHandler,
    source: &HandlerSource,
    point: &DistributionPoint,
    options: &FetchOptions,
    observer: Arc<dyn IngestObserver>,
) -> Result<Fetched, FetchError> {
    let started = Instant::now();
    decide(options, DecisionPoint::BeforeFetch(policy::facts::point(point)))?;
    let policy = options.pull_policy.unwrap_or_else(|| PullPolicy::default_for(point.kind()));
    if policy != PullPolicy::Update {
        if let Some(stored) = store.resolve_ref(&point.to_string())? {
            return Ok(Fetched {
                record: stored.record,
                from_store: true,
                ingest: IngestStats::default(),
                handler_cache: handler.cache,
                elapsed: started.elapsed(),
                pending: None,
                signers: Vec::new(),
            });
        }
        if policy == PullPolicy::Never {
            return Err(FetchError::NeverPull { point: point.to_string() });
        }
    }
    let grant = handler_grant(point, source, options)?;
    let http = if grant.network.hosts.is_empty() { None } else { Some(options.http_client()) };
    let resolve_options = ResolveOptions {
        platform: WitPlatform {
            os: options.platform.os.clone(),
            architecture: options.platform.architecture.clone(),
            variant: options.platform.variant.clone(),
        },
    };
    let journal_observer = observer.clone();
    let ctx = RunContext { store: store.clone(), observer, http, partial: options.partial, lazy: options.lazy };
    let outcome = sandbox.resolve(handler, &grant, ctx, &point.to_string(), &resolve_options)?;
    let wit_record = outcome.result.map_err(|error| FetchError::Handler { point: point.to_string(), error })?;
    let identity = HandlerIdentity { scheme: handler.name.clone(), digest: handler.digest.clone() };
    let mut record = answer::image_record(point, wit_record, identity)?;
    for layer in &mut record.layers {
        layer.assembled = outcome.assembled.get(&layer.blob.digest).cloned();
    }
    let mut lazy = outcome.lazy;
    let all_lazy = !record.layers.is_empty()
        && record.format != ImageFormat::Appc
        && record.layers.iter().all(|l| lazy.contains_key(&l.blob.digest));
    if !all_lazy {
        // Only some layers could be read in parts: wait for them, as a partial pull.
        for layer in &mut record.layers {
            if let Some(pull) = lazy.remove(&layer.blob.digest) {
                let pulled = pull.wait().map_err(|source| FetchError::LazyPull {
                    image: record.canonical.clone(),
                    source: Box::new(source),
                })?;
                layer.assembled = Some(pulled.assembled);
            }
        }
    }
    let signed = if options.policy.is_some() && matches!(point.kind(), PointKind::Docker | PointKind::Oci) {
        signatures::check(store, sandbox, handler, &grant, point, &record, options)
    } else {
        signatures::Checked::default()
    };
    let facts = policy::facts::resolved(point, &record, signed.fingerprints(), &source.describe());
    decide(options, DecisionPoint::AfterResolve(facts)).map_err(|e| match e {
        // A denial says why no signature counted, when one was looked for.
        FetchError::Policy(PolicyError::Denied { policy, stage, subject, mut reasons })
            if signed.signers.is_empty() && !signed.notes.is_empty() =>
        {
            reasons.extend(signed.notes.iter().map(|n| format!("signatures: {n}")));
            FetchError::Policy(PolicyError::Denied { policy, stage, subject, reasons })
        }
        e => e,
    })?;
    if all_lazy {
        let pulls = record.layers.iter().map(|l| lazy[&l.blob.digest].clone()).collect();
        let pending = Pending { record: record.clone(), pulls, store: store.clone(), journal: None };
        return Ok(Fetched {
            record,
            from_store: false,
            ingest: outcome.ingest,
            handler_cache: handler.cache,
            elapsed: started.elapsed(),
            pending: Some(pending),
            signers: signed.signers,
        });
    }
    if record.format == ImageFormat::Appc {
        appc::verify_signature(store, &record, options)?;
        appc::fetch_dependencies(store, sandbox, &record, options, &journal_observer)?;
    }
    store.commit_image(&record)?;
    Ok(Fetched {
        record,
        from_store: false,
        ingest: outcome.ingest,
        handler_cache: handler.cache,
        elapsed: started.elapsed(),
        pending: None,
        signers: signed.signers,
    })
}

/// The signatures of a stored registry image, checked now as a fetch of `point` would
/// check them (for `policy eval`); nothing to check for other point types.
pub fn check_signatures(
    store: &Arc<Store>,
    sandbox: &Sandbox,
    point: &DistributionPoint,
    record: &ImageRecord,
    options: &FetchOptions,
) -> Result<CheckedSignatures, FetchError> {
    if !matches!(point.kind(), PointKind::Docker | PointKind::Oci) {
        return Ok(CheckedSignatures::default());
    }
    let chosen = handlers::choose(point.kind(), options.dropins.as_deref())?;
    let handler = sandbox.load(&chosen.scheme, &chosen.bytes)?;
    let grant = handler_grant(point, &chosen.source, options)?;
    Ok(signatures::check(store, sandbox, &handler, &grant, point, record, options))
}

/// Ask the policy, if there is one; a deny is an error.
fn decide(options: &FetchOptions, point: DecisionPoint) -> Result<(), FetchError> {
    let Some(policy) = &options.policy else { return Ok(()) };
    policy.require(&point)?;
    Ok(())
}

/// Remembers which blobs a fetch wrote, passing every event on.
struct Journal {
    inner: Arc<dyn IngestObserver>,
    written: Mutex<Vec<Digest>>,
}

impl Journal {
    /// Remove the blobs the fetch wrote that no image references.
    fn discard(&self, store: &Store) {
        let written = std::mem::take(&mut *self.written.lock().unwrap_or_else(|p| p.into_inner()));
        match store.discard_unreferenced(&written) {
            Ok(n) if n > 0 => tracing::info!("removed {n} blobs the failed fetch had written"),
            Ok(_) => {}
            Err(e) => tracing::warn!("could not remove the blobs of the failed fetch: {e}"),
        }
    }
}

impl IngestObserver for Journal {
    fn started(&self, digest: &Digest, size: u64, media_type: &str) {
        self.inner.started(digest, size, media_type);
    }
    fn advanced(&self, digest: &Digest, bytes: u64) {
        self.inner.advanced(digest, bytes);
    }
    fn finished(&self, digest: &Digest, reused: bool) {
        if !reused {
            self.written.lock().unwrap_or_else(|p| p.into_inner()).push(digest.clone());
        }
        self.inner.finished(digest, reused);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_with_optional_variant() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()), ("linux", "arm64", Some("v8")));
        assert!(parse_platform("linux").is_none());
        assert!(parse_platform("linux//v7").is_none());
        assert!(parse_platform("a/b/c/d").is_none());
    }
}
