//! appc: ACIs built and validated by `actool`, signed with `gpg`, found through appc
//! discovery on a local HTTP server (reached as a plain-HTTP proxy for the `.invalid`
//! names, so nothing leaves the machine), and hostile ACIs assembled by a script.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::support::{Root, run_tool};
use crate::tree;

const SERVER: &str = include_str!("server.py");

/// Where discovery finds every test image: `https://berth.invalid/aci/{name}-{version}-{os}-{arch}.{ext}`.
const HOST: &str = "berth.invalid";

/// ACIs, keys and the server's document root, built once and only read by tests.
struct World {
    dir: tempfile::TempDir,
    /// The armored public key that signed every image meant to be trusted.
    trusted_key: PathBuf,
    /// A key that signed `untrusted` and is never trusted.
    other_key: PathBuf,
    /// ACI files outside the server, for `aci-archive` tests.
    files: PathBuf,
}

impl World {
    fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(build_world)
}

fn gpg(home: &Path, args: &[&str]) {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .expect("gpg runs (`just setup` installs gnupg)");
    assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn sign(home: &Path, user: &str, aci: &Path) {
    let asc = format!("{}.asc", aci.display());
    gpg(
        home,
        &["--yes", "--armor", "--local-user", user, "--detach-sign", "--output", &asc, &aci.display().to_string()],
    );
}

/// An image layout for `actool build`: `manifest` and a rootfs holding `files`
/// (path, contents) and busybox applets when `busybox` is set.
fn layout(dir: &Path, manifest: &serde_json::Value, busybox: bool, files: &[(&str, &str)]) {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(dir.join("manifest"), serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
    if busybox {
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "echo", "cat", "id", "pwd", "env", "true", "ls"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
    }
    for (path, contents) in files {
        let p = rootfs.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
    }
}

fn labels(version: &str) -> serde_json::Value {
    serde_json::json!([
        {"name": "version", "value": version},
        {"name": "os", "value": "linux"},
        {"name": "arch", "value": "amd64"}
    ])
}

/// Build `name` (version 1.0) with actool into the server's tree, validate it, and
/// return its path.
fn build_aci(
    w: &Path,
    name: &str,
    manifest_extra: serde_json::Value,
    busybox: bool,
    files: &[(&str, &str)],
) -> PathBuf {
    let mut manifest = serde_json::json!({
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": labels("1.0"),
    });
    for (k, v) in manifest_extra.as_object().unwrap() {
        manifest[k] = v.clone();
    }
    let src = w.join("src").join(name);
    layout(&src, &manifest, busybox, files);
    let out = w.join("www").join(HOST).join("aci").join(format!("{name}-1.0-linux-amd64.aci"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    run_tool("actool", &["build", "--overwrite", &src.display().to_string(), &out.display().to_string()], w);
    run_tool("actool", &["validate", &out.display().to_string()], w);
    out
}

/// `sha512-<hex>` of the decompressed ACI: its appc image ID.
fn image_id(aci: &Path) -> String {
    let out = Command::new("sh").arg("-c").arg(format!("gzip -dc '{}' | sha512sum", aci.display())).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha512-{}", text.split_whitespace().next().unwrap())
}

/// Discovery metadata for `name`, served at `https://berth.invalid/<path>?ac-discovery=1`.
fn discovery(w: &Path, name: &str) {
    let path = name.strip_prefix(&format!("{HOST}/")).unwrap();
    let dir = w.join("www").join(HOST).join(path);
    std::fs::create_dir_all(&dir).unwrap();
    let html = format!(
        "<!DOCTYPE html>\n<html><head>\n\
         <meta name=\"ac-discovery\" content=\"{HOST} https://{HOST}/aci/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}\">\n\
         <meta name=\"ac-discovery-pubkeys\" content=\"{HOST} https://{HOST}/pubkeys.gpg\">\n\
         </head><body>{name}</body></html>\n"
    );
    std::fs::write(dir.join("discovery.html"), html).unwrap();
}

fn build_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let home = w.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    gpg(&home, &["--quick-gen-key", "Berth Test <trusted@berth.invalid>", "ed25519", "sign", "never"]);
    gpg(&home, &["--quick-gen-key", "Someone Else <other@berth.invalid>", "ed25519", "sign", "never"]);
    let trusted_key = w.join("trusted.asc");
    let other_key = w.join("other.asc");
    gpg(&home, &["--armor", "--output", &trusted_key.display().to_string(), "--export", "trusted@berth.invalid"]);
    gpg(&home, &["--armor", "--output", &other_key.display().to_string(), "--export", "other@berth.invalid"]);
    std::fs::create_dir_all(w.join("www").join(HOST)).unwrap();
    std::fs::copy(&trusted_key, w.join("www").join(HOST).join("pubkeys.gpg")).unwrap();
    let trusted = "trusted@berth.invalid";

    // base: busybox; app: a script on top of it, run as 1000:1000 in /srv, with a
    // whitelist that drops base's `cat` and `ls`.
    let base = build_aci(w, "berth.invalid/base", serde_json::json!({}), true, &[("/etc/base-release", "base 1.0\n")]);
    let app = build_aci(
        w,
        "berth.invalid/app",
        serde_json::json!({
            "app": {
                "exec": ["/bin/sh", "-c", "echo hello from $GREETING; id -u; id -g; pwd"],
                "user": "1000",
                "group": "1000",
                "workingDirectory": "/srv",
                "environment": [{"name": "GREETING", "value": "appc"}]
            },
            "dependencies": [{
                "imageName": "berth.invalid/base",
                "imageID": image_id(&base),
                "labels": labels("1.0"),
            }],
            "pathWhitelist": [
                "/bin/busybox", "/bin/sh", "/bin/echo", "/bin/id", "/bin/pwd", "/bin/env", "/bin/true",
                "/etc/base-release", "/srv/app.txt"
            ]
        }),
        false,
        &[("/srv/app.txt", "the app\n")],
    );
    // mid: on top of base, with a whitelist of its own that drops base's `ls` and
    // base-release; top: on top of mid, with no whitelist (so mid's applies below it).
    let dependency = |name: &str, aci: &Path| serde_json::json!([{ "imageName": name, "imageID": image_id(aci), "labels": labels("1.0") }]);
    let mid = build_aci(
        w,
        "berth.invalid/mid",
        serde_json::json!({
            "dependencies": dependency("berth.invalid/base", &base),
            "pathWhitelist": ["/bin/busybox", "/bin/sh", "/bin/cat", "/etc/mid"]
        }),
        false,
        &[("/etc/mid", "mid\n"), ("/etc/mid-extra", "not in mid's whitelist\n")],
    );
    let top = build_aci(
        w,
        "berth.invalid/top",
        serde_json::json!({
            "app": { "exec": ["/bin/sh", "-c", "/bin/cat /etc/mid"], "user": "0", "group": "0" },
            "dependencies": dependency("berth.invalid/mid", &mid)
        }),
        false,
        &[("/srv/top", "top\n")],
    );
    for aci in [&base, &app, &mid, &top] {
        sign(&home, trusted, aci);
    }
    for name in ["berth.invalid/base", "berth.invalid/app", "berth.invalid/mid", "berth.invalid/top"] {
        discovery(w, name);
    }
    // The host's own metadata: where `berth trust --prefix berth.invalid` finds keys.
    let meta = std::fs::read_to_string(w.join("www").join(HOST).join("app/discovery.html")).unwrap();
    std::fs::write(w.join("www").join(HOST).join("discovery.html"), meta).unwrap();

    let untrusted = build_aci(w, "berth.invalid/untrusted", serde_json::json!({}), false, &[("/x", "x\n")]);
    sign(&home, "other@berth.invalid", &untrusted);
    discovery(w, "berth.invalid/untrusted");

    // Signed, then changed: the same name rebuilt with other contents.
    let tampered = build_aci(w, "berth.invalid/tampered", serde_json::json!({}), false, &[("/x", "original\n")]);
    sign(&home, trusted, &tampered);
    let sig = std::fs::read(format!("{}.asc", tampered.display())).unwrap();
    build_aci(w, "berth.invalid/tampered", serde_json::json!({}), false, &[("/x", "changed\n")]);
    std::fs::write(format!("{}.asc", tampered.display()), sig).unwrap();
    discovery(w, "berth.invalid/tampered");

    build_aci(w, "berth.invalid/unsigned", serde_json::json!({}), false, &[("/x", "x\n")]);
    discovery(w, "berth.invalid/unsigned");

    // Discovery of `liar` serves an image that calls itself `app`.
    let liar = w.join("www").join(HOST).join("aci/berth.invalid/liar-1.0-linux-amd64.aci");
    std::fs::copy(&app, &liar).unwrap();
    sign(&home, trusted, &liar);
    discovery(w, "berth.invalid/liar");

    for (me, other) in [("cycle-a", "cycle-b"), ("cycle-b", "cycle-a")] {
        let aci = build_aci(
            w,
            &format!("berth.invalid/{me}"),
            serde_json::json!({"dependencies": [{"imageName": format!("berth.invalid/{other}"), "labels": labels("1.0")}]}),
            false,
            &[("/x", "x\n")],
        );
        sign(&home, trusted, &aci);
        discovery(w, &format!("berth.invalid/{me}"));
    }

    // Local files: the signed app with its signature beside it; hostile archives.
    let files = w.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::copy(&base, files.join("base.aci")).unwrap();
    std::fs::copy(format!("{}.asc", base.display()), files.join("base.aci.asc")).unwrap();
    hostile_acis(&files);
    let _ = Command::new("gpgconf").env("GNUPGHOME", &home).args(["--kill", "gpg-agent"]).status();
    World { dir, trusted_key, other_key, files }
}

/// ACIs no tool would write, assembled with Python's tarfile.
fn hostile_acis(files: &Path) {
    let script = r#"
import io, json, sys, tarfile
out = sys.argv[1]
manifest = json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "berth.invalid/hostile"}).encode()
def aci(name, entries, manifest=manifest):
    with tarfile.open(f"{out}/{name}", "w") as t:
        info = tarfile.TarInfo("manifest"); info.size = len(manifest)
        t.addfile(info, io.BytesIO(manifest))
        d = tarfile.TarInfo("rootfs"); d.type = tarfile.DIRTYPE; d.mode = 0o755
        t.addfile(d)
        for path, kind, data in entries:
            info = tarfile.TarInfo(path)
            if kind == "file":
                info.size = len(data); t.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE; info.linkname = data; t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE; info.linkname = data; t.addfile(info)
aci("traversal.aci", [("rootfs/../../escaped", "file", b"out\n")])
aci("symlink-out.aci", [("rootfs/up", "symlink", "../../.."), ("rootfs/up/escaped", "file", b"out\n")])
aci("hardlink-out.aci", [("rootfs/link", "hardlink", "manifest")])
aci("not-json.aci", [("rootfs/x", "file", b"x\n")], manifest=b"this is not JSON")
aci("whiteout-names.aci", [("rootfs/.wh.keep", "file", b"a plain file in appc\n"), ("rootfs/x", "file", b"x\n")])
"#;
    run_tool("python3", &["-c", script, &files.display().to_string()], files);
}

/// The test server over the world's document root, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start() -> Server {
        let w = world();
        let log = tempfile::NamedTempFile::new().unwrap().into_temp_path().keep().unwrap();
        let script = w.dir.path().join("server.py");
        if !script.exists() {
            std::fs::write(&script, SERVER).unwrap();
        }
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(w.www())
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        Server { child, port: line.trim().parse().expect("the server prints its port"), log }
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// berth reaching the `.invalid` names through this server, plain HTTP allowed.
    fn berth(&self, root: &Root, args: &[&str]) -> (i32, String, String) {
        let proxy = format!("http://127.0.0.1:{}", self.port);
        let out = root
            .cmd(args)
            .env("HTTP_PROXY", &proxy)
            .env("HTTPS_PROXY", &proxy)
            .env("http_proxy", &proxy)
            .env("https_proxy", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, root: &Root, args: &[&str]) -> String {
        let (code, out, err) = self.berth(root, args);
        assert_eq!(code, 0, "berth {args:?} failed ({code}): {err}");
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn trust(root: &Root, prefix: &str, key: &Path) {
    root.ok(&["trust", "--prefix", prefix, "--skip-fingerprint-review", &key.display().to_string()]);
}

const APP: &str = "cimd:appc:v=0:berth.invalid/app?version=1.0";

#[test]
fn each_dependency_s_own_whitelist_applies_to_what_it_provides_as_rkt_did() {
    let root = Root::new();
    let server = Server::start();
    trust(&root, HOST, &world().trusted_key);
    let top = "cimd:appc:v=0:berth.invalid/top?version=1.0";
    server.ok(&root, &["fetch", "--insecure-options", "http", top]);
    assert_eq!(root.image_count(), 3, "top, mid and base");
    let t = tempfile::tempdir().unwrap();
    let flat = t.path().join("flat");
    root.ok(&["image", "render", top, &flat.display().to_string()]);
    // top has no whitelist: its own file stays.
    assert_eq!(std::fs::read_to_string(flat.join("srv/top")).unwrap(), "top\n");
    // mid's whitelist filters mid's own files...
    assert_eq!(std::fs::read_to_string(flat.join("etc/mid")).unwrap(), "mid\n");
    assert!(std::fs::symlink_metadata(flat.join("etc/mid-extra")).is_err(), "mid's own file outside its list");
    // ...and base's, below it.
    assert!(flat.join("bin/busybox").is_file() && flat.join("bin/cat").exists(), "listed by mid");
    assert!(std::fs::symlink_metadata(flat.join("bin/ls")).is_err(), "base's file outside mid's list");
    assert!(std::fs::symlink_metadata(flat.join("etc/base-release")).is_err(), "base's file outside mid's list");
    // The overlay rootfs and a run see the same.
    let over = t.path().join("over");
    root.ok(&["image", "render", "--overlay", top, &over.display().to_string()]);
    let cmp = tree::Compare { dir_mtimes: false };
    tree::assert_same("flattened", &tree::manifest(&flat, cmp), "overlay", &tree::manifest(&over.join("rootfs"), cmp));
    let _ = rustix::mount::unmount(over.join("rootfs"), rustix::mount::UnmountFlags::DETACH);
    let (code, out, err) = server.berth(&root, &["run", top, "--", "/bin/sh", "-c", "/bin/cat /etc/mid; /bin/ls /"]);
    assert_eq!(out, "mid\n", "{err}");
    assert_eq!(code, 127, "ls is not there: {err}");
}

#[test]
fn a_discovered_signed_aci_and_its_dependency_fetch_render_and_run() {
    let root = Root::new();
    let server = Server::start();
    trust(&root, HOST, &world().trusted_key);
    let out = server.ok(&root, &["fetch", "--insecure-options", "http", APP]);
    assert!(out.contains(APP), "{out}");
    let log = server.requests();
    assert!(log.contains("GET http://berth.invalid/app?ac-discovery=1"), "discovery went through the proxy: {log}");
    assert!(log.contains("berth.invalid/base-1.0-linux-amd64.aci"), "the dependency was discovered: {log}");
    assert_eq!(root.image_count(), 2, "the image and its dependency");

    let image = root.json(&["image", "inspect", APP]);
    assert_eq!(image["record"]["format"], "appc", "{image}");
    let appc_id = image["appcImageId"].as_str().unwrap();
    assert!(appc_id.starts_with("sha512-"), "{image}");
    // `image list` shows it as rkt did, beside the manifest digest.
    let listed = root.ok(&["image", "list"]);
    assert!(listed.contains("APPC ID") && listed.contains(&appc_id[..19]), "{listed}");
    let rows = root.json(&["image", "list"]);
    assert!(rows.as_array().unwrap().iter().any(|r| r["appcImageId"] == appc_id), "{rows}");

    // Rendered in appc order, with the app's whitelist applied.
    let t = tempfile::tempdir().unwrap();
    let flat = t.path().join("flat");
    root.ok(&["image", "render", APP, &flat.display().to_string()]);
    assert_eq!(std::fs::read_to_string(flat.join("srv/app.txt")).unwrap(), "the app\n");
    assert_eq!(std::fs::read_to_string(flat.join("etc/base-release")).unwrap(), "base 1.0\n");
    assert!(flat.join("bin/busybox").is_file(), "the dependency's files are there");
    assert!(std::fs::symlink_metadata(flat.join("bin/cat")).is_err(), "not in the whitelist: removed");
    assert!(!flat.join("manifest").exists(), "the ACI manifest is not part of the rootfs");

    // The overlay rootfs holds the same tree.
    let over = t.path().join("over");
    root.ok(&["image", "render", "--overlay", APP, &over.display().to_string()]);
    let cmp = tree::Compare { dir_mtimes: false };
    tree::assert_same("flattened", &tree::manifest(&flat, cmp), "overlay", &tree::manifest(&over.join("rootfs"), cmp));
    let _ = rustix::mount::unmount(over.join("rootfs"), rustix::mount::UnmountFlags::DETACH);

    // The app's exec, user, group, working directory and environment.
    let out = root.ok(&["run", "--net", "none", APP]);
    assert_eq!(out, "hello from appc\n1000\n1000\n/srv\n");
    // `--` replaces the exec.
    let out = root.ok(&["run", "--net", "none", APP, "--", "/bin/echo", "overridden"]);
    assert_eq!(out, "overridden\n");
    root.assert_fsck_clean();

    // The dependency stays while the app needs it; both go together.
    let base = "cimd:appc:v=0:berth.invalid/base?arch=amd64&os=linux&version=1.0";
    let (code, _, err) = root.run(&["image", "rm", base]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("dependency of") && err.contains("berth.invalid/app"), "{err}");
    assert_eq!(root.image_count(), 2);
    root.ok(&["image", "rm", base, APP]);
    assert_eq!(root.image_count(), 0);
    root.assert_fsck_clean();
}

#[test]
fn an_untrusted_key_a_tampered_aci_and_a_missing_signature_are_refused_and_nothing_is_stored() {
    let root = Root::new();
    let server = Server::start();
    trust(&root, HOST, &world().trusted_key);
    for (name, expect) in [("untrusted", "verif"), ("tampered", "verif"), ("unsigned", "signature")] {
        let point = format!("cimd:appc:v=0:berth.invalid/{name}?version=1.0");
        let (code, _, err) = server.berth(&root, &["fetch", "--insecure-options", "http", &point]);
        assert_ne!(code, 0, "{name} must be refused");
        assert!(err.to_lowercase().contains(expect), "{name}: {err}");
        assert_eq!(root.image_count(), 0, "{name}: nothing stored");
        assert!(root.blob_names().is_empty(), "{name}: no blob left: {:?}", root.blob_names());
    }
    // A key for another prefix does not count.
    let other = Root::new();
    trust(&other, "berth.invalid/elsewhere", &world().trusted_key);
    let (code, _, err) = server.berth(&other, &["fetch", "--insecure-options", "http", APP]);
    assert_ne!(code, 0);
    assert!(err.contains("berth trust"), "the error says how to trust a key: {err}");
    // --insecure-options=image stores it anyway.
    server
        .ok(&root, &["fetch", "--insecure-options", "http,image", "cimd:appc:v=0:berth.invalid/unsigned?version=1.0"]);
    assert_eq!(root.image_count(), 1);
    let _ = &world().other_key;
}

#[test]
fn plain_http_discovery_needs_the_insecure_option() {
    let root = Root::new();
    let server = Server::start();
    trust(&root, HOST, &world().trusted_key);
    let (code, _, err) = server.berth(&root, &["fetch", APP]);
    assert_ne!(code, 0);
    assert!(err.contains("insecure"), "the error names the option: {err}");
    assert_eq!(root.image_count(), 0);
}

#[test]
fn an_image_whose_name_is_not_the_one_asked_for_is_refused() {
    let root = Root::new();
    let server = Server::start();
    trust(&root, HOST, &world().trusted_key);
    let (code, _, err) =
        server.berth(&root, &["fetch", "--insecure-options", "http", "cimd:appc:v=0:berth.invalid/liar?version=1.0"]);
    assert_ne!(code, 0);
    assert!(err.contains("berth.invalid/app") && err.contains("berth.invalid/liar"), "{err}");
    assert_eq!(root.image_count(), 0);
    // Labels too: version 2.0 is not what the server has (discovery finds no file).
    let (code, _, _) = server.berth(&root, &["fetch", "--insecure-options", "http", "appc:berth.invalid/app:2.0"]);
    assert_ne!(code, 0);
    assert_eq!(root.image_count(), 0);
}

#[test]
fn a_dependency_cycle_is_an_error() {
    let root = Root::new();
    let server = Server::start();
    trust(&root, HOST, &world().trusted_key);
    let (code, _, err) = server
        .berth(&root, &["fetch", "--insecure-options", "http", "cimd:appc:v=0:berth.invalid/cycle-a?version=1.0"]);
    assert_ne!(code, 0);
    assert!(err.contains("loop"), "{err}");
}

#[test]
fn a_local_aci_with_its_signature_beside_it() {
    let root = Root::new();
    let aci = world().files.join("base.aci");
    let (code, _, err) = root.run(&["fetch", &aci.display().to_string()]);
    assert_ne!(code, 0, "no key trusted yet");
    assert!(err.contains("berth trust"), "{err}");
    trust(&root, "berth.invalid/base", &world().trusted_key);
    root.ok(&["fetch", &aci.display().to_string()]);
    let t = tempfile::tempdir().unwrap();
    root.ok(&["image", "render", &aci.display().to_string(), &t.path().join("r").display().to_string()]);
    assert!(t.path().join("r/bin/busybox").is_file());
}

#[test]
fn compressed_variants_have_the_same_image_id() {
    let t = tempfile::tempdir().unwrap();
    let aci = world().files.join("base.aci");
    let plain = t.path().join("plain.aci");
    run_tool("sh", &["-c", &format!("gzip -dc '{}' > '{}'", aci.display(), plain.display())], t.path());
    let mut ids = Vec::new();
    for tool in ["", "gzip", "bzip2", "xz", "zstd"] {
        let file = if tool.is_empty() {
            plain.clone()
        } else {
            let file = t.path().join(format!("{tool}.aci"));
            run_tool("sh", &["-c", &format!("{tool} -c < '{}' > '{}'", plain.display(), file.display())], t.path());
            file
        };
        let root = Root::new();
        root.ok(&["fetch", "--insecure-options", "image", &file.display().to_string()]);
        let image = root.json(&["image", "inspect", &file.display().to_string()]);
        ids.push(image["record"]["layers"][0]["diffId"].as_str().unwrap_or_default().to_string());
    }
    assert!(ids[0].starts_with("sha512:"), "{ids:?}");
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
}

#[test]
fn hostile_acis_are_rejected_naming_the_entry_or_kept_inside() {
    let t = tempfile::tempdir().unwrap();
    let canary = t.path().join("escaped");
    let render = |file: &str| {
        let root = Root::new();
        let aci = world().files.join(file);
        root.ok(&["fetch", "--insecure-options", "image", &aci.display().to_string()]);
        let target = t.path().join("a").join("b").join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let (code, _, err) = root.run(&["image", "render", &aci.display().to_string(), &target.display().to_string()]);
        assert!(!canary.exists() && !t.path().join("a/escaped").exists(), "{file}: nothing written outside");
        (code, err, target)
    };
    // A hardlink to the manifest, outside the tree, is refused.
    let (code, err, target) = render("hardlink-out.aci");
    assert_eq!(code, 5, "hardlink-out.aci must be rejected: {err}");
    assert!(err.contains("rootfs/link"), "the error names rootfs/link: {err}");
    assert!(!target.exists(), "no half-rendered tree");
    // `rootfs/../../escaped` is `escaped` of the archive, which is not the tree (as rkt,
    // extracting the whole archive, has it); a symlink out of the tree resolves inside it
    // (docs/decisions.md: paths resolve inside the rootfs).
    let (code, err, target) = render("traversal.aci");
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_dir(&target).unwrap().next().is_none(), "nothing of traversal.aci is in the tree");
    let (code, err, target) = render("symlink-out.aci");
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(target.join("escaped")).unwrap(), b"out\n", "`..` stops at the rootfs's root");
    let root = Root::new();
    let aci = world().files.join("not-json.aci");
    let (code, _, err) = root.run(&["fetch", "--insecure-options", "image", &aci.display().to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("manifest"), "{err}");
    assert_eq!(root.image_count(), 0);
    assert!(root.blob_names().is_empty(), "the archive of a refused image is not kept");
}

#[test]
fn appc_has_no_whiteouts() {
    let root = Root::new();
    let aci = world().files.join("whiteout-names.aci");
    root.ok(&["fetch", "--insecure-options", "image", &aci.display().to_string()]);
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("r");
    root.ok(&["image", "render", &aci.display().to_string(), &r.display().to_string()]);
    assert_eq!(std::fs::read_to_string(r.join(".wh.keep")).unwrap(), "a plain file in appc\n");
}

#[test]
fn keys_announced_by_discovery_are_reviewed_before_they_are_trusted() {
    let root = Root::new();
    let server = Server::start();
    let proxy = format!("http://127.0.0.1:{}", server.port);
    let trust_discovered = |answer: &str| {
        let mut child = root
            .cmd(&["trust", "--prefix", HOST, "--insecure-allow-http"])
            .env("HTTP_PROXY", &proxy)
            .env("HTTPS_PROXY", &proxy)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = trust_discovered("n\n");
    assert_eq!(code, 4, "declined: {err}");
    assert!(err.contains("https://berth.invalid/pubkeys.gpg"), "the review names where the key came from: {err}");
    assert!(err.contains("Berth Test"), "the review shows the user id: {err}");
    assert_eq!(root.json(&["trust", "list"]), serde_json::json!([]));
    let (code, err) = trust_discovered("y\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(root.json(&["trust", "list"]).as_array().unwrap().len(), 1);
    server.ok(&root, &["fetch", "--insecure-options", "http", APP]);
}
