//! `berth:handler/store`: blobs stream from their source into the CAS on host threads,
//! verified as they are written; the guest sees only the outcome.

use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::transport::check_network;
use super::{chunked_error, store_error, transport_error};
use crate::chunked::{self, Attempt, RemoteBlob};
use crate::sandbox::bindings::berth::handler::store::{
    Archive, ArchiveRequest, ChunkedRequest, Host, IngestRequest, Source,
};
use crate::sandbox::bindings::berth::handler::types::Error as WitError;
use crate::sandbox::clock::HostTime;
use crate::sandbox::grant::NetworkGrant;
use crate::store::{Algorithm, Assembled, Digest, Expected, IngestObserver, Ingested, Store};
use crate::transport::{HttpClient, LocalAccess, TransportError};

/// What a run's ingests did, for the fetch report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestStats {
    pub blobs_written: u64,
    pub bytes_written: u64,
    pub blobs_reused: u64,
    /// eStargz layers stored partially (their blobs never downloaded whole).
    pub layers_partial: u64,
    /// Bytes received by range requests for those layers (footers, TOCs, chunks).
    pub partial_bytes_fetched: u64,
    /// Their files fetched, and those taken from the store instead.
    pub files_fetched: u64,
    pub files_reused: u64,
}

#[derive(Default)]
struct Counters {
    blobs_written: AtomicU64,
    bytes_written: AtomicU64,
    blobs_reused: AtomicU64,
    layers_partial: AtomicU64,
    partial_bytes_fetched: AtomicU64,
    files_fetched: AtomicU64,
    files_reused: AtomicU64,
}

pub struct StoreCtx {
    pub(crate) handler: String,
    pub(crate) http: Option<Arc<HttpClient>>,
    pub(crate) network: NetworkGrant,
    pub(crate) store: Arc<Store>,
    pub(crate) local: Option<Arc<LocalAccess>>,
    pub(crate) observer: Arc<dyn IngestObserver>,
    pub(crate) read_cap: u32,
    pub(crate) concurrency: usize,
    pub(crate) host_time: HostTime,
    /// Whether eStargz layers may be pulled partially (`berth fetch --partial`).
    pub(crate) partial: bool,
    /// The layers pulled partially in this run, by blob digest, for the image record.
    pub(crate) assembled: Arc<Mutex<std::collections::HashMap<Digest, Assembled>>>,
    /// Whether chunked layers may be pulled lazily (`berth run --lazy`).
    pub(crate) lazy: bool,
    /// The layers being pulled lazily, by blob digest.
    pub(crate) lazy_pulls: Arc<Mutex<std::collections::HashMap<Digest, chunked::LazyPull>>>,
    counters: Arc<Counters>,
}

impl StoreCtx {
    pub(crate) fn new(
        handler: String,
        store: Arc<Store>,
        local: Option<Arc<LocalAccess>>,
        observer: Arc<dyn IngestObserver>,
        read_cap: u32,
        concurrency: usize,
        host_time: HostTime,
    ) -> StoreCtx {
        StoreCtx {
            handler,
            http: None,
            network: NetworkGrant::default(),
            store,
            local,
            observer,
            read_cap,
            concurrency,
            host_time,
            partial: false,
            assembled: Arc::default(),
            lazy: false,
            lazy_pulls: Arc::default(),
            counters: Arc::default(),
        }
    }

    pub(crate) fn stats(&self) -> IngestStats {
        IngestStats {
            blobs_written: self.counters.blobs_written.load(Ordering::Relaxed),
            bytes_written: self.counters.bytes_written.load(Ordering::Relaxed),
            blobs_reused: self.counters.blobs_reused.load(Ordering::Relaxed),
            layers_partial: self.counters.layers_partial.load(Ordering::Relaxed),
            partial_bytes_fetched: self.counters.partial_bytes_fetched.load(Ordering::Relaxed),
            files_fetched: self.counters.files_fetched.load(Ordering::Relaxed),
            files_reused: self.counters.files_reused.load(Ordering::Relaxed),
        }
    }

    /// A chunked layer (eStargz, zstd:chunked): partially when allowed and possible, else
    /// whole; a layer stored whole has its files indexed from its TOC for later partial
    /// pulls.
    fn ingest_chunked_one(&self, req: &ChunkedRequest) -> Result<(), WitError> {
        let layer: Digest = req.layer.digest.parse().map_err(store_error)?;
        let format = match chunked::Format::of(&req.layer.media_type, &req.annotations) {
            Ok(Some(format)) => format,
            Ok(None) => return self.ingest_one(&req.layer),
            Err(why) => {
                // A valid layer with unreadable annotations: fetched whole, as before.
                tracing::warn!(layer = %layer, "not reading the layer in parts: {why}");
                return self.ingest_one(&req.layer);
            }
        };
        if (self.partial || self.lazy)
            && !self.store.blobs().has(&layer)
            && let Source::Http(source) = &req.layer.source
            && let Some(url) = source.urls.first()
        {
            let client = check_network(&self.handler, &self.network, self.http.as_ref(), url)?;
            if self.lazy {
                let remote = chunked::OwnedRemote {
                    client: client.clone(),
                    url: url.clone(),
                    headers: source.headers.clone(),
                    digest: layer.clone(),
                    size: req.layer.size,
                    media_type: req.layer.media_type.clone(),
                };
                match chunked::LazyPull::start(self.store.clone(), remote, &format, self.observer.clone()) {
                    Ok(Some(pull)) => {
                        self.counters.layers_partial.fetch_add(1, Ordering::Relaxed);
                        self.lazy_pulls.lock().unwrap_or_else(|p| p.into_inner()).insert(layer, pull);
                        return Ok(());
                    }
                    Ok(None) => return self.ingest_whole_chunked(req, &layer, &format),
                    Err(e) => return Err(chunked_error(e)),
                }
            }
            let remote = RemoteBlob { client, url, headers: &source.headers, digest: &layer, size: req.layer.size };
            self.observer.started(&layer, req.layer.size, &req.layer.media_type);
            match chunked::pull(&self.store, &remote, &format) {
                Ok(Attempt::Done(pulled)) => {
                    let c = &self.counters;
                    c.layers_partial.fetch_add(1, Ordering::Relaxed);
                    c.partial_bytes_fetched.fetch_add(pulled.bytes_fetched, Ordering::Relaxed);
                    c.files_fetched.fetch_add(pulled.files_fetched, Ordering::Relaxed);
                    c.files_reused.fetch_add(pulled.files_reused, Ordering::Relaxed);
                    self.observer.advanced(&layer, req.layer.size);
                    // The journal of the fetch learns the stored blobs, so a failed fetch
                    // removes them again.
                    self.observer.finished(&pulled.assembled.toc.digest, false);
                    self.observer.finished(&pulled.assembled.tar.digest, false);
                    self.observer.finished(&layer, false);
                    self.assembled.lock().unwrap_or_else(|p| p.into_inner()).insert(layer, pulled.assembled);
                    return Ok(());
                }
                Ok(Attempt::NotPossible(why)) => {
                    tracing::info!(layer = %layer, "not pulling partially ({why}); fetching the whole layer");
                }
                Err(e) => return Err(chunked_error(e)),
            }
        }
        self.ingest_whole_chunked(req, &layer, &format)
    }

    /// A chunked layer stored whole, its files indexed from its TOC for later partial
    /// pulls.
    fn ingest_whole_chunked(
        &self,
        req: &ChunkedRequest,
        layer: &Digest,
        format: &chunked::Format,
    ) -> Result<(), WitError> {
        self.ingest_one(&req.layer)?;
        if let Err(e) = chunked::index_stored_layer(&self.store, layer, format) {
            // The layer is a valid layer either way; only later partial pulls lose.
            tracing::warn!(layer = %layer, "not indexing the files of the {} layer: {e}", format.name());
        }
        Ok(())
    }

    fn ingest_one(&self, req: &IngestRequest) -> Result<(), WitError> {
        let digest: Digest = req.digest.parse().map_err(store_error)?;
        let expect = Expected { digest: digest.clone(), size: req.size };
        if self.store.blobs().has(&digest) {
            self.counters.blobs_reused.fetch_add(1, Ordering::Relaxed);
            self.observer.finished(&digest, true);
            return Ok(());
        }
        let (mut reader, subject) = self.open_source(&req.source, req.size)?;
        self.observer.started(&digest, req.size, &req.media_type);
        let outcome = self
            .store
            .blobs()
            .ingest(&mut reader, &expect, &subject, &mut |n| self.observer.advanced(&digest, n))
            .map_err(store_error)?;
        match outcome {
            Ingested::Written => {
                self.counters.blobs_written.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes_written.fetch_add(req.size, Ordering::Relaxed);
            }
            Ingested::AlreadyPresent => {
                self.counters.blobs_reused.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.observer.finished(&digest, outcome == Ingested::AlreadyPresent);
        Ok(())
    }

    /// Count a blob stored whole in one call (a document, an archive) and tell the
    /// observer it is done.
    fn count(&self, digest: &Digest, size: u64, outcome: Ingested) {
        let reused = outcome == Ingested::AlreadyPresent;
        let counter = if reused { &self.counters.blobs_reused } else { &self.counters.blobs_written };
        counter.fetch_add(1, Ordering::Relaxed);
        if !reused {
            self.counters.bytes_written.fetch_add(size, Ordering::Relaxed);
        }
        self.observer.finished(digest, reused);
    }

    /// Store an archive of unknown digest, then read it back decompressed to hash the
    /// tar (sha512) and pick out the members asked for. The tar is only read.
    fn ingest_archive_one(&self, req: &ArchiveRequest) -> Result<Archive, WitError> {
        let size_hint = match &req.source {
            Source::Local(range) => range.length,
            Source::Http(_) => 0,
        };
        let (reader, subject) = self.open_source(&req.source, size_hint)?;
        // One pass: the bytes go to the store on this thread and, through a bounded
        // channel, to a thread that decompresses and reads the tar, so downloading,
        // storing and decompressing overlap.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHANNEL_CHUNKS);
        let (ingested, read) = std::thread::scope(|scope| {
            let worker = scope.spawn(|| read_archive(ChannelReader::new(rx), &req.members, self.read_cap, &subject));
            let mut tee = Tee { inner: reader, to: Some(tx) };
            let ingested =
                self.store.blobs().ingest_unknown(&mut tee, Algorithm::Sha256, req.max_size, &subject, &mut |_| {});
            drop(tee);
            (ingested, worker.join().expect("the archive reader does not panic"))
        });
        let (digest, size, outcome) = ingested.map_err(store_error)?;
        if outcome == Ingested::Written {
            self.observer.started(&digest, size, &req.media_type);
        }
        self.count(&digest, size, outcome);
        let (uncompressed, members) = read?;
        Ok(Archive { blob: digest.to_string(), size, uncompressed: uncompressed.to_string(), members })
    }

    fn open_source(&self, source: &Source, size: u64) -> Result<(Box<dyn Read>, String), WitError> {
        match source {
            Source::Local(range) => {
                let local = self.local.as_deref().ok_or_else(|| transport_error(TransportError::NoLocalGrant))?;
                let file = local.open_file(&range.path).map_err(transport_error)?;
                let subject = if range.path.is_empty() {
                    format!("{} at byte {}", local.root().display(), range.offset)
                } else {
                    local.root().join(&range.path).display().to_string()
                };
                // Positional reads: an archive's members are read by parallel ingests
                // through duplicates of one descriptor, which share a seek offset.
                let reader = RangeReader { file, offset: range.offset, remaining: range.length };
                Ok((Box::new(reader), subject))
            }
            Source::Http(source) => {
                let first =
                    source.urls.first().ok_or_else(|| WitError::InvalidInput("an http source needs a URL".into()))?;
                let mut client = None;
                for url in &source.urls {
                    client = Some(check_network(&self.handler, &self.network, self.http.as_ref(), url)?);
                }
                let client = client.expect("at least one URL");
                let reader = client.open_blob(&source.urls, &source.headers, size).map_err(transport_error)?;
                Ok((Box::new(reader), first.clone()))
            }
        }
    }
}

/// Run `one` over `requests` on up to `concurrency` threads; results in request order.
fn run_concurrently<T: Sync>(
    concurrency: usize,
    requests: &[T],
    one: impl Fn(&T) -> Result<(), WitError> + Sync,
) -> Vec<Result<(), WitError>> {
    let results: Vec<Mutex<Option<Result<(), WitError>>>> = requests.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = concurrency.clamp(1, requests.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(req) = requests.get(i) else { break };
                    let r = one(req);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()).expect("every request was run"))
        .collect()
}

impl Host for StoreCtx {
    fn ingest_chunked(&mut self, requests: Vec<ChunkedRequest>) -> Vec<Result<(), WitError>> {
        let this = &*self;
        this.host_time.measure(|| run_concurrently(this.concurrency, &requests, |r| this.ingest_chunked_one(r)))
    }

    fn ingest(&mut self, requests: Vec<IngestRequest>) -> Vec<Result<(), WitError>> {
        let this = &*self;
        this.host_time.measure(|| run_concurrently(this.concurrency, &requests, |r| this.ingest_one(r)))
    }

    fn put(&mut self, bytes: Vec<u8>, digest: Option<String>, media_type: String) -> Result<String, WitError> {
        if bytes.len() > self.read_cap as usize {
            return Err(WitError::Denied(format!(
                "a document of {} bytes is over the {}-byte cap of store.put",
                bytes.len(),
                self.read_cap
            )));
        }
        let digest = match digest {
            Some(d) => d.parse::<Digest>().map_err(store_error)?,
            None => Digest::of_bytes(Algorithm::Sha256, &bytes),
        };
        let expect = Expected { digest: digest.clone(), size: bytes.len() as u64 };
        let subject = format!("{media_type} document from handler {}", self.handler);
        let outcome = self
            .host_time
            .measure(|| self.store.blobs().ingest(&mut bytes.as_slice(), &expect, &subject, &mut |_| {}))
            .map_err(store_error)?;
        self.count(&digest, bytes.len() as u64, outcome);
        Ok(digest.to_string())
    }

    fn ingest_archive(&mut self, request: ArchiveRequest) -> Result<Archive, WitError> {
        let this = &*self;
        this.host_time.measure(|| this.ingest_archive_one(&request))
    }

    fn has(&mut self, digest: String) -> bool {
        digest.parse::<Digest>().is_ok_and(|d| self.store.blobs().has(&d))
    }

    fn read(&mut self, digest: String, offset: u64, length: u32) -> Result<Vec<u8>, WitError> {
        let digest: Digest = digest.parse().map_err(store_error)?;
        let len = length.min(self.read_cap) as usize;
        self.host_time.measure(|| self.store.blobs().read_at(&digest, offset, len)).map_err(store_error)
    }
}

/// Reads `remaining` bytes of `file` from `offset` with pread, never moving the
/// descriptor's shared offset.
struct RangeReader {
    file: std::fs::File,
    offset: u64,
    remaining: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt as _;
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        self.offset += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Chunks in flight between the store writer and the archive reader (of up to 1 MiB).
const CHANNEL_CHUNKS: usize = 16;

/// Archive members by name, with their bytes.
type Members = Vec<(String, Vec<u8>)>;

/// Decompress an archive (by magic number), hash the tar with sha512, and return the
/// regular-file members named in `wanted` (each at most `cap` bytes). Reads to the end.
fn read_archive(
    input: impl Read + Send,
    wanted: &[String],
    cap: u32,
    subject: &str,
) -> Result<(crate::store::Digest, Members), WitError> {
    let not_an_archive =
        |e: std::io::Error| WitError::InvalidInput(format!("{subject}: not a readable tar archive: {e}"));
    let tar =
        crate::render::sniffed_decoder(std::io::BufReader::with_capacity(1 << 20, input)).map_err(not_an_archive)?;
    let mut hashed = crate::render::HashingReader::new(tar, Algorithm::Sha512);
    let mut members: Members = Vec::new();
    {
        let mut archive = tar::Archive::new(crate::render::EndPadded::new(&mut hashed));
        for entry in archive.entries().map_err(not_an_archive)? {
            let mut entry = entry.map_err(not_an_archive)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = name.strip_prefix("./").unwrap_or(&name).to_string();
            if !wanted.contains(&name) || members.iter().any(|(n, _)| *n == name) {
                continue;
            }
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(WitError::InvalidInput(format!("{subject}: member {name:?} is not a regular file")));
            }
            if entry.size() > u64::from(cap) {
                return Err(WitError::Denied(format!(
                    "{subject}: member {name:?} of {} bytes is over the {cap}-byte read cap",
                    entry.size()
                )));
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(not_an_archive)?;
            members.push((name, bytes));
        }
    }
    let uncompressed = hashed.finish().map_err(not_an_archive)?;
    Ok((uncompressed, members))
}

/// Passes every chunk read through to a channel as well, until its receiver is gone
/// (a reader that failed early: the store still gets every byte).
struct Tee<R> {
    inner: R,
    to: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0
            && let Some(to) = &self.to
            && to.send(buf[..n].to_vec()).is_err()
        {
            self.to = None;
        }
        Ok(n)
    }
}

/// The receiving end of a [`Tee`], as a stream; ends when the sender is dropped.
struct ChannelReader {
    from: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(from: std::sync::mpsc::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader { from, chunk: Vec::new(), pos: 0 }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.from.recv() {
                Ok(chunk) => (self.chunk, self.pos) = (chunk, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
