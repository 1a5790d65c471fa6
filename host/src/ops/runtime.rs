//! The OCI runtime's verbs (runc's command line, as podman and containerd call it):
//! `create`, `start`, `state`, `kill`, `delete`, `list`, `ps`, `features`.
//!
//! `create` translates the bundle's `config.json` (`runtime::config`), claims the
//! container's directory under the state root, makes the exec FIFO, and sets the
//! container up with `run::create`, running the create-time hooks when the init reports
//! its mounts. The init is then left waiting on the FIFO; its record, pid file and (with
//! a terminal) the pty master sent to the console socket are what `create` leaves. A
//! failure at any point kills the init and removes what was made.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::error::io;
use super::{Error, UsageError};
use crate::run::{self, Cgroup, Lifecycle};
use crate::runtime::config::{self, CgroupStyle, HookSet};
use crate::runtime::hooks::{self, Place};
use crate::runtime::state::{self, Record, SpecState, StateRoot, Status};
use crate::runtime::{RuntimeError, console};

/// `create ID --bundle DIR`.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub root: StateRoot,
    pub id: String,
    pub bundle: PathBuf,
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// Where to send the pty master (`process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// `--systemd-cgroup`: `cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// `--preserve-fds N`: descriptors 3 .. 3+N stay open in the container.
    pub preserve_fds: u32,
}

/// How long `delete` waits for a killed container to be gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn spec_state(record: &Record, status: Status) -> Vec<u8> {
    serde_json::to_vec(&SpecState::of(record, status)).unwrap_or_default()
}

/// The create-time hooks, run when the init reports its mounts.
struct CreateHooks<'a> {
    hooks: &'a HookSet,
    record: Record,
}

impl Lifecycle for CreateHooks<'_> {
    fn mounted(&mut self, pid: i32) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let state = spec_state(&Record { pid, ..self.record.clone() }, Status::Creating);
        hooks::run_all("prestart", &self.hooks.prestart, &state, Place::Runtime)?;
        hooks::run_all("createRuntime", &self.hooks.create_runtime, &state, Place::Runtime)?;
        hooks::run_all("createContainer", &self.hooks.create_container, &state, Place::Container { pid })?;
        Ok(())
    }

    fn hook_state(&mut self, pid: i32) -> Vec<u8> {
        spec_state(&Record { pid, ..self.record.clone() }, Status::Created)
    }
}

/// Removes a half-made container: kills its init, removes its cgroup and directory.
struct Undo<'a> {
    root: &'a StateRoot,
    id: &'a str,
    pid: Option<i32>,
    cgroup: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            // SAFETY: signalling and reaping our own child, the init just created.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        drop(Cgroup::from_dirs(std::mem::take(&mut self.cgroup)));
        let _ = self.root.remove(self.id);
    }
}

/// Create the container `id` from its bundle and leave its init waiting for `start`.
/// Returns the init's pid.
pub fn runtime_create(request: &CreateRequest) -> Result<i32, Error> {
    if !rustix::process::geteuid().is_root() {
        return Err(RuntimeError::NeedsRoot.into());
    }
    state::check_id(&request.id)?;
    let style = CgroupStyle { systemd: request.systemd_cgroup };
    let mut translated = config::translate(&request.bundle, &request.id, style)?;
    translated.container.preserve_fds = request.preserve_fds;
    let terminal = translated.container.process.terminal;
    if terminal && request.console_socket.is_none() {
        return Err(
            UsageError::new("process.terminal is set: --console-socket is needed to hand the terminal over").into()
        );
    }
    if !terminal && request.console_socket.is_some() {
        return Err(UsageError::new("--console-socket was given but process.terminal is not set").into());
    }
    let root = &request.root;
    let dir = root.claim(&request.id)?;
    let mut undo = Undo { root, id: &request.id, pid: None, cgroup: Vec::new(), armed: true };

    let fifo_path = root.fifo(&request.id);
    rustix::fs::mknodat(rustix::fs::CWD, &fifo_path, rustix::fs::FileType::Fifo, 0o600.into(), 0)
        .map_err(|e| io("creating the exec FIFO", &fifo_path)(e.into()))?;
    // Read-write: the init's end never sees end-of-file, whoever comes and goes.
    let fifo: OwnedFd = rustix::fs::open(&fifo_path, rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC, 0.into())
        .map_err(|e| io("opening the exec FIFO", &fifo_path)(e.into()))?;

    let created_at = state::rfc3339(SystemTime::now());
    let mut record = Record {
        id: request.id.clone(),
        pid: 0,
        start_time: 0,
        bundle: translated.bundle.clone(),
        rootfs: translated.rootfs.clone(),
        created: created_at,
        annotations: translated.annotations.clone(),
        cgroup: Vec::new(),
        own_pid_namespace: translated.container.namespaces.creates(run::NamespaceKind::Pid),
        hooks: HookSet {
            poststart: translated.hooks.poststart.clone(),
            poststop: translated.hooks.poststop.clone(),
            ..HookSet::default()
        },
    };
    let mut lifecycle = CreateHooks { hooks: &translated.hooks, record: record.clone() };
    let created = run::create(&translated.container, fifo.as_fd(), &mut lifecycle)?;
    drop(fifo);
    undo.pid = Some(created.pid);
    undo.cgroup = created.cgroup_dirs.clone();

    record.pid = created.pid;
    record.start_time = state::process_start_time(created.pid).ok_or(run::RunError::InitVanished)?;
    record.cgroup = created.cgroup_dirs.clone();
    if let (Some(socket), Some(master)) = (&request.console_socket, &created.terminal) {
        let name = created.terminal_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        console::send_terminal(socket, master, &name)?;
    }
    drop(created.terminal);
    root.save(&record)?;
    if let Some(pid_file) = &request.pid_file {
        let pid_file = std::path::absolute(pid_file).map_err(io("resolving", pid_file))?;
        state::write_atomically(&pid_file, record.pid.to_string().as_bytes())?;
    }
    debug_assert!(dir.exists());
    undo.armed = false;
    Ok(record.pid)
}

/// Let the created container's init exec its process, then run the poststart hooks.
pub fn runtime_start(root: &StateRoot, id: &str) -> Result<(), Error> {
    let record = root.load(id)?;
    match root.status(&record) {
        Status::Created => {}
        status => {
            return Err(RuntimeError::WrongStatus { id: id.into(), action: "start", status: status.as_str() }.into());
        }
    }
    let fifo_path = root.fifo(id);
    // Non-blocking: with no reader left (the init is gone) this fails instead of waiting.
    let fifo = match rustix::fs::open(
        &fifo_path,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
        0.into(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NXIO) | Err(rustix::io::Errno::NOENT) => {
            return Err(RuntimeError::WrongStatus { id: id.into(), action: "start", status: "stopped" }.into());
        }
        Err(e) => return Err(io("opening the exec FIFO", &fifo_path)(e.into())),
    };
    rustix::io::write(&fifo, &[0]).map_err(|e| io("writing to the exec FIFO", &fifo_path)(e.into()))?;
    drop(fifo);
    std::fs::remove_file(&fifo_path).map_err(io("removing", &fifo_path))?;
    hooks::run_all_warn("poststart", &record.hooks.poststart, &spec_state(&record, Status::Running));
    Ok(())
}

/// The runtime spec's state of `id`.
pub fn runtime_state(root: &StateRoot, id: &str) -> Result<SpecState, Error> {
    let record = root.load(id)?;
    Ok(root.spec_state(&record))
}

/// Every container under the state root.
pub fn runtime_list(root: &StateRoot) -> Vec<SpecState> {
    root.list().iter().map(|r| root.spec_state(r)).collect()
}

/// The processes of `id` (those in its cgroup, else its init).
pub fn runtime_ps(root: &StateRoot, id: &str) -> Result<Vec<i32>, Error> {
    let record = root.load(id)?;
    if root.status(&record) == Status::Stopped {
        return Ok(Vec::new());
    }
    let pids = run::cgroup_pids(&record.cgroup);
    Ok(if pids.is_empty() { vec![record.pid] } else { pids })
}

/// A signal by name (`TERM`, `SIGTERM`, `sigterm`) or number.
pub fn parse_signal(text: &str) -> Result<i32, RuntimeError> {
    const NAMES: &[(&str, i32)] = &[
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("ILL", libc::SIGILL),
        ("TRAP", libc::SIGTRAP),
        ("ABRT", libc::SIGABRT),
        ("IOT", libc::SIGIOT),
        ("BUS", libc::SIGBUS),
        ("FPE", libc::SIGFPE),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("SEGV", libc::SIGSEGV),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("STKFLT", libc::SIGSTKFLT),
        ("CHLD", libc::SIGCHLD),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("URG", libc::SIGURG),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("WINCH", libc::SIGWINCH),
        ("IO", libc::SIGIO),
        ("POLL", libc::SIGPOLL),
        ("PWR", libc::SIGPWR),
        ("SYS", libc::SIGSYS),
    ];
    let bad = || RuntimeError::BadSignal { value: text.to_string() };
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rt) = name.strip_prefix("RTMIN") {
        let offset: i32 =
            if rt.is_empty() { 0 } else { rt.strip_prefix('+').ok_or_else(bad)?.parse().map_err(|_| bad())? };
        let n = libc::SIGRTMIN() + offset;
        return if n <= libc::SIGRTMAX() { Ok(n) } else { Err(bad()) };
    }
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).ok_or_else(bad)
}

/// Signal the init through a pidfd opened while its start time still matched: a pid
/// reused after the check is never signalled.
fn signal_init(record: &Record, signal: i32) -> io::Result<bool> {
    // SAFETY: pidfd_open with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, record.pid, 0) } as i32;
    if fd < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ESRCH) { Ok(false) } else { Err(e) };
    }
    // SAFETY: the descriptor was just opened and is ours.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if state::process_start_time(record.pid) != Some(record.start_time) {
        return Ok(false);
    }
    // SAFETY: pidfd_send_signal on our pidfd with no siginfo.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), signal, 0usize, 0u32) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ESRCH) { Ok(false) } else { Err(e) };
    }
    Ok(true)
}

/// Send `signal` to the init, or with `all` to every process in the container's cgroup.
pub fn runtime_kill(root: &StateRoot, id: &str, signal: &str, all: bool) -> Result<(), Error> {
    let signal = parse_signal(signal)?;
    let record = root.load(id)?;
    if root.status(&record) == Status::Stopped {
        return Err(RuntimeError::WrongStatus { id: id.into(), action: "kill", status: "stopped" }.into());
    }
    if all {
        for pid in run::cgroup_pids(&record.cgroup) {
            // SAFETY: kill with integer arguments; these pids are in the container's cgroup.
            unsafe { libc::kill(pid, signal) };
        }
    }
    signal_init(&record, signal).map_err(io("signalling the init of", root.dir(id)))?;
    Ok(())
}

/// Wait for the init to be gone, up to `timeout`.
fn wait_gone(record: &Record, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // SAFETY: pidfd_open with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, record.pid, 0) } as i32;
    if fd < 0 {
        return true;
    }
    // SAFETY: the descriptor was just opened and is ours.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if state::process_start_time(record.pid) != Some(record.start_time) {
        return true;
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: polling one valid pollfd (readable once the process has exited).
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return true;
        }
        if n == 0 || Instant::now() >= deadline {
            return false;
        }
    }
}

/// Remove a container: a running one only with `force` (it is killed first), a created
/// one always (its init is killed), as runc does. Then its cgroup, the poststop hooks,
/// and its state. With `force`, a container that does not exist is not an error.
pub fn runtime_delete(root: &StateRoot, id: &str, force: bool) -> Result<(), Error> {
    let record = match root.load(id) {
        Err(RuntimeError::NotFound { .. }) if force => return Ok(()),
        other => other?,
    };
    let status = root.status(&record);
    if status == Status::Running && !force {
        return Err(RuntimeError::WrongStatus { id: id.into(), action: "delete", status: "running" }.into());
    }
    if status != Status::Stopped || !record.own_pid_namespace {
        // Without a pid namespace of its own, the init's death ends nothing else.
        for pid in run::cgroup_pids(&record.cgroup) {
            // SAFETY: kill with integer arguments; these pids are in the container's cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        signal_init(&record, libc::SIGKILL).map_err(io("killing the init of", root.dir(id)))?;
        if !wait_gone(&record, STOP_TIMEOUT) {
            return Err(RuntimeError::StillRunning { id: id.into(), seconds: STOP_TIMEOUT.as_secs() }.into());
        }
    }
    drop(Cgroup::from_dirs(record.cgroup.clone()));
    hooks::run_all_warn("poststop", &record.hooks.poststop, &spec_state(&record, Status::Stopped));
    root.remove(id)?;
    Ok(())
}

/// What `features` prints: the runtime spec's features document for berth-runtime.
pub fn runtime_features() -> serde_json::Value {
    let namespaces = ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];
    let capabilities: Vec<&str> = (0..64).filter_map(run::capability_name).collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
            "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow",
            "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable",
            "rw", "shared", "slave", "strictatime", "suid", "symfollow", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": namespaces,
            "capabilities": capabilities,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                   "SECCOMP_FILTER_FLAG_TSYNC"]
            },
            "apparmor": {"enabled": true},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {"org.opencontainers.runc.version": "compatible (berth-runtime)"}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("15").unwrap(), 15);
        assert_eq!(parse_signal("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("FLY").is_err());
    }
}
