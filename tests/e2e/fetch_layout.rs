//! `berth fetch` of OCI image layouts and archives, checked against skopeo.

use std::path::Path;

use crate::support::{Root, fixtures, layout_arg, ref_digest, sha256_hex, skopeo_raw};

/// Every file under blobs/ is named by the hash of its content.
fn assert_blob_names_are_hashes(root: &Root) {
    let names = root.blob_names();
    assert!(!names.is_empty());
    for (alg, hex) in names {
        assert_eq!(alg, "sha256");
        let bytes = std::fs::read(root.path().join("blobs").join(&alg).join(&hex)).unwrap();
        assert_eq!(sha256_hex(&bytes), hex);
    }
}

/// The fetched record equals what skopeo reads from the same layout.
fn assert_matches_skopeo(fetched: &serde_json::Value, layout: &Path, reference: &str) {
    let (manifest_digest, raw) = skopeo_raw(layout, reference);
    assert_eq!(fetched["manifest"], manifest_digest.as_str());
    assert_eq!(fetched["config"], raw["config"]["digest"]);
    let layers: Vec<&serde_json::Value> = raw["layers"].as_array().unwrap().iter().map(|l| &l["digest"]).collect();
    let got: Vec<&serde_json::Value> = fetched["layers"].as_array().unwrap().iter().collect();
    assert_eq!(got, layers);
}

#[test]
fn single_layer_image_matches_skopeo() {
    let f = fixtures();
    let root = Root::new();
    let fetched = root.json(&["fetch", &layout_arg(&f.layout, "single")]);
    assert_matches_skopeo(&fetched, &f.layout, "single");
    assert_eq!(fetched["layers"].as_array().unwrap().len(), 1);
    assert!(fetched["canonical"].as_str().unwrap().starts_with("cimd:oci-layout:v=0:file%3A%2F%2F%2F"));
    assert!(fetched["canonical"].as_str().unwrap().ends_with("?ref=single"));
    assert_blob_names_are_hashes(&root);
    root.assert_fsck_clean();
}

#[test]
fn multi_layer_image_keeps_layer_order_and_config() {
    let f = fixtures();
    let root = Root::new();
    let fetched = root.json(&["fetch", &layout_arg(&f.layout, "multi")]);
    assert_matches_skopeo(&fetched, &f.layout, "multi");
    assert_eq!(fetched["layers"].as_array().unwrap().len(), 3);
    let inspect = root.json(&["image", "inspect", fetched["manifest"].as_str().unwrap()]);
    let runtime = &inspect["record"]["runtime"];
    assert!(runtime["env"].as_array().unwrap().iter().any(|e| e == "GREETING=hi"), "{runtime}");
    assert_eq!(runtime["workingDir"], "/tmp");
    let diff_ids: Vec<_> =
        inspect["record"]["layers"].as_array().unwrap().iter().map(|l| l["diffId"].clone()).collect();
    assert!(diff_ids.iter().all(|d| d.as_str().unwrap().starts_with("sha256:")));
    assert_blob_names_are_hashes(&root);
}

#[test]
fn a_layout_with_two_refs_needs_a_ref_and_serves_each() {
    let f = fixtures();
    let root = Root::new();
    let a = root.json(&["fetch", &layout_arg(&f.two_refs, "a")]);
    let b = root.json(&["fetch", &layout_arg(&f.two_refs, "b")]);
    assert_eq!(a["manifest"], ref_digest(&f.two_refs, "a").as_str());
    assert_eq!(b["manifest"], ref_digest(&f.two_refs, "b").as_str());
    assert_ne!(a["manifest"], b["manifest"]);

    let (code, _, err) = root.run(&["fetch", &format!("oci-layout:{}", f.two_refs.display())]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("several images") && err.contains("a, b"), "{err}");

    let (code, _, err) = root.run(&["fetch", &layout_arg(&f.two_refs, "nope")]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("ref \"nope\" is not in the layout"), "{err}");
    assert_eq!(root.image_count(), 2);
}

#[test]
fn multi_platform_index_selects_by_platform() {
    let f = fixtures();
    let root = Root::new();
    let point = layout_arg(&f.layout, "multi-arch");
    let amd = root.json(&["fetch", &point, "--platform", "linux/amd64"]);
    assert_eq!(amd["manifest"], ref_digest(&f.layout, "single").as_str());
    let arm = root.json(&["fetch", &point, "--platform", "linux/arm64"]);
    assert_eq!(arm["manifest"], ref_digest(&f.layout, "arm64").as_str());
    let inspect = root.json(&["image", "inspect", arm["manifest"].as_str().unwrap()]);
    assert_eq!(inspect["record"]["platform"]["architecture"], "arm64");

    let (code, _, err) = root.run(&["fetch", &point, "--platform", "linux/s390x"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64"), "{err}");
}

#[test]
fn skopeo_oci_archive_fetches_the_same_image() {
    let f = fixtures();
    let root = Root::new();
    let fetched = root.json(&["fetch", &format!("oci-archive:{}", f.archive.display())]);
    assert_matches_skopeo(&fetched, &f.layout, "single");
    assert_eq!(fetched["blobsWritten"], 3);
    assert_blob_names_are_hashes(&root);
    root.assert_fsck_clean();
}

#[test]
fn refetching_transfers_nothing() {
    let f = fixtures();
    let root = Root::new();
    let first = root.json(&["fetch", &layout_arg(&f.layout, "multi")]);
    assert_eq!(first["blobsWritten"], 5);
    let again = root.json(&["fetch", &layout_arg(&f.layout, "multi")]);
    assert_eq!(again["blobsWritten"], 0);
    assert_eq!(again["blobsReused"], 5);
    // A second image sharing the busybox layer reuses it.
    let single = root.json(&["fetch", &layout_arg(&f.layout, "single")]);
    assert_eq!(single["blobsReused"], 1, "{single}");
}

#[test]
fn image_commands_find_inspect_and_remove() {
    let f = fixtures();
    let root = Root::new();
    let single = root.json(&["fetch", &layout_arg(&f.layout, "single")]);
    let multi = root.json(&["fetch", &layout_arg(&f.layout, "multi")]);
    let id = single["manifest"].as_str().unwrap();
    let hex = id.strip_prefix("sha256:").unwrap();

    let by_prefix = root.json(&["image", "inspect", &hex[..8]]);
    assert_eq!(by_prefix["id"], id);
    let by_point = root.json(&["image", "inspect", single["canonical"].as_str().unwrap()]);
    assert_eq!(by_point["id"], id);
    let by_friendly = root.json(&["image", "inspect", &layout_arg(&f.layout, "single")]);
    assert_eq!(by_friendly["id"], id);

    let manifest = root.ok(&["image", "cat-manifest", id]);
    assert_eq!(format!("sha256:{}", sha256_hex(manifest.as_bytes())), id);

    let (code, _, err) = root.run(&["image", "inspect", "feedface"]);
    assert_eq!(code, 3, "{err}");

    let listed = root.json(&["image", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let before = root.blob_names().len();
    root.ok(&["image", "rm", &layout_arg(&f.layout, "multi")]);
    assert_eq!(root.image_count(), 1);
    // multi's own blobs go; the busybox layer it shares with single stays.
    assert_eq!(root.blob_names().len(), before - 4, "{:?}", root.blob_names());
    let (code, _, _) = root.run(&["image", "inspect", multi["manifest"].as_str().unwrap()]);
    assert_eq!(code, 3);
    root.assert_fsck_clean();
    root.ok(&["image", "rm", id]);
    assert_eq!(root.image_count(), 0);
    assert!(root.blob_names().is_empty());
}

#[test]
fn malformed_points_are_usage_errors() {
    let root = Root::new();
    for (point, needle) in [
        ("cimd:oci-layout:v=1:x", "v=1"),
        ("cimd:oci-layout:v=0:relative", "file:// URL"),
        ("cimd:Bad:v=0:x", "type \"Bad\""),
    ] {
        let (code, _, err) = root.run(&["fetch", point]);
        assert_eq!(code, 2, "{point}: {err}");
        assert!(err.starts_with("berth: ") && err.contains(needle), "{point}: {err}");
    }
    let (code, _, err) = root.run(&["fetch", "oci-layout:/nonexistent/layout"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = root.run(&["fetch", "cimd:ftp-tar:v=0:x"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("no handler for distribution point type \"ftp-tar\""), "{err}");
}
