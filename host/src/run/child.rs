//! The child side of `clone`: from a fresh set of namespaces to `execve`.
//!
//! berth may have other threads, so after `clone` only async-signal-safe work is allowed:
//! no allocation, no locks, no formatting. Everything this code reads was prepared by the
//! parent in a [`Plan`] (C strings, pointer arrays, file descriptors); it only makes
//! system calls. On failure it writes one [`ChildFailure`] record to the error pipe and
//! exits; on success `execve` closes that pipe (close-on-exec), which the parent sees as EOF.
//!
//! A container that is *created* rather than run (the OCI runtime's `create`) reports
//! [`READY`] on that pipe instead, closes it, and blocks on its exec FIFO until `start`
//! writes a byte there; only then does it run its startContainer hooks and `execve`.
//! Failures from then on have no one to report to and go to the container's stderr.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::{c_char, c_ulong};

use super::container::{CapabilitySets, DeviceNode, RootReadOnly, SeccompProgram, TargetKind};

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
    CgroupNamespace,
    Hostname,
    Domainname,
    MakePrivate,
    BindRootfs,
    OpenRootfs,
    RootfsReadOnly,
    MountPoint,
    Mount,
    RemountReadOnly,
    Propagation,
    Symlink,
    Device,
    Sysctl,
    Mask,
    Loopback,
    PivotRoot,
    Workdir,
    Stdio,
    AppArmor,
    Personality,
    Rlimit,
    NoNewPrivs,
    BoundingSet,
    Groups,
    Gid,
    Uid,
    Capabilities,
    Seccomp,
    WaitStart,
    StartHook,
    Exec,
);

impl Step {
    pub(super) fn from_u32(n: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == n)
    }
}

/// The record the child writes before it gives up: 12 bytes, native endian. The same
/// record with `step` [`MOUNTED`] or [`READY`] is a notice, not a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChildFailure {
    pub step: u32,
    pub index: u32,
    pub errno: i32,
}

/// Notice: the mounts are made; the child waits for a byte before `pivot_root`.
pub(super) const MOUNTED: u32 = 0xffff_0001;
/// Notice: set up, waiting on the exec FIFO (the error pipe closes after this).
pub(super) const READY: u32 = 0xffff_0002;

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

/// One mount onto a path inside the rootfs.
#[derive(Debug)]
pub(super) struct MountOp {
    pub source: Option<CString>,
    /// Bind this path of the container instead, resolved inside the rootfs (`proc/sys`).
    pub source_in_root: Option<CString>,
    pub kind: TargetKind,
    pub fstype: Option<CString>,
    pub flags: c_ulong,
    pub data: Option<CString>,
    /// Remount a bind with these flags afterwards (`MS_RDONLY`, …); 0: none.
    pub remount: c_ulong,
    /// Then set this propagation; 0: none.
    pub propagation: c_ulong,
    /// Skip the mount when its target is missing and cannot be created.
    pub optional: bool,
    /// If the mount fails with EPERM (sysfs in a user namespace without a network
    /// namespace), bind this host path recursively, read-only, instead.
    pub fallback_rbind: Option<CString>,
    /// Never create the target (kernel file systems): skip the mount when it is missing.
    pub must_exist: bool,
}

/// What the child does at one path.
#[derive(Debug)]
pub(super) enum FsAction {
    Mount(MountOp),
    Symlink { target: CString },
    Device(DeviceNode),
    Sysctl { value: CString },
    Mask,
}

/// One file-system step at a path inside the rootfs.
#[derive(Debug)]
pub(super) struct FsOp {
    /// For messages: the path inside the container.
    pub display: String,
    /// Cumulative prefixes of the path, relative to the rootfs ("etc", "etc/hosts").
    pub prefixes: Vec<CString>,
    /// The components of the path ("etc", "hosts").
    pub names: Vec<CString>,
    pub action: FsAction,
}

/// A startContainer hook, as the child runs it.
pub(super) struct HookPlan {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    pub envp_ptrs: Vec<*const c_char>,
    /// Milliseconds; -1 waits forever.
    pub timeout_ms: i32,
}

/// Everything the child needs, prepared before `clone`.
pub(super) struct Plan {
    pub rootfs: CString,
    pub root_propagation: c_ulong,
    pub read_only: RootReadOnly,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    /// unshare a cgroup namespace once the parent has put the child in its cgroup.
    pub cgroup_namespace: bool,
    pub fs: Vec<FsOp>,
    pub loopback: bool,
    /// In a user namespace: become its root first (with `--private-users` berth's own
    /// ids are not mapped, and files must be created as a mapped id).
    pub user_namespace: bool,
    /// Report [`MOUNTED`] and wait for the parent before `pivot_root`.
    pub pause_after_mounts: bool,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub set_groups: bool,
    pub umask: Option<u32>,
    pub capabilities: CapabilitySets,
    pub last_capability: u32,
    pub rlimits: Vec<(u32, libc::rlimit)>,
    pub no_new_privileges: bool,
    /// SIGKILL the workload when berth dies (`PR_SET_PDEATHSIG`).
    pub die_with_parent: bool,
    /// `exec <profile>` for `/proc/thread-self/attr/apparmor/exec`.
    pub apparmor_exec: Option<CString>,
    pub personality: Option<c_ulong>,
    pub seccomp: Option<SeccompProgram>,
    /// Paths to try for `args[0]`, in order.
    pub exec_candidates: Vec<CString>,
    /// Find the program before waiting for `start`, so `create` reports a missing one.
    pub check_exec: bool,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    pub envp_ptrs: Vec<*const c_char>,
    /// The pty slave, when the process gets a terminal.
    pub tty: Option<RawFd>,
    /// `/dev/null`, when the process does not keep stdin.
    pub null_stdin: Option<RawFd>,
    /// A created container: report [`READY`], then wait for a byte on this FIFO
    /// (opened read-write, so it never sees end-of-file).
    pub exec_fifo: Option<RawFd>,
    pub start_hooks: Vec<HookPlan>,
    /// The state JSON the start hooks read on stdin (a memfd the parent fills).
    pub hook_state: Option<RawFd>,
    /// The first descriptor closed on exec (3, or more with preserved descriptors).
    pub close_from: u32,
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

impl Plan {
    /// Fill the pointer arrays; call once the strings will not move any more.
    pub(super) fn seal(&mut self) {
        self.argv_ptrs = null_terminated(&self.argv);
        self.envp_ptrs = null_terminated(&self.envp);
        for hook in &mut self.start_hooks {
            hook.argv_ptrs = null_terminated(&hook.argv);
            hook.envp_ptrs = null_terminated(&hook.envp);
        }
    }
}

/// The file descriptors of the parent/child handshake.
pub(super) struct ChildFds {
    /// The parent writes one byte once uid maps and cgroups are in place (and another
    /// after [`MOUNTED`]).
    pub sync_read: RawFd,
    /// The parent's ends, which the child closes first: then a dead parent shows as EOF
    /// on `sync_read` and as a pipe without readers on `error_write`.
    pub sync_write: RawFd,
    pub error_read: RawFd,
    /// Close-on-exec; a [`ChildFailure`] goes here. -1 once closed after [`READY`].
    pub error_write: RawFd,
}

fn errno() -> i32 {
    // SAFETY: reading the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// A decimal number after a fixed prefix, in a stack buffer, NUL-terminated.
struct NumberedPath {
    buf: [u8; 48],
    len: usize,
}

impl NumberedPath {
    fn new(prefix: &[u8], n: u32) -> NumberedPath {
        let mut buf = [0u8; 48];
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = n;
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
        NumberedPath { buf, len: prefix.len() + len }
    }

    fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `/proc/self/fd/N` in a stack buffer: mount(2) targets given as file descriptors.
struct FdPath(NumberedPath);

impl FdPath {
    fn new(fd: RawFd) -> FdPath {
        FdPath(NumberedPath::new(b"/proc/self/fd/", fd as u32))
    }

    fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr()
    }
}

/// A failure to report: (step, index, errno).
type Fail = (Step, u32, i32);

/// All three user ids, by the raw system call. glibc's `setresuid` applies the change
/// to every thread it knows of, waiting for each (setxid): this child of a raw `clone`
/// of a threaded process still lists the parent's threads, and one that was being
/// created at the clone is waited for forever (a lazy run's FUSE and fetch threads).
/// The child has one thread, so the kernel's per-thread call is the whole change.
fn setresuid(uid: u32) -> libc::c_int {
    // SAFETY: a system call on integers.
    unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) as libc::c_int }
}

/// All three group ids; see [`setresuid`].
fn setresgid(gid: u32) -> libc::c_int {
    // SAFETY: a system call on integers.
    unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) as libc::c_int }
}

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

/// Open (O_PATH) the parent directory of `op`'s path inside the rootfs, creating missing
/// directories when `create`.
fn open_parent(root: RawFd, op: &FsOp, create: bool) -> Result<RawFd, i32> {
    let last = op.prefixes.len() - 1;
    if last == 0 {
        // SAFETY: duplicating a descriptor this process owns.
        let fd = unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) };
        return if fd < 0 { Err(errno()) } else { Ok(fd) };
    }
    let kind = if create { Some(TargetKind::Dir) } else { None };
    open_path(root, &op.prefixes[..last], &op.names[..last], kind)
}

/// Open (O_PATH) a path inside the rootfs given as cumulative `prefixes` and `names`.
/// With `create`, missing components are made: directories, and the last one of that
/// kind. `Err(errno)` when it is missing and cannot be created.
fn open_path(root: RawFd, prefixes: &[CString], names: &[CString], create: Option<TargetKind>) -> Result<RawFd, i32> {
    let last = prefixes.len() - 1;
    let Some(kind) = create else {
        return openat2_in_root(root, &prefixes[last], libc::O_PATH as u64);
    };
    for i in 0..=last {
        match openat2_in_root(root, &prefixes[i], libc::O_PATH as u64) {
            Ok(fd) if i == last => return Ok(fd),
            Ok(fd) => close(fd),
            Err(libc::ENOENT) => {
                let parent = if i == 0 {
                    // SAFETY: duplicating a descriptor this process owns.
                    unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) }
                } else {
                    openat2_in_root(root, &prefixes[i - 1], (libc::O_PATH | libc::O_DIRECTORY) as u64)?
                };
                if parent < 0 {
                    return Err(errno());
                }
                let name = names[i].as_ptr();
                // SAFETY: `parent` is open and `name` NUL-terminated; O_EXCL|O_NOFOLLOW
                // never follows an existing (dangling) symlink.
                let ret = unsafe {
                    if i == last && kind == TargetKind::File {
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
                    return openat2_in_root(root, &prefixes[i], libc::O_PATH as u64);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(libc::EINVAL)
}

/// Open (O_PATH) a mount target inside the rootfs, creating missing components unless
/// it must exist.
fn open_target(root: RawFd, op: &FsOp, mount: &MountOp) -> Result<RawFd, i32> {
    let create = (!mount.must_exist).then_some(mount.kind);
    open_path(root, &op.prefixes, &op.names, create)
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

/// Remount the bind mount at `fd` with `flags` added to the ones it must keep.
fn remount_bind(fd: RawFd, flags: c_ulong) -> libc::c_int {
    let path = FdPath::new(fd);
    let flags = libc::MS_BIND | libc::MS_REMOUNT | flags | locked_flags(fd);
    // SAFETY: all pointers are NUL-terminated or null.
    unsafe { libc::mount(std::ptr::null(), path.as_ptr(), std::ptr::null(), flags, std::ptr::null()) }
}

fn remount_read_only(fd: RawFd) -> libc::c_int {
    remount_bind(fd, libc::MS_RDONLY)
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

fn do_mount(root: RawFd, index: u32, op: &FsOp, m: &MountOp) -> Result<(), Fail> {
    let target = match open_target(root, op, m) {
        Ok(fd) => fd,
        Err(_) if m.optional => return Ok(()),
        Err(e) => return Err((Step::MountPoint, index, e)),
    };
    let path = FdPath::new(target);
    let mut source_fd = None;
    if let Some(rel) = &m.source_in_root {
        match openat2_in_root(root, rel, libc::O_PATH as u64) {
            Ok(fd) => source_fd = Some(fd),
            Err(e) => {
                close(target);
                return Err((Step::Mount, index, e));
            }
        }
    }
    let source_path = source_fd.map(FdPath::new);
    let source = source_path.as_ref().map_or(opt_ptr(&m.source), FdPath::as_ptr);
    // SAFETY: all pointers are NUL-terminated or null.
    let mut ret = unsafe { libc::mount(source, path.as_ptr(), opt_ptr(&m.fstype), m.flags, opt_ptr(&m.data).cast()) };
    if let Some(fd) = source_fd {
        close(fd);
    }
    let mut remount = m.remount;
    if ret < 0
        && errno() == libc::EPERM
        && let Some(fallback) = &m.fallback_rbind
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
        remount |= libc::MS_RDONLY;
    }
    let err = errno();
    close(target);
    if ret < 0 {
        return Err((Step::Mount, index, err));
    }
    if remount != 0 || m.propagation != 0 {
        // Reopen: the new descriptor names the mount just made, not the directory under it.
        let mounted = open_target(root, op, m).map_err(|e| (Step::RemountReadOnly, index, e))?;
        if remount != 0 {
            let ret = remount_bind(mounted, remount);
            if ret < 0 {
                let err = errno();
                close(mounted);
                return Err((Step::RemountReadOnly, index, err));
            }
        }
        if m.propagation != 0 {
            let path = FdPath::new(mounted);
            // SAFETY: a NUL-terminated target; null source, type and data.
            let ret = unsafe {
                libc::mount(std::ptr::null(), path.as_ptr(), std::ptr::null(), m.propagation, std::ptr::null())
            };
            if ret < 0 {
                let err = errno();
                close(mounted);
                return Err((Step::Propagation, index, err));
            }
        }
        close(mounted);
    }
    Ok(())
}

/// A symlink inside the rootfs; an existing entry of that name is kept.
fn make_symlink(root: RawFd, index: u32, op: &FsOp, target: &CStr) -> Result<(), Fail> {
    let parent = open_parent(root, op, false).map_err(|e| (Step::Symlink, index, e))?;
    let name = &op.names[op.names.len() - 1];
    // SAFETY: `parent` is open; target and name are NUL-terminated strings of the plan.
    let ret = unsafe { libc::symlinkat(target.as_ptr(), parent, name.as_ptr()) };
    let err = errno();
    close(parent);
    if ret < 0 && err != libc::EEXIST {
        return Err((Step::Symlink, index, err));
    }
    Ok(())
}

/// A device node inside the rootfs, owned and moded as asked; an existing one is kept.
fn make_device(root: RawFd, index: u32, op: &FsOp, node: &DeviceNode) -> Result<(), Fail> {
    let parent = open_parent(root, op, true).map_err(|e| (Step::Device, index, e))?;
    let name = op.names[op.names.len() - 1].as_ptr();
    let dev = libc::makedev(node.major as u32, node.minor as u32);
    // SAFETY: `parent` is open and `name` NUL-terminated.
    let ret = unsafe { libc::mknodat(parent, name, node.file_type | node.mode, dev) };
    if ret < 0 {
        let err = errno();
        close(parent);
        return if err == libc::EEXIST { Ok(()) } else { Err((Step::Device, index, err)) };
    }
    // SAFETY: as above; the node was just made, so no symlink can stand in for it.
    let ret = unsafe {
        if libc::fchownat(parent, name, node.uid, node.gid, libc::AT_SYMLINK_NOFOLLOW) < 0 {
            -1
        } else {
            // mknod honours the umask; set the mode exactly.
            libc::fchmodat(parent, name, node.mode, 0)
        }
    };
    let err = errno();
    close(parent);
    if ret < 0 {
        return Err((Step::Device, index, err));
    }
    Ok(())
}

/// Write a sysctl through the container's procfs (mounted inside the rootfs by now).
fn write_sysctl(root: RawFd, index: u32, op: &FsOp, value: &CStr) -> Result<(), Fail> {
    let last = &op.prefixes[op.prefixes.len() - 1];
    let fd = openat2_in_root(root, last, libc::O_WRONLY as u64).map_err(|e| (Step::Sysctl, index, e))?;
    let bytes = value.to_bytes();
    // SAFETY: writing a NUL-terminated string's bytes from the plan.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let err = errno();
    close(fd);
    if n < 0 {
        return Err((Step::Sysctl, index, err));
    }
    Ok(())
}

/// Cover a path: an empty read-only tmpfs over a directory, /dev/null over the rest.
fn mask(root: RawFd, index: u32, op: &FsOp) -> Result<(), Fail> {
    let target = match open_path(root, &op.prefixes, &op.names, None) {
        Ok(fd) => fd,
        Err(libc::ENOENT) | Err(libc::ENOTDIR) => return Ok(()),
        Err(e) => return Err((Step::Mask, index, e)),
    };
    // SAFETY: stat is plain data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `target` is open and `st` outlives the call.
    if unsafe { libc::fstat(target, &mut st) } < 0 {
        let err = errno();
        close(target);
        return Err((Step::Mask, index, err));
    }
    let path = FdPath::new(target);
    // SAFETY: all pointers are NUL-terminated or null.
    let ret = unsafe {
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            libc::mount(c"tmpfs".as_ptr(), path.as_ptr(), c"tmpfs".as_ptr(), libc::MS_RDONLY, std::ptr::null())
        } else {
            libc::mount(c"/dev/null".as_ptr(), path.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null())
        }
    };
    let err = errno();
    close(target);
    if ret < 0 {
        return Err((Step::Mask, index, err));
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

fn set_capabilities(sets: &CapabilitySets) -> libc::c_int {
    let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let word = |mask: u64, high: bool| if high { (mask >> 32) as u32 } else { mask as u32 };
    let data = [false, true].map(|high| CapData {
        effective: word(sets.effective, high),
        permitted: word(sets.permitted, high),
        inheritable: word(sets.inheritable, high),
    });
    // SAFETY: capset with a v3 header and two data words, as the ABI requires.
    unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) as libc::c_int }
}

/// Write `bytes` to fd 2, ignoring failures (the last words of a created container).
fn say(bytes: &[u8]) {
    // SAFETY: writing a valid slice to stderr.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// Everything between `clone` and `execve`. Never returns.
pub(super) fn run(plan: &Plan, fds: &ChildFds) -> ! {
    let mut fds = ChildFds {
        sync_read: fds.sync_read,
        sync_write: fds.sync_write,
        error_read: fds.error_read,
        error_write: fds.error_write,
    };
    let failure = match setup_and_exec(plan, &mut fds) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let record = ChildFailure { step: failure.0 as u32, index: failure.1, errno: failure.2 };
    if fds.error_write >= 0 {
        let bytes = record.to_bytes();
        // SAFETY: writing a stack buffer of its own length to our pipe.
        unsafe { libc::write(fds.error_write, bytes.as_ptr().cast(), bytes.len()) };
    } else {
        // After READY no one reads the pipe: tell the container's stderr.
        say(b"berth: the container's process could not start: step ");
        say(NumberedPath::new(b"", record.step).as_bytes());
        say(b", errno ");
        say(NumberedPath::new(b"", record.errno as u32).as_bytes());
        say(b"\n");
    }
    let code = match (failure.0, failure.2) {
        (Step::Exec, libc::ENOENT) => 127,
        (Step::Exec, _) => 126,
        _ => 127,
    };
    // SAFETY: leaving without running destructors or atexit handlers, as a forked child must.
    unsafe { libc::_exit(code) }
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

fn setup_and_exec(plan: &Plan, fds: &mut ChildFds) -> Result<std::convert::Infallible, Fail> {
    close(fds.sync_write);
    close(fds.error_read);
    if plan.die_with_parent && !die_with_parent(fds.error_write) {
        return Err((Step::WaitParent, 1, libc::ESRCH));
    }
    wait_for_parent(fds)?;
    if plan.cgroup_namespace {
        // After the parent put us in our cgroup: that cgroup becomes the namespace's root.
        // SAFETY: unshare with an integer flag.
        check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }, Step::CgroupNamespace, 0)?;
    }
    if plan.user_namespace {
        become_namespace_root()?;
    }
    set_names(plan)?;
    if plan.loopback {
        bring_up_loopback()?;
    }
    let root = mount_rootfs(plan)?;
    if plan.pause_after_mounts {
        report(fds, MOUNTED);
        wait_for_parent(fds)?;
    }
    enter_rootfs(root)?;
    if plan.read_only == RootReadOnly::AfterMounts {
        // SAFETY: a NUL-terminated path.
        let fd = check(unsafe { libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) }, Step::RootfsReadOnly, 1)?;
        let ret = remount_read_only(fd);
        close(fd);
        check(ret, Step::RootfsReadOnly, 1)?;
    }
    // As runc and crun do, create a missing working directory: images name one that
    // no layer holds. Inside the new root, so no path can lead out.
    make_dirs(&plan.cwd);
    set_up_stdio(plan)?;
    set_persona(plan)?;
    limit_process(plan)?;
    if !plan.no_new_privileges
        && let Some(filter) = &plan.seccomp
    {
        // Without no_new_privs the filter needs CAP_SYS_ADMIN: load it before the
        // capabilities go. It must then allow what follows (setuid, capset, execve).
        load_seccomp(filter)?;
    }
    become_user(plan)?;
    // setresuid/setresgid cleared the parent-death signal: set it again.
    if plan.die_with_parent && !die_with_parent(fds.error_write) {
        return Err((Step::WaitParent, 2, libc::ESRCH));
    }
    let program = if plan.check_exec { Some(find_program(plan)?) } else { None };
    if let Some(fifo) = plan.exec_fifo {
        report(fds, READY);
        close(fds.error_write);
        fds.error_write = -1;
        wait_for_start(fifo)?;
        run_start_hooks(plan)?;
    }
    if plan.no_new_privileges
        && let Some(filter) = &plan.seccomp
    {
        // Last, so the filter never sees berth's own calls.
        load_seccomp(filter)?;
    }
    exec(plan, program)
}

/// A notice for the parent on the error pipe.
fn report(fds: &ChildFds, notice: u32) {
    let record = ChildFailure { step: notice, index: 0, errno: 0 }.to_bytes();
    // SAFETY: writing a stack buffer of its own length to our pipe.
    unsafe { libc::write(fds.error_write, record.as_ptr().cast(), record.len()) };
}

/// Wait for the parent's byte: uid/gid maps written, cgroup joined (or, after
/// [`MOUNTED`], its hooks run). EOF means it gave up.
fn wait_for_parent(fds: &ChildFds) -> Result<(), Fail> {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a stack variable from a descriptor we own.
        let n = unsafe { libc::read(fds.sync_read, (&mut byte as *mut u8).cast(), 1) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n != 1 {
            return Err((Step::WaitParent, 0, if n < 0 { errno() } else { libc::EPIPE }));
        }
        return Ok(());
    }
}

/// Block until `start` writes a byte to the exec FIFO.
fn wait_for_start(fifo: RawFd) -> Result<(), Fail> {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a stack variable from a descriptor we own.
        let n = unsafe { libc::read(fifo, (&mut byte as *mut u8).cast(), 1) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n != 1 {
            return Err((Step::WaitStart, 0, if n < 0 { errno() } else { libc::EPIPE }));
        }
        close(fifo);
        return Ok(());
    }
}

/// In a user namespace, become its root first: berth's own ids may not be mapped
/// (`--private-users`), and mount points must be created as a mapped id.
fn become_namespace_root() -> Result<(), Fail> {
    check(setresgid(0), Step::Gid, 1)?;
    check(setresuid(0), Step::Uid, 1)?;
    Ok(())
}

fn set_names(plan: &Plan) -> Result<(), Fail> {
    if let Some(hostname) = &plan.hostname {
        // SAFETY: the pointer and length describe `hostname`'s bytes.
        check(unsafe { libc::sethostname(hostname.as_ptr(), hostname.to_bytes().len()) }, Step::Hostname, 0)?;
    }
    if let Some(domainname) = &plan.domainname {
        // SAFETY: the pointer and length describe `domainname`'s bytes.
        check(unsafe { libc::setdomainname(domainname.as_ptr(), domainname.to_bytes().len()) }, Step::Domainname, 0)?;
    }
    Ok(())
}

/// Set the propagation of every mount, bind the rootfs onto itself and take the plan's
/// file-system steps in it. Returns an `O_PATH` descriptor of the rootfs.
fn mount_rootfs(plan: &Plan) -> Result<RawFd, Fail> {
    let none = std::ptr::null();
    let propagation = libc::MS_REC | plan.root_propagation;
    // SAFETY: a NUL-terminated target and null for the unused arguments.
    let ret = unsafe { libc::mount(none, c"/".as_ptr(), none, propagation, std::ptr::null()) };
    check(ret, Step::MakePrivate, 0)?;
    let rootfs = plan.rootfs.as_ptr();
    // SAFETY: NUL-terminated source and target from the plan; null type and data.
    let ret = unsafe { libc::mount(rootfs, rootfs, none, libc::MS_BIND | libc::MS_REC, std::ptr::null()) };
    check(ret, Step::BindRootfs, 0)?;
    // SAFETY: a NUL-terminated path from the plan.
    let root =
        check(unsafe { libc::open(rootfs, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) }, Step::OpenRootfs, 0)?;
    if plan.read_only == RootReadOnly::BeforeMounts {
        // Before any mount point is created: a read-only rootfs is never written.
        check(remount_read_only(root), Step::RootfsReadOnly, 0)?;
    }
    for (i, op) in plan.fs.iter().enumerate() {
        let i = i as u32;
        match &op.action {
            FsAction::Mount(m) => do_mount(root, i, op, m)?,
            FsAction::Symlink { target } => make_symlink(root, i, op, target)?,
            FsAction::Device(node) => make_device(root, i, op, node)?,
            FsAction::Sysctl { value } => write_sysctl(root, i, op, value)?,
            FsAction::Mask => mask(root, i, op)?,
        }
    }
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

/// The AppArmor profile to change to on exec, the personality and the umask.
fn set_persona(plan: &Plan) -> Result<(), Fail> {
    if let Some(exec) = &plan.apparmor_exec {
        // The container's procfs, mounted by the plan; older kernels have only attr/exec.
        let mut fd = -1;
        for path in [c"/proc/thread-self/attr/apparmor/exec", c"/proc/self/attr/exec"] {
            // SAFETY: a NUL-terminated path.
            fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd >= 0 {
                break;
            }
        }
        check(fd, Step::AppArmor, 0)?;
        let bytes = exec.to_bytes();
        // SAFETY: writing the plan's bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        let err = errno();
        close(fd);
        if n < 0 {
            return Err((Step::AppArmor, 1, err));
        }
    }
    if let Some(persona) = plan.personality {
        // SAFETY: personality with an integer argument.
        check(unsafe { libc::personality(persona) }, Step::Personality, 0)?;
    }
    if let Some(mask) = plan.umask {
        // SAFETY: umask with an integer argument; it cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) };
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
        if plan.capabilities.bounding & (1u64 << cap) == 0 {
            // SAFETY: prctl with integer arguments.
            let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0) };
            if ret < 0 && errno() != libc::EINVAL {
                return Err((Step::BoundingSet, cap, errno()));
            }
        }
    }
    Ok(())
}

fn load_seccomp(filter: &SeccompProgram) -> Result<(), Fail> {
    let program = libc::sock_fprog {
        len: filter.instructions.len() as libc::c_ushort,
        filter: filter.instructions.as_ptr().cast_mut(),
    };
    // SAFETY: the program points at the plan's instructions, alive for the call; the
    // kernel copies them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            filter.flags,
            &program as *const libc::sock_fprog,
        )
    } as libc::c_int;
    check(ret, Step::Seccomp, 0)?;
    Ok(())
}

/// Groups, gid, uid, then the capability sets, then the working directory (as root,
/// chdir could cross directories the user could not).
fn become_user(plan: &Plan) -> Result<(), Fail> {
    // Keep the permitted set across setuid; capset below sets exactly what is asked.
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }, Step::Capabilities, 1)?;
    if plan.set_groups {
        // SAFETY: the pointer and length describe the plan's group list; the raw system
        // call, as for the ids (see `setresuid`).
        let ret = unsafe { libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr()) };
        check(ret as libc::c_int, Step::Groups, 0)?;
    }
    check(setresgid(plan.gid), Step::Gid, 0)?;
    check(setresuid(plan.uid), Step::Uid, 0)?;
    check(set_capabilities(&plan.capabilities), Step::Capabilities, 0)?;
    for cap in 0..=plan.last_capability.min(63) {
        if plan.capabilities.ambient & (1u64 << cap) != 0 {
            // A capability missing from the permitted or inheritable set cannot be raised;
            // runc warns and goes on (its own `runc spec` asks for that), and so does berth.
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as c_ulong, cap as c_ulong, 0, 0) };
        }
    }
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) }, Step::Capabilities, 2)?;
    // SAFETY: a NUL-terminated path from the plan.
    check(unsafe { libc::chdir(plan.cwd.as_ptr()) }, Step::Workdir, 0)?;
    Ok(())
}

/// The first exec candidate that is an executable regular file (as `execve` would
/// find it), so a missing program fails `create` rather than the container after `start`.
fn find_program(plan: &Plan) -> Result<usize, Fail> {
    let mut last_errno = libc::ENOENT;
    for (i, candidate) in plan.exec_candidates.iter().enumerate() {
        // SAFETY: stat is plain data; all zeroes is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a stat buffer that outlives the call.
        if unsafe { libc::stat(candidate.as_ptr(), &mut st) } < 0 {
            match errno() {
                libc::ENOENT | libc::ENOTDIR => continue,
                e => {
                    last_errno = e;
                    continue;
                }
            }
        }
        // SAFETY: a NUL-terminated path.
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || unsafe { libc::access(candidate.as_ptr(), libc::X_OK) } < 0 {
            last_errno = libc::EACCES;
            continue;
        }
        return Ok(i);
    }
    Err((Step::Exec, u32::MAX, last_errno))
}

/// Run each startContainer hook as a child of the container's init, inside the
/// container, with the state JSON on stdin; fail on a non-zero exit or a timeout.
fn run_start_hooks(plan: &Plan) -> Result<(), Fail> {
    for (i, hook) in plan.start_hooks.iter().enumerate() {
        let i = i as u32;
        // SAFETY: clone without CLONE_VM behaves like fork; the child only calls
        // async-signal-safe functions on the plan's data, then execs or exits.
        let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as c_ulong, 0usize, 0usize, 0usize, 0usize) }
            as libc::pid_t;
        if pid < 0 {
            return Err((Step::StartHook, i, errno()));
        }
        if pid == 0 {
            // SAFETY: descriptors of the plan, NUL-terminated strings and null-ended
            // pointer arrays sealed by `Plan::seal`; `_exit` if exec fails.
            unsafe {
                if let Some(state) = plan.hook_state {
                    libc::dup2(state, 0);
                    libc::lseek(0, 0, libc::SEEK_SET);
                }
                libc::execve(hook.path.as_ptr(), hook.argv_ptrs.as_ptr(), hook.envp_ptrs.as_ptr());
                libc::_exit(127);
            }
        }
        wait_for_hook(pid, hook.timeout_ms).map_err(|e| (Step::StartHook, i, e))?;
    }
    Ok(())
}

/// Wait for a hook process; kill it after `timeout_ms` (-1: never). `Err(errno)` when
/// it failed (ETIMEDOUT, ECHILD for a non-zero exit).
fn wait_for_hook(pid: libc::pid_t, timeout_ms: i32) -> Result<(), i32> {
    // SAFETY: pidfd_open with integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    let mut timed_out = false;
    if pidfd >= 0 {
        let mut p = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
        loop {
            // SAFETY: polling one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            if n == 0 {
                timed_out = true;
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            break;
        }
        close(pidfd);
    }
    let mut status = 0;
    loop {
        // SAFETY: reaping our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        break;
    }
    if timed_out {
        return Err(libc::ETIMEDOUT);
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(libc::ECHILD);
    }
    Ok(())
}

/// Unblock signals, close inherited descriptors on exec, and exec `program` (an index
/// into the candidates) or the first candidate that exists. Returns only on failure.
fn exec(plan: &Plan, program: Option<usize>) -> Result<std::convert::Infallible, Fail> {
    // berth blocked the forwarded signals; the workload starts with none blocked.
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    // Descriptors berth inherited must not leak into the container.
    // SAFETY: close_range with integer arguments; it only sets close-on-exec flags.
    unsafe { libc::syscall(libc::SYS_close_range, plan.close_from, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    // Preserved descriptors may have been inherited close-on-exec.
    for fd in 3..plan.close_from {
        // SAFETY: fcntl on integers; a descriptor that is not open fails harmlessly.
        unsafe { libc::fcntl(fd as RawFd, libc::F_SETFD, 0) };
    }
    let candidates = match program {
        Some(i) => &plan.exec_candidates[i..=i],
        None => &plan.exec_candidates[..],
    };
    let mut last_errno = libc::ENOENT;
    for (i, candidate) in candidates.iter().enumerate() {
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
        // SAFETY: NumberedPath always leaves a NUL after the digits.
        let s = unsafe { CStr::from_ptr(p.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "/proc/self/fd/1234");
        let p = FdPath::new(0);
        assert_eq!(unsafe { CStr::from_ptr(p.as_ptr()) }.to_str().unwrap(), "/proc/self/fd/0");
        assert_eq!(NumberedPath::new(b"", 4_000_000_000).as_bytes(), b"4000000000");
    }

    #[test]
    fn failures_round_trip() {
        let f = ChildFailure { step: Step::Mount as u32, index: 3, errno: libc::EPERM };
        assert_eq!(ChildFailure::from_bytes(&f.to_bytes()), f);
        assert_eq!(Step::from_u32(Step::Exec as u32), Some(Step::Exec));
        assert_eq!(Step::from_u32(0), None);
        assert_eq!(Step::from_u32(READY), None);
    }
}
