//! cgroup limits (`--memory`, `--cpus`, `--pids-limit`): one cgroup per container, named
//! `berth/<name>`, in the unified hierarchy when it has the controllers (pure cgroup v2),
//! else in the v1 `memory`, `cpu` and `pids` hierarchies (hybrid machines).
//!
//! berth creates a cgroup only when a limit is asked for: it costs a few writes per
//! container. When the hierarchy is not writable (rootless, a read-only /sys/fs/cgroup),
//! [`Cgroup::create`] says why and the caller warns and runs without limits.

use std::path::{Path, PathBuf};

use super::Resources;

const ROOT: &str = "/sys/fs/cgroup";
const CPU_PERIOD: u64 = 100_000;

/// The cgroup directories of one container (one per v1 controller, or one v2 directory).
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

impl Cgroup {
    /// Create the cgroup and write the limits; `Err` is a reason to print in a warning.
    pub fn create(name: &str, resources: &Resources) -> Result<Cgroup, String> {
        let root = Path::new(ROOT);
        let v2_controllers = std::fs::read_to_string(root.join("cgroup.controllers")).ok();
        let mut cg = Cgroup { dirs: Vec::new() };
        let result = match v2_controllers {
            Some(controllers) => cg.create_v2(root, &controllers, name, resources),
            None => cg.create_v1(root, name, resources),
        };
        match result {
            Ok(()) => Ok(cg),
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    fn create_v2(&mut self, root: &Path, controllers: &str, name: &str, r: &Resources) -> Result<(), String> {
        let wanted: Vec<&str> = [("memory", r.memory.is_some()), ("cpu", r.cpus.is_some()), ("pids", r.pids.is_some())]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(c, _)| c)
            .collect();
        for c in &wanted {
            if !controllers.split_whitespace().any(|x| x == *c) {
                return Err(format!("the cgroup v2 controller {c:?} is not available in {ROOT}"));
            }
        }
        let parent = root.join("berth");
        std::fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let enable: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
        write(&root.join("cgroup.subtree_control"), &enable.join(" "))?;
        write(&parent.join("cgroup.subtree_control"), &enable.join(" "))?;
        let dir = parent.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        self.dirs.push(dir.clone());
        if let Some(m) = r.memory {
            write(&dir.join("memory.max"), &m.to_string())?;
        }
        if let Some(c) = r.cpus {
            write(&dir.join("cpu.max"), &format!("{} {CPU_PERIOD}", (c * CPU_PERIOD as f64) as u64))?;
        }
        if let Some(p) = r.pids {
            write(&dir.join("pids.max"), &p.to_string())?;
        }
        Ok(())
    }

    fn create_v1(&mut self, root: &Path, name: &str, r: &Resources) -> Result<(), String> {
        let mut limits: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
        if let Some(m) = r.memory {
            limits.push(("memory", vec![("memory.limit_in_bytes", m.to_string())]));
        }
        if let Some(c) = r.cpus {
            limits.push((
                "cpu",
                vec![
                    ("cpu.cfs_period_us", CPU_PERIOD.to_string()),
                    ("cpu.cfs_quota_us", ((c * CPU_PERIOD as f64) as u64).to_string()),
                ],
            ));
        }
        if let Some(p) = r.pids {
            limits.push(("pids", vec![("pids.max", p.to_string())]));
        }
        for (controller, files) in limits {
            let hierarchy = root.join(controller);
            if !hierarchy.join("cgroup.procs").exists() {
                return Err(format!("the cgroup v1 {controller} hierarchy is not mounted at {}", hierarchy.display()));
            }
            let dir = hierarchy.join("berth").join(name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            self.dirs.push(dir.clone());
            for (file, value) in files {
                write(&dir.join(file), &value)?;
            }
        }
        Ok(())
    }

    /// Move `pid` into the cgroup (before it runs anything of the workload's).
    pub fn add(&self, pid: i32) -> Result<(), String> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
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

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}
