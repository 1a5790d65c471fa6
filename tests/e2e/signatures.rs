//! Image signatures and the policy's `signed-by` rule, against a real docker-registry:
//! containers' simple signing written by skopeo (`--sign-by`, a GnuPG key made in the
//! test) into a lookaside directory, and cosign signatures (a `sha256-<hex>.sig` tag)
//! made with an ECDSA P-256 key openssl generates in the test (Debian's skopeo cannot
//! write sigstore signatures, and cosign is not packaged), pushed as cosign pushes them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fault_registry::{Action, FaultRegistry};
use crate::registry::Registry;
use crate::serve::{Server, http};
use crate::support::{Root, fixtures, run_tool, sha256_hex};

/// A GnuPG home with one signing key, its agent stopped when dropped.
struct Gpg {
    home: tempfile::TempDir,
    fingerprint: String,
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").arg("--homedir").arg(self.home.path()).args(["--kill", "gpg-agent"]).status();
    }
}

impl Gpg {
    fn new(uid: &str) -> Gpg {
        // gpg-agent's socket path must be short: a home under /tmp.
        let home = tempfile::Builder::new().prefix("gpg").tempdir_in("/tmp").unwrap();
        let gpg = |args: &[&str]| {
            let out = Command::new("gpg")
                .arg("--homedir")
                .arg(home.path())
                .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args)
                .output()
                .expect("gpg is missing: install gnupg (`just setup` does)");
            assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        gpg(&["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        let listing = gpg(&["--with-colons", "--fingerprint", uid]);
        let fingerprint = listing.lines().find_map(|l| l.strip_prefix("fpr:")).unwrap().trim_matches(':').to_string();
        Gpg { home, fingerprint }
    }

    fn export(&self, to: &Path) {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--armor", "--export", &self.fingerprint])
            .output()
            .unwrap();
        std::fs::write(to, out.stdout).unwrap();
    }
}

/// `skopeo copy` fixture `reference` to `repo_tag`, signed by `gpg` into `lookaside`.
fn push_signed(reg: &Registry, reference: &str, repo_tag: &str, gpg: &Gpg, lookaside: &Path) {
    push_signed_with(reg, reference, repo_tag, gpg, lookaside, &[]);
}

fn push_signed_with(reg: &Registry, reference: &str, repo_tag: &str, gpg: &Gpg, lookaside: &Path, flags: &[&str]) {
    let registries_d = tempfile::tempdir().unwrap();
    std::fs::write(
        registries_d.path().join("berth-test.yaml"),
        format!("docker:\n  {}:\n    sigstore-staging: file://{}\n", reg.addr, lookaside.display()),
    )
    .unwrap();
    let from = format!("oci:{}:{reference}", fixtures().layout.display());
    let to = format!("docker://{}/{repo_tag}", reg.addr);
    let out = Command::new("skopeo")
        .env("GNUPGHOME", gpg.home.path())
        .arg("--registries.d")
        .arg(registries_d.path())
        .args(["copy", "-q", "--dest-tls-verify=false", "--format", "oci", "--sign-by", &gpg.fingerprint])
        .args(flags)
        .args([&from, &to])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy --sign-by: {}", String::from_utf8_lossy(&out.stderr));
}

/// The manifest digest the registry serves for `repo_tag`.
fn manifest_digest(reg: &Registry, repo_tag: &str) -> String {
    let reference = format!("docker://{}/{repo_tag}", reg.addr);
    let raw = run_tool("skopeo", &["inspect", "--raw", "--tls-verify=false", &reference], Path::new("/"));
    format!("sha256:{}", sha256_hex(raw.as_bytes()))
}

/// A root trusting `key` for `prefix`, with a registries.toml (the lookaside, if any)
/// and a policy requiring a signature by `required` for `prefix`. Returns the flags
/// every fetch passes.
fn setup(
    root: &Root,
    reg: &Registry,
    key: &Path,
    prefix: &str,
    required: &str,
    lookaside: Option<&Path>,
) -> Vec<String> {
    root.ok(&["trust", "--prefix", prefix, "--skip-fingerprint-review", &key.display().to_string()]);
    let conf = root.path().join("registries.toml");
    let mut text = format!("[[registry]]\nprefix = \"{}\"\n", reg.addr);
    if let Some(l) = lookaside {
        text.push_str(&format!("lookaside = \"file://{}\"\n", l.display()));
    }
    std::fs::write(&conf, text).unwrap();
    let policy = root.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!("[[rule]]\nkind = \"*\"\nscope = \"{prefix}\"\naction = \"signed-by\"\nkeys = [\"{required}\"]\n"),
    )
    .unwrap();
    vec![
        "--policy".into(),
        policy.display().to_string(),
        "fetch".into(),
        "--registries-conf".into(),
        conf.display().to_string(),
    ]
}

fn fetch(root: &Root, flags: &[String], point: &str) -> (i32, String, String) {
    let mut args: Vec<&str> = vec!["--json"];
    args.extend(flags.iter().map(String::as_str));
    args.push(point);
    root.run(&args)
}

#[test]
fn simple_signing_by_skopeo_satisfies_signed_by_and_nothing_else_does() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let lookaside = work.path().join("lookaside");
    let signer = Gpg::new("Release <release@example.com>");
    let stranger = Gpg::new("Stranger <stranger@example.com>");
    push_signed(&reg, "single", "signed/app:v1", &signer, &lookaside);
    push_signed(&reg, "multi", "signed/other:v1", &stranger, &lookaside);
    reg.push(&fixtures().layout, "multi", "signed/plain:v1", "oci");

    let root = Root::new();
    let key = work.path().join("release.asc");
    signer.export(&key);
    let prefix = format!("{}/signed", reg.addr);
    let flags = setup(&root, &reg, &key, &prefix, &signer.fingerprint, Some(&lookaside));

    // By tag and by digest: the signature skopeo wrote verifies and names the image.
    let (code, out, err) = fetch(&root, &flags, &format!("oci://{}/signed/app:v1", reg.addr));
    assert_eq!(code, 0, "{err}");
    let fetched: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fetched["signedBy"][0]["fingerprint"], signer.fingerprint.as_str(), "{fetched}");
    let digest = manifest_digest(&reg, "signed/app:v1");
    assert_eq!(fetched["manifest"], digest.as_str());
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}/signed/app@{digest}", reg.addr));
    assert_eq!(code, 0, "{err}");

    // A multi-platform image: skopeo signs the index the tag names; berth stores this
    // machine's manifest from it, and counts the signature over the index that lists it.
    push_signed_with(&reg, "multi-arch", "signed/multi:v1", &signer, &lookaside, &["--all"]);
    let (code, out, err) = fetch(&root, &flags, &format!("oci://{}/signed/multi:v1", reg.addr));
    assert_eq!(code, 0, "{err}");
    let fetched: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fetched["signedBy"][0]["fingerprint"], signer.fingerprint.as_str(), "{fetched}");
    assert_ne!(fetched["manifest"], manifest_digest(&reg, "signed/multi:v1").as_str(), "a manifest, not the index");

    // Unsigned: denied, saying no signature was found; nothing stored for it.
    let before = root.image_count();
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}/signed/plain:v1", reg.addr));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no simple-signing signature at file://"), "{err}");
    assert_eq!(root.image_count(), before);

    // Signed by a key not trusted here.
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}/signed/other:v1", reg.addr));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not trusted for"), "{err}");

    // app's signature copied beside plain's manifest: it signs another manifest.
    let plain = manifest_digest(&reg, "signed/plain:v1");
    let dir = |repo: &str, d: &str| lookaside.join(format!("signed/{repo}@{}", d.replace(':', "=")));
    std::fs::create_dir_all(dir("plain", &plain)).unwrap();
    std::fs::copy(dir("app", &digest).join("signature-1"), dir("plain", &plain).join("signature-1")).unwrap();
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}/signed/plain:v1", reg.addr));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("it signs manifest {digest}, not {plain}")), "{err}");

    // The same image under another tag of the repository: the signature names tag v1.
    reg.push(&fixtures().layout, "single", "signed/app:v2", "oci");
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}/signed/app:v2", reg.addr));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not tag \"v2\""), "{err}");

    // The same lookaside served over HTTP (Python's static file server).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut http_server = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
        .arg(&lookaside)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the HTTP server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let over_http = Root::new();
    let flags_http = setup(&over_http, &reg, &key, &prefix, &signer.fingerprint, None);
    let conf = over_http.path().join("registries.toml");
    std::fs::write(
        &conf,
        format!("[[registry]]\nprefix = \"{}\"\nlookaside = \"http://127.0.0.1:{port}/\"\n", reg.addr),
    )
    .unwrap();
    let (code, out, err) = fetch(&over_http, &flags_http, &format!("oci://{}/signed/app:v1", reg.addr));
    let _ = http_server.kill();
    let _ = http_server.wait();
    assert_eq!(code, 0, "{err}");
    let fetched: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fetched["signedBy"][0]["fingerprint"], signer.fingerprint.as_str(), "{fetched}");

    // Without a lookaside in registries.toml the denial says where to configure one.
    let bare = Root::new();
    let flags = setup(&bare, &reg, &key, &prefix, &signer.fingerprint, None);
    let (code, _, err) = fetch(&bare, &flags, &format!("oci://{}/signed/app:v1", reg.addr));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no lookaside is configured"), "{err}");
}

/// An ECDSA P-256 key pair made by openssl: (private key PEM path, public key PEM path).
fn cosign_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    run_tool(
        "openssl",
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &private.display().to_string()],
        dir,
    );
    run_tool(
        "openssl",
        &["ec", "-in", &private.display().to_string(), "-pubout", "-out", &public.display().to_string()],
        dir,
    );
    (private, public)
}

/// The simple-signing payload cosign signs for `reference` at `digest`.
fn cosign_payload(reference: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({"critical": {"identity": {"docker-reference": reference},
        "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"}, "optional": null})
    .to_string()
    .into_bytes()
}

/// Base64 of openssl's DER ECDSA-SHA256 signature of `payload`.
fn cosign_sign(key: &Path, payload: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload");
    std::fs::write(&file, payload).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&file)
        .output()
        .expect("openssl is missing");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

/// Upload `bytes` as a blob of `repo` (POST, then PUT with the digest).
fn upload(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let start = http(addr, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(start.status, 202);
    let location = start.header("location").unwrap().to_string();
    let path = location.split_once("://").map_or(location.as_str(), |(_, rest)| &rest[rest.find('/').unwrap()..]);
    let sep = if path.contains('?') { '&' } else { '?' };
    let put = http(
        addr,
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        bytes,
    );
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    digest
}

/// Push a signature manifest as cosign does: the payload as a layer carrying the
/// signature, tagged `sha256-<hex>.sig` in `repo`.
fn push_cosign_signature(addr: &str, repo: &str, digest: &str, payload: &[u8], signature: &str) {
    push_signature_manifest(addr, repo, digest, None, payload, signature);
}

/// [`push_cosign_signature`], or with `subject_size` as cosign's OCI 1.1 mode pushes it:
/// naming the image as its `subject`, pushed by digest, found through the referrers API.
fn push_signature_manifest(
    addr: &str,
    repo: &str,
    digest: &str,
    subject_size: Option<usize>,
    payload: &[u8],
    signature: &str,
) {
    let layer = upload(addr, repo, payload);
    let config = b"{\"architecture\":\"\",\"os\":\"\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    let config_digest = upload(addr, repo, config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer,
            "size": payload.len(), "annotations": {"dev.cosignproject.cosign/signature": signature}}],
    });
    let mut manifest = manifest;
    if let Some(size) = subject_size {
        manifest["artifactType"] = "application/vnd.dev.cosign.artifact.sig.v1+json".into();
        manifest["subject"] = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size});
    }
    let manifest = manifest.to_string();
    let tag = match subject_size {
        Some(_) => format!("sha256:{}", sha256_hex(manifest.as_bytes())),
        None => format!("{}.sig", digest.replace(':', "-")),
    };
    let put = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.as_bytes(),
    );
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
}

#[test]
fn cosign_signatures_in_the_registry_satisfy_signed_by() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let (private, public) = cosign_key(work.path(), "cosign");
    let (stranger, _) = cosign_key(work.path(), "stranger");
    let f = fixtures();
    reg.push(&f.layout, "single", "cosigned/app:v1", "oci");
    reg.push(&f.layout, "multi", "cosigned/other:v1", "oci");
    reg.push(&f.layout, "multi", "cosigned/forged:v1", "oci");
    reg.push(&f.layout, "multi", "cosigned/plain:v1", "oci");
    let app = manifest_digest(&reg, "cosigned/app:v1");
    let other = manifest_digest(&reg, "cosigned/other:v1");

    let reference = |repo_tag: &str| format!("{}/{repo_tag}", reg.addr);
    let payload = cosign_payload(&reference("cosigned/app:v1"), &app);
    push_cosign_signature(&reg.addr, "cosigned/app", &app, &payload, &cosign_sign(&private, &payload));
    // other is signed by a key nobody trusts; forged carries app's signed payload.
    let payload_other = cosign_payload(&reference("cosigned/other:v1"), &other);
    push_cosign_signature(&reg.addr, "cosigned/other", &other, &payload_other, &cosign_sign(&stranger, &payload_other));
    push_cosign_signature(&reg.addr, "cosigned/forged", &other, &payload, &cosign_sign(&private, &payload));

    let root = Root::new();
    let trusted = root.json(&[
        "trust",
        "--prefix",
        &reference("cosigned"),
        "--skip-fingerprint-review",
        &public.display().to_string(),
    ]);
    let fingerprint = trusted[0]["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(trusted[0]["kind"], "sigstore");
    // The trusted key was added above; setup adds it again (a re-add replaces it).
    let flags = setup(&root, &reg, &public, &reference("cosigned"), &fingerprint, None);

    let (code, out, err) = fetch(&root, &flags, &format!("oci://{}", reference("cosigned/app:v1")));
    assert_eq!(code, 0, "{err}");
    let fetched: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fetched["signedBy"][0]["fingerprint"], fingerprint.as_str(), "{fetched}");
    // The signature payloads were only needed for the check: not left in the store.
    let payload_digest = sha256_hex(&payload);
    assert!(!root.blob_names().iter().any(|(_, hex)| *hex == payload_digest), "{:?}", root.blob_names());
    root.assert_fsck_clean();

    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}", reference("cosigned/other:v1")));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("verifies with none of the sigstore keys"), "{err}");
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}", reference("cosigned/forged:v1")));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("it signs manifest {app}, not {other}")), "{err}");
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}", reference("cosigned/plain:v1")));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no cosign signature of"), "{err}");
    // policy eval of the stored image looks its signatures up as the fetch did; without
    // the trusted key, the denial says so.
    let eval = |root: &Root| {
        let point = format!("oci://{}", reference("cosigned/app:v1"));
        let (_, out, err) = root.run(&["--json", &flags[0], &flags[1], "policy", "eval", &point]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"))
    };
    let evaluated = eval(&root);
    assert_eq!(evaluated["allow"], true, "{evaluated}");
    assert_eq!(evaluated["decisions"][1]["stage"], "after-resolve");
    root.ok(&["trust", "rm", &fingerprint]);
    let evaluated = eval(&root);
    assert_eq!(evaluated["allow"], false, "{evaluated}");
    assert!(evaluated["decisions"][1]["reasons"].to_string().contains("signatures: no key is trusted"), "{evaluated}");
    root.ok(&["trust", "--prefix", &reference("cosigned"), "--skip-fingerprint-review", &public.display().to_string()]);

    // Outside the rule's scope an unsigned image is still accepted (default accept).
    reg.push(&f.layout, "single", "elsewhere/app:v1", "oci");
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}", reference("elsewhere/app:v1")));
    assert_eq!(code, 0, "{err}");
}

/// The fake registry's image `app:v1`, with a cosign signature listed by the referrers
/// API (docker-registry 2.8 has no referrers API; cosign's OCI 1.1 mode stores
/// signatures so): the referrers index (`listed` names more manifests before it), the
/// signature manifest, and its payload.
fn serve_with_referrer(
    key: &Path,
    listed: Vec<serde_json::Value>,
    faults: impl Fn(&crate::fault_registry::Seen, usize) -> Action + Send + Sync + 'static,
) -> FaultRegistry {
    let (mut content, digest, layer) = FaultRegistry::image_content();
    let key = key.to_path_buf();
    let image = digest.clone();
    let make = move |addr: &str| {
        let payload = cosign_payload(&format!("{addr}/app:v1"), &image);
        let payload_digest = format!("sha256:{}", sha256_hex(&payload));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": payload_digest,
                "size": payload.len(), "annotations": {"dev.cosignproject.cosign/signature": cosign_sign(&key, &payload)}}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image, "size": 0},
        })
        .to_string()
        .into_bytes();
        let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
        let oci = "application/vnd.oci.image.manifest.v1+json".to_string();
        let mut listed = listed;
        listed.push(serde_json::json!({"mediaType": oci, "digest": manifest_digest, "size": manifest.len(),
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}));
        content.insert(format!("/v2/app/manifests/{manifest_digest}"), (oci, manifest));
        content.insert(format!("/v2/app/blobs/{payload_digest}"), ("application/octet-stream".into(), payload));
        let index = serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": listed});
        content.insert(
            format!("/v2/app/referrers/{image}?artifactType=application/vnd.dev.cosign.artifact.sig.v1%2Bjson"),
            ("application/vnd.oci.image.index.v1+json".into(), index.to_string().into_bytes()),
        );
        content
    };
    FaultRegistry::serving_for(make, digest, layer, faults)
}

/// A root trusting `public` for the fake's `app`, and fetch flags with a policy that
/// requires its signature there. Returns (root, flags, the key's fingerprint).
fn referrer_root(reg: &FaultRegistry, public: &Path) -> (Root, Vec<String>, String) {
    let root = Root::new();
    let prefix = format!("{}/app", reg.addr);
    let trusted =
        root.json(&["trust", "--prefix", &prefix, "--skip-fingerprint-review", &public.display().to_string()]);
    let fingerprint = trusted[0]["fingerprint"].as_str().unwrap().to_string();
    let policy = root.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!("[[rule]]\nkind = \"oci\"\nscope = \"{prefix}\"\naction = \"signed-by\"\nkeys = [\"{fingerprint}\"]\n"),
    )
    .unwrap();
    (root, vec!["--policy".into(), policy.display().to_string(), "fetch".into()], fingerprint)
}

#[test]
fn berth_serve_keeps_cosign_signatures_beside_its_images_for_its_clients() {
    // docker-registry 2.8 has no referrers API; berth serve has, and keeps what cosign
    // pushes beside an image: a manifest under the sha256-<hex>.sig tag, or one naming
    // the image as its subject (cosign's OCI 1.1 mode).
    let source = Root::new();
    let server = Server::start(&source, &[]);
    let a = server.addr.clone();
    let mut digests = Vec::new();
    for (fixture, tag) in [("single", "v1"), ("multi", "v2")] {
        let to = format!("docker://{a}/app:{tag}");
        let from = format!("oci:{}:{fixture}", fixtures().layout.display());
        run_tool("skopeo", &["copy", "-q", "--dest-tls-verify=false", &from, &to], Path::new("/"));
        let raw = run_tool("skopeo", &["inspect", "--raw", "--tls-verify=false", &to], Path::new("/"));
        digests.push((format!("sha256:{}", sha256_hex(raw.as_bytes())), raw.len()));
    }
    let work = tempfile::tempdir().unwrap();
    let (private, public) = cosign_key(work.path(), "cosign");
    let (v1, _) = &digests[0];
    let (v2, v2_size) = &digests[1];
    let payload_v1 = cosign_payload(&format!("{a}/app:v1"), v1);
    push_cosign_signature(&a, "app", v1, &payload_v1, &cosign_sign(&private, &payload_v1));
    let payload_v2 = cosign_payload(&format!("{a}/app:v2"), v2);
    push_signature_manifest(&a, "app", v2, Some(*v2_size), &payload_v2, &cosign_sign(&private, &payload_v2));
    // A document that is no image and names nothing it belongs to is refused.
    let stray = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom", "config": {"mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2}, "layers": []});
    let oci = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    let refused = http(&a, "PUT", "/v2/app/manifests/sbom", &[oci], stray.to_string().as_bytes());
    assert_eq!(refused.status, 400, "{}", String::from_utf8_lossy(&refused.body));

    let verify = |tags: &[&str]| {
        let root = Root::new();
        let prefix = format!("{a}/app");
        let trusted =
            root.json(&["trust", "--prefix", &prefix, "--skip-fingerprint-review", &public.display().to_string()]);
        let fingerprint = trusted[0]["fingerprint"].as_str().unwrap().to_string();
        let policy = root.path().join("policy.toml");
        let rule = format!(
            "[[rule]]\nkind = \"oci\"\nscope = \"{prefix}\"\naction = \"signed-by\"\nkeys = [\"{fingerprint}\"]\n"
        );
        std::fs::write(&policy, rule).unwrap();
        let policy = policy.display().to_string();
        tags.iter()
            .map(|tag| {
                let (code, out, err) =
                    root.run(&["--json", "--policy", &policy, "fetch", &format!("oci://{a}/app:{tag}")]);
                assert!(code == 0 || code == 4, "{err}");
                code == 0
                    && serde_json::from_str::<serde_json::Value>(&out).unwrap()["signedBy"][0]["fingerprint"]
                        == fingerprint.as_str()
            })
            .collect::<Vec<bool>>()
    };
    // v1 through the .sig tag, v2 through the referrers API.
    assert_eq!(verify(&["v1", "v2"]), [true, true]);
    let tags = http(&a, "GET", "/v2/app/tags/list", &[], b"");
    let listed: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
    assert!(listed["tags"].as_array().unwrap().contains(&format!("{}.sig", v1.replace(':', "-")).into()), "{listed}");

    // gc keeps the signatures of kept images; removing an image lets gc take its own.
    source.ok(&["gc"]);
    assert_eq!(verify(&["v1", "v2"]), [true, true]);
    // (`image rm` collects what the image alone needed, as gc would.)
    source.ok(&["image", "rm", v1]);
    let sig_tag = format!("/v2/app/manifests/{}.sig", v1.replace(':', "-"));
    assert_eq!(http(&a, "GET", &sig_tag, &[], b"").status, 404);
    let payload_v1 = sha256_hex(&payload_v1);
    assert!(!source.blob_names().iter().any(|(_, hex)| *hex == payload_v1));
    assert_eq!(verify(&["v2"]), [true]);
    source.assert_fsck_clean();
}

#[test]
fn hostile_signature_listings_and_payloads_are_bounded_and_refused() {
    let work = tempfile::tempdir().unwrap();
    let (private, public) = cosign_key(work.path(), "cosign");
    // A referrers index naming 500 manifests (none there) before the real one: berth
    // reads a bounded number, finds no signature within them, and the policy refuses.
    let flood: Vec<serde_json::Value> = (0..500u32)
        .map(|i| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", sha256_hex(&i.to_be_bytes())), "size": 10})
        })
        .collect();
    let reg = serve_with_referrer(&private, flood, |_, _| Action::Serve);
    let (root, flags, _) = referrer_root(&reg, &public);
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}/app:v1", reg.addr));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no cosign signature"), "{err}");
    let asked = reg.seen("").iter().filter(|s| s.path.contains("/manifests/sha256:")).count();
    assert!(asked <= 16, "{asked} signature manifests asked for");
    assert_eq!(root.image_count(), 0);

    // A payload whose bytes are not the ones its manifest names is not stored, and the
    // image is refused for want of a signature.
    let image = crate::support::manifest_of(&fixtures().layout, "single");
    let image_blobs: Vec<String> = [&image["config"]["digest"], &image["layers"][0]["digest"]]
        .iter()
        .map(|d| format!("/v2/app/blobs/{}", d.as_str().unwrap()))
        .collect();
    let reg = serve_with_referrer(&private, Vec::new(), move |seen, _| {
        if seen.path.starts_with("/v2/app/blobs/") && !image_blobs.contains(&seen.path) {
            Action::Replace(b"{\"critical\":{}}".to_vec())
        } else {
            Action::Serve
        }
    });
    let (root, flags, _) = referrer_root(&reg, &public);
    let (code, _, err) = fetch(&root, &flags, &format!("oci://{}/app:v1", reg.addr));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("looking for cosign signatures"), "{err}");
    assert_eq!(root.image_count(), 0);
    root.assert_fsck_clean();
}
