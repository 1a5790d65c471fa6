//! `fetch`: a distribution point into the store; and the one place [`FetchOptions`] are
//! built from what a user asked for (`fetch`, `run IMAGE`, key discovery use it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Context, Error, UsageError};
use crate::cimd::{DistributionPoint, PointKind};
use crate::fetch::{self, FetchOptions, Fetched, PullPolicy};
use crate::store::{IngestObserver, LockMode, Platform, Store};
use crate::transport::auth::{self, Credentials};
use crate::transport::registries::{self, RegistriesConfig};
use crate::transport::{HttpClient, HttpOptions};

/// How to reach registries and other HTTP sources: what `--insecure-registry`,
/// `--certs-dir`, `--authfile`, `--registries-conf` and `--insecure-options` say.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts (`host[:port]`) that may use plain HTTP and unverified TLS.
    pub insecure_registries: Vec<String>,
    /// Searched for `<dir>/<host[:port]>/*.crt` before the system directories.
    pub certs_dir: Option<PathBuf>,
    /// The credentials file; `None`: the default auth.json locations.
    pub authfile: Option<PathBuf>,
    /// Mirrors and registry flags; `None`: the default registries.toml files.
    pub registries_conf: Option<PathBuf>,
    /// Plain HTTP to any host where HTTPS fails (appc discovery, ACI downloads).
    pub plain_http: bool,
    /// Store appc images without a valid signature from a trusted key.
    pub insecure_image: bool,
    /// Mirror locations (`host[:port]`) to leave out of registries.toml: `berth serve`
    /// names itself here, so that its pull-through fetches do not ask it again.
    pub skip_mirrors: Vec<String>,
}

impl RegistryOptions {
    /// The credentials files read, in order.
    pub fn auth_files(&self) -> Vec<PathBuf> {
        match &self.authfile {
            Some(f) => vec![f.clone()],
            None => auth::default_auth_files(),
        }
    }

    /// The registries configuration: `--registries-conf`, or the default files, without
    /// the mirrors in `skip_mirrors`.
    pub fn registries(&self) -> Result<RegistriesConfig, Error> {
        let mut config = match &self.registries_conf {
            Some(f) => RegistriesConfig::load(std::slice::from_ref(f))?,
            None => RegistriesConfig::load(&registries::default_registries_files())?,
        };
        for registry in &mut config.registries {
            registry.mirrors.retain(|m| !self.skip_mirrors.iter().any(|s| s.eq_ignore_ascii_case(&m.location)));
        }
        Ok(config)
    }

    /// The HTTP client options these flags give.
    pub fn http_options(&self) -> Result<HttpOptions, Error> {
        let mut options = HttpOptions {
            credentials: Credentials::load(&self.auth_files())?,
            registries: self.registries()?,
            insecure_hosts: self.insecure_registries.clone(),
            plain_http: self.plain_http,
            ..HttpOptions::default()
        };
        if let Some(dir) = &self.certs_dir {
            options.certs_dirs.insert(0, dir.clone());
        }
        Ok(options)
    }

    pub fn client(&self) -> Result<Arc<HttpClient>, Error> {
        Ok(Arc::new(HttpClient::new(self.http_options()?)))
    }
}

/// What a fetch may do, as the user asked.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest {
    /// `os/arch[/variant]` to take from a multi-platform index; `None`: this machine's.
    pub platform: Option<String>,
    /// Guest time the handler may use; `None`: the default.
    pub handler_timeout: Option<Duration>,
    /// Blobs ingested at once; `None`: the default.
    pub max_concurrent_downloads: Option<usize>,
    /// `None`: the default for the point's type.
    pub pull_policy: Option<PullPolicy>,
    /// Pull eStargz layers partially (see [`FetchOptions::partial`]).
    pub partial: bool,
    /// Pull chunked layers lazily (see [`FetchOptions::lazy`]); only `run` asks this.
    pub lazy: bool,
    pub registry: RegistryOptions,
}

/// Parse `--platform`.
pub fn parse_platform_option(text: &str) -> Result<Platform, UsageError> {
    fetch::parse_platform(text)
        .ok_or_else(|| UsageError::new(format!("--platform {text:?} is not os/arch[/variant], e.g. linux/arm64/v8")))
}

/// Fetch the image `input` names into the store (or find it there, as the pull policy
/// allows), deciding before the fetch and after the resolve with the configured policy.
pub fn fetch(
    ctx: &Context,
    input: &str,
    request: &FetchRequest,
    observer: Arc<dyn IngestObserver>,
) -> Result<Fetched, Error> {
    let point = ctx.point(input)?;
    let store = ctx.open_store(LockMode::Shared)?;
    fetch_point(ctx, &store, &point, request, observer)
}

/// Fetch `point` into an open store.
pub(super) fn fetch_point(
    ctx: &Context,
    store: &Arc<Store>,
    point: &DistributionPoint,
    request: &FetchRequest,
    observer: Arc<dyn IngestObserver>,
) -> Result<Fetched, Error> {
    let options = fetch_options(ctx, point.kind(), request)?;
    let sandbox = ctx.sandbox()?;
    Ok(fetch::fetch(store, &sandbox, point, &options, observer)?)
}

/// The fetch options for a point of `kind`: platform, limits, pull policy, the HTTP
/// client for remote types, the enforcing policy and the drop-in handlers.
pub(super) fn fetch_options(ctx: &Context, kind: &PointKind, request: &FetchRequest) -> Result<FetchOptions, Error> {
    let mut options = FetchOptions::default();
    if let Some(p) = &request.platform {
        options.platform = parse_platform_option(p)?;
    }
    if let Some(t) = request.handler_timeout {
        options.limits.time_budget = t;
    }
    if let Some(n) = request.max_concurrent_downloads {
        options.limits.max_concurrent_ingests = n.max(1);
    }
    options.pull_policy = request.pull_policy;
    options.partial = request.partial;
    options.lazy = request.lazy;
    if matches!(kind, PointKind::Docker | PointKind::Oci | PointKind::Appc | PointKind::AciArchive) {
        options.http = Some(request.registry.client()?);
    }
    options.insecure_image = request.registry.insecure_image;
    options.policy = ctx.policy(true)?;
    options.dropins = Some(ctx.dropins());
    Ok(options)
}
