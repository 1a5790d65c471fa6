//! The tar of a partially pulled layer, written from its TOC and the checked contents,
//! and `fsck`'s check of it against the TOC.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use super::ChunkedError;
use super::error::ContentMismatch;
use super::partial::{HashingSink, Plan, Source, open_local};
use super::toc::{self, Entry, Kind, Toc};
use crate::store::{Assembled, BlobWriter, Digest, FileSource, Hasher, Store};

pub(super) enum AssembleError {
    Io(std::io::Error),
    Chunked(ChunkedError),
}

impl From<std::io::Error> for AssembleError {
    fn from(e: std::io::Error) -> AssembleError {
        AssembleError::Io(e)
    }
}

/// What [`write_tar`] wrote.
pub(super) struct Written {
    /// (content digest, offset, size) of each regular file's content in the tar.
    pub(super) contents: Vec<(Digest, u64, u64)>,
    /// Contents whose stored copy did not verify, fetched instead (with their bytes).
    pub(super) refetched: HashMap<Digest, Vec<u8>>,
}

/// The content of a small stored file, hashed in memory; fetched (once per content)
/// when the stored copy is unreadable or does not match.
fn checked_or_fetched(
    store: &Store,
    entry: &Entry,
    blob: &Digest,
    source: &FileSource,
    refetch: &Refetch<'_>,
    refetched: &mut HashMap<Digest, Vec<u8>>,
) -> Result<Vec<u8>, AssembleError> {
    let digest = entry.digest.as_ref().expect("files with content have a digest");
    if let Some(bytes) = refetched.get(digest) {
        return Ok(bytes.clone());
    }
    let mut bytes = Vec::with_capacity(entry.size as usize);
    let read = open_local(store, blob, source).and_then(|mut r| r.read_to_end(&mut bytes));
    if read.is_ok() && bytes.len() as u64 == entry.size && Digest::of_bytes(digest.algorithm(), &bytes) == *digest {
        return Ok(bytes);
    }
    tracing::warn!(%blob, name = %entry.name, "the stored copy of {digest} does not verify; fetching it");
    let fetched = refetch(entry).map_err(AssembleError::Chunked)?;
    refetched.insert(digest.clone(), fetched.clone());
    Ok(fetched)
}

/// Fetches one file's checked content (for a stored copy that did not verify).
pub(super) type Refetch<'a> = dyn Fn(&Entry) -> Result<Vec<u8>, ChunkedError> + 'a;

/// Write the layer's tar, in TOC order, with `toc_entry` (eStargz's TOC) last as the
/// producer wrote it (`stargz.index.json`, mode 0, time 0), so the tree equals a full
/// pull's.
pub(super) fn write_tar(
    store: &Store,
    toc: &Toc,
    toc_entry: Option<&[u8]>,
    plan: &Plan,
    spool: &mut File,
    out: &mut BlobWriter<'_>,
    refetch: &Refetch<'_>,
) -> Result<Written, AssembleError> {
    let mut contents = Vec::new();
    let mut refetched = HashMap::new();
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
                    Some(Source::Unchecked(blob, source)) => Box::new(std::io::Cursor::new(checked_or_fetched(
                        store,
                        e,
                        blob,
                        source,
                        refetch,
                        &mut refetched,
                    )?)),
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
    Ok(Written { contents, refetched })
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
