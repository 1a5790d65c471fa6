//! Real-world tar quirks: a corpus of odd and hostile layers (escapes, hardlink tricks,
//! devices, long names, sparse files, xattrs, duplicates, special modes, whiteouts,
//! damaged streams), each rendered by `umoci unpack` and by berth in its three forms
//! (flattened; overlay of directory snapshots; overlay of EROFS layer images).
//!
//! For every case: berth accepts what umoci accepts and renders the same tree in every
//! form, refuses what umoci refuses (exit 5 for hostile content, 6 for a damaged stream,
//! naming the entry), and where it deliberately refuses what umoci accepts, the case says
//! so (docs/decisions.md says why). Nothing is ever written beside the render target
//! (a sentinel directory holds it), nor at the host paths a case aims at, and a refused
//! render leaves no rootfs and no unfinished snapshot.
//!
//! Layers are written by Python (`tarfile` for ordinary entries, raw headers for the rest)
//! so each case says exactly which bytes, in which order; the layout is written directly so
//! any blob passes through unchanged.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::render::{ALL, LayerBlob, is_root, layout_from_blobs};
use crate::support::{Root, layout_arg, run_tool};
use crate::tree::{Compare, assert_same, manifest};

/// Helpers for the case scripts. `layer()` starts a layer (`gz=True`: gzip it; `cut=N`:
/// keep N bytes of the blob; `tail=b"…"`: bytes after the blob); `raw_layer(bytes)` is a
/// layer of exactly those tar bytes. `end()` writes `layers.json` into the directory
/// given as the first argument: each layer's file, media type and diff ID (the digest of
/// the whole tar, before any damage to the blob).
const PRELUDE: &str = r#"
import gzip, hashlib, io, json, os, sys, tarfile
OUT = sys.argv[1]
T = 1700000000
_layers = []
class _Layer:
    def __init__(self, gz=False, cut=None, tail=b"", raw=None):
        self.buf = io.BytesIO(); self.raw = raw; self.gz = gz; self.cut = cut; self.tail = tail
        self.tar = None if raw is not None else tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
    def _add(self, ti, data=None, xattrs=None):
        ti.mtime = ti.mtime or T
        if xattrs:
            ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
        self.tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    def d(self, name, mode=0o755, uid=0, gid=0, mtime=T, xattrs=None):
        ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = mode; ti.uid = uid; ti.gid = gid; ti.mtime = mtime
        self._add(ti, None, xattrs)
    def f(self, name, data=b"", mode=0o644, uid=0, gid=0, xattrs=None, mtime=T):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.uid = uid; ti.gid = gid; ti.mtime = mtime
        self._add(ti, data, xattrs)
    def sym(self, name, target):
        ti = tarfile.TarInfo(name); ti.type = tarfile.SYMTYPE; ti.linkname = target; ti.mode = 0o777
        self._add(ti)
    def hl(self, name, target):
        ti = tarfile.TarInfo(name); ti.type = tarfile.LNKTYPE; ti.linkname = target; ti.mode = 0o644
        self._add(ti)
    def dev(self, name, kind, major, minor, mode=0o666):
        ti = tarfile.TarInfo(name); ti.type = kind; ti.devmajor = major; ti.devminor = minor; ti.mode = mode
        self._add(ti)
    def fifo(self, name, mode=0o600):
        ti = tarfile.TarInfo(name); ti.type = tarfile.FIFOTYPE; ti.mode = mode
        self._add(ti)
    def bytes(self):
        if self.raw is not None:
            return self.raw
        self.tar.close()
        return self.buf.getvalue()
def layer(**kw):
    l = _Layer(**kw); _layers.append(l); return l
def raw_layer(data, **kw):
    l = _Layer(raw=data, **kw); _layers.append(l); return l
def pad(b):
    return b + b"\0" * ((512 - len(b) % 512) % 512)
END = b"\0" * 1024
def header(name, size, typeflag=b"0", mode=0o644, gnu=False, link=b""):
    h = bytearray(512)
    h[0:len(name)] = name; h[157:157 + len(link)] = link
    h[100:108] = b"%07o\0" % mode; h[108:116] = b"0000000\0"; h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size; h[136:148] = b"%011o\0" % T; h[156:157] = typeflag
    h[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)
def member(name, data, mode=0o644):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.mtime = T
    return ti.tobuf(tarfile.PAX_FORMAT) + pad(data)
def gnu_long(name, data=b"", typeflag=b"0", link=None):
    # GNU longname ('L') / longlink ('K') records, then the entry.
    out = b""
    if len(name) > 99:
        out += header(b"././@LongLink", len(name) + 1, b"L", gnu=True) + pad(name + b"\0")
    if link is not None and len(link) > 99:
        out += header(b"././@LongLink", len(link) + 1, b"K", gnu=True) + pad(link + b"\0")
    return out + header(name[:99], len(data), typeflag, gnu=True, link=(link or b"")[:99]) + pad(data)
def pax_record(k, v):
    k = k.encode(); v = v.encode() if isinstance(v, str) else v
    n = len(k) + len(v) + 3
    size = len(str(n)) + n
    if len(str(size)) != len(str(n)): size += 1
    return b"%d %s=%s\n" % (size, k, v)
def pax_member(records, name, data):
    recs = b"".join(pax_record(k, v) for k, v in records)
    return header(b"./PaxHeaders/x", len(recs), b"x") + pad(recs) + header(name, len(data)) + pad(data)
def gnu_sparse_old(name, regions, real_size):
    # Old GNU sparse ('S'): up to 4 regions in the header.
    h = bytearray(header(name, sum(len(d) for _, d in regions), b"S", gnu=True))
    for i, (off, data) in enumerate(regions):
        h[386 + i * 24:398 + i * 24] = b"%011o\0" % off
        h[398 + i * 24:410 + i * 24] = b"%011o\0" % len(data)
    h[483:495] = b"%011o\0" % real_size
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h) + pad(b"".join(d for _, d in regions))
def end():
    out = []
    for i, l in enumerate(_layers):
        tar = l.bytes()
        blob = gzip.compress(tar, mtime=0) if l.gz else tar
        if l.cut is not None: blob = blob[:l.cut]
        blob += l.tail
        name = "layer%d" % i
        open(os.path.join(OUT, name), "wb").write(blob)
        mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if l.gz else "")
        out.append({"file": name, "media_type": mt, "diff_id": "sha256:" + hashlib.sha256(tar).hexdigest()})
    json.dump(out, open(os.path.join(OUT, "layers.json"), "w"))
"#;

/// What a case expects of umoci and berth.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// umoci renders it; berth renders the same tree in every form.
    Same,
    /// umoci refuses it; berth refuses it too, with this exit code, naming this entry
    /// (`None`: a stream that is damaged before any entry).
    Refused(i32, Option<&'static str>),
    /// umoci renders it; berth refuses it on purpose (docs/decisions.md says why).
    Deliberate(i32, &'static str),
}

struct Case {
    script: &'static str,
    expect: Expect,
    cmp: Compare,
    /// (path, text its manifest line must hold); text `!` means the path must be absent.
    must: &'static [(&'static str, &'static str)],
    /// Host paths the case aims at, which must never appear.
    host: &'static [&'static str],
}

const SAME: Case = Case { script: "", expect: Expect::Same, cmp: ALL, must: &[], host: &[] };

/// Directories a layer implies without describing them are made "now" by umoci and
/// berth alike: their mtimes differ by the moment.
const IMPLIED: Compare = Compare { dir_mtimes: false };

/// Write the case's layers, build its layout, and render it every way.
fn run_case(name: &str, case: Case) {
    if !is_root() {
        eprintln!("skipped: needs root (devices, owners, overlay and EROFS mounts)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layers_dir = work.path().join("layers");
    std::fs::create_dir(&layers_dir).unwrap();
    let script = format!("{PRELUDE}\n{}\nend()\n", case.script);
    let out = Command::new("python3").arg("-c").arg(&script).arg(&layers_dir).output().expect("python3 is needed");
    assert!(out.status.success(), "case {name}: script failed: {}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layers_dir.join("layers.json")).unwrap()).unwrap();
    let blobs: Vec<LayerBlob> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| LayerBlob {
            bytes: std::fs::read(layers_dir.join(l["file"].as_str().unwrap())).unwrap(),
            media_type: l["media_type"].as_str().unwrap().into(),
            diff_id: l["diff_id"].as_str().unwrap().into(),
        })
        .collect();
    let layer_count = blobs.len();
    let layout = work.path().join("layout");
    layout_from_blobs(&layout, &[("case", blobs)]);

    let theirs = umoci_outcome(&layout, work.path());
    match (case.expect, &theirs) {
        (Expect::Same | Expect::Deliberate(..), Err(e)) => panic!("case {name}: umoci refused it: {e}"),
        (Expect::Refused(..), Ok(_)) => panic!("case {name}: umoci rendered it"),
        _ => {}
    }

    for form in ["flat", "dir", "erofs"] {
        let ours = berth_outcome(&layout, form, layer_count, name);
        match (case.expect, ours) {
            (Expect::Same, Ok(tree)) => {
                let umoci = theirs.as_ref().expect("checked above");
                assert_same(&format!("berth ({form})"), &pick(&tree, case.cmp), "umoci", &pick(umoci, case.cmp));
                for (path, text) in case.must {
                    match (*text, tree.get(*path)) {
                        ("!", None) => {}
                        ("!", Some(line)) => panic!("case {name} ({form}): {path} should be absent: {line}"),
                        (text, Some(line)) => {
                            assert!(line.contains(text), "case {name} ({form}): {path}: {text:?} not in {line}")
                        }
                        (_, None) => panic!("case {name} ({form}): {path} is missing"),
                    }
                }
            }
            (Expect::Same, Err((code, err))) => panic!("case {name} ({form}): berth refused it ({code}): {err}"),
            (Expect::Refused(..) | Expect::Deliberate(..), Err((code, err))) => {
                assert_eq!(code, code_of(case.expect), "case {name} ({form}): exit code: {err}");
                assert!(err.starts_with("berth: "), "case {name} ({form}): {err}");
                if let Some(entry) = entry_of(case.expect) {
                    assert!(err.contains(&format!("{entry:?}")), "case {name} ({form}): should name {entry:?}: {err}");
                }
            }
            (_, Ok(_)) => panic!("case {name} ({form}): berth rendered what it should refuse"),
        }
    }
    for path in case.host {
        assert!(!Path::new(path).exists(), "case {name}: {path} was written on the host");
    }
}

fn code_of(expect: Expect) -> i32 {
    match expect {
        Expect::Refused(code, _) | Expect::Deliberate(code, _) => code,
        Expect::Same => 0,
    }
}

fn entry_of(expect: Expect) -> Option<&'static str> {
    match expect {
        Expect::Refused(_, entry) => entry,
        Expect::Deliberate(_, entry) => Some(entry),
        Expect::Same => None,
    }
}

/// A manifest without what `cmp` leaves out (it is applied when taking manifests;
/// umoci's was taken with every field).
fn pick(tree: &BTreeMap<String, String>, cmp: Compare) -> BTreeMap<String, String> {
    tree.iter()
        .map(|(k, v)| {
            let keep = cmp.dir_mtimes || !v.starts_with("dir ");
            let v = if keep {
                v.clone()
            } else {
                v.split(' ').filter(|f| !f.starts_with("mtime=")).collect::<Vec<_>>().join(" ")
            };
            (k.clone(), v)
        })
        .collect()
}

/// umoci's render of the case, in a directory of its own with a sentinel beside it.
fn umoci_outcome(layout: &Path, work: &Path) -> Result<BTreeMap<String, String>, String> {
    let dir = work.join("umoci");
    std::fs::create_dir(&dir).unwrap();
    let out = Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:case", layout.display())])
        .arg(dir.join("bundle"))
        .output()
        .expect("umoci is needed (`just setup`)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(manifest(&dir.join("bundle/rootfs"), ALL))
}

/// Every path under `dir` but the render target's, with its type and size.
fn listing(dir: &Path) -> Vec<String> {
    let out = run_tool("find", &[dir.to_str().unwrap(), "-printf", "%p %y %s\n"], Path::new("/"));
    let target = dir.join("scratch/target").display().to_string();
    let inside = format!("{target}/");
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with(&inside) && l.split(' ').next() != Some(target.as_str()))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// berth's render of the case in `form` (`flat`, or an overlay of `dir`/`erofs`
/// snapshots): its tree, or its exit code and message. Checks that nothing was written
/// beside the target, and that a refused render left no rootfs and no unfinished snapshot.
fn berth_outcome(
    layout: &Path,
    form: &str,
    layers: usize,
    name: &str,
) -> Result<BTreeMap<String, String>, (i32, String)> {
    let root = if form == "flat" { Root::new() } else { Root::with_snapshotter(form) };
    let point = layout_arg(layout, "case");
    root.ok(&["fetch", "-q", &point]);
    // parent/ holds a sentinel beside scratch/, where the render goes.
    let parent = tempfile::tempdir().unwrap();
    std::fs::create_dir(parent.path().join("scratch")).unwrap();
    std::fs::write(parent.path().join("sentinel"), b"untouched").unwrap();
    let before = listing(parent.path());
    let target = parent.path().join("scratch/target");
    let mut args = vec!["image", "render"];
    if form != "flat" {
        args.push("--overlay");
    }
    args.extend([point.as_str(), target.to_str().unwrap()]);
    let (code, _, err) = root.run(&args);
    let outcome = if code == 0 {
        let rootfs = if form == "flat" { target.clone() } else { target.join("rootfs") };
        let tree = manifest(&rootfs, ALL);
        if form != "flat" {
            let unmounted = crate::support::unmount_when_free(&rootfs);
            assert!(unmounted.is_ok(), "unmounting {}: {unmounted:?}", rootfs.display());
            if form == "erofs" {
                root.assert_fsck_clean();
            }
        }
        Ok(tree)
    } else {
        if form == "flat" {
            assert!(!target.exists(), "case {name} ({form}): a refused render left {}", target.display());
        } else {
            // The mount point may have been made; nothing is mounted or left in it.
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            assert!(!info.contains(target.to_str().unwrap()), "case {name} ({form}): something is mounted");
            let _ = std::fs::remove_dir_all(&target);
            let snapshots: Vec<String> = std::fs::read_dir(root.path().join("snapshots"))
                .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            assert!(
                snapshots.iter().all(|s| !s.starts_with('.')) && snapshots.len() < layers,
                "case {name} ({form}): an unfinished or refused snapshot remains: {snapshots:?}"
            );
        }
        Err((code, err))
    };
    assert_eq!(listing(parent.path()), before, "case {name} ({form}): something was written beside the target");
    assert_eq!(std::fs::read(parent.path().join("sentinel")).unwrap(), b"untouched");
    outcome
}

macro_rules! cases {
    ($($name:ident: $case:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name), $case);
            }
        )*
        /// Every case, for the count the issue asks for.
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

#[test]
fn the_corpus_has_at_least_25_layers() {
    assert!(CASES.len() >= 25, "{}", CASES.len());
}

cases! {
    // Debian's `var/run -> /run`: an entry through it lands in /run, as in umoci.
    through_an_absolute_dir_symlink_in_the_same_layer: Case {
        script: r#"
b = layer()
b.d("run"); b.d("run/lock", mode=0o1777); b.d("var"); b.sym("var/run", "/run"); b.sym("var/lock", "/run/lock")
b.f("var/run/foo.pid", b"1\n"); b.d("var/lock/sub"); b.f("var/lock/sub/x", b"x")
"#,
        must: &[("/run/foo.pid", "file"), ("/var/run", "symlink"), ("/run/lock/sub/x", "file")],
        ..SAME
    };
    // The same with the symlink in a lower layer and a tool-written layer on top (no
    // directory entries): the snapshot resolves through the lower layer's symlink.
    through_an_absolute_dir_symlink_of_a_lower_layer: Case {
        script: concat!(r#"
b = layer()
b.d("run"); b.d("run/lock", mode=0o1777); b.d("var"); b.d("etc")
b.sym("var/run", "/run"); b.sym("var/lock", "/run/lock"); b.f("etc/passwd", b"root:x:0:0\n")
"#, r#"
u = layer(); u.f("var/run/foo.pid", b"1\n"); u.d("var/lock/sub", mode=0o700); u.f("var/lock/sub/x", b"x")
u.f("var/run/.wh.gone")
"#),
        must: &[("/run/foo.pid", "file"), ("/var/run", "symlink"), ("/run/lock/sub", "mode=700"), ("/var/lock", "symlink")],
        ..SAME
    };
    whiteout_through_a_lower_layers_symlink: Case {
        script: r#"
b = layer(); b.d("run"); b.d("var"); b.sym("var/run", "/run"); b.f("run/x", b"x"); b.f("run/y", b"y")
u = layer(); u.f("var/run/.wh.x")
"#,
        must: &[("/run/x", "!"), ("/run/y", "file")],
        ..SAME
    };
    dotdot_escape_is_clamped_at_the_root: Case {
        script: r#"l = layer(); l.f("../berth-quirk-canary", b"owned")"#,
        must: &[("/berth-quirk-canary", "file")],
        ..SAME
    };
    nested_dotdot_escape_is_clamped_at_the_root: Case {
        script: r#"l = layer(); l.d("a"); l.f("a/../../../berth-quirk-canary", b"owned")"#,
        must: &[("/berth-quirk-canary", "file")],
        ..SAME
    };
    absolute_entry_path_is_inside_the_root: Case {
        script: r#"l = layer(); l.d("tmp", mode=0o1777); l.f("/tmp/berth-quirk-absolute", b"owned")"#,
        must: &[("/tmp/berth-quirk-absolute", "file")],
        host: &["/tmp/berth-quirk-absolute"],
        ..SAME
    };
    symlink_to_root_then_an_entry_through_it: Case {
        script: r#"l = layer(); l.d("tmp"); l.sym("up", "/"); l.f("up/tmp/berth-quirk-via-root", b"owned")"#,
        must: &[("/tmp/berth-quirk-via-root", "file")],
        host: &["/tmp/berth-quirk-via-root"],
        ..SAME
    };
    relative_symlink_out_then_an_entry_through_it: Case {
        script: r#"l = layer(); l.sym("up", "../.."); l.f("up/berth-quirk-canary", b"owned")"#,
        must: &[("/berth-quirk-canary", "file")],
        ..SAME
    };
    directory_replaced_by_a_symlink_out_between_entries: Case {
        script: r#"
l = layer(); l.d("tmp"); l.d("d"); l.f("d/ok", b"fine"); l.sym("d", "/tmp"); l.f("d/berth-quirk-swapped", b"owned")
"#,
        must: &[("/tmp/berth-quirk-swapped", "file"), ("/d", "symlink")],
        host: &["/tmp/berth-quirk-swapped"],
        ..SAME
    };
    symlink_with_dotdot_past_the_root: Case {
        script: r#"l = layer(); l.d("a"); l.d("a/b"); l.sym("a/b/up", "../../../../a"); l.f("a/b/up/x", b"x")"#,
        must: &[("/a/x", "file")],
        ..SAME
    };
    symlink_loop_on_the_path: Case {
        script: r#"l = layer(); l.sym("a", "b"); l.sym("b", "a"); l.f("a/x", b"x")"#,
        expect: Expect::Refused(5, Some("a/x")),
        ..SAME
    };
    file_on_the_path: Case {
        script: r#"l = layer(); l.f("f", b"f"); l.f("f/x", b"x")"#,
        expect: Expect::Refused(5, Some("f/x")),
        ..SAME
    };
    root_replaced_by_a_symlink: Case {
        script: r#"l = layer(); l.sym(".", "/tmp"); l.f("berth-quirk-root", b"owned")"#,
        expect: Expect::Refused(5, Some(".")),
        host: &["/tmp/berth-quirk-root"],
        ..SAME
    };
    root_directory_entry_sets_the_roots_metadata: Case {
        script: r#"l = layer(); l.d(".", mode=0o750, uid=12, gid=34); l.f("x", b"x")"#,
        must: &[("/", "mode=750 uid=12 gid=34")],
        ..SAME
    };
    hardlink_out_of_the_tree_to_a_file_inside: Case {
        script: r#"l = layer(); l.d("etc"); l.f("etc/passwd", b"p"); l.hl("passwd", "../../../../etc/passwd")"#,
        must: &[("/passwd", "nlink=2")],
        ..SAME
    };
    hardlink_out_of_the_tree_to_nothing: Case {
        script: r#"l = layer(); l.hl("passwd", "../../../../etc/passwd")"#,
        expect: Expect::Refused(5, Some("passwd")),
        ..SAME
    };
    hardlink_through_a_symlink_loop: Case {
        script: r#"l = layer(); l.sym("etc", "/etc"); l.hl("passwd", "etc/passwd")"#,
        expect: Expect::Refused(5, Some("passwd")),
        ..SAME
    };
    hardlink_through_an_absolute_dir_symlink: Case {
        script: concat!(r#"
b = layer()
b.d("run"); b.d("run/lock", mode=0o1777); b.d("var"); b.d("etc")
b.sym("var/run", "/run"); b.sym("var/lock", "/run/lock"); b.f("etc/passwd", b"root:x:0:0\n")
"#, r#"b.f("run/x", b"x"); b.hl("y", "var/run/x")"#),
        must: &[("/y", "nlink=2"), ("/run/x", "nlink=2")],
        ..SAME
    };
    hardlink_to_a_symlink: Case {
        script: r#"l = layer(); l.f("t", b"t"); l.sym("s", "t"); l.hl("h", "s")"#,
        must: &[("/h", "target=t")],
        ..SAME
    };
    hardlink_to_a_file_replaced_later: Case {
        script: r#"l = layer(); l.f("a", b"one"); l.hl("b", "a"); l.f("a", b"two")"#,
        must: &[("/b", "nlink=1"), ("/a", "nlink=1")],
        ..SAME
    };
    hardlink_chain: Case {
        script: r#"l = layer(); l.f("a", b"a"); l.hl("b", "a"); l.hl("c", "b"); l.hl("d", "c")"#,
        must: &[("/d", "nlink=4")],
        ..SAME
    };
    hardlink_to_a_directory: Case {
        script: r#"l = layer(); l.d("dir"); l.hl("h", "dir")"#,
        expect: Expect::Refused(5, Some("h")),
        ..SAME
    };
    devices_and_fifos: Case {
        script: r#"
l = layer(); l.d("dev"); l.dev("dev/null", tarfile.CHRTYPE, 1, 3); l.dev("dev/sda", tarfile.BLKTYPE, 8, 0, 0o660); l.fifo("dev/fifo")
"#,
        must: &[("/dev/null", "char"), ("/dev/sda", "block"), ("/dev/fifo", "fifo")],
        ..SAME
    };
    name_of_255_bytes: Case {
        script: r#"l = layer(); l.d("d"); l.f("d/" + "n" * 255, b"x")"#,
        ..SAME
    };
    name_of_256_bytes: Case {
        script: r#"l = layer(); l.f("n" * 256, b"x")"#,
        expect: Expect::Refused(5, None),
        ..SAME
    };
    path_of_4000_bytes_in_pax: Case {
        script: r#"l = layer(); l.f("/".join(["d" * 199] * 20) + "/file", b"deep")"#,
        cmp: IMPLIED,
        ..SAME
    };
    path_over_4096_bytes_in_pax: Case {
        script: r#"l = layer(); l.f("/".join(["d" * 200] * 21) + "/file", b"deep")"#,
        expect: Expect::Refused(5, None),
        ..SAME
    };
    path_over_4096_bytes_as_gnu_longname: Case {
        script: r#"raw_layer(gnu_long(b"/".join([b"g" * 200] * 21) + b"/file", b"deep") + END)"#,
        expect: Expect::Refused(5, None),
        ..SAME
    };
    gnu_longname_and_longlink: Case {
        script: r#"raw_layer(gnu_long(b"l", typeflag=b"2", link=b"t" * 300) + gnu_long(b"h" * 150, typeflag=b"2", link=b"u" * 150) + END)"#,
        must: &[("/l", "symlink")],
        ..SAME
    };
    symlink_target_over_4096_bytes: Case {
        script: r#"l = layer(); l.sym("l", "t" * 4096)"#,
        expect: Expect::Refused(5, Some("l")),
        ..SAME
    };
    old_gnu_sparse_file: Case {
        script: r#"raw_layer(gnu_sparse_old(b"sparse", [(0, b"a" * 512), (8192, b"b" * 512), (16384, b"")], 16384) + END)"#,
        expect: Expect::Refused(5, Some("sparse")),
        ..SAME
    };
    pax_sparse_file_format_1_0: Case {
        script: r#"
m = pad(b"2\n0\n100\n8192\n100\n")
raw_layer(pax_member([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", "sparse"), ("GNU.sparse.realsize", "16384")],
    b"./GNUSparseFile.0/sparse", m + b"a" * 100 + b"b" * 100) + END)
"#,
        must: &[("/sparse", "size=16384")],
        ..SAME
    };
    pax_sparse_file_format_0_1: Case {
        script: r#"
raw_layer(pax_member([("GNU.sparse.major", "0"), ("GNU.sparse.minor", "1"), ("GNU.sparse.name", "sp01"), ("GNU.sparse.realsize", "9000"),
    ("GNU.sparse.numblocks", "2"), ("GNU.sparse.map", "0,10,8990,10")], b"./GNUSparseFile.0/sp01", b"a" * 10 + b"b" * 10) + END)
"#,
        must: &[("/sp01", "size=9000")],
        ..SAME
    };
    xattrs_in_pax_records: Case {
        script: r#"
cap = "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12
l = layer(); l.f("ping", b"p", mode=0o755, xattrs={"security.capability": cap, "user.a": "1", "trusted.t": "t"})
l.d("d", xattrs={"user.dir": "d"})
"#,
        must: &[("/ping", "xattr:security.capability="), ("/ping", "xattr:trusted.t="), ("/d", "xattr:user.dir=")],
        ..SAME
    };
    overlay_xattrs_in_a_layer_are_ignored: Case {
        script: r#"
a = layer(); a.d("d"); a.f("d/lower", b"l")
b = layer(); b.d("d", xattrs={"trusted.overlay.opaque": "y"}); b.f("d/upper", b"u")
b.f("f", b"f", xattrs={"security.selinux": "x_u:y_r:z_t", "trusted.overlay.origin": "z", "user.kept": "k"})
"#,
        must: &[("/d/lower", "file"), ("/f", "xattr:user.kept=")],
        ..SAME
    };
    file_then_directory_of_the_same_name: Case {
        script: r#"l = layer(); l.f("x", b"x"); l.d("x", mode=0o700); l.f("x/in", b"in")"#,
        must: &[("/x", "dir mode=700"), ("/x/in", "file")],
        ..SAME
    };
    directory_then_file_of_the_same_name: Case {
        script: r#"l = layer(); l.d("x", mtime=T + 5); l.f("x/in", b"in"); l.f("x", b"file", mode=0o600)"#,
        must: &[("/x", "file mode=600")],
        ..SAME
    };
    same_file_twice: Case {
        script: r#"l = layer(); l.f("x", b"one", mode=0o600); l.f("x", b"two", mode=0o640)"#,
        must: &[("/x", "file mode=640")],
        ..SAME
    };
    same_directory_twice: Case {
        script: r#"l = layer(); l.d("x", mode=0o700, mtime=T + 1); l.f("x/a", b"a"); l.d("x", mode=0o750, mtime=T + 2)"#,
        must: &[("/x", "dir mode=750")],
        ..SAME
    };
    setuid_setgid_and_sticky_bits: Case {
        script: r#"
l = layer(); l.f("su", b"su", mode=0o4755); l.f("sg", b"sg", mode=0o2755, gid=5); l.d("tmp", mode=0o1777)
l.f("all", b"", mode=0o7777, uid=1000)
"#,
        must: &[("/su", "mode=4755"), ("/sg", "mode=2755"), ("/tmp", "mode=1777"), ("/all", "mode=7777 uid=1000")],
        ..SAME
    };
    zero_length_files: Case {
        script: r#"l = layer(); l.f("empty", b""); l.f("empty-exec", b"", mode=0o755); l.d("d"); l.f("d/e", b"")"#,
        must: &[("/empty", "size=0"), ("/d/e", "size=0")],
        ..SAME
    };
    whiteouts_of_paths_that_do_not_exist: Case {
        script: r#"
a = layer(); a.d("a"); a.f("a/x", b"x")
b = layer(); b.f(".wh.nothing"); b.f("a/.wh.missing"); b.f("b/c/.wh.x"); b.f("none/.wh..wh..opq")
"#,
        must: &[("/a/x", "file"), ("/b", "!"), ("/none", "!")],
        ..SAME
    };
    opaque_directory: Case {
        script: r#"
a = layer(); a.d("o"); a.f("o/lower", b"l"); a.d("o/sub"); a.f("o/sub/deep", b"d")
b = layer(); b.d("o", mtime=T + 5); b.f("o/mine", b"m"); b.f("o/.wh..wh..opq")
"#,
        must: &[("/o/mine", "file"), ("/o/lower", "!"), ("/o/sub", "!")],
        ..SAME
    };
    // What a layer wrote stays; what lower layers had there goes. (umoci leaves the
    // directories its whiteout walk emptied with the walk's time; berth with the layer's.)
    whiteout_after_entries_of_the_same_layer: Case {
        script: r#"
a = layer(); a.d("a"); a.f("a/lower", b"l"); a.d("a/sub"); a.f("a/sub/lower", b"l")
b = layer(); b.d("a", mtime=T + 3); b.d("a/sub", mtime=T + 4); b.f("a/sub/mine", b"m"); b.f(".wh.a")
"#,
        must: &[("/a/sub/mine", "file"), ("/a/lower", "!"), ("/a/sub/lower", "!")],
        cmp: IMPLIED,
        ..SAME
    };
    // A layer written without its directories' entries (as `umoci insert` writes them):
    // in a snapshot, the directories take the lower layer's metadata.
    directories_a_layer_implies: Case {
        script: r#"
a = layer(); a.d("usr", mode=0o751, uid=3, gid=4, mtime=T - 100); a.d("usr/bin", mode=0o711, mtime=T - 50); a.f("usr/bin/old", b"o")
b = layer(); b.f("usr/bin/tool", b"t", mode=0o755); b.f("usr/bin/.wh.old")
"#,
        must: &[("/usr", "mode=751 uid=3 gid=4"), ("/usr/bin/old", "!")],
        ..SAME
    };
    // `.wh..` names the directory itself: umoci 0.4.7 removes what it holds from lower
    // layers (and `.wh...` the parent, at the top the rootfs's own parent); containerd
    // refuses such names, and so does berth.
    whiteout_of_dot: Case {
        script: r#"l = layer(); l.d("a"); l.f("a/keep", b"k"); l.f("a/.wh..")"#,
        expect: Expect::Deliberate(5, "a/.wh.."),
        ..SAME
    };
    // `.wh...` at the top names the rootfs's parent: umoci 0.4.7 removes its whole bundle
    // directory, then fails.
    whiteout_of_dotdot_at_the_top: Case {
        script: r#"
a = layer(); a.f("x", b"x")
b = layer(); b.f(".wh...")
"#,
        expect: Expect::Refused(5, Some(".wh...")),
        ..SAME
    };
    contiguous_file_type: Case {
        script: r#"raw_layer(header(b"c", 4, b"7") + pad(b"data") + END)"#,
        expect: Expect::Refused(5, Some("c")),
        ..SAME
    };
    truncated_gzip: Case {
        script: r#"l = layer(gz=True, cut=30000); l.f("big", bytes(range(256)) * 200 + os.urandom(50000))"#,
        expect: Expect::Refused(6, None),
        ..SAME
    };
    garbage_after_the_gzip_stream: Case {
        script: r#"l = layer(gz=True, tail=b"\0" * 100); l.f("x", b"x")"#,
        expect: Expect::Refused(6, None),
        ..SAME
    };
    garbage_after_the_tar_end: Case {
        script: r#"raw_layer(member("x", b"x") + END + b"garbage after the end" * 50)"#,
        must: &[("/x", "file")],
        ..SAME
    };
    tar_without_end_blocks: Case {
        script: r#"raw_layer(member("a", b"a" * 512) + member("x", b"hello"))"#,
        must: &[("/x", "size=5")],
        ..SAME
    };
    tar_without_padding_or_end_blocks: Case {
        script: r#"raw_layer(member("a", b"a" * 512) + member("x", b"hello")[:-507])"#,
        must: &[("/x", "size=5")],
        ..SAME
    };
    tar_truncated_inside_file_data: Case {
        script: r#"raw_layer(member("a", b"a" * 512) + member("x", b"y" * 1000)[:-24 - 400])"#,
        expect: Expect::Refused(6, Some("x")),
        ..SAME
    };
    tar_truncated_inside_a_header: Case {
        script: r#"raw_layer(member("a", b"a" * 512) + member("x", b"y")[:300])"#,
        expect: Expect::Refused(6, None),
        ..SAME
    };
}
