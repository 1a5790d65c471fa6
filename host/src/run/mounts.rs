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

use super::child::{MountOp, SymlinkOp, TargetKind};
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

#[allow(clippy::too_many_arguments)]
fn op(
    target: &str,
    kind: TargetKind,
    source: Option<&[u8]>,
    fstype: Option<&str>,
    flags: c_ulong,
    data: Option<&str>,
    read_only: bool,
    optional: bool,
) -> Result<MountOp, RunError> {
    let (prefixes, names) = target_parts(target)?;
    Ok(MountOp {
        display: target.to_string(),
        source: source.map(|s| cstring(s, target)).transpose()?,
        source_in_root: None,
        prefixes,
        names,
        kind,
        fstype: fstype.map(|s| cstring(s.as_bytes(), target)).transpose()?,
        flags,
        data: data.map(|s| cstring(s.as_bytes(), target)).transpose()?,
        read_only,
        optional,
        fallback_rbind: None,
        must_exist: false,
    })
}

/// The mounts, in order: /proc, /dev (+ devices, pts, shm), /sys, the generated /etc
/// files, then volumes (so a volume can cover anything before it).
pub fn mount_plan(spec: &RunSpec, files: &ContainerFiles, user_namespace: bool) -> Result<Vec<MountOp>, RunError> {
    use TargetKind::{Dir, File};
    let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let mut ops = vec![
        op("/proc", Dir, Some(b"proc"), Some("proc"), nosuid_nodev_noexec, None, false, false)?,
        op(
            "/dev",
            Dir,
            Some(b"tmpfs"),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
            false,
            false,
        )?,
    ];
    // gid=5 (tty) only exists when berth maps it; in a rootless namespace it does not.
    let devpts = if user_namespace {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    ops.push(op(
        "/dev/pts",
        Dir,
        Some(b"devpts"),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(devpts),
        false,
        false,
    )?);
    ops.push(op(
        "/dev/shm",
        Dir,
        Some(b"shm"),
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
        false,
        false,
    )?);
    ops.push(op("/dev/mqueue", Dir, Some(b"mqueue"), Some("mqueue"), nosuid_nodev_noexec, None, false, true)?);
    for dev in DEVICES {
        let source = format!("/dev/{dev}");
        if Path::new(&source).exists() {
            ops.push(op(&source, File, Some(source.as_bytes()), None, libc::MS_BIND, None, false, false)?);
        }
    }
    let mut sys =
        op("/sys", Dir, Some(b"sysfs"), Some("sysfs"), nosuid_nodev_noexec | libc::MS_RDONLY, None, false, false)?;
    sys.fallback_rbind = Some(c"/sys".to_owned());
    ops.push(sys);
    for path in READONLY_PATHS {
        // Binds of the container's own /proc onto itself, then remounted read-only.
        let mut bind = op(path, Dir, None, None, libc::MS_BIND | libc::MS_REC, None, true, true)?;
        bind.source_in_root = Some(cstring(path.trim_start_matches('/').as_bytes(), path)?);
        bind.must_exist = true;
        ops.push(bind);
    }
    for path in MASKED_PATHS {
        // Directories and files alike exist only if the kernel has them: never created.
        let host = Path::new(path);
        let mut mask = if host.is_dir() {
            op(path, Dir, Some(b"tmpfs"), Some("tmpfs"), libc::MS_RDONLY, None, false, true)?
        } else {
            op(path, File, Some(b"/dev/null"), None, libc::MS_BIND, None, false, true)?
        };
        mask.must_exist = true;
        ops.push(mask);
    }
    for name in ["hosts", "hostname", "resolv.conf"] {
        let source = files.path().join(name);
        ops.push(op(
            &format!("/etc/{name}"),
            File,
            Some(source.as_os_str().as_bytes()),
            None,
            libc::MS_BIND,
            None,
            false,
            true,
        )?);
    }
    for v in &spec.volumes {
        let meta =
            std::fs::metadata(&v.host).map_err(|e| RunError::VolumeSource { path: v.host.clone(), source: e })?;
        let kind = if meta.is_dir() { Dir } else { File };
        ops.push(op(
            &v.container,
            kind,
            Some(v.host.as_os_str().as_bytes()),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
            v.read_only,
            false,
        )?);
    }
    Ok(ops)
}

pub fn symlink_plan() -> Vec<SymlinkOp> {
    DEV_SYMLINKS
        .iter()
        .map(|(target, name)| SymlinkOp { target: CString::new(*target).unwrap(), name: CString::new(*name).unwrap() })
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
