//! A lazy pull: a chunked layer whose contents arrive in the background while its files
//! are already being read (`berth run --lazy`).
//!
//! [`LazyPull::start`] reads and checks the TOC (as a partial pull does) and returns at
//! once; a thread then runs the rest of the partial pull ([`super::partial::finish`]):
//! every missing chunk, checked, into the spool, then the assembled tar into the store.
//! Meanwhile a reader asks for a file with [`LazyPull::ensure`]: if the stream has not
//! brought it yet, it is fetched now (or copied from the store, hashed), checked, and
//! put in its place in the spool; only then is it read, with [`LazyPull::read_at`]. A
//! content is never readable before every byte of it was checked against the TOC.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::ChunkedError;
use super::format::Format;
use super::partial::{self, HashingSink, PartialPull, Prepared, Ready, RemoteBlob, Slots, Source, open_local};
use super::toc::{Entry, Toc};
use crate::store::{Digest, FileSource, Hasher, IngestObserver, Store};
use crate::transport::HttpClient;

/// Where a layer's blob is read from, owned: the background outlives the fetch's call.
pub struct OwnedRemote {
    pub client: Arc<HttpClient>,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub digest: Digest,
    pub size: u64,
    /// The layer's media type, for progress events.
    pub media_type: String,
}

impl OwnedRemote {
    fn blob(&self) -> RemoteBlob<'_> {
        RemoteBlob {
            client: &self.client,
            url: &self.url,
            headers: &self.headers,
            digest: &self.digest,
            size: self.size,
        }
    }
}

/// A chunked layer being pulled in the background; cheap to clone.
#[derive(Clone)]
pub struct LazyPull {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<Store>,
    remote: OwnedRemote,
    ready: Box<Ready>,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// Contents checked and in their place in the spool.
    present: HashSet<Digest>,
    /// Contents a reader is fetching or copying now.
    busy: HashSet<Digest>,
    /// How the background pull ended, until [`LazyPull::wait`] takes it.
    outcome: Option<Result<PartialPull, ChunkedError>>,
    ended: bool,
    /// When a reader last started or finished fetching its own file.
    last_demand: Instant,
}

impl Default for State {
    fn default() -> State {
        State {
            present: HashSet::new(),
            busy: HashSet::new(),
            outcome: None,
            ended: false,
            // The stream starts quiet: a container starting now reads first.
            last_demand: Instant::now(),
        }
    }
}

/// How long the background stream waits after a reader's own fetch (or the start)
/// before it sends another request: the link is the reader's first (stargz-snapshotter
/// calls this its silence period).
const QUIET: Duration = Duration::from_millis(300);
/// A lazy stream's largest request: what one holds of the link once sent, ahead of a
/// reader's fetch.
const LAZY_RUN_BYTES: u64 = 1 << 20;

impl partial::Watch for LazyPull {
    fn before_run(&self) {
        let mut state = self.lock();
        loop {
            let quiet_since = state.last_demand.elapsed();
            if state.busy.is_empty() && quiet_since >= QUIET {
                return;
            }
            let wait = QUIET.saturating_sub(quiet_since).max(Duration::from_millis(10));
            state = self.shared.changed.wait_timeout(state, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    fn done(&self, digests: &[&Digest]) {
        let mut state = self.lock();
        state.present.extend(digests.iter().map(|d| (*d).clone()));
        drop(state);
        self.shared.changed.notify_all();
    }

    fn max_run_bytes(&self) -> u64 {
        LAZY_RUN_BYTES
    }
}

impl LazyPull {
    /// Read and check the layer's TOC, then pull the rest in the background. `None`: the
    /// layer cannot be read in parts (the reason is logged); the caller fetches it whole.
    pub fn start(
        store: Arc<Store>,
        remote: OwnedRemote,
        format: &Format,
        observer: Arc<dyn IngestObserver>,
    ) -> Result<Option<LazyPull>, ChunkedError> {
        let started = Instant::now();
        let ready = match partial::prepare(&store, &remote.blob(), format, Slots::All)? {
            Prepared::Ready(ready) => ready,
            Prepared::NotPossible(why) => {
                tracing::info!(layer = %remote.digest, "not pulling lazily ({why}); fetching the whole layer");
                return Ok(None);
            }
        };
        tracing::debug!(layer = %remote.digest, elapsed = ?started.elapsed(), files = ready.slots.len(), "lazy pull: TOC read");
        let spool = ready.spool.as_file().try_clone().map_err(|source| ready.assemble_err(source))?;
        let shared =
            Arc::new(Shared { store, remote, ready, state: Mutex::new(State::default()), changed: Condvar::new() });
        let pull = LazyPull { shared };
        let background = pull.clone();
        std::thread::Builder::new()
            .name("berth-lazy-pull".into())
            .spawn(move || background.stream(spool, observer))
            .map_err(|source| pull.shared.ready.assemble_err(source))?;
        Ok(Some(pull))
    }

    /// The background: the rest of the partial pull, marking contents present as they
    /// are checked.
    fn stream(&self, spool: File, observer: Arc<dyn IngestObserver>) {
        let s = &self.shared;
        let layer = &s.remote.digest;
        observer.started(layer, s.remote.size, &s.remote.media_type);
        let outcome = partial::finish(&s.store, &s.remote.blob(), &s.ready, s.ready.plan.clone(), spool, self);
        if let Ok(pulled) = &outcome {
            observer.advanced(layer, s.remote.size);
            // The fetch's journal learns the stored blobs, so a failed fetch removes them.
            observer.finished(&pulled.assembled.toc.digest, false);
            observer.finished(&pulled.assembled.tar.digest, false);
            observer.finished(layer, false);
        }
        let mut state = self.lock();
        state.outcome = Some(outcome);
        state.ended = true;
        drop(state);
        s.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The layer's blob digest.
    pub fn layer(&self) -> &Digest {
        &self.shared.remote.digest
    }

    /// The checked table of contents.
    pub fn toc(&self) -> &Toc {
        &self.shared.ready.toc
    }

    /// The TOC as the layer's tar holds it (`stargz.index.json`), for eStargz.
    pub fn toc_in_tar(&self) -> Option<&[u8]> {
        self.shared.ready.toc_in_tar.then_some(self.shared.ready.json.as_slice())
    }

    /// Make `entry`'s content readable: at once if it is present, else after it was
    /// fetched (or copied from the store) and checked. Another reader asking for the same
    /// content waits for the first.
    pub fn ensure(&self, entry: &Entry) -> Result<(), ChunkedError> {
        let Some(digest) = &entry.digest else { return Ok(()) };
        let mut state = self.lock();
        loop {
            if state.present.contains(digest) {
                return Ok(());
            }
            if !state.busy.contains(digest) {
                break;
            }
            state = self.shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.busy.insert(digest.clone());
        state.last_demand = Instant::now();
        drop(state);
        let filled = self.fill(entry, digest);
        let mut state = self.lock();
        state.busy.remove(digest);
        state.last_demand = Instant::now();
        if filled.is_ok() {
            state.present.insert(digest.clone());
        }
        drop(state);
        self.shared.changed.notify_all();
        filled
    }

    /// Put `entry`'s content in its place: the stored copy if it hashes right, else
    /// fetched now.
    fn fill(&self, entry: &Entry, digest: &Digest) -> Result<(), ChunkedError> {
        let s = &self.shared;
        let slot = s.ready.slots[digest];
        let spool = s.ready.spool.as_file();
        if let Some(Source::Local(blob, source) | Source::Unchecked(blob, source)) = s.ready.plan.sources.get(digest) {
            match copy_checked(&s.store, blob, source, spool, slot) {
                Ok(true) => return Ok(()),
                Ok(false) => tracing::warn!(%blob, name = %entry.name, "the stored copy of {digest} does not verify"),
                Err(e) => tracing::warn!(%blob, name = %entry.name, "reading the stored copy of {digest}: {e}"),
            }
        }
        tracing::debug!(layer = %s.remote.digest, name = %entry.name, "fetching on demand");
        partial::fetch_file_into(&s.remote.blob(), s.ready.codec, entry, spool, slot).map(drop)
    }

    /// Read bytes of a present content (see [`LazyPull::ensure`]) at `offset`.
    pub fn read_at(&self, entry: &Entry, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(digest) = &entry.digest else { return Ok(0) };
        let len = entry.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let slot = self.shared.ready.slots[digest];
        self.shared.ready.spool.as_file().read_exact_at(&mut buf[..len], slot + offset)?;
        Ok(len)
    }

    /// Wait for the background pull to end, and take its outcome (once).
    pub fn wait(&self) -> Result<PartialPull, ChunkedError> {
        self.wait_unless(&|| false).expect("never given up")
    }

    /// [`LazyPull::wait`], giving up (`None`) as soon as `give_up` says so; it is asked
    /// every tenth of a second.
    pub fn wait_unless(&self, give_up: &dyn Fn() -> bool) -> Option<Result<PartialPull, ChunkedError>> {
        let mut state = self.lock();
        while !state.ended {
            if give_up() {
                return None;
            }
            let tick = Duration::from_millis(100);
            state = self.shared.changed.wait_timeout(state, tick).unwrap_or_else(|p| p.into_inner()).0;
        }
        Some(state.outcome.take().unwrap_or_else(|| {
            Err(ChunkedError::Assemble {
                layer: self.layer().clone(),
                source: std::io::Error::other("the outcome of the lazy pull was already taken"),
            })
        }))
    }
}

/// Copy stored content into the spool at `offset`, hashing it; whether it matched.
fn copy_checked(store: &Store, blob: &Digest, source: &FileSource, spool: &File, offset: u64) -> std::io::Result<bool> {
    let mut reader = open_local(store, blob, source)?;
    let mut sink = HashingSink { hasher: Hasher::new(source.content.algorithm()), len: 0 };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        spool.write_all_at(&buf[..n], offset + sink.len)?;
        std::io::Write::write_all(&mut sink, &buf[..n])?;
    }
    Ok(sink.len == source.size && sink.hasher.finish() == source.content)
}
