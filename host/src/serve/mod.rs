//! `berth serve`: the store as an OCI distribution registry, so that every node's store
//! is a pull-through peer for the others (the idea behind Spegel and Dragonfly, with no
//! protocol of berth's own: the distribution API every container tool speaks).
//!
//! It serves the pull API over the store (`/v2/`, manifests by tag and digest, blobs
//! with `Range`, `_catalog`, tags, referrers), takes pushes into it unless read-only
//! (monolithic and chunked uploads, cross-repository mounts, manifests), and with
//! `--pull-through` fetches a missed manifest from an upstream registry with
//! [`ops::fetch`] (the registry handler in the sandbox, with the host's mirrors, auth and
//! policy), once for all the clients that asked. A pushed manifest becomes an image
//! record through the same handler path (`ops::record_push`): the host verifies the
//! bytes and what they reference, the sandbox interprets them.
//!
//! Async (tokio, hyper, rustls) lives only here, at the edge: every store or fetch call
//! is the blocking library call every other front end makes, run with `spawn_blocking`.
//!
//! Glossary:
//! - *repository name*: what a client puts in `/v2/<name>/…`; [`names`] maps it to a
//!   *target* (registry host and repository path) and that to the store's refs.
//! - *document*: a manifest or index. Small: read whole and verified before its first
//!   byte is sent. Any other stored content is a *blob*, streamed.
//! - *verified*: hashed to its digest by this process. A blob not yet verified is
//!   hashed as it is served; if it does not match, the response is cut off before its
//!   last chunk and the blob is quarantined (as `berth fsck` does), never served again.
//! - *lease*: the open store (a shared store lock and a database connection), shared
//!   by the requests in flight and closed two seconds after the last, so an idle server
//!   does not hold off `berth gc`.
//! - *session*: an upload in progress (`/blobs/uploads/<id>`), spooled under
//!   `<root>/uploads/` until its digest is known, then ingested like a fetched blob.
//! - *pull*: a fetch of a missed manifest from a `--pull-through` upstream; concurrent
//!   requests for one distribution point wait for one pull.

mod access_log;
mod auth;
mod blobs;
mod documents;
mod error;
mod listener;
mod manifests;
mod names;
mod pull;
mod response;
mod routes;
mod sendfile;
mod state;
mod tls;
mod uploads;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use access_log::AccessEntry;
pub use error::ServeError;
pub use names::{RepoName, Target};

use crate::ops::{self, FetchRequest};
use state::Registry;

/// What `berth serve` was asked to do.
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate chain and key.
    pub tls: Option<TlsFiles>,
    /// Require HTTP Basic credentials from this htpasswd file (bcrypt entries).
    pub htpasswd: Option<PathBuf>,
    /// Refuse pushes.
    pub read_only: bool,
    /// Registries (`host[:port]`) whose missed manifests are fetched into the store and
    /// served; the first is where relative names point.
    pub pull_through: Vec<String>,
    /// How pull-through fetches reach registries (mirrors, credentials, CAs, policy).
    pub fetch: FetchRequest,
    pub limits: Limits,
    /// Where the access log and notices go.
    pub events: Arc<dyn ServeEvents>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A connection with no request in progress and no bytes moving for this long is
    /// closed (idle keep-alive, a client that stopped reading); a request body that
    /// stalls this long is refused with 408.
    pub idle_timeout: Duration,
    /// After SIGTERM or SIGINT, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_connections: 512, idle_timeout: Duration::from_secs(60), shutdown_grace: Duration::from_secs(30) }
    }
}

/// Receives what a front end shows: the access log and notices. Called from many
/// threads at once.
pub trait ServeEvents: Send + Sync {
    fn request(&self, entry: &AccessEntry);
    fn notice(&self, event: &Event);
}

/// Something worth telling whoever runs the server.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// Accepting connections.
    Listening {
        addr: SocketAddr,
        tls: bool,
        read_only: bool,
        pull_through: Vec<String>,
    },
    /// Mirrors in registries.toml that are this server, skipped by pull-through fetches
    /// (they would ask this server again).
    SkippedSelfMirrors {
        mirrors: Vec<String>,
    },
    /// A stored blob did not hash to its name; it was moved to quarantine.
    Quarantined {
        digest: String,
        actual: String,
        moved_to: String,
    },
    /// A pull-through fetch finished.
    Pulled {
        point: String,
        manifest: String,
        elapsed_ms: u64,
    },
    PullFailed {
        point: String,
        error: String,
    },
    /// A pushed manifest was recorded as an image.
    Pushed {
        point: String,
        manifest: String,
    },
    /// Shutting down: no new connections; waiting for these to finish.
    Stopping {
        connections: usize,
    },
}

/// What a server did, when it stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Served {
    pub connections: u64,
    pub requests: u64,
    pub bytes_sent: u64,
    /// Connections cut at the end of the shutdown grace period.
    pub cut_at_shutdown: usize,
}

async fn release_idle_store(registry: Arc<Registry>) {
    loop {
        tokio::time::sleep(state::LEASE_LINGER / 2).await;
        let r = registry.clone();
        let _ = tokio::task::spawn_blocking(move || r.release_idle_store()).await;
    }
}

/// Serve until SIGTERM or SIGINT (then finish requests in flight, for at most
/// `limits.shutdown_grace`). Call inside a tokio runtime; [`ops::serve`] makes one.
pub async fn run(ctx: ops::Context, options: ServeOptions) -> Result<Served, ServeError> {
    let pull_through = options
        .pull_through
        .iter()
        .map(|u| {
            if names::valid_registry(u) {
                Ok(names::normalize_registry(u))
            } else {
                Err(ServeError::Upstream { upstream: u.clone() })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tls = options.tls.as_ref().map(|t| tls::acceptor(&t.cert, &t.key)).transpose()?;
    let auth = options.htpasswd.as_deref().map(auth::Htpasswd::load).transpose()?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: options.listen, source })?;

    let mut fetch = options.fetch.clone();
    let own = listener::own_mirrors(&fetch, addr.port())?;
    if !own.is_empty() {
        options.events.notice(&Event::SkippedSelfMirrors { mirrors: own.clone() });
    }
    fetch.registry.skip_mirrors.extend(own);

    let config = state::Config { read_only: options.read_only, pull_through, fetch, limits: options.limits.clone() };
    let registry = Arc::new(Registry::new(ctx, config, auth, options.events.clone())?);
    options.events.notice(&Event::Listening {
        addr,
        tls: tls.is_some(),
        read_only: options.read_only,
        pull_through: registry.config.pull_through.clone(),
    });
    let janitor = tokio::spawn(uploads::janitor(registry.clone()));
    let reaper = tokio::spawn(release_idle_store(registry.clone()));
    let served = listener::serve(registry.clone(), listener, tls).await;
    janitor.abort();
    reaper.abort();
    Ok(served)
}
