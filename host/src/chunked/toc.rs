//! The eStargz table of contents (`stargz.index.json`): untrusted JSON, checked here into
//! a [`Toc`] whose every chunk has a compressed byte range inside the blob and a digest.
//!
//! The JSON is the one `estargz.JTOC` writes: `{"version": 1, "entries": [...]}`, one
//! entry per tar entry in tar order, plus `"chunk"` entries continuing a regular file
//! that was split. A regular file's entry (and each chunk) carries `offset`, where its
//! gzip member starts in the blob; the member ends where the next offset begins (or at
//! the TOC). `digest` is the whole file's sha256, `chunkDigest` the chunk's.

use std::io::Read;

use base64::Engine as _;
use serde::Deserialize;

use crate::store::{Algorithm, Digest};

/// The tar entry the TOC is stored as, at the end of the layer.
pub const TOC_TAR_NAME: &str = "stargz.index.json";
/// Largest TOC read (uncompressed); ~20k files take about 5 MiB.
pub const MAX_TOC_BYTES: u64 = 64 << 20;
/// Most entries a TOC may hold.
const MAX_ENTRIES: usize = 4 << 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonToc {
    version: u32,
    entries: Vec<JsonEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct JsonEntry {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    size: u64,
    modtime: Option<String>,
    link_name: String,
    mode: u32,
    uid: u64,
    gid: u64,
    user_name: String,
    group_name: String,
    offset: u64,
    dev_major: u32,
    dev_minor: u32,
    xattrs: std::collections::BTreeMap<String, String>,
    digest: Option<String>,
    chunk_offset: u64,
    chunk_size: u64,
    chunk_digest: Option<String>,
    inner_offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Reg,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// One tar entry as the TOC describes it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// Seconds since the epoch (the TOC keeps no finer time).
    pub mtime: i64,
    pub link_name: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub user_name: String,
    pub group_name: String,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// The content's digest (regular files with content).
    pub digest: Option<Digest>,
    /// The content's chunks, in order (regular files with content).
    pub chunks: Vec<Chunk>,
}

/// A piece of a regular file: its own gzip member in the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Where its gzip member starts in the blob, and where the next one starts.
    pub start: u64,
    pub end: u64,
    /// Where it sits in the file, and how long it is (uncompressed).
    pub file_offset: u64,
    pub len: u64,
    pub digest: Digest,
}

/// A checked table of contents.
#[derive(Debug, Clone)]
pub struct Toc {
    pub entries: Vec<Entry>,
    /// Why berth cannot read this (valid) layer in parts, if it cannot: several files
    /// in one compressed member (`innerOffset`), or chunks over berth's size limits. The
    /// layer is then fetched whole; `entries` may be incomplete.
    pub unsupported: Option<String>,
}

/// Largest compressed member of one chunk berth fetches and holds in memory (eStargz
/// writes chunks of 4 MiB by default).
pub const MAX_MEMBER_BYTES: u64 = 32 << 20;
/// Largest uncompressed chunk.
pub const MAX_CHUNK_BYTES: u64 = 64 << 20;

impl Toc {
    /// Every chunk of every file, in blob order.
    pub fn chunks(&self) -> impl Iterator<Item = (&Entry, &Chunk)> {
        self.entries.iter().flat_map(|e| e.chunks.iter().map(move |c| (e, c)))
    }
}

/// Read the TOC's tar entry out of the gzip member(s) between the TOC offset and the
/// footer, returning the JSON bytes (at most [`MAX_TOC_BYTES`]).
pub fn extract(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    let mut archive = tar::Archive::new(decoder);
    let mut entries = archive.entries()?;
    let mut entry = entries.next().ok_or_else(|| std::io::Error::other("no tar entry where the TOC should be"))??;
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    if name != TOC_TAR_NAME {
        return Err(std::io::Error::other(format!("the entry at the TOC offset is {name:?}, not {TOC_TAR_NAME}")));
    }
    if entry.size() > MAX_TOC_BYTES {
        return Err(std::io::Error::other(format!("the TOC is over the {MAX_TOC_BYTES}-byte limit")));
    }
    let mut json = Vec::with_capacity(entry.size() as usize);
    (&mut entry).take(MAX_TOC_BYTES).read_to_end(&mut json)?;
    Ok(json)
}

/// Parse and check a TOC of a blob whose TOC starts at `toc_offset`. Every regular
/// file's chunks must tile its content, lie in increasing order before the TOC, and
/// carry digests; what berth cannot read (several files in one gzip member) is refused.
pub fn parse(json: &[u8], toc_offset: u64) -> Result<Toc, String> {
    let raw: JsonToc = serde_json::from_slice(json).map_err(|e| format!("not the TOC's JSON: {e}"))?;
    if raw.version != 1 {
        return Err(format!("version {} (berth reads version 1)", raw.version));
    }
    if raw.entries.len() > MAX_ENTRIES {
        return Err(format!("{} entries, over the limit of {MAX_ENTRIES}", raw.entries.len()));
    }
    let mut entries: Vec<Entry> = Vec::new();
    // Offsets of every chunk, to find where each one's member ends.
    let mut last_start: Option<u64> = None;
    for e in raw.entries {
        if e.name.is_empty() || e.name.contains('\0') {
            return Err(format!("an entry has the name {:?}", e.name));
        }
        if e.inner_offset != 0 {
            let reason = format!("{:?} shares a compressed member with other files (innerOffset)", e.name);
            return Ok(Toc { entries, unsupported: Some(reason) });
        }
        let kind = match e.kind.as_str() {
            "dir" => Kind::Dir,
            "reg" => Kind::Reg,
            "symlink" => Kind::Symlink,
            "hardlink" => Kind::Hardlink,
            "char" => Kind::Char,
            "block" => Kind::Block,
            "fifo" => Kind::Fifo,
            "chunk" => {
                let file = entries
                    .last_mut()
                    .filter(|f| f.kind == Kind::Reg && f.name == e.name && !f.chunks.is_empty())
                    .ok_or_else(|| format!("chunk of {:?} does not follow its file", e.name))?;
                let previous = file.chunks.last().expect("checked non-empty");
                if e.chunk_offset != previous.file_offset + previous.len {
                    return Err(format!("chunks of {:?} do not tile the file", e.name));
                }
                let chunk = chunk_of(&e, file.size)?;
                check_order(&mut last_start, chunk.start, &e.name)?;
                file.chunks.push(chunk);
                continue;
            }
            other => return Err(format!("{:?} has the unknown type {other:?}", e.name)),
        };
        let mut xattrs = Vec::new();
        for (k, v) in &e.xattrs {
            let value = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|err| format!("{:?}: xattr {k:?} is not base64: {err}", e.name))?;
            xattrs.push((k.clone(), value));
        }
        let mtime = match &e.modtime {
            Some(t) => parse_rfc3339(t).ok_or_else(|| format!("{:?}: modtime {t:?} is not RFC 3339", e.name))?,
            None => 0,
        };
        let mut entry = Entry {
            name: e.name.clone(),
            kind,
            size: if kind == Kind::Reg { e.size } else { 0 },
            mtime,
            link_name: e.link_name.clone(),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            user_name: e.user_name.clone(),
            group_name: e.group_name.clone(),
            dev_major: e.dev_major,
            dev_minor: e.dev_minor,
            xattrs,
            digest: None,
            chunks: Vec::new(),
        };
        if kind == Kind::Reg && e.size > 0 {
            entry.digest = Some(sha256_field(&e.name, &e.digest, "digest")?);
            if e.chunk_offset != 0 {
                return Err(format!("the first chunk of {:?} starts at {}", e.name, e.chunk_offset));
            }
            let chunk = chunk_of(&e, e.size)?;
            check_order(&mut last_start, chunk.start, &e.name)?;
            entry.chunks.push(chunk);
        }
        entries.push(entry);
    }
    // Each member ends where the next begins; the last one at the TOC.
    let mut next_start = toc_offset;
    for chunk in entries.iter_mut().rev().flat_map(|e| e.chunks.iter_mut().rev()) {
        if chunk.start >= next_start {
            return Err(format!("a chunk at byte {} is not before the next member or the TOC", chunk.start));
        }
        chunk.end = next_start;
        next_start = chunk.start;
    }
    for e in &entries {
        if let Some(last) = e.chunks.last()
            && last.file_offset + last.len != e.size
        {
            return Err(format!("chunks of {:?} do not add up to its size {}", e.name, e.size));
        }
    }
    let oversized = entries
        .iter()
        .flat_map(|e| e.chunks.iter().map(move |c| (e, c)))
        .find(|(_, c)| c.end - c.start > MAX_MEMBER_BYTES || c.len > MAX_CHUNK_BYTES);
    let unsupported = oversized.map(|(e, c)| {
        format!(
            "a chunk of {:?} is {} bytes compressed, {} uncompressed (berth's limits: {MAX_MEMBER_BYTES}, {MAX_CHUNK_BYTES})",
            e.name,
            c.end - c.start,
            c.len
        )
    });
    Ok(Toc { entries, unsupported })
}

/// A sha256 digest field of entry `name`; missing or of another algorithm is an error.
fn sha256_field(name: &str, d: &Option<String>, what: &str) -> Result<Digest, String> {
    let d = d.as_deref().ok_or_else(|| format!("{name:?} has no {what}"))?;
    let parsed: Digest = d.parse().map_err(|e| format!("{name:?}: {what} {d:?}: {e}"))?;
    if parsed.algorithm() != Algorithm::Sha256 {
        return Err(format!("{name:?}: {what} {d:?} is not sha256"));
    }
    Ok(parsed)
}

fn chunk_of(e: &JsonEntry, file_size: u64) -> Result<Chunk, String> {
    if e.chunk_offset >= file_size {
        return Err(format!("a chunk of {:?} starts past its end", e.name));
    }
    let left = file_size - e.chunk_offset;
    // A zero chunkSize means "to the end of the file".
    let len = if e.chunk_size == 0 { left } else { e.chunk_size.min(left) };
    if e.chunk_size > left {
        return Err(format!("a chunk of {:?} runs past its end", e.name));
    }
    Ok(Chunk {
        start: e.offset,
        end: 0,
        file_offset: e.chunk_offset,
        len,
        digest: sha256_field(&e.name, &e.chunk_digest, "chunkDigest")?,
    })
}

fn check_order(last: &mut Option<u64>, start: u64, name: &str) -> Result<(), String> {
    if last.is_some_and(|l| start <= l) {
        return Err(format!("the chunk of {name:?} at byte {start} is out of order"));
    }
    *last = Some(start);
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` as seconds since the epoch (fractions dropped,
/// as a tar header without PAX keeps them).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:2bae7c4611ca71705b3473eced61c42d7239d0cb1ee517e5b43c59d30697e52e";
    const D2: &str = "sha256:33a1ce932c62ac7619cb98c750b9bfe7e4426b4f477a85e711696c7bc5d010e1";

    fn toc(entries: &str) -> String {
        format!(r#"{{"version":1,"entries":[{entries}]}}"#)
    }

    #[test]
    fn files_and_their_chunks_get_member_ranges() {
        let json = toc(&format!(
            r#"{{"name":"d/","type":"dir","mode":493,"modtime":"2026-12-04T02:36:04Z"}},
               {{"name":"d/a","type":"reg","size":10,"offset":100,"digest":"{D1}","chunkSize":4,"chunkDigest":"{D1}"}},
               {{"name":"d/a","type":"chunk","offset":150,"chunkOffset":4,"chunkDigest":"{D2}"}},
               {{"name":"d/l","type":"symlink","linkName":"a"}},
               {{"name":"d/b","type":"reg","size":3,"offset":300,"digest":"{D2}","chunkDigest":"{D2}"}}"#
        ));
        let t = parse(json.as_bytes(), 400).unwrap();
        let ranges: Vec<(u64, u64, u64, u64)> =
            t.chunks().map(|(_, c)| (c.start, c.end, c.file_offset, c.len)).collect();
        assert_eq!(ranges, [(100, 150, 0, 4), (150, 300, 4, 6), (300, 400, 0, 3)]);
        assert_eq!(t.entries.len(), 4);
        assert_eq!(t.entries[0].mtime, 1796351764);
        assert_eq!(t.entries[2].link_name, "a");
    }

    #[test]
    fn hostile_tocs_are_refused_with_a_reason() {
        let cases = [
            (
                toc(&format!(
                    r#"{{"name":"a","type":"reg","size":3,"offset":500,"digest":"{D1}","chunkDigest":"{D1}"}}"#
                )),
                "not before",
            ),
            (toc(&format!(r#"{{"name":"a","type":"reg","size":3,"offset":5,"chunkDigest":"{D1}"}}"#)), "no digest"),
            (toc(&format!(r#"{{"name":"a","type":"reg","size":3,"offset":5,"digest":"{D1}"}}"#)), "no chunkDigest"),
            (toc(&format!(r#"{{"name":"a","type":"chunk","offset":5,"chunkDigest":"{D1}"}}"#)), "does not follow"),
            (toc(r#"{"name":"a","type":"socket"}"#), "unknown type"),
            (
                toc(&format!(
                    r#"{{"name":"a","type":"reg","size":3,"offset":50,"digest":"{D1}","chunkDigest":"{D1}"}},
                   {{"name":"b","type":"reg","size":3,"offset":20,"digest":"{D1}","chunkDigest":"{D1}"}}"#
                )),
                "out of order",
            ),
            (
                toc(&format!(
                    r#"{{"name":"a","type":"reg","size":10,"offset":5,"digest":"{D1}","chunkSize":4,"chunkDigest":"{D1}"}}"#
                )),
                "add up",
            ),
            (r#"{"version":2,"entries":[]}"#.to_string(), "version 2"),
            ("[]".to_string(), "JSON"),
        ];
        for (json, reason) in cases {
            let err = parse(json.as_bytes(), 400).unwrap_err();
            assert!(err.contains(reason), "{json}: {err}");
        }
    }

    #[test]
    fn shared_members_and_huge_chunks_are_unsupported_not_invalid() {
        let shared = toc(&format!(
            r#"{{"name":"a","type":"reg","size":3,"offset":5,"digest":"{D1}","chunkDigest":"{D1}","innerOffset":7}}"#
        ));
        let t = parse(shared.as_bytes(), 400).unwrap();
        assert!(t.unsupported.unwrap().contains("innerOffset"));
        let huge =
            toc(&format!(r#"{{"name":"a","type":"reg","size":3,"offset":5,"digest":"{D1}","chunkDigest":"{D1}"}}"#));
        let t = parse(huge.as_bytes(), 5 + MAX_MEMBER_BYTES + 1).unwrap();
        assert!(t.unsupported.unwrap().contains("compressed"));
        assert!(parse(huge.as_bytes(), 400).unwrap().unsupported.is_none());
    }

    #[test]
    fn rfc3339_times_parse_to_epoch_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-12-04T02:36:04Z"), Some(1796351764));
        assert_eq!(parse_rfc3339("2026-12-04T03:36:04.123+01:00"), Some(1796351764));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(parse_rfc3339("2026-13-04T02:36:04Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
