//! `berth serve`: the store as a registry, checked with the real clients every node
//! has (skopeo, podman, containerd's `ctr`, berth itself), all started here, and with
//! raw HTTP for what no well-behaved client sends. Images come back digest for digest.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::Registry;
use crate::support::{Root, fixtures, ref_digest, run_tool, sha256_hex};

/// A `berth serve` on a free loopback port, stopped (SIGTERM) when dropped.
pub(crate) struct Server {
    child: Option<Child>,
    pub addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// `berth --json serve --listen 127.0.0.1:<port> ARGS` on `root`; returns once `/v2/`
    /// answers.
    pub fn start(root: &Root, args: &[&str]) -> Server {
        Server::start_on(root, &format!("127.0.0.1:{}", free_port()), args)
    }

    fn start_on(root: &Root, addr: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let mut all = vec!["--json", "serve", "--listen", addr];
        all.extend_from_slice(args);
        let child = root
            .cmd(&all)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("serve.err")).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server { child: Some(child), addr: addr.to_string(), log, _dir: dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                // Any HTTP answer will do (401 behind --htpasswd, or a TLS alert).
                let _ = s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = [0u8; 16];
                if s.read(&mut buf).is_ok_and(|n| n > 0) {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("berth serve exited ({status}): {}", self.stderr());
            }
            assert!(Instant::now() < deadline, "berth serve did not answer on {}", self.addr);
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.with_file_name("serve.err")).unwrap_or_default()
    }

    /// The JSON lines printed so far (access log and notices).
    fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log).unwrap().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn events_named(&self, name: &str) -> Vec<serde_json::Value> {
        self.events().into_iter().filter(|e| e["event"] == name).collect()
    }

    /// SIGTERM, then the exit code.
    fn stop(&mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// One HTTP/1.1 exchange over a fresh connection: (status, headers, body).
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or_default().to_string()
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete header");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().into(), v.trim().into())).collect();
    Answer { status, headers, body: raw[split + 4..].to_vec() }
}

pub(crate) fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let framed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"));
    if !framed && (!body.is_empty() || method != "GET") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) and close before the whole body is sent.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_answer(&raw)
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// `skopeo inspect --raw` through the server: the document's digest.
fn skopeo_digest(reference: &str, flags: &[&str]) -> String {
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    args.extend_from_slice(flags);
    args.push(reference);
    digest_of(run_tool("skopeo", &args, Path::new("/")).as_bytes())
}

/// podman with its own storage and the settings this machine needs.
fn podman(work: &Path, args: &[&str]) -> String {
    let conf = work.join("containers.conf");
    if !conf.exists() {
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=10000:10000\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
    }
    let root = work.join("root").display().to_string();
    let run = work.join("run").display().to_string();
    let mut all = vec!["--root", &root, "--runroot", &run, "--storage-driver", "vfs"];
    all.extend_from_slice(args);
    let out = Command::new("podman")
        .args(&all)
        .env("CONTAINERS_CONF", &conf)
        .output()
        .expect("podman is missing: install it (`just setup` does)");
    assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A containerd daemon with its own root, state and socket, for `ctr` (and
/// `ctr-remote`, which converts images to eStargz in the lazy tests).
pub struct Containerd {
    child: Child,
    pub socket: String,
    _dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let socket = format!("{d}/containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n"
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("containerd is missing: install it (`just setup` does)");
        let c = Containerd { child, socket, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new("ctr").args(["-a", &c.socket, "version"]).output().is_ok_and(|o| o.status.success()) {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> String {
        let mut all = vec!["-a", &self.socket, "-n", "berth-test"];
        all.extend_from_slice(args);
        run_tool("ctr", &all, Path::new("/"))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The layout's blobs of an OCI image (manifest, config, layers) by digest.
fn image_digests(layout: &Path, manifest: &str) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_slice(&crate::support::read_blob(layout, manifest)).unwrap();
    let mut out = vec![manifest.to_string(), m["config"]["digest"].as_str().unwrap().to_string()];
    out.extend(m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    out
}

#[test]
fn skopeo_pushes_and_skopeo_podman_ctr_and_berth_pull_the_same_digests() {
    let f = fixtures();
    let root = Root::new();
    let server = Server::start(&root, &[]);
    let a = &server.addr;
    let original = ref_digest(&f.layout, "multi");

    // Push: skopeo copy into a name without a registry host (stored under localhost/).
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}:multi", f.layout.display()),
            &format!("docker://{a}/app:v1"),
        ],
        Path::new("/"),
    );
    assert_eq!(server.events_named("pushed").len(), 1, "{:?}", server.events());
    let listed = root.json(&["image", "list"]);
    let refs = listed[0]["refs"].to_string();
    assert!(refs.contains("cimd:docker:v=0:localhost/app:v1"), "{refs}");

    // skopeo: inspect and copy back out, digest for digest.
    assert_eq!(skopeo_digest(&format!("docker://{a}/app:v1"), &[]), original);
    assert_eq!(skopeo_digest(&format!("docker://{a}/localhost/app:v1"), &[]), original);
    let out = tempfile::tempdir().unwrap();
    let out_layout = out.path().join("layout");
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{a}/app:v1"),
            &format!("oci:{}:v1", out_layout.display()),
        ],
        Path::new("/"),
    );
    assert_eq!(ref_digest(&out_layout, "v1"), original);
    for d in image_digests(&f.layout, &original) {
        let hex = d.strip_prefix("sha256:").unwrap();
        assert_eq!(sha256_hex(&std::fs::read(out_layout.join("blobs/sha256").join(hex)).unwrap()), hex);
    }

    // podman pull.
    let work = tempfile::tempdir().unwrap();
    podman(work.path(), &["pull", "-q", "--tls-verify=false", &format!("{a}/localhost/app:v1")]);
    let digests = podman(work.path(), &["images", "--digests", "--format", "{{.Digest}}"]);
    assert_eq!(digests.trim(), original);

    // containerd's ctr, over plain HTTP.
    if is_root() {
        let containerd = Containerd::start();
        containerd.ctr(&["images", "pull", "--plain-http", "--snapshotter", "native", &format!("{a}/app:v1")]);
        let listed = containerd.ctr(&["images", "ls"]);
        assert!(listed.contains(&original), "{listed}");
    }

    // berth itself, from another store.
    let other = Root::new();
    let fetched = other.json(&["fetch", &format!("docker://{a}/app:v1")]);
    assert_eq!(fetched["manifest"], original.as_str());
    other.assert_fsck_clean();

    // A multi-platform image: the index, each platform's manifest and blobs round-trip.
    let index = ref_digest(&f.layout, "multi-arch");
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:multi-arch", f.layout.display()),
            &format!("docker://{a}/multi:latest"),
        ],
        Path::new("/"),
    );
    assert_eq!(skopeo_digest(&format!("docker://{a}/multi:latest"), &[]), index);
    let all = out.path().join("all");
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{a}/multi:latest"),
            &format!("oci:{}:x", all.display()),
        ],
        Path::new("/"),
    );
    assert_eq!(ref_digest(&all, "x"), index);

    // The registry's listings.
    let catalog: serde_json::Value = serde_json::from_slice(&http(a, "GET", "/v2/_catalog", &[], b"").body).unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["localhost/app", "localhost/multi"]));
    let tags = http(a, "GET", "/v2/app/tags/list", &[], b"");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&tags.body).unwrap()["tags"], serde_json::json!(["v1"]));
    let page = http(a, "GET", "/v2/_catalog?n=1", &[], b"");
    assert_eq!(page.header("link"), Some("</v2/_catalog?last=localhost%2Fapp&n=1>; rel=\"next\""));
    root.assert_fsck_clean();
}

#[test]
fn manifests_and_blobs_carry_the_headers_the_spec_names() {
    let f = fixtures();
    let root = Root::new();
    let server = Server::start(&root, &[]);
    let a = &server.addr;
    run_tool(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}:single", f.layout.display()),
            &format!("docker://{a}/app:v1"),
        ],
        Path::new("/"),
    );
    let digest = ref_digest(&f.layout, "single");
    let m = http(a, "HEAD", "/v2/app/manifests/v1", &[], b"");
    assert_eq!(m.status, 200);
    assert_eq!(m.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(m.header("etag"), Some(format!("\"{digest}\"").as_str()));
    assert_eq!(m.header("content-type"), Some("application/vnd.oci.image.manifest.v1+json"));
    assert!(m.body.is_empty());
    let by_digest = http(a, "GET", &format!("/v2/anything/manifests/{digest}"), &[], b"");
    assert_eq!(digest_of(&by_digest.body), digest);
    let etag = format!("\"{digest}\"");
    assert_eq!(http(a, "GET", "/v2/app/manifests/v1", &[("If-None-Match", &etag)], b"").status, 304);

    let layer = crate::support::manifest_of(&f.layout, "single")["layers"][0]["digest"].as_str().unwrap().to_string();
    let bytes = crate::support::read_blob(&f.layout, &layer);
    let path = format!("/v2/app/blobs/{layer}");
    let whole = http(a, "GET", &path, &[], b"");
    assert_eq!((whole.status, whole.body.len()), (200, bytes.len()));
    assert_eq!(whole.header("docker-content-digest"), Some(layer.as_str()));
    let part = http(a, "GET", &path, &[("Range", "bytes=10-19")], b"");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, bytes[10..20]);
    assert_eq!(part.header("content-range"), Some(format!("bytes 10-19/{}", bytes.len()).as_str()));
    let tail = http(a, "GET", &path, &[("Range", "bytes=-5")], b"");
    assert_eq!(tail.body, bytes[bytes.len() - 5..]);
    let beyond = http(a, "GET", &path, &[("Range", &format!("bytes={}-", bytes.len()))], b"");
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some(format!("bytes */{}", bytes.len()).as_str()));
    let head = http(a, "HEAD", &path, &[], b"");
    assert_eq!(head.header("content-length"), Some(bytes.len().to_string().as_str()));

    // Mounting a blob the store holds needs no upload.
    let mount = http(a, "POST", &format!("/v2/other/blobs/uploads/?mount={layer}&from=app"), &[], b"");
    assert_eq!(mount.status, 201);
    assert_eq!(mount.header("location"), Some(format!("/v2/other/blobs/{layer}").as_str()));
    // Referrers: an index, empty when nothing names the digest as its subject…
    let referrers = |query: &str| {
        let answer = http(a, "GET", &format!("/v2/app/referrers/{digest}{query}"), &[], b"");
        assert_eq!(answer.header("content-type"), Some("application/vnd.oci.image.index.v1+json"));
        let index: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        (answer.header("oci-filters-applied").map(str::to_string), index["manifests"].clone())
    };
    assert_eq!(referrers("").1, serde_json::json!([]));
    // …then listing a manifest pushed with that subject (the response says OCI-Subject).
    let mut signed = crate::support::manifest_of(&f.layout, "single");
    let size = crate::support::read_blob(&f.layout, &digest).len();
    signed["subject"] =
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size});
    signed["artifactType"] = "application/vnd.example.signature".into();
    signed["annotations"] = serde_json::json!({"org.example.signer": "ci"});
    let bytes = serde_json::to_vec(&signed).unwrap();
    let oci = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    let pushed = http(a, "PUT", "/v2/app/manifests/signature", &[oci], &bytes);
    assert_eq!(pushed.status, 201, "{}", String::from_utf8_lossy(&pushed.body));
    assert_eq!(pushed.header("oci-subject"), Some(digest.as_str()));
    let (filter, listed) = referrers("");
    assert_eq!(filter, None);
    assert_eq!(listed[0]["digest"], digest_of(&bytes).as_str());
    assert_eq!(listed[0]["artifactType"], "application/vnd.example.signature");
    assert_eq!(listed[0]["annotations"]["org.example.signer"], "ci");
    let (filter, listed) = referrers("?artifactType=application/vnd.example.sbom");
    assert_eq!((filter.as_deref(), listed), (Some("artifactType"), serde_json::json!([])));
}

/// A chunked push (POST, PATCH, PATCH, PUT) is verified like a fetched blob.
#[test]
fn chunked_uploads_resume_in_order_and_verify_at_the_end() {
    let root = Root::new();
    let server = Server::start(&root, &[]);
    let a = &server.addr;
    let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let digest = digest_of(&data);
    let start = http(a, "POST", "/v2/app/blobs/uploads/", &[], b"");
    assert_eq!(start.status, 202);
    let location = start.header("location").unwrap().to_string();
    let (first, second) = data.split_at(500_000);
    let p1 = http(a, "PATCH", &location, &[("Content-Range", "0-499999")], first);
    assert_eq!((p1.status, p1.header("range")), (202, Some("0-499999")));
    // A chunk that does not continue where the upload is: 416, nothing appended.
    let wrong = http(a, "PATCH", &location, &[("Content-Range", "10-20")], &second[..11]);
    assert_eq!((wrong.status, wrong.code().as_str()), (416, "BLOB_UPLOAD_INVALID"));
    let status = http(a, "GET", &location, &[], b"");
    assert_eq!((status.status, status.header("range")), (204, Some("0-499999")));
    let range = format!("500000-{}", data.len() - 1);
    assert_eq!(http(a, "PATCH", &location, &[("Content-Range", &range)], second).status, 202);
    let done = http(a, "PUT", &format!("{location}?digest={digest}"), &[], b"");
    assert_eq!(done.status, 201, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(http(a, "GET", &format!("/v2/app/blobs/{digest}"), &[], b"").body, data);
    // The session is gone once finished.
    assert_eq!(http(a, "GET", &location, &[], b"").code(), "BLOB_UPLOAD_UNKNOWN");

    // The wrong digest at the end: refused, nothing stored.
    let start = http(a, "POST", "/v2/app/blobs/uploads/", &[], b"");
    let location = start.header("location").unwrap().to_string();
    http(a, "PATCH", &location, &[], b"some bytes");
    let zero = format!("sha256:{}", "0".repeat(64));
    let refused = http(a, "PUT", &format!("{location}?digest={zero}"), &[], b"");
    assert_eq!((refused.status, refused.code().as_str()), (400, "DIGEST_INVALID"));
    assert!(!root.path().join("blobs/sha256").join("0".repeat(64)).exists());
    assert!(std::fs::read_dir(root.path().join("tmp")).unwrap().next().is_none());
}

/// Bad input from clients: clear 4xx answers in the spec's JSON form, and nothing
/// stored half-way.
#[test]
fn malformed_and_lying_requests_get_4xx_and_store_nothing() {
    let root = Root::new();
    let server = Server::start(&root, &["--idle-timeout", "2"]);
    let a = &server.addr;
    let zero = format!("sha256:{}", "0".repeat(64));
    for (path, code) in [
        ("/v2/../etc/manifests/latest", "NAME_INVALID"),
        ("/v2/a/../../b/manifests/latest", "NAME_INVALID"),
        ("/v2/a%2F..%2Fb/manifests/latest", "NAME_INVALID"),
        ("/v2/a%2fb/blobs/sha256:00", "NAME_INVALID"),
        ("/v2/Upper/manifests/latest", "NAME_INVALID"),
        ("/v2/app/manifests/-bad-tag", "TAG_INVALID"),
        ("/v2/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", "DIGEST_INVALID"),
        ("/v2/app/manifests/latest", "MANIFEST_UNKNOWN"),
        ("/v2/app/tags/list", "NAME_UNKNOWN"),
    ] {
        let answer = http(a, "GET", path, &[], b"");
        assert!((400..500).contains(&answer.status), "{path}: {}", answer.status);
        assert_eq!(answer.code(), code, "{path}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
    let missing = http(a, "GET", &format!("/v2/app/blobs/{zero}"), &[], b"");
    assert_eq!((missing.status, missing.code().as_str()), (404, "BLOB_UNKNOWN"));
    assert_eq!(http(a, "HEAD", &format!("/v2/app/blobs/{zero}"), &[], b"").body, b"");
    assert_eq!(http(a, "DELETE", "/v2/app/manifests/latest", &[], b"").status, 405);

    // Manifests: too large, not JSON, mislabelled, referencing what is not stored.
    let oci = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    // Refused on its Content-Length, before any of the body is read.
    let huge = (5 << 20).to_string();
    let answer = http(a, "PUT", "/v2/app/manifests/v1", &[oci, ("Content-Length", &huge)], b"");
    assert_eq!((answer.status, answer.code().as_str()), (413, "SIZE_INVALID"));
    assert_eq!(http(a, "PUT", "/v2/app/manifests/v1", &[oci], b"{not json").code(), "MANIFEST_INVALID");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{zero}","size":2}},"layers":[]}}"#
    );
    let docker = ("Content-Type", "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(http(a, "PUT", "/v2/app/manifests/v1", &[docker], manifest.as_bytes()).code(), "MANIFEST_INVALID");
    let unknown = http(a, "PUT", "/v2/app/manifests/v1", &[oci], manifest.as_bytes());
    assert_eq!((unknown.status, unknown.code().as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
    let by_digest = http(a, "PUT", &format!("/v2/app/manifests/{zero}"), &[oci], manifest.as_bytes());
    assert_eq!(by_digest.code(), "DIGEST_INVALID");

    // A monolithic upload whose bytes do not match the digest it names.
    let wrong = http(a, "POST", &format!("/v2/app/blobs/uploads/?digest={zero}"), &[], b"hello");
    assert_eq!((wrong.status, wrong.code().as_str()), (400, "DIGEST_INVALID"));

    // A Content-Length that lies: fewer bytes, then the client stops sending.
    let hello = digest_of(b"hello");
    let mut s = TcpStream::connect(a).unwrap();
    let req =
        format!("POST /v2/app/blobs/uploads/?digest={hello} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhello");
    s.write_all(req.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(raw.is_empty() || parse_answer(&raw).status >= 400, "{}", String::from_utf8_lossy(&raw));

    // A slow client: the body stalls past the idle timeout; 408, and nothing is kept.
    let started = Instant::now();
    let mut s = TcpStream::connect(a).unwrap();
    let req = format!("POST /v2/app/blobs/uploads/?digest={hello} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe");
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_eq!(parse_answer(&raw).status, 408);
    assert!(started.elapsed() < Duration::from_secs(15));
    // Headers that never end: the connection is closed.
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(!String::from_utf8_lossy(&raw).contains(" 200 "), "{}", String::from_utf8_lossy(&raw));

    assert!(root.blob_names().is_empty(), "{:?}", root.blob_names());
    assert!(std::fs::read_dir(root.path().join("tmp")).unwrap().next().is_none());
    assert_eq!(root.image_count(), 0);

    // A read-only server takes no push at all.
    let ro_root = Root::new();
    let ro = Server::start(&ro_root, &["--read-only"]);
    let answer = http(&ro.addr, "POST", "/v2/app/blobs/uploads/", &[], b"");
    assert_eq!((answer.status, answer.code().as_str()), (405, "UNSUPPORTED"));
}

/// A stored blob damaged on disk is found while it is served: the response is cut off
/// before its end, the blob goes to quarantine, and it is not served again.
#[test]
fn a_corrupt_blob_is_quarantined_and_never_served_whole() {
    let root = Root::new();
    let small = b"a small blob, checked before its first byte".to_vec();
    let large: Vec<u8> = (0..(6u32 << 20) / 4).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
    let (small_digest, large_digest) = (digest_of(&small), digest_of(&large));
    {
        let server = Server::start(&root, &[]);
        for (d, bytes) in [(&small_digest, &small), (&large_digest, &large)] {
            let answer = http(&server.addr, "POST", &format!("/v2/app/blobs/uploads/?digest={d}"), &[], bytes);
            assert_eq!(answer.status, 201);
        }
    }
    for d in [&small_digest, &large_digest] {
        let path = root.path().join("blobs/sha256").join(d.strip_prefix("sha256:").unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        std::fs::write(&path, &bytes).unwrap();
    }
    // A new server: nothing is verified yet.
    let server = Server::start(&root, &[]);
    let a = &server.addr;
    assert_eq!(http(a, "GET", &format!("/v2/app/blobs/{small_digest}"), &[], b"").code(), "BLOB_UNKNOWN");
    let cut = http(a, "GET", &format!("/v2/app/blobs/{large_digest}"), &[], b"");
    assert_eq!(cut.status, 200);
    assert!(cut.body.len() < large.len(), "the whole corrupt blob was sent");
    assert_eq!(http(a, "GET", &format!("/v2/app/blobs/{large_digest}"), &[], b"").code(), "BLOB_UNKNOWN");
    let quarantined = std::fs::read_dir(root.path().join("quarantine")).unwrap().count();
    assert_eq!(quarantined, 2);
    assert_eq!(server.events_named("quarantined").len(), 2);
    root.assert_fsck_clean();
}

/// Node B names node A's server as a mirror of the upstream registry: B's fetch is
/// served by A; with A down, B falls back to the upstream.
#[test]
fn a_peer_serves_another_node_and_the_upstream_takes_over_when_it_is_down() {
    let f = fixtures();
    let upstream = Registry::start();
    upstream.push(&f.layout, "multi", "app:v1", "oci");
    let original = ref_digest(&f.layout, "multi");
    let point = format!("oci://{}/app:v1", upstream.addr);

    let node_a = Root::new();
    node_a.ok(&["fetch", &point]);
    let mut server = Server::start(&node_a, &["--read-only"]);
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("registries.toml");
    std::fs::write(
        &conf,
        format!("[[registry]]\nprefix = \"{}\"\n[[registry.mirror]]\nlocation = \"{}\"\n", upstream.addr, server.addr),
    )
    .unwrap();
    let conf = conf.display().to_string();

    let node_b = Root::new();
    let fetched = node_b.json(&["fetch", "--registries-conf", &conf, &point]);
    assert_eq!(fetched["manifest"], original.as_str());
    let served: Vec<_> = server.events_named("request").into_iter().filter(|e| e["status"] == 200).collect();
    let paths: Vec<&str> = served.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.iter().any(|p| p.starts_with("/v2/app/manifests/v1?ns=")), "{paths:?}");
    assert_eq!(paths.iter().filter(|p| p.contains("/blobs/")).count(), 4, "{paths:?}");

    assert_eq!(server.stop(), 0);
    let node_c = Root::new();
    let fallback = node_c.json(&["fetch", "--registries-conf", &conf, &point]);
    assert_eq!(fallback["manifest"], original.as_str());
}

/// `--pull-through`: a miss is fetched from the upstream once, however many clients
/// ask at the same time, then served from the store.
#[test]
fn pull_through_fetches_a_miss_once_for_many_clients() {
    let f = fixtures();
    let upstream = Registry::start();
    upstream.push(&f.layout, "multi", "team/app:v1", "v2s2");
    let root = Root::new();
    let server = Server::start(&root, &["--pull-through", &upstream.addr]);
    let a = server.addr.clone();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let a = a.clone();
            std::thread::spawn(move || {
                let accept = ("Accept", "application/vnd.docker.distribution.manifest.v2+json");
                http(&a, "GET", "/v2/team/app/manifests/v1", &[accept], b"")
            })
        })
        .collect();
    let answers: Vec<Answer> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let digests: Vec<String> = answers.iter().map(|r| digest_of(&r.body)).collect();
    assert!(answers.iter().all(|r| r.status == 200), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(server.events_named("pulled").len(), 1, "{:?}", server.events());
    // A real client through the cache, by the upstream's qualified name too.
    let qualified = format!("docker://{a}/{}/team/app:v1", upstream.addr.replace(':', "_"));
    assert_eq!(skopeo_digest(&qualified, &[]), digests[0]);
    let listed = root.json(&["image", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // A name the upstream does not have: 404, and nothing stored.
    let missing = http(&a, "GET", "/v2/team/none/manifests/v1", &[], b"");
    assert_eq!(missing.status, 404, "{}", String::from_utf8_lossy(&missing.body));
    // A cosign signature tag is no image to pull: 404 at once, no pull tried.
    let sig = format!("/v2/team/app/manifests/{}.sig", digests[0].replace(':', "-"));
    assert_eq!(http(&a, "GET", &sig, &[], b"").status, 404);
    let failed = server.events_named("pull-failed");
    assert!(!failed.iter().any(|e| e["point"].as_str().unwrap().ends_with(".sig")), "{failed:?}");
}

/// TLS and htpasswd: clients without credentials are refused, with them served.
#[test]
fn tls_and_htpasswd_guard_the_registry() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let tls = crate::support::tls_files(dir.path(), "127.0.0.1");
    let password = "serve-test-password";
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("tester:{}\n", bcrypt::hash(password, 4).unwrap())).unwrap();
    let root = Root::new();
    let server = Server::start(
        &root,
        &[
            "--tls-cert",
            tls.cert.to_str().unwrap(),
            "--tls-key",
            tls.key.to_str().unwrap(),
            "--htpasswd",
            htpasswd.to_str().unwrap(),
        ],
    );
    let a = &server.addr;
    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(certs.join(a)).unwrap();
    std::fs::copy(&tls.ca, certs.join(a).join("ca.crt")).unwrap();
    let cert_dir = certs.join(a).display().to_string();
    let creds = format!("tester:{password}");
    let to = format!("docker://{a}/app:v1");
    let from = format!("oci:{}:single", f.layout.display());
    let refused =
        Command::new("skopeo").args(["copy", "-q", "--dest-cert-dir", &cert_dir, &from, &to]).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("authentication required"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    run_tool(
        "skopeo",
        &["copy", "-q", "--dest-cert-dir", &cert_dir, "--dest-creds", &creds, &from, &to],
        Path::new("/"),
    );
    let digest = digest_of(
        run_tool("skopeo", &["inspect", "--raw", "--cert-dir", &cert_dir, "--creds", &creds, &to], Path::new("/"))
            .as_bytes(),
    );
    assert_eq!(digest, ref_digest(&f.layout, "single"));
    // berth with a certs.d directory and an auth.json.
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(&creds);
    let authfile = dir.path().join("auth.json");
    std::fs::write(&authfile, serde_json::to_vec(&serde_json::json!({"auths": {a.clone(): {"auth": auth}}})).unwrap())
        .unwrap();
    let other = Root::new();
    let fetched = other.json(&[
        "fetch",
        "--certs-dir",
        certs.to_str().unwrap(),
        "--authfile",
        authfile.to_str().unwrap(),
        &format!("docker://{a}/app:v1"),
    ]);
    assert_eq!(fetched["manifest"], digest.as_str());
    let users: Vec<_> =
        server.events_named("request").into_iter().filter_map(|e| e["user"].as_str().map(str::to_string)).collect();
    assert!(users.iter().any(|u| u == "tester"));
}

/// SIGTERM: no new connections, the request in flight finishes, exit 0. Start-up
/// failures exit with the documented codes.
#[test]
fn sigterm_lets_requests_in_flight_finish_and_startup_failures_name_the_cause() {
    let root = Root::new();
    let large: Vec<u8> = (0..(8u32 << 20) / 4).flat_map(|i| i.to_le_bytes()).collect();
    let digest = digest_of(&large);
    let mut server = Server::start(&root, &[]);
    let a = server.addr.clone();
    assert_eq!(http(&a, "POST", &format!("/v2/app/blobs/uploads/?digest={digest}"), &[], &large).status, 201);
    // Start a download, read only its headers, then ask the server to stop.
    let mut s = TcpStream::connect(&a).unwrap();
    write!(s, "GET /v2/app/blobs/{digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut first = [0u8; 256];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let pid = server.child.as_ref().unwrap().id();
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), rustix::process::Signal::TERM)
        .unwrap();
    let mut rest = first[..n].to_vec();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(parse_answer(&rest).body, large, "the download in flight was cut");
    let code = server.child.take().unwrap().wait().unwrap().code();
    assert_eq!(code, Some(0), "{}", server.stderr());
    assert_eq!(server.events_named("stopped").len(), 1);
    assert!(TcpStream::connect(&a).is_err(), "still listening after SIGTERM");

    // The port is taken: unavailable (8), naming the address and the flag.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    let (code, _, err) = root.run(&["serve", "--listen", &taken]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains(&taken) && err.contains("--listen"), "{err}");
    let (code, _, err) = root.run(&["serve", "--listen", "nowhere"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) =
        root.run(&["serve", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}
