//! GNU sparse files in PAX form (formats 0.0, 0.1 and 1.0, as GNU tar writes them with
//! `--format=posix --sparse`): the entry holds only the data regions; the PAX records
//! (0.x) or a map at the start of the data (1.0) say where each region goes in a file of
//! `GNU.sparse.realsize` bytes, the rest being holes. Go's archive/tar reads all three,
//! so umoci, containerd and Docker unpack them; the old GNU form (type `S`) they refuse,
//! and so does berth (see `apply`).

use std::io::Read;

/// Longest 1.0 map read from the data (GNU tar writes a few bytes per region).
const MAX_MAP: u64 = 1 << 20;

/// What the PAX records of an entry say about it being sparse.
#[derive(Debug, Default)]
pub(super) struct SparseHeader {
    /// `GNU.sparse.name`: the file's real name (the header holds a made-up one).
    pub name: Option<Vec<u8>>,
    real_size: Option<u64>,
    /// 0.x: `GNU.sparse.numblocks`, the regions the map must hold.
    blocks: Option<u64>,
    /// 0.x: the map from `GNU.sparse.map`, or from `GNU.sparse.offset`/`numbytes` pairs.
    map: Vec<u64>,
    /// 1.0: the map is at the start of the data.
    map_in_data: bool,
    sparse: bool,
}

impl SparseHeader {
    /// Read the sparse records of a PAX header (key, value pairs in order).
    pub(super) fn of<'a>(records: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Result<SparseHeader, &'static str> {
        let mut h = SparseHeader::default();
        let (mut major, mut minor) = (None, None);
        let number = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u64>().ok());
        for (key, value) in records {
            let Some(key) = key.strip_prefix(b"GNU.sparse.") else { continue };
            match key {
                b"major" => major = Some(value.to_vec()),
                b"minor" => minor = Some(value.to_vec()),
                b"name" => h.name = Some(value.to_vec()),
                b"size" | b"realsize" => h.real_size = Some(number(value).ok_or("invalid GNU.sparse.realsize")?),
                b"numblocks" => h.blocks = Some(number(value).ok_or("invalid GNU.sparse.numblocks")?),
                b"map" => {
                    h.sparse = true;
                    h.map = value
                        .split(|b| *b == b',')
                        .filter(|v| !v.is_empty())
                        .map(|v| number(v).ok_or("invalid GNU.sparse.map"))
                        .collect::<Result<_, _>>()?;
                }
                b"offset" | b"numbytes" => {
                    h.sparse = true;
                    h.map.push(number(value).ok_or("invalid GNU.sparse.offset or numbytes")?);
                }
                _ => {}
            }
        }
        match (major.as_deref(), minor.as_deref()) {
            (Some(b"1"), Some(b"0")) => {
                h.sparse = true;
                h.map_in_data = true;
            }
            (Some(b"0"), Some(b"0" | b"1")) => h.sparse = true,
            (None, None) => {}
            _ => return Err("unknown GNU sparse format version"),
        }
        if h.sparse && h.real_size.is_none() {
            return Err("GNU sparse file without GNU.sparse.realsize");
        }
        Ok(h)
    }

    pub(super) fn is_sparse(&self) -> bool {
        self.sparse
    }

    /// The file's regions, read from the front of `data` for format 1.0; `stored` is the
    /// entry's size in the archive.
    pub(super) fn regions(&self, data: &mut impl Read, stored: u64) -> Result<Regions, &'static str> {
        let real_size = self.real_size.unwrap_or(0);
        let (pairs, map_len) = if self.map_in_data { read_map(data, stored)? } else { (self.map.clone(), 0) };
        // As Go's reader: a 0.x map has as many regions as GNU.sparse.numblocks says.
        let counted = self.map_in_data || self.blocks.and_then(|b| b.checked_mul(2)) == Some(pairs.len() as u64);
        if pairs.len() % 2 != 0 || !counted {
            return Err("GNU sparse map does not hold the regions it announces");
        }
        let mut regions: Vec<(u64, u64)> = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
        // As Go's archive/tar: regions in order, not overlapping, inside the file.
        let mut end = 0u64;
        let mut total = 0u64;
        for &(offset, len) in &regions {
            let stop = offset.checked_add(len).ok_or("GNU sparse map overflows")?;
            if offset < end || stop > real_size {
                return Err("GNU sparse map has regions out of order or outside the file");
            }
            end = stop;
            total += len;
        }
        if total != stored - map_len {
            return Err("GNU sparse map does not match the entry's data");
        }
        regions.retain(|r| r.1 > 0);
        Ok(Regions { regions, real_size })
    }
}

/// Format 1.0: decimal numbers, one a line (the count, then offset/length pairs), padded
/// to a 512-byte block. Returns the pairs and the bytes the map took.
fn read_map(data: &mut impl Read, stored: u64) -> Result<(Vec<u64>, u64), &'static str> {
    let mut numbers = Vec::new();
    let mut current = Vec::new();
    let mut read = 0u64;
    let mut byte = [0u8; 1];
    let mut wanted = None;
    while wanted.is_none_or(|w| numbers.len() < w) {
        if read >= stored.min(MAX_MAP) {
            return Err("GNU sparse map is truncated");
        }
        data.read_exact(&mut byte).map_err(|_| "GNU sparse map is truncated")?;
        read += 1;
        if byte[0] == b'\n' {
            let n = std::str::from_utf8(&current).ok().and_then(|s| s.parse::<u64>().ok());
            let n = n.ok_or("GNU sparse map holds something other than numbers")?;
            current.clear();
            if wanted.is_none() {
                wanted =
                    Some(usize::try_from(n).ok().and_then(|n| n.checked_mul(2)).ok_or("GNU sparse map too large")?);
            } else {
                numbers.push(n);
            }
        } else {
            current.push(byte[0]);
        }
    }
    let padded = read.div_ceil(512) * 512;
    if padded > stored {
        return Err("GNU sparse map is truncated");
    }
    let mut skip = data.take(padded - read);
    std::io::copy(&mut skip, &mut std::io::sink()).map_err(|_| "GNU sparse map is truncated")?;
    Ok((numbers, padded))
}

/// Where a sparse file's data regions go.
#[derive(Debug)]
pub(super) struct Regions {
    pub regions: Vec<(u64, u64)>,
    pub real_size: u64,
}

/// A sparse file's contents, holes as zeros, read from the regions' data.
pub(super) struct Expanded<R> {
    inner: R,
    regions: std::vec::IntoIter<(u64, u64)>,
    current: Option<(u64, u64)>,
    pos: u64,
    real_size: u64,
}

impl<R: Read> Expanded<R> {
    pub(super) fn new(inner: R, regions: Regions) -> Self {
        let mut it = regions.regions.into_iter();
        let current = it.next();
        Expanded { inner, regions: it, current, pos: 0, real_size: regions.real_size }
    }
}

impl<R: Read> Read for Expanded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.real_size || buf.is_empty() {
            return Ok(0);
        }
        match self.current {
            Some((offset, len)) if self.pos >= offset => {
                let left = offset + len - self.pos;
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                self.pos += n as u64;
                if self.pos == offset + len {
                    self.current = self.regions.next();
                }
                Ok(n)
            }
            next => {
                let until = next.map_or(self.real_size, |(offset, _)| offset);
                let n = buf.len().min(usize::try_from(until - self.pos).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                self.pos += n as u64;
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(h: &SparseHeader, data: &[u8]) -> Result<Vec<u8>, &'static str> {
        let mut data = data;
        let stored = data.len() as u64;
        let regions = h.regions(&mut data, stored)?;
        let mut out = Vec::new();
        Expanded::new(data, regions).read_to_end(&mut out).unwrap();
        Ok(out)
    }

    #[test]
    fn format_0_1_and_1_0_expand_with_holes() {
        let records: Vec<(&[u8], &[u8])> = vec![
            (b"GNU.sparse.major", b"0"),
            (b"GNU.sparse.minor", b"1"),
            (b"GNU.sparse.name", b"real"),
            (b"GNU.sparse.realsize", b"10"),
            (b"GNU.sparse.numblocks", b"2"),
            (b"GNU.sparse.map", b"2,3,8,1"),
        ];
        let h = SparseHeader::of(records.into_iter()).unwrap();
        assert_eq!(h.name.as_deref(), Some(&b"real"[..]));
        assert_eq!(expand(&h, b"abcd").unwrap(), b"\0\0abc\0\0\0d\0");

        let records: Vec<(&[u8], &[u8])> =
            vec![(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.realsize", b"6")];
        let h = SparseHeader::of(records.into_iter()).unwrap();
        let mut data = b"1\n4\n2\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"xy");
        assert_eq!(expand(&h, &data).unwrap(), b"\0\0\0\0xy");
    }

    #[test]
    fn maps_out_of_order_or_past_the_end_are_refused() {
        for map in [&b"5,1,0,1"[..], b"0,20", b"0,1"] {
            let records: Vec<(&[u8], &[u8])> =
                vec![(b"GNU.sparse.numblocks", b"2"), (b"GNU.sparse.map", map), (b"GNU.sparse.realsize", b"10")];
            let h = SparseHeader::of(records.into_iter()).unwrap();
            assert!(expand(&h, b"xx").is_err(), "{map:?}");
        }
        let records: Vec<(&[u8], &[u8])> = vec![(b"GNU.sparse.major", b"2"), (b"GNU.sparse.minor", b"0")];
        assert!(SparseHeader::of(records.into_iter()).is_err());
    }
}
