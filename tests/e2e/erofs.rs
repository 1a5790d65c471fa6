//! EROFS layer images: the overlay rootfs built from them equals the one built from
//! directory snapshots (the fallback, forced with `BERTH_SNAPSHOTTER=dir`) and what
//! `umoci unpack` renders, on the fixtures of the render tests and on a layer made to
//! stress the format (directories spanning several blocks, long names and symlinks,
//! hardlinks, files on and off block boundaries, xattrs); `berth fsck` finds a damaged
//! layer image. The odd and hostile layers of `tar_quirks` are rendered in both forms
//! there.

use std::path::{Path, PathBuf};

use crate::render::{ALL, fixture, is_root, layout_from_tars, tar, umoci_unpack};
use crate::support::{Root, layout_arg};
use crate::tree::{Compare, assert_same, manifest};

/// Render `reference` of `layout` as an overlay with snapshots of the form `form` into
/// `dir`; returns the manifest of the mounted rootfs (unmounted afterwards).
fn overlay_manifest(
    layout: &Path,
    reference: &str,
    form: &str,
    dir: &Path,
    cmp: Compare,
) -> std::collections::BTreeMap<String, String> {
    let root = Root::with_snapshotter(form);
    let point = layout_arg(layout, reference);
    root.ok(&["fetch", "-q", &point]);
    let out = root.json(&["image", "render", "--overlay", &point, dir.to_str().unwrap()]);
    assert_eq!(out["snapshotter"], form, "{out}");
    let rootfs = dir.join("rootfs");
    let got = manifest(&rootfs, cmp);
    let unmount = crate::support::unmount_when_free(&rootfs);
    assert!(unmount.is_ok(), "unmounting {}: {unmount:?}", rootfs.display());
    if form == "erofs" {
        root.assert_fsck_clean();
    }
    got
}

/// EROFS overlay == directory overlay == umoci unpack, for `reference` of `layout`.
fn all_three_agree(layout: &Path, reference: &str, cmp: Compare) -> std::collections::BTreeMap<String, String> {
    let scratch = tempfile::tempdir().unwrap();
    let erofs = overlay_manifest(layout, reference, "erofs", &scratch.path().join("erofs"), cmp);
    let dir = overlay_manifest(layout, reference, "dir", &scratch.path().join("dir"), cmp);
    let umoci = manifest(&umoci_unpack(layout, reference, &scratch.path().join("bundle")), cmp);
    assert_same("erofs", &erofs, "directory snapshots", &dir);
    assert_same("erofs", &erofs, "umoci", &umoci);
    erofs
}

#[test]
fn erofs_rootfs_equals_directory_rootfs_and_umoci() {
    if !is_root() {
        eprintln!("skipped: needs root (EROFS and overlay mounts)");
        return;
    }
    let a = all_three_agree(&fixture().layout, "features-raw", ALL);
    // The fixture covers what it claims: every entry type, special modes, xattrs,
    // whiteouts and opaque directories, replacements in both directions.
    assert!(a["/usr/bin/su"].contains("mode=4755") && a["/usr/bin/su"].contains("nlink=2"), "{}", a["/usr/bin/su"]);
    assert!(a["/usr/bin/ping"].contains("xattr:security.capability="), "{}", a["/usr/bin/ping"]);
    assert!(a["/dev/null"].starts_with("char") && a["/dev/loop9"].starts_with("block"));
    assert!(a["/run/initctl"].starts_with("fifo") && a["/bin/sh"].starts_with("symlink"));
    assert!(!a.contains_key("/etc/.wh.hosts") && !a.contains_key("/var/keep/x") && a.contains_key("/var/keep/z"));
    assert!(a.contains_key("/opt/old/c") && !a.contains_key("/opt/old/a"));
    assert!(a["/srv/thing"].starts_with("dir") && a["/data"].starts_with("file"));
}

#[test]
fn erofs_rootfs_of_a_whiteout_without_its_directories_equals_the_others() {
    if !is_root() {
        return;
    }
    // umoci's own whiteout layer names `usr/bin/.wh.wall` without entries for `usr` and
    // `usr/bin`: a snapshot, unpacked over the layers below, copies their metadata up as
    // overlayfs does, so even directory mtimes equal umoci's.
    let a = all_three_agree(&fixture().layout, "features", ALL);
    assert!(!a.contains_key("/usr/bin/wall") && a.contains_key("/usr/bin/su"));
}

/// A layer that stresses the image format, then one that changes it.
const FORMAT_SCRIPT: &str = r#"
d("big")
for i in range(700):
    f("big/entry-with-a-long-name-%04d-%s" % (i, "x" * (i % 50)), b"%d" % i, mode=0o640 + (i % 2))
d("deep"); d("deep/a"); d("deep/a/b"); d("deep/a/b/c"); f("deep/a/b/c/leaf", b"leaf")
f("block", b"b" * 4096); f("block-and-one", b"c" * 4097); f("empty", b""); f("big-file", bytes(range(256)) * 4000)
hl("big/hardlink", "block-and-one"); hl("hardlink-2", "block-and-one")
sym("long-link", "t" * 3000); sym("dangling", "nowhere"); sym("abs", "/etc/passwd")
f("n" * 255, b"longest name")
f("xattrs", b"x", xattrs={"user.a": "1", "user.big": "v" * 3000, "trusted.t": "t", "security.s": "s"})
ti = tarfile.TarInfo("xdir"); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; _add(ti, None, {"user.dir": "d"})
d("owned", uid=1234, gid=5678, mode=0o3775)
d("links"); sym("links/up", "../owned"); f("links/up/via-link", b"through a symlink")
"#;

const FORMAT_CHANGES_SCRIPT: &str = r#"
d("big", mtime=T + 5); f("big/.wh.entry-with-a-long-name-0001-x"); f("big/new", b"new")
f(".wh.deep"); d("deep", mode=0o700); f("deep/fresh", b"fresh")
d("xdir", mtime=T + 6); f("xdir/.wh..wh..opq"); f("xdir/only", b"only")
f("block", b"replaced")
"#;

#[test]
fn erofs_holds_large_directories_long_names_hardlinks_and_xattrs() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = tar(dir.path(), "format", FORMAT_SCRIPT);
    let changes = tar(dir.path(), "changes", FORMAT_CHANGES_SCRIPT);
    let layout = dir.path().join("layout");
    let layers: Vec<&Path> = vec![&base, &changes];
    layout_from_tars(&layout, &[("format", layers)]);
    let a = all_three_agree(&layout, "format", ALL);
    let entries = a.keys().filter(|k| k.starts_with("/big/entry-")).count();
    assert_eq!(entries, 699, "one of 700 was whited out");
    assert!(a["/big/hardlink"].contains("nlink=3"), "{}", a["/big/hardlink"]);
    assert!(a["/xattrs"].contains("xattr:user.big="), "{}", a["/xattrs"]);
    assert!(a.contains_key("/deep/fresh") && !a.contains_key("/deep/a"), "the whited-out directory is replaced");
    assert!(!a.contains_key("/xdir/.wh..wh..opq") && a.contains_key("/xdir/only"));
    assert!(a.contains_key("/owned/via-link"), "an entry under a symlink lands where it leads");
    let long: PathBuf = ["/", &"n".repeat(255)].iter().collect();
    assert!(a.contains_key(long.to_str().unwrap()));
}

#[test]
fn fsck_removes_a_damaged_layer_image_and_the_next_render_rebuilds_it() {
    if !is_root() {
        return;
    }
    let fx = fixture();
    let root = Root::with_snapshotter("erofs");
    let scratch = tempfile::tempdir().unwrap();
    let point = layout_arg(&fx.layout, "features-raw");
    root.ok(&["fetch", "-q", &point]);
    let first = scratch.path().join("first");
    root.ok(&["image", "render", "--overlay", &point, first.to_str().unwrap()]);
    crate::support::unmount_when_free(&first.join("rootfs")).unwrap();
    let images: Vec<PathBuf> = std::fs::read_dir(root.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "erofs"))
        .collect();
    assert_eq!(images.len(), 3, "one image per layer: {images:?}");

    // Overwrite the root inode of one image (its metadata starts at the block the
    // superblock names).
    let victim = &images[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let meta_blkaddr = u32::from_le_bytes(bytes[1024 + 40..1024 + 44].try_into().unwrap()) as usize;
    bytes[meta_blkaddr * 4096..meta_blkaddr * 4096 + 64].fill(0xff);
    std::fs::write(victim, &bytes).unwrap();

    let (code, out, err) = root.run(&["fsck"]);
    assert_eq!(code, 6, "{out}{err}");
    assert!(out.contains("1 damaged") && out.contains(victim.file_name().unwrap().to_str().unwrap()), "{out}");
    assert!(!victim.exists(), "the damaged image is removed");

    let second = scratch.path().join("second");
    let again = root.json(&["image", "render", "--overlay", &point, second.to_str().unwrap()]);
    let actions: Vec<_> = again["layers"].as_array().unwrap().iter().map(|l| l["action"].clone()).collect();
    assert_eq!(actions.iter().filter(|a| *a == "unpacked").count(), 1, "{again}");
    let got = manifest(&second.join("rootfs"), ALL);
    crate::support::unmount_when_free(&second.join("rootfs")).unwrap();
    let flat = scratch.path().join("flat");
    root.ok(&["image", "render", &point, flat.to_str().unwrap()]);
    assert_same("rebuilt erofs", &got, "flattened", &manifest(&flat, ALL));
    root.assert_fsck_clean();
}

#[test]
fn without_erofs_mounts_berth_falls_back_to_directory_snapshots_and_says_so_once() {
    if !is_root() {
        return;
    }
    // Root of a user namespace may mount overlayfs but not EROFS: the probe fails and the
    // render goes on with directory snapshots. The layer avoids what such a root cannot
    // write (devices, other owners, trusted xattrs).
    let dir = tempfile::tempdir().unwrap();
    let layer = tar(
        dir.path(),
        "plain",
        r#"
d("etc"); f("etc/a", b"a", xattrs={"user.k": "v"}); sym("etc/l", "a"); hl("etc/h", "etc/a")
d("usr", mode=0o750); f("usr/x", b"x" * 5000, mode=0o755); d("usr/empty")
"#,
    );
    let layout = dir.path().join("layout");
    layout_from_tars(&layout, &[("plain", vec![&layer])]);
    let point = layout_arg(&layout, "plain");
    let root = Root::new();
    root.ok(&["fetch", "-q", &point]);
    // First as root: a layer image, left mounted in the store. A namespace sees that
    // mount but cannot make new ones, so it must not take the mount for a working probe.
    let first = dir.path().join("first");
    let out = root.json(&["image", "render", "--overlay", &point, first.to_str().unwrap()]);
    assert_eq!(out["snapshotter"], "erofs", "{out}");
    let erofs = manifest(&first.join("rootfs"), ALL);
    crate::support::unmount_when_free(&first.join("rootfs")).unwrap();

    let target = dir.path().join("ns");
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(crate::support::berth_bin())
        .args(["image", "render", "--overlay", &point, target.to_str().unwrap()])
        .env("BERTH_ROOT", root.path())
        .env_remove("BERTH_SNAPSHOTTER")
        .env_remove("BERTH_LOG")
        .output()
        .expect("unshare is needed (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said: Vec<_> = stderr.lines().filter(|l| l.contains("EROFS snapshots unavailable")).collect();
    assert_eq!(said.len(), 1, "one line says why: {stderr}");
    assert!(said[0].contains("using directory snapshots"), "{stderr}");

    // A one-layer image: its directory snapshot is its rootfs; it equals the EROFS render.
    let snapshot = root.snapshot_trees().into_iter().find(|t| t.starts_with(root.path().join("snapshots")));
    let snapshot = snapshot.expect("the fallback wrote a directory snapshot");
    let fallback = manifest(&snapshot, ALL);
    assert_same("directory snapshot (fallback)", &fallback, "erofs", &erofs);
    assert!(fallback["/etc/h"].contains("nlink=2") && fallback["/etc/a"].contains("xattr:user.k="));
}
