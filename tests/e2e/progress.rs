//! Progress as a person sees it: per-layer bars with rate and ETA on a terminal (a real
//! one, tmux's, read back with capture-pane), nothing on a pipe, JSON events with --json.
//! The fake registry holds the layer download half-way, so the bars are caught live.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::fault_registry::{Action, FaultRegistry};
use crate::support::{Root, berth_bin};

/// A registry whose layer download stops after 64 KiB until `resume` is set.
fn paused_registry() -> (FaultRegistry, Arc<AtomicBool>) {
    let resume = Arc::new(AtomicBool::new(false));
    let held = resume.clone();
    let reg = FaultRegistry::start(move |seen, _| {
        if seen.path.contains("/blobs/") && seen.method == "GET" && !held.load(Ordering::SeqCst) {
            Action::Pause { after: 64 << 10, resume: held.clone() }
        } else {
            Action::Serve
        }
    });
    (reg, resume)
}

/// Poll `probe` until it gives a value, failing after a generous deadline (readiness,
/// not timing: the deadline only bounds a hung test).
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

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let session = format!("berth-progress-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session, "-x", "150", "-y", "20", command])
            .status()
            .expect("tmux is installed (`just setup` installs it)");
        assert!(status.success());
        Command::new("tmux").args(["set-option", "-t", &session, "remain-on-exit", "on"]).status().unwrap();
        Tmux { session }
    }

    fn screen(&self) -> String {
        // With the scrollback: what scrolled off the top was still seen.
        let out = Command::new("tmux").args(["capture-pane", "-p", "-S", "-", "-t", &self.session]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.session]).status();
    }
}

#[test]
fn a_fetch_on_a_terminal_shows_a_bar_per_layer_with_rate_and_eta() {
    let (reg, resume) = paused_registry();
    let root = Root::new();
    let point = format!("oci://{}/app:v1", reg.addr);
    let done = root.path().join("fetch-done");
    let command = format!(
        "BERTH_ROOT={} {} fetch {point}; touch {}",
        root.path().display(),
        berth_bin().display(),
        done.display()
    );
    let tmux = Tmux::start(&command);
    let short = &reg.layer_digest["sha256:".len().."sha256:".len() + 12];
    // The server sent 64 KiB and holds the rest: wait until the bar shows them.
    let screen = wait_for("the layer's bar with the first 64 KiB", || {
        let s = tmux.screen();
        s.lines().any(|l| l.contains(short) && l.contains(" KiB/")).then_some(s)
    });
    let bar = screen.lines().rev().find(|l| l.contains(short) && l.contains(" KiB/")).unwrap();
    assert!(bar.contains('[') && bar.contains("KiB") && bar.contains("eta"), "a bar with bytes, rate and eta: {bar}");
    assert!(screen.lines().any(|l| l.trim_start().starts_with("total")), "and a total: {screen}");

    resume.store(true, Ordering::SeqCst);
    wait_for("the fetch to end", || done.exists().then_some(()));
    let screen = tmux.screen();
    assert!(screen.contains("cimd:oci:v=0:"), "the canonical point is printed: {screen}");
    assert!(!screen.contains("eta"), "the bars are cleared when done: {screen}");
}

#[test]
fn on_a_pipe_there_are_no_bars_and_json_gives_events() {
    let (reg, resume) = paused_registry();
    resume.store(true, Ordering::SeqCst);
    let point = format!("oci://{}/app:v1", reg.addr);

    let root = Root::new();
    let (code, _, err) = root.run(&["fetch", &point]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("eta") && !err.contains('\r') && !err.contains("\x1b["), "nothing drawn on a pipe: {err:?}");

    let root = Root::new();
    let (code, _, err) = root.run(&["--json", "fetch", &point]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = err.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(events.iter().any(|e| e["event"] == "blob-started" && e["digest"] == reg.layer_digest), "{err}");
    assert!(events.iter().any(|e| e["event"] == "blob-done" && e["digest"] == reg.layer_digest), "{err}");
}

#[test]
fn a_render_reports_each_layer_it_unpacks() {
    let f = crate::support::fixtures();
    let root = Root::new();
    let point = crate::support::layout_arg(&f.layout, "multi");
    root.ok(&["fetch", "-q", &point]);
    let manifest = crate::support::manifest_of(&f.layout, "multi");
    let layers: Vec<&str> =
        manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
    let out = tempfile::tempdir().unwrap();
    let (code, _, err) = root.run(&["--json", "image", "render", &point, out.path().join("rootfs").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = err.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for layer in &layers {
        assert!(events.iter().any(|e| e["event"] == "blob-started" && e["digest"] == *layer), "{layer}: {err}");
        assert!(events.iter().any(|e| e["event"] == "blob-done" && e["digest"] == *layer), "{layer}: {err}");
    }
}
