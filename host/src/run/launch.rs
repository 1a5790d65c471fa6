//! The parent side: prepare the plan, `clone` into new namespaces, complete the handshake
//! (uid/gid maps, cgroup), then supervise: forward signals, relay the terminal, reap.
//!
//! One `clone`, no re-exec, no helper process: the child becomes the container's pid 1 and
//! `execve`s the workload itself (crun's shape). Everything the child touches is prepared
//! here first (see `child.rs`).

use std::ffi::CString;
use std::io::{self, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use super::cgroup::Cgroup;
use super::child::{self, ChildFailure, ChildFds, HookPlan, MOUNTED, Plan, READY, Step};
use super::container::{Container, FsEntry, Hook, IdMap, IdMaps, Mount, NamespaceKind, RootReadOnly, TargetKind};
use super::mounts::{self, ContainerFiles};
use super::spec::DEFAULT_PATH;
use super::{ExitStatus, RunError, RunSpec, caps};

/// Signals berth passes on to the container's pid 1 (SIGWINCH resizes the pty instead,
/// when there is one; the kernel then signals the terminal's foreground group).
const FORWARDED: &[libc::c_int] =
    &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];

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

fn hook_plan(hook: &Hook) -> Result<HookPlan, RunError> {
    let path = hook.path.to_string_lossy();
    let args = if hook.args.is_empty() { vec![path.to_string()] } else { hook.args.clone() };
    Ok(HookPlan {
        path: cstring(&path, "hook path")?,
        argv: args.iter().map(|a| cstring(a, "hook args")).collect::<Result<_, _>>()?,
        envp: hook.env.iter().map(|e| cstring(e, "hook env")).collect::<Result<_, _>>()?,
        argv_ptrs: Vec::new(),
        envp_ptrs: Vec::new(),
        timeout_ms: hook.timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32),
    })
}

fn build_plan(c: &Container, detached: bool, terminal: Option<&Path>) -> Result<Plan, RunError> {
    let p = &c.process;
    let mut fs = c.fs.clone();
    if let Some(tty) = terminal.filter(|_| c.dev_console) {
        let mut console = Mount::new("/dev/console", TargetKind::File);
        console.source = Some(tty.to_path_buf());
        console.flags = libc::MS_BIND;
        console.optional = true;
        fs.push(FsEntry::Mount(console));
    }
    let mut plan = Plan {
        rootfs: CString::new(c.rootfs.as_os_str().as_bytes()).map_err(|_| RunError::BadOption {
            option: "--rootfs",
            value: c.rootfs.display().to_string(),
            expected: "no NUL bytes",
        })?,
        root_propagation: c.root_propagation,
        read_only: c.root_read_only,
        hostname: c.hostname.as_deref().map(|h| cstring(h, "--hostname")).transpose()?,
        domainname: c.domainname.as_deref().map(|d| cstring(d, "domainname")).transpose()?,
        cgroup_namespace: c.namespaces.creates(NamespaceKind::Cgroup),
        fs: mounts::fs_plan(&fs)?,
        loopback: c.namespaces.creates(NamespaceKind::Network),
        user_namespace: c.id_maps.is_some(),
        pause_after_mounts: c.pause_after_mounts,
        cwd: cstring(&p.cwd, "--workdir")?,
        uid: p.user.uid,
        gid: p.user.gid,
        groups: p.user.additional_gids.clone(),
        set_groups: !c.id_maps.as_ref().is_some_and(|m| m.deny_setgroups),
        umask: c.umask,
        capabilities: c.capabilities,
        last_capability: caps::last_capability(),
        rlimits: c.rlimits.iter().map(|r| (r.resource, libc::rlimit { rlim_cur: r.soft, rlim_max: r.hard })).collect(),
        no_new_privileges: p.no_new_privileges,
        // `berth run` is the container's only keeper: if it is killed (SIGKILL, where it
        // cannot forward anything), the container goes too, rather than run on unowned
        // while gc reclaims its rootfs. A runtime's container (`detached`) outlives `create`.
        die_with_parent: !detached,
        apparmor_exec: c.apparmor_profile.as_deref().map(|a| cstring(&format!("exec {a}"), "apparmor")).transpose()?,
        personality: c.personality,
        seccomp: c.seccomp.clone(),
        exec_candidates: exec_candidates(&p.args[0], &p.env)
            .iter()
            .map(|c| cstring(c, "command"))
            .collect::<Result<_, _>>()?,
        check_exec: detached,
        argv: p.args.iter().map(|a| cstring(a, "command")).collect::<Result<_, _>>()?,
        envp: p.env.iter().map(|e| cstring(e, "--env")).collect::<Result<_, _>>()?,
        argv_ptrs: Vec::new(),
        envp_ptrs: Vec::new(),
        tty: None,
        null_stdin: None,
        exec_fifo: None,
        start_hooks: c.start_hooks.iter().map(hook_plan).collect::<Result<_, _>>()?,
        hook_state: None,
        close_from: 3 + c.preserve_fds,
    };
    plan.seal();
    Ok(plan)
}

fn describe(failure: ChildFailure, plan: &Plan) -> String {
    let at = |i: u32| plan.fs.get(i as usize).map_or("?", |op| op.display.as_str());
    match Step::from_u32(failure.step) {
        Some(Step::WaitParent) => "waiting for berth".into(),
        Some(Step::CgroupNamespace) => "creating the cgroup namespace".into(),
        Some(Step::Hostname) => "setting the hostname".into(),
        Some(Step::Domainname) => "setting the domain name".into(),
        Some(Step::MakePrivate) => "setting the propagation of the mounts".into(),
        Some(Step::BindRootfs) => "bind-mounting the rootfs onto itself".into(),
        Some(Step::OpenRootfs) => "opening the rootfs".into(),
        Some(Step::RootfsReadOnly) => "making the rootfs read-only".into(),
        Some(Step::MountPoint) if plan.read_only == RootReadOnly::BeforeMounts => {
            format!("mount point {} is missing and the rootfs is read-only", at(failure.index))
        }
        Some(Step::MountPoint) => format!("creating the mount point {} in the rootfs", at(failure.index)),
        Some(Step::Mount) => format!("mounting {}", at(failure.index)),
        Some(Step::RemountReadOnly) => format!("remounting {} with its flags", at(failure.index)),
        Some(Step::Propagation) => format!("setting the propagation of {}", at(failure.index)),
        Some(Step::Symlink) => format!("creating the symlink {}", at(failure.index)),
        Some(Step::Device) => format!("creating the device {}", at(failure.index)),
        Some(Step::Sysctl) => format!("writing the sysctl {}", at(failure.index)),
        Some(Step::Mask) => format!("masking {}", at(failure.index)),
        Some(Step::Loopback) => "bringing up the loopback interface".into(),
        Some(Step::PivotRoot) => "pivot_root into the rootfs".into(),
        Some(Step::Workdir) => format!("changing to the working directory {:?}", plan.cwd),
        Some(Step::Stdio) => "setting up stdin/stdout/stderr".into(),
        Some(Step::AppArmor) => "setting the AppArmor profile".into(),
        Some(Step::Personality) => "setting the personality".into(),
        Some(Step::Rlimit) => format!("setting rlimit #{}", failure.index),
        Some(Step::NoNewPrivs) => "setting no_new_privs".into(),
        Some(Step::BoundingSet) => format!("dropping capability {} from the bounding set", failure.index),
        Some(Step::Groups) => "setting the supplementary groups".into(),
        Some(Step::Gid) => format!("switching to gid {}", plan.gid),
        Some(Step::Uid) => format!("switching to uid {}", plan.uid),
        Some(Step::Capabilities) => "setting the capabilities".into(),
        Some(Step::Seccomp) => "loading the seccomp filter".into(),
        Some(Step::WaitStart) => "waiting for start".into(),
        Some(Step::StartHook) => format!("running startContainer hook #{}", failure.index),
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

/// A pty from the host's devpts: (master, slave, the slave's path). The size is
/// `size` (rows, columns), else that of berth's own terminal.
fn open_pty(size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd, PathBuf), RunError> {
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
    if let Some((rows, cols)) = size {
        let size = rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let _ = rustix::termios::tcsetwinsize(&slave, size);
    } else {
        for fd in [io::stdin().as_fd(), io::stdout().as_fd()] {
            if let Ok(size) = rustix::termios::tcgetwinsize(fd) {
                let _ = rustix::termios::tcsetwinsize(&slave, size);
                break;
            }
        }
    }
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
    Ok((master, slave, path))
}

fn write_maps(pid: i32, maps: &IdMaps) -> io::Result<()> {
    let lines = |m: &[IdMap]| m.iter().map(|m| format!("{} {} {}\n", m.container, m.host, m.count)).collect::<String>();
    if maps.deny_setgroups {
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")?;
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), lines(&maps.uid))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), lines(&maps.gid))
}

fn kill_and_reap(pid: i32) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

/// The calling thread inside the namespaces the container joins, for the clone; its own
/// namespaces again when dropped. setns affects only the calling thread, and the child
/// of a clone is born in the namespaces of the thread that made it. A pid namespace is
/// entered for children only (`pid_for_children`).
struct JoinedNamespaces {
    /// (kind, this thread's own namespace) to return to.
    saved: Vec<(NamespaceKind, OwnedFd)>,
}

impl JoinedNamespaces {
    fn enter(join: &[(NamespaceKind, PathBuf)]) -> Result<JoinedNamespaces, RunError> {
        let mut joined = JoinedNamespaces { saved: Vec::new() };
        for (kind, path) in join {
            let open = |p: &Path| {
                rustix::fs::open(p, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
            };
            let target =
                open(path).map_err(|e| RunError::os(format!("opening the namespace {}", path.display()), e.into()))?;
            let own_path = format!("/proc/thread-self/ns/{}", kind.proc_name());
            let own = open(Path::new(&own_path)).map_err(|e| RunError::os(format!("opening {own_path}"), e.into()))?;
            // SAFETY: setns on a namespace descriptor with its matching type.
            if unsafe { libc::setns(target.as_raw_fd(), kind.clone_flag()) } < 0 {
                return Err(RunError::os(
                    format!("joining the namespace {}", path.display()),
                    io::Error::last_os_error(),
                ));
            }
            joined.saved.push((*kind, own));
        }
        Ok(joined)
    }
}

impl Drop for JoinedNamespaces {
    fn drop(&mut self) {
        for (kind, own) in self.saved.drain(..).rev() {
            // SAFETY: returning to this thread's own namespace.
            unsafe { libc::setns(own.as_raw_fd(), kind.clone_flag()) };
        }
    }
}

/// What the caller of [`create`] does at the lifecycle points that need it (the OCI
/// runtime's hooks). Errors end the creation.
pub trait Lifecycle {
    /// The container's mounts are made and its init waits before `pivot_root` (only
    /// with [`Container::pause_after_mounts`]).
    fn mounted(&mut self, pid: i32) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
    /// What the startContainer hooks read on stdin (the OCI state JSON).
    fn hook_state(&mut self, pid: i32) -> Vec<u8>;
}

/// A created container: its init waits on the exec FIFO until `start`.
#[derive(Debug)]
pub struct Created {
    /// The init's pid (in berth's pid namespace).
    pub pid: i32,
    /// The pty master, when the process has a terminal (the slave is the init's).
    pub terminal: Option<OwnedFd>,
    /// The slave's path on the host, e.g. `/dev/pts/3`.
    pub terminal_path: Option<PathBuf>,
    /// The cgroup directories; they outlive this process and are the caller's to remove.
    pub cgroup_dirs: Vec<PathBuf>,
}

/// How the caller waits: in the foreground (`berth run`), or not at all (`create`).
enum Mode<'a> {
    Foreground,
    Detached { exec_fifo: RawFd, lifecycle: &'a mut dyn Lifecycle },
}

/// A child set up and, in the foreground, exec'd; detached, waiting on its FIFO.
struct Spawned {
    pid: i32,
    master: Option<OwnedFd>,
    pty_path: Option<PathBuf>,
    cgroup: Option<Cgroup>,
}

/// Run `spec.process` in `spec.rootfs` inside new namespaces; wait for it and return how
/// it ended. stdio is passed through (or relayed through a pty with `terminal`). The
/// container is killed if the calling thread ends first (`PR_SET_PDEATHSIG`), so nothing
/// outlives its supervisor, even one killed outright.
pub fn launch(spec: &RunSpec) -> Result<ExitStatus, RunError> {
    check_rootfs(&spec.rootfs)?;
    let files = ContainerFiles::create(spec)?;
    let container = spec.container(&files)?;
    let signals = BlockedSignals::block();
    let signalfd = signals.signalfd().map_err(|e| RunError::os("creating a signalfd", e))?;
    let spawned = spawn(&container, Mode::Foreground)?;
    let status = supervise(spawned.pid, &signalfd, spawned.master.as_ref(), spec.process.stdin)?;
    drop(signals);
    drop(spawned);
    drop(files);
    Ok(status)
}

/// Set up `container` and leave its init waiting before `execve` until a byte arrives on
/// `exec_fifo` (a FIFO opened read-write, which the init inherits); return once it is
/// waiting. The init outlives this process, which is not its parent for long: it is
/// reparented to the nearest subreaper (podman's conmon, containerd's shim).
pub fn create(
    container: &Container,
    exec_fifo: BorrowedFd<'_>,
    lifecycle: &mut dyn Lifecycle,
) -> Result<Created, RunError> {
    check_rootfs(&container.rootfs)?;
    let _signals = BlockedSignals::block();
    let mut spawned = spawn(container, Mode::Detached { exec_fifo: exec_fifo.as_raw_fd(), lifecycle })?;
    Ok(Created {
        pid: spawned.pid,
        terminal: spawned.master.take(),
        terminal_path: spawned.pty_path.take(),
        cgroup_dirs: spawned.cgroup.take().map(Cgroup::into_dirs).unwrap_or_default(),
    })
}

fn check_rootfs(rootfs: &Path) -> Result<(), RunError> {
    let meta = std::fs::metadata(rootfs).map_err(|e| RunError::Rootfs { path: rootfs.to_path_buf(), source: e })?;
    if !meta.is_dir() {
        return Err(RunError::Rootfs {
            path: rootfs.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        });
    }
    Ok(())
}

/// Read one record (or EOF: `None`) from the child's error pipe.
fn read_record(error_read: &OwnedFd) -> Option<ChildFailure> {
    let mut record = [0u8; ChildFailure::SIZE];
    let mut got = 0;
    while got < record.len() {
        match rustix::io::read(error_read, &mut record[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    (got == record.len()).then(|| ChildFailure::from_bytes(&record))
}

fn spawn(container: &Container, mut mode: Mode<'_>) -> Result<Spawned, RunError> {
    if container.process.args.is_empty() {
        return Err(RunError::NoCommand);
    }
    let detached = matches!(mode, Mode::Detached { .. });
    let pty = if container.process.terminal { Some(open_pty(container.console_size)?) } else { None };
    let mut plan = build_plan(container, detached, pty.as_ref().map(|(_, _, path)| path.as_path()))?;

    let cgroup = match &container.cgroup {
        None => None,
        Some(request) => match Cgroup::create(request) {
            Ok(cg) => Some(cg),
            Err(e) if request.best_effort => {
                tracing::warn!("running without cgroup limits: {}", crate::error_chain(&e));
                None
            }
            Err(e) => return Err(e),
        },
    };

    let null = if container.process.stdin || container.process.terminal {
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
    plan.tty = pty.as_ref().map(|(_, slave, _)| slave.as_raw_fd());
    plan.null_stdin = null.as_ref().map(|n| n.as_raw_fd());
    let hook_state = if container.start_hooks.is_empty() {
        None
    } else {
        Some(
            rustix::fs::memfd_create("berth-hook-state", rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(|e| RunError::os("creating the hook state file", e.into()))?,
        )
    };
    plan.hook_state = hook_state.as_ref().map(|f| f.as_raw_fd());
    if let Mode::Detached { exec_fifo, .. } = &mode {
        plan.exec_fifo = Some(*exec_fifo);
    }
    let (sync_read, sync_write) = pipe()?;
    let (error_read, error_write) = pipe()?;
    let fds = ChildFds {
        sync_read: sync_read.as_raw_fd(),
        sync_write: sync_write.as_raw_fd(),
        error_read: error_read.as_raw_fd(),
        error_write: error_write.as_raw_fd(),
    };

    let mut flags = 0;
    for kind in &container.namespaces.new {
        // A cgroup namespace is unshared by the child once it is in its cgroup.
        if *kind != NamespaceKind::Cgroup {
            flags |= kind.clone_flag();
        }
    }
    let joined = JoinedNamespaces::enter(&container.namespaces.join)?;
    // SAFETY: clone without CLONE_VM behaves like fork; the child runs only
    // async-signal-safe code over the prepared plan and never returns (child::run -> !).
    let pid = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    if pid == 0 {
        child::run(&plan, &fds);
    }
    let clone_error = io::Error::last_os_error();
    drop(joined);
    if pid < 0 {
        return Err(RunError::os("creating the container's namespaces (clone)", clone_error));
    }
    let pid = pid as i32;
    drop(sync_read);
    drop(error_write);
    // The child holds the pty slave now; EIO on the master then means it is gone.
    let (master, pty_path) = match pty {
        Some((master, _slave, path)) => (Some(master), Some(path)),
        None => (None, None),
    };
    drop(null);
    let fail = |e: RunError| {
        kill_and_reap(pid);
        e
    };

    if let Some(maps) = &container.id_maps {
        write_maps(pid, maps).map_err(|e| fail(RunError::os("writing the user namespace's uid/gid maps", e)))?;
    }
    if let Some(adj) = container.oom_score_adj {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .map_err(|e| fail(RunError::os("setting the container's oom_score_adj", e)))?;
    }
    let cgroup = match cgroup {
        Some(cg) => match cg.add(pid) {
            Ok(()) => Some(cg),
            Err(e) if container.cgroup.as_ref().is_some_and(|r| r.best_effort) => {
                tracing::warn!("running without cgroup limits: {}", crate::error_chain(&e));
                Some(cg)
            }
            Err(e) => return Err(fail(e)),
        },
        None => None,
    };
    if let (Some(state), Mode::Detached { lifecycle, .. }) = (&hook_state, &mut mode) {
        let bytes = lifecycle.hook_state(pid);
        std::fs::File::from(state.try_clone().map_err(|e| fail(RunError::os("copying a descriptor", e)))?)
            .write_all(&bytes)
            .map_err(|e| fail(RunError::os("writing the hook state file", e)))?;
    }
    let go = |what: &str| {
        rustix::io::write(&sync_write, &[1]).map(|_| ()).map_err(|e| RunError::os(what.to_string(), e.into()))
    };
    go("starting the container").map_err(fail)?;

    // EOF: execve succeeded (the pipe is close-on-exec). A record: a notice, or the
    // child failed.
    loop {
        match read_record(&error_read) {
            None if detached => {
                let mut status = 0;
                // SAFETY: reaping our own child, which is gone.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                return Err(RunError::InitVanished);
            }
            None => break,
            Some(r) if r.step == MOUNTED => {
                if let Mode::Detached { lifecycle, .. } = &mut mode {
                    lifecycle.mounted(pid).map_err(|e| fail(RunError::Lifecycle(e)))?;
                }
                go("resuming the container after its hooks").map_err(fail)?;
            }
            Some(r) if r.step == READY => break,
            Some(failure) => {
                let mut status = 0;
                // SAFETY: reaping our own child, which exits right after writing the record.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                let source = io::Error::from_raw_os_error(failure.errno);
                if Step::from_u32(failure.step) == Some(Step::Exec) {
                    return Err(RunError::Exec { program: container.process.args[0].clone(), source });
                }
                return Err(RunError::Setup { step: describe(failure, &plan), source });
            }
        }
    }
    Ok(Spawned { pid, master, pty_path, cgroup })
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
