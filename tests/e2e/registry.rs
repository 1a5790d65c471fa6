//! `berth fetch` from a real CNCF distribution registry (Debian's `docker-registry`)
//! on 127.0.0.1, with images pushed by skopeo in OCI and Docker v2s2 formats.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Root, fixtures, run_tool, sha256_hex};

/// A registry on a free loopback port, stopped when dropped.
pub struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    pub addr: String,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(|_, _| String::new())
    }

    /// Start with more configuration: `extra(dir, addr)` returns YAML appended to the
    /// config right after `http: addr:` (it may write files such as certificates into
    /// `dir`): indented lines extend `http:`, unindented ones add sections.
    pub fn start_with(extra: impl FnOnce(&Path, &str) -> String) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let more = extra(dir.path(), &addr);
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{more}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is missing: install it (`just setup` does)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, _dir: dir, addr }
    }

    /// Whether this registry's own storage holds blob `digest` for `repo` (linked into the
    /// repository, which distribution does after the blob's data is in place). For a
    /// pull-through mirror: whether it has cached the blob.
    pub fn stores_blob(&self, repo: &str, digest: &str) -> bool {
        let (alg, hex) = digest.split_once(':').unwrap();
        let link = self
            ._dir
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repo)
            .join("_layers")
            .join(alg)
            .join(hex)
            .join("link");
        std::fs::read_to_string(link).is_ok_and(|l| l == digest)
    }

    /// `skopeo copy` a fixture ref into `repo:tag`, in `format` (oci or v2s2).
    pub fn push(&self, layout: &Path, reference: &str, repo_tag: &str, format: &str) {
        self.push_with(layout, reference, repo_tag, &["--format", format]);
    }

    pub fn push_with(&self, layout: &Path, reference: &str, repo_tag: &str, flags: &[&str]) {
        let from = format!("oci:{}:{reference}", layout.display());
        let to = format!("docker://{}/{repo_tag}", self.addr);
        let mut args = vec!["copy", "-q", "--dest-tls-verify=false"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&from, &to]);
        run_tool("skopeo", &args, Path::new("/"));
    }

    /// The manifest digest and JSON skopeo reads for `repo_tag`.
    fn skopeo_raw(&self, repo_tag: &str) -> (String, serde_json::Value) {
        self.skopeo_raw_with(repo_tag, &[])
    }

    fn skopeo_raw_with(&self, repo_tag: &str, flags: &[&str]) -> (String, serde_json::Value) {
        let reference = format!("docker://{}/{repo_tag}", self.addr);
        let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
        args.extend_from_slice(flags);
        args.push(&reference);
        let raw = run_tool("skopeo", &args, Path::new("/"));
        (format!("sha256:{}", sha256_hex(raw.as_bytes())), serde_json::from_str(&raw).unwrap())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_matches(fetched: &serde_json::Value, raw: &(String, serde_json::Value)) {
    assert_eq!(fetched["manifest"], raw.0.as_str());
    assert_eq!(fetched["config"], raw.1["config"]["digest"]);
    let layers: Vec<&serde_json::Value> = raw.1["layers"].as_array().unwrap().iter().map(|l| &l["digest"]).collect();
    assert_eq!(fetched["layers"].as_array().unwrap().iter().collect::<Vec<_>>(), layers);
}

#[test]
fn oci_and_docker_v2s2_images_match_skopeo() {
    let f = fixtures();
    let reg = Registry::start();
    reg.push(&f.layout, "multi", "app:oci", "oci");
    reg.push(&f.layout, "multi", "app:v2s2", "v2s2");
    let root = Root::new();
    let oci = root.json(&["fetch", &format!("oci://{}/app:oci", reg.addr)]);
    assert_matches(&oci, &reg.skopeo_raw("app:oci"));
    let v2s2 = root.json(&["fetch", &format!("docker://{}/app:v2s2", reg.addr)]);
    assert_matches(&v2s2, &reg.skopeo_raw("app:v2s2"));
    let inspect = root.json(&["image", "inspect", v2s2["manifest"].as_str().unwrap()]);
    assert_eq!(inspect["record"]["format"], "docker");
    root.assert_fsck_clean();
}

#[test]
fn a_digest_reference_is_verified_and_then_served_from_the_store() {
    let f = fixtures();
    let reg = Registry::start();
    reg.push(&f.layout, "single", "app:v1", "oci");
    let (digest, _) = reg.skopeo_raw("app:v1");
    let root = Root::new();
    let point = format!("docker://{}/app@{digest}", reg.addr);
    let first = root.json(&["fetch", &point]);
    assert_eq!(first["manifest"], digest.as_str());
    assert_eq!(first["fromStore"], false);
    drop(reg);
    // The registry is gone: the stored image still answers.
    let again = root.json(&["fetch", &point]);
    assert_eq!(again["fromStore"], true);
    assert_eq!(again["manifest"], digest.as_str());
    let never = root.json(&["fetch", "--pull-policy", "never", &point]);
    assert_eq!(never["manifest"], digest.as_str());
}

#[test]
fn missing_tags_and_never_pulled_points_are_not_found() {
    let reg = Registry::start();
    let root = Root::new();
    let (code, _, err) = root.run(&["fetch", &format!("oci://{}/nothing:here", reg.addr)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("manifest here of") && err.contains("not found"), "{err}");
    let (code, _, err) = root.run(&["fetch", "--pull-policy", "never", &format!("oci://{}/app:v1", reg.addr)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--pull-policy=never"), "{err}");
    assert!(root.blob_names().is_empty());
}

#[test]
fn a_multi_platform_index_selects_by_platform() {
    let f = fixtures();
    let reg = Registry::start();
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:multi-arch", f.layout.display()),
            &format!("docker://{}/multi:latest", reg.addr),
        ],
        Path::new("/"),
    );
    let root = Root::new();
    let point = format!("oci://{}/multi:latest", reg.addr);
    let arm = root.json(&["fetch", "--platform", "linux/arm64", &point]);
    let inspect = root.json(&["image", "inspect", arm["manifest"].as_str().unwrap()]);
    assert_eq!(inspect["record"]["platform"]["architecture"], "arm64");
    let (code, _, err) = root.run(&["fetch", "--pull-policy", "update", "--platform", "linux/s390x", &point]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
}

/// A registry behind TLS (a CA and a certificate for 127.0.0.1 made here) and htpasswd
/// Basic auth for user `berth`.
struct SecureRegistry {
    registry: Registry,
    password: String,
    /// A certs.d-style directory: `<host:port>/ca.crt`.
    certs: tempfile::TempDir,
}

impl SecureRegistry {
    fn start() -> SecureRegistry {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let password = format!("pw-{}", &sha256_hex(format!("{:?}", Instant::now()).as_bytes())[..24]);
        let certs = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash(&password, 5).unwrap();
        let certs_root = certs.path().to_path_buf();
        let registry = Registry::start_with(|dir, addr| {
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params.distinguished_name.push(DnType::CommonName, "berth test CA");
            let ca_key = KeyPair::generate().unwrap();
            let ca_cert = ca_params.self_signed(&ca_key).unwrap();
            let issuer = Issuer::new(ca_params, ca_key);
            let leaf_key = KeyPair::generate().unwrap();
            let leaf =
                CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
            std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
            std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
            std::fs::write(dir.join("htpasswd"), format!("berth:{hash}\n")).unwrap();
            std::fs::create_dir(certs_root.join(addr)).unwrap();
            std::fs::write(certs_root.join(addr).join("ca.crt"), ca_cert.pem()).unwrap();
            format!(
                "  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\nauth:\n  htpasswd:\n    realm: berth-test\n    path: {0}/htpasswd\n",
                dir.display()
            )
        });
        SecureRegistry { registry, password, certs }
    }

    fn creds(&self) -> String {
        format!("berth:{}", self.password)
    }

    fn certs_dir(&self) -> String {
        self.certs.path().display().to_string()
    }

    /// An auth.json with this registry's credentials, as podman/skopeo write it.
    fn authfile(&self, dir: &Path) -> String {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(self.creds());
        let path = dir.join("auth.json");
        let json = serde_json::json!({"auths": {self.registry.addr.clone(): {"auth": auth}}});
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        path.display().to_string()
    }
}

#[test]
fn tls_and_basic_auth_with_credentials_from_an_authfile() {
    let f = fixtures();
    let reg = SecureRegistry::start();
    let creds = reg.creds();
    reg.registry.push_with(&f.layout, "multi", "private:v1", &["--dest-creds", &creds]);
    let raw = reg.registry.skopeo_raw_with("private:v1", &["--creds", &creds]);
    let point = format!("docker://{}/private:v1", reg.registry.addr);
    let certs = reg.certs_dir();
    let root = Root::new();
    let home = tempfile::tempdir().unwrap();
    let no_auth = home.path().join("none.json").display().to_string();

    // The certificate is not trusted without its CA: a TLS error, not a plain-HTTP retry.
    let (code, _, err) = root.run(&["fetch", "--authfile", &no_auth, &point]);
    assert_ne!(code, 0);
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // Trusted, but no credentials: unauthorized.
    let (code, _, err) = root.run(&["fetch", "--certs-dir", &certs, "--authfile", &no_auth, &point]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("refused") || err.contains("unauthorized"), "{err}");
    assert!(root.blob_names().is_empty());

    // Credentials from an auth.json.
    let authfile = reg.authfile(home.path());
    let fetched = root.json(&["fetch", "--certs-dir", &certs, "--authfile", &authfile, &point]);
    assert_matches(&fetched, &raw);
    root.assert_fsck_clean();

    // `berth login` writes an authfile that works the same; a wrong password is refused.
    let login_file = home.path().join("login.json").display().to_string();
    let mut login = root.cmd(&[
        "login",
        "--certs-dir",
        &certs,
        "--authfile",
        &login_file,
        "-u",
        "berth",
        "--password-stdin",
        &reg.registry.addr,
    ]);
    let out = pipe_stdin(&mut login, &reg.password);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut wrong =
        root.cmd(&["login", "--certs-dir", &certs, "--authfile", &no_auth, "-u", "berth", "--password-stdin"]);
    wrong.arg(&reg.registry.addr);
    let out = pipe_stdin(&mut wrong, "not-the-password");
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!Path::new(&no_auth).exists());
    let other = Root::new();
    let again = other.json(&["fetch", "--certs-dir", &certs, "--authfile", &login_file, &point]);
    assert_eq!(again["manifest"], fetched["manifest"]);
}

fn pipe_stdin(cmd: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The handler talks to a registry that needs a password, and then searches its whole
/// linear memory for that password: the host authorised its requests without ever
/// handing the credentials (or the challenge) to it.
#[test]
fn the_password_never_reaches_a_handler() {
    use berth::cimd::{DistributionPoint, PointKind};
    use berth::fetch::{FetchError, FetchOptions};
    use berth::sandbox::{HandlerError, Sandbox};
    use berth::store::{LockMode, NoProgress, Store};
    use berth::transport::auth::Credentials;
    use berth::transport::{HttpClient, HttpOptions};
    use std::sync::Arc;

    let reg = SecureRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let authfile = reg.authfile(dir.path());
    let http = HttpOptions {
        certs_dirs: vec![reg.certs.path().to_path_buf()],
        credentials: Credentials::load(&[authfile.into()]).unwrap(),
        ..HttpOptions::default()
    };
    let options = FetchOptions { http: Some(Arc::new(HttpClient::new(http))), ..FetchOptions::default() };

    let store = Arc::new(Store::open(&dir.path().join("store"), LockMode::Shared, &mut || {}).unwrap());
    let sandbox = Sandbox::new(None).unwrap();
    let hostile = sandbox.load("hostile", crate::fault_registry::HOSTILE).unwrap();
    let inverted: String = reg.password.bytes().map(|b| format!("{:02x}", b ^ 0xff)).collect();
    let point = DistributionPoint::new(PointKind::Oci, &format!("{}/app:sniff.{inverted}", reg.registry.addr)).unwrap();
    let message =
        match berth::fetch::fetch_with_handler(&store, &sandbox, &hostile, &point, &options, Arc::new(NoProgress)) {
            Err(FetchError::Handler { error: HandlerError::Io(m), .. }) => m,
            other => panic!("unexpected outcome: {other:?}"),
        };
    let lines: Vec<&str> = message.lines().collect();
    // Authorised by the host; its own Authorization header refused; the challenge unseen.
    assert_eq!(lines[0], "status=Ok(200)", "{message}");
    assert!(!lines[1].to_lowercase().contains("www-authenticate"), "{message}");
    assert!(lines[2].starts_with("own-auth=Err(") && lines[2].contains("Denied"), "{message}");
    // The scan works (it finds a string known to be there) and finds no password.
    assert_eq!(lines[4], "control=true", "{message}");
    assert_eq!(lines[3], "leaked=false", "{message}");
}

/// A fleet pulls through a mirror: a second distribution registry configured as a
/// pull-through cache of the first. Once it has served an image by digest, it serves it
/// again with the upstream gone.
#[test]
fn a_pull_through_mirror_serves_a_digest_when_the_upstream_is_down() {
    let f = fixtures();
    let upstream = Registry::start();
    upstream.push(&f.layout, "multi", "app:v1", "oci");
    let (digest, raw) = upstream.skopeo_raw("app:v1");
    let upstream_url = format!("http://{}", upstream.addr);
    let mirror = Registry::start_with(|_, _| format!("proxy:\n  remoteurl: {upstream_url}\n"));
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("registries.toml");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"{}\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"{}\"\n",
            upstream.addr, mirror.addr
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let point = format!("docker://{}/app@{digest}", upstream.addr);

    // Through the mirror while the upstream is up: the mirror caches what it serves.
    let first = Root::new();
    let fetched = first.json(&["fetch", "--registries-conf", &conf, &point]);
    assert_matches(&fetched, &(digest.clone(), raw.clone()));
    // It caches a blob after serving it, in the background, by downloading it from the
    // upstream once more: right after the fetch some blobs may not be cached yet, and
    // stopping the upstream then loses them (this test failed that way under CPU load,
    // with berth falling back to the upstream). Wait until the mirror holds them all.
    let blobs: Vec<&str> = std::iter::once(&fetched["config"])
        .chain(fetched["layers"].as_array().unwrap())
        .map(|d| d.as_str().unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !blobs.iter().all(|d| mirror.stores_blob("app", d)) {
        assert!(Instant::now() < deadline, "the mirror did not cache {blobs:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(upstream);

    // A new node, the upstream gone: the mirror alone serves it.
    let second = Root::new();
    let again = second.json(&["fetch", "--registries-conf", &conf, &point]);
    assert_matches(&again, &(digest.clone(), raw));
    second.assert_fsck_clean();

    // Without the mirror configuration the same fetch has nowhere to go.
    let third = Root::new();
    let (code, _, err) = third.run(&["fetch", &point]);
    assert_eq!(code, 8, "{err}");
}

/// zstd-compressed layers (pushed by skopeo to a fresh registry, so it cannot reuse
/// gzip blobs it pushed before) are fetched and verified like gzip ones.
#[test]
fn zstd_layers_are_fetched_as_pushed() {
    let f = fixtures();
    let reg = Registry::start();
    reg.push_with(&f.layout, "multi", "zstd:v1", &["--format", "oci", "--dest-compress-format", "zstd"]);
    let raw = reg.skopeo_raw("zstd:v1");
    let types: Vec<&str> =
        raw.1["layers"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
    assert!(types.iter().all(|t| *t == "application/vnd.oci.image.layer.v1.tar+zstd"), "{types:?}");
    let root = Root::new();
    let fetched = root.json(&["fetch", &format!("oci://{}/zstd:v1", reg.addr)]);
    assert_matches(&fetched, &raw);
    let inspect = root.json(&["image", "inspect", fetched["manifest"].as_str().unwrap()]);
    assert!(inspect["record"]["layers"][0]["blob"]["mediaType"].as_str().unwrap().ends_with("+zstd"));
    // Every layer is a zstd frame, stored byte for byte.
    for layer in fetched["layers"].as_array().unwrap() {
        let hex = layer.as_str().unwrap().strip_prefix("sha256:").unwrap();
        let bytes = std::fs::read(root.path().join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }
    root.assert_fsck_clean();
}
