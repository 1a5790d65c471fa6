//! Running containers and the store: a running container's image cannot be removed, and
//! gc says which container it waits for. (What a killed run leaves: tests/e2e/crash.rs.)

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};

use crate::support::{Root, fixtures, layout_arg};

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
