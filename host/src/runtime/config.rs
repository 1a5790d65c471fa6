//! A bundle's `config.json` → the [`Container`] `run` sets up.
//!
//! Three passes. Every object key is checked against the runtime spec's (an unknown key
//! is an error naming it: a newer spec's field must not be silently dropped). The
//! document is parsed into oci-spec's types, with the JSON path of a parse error. Then
//! each field is either translated or refused by [`RuntimeError::Unsupported`] naming its
//! path (`linux.intelRdt`, `mounts[3].options`): nothing runs half-configured.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use libc::c_ulong;
use oci_spec::runtime as oci;
use serde::{Deserialize, Serialize};

use super::RuntimeError;
use super::seccomp;
use crate::run::{
    self, CapabilitySets, CgroupRequest, CgroupResources, Container, Device, DeviceNode, DeviceRule, FsEntry, Hook,
    IdMap, IdMaps, Mount, NamespaceKind, Namespaces, Process, RootReadOnly, TargetKind, User,
};

/// The hooks of a container, by the runtime spec's lifecycle point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSet {
    #[serde(default)]
    pub prestart: Vec<oci::Hook>,
    #[serde(default)]
    pub create_runtime: Vec<oci::Hook>,
    #[serde(default)]
    pub create_container: Vec<oci::Hook>,
    #[serde(default)]
    pub start_container: Vec<oci::Hook>,
    #[serde(default)]
    pub poststart: Vec<oci::Hook>,
    #[serde(default)]
    pub poststop: Vec<oci::Hook>,
}

/// A bundle, read and translated.
#[derive(Debug, Clone)]
pub struct Translated {
    pub container: Container,
    pub hooks: HookSet,
    pub annotations: BTreeMap<String, String>,
    /// Absolute.
    pub bundle: PathBuf,
    /// Absolute.
    pub rootfs: PathBuf,
}

/// How the caller names cgroups.
#[derive(Debug, Clone, Copy, Default)]
pub struct CgroupStyle {
    /// `--systemd-cgroup`: `cgroupsPath` is `slice:prefix:name`.
    pub systemd: bool,
}

/// Keys the runtime spec (1.2) defines, per object. Anything else is refused by name.
const KNOWN_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "ociVersion",
            "process",
            "root",
            "hostname",
            "domainname",
            "mounts",
            "hooks",
            "annotations",
            "linux",
            "solaris",
            "windows",
            "vm",
            "zos",
        ],
    ),
    (
        "process",
        &[
            "terminal",
            "consoleSize",
            "user",
            "args",
            "commandLine",
            "env",
            "cwd",
            "capabilities",
            "rlimits",
            "noNewPrivileges",
            "apparmorProfile",
            "oomScoreAdj",
            "selinuxLabel",
            "ioPriority",
            "scheduler",
            "execCPUAffinity",
        ],
    ),
    ("process.user", &["uid", "gid", "umask", "additionalGids", "username"]),
    ("root", &["path", "readonly"]),
    ("mounts[]", &["destination", "source", "options", "type", "uidMappings", "gidMappings"]),
    ("hooks", &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]),
    (
        "linux",
        &[
            "namespaces",
            "uidMappings",
            "gidMappings",
            "timeOffsets",
            "devices",
            "netDevices",
            "cgroupsPath",
            "rootfsPropagation",
            "maskedPaths",
            "readonlyPaths",
            "mountLabel",
            "resources",
            "intelRdt",
            "memoryPolicy",
            "personality",
            "seccomp",
            "sysctl",
        ],
    ),
    (
        "linux.resources",
        &["devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified"],
    ),
    (
        "linux.resources.memory",
        &[
            "limit",
            "reservation",
            "swap",
            "kernel",
            "kernelTCP",
            "swappiness",
            "disableOOMKiller",
            "useHierarchy",
            "checkBeforeUpdate",
        ],
    ),
    (
        "linux.resources.cpu",
        &["shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle"],
    ),
    (
        "linux.seccomp",
        &["defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata", "syscalls"],
    ),
];

/// Refuse keys the spec does not define, naming their path.
fn check_keys(doc: &serde_json::Value) -> Result<(), RuntimeError> {
    fn at<'a>(doc: &'a serde_json::Value, path: &str) -> Vec<(String, &'a serde_json::Value)> {
        let mut nodes = vec![(String::new(), doc)];
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (name, each) = match part.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (part, false),
            };
            let mut next = Vec::new();
            for (prefix, node) in nodes {
                let Some(child) = node.get(name) else { continue };
                let base = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
                if each {
                    for (i, item) in child.as_array().into_iter().flatten().enumerate() {
                        next.push((format!("{base}[{i}]"), item));
                    }
                } else {
                    next.push((base, child));
                }
            }
            nodes = next;
        }
        nodes
    }
    if !doc.is_object() {
        return Err(RuntimeError::config("(document)", "not a JSON object"));
    }
    for (path, known) in KNOWN_KEYS {
        for (prefix, node) in at(doc, path) {
            let Some(object) = node.as_object() else { continue };
            if let Some(key) = object.keys().find(|k| !known.contains(&k.as_str())) {
                let field = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                return Err(RuntimeError::unsupported(field, "not a field of the OCI runtime spec berth knows (1.2)"));
            }
        }
    }
    Ok(())
}

/// Read `<bundle>/config.json` and translate it for the container `id`.
pub fn translate(bundle: &Path, id: &str, style: CgroupStyle) -> Result<Translated, RuntimeError> {
    let bundle =
        std::path::absolute(bundle).map_err(|e| RuntimeError::ReadConfig { path: bundle.to_path_buf(), source: e })?;
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| RuntimeError::ReadConfig { path: path.clone(), source: e })?;
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::config("(document)", e.to_string()))?;
    check_keys(&doc)?;
    // Mount id mappings are not in oci-spec's types: refuse them before they are dropped.
    for (i, m) in doc.get("mounts").and_then(|m| m.as_array()).into_iter().flatten().enumerate() {
        for key in ["uidMappings", "gidMappings"] {
            if m.get(key).is_some() {
                return Err(RuntimeError::unsupported(format!("mounts[{i}].{key}"), "id-mapped mounts"));
            }
        }
    }
    let spec: oci::Spec = serde_path_to_error::deserialize(doc).map_err(|e| {
        let field = e.path().to_string();
        RuntimeError::config(field, e.into_inner().to_string())
    })?;
    Translator { bundle: &bundle, id, style }.translate(&spec)
}

struct Translator<'a> {
    bundle: &'a Path,
    id: &'a str,
    style: CgroupStyle,
}

fn unsupported<T>(field: &str, reason: &str) -> Result<T, RuntimeError> {
    Err(RuntimeError::unsupported(field, reason))
}

/// `Err` naming `field` when `value` is set to something other than its empty value.
fn refuse_set<T: PartialEq + Default>(value: &Option<T>, field: &str, reason: &str) -> Result<(), RuntimeError> {
    match value {
        Some(v) if *v != T::default() => unsupported(field, reason),
        _ => Ok(()),
    }
}

/// A container path: absolute (a relative one is taken from `/`), without `..`.
fn container_path(path: &Path, field: &str) -> Result<String, RuntimeError> {
    let mut out = String::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => {
                out.push('/');
                out.push_str(part.to_str().ok_or_else(|| RuntimeError::config(field, "a path that is not UTF-8"))?);
            }
            Component::ParentDir => return Err(RuntimeError::config(field, "a path with `..`")),
            _ => {}
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The capability sets as bit masks.
fn capability_sets(caps: Option<&oci::LinuxCapabilities>) -> Result<CapabilitySets, RuntimeError> {
    let Some(caps) = caps else { return Ok(CapabilitySets::default()) };
    let mask = |set: &Option<oci::Capabilities>, name: &str| -> Result<u64, RuntimeError> {
        let mut mask = 0u64;
        for cap in set.iter().flatten() {
            let text = serde_json::to_value(cap).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let n = run::capability_number(&text)
                .filter(|n| *n < 64)
                .ok_or_else(|| RuntimeError::config(format!("process.capabilities.{name}"), format!("{text}?")))?;
            mask |= 1 << n;
        }
        Ok(mask)
    };
    Ok(CapabilitySets {
        bounding: mask(caps.bounding(), "bounding")?,
        effective: mask(caps.effective(), "effective")?,
        permitted: mask(caps.permitted(), "permitted")?,
        inheritable: mask(caps.inheritable(), "inheritable")?,
        ambient: mask(caps.ambient(), "ambient")?,
    })
}

fn rlimit(i: usize, r: &oci::PosixRlimit) -> Result<run::Rlimit, RuntimeError> {
    let field = format!("process.rlimits[{i}].type");
    let name = serde_json::to_value(r.typ()).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let short = name.strip_prefix("RLIMIT_").unwrap_or(&name).to_ascii_lowercase();
    let resource = run::RLIMIT_NAMES
        .iter()
        .find(|(n, _)| *n == short)
        .map(|(_, r)| *r)
        .ok_or_else(|| RuntimeError::unsupported(field, format!("resource limit {name}")))?;
    Ok(run::Rlimit { resource, soft: r.soft(), hard: r.hard() })
}

/// What mount options mean for the mount call, as runc reads them.
#[derive(Debug, Default, PartialEq, Eq)]
struct MountOptions {
    flags: c_ulong,
    propagation: c_ulong,
    /// File-system specific options, comma-separated.
    data: Vec<String>,
}

/// Parse a mount's options (runc's table; what is not a flag is file-system data).
fn mount_options(options: &[String], field: &str) -> Result<MountOptions, RuntimeError> {
    let mut parsed = MountOptions::default();
    for option in options {
        let set = |flag| (flag, false);
        let clear = |flag| (flag, true);
        let (flag, is_clear) = match option.as_str() {
            "defaults" => continue,
            "ro" => set(libc::MS_RDONLY),
            "rw" => clear(libc::MS_RDONLY),
            "suid" => clear(libc::MS_NOSUID),
            "nosuid" => set(libc::MS_NOSUID),
            "dev" => clear(libc::MS_NODEV),
            "nodev" => set(libc::MS_NODEV),
            "exec" => clear(libc::MS_NOEXEC),
            "noexec" => set(libc::MS_NOEXEC),
            "sync" => set(libc::MS_SYNCHRONOUS),
            "async" => clear(libc::MS_SYNCHRONOUS),
            "dirsync" => set(libc::MS_DIRSYNC),
            "remount" => set(libc::MS_REMOUNT),
            "mand" => set(libc::MS_MANDLOCK),
            "nomand" => clear(libc::MS_MANDLOCK),
            "atime" => clear(libc::MS_NOATIME),
            "noatime" => set(libc::MS_NOATIME),
            "diratime" => clear(libc::MS_NODIRATIME),
            "nodiratime" => set(libc::MS_NODIRATIME),
            "relatime" => set(libc::MS_RELATIME),
            "norelatime" => clear(libc::MS_RELATIME),
            "strictatime" => set(libc::MS_STRICTATIME),
            "nostrictatime" => clear(libc::MS_STRICTATIME),
            "nosymfollow" => set(libc::MS_NOSYMFOLLOW),
            "symfollow" => clear(libc::MS_NOSYMFOLLOW),
            "bind" => set(libc::MS_BIND),
            "rbind" => set(libc::MS_BIND | libc::MS_REC),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                let base = match option.trim_start_matches('r') {
                    "private" => libc::MS_PRIVATE,
                    "shared" => libc::MS_SHARED,
                    "slave" => libc::MS_SLAVE,
                    _ => libc::MS_UNBINDABLE,
                };
                let rec = if option.starts_with('r') && option != "rw" { libc::MS_REC } else { 0 };
                parsed.propagation = base | rec;
                continue;
            }
            "tmpcopyup" | "idmap" | "ridmap" | "copy-symlink" | "rro" | "rrw" | "rnosuid" | "rsuid" | "rnodev"
            | "rdev" | "rnoexec" | "rexec" | "rnosymfollow" | "rsymfollow" | "ratime" | "rnoatime" | "rrelatime"
            | "rnorelatime" | "rstrictatime" | "rnostrictatime" | "rdiratime" | "rnodiratime" => {
                return unsupported(&format!("{field} {option:?}"), "a runtime extension berth does not implement");
            }
            _ => {
                parsed.data.push(option.clone());
                continue;
            }
        };
        if is_clear {
            parsed.flags &= !flag;
        } else {
            parsed.flags |= flag;
        }
    }
    Ok(parsed)
}

/// `linux.rootfsPropagation`.
fn propagation(value: &str) -> Result<c_ulong, RuntimeError> {
    let parsed = mount_options(&[value.to_string()], "linux.rootfsPropagation")?;
    if parsed.propagation == 0 {
        return Err(RuntimeError::config("linux.rootfsPropagation", format!("{value:?} is not a propagation")));
    }
    Ok(parsed.propagation & !libc::MS_REC)
}

/// A systemd `slice:prefix:name` as the cgroup path systemd would give it:
/// `a-b.slice:crio:x` → `a.slice/a-b.slice/crio-x.scope`.
fn systemd_path(value: &str, field: &str) -> Result<PathBuf, RuntimeError> {
    let parts: Vec<&str> = value.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(RuntimeError::config(field, format!("{value:?} is not slice:prefix:name")));
    };
    let slice = if slice.is_empty() { "system.slice" } else { slice };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(RuntimeError::config(field, format!("{slice:?} does not end in .slice")));
    };
    let mut path = PathBuf::new();
    if stem != "-" {
        let mut acc = String::new();
        for part in stem.split('-') {
            if part.is_empty() {
                return Err(RuntimeError::config(field, format!("{slice:?} is not a slice name")));
            }
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            path.push(format!("{acc}.slice"));
        }
    }
    let unit = if name.ends_with(".slice") { name.to_string() } else { format!("{prefix}-{name}.scope") };
    path.push(unit);
    Ok(path)
}

fn device_kind(typ: oci::LinuxDeviceType) -> char {
    match typ {
        oci::LinuxDeviceType::A => 'a',
        oci::LinuxDeviceType::B => 'b',
        oci::LinuxDeviceType::C | oci::LinuxDeviceType::U => 'c',
        oci::LinuxDeviceType::P => 'p',
    }
}

/// Devices every container may use, appended after the config's rules as runc does: the
/// nodes it creates (null, zero, full, random, urandom, tty, console, ptmx, pts) and mknod.
const ALLOWED_DEVICES: &[(char, Option<i64>, Option<i64>, &str)] = &[
    ('c', None, None, "m"),
    ('b', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"),
    ('c', Some(1), Some(8), "rwm"),
    ('c', Some(1), Some(7), "rwm"),
    ('c', Some(5), Some(0), "rwm"),
    ('c', Some(1), Some(5), "rwm"),
    ('c', Some(1), Some(9), "rwm"),
    ('c', Some(5), Some(1), "rwm"),
    ('c', Some(136), None, "rwm"),
    ('c', Some(5), Some(2), "rwm"),
];

impl Translator<'_> {
    fn translate(&self, spec: &oci::Spec) -> Result<Translated, RuntimeError> {
        for (present, field) in [
            (spec.solaris().is_some(), "solaris"),
            (spec.windows().is_some(), "windows"),
            (spec.vm().is_some(), "vm"),
            (spec.zos().is_some(), "zos"),
        ] {
            if present {
                return unsupported(field, "berth runs Linux containers");
            }
        }
        let root = spec.root().as_ref().ok_or_else(|| RuntimeError::config("root", "missing"))?;
        if root.path().as_os_str().is_empty() {
            return Err(RuntimeError::config("root.path", "missing"));
        }
        let rootfs = self.bundle.join(root.path());
        let linux = spec.linux().clone().unwrap_or_default();
        let process = spec.process().as_ref().ok_or_else(|| {
            RuntimeError::unsupported("process", "a container without a process (berth-runtime has no exec verb)")
        })?;

        let namespaces = self.namespaces(&linux)?;
        let id_maps = self.id_maps(&linux, &namespaces)?;
        let userns = id_maps.is_some();
        let uts = namespaces.creates(NamespaceKind::Uts);
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|d| !d.is_empty());
        if (hostname.is_some() || domainname.is_some()) && !uts {
            return unsupported("hostname", "setting a host or domain name needs a new uts namespace");
        }

        let cgroup = self.cgroup(&linux)?;
        let mut fs = Vec::new();
        let mut dev_tmpfs = false;
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            let field = format!("mounts[{i}]");
            let destination = container_path(m.destination(), &format!("{field}.destination"))?;
            if destination == "/dev" && !is_bind(m) {
                dev_tmpfs = true;
            }
            self.mount(&field, m, &destination, &namespaces, &cgroup, &mut fs)?;
        }
        let devices = linux.devices().clone().unwrap_or_default();
        if dev_tmpfs {
            let listed: Vec<String> = devices.iter().map(|d| d.path().to_string_lossy().into_owned()).collect();
            fs.extend(run::host_devices().into_iter().filter(|e| match e {
                FsEntry::Mount(m) => !listed.contains(&m.destination),
                _ => true,
            }));
        }
        for (i, d) in devices.iter().enumerate() {
            fs.push(self.device(i, d, userns)?);
        }
        if dev_tmpfs {
            fs.extend(run::dev_symlinks());
        }
        let mut sysctls: Vec<(&String, &String)> = linux.sysctl().iter().flatten().collect();
        sysctls.sort();
        for (key, value) in sysctls {
            if key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
                return Err(RuntimeError::config(format!("linux.sysctl.{key}"), "not a sysctl name"));
            }
            fs.push(FsEntry::Sysctl { key: key.clone(), value: value.clone() });
        }
        for (i, p) in linux.readonly_paths().iter().flatten().enumerate() {
            fs.push(FsEntry::ReadOnly(container_path(Path::new(p), &format!("linux.readonlyPaths[{i}]"))?));
        }
        for (i, p) in linux.masked_paths().iter().flatten().enumerate() {
            fs.push(FsEntry::Mask(container_path(Path::new(p), &format!("linux.maskedPaths[{i}]"))?));
        }

        let (proc_, extras) = self.process(process)?;
        let hooks = self.hooks(spec.hooks().as_ref())?;
        let seccomp = match linux.seccomp() {
            Some(profile) => Some(seccomp::compile(profile)?),
            None => None,
        };
        for (value, field, reason) in [
            (linux.intel_rdt().is_some(), "linux.intelRdt", "Intel RDT"),
            (linux.time_offsets().is_some(), "linux.timeOffsets", "time namespaces"),
            (linux.memory_policy().is_some(), "linux.memoryPolicy", "NUMA memory policies"),
            (linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()), "linux.netDevices", "moving network devices"),
        ] {
            if value {
                return unsupported(field, reason);
            }
        }
        refuse_set(linux.mount_label(), "linux.mountLabel", "SELinux")?;
        let personality = match linux.personality() {
            None => None,
            Some(p) => {
                if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                    return unsupported("linux.personality.flags", "personality flags");
                }
                Some(match p.domain() {
                    oci::LinuxPersonalityDomain::PerLinux => 0x0000,
                    oci::LinuxPersonalityDomain::PerLinux32 => 0x0008,
                })
            }
        };
        let root_propagation = match linux.rootfs_propagation() {
            Some(p) if !p.is_empty() => propagation(p)?,
            _ => libc::MS_PRIVATE,
        };

        let container = Container {
            name: self.id.to_string(),
            rootfs: rootfs.clone(),
            root_read_only: if root.readonly() == Some(true) { RootReadOnly::AfterMounts } else { RootReadOnly::No },
            root_propagation,
            hostname,
            domainname,
            namespaces,
            id_maps,
            fs,
            cgroup: Some(cgroup),
            process: proc_,
            capabilities: extras.capabilities,
            rlimits: extras.rlimits,
            umask: extras.umask,
            oom_score_adj: extras.oom_score_adj,
            apparmor_profile: extras.apparmor_profile,
            personality,
            seccomp,
            console_size: extras.console_size,
            dev_console: dev_tmpfs,
            pause_after_mounts: !(hooks.prestart.is_empty()
                && hooks.create_runtime.is_empty()
                && hooks.create_container.is_empty()),
            start_hooks: hooks.start_container.iter().map(run_hook).collect(),
            preserve_fds: 0,
        };
        Ok(Translated {
            container,
            hooks,
            annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
            bundle: self.bundle.to_path_buf(),
            rootfs,
        })
    }

    fn namespaces(&self, linux: &oci::Linux) -> Result<Namespaces, RuntimeError> {
        let mut ns = Namespaces::default();
        let mut seen = Vec::new();
        for (i, n) in linux.namespaces().iter().flatten().enumerate() {
            let field = format!("linux.namespaces[{i}]");
            let kind = match n.typ() {
                oci::LinuxNamespaceType::Pid => NamespaceKind::Pid,
                oci::LinuxNamespaceType::Mount => NamespaceKind::Mount,
                oci::LinuxNamespaceType::Uts => NamespaceKind::Uts,
                oci::LinuxNamespaceType::Ipc => NamespaceKind::Ipc,
                oci::LinuxNamespaceType::Network => NamespaceKind::Network,
                oci::LinuxNamespaceType::User => NamespaceKind::User,
                oci::LinuxNamespaceType::Cgroup => NamespaceKind::Cgroup,
                oci::LinuxNamespaceType::Time => return unsupported(&field, "time namespaces"),
            };
            if seen.contains(&kind) {
                return Err(RuntimeError::config(field, "a namespace type listed twice"));
            }
            seen.push(kind);
            match n.path() {
                None => ns.new.push(kind),
                Some(path) if path.as_os_str().is_empty() => ns.new.push(kind),
                Some(_) if kind == NamespaceKind::Mount => {
                    return unsupported(&format!("{field}.path"), "joining an existing mount namespace");
                }
                Some(_) if kind == NamespaceKind::User => {
                    // The namespaces berth's one clone creates would belong to berth's
                    // user namespace, not the joined one (runc forks twice for this).
                    return unsupported(&format!("{field}.path"), "joining an existing user namespace");
                }
                Some(path) => ns.join.push((kind, path.clone())),
            }
        }
        if !ns.creates(NamespaceKind::Mount) {
            return unsupported("linux.namespaces", "a container without a new mount namespace");
        }
        Ok(ns)
    }

    fn id_maps(&self, linux: &oci::Linux, ns: &Namespaces) -> Result<Option<IdMaps>, RuntimeError> {
        let convert = |maps: &Option<Vec<oci::LinuxIdMapping>>| -> Vec<IdMap> {
            maps.iter()
                .flatten()
                .map(|m| IdMap { container: m.container_id(), host: m.host_id(), count: m.size() })
                .collect()
        };
        let (uid, gid) = (convert(linux.uid_mappings()), convert(linux.gid_mappings()));
        if !ns.creates(NamespaceKind::User) {
            if !uid.is_empty() || !gid.is_empty() {
                return Err(RuntimeError::config("linux.uidMappings", "id mappings without a new user namespace"));
            }
            return Ok(None);
        }
        if uid.is_empty() || gid.is_empty() {
            return Err(RuntimeError::config("linux.uidMappings", "a new user namespace needs uid and gid mappings"));
        }
        Ok(Some(IdMaps { uid, gid, deny_setgroups: false }))
    }

    fn cgroup(&self, linux: &oci::Linux) -> Result<CgroupRequest, RuntimeError> {
        let field = "linux.cgroupsPath";
        let path = match linux.cgroups_path() {
            None => PathBuf::from("berth").join(self.id),
            Some(p) => {
                let text = p.to_str().ok_or_else(|| RuntimeError::config(field, "not UTF-8"))?;
                if self.style.systemd || (!text.starts_with('/') && text.split(':').count() == 3) {
                    systemd_path(text, field)?
                } else {
                    let relative = PathBuf::from(container_path(p, field)?.trim_start_matches('/'));
                    if relative.as_os_str().is_empty() {
                        return Err(RuntimeError::config(field, "the root cgroup"));
                    }
                    relative
                }
            }
        };
        let resources = match linux.resources() {
            Some(r) => self.resources(r)?,
            None => CgroupResources::default(),
        };
        Ok(CgroupRequest { path, resources, every_hierarchy: true, best_effort: false })
    }

    fn resources(&self, r: &oci::LinuxResources) -> Result<CgroupResources, RuntimeError> {
        let mut out = CgroupResources::default();
        let unified = run::cgroup_is_unified();
        if let Some(rules) = r.devices()
            && !rules.is_empty()
        {
            for rule in rules {
                out.devices.push(DeviceRule {
                    allow: rule.allow(),
                    kind: rule.typ().map_or('a', device_kind),
                    major: rule.major(),
                    minor: rule.minor(),
                    access: rule.access().clone().unwrap_or_else(|| "rwm".to_string()),
                });
            }
            for (kind, major, minor, access) in ALLOWED_DEVICES {
                out.devices.push(DeviceRule {
                    allow: true,
                    kind: *kind,
                    major: *major,
                    minor: *minor,
                    access: access.to_string(),
                });
            }
        }
        if let Some(m) = r.memory() {
            refuse_set(&m.kernel(), "linux.resources.memory.kernel", "kernel memory limits (deprecated by Linux)")?;
            refuse_set(&m.kernel_tcp(), "linux.resources.memory.kernelTCP", "kernel TCP memory limits")?;
            out.memory_limit = m.limit();
            out.memory_reservation = m.reservation();
            out.memory_swap = m.swap();
            out.memory_swappiness = m.swappiness();
            out.disable_oom_killer = m.disable_oom_killer() == Some(true);
        }
        if let Some(c) = r.cpu() {
            refuse_set(&c.realtime_runtime(), "linux.resources.cpu.realtimeRuntime", "real-time scheduling budgets")?;
            refuse_set(&c.realtime_period(), "linux.resources.cpu.realtimePeriod", "real-time scheduling budgets")?;
            refuse_set(&c.idle(), "linux.resources.cpu.idle", "SCHED_IDLE cgroups")?;
            refuse_set(&c.burst(), "linux.resources.cpu.burst", "CPU burst")?;
            out.cpu_shares = c.shares();
            out.cpu_quota = c.quota();
            out.cpu_period = c.period();
            out.cpuset_cpus = c.cpus().clone().filter(|s| !s.is_empty());
            out.cpuset_mems = c.mems().clone().filter(|s| !s.is_empty());
        }
        if let Some(p) = r.pids() {
            out.pids_limit = Some(p.limit());
        }
        if r.block_io().as_ref().is_some_and(|b| *b != oci::LinuxBlockIo::default()) {
            return unsupported("linux.resources.blockIO", "block I/O limits");
        }
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
            return unsupported("linux.resources.hugepageLimits", "huge page limits");
        }
        if r.network().as_ref().is_some_and(|n| *n != oci::LinuxNetwork::default()) {
            return unsupported("linux.resources.network", "network class and priority cgroups");
        }
        if r.rdma().as_ref().is_some_and(|n| !n.is_empty()) {
            return unsupported("linux.resources.rdma", "RDMA limits");
        }
        if let Some(u) = r.unified()
            && !u.is_empty()
        {
            if !unified {
                return unsupported("linux.resources.unified", "cgroup v2 settings on a cgroup v1 machine");
            }
            let mut pairs: Vec<(String, String)> = u.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            pairs.sort();
            out.unified = pairs;
        }
        Ok(out)
    }

    fn mount(
        &self,
        field: &str,
        m: &oci::Mount,
        destination: &str,
        ns: &Namespaces,
        cgroup: &CgroupRequest,
        fs: &mut Vec<FsEntry>,
    ) -> Result<(), RuntimeError> {
        let options = mount_options(m.options().as_deref().unwrap_or_default(), &format!("{field}.options"))?;
        let typ = m.typ().clone().unwrap_or_default();
        if destination == "/" {
            return unsupported(&format!("{field}.destination"), "a mount over the root");
        }
        if typ == "cgroup" {
            return self.cgroup_mount(destination, &options, ns, cgroup, fs);
        }
        if is_bind(m) {
            let source =
                m.source().as_ref().ok_or_else(|| RuntimeError::config(format!("{field}.source"), "missing"))?;
            let source = self.bundle.join(source);
            let meta = std::fs::metadata(&source)
                .map_err(|e| RuntimeError::config(format!("{field}.source"), format!("{}: {e}", source.display())))?;
            let mut mount = Mount::new(destination, if meta.is_dir() { TargetKind::Dir } else { TargetKind::File });
            mount.source = Some(source);
            mount.flags = libc::MS_BIND | (options.flags & libc::MS_REC);
            // A bind takes its other flags from a remount.
            mount.remount = options.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
            mount.propagation = options.propagation;
            fs.push(FsEntry::Mount(mount));
            return Ok(());
        }
        let mut mount = Mount::new(destination, TargetKind::Dir);
        mount.source = Some(m.source().clone().unwrap_or_else(|| PathBuf::from(&typ)));
        mount.fstype = Some(typ.clone()).filter(|t| !t.is_empty() && t != "none");
        mount.flags = options.flags;
        mount.data = Some(options.data.join(",")).filter(|d| !d.is_empty());
        mount.propagation = options.propagation;
        if typ == "sysfs" {
            mount.fallback_rbind = Some(PathBuf::from("/sys"));
        }
        fs.push(FsEntry::Mount(mount));
        Ok(())
    }

    /// `type: cgroup`: the container's own cgroup at `destination`, as runc mounts it.
    fn cgroup_mount(
        &self,
        destination: &str,
        options: &MountOptions,
        ns: &Namespaces,
        cgroup: &CgroupRequest,
        fs: &mut Vec<FsEntry>,
    ) -> Result<(), RuntimeError> {
        let flags = options.flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        if run::cgroup_is_unified() {
            let mut mount = Mount::new(destination, TargetKind::Dir);
            if ns.creates(NamespaceKind::Cgroup) {
                mount.source = Some(PathBuf::from("cgroup"));
                mount.fstype = Some("cgroup2".to_string());
                mount.flags = flags;
            } else {
                mount.source = Some(run::cgroup_unified_dir(&cgroup.path));
                mount.flags = libc::MS_BIND | libc::MS_REC;
                mount.remount = flags;
            }
            fs.push(FsEntry::Mount(mount));
            return Ok(());
        }
        // v1 (and hybrid): a tmpfs holding a bind of the container's directory in each
        // hierarchy, then the tmpfs made read-only if asked.
        let mut tmpfs = Mount::new(destination, TargetKind::Dir);
        tmpfs.source = Some(PathBuf::from("tmpfs"));
        tmpfs.fstype = Some("tmpfs".to_string());
        tmpfs.flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        tmpfs.data = Some("mode=755".to_string());
        fs.push(FsEntry::Mount(tmpfs));
        for (name, host_dir) in run::cgroup_v1_views(&cgroup.path) {
            let mut bind = Mount::new(format!("{destination}/{name}"), TargetKind::Dir);
            bind.source = Some(host_dir);
            bind.flags = libc::MS_BIND | libc::MS_REC;
            bind.remount = flags;
            fs.push(FsEntry::Mount(bind));
        }
        if flags & libc::MS_RDONLY != 0 {
            let mut remount = Mount::new(destination, TargetKind::Dir);
            remount.flags = libc::MS_REMOUNT | flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            remount.must_exist = true;
            fs.push(FsEntry::Mount(remount));
        }
        Ok(())
    }

    fn device(&self, i: usize, d: &oci::LinuxDevice, userns: bool) -> Result<FsEntry, RuntimeError> {
        let field = format!("linux.devices[{i}]");
        let path = container_path(d.path(), &format!("{field}.path"))?;
        if !path.starts_with("/dev/") {
            return Err(RuntimeError::config(format!("{field}.path"), "a device outside /dev"));
        }
        if userns {
            // mknod is not allowed in a user namespace: bind the host's node, as runc does.
            let host = PathBuf::from(&path);
            if !host.exists() {
                return unsupported(&field, "a device in a user namespace that the host does not have at that path");
            }
            let mut bind = Mount::new(path, TargetKind::File);
            bind.source = Some(host);
            bind.flags = libc::MS_BIND;
            return Ok(FsEntry::Mount(bind));
        }
        let file_type = match d.typ() {
            oci::LinuxDeviceType::C | oci::LinuxDeviceType::U => libc::S_IFCHR,
            oci::LinuxDeviceType::B => libc::S_IFBLK,
            oci::LinuxDeviceType::P => libc::S_IFIFO,
            oci::LinuxDeviceType::A => {
                return Err(RuntimeError::config(format!("{field}.type"), "\"a\" is not a node"));
            }
        };
        Ok(FsEntry::Device(Device {
            path,
            node: DeviceNode {
                file_type,
                major: d.major() as u64,
                minor: d.minor() as u64,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            },
        }))
    }

    fn process(&self, p: &oci::Process) -> Result<(Process, ProcessExtras), RuntimeError> {
        refuse_set(p.command_line(), "process.commandLine", "Windows command lines")?;
        refuse_set(p.selinux_label(), "process.selinuxLabel", "SELinux")?;
        if p.io_priority().is_some() {
            return unsupported("process.ioPriority", "I/O priorities");
        }
        if p.scheduler().is_some() {
            return unsupported("process.scheduler", "scheduler policies");
        }
        if p.exec_cpu_affinity().is_some() {
            return unsupported("process.execCPUAffinity", "CPU affinity");
        }
        let apparmor_profile = p.apparmor_profile().clone().filter(|a| !a.is_empty());
        if apparmor_profile.is_some() && !apparmor_enabled() {
            return unsupported("process.apparmorProfile", "AppArmor is not enabled on this host");
        }
        let args = p.args().clone().unwrap_or_default();
        if args.is_empty() || args[0].is_empty() {
            return Err(RuntimeError::config("process.args", "no program to run"));
        }
        let cwd = p.cwd().to_str().unwrap_or_default().to_string();
        if !cwd.starts_with('/') {
            return Err(RuntimeError::config("process.cwd", format!("{cwd:?} is not absolute")));
        }
        let user = p.user();
        let process = Process {
            args,
            env: p.env().clone().unwrap_or_default(),
            cwd,
            user: User {
                uid: user.uid(),
                gid: user.gid(),
                additional_gids: user.additional_gids().clone().unwrap_or_default(),
            },
            terminal: p.terminal() == Some(true),
            // Without a terminal the init keeps the caller's stdio, stdin included.
            stdin: true,
            no_new_privileges: p.no_new_privileges() == Some(true),
        };
        let extras = ProcessExtras {
            capabilities: capability_sets(p.capabilities().as_ref())?,
            rlimits: p.rlimits().iter().flatten().enumerate().map(|(i, r)| rlimit(i, r)).collect::<Result<_, _>>()?,
            umask: user.umask(),
            oom_score_adj: p.oom_score_adj(),
            apparmor_profile,
            console_size: p.console_size().as_ref().map(|b| (b.height() as u16, b.width() as u16)),
        };
        Ok((process, extras))
    }

    fn hooks(&self, hooks: Option<&oci::Hooks>) -> Result<HookSet, RuntimeError> {
        let Some(h) = hooks else { return Ok(HookSet::default()) };
        let list = |v: &Option<Vec<oci::Hook>>, name: &str| -> Result<Vec<oci::Hook>, RuntimeError> {
            let hooks = v.clone().unwrap_or_default();
            for (i, hook) in hooks.iter().enumerate() {
                if !hook.path().is_absolute() {
                    return Err(RuntimeError::config(format!("hooks.{name}[{i}].path"), "not absolute"));
                }
                if hook.timeout().is_some_and(|t| t <= 0) {
                    return Err(RuntimeError::config(format!("hooks.{name}[{i}].timeout"), "not positive"));
                }
            }
            Ok(hooks)
        };
        #[allow(deprecated)]
        let prestart = list(h.prestart(), "prestart")?;
        Ok(HookSet {
            prestart,
            create_runtime: list(h.create_runtime(), "createRuntime")?,
            create_container: list(h.create_container(), "createContainer")?,
            start_container: list(h.start_container(), "startContainer")?,
            poststart: list(h.poststart(), "poststart")?,
            poststop: list(h.poststop(), "poststop")?,
        })
    }
}

/// Process settings that live on the [`Container`] rather than its [`Process`].
struct ProcessExtras {
    capabilities: CapabilitySets,
    rlimits: Vec<run::Rlimit>,
    umask: Option<u32>,
    oom_score_adj: Option<i32>,
    apparmor_profile: Option<String>,
    console_size: Option<(u16, u16)>,
}

fn is_bind(m: &oci::Mount) -> bool {
    m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind")
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
}

/// An OCI hook as `run` runs it.
pub fn run_hook(h: &oci::Hook) -> Hook {
    Hook {
        path: h.path().clone(),
        args: h.args().clone().unwrap_or_default(),
        env: h.env().clone().unwrap_or_default(),
        timeout: h.timeout().map(|t| Duration::from_secs(t.max(0) as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: serde_json::Value) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let path = dir.path().to_path_buf();
        (dir, path)
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
            ],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    fn translate_json(config: serde_json::Value) -> Result<Translated, RuntimeError> {
        let (_dir, path) = bundle(config);
        translate(&path, "c1", CgroupStyle::default())
    }

    fn unsupported_field(config: serde_json::Value) -> String {
        match translate_json(config) {
            Err(RuntimeError::Unsupported { field, .. }) => field,
            other => panic!("expected an unsupported field, got {other:?}"),
        }
    }

    #[test]
    fn a_minimal_config_translates() {
        let t = translate_json(minimal()).unwrap();
        let c = &t.container;
        assert!(t.rootfs.ends_with("rootfs"));
        assert_eq!(c.process.args, ["/bin/true"]);
        assert!(c.namespaces.creates(NamespaceKind::Pid));
        let FsEntry::Mount(proc_) = &c.fs[0] else { panic!() };
        assert_eq!(proc_.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV);
        let FsEntry::Mount(dev) = &c.fs[1] else { panic!() };
        assert_eq!(dev.data.as_deref(), Some("mode=755"));
        // /dev is a tmpfs: the default devices and symlinks follow.
        assert!(c.fs.iter().any(|e| matches!(e, FsEntry::Symlink { path, .. } if path == "/dev/ptmx")));
        assert_eq!(c.cgroup.as_ref().unwrap().path, PathBuf::from("berth/c1"));
        assert!(!c.pause_after_mounts);
    }

    #[test]
    fn unsupported_fields_are_named_by_their_json_path() {
        let mut c = minimal();
        c["linux"]["intelRdt"] = serde_json::json!({"closID": "x"});
        assert_eq!(unsupported_field(c), "linux.intelRdt");
        let mut c = minimal();
        c["linux"]["someFutureField"] = serde_json::json!(1);
        assert_eq!(unsupported_field(c), "linux.someFutureField");
        let mut c = minimal();
        c["mounts"][1]["options"] = serde_json::json!(["tmpcopyup"]);
        assert_eq!(unsupported_field(c), "mounts[1].options \"tmpcopyup\"");
        let mut c = minimal();
        c["mounts"][0]["uidMappings"] = serde_json::json!([]);
        assert_eq!(unsupported_field(c), "mounts[0].uidMappings");
        let mut c = minimal();
        c["linux"]["namespaces"][1] = serde_json::json!({"type": "user", "path": "/proc/1/ns/user"});
        assert_eq!(unsupported_field(c), "linux.namespaces[1].path");
        let mut c = minimal();
        c["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_FIFO"});
        assert_eq!(unsupported_field(c), "process.scheduler");
        let mut c = minimal();
        c["linux"]["resources"] = serde_json::json!({"blockIO": {"weight": 10}});
        assert_eq!(unsupported_field(c), "linux.resources.blockIO");
        let mut c = minimal();
        c["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
        assert_eq!(unsupported_field(c), "linux.namespaces");
    }

    #[test]
    fn parse_errors_name_the_field() {
        let mut c = minimal();
        c["process"]["capabilities"] = serde_json::json!({"bounding": ["CAP_FLY"]});
        match translate_json(c) {
            Err(RuntimeError::Config { field, .. }) => assert_eq!(field, "process.capabilities.bounding[0]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn binds_take_their_flags_from_a_remount() {
        let mut c = minimal();
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": "rootfs",
            "options": ["rbind", "rprivate", "nosuid", "ro"]
        }));
        let t = translate_json(c).unwrap();
        let bind = t
            .container
            .fs
            .iter()
            .find_map(|e| match e {
                FsEntry::Mount(m) if m.destination == "/data" => Some(m.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(bind.flags, libc::MS_BIND | libc::MS_REC);
        assert_eq!(bind.remount, libc::MS_NOSUID | libc::MS_RDONLY);
        assert_eq!(bind.propagation, libc::MS_PRIVATE | libc::MS_REC);
        assert_eq!(bind.target, TargetKind::Dir);
    }

    #[test]
    fn mount_options_follow_runc() {
        let o = mount_options(&["nosuid".into(), "rw".into(), "mode=755".into(), "size=1k".into()], "f").unwrap();
        assert_eq!(o.flags, libc::MS_NOSUID);
        assert_eq!(o.data, ["mode=755", "size=1k"]);
        let o = mount_options(&["ro".into(), "rw".into(), "rslave".into()], "f").unwrap();
        assert_eq!((o.flags, o.propagation), (0, libc::MS_SLAVE | libc::MS_REC));
    }

    #[test]
    fn systemd_cgroup_paths_expand_their_slices() {
        assert_eq!(
            systemd_path("machine-libpod.slice:libpod:abc", "f").unwrap(),
            PathBuf::from("machine.slice/machine-libpod.slice/libpod-abc.scope")
        );
        assert_eq!(systemd_path(":crio:x", "f").unwrap(), PathBuf::from("system.slice/crio-x.scope"));
        assert!(systemd_path("a:b", "f").is_err());
    }

    #[test]
    fn hooks_pause_the_init_after_its_mounts() {
        let mut c = minimal();
        c["hooks"] = serde_json::json!({
            "createRuntime": [{"path": "/bin/true"}],
            "startContainer": [{"path": "/bin/true", "args": ["true", "x"], "timeout": 5}]
        });
        let t = translate_json(c).unwrap();
        assert!(t.container.pause_after_mounts);
        assert_eq!(t.container.start_hooks[0].args, ["true", "x"]);
        assert_eq!(t.container.start_hooks[0].timeout, Some(Duration::from_secs(5)));
        let mut c = minimal();
        c["hooks"] = serde_json::json!({"poststop": [{"path": "relative"}]});
        assert!(matches!(translate_json(c), Err(RuntimeError::Config { .. })));
    }
}
