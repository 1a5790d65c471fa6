//! Reading a layer image back to check its structure, for `berth fsck`: the superblock,
//! then every inode reachable from the root, every directory block (sorted names, sane
//! name offsets, `.` and `..` pointing where they should, entry types matching inodes)
//! and that all data lies inside the file. File contents are not re-hashed: the layer's
//! diff ID was checked when the image was written.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::super::RenderError;
use super::ondisk::{
    BLOCK, BLOCK_BITS, DIRENT_SIZE, INODE_SIZE, LAYOUT_FLAT_INLINE, LAYOUT_FLAT_PLAIN, MAGIC, SUPER_OFFSET,
    XATTR_HEADER_SIZE,
};

/// What a check saw.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ImageCheck {
    pub inodes: u64,
    pub directories: u64,
    pub file_bytes: u64,
}

struct Reader {
    file: File,
    len: u64,
    meta: u64,
}

struct RawInode {
    mode: u16,
    layout: u16,
    size: u64,
    i_u: u32,
    /// Where inline data starts (after the inode and its xattrs).
    inline_at: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Reader {
    fn read(&self, at: u64, len: u64) -> Result<Vec<u8>, String> {
        if at.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(format!("{len} bytes at offset {at} lie past the end of the image ({} bytes)", self.len));
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, at).map_err(|e| format!("reading at offset {at}: {e}"))?;
        Ok(buf)
    }

    fn inode(&self, nid: u64) -> Result<RawInode, String> {
        let at = nid
            .checked_mul(32)
            .and_then(|o| o.checked_add(self.meta))
            .ok_or_else(|| format!("inode number {nid} lies past any image"))?;
        let raw = self.read(at, INODE_SIZE as u64)?;
        let format = u16_at(&raw, 0);
        if format & 1 != 1 || format >> 4 != 0 {
            return Err(format!("inode {nid} has format {format:#x}, not an extended uncompressed inode"));
        }
        let layout = (format >> 1) & 7;
        if layout != LAYOUT_FLAT_PLAIN && layout != LAYOUT_FLAT_INLINE {
            return Err(format!("inode {nid} has data layout {layout}"));
        }
        let icount = u16_at(&raw, 2) as u64;
        let xattrs = if icount == 0 { 0 } else { XATTR_HEADER_SIZE as u64 + (icount - 1) * 4 };
        Ok(RawInode {
            mode: u16_at(&raw, 4),
            layout,
            size: u64_at(&raw, 8),
            i_u: u32_at(&raw, 16),
            inline_at: at + INODE_SIZE as u64 + xattrs,
        })
    }

    /// The data of a directory or symlink.
    fn data(&self, nid: u64, inode: &RawInode) -> Result<Vec<u8>, String> {
        if inode.layout == LAYOUT_FLAT_INLINE {
            if inode.size >= BLOCK || inode.inline_at % BLOCK + inode.size > BLOCK {
                return Err(format!("inode {nid}: inline data crosses a block boundary"));
            }
            self.read(inode.inline_at, inode.size)
        } else {
            self.read(inode.i_u as u64 * BLOCK, inode.size)
        }
    }
}

fn type_of(mode: u16) -> u8 {
    match mode & 0o170000 {
        0o100000 => 1,
        0o040000 => 2,
        0o020000 => 3,
        0o060000 => 4,
        0o010000 => 5,
        0o140000 => 6,
        0o120000 => 7,
        _ => 0,
    }
}

/// Check the image at `path`.
pub fn check_image(path: &Path) -> Result<ImageCheck, RenderError> {
    let bad = |reason: String| RenderError::BadImage { path: path.to_path_buf(), reason };
    let file = File::open(path).map_err(super::super::error::io("opening", path))?;
    let len = file.metadata().map_err(super::super::error::io("inspecting", path))?.len();
    let mut reader = Reader { file, len, meta: 0 };
    let sb = reader.read(SUPER_OFFSET, 128).map_err(bad)?;
    if u32_at(&sb, 0) != MAGIC {
        return Err(bad("no EROFS superblock".into()));
    }
    if sb[12] != BLOCK_BITS {
        return Err(bad(format!("block size 2^{} is not 4096", sb[12])));
    }
    let blocks = u32_at(&sb, 36) as u64;
    if blocks * BLOCK != len {
        return Err(bad(format!("the superblock counts {blocks} blocks; the file has {len} bytes")));
    }
    let meta_blkaddr = u32_at(&sb, 40) as u64;
    if meta_blkaddr == 0 || meta_blkaddr >= blocks {
        return Err(bad(format!("metadata block {meta_blkaddr} is outside the image")));
    }
    reader.meta = meta_blkaddr * BLOCK;
    let root = u16_at(&sb, 14) as u64;
    let mut seen_dirs = HashSet::new();
    let mut seen = HashSet::new();
    let mut check = ImageCheck::default();
    let mut todo = vec![(root, root)];
    while let Some((nid, parent)) = todo.pop() {
        let inode = reader.inode(nid).map_err(bad)?;
        let first_visit = seen.insert(nid);
        if first_visit {
            check.inodes += 1;
        }
        match type_of(inode.mode) {
            2 => {
                if !seen_dirs.insert(nid) {
                    return Err(bad(format!("directory inode {nid} is reachable twice")));
                }
                check.directories += 1;
                let data = reader.data(nid, &inode).map_err(bad)?;
                for (child, ft) in dirents(nid, parent, &data).map_err(bad)? {
                    let c = reader.inode(child).map_err(bad)?;
                    if type_of(c.mode) != ft {
                        return Err(bad(format!("directory {nid} names inode {child} with the wrong type")));
                    }
                    todo.push((child, nid));
                }
            }
            1 => {
                if inode.layout != LAYOUT_FLAT_PLAIN {
                    return Err(bad(format!("file inode {nid} is not FLAT_PLAIN")));
                }
                if inode.size > 0 {
                    let start = inode.i_u as u64 * BLOCK;
                    if inode.i_u == 0 || start.checked_add(inode.size).is_none_or(|end| end > reader.meta) {
                        return Err(bad(format!("file inode {nid}: its data lies outside the data area")));
                    }
                }
                if first_visit {
                    check.file_bytes += inode.size;
                }
            }
            7 => {
                reader.data(nid, &inode).map_err(bad)?;
            }
            3..=5 => {}
            _ => return Err(bad(format!("inode {nid} has mode {:o}", inode.mode))),
        }
    }
    Ok(check)
}

/// The (nid, type) of a directory's entries other than `.` and `..`, checking the blocks.
fn dirents(nid: u64, parent: u64, data: &[u8]) -> Result<Vec<(u64, u8)>, String> {
    let mut out = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let mut dots = 0;
    for (b, block) in data.chunks(BLOCK as usize).enumerate() {
        if block.len() < DIRENT_SIZE {
            return Err(format!("directory {nid}: block {b} is too short"));
        }
        let first = u16_at(block, 8) as usize;
        if first < DIRENT_SIZE || !first.is_multiple_of(DIRENT_SIZE) || first > block.len() {
            return Err(format!("directory {nid}: block {b} has a bad first name offset {first}"));
        }
        let count = first / DIRENT_SIZE;
        for i in 0..count {
            let d = &block[i * DIRENT_SIZE..(i + 1) * DIRENT_SIZE];
            let start = u16_at(d, 8) as usize;
            let end = if i + 1 < count { u16_at(block, (i + 1) * DIRENT_SIZE + 8) as usize } else { block.len() };
            if start < first || end > block.len() || start >= end {
                return Err(format!("directory {nid}: block {b} has bad name offsets"));
            }
            let mut name = &block[start..end];
            if i + 1 == count
                && let Some(z) = name.iter().position(|c| *c == 0)
            {
                name = &name[..z];
            }
            if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
                return Err(format!("directory {nid}: an entry has a bad name"));
            }
            if last.as_deref().is_some_and(|l| l >= name) {
                return Err(format!("directory {nid}: names are not in order"));
            }
            last = Some(name.to_vec());
            let (child, ft) = (u64_at(d, 0), d[10]);
            match name {
                b"." | b".." => {
                    dots += 1;
                    let want = if name == b"." { nid } else { parent };
                    if child != want || ft != 2 {
                        return Err(format!("directory {nid}: {:?} points elsewhere", String::from_utf8_lossy(name)));
                    }
                }
                _ => out.push((child, ft)),
            }
        }
    }
    if dots != 2 {
        return Err(format!("directory {nid}: `.` or `..` is missing"));
    }
    Ok(out)
}
