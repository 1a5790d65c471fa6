//! The child side of `clone`: from a fresh set of namespaces to `execve`.
//!
//! berth may have other threads, so after `clone` only async-signal-safe work is allowed:
//! no allocation, no locks, no formatting. Everything this code reads was prepared by the
//! parent in a [`Plan`] (C strings, pointer arrays, file descriptors); it only makes
//! system calls. On failure it writes one [`ChildFailure`] record to the error pipe and
//! exits; on success `execve` closes that pipe (close-on-exec), which the parent sees as EOF.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::{c_char, c_ulong};

/// Declares [`Step`] and the list of its variants once, so a number read back from the
/// child maps to the same variant it was written from.
macro_rules! steps {
    ($first:ident, $($rest:ident),+ $(,)?) => {
        /// Where the child failed; `index` picks the mount, rlimit or exec candidate.
        /// Numbered from 1: a zeroed record names no step.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u32)]
        pub(super) enum Step {
            $first = 1,
            $($rest),+
        }

        impl Step {
            const ALL: &[Step] = &[Step::$first, $(Step::$rest),+];
        }
    };
}

steps!(
    WaitParent,
    Hostname,
    MakePrivate,
    BindRootfs,
    OpenRootfs,
    RootfsReadOnly,
    MountPoint,
    Mount,
    RemountReadOnly,
    Symlink,
    Loopback,
    PivotRoot,
    Workdir,
    Stdio,
    Rlimit,
    NoNewPrivs,
    BoundingSet,
    Groups,
    Gid,
    Uid,
    Capabilities,
    Exec,
);

impl Step {
    pub(super) fn from_u32(n: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == n)
    }
}

/// The record the child writes before it gives up: 12 bytes, native endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChildFailure {
    pub step: u32,
    pub index: u32,
    pub errno: i32,
}

impl ChildFailure {
    pub(super) const SIZE: usize = 12;

    pub(super) fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.step.to_ne_bytes());
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b[8..12].copy_from_slice(&self.errno.to_ne_bytes());
        b
    }

    pub(super) fn from_bytes(b: &[u8; 12]) -> ChildFailure {
        ChildFailure {
            step: u32::from_ne_bytes(b[0..4].try_into().unwrap()),
            index: u32::from_ne_bytes(b[4..8].try_into().unwrap()),
            errno: i32::from_ne_bytes(b[8..12].try_into().unwrap()),
        }
    }
}

/// What a mount's target is when it must be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TargetKind {
    Dir,
    File,
}

/// One mount onto a path inside the rootfs.
#[derive(Debug)]
pub(super) struct MountOp {
    /// For messages: the path inside the container.
    pub display: String,
    pub source: Option<CString>,
    /// Bind this path of the container instead, resolved inside the rootfs (`proc/sys`).
    pub source_in_root: Option<CString>,
    /// Cumulative prefixes of the target, relative to the rootfs ("etc", "etc/hosts").
    pub prefixes: Vec<CString>,
    /// The components of the target ("etc", "hosts").
    pub names: Vec<CString>,
    pub kind: TargetKind,
    pub fstype: Option<CString>,
    pub flags: c_ulong,
    pub data: Option<CString>,
    /// Remount read-only after a bind mount.
    pub read_only: bool,
    /// Skip the mount when its target is missing and cannot be created.
    pub optional: bool,
    /// If the mount fails with EPERM (sysfs in a user namespace without a network
    /// namespace), bind this host path recursively instead.
    pub fallback_rbind: Option<CString>,
    /// Never create the target (kernel file systems): skip the mount when it is missing.
    pub must_exist: bool,
}

/// A symlink created inside the container's `/dev` tmpfs.
#[derive(Debug)]
pub(super) struct SymlinkOp {
    pub target: CString,
    /// Its name in `/dev`, e.g. "fd".
    pub name: CString,
}

/// Everything the child needs, prepared before `clone`.
pub(super) struct Plan {
    pub rootfs: CString,
    pub hostname: CString,
    pub mounts: Vec<MountOp>,
    pub symlinks: Vec<SymlinkOp>,
    pub read_only: bool,
    pub loopback: bool,
    /// In a user namespace: become its root first (with `--private-users` berth's own
    /// ids are not mapped, and files must be created as a mapped id).
    pub user_namespace: bool,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub set_groups: bool,
    /// Bit n set: keep capability n.
    pub capabilities: u64,
    pub last_capability: u32,
    pub rlimits: Vec<(u32, libc::rlimit)>,
    pub no_new_privileges: bool,
    /// SIGKILL the workload when berth dies (`PR_SET_PDEATHSIG`).
    pub die_with_parent: bool,
    /// Paths to try for `args[0]`, in order.
    pub exec_candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    pub envp_ptrs: Vec<*const c_char>,
    /// The pty slave, when the process gets a terminal.
    pub tty: Option<RawFd>,
    /// `/dev/null`, when the process does not keep stdin.
    pub null_stdin: Option<RawFd>,
}

impl Plan {
    /// Fill the pointer arrays; call once the strings will not move any more.
    pub(super) fn seal(&mut self) {
        self.argv_ptrs = self.argv.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        self.envp_ptrs = self.envp.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    }
}

/// The file descriptors of the parent/child handshake.
pub(super) struct ChildFds {
    /// The parent writes one byte once uid maps and cgroups are in place.
    pub sync_read: RawFd,
    /// The parent's ends, which the child closes first: then a dead parent shows as EOF
    /// on `sync_read` and as a pipe without readers on `error_write`.
    pub sync_write: RawFd,
    pub error_read: RawFd,
    /// Close-on-exec; a [`ChildFailure`] goes here.
    pub error_write: RawFd,
}

fn errno() -> i32 {
    // SAFETY: reading the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// `/proc/self/fd/N` in a stack buffer: mount(2) targets given as file descriptors.
struct FdPath {
    buf: [u8; 32],
}

impl FdPath {
    fn new(fd: RawFd) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd as u32;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[prefix.len() + i] = digits[len - 1 - i];
        }
        FdPath { buf }
    }

    fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
}

/// A failure to report: (step, index, errno).
type Fail = (Step, u32, i32);

fn check(ret: libc::c_int, step: Step, index: u32) -> Result<libc::c_int, Fail> {
    if ret < 0 { Err((step, index, errno())) } else { Ok(ret) }
}

/// `struct open_how` of openat2(2) (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2_in_root(root: RawFd, path: &CStr, flags: u64) -> Result<RawFd, i32> {
    let how = OpenHow {
        flags: flags | libc::O_CLOEXEC as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is NUL-terminated and `how` lives across the call.
    let fd =
        unsafe { libc::syscall(libc::SYS_openat2, root, path.as_ptr(), &how as *const OpenHow, size_of::<OpenHow>()) };
    if fd < 0 { Err(errno()) } else { Ok(fd as RawFd) }
}

fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this code opened.
    unsafe { libc::close(fd) };
}

/// Open the mount target inside the rootfs (O_PATH), creating missing components.
/// `Err(errno)` when it is missing and cannot be created.
fn open_target(root: RawFd, op: &MountOp) -> Result<RawFd, i32> {
    let last = op.prefixes.len() - 1;
    if op.must_exist {
        return openat2_in_root(root, &op.prefixes[last], libc::O_PATH as u64);
    }
    for i in 0..=last {
        match openat2_in_root(root, &op.prefixes[i], libc::O_PATH as u64) {
            Ok(fd) if i == last => return Ok(fd),
            Ok(fd) => close(fd),
            Err(libc::ENOENT) => {
                let parent = if i == 0 {
                    // SAFETY: duplicating a descriptor this process owns.
                    unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) }
                } else {
                    openat2_in_root(root, &op.prefixes[i - 1], (libc::O_PATH | libc::O_DIRECTORY) as u64)?
                };
                if parent < 0 {
                    return Err(errno());
                }
                let name = op.names[i].as_ptr();
                // SAFETY: `parent` is open and `name` NUL-terminated; O_EXCL|O_NOFOLLOW
                // never follows an existing (dangling) symlink.
                let ret = unsafe {
                    if i == last && op.kind == TargetKind::File {
                        let fd = libc::openat(
                            parent,
                            name,
                            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd >= 0 {
                            libc::close(fd);
                        }
                        fd
                    } else {
                        libc::mkdirat(parent, name, 0o755)
                    }
                };
                let err = errno();
                close(parent);
                if ret < 0 && err != libc::EEXIST {
                    return Err(err);
                }
                if i == last {
                    return openat2_in_root(root, &op.prefixes[i], libc::O_PATH as u64);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(libc::EINVAL)
}

/// The mount flags a bind remount must keep (they are locked in a user namespace).
fn locked_flags(fd: RawFd) -> c_ulong {
    // SAFETY: statvfs is plain data; all zeroes is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` outlives the call.
    if unsafe { libc::fstatvfs(fd, &mut st) } < 0 {
        return 0;
    }
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    flags
}

fn remount_read_only(fd: RawFd) -> libc::c_int {
    let path = FdPath::new(fd);
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked_flags(fd);
    // SAFETY: all pointers are NUL-terminated or null.
    unsafe { libc::mount(std::ptr::null(), path.as_ptr(), std::ptr::null(), flags, std::ptr::null()) }
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

fn do_mount(root: RawFd, index: u32, op: &MountOp) -> Result<(), Fail> {
    let target = match open_target(root, op) {
        Ok(fd) => fd,
        Err(_) if op.optional => return Ok(()),
        Err(e) => return Err((Step::MountPoint, index, e)),
    };
    let path = FdPath::new(target);
    let mut source_fd = None;
    if let Some(rel) = &op.source_in_root {
        match openat2_in_root(root, rel, libc::O_PATH as u64) {
            Ok(fd) => source_fd = Some(fd),
            Err(e) => {
                close(target);
                return Err((Step::Mount, index, e));
            }
        }
    }
    let source_path = source_fd.map(FdPath::new);
    let source = source_path.as_ref().map_or(opt_ptr(&op.source), FdPath::as_ptr);
    // SAFETY: all pointers are NUL-terminated or null.
    let mut ret =
        unsafe { libc::mount(source, path.as_ptr(), opt_ptr(&op.fstype), op.flags, opt_ptr(&op.data).cast()) };
    if let Some(fd) = source_fd {
        close(fd);
    }
    let mut read_only = op.read_only;
    if ret < 0
        && errno() == libc::EPERM
        && let Some(fallback) = &op.fallback_rbind
    {
        // SAFETY: as above.
        ret = unsafe {
            libc::mount(
                fallback.as_ptr(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            )
        };
        read_only = true;
    }
    let err = errno();
    close(target);
    if ret < 0 {
        return Err((Step::Mount, index, err));
    }
    if read_only {
        // Reopen: the new descriptor names the mount just made, not the directory under it.
        let mounted = open_target(root, op).map_err(|e| (Step::RemountReadOnly, index, e))?;
        let ret = remount_read_only(mounted);
        let err = errno();
        close(mounted);
        if ret < 0 {
            return Err((Step::RemountReadOnly, index, err));
        }
    }
    Ok(())
}

fn bring_up_loopback() -> Result<(), Fail> {
    // SAFETY: socket(2) with integer arguments.
    let s = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }, Step::Loopback, 0)?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name[0] = b'l' as c_char;
    ifr.ifr_name[1] = b'o' as c_char;
    // SAFETY: SIOCGIFFLAGS reads into the ifreq, which names "lo" and outlives the call.
    let r = unsafe { libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) };
    if r < 0 {
        let e = errno();
        close(s);
        return Err((Step::Loopback, 0, e));
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq, which outlives the call.
    let r = unsafe { libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr) };
    let e = errno();
    close(s);
    if r < 0 {
        return Err((Step::Loopback, 0, e));
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn set_capabilities(mask: u64) -> libc::c_int {
    let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let low = mask as u32;
    let high = (mask >> 32) as u32;
    let data = [
        CapData { effective: low, permitted: low, inheritable: low },
        CapData { effective: high, permitted: high, inheritable: high },
    ];
    // SAFETY: capset with a v3 header and two data words, as the ABI requires.
    unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) as libc::c_int }
}

/// Everything between `clone` and `execve`. Never returns.
pub(super) fn run(plan: &Plan, fds: &ChildFds) -> ! {
    let failure = match setup_and_exec(plan, fds) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let record = ChildFailure { step: failure.0 as u32, index: failure.1, errno: failure.2 }.to_bytes();
    // SAFETY: writing a stack buffer of its own length to our pipe.
    unsafe { libc::write(fds.error_write, record.as_ptr().cast(), record.len()) };
    // SAFETY: leaving without running destructors or atexit handlers, as a forked child must.
    unsafe { libc::_exit(127) }
}

/// Die with berth: a container must not outlive the `berth run` that supervises it (and
/// whose shared store lock keeps its snapshots from `gc`), even when berth is killed
/// outright. The kernel clears the setting when credentials change, so it is set again
/// right before `execve`. False if the parent is gone already.
fn die_with_parent(error_write: RawFd) -> bool {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0) };
    // The parent reads the error pipe until execve: a pipe without readers polls as
    // POLLERR, so a parent that died before the prctl is noticed here.
    let mut pfd = libc::pollfd { fd: error_write, events: libc::POLLOUT, revents: 0 };
    // SAFETY: polling one pollfd on the stack, without waiting.
    unsafe { libc::poll(&mut pfd, 1, 0) };
    pfd.revents & libc::POLLERR == 0
}

fn setup_and_exec(plan: &Plan, fds: &ChildFds) -> Result<std::convert::Infallible, Fail> {
    close(fds.sync_write);
    close(fds.error_read);
    if plan.die_with_parent && !die_with_parent(fds.error_write) {
        return Err((Step::WaitParent, 1, libc::ESRCH));
    }
    wait_for_parent(fds)?;
    if plan.user_namespace {
        become_namespace_root()?;
    }
    set_hostname(&plan.hostname)?;
    if plan.loopback {
        bring_up_loopback()?;
    }
    let root = mount_rootfs(plan)?;
    enter_rootfs(root)?;
    // As runc and crun do, create a missing working directory: images name one that
    // no layer holds. Inside the new root, so no path can lead out.
    make_dirs(&plan.cwd);
    set_up_stdio(plan)?;
    limit_process(plan)?;
    become_user(plan)?;
    // setresuid/setresgid cleared the parent-death signal: set it again.
    if plan.die_with_parent && !die_with_parent(fds.error_write) {
        return Err((Step::WaitParent, 2, libc::ESRCH));
    }
    exec(plan)
}

/// Wait for the parent: uid/gid maps written, cgroup joined. EOF means it gave up.
fn wait_for_parent(fds: &ChildFds) -> Result<(), Fail> {
    let mut byte = 0u8;
    // SAFETY: reading one byte into a stack variable from a descriptor we own.
    let n = unsafe { libc::read(fds.sync_read, (&mut byte as *mut u8).cast(), 1) };
    if n != 1 {
        return Err((Step::WaitParent, 0, if n < 0 { errno() } else { libc::EPIPE }));
    }
    close(fds.sync_read);
    Ok(())
}

/// In a user namespace, become its root first: berth's own ids may not be mapped
/// (`--private-users`), and mount points must be created as a mapped id.
fn become_namespace_root() -> Result<(), Fail> {
    // SAFETY: plain system calls on integers.
    check(unsafe { libc::setresgid(0, 0, 0) }, Step::Gid, 1)?;
    // SAFETY: as above.
    check(unsafe { libc::setresuid(0, 0, 0) }, Step::Uid, 1)?;
    Ok(())
}

fn set_hostname(hostname: &CStr) -> Result<(), Fail> {
    // SAFETY: the pointer and length describe `hostname`'s bytes.
    check(unsafe { libc::sethostname(hostname.as_ptr(), hostname.to_bytes().len()) }, Step::Hostname, 0)?;
    Ok(())
}

/// Make every mount private, bind the rootfs onto itself, mount what the plan lists in
/// it and create the `/dev` symlinks. Returns an `O_PATH` descriptor of the rootfs.
fn mount_rootfs(plan: &Plan) -> Result<RawFd, Fail> {
    let none = std::ptr::null();
    // SAFETY: a NUL-terminated target and null for the unused arguments.
    let ret = unsafe { libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) };
    check(ret, Step::MakePrivate, 0)?;
    let rootfs = plan.rootfs.as_ptr();
    // SAFETY: NUL-terminated source and target from the plan; null type and data.
    let ret = unsafe { libc::mount(rootfs, rootfs, none, libc::MS_BIND | libc::MS_REC, std::ptr::null()) };
    check(ret, Step::BindRootfs, 0)?;
    // SAFETY: a NUL-terminated path from the plan.
    let root =
        check(unsafe { libc::open(rootfs, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) }, Step::OpenRootfs, 0)?;
    if plan.read_only {
        // Before any mount point is created: a read-only rootfs is never written.
        check(remount_read_only(root), Step::RootfsReadOnly, 0)?;
    }
    for (i, op) in plan.mounts.iter().enumerate() {
        do_mount(root, i as u32, op)?;
    }
    // Relative to /dev resolved inside the rootfs (the tmpfs just mounted there).
    let dev = openat2_in_root(root, c"dev", (libc::O_PATH | libc::O_DIRECTORY) as u64)
        .map_err(|e| (Step::Symlink, u32::MAX, e))?;
    for (i, link) in plan.symlinks.iter().enumerate() {
        // SAFETY: `dev` is open; target and name are NUL-terminated strings of the plan.
        let ret = unsafe { libc::symlinkat(link.target.as_ptr(), dev, link.name.as_ptr()) };
        if ret < 0 && errno() != libc::EEXIST {
            return Err((Step::Symlink, i as u32, errno()));
        }
    }
    close(dev);
    Ok(root)
}

/// `pivot_root(".", ".")` stacks the old root on the new one; detaching it leaves only
/// the rootfs (runc's trick: no put_old directory needed). Closes `root`.
fn enter_rootfs(root: RawFd) -> Result<(), Fail> {
    // SAFETY: `root` is an open directory descriptor.
    check(unsafe { libc::fchdir(root) }, Step::PivotRoot, 0)?;
    // SAFETY: two NUL-terminated paths.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } as libc::c_int;
    check(ret, Step::PivotRoot, 1)?;
    // SAFETY: a NUL-terminated path.
    check(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) }, Step::PivotRoot, 2)?;
    // SAFETY: a NUL-terminated path.
    check(unsafe { libc::chdir(c"/".as_ptr()) }, Step::PivotRoot, 3)?;
    close(root);
    Ok(())
}

/// A session of its own (^C on berth's terminal reaches berth, which forwards it), and
/// the terminal or `/dev/null` as the standard descriptors.
fn set_up_stdio(plan: &Plan) -> Result<(), Fail> {
    // SAFETY: no arguments; fails only if already a group leader, which a fresh child is not.
    unsafe { libc::setsid() };
    if let Some(tty) = plan.tty {
        // SAFETY: `tty` is the open pty slave of the plan.
        check(unsafe { libc::ioctl(tty, libc::TIOCSCTTY, 0) }, Step::Stdio, 0)?;
        for target in 0..3 {
            // SAFETY: duplicating an open descriptor onto 0, 1 or 2.
            check(unsafe { libc::dup2(tty, target) }, Step::Stdio, 1)?;
        }
    } else if let Some(null) = plan.null_stdin {
        // SAFETY: duplicating an open descriptor onto 0.
        check(unsafe { libc::dup2(null, 0) }, Step::Stdio, 2)?;
    }
    Ok(())
}

/// Resource limits, no_new_privs, and the capability bounding set.
fn limit_process(plan: &Plan) -> Result<(), Fail> {
    for (i, (resource, limit)) in plan.rlimits.iter().enumerate() {
        // SAFETY: `limit` is a valid rlimit of the plan.
        check(unsafe { libc::setrlimit(*resource as _, limit) }, Step::Rlimit, i as u32)?;
    }
    if plan.no_new_privileges {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }, Step::NoNewPrivs, 0)?;
    }
    for cap in 0..=plan.last_capability.min(63) {
        if plan.capabilities & (1u64 << cap) == 0 {
            // SAFETY: prctl with integer arguments.
            let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0) };
            if ret < 0 && errno() != libc::EINVAL {
                return Err((Step::BoundingSet, cap, errno()));
            }
        }
    }
    Ok(())
}

/// Groups, gid, uid, then the capabilities root keeps, then the working directory (as
/// root, chdir could cross directories the user could not).
fn become_user(plan: &Plan) -> Result<(), Fail> {
    if plan.set_groups {
        // SAFETY: the pointer and length describe the plan's group list.
        check(unsafe { libc::setgroups(plan.groups.len(), plan.groups.as_ptr()) }, Step::Groups, 0)?;
    }
    // SAFETY: plain system calls on integers.
    check(unsafe { libc::setresgid(plan.gid, plan.gid, plan.gid) }, Step::Gid, 0)?;
    // SAFETY: as above.
    check(unsafe { libc::setresuid(plan.uid, plan.uid, plan.uid) }, Step::Uid, 0)?;
    if plan.uid == 0 {
        check(set_capabilities(plan.capabilities), Step::Capabilities, 0)?;
    }
    // SAFETY: a NUL-terminated path from the plan.
    check(unsafe { libc::chdir(plan.cwd.as_ptr()) }, Step::Workdir, 0)?;
    Ok(())
}

/// Unblock signals, close inherited descriptors on exec, and exec the first candidate
/// that exists. Returns only on failure.
fn exec(plan: &Plan) -> Result<std::convert::Infallible, Fail> {
    // berth blocked the forwarded signals; the workload starts with none blocked.
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    // Descriptors berth inherited must not leak into the container.
    // SAFETY: close_range with integer arguments; it only sets close-on-exec flags.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    let mut last_errno = libc::ENOENT;
    for (i, candidate) in plan.exec_candidates.iter().enumerate() {
        // SAFETY: a NUL-terminated path, and argv/envp arrays of NUL-terminated strings
        // ending in null (sealed by `Plan::seal`, alive for the whole call).
        unsafe { libc::execve(candidate.as_ptr(), plan.argv_ptrs.as_ptr(), plan.envp_ptrs.as_ptr()) };
        let e = errno();
        match e {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => last_errno = e,
            _ => return Err((Step::Exec, i as u32, e)),
        }
    }
    Err((Step::Exec, u32::MAX, last_errno))
}

/// `mkdir -p` of an absolute path, without allocating (this runs between fork and exec).
/// Failures are left to the `chdir` that follows, which reports them.
fn make_dirs(path: &CStr) {
    let bytes = path.to_bytes();
    let mut buf = [0u8; 4096];
    if bytes.len() >= buf.len() {
        return;
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    for end in 1..=bytes.len() {
        if end == bytes.len() || bytes[end] == b'/' {
            buf[end] = 0;
            // SAFETY: buf is NUL-terminated at `end`.
            unsafe { libc::mkdir(buf.as_ptr().cast(), 0o755) };
            buf[end] = bytes.get(end).copied().unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_format_without_allocating() {
        let p = FdPath::new(1234);
        // SAFETY: FdPath always leaves a NUL after the digits.
        let s = unsafe { CStr::from_ptr(p.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "/proc/self/fd/1234");
        let p = FdPath::new(0);
        assert_eq!(unsafe { CStr::from_ptr(p.as_ptr()) }.to_str().unwrap(), "/proc/self/fd/0");
    }

    #[test]
    fn failures_round_trip() {
        let f = ChildFailure { step: Step::Mount as u32, index: 3, errno: libc::EPERM };
        assert_eq!(ChildFailure::from_bytes(&f.to_bytes()), f);
        assert_eq!(Step::from_u32(Step::Exec as u32), Some(Step::Exec));
        assert_eq!(Step::from_u32(0), None);
    }
}
