//! Crash consistency: berth processes killed with SIGKILL leave a store that `fsck` finds
//! clean and `gc` clears, and nothing of them runs on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::render::is_root;
use crate::support::{Root, data_layout};

/// What a kill attempt came to.
enum Outcome {
    Killed,
    /// The command ended before the kill; its status.
    Finished(ExitStatus),
}

fn kill(child: &mut Child) -> Outcome {
    if let Some(status) = child.try_wait().unwrap() {
        return Outcome::Finished(status);
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    // It may have exited on its own between try_wait and kill.
    if std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL) {
        Outcome::Killed
    } else {
        Outcome::Finished(status)
    }
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(String::from)
        .collect()
}

fn unmount_all_under(dir: &Path) {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH).unwrap();
    }
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmdline.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Nothing of a killed `berth run` outlives it: its container is killed with it. The
/// kernel delivers that kill asynchronously; wait for it (with a generous bound).
fn assert_no_survivor(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the container of a killed berth run survived it: pids {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Regression: `berth run` killed with SIGKILL left its container running (an orphan
/// outside any supervision, its snapshots no longer protected by the store lock), its
/// overlay mounted and `containers/<name>` in place, and gc cleared neither.
#[test]
fn a_killed_run_takes_its_container_with_it_and_gc_clears_what_it_left() {
    if !is_root() {
        eprintln!("skipped: needs root (overlay mounts, namespaces); CI runs as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = data_layout(dir.path(), &[("img", &[0])], 1 << 16);
    let point = crate::support::layout_arg(&layout, "img");
    let root = Root::new();
    root.ok(&["fetch", "-q", &point]);
    let marker = format!("berth-killed-run-{}", std::process::id());
    let script = format!("echo ready; sleep 1000; : {marker}");
    let mut child = root
        .cmd(&["run", &point, "--", "/bin/busybox", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    if let Outcome::Finished(status) = kill(&mut child) {
        panic!("berth run ended before the kill: {status}");
    }
    assert_no_survivor(&marker);

    let containers = root.path().join("containers");
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 1, "the killed run's directory is there");
    let gc = root.json(&["gc"]);
    assert_eq!(gc["crashed_containers_removed"], 1, "{gc}");
    assert_eq!(mounts_under(&containers), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 0);
    root.assert_fsck_clean();
    // A container kept with --keep (only its upper directory left) is no crash.
    let kept = root.ok(&["run", "--keep", &point, "--", "/bin/busybox", "touch", "/made"]);
    assert!(kept.is_empty());
    let gc = root.json(&["gc"]);
    assert_eq!(gc["crashed_containers_removed"], 0, "{gc}");
    let names: Vec<_> = std::fs::read_dir(&containers).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].join("upper/made").exists());
}

/// Regression: an EROFS probe killed while its image was mounted leaves
/// `snapshots/.tmp-probe-*/mnt` mounted; gc then failed removing it (the read-only
/// mount refused the deletion of its files), and every later gc failed the same way.
#[test]
fn gc_removes_a_killed_erofs_probe_with_its_mount() {
    if !is_root() {
        eprintln!("skipped: needs root (EROFS mounts); CI runs as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = data_layout(dir.path(), &[("img", &[0])], 1 << 16);
    let point = crate::support::layout_arg(&layout, "img");
    let root = Root::with_snapshotter("erofs");
    root.ok(&["fetch", "-q", &point]);
    let target = dir.path().join("render");
    root.ok(&["image", "render", "--overlay", &point, target.to_str().unwrap()]);
    unmount_all_under(&target);
    // What the killed probe left: a temporary directory with an image mounted inside.
    let snapshots = root.path().join("snapshots");
    let image = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "erofs"))
        .unwrap();
    let probe = snapshots.join(".tmp-probe-killed");
    std::fs::create_dir_all(probe.join("mnt")).unwrap();
    std::fs::copy(&image, probe.join("probe.erofs")).unwrap();
    rustix::mount::mount(
        probe.join("probe.erofs").as_path(),
        probe.join("mnt").as_path(),
        "erofs",
        rustix::mount::MountFlags::RDONLY,
        c"",
    )
    .unwrap();

    let gc = root.json(&["gc"]);
    assert_eq!(gc["snapshots_removed"], 1, "{gc}");
    assert!(!probe.exists());
    assert_eq!(mounts_under(&snapshots), Vec::<String>::new());
    root.assert_fsck_clean();
}
