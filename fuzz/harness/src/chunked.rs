//! The eStargz reader (`host/src/chunked`): footer, the TOC's tar entry, and the TOC.

use berth::chunked::{footer, toc};

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
    let Ok(parsed) = toc::parse(rest, toc_offset) else { return };
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
