//! `berth image render`: flattened and overlay rootfs against what `umoci unpack` renders
//! for the same image, and snapshot sharing (the corpus of odd and hostile layers is in
//! `tar_quirks`).
//!
//! Layers are tar files written by Python's `tarfile` (so a test can say exactly which
//! entries, in which order) and added to images by `umoci raw add-layer`, or, for the
//! hostile ones umoci would not pass through, written into a layout directly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{Root, layout_arg, run_tool, sha256_hex, write_blob};
use crate::tree::{Compare, assert_same, manifest};

/// Helpers every tar script can use; the script writes to the tar `out`.
const TAR_PRELUDE: &str = r#"
import io, sys, tarfile
out = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
T = 1700000000
def _add(ti, data=None, xattrs=None):
    ti.mtime = ti.mtime or T
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    out.addfile(ti, io.BytesIO(data) if data is not None else None)
def d(name, mode=0o755, uid=0, gid=0, mtime=T):
    ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = mode; ti.uid = uid; ti.gid = gid; ti.mtime = mtime
    _add(ti)
def f(name, data=b"", mode=0o644, uid=0, gid=0, xattrs=None, mtime=T):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.uid = uid; ti.gid = gid; ti.mtime = mtime
    _add(ti, data, xattrs)
def sym(name, target, uid=0, gid=0):
    ti = tarfile.TarInfo(name); ti.type = tarfile.SYMTYPE; ti.linkname = target; ti.mode = 0o777; ti.uid = uid; ti.gid = gid
    _add(ti)
def hl(name, target):
    ti = tarfile.TarInfo(name); ti.type = tarfile.LNKTYPE; ti.linkname = target; ti.mode = 0o644
    _add(ti)
def dev(name, kind, major, minor, mode=0o666):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.devmajor = major; ti.devminor = minor; ti.mode = mode
    _add(ti)
def fifo(name, mode=0o600):
    ti = tarfile.TarInfo(name); ti.type = tarfile.FIFOTYPE; ti.mode = mode
    _add(ti)
"#;

/// Run a tar script (see [`TAR_PRELUDE`]) and return the tar's path.
pub(crate) fn tar(dir: &Path, name: &str, script: &str) -> PathBuf {
    let path = dir.join(format!("{name}.tar"));
    let full = format!("{TAR_PRELUDE}\n{script}\nout.close()\n");
    let out = Command::new("python3").arg("-c").arg(&full).arg(&path).output().expect("python3 is needed");
    assert!(out.status.success(), "tar script {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    path
}

// `security.capability` v2 for cap_net_raw (bit 13), effective.
const CAP_NET_RAW: &str = r#"b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00""#;

fn base_script() -> String {
    format!(
        r##"
d("etc"); d("usr"); d("usr/bin"); d("bin"); d("tmp", mode=0o1777); d("dev"); d("run"); d("home"); d("home/user", mode=0o700, uid=1000, gid=1000)
f("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
f("etc/hosts", b"127.0.0.1 localhost\n", xattrs={{"user.origin": "base"}})
f("usr/bin/su", b"#!/bin/true su\n", mode=0o4755)
f("usr/bin/wall", b"#!/bin/true wall\n", mode=0o2755, gid=5)
f("usr/bin/ping", b"#!/bin/true ping\n", mode=0o755, xattrs={{"security.capability": {CAP_NET_RAW}.decode("latin-1")}})
hl("usr/bin/su-again", "usr/bin/su")
sym("bin/sh", "../usr/bin/su")
sym("etc/localtime", "/usr/share/zoneinfo/UTC")
f("home/user/notes", b"mine\n", mode=0o600, uid=1000, gid=1000)
fifo("run/initctl")
dev("dev/null", tarfile.CHRTYPE, 1, 3)
dev("dev/loop9", tarfile.BLKTYPE, 7, 9, mode=0o660)
d("opt"); d("opt/old"); f("opt/old/a", b"a"); f("opt/old/b", b"b")
d("var"); d("var/keep"); f("var/keep/x", b"x"); f("var/keep/y", b"y")
d("srv"); f("srv/thing", b"a file that becomes a directory")
d("data"); f("data/inner", b"a directory that becomes a file")
"##
    )
}

const CHANGES_SCRIPT: &str = r#"
d("etc", mtime=T + 10)
f("etc/.wh.hosts")
f("etc/.wh.passwd"); f("etc/passwd", b"root:x:0:0::/root:/bin/ash\n", mtime=T + 11)
d("var", mtime=T + 10); d("var/keep", mtime=T + 12); f("var/keep/.wh..wh..opq"); f("var/keep/z", b"z")
d("opt", mtime=T + 10); f("opt/.wh.old")
d("srv", mtime=T + 10); d("srv/thing", mode=0o750); f("srv/thing/inside", b"now a directory")
f("data", b"now a file", mode=0o640)
"#;

const READD_SCRIPT: &str = r#"
d("etc", mtime=T + 20)
f("etc/hosts", b"10.0.0.1 back\n", mtime=T + 21)
d("opt", mtime=T + 20); d("opt/old", mode=0o711, mtime=T + 22); f("opt/old/c", b"c")
"#;

const LOWER_HARDLINK_SCRIPT: &str = r#"
d("usr", mtime=T + 30); d("usr/bin", mtime=T + 30)
hl("usr/bin/su-third", "usr/bin/su")
"#;

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) layout: PathBuf,
}

/// Layout `layout` with refs:
/// - `features`: base (every entry type, setuid/setgid/sticky, owners, xattrs incl.
///   security.capability), changes (whiteouts, opaque dir, whiteout + re-add in one
///   layer, dir↔file replacements), re-adds after deletion, and umoci's own whiteout
///   (`umoci insert --whiteout`).
/// - `features-raw`: `features` without umoci's whiteout layer, whose `usr/bin/.wh.wall`
///   comes without entries for `usr` and `usr/bin`, so every layer names its directories.
/// - `features-hardlink`: `features` plus a layer hardlinking a file of a lower layer.
pub(crate) fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let base = tar(work, "base", &base_script());
        let changes = tar(work, "changes", CHANGES_SCRIPT);
        let readd = tar(work, "readd", READD_SCRIPT);
        let hardlink = tar(work, "hardlink", LOWER_HARDLINK_SCRIPT);
        let umoci = |args: &[&str]| run_tool("umoci", args, work);
        umoci(&["init", "--layout", "layout"]);
        umoci(&["new", "--image", "layout:features"]);
        for t in [&base, &changes, &readd] {
            umoci(&["raw", "add-layer", "--image", "layout:features", t.to_str().unwrap()]);
        }
        umoci(&["tag", "--image", "layout:features", "features-raw"]);
        umoci(&["insert", "--image", "layout:features", "--whiteout", "/usr/bin/wall"]);
        umoci(&["tag", "--image", "layout:features", "features-hardlink"]);
        umoci(&["raw", "add-layer", "--image", "layout:features-hardlink", hardlink.to_str().unwrap()]);
        Fixture { layout: work.join("layout"), _dir: dir }
    })
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// umoci's render of `reference`: `<bundle>/rootfs`.
pub(crate) fn umoci_unpack(layout: &Path, reference: &str, bundle: &Path) -> PathBuf {
    run_tool(
        "umoci",
        &["unpack", "--image", &format!("{}:{reference}", layout.display()), bundle.to_str().unwrap()],
        Path::new("/"),
    );
    bundle.join("rootfs")
}

// Both umoci and berth set directory mtimes from the layers, so they are compared too.
pub(crate) const ALL: Compare = Compare { dir_mtimes: true };

fn render_matches_umoci(reference: &str) {
    if !is_root() {
        eprintln!("skipped: needs root (devices, ownership, security.capability)");
        return;
    }
    let fx = fixture();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    root.ok(&["fetch", "-q", &layout_arg(&fx.layout, reference)]);
    let ours = scratch.path().join("berth");
    root.ok(&["image", "render", &layout_arg(&fx.layout, reference), ours.to_str().unwrap()]);
    let theirs = umoci_unpack(&fx.layout, reference, &scratch.path().join("bundle"));
    let (a, b) = (manifest(&ours, ALL), manifest(&theirs, ALL));
    assert_same("berth", &a, "umoci", &b);
    // The fixture really covers what it claims (a test that cannot fail is a defect).
    assert!(a["/usr/bin/su"].contains("mode=4755"), "{}", a["/usr/bin/su"]);
    assert!(a["/usr/bin/ping"].contains("xattr:security.capability="), "{}", a["/usr/bin/ping"]);
    assert!(a["/dev/null"].starts_with("char") && a["/run/initctl"].starts_with("fifo"));
    assert!(!a.contains_key("/etc/.wh.hosts") && !a.contains_key("/var/keep/x"));
    assert!(a.contains_key("/var/keep/z"));
    assert_eq!(a.contains_key("/usr/bin/wall"), reference == "features-raw", "umoci insert --whiteout removes it");
    assert!(a.contains_key("/opt/old/c") && !a.contains_key("/opt/old/a"));
    assert!(a["/srv/thing"].starts_with("dir") && a["/data"].starts_with("file"));
}

#[test]
fn flattened_render_equals_umoci_unpack() {
    render_matches_umoci("features");
}

#[test]
fn hardlink_to_a_lower_layer_renders_as_umoci_does() {
    render_matches_umoci("features-hardlink");
    let fx = fixture();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    root.ok(&["fetch", "-q", &layout_arg(&fx.layout, "features-hardlink")]);
    let out = scratch.path().join("r");
    root.ok(&["image", "render", &layout_arg(&fx.layout, "features-hardlink"), out.to_str().unwrap()]);
    let su = std::fs::metadata(out.join("usr/bin/su")).unwrap();
    let third = std::fs::metadata(out.join("usr/bin/su-third")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(su.ino(), third.ino(), "a hardlink shares its target's inode");
}

#[test]
fn overlay_rootfs_equals_flattened_rootfs() {
    if !is_root() {
        eprintln!("skipped: needs root (overlay mount)");
        return;
    }
    let fx = fixture();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    let point = layout_arg(&fx.layout, "features-raw");
    root.ok(&["fetch", "-q", &point]);
    let flat = scratch.path().join("flat");
    root.ok(&["image", "render", &point, flat.to_str().unwrap()]);
    let ov = scratch.path().join("ov");
    root.ok(&["image", "render", "--overlay", &point, ov.to_str().unwrap()]);
    let mounted = ov.join("rootfs");
    let got = manifest(&mounted, ALL);
    let unmount = crate::support::unmount_when_free(&mounted);
    assert!(unmount.is_ok(), "unmounting {}: {unmount:?}", mounted.display());
    assert_same("overlay", &got, "flattened", &manifest(&flat, ALL));
}

#[test]
fn overlay_render_refuses_a_hardlink_to_a_lower_layer_and_says_so() {
    if !is_root() {
        return;
    }
    let fx = fixture();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    let point = layout_arg(&fx.layout, "features-hardlink");
    root.ok(&["fetch", "-q", &point]);
    let ov = scratch.path().join("ov");
    let (code, _, err) = root.run(&["image", "render", "--overlay", &point, ov.to_str().unwrap()]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("usr/bin/su-third"), "{err}");
    let leftovers: Vec<_> =
        std::fs::read_dir(root.path().join("snapshots")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().starts_with(".tmp")), "{leftovers:?}");
}

/// An OCI layout holding one image per entry of `images` (ref → its layer tars,
/// bottom first), written directly so any tar passes through unchanged.
pub(crate) fn layout_from_tars(layout: &Path, images: &[(&str, Vec<&Path>)]) {
    let images: Vec<(&str, Vec<LayerBlob>)> = images
        .iter()
        .map(|(reference, tars)| (*reference, tars.iter().map(|t| LayerBlob::of_file(t)).collect()))
        .collect();
    layout_from_blobs(layout, &images);
}

/// A layer as a layout holds it: the blob, its media type and the diff ID the config
/// gives it (for a damaged blob, the digest of the tar it should have held).
pub(crate) struct LayerBlob {
    pub(crate) bytes: Vec<u8>,
    pub(crate) media_type: String,
    pub(crate) diff_id: String,
}

impl LayerBlob {
    /// A tar file, or a `.gz`/`.zst` one (its diff ID is the digest of the tar inside).
    pub(crate) fn of_file(path: &Path) -> LayerBlob {
        let bytes = std::fs::read(path).unwrap();
        let (media_type, tool) = match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => ("application/vnd.oci.image.layer.v1.tar+gzip", Some("gzip")),
            Some("zst") => ("application/vnd.oci.image.layer.v1.tar+zstd", Some("zstd")),
            _ => ("application/vnd.oci.image.layer.v1.tar", None),
        };
        let diff_id = match tool {
            Some(tool) => {
                let out = Command::new(tool).arg("-dc").arg(path).output().unwrap();
                assert!(out.status.success());
                format!("sha256:{}", sha256_hex(&out.stdout))
            }
            None => format!("sha256:{}", sha256_hex(&bytes)),
        };
        LayerBlob { bytes, media_type: media_type.into(), diff_id }
    }
}

/// An OCI layout holding one image per entry of `images` (ref → its layers, bottom
/// first).
pub(crate) fn layout_from_blobs(layout: &Path, images: &[(&str, Vec<LayerBlob>)]) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut manifests = Vec::new();
    for (reference, blobs) in images {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for blob in blobs {
            let digest = write_blob(layout, &blob.bytes);
            diff_ids.push(blob.diff_id.clone());
            layers.push(serde_json::json!({"mediaType": blob.media_type, "digest": digest, "size": blob.bytes.len()}));
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_digest = write_blob(layout, &config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&manifest)), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }));
        write_blob(layout, &manifest);
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn a_second_image_reuses_the_snapshot_of_a_shared_base_layer() {
    second_image_reuses_the_shared_base_layer("dir");
}

#[test]
fn a_second_image_reuses_the_erofs_image_of_a_shared_base_layer() {
    second_image_reuses_the_shared_base_layer("erofs");
}

/// Snapshots of the form `form` (`dir` or `erofs`) are shared, and removed by gc.
fn second_image_reuses_the_shared_base_layer(form: &str) {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = tar(dir.path(), "base", &base_script());
    let top_a = tar(dir.path(), "a", r#"f("a", b"a")"#);
    let top_b = tar(dir.path(), "b", r#"f("b", b"b")"#);
    let layout = dir.path().join("layout");
    layout_from_tars(&layout, &[("a", vec![&base, &top_a]), ("b", vec![&base, &top_b])]);
    let root = Root::with_snapshotter(form);
    root.ok(&["fetch", "-q", &layout_arg(&layout, "a")]);
    root.ok(&["fetch", "-q", &layout_arg(&layout, "b")]);

    let first = root.json(&[
        "image",
        "render",
        "--overlay",
        &layout_arg(&layout, "a"),
        dir.path().join("ra").to_str().unwrap(),
    ]);
    let actions: Vec<_> =
        first["layers"].as_array().unwrap().iter().map(|l| l["action"].as_str().unwrap().to_string()).collect();
    assert_eq!(actions, ["unpacked", "unpacked"]);
    assert_eq!(first["snapshotter"], form);
    let suffix = if form == "erofs" { ".erofs" } else { "" };
    let base_snapshot =
        root.path().join("snapshots").join(format!("sha256-{}{suffix}", sha256_hex(&std::fs::read(&base).unwrap())));
    use std::os::unix::fs::MetadataExt;
    let before = std::fs::metadata(&base_snapshot).unwrap();

    let second = root.json(&[
        "image",
        "render",
        "--overlay",
        &layout_arg(&layout, "b"),
        dir.path().join("rb").to_str().unwrap(),
    ]);
    let actions: Vec<_> =
        second["layers"].as_array().unwrap().iter().map(|l| l["action"].as_str().unwrap().to_string()).collect();
    assert_eq!(actions, ["reused", "unpacked"]);
    let after = std::fs::metadata(&base_snapshot).unwrap();
    assert_eq!((before.ino(), before.mtime(), before.mtime_nsec()), (after.ino(), after.mtime(), after.mtime_nsec()));
    assert_eq!(std::fs::read(dir.path().join("rb/rootfs/b")).unwrap(), b"b");
    assert!(dir.path().join("rb/rootfs/usr/bin/su").exists());
    for m in ["ra", "rb"] {
        crate::support::unmount_when_free(&dir.path().join(m).join("rootfs")).unwrap();
    }

    // Once no image needs them, gc removes the snapshots.
    root.ok(&["image", "rm", &layout_arg(&layout, "a")]);
    assert!(base_snapshot.exists(), "b still needs the base snapshot");
    root.ok(&["image", "rm", &layout_arg(&layout, "b")]);
    root.ok(&["gc"]);
    assert_eq!(std::fs::read_dir(root.path().join("snapshots")).unwrap().count(), 0);
    if form == "erofs" {
        let mounts = std::fs::read_dir(root.path().join("mounts")).unwrap().count();
        assert_eq!(mounts, 0, "gc removes the layer mounts of removed images");
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!info.contains(root.path().to_str().unwrap()), "nothing stays mounted in the store: {info}");
    }
}

#[test]
fn gzip_and_zstd_layers_render_like_the_plain_tar() {
    let dir = tempfile::tempdir().unwrap();
    let base =
        tar(dir.path(), "base", r#"d("etc"); f("etc/motd", b"hello " * 10000, mode=0o640); sym("etc/link", "motd")"#);
    let top = tar(dir.path(), "top", r#"d("etc"); f("etc/.wh.motd"); f("etc/new", b"new")"#);
    run_tool("gzip", &["-k", "-n", base.to_str().unwrap()], dir.path());
    run_tool("zstd", &["-q", "-k", top.to_str().unwrap()], dir.path());
    let layout = dir.path().join("layout");
    let gz = dir.path().join("base.tar.gz");
    let zst = dir.path().join("top.tar.zst");
    layout_from_tars(&layout, &[("plain", vec![&base, &top]), ("compressed", vec![&gz, &zst])]);
    let root = Root::new();
    let mut trees = Vec::new();
    for r in ["plain", "compressed"] {
        root.ok(&["fetch", "-q", &layout_arg(&layout, r)]);
        let out = dir.path().join(format!("out-{r}"));
        root.ok(&["image", "render", &layout_arg(&layout, r), out.to_str().unwrap()]);
        trees.push(manifest(&out, ALL));
    }
    assert_same("plain", &trees[0], "gzip+zstd", &trees[1]);
    assert!(trees[1].contains_key("/etc/new") && !trees[1].contains_key("/etc/motd"));
}

#[test]
fn concurrent_renders_of_the_same_layers_both_succeed() {
    if !is_root() {
        return;
    }
    let fx = fixture();
    let root = Root::new();
    let point = layout_arg(&fx.layout, "features-raw");
    root.ok(&["fetch", "-q", &point]);
    let scratch = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..3)
        .map(|n| {
            let target = scratch.path().join(format!("r{n}"));
            root.cmd(&["image", "render", "--overlay", &point, target.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let mut trees = Vec::new();
    for n in 0..3 {
        let rootfs = scratch.path().join(format!("r{n}/rootfs"));
        trees.push(manifest(&rootfs, ALL));
        crate::support::unmount_when_free(&rootfs).unwrap();
    }
    assert_same("render 0", &trees[0], "render 1", &trees[1]);
    assert_same("render 0", &trees[0], "render 2", &trees[2]);
    let names: Vec<_> =
        std::fs::read_dir(root.path().join("snapshots")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "one snapshot per layer, no leftovers: {names:?}");
}

#[test]
fn corrupt_layer_is_refused_by_its_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tar(dir.path(), "l", r#"f("hello", b"hello")"#);
    let layout = dir.path().join("layout");
    layout_from_tars(&layout, &[("x", vec![&layer])]);
    // Change the config's diff_id, keeping every blob consistent with its descriptor.
    let m = crate::support::manifest_of(&layout, "x");
    let cfg_digest = m["config"]["digest"].as_str().unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(&crate::support::read_blob(&layout, cfg_digest)).unwrap();
    cfg["rootfs"]["diff_ids"][0] = format!("sha256:{}", "0".repeat(64)).into();
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let mut m2 = m.clone();
    m2["config"]["digest"] = write_blob(&layout, &cfg_bytes).into();
    m2["config"]["size"] = cfg_bytes.len().into();
    let mbytes = serde_json::to_vec(&m2).unwrap();
    let mdigest = write_blob(&layout, &mbytes);
    crate::support::set_ref(&layout, "x", &mdigest, mbytes.len());
    let root = Root::new();
    root.ok(&["fetch", "-q", &layout_arg(&layout, "x")]);
    let out = dir.path().join("r");
    let (code, _, err) = root.run(&["image", "render", &layout_arg(&layout, "x"), out.to_str().unwrap()]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("uncompressed digest"), "{err}");
    assert!(!out.exists());
}

#[test]
fn verify_finds_every_change_to_a_rendered_tree_and_nothing_in_an_untouched_one() {
    let fx = fixture();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    let point = layout_arg(&fx.layout, "features-raw");
    root.ok(&["fetch", "-q", &point]);
    let out = scratch.path().join("r");
    let o = out.to_str().unwrap();
    root.ok(&["image", "render", "-q", &point, o]);
    assert!(root.ok(&["image", "verify", o]).contains("unchanged"));

    let (code, _, err) = root.run(&["image", "verify", scratch.path().to_str().unwrap()]);
    assert_eq!(code, 3, "a tree berth did not render: {err}");

    // Same size, same mtime, different bytes: only the content hash can tell.
    let passwd = out.join("etc/passwd");
    let mtime = std::fs::metadata(&passwd).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&passwd).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&passwd, &bytes).unwrap();
    std::fs::File::options().write(true).open(&passwd).unwrap().set_modified(mtime).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(out.join("usr/bin/su"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(out.join("data")).unwrap();
    std::fs::write(out.join("srv/thing/new"), b"x").unwrap();

    let (code, stdout, err) = root.run(&["image", "verify", o]);
    assert_eq!(code, 6, "{stdout}{err}");
    for line in
        ["changed  /etc/passwd (content)", "changed  /usr/bin/su (mode)", "removed  /data", "added    /srv/thing/new"]
    {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let (code, stdout, _) = root.run(&["--json", "image", "verify", o]);
    assert_eq!(code, 6);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["unchanged"], false);
    assert!(report["differences"].as_array().unwrap().iter().any(|d| d["change"] == "removed" && d["path"] == "/data"));

    // gc forgets the record once the tree is gone.
    std::fs::remove_dir_all(&out).unwrap();
    let gc = root.json(&["gc"]);
    assert_eq!(gc["render_records_removed"], 1, "{gc}");
}

#[test]
fn extract_writes_rootfs_manifest_and_config_and_rootfs_only_equals_render() {
    let fx = fixture();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    let point = layout_arg(&fx.layout, "features-raw");
    root.ok(&["fetch", "-q", &point]);
    let id = root.json(&["image", "inspect", &point])["id"].as_str().unwrap().to_string();

    let ex = scratch.path().join("ex");
    root.ok(&["image", "extract", "-q", &point, ex.to_str().unwrap()]);
    let mut names: Vec<_> = std::fs::read_dir(&ex).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["config", "manifest", "rootfs"]);
    assert_eq!(format!("sha256:{}", sha256_hex(&std::fs::read(ex.join("manifest")).unwrap())), id);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(ex.join("config")).unwrap()).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert!(
        root.ok(&["image", "verify", ex.to_str().unwrap()]).contains("unchanged"),
        "verify takes DIR for DIR/rootfs"
    );

    let only = scratch.path().join("only");
    root.ok(&["image", "extract", "-q", "--rootfs-only", &point, only.to_str().unwrap()]);
    let rendered = scratch.path().join("rendered");
    root.ok(&["image", "render", "-q", &point, rendered.to_str().unwrap()]);
    assert_same("extract", &manifest(&ex.join("rootfs"), ALL), "render", &manifest(&rendered, ALL));
    assert_same("extract --rootfs-only", &manifest(&only, ALL), "render", &manifest(&rendered, ALL));

    let (code, _, err) = root.run(&["image", "extract", &point, ex.to_str().unwrap()]);
    assert_eq!(code, 2, "an existing extract is not overwritten: {err}");
}
