//! `berth run IMAGE` and `berth bundle IMAGE`: images built by umoci, fetched on demand,
//! rendered as an overlay of shared snapshots, run, and cleaned up; the before-run policy
//! decision. Needs root (mounts, namespaces) and says so when it skips.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{Root, fixtures, layout_arg};

fn skip_unless_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    eprintln!("skipping {test}: needs root (overlay mounts, namespaces); CI runs as root");
    true
}

/// Mount points under `dir` (from /proc/self/mountinfo).
/// Mounts under `dir`, but for EROFS layer mounts (`mounts/`), which are shared by
/// containers and kept until `berth gc`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_str().unwrap();
    let layer_mounts = format!("{prefix}/mounts/");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(prefix) && !m.starts_with(&layer_mounts))
        .map(String::from)
        .collect()
}

fn containers(root: &Root) -> Vec<String> {
    match std::fs::read_dir(root.path().join("containers")) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `berth run POINT -- /bin/busybox sh -c SCRIPT` → (code, stdout, stderr).
fn run_script(root: &Root, flags: &[&str], point: &str, script: &str) -> (i32, String, String) {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[point, "--", "/bin/busybox", "sh", "-c", script]);
    let out = root.cmd(&args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_image_is_fetched_rendered_run_and_leaves_nothing_behind() {
    if skip_unless_root("an_image_is_fetched_rendered_run_and_leaves_nothing_behind") {
        return;
    }
    let f = fixtures();
    let root = Root::new();
    let point = layout_arg(&f.layout, "multi");
    assert_eq!(root.image_count(), 0);

    // `multi`: busybox, /etc/motd and /usr/bin/hello in three layers (umoci insert), env
    // GREETING=hi and working directory /tmp, which no layer holds.
    let script = "echo $GREETING; pwd; cat /etc/motd; echo $$; /bin/busybox sh /usr/bin/hello; \
                  echo changed > /etc/motd; /bin/busybox mkdir /new";
    let (code, out, err) = run_script(&root, &[], &point, script);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hi\n/tmp\nwelcome to berth\n1\nhello\n");
    assert_eq!(root.image_count(), 1, "the image was fetched into the store");

    // What the container wrote reached neither the snapshots nor the next container.
    let snapshots = root.snapshot_trees();
    assert_eq!(snapshots.len(), 3, "one snapshot per layer: {snapshots:?}");
    let motd = snapshots.iter().map(|s| s.join("etc/motd")).find(|p| p.exists()).unwrap();
    assert_eq!(std::fs::read_to_string(motd).unwrap(), "welcome to berth\n");
    assert!(snapshots.iter().all(|s| !s.join("new").exists()));
    assert!(mounts_under(root.path()).is_empty(), "left mounted: {:?}", mounts_under(root.path()));
    assert!(containers(&root).is_empty(), "container directories left: {:?}", containers(&root));

    let (code, out, _) = run_script(&root, &[], &point, "cat /etc/motd; ls /new 2>&1; exit 7");
    assert_eq!(code, 7);
    assert!(out.starts_with("welcome to berth\n") && out.contains("No such file"), "{out}");
    root.assert_fsck_clean();
}

#[test]
fn a_stored_image_runs_by_id_without_its_source_and_keep_keeps_the_changes() {
    if skip_unless_root("a_stored_image_runs_by_id_without_its_source_and_keep_keeps_the_changes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    crate::support::copy_layout(&fixtures().layout, &layout);
    let root = Root::new();
    let fetched = root.json(&["fetch", &layout_arg(&layout, "multi")]);
    let id = fetched["manifest"].as_str().unwrap().strip_prefix("sha256:").unwrap()[..12].to_string();
    std::fs::remove_dir_all(&layout).unwrap();

    let (code, out, err) = run_script(&root, &["--keep", "--pull-policy", "never"], &id, "echo kept > /k; echo ran");
    assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}");
    let kept = containers(&root);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let upper = root.path().join("containers").join(&kept[0]).join("upper");
    assert!(err.contains(upper.to_str().unwrap()), "berth says where the changes are: {err}");
    assert_eq!(std::fs::read_to_string(upper.join("k")).unwrap(), "kept\n");
    assert!(mounts_under(root.path()).is_empty());

    // Not in the store, and the pull policy forbids asking the source: exit 3 (not found).
    let (code, _, err) = run_script(&root, &["--pull-policy", "never"], "0123456789ab", "true");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("0123456789ab"), "{err}");
}

#[test]
fn a_policy_forbidding_root_stops_the_run_before_it_starts() {
    if skip_unless_root("a_policy_forbidding_root_stops_the_run_before_it_starts") {
        return;
    }
    let f = fixtures();
    let root = Root::new();
    let point = layout_arg(&f.layout, "multi");
    let policy = root.path().join("policy.toml");
    std::fs::write(&policy, "[limits]\nforbid-root = true\n").unwrap();
    let policy = policy.to_str().unwrap();

    let marker = tempfile::tempdir().unwrap();
    let volume = format!("{}:/out", marker.path().display());
    let (code, _, err) = run_script(&root, &["--volume", &volume], &point, "touch /out/ran");
    let (code_with_policy, _, err_with_policy) =
        run_script(&root, &["--policy", policy, "--volume", &volume], &point, "touch /out/ran-despite-policy");
    assert_eq!(code, 0, "without a policy it runs: {err}");
    assert!(marker.path().join("ran").exists());
    assert_eq!(code_with_policy, 4, "{err_with_policy}");
    assert!(err_with_policy.contains("uid 0"), "{err_with_policy}");
    assert!(!marker.path().join("ran-despite-policy").exists(), "the process ran although denied");
    assert!(mounts_under(root.path()).is_empty() && containers(&root).is_empty());

    let log = std::fs::read_to_string(root.path().join("policy.log")).unwrap();
    let before_run: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["stage"] == "before-run")
        .collect();
    assert_eq!(before_run.len(), 1, "{log}");
    assert_eq!(before_run[0]["allow"], false);

    let mut args = vec!["--policy", policy, "run", "--user", "1000:1000", &point];
    args.extend_from_slice(&["--", "/bin/busybox", "id", "-u"]);
    let out = root.cmd(&args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1000\n");
}

#[test]
fn a_bundle_of_an_image_runs_under_crun_as_berth_runs_it() {
    if skip_unless_root("a_bundle_of_an_image_runs_under_crun_as_berth_runs_it") {
        return;
    }
    crate::run::prepare_cgroups_for_crun();
    let f = fixtures();
    let root = Root::new();
    let point = layout_arg(&f.layout, "multi");
    let script = "echo $GREETING; pwd; cat /etc/motd; echo $$; hostname";
    let (code, berth, err) = run_script(&root, &["--hostname", "same"], &point, script);
    assert_eq!(code, 0, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    root.ok(&[
        "bundle",
        "--hostname",
        "same",
        &point,
        bundle.to_str().unwrap(),
        "--",
        "/bin/busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(bundle.join("rootfs/bin/busybox").exists());
    let out = Command::new("crun")
        .arg("--root")
        .arg(dir.path().join("state"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(format!("berth-image-{}", std::process::id()))
        .stdin(Stdio::null())
        .output()
        .expect("crun is missing: install it (`just setup` does)");
    assert!(out.status.success(), "crun: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), berth);
}
