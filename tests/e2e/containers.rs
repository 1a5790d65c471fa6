//! Containers `berth run IMAGE` leaves behind, and the ones still running: a killed run
//! takes its container with it and gc sweeps what is left; a running container's image
//! cannot be removed, and gc says which container it waits for.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Root, fixtures, layout_arg};

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// `berth run -i IMAGE -- sh -c 'echo ready; read x'`: runs until its stdin closes.
/// Returns once the container said it is ready.
fn start_waiting_container(root: &Root, point: &str) -> Child {
    let mut child = root
        .cmd(&["run", "-i", point, "--", "/bin/busybox", "sh", "-c", "echo ready; read x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

fn container_dirs(root: &Root) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(root.path().join("containers"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn mounts_under(dir: &std::path::Path) -> usize {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .count()
}

#[test]
fn a_killed_run_takes_its_container_along_and_gc_sweeps_the_leftovers() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (overlay mounts)");
        return;
    }
    let f = fixtures();
    let root = Root::new();
    let point = layout_arg(&f.layout, "multi");
    root.ok(&["fetch", "-q", &point]);
    let mut run = start_waiting_container(&root, &point);
    let dir = container_dirs(&root).pop().expect("the running container's directory");
    let rootfs = dir.join("rootfs");
    let container_pid = wait_for("the container's process", || {
        let out = std::process::Command::new("pgrep").args(["-f", "echo ready; read x"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.parse::<i32>().ok())
            .find(|p| *p != run.id() as i32)
    });

    run.kill().unwrap(); // SIGKILL: berth can neither forward nor clean up
    run.wait().unwrap();
    wait_for("the container to die with berth", || {
        (!std::path::Path::new(&format!("/proc/{container_pid}")).exists()).then_some(())
    });
    assert!(mounts_under(&dir) > 0 || rootfs.exists(), "the killed run left its directory: {}", dir.display());

    let gc = root.json(&["gc"]);
    let swept = gc["containers_removed"].as_array().unwrap();
    assert_eq!(swept.len(), 1, "{gc}");
    assert!(!dir.exists(), "the dead container's directory is gone");
    assert_eq!(mounts_under(&dir), 0, "and so are its mounts");
    root.assert_fsck_clean();
    assert_eq!(root.image_count(), 1, "gc kept the image");
}

#[test]
fn a_running_containers_image_is_not_removed_and_gc_names_what_it_waits_for() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (overlay mounts)");
        return;
    }
    let f = fixtures();
    let root = Root::new();
    let point = layout_arg(&f.layout, "single");
    root.ok(&["fetch", "-q", &point]);
    let mut run = start_waiting_container(&root, &point);
    let name = container_dirs(&root).pop().unwrap().file_name().unwrap().to_string_lossy().into_owned();

    let (code, _, err) = root.run(&["image", "rm", &point]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains(&name) && err.contains("in use"), "names the container: {err}");
    assert_eq!(root.image_count(), 1);

    let mut gc = root.cmd(&["gc"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut waiting = String::new();
    BufReader::new(gc.stderr.as_mut().unwrap()).read_line(&mut waiting).unwrap();
    assert!(waiting.contains("waiting for running containers") && waiting.contains(&name), "{waiting}");

    // The container ends (its stdin closes); gc goes on and keeps the image.
    run.stdin.take().unwrap().write_all(b"done\n").unwrap();
    assert!(run.wait().unwrap().success());
    assert!(gc.wait().unwrap().success());
    assert_eq!(root.image_count(), 1);
    assert!(container_dirs(&root).is_empty(), "a finished run leaves nothing");
}
