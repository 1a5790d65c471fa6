//! The EROFS on-disk format, as much of it as a layer needs (Linux `fs/erofs/erofs_fs.h`):
//! 4096-byte blocks, no compression, no shared xattrs, no checksum.
//!
//! Layout of an image, in blocks:
//! ```text
//! 0                 superblock at byte 1024
//! 1 ..              file data, FLAT_PLAIN, each file from a block boundary, in tar order
//! meta_blkaddr ..   metadata: 64-byte extended inodes (root first, so root_nid = 0), each
//!                   followed by its inline xattrs and, for small directories and
//!                   symlinks, its data (FLAT_INLINE, never across a block boundary)
//! ..                data of directories and symlinks too large to inline (FLAT_PLAIN)
//! ```
//! File data comes first because it is written while the tar is read, before any
//! metadata is known; an inode's nid counts 32-byte slots from `meta_blkaddr`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use super::tree::{DataSink, Ino, Kind, ROOT, Tree};

pub const BLOCK: u64 = 4096;
pub const BLOCK_BITS: u8 = 12;
pub const MAGIC: u32 = 0xE0F5_E1E2;
pub const SUPER_OFFSET: u64 = 1024;
pub const INODE_SIZE: usize = 64;
pub const DIRENT_SIZE: usize = 12;
pub const XATTR_HEADER_SIZE: usize = 12;

pub const LAYOUT_FLAT_PLAIN: u16 = 0;
pub const LAYOUT_FLAT_INLINE: u16 = 2;

/// xattr name prefixes and their on-disk index (`EROFS_XATTR_INDEX_*`). The POSIX ACL
/// ones are whole names.
pub const XATTR_PREFIXES: &[(&[u8], u8)] = &[
    (b"user.", 1),
    (b"system.posix_acl_access", 2),
    (b"system.posix_acl_default", 3),
    (b"trusted.", 4),
    (b"security.", 6),
];

/// The on-disk index of an xattr name and the rest of the name, if EROFS can store it.
pub fn xattr_index(name: &[u8]) -> Option<(u8, &[u8])> {
    XATTR_PREFIXES.iter().find_map(|(prefix, index)| {
        let rest = name.strip_prefix(*prefix)?;
        let whole = *index == 2 || *index == 3;
        (!whole || rest.is_empty()).then_some((*index, rest))
    })
}

fn file_type(kind: &Kind) -> (u16, u8) {
    // (S_IFMT bits, EROFS_FT_*)
    match kind {
        Kind::File { .. } => (0o100000, 1),
        Kind::Dir { .. } => (0o040000, 2),
        Kind::Char { .. } => (0o020000, 3),
        Kind::Block { .. } => (0o060000, 4),
        Kind::Fifo => (0o010000, 5),
        Kind::Symlink(_) => (0o120000, 7),
    }
}

/// Linux's `new_encode_dev`.
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Writes an image: file data while the tar is read ([`DataSink`]), then the
/// metadata of the finished tree ([`ImageWriter::finish`]).
pub struct ImageWriter {
    out: BufWriter<File>,
    next_block: u32,
}

impl ImageWriter {
    pub fn new(file: File) -> std::io::Result<ImageWriter> {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&[0u8; BLOCK as usize])?;
        Ok(ImageWriter { out, next_block: 1 })
    }

    fn pad_to_block(&mut self, len: u64) -> std::io::Result<()> {
        let pad = (BLOCK - len % BLOCK) % BLOCK;
        self.out.write_all(&vec![0u8; pad as usize])
    }
}

impl DataSink for ImageWriter {
    fn write_file(&mut self, data: &mut dyn Read) -> std::io::Result<(u32, u64)> {
        let n = std::io::copy(data, &mut self.out)?;
        if n == 0 {
            return Ok((0, 0));
        }
        self.pad_to_block(n)?;
        let block = self.next_block;
        let blocks = u32::try_from(n.div_ceil(BLOCK))
            .ok()
            .and_then(|b| self.next_block.checked_add(b))
            .ok_or_else(|| std::io::Error::other("the layer is too large for a 32-bit block address"))?;
        self.next_block = blocks;
        Ok((block, n))
    }
}

/// One inode's place and data layout, decided before anything is written.
struct Placed {
    ino: Ino,
    parent: Ino,
    nid: u64,
    nlink: u32,
    xattrs: Vec<u8>,
    /// Directory or symlink data (directories are encoded once nids are known).
    data_len: u64,
    inline: bool,
    /// First block of FLAT_PLAIN directory or symlink data.
    block: u32,
}

impl ImageWriter {
    /// Write the metadata of `tree` and the superblock; returns the file (not synced).
    pub fn finish(mut self, tree: &Tree) -> std::io::Result<File> {
        // Every inode a directory still names, root first, once (hardlinks share one).
        let mut order: Vec<Ino> = vec![ROOT];
        let mut parent_of: HashMap<Ino, Ino> = HashMap::from([(ROOT, ROOT)]);
        let mut links: HashMap<Ino, u32> = HashMap::new();
        let mut i = 0;
        while i < order.len() {
            let dir = order[i];
            i += 1;
            if let Kind::Dir { entries } = &tree.inodes[dir].kind {
                for &child in entries.values() {
                    *links.entry(child).or_default() += 1;
                    if let std::collections::hash_map::Entry::Vacant(v) = parent_of.entry(child) {
                        v.insert(dir);
                        order.push(child);
                    }
                }
            }
        }

        let mut placed = Vec::with_capacity(order.len());
        let mut cursor: u64 = 0;
        let mut plain_blocks: u32 = 0;
        for &ino in &order {
            let inode = &tree.inodes[ino];
            let xattrs = encode_xattrs(&inode.xattrs);
            let (data_len, nlink) = match &inode.kind {
                Kind::Dir { entries } => {
                    let subdirs = entries.values().filter(|&&c| tree.inodes[c].is_dir()).count() as u32;
                    (dir_size(entries), 2 + subdirs)
                }
                Kind::Symlink(target) => (target.len() as u64, links[&ino]),
                _ => (0, links.get(&ino).copied().unwrap_or(1)),
            };
            let record = (INODE_SIZE + xattrs.len()) as u64;
            let inline = data_len > 0 && record + data_len <= BLOCK;
            let len = record + if inline { data_len } else { 0 };
            cursor = cursor.next_multiple_of(32);
            if len <= BLOCK && cursor % BLOCK + len > BLOCK {
                cursor = cursor.next_multiple_of(BLOCK);
            }
            let block = if !inline && data_len > 0 {
                let b = plain_blocks;
                plain_blocks += data_len.div_ceil(BLOCK) as u32;
                b
            } else {
                0
            };
            placed.push(Placed {
                ino,
                parent: parent_of[&ino],
                nid: cursor / 32,
                nlink,
                xattrs,
                data_len,
                inline,
                block,
            });
            cursor += len;
        }
        let meta_blkaddr = self.next_block;
        let meta_blocks = cursor.div_ceil(BLOCK).max(1) as u32;
        let plain_base = meta_blkaddr + meta_blocks;
        let nid_of: HashMap<Ino, u64> = placed.iter().map(|p| (p.ino, p.nid)).collect();

        let mut meta = vec![0u8; (meta_blocks as u64 * BLOCK) as usize];
        let mut plain: Vec<u8> = Vec::new();
        for (n, p) in placed.iter().enumerate() {
            let inode = &tree.inodes[p.ino];
            let data: Vec<u8> = match &inode.kind {
                Kind::Dir { entries } => encode_dir(tree, p.ino, p.parent, entries, &nid_of),
                Kind::Symlink(target) => target.clone(),
                _ => Vec::new(),
            };
            debug_assert_eq!(data.len() as u64, p.data_len);
            let (ifmt, _) = file_type(&inode.kind);
            let layout = if p.inline { LAYOUT_FLAT_INLINE } else { LAYOUT_FLAT_PLAIN };
            let (size, i_u) = match &inode.kind {
                Kind::File { block, size } => (*size, if *size > 0 { *block } else { 0 }),
                Kind::Char { major, minor } | Kind::Block { major, minor } => (0, encode_dev(*major, *minor)),
                Kind::Fifo => (0, 0),
                Kind::Dir { .. } | Kind::Symlink(_) => {
                    (p.data_len, if p.inline || p.data_len == 0 { 0 } else { plain_base + p.block })
                }
            };
            let at = (p.nid * 32) as usize;
            let raw = &mut meta[at..at + INODE_SIZE];
            raw[0..2].copy_from_slice(&(1 | (layout << 1)).to_le_bytes());
            let icount = if p.xattrs.is_empty() { 0 } else { ((p.xattrs.len() - XATTR_HEADER_SIZE) / 4 + 1) as u16 };
            raw[2..4].copy_from_slice(&icount.to_le_bytes());
            raw[4..6].copy_from_slice(&(ifmt | inode.perm as u16).to_le_bytes());
            raw[8..16].copy_from_slice(&size.to_le_bytes());
            raw[16..20].copy_from_slice(&i_u.to_le_bytes());
            raw[20..24].copy_from_slice(&(n as u32 + 1).to_le_bytes());
            raw[24..28].copy_from_slice(&inode.uid.to_le_bytes());
            raw[28..32].copy_from_slice(&inode.gid.to_le_bytes());
            raw[32..40].copy_from_slice(&inode.mtime.0.to_le_bytes());
            raw[40..44].copy_from_slice(&inode.mtime.1.to_le_bytes());
            raw[44..48].copy_from_slice(&p.nlink.to_le_bytes());
            let x = at + INODE_SIZE;
            meta[x..x + p.xattrs.len()].copy_from_slice(&p.xattrs);
            if p.inline {
                let d = x + p.xattrs.len();
                meta[d..d + data.len()].copy_from_slice(&data);
            } else if !data.is_empty() {
                debug_assert_eq!(plain.len() as u64, p.block as u64 * BLOCK);
                plain.extend_from_slice(&data);
                plain.resize((plain.len() as u64).next_multiple_of(BLOCK) as usize, 0);
            }
        }
        self.out.write_all(&meta)?;
        self.out.write_all(&plain)?;
        let blocks = plain_base + plain_blocks;

        let mut sb = [0u8; 128];
        sb[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        sb[12] = BLOCK_BITS;
        // root_nid (14..16) is 0: the root is the first inode of the metadata area.
        sb[16..24].copy_from_slice(&(placed.len() as u64).to_le_bytes());
        sb[36..40].copy_from_slice(&blocks.to_le_bytes());
        sb[40..44].copy_from_slice(&meta_blkaddr.to_le_bytes());
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(SUPER_OFFSET))?;
        file.write_all(&sb)?;
        Ok(file)
    }
}

/// The inline xattr body: a 12-byte header (no shared xattrs) and 4-byte aligned entries.
fn encode_xattrs(xattrs: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    if xattrs.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0u8; XATTR_HEADER_SIZE];
    for (name, value) in xattrs {
        // Names were checked when the tree was built (see `tree::check_storable`).
        let (index, rest) = xattr_index(name).expect("xattr name checked when the tree was built");
        out.push(rest.len() as u8);
        out.push(index);
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(rest);
        out.extend_from_slice(value);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    out
}

/// Names of a directory as they go into its blocks: `.`, `..` and the entries, in byte
/// order (the kernel binary-searches them).
fn dir_names<'a>(entries: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    let mut names: Vec<&[u8]> = entries.chain([&b"."[..], &b".."[..]]).collect();
    names.sort_unstable();
    names
}

/// Split names into blocks: each block holds its dirents, then their names.
fn pack<'a>(names: &[&'a [u8]]) -> Vec<Vec<&'a [u8]>> {
    let mut blocks: Vec<Vec<&[u8]>> = vec![Vec::new()];
    let mut used = 0usize;
    for name in names {
        if used + DIRENT_SIZE + name.len() > BLOCK as usize {
            blocks.push(Vec::new());
            used = 0;
        }
        used += DIRENT_SIZE + name.len();
        blocks.last_mut().expect("one block at least").push(name);
    }
    blocks
}

fn block_len(block: &[&[u8]]) -> u64 {
    block.iter().map(|n| (DIRENT_SIZE + n.len()) as u64).sum()
}

/// A directory's size: full blocks, then what its last block uses.
fn dir_size(entries: &std::collections::BTreeMap<Vec<u8>, Ino>) -> u64 {
    let names = dir_names(entries.keys().map(Vec::as_slice));
    let blocks = pack(&names);
    (blocks.len() as u64 - 1) * BLOCK + block_len(blocks.last().expect("one block at least"))
}

fn encode_dir(
    tree: &Tree,
    dir: Ino,
    parent: Ino,
    entries: &std::collections::BTreeMap<Vec<u8>, Ino>,
    nid_of: &HashMap<Ino, u64>,
) -> Vec<u8> {
    let names = dir_names(entries.keys().map(Vec::as_slice));
    let blocks = pack(&names);
    let mut out = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let start = out.len();
        let mut nameoff = DIRENT_SIZE * block.len();
        for name in block {
            let target = match *name {
                b"." => dir,
                b".." => parent,
                n => entries[n],
            };
            let (_, ft) = file_type(&tree.inodes[target].kind);
            out.extend_from_slice(&nid_of[&target].to_le_bytes());
            out.extend_from_slice(&(nameoff as u16).to_le_bytes());
            out.push(ft);
            out.push(0);
            nameoff += name.len();
        }
        for name in block {
            out.extend_from_slice(name);
        }
        if b + 1 < blocks.len() {
            out.resize(start + BLOCK as usize, 0);
        }
    }
    out
}
