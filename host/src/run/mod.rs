//! Run: launch a process in a prepared root file system, inside new namespaces.
//!
//! `run` takes a **rootfs** (a directory someone else prepared: render's overlay mount, or
//! a directory the user names with `berth run --rootfs`) and a [`RunSpec`], and nothing
//! else: it never reads the store. [`launch`] is the one entry point; [`process_from_image`]
//! turns an image's runtime config plus command-line overrides into the [`Process`] to run;
//! [`bundle::write_bundle`] writes the same [`RunSpec`] as an OCI runtime bundle for
//! runc/crun, so the two paths cannot drift. Underneath, a [`RunSpec`] becomes a
//! [`Container`] (every namespace, mount, id map, capability set and limit); the OCI
//! runtime (`crate::runtime`) builds a [`Container`] from a bundle's `config.json` and
//! calls [`create`], which sets it up through the same clone and child and leaves its init
//! waiting for `start`.
//!
//! Glossary:
//! - **rootfs**: the directory that becomes `/` for the container. berth bind-mounts it
//!   onto itself inside the container's mount namespace and `pivot_root`s into it; on the
//!   host it only ever gains mount-point files or directories that were missing (and not
//!   even those with `read_only`).
//! - **container init**: the first process in the new pid namespace. berth runs the
//!   workload *as* pid 1 (as crun and runc do), with no init of its own in between.
//! - **plan**: everything the child needs after `clone`, prepared before it (C strings,
//!   argv/envp arrays, mount lists, file descriptors), so the child only makes system calls.
//! - **created**: a container whose init is set up and blocked before `execve` on its
//!   **exec FIFO** until the OCI runtime's `start` writes a byte there (runc's design).
//! - **rootless**: berth runs as a user other than root; the container gets a user namespace
//!   that maps container uid/gid 0 to that user, and nothing else.

mod bundle;
mod caps;
mod cgroup;
mod child;
mod container;
mod device_filter;
mod error;
mod launch;
mod mounts;
mod spec;
mod users;

pub use bundle::{oci_config, write_bundle};
pub use caps::{DEFAULT_CAPABILITIES, all_capabilities, capability_name, capability_number, parse_capability};
pub use cgroup::{
    Cgroup, CgroupRequest, CgroupResources, DeviceRule, is_unified as cgroup_is_unified, pids_in as cgroup_pids,
    unified_dir as cgroup_unified_dir, v1_views as cgroup_v1_views,
};
pub use container::{
    CapabilitySets, Container, Device, DeviceNode, FsEntry, Hook, IdMap, IdMaps, Mount, NamespaceKind, Namespaces,
    RootReadOnly, SeccompProgram, TargetKind,
};
pub use device_filter::attach as attach_device_filter;
pub use error::RunError;
pub use launch::{Created, Lifecycle, SignalMask, create, launch};
pub use mounts::{DEV_SYMLINKS, DEVICES, MASKED_PATHS, READONLY_PATHS, dev_symlinks, host_devices};
pub use spec::{Overrides, parse_env_file, process_from_image};
pub use users::{UserDb, parse_user_spec};

use std::path::PathBuf;

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Everything `launch` needs besides the rootfs itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Names the container's cgroup and default hostname (`[a-z0-9]`, 12 characters).
    pub name: String,
    /// The prepared root file system (absolute).
    pub rootfs: PathBuf,
    pub process: Process,
    pub hostname: String,
    /// Host directories or files bound into the container, in order.
    pub volumes: Vec<Volume>,
    /// Mount the rootfs read-only (volumes keep their own mode; /dev, /dev/shm stay writable).
    pub read_only: bool,
    pub network: Network,
    pub user_namespace: UserNamespace,
    /// Capability numbers (see [`capability_number`]) the process keeps.
    pub capabilities: Vec<u32>,
    pub rlimits: Vec<Rlimit>,
    pub resources: Resources,
}

/// The process to run, as in the OCI runtime spec's `process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// `args[0]` is looked up in the container's `PATH` when it has no slash.
    pub args: Vec<String>,
    /// `KEY=value` strings, in order.
    pub env: Vec<String>,
    /// Absolute working directory inside the container.
    pub cwd: String,
    pub user: User,
    /// Give the process a pseudo-terminal as stdin/stdout/stderr.
    pub terminal: bool,
    /// Keep stdin; otherwise the process reads `/dev/null`.
    pub stdin: bool,
    /// `PR_SET_NO_NEW_PRIVS`: setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
}

/// Credentials inside the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// `--volume HOST:CONTAINER[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    /// Absolute path inside the container.
    pub container: String,
    pub read_only: bool,
}

/// Which network namespace the process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network (no new namespace).
    #[default]
    Host,
    /// A new, empty network namespace (loopback only, brought up).
    None,
}

/// Whether the container gets a user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserNamespace {
    /// Only when berth does not run as root: container 0 maps to the caller's uid/gid.
    #[default]
    Auto,
    /// Always: container ids `0..count` map to host ids `host_base..host_base+count`
    /// (root only; `--private-users`).
    Private { host_base: u32, count: u32 },
}

/// One `setrlimit` (resource as `RLIMIT_*` number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// cgroup limits; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<u64>,
    /// CPUs, e.g. 0.5.
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpus.is_none() && self.pids.is_none()
    }
}

/// The `RLIMIT_*` names `--ulimit` accepts (as in docker), with their numbers.
pub const RLIMIT_NAMES: &[(&str, u32)] = &[
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
    ("as", libc::RLIMIT_AS),
];

/// Parse `--ulimit name=soft[:hard]` (`unlimited` or `-1` for no limit).
pub fn parse_rlimit(text: &str) -> Result<Rlimit, RunError> {
    let bad = || RunError::BadOption {
        option: "--ulimit",
        value: text.to_string(),
        expected: "NAME=SOFT[:HARD], e.g. nofile=1024:2048",
    };
    let (name, values) = text.split_once('=').ok_or_else(bad)?;
    let resource = RLIMIT_NAMES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r).ok_or_else(bad)?;
    let value = |v: &str| -> Result<u64, RunError> {
        match v {
            "unlimited" | "-1" => Ok(libc::RLIM_INFINITY),
            _ => v.parse().map_err(|_| bad()),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (value(s)?, value(h)?),
        None => (value(values)?, value(values)?),
    };
    if soft > hard {
        return Err(bad());
    }
    Ok(Rlimit { resource, soft, hard })
}

/// Parse `--volume HOST:CONTAINER[:ro|:rw]`.
pub fn parse_volume(text: &str) -> Result<Volume, RunError> {
    let bad = || RunError::BadOption {
        option: "--volume",
        value: text.to_string(),
        expected: "HOST:CONTAINER[:ro|:rw] with absolute CONTAINER",
    };
    let mut parts = text.split(':');
    let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    let container = parts.next().filter(|c| c.starts_with('/')).ok_or_else(bad)?;
    let read_only = match parts.next() {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(_) => return Err(bad()),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    let host = std::path::absolute(host).map_err(|_| bad())?;
    Ok(Volume { host, container: container.to_string(), read_only })
}

/// Parse `--memory` sizes: bytes, or with a `k`, `m`, `g` suffix (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, RunError> {
    let bad =
        || RunError::BadOption { option: "--memory", value: text.to_string(), expected: "a size such as 512m or 2g" };
    let lower = text.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (digits, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1u64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        _ => (trimmed, 1),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(mult).filter(|&b| b > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(ExitStatus::Exited(7).code(), 7);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
    }

    #[test]
    fn rlimits_parse() {
        let r = parse_rlimit("nofile=1024:2048").unwrap();
        assert_eq!((r.resource, r.soft, r.hard), (libc::RLIMIT_NOFILE, 1024, 2048));
        assert_eq!(parse_rlimit("core=unlimited").unwrap().hard, libc::RLIM_INFINITY);
        assert!(parse_rlimit("nofile=10:5").is_err());
        assert!(parse_rlimit("bogus=1").is_err());
    }

    #[test]
    fn volumes_parse() {
        let v = parse_volume("/srv:/data:ro").unwrap();
        assert_eq!((v.host, v.container.as_str(), v.read_only), (PathBuf::from("/srv"), "/data", true));
        assert!(!parse_volume("/srv:/data").unwrap().read_only);
        assert!(parse_volume("/srv:data").is_err());
        assert!(parse_volume("/srv:/data:rx").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
    }
}
