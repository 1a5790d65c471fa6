//! The container's mounts, as a list the child applies in order, and the per-container
//! files (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`) they bind.
//!
//! Targets are resolved inside the rootfs (`openat2` with `RESOLVE_IN_ROOT`, then mounted
//! through `/proc/self/fd/N`), so a symlink in the image, such as `/etc/resolv.conf ->
//! /run/…`, can never redirect a mount onto the host.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use libc::c_ulong;

use super::child::{FsAction, FsOp, MountOp};
use super::container::{FsEntry, Mount, TargetKind};
use super::{RunError, RunSpec};

/// Device nodes bound from the host into the container's `/dev` tmpfs.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `/dev` symlinks every container has.
pub const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
    ("/proc/kcore", "core"),
];

/// `/etc/hosts` for a container named `hostname`.
pub fn hosts_file(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")
}

/// Kernel interfaces made read-only inside the container (docker's list).
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Kernel interfaces hidden inside the container (docker's list): files get /dev/null,
/// directories an empty read-only tmpfs.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// A directory of files generated for one container, removed when dropped.
pub struct ContainerFiles {
    dir: tempfile::TempDir,
}

impl ContainerFiles {
    /// Write `hosts`, `hostname` and a copy of the host's `resolv.conf`.
    pub fn create(spec: &RunSpec) -> Result<ContainerFiles, RunError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir() && !rustix::process::geteuid().is_root())
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("berth-run-")
            .tempdir_in(&base)
            .map_err(|e| RunError::os(format!("creating a temporary directory in {}", base.display()), e))?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text)
                .map_err(|e| RunError::os(format!("writing {}", dir.path().join(name).display()), e))
        };
        write("hosts", &hosts_file(&spec.hostname))?;
        write("hostname", &format!("{}\n", spec.hostname))?;
        let resolv = match spec.network {
            super::Network::Host => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            super::Network::None => String::new(),
        };
        write("resolv.conf", &resolv)?;
        Ok(ContainerFiles { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, RunError> {
    CString::new(bytes).map_err(|_| RunError::BadOption {
        option: "path",
        value: what.to_string(),
        expected: "a path without NUL bytes",
    })
}

/// Split an absolute container path into cumulative prefixes and names, refusing `..`.
fn target_parts(path: &str) -> Result<(Vec<CString>, Vec<CString>), RunError> {
    let mut prefixes = Vec::new();
    let mut names = Vec::new();
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(RunError::BadOption {
                option: "--volume",
                value: path.to_string(),
                expected: "a container path without `..`",
            });
        }
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        prefixes.push(cstring(prefix.as_bytes(), path)?);
        names.push(cstring(part.as_bytes(), path)?);
    }
    if names.is_empty() {
        return Err(RunError::BadOption {
            option: "--volume",
            value: path.to_string(),
            expected: "a path other than /",
        });
    }
    Ok((prefixes, names))
}

fn opt_cstring(text: Option<&[u8]>, what: &str) -> Result<Option<CString>, RunError> {
    text.map(|t| cstring(t, what)).transpose()
}

/// Lower a mount to what the child needs: C strings and the target split into parts.
fn mount_op(m: &Mount) -> Result<FsOp, RunError> {
    let (prefixes, names) = target_parts(&m.destination)?;
    let what = m.destination.as_str();
    Ok(FsOp {
        display: m.destination.clone(),
        prefixes,
        names,
        action: FsAction::Mount(MountOp {
            source: opt_cstring(m.source.as_ref().map(|s| s.as_os_str().as_bytes()), what)?,
            source_in_root: None,
            kind: m.target,
            fstype: opt_cstring(m.fstype.as_deref().map(str::as_bytes), what)?,
            flags: m.flags,
            data: opt_cstring(m.data.as_deref().map(str::as_bytes), what)?,
            remount: m.remount,
            propagation: m.propagation,
            optional: m.optional,
            fallback_rbind: opt_cstring(m.fallback_rbind.as_ref().map(|s| s.as_os_str().as_bytes()), what)?,
            must_exist: m.must_exist,
        }),
    })
}

/// Lower the container's file-system steps, in order, to the child's plan.
pub(super) fn fs_plan(entries: &[FsEntry]) -> Result<Vec<FsOp>, RunError> {
    entries
        .iter()
        .map(|entry| match entry {
            FsEntry::Mount(m) => mount_op(m),
            FsEntry::Symlink { path, target } => {
                let (prefixes, names) = target_parts(path)?;
                Ok(FsOp {
                    display: path.clone(),
                    prefixes,
                    names,
                    action: FsAction::Symlink { target: cstring(target.as_bytes(), path)? },
                })
            }
            FsEntry::Device(d) => {
                let (prefixes, names) = target_parts(&d.path)?;
                Ok(FsOp { display: d.path.clone(), prefixes, names, action: FsAction::Device(d.node) })
            }
            FsEntry::Sysctl { key, value } => {
                let path = format!("/proc/sys/{}", key.replace('.', "/"));
                let (prefixes, names) = target_parts(&path)?;
                Ok(FsOp {
                    display: path,
                    prefixes,
                    names,
                    action: FsAction::Sysctl { value: cstring(value.as_bytes(), key)? },
                })
            }
            FsEntry::Mask(path) => {
                let (prefixes, names) = target_parts(path)?;
                Ok(FsOp { display: path.clone(), prefixes, names, action: FsAction::Mask })
            }
            FsEntry::ReadOnly(path) => {
                // A bind of the container's own path onto itself, then remounted read-only.
                let mut m = Mount::new(path.clone(), TargetKind::Dir);
                m.flags = libc::MS_BIND | libc::MS_REC;
                m.remount = libc::MS_RDONLY;
                m.must_exist = true;
                m.optional = true;
                let mut op = mount_op(&m)?;
                if let FsAction::Mount(mount) = &mut op.action {
                    mount.source_in_root = Some(cstring(path.trim_start_matches('/').as_bytes(), path)?);
                }
                Ok(op)
            }
        })
        .collect()
}

fn kernel_fs(destination: &str, fstype: &str, source: &str, flags: c_ulong, data: Option<&str>) -> Mount {
    let mut m = Mount::new(destination, TargetKind::Dir);
    m.source = Some(PathBuf::from(source));
    m.fstype = Some(fstype.to_string());
    m.flags = flags;
    m.data = data.map(str::to_string);
    m
}

fn bind(source: &Path, destination: &str, target: TargetKind, flags: c_ulong) -> Mount {
    let mut m = Mount::new(destination, target);
    m.source = Some(source.to_path_buf());
    m.flags = flags;
    m
}

/// `berth run`'s file system, in order: /proc, /dev (+ devices, pts, shm), /sys, the
/// generated /etc files, volumes (so a volume can cover anything before it), the /dev
/// symlinks, and last the read-only and masked kernel paths.
pub fn default_fs(spec: &RunSpec, files: &ContainerFiles, user_namespace: bool) -> Result<Vec<FsEntry>, RunError> {
    use TargetKind::{Dir, File};
    let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let mut fs = vec![
        FsEntry::Mount(kernel_fs("/proc", "proc", "proc", nosuid_nodev_noexec, None)),
        FsEntry::Mount(kernel_fs(
            "/dev",
            "tmpfs",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )),
    ];
    // gid=5 (tty) only exists when berth maps it; in a rootless namespace it does not.
    let devpts = if user_namespace {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    fs.push(FsEntry::Mount(kernel_fs("/dev/pts", "devpts", "devpts", libc::MS_NOSUID | libc::MS_NOEXEC, Some(devpts))));
    fs.push(FsEntry::Mount(kernel_fs("/dev/shm", "tmpfs", "shm", nosuid_nodev_noexec, Some("mode=1777,size=65536k"))));
    let mut mqueue = kernel_fs("/dev/mqueue", "mqueue", "mqueue", nosuid_nodev_noexec, None);
    mqueue.optional = true;
    fs.push(FsEntry::Mount(mqueue));
    fs.extend(host_devices());
    let mut sys = kernel_fs("/sys", "sysfs", "sysfs", nosuid_nodev_noexec | libc::MS_RDONLY, None);
    sys.fallback_rbind = Some(PathBuf::from("/sys"));
    fs.push(FsEntry::Mount(sys));
    for name in ["hosts", "hostname", "resolv.conf"] {
        let mut m = bind(&files.path().join(name), &format!("/etc/{name}"), File, libc::MS_BIND);
        m.optional = true;
        fs.push(FsEntry::Mount(m));
    }
    for v in &spec.volumes {
        let meta =
            std::fs::metadata(&v.host).map_err(|e| RunError::VolumeSource { path: v.host.clone(), source: e })?;
        let kind = if meta.is_dir() { Dir } else { File };
        let mut m = bind(&v.host, &v.container, kind, libc::MS_BIND | libc::MS_REC);
        if v.read_only {
            m.remount = libc::MS_RDONLY;
        }
        fs.push(FsEntry::Mount(m));
    }
    fs.extend(dev_symlinks());
    fs.extend(READONLY_PATHS.iter().map(|p| FsEntry::ReadOnly(p.to_string())));
    fs.extend(MASKED_PATHS.iter().map(|p| FsEntry::Mask(p.to_string())));
    Ok(fs)
}

/// Binds of the host's device nodes ([`DEVICES`]) into the container's `/dev`.
pub fn host_devices() -> Vec<FsEntry> {
    DEVICES
        .iter()
        .map(|dev| format!("/dev/{dev}"))
        .filter(|path| Path::new(path).exists())
        .map(|path| FsEntry::Mount(bind(Path::new(&path), &path, TargetKind::File, libc::MS_BIND)))
        .collect()
}

/// The `/dev` symlinks every container has ([`DEV_SYMLINKS`]).
pub fn dev_symlinks() -> Vec<FsEntry> {
    DEV_SYMLINKS
        .iter()
        .map(|(target, name)| FsEntry::Symlink { path: format!("/dev/{name}"), target: target.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_prefixes() {
        let (p, n) = target_parts("/etc//resolv.conf").unwrap();
        assert_eq!(p, [c"etc".to_owned(), c"etc/resolv.conf".to_owned()]);
        assert_eq!(n, [c"etc".to_owned(), c"resolv.conf".to_owned()]);
        assert!(target_parts("/a/../b").is_err());
        assert!(target_parts("/").is_err());
    }
}
