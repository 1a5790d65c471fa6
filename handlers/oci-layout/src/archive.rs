//! Locating members of a tar archive (an `oci-archive`) by reading only its headers.
//!
//! The data of each member is never read here: the host ingests byte ranges of the
//! archive directly. Handles ustar names with prefix, GNU long names (`L`) and pax
//! `path` records, which is what skopeo, umoci and GNU tar write.

use std::collections::HashMap;

use berth_guest::Error;

const BLOCK: u64 = 512;
/// Archives of OCI layouts have a few dozen members; a bound stops a hostile one.
const MAX_MEMBERS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub offset: u64,
    pub size: u64,
}

fn octal(field: &[u8]) -> Option<u64> {
    // GNU base-256 for sizes over 8 GiB.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn normalize(name: &str) -> String {
    name.trim_start_matches("./").trim_end_matches('/').to_string()
}

fn pax_path(records: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(records);
    text.lines().find_map(|line| {
        let (_, kv) = line.split_once(' ')?;
        kv.strip_prefix("path=").map(str::to_string)
    })
}

/// Scan the archive's headers through `read(offset, len)` and index its regular files.
pub fn index(
    total: u64,
    mut read: impl FnMut(u64, u32) -> Result<Vec<u8>, Error>,
) -> Result<HashMap<String, Member>, Error> {
    let bad = |why: String| Error::InvalidInput(format!("oci-archive: {why}"));
    let mut members = HashMap::new();
    let mut offset = 0u64;
    let mut long_name: Option<String> = None;
    while offset + BLOCK <= total {
        let header = read(offset, BLOCK as u32)?;
        if header.len() != BLOCK as usize {
            return Err(bad(format!("short read of the header at byte {offset}")));
        }
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let size =
            octal(&header[124..136]).ok_or_else(|| bad(format!("unreadable size in the header at byte {offset}")))?;
        let data = offset + BLOCK;
        let padded = size.div_ceil(BLOCK).checked_mul(BLOCK).ok_or_else(|| bad("size overflows".into()))?;
        let next = data.checked_add(padded).ok_or_else(|| bad("size overflows".into()))?;
        if data + size > total {
            return Err(bad(format!("member at byte {offset} runs past the end of the archive")));
        }
        match header[156] {
            b'L' | b'x' => {
                if size > 64 * 1024 {
                    return Err(bad(format!("extended header of {size} bytes at byte {offset}")));
                }
                let body = read(data, size as u32)?;
                long_name = if header[156] == b'L' { Some(cstr(&body)) } else { pax_path(&body) };
            }
            b'g' => {}
            kind => {
                let name = long_name.take().unwrap_or_else(|| {
                    let name = cstr(&header[0..100]);
                    let prefix = if &header[257..262] == b"ustar" { cstr(&header[345..500]) } else { String::new() };
                    if prefix.is_empty() { name } else { format!("{prefix}/{name}") }
                });
                if kind == b'0' || kind == 0 {
                    members.insert(normalize(&name), Member { offset: data, size });
                    if members.len() > MAX_MEMBERS {
                        return Err(bad(format!("more than {MAX_MEMBERS} members")));
                    }
                }
            }
        }
        offset = next;
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: usize, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let s = format!("{size:011o}\0");
        h[124..136].copy_from_slice(s.as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn member(name: &str, data: &[u8], kind: u8) -> Vec<u8> {
        let mut out = header(name, data.len(), kind);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn read_from(tar: &[u8]) -> impl FnMut(u64, u32) -> Result<Vec<u8>, Error> + '_ {
        move |off, len| {
            let end = (off as usize + len as usize).min(tar.len());
            Ok(tar[off as usize..end].to_vec())
        }
    }

    #[test]
    fn indexes_plain_and_long_names() {
        let long = format!("blobs/sha256/{}", "a".repeat(64));
        let mut tar = member("./index.json", b"{}", b'0');
        tar.extend(member("././@LongLink", format!("{long}\0").as_bytes(), b'L'));
        tar.extend(member("truncated", b"hello", b'0'));
        tar.extend(member("blobs/", b"", b'5'));
        tar.extend(vec![0u8; 1024]);
        let idx = index(tar.len() as u64, read_from(&tar)).unwrap();
        assert_eq!(idx["index.json"], Member { offset: 512, size: 2 });
        assert_eq!(idx[&long].size, 5);
        assert!(!idx.contains_key("blobs"));
    }

    #[test]
    fn rejects_a_member_past_the_end() {
        let mut tar = header("index.json", 4096, b'0');
        tar.extend(vec![b'x'; 100]);
        let err = index(tar.len() as u64, read_from(&tar)).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(m) if m.contains("past the end")));
    }
}
