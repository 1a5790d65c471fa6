//! The parent side: prepare the plan, `clone` into new namespaces, complete the handshake
//! (uid/gid maps, cgroup), then supervise: forward signals, relay the terminal, reap.
//!
//! One `clone`, no re-exec, no helper process: the child becomes the container's pid 1 and
//! `execve`s the workload itself (crun's shape). Everything the child touches is prepared
//! here first (see `child.rs`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;

use super::cgroup::Cgroup;
use super::child::{self, ChildFailure, ChildFds, Plan, Step};
use super::mounts::{self, ContainerFiles};
use super::spec::DEFAULT_PATH;
use super::{ExitStatus, Network, RunError, RunSpec, UserNamespace, caps};

/// Signals berth passes on to the container's pid 1 (SIGWINCH resizes the pty instead,
/// when there is one; the kernel then signals the terminal's foreground group).
const FORWARDED: &[libc::c_int] =
    &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];

/// One line of `/proc/PID/uid_map` or `gid_map`.
#[derive(Debug, Clone, Copy)]
struct IdMap {
    container: u32,
    host: u32,
    count: u32,
}

/// The user namespace berth creates, if any.
#[derive(Debug, Clone, Copy)]
struct UserMaps {
    uid: IdMap,
    gid: IdMap,
    /// Rootless: `setgroups` must be denied before an unprivileged gid_map write.
    deny_setgroups: bool,
}

fn user_maps(spec: &RunSpec) -> Result<Option<UserMaps>, RunError> {
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let user = &spec.process.user;
    match spec.user_namespace {
        UserNamespace::Auto if euid == 0 => Ok(None),
        UserNamespace::Auto => {
            if user.uid != 0 || user.gid != 0 {
                return Err(RunError::UnmappedUser { uid: user.uid, gid: user.gid });
            }
            Ok(Some(UserMaps {
                uid: IdMap { container: 0, host: euid, count: 1 },
                gid: IdMap { container: 0, host: egid, count: 1 },
                deny_setgroups: true,
            }))
        }
        UserNamespace::Private { .. } if euid != 0 => Err(RunError::PrivateUsersNeedRoot),
        UserNamespace::Private { host_base, count } => {
            let unmapped = |id: u32| id >= count;
            if unmapped(user.uid) || unmapped(user.gid) || user.additional_gids.iter().any(|g| unmapped(*g)) {
                return Err(RunError::UnmappedUser { uid: user.uid, gid: user.gid });
            }
            let map = IdMap { container: 0, host: host_base, count };
            Ok(Some(UserMaps { uid: map, gid: map, deny_setgroups: false }))
        }
    }
}

fn cstring(text: &str, what: &'static str) -> Result<CString, RunError> {
    CString::new(text).map_err(|_| RunError::BadOption {
        option: what,
        value: text.to_string(),
        expected: "no NUL bytes",
    })
}

/// Paths to try for `args[0]`: itself when it has a slash, else each `PATH` entry.
fn exec_candidates(program: &str, env: &[String]) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_string()];
    }
    let path =
        env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH.trim_start_matches("PATH="));
    path.split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
        .collect()
}

fn build_plan(spec: &RunSpec, files: &ContainerFiles, maps: Option<&UserMaps>) -> Result<Plan, RunError> {
    let p = &spec.process;
    let mut plan = Plan {
        rootfs: CString::new(spec.rootfs.as_os_str().as_bytes()).map_err(|_| RunError::BadOption {
            option: "--rootfs",
            value: spec.rootfs.display().to_string(),
            expected: "no NUL bytes",
        })?,
        hostname: cstring(&spec.hostname, "--hostname")?,
        mounts: mounts::mount_plan(spec, files, maps.is_some())?,
        symlinks: mounts::symlink_plan(),
        read_only: spec.read_only,
        loopback: spec.network == Network::None,
        user_namespace: maps.is_some(),
        cwd: cstring(&p.cwd, "--workdir")?,
        uid: p.user.uid,
        gid: p.user.gid,
        groups: p.user.additional_gids.clone(),
        set_groups: !maps.is_some_and(|m| m.deny_setgroups),
        capabilities: spec.capabilities.iter().filter(|c| **c < 64).fold(0u64, |m, c| m | (1 << c)),
        last_capability: caps::last_capability(),
        rlimits: spec
            .rlimits
            .iter()
            .map(|r| (r.resource, libc::rlimit { rlim_cur: r.soft, rlim_max: r.hard }))
            .collect(),
        no_new_privileges: p.no_new_privileges,
        // `berth run` is the container's only keeper: if it is killed (SIGKILL, where it
        // cannot forward anything), the container goes too, rather than run on unowned
        // while gc reclaims its rootfs.
        die_with_parent: true,
        exec_candidates: exec_candidates(&p.args[0], &p.env)
            .iter()
            .map(|c| cstring(c, "command"))
            .collect::<Result<_, _>>()?,
        argv: p.args.iter().map(|a| cstring(a, "command")).collect::<Result<_, _>>()?,
        envp: p.env.iter().map(|e| cstring(e, "--env")).collect::<Result<_, _>>()?,
        argv_ptrs: Vec::new(),
        envp_ptrs: Vec::new(),
        tty: None,
        null_stdin: None,
    };
    plan.seal();
    Ok(plan)
}

fn describe(failure: ChildFailure, plan: &Plan) -> String {
    let mount = |i: u32| plan.mounts.get(i as usize).map_or("?", |m| m.display.as_str());
    match Step::from_u32(failure.step) {
        Some(Step::WaitParent) => "waiting for berth".into(),
        Some(Step::Hostname) => "setting the hostname".into(),
        Some(Step::MakePrivate) => "making the mounts private".into(),
        Some(Step::BindRootfs) => "bind-mounting the rootfs onto itself".into(),
        Some(Step::OpenRootfs) => "opening the rootfs".into(),
        Some(Step::RootfsReadOnly) => "making the rootfs read-only".into(),
        Some(Step::MountPoint) if plan.read_only => {
            format!("mount point {} is missing and the rootfs is read-only", mount(failure.index))
        }
        Some(Step::MountPoint) => format!("creating the mount point {} in the rootfs", mount(failure.index)),
        Some(Step::Mount) => format!("mounting {}", mount(failure.index)),
        Some(Step::RemountReadOnly) => format!("making {} read-only", mount(failure.index)),
        Some(Step::Symlink) => "creating the /dev symlinks".into(),
        Some(Step::Loopback) => "bringing up the loopback interface".into(),
        Some(Step::PivotRoot) => "pivot_root into the rootfs".into(),
        Some(Step::Workdir) => format!("changing to the working directory {:?}", plan.cwd),
        Some(Step::Stdio) => "setting up stdin/stdout/stderr".into(),
        Some(Step::Rlimit) => format!("setting rlimit #{}", failure.index),
        Some(Step::NoNewPrivs) => "setting no_new_privs".into(),
        Some(Step::BoundingSet) => format!("dropping capability {} from the bounding set", failure.index),
        Some(Step::Groups) => "setting the supplementary groups".into(),
        Some(Step::Gid) => format!("switching to gid {}", plan.gid),
        Some(Step::Uid) => format!("switching to uid {}", plan.uid),
        Some(Step::Capabilities) => "setting the capabilities".into(),
        Some(Step::Exec) | None => format!("step {}", failure.step),
    }
}

/// Blocks the forwarded signals (and SIGCHLD) while alive; restores the old mask on drop.
struct BlockedSignals {
    old: libc::sigset_t,
    set: libc::sigset_t,
}

impl BlockedSignals {
    fn block() -> BlockedSignals {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
                libc::sigaddset(&mut set, *s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            BlockedSignals { old, set }
        }
    }

    fn signalfd(&self) -> io::Result<OwnedFd> {
        // SAFETY: a new signalfd for a valid set.
        let fd = unsafe { libc::signalfd(-1, &self.set, libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: we own the new descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved in `block`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// The forwarded signals and SIGCHLD, blocked from before any thread exists until the
/// container is gone. A signal is delivered to any thread that has it unblocked, and
/// threads spawned before [`launch`] (wasmtime's compile pool, the epoch thread) would
/// otherwise take SIGCHLD or SIGINT away from the signalfd: a lost exit, an unforwarded
/// ^C. `berth run` takes this first thing, so every later thread inherits the mask.
pub struct SignalMask {
    _blocked: BlockedSignals,
}

impl SignalMask {
    pub fn block() -> SignalMask {
        SignalMask { _blocked: BlockedSignals::block() }
    }

    /// A termination signal (SIGINT, SIGTERM, SIGHUP) that arrived while the signals were
    /// blocked and before the container started, consumed.
    pub fn take_termination(&self) -> Option<i32> {
        // SAFETY: sigset_t is plain data; sigpending and sigtimedwait with a zero timeout
        // only read the pending set and consume one member of it.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                if libc::sigismember(&pending, s) == 1 {
                    let mut one: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut one);
                    libc::sigaddset(&mut one, s);
                    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                    libc::sigtimedwait(&one, std::ptr::null_mut(), &zero);
                    return Some(s);
                }
            }
        }
        None
    }
}

/// Puts the controlling terminal into raw mode while alive.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        let stdin = io::stdin();
        let saved = rustix::termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(io::stdin().as_fd(), rustix::termios::OptionalActions::Now, &self.saved);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), RunError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| RunError::os("creating a pipe", e.into()))
}

/// A pty from the host's devpts: (master, slave).
fn open_pty() -> Result<(OwnedFd, OwnedFd), RunError> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let err = |e: rustix::io::Errno| RunError::os("allocating a pseudo-terminal", e.into());
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(err)?;
    grantpt(&master).map_err(err)?;
    unlockpt(&master).map_err(err)?;
    let name = ptsname(&master, Vec::new()).map_err(err)?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(err)?;
    for fd in [io::stdin().as_fd(), io::stdout().as_fd()] {
        if let Ok(size) = rustix::termios::tcgetwinsize(fd) {
            let _ = rustix::termios::tcsetwinsize(&slave, size);
            break;
        }
    }
    Ok((master, slave))
}

fn write_maps(pid: i32, maps: &UserMaps) -> io::Result<()> {
    let line = |m: IdMap| format!("{} {} {}\n", m.container, m.host, m.count);
    if maps.deny_setgroups {
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")?;
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), line(maps.uid))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), line(maps.gid))
}

fn kill_and_reap(pid: i32) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

/// Run `spec.process` in `spec.rootfs` inside new namespaces; wait for it and return how
/// it ended. stdio is passed through (or relayed through a pty with `terminal`). The
/// container is killed if the calling thread ends first (`PR_SET_PDEATHSIG`), so nothing
/// outlives its supervisor, even one killed outright.
pub fn launch(spec: &RunSpec) -> Result<ExitStatus, RunError> {
    let meta =
        std::fs::metadata(&spec.rootfs).map_err(|e| RunError::Rootfs { path: spec.rootfs.clone(), source: e })?;
    if !meta.is_dir() {
        return Err(RunError::Rootfs {
            path: spec.rootfs.clone(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        });
    }
    if spec.process.args.is_empty() {
        return Err(RunError::NoCommand);
    }
    let maps = user_maps(spec)?;
    let files = ContainerFiles::create(spec)?;
    let mut plan = build_plan(spec, &files, maps.as_ref())?;

    let cgroup = if spec.resources.is_empty() {
        None
    } else {
        match Cgroup::create(&spec.name, &spec.resources) {
            Ok(cg) => Some(cg),
            Err(reason) => {
                tracing::warn!("running without cgroup limits: {reason}");
                None
            }
        }
    };

    let pty = if spec.process.terminal { Some(open_pty()?) } else { None };
    let null = if spec.process.stdin || spec.process.terminal {
        None
    } else {
        Some(
            rustix::fs::open(
                c"/dev/null",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| RunError::os("opening /dev/null", e.into()))?,
        )
    };
    plan.tty = pty.as_ref().map(|(_, slave)| slave.as_raw_fd());
    plan.null_stdin = null.as_ref().map(|n| n.as_raw_fd());
    let (sync_read, sync_write) = pipe()?;
    let (error_read, error_write) = pipe()?;
    let fds = ChildFds {
        sync_read: sync_read.as_raw_fd(),
        sync_write: sync_write.as_raw_fd(),
        error_read: error_read.as_raw_fd(),
        error_write: error_write.as_raw_fd(),
    };

    let signals = BlockedSignals::block();
    let signalfd = signals.signalfd().map_err(|e| RunError::os("creating a signalfd", e))?;

    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if maps.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    if spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: clone without CLONE_VM behaves like fork; the child runs only
    // async-signal-safe code over the prepared plan and never returns (child::run -> !).
    let pid = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    if pid < 0 {
        return Err(RunError::os("creating the container's namespaces (clone)", io::Error::last_os_error()));
    }
    if pid == 0 {
        child::run(&plan, &fds);
    }
    let pid = pid as i32;
    drop(sync_read);
    drop(error_write);
    // The child holds the pty slave now; EIO on the master then means it is gone.
    let master = pty.map(|(master, _slave)| master);
    drop(null);

    if let Some(maps) = &maps
        && let Err(e) = write_maps(pid, maps)
    {
        kill_and_reap(pid);
        return Err(RunError::os("writing the user namespace's uid/gid maps", e));
    }
    if let Some(cg) = &cgroup
        && let Err(reason) = cg.add(pid)
    {
        tracing::warn!("running without cgroup limits: {reason}");
    }
    if rustix::io::write(&sync_write, &[1]).is_err() {
        kill_and_reap(pid);
        return Err(RunError::os("starting the container", io::Error::last_os_error()));
    }
    drop(sync_write);

    // EOF: execve succeeded (the pipe is close-on-exec). A record: the child failed.
    let mut record = [0u8; ChildFailure::SIZE];
    let mut got = 0;
    while got < record.len() {
        match rustix::io::read(&error_read, &mut record[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    drop(error_read);
    if got == record.len() {
        let failure = ChildFailure::from_bytes(&record);
        let mut status = 0;
        // SAFETY: reaping our own child, which exits right after writing the record.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let source = io::Error::from_raw_os_error(failure.errno);
        if Step::from_u32(failure.step) == Some(Step::Exec) {
            return Err(RunError::Exec { program: spec.process.args[0].clone(), source });
        }
        return Err(RunError::Setup { step: describe(failure, &plan), source });
    }

    let status = supervise(pid, &signalfd, master.as_ref(), spec.process.stdin)?;
    drop(signals);
    drop(cgroup);
    drop(files);
    Ok(status)
}

fn decode(status: libc::c_int) -> ExitStatus {
    if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    }
}

/// `Some(status)` once the child has exited.
fn try_reap(pid: i32) -> Option<ExitStatus> {
    let mut status = 0;
    // SAFETY: reaping our own child without blocking.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then(|| decode(status))
}

fn read_signal(signalfd: &OwnedFd) -> Option<u32> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    // SAFETY: reading into a buffer of exactly its size.
    let n = unsafe {
        libc::read(
            signalfd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size_of::<libc::signalfd_siginfo>(),
        )
    };
    (n == size_of::<libc::signalfd_siginfo>() as isize).then_some(info.ssi_signo)
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Wait for the container's pid 1: forward signals, relay the pty, return its status.
fn supervise(pid: i32, signalfd: &OwnedFd, master: Option<&OwnedFd>, stdin: bool) -> Result<ExitStatus, RunError> {
    let _raw = master.and_then(|_| RawTerminal::enter());
    let sfd = signalfd.as_raw_fd();
    let mfd = master.map(|m| m.as_raw_fd());
    let mut stdin_open = stdin && mfd.is_some();
    let mut master_open = mfd.is_some();
    let mut buf = [0u8; 16384];
    loop {
        let mut polls = [
            libc::pollfd { fd: sfd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if master_open { mfd.unwrap_or(-1) } else { -1 }, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if stdin_open { 0 } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: polling an array of valid pollfd structs.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(RunError::os("waiting for the container", io::Error::last_os_error()));
        }
        if polls[1].revents != 0
            && let Some(m) = mfd
        {
            // SAFETY: reading into a stack buffer.
            let n = unsafe { libc::read(m, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 || !write_all(1, &buf[..n as usize]) {
                master_open = false;
            }
        }
        if polls[2].revents != 0
            && let Some(m) = mfd
        {
            // SAFETY: reading into a stack buffer.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                stdin_open = false;
                // End of input: the pty's EOF character (^D in canonical mode).
                write_all(m, &[4]);
            } else {
                write_all(m, &buf[..n as usize]);
            }
        }
        if polls[0].revents != 0
            && let Some(signo) = read_signal(signalfd)
        {
            let signo = signo as libc::c_int;
            if signo == libc::SIGCHLD {
                if let Some(status) = try_reap(pid) {
                    if let Some(m) = mfd {
                        drain(m, &mut buf);
                    }
                    return Ok(status);
                }
            } else if signo == libc::SIGWINCH && mfd.is_some() {
                if let (Some(m), Ok(size)) = (master, rustix::termios::tcgetwinsize(io::stdin().as_fd())) {
                    let _ = rustix::termios::tcsetwinsize(m, size);
                }
            } else {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, signo) };
            }
        }
    }
}

/// Copy what the pty still holds after the process exited.
fn drain(master: RawFd, buf: &mut [u8]) {
    loop {
        let mut p = libc::pollfd { fd: master, events: libc::POLLIN, revents: 0 };
        // SAFETY: polling one valid pollfd; reading into a valid buffer.
        unsafe {
            if libc::poll(&mut p, 1, 50) <= 0 {
                return;
            }
            let n = libc::read(master, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 || !write_all(1, &buf[..n as usize]) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_looked_up_in_the_container_path() {
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        assert_eq!(exec_candidates("sh", &env), ["/usr/bin/sh", "/bin/sh"]);
        assert_eq!(exec_candidates("/bin/true", &env), ["/bin/true"]);
        assert_eq!(exec_candidates("./run", &env), ["./run"]);
        assert_eq!(exec_candidates("ls", &[]).len(), 6);
    }
}
