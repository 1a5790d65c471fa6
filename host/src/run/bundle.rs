//! The same [`RunSpec`] as an OCI runtime bundle (`config.json`, built with oci-spec), so
//! `runc run` and `crun run` start the container berth would start.
//!
//! The bundle's `root.path` is the rootfs's absolute path (the runtime spec allows a path
//! outside the bundle): nothing is copied, and the rootfs stays where render put it.
//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` are written into the bundle and
//! bound like berth binds its own copies.

use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxIdMappingBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::caps::capability_name;
use super::mounts::{MASKED_PATHS, READONLY_PATHS};
use super::{Network, RunError, RunSpec, UserNamespace};

fn oci_err(e: impl std::error::Error + Send + Sync + 'static) -> RunError {
    RunError::OciSpec(Box::new(e))
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, RunError> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(oci_err)
}

/// Whether `spec` runs in a user namespace, and its (container 0 → host, count) mapping.
fn id_mapping(spec: &RunSpec) -> Option<(u32, u32, u32)> {
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    match spec.user_namespace {
        UserNamespace::Auto if euid == 0 => None,
        UserNamespace::Auto => Some((euid, egid, 1)),
        UserNamespace::Private { host_base, count } => Some((host_base, host_base, count)),
    }
}

/// The OCI runtime config for `spec`; `files` holds `hosts`, `hostname`, `resolv.conf`.
pub fn oci_config(spec: &RunSpec, files: &Path) -> Result<Spec, RunError> {
    let p = &spec.process;
    let mapping = id_mapping(spec);
    let caps: std::collections::HashSet<Capability> = spec
        .capabilities
        .iter()
        .filter_map(|c| capability_name(*c))
        .map(|name| serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(oci_err))
        .collect::<Result<_, _>>()?;
    let granted = if p.user.uid == 0 { caps.clone() } else { Default::default() };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps)
        .effective(granted.clone())
        .permitted(granted.clone())
        .inheritable(granted)
        .ambient(std::collections::HashSet::new())
        .build()
        .map_err(oci_err)?;
    let mut rlimits = Vec::new();
    for r in &spec.rlimits {
        let name = super::RLIMIT_NAMES.iter().find(|(_, n)| *n == r.resource).map(|(n, _)| *n).unwrap_or("nofile");
        let typ: PosixRlimitType =
            serde_json::from_value(serde_json::Value::String(format!("RLIMIT_{}", name.to_ascii_uppercase())))
                .map_err(oci_err)?;
        rlimits.push(PosixRlimitBuilder::default().typ(typ).soft(r.soft).hard(r.hard).build().map_err(oci_err)?);
    }
    let user = UserBuilder::default()
        .uid(p.user.uid)
        .gid(p.user.gid)
        .additional_gids(p.user.additional_gids.clone())
        .build()
        .map_err(oci_err)?;
    let process = ProcessBuilder::default()
        .terminal(p.terminal)
        .user(user)
        .args(p.args.clone())
        .env(p.env.clone())
        .cwd(&p.cwd)
        .capabilities(capabilities)
        .rlimits(rlimits)
        .no_new_privileges(p.no_new_privileges)
        .build()
        .map_err(oci_err)?;

    let devpts: &[&str] = if mapping.is_some() {
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    } else {
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount("/dev/pts", "devpts", "devpts", devpts)?,
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])?,
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
    ];
    // sysfs needs a network namespace owned by the user namespace; rootless runtimes
    // bind the host's /sys read-only instead (berth falls back the same way).
    if mapping.is_some() && spec.network == Network::Host {
        mounts.push(mount("/sys", "none", "/sys", &["rbind", "nosuid", "noexec", "nodev", "ro"])?);
    } else {
        mounts.push(mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?);
    }
    for name in ["hosts", "hostname", "resolv.conf"] {
        let source = files.join(name);
        mounts.push(mount(&format!("/etc/{name}"), "bind", &source.to_string_lossy(), &["bind"])?);
    }
    for v in &spec.volumes {
        let options: &[&str] = if v.read_only { &["rbind", "ro"] } else { &["rbind"] };
        mounts.push(mount(&v.container, "bind", &v.host.to_string_lossy(), options)?);
    }

    let mut namespaces = Vec::new();
    let mut kinds =
        vec![LinuxNamespaceType::Pid, LinuxNamespaceType::Ipc, LinuxNamespaceType::Uts, LinuxNamespaceType::Mount];
    if spec.network == Network::None {
        kinds.push(LinuxNamespaceType::Network);
    }
    if mapping.is_some() {
        kinds.push(LinuxNamespaceType::User);
    }
    for typ in kinds {
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build().map_err(oci_err)?);
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(MASKED_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .readonly_paths(READONLY_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    if let Some((uid, gid, count)) = mapping {
        let map = |host: u32| LinuxIdMappingBuilder::default().container_id(0u32).host_id(host).size(count).build();
        linux = linux.uid_mappings(vec![map(uid).map_err(oci_err)?]).gid_mappings(vec![map(gid).map_err(oci_err)?]);
    }
    if !spec.resources.is_empty() {
        let r = &spec.resources;
        let mut resources = LinuxResourcesBuilder::default();
        if let Some(m) = r.memory {
            resources = resources.memory(LinuxMemoryBuilder::default().limit(m as i64).build().map_err(oci_err)?);
        }
        if let Some(c) = r.cpus {
            let cpu = LinuxCpuBuilder::default().quota((c * 100_000.0) as i64).period(100_000u64).build();
            resources = resources.cpu(cpu.map_err(oci_err)?);
        }
        if let Some(n) = r.pids {
            resources = resources.pids(LinuxPidsBuilder::default().limit(n).build().map_err(oci_err)?);
        }
        linux = linux.resources(resources.build().map_err(oci_err)?);
    }

    let root = RootBuilder::default().path(&spec.rootfs).readonly(spec.read_only).build().map_err(oci_err)?;
    SpecBuilder::default()
        .version(Spec::default().version().clone())
        .root(root)
        .mounts(mounts)
        .process(process)
        .hostname(spec.hostname.clone())
        .linux(linux.build().map_err(oci_err)?)
        .build()
        .map_err(oci_err)
}

/// Write `out/config.json` (and the /etc files it binds) for `spec`. `out` is created if
/// missing; an existing `config.json` is replaced.
pub fn write_bundle(spec: &RunSpec, out: &Path) -> Result<(), RunError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| RunError::Bundle { path, source: e }
    };
    std::fs::create_dir_all(out).map_err(err(out))?;
    let out = std::path::absolute(out).map_err(err(out))?;
    let write = |name: &str, text: &str| std::fs::write(out.join(name), text).map_err(err(&out.join(name)));
    write("hosts", &super::mounts::hosts_file(&spec.hostname))?;
    write("hostname", &format!("{}\n", spec.hostname))?;
    let resolv = match spec.network {
        Network::Host => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        Network::None => String::new(),
    };
    write("resolv.conf", &resolv)?;
    let config = oci_config(spec, &out)?;
    let json = serde_json::to_string_pretty(&config).map_err(oci_err)?;
    write("config.json", &json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Process, Resources, User, Volume};

    fn spec() -> RunSpec {
        RunSpec {
            name: "abc".into(),
            rootfs: "/srv/rootfs".into(),
            process: Process {
                args: vec!["/bin/sh".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/tmp".into(),
                user: User { uid: 0, gid: 0, additional_gids: vec![10] },
                terminal: false,
                stdin: false,
                no_new_privileges: true,
            },
            hostname: "box".into(),
            volumes: vec![Volume { host: "/data".into(), container: "/data".into(), read_only: true }],
            read_only: true,
            network: Network::None,
            user_namespace: UserNamespace::Private { host_base: 100000, count: 65536 },
            capabilities: vec![0, 5],
            rlimits: vec![crate::run::parse_rlimit("nofile=100:200").unwrap()],
            resources: Resources { memory: Some(1 << 20), cpus: Some(0.5), pids: Some(10) },
        }
    }

    #[test]
    fn config_carries_the_run_spec() {
        let config = oci_config(&spec(), Path::new("/b")).unwrap();
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["root"]["path"], "/srv/rootfs");
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["process"]["args"][0], "/bin/sh");
        assert_eq!(json["process"]["cwd"], "/tmp");
        assert_eq!(json["process"]["user"]["additionalGids"][0], 10);
        assert_eq!(json["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(json["process"]["noNewPrivileges"], true);
        let mut bounding: Vec<String> = json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        bounding.sort();
        assert_eq!(bounding, ["CAP_CHOWN", "CAP_KILL"]);
        assert_eq!(json["hostname"], "box");
        let ns: Vec<&str> =
            json["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert!(ns.contains(&"network") && ns.contains(&"user") && ns.contains(&"pid"));
        assert_eq!(json["linux"]["uidMappings"][0]["hostID"], 100000);
        assert_eq!(json["linux"]["resources"]["pids"]["limit"], 10);
        let data = json["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["options"], serde_json::json!(["rbind", "ro"]));
    }
}
