//! `berth image export`: a stored image → an OCI layout or oci-archive that umoci and
//! skopeo read, and that berth fetches back to the same image ID; a damaged store blob
//! stops the export with nothing written.

use std::path::Path;

use crate::support::{Root, fixtures, layout_arg, run_tool};
use crate::tree::{Compare, assert_same, manifest};

fn image_id(root: &Root, point: &str) -> String {
    root.json(&["image", "inspect", point])["id"].as_str().unwrap().to_string()
}

#[test]
fn an_exported_layout_unpacks_with_umoci_like_berth_renders_it_and_fetches_back_to_the_same_id() {
    let fx = fixtures();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    let point = layout_arg(&fx.layout, "multi");
    root.ok(&["fetch", "-q", &point]);
    let out = scratch.path().join("exported");
    let report = root.json(&["image", "export", &point, out.to_str().unwrap(), "--tag", "mine"]);
    assert_eq!(report["format"], "layout");
    assert_eq!(report["blobsWritten"], 5, "manifest, config, 3 layers: {report}");

    // skopeo reads it and sees the same manifest digest.
    let inspected = run_tool("skopeo", &["inspect", &format!("oci:{}:mine", out.display())], Path::new("/"));
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(inspected["Digest"].as_str().unwrap(), image_id(&root, &point));

    // umoci unpacks the same tree berth renders.
    let bundle = scratch.path().join("bundle");
    run_tool(
        "umoci",
        &["unpack", "--image", &format!("{}:mine", out.display()), bundle.to_str().unwrap()],
        Path::new("/"),
    );
    let ours = scratch.path().join("ours");
    root.ok(&["image", "render", "-q", &point, ours.to_str().unwrap()]);
    // umoci insert layers name no parent directories: both tools create them "now".
    let cmp = Compare { dir_mtimes: false };
    assert_same("berth", &manifest(&ours, cmp), "umoci", &manifest(&bundle.join("rootfs"), cmp));

    // A fresh store fetches it back to the same image.
    let other = Root::new();
    other.ok(&["fetch", "-q", &layout_arg(&out, "mine")]);
    assert_eq!(image_id(&other, &layout_arg(&out, "mine")), image_id(&root, &point));
    other.assert_fsck_clean();
}

#[test]
fn exporting_into_an_existing_layout_adds_the_tag_and_keeps_the_others() {
    let fx = fixtures();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    let (single, multi) = (layout_arg(&fx.layout, "single"), layout_arg(&fx.layout, "multi"));
    root.ok(&["fetch", "-q", &single]);
    root.ok(&["fetch", "-q", &multi]);
    let out = scratch.path().join("layout");
    let o = out.to_str().unwrap();
    root.ok(&["image", "export", "-q", &single, o, "--tag", "one"]);
    let second = root.json(&["image", "export", &multi, o, "--tag", "two"]);
    // busybox is the first layer of both images: it is not copied again.
    assert_eq!(second["blobsPresent"], 1, "{second}");
    // Re-exporting a tag replaces its entry instead of adding a second one.
    root.ok(&["image", "export", "-q", &multi, o, "--tag", "one"]);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["two", "one"]);
    let other = Root::new();
    other.ok(&["fetch", "-q", &layout_arg(&out, "one")]);
    assert_eq!(image_id(&other, &layout_arg(&out, "one")), image_id(&root, &multi));
}

#[test]
fn an_oci_archive_is_read_by_skopeo_and_never_overwritten() {
    let fx = fixtures();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    let point = layout_arg(&fx.layout, "multi");
    root.ok(&["fetch", "-q", &point]);
    let archive = scratch.path().join("multi.tar");
    let a = archive.to_str().unwrap();
    let report = root.json(&["image", "export", &point, a]);
    assert_eq!(report["format"], "archive", "a .tar name means oci-archive: {report}");

    let copy = scratch.path().join("copy");
    run_tool(
        "skopeo",
        &["copy", "-q", &format!("oci-archive:{a}:latest"), &format!("oci:{}:latest", copy.display())],
        Path::new("/"),
    );
    let other = Root::new();
    other.ok(&["fetch", "-q", &format!("oci-archive:{a}")]);
    // Named as it was fetched, though stored under the ref the handler completed.
    assert_eq!(image_id(&other, &format!("oci-archive:{a}")), image_id(&root, &point));
    other.ok(&["image", "rm", &format!("oci-archive:{a}")]);
    assert_eq!(other.image_count(), 0);

    let before = std::fs::read(&archive).unwrap();
    let (code, _, err) = root.run(&["image", "export", &point, a]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&archive).unwrap(), before, "the existing archive is untouched");
}

#[test]
fn a_damaged_store_blob_stops_the_export_and_writes_nothing() {
    let fx = fixtures();
    let root = Root::new();
    let scratch = tempfile::tempdir().unwrap();
    let point = layout_arg(&fx.layout, "multi");
    root.ok(&["fetch", "-q", &point]);
    // Flip a byte of the largest blob (the busybox layer) in the store.
    let path = root
        .blob_names()
        .into_iter()
        .map(|(alg, hex)| root.path().join("blobs").join(alg).join(hex))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    for out in ["layout", "archive.tar"] {
        let out = scratch.path().join(out);
        let (code, _, err) = root.run(&["image", "export", &point, out.to_str().unwrap()]);
        assert_eq!(code, 6, "{err}");
        assert!(err.contains("berth fsck"), "{err}");
        assert!(!out.exists(), "{} was written", out.display());
    }
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
