//! The chunked-layer reader (`host/src/chunked`): eStargz's footer and TOC tar entry,
//! zstd:chunked's annotations and compressed TOC, and the TOC.

use std::io::Read as _;

use berth::chunked::{Codec, Format, footer, toc};

/// The input's first 8 bytes are the TOC offset (little-endian); the rest is read as a
/// footer (its tail), as the gzip member holding the TOC, and as the TOC's JSON. A TOC
/// that parses must describe chunks in blob order, each ending before the next and the
/// last before the TOC, that tile their file exactly.
pub fn estargz_toc(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let toc_offset = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let rest = &data[8..];
    let _ = footer::parse(rest);
    let _ = toc::extract(rest);
    if let Ok(mut decoder) = Codec::Zstd.decoder(rest) {
        let _ = (&mut decoder).take(toc::MAX_TOC_BYTES).read_to_end(&mut Vec::new());
    }
    // As annotations: `key=value` lines (zstd:chunked's position, the TOC digest).
    if let Ok(text) = std::str::from_utf8(rest) {
        let pairs: Vec<(String, String)> =
            text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for media_type in ["application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar+gzip"]
        {
            if let Ok(Some(format)) = Format::of(media_type, &pairs) {
                let _ = (format.codec(), format.toc_digest(), format.chunks_end(toc_offset), format.name());
            }
        }
    }
    let Ok(parsed) = toc::parse(rest, toc_offset) else { return };
    if parsed.unsupported.is_some() {
        // Parsing stopped early (a shared member): berth fetches such layers whole.
        return;
    }
    let mut previous_end = 0;
    for (entry, chunk) in parsed.chunks() {
        assert!(chunk.start >= previous_end && chunk.start < chunk.end, "chunk ranges overlap or are empty");
        assert!(chunk.end <= toc_offset, "a chunk runs into the TOC");
        assert!(chunk.file_offset + chunk.len <= entry.size, "a chunk runs past its file");
        previous_end = chunk.end;
    }
    for entry in &parsed.entries {
        let covered: u64 = entry.chunks.iter().map(|c| c.len).sum();
        assert_eq!(
            covered,
            if entry.chunks.is_empty() { 0 } else { entry.size },
            "chunks do not tile {:?}",
            entry.name
        );
    }
}
