//! Partial pull of a chunked layer (eStargz, zstd:chunked): the table of contents by
//! HTTP `Range` (through eStargz's footer, or zstd:chunked's annotation), then only the
//! chunks of files whose content the store does not already hold, each checked against
//! its `chunkDigest` and every file against its `digest`. The layer is then stored as a
//! tar berth assembles from the TOC (headers) and the contents (fetched or local), plus
//! the TOC itself; see [`crate::store::Assembled`]. Nothing reaches the store before
//! every byte was checked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use super::error::ContentMismatch;
use super::format::{Codec, Format};
use super::toc::{self, Entry, Toc};
use super::{ChunkedError, assemble, footer};
use crate::store::{
    ASSEMBLED_MEDIA_TYPE, Algorithm, Assembled, ContentEncoding, Descriptor, Digest, Expected, FileSource, Hasher,
    Store, TOC_MEDIA_TYPE,
};
use crate::transport::{HttpClient, RangeAnswer};

/// Where a layer's blob can be read from, by byte range.
pub struct RemoteBlob<'a> {
    pub client: &'a HttpClient,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    /// The layer's blob digest and size, from the manifest.
    pub digest: &'a Digest,
    pub size: u64,
}

/// What a partial pull did.
#[derive(Debug, Clone)]
pub struct PartialPull {
    pub assembled: Assembled,
    /// Bytes received from the registry (footer, TOC, chunks).
    pub bytes_fetched: u64,
    pub files_fetched: u64,
    /// Regular files with content taken from the store instead.
    pub files_reused: u64,
}

/// The outcome of trying a partial pull.
pub enum Attempt {
    Done(PartialPull),
    /// The layer cannot be read in parts (no eStargz footer, no byte ranges): the caller
    /// fetches it whole. The reason is for the log.
    NotPossible(String),
}

/// Fetch what the store lacks of the chunked layer at `remote` (in `format`, from its
/// annotations), and store it assembled.
pub fn pull(store: &Store, remote: &RemoteBlob<'_>, format: &Format) -> Result<Attempt, ChunkedError> {
    let mut prepared = match prepare(store, remote, format, Slots::Fetched)? {
        Prepared::Ready(p) => p,
        Prepared::NotPossible(why) => return Ok(Attempt::NotPossible(why)),
    };
    let spool = prepared.spool.as_file().try_clone().map_err(|source| prepared.assemble_err(source))?;
    // Nobody else reads the plan of a partial pull (a lazy one keeps it for its readers).
    let plan = std::mem::take(&mut prepared.plan);
    finish(store, remote, &prepared, plan, spool, &Unwatched).map(Attempt::Done)
}

/// What watches a pull's stream of range requests: a lazy pull marks contents present as
/// they are checked, and holds the stream back while a reader waits for its own file.
pub(super) trait Watch: Sync {
    /// Called before each run of members is requested; may wait.
    fn before_run(&self) {}
    /// A run's contents are checked and in their places in the spool.
    fn done(&self, _digests: &[&Digest]) {}
    /// The most bytes one request asks for (it holds that much of the link once sent).
    fn max_run_bytes(&self) -> u64 {
        MAX_RUN_BYTES
    }
}

/// A partial pull: nobody reads the layer before it is stored.
struct Unwatched;

impl Watch for Unwatched {}

/// Which files get a place in the spool.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Slots {
    /// Only those to fetch (a partial pull).
    Fetched,
    /// Every file with content (a lazy pull copies stored contents there too, checked,
    /// when something reads them before the layer is complete).
    All,
}

/// A chunked layer whose TOC is read and checked, with the plan of where each file's
/// content comes from: what [`finish`] needs.
pub(super) struct Ready {
    pub(super) layer: Digest,
    pub(super) json: Vec<u8>,
    pub(super) toc: Toc,
    pub(super) codec: Codec,
    /// eStargz keeps its TOC in the tar (a full pull renders it); zstd:chunked does not.
    pub(super) toc_in_tar: bool,
    /// Where each file's content is found in the store (as chosen before any fetch).
    pub(super) plan: Plan,
    /// Where each content goes in the spool, by content digest.
    pub(super) slots: HashMap<Digest, u64>,
    pub(super) spool: tempfile::NamedTempFile,
    /// Bytes received so far (footer, TOC).
    pub(super) fetched: u64,
}

impl Ready {
    pub(super) fn assemble_err(&self, source: std::io::Error) -> ChunkedError {
        ChunkedError::Assemble { layer: self.layer.clone(), source }
    }
}

pub(super) enum Prepared {
    Ready(Box<Ready>),
    NotPossible(String),
}

/// Read the layer's TOC (through eStargz's footer, or zstd:chunked's annotation), check
/// it, and plan: which contents the store holds, and where fetched ones go.
pub(super) fn prepare(
    store: &Store,
    remote: &RemoteBlob<'_>,
    format: &Format,
    slots: Slots,
) -> Result<Prepared, ChunkedError> {
    let layer = remote.digest;
    let mut fetched = 0u64;
    let (compressed_toc, chunks_end) =
        match format {
            Format::Estargz { .. } => {
                if remote.size < footer::FOOTER_SIZE {
                    return Ok(Prepared::NotPossible(format!("{} bytes is too short for eStargz", remote.size)));
                }
                let Some(tail) = range(remote, remote.size - footer::FOOTER_SIZE, remote.size)? else {
                    return Ok(Prepared::NotPossible(format!("{} does not serve byte ranges", remote.url)));
                };
                fetched += tail.len() as u64;
                let Some((toc_offset, footer_len)) = footer::parse(&tail) else {
                    return Ok(Prepared::NotPossible("no eStargz footer".into()));
                };
                let toc_end = toc_range_end(layer, toc_offset, remote.size - footer_len, remote.size)?;
                let compressed = range(remote, toc_offset, toc_end)?.ok_or_else(|| {
                    ChunkedError::RangesUnsupported { layer: layer.clone(), url: remote.url.into(), status: 200 }
                })?;
                (compressed, toc_offset)
            }
            Format::ZstdChunked { offset, length, .. } => {
                let toc_end = toc_range_end(layer, *offset, offset.saturating_add(*length), remote.size)?;
                let Some(compressed) = range(remote, *offset, toc_end)? else {
                    return Ok(Prepared::NotPossible(format!("{} does not serve byte ranges", remote.url)));
                };
                (compressed, format.chunks_end(0))
            }
        };
    fetched += compressed_toc.len() as u64;
    let (json, parsed) = read_toc(layer, format, &compressed_toc, chunks_end)?;
    tracing::debug!(%layer, entries = parsed.entries.len(), "table of contents fetched and parsed");
    if let Some(why) = parsed.unsupported {
        return Ok(Prepared::NotPossible(why));
    }
    let tmp = store.root().join("tmp");
    let assemble_err = |source| ChunkedError::Assemble { layer: layer.clone(), source };
    let mut plan = Plan::default();
    plan.find_local(store, &parsed)?;
    let spool = tempfile::Builder::new().prefix("partial-").tempfile_in(&tmp).map_err(assemble_err)?;
    // Each content once, in TOC order.
    let mut places = HashMap::new();
    let mut end = 0u64;
    for e in &parsed.entries {
        if let Some(d) = &e.digest
            && (slots == Slots::All || !plan.sources.contains_key(d))
            && !places.contains_key(d)
        {
            places.insert(d.clone(), end);
            end += e.size;
        }
    }
    Ok(Prepared::Ready(Box::new(Ready {
        layer: layer.clone(),
        json,
        toc: parsed,
        codec: format.codec(),
        toc_in_tar: matches!(format, Format::Estargz { .. }),
        plan,
        slots: places,
        spool,
        fetched,
    })))
}

/// Fetch what `plan` finds no stored source for (into `spool`, a handle on the prepared
/// spool; `watch` sees each run of contents), assemble the layer's tar
/// and store it with the TOC.
pub(super) fn finish(
    store: &Store,
    remote: &RemoteBlob<'_>,
    ready: &Ready,
    mut plan: Plan,
    mut spool: File,
    watch: &dyn Watch,
) -> Result<PartialPull, ChunkedError> {
    let layer = remote.digest;
    let parsed = &ready.toc;
    let json = &ready.json;
    let codec = ready.codec;
    let tmp = store.root().join("tmp");
    let mut fetched = ready.fetched;
    fetched += fetch_missing(remote, codec, parsed, &mut plan, &ready.slots, &spool, watch)?;

    let toc_entry = ready.toc_in_tar.then_some(json.as_slice());
    // Written straight into the store's `tmp/`, hashed as written, named when complete.
    let mut tar_blob = store.blobs().writer(Algorithm::Sha256)?;
    let refetch = |entry: &Entry| fetch_file(remote, codec, entry, &tmp);
    let written = assemble::write_tar(store, parsed, toc_entry, &plan, &mut spool, &mut tar_blob, &refetch).map_err(
        |e| match e {
            assemble::AssembleError::Io(source) => ChunkedError::Assemble { layer: layer.clone(), source },
            assemble::AssembleError::Chunked(e) => e,
        },
    )?;
    // Stored copies that did not verify were fetched after all: count them so.
    for digest in written.refetched.keys() {
        if let Some(e) = parsed.entries.iter().find(|e| e.digest.as_ref() == Some(digest)) {
            fetched += e.chunks.last().map_or(0, |last| last.end - e.chunks[0].start);
        }
    }
    plan.fetched_files += written.refetched.len() as u64;
    plan.reused_files = parsed
        .entries
        .iter()
        .filter_map(|e| e.digest.as_ref())
        .filter(|d| matches!(plan.sources.get(*d), Some(Source::Local(..) | Source::Unchecked(..))))
        .filter(|d| !written.refetched.contains_key(*d))
        .count() as u64;
    let contents = written.contents;
    let (tar_digest, tar_size, _) = tar_blob.commit()?;
    let toc_digest = Digest::of_bytes(Algorithm::Sha256, json);
    let toc_expect = Expected { digest: toc_digest.clone(), size: json.len() as u64 };
    store.blobs().ingest(&mut json.as_slice(), &toc_expect, &format!("the TOC of layer {layer}"), &mut |_| {})?;
    let files: Vec<FileSource> = contents
        .into_iter()
        .map(|(content, offset, size)| FileSource { content, offset, size, encoding: ContentEncoding::Raw })
        .collect();
    store.index_files(&tar_digest, &files)?;
    Ok(PartialPull {
        assembled: Assembled {
            toc: descriptor(TOC_MEDIA_TYPE, toc_digest, json.len() as u64),
            tar: descriptor(ASSEMBLED_MEDIA_TYPE, tar_digest, tar_size),
        },
        bytes_fetched: fetched,
        files_fetched: plan.fetched_files,
        files_reused: plan.reused_files,
    })
}

/// Check that the TOC's compressed bytes `start..end` lie in a blob of `size` bytes and
/// are not over the limit; returns `end`.
pub(super) fn toc_range_end(layer: &Digest, start: u64, end: u64, size: u64) -> Result<u64, ChunkedError> {
    if start >= end || end > size {
        return Err(ChunkedError::FooterOutOfRange { layer: layer.clone(), offset: start, size });
    }
    if end - start > toc::MAX_TOC_BYTES {
        return Err(ChunkedError::TocTooLarge { layer: layer.clone(), limit: toc::MAX_TOC_BYTES });
    }
    Ok(end)
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor { media_type: media_type.into(), digest, size, annotations: Default::default() }
}

/// Decompress the TOC, check it against what the manifest announces (the TOC digest; for
/// zstd:chunked also the compressed bytes' checksum), and parse it; chunks must end by
/// `chunks_end`.
pub fn read_toc(
    layer: &Digest,
    format: &Format,
    compressed: &[u8],
    chunks_end: u64,
) -> Result<(Vec<u8>, Toc), ChunkedError> {
    let unreadable = |source| ChunkedError::TocUnreadable { layer: layer.clone(), source };
    let json = match format {
        Format::Estargz { .. } => toc::extract(compressed).map_err(unreadable)?,
        Format::ZstdChunked { checksum, uncompressed, .. } => {
            let actual = Digest::of_bytes(checksum.algorithm(), compressed);
            if actual != *checksum {
                return Err(ChunkedError::TocMismatch { layer: layer.clone(), expected: checksum.clone(), actual });
            }
            if *uncompressed > toc::MAX_TOC_BYTES {
                return Err(ChunkedError::TocTooLarge { layer: layer.clone(), limit: toc::MAX_TOC_BYTES });
            }
            let mut json = Vec::new();
            Codec::Zstd
                .decoder(compressed)
                .and_then(|d| d.take(toc::MAX_TOC_BYTES).read_to_end(&mut json))
                .map_err(unreadable)?;
            json
        }
    };
    if let Some(expected) = format.toc_digest() {
        let actual = Digest::of_bytes(expected.algorithm(), &json);
        if actual != *expected {
            return Err(ChunkedError::TocMismatch { layer: layer.clone(), expected: expected.clone(), actual });
        }
    }
    let parsed =
        toc::parse(&json, chunks_end).map_err(|reason| ChunkedError::InvalidToc { layer: layer.clone(), reason })?;
    Ok((json, parsed))
}

/// Bytes `start..end` of the remote blob as a stream; `None` when the server does not do
/// ranges.
fn open_range(remote: &RemoteBlob<'_>, start: u64, end: u64) -> Result<Option<impl Read + use<>>, ChunkedError> {
    let err = |source| ChunkedError::Range { layer: remote.digest.clone(), start, end, source };
    match remote.client.get_byte_range(remote.url, remote.headers, start, end).map_err(err)? {
        RangeAnswer::Ignored(_) => Ok(None),
        RangeAnswer::Partial(resp) => Ok(Some(resp.take(end - start))),
    }
}

/// Bytes `start..end` of the remote blob; `None` when the server does not do ranges.
fn range(remote: &RemoteBlob<'_>, start: u64, end: u64) -> Result<Option<Vec<u8>>, ChunkedError> {
    let Some(mut body) = open_range(remote, start, end)? else { return Ok(None) };
    let mut bytes = vec![0; (end - start) as usize];
    body.read_exact(&mut bytes).map_err(|source| ChunkedError::Range {
        layer: remote.digest.clone(),
        start,
        end,
        source: crate::transport::TransportError::Body { url: remote.url.into(), source },
    })?;
    Ok(Some(bytes))
}

/// Where each file's content comes from.
#[derive(Default, Clone)]
pub(super) struct Plan {
    /// By content digest: a stored blob, or bytes in the spool.
    pub(super) sources: HashMap<Digest, Source>,
    fetched_files: u64,
    reused_files: u64,
}

#[derive(Clone)]
pub(super) enum Source {
    /// Stored content, hashed when it was chosen.
    Local(Digest, FileSource),
    /// Stored content of a small file, chosen unhashed: the tar writer holds it in memory
    /// and hashes it before writing, fetching the file instead if it does not match.
    Unchecked(Digest, FileSource),
    Spool(u64),
}

/// Stored files up to this size are chosen without hashing (see [`Source::Unchecked`]):
/// one decompression of each instead of two.
const HELD_BACK_MAX: u64 = 1 << 20;

impl Plan {
    /// Find every file the store holds: small ones by the index alone, larger ones
    /// hashed to be sure.
    fn find_local(&mut self, store: &Store, toc: &Toc) -> Result<(), ChunkedError> {
        let indexed = store.indexed_contents()?;
        for e in &toc.entries {
            let Some(digest) = &e.digest else { continue };
            if self.sources.contains_key(digest) || !indexed.contains(&digest.to_string()) {
                continue;
            }
            for (blob, source) in store.file_sources(digest)? {
                if source.size != e.size {
                    continue;
                }
                if e.size <= HELD_BACK_MAX {
                    self.sources.insert(digest.clone(), Source::Unchecked(blob, source));
                    break;
                }
                if local_matches(store, &blob, &source) {
                    self.sources.insert(digest.clone(), Source::Local(blob, source));
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Fetch one file's chunks (checked) into memory: for a stored copy that did not verify.
pub(super) fn fetch_file(
    remote: &RemoteBlob<'_>,
    codec: Codec,
    entry: &Entry,
    tmp: &std::path::Path,
) -> Result<Vec<u8>, ChunkedError> {
    let assemble = |source| ChunkedError::Assemble { layer: remote.digest.clone(), source };
    let mut spool = tempfile::Builder::new().prefix("refetch-").tempfile_in(tmp).map_err(assemble)?;
    fetch_file_into(remote, codec, entry, spool.as_file(), 0)?;
    let mut bytes = Vec::with_capacity(entry.size as usize);
    spool.as_file_mut().read_to_end(&mut bytes).map_err(assemble)?;
    Ok(bytes)
}

/// Open stored content as a stream of its `size` bytes.
pub(super) fn open_local(store: &Store, blob: &Digest, source: &FileSource) -> std::io::Result<Box<dyn Read>> {
    let mut file = store.blobs().open_blob(blob).map_err(std::io::Error::other)?;
    file.seek(SeekFrom::Start(source.offset))?;
    let reader = BufReader::new(file);
    Ok(match source.encoding {
        ContentEncoding::Raw => Box::new(reader.take(source.size)),
        ContentEncoding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader).take(source.size)),
        ContentEncoding::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?.take(source.size)),
    })
}

fn local_matches(store: &Store, blob: &Digest, source: &FileSource) -> bool {
    let check = || -> std::io::Result<bool> {
        let mut hasher = HashingSink { hasher: Hasher::new(source.content.algorithm()), len: 0 };
        std::io::copy(&mut open_local(store, blob, source)?, &mut hasher)?;
        Ok(hasher.len == source.size && hasher.hasher.finish() == source.content)
    };
    check().unwrap_or(false)
}

pub(super) struct HashingSink {
    pub(super) hasher: Hasher,
    pub(super) len: u64,
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Range requests in flight at once: latency, not bandwidth, bounds a pull of many small
/// scattered files.
const PARALLEL_RANGES: usize = 8;
/// A run of adjacent members is split (between files) above this many bytes, so a cold
/// pull of a whole layer is fetched in parallel too (a lazy pull's runs are smaller).
const MAX_RUN_BYTES: u64 = 8 << 20;

/// A file to fetch: its entry and where its content goes in the spool.
struct Wanted<'t> {
    entry: &'t Entry,
    spool_offset: u64,
}

/// Adjacent members fetched with one request: whole files only (a file's chunks are
/// adjacent, so one worker sees all of them and checks the file's digest).
struct Run<'t> {
    start: u64,
    end: u64,
    files: Vec<&'t Wanted<'t>>,
}

/// Fetch the chunks of every file the plan has no source for, in runs of adjacent
/// members (one `Range` request each, [`PARALLEL_RANGES`] at once), checking each chunk
/// and each file; the contents go to their `slots` in `spool`, and `watch` sees each run
/// before it is requested and once its contents are checked there. Returns the bytes
/// received.
fn fetch_missing(
    remote: &RemoteBlob<'_>,
    codec: Codec,
    toc: &Toc,
    plan: &mut Plan,
    slots: &HashMap<Digest, u64>,
    spool: &File,
    watch: &dyn Watch,
) -> Result<u64, ChunkedError> {
    // The files to fetch, first occurrence of each content only.
    let mut wanted: Vec<Wanted<'_>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in &toc.entries {
        if let Some(d) = &e.digest
            && !plan.sources.contains_key(d)
            && seen.insert(d.clone())
        {
            wanted.push(Wanted { entry: e, spool_offset: slots[d] });
        }
    }
    let mut runs: Vec<Run<'_>> = Vec::new();
    for w in &wanted {
        let (first, last) = (&w.entry.chunks[0], w.entry.chunks.last().expect("files with content have chunks"));
        match runs.last_mut() {
            Some(run) if run.end == first.start && run.end - run.start < watch.max_run_bytes() => {
                run.end = last.end;
                run.files.push(w);
            }
            _ => runs.push(Run { start: first.start, end: last.end, files: vec![w] }),
        }
    }
    let fetched = std::sync::atomic::AtomicU64::new(0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: std::sync::Mutex<Option<ChunkedError>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_RANGES.min(runs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(run) = runs.get(i) else { break };
                    if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        break;
                    }
                    watch.before_run();
                    match fetch_run_retrying(remote, codec, run, spool) {
                        Ok(n) => {
                            fetched.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                            let digests: Vec<&Digest> =
                                run.files.iter().filter_map(|w| w.entry.digest.as_ref()).collect();
                            watch.done(&digests);
                        }
                        Err(e) => {
                            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    for w in &wanted {
        let digest = w.entry.digest.clone().expect("wanted files have a digest");
        plan.sources.insert(digest, Source::Spool(w.spool_offset));
        plan.fetched_files += 1;
    }
    Ok(fetched.into_inner())
}

/// Fetch one file's chunks into its place in `spool`, checked: a read of a lazily
/// pulled layer that cannot wait for the background stream.
pub(super) fn fetch_file_into(
    remote: &RemoteBlob<'_>,
    codec: Codec,
    entry: &Entry,
    spool: &File,
    spool_offset: u64,
) -> Result<u64, ChunkedError> {
    let wanted = Wanted { entry, spool_offset };
    let (first, last) = (&entry.chunks[0], entry.chunks.last().expect("files with content have chunks"));
    let run = Run { start: first.start, end: last.end, files: vec![&wanted] };
    fetch_run_retrying(remote, codec, &run, spool)
}

/// Attempts at a run whose transfer broke off (its spool writes are idempotent).
const RUN_ATTEMPTS: u32 = 3;

/// [`fetch_run`], again when the transfer broke off; wrong bytes are never retried.
fn fetch_run_retrying(remote: &RemoteBlob<'_>, codec: Codec, run: &Run<'_>, spool: &File) -> Result<u64, ChunkedError> {
    let mut attempt = 1;
    loop {
        match fetch_run(remote, codec, run, spool) {
            Err(ChunkedError::Range { layer, start, end, source }) if attempt < RUN_ATTEMPTS => {
                tracing::info!(%layer, start, end, attempt, "range transfer failed ({source}); fetching it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Fetch one run, checking every chunk and file, writing contents at their spool offsets.
fn fetch_run(remote: &RemoteBlob<'_>, codec: Codec, run: &Run<'_>, spool: &File) -> Result<u64, ChunkedError> {
    use std::os::unix::fs::FileExt as _;
    let layer = remote.digest;
    let body_err = |source| ChunkedError::Range {
        layer: layer.clone(),
        start: run.start,
        end: run.end,
        source: crate::transport::TransportError::Body { url: remote.url.into(), source },
    };
    let mut body = open_range(remote, run.start, run.end)?.ok_or_else(|| ChunkedError::RangesUnsupported {
        layer: layer.clone(),
        url: remote.url.into(),
        status: 200,
    })?;
    let mut member = Vec::new();
    for w in &run.files {
        let entry = w.entry;
        let mut file_hasher = Hasher::new(Algorithm::Sha256);
        for chunk in &entry.chunks {
            member.resize((chunk.end - chunk.start) as usize, 0);
            body.read_exact(&mut member).map_err(body_err)?;
            // Bounded by the TOC's limits (toc::MAX_CHUNK_BYTES), as `member` is.
            let mut content = Vec::with_capacity(chunk.len as usize);
            codec.decoder(member.as_slice()).and_then(|d| d.take(chunk.len).read_to_end(&mut content)).map_err(
                |source| ChunkedError::ChunkUnreadable {
                    layer: layer.clone(),
                    name: entry.name.clone(),
                    offset: chunk.start,
                    source,
                },
            )?;
            let actual = Digest::of_bytes(chunk.digest.algorithm(), &content);
            if content.len() as u64 != chunk.len || actual != chunk.digest {
                return Err(ChunkedError::ContentMismatch(Box::new(ContentMismatch {
                    layer: layer.clone(),
                    part: format!("the chunk at byte {}", chunk.start),
                    name: entry.name.clone(),
                    expected: chunk.digest.clone(),
                    actual,
                })));
            }
            file_hasher.update(&content);
            spool
                .write_all_at(&content, w.spool_offset + chunk.file_offset)
                .map_err(|source| ChunkedError::Assemble { layer: layer.clone(), source })?;
        }
        let expected = entry.digest.clone().expect("wanted files have a digest");
        let actual = file_hasher.finish();
        if actual != expected {
            return Err(ChunkedError::ContentMismatch(Box::new(ContentMismatch {
                layer: layer.clone(),
                part: "the content".into(),
                name: entry.name.clone(),
                expected,
                actual,
            })));
        }
    }
    Ok(run.end - run.start)
}
