//! Signed drop-in handlers: the SDK example `cimd:http-tar` handler, signed with
//! wasmsign2 keys made here, serves its scheme end to end once its signer is trusted
//! for that scheme; unsigned, wrongly signed, untrusted, other-scheme and tampered
//! components are refused, and an untrusted drop-in never shadows a built-in.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wasmsign2::{KeyPair, Module};

use crate::support::{Root, fixtures, layout_arg, run_tool, sha256_hex};

const EXAMPLE: &str = env!("BERTH_EXAMPLE_HTTP_TAR");

/// `python3 -m http.server` over a directory holding `rootfs.tar` (busybox).
struct TarServer {
    child: Child,
    _dir: tempfile::TempDir,
    url: String,
    digest: String,
}

impl TarServer {
    fn start() -> TarServer {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", tree.join("bin/busybox")).unwrap();
        std::fs::write(tree.join("hello.txt"), b"from a tarball\n").unwrap();
        run_tool("tar", &["-cf", "../rootfs.tar", "."], &tree);
        let digest = format!("sha256:{}", sha256_hex(&std::fs::read(dir.path().join("rootfs.tar")).unwrap()));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is missing (`just setup` installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the HTTP server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        TarServer { child, _dir: dir, url: format!("http://127.0.0.1:{port}/rootfs.tar"), digest }
    }

    fn point(&self) -> String {
        let escaped = percent_encoding::utf8_percent_encode(&self.url, percent_encoding::NON_ALPHANUMERIC);
        format!("cimd:http-tar:v=0:{escaped}?digest={}", self.digest)
    }
}

impl Drop for TarServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn example() -> Vec<u8> {
    std::fs::read(EXAMPLE).unwrap()
}

/// Sign with an embedded signature.
fn sign(bytes: &[u8], kp: &KeyPair) -> Vec<u8> {
    let module = Module::deserialize(&mut &bytes[..]).unwrap();
    let signed = kp.sk.sign(module, None).unwrap();
    let mut out = Vec::new();
    signed.serialize(&mut out).unwrap();
    out
}

/// Sign detached: (the unchanged component, the signature).
fn sign_detached(bytes: &[u8], kp: &KeyPair) -> (Vec<u8>, Vec<u8>) {
    let module = Module::deserialize(&mut &bytes[..]).unwrap();
    let (module, sig) = kp.sk.sign_multi(module, None, true, false).unwrap();
    let mut out = Vec::new();
    module.serialize(&mut out).unwrap();
    (out, sig)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

fn trust(root: &Root, scheme: &str, kp: &KeyPair, work: &Path) {
    let key = write(work, &format!("{scheme}-{}.pub", sha256_hex(&kp.pk.to_bytes())), kp.pk.to_pem().as_bytes());
    root.ok(&["handler", "trust", "--scheme", scheme, &key]);
}

fn handlers_dir(root: &Root) -> PathBuf {
    let dir = root.path().join("handlers");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_signed_drop_in_serves_its_scheme_end_to_end() {
    let server = TarServer::start();
    let work = tempfile::tempdir().unwrap();
    let root = Root::new();
    let kp = KeyPair::generate();
    trust(&root, "http-tar", &kp, work.path());
    let signed = write(work.path(), "http-tar.wasm", &sign(&example(), &kp));
    let added = root.json(&["handler", "add", &signed]);
    assert_eq!(added["scheme"], "http-tar");

    let fetched = root.json(&["fetch", &server.point()]);
    assert_eq!(fetched["layers"][0], server.digest.as_str());
    assert_eq!(fetched["handler"]["scheme"], "http-tar");
    assert_eq!(fetched["handler"]["digest"], format!("sha256:{}", sha256_hex(&std::fs::read(&signed).unwrap())));
    let hex = server.digest.strip_prefix("sha256:").unwrap();
    assert_eq!(sha256_hex(&std::fs::read(root.path().join("blobs/sha256").join(hex)).unwrap()), hex);
    root.assert_fsck_clean();

    // list and inspect show the signer and the declared grants.
    let list = root.json(&["handler", "list"]);
    let row = list.as_array().unwrap().iter().find(|r| r["scheme"] == "http-tar").unwrap();
    assert_eq!(row["status"], "trusted");
    assert_eq!(row["grants"]["network"][0], "*");
    assert_eq!(
        list.as_array().unwrap().iter().filter(|r| r["source"] == "builtin").count(),
        5,
        "oci-layout, docker, oci, aci-archive, appc"
    );
    let inspect = root.json(&["handler", "inspect", "http-tar"]);
    assert_eq!(inspect["grants"]["time-budget-ms"], 60000);

    // A wrong pinned digest: the host refuses the bytes, nothing stays.
    let other = Root::new();
    trust(&other, "http-tar", &kp, work.path());
    other.ok(&["handler", "add", &signed]);
    let wrong = server.point().replace(hex, &"0".repeat(64));
    let (code, _, err) = other.run(&["fetch", &wrong]);
    assert_eq!(code, 6, "{err}");
    assert!(other.blob_names().is_empty());
}

#[test]
fn a_detached_signature_works_too() {
    let server = TarServer::start();
    let work = tempfile::tempdir().unwrap();
    let root = Root::new();
    let kp = KeyPair::generate();
    trust(&root, "http-tar", &kp, work.path());
    let (component, sig) = sign_detached(&example(), &kp);
    let file = write(work.path(), "h.wasm", &component);
    let sig = write(work.path(), "h.sig", &sig);
    let (code, _, err) = root.run(&["handler", "add", &file]);
    assert_eq!(code, 4, "without its signature it is unsigned: {err}");
    assert!(err.contains("is not signed"), "{err}");
    root.ok(&["handler", "add", &file, "--sig", &sig]);
    root.ok(&["fetch", &server.point()]);
}

#[test]
fn unsigned_wrongly_signed_untrusted_other_scheme_and_tampered_handlers_are_refused() {
    let server = TarServer::start();
    let work = tempfile::tempdir().unwrap();
    let trusted = KeyPair::generate();
    let stranger = KeyPair::generate();
    let s3_only = KeyPair::generate();
    let signed = sign(&example(), &trusted);
    let mut tampered = signed.clone();
    let at = tampered.len() - 100;
    tampered[at] ^= 0x01;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("unsigned", example(), "is not signed"),
        ("wrongly signed", sign(&example(), &stranger), "no trusted handler key's signature verifies"),
        ("signed for another scheme", sign(&example(), &s3_only), "is trusted only for s3"),
        ("tampered after signing", tampered, "no trusted handler key's signature verifies"),
        ("untrusted store", signed, "no trusted handler key's signature verifies"),
    ];
    for (i, (what, bytes, message)) in cases.into_iter().enumerate() {
        let root = Root::new();
        if what != "untrusted store" {
            trust(&root, "http-tar", &trusted, work.path());
        }
        trust(&root, "s3", &s3_only, work.path());
        write(&handlers_dir(&root), "http-tar.wasm", &bytes);
        let (code, _, err) = root.run(&["fetch", &server.point()]);
        assert_eq!(code, 4, "{what}: {err}");
        assert!(err.contains(message), "{what}: {err}");
        assert!(root.blob_names().is_empty(), "{what}");
        let (code, out, _) = root.run(&["handler", "verify"]);
        assert_eq!(code, 4, "{what}: {out}");
        let file = write(
            work.path(),
            &format!("case{i}.wasm"),
            &std::fs::read(handlers_dir(&root).join("http-tar.wasm")).unwrap(),
        );
        let (code, _, err) = root.run(&["handler", "add", &file]);
        assert_eq!(code, 4, "{what}: {err}");
    }
}

/// The example re-declared for `oci-layout` (same length, so the section stays valid).
fn claiming_oci_layout() -> Vec<u8> {
    let mut bytes = example();
    let from = br#": "http-tar", "#;
    let to = br#":"oci-layout","#;
    assert_eq!(from.len(), to.len());
    // The declaration's text may also sit in the data section: replace every copy.
    let mut found = 0;
    while let Some(at) = bytes.windows(from.len()).position(|w| w == from) {
        bytes[at..at + from.len()].copy_from_slice(to);
        found += 1;
    }
    assert!(found > 0, "the grants declaration");
    bytes
}

#[test]
fn an_untrusted_drop_in_never_shadows_a_builtin_and_a_trusted_one_replaces_it() {
    let f = fixtures();
    let work = tempfile::tempdir().unwrap();
    let root = Root::new();
    write(&handlers_dir(&root), "impostor.wasm", &claiming_oci_layout());
    let (code, _, err) = root.run(&["fetch", &layout_arg(&f.layout, "single")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ignoring drop-in handler") && err.contains("is not signed"), "{err}");
    let inspect = root.json(&["image", "inspect", &layout_arg(&f.layout, "single")]);
    let builtin = root.json(&["handler", "list"]);
    let builtin_digest =
        builtin.as_array().unwrap().iter().find(|r| r["scheme"] == "oci-layout").unwrap()["digest"].clone();
    assert_eq!(inspect["record"]["handler"]["digest"], builtin_digest);

    // Signed by a key trusted for oci-layout, the drop-in takes over the scheme (and,
    // being an http-tar handler underneath, refuses the point: proof it ran).
    let kp = KeyPair::generate();
    trust(&root, "oci-layout", &kp, work.path());
    write(&handlers_dir(&root), "impostor.wasm", &sign(&claiming_oci_layout(), &kp));
    let (code, _, err) = root.run(&["fetch", "--pull-policy", "update", &layout_arg(&f.layout, "single")]);
    assert_ne!(code, 0);
    assert!(err.contains("is not a cimd:http-tar point"), "{err}");
}
