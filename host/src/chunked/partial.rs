//! Partial pull of a chunked layer (eStargz, zstd:chunked): the table of contents by
//! HTTP `Range` (through eStargz's footer, or zstd:chunked's annotation), then only the chunks of files whose content the store does not already
//! hold, each checked against its `chunkDigest` and every file against its `digest`.
//! The layer is then stored as a tar berth assembles from the TOC (headers) and the
//! contents (fetched or local), plus the TOC itself; see [`crate::store::Assembled`].
//! Nothing reaches the store before every byte was checked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use super::error::ContentMismatch;
use super::format::{Codec, Format};
use super::toc::{self, Entry, Kind, Toc};
use super::{ChunkedError, footer};
use crate::store::{
    ASSEMBLED_MEDIA_TYPE, Algorithm, Assembled, BlobWriter, ContentEncoding, Descriptor, Digest, Expected, FileSource,
    Hasher, Store, TOC_MEDIA_TYPE,
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
    let layer = remote.digest;
    let mut fetched = 0u64;
    let (compressed_toc, chunks_end) =
        match format {
            Format::Estargz { .. } => {
                if remote.size < footer::FOOTER_SIZE {
                    return Ok(Attempt::NotPossible(format!("{} bytes is too short for eStargz", remote.size)));
                }
                let Some(tail) = range(remote, remote.size - footer::FOOTER_SIZE, remote.size)? else {
                    return Ok(Attempt::NotPossible(format!("{} does not serve byte ranges", remote.url)));
                };
                fetched += tail.len() as u64;
                let Some((toc_offset, footer_len)) = footer::parse(&tail) else {
                    return Ok(Attempt::NotPossible("no eStargz footer".into()));
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
                    return Ok(Attempt::NotPossible(format!("{} does not serve byte ranges", remote.url)));
                };
                (compressed, format.chunks_end(0))
            }
        };
    fetched += compressed_toc.len() as u64;
    let (json, parsed) = read_toc(layer, format, &compressed_toc, chunks_end)?;
    let toc_digest = Digest::of_bytes(Algorithm::Sha256, &json);
    let codec = format.codec();

    let tmp = store.root().join("tmp");
    let assemble_err = |source| ChunkedError::Assemble { layer: layer.clone(), source };
    let mut plan = Plan::default();
    plan.find_local(store, &parsed)?;
    let mut spool = tempfile::Builder::new().prefix("partial-").tempfile_in(&tmp).map_err(assemble_err)?;
    fetched += fetch_missing(remote, codec, &parsed, &mut plan, spool.as_file_mut())?;
    plan.reused_files = parsed
        .entries
        .iter()
        .filter(|e| e.digest.as_ref().is_some_and(|d| matches!(plan.sources.get(d), Some(Source::Local(..)))))
        .count() as u64;

    // eStargz keeps its TOC in the tar (a full pull renders it); zstd:chunked does not.
    let toc_entry = matches!(format, Format::Estargz { .. }).then_some(json.as_slice());
    // Written straight into the store's `tmp/`, hashed as written, named when complete.
    let mut tar_blob = store.blobs().writer(Algorithm::Sha256)?;
    let contents =
        write_tar(store, &parsed, toc_entry, &plan, spool.as_file_mut(), &mut tar_blob).map_err(|e| match e {
            AssembleError::Io(source) => ChunkedError::Assemble { layer: layer.clone(), source },
            AssembleError::Chunked(e) => e,
        })?;
    let (tar_digest, tar_size, _) = tar_blob.commit()?;
    let toc_expect = Expected { digest: toc_digest.clone(), size: json.len() as u64 };
    store.blobs().ingest(&mut json.as_slice(), &toc_expect, &format!("the TOC of layer {layer}"), &mut |_| {})?;
    let files: Vec<FileSource> = contents
        .into_iter()
        .map(|(content, offset, size)| FileSource { content, offset, size, encoding: ContentEncoding::Raw })
        .collect();
    store.index_files(&tar_digest, &files)?;
    Ok(Attempt::Done(PartialPull {
        assembled: Assembled {
            toc: descriptor(TOC_MEDIA_TYPE, toc_digest, json.len() as u64),
            tar: descriptor(ASSEMBLED_MEDIA_TYPE, tar_digest, tar_size),
        },
        bytes_fetched: fetched,
        files_fetched: plan.fetched_files,
        files_reused: plan.reused_files,
    }))
}

/// Check that the TOC's compressed bytes `start..end` lie in a blob of `size` bytes and
/// are not over the limit; returns `end`.
fn toc_range_end(layer: &Digest, start: u64, end: u64, size: u64) -> Result<u64, ChunkedError> {
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
#[derive(Default)]
struct Plan {
    /// By content digest: a stored blob, or bytes in the spool.
    sources: HashMap<Digest, Source>,
    fetched_files: u64,
    reused_files: u64,
}

#[derive(Clone)]
enum Source {
    Local(Digest, FileSource),
    Spool(u64),
}

impl Plan {
    /// Find every file the store holds, hashing the stored content to be sure.
    fn find_local(&mut self, store: &Store, toc: &Toc) -> Result<(), ChunkedError> {
        for e in &toc.entries {
            let Some(digest) = &e.digest else { continue };
            if self.sources.contains_key(digest) {
                continue;
            }
            for (blob, source) in store.file_sources(digest)? {
                if source.size == e.size && local_matches(store, &blob, &source) {
                    self.sources.insert(digest.clone(), Source::Local(blob, source));
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Open stored content as a stream of its `size` bytes.
fn open_local(store: &Store, blob: &Digest, source: &FileSource) -> std::io::Result<Box<dyn Read>> {
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

struct HashingSink {
    hasher: Hasher,
    len: u64,
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
/// pull of a whole layer is fetched in parallel too.
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
/// and each file; the contents go to `spool`. Returns the bytes received.
fn fetch_missing(
    remote: &RemoteBlob<'_>,
    codec: Codec,
    toc: &Toc,
    plan: &mut Plan,
    spool: &mut File,
) -> Result<u64, ChunkedError> {
    let layer = remote.digest;
    let assemble = |source| ChunkedError::Assemble { layer: layer.clone(), source };
    // The files to fetch, first occurrence of each content only.
    let mut wanted: Vec<Wanted<'_>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut spool_end = spool.stream_position().map_err(assemble)?;
    for e in &toc.entries {
        if let Some(d) = &e.digest
            && !plan.sources.contains_key(d)
            && seen.insert(d.clone())
        {
            wanted.push(Wanted { entry: e, spool_offset: spool_end });
            spool_end += e.size;
        }
    }
    let mut runs: Vec<Run<'_>> = Vec::new();
    for w in &wanted {
        let (first, last) = (&w.entry.chunks[0], w.entry.chunks.last().expect("files with content have chunks"));
        match runs.last_mut() {
            Some(run) if run.end == first.start && run.end - run.start < MAX_RUN_BYTES => {
                run.end = last.end;
                run.files.push(w);
            }
            _ => runs.push(Run { start: first.start, end: last.end, files: vec![w] }),
        }
    }
    let fetched = std::sync::atomic::AtomicU64::new(0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: std::sync::Mutex<Option<ChunkedError>> = std::sync::Mutex::new(None);
    let spool_ref = &*spool;
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_RANGES.min(runs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(run) = runs.get(i) else { break };
                    if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        break;
                    }
                    match fetch_run_retrying(remote, codec, run, spool_ref) {
                        Ok(n) => {
                            fetched.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
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

enum AssembleError {
    Io(std::io::Error),
    Chunked(ChunkedError),
}

impl From<std::io::Error> for AssembleError {
    fn from(e: std::io::Error) -> AssembleError {
        AssembleError::Io(e)
    }
}

/// Write the layer's tar, in TOC order, with `toc_entry` (eStargz's TOC) last as the
/// producer wrote it (`stargz.index.json`, mode 0, time 0), so the tree equals a full
/// pull's. Returns
/// (content digest, offset, size) of each regular file's content in the tar.
fn write_tar(
    store: &Store,
    toc: &Toc,
    toc_entry: Option<&[u8]>,
    plan: &Plan,
    spool: &mut File,
    out: &mut BlobWriter<'_>,
) -> Result<Vec<(Digest, u64, u64)>, AssembleError> {
    let mut contents = Vec::new();
    let mut builder = tar::Builder::new(out);
    for e in &toc.entries {
        let mut header = header_of(e);
        if !e.xattrs.is_empty() {
            let mut records = Vec::new();
            for (k, v) in &e.xattrs {
                pax_record(&mut records, &format!("SCHILY.xattr.{k}"), v);
            }
            let mut pax = tar::Header::new_ustar();
            pax.set_entry_type(tar::EntryType::XHeader);
            pax.set_size(records.len() as u64);
            pax.set_mode(0o644);
            pax.set_uid(0);
            pax.set_gid(0);
            pax.set_mtime(0);
            builder.append_data(&mut pax, "PaxHeaders/entry", records.as_slice())?;
        }
        // Names and link targets go in byte for byte as the TOC has them (the tar
        // crate's path setters refuse some, such as `/`); render resolves them safely.
        set_long_field(&mut builder, tar::EntryType::GNULongName, &mut header, e.name.as_bytes())?;
        if matches!(e.kind, Kind::Symlink | Kind::Hardlink) {
            set_long_field(&mut builder, tar::EntryType::new(b'K'), &mut header, e.link_name.as_bytes())?;
        }
        header.set_cksum();
        match e.kind {
            Kind::Reg if e.size > 0 => {
                let digest = e.digest.as_ref().expect("files with content have a digest");
                let reader: Box<dyn Read> = match plan.sources.get(digest) {
                    Some(Source::Local(blob, source)) => open_local(store, blob, source)?,
                    Some(Source::Spool(offset)) => {
                        spool.seek(SeekFrom::Start(*offset))?;
                        Box::new(BufReader::new(spool.try_clone()?).take(e.size))
                    }
                    None => unreachable!("every file was found or fetched"),
                };
                let mut hashed = crate::render::HashingReader::new(reader, digest.algorithm());
                builder.append(&header, &mut hashed)?;
                // Local content was hashed when chosen; hash it again as it is copied.
                let actual = hashed.finish()?;
                if actual != *digest {
                    return Err(AssembleError::Chunked(ChunkedError::ContentMismatch(Box::new(ContentMismatch {
                        layer: digest.clone(),
                        part: "the stored content".into(),
                        name: e.name.clone(),
                        expected: digest.clone(),
                        actual,
                    }))));
                }
                let end = builder.get_ref().position();
                contents.push((digest.clone(), end - e.size.div_ceil(512) * 512, e.size));
            }
            _ => builder.append(&header, std::io::empty())?,
        }
    }
    if let Some(json) = toc_entry {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(json.len() as u64);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        builder.append_data(&mut header, toc::TOC_TAR_NAME, json)?;
    }
    builder.finish()?;
    Ok(contents)
}

/// Put `value` in the header's name (`GNULongName`) or link-name (`GNULongLink`) field;
/// one that does not fit goes first as a GNU long-name entry, as GNU tar writes it, and
/// the field keeps its first 100 bytes.
fn set_long_field<W: Write>(
    builder: &mut tar::Builder<W>,
    kind: tar::EntryType,
    header: &mut tar::Header,
    value: &[u8],
) -> std::io::Result<()> {
    let old = header.as_old_mut();
    let field: &mut [u8; 100] = if kind == tar::EntryType::GNULongName { &mut old.name } else { &mut old.linkname };
    let n = value.len().min(100);
    field[..n].copy_from_slice(&value[..n]);
    if value.len() <= 100 {
        return Ok(());
    }
    let mut long = tar::Header::new_gnu();
    long.as_gnu_mut().expect("a GNU header").name[..13].copy_from_slice(b"././@LongLink");
    long.set_entry_type(kind);
    long.set_mode(0o644);
    long.set_uid(0);
    long.set_gid(0);
    long.set_mtime(0);
    long.set_size(value.len() as u64 + 1);
    long.set_cksum();
    builder.append(&long, value.iter().copied().chain([0]).collect::<Vec<u8>>().as_slice())
}

fn header_of(e: &Entry) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(match e.kind {
        Kind::Dir => tar::EntryType::Directory,
        Kind::Reg => tar::EntryType::Regular,
        Kind::Symlink => tar::EntryType::Symlink,
        Kind::Hardlink => tar::EntryType::Link,
        Kind::Char => tar::EntryType::Char,
        Kind::Block => tar::EntryType::Block,
        Kind::Fifo => tar::EntryType::Fifo,
    });
    h.set_size(e.size);
    h.set_mode(e.mode);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime.max(0) as u64);
    // Names too long for the field are dropped, as numeric ids decide ownership anyway.
    let _ = h.set_username(&e.user_name);
    let _ = h.set_groupname(&e.group_name);
    if matches!(e.kind, Kind::Char | Kind::Block) {
        let _ = h.set_device_major(e.dev_major);
        let _ = h.set_device_minor(e.dev_minor);
    }
    h
}

/// One PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Index the files of a chunked layer stored whole, from its own TOC (checked against
/// the manifest's annotations), so later partial pulls take their contents from it.
pub fn index_stored_layer(store: &Store, layer: &Digest, format: &Format) -> Result<usize, ChunkedError> {
    let size = store.blobs().size(layer)?;
    let (start, end, chunks_end) = match format {
        Format::Estargz { .. } => {
            if size < footer::FOOTER_SIZE {
                return Err(ChunkedError::NoFooter { layer: layer.clone() });
            }
            let tail = store.blobs().read_at(layer, size - footer::FOOTER_SIZE, footer::FOOTER_SIZE as usize)?;
            let (toc_offset, footer_len) =
                footer::parse(&tail).ok_or_else(|| ChunkedError::NoFooter { layer: layer.clone() })?;
            (toc_offset, toc_range_end(layer, toc_offset, size - footer_len, size)?, toc_offset)
        }
        Format::ZstdChunked { offset, length, .. } => {
            (*offset, toc_range_end(layer, *offset, offset.saturating_add(*length), size)?, format.chunks_end(0))
        }
    };
    let compressed = store.blobs().read_at(layer, start, (end - start) as usize)?;
    let (_, parsed) = read_toc(layer, format, &compressed, chunks_end)?;
    let encoding = match format.codec() {
        Codec::Gzip => ContentEncoding::Gzip,
        Codec::Zstd => ContentEncoding::Zstd,
    };
    let files: Vec<FileSource> = parsed
        .entries
        .iter()
        .filter_map(|e| {
            let digest = e.digest.clone()?;
            Some(FileSource { content: digest, offset: e.chunks.first()?.start, size: e.size, encoding })
        })
        .collect();
    store.index_files(layer, &files)?;
    Ok(files.len())
}

/// Check a partially pulled layer: the stored TOC parses, and the assembled tar holds
/// exactly the TOC's regular files with the TOC's digests. `Err` names the first
/// disagreement.
pub fn check_assembled(store: &Store, assembled: &Assembled) -> Result<(), String> {
    let json = store
        .blobs()
        .read_at(&assembled.toc.digest, 0, assembled.toc.size as usize)
        .map_err(|e| format!("reading its TOC: {e}"))?;
    let parsed = toc::parse(&json, u64::MAX).map_err(|e| format!("its TOC: {e}"))?;
    let mut expected: HashMap<String, Digest> = HashMap::new();
    for e in &parsed.entries {
        if let Some(d) = &e.digest {
            expected.insert(normalize(&e.name), d.clone());
        }
    }
    let file = store.blobs().open_blob(&assembled.tar.digest).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let entries = archive.entries().map_err(|e| format!("reading the assembled tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading the assembled tar: {e}"))?;
        let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        if entry.header().entry_type() != tar::EntryType::Regular || entry.size() == 0 {
            continue;
        }
        if name == toc::TOC_TAR_NAME {
            continue;
        }
        let want = expected.remove(&name).ok_or_else(|| format!("{name:?} is in the tar but not in the TOC"))?;
        let mut sink = HashingSink { hasher: Hasher::new(want.algorithm()), len: 0 };
        std::io::copy(&mut entry, &mut sink).map_err(|e| format!("reading {name:?}: {e}"))?;
        let actual = sink.hasher.finish();
        if actual != want {
            return Err(format!("{name:?} hashes to {actual}, the TOC says {want}"));
        }
    }
    match expected.into_keys().next() {
        Some(name) => Err(format!("{name:?} is in the TOC but not in the tar")),
        None => Ok(()),
    }
}

fn normalize(name: &str) -> String {
    name.trim_start_matches("./").trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        let mut out = Vec::new();
        pax_record(&mut out, "SCHILY.xattr.user.a", b"1");
        assert_eq!(out, b"25 SCHILY.xattr.user.a=1\n");
        assert_eq!(out.len(), 25);
        let mut long = Vec::new();
        pax_record(&mut long, "k", &[b'v'; 95]);
        assert_eq!(long.len(), 102);
        assert!(long.starts_with(b"102 k="));
    }
}
