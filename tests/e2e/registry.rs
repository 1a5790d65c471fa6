//! `berth fetch` from a real CNCF distribution registry (Debian's `docker-registry`)
//! on 127.0.0.1, with images pushed by skopeo in OCI and Docker v2s2 formats.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Root, fixtures, run_tool, sha256_hex};

/// A registry on a free loopback port, stopped when dropped.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    pub addr: String,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
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

    /// `skopeo copy` a fixture ref into `repo:tag`, in `format` (oci or v2s2).
    fn push(&self, layout: &Path, reference: &str, repo_tag: &str, format: &str) {
        run_tool(
            "skopeo",
            &[
                "copy",
                "-q",
                "--dest-tls-verify=false",
                "--format",
                format,
                &format!("oci:{}:{reference}", layout.display()),
                &format!("docker://{}/{repo_tag}", self.addr),
            ],
            Path::new("/"),
        );
    }

    /// The manifest digest and JSON skopeo reads for `repo_tag`.
    fn skopeo_raw(&self, repo_tag: &str) -> (String, serde_json::Value) {
        let raw = run_tool(
            "skopeo",
            &["inspect", "--raw", "--tls-verify=false", &format!("docker://{}/{repo_tag}", self.addr)],
            Path::new("/"),
        );
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
