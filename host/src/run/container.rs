//! The container as launch builds it: every namespace, mount, id map, capability set and
//! limit, at the level of the system calls that make them (runc's `configs.Config`).
//!
//! Two front ends produce one: `berth run` lowers its [`RunSpec`] ([`RunSpec::container`]),
//! and the OCI runtime translates a bundle's `config.json` (`crate::runtime`). [`launch`]
//! and [`create`] take nothing else, so both go through the same clone, the same child and
//! the same mount code.
//!
//! [`launch`]: super::launch
//! [`create`]: super::create

use std::path::PathBuf;
use std::time::Duration;

use libc::c_ulong;

use super::cgroup::{CgroupRequest, CgroupResources};
use super::mounts::{self, ContainerFiles};
use super::{Network, Process, Rlimit, RunError, RunSpec, UserNamespace};

/// Everything [`super::launch`] and [`super::create`] set up.
#[derive(Debug, Clone)]
pub struct Container {
    /// For messages.
    pub name: String,
    /// The directory that becomes `/` (absolute).
    pub rootfs: PathBuf,
    pub root_read_only: RootReadOnly,
    /// Propagation of every mount, set recursively on `/` before anything is mounted:
    /// `MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED` or `MS_UNBINDABLE`.
    pub root_propagation: c_ulong,
    /// Set in the new UTS namespace.
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub namespaces: Namespaces,
    /// The id maps of a new user namespace.
    pub id_maps: Option<IdMaps>,
    /// What the child does to the file system, in order, before `pivot_root`.
    pub fs: Vec<FsEntry>,
    pub cgroup: Option<CgroupRequest>,
    pub process: Process,
    pub capabilities: CapabilitySets,
    pub rlimits: Vec<Rlimit>,
    /// `umask(2)` before exec; `None` keeps berth's.
    pub umask: Option<u32>,
    pub oom_score_adj: Option<i32>,
    /// An AppArmor profile the process changes to on exec.
    pub apparmor_profile: Option<String>,
    /// `personality(2)` persona (`PER_LINUX`, `PER_LINUX32`).
    pub personality: Option<c_ulong>,
    /// A seccomp filter loaded just before exec.
    pub seccomp: Option<SeccompProgram>,
    /// The terminal's size, when the process gets one.
    pub console_size: Option<(u16, u16)>,
    /// Bind the process's terminal at `/dev/console` (after the other file-system steps).
    pub dev_console: bool,
    /// Stop after the mounts, before `pivot_root`, until the caller's
    /// [`Lifecycle::mounted`](super::Lifecycle::mounted) has run (OCI createRuntime hooks).
    pub pause_after_mounts: bool,
    /// Run by the container's init after `start`, before exec, inside the container
    /// (OCI startContainer hooks), with [`Lifecycle::hook_state`](super::Lifecycle::hook_state)
    /// on stdin.
    pub start_hooks: Vec<Hook>,
    /// Descriptors 3 .. 3 + N that the process inherits (`--preserve-fds`); every other
    /// descriptor above 2 is closed on exec.
    pub preserve_fds: u32,
}

/// When the rootfs becomes read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootReadOnly {
    No,
    /// Before any mount point is created, so nothing is ever written to it (`berth run`).
    BeforeMounts,
    /// After every mount, so missing mount points are created first (runc's order).
    AfterMounts,
}

/// A kind of namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceKind {
    Pid,
    Mount,
    Uts,
    Ipc,
    Network,
    User,
    Cgroup,
}

impl NamespaceKind {
    /// The `CLONE_NEW*` flag.
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            NamespaceKind::Pid => libc::CLONE_NEWPID,
            NamespaceKind::Mount => libc::CLONE_NEWNS,
            NamespaceKind::Uts => libc::CLONE_NEWUTS,
            NamespaceKind::Ipc => libc::CLONE_NEWIPC,
            NamespaceKind::Network => libc::CLONE_NEWNET,
            NamespaceKind::User => libc::CLONE_NEWUSER,
            NamespaceKind::Cgroup => libc::CLONE_NEWCGROUP,
        }
    }

    /// Its name under `/proc/PID/ns/` (the one a child is born into, for pid).
    pub fn proc_name(self) -> &'static str {
        match self {
            NamespaceKind::Pid => "pid_for_children",
            NamespaceKind::Mount => "mnt",
            NamespaceKind::Uts => "uts",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Network => "net",
            NamespaceKind::User => "user",
            NamespaceKind::Cgroup => "cgroup",
        }
    }
}

/// Which namespaces the container gets: new ones, and existing ones joined by path.
/// Anything in neither list is shared with berth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub new: Vec<NamespaceKind>,
    /// Joined before the clone (a mount or user namespace cannot be: see `crate::runtime`).
    pub join: Vec<(NamespaceKind, PathBuf)>,
}

impl Namespaces {
    pub fn creates(&self, kind: NamespaceKind) -> bool {
        self.new.contains(&kind)
    }
}

/// One line of `/proc/PID/uid_map` or `gid_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container: u32,
    pub host: u32,
    pub count: u32,
}

/// The maps of a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
    /// Rootless: `setgroups` must be denied before an unprivileged gid_map write.
    pub deny_setgroups: bool,
}

/// One step the child takes on the container's file system. Paths are absolute paths
/// inside the container, resolved inside the rootfs.
#[derive(Debug, Clone, PartialEq)]
pub enum FsEntry {
    Mount(Mount),
    /// A symlink at `path` pointing to `target`; an existing entry is kept.
    Symlink {
        path: String,
        target: String,
    },
    /// A device node made with `mknod` (an existing one is kept).
    Device(Device),
    /// Write `value` to `/proc/sys/<key with dots as slashes>` (the container's procfs).
    Sysctl {
        key: String,
        value: String,
    },
    /// Hide a path: an empty read-only tmpfs over a directory, `/dev/null` over anything
    /// else. Skipped when missing.
    Mask(String),
    /// Bind a path onto itself read-only. Skipped when missing.
    ReadOnly(String),
}

/// What a mount target is when it must be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Dir,
    File,
}

/// One `mount(2)` onto a path inside the rootfs.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// Absolute, inside the container.
    pub destination: String,
    /// A host path for a bind, the file system's source name otherwise (`proc`, `tmpfs`).
    pub source: Option<PathBuf>,
    pub fstype: Option<String>,
    /// The flags of the mount call (`MS_BIND | MS_REC` for an rbind).
    pub flags: c_ulong,
    /// File-system specific options (`mode=755,size=65536k`).
    pub data: Option<String>,
    /// After a bind: remount it with these flags (`MS_RDONLY`, `MS_NOSUID`, …); 0: none.
    pub remount: c_ulong,
    /// Then set this propagation (`MS_PRIVATE | MS_REC`, …); 0: leave it.
    pub propagation: c_ulong,
    pub target: TargetKind,
    /// Skip the mount when its target is missing and cannot be created.
    pub optional: bool,
    /// Never create the target (kernel file systems): skip the mount when it is missing.
    pub must_exist: bool,
    /// If the mount fails with EPERM (sysfs in a user namespace without a network
    /// namespace of its own), bind this host path recursively, read-only, instead.
    pub fallback_rbind: Option<PathBuf>,
}

impl Mount {
    /// A mount of `destination` with no options set.
    pub fn new(destination: impl Into<String>, target: TargetKind) -> Mount {
        Mount {
            destination: destination.into(),
            source: None,
            fstype: None,
            flags: 0,
            data: None,
            remount: 0,
            propagation: 0,
            target,
            optional: false,
            must_exist: false,
            fallback_rbind: None,
        }
    }
}

/// A device node the child creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceNode {
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub file_type: u32,
    pub major: u64,
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Absolute, inside the container.
    pub path: String,
    pub node: DeviceNode,
}

/// Capability sets as bit masks (bit n: capability n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapabilitySets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapabilitySets {
    /// `berth run`'s sets: `caps` bound the process; root holds them, anyone else none.
    pub fn for_user(caps: &[u32], uid: u32) -> CapabilitySets {
        let mask = caps.iter().filter(|c| **c < 64).fold(0u64, |m, c| m | (1 << c));
        let held = if uid == 0 { mask } else { 0 };
        CapabilitySets { bounding: mask, effective: held, permitted: held, inheritable: held, ambient: 0 }
    }
}

/// A compiled seccomp filter (classic BPF), ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone)]
pub struct SeccompProgram {
    pub instructions: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*`.
    pub flags: u32,
}

impl PartialEq for SeccompProgram {
    fn eq(&self, other: &SeccompProgram) -> bool {
        let key = |f: &libc::sock_filter| (f.code, f.jt, f.jf, f.k);
        self.flags == other.flags
            && self.instructions.len() == other.instructions.len()
            && self.instructions.iter().zip(&other.instructions).all(|(a, b)| key(a) == key(b))
    }
}

/// A program run at a point of the container's lifecycle (an OCI hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Absolute path of the program.
    pub path: PathBuf,
    /// `args[0]` included; empty means just the path.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub timeout: Option<Duration>,
}

impl RunSpec {
    /// What `berth run` sets up for this spec; `files` holds the generated `/etc` files.
    pub fn container(&self, files: &ContainerFiles) -> Result<Container, RunError> {
        let id_maps = user_maps(self)?;
        let mut new = vec![NamespaceKind::Mount, NamespaceKind::Pid, NamespaceKind::Uts, NamespaceKind::Ipc];
        if self.network == Network::None {
            new.push(NamespaceKind::Network);
        }
        if id_maps.is_some() {
            new.push(NamespaceKind::User);
        }
        let cgroup = (!self.resources.is_empty()).then(|| CgroupRequest {
            path: PathBuf::from("berth").join(&self.name),
            resources: CgroupResources::from_limits(&self.resources),
            every_hierarchy: false,
            best_effort: true,
        });
        Ok(Container {
            name: self.name.clone(),
            rootfs: self.rootfs.clone(),
            root_read_only: if self.read_only { RootReadOnly::BeforeMounts } else { RootReadOnly::No },
            root_propagation: libc::MS_PRIVATE,
            hostname: Some(self.hostname.clone()),
            domainname: None,
            namespaces: Namespaces { new, join: Vec::new() },
            fs: mounts::default_fs(self, files, id_maps.is_some())?,
            id_maps,
            cgroup,
            process: self.process.clone(),
            capabilities: CapabilitySets::for_user(&self.capabilities, self.process.user.uid),
            rlimits: self.rlimits.clone(),
            umask: None,
            oom_score_adj: None,
            apparmor_profile: None,
            personality: None,
            seccomp: None,
            console_size: None,
            dev_console: false,
            pause_after_mounts: false,
            start_hooks: Vec::new(),
            preserve_fds: 0,
        })
    }
}

/// The user namespace `berth run` creates, if any.
fn user_maps(spec: &RunSpec) -> Result<Option<IdMaps>, RunError> {
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let user = &spec.process.user;
    match spec.user_namespace {
        UserNamespace::Auto if euid == 0 => Ok(None),
        UserNamespace::Auto => {
            if user.uid != 0 || user.gid != 0 {
                return Err(RunError::UnmappedUser { uid: user.uid, gid: user.gid });
            }
            Ok(Some(IdMaps {
                uid: vec![IdMap { container: 0, host: euid, count: 1 }],
                gid: vec![IdMap { container: 0, host: egid, count: 1 }],
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
            Ok(Some(IdMaps { uid: vec![map], gid: vec![map], deny_setgroups: false }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berth_run_capabilities_are_held_by_root_only() {
        let root = CapabilitySets::for_user(&[0, 5], 0);
        assert_eq!((root.bounding, root.effective, root.permitted, root.ambient), (0b100001, 0b100001, 0b100001, 0));
        let user = CapabilitySets::for_user(&[0, 5], 1000);
        assert_eq!((user.bounding, user.effective, user.permitted), (0b100001, 0, 0));
    }
}
