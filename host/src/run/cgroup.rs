//! A container's cgroup: created at a path below each hierarchy's root, limits written,
//! the container's init moved in before it runs anything of the workload's, removed when
//! the container is gone.
//!
//! Two layouts: the unified hierarchy (pure cgroup v2: `/sys/fs/cgroup/cgroup.controllers`
//! exists), and v1 hierarchies (`/sys/fs/cgroup/<controller>`, possibly with a v2
//! `unified` one beside them: a hybrid machine). `berth run` asks only for the hierarchies
//! its limits need (`every_hierarchy: false`), and only when a limit is asked for: a
//! cgroup costs writes per container. The OCI runtime joins every hierarchy, as runc does,
//! since tools look for the container's processes there. Device rules are v1's
//! `devices.allow`/`devices.deny`, or on v2 an eBPF program (`device_filter.rs`).

use std::io;
use std::path::{Path, PathBuf};

use super::{Resources, RunError};

const ROOT: &str = "/sys/fs/cgroup";
const CPU_PERIOD: u64 = 100_000;

/// Where the container's cgroup goes and what it limits.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupRequest {
    /// Below each hierarchy's root, relative: `berth/<name>`, `libpod_parent/libpod-<id>`.
    pub path: PathBuf,
    pub resources: CgroupResources,
    /// Join every mounted hierarchy, or only those the resources need.
    pub every_hierarchy: bool,
    /// When the cgroup cannot be made, warn and run without it (`berth run`), or fail.
    pub best_effort: bool,
}

/// The limits, as the OCI runtime spec's `linux.resources` names them; `None` leaves a
/// resource alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupResources {
    /// Bytes; -1 unlimited.
    pub memory_limit: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// Memory plus swap, bytes (v1 semantics); -1 unlimited.
    pub memory_swap: Option<i64>,
    pub memory_swappiness: Option<u64>,
    pub disable_oom_killer: bool,
    pub cpu_shares: Option<u64>,
    /// Microseconds per period; -1 unlimited.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Processes; 0 or less is unlimited.
    pub pids_limit: Option<i64>,
    /// Applied in order (v1 `devices.allow`/`devices.deny`).
    pub devices: Vec<DeviceRule>,
    /// cgroup v2 files and their values, written as given.
    pub unified: Vec<(String, String)>,
}

impl CgroupResources {
    /// `berth run`'s `--memory`, `--cpus` and `--pids-limit`.
    pub fn from_limits(limits: &Resources) -> CgroupResources {
        CgroupResources {
            memory_limit: limits.memory.map(|m| m as i64),
            cpu_quota: limits.cpus.map(|c| (c * CPU_PERIOD as f64) as i64),
            cpu_period: limits.cpus.map(|_| CPU_PERIOD),
            pids_limit: limits.pids,
            ..CgroupResources::default()
        }
    }

    /// The v1 controllers these resources write to.
    fn controllers(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.memory_limit.is_some()
            || self.memory_reservation.is_some()
            || self.memory_swap.is_some()
            || self.memory_swappiness.is_some()
            || self.disable_oom_killer
        {
            c.push("memory");
        }
        if self.cpu_shares.is_some() || self.cpu_quota.is_some() || self.cpu_period.is_some() {
            c.push("cpu");
        }
        if self.cpuset_cpus.is_some() || self.cpuset_mems.is_some() {
            c.push("cpuset");
        }
        if self.pids_limit.is_some() {
            c.push("pids");
        }
        if !self.devices.is_empty() {
            c.push("devices");
        }
        c
    }
}

/// One device cgroup rule: `allow` or deny `access` (`rwm`) to devices of `kind`
/// (`a` all, `c`, `b`) with `major`/`minor` (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl DeviceRule {
    /// The line v1's `devices.allow`/`devices.deny` read: `c 1:3 rwm`, `a *:* rwm`.
    pub fn v1_line(&self) -> String {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!("{} {}:{} {}", self.kind, n(self.major), n(self.minor), self.access)
    }
}

/// The cgroup directories of one container (one per v1 hierarchy, and/or one v2
/// directory). Removed when dropped, unless [`Cgroup::into_dirs`] kept them.
#[derive(Debug, Default)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
}

fn err(what: String, source: io::Error) -> RunError {
    RunError::Cgroup { what, source }
}

fn unsupported(what: String) -> RunError {
    err(what, io::Error::from(io::ErrorKind::Unsupported))
}

fn write(path: &Path, value: &str) -> Result<(), RunError> {
    std::fs::write(path, value).map_err(|e| err(format!("writing {value:?} to {}", path.display()), e))
}

fn mkdir(path: &Path) -> Result<bool, RunError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(err(format!("creating {}", path.display()), e)),
    }
}

/// The mounted v1 hierarchies under [`ROOT`]: (directory name, path). A name may list
/// several controllers (`cpu,cpuacct`); `unified` (v2 on a hybrid machine) is excluded.
fn v1_hierarchies(root: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, path)| name != "unified" && path.join("cgroup.procs").exists())
        .collect();
    found.sort();
    found
}

/// Whether the machine has the pure unified hierarchy (cgroup v2 only).
pub fn is_unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// The mount points a container's `/sys/fs/cgroup` shows: (name under /sys/fs/cgroup,
/// host path of the container's directory in it), for v1 and hybrid machines. Like runc
/// and crun, the v1 hierarchies only (not a hybrid machine's `unified`).
pub fn v1_views(path: &Path) -> Vec<(String, PathBuf)> {
    v1_hierarchies(Path::new(ROOT)).into_iter().map(|(name, dir)| (name, dir.join(path))).collect()
}

/// The host directory of the container's cgroup on a pure v2 machine.
pub fn unified_dir(path: &Path) -> PathBuf {
    Path::new(ROOT).join(path)
}

impl Cgroup {
    /// Create the cgroup and write its limits.
    pub fn create(request: &CgroupRequest) -> Result<Cgroup, RunError> {
        let root = Path::new(ROOT);
        let mut cg = Cgroup { dirs: Vec::new() };
        let result = match std::fs::read_to_string(root.join("cgroup.controllers")) {
            Ok(controllers) => cg.create_v2(root, &controllers, request),
            Err(_) => cg.create_v1(root, request),
        };
        match result {
            Ok(()) => Ok(cg),
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    /// The directories of a cgroup made earlier (a created container's).
    pub fn from_dirs(dirs: Vec<PathBuf>) -> Cgroup {
        Cgroup { dirs }
    }

    /// Keep the directories (for a container that outlives this process).
    pub fn into_dirs(mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.dirs)
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Create `path` under `hierarchy` one level at a time, calling `each` on every new
    /// level (`cpuset` needs its parent's cpus and mems copied in).
    fn create_levels(
        &mut self,
        hierarchy: &Path,
        path: &Path,
        each: &dyn Fn(&Path, &Path) -> Result<(), RunError>,
    ) -> Result<PathBuf, RunError> {
        let mut dir = hierarchy.to_path_buf();
        for part in path.components() {
            let parent = dir.clone();
            dir.push(part);
            if mkdir(&dir)? {
                each(&parent, &dir)?;
            }
        }
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    fn create_v2(&mut self, root: &Path, controllers: &str, request: &CgroupRequest) -> Result<(), RunError> {
        let r = &request.resources;
        let available: Vec<&str> = controllers.split_whitespace().collect();
        let mut wanted: Vec<&str> = Vec::new();
        for (c, on) in [
            ("memory", r.memory_limit.is_some() || r.memory_reservation.is_some() || r.memory_swap.is_some()),
            ("cpu", r.cpu_shares.is_some() || r.cpu_quota.is_some()),
            ("cpuset", r.cpuset_cpus.is_some() || r.cpuset_mems.is_some()),
            ("pids", r.pids_limit.is_some()),
        ] {
            if on && !available.contains(&c) {
                return Err(unsupported(format!("the cgroup v2 controller {c:?} is not available in {ROOT}")));
            }
            if on || (request.every_hierarchy && available.contains(&c)) {
                wanted.push(c);
            }
        }
        if request.every_hierarchy {
            wanted.extend(available.iter().filter(|c| ["io", "hugetlb"].contains(c)));
        }
        // Each level's parent must delegate the controllers to it.
        let enable: String = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
        let mut ancestor = root.to_path_buf();
        let parts: Vec<_> = request.path.components().collect();
        for (i, part) in parts.iter().enumerate() {
            if !enable.is_empty() {
                write(&ancestor.join("cgroup.subtree_control"), &enable)?;
            }
            ancestor.push(part);
            if i + 1 < parts.len() {
                mkdir(&ancestor)?;
            }
        }
        let dir = root.join(&request.path);
        mkdir(&dir)?;
        self.dirs.push(dir.clone());
        if !r.devices.is_empty() {
            super::device_filter::attach(&dir, &r.devices)
                .map_err(|e| err(format!("attaching the device filter to {}", dir.display()), e))?;
        }
        let max = |v: i64| if v < 0 { "max".to_string() } else { v.to_string() };
        if let Some(m) = r.memory_limit {
            write(&dir.join("memory.max"), &max(m))?;
        }
        if let Some(m) = r.memory_reservation {
            write(&dir.join("memory.low"), &max(m))?;
        }
        if let Some(swap) = r.memory_swap {
            // v1 counts memory + swap; v2's swap.max counts swap alone.
            let value = match r.memory_limit {
                _ if swap < 0 => "max".to_string(),
                Some(limit) if limit >= 0 => (swap - limit).max(0).to_string(),
                _ => swap.to_string(),
            };
            write(&dir.join("memory.swap.max"), &value)?;
        }
        if r.disable_oom_killer || r.memory_swappiness.is_some() {
            return Err(unsupported("memory swappiness and disableOOMKiller have no cgroup v2 equivalent".to_string()));
        }
        if let Some(shares) = r.cpu_shares {
            // runc's conversion of v1 shares (2..262144) to v2 weight (1..10000).
            let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
            write(&dir.join("cpu.weight"), &weight.to_string())?;
        }
        if r.cpu_quota.is_some() || r.cpu_period.is_some() {
            let quota = r.cpu_quota.map_or("max".to_string(), max);
            write(&dir.join("cpu.max"), &format!("{quota} {}", r.cpu_period.unwrap_or(CPU_PERIOD)))?;
        }
        if let Some(cpus) = &r.cpuset_cpus {
            write(&dir.join("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = &r.cpuset_mems {
            write(&dir.join("cpuset.mems"), mems)?;
        }
        if let Some(p) = r.pids_limit {
            write(&dir.join("pids.max"), &if p > 0 { p.to_string() } else { "max".to_string() })?;
        }
        for (file, value) in &r.unified {
            if file.contains('/') {
                return Err(unsupported(format!("cgroup file name {file:?}")));
            }
            write(&dir.join(file), value)?;
        }
        Ok(())
    }

    fn create_v1(&mut self, root: &Path, request: &CgroupRequest) -> Result<(), RunError> {
        let r = &request.resources;
        if !r.unified.is_empty() {
            return Err(unsupported("cgroup v2 settings (unified) on a cgroup v1 machine".to_string()));
        }
        let hierarchies = v1_hierarchies(root);
        let find = |controller: &str| {
            hierarchies.iter().find(|(name, _)| name.split(',').any(|c| c == controller)).map(|(_, p)| p.clone())
        };
        let needed = r.controllers();
        for controller in &needed {
            if find(controller).is_none() {
                return Err(unsupported(format!(
                    "the cgroup v1 {controller} hierarchy is not mounted at {}",
                    root.join(controller).display()
                )));
            }
        }
        let chosen: Vec<PathBuf> = if request.every_hierarchy {
            let mut all: Vec<PathBuf> = hierarchies.iter().map(|(_, p)| p.clone()).collect();
            if root.join("unified/cgroup.procs").exists() {
                all.push(root.join("unified"));
            }
            all
        } else {
            needed.iter().filter_map(|c| find(c)).collect()
        };
        let cpuset = find("cpuset");
        for hierarchy in &chosen {
            let is_cpuset = cpuset.as_ref() == Some(hierarchy);
            let init_cpuset = |parent: &Path, dir: &Path| -> Result<(), RunError> {
                // A new cpuset has no cpus or mems: nothing could join it. Inherit them.
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let mine = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
                    if mine.trim().is_empty() {
                        let theirs = std::fs::read_to_string(parent.join(file))
                            .map_err(|e| err(format!("reading {}", parent.join(file).display()), e))?;
                        write(&dir.join(file), theirs.trim())?;
                    }
                }
                Ok(())
            };
            let nothing = |_: &Path, _: &Path| Ok(());
            self.create_levels(hierarchy, &request.path, if is_cpuset { &init_cpuset } else { &nothing })?;
        }
        let dir_of = |controller: &str| find(controller).map(|h| h.join(&request.path));
        let in_dir = |controller: &str, file: &str| dir_of(controller).map(|d| d.join(file));
        let set = |controller: &str, file: &str, value: String| -> Result<(), RunError> {
            match in_dir(controller, file) {
                Some(path) => write(&path, &value),
                None => Ok(()),
            }
        };
        if let Some(m) = r.memory_limit {
            set("memory", "memory.limit_in_bytes", m.to_string())?;
        }
        if let Some(m) = r.memory_reservation {
            set("memory", "memory.soft_limit_in_bytes", m.to_string())?;
        }
        if let Some(swap) = r.memory_swap {
            let path = in_dir("memory", "memory.memsw.limit_in_bytes").filter(|p| p.exists());
            let path =
                path.ok_or_else(|| unsupported("swap accounting (memory.memsw.*) is not enabled".to_string()))?;
            write(&path, &swap.to_string())?;
        }
        if let Some(s) = r.memory_swappiness {
            set("memory", "memory.swappiness", s.to_string())?;
        }
        if r.disable_oom_killer {
            set("memory", "memory.oom_control", "1".to_string())?;
        }
        if let Some(shares) = r.cpu_shares {
            set("cpu", "cpu.shares", shares.to_string())?;
        }
        // The period first: a quota is checked against it.
        if let Some(period) = r.cpu_period {
            set("cpu", "cpu.cfs_period_us", period.to_string())?;
        }
        if let Some(quota) = r.cpu_quota {
            set("cpu", "cpu.cfs_quota_us", quota.to_string())?;
        }
        if let Some(cpus) = &r.cpuset_cpus {
            set("cpuset", "cpuset.cpus", cpus.clone())?;
        }
        if let Some(mems) = &r.cpuset_mems {
            set("cpuset", "cpuset.mems", mems.clone())?;
        }
        if let Some(p) = r.pids_limit {
            set("pids", "pids.max", if p > 0 { p.to_string() } else { "max".to_string() })?;
        }
        for rule in &r.devices {
            let file = if rule.allow { "devices.allow" } else { "devices.deny" };
            set("devices", file, rule.v1_line())?;
        }
        Ok(())
    }

    /// Move `pid` into the cgroup (before it runs anything of the workload's).
    pub fn add(&self, pid: i32) -> Result<(), RunError> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the cgroup (empty when it has no directory).
    pub fn pids(&self) -> Vec<i32> {
        pids_in(&self.dirs)
    }

    /// Remove the directories (the container has exited; its pids are gone).
    pub fn remove(&mut self) {
        for dir in self.dirs.drain(..) {
            // A cgroup empties asynchronously after its last process is reaped.
            for _ in 0..50 {
                match std::fs::remove_dir(&dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(2))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// The processes in the cgroup whose directories are `dirs` (the first one is read).
pub fn pids_in(dirs: &[PathBuf]) -> Vec<i32> {
    let Some(dir) = dirs.first() else { return Vec::new() };
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_read_as_v1_lines() {
        let deny_all = DeviceRule { allow: false, kind: 'a', major: None, minor: None, access: "rwm".into() };
        assert_eq!(deny_all.v1_line(), "a *:* rwm");
        let null = DeviceRule { allow: true, kind: 'c', major: Some(1), minor: Some(3), access: "rwm".into() };
        assert_eq!(null.v1_line(), "c 1:3 rwm");
        let pts = DeviceRule { allow: true, kind: 'c', major: Some(136), minor: None, access: "rwm".into() };
        assert_eq!(pts.v1_line(), "c 136:* rwm");
    }

    #[test]
    fn berth_run_limits_name_their_controllers() {
        let limits = Resources { memory: Some(1 << 20), cpus: Some(0.5), pids: None };
        let r = CgroupResources::from_limits(&limits);
        assert_eq!(r.controllers(), ["memory", "cpu"]);
        assert_eq!((r.cpu_quota, r.cpu_period), (Some(50_000), Some(100_000)));
    }
}
