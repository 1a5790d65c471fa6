//! Partial pulls of eStargz layers: images built by umoci, pushed by skopeo to a real
//! `docker-registry`, converted to eStargz by stargz-snapshotter's `ctr-remote` (through
//! a containerd of the test's own) and pushed back; berth fetches them with `--partial`
//! and must render exactly what a full pull renders, download only what the store lacks,
//! and refuse a chunk whose bytes are not the ones the table of contents names.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::fault_registry::{Action, FaultRegistry, Seen};
use crate::registry::Registry;
use crate::serve::Containerd;
use crate::support::{Root, noise, run_tool};
use crate::tree::{Compare, assert_same, manifest};

/// Chunk size for the conversion: small, so files span several chunks (each its own
/// gzip member, fetched and checked on its own).
const CHUNK_SIZE: &str = "65536";

/// Whether the tools the conversion needs are here; tests skip (saying why) otherwise.
fn tools_missing(test: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping {test}: containerd (for ctr-remote) needs root");
        return true;
    }
    for tool in ["ctr-remote", "containerd", "umoci", "skopeo", "docker-registry"] {
        if Command::new(tool).arg("--help").output().is_err() {
            eprintln!("skipping {test}: {tool} is not installed (`just setup` installs it)");
            return true;
        }
    }
    false
}

/// A registry with eStargz images converted by `ctr-remote`, and the daemon it used.
struct Converted {
    registry: Registry,
    containerd: Containerd,
    _work: tempfile::TempDir,
}

impl Converted {
    fn start() -> Converted {
        Converted { registry: Registry::start(), containerd: Containerd::start(), _work: tempfile::tempdir().unwrap() }
    }

    fn ctr_remote(&self, args: &[&str]) -> String {
        let mut all = vec!["-a", &self.containerd.socket, "-n", "berth-lazy"];
        all.extend_from_slice(args);
        run_tool("ctr-remote", &all, Path::new("/"))
    }

    /// Build an image of `files` (path → bytes) with umoci, push it as `repo:plain`, and
    /// convert it with ctr-remote to eStargz pushed as `repo:chunked`.
    fn push_estargz(&self, repo: &str, files: &[(String, Vec<u8>)]) {
        self.push_chunked(repo, files, "--estargz");
    }

    /// As [`Converted::push_estargz`], in the format `ctr-remote images convert` writes
    /// with `format_flag` (`--estargz`, `--zstdchunked`).
    fn push_chunked(&self, repo: &str, files: &[(String, Vec<u8>)], format_flag: &str) {
        let work = self._work.path().join(repo);
        let rootfs = work.join("rootfs");
        for (path, bytes) in files {
            let p = rootfs.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            if path.starts_with("bin/") {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        // The other kinds of entry a TOC describes.
        std::fs::create_dir_all(rootfs.join("etc/empty.d")).unwrap();
        std::os::unix::fs::symlink("../data/f0", rootfs.join("etc/link")).unwrap();
        std::fs::hard_link(rootfs.join("data/f1"), rootfs.join("etc/hard")).unwrap();
        std::fs::write(rootfs.join("etc/empty"), b"").unwrap();
        let long = format!("etc/{}", "long-name-".repeat(12));
        std::fs::write(rootfs.join(long), b"a name over 100 bytes").unwrap();
        let fifo = std::ffi::CString::new(rootfs.join("etc/fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        let layout = work.join("layout");
        let tag = format!("{}:v1", layout.display());
        run_tool("umoci", &["init", "--layout", layout.to_str().unwrap()], &work);
        run_tool("umoci", &["new", "--image", &tag], &work);
        run_tool("umoci", &["insert", "--image", &tag, rootfs.to_str().unwrap(), "/"], &work);
        run_tool("umoci", &["config", "--image", &tag, "--config.cmd", "/data/f0"], &work);
        self.registry.push(&layout, "v1", &format!("{repo}:plain"), "oci");
        let plain = format!("{}/{repo}:plain", self.registry.addr);
        let chunked = format!("{}/{repo}:chunked", self.registry.addr);
        self.ctr_remote(&["images", "pull", "--plain-http", &plain]);
        let convert = ["images", "convert", format_flag, "--oci", "--estargz-chunk-size", CHUNK_SIZE, &plain, &chunked];
        self.ctr_remote(&convert);
        self.ctr_remote(&["images", "push", "--plain-http", &chunked]);
    }

    fn point(&self, repo: &str) -> String {
        format!("oci://{}/{repo}:chunked", self.registry.addr)
    }

    /// Serve `repo:chunked` as `app:v1` from a [`FaultRegistry`] whose answers to layer
    /// requests `faults(blob)` decides (other requests are served); returns it and the
    /// layer blob.
    fn serve_faulty<F>(&self, repo: &str, faults: impl FnOnce(&[u8]) -> F) -> (FaultRegistry, Vec<u8>)
    where
        F: Fn(&Seen) -> Action + Send + Sync + 'static,
    {
        let base = format!("http://{}/v2/{repo}", self.registry.addr);
        let get = |path: &str| -> Vec<u8> {
            let out = Command::new("curl")
                .args(["-sf", "-H", "Accept: application/vnd.oci.image.manifest.v1+json", &format!("{base}/{path}")])
                .output()
                .unwrap();
            assert!(out.status.success(), "curl {path} failed");
            out.stdout
        };
        let manifest_bytes = get("manifests/chunked");
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let config = manifest["config"]["digest"].as_str().unwrap().to_string();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
        let blob = get(&format!("blobs/{layer}"));
        let mut content: HashMap<String, (String, Vec<u8>)> = HashMap::new();
        let manifest_type = "application/vnd.oci.image.manifest.v1+json".to_string();
        content.insert("/v2/app/manifests/v1".into(), (manifest_type, manifest_bytes));
        let octets = "application/octet-stream".to_string();
        content.insert(format!("/v2/app/blobs/{config}"), (octets.clone(), get(&format!("blobs/{config}"))));
        content.insert(format!("/v2/app/blobs/{layer}"), (octets, blob.clone()));
        let layer_path = format!("/v2/app/blobs/{layer}");
        let decide = faults(&blob);
        let reg = FaultRegistry::serving(content, String::new(), layer, move |seen, _| {
            if seen.path == layer_path { decide(seen) } else { Action::Serve }
        });
        (reg, blob)
    }

    /// The layer descriptor of `repo:chunked`, as the registry serves its manifest.
    fn layer(&self, repo: &str) -> serde_json::Value {
        let raw = run_tool(
            "skopeo",
            &["inspect", "--raw", "--tls-verify=false", &format!("docker://{}/{repo}:chunked", self.registry.addr)],
            Path::new("/"),
        );
        let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
        manifest["layers"][0].clone()
    }
}

/// `count` files under `data/` with sizes from 1 byte to ~100 KiB (a few span several
/// chunks), their bytes from `seed`.
fn files(count: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    (0..count).map(|i| (format!("data/f{i}"), noise(seed + i as u64, 1 + (i * 7919) % 100_000))).collect()
}

/// The rendered tree of `point` in `root` (a flattened copy).
fn rendered(root: &Root, point: &str, dir: &Path) -> std::collections::BTreeMap<String, String> {
    root.ok(&["image", "render", point, dir.to_str().unwrap()]);
    manifest(dir, Compare { dir_mtimes: true })
}

#[test]
fn a_partial_pull_renders_what_a_full_pull_renders() {
    if tools_missing("a_partial_pull_renders_what_a_full_pull_renders") {
        return;
    }
    let c = Converted::start();
    c.push_estargz("app", &files(40, 1));
    let layer = c.layer("app");
    assert!(
        layer["annotations"]["containerd.io/snapshot/stargz/toc.digest"].is_string(),
        "ctr-remote did not write an eStargz layer: {layer}"
    );
    let point = c.point("app");

    let partial = Root::new();
    let fetched = partial.json(&["fetch", "--partial", &point]);
    assert_eq!(fetched["layersPartial"], 1, "{fetched}");
    assert_eq!(fetched["filesReused"], 0, "an empty store reuses nothing: {fetched}");
    let full = Root::new();
    let fetched_whole = full.json(&["fetch", &point]);
    assert_eq!(fetched_whole["layersPartial"], 0, "without --partial the blob is fetched whole: {fetched_whole}");

    let scratch = tempfile::tempdir().unwrap();
    let from_partial = rendered(&partial, &point, &scratch.path().join("partial"));
    let from_full = rendered(&full, &point, &scratch.path().join("full"));
    assert_same("partial pull", &from_partial, "full pull", &from_full);
    partial.assert_fsck_clean();
    full.assert_fsck_clean();
    let checked = partial.json(&["fsck"]);
    assert_eq!(checked["assembled_layers_checked"], 1, "{checked}");

    // The EROFS form too: the same tree from the assembled layer.
    let erofs = Root::with_snapshotter("erofs");
    erofs.ok(&["fetch", "--partial", &point]);
    let from_erofs = rendered(&erofs, &point, &scratch.path().join("erofs"));
    assert_same("partial pull (EROFS snapshots)", &from_erofs, "full pull", &from_full);
}

#[test]
fn a_second_image_sharing_most_files_downloads_only_the_rest() {
    if tools_missing("a_second_image_sharing_most_files_downloads_only_the_rest") {
        return;
    }
    let c = Converted::start();
    let first = files(200, 1);
    // The second image: 90% of the files as they are, 10% with new contents.
    let mut second = first.clone();
    for (i, (_, bytes)) in second.iter_mut().enumerate().filter(|(i, _)| i % 10 == 3) {
        *bytes = noise(10_000 + i as u64, bytes.len());
    }
    c.push_estargz("one", &first);
    c.push_estargz("two", &second);

    let root = Root::new();
    root.ok(&["fetch", &c.point("one")]);
    let fetched = root.json(&["fetch", "--partial", &c.point("two")]);
    let layer_size = c.layer("two")["size"].as_u64().unwrap();
    let downloaded = fetched["partialBytesFetched"].as_u64().unwrap();
    eprintln!(
        "second image: {downloaded} of {layer_size} layer bytes downloaded ({:.1}%), {} files fetched, {} reused",
        downloaded as f64 * 100.0 / layer_size as f64,
        fetched["filesFetched"],
        fetched["filesReused"]
    );
    assert!(downloaded * 100 <= layer_size * 15, "{downloaded} bytes of a {layer_size}-byte layer is over 15%");
    assert_eq!(fetched["filesFetched"], 20, "{fetched}");

    // What it rendered is what a full pull of the second image renders.
    let full = Root::new();
    full.ok(&["fetch", &c.point("two")]);
    let scratch = tempfile::tempdir().unwrap();
    assert_same(
        "partial pull",
        &rendered(&root, &c.point("two"), &scratch.path().join("partial")),
        "full pull",
        &rendered(&full, &c.point("two"), &scratch.path().join("full")),
    );

    // A third fetch finds everything in the store: the first image stored whole, the
    // second assembled.
    let again = root.json(&["fetch", "--partial", "--pull-policy", "update", &c.point("two")]);
    assert_eq!(again["filesFetched"], 0, "{again}");
    root.assert_fsck_clean();
}

#[test]
fn a_zstd_chunked_image_is_pulled_partially_with_files_from_an_estargz_one() {
    if tools_missing("a_zstd_chunked_image_is_pulled_partially_with_files_from_an_estargz_one") {
        return;
    }
    let c = Converted::start();
    let first = files(60, 21);
    let mut second = first.clone();
    for (i, (_, bytes)) in second.iter_mut().enumerate().filter(|(i, _)| i % 10 == 5) {
        *bytes = noise(20_000 + i as u64, bytes.len());
    }
    c.push_estargz("one", &first);
    c.push_chunked("two", &second, "--zstdchunked");
    let layer = c.layer("two");
    assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd", "{layer}");
    assert!(layer["annotations"]["io.containers.zstd-chunked.manifest-position"].is_string(), "{layer}");

    let root = Root::new();
    root.ok(&["fetch", &c.point("one")]);
    let fetched = root.json(&["fetch", "--partial", &c.point("two")]);
    assert_eq!(fetched["layersPartial"], 1, "{fetched}");
    assert_eq!(fetched["filesFetched"], 6, "only the changed files: {fetched}");
    let downloaded = fetched["partialBytesFetched"].as_u64().unwrap();
    let size = layer["size"].as_u64().unwrap();
    assert!(downloaded * 100 <= size * 15, "{downloaded} bytes of a {size}-byte layer is over 15%");

    let full = Root::new();
    let whole = full.json(&["fetch", &c.point("two")]);
    assert_eq!(whole["layersPartial"], 0, "{whole}");
    let scratch = tempfile::tempdir().unwrap();
    assert_same(
        "partial pull of zstd:chunked",
        &rendered(&root, &c.point("two"), &scratch.path().join("partial")),
        "full pull",
        &rendered(&full, &c.point("two"), &scratch.path().join("full")),
    );
    root.assert_fsck_clean();
    // A zstd:chunked layer stored whole is indexed too: a partial pull of it elsewhere
    // in that store reuses everything.
    let again = full.json(&["fetch", "--partial", "--pull-policy", "update", &c.point("two")]);
    assert_eq!(again["filesFetched"], 0, "{again}");
}

#[test]
fn berth_run_runs_a_partially_pulled_image() {
    if tools_missing("berth_run_runs_a_partially_pulled_image") {
        return;
    }
    let c = Converted::start();
    let mut image = files(10, 11);
    image.push(("bin/busybox".into(), std::fs::read("/bin/busybox").expect("busybox-static is installed")));
    c.push_estargz("app", &image);
    let root = Root::new();
    let out = root
        .cmd(&["run", "--partial", &c.point("app"), "--", "/bin/busybox", "sha256sum", "/data/f7", "/etc/link"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "berth run failed: {}", String::from_utf8_lossy(&out.stderr));
    let want = format!(
        "{}  /data/f7\n{}  /etc/link\n",
        crate::support::sha256_hex(&image[7].1),
        crate::support::sha256_hex(&image[0].1)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    let stored = root.json(&["image", "inspect", &c.point("app")]);
    assert!(stored.to_string().contains("assembled"), "the image was not pulled partially: {stored}");
}

#[test]
fn a_damaged_stored_file_is_fetched_again_not_copied() {
    if tools_missing("a_damaged_stored_file_is_fetched_again_not_copied") {
        return;
    }
    let c = Converted::start();
    let first = files(20, 31);
    let mut second = first.clone();
    second[4].1 = noise(999, second[4].1.len());
    c.push_estargz("one", &first);
    c.push_estargz("two", &second);
    let root = Root::new();
    root.ok(&["fetch", &c.point("one")]);
    // Damage data/f9 inside the stored first layer: the store's index still names it.
    let layer = c.layer("one")["digest"].as_str().unwrap().to_string();
    let blob_path = root.path().join("blobs/sha256").join(layer.strip_prefix("sha256:").unwrap());
    let mut blob = std::fs::read(&blob_path).unwrap();
    let toc = toc_of(&blob);
    let entry = toc["entries"].as_array().unwrap().iter().find(|e| e["name"] == "data/f9").unwrap();
    let offset = entry["offset"].as_u64().unwrap() as usize;
    blob[offset + 40] ^= 0xff;
    std::fs::set_permissions(&blob_path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&blob_path, &blob).unwrap();

    let fetched = root.json(&["fetch", "--partial", &c.point("two")]);
    assert_eq!(fetched["filesFetched"], 2, "the changed file and the damaged one: {fetched}");
    let full = Root::new();
    full.ok(&["fetch", &c.point("two")]);
    let scratch = tempfile::tempdir().unwrap();
    assert_same(
        "partial pull over a damaged store",
        &rendered(&root, &c.point("two"), &scratch.path().join("partial")),
        "full pull",
        &rendered(&full, &c.point("two"), &scratch.path().join("full")),
    );
    // fsck finds (and quarantines) the damaged blob, not the assembled layer.
    let (code, out, _) = root.run(&["fsck"]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains(&layer) && !out.contains(": partially pulled layer"), "{out}");
}

#[test]
fn two_partial_pulls_at_once_both_succeed() {
    if tools_missing("two_partial_pulls_at_once_both_succeed") {
        return;
    }
    let c = Converted::start();
    let first = files(40, 41);
    let mut second = first.clone();
    second[3].1 = noise(4_141, 5000);
    c.push_estargz("one", &first);
    c.push_estargz("two", &second);
    let root = Root::new();
    // The same image twice and a sibling, at once, into one store.
    let children: Vec<_> = [c.point("one"), c.point("one"), c.point("two")]
        .iter()
        .map(|p| root.cmd(&["fetch", "-q", "--partial", p]).stderr(std::process::Stdio::piped()).spawn().unwrap())
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(root.image_count(), 2);
    root.assert_fsck_clean();
}

#[test]
fn partial_layers_cannot_be_exported_and_gc_reclaims_them() {
    if tools_missing("partial_layers_cannot_be_exported_and_gc_reclaims_them") {
        return;
    }
    let c = Converted::start();
    c.push_estargz("app", &files(10, 7));
    let root = Root::new();
    root.ok(&["fetch", "--partial", &c.point("app")]);
    let out = tempfile::tempdir().unwrap();
    let (code, _, err) = root.run(&["image", "export", &c.point("app"), out.path().join("x").to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("pulled partially") && err.contains("without --partial"), "{err}");

    // `image rm` collects what the image alone needed: its TOC and assembled tar too.
    root.ok(&["image", "rm", &c.point("app")]);
    root.ok(&["gc"]);
    assert!(root.blob_names().is_empty(), "gc left blobs: {:?}", root.blob_names());
    // The file index forgot them: the next partial pull fetches every file again.
    let again = root.json(&["fetch", "--partial", &c.point("app")]);
    assert_eq!(again["filesReused"], 0, "{again}");
    // Ten data files, the long-named one and the landmark ctr-remote adds.
    assert_eq!(again["filesFetched"], 12, "{again}");
    root.assert_fsck_clean();
}

#[test]
fn a_chunk_with_wrong_bytes_is_refused_and_nothing_is_committed() {
    if tools_missing("a_chunk_with_wrong_bytes_is_refused_and_nothing_is_committed") {
        return;
    }
    let c = Converted::start();
    c.push_estargz("app", &files(10, 3));
    // A fake registry that answers one chunk's range with a valid gzip member of other
    // bytes: only the chunk digest can tell.
    let (reg, blob) = c.serve_faulty("app", |blob| {
        // The chunk of data/f5 (tens of KiB of noise).
        let forged = forge_member(blob, "data/f5");
        move |seen: &Seen| if seen.range.is_some() { Action::Replace(forged.clone()) } else { Action::Serve }
    });
    assert!(!blob.is_empty());

    let root = Root::new();
    let (code, _, err) = root.run(&["fetch", "--partial", &format!("oci://{}/app:v1", reg.addr)]);
    assert_eq!(code, 6, "a forged chunk is corrupt content: {err}");
    assert!(err.contains("data/f5") && err.contains("hashes to") && err.contains("nothing was stored"), "{err}");
    assert_eq!(root.image_count(), 0);
    assert!(root.blob_names().is_empty(), "the failed fetch left blobs: {:?}", root.blob_names());
    root.assert_fsck_clean();
}

#[test]
fn a_registry_that_ignores_ranges_gets_a_whole_fetch() {
    if tools_missing("a_registry_that_ignores_ranges_gets_a_whole_fetch") {
        return;
    }
    let c = Converted::start();
    c.push_estargz("app", &files(10, 5));
    let (reg, _) = c.serve_faulty("app", |_| |_: &Seen| Action::IgnoreRange);
    let root = Root::new();
    let point = format!("oci://{}/app:v1", reg.addr);
    let fetched = root.json(&["fetch", "--partial", &point]);
    assert_eq!(fetched["layersPartial"], 0, "{fetched}");
    root.assert_fsck_clean();
    // Stored whole: it exports like any image.
    let out = tempfile::tempdir().unwrap();
    root.ok(&["image", "export", &point, out.path().join("layout").to_str().unwrap()]);
}

#[test]
fn a_range_cut_off_midway_fails_clearly_and_stores_nothing() {
    if tools_missing("a_range_cut_off_midway_fails_clearly_and_stores_nothing") {
        return;
    }
    let c = Converted::start();
    c.push_estargz("app", &files(10, 9));
    // The footer and the TOC come whole; every chunk's range is cut off after 100 bytes,
    // resumption or not.
    let (reg, _) = c.serve_faulty("app", |blob| {
        let footer = &blob[blob.len() - 51..];
        let toc_offset = u64::from_str_radix(std::str::from_utf8(&footer[16..32]).unwrap(), 16).unwrap();
        move |seen: &Seen| {
            let start: Option<u64> = seen
                .range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse().ok());
            match start {
                Some(start) if start < toc_offset => Action::Truncate(100),
                _ => Action::Serve,
            }
        }
    });
    let root = Root::new();
    let (code, _, err) = root.run(&["fetch", "--partial", &format!("oci://{}/app:v1", reg.addr)]);
    assert_ne!(code, 0);
    assert!(err.contains("fetching bytes") && err.contains("end of file"), "{err}");
    assert_eq!(root.image_count(), 0);
    assert!(root.blob_names().is_empty(), "the failed fetch left blobs: {:?}", root.blob_names());
    root.assert_fsck_clean();
}

/// `bytes=START-END` of a range request, END exclusive.
fn range_of(seen: &Seen) -> Option<(u64, u64)> {
    let (start, end) = seen.range.as_deref()?.strip_prefix("bytes=")?.split_once('-')?;
    Some((start.parse().ok()?, end.parse::<u64>().ok()? + 1))
}

/// The blob offset of `name`'s first chunk, from the TOC.
fn offset_of(blob: &[u8], name: &str) -> u64 {
    let toc = toc_of(blob);
    let entry = toc["entries"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap();
    entry["offset"].as_u64().unwrap()
}

/// Serve `repo:chunked` as `app:v1`, holding every range request that covers `name` (the
/// background stream's) until the returned flag is set.
fn serve_holding(c: &Converted, repo: &str, name: &'static str) -> (FaultRegistry, Arc<AtomicBool>) {
    let resume = Arc::new(AtomicBool::new(false));
    let held = resume.clone();
    let (reg, _) = c.serve_faulty(repo, move |blob| {
        let at = offset_of(blob, name);
        move |seen: &Seen| match range_of(seen) {
            Some((start, end)) if start <= at && at < end => Action::Pause { after: 0, resume: held.clone() },
            _ => Action::Serve,
        }
    });
    (reg, resume)
}

#[test]
fn a_signal_while_a_lazy_run_waits_for_its_layers_stores_nothing() {
    if tools_missing("a_signal_while_a_lazy_run_waits_for_its_layers_stores_nothing") {
        return;
    }
    use std::io::BufRead as _;
    let c = Converted::start();
    push_with_busybox(&c, "app", 20, 61);
    let (reg, resume) = serve_holding(&c, "app", "data/f9");
    let root = Root::new();
    let mut child = root
        .cmd(&["run", "--lazy", &format!("oci://{}/app:v1", reg.addr), "--", "/bin/busybox", "echo", "started"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    // Once the container is gone (its directory removed), berth only waits for the held
    // stream: a SIGINT now is berth's.
    let containers = root.path().join("containers");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_dir(&containers).map(|d| d.count() > 0).unwrap_or(false) {
        assert!(std::time::Instant::now() < deadline, "the container directory stayed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill with a pid of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    resume.store(true, Ordering::SeqCst);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("the image was not stored"), "{err}");
    assert_eq!(root.image_count(), 0);
    root.assert_fsck_clean();
}

/// An image of `count` data files and busybox, as eStargz `repo:chunked`.
fn push_with_busybox(c: &Converted, repo: &str, count: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut image = files(count, seed);
    image.push(("bin/busybox".into(), std::fs::read("/bin/busybox").expect("busybox-static is installed")));
    c.push_estargz(repo, &image);
    image
}

#[test]
fn run_lazy_starts_before_the_layer_has_arrived_and_stores_it_afterwards() {
    if tools_missing("run_lazy_starts_before_the_layer_has_arrived_and_stores_it_afterwards") {
        return;
    }
    use std::io::BufRead as _;
    let c = Converted::start();
    let image = push_with_busybox(&c, "app", 40, 31);
    // The container never reads data/f9.
    let (reg, resume) = serve_holding(&c, "app", "data/f9");
    let point = format!("oci://{}/app:v1", reg.addr);
    let root = Root::new();
    let mut child = root
        .cmd(&["run", "--lazy", &point, "--", "/bin/busybox", "sha256sum", "/data/f7", "/etc/link"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    for _ in 0..2 {
        stdout.read_line(&mut printed).unwrap();
    }
    let want = format!(
        "{}  /data/f7\n{}  /etc/link\n",
        crate::support::sha256_hex(&image[7].1),
        crate::support::sha256_hex(&image[0].1)
    );
    assert_eq!(printed, want, "the container's output");
    // The container has run while the stream was held: nothing is stored yet.
    assert_eq!(root.image_count(), 0, "stored before its layer was complete");
    resume.store(true, Ordering::SeqCst);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "berth run --lazy failed: {}", String::from_utf8_lossy(&out.stderr));
    let layer = c.layer("app")["digest"].as_str().unwrap().to_string();
    assert!(!reg.seen(&layer).iter().any(|s| s.method == "GET" && s.range.is_none()), "the layer was downloaded whole");

    // Stored as a partial pull stores it: complete, and the tree a full pull renders.
    let stored = root.json(&["image", "inspect", &point]);
    assert!(stored.to_string().contains("assembled"), "{stored}");
    root.assert_fsck_clean();
    let full = Root::new();
    full.ok(&["fetch", &c.point("app")]);
    let scratch = tempfile::tempdir().unwrap();
    let from_lazy = rendered(&root, &point, &scratch.path().join("lazy"));
    let from_full = rendered(&full, &c.point("app"), &scratch.path().join("full"));
    assert_same("lazy run", &from_lazy, "full pull", &from_full);
    // The next run is served by the store alone.
    drop(reg);
    root.ok(&["run", "--pull-policy", "never", &point, "--", "/bin/busybox", "true"]);
}

#[test]
fn a_lazy_run_sees_the_tree_a_full_pull_renders() {
    if tools_missing("a_lazy_run_sees_the_tree_a_full_pull_renders") {
        return;
    }
    let c = Converted::start();
    push_with_busybox(&c, "app", 20, 41);
    let point = c.point("app");
    // Inside the container, through the FUSE layers and the overlay: every path with its
    // type, mode, owner, size and link target, and every file's digest.
    let script = "/bin/busybox find / -xdev -exec /bin/busybox stat -c '%n %F %a %u:%g %N' {} + && \
        /bin/busybox find / -xdev -type f -exec /bin/busybox sha256sum {} +";
    let lazy = Root::new();
    // One host name for both: /etc/hosts and /etc/hostname hold it.
    let seen_lazily = lazy.ok(&["run", "--lazy", "--hostname", "h", &point, "--", "/bin/busybox", "sh", "-c", script]);
    let full = Root::new();
    full.ok(&["fetch", &point]);
    let seen_fully = full.ok(&["run", "--hostname", "h", &point, "--", "/bin/busybox", "sh", "-c", script]);
    assert_eq!(seen_lazily, seen_fully);
    assert!(seen_lazily.contains("/etc/fifo fifo 640"), "{seen_lazily}");
    assert!(seen_lazily.contains("'/etc/link' -> '../data/f0'"), "{seen_lazily}");
    lazy.assert_fsck_clean();
}

#[test]
fn a_lazy_read_of_forged_bytes_is_an_io_error_and_nothing_is_stored() {
    if tools_missing("a_lazy_read_of_forged_bytes_is_an_io_error_and_nothing_is_stored") {
        return;
    }
    let c = Converted::start();
    push_with_busybox(&c, "app", 10, 51);
    // data/f5's member replaced by a valid gzip member of other bytes, in every range.
    let (reg, _) = c.serve_faulty("app", |blob| {
        let forged = forge_member(blob, "data/f5");
        move |seen: &Seen| if seen.range.is_some() { Action::Replace(forged.clone()) } else { Action::Serve }
    });
    let root = Root::new();
    let point = format!("oci://{}/app:v1", reg.addr);
    let (code, out, err) = root.run(&[
        "run",
        "--lazy",
        &point,
        "--",
        "/bin/busybox",
        "sh",
        "-c",
        "/bin/busybox cat /data/f5; echo cat=$?; /bin/busybox cat /data/f4 | /bin/busybox wc -c",
    ]);
    assert!(out.starts_with("cat=1\n"), "the forged file must not be read: {out}");
    assert!(err.contains("Input/output error") || err.contains("I/O error"), "{err}");
    assert_eq!(out.trim_start_matches("cat=1\n").trim(), files(10, 51)[4].1.len().to_string(), "other files read");
    assert_eq!(code, 6, "the layer did not arrive intact: corrupt content: {err}");
    assert!(err.contains("data/f5") && err.contains("hashes to") && err.contains("not stored"), "{err}");
    assert_eq!(root.image_count(), 0);
    assert!(root.blob_names().is_empty(), "the failed run left blobs: {:?}", root.blob_names());
    root.assert_fsck_clean();
}

/// `blob` with `name`'s first member replaced by a valid gzip member of as many zero bytes.
fn forge_member(blob: &[u8], name: &str) -> Vec<u8> {
    let toc = toc_of(blob);
    let entry = toc["entries"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap();
    let offset = entry["offset"].as_u64().unwrap() as usize;
    let size = entry["chunkSize"].as_u64().filter(|s| *s > 0).or(entry["size"].as_u64()).unwrap() as usize;
    let mut forged = blob.to_vec();
    let mut member = Vec::new();
    {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(&mut member, flate2::Compression::default());
        gz.write_all(&vec![0u8; size]).unwrap();
        gz.finish().unwrap();
    }
    forged[offset..offset + member.len()].copy_from_slice(&member);
    forged
}

/// The TOC JSON of an eStargz blob (read as any tool would: the last tar entry).
fn toc_of(blob: &[u8]) -> serde_json::Value {
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("stargz.index.json") {
            return serde_json::from_reader(&mut entry).unwrap();
        }
    }
    panic!("no stargz.index.json in the layer");
}
