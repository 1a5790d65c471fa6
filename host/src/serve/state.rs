//! The registry's shared state: configuration, the store lease, what this process has
//! verified, upload sessions and pulls in flight.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::Htpasswd;
use super::pull::Pulls;
use super::uploads::Uploads;
use super::{Event, Limits, ServeError, ServeEvents};
use crate::ops::{self, FetchRequest};
use crate::store::{Digest, LockMode, Store};

/// More verified digests than this and the set starts over (each is re-hashed once more).
const MAX_VERIFIED: usize = 1 << 20;
/// The store stays open this long after its last use: opening it (lock, database) per
/// request would cost more than most requests.
pub const LEASE_LINGER: Duration = Duration::from_secs(2);

/// The open store and when a request last took it.
struct Lease {
    store: Option<Arc<Store>>,
    last_used: Instant,
}

pub(super) struct Config {
    pub read_only: bool,
    /// Normalized registry hosts.
    pub pull_through: Vec<String>,
    pub fetch: FetchRequest,
    pub limits: Limits,
}

pub(super) struct Registry {
    pub ctx: ops::Context,
    pub config: Config,
    pub auth: Option<Arc<Htpasswd>>,
    pub events: Arc<dyn ServeEvents>,
    pub uploads: Uploads,
    pub pulls: Pulls,
    pub requests: AtomicU64,
    pub bytes_sent: AtomicU64,
    lease: Mutex<Lease>,
    verified: Mutex<HashSet<Digest>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub fn new(
        ctx: ops::Context,
        config: Config,
        auth: Option<Htpasswd>,
        events: Arc<dyn ServeEvents>,
    ) -> Result<Registry, ServeError> {
        let uploads = Uploads::open(&ctx.root().join("uploads"))?;
        Ok(Registry {
            ctx,
            config,
            auth: auth.map(Arc::new),
            events,
            uploads,
            pulls: Pulls::default(),
            requests: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            lease: Mutex::new(Lease { store: None, last_used: Instant::now() }),
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// The store, opened (with a shared lock) unless it is open. Blocks: call on a
    /// blocking thread.
    pub fn store(&self) -> Result<Arc<Store>, ServeError> {
        let mut lease = locked(&self.lease);
        lease.last_used = Instant::now();
        if let Some(store) = &lease.store {
            return Ok(store.clone());
        }
        let store = self.ctx.open_store(LockMode::Shared)?;
        lease.store = Some(store.clone());
        Ok(store)
    }

    /// Close the store (releasing its lock, so `berth gc` may run) once no request has
    /// used it for [`LEASE_LINGER`] and none holds it.
    pub fn release_idle_store(&self) {
        let mut lease = locked(&self.lease);
        let idle = lease.last_used.elapsed() >= LEASE_LINGER;
        if idle && lease.store.as_ref().is_some_and(|s| Arc::strong_count(s) == 1) {
            lease.store = None;
        }
    }

    /// Run `f` with the store on a blocking thread.
    pub async fn blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T, ServeError>
    where
        T: Send + 'static,
        F: FnOnce(&Registry, &Store) -> Result<T, ServeError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let store = this.store()?;
            f(&this, &store)
        })
        .await
        .map_err(ServeError::Task)?
    }

    pub fn is_verified(&self, digest: &Digest) -> bool {
        locked(&self.verified).contains(digest)
    }

    pub fn mark_verified(&self, digest: &Digest) {
        let mut set = locked(&self.verified);
        if set.len() >= MAX_VERIFIED {
            set.clear();
        }
        set.insert(digest.clone());
    }

    /// A stored blob hashed to `actual`, not to its name: quarantine it (the store's
    /// fsck code) so it is never served again, and say so.
    pub fn corrupt(&self, store: &Store, digest: &Digest, actual: &Digest) {
        locked(&self.verified).remove(digest);
        let moved_to = match store.quarantine(digest) {
            Ok(path) => path.display().to_string(),
            // Already moved by a concurrent request or fsck.
            Err(e) => format!("(not moved: {e})"),
        };
        self.events.notice(&Event::Quarantined { digest: digest.to_string(), actual: actual.to_string(), moved_to });
    }

    pub fn count_sent(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }
}
