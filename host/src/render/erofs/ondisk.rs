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
