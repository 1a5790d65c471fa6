//! Running OCI hooks from berth-runtime itself: prestart and createRuntime (in berth's
//! namespaces), createContainer (in the container's, entered with setns in the hook's
//! process before exec), poststart and poststop. Each gets the state JSON on stdin; its
//! output goes to a memory file and the tail of it into the error when it fails.
//! (startContainer hooks run inside the container's init: `run::Container::start_hooks`.)

use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime as oci;

use super::RuntimeError;

/// Namespaces a createContainer hook enters: the container's, except user and pid.
const CONTAINER_NAMESPACES: &[(&str, libc::c_int)] = &[
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

/// Where a hook runs.
#[derive(Debug, Clone, Copy)]
pub enum Place {
    /// In berth-runtime's own namespaces.
    Runtime,
    /// In the namespaces of the process `pid` (the container's init).
    Container { pid: i32 },
}

/// Run `hooks` in order with `state` on stdin; the first failure stops them.
pub fn run_all(kind: &'static str, hooks: &[oci::Hook], state: &[u8], place: Place) -> Result<(), RuntimeError> {
    for (index, hook) in hooks.iter().enumerate() {
        run_one(hook, state, place).map_err(|reason| RuntimeError::Hook {
            kind,
            index,
            path: hook.path().clone(),
            reason,
        })?;
    }
    Ok(())
}

/// Run every hook, logging failures as warnings (poststart, poststop: the spec says the
/// lifecycle goes on).
pub fn run_all_warn(kind: &'static str, hooks: &[oci::Hook], state: &[u8]) {
    for (index, hook) in hooks.iter().enumerate() {
        if let Err(reason) = run_one(hook, state, Place::Runtime) {
            tracing::warn!("{kind} hook #{index} ({}) failed: {reason}", hook.path().display());
        }
    }
}

fn run_one(hook: &oci::Hook, state: &[u8], place: Place) -> Result<(), String> {
    let output = rustix::fs::memfd_create("berth-hook-output", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| format!("creating its output file: {e}"))?;
    let output = std::fs::File::from(output);
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .envs(hook.env().iter().flatten().filter_map(|e| e.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(output.try_clone().map_err(|e| e.to_string())?)
        .stderr(output.try_clone().map_err(|e| e.to_string())?);
    let namespaces: Vec<(OwnedFd, libc::c_int)> = match place {
        Place::Runtime => Vec::new(),
        Place::Container { pid } => CONTAINER_NAMESPACES
            .iter()
            .filter_map(|(name, flag)| {
                let path = format!("/proc/{pid}/ns/{name}");
                let ours = std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
                let theirs = std::fs::read_link(&path).ok()?;
                // Entering a namespace we are already in is a no-op; skip the call.
                (ours.as_ref() != Some(&theirs))
                    .then(|| std::fs::File::open(&path).ok().map(|f| (OwnedFd::from(f), *flag)))
                    .flatten()
            })
            .collect(),
    };
    let raw: Vec<(i32, libc::c_int)> = namespaces.iter().map(|(fd, flag)| (fd.as_raw_fd(), *flag)).collect();
    if !raw.is_empty() {
        // SAFETY: the closure runs between fork and exec and only calls setns on
        // descriptors opened before the fork.
        unsafe {
            cmd.pre_exec(move || {
                for (fd, flag) in &raw {
                    if libc::setns(*fd, *flag) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin.
        let _ = stdin.write_all(state);
    }
    let timeout = hook.timeout().map(|t| Duration::from_secs(t.max(1) as u64));
    let status = wait(&mut child, timeout)?;
    drop(namespaces);
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut output = output;
    let _ = output.rewind();
    let _ = output.take(64 << 10).read_to_string(&mut text);
    let tail: String = text.trim_end().chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
    Err(if tail.is_empty() { format!("{status}") } else { format!("{status}: {tail}") })
}

/// Wait for the hook, killing it after `timeout`.
fn wait(child: &mut std::process::Child, timeout: Option<Duration>) -> Result<std::process::ExitStatus, String> {
    let Some(timeout) = timeout else { return child.wait().map_err(|e| e.to_string()) };
    let pid = rustix::process::Pid::from_child(child);
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).map_err(|e| e.to_string())?;
    let mut poll = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: polling one valid pollfd.
    let n = unsafe { libc::poll(&mut poll, 1, ms) };
    if n == 0 {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("timed out after {} s", timeout.as_secs()));
    }
    child.wait().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> oci::Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn hooks_read_the_state_on_stdin_and_fail_with_their_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        let copy = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo \"$GREETING\" >> {}", out.display(), out.display())],
            "env": ["GREETING=hi"]
        }));
        run_all("poststop", &[copy], b"{\"id\":\"c1\"}", Place::Runtime).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"c1\"}hi\n");

        let failing = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]}));
        match run_all("prestart", &[failing], b"{}", Place::Runtime) {
            Err(RuntimeError::Hook { kind: "prestart", index: 0, reason, .. }) => {
                assert!(reason.contains("broken") && reason.contains('3'), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let slow = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 30"], "timeout": 1}));
        match run_all("createRuntime", &[slow], b"{}", Place::Runtime) {
            Err(RuntimeError::Hook { reason, .. }) => assert!(reason.contains("timed out"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
