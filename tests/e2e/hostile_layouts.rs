//! Damaged and malicious image layouts: each is a clear error, and the store is left as
//! it was (no image, no blob of the failed fetch, `fsck` clean).

use std::path::{Path, PathBuf};

use crate::support::{
    Root, copy_layout, fixtures, layer_path, layout_arg, manifest_of, ref_digest, set_ref, write_blob,
};

/// A private copy of the fixture layout, in its own directory.
fn damaged_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    copy_layout(&fixtures().layout, &layout);
    (dir, layout)
}

/// Fetch `reference` from `layout`, expect `code` and `needle` in the message, and an
/// untouched store.
fn assert_refused(layout: &Path, reference: &str, code: i32, needle: &str) {
    let root = Root::new();
    let (got, _, err) = root.run(&["fetch", &layout_arg(layout, reference)]);
    assert_eq!(got, code, "expected exit {code}: {err}");
    assert!(err.starts_with("berth: ") && err.contains(needle), "expected {needle:?} in: {err}");
    assert_eq!(root.image_count(), 0);
    assert!(root.blob_names().is_empty(), "blobs left behind: {:?}", root.blob_names());
    assert!(std::fs::read_dir(root.path().join("tmp")).unwrap().next().is_none(), "partial ingest left in tmp/");
    root.assert_fsck_clean();
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_is_refused() {
    let (_d, layout) = damaged_copy();
    let path = layer_path(&layout, "multi", 1);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert_refused(&layout, "multi", 6, "expected sha256:");
}

#[test]
fn a_truncated_blob_is_refused() {
    let (_d, layout) = damaged_copy();
    let path = layer_path(&layout, "single", 0);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
    assert_refused(&layout, "single", 6, &format!("expected {len} bytes"));
}

#[test]
fn an_index_pointing_outside_the_layout_is_refused() {
    let (_d, layout) = damaged_copy();
    let index = layout.join("index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    let digest = ref_digest(&layout, "single");
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::write(&index, text.replace(&digest, &format!("sha256:../../../../{}", &hex[12..]))).unwrap();
    assert_refused(&layout, "single", 5, "invalid digest");
}

#[test]
fn a_blob_that_is_a_symlink_out_of_the_layout_is_refused() {
    let (dir, layout) = damaged_copy();
    let path = layer_path(&layout, "single", 0);
    // Same bytes outside: only the escape can make this fail.
    let outside = dir.path().join("outside-layer");
    std::fs::rename(&path, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    assert_refused(&layout, "single", 4, "is not under the granted path");

    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("../../../outside-layer", &path).unwrap();
    assert_refused(&layout, "single", 4, "is not under the granted path");
}

#[test]
fn an_index_that_is_not_json_is_refused() {
    let (_d, layout) = damaged_copy();
    std::fs::write(layout.join("index.json"), b"{\"schemaVersion\": 2, \"manifests\": [").unwrap();
    assert_refused(&layout, "single", 5, "invalid index document");
}

#[test]
fn a_directory_without_oci_layout_marker_is_refused() {
    let (_d, layout) = damaged_copy();
    std::fs::remove_file(layout.join("oci-layout")).unwrap();
    assert_refused(&layout, "single", 5, "not an OCI image layout");
}

#[test]
fn an_unknown_layer_media_type_is_named() {
    let (_d, layout) = damaged_copy();
    let mut manifest = manifest_of(&layout, "single");
    manifest["layers"][0]["mediaType"] = "application/x-berth-mystery".into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = write_blob(&layout, &bytes);
    set_ref(&layout, "single", &digest, bytes.len());
    assert_refused(&layout, "single", 5, "application/x-berth-mystery");
}

#[test]
fn a_schema1_manifest_is_unsupported() {
    let (_d, layout) = damaged_copy();
    let index = layout.join("index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        text.replacen(
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            1,
        ),
    )
    .unwrap();
    let first_ref = {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
        v["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string()
    };
    assert_refused(&layout, &first_ref, 5, "Docker schema 1");
}
