//! What a container leaves between commands: `<root>/<id>/state.json` (its record) and
//! `<root>/<id>/exec.fifo` while it is created. Records are written to a temporary name
//! and renamed, so a reader sees the old record or the new one, never half of either.
//! The status is never stored: it is derived from the init's pid, its start time and the
//! FIFO each time it is asked for.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::io_err;
use super::{RuntimeError, config::HookSet};

/// The state root when `--root` is not given.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

/// The runtime spec's version berth reports.
pub const OCI_VERSION: &str = "1.2.0";

const RECORD: &str = "state.json";
const FIFO: &str = "exec.fifo";

/// A container's status, as the runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created: what the create-time hooks see (never derived by [`StateRoot::status`]).
    Creating,
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// What berth keeps about a container between commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The init's pid in berth's pid namespace.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` when it was created: a pid with another start time
    /// is a different process.
    pub start_time: u64,
    /// Absolute.
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339, UTC.
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The cgroup directories (removed by `delete`).
    #[serde(default)]
    pub cgroup: Vec<PathBuf>,
    /// Whether the init has a pid namespace of its own (killing it then ends them all).
    pub own_pid_namespace: bool,
    /// The hooks that run after `create`: poststart and poststop.
    #[serde(default)]
    pub hooks: HookSet,
}

/// The runtime spec's state, as `state` prints it (with runc's `rootfs` and `created`,
/// which go-runc, containerd's client, reads).
#[derive(Debug, Clone, Serialize)]
pub struct SpecState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    /// Present while the init lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl SpecState {
    /// The state of `record` as the spec's `state` prints it, in `status`.
    pub fn of(record: &Record, status: Status) -> SpecState {
        SpecState {
            oci_version: OCI_VERSION.to_string(),
            id: record.id.clone(),
            status,
            pid: (status != Status::Stopped).then_some(record.pid),
            bundle: record.bundle.clone(),
            rootfs: record.rootfs.clone(),
            created: record.created.clone(),
            annotations: record.annotations.clone(),
        }
    }
}

/// The state root: one directory per container.
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

/// `Ok` when `id` is a name runc would accept (and so a safe directory name).
pub fn check_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok { Ok(()) } else { Err(RuntimeError::InvalidId { id: id.to_string() }) }
}

impl StateRoot {
    pub fn new(root: Option<PathBuf>) -> StateRoot {
        StateRoot { root: root.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)) }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn fifo(&self, id: &str) -> PathBuf {
        self.dir(id).join(FIFO)
    }

    /// Make the container's directory; an existing one means the ID is taken.
    pub fn claim(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        check_id(id)?;
        std::fs::create_dir_all(&self.root).map_err(io_err("creating the state root", &self.root))?;
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(RuntimeError::Exists { id: id.into() }),
            Err(e) => Err(io_err("creating", &dir)(e)),
        }
    }

    pub fn load(&self, id: &str) -> Result<Record, RuntimeError> {
        check_id(id)?;
        let path = self.dir(id).join(RECORD);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound { id: id.into() });
            }
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| io_err("parsing", &path)(std::io::Error::other(e)))
    }

    pub fn save(&self, record: &Record) -> Result<(), RuntimeError> {
        let json = serde_json::to_vec(record).map_err(|e| io_err("encoding", self.dir(&record.id))(e.into()))?;
        write_atomically(&self.dir(&record.id).join(RECORD), &json)
    }

    /// Every container's record (unreadable ones are skipped).
    pub fn list(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Vec::new() };
        let mut records: Vec<Record> =
            entries.filter_map(Result::ok).filter_map(|e| self.load(&e.file_name().to_string_lossy()).ok()).collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        records
    }

    /// Remove the container's directory and everything in it.
    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("removing", &dir)(e)),
            _ => Ok(()),
        }
    }

    pub fn status(&self, record: &Record) -> Status {
        match process_start_time(record.pid) {
            Some(t) if t == record.start_time => {
                if self.fifo(&record.id).exists() {
                    Status::Created
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        }
    }

    pub fn spec_state(&self, record: &Record) -> SpecState {
        SpecState::of(record, self.status(record))
    }
}

/// Write `bytes` to a temporary file beside `path` and rename it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(bytes).map_err(io_err("writing", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("renaming into place", path)(e)
    })
}

/// The start time (clock ticks after boot) of a live, non-zombie process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // fields[0] is field 3 (state); starttime is field 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | Some(&"x")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// `time` as RFC 3339 in UTC with nanoseconds (`2024-05-01T12:00:00.123456789Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_are_names_runc_accepts() {
        for ok in ["a", "c1", "libpod-0123abcd", "x_y+z.w-1"] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_format_as_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 5);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.000000005Z");
    }

    #[test]
    fn this_process_has_a_start_time_and_a_reused_pid_does_not_match() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some());
        assert_eq!(process_start_time(-1), None);
        let root = tempfile::tempdir().unwrap();
        let states = StateRoot::new(Some(root.path().to_path_buf()));
        let dir = states.claim("c1").unwrap();
        assert!(matches!(states.claim("c1"), Err(RuntimeError::Exists { .. })));
        let mut record = Record {
            id: "c1".into(),
            pid: me,
            start_time: process_start_time(me).unwrap(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: rfc3339(SystemTime::now()),
            annotations: BTreeMap::new(),
            cgroup: Vec::new(),
            own_pid_namespace: true,
            hooks: HookSet::default(),
        };
        states.save(&record).unwrap();
        assert_eq!(states.load("c1").unwrap(), record);
        assert_eq!(states.status(&record), Status::Running);
        std::fs::write(dir.join(FIFO), "").unwrap();
        assert_eq!(states.status(&record), Status::Created);
        record.start_time += 1;
        assert_eq!(states.status(&record), Status::Stopped);
        assert!(matches!(states.load("c2"), Err(RuntimeError::NotFound { .. })));
        assert_eq!(states.list().len(), 1);
    }
}
