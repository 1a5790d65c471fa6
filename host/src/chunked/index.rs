//! The file index of chunked layers stored whole: where their files' contents are.

use super::format::{Codec, Format};
use super::partial::{read_toc, toc_range_end};
use super::{ChunkedError, footer};
use crate::store::{ContentEncoding, Digest, FileSource, Store};

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
    if let Some(why) = parsed.unsupported {
        tracing::info!(%layer, "not indexing its files: {why}");
        return Ok(0);
    }
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
