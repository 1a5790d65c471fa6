//! Unit tests of the writer and checker without mounting (the e2e tests mount the
//! images and compare them with directory snapshots and umoci).

use std::io::Read;

use super::ondisk::xattr_index;
use super::tree::Tree;
use super::writer::ImageWriter;
use super::{RenderError, check_image};
use crate::store::{Algorithm, Digest};

/// A tar of (path, kind, data): 'd' directory, 'f' file, 's' symlink to data, 'h'
/// hardlink to data.
fn tar_of(entries: &[(&str, char, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        // The raw name: `set_path` refuses the hostile ones these tests need.
        let name = &mut h.as_gnu_mut().unwrap().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        match kind {
            'd' => h.set_entry_type(tar::EntryType::Directory),
            's' | 'h' => {
                h.set_entry_type(if *kind == 's' { tar::EntryType::Symlink } else { tar::EntryType::Link });
                h.set_link_name(data).unwrap();
            }
            _ => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
            }
        }
        h.set_cksum();
        let body = if *kind == 'f' { data.as_bytes() } else { &[][..] };
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

/// Convert a tar into an image file; returns the file (kept while the test runs).
fn image_of(tar: &[u8]) -> Result<tempfile::NamedTempFile, RenderError> {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut tree = Tree::new(Digest::of_bytes(Algorithm::Sha256, b"unit test layer"));
    let mut writer = ImageWriter::new(out.as_file().try_clone().unwrap()).unwrap();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        tree.entry(&mut entry, &mut writer)?;
    }
    tree.finish()?;
    writer.finish(&tree).unwrap();
    Ok(out)
}

#[test]
fn an_image_of_many_entries_checks_clean_and_counts_what_it_holds() {
    let names: Vec<String> = (0..500).map(|i| format!("d/a-rather-long-file-name-{i:04}")).collect();
    let mut entries: Vec<(&str, char, &str)> = vec![("d", 'd', "")];
    entries.extend(names.iter().map(|n| (n.as_str(), 'f', "some data")));
    let big = "z".repeat(10_000);
    entries.extend([
        ("big", 'f', big.as_str()),
        ("link", 's', "d/a-rather-long-file-name-0001"),
        ("hard", 'h', "big"),
        ("empty", 'f', ""),
    ]);
    let image = image_of(&tar_of(&entries)).unwrap();
    let check = check_image(image.path()).unwrap();
    // root, d, 500 files, big (hard shares it), link, empty
    assert_eq!(check.inodes, 1 + 1 + 500 + 1 + 1 + 1);
    assert_eq!(check.directories, 2);
    assert_eq!(check.file_bytes, 500 * 9 + 10_000);
    let len = std::fs::metadata(image.path()).unwrap().len();
    assert_eq!(len % 4096, 0, "whole blocks");
}

#[test]
fn a_damaged_or_truncated_image_is_found() {
    let image = image_of(&tar_of(&[("etc", 'd', ""), ("etc/hosts", 'f', "127.0.0.1 localhost\n")])).unwrap();
    let mut bytes = Vec::new();
    std::fs::File::open(image.path()).unwrap().read_to_end(&mut bytes).unwrap();
    let truncated = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(truncated.path(), &bytes[..bytes.len() - 4096]).unwrap();
    assert!(matches!(check_image(truncated.path()), Err(RenderError::BadImage { .. })));
    let mut no_magic = bytes.clone();
    no_magic[1024] ^= 0xff;
    std::fs::write(truncated.path(), &no_magic).unwrap();
    let err = check_image(truncated.path()).unwrap_err();
    assert!(err.to_string().contains("no EROFS superblock"), "{err}");
}

#[test]
fn hostile_entries_are_refused_as_by_the_applier() {
    for (entries, entry) in [
        (vec![("a", 's', "b"), ("b", 's', "a"), ("a/x", 'f', "x")], "a/x"),
        (vec![("f", 'f', "x"), ("f/x", 'f', "x")], "f/x"),
        (vec![("a", 'd', ""), ("a/.wh...", 'f', "")], "a/.wh..."),
        (vec![("etc", 's', "/etc"), ("passwd", 'h', "etc/passwd")], "passwd"),
        (vec![("d", 'd', ""), ("h", 'h', "d")], "h"),
        (vec![("x", 'h', "missing/y")], "x"),
    ] {
        let err = image_of(&tar_of(&entries)).unwrap_err();
        assert!(matches!(&err, RenderError::Hostile { entry: e, .. } if e == entry), "{entries:?}: {err}");
    }
}

/// Found by the `erofs_write` fuzz target: a PAX `path` record may hold NUL bytes, which
/// the writer put into a directory entry's name (an image its own checker refuses, and a
/// name no file system can hold). Such a path is refused, as the applier refuses it.
#[test]
fn a_pax_path_with_a_nul_byte_is_refused_not_written_into_a_name() {
    let body = [&b" path=dir\0)name"[..], b"\n"].concat();
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    let record = [len.to_string().as_bytes(), &body].concat();
    let mut b = tar::Builder::new(Vec::new());
    let mut pax = tar::Header::new_ustar();
    pax.set_entry_type(tar::EntryType::XHeader);
    pax.set_size(record.len() as u64);
    pax.set_cksum();
    b.append(&pax, &record[..]).unwrap();
    let mut file = tar::Header::new_ustar();
    file.set_path("placeholder").unwrap();
    file.set_size(1);
    file.set_cksum();
    b.append(&file, &b"x"[..]).unwrap();
    let err = image_of(&b.into_inner().unwrap()).unwrap_err();
    assert!(matches!(&err, RenderError::Hostile { reason, .. } if reason.contains("NUL")), "{err}");
}

#[test]
fn escapes_land_inside_the_rootfs_as_in_the_applier() {
    // `..` stops at the root, absolute paths and symlink targets start there.
    let entries = [
        ("../x", 'f', "x"),
        ("/etc/passwd", 'f', "p"),
        ("up", 's', "/"),
        ("up/etc/y", 'f', "y"),
        ("out", 's', "../.."),
        ("out/z", 'f', "z"),
    ];
    let image = image_of(&tar_of(&entries)).unwrap();
    let check = check_image(image.path()).unwrap();
    // root, x, etc, etc/passwd, up, etc/y, out, z
    assert_eq!(check.inodes, 8);
}

#[test]
fn xattr_names_map_to_erofs_prefix_indexes() {
    assert_eq!(xattr_index(b"user.origin"), Some((1, &b"origin"[..])));
    assert_eq!(xattr_index(b"trusted.overlay.opaque"), Some((4, &b"overlay.opaque"[..])));
    assert_eq!(xattr_index(b"security.capability"), Some((6, &b"capability"[..])));
    assert_eq!(xattr_index(b"system.posix_acl_access"), Some((2, &b""[..])));
    assert_eq!(xattr_index(b"system.posix_acl_accessx"), None);
    assert_eq!(xattr_index(b"system.other"), None);
}
