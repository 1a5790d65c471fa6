//! Blobs through the host: ingest from a source, read back what was stored.

use berth_image_spec::{Descriptor, MAX_DOCUMENT_SIZE};

use crate::Error;
use crate::berth::handler::store::{self, ChunkedRequest, IngestRequest, Source};

/// Host reads are capped per call; ask for chunks no larger than this.
const CHUNK: u64 = 1 << 20;

/// Ask the host to ingest every (descriptor, source) at once, so it can run them
/// concurrently; the first failure is returned.
pub fn ingest_all(items: Vec<(&Descriptor, Source)>) -> Result<(), Error> {
    let requests: Vec<IngestRequest> = items
        .into_iter()
        .map(|(d, source)| IngestRequest {
            source,
            digest: d.digest.clone(),
            size: d.size,
            media_type: d.media_type.clone(),
        })
        .collect();
    store::ingest(&requests).into_iter().collect()
}

/// Layer annotations that announce a table of contents: eStargz's TOC digest, and
/// zstd:chunked's TOC position. The host reads them; the handler only routes.
pub const CHUNKED_ANNOTATIONS: [&str; 2] =
    ["containerd.io/snapshot/stargz/toc.digest", "io.containers.zstd-chunked.manifest-position"];

/// Ingest layers: those the manifest announces as chunked (eStargz, zstd:chunked) through
/// `ingest-chunked`, so the host may pull them partially; the rest as [`ingest_all`].
/// The first failure is returned.
pub fn ingest_layers(items: Vec<(&Descriptor, Source)>) -> Result<(), Error> {
    let mut chunked = Vec::new();
    let mut whole = Vec::new();
    for (d, source) in items {
        if CHUNKED_ANNOTATIONS.iter().any(|a| d.annotations.contains_key(*a)) {
            chunked.push(ChunkedRequest {
                layer: IngestRequest {
                    source,
                    digest: d.digest.clone(),
                    size: d.size,
                    media_type: d.media_type.clone(),
                },
                annotations: d.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
        } else {
            whole.push((d, source));
        }
    }
    if !chunked.is_empty() {
        store::ingest_chunked(&chunked).into_iter().collect::<Result<(), Error>>()?;
    }
    ingest_all(whole)
}

/// Read a stored document (index, manifest, config), refusing oversized ones.
pub fn read_document(desc: &Descriptor) -> Result<Vec<u8>, Error> {
    if desc.size > MAX_DOCUMENT_SIZE {
        return Err(Error::InvalidInput(format!(
            "{} of {} bytes is over the {MAX_DOCUMENT_SIZE}-byte document limit",
            desc.digest, desc.size
        )));
    }
    let mut out = Vec::with_capacity(desc.size as usize);
    while (out.len() as u64) < desc.size {
        let want = (desc.size - out.len() as u64).min(CHUNK) as u32;
        let chunk = store::read(&desc.digest, out.len() as u64, want)?;
        if chunk.is_empty() {
            return Err(Error::Io(format!("stored blob {} ended early", desc.digest)));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
