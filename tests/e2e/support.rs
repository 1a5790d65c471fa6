//! Test support: the `berth` binary, store roots, and fixture images built by real
//! third-party tools (umoci, skopeo) from Debian's static busybox.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

/// The `berth` binary: `$BERTH_BIN`, or the one next to this test's target directory.
pub fn berth_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("BERTH_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("berth");
    assert!(bin.exists(), "{} is missing: `cargo test --workspace` builds it (host/tests makes it)", bin.display());
    bin
}

/// Unmount `path`, waiting out a moment's `EBUSY`: a sibling test thread that forks
/// while this one has a directory of the mount open gives its child a copy of that
/// descriptor until the child execs. A holder that stays (a process berth left behind)
/// still fails, after the deadline.
pub fn unmount_when_free(path: &Path) -> rustix::io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match rustix::mount::unmount(path, rustix::mount::UnmountFlags::empty()) {
            Err(rustix::io::Errno::BUSY) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            result => return result,
        }
    }
}

/// A fresh store root, removed when dropped (with whatever is still mounted under it,
/// such as shared EROFS layer mounts).
pub struct Root {
    pub dir: tempfile::TempDir,
    /// Extra environment for every berth command (e.g. BERTH_SNAPSHOTTER).
    env: Vec<(String, String)>,
}

impl Drop for Root {
    fn drop(&mut self) {
        let prefix = format!("{}/", self.path().display());
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> =
            info.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|m| m.starts_with(&prefix)).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

impl Root {
    pub fn new() -> Root {
        Root { dir: tempfile::tempdir().unwrap(), env: Vec::new() }
    }

    /// A root whose berth commands use snapshots of the form `form` (`dir` or `erofs`).
    pub fn with_snapshotter(form: &str) -> Root {
        let mut root = Root::new();
        root.env.push(("BERTH_SNAPSHOTTER".into(), form.into()));
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.env("BERTH_ROOT", self.path()).env_remove("BERTH_LOG").env_remove("BERTH_SNAPSHOTTER").args(args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Run berth; return (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out: Output = self.cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run berth expecting success; return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "berth {args:?} failed ({code}): {err}");
        out
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// The trees holding each layer's snapshot: a snapshot directory, or where its
    /// EROFS layer image is mounted (`snapshots/X.erofs` → `mounts/X`).
    pub fn snapshot_trees(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.path().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .map(|n| match n.strip_suffix(".erofs") {
                Some(stem) => self.path().join("mounts").join(stem),
                None => self.path().join("snapshots").join(n),
            })
            .collect();
        out.sort();
        out
    }

    /// Files under `blobs/`, as (algorithm, hex) pairs.
    pub fn blob_names(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.path().join("blobs").join(alg);
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd {
                    out.push((alg.to_string(), e.unwrap().file_name().to_string_lossy().into_owned()));
                }
            }
        }
        out.sort();
        out
    }

    /// `berth fsck` must find nothing wrong.
    pub fn assert_fsck_clean(&self) {
        let (code, out, err) = self.run(&["fsck"]);
        assert_eq!(code, 0, "fsck found problems: {out}{err}");
    }

    pub fn image_count(&self) -> usize {
        self.json(&["image", "list"]).as_array().unwrap().len()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn run_tool(program: &str, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install it (`just setup` does)"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Images every test can read (never modify: copy first).
pub struct Fixtures {
    _dir: tempfile::TempDir,
    /// Layout with refs `single` (1 layer), `multi` (3 layers), `arm64` (single, arch
    /// arm64) and `multi-arch` (an index of `single` and `arm64` with platforms).
    pub layout: PathBuf,
    /// A layout whose index.json names two images, `a` and `b`, and no `latest`.
    pub two_refs: PathBuf,
    /// `skopeo copy oci:layout:single oci-archive:…`.
    pub archive: PathBuf,
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(build_fixtures)
}

fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox is missing: install busybox-static (`just setup` does)");
}

fn build_fixtures() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_path_buf();
    let bb = busybox();
    std::fs::copy(&bb, work.join("busybox")).unwrap();
    std::fs::write(work.join("motd"), b"welcome to berth\n").unwrap();
    std::fs::write(work.join("hello.sh"), b"#!/bin/sh\necho hello\n").unwrap();

    let umoci = |args: &[&str]| run_tool("umoci", args, &work);
    umoci(&["init", "--layout", "layout"]);
    umoci(&["new", "--image", "layout:single"]);
    umoci(&["insert", "--image", "layout:single", "busybox", "/bin/busybox"]);
    umoci(&["config", "--image", "layout:single", "--config.cmd", "/bin/busybox", "--config.cmd", "true"]);

    umoci(&["new", "--image", "layout:multi"]);
    umoci(&["insert", "--image", "layout:multi", "busybox", "/bin/busybox"]);
    umoci(&["insert", "--image", "layout:multi", "motd", "/etc/motd"]);
    umoci(&["insert", "--image", "layout:multi", "hello.sh", "/usr/bin/hello"]);
    umoci(&["config", "--image", "layout:multi", "--config.env", "GREETING=hi", "--config.workingdir", "/tmp"]);

    umoci(&["new", "--image", "layout:arm64"]);
    umoci(&["config", "--image", "layout:arm64", "--architecture", "arm64", "--os", "linux"]);
    umoci(&["insert", "--image", "layout:arm64", "motd", "/etc/motd"]);

    umoci(&["init", "--layout", "two-refs"]);
    umoci(&["new", "--image", "two-refs:a"]);
    umoci(&["insert", "--image", "two-refs:a", "motd", "/etc/motd"]);
    umoci(&["new", "--image", "two-refs:b"]);
    umoci(&["insert", "--image", "two-refs:b", "hello.sh", "/hello"]);

    add_multi_arch_index(&work.join("layout"));
    run_tool("skopeo", &["copy", "-q", "oci:layout:single", "oci-archive:single.tar:single"], &work);

    Fixtures {
        layout: work.join("layout"),
        two_refs: work.join("two-refs"),
        archive: work.join("single.tar"),
        _dir: dir,
    }
}

/// umoci cannot build a multi-platform index, so write one: an OCI image index blob
/// listing `single` (linux/amd64) and `arm64` (linux/arm64), named `multi-arch`.
fn add_multi_arch_index(layout: &Path) {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = |name: &str| -> serde_json::Value {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
            .unwrap()
            .clone()
    };
    let mut amd = entry("single");
    let mut arm = entry("arm64");
    for (d, arch) in [(&mut amd, "amd64"), (&mut arm, "arm64")] {
        d.as_object_mut().unwrap().remove("annotations");
        d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
    }
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [amd, arm],
    });
    let bytes = serde_json::to_vec(&nested).unwrap();
    let hex = sha256_hex(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{hex}"),
        "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi-arch"},
    }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Copy a layout so a test can damage it.
pub fn copy_layout(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

/// `skopeo inspect --raw` of `oci:<layout>:<ref>`, parsed, with the sha256 of its bytes.
pub fn skopeo_raw(layout: &Path, reference: &str) -> (String, serde_json::Value) {
    let raw =
        run_tool("skopeo", &["inspect", "--raw", &format!("oci:{}:{reference}", layout.display())], Path::new("/"));
    (format!("sha256:{}", sha256_hex(raw.as_bytes())), serde_json::from_str(&raw).unwrap())
}

/// The digest a ref names in a layout's index.json.
pub fn ref_digest(layout: &Path, reference: &str) -> String {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// Write `bytes` as a blob of `layout`; returns its digest.
pub fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// Point `reference` in index.json at a new manifest.
pub fn set_ref(layout: &Path, reference: &str, digest: &str, size: usize) {
    let path = layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["annotations"]["org.opencontainers.image.ref.name"] == reference {
            m["digest"] = digest.into();
            m["size"] = size.into();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// The manifest of a ref, parsed.
pub fn manifest_of(layout: &Path, reference: &str) -> serde_json::Value {
    serde_json::from_slice(&read_blob(layout, &ref_digest(layout, reference))).unwrap()
}

/// The path of a layer blob of a ref.
pub fn layer_path(layout: &Path, reference: &str, n: usize) -> PathBuf {
    let m = manifest_of(layout, reference);
    let digest = m["layers"][n]["digest"].as_str().unwrap();
    layout.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

pub fn layout_arg(layout: &Path, reference: &str) -> String {
    format!("oci-layout:{}:{reference}", layout.display())
}

/// Pseudo-random bytes (xorshift from `seed`): layers of them neither compress nor dedup.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A layout `dir/layout` with one ref per `(name, data)`: a busybox layer, then one layer
/// per number n in `data`, holding `/data/<n>` = `noise(n, bytes)`. The same number gives
/// the same layer blob, so images share layers.
pub fn data_layout(dir: &Path, images: &[(&str, &[u64])], bytes: usize) -> PathBuf {
    std::fs::copy(busybox(), dir.join("busybox")).unwrap();
    let umoci = |args: &[&str]| run_tool("umoci", args, dir);
    umoci(&["init", "--layout", "layout"]);
    for (name, data) in images {
        let image = format!("layout:{name}");
        umoci(&["new", "--image", &image]);
        umoci(&["insert", "--image", &image, "busybox", "/bin/busybox"]);
        for n in *data {
            let file = dir.join(format!("data-{n}"));
            if !file.exists() {
                std::fs::write(&file, noise(*n, bytes)).unwrap();
            }
            umoci(&["insert", "--image", &image, &format!("data-{n}"), &format!("/data/{n}")]);
        }
    }
    dir.join("layout")
}

/// What `cat /data/* | sha256sum` prints in an image of [`data_layout`] (n < 10, so the
/// shell's order is numeric).
pub fn data_sha256(data: &[u64], bytes: usize) -> String {
    let mut sorted = data.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for n in sorted {
        assert!(n < 10, "data numbers past 9 would not sort as numbers");
        hasher.update(noise(n, bytes));
    }
    hex::encode(hasher.finalize())
}

/// Mount points at or below `dir/`, as this process sees them.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// A TLS server certificate for `host` signed by a CA made here, as PEM files in `dir`.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA certificate clients trust (e.g. as `certs.d/<host:port>/ca.crt`).
    pub ca: PathBuf,
}

pub fn tls_files(dir: &Path, host: &str) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "berth test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![host.to_string()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
    let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem"), ca: dir.join("ca.pem") };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&files.ca, ca_cert.pem()).unwrap();
    files
}
