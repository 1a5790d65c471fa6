//! `berth system reset`: a documented way out of a store whose EROFS layer mounts stay up
//! (a plain `rm -rf` of it fails with "Read-only file system").

use crate::support::{Root, fixtures, layout_arg, mounts_under};

#[test]
fn system_reset_detaches_layer_mounts_and_removes_the_store() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (EROFS layer mounts)");
        return;
    }
    let f = fixtures();
    let root = Root::with_snapshotter("erofs");
    let point = layout_arg(&f.layout, "multi");
    root.ok(&["fetch", "-q", &point]);
    // A run leaves the image's layer mounts up for the next container.
    root.ok(&["run", &point, "--", "/bin/busybox", "true"]);
    assert!(!mounts_under(root.path()).is_empty(), "the layer images stay mounted");

    // Declining the question keeps everything.
    let mut child = root
        .cmd(&["system", "reset"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"n\n").unwrap();
    let declined = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&declined.stderr);
    assert_eq!(declined.status.code(), Some(4), "{err}");
    assert!(err.contains("-f"), "the refusal says how to skip the question: {err}");
    assert!(root.path().join("berth.db").exists(), "declined: the store stays");

    let out = root.json(&["system", "reset", "-f"]);
    assert_eq!(out["existed"], true, "{out}");
    assert!(out["mounts_detached"].as_u64().unwrap() > 0, "{out}");
    assert!(!root.path().exists(), "the store root is gone");
    assert!(mounts_under(root.path()).is_empty(), "no mount is left behind");

    // Again: nothing to remove is not an error.
    let out = root.json(&["system", "reset", "-f"]);
    assert_eq!(out["existed"], false, "{out}");
}
