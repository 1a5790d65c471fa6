//! Several berth processes on one store, and a fetch killed mid-ingest.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    Root, copy_layout, fixtures, layout_arg, manifest_of, read_blob, ref_digest, set_ref, write_blob,
};

#[test]
fn concurrent_fetches_of_the_same_and_of_different_images_all_succeed() {
    let f = fixtures();
    let root = Root::new();
    let points = [
        layout_arg(&f.layout, "multi"),
        layout_arg(&f.layout, "multi"),
        layout_arg(&f.layout, "single"),
        layout_arg(&f.two_refs, "a"),
    ];
    let children: Vec<_> = points
        .iter()
        .map(|p| root.cmd(&["fetch", "-q", p]).stdout(std::process::Stdio::null()).spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(root.image_count(), 3);
    root.assert_fsck_clean();
}

/// A layout whose `big` ref has one large uncompressed layer, so an ingest takes long
/// enough to be killed in the middle.
fn layout_with_big_layer(dir: &Path) -> (std::path::PathBuf, String) {
    let layout = dir.join("layout");
    copy_layout(&fixtures().layout, &layout);
    // Pseudo-random so no filesystem compresses or dedups it away.
    let mut data = vec![0u8; 256 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let layer = write_blob(&layout, &data);
    let mut config: serde_json::Value = {
        let m = manifest_of(&layout, "single");
        serde_json::from_slice(&read_blob(&layout, m["config"]["digest"].as_str().unwrap())).unwrap()
    };
    config["rootfs"]["diff_ids"] = serde_json::json!([layer]);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = write_blob(&layout, &config_bytes);
    let mut manifest = manifest_of(&layout, "single");
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_bytes.len().into();
    manifest["layers"] = serde_json::json!([{
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": layer,
        "size": data.len(),
    }]);
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = write_blob(&layout, &manifest_bytes);
    set_ref(&layout, "single", &manifest_digest, manifest_bytes.len());
    assert_eq!(ref_digest(&layout, "single"), manifest_digest);
    (layout, layer)
}

#[test]
fn a_fetch_killed_mid_ingest_leaves_no_partial_blob_and_the_next_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, layer) = layout_with_big_layer(dir.path());
    let root = Root::new();
    let mut child =
        root.cmd(&["fetch", "-q", &layout_arg(&layout, "single")]).stdout(std::process::Stdio::null()).spawn().unwrap();

    // Wait until the big layer is being written, then kill the fetch.
    let tmp = root.path().join("tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_mid_ingest = loop {
        let partial = std::fs::read_dir(&tmp)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .any(|e| e.metadata().is_ok_and(|m| m.len() > (1 << 20)));
        if partial {
            child.kill().unwrap();
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    child.wait().unwrap();
    assert!(killed_mid_ingest, "the fetch finished before it could be killed mid-ingest");

    let hex = layer.strip_prefix("sha256:").unwrap();
    assert!(!root.path().join("blobs/sha256").join(hex).exists(), "a partial blob became visible");
    assert_eq!(root.image_count(), 0);
    root.assert_fsck_clean();

    let fetched = root.json(&["fetch", &layout_arg(&layout, "single")]);
    assert_eq!(fetched["layers"][0], layer.as_str());
    root.assert_fsck_clean();
    let gc = root.json(&["gc"]);
    assert!(gc["temp_files_removed"].as_u64().unwrap() >= 1, "{gc}");
}

#[test]
fn gc_waits_for_a_fetch_holding_the_store() {
    // The exclusive lock of gc cannot be taken while a fetch holds the shared one.
    let f = fixtures();
    let root = Root::new();
    root.ok(&["fetch", "-q", &layout_arg(&f.layout, "single")]);
    let store =
        berth::store::Store::open(root.path(), berth::store::LockMode::Shared, &mut || panic!("nobody holds it"))
            .unwrap();
    let mut gc =
        root.cmd(&["gc"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // gc says it waits before it blocks: release the lock only then (a fixed delay here
    // was too short under CPU load, and gc then found the lock free and said nothing).
    let mut stderr = std::io::BufReader::new(gc.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("waiting for another berth process"), "{line}");
    assert!(gc.try_wait().unwrap().is_none(), "gc ran while a shared lock was held");
    drop(store);
    assert!(gc.wait().unwrap().success());
    assert_eq!(root.image_count(), 1);
}
