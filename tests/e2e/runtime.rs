//! `berth-runtime`, berth as an OCI runtime: its runc command line driven directly on
//! bundles written by `runc spec` and `berth bundle`, then by podman (`--runtime`) and by
//! containerd's runc shim (`ctr run --runc-binary`), both from Debian's packages.
//! Every test needs root and says so when it skips.

use std::io::Read as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::run::{Rootfs, prepare_cgroups_for_crun};
use super::support::{berth_bin, fixtures, run_tool};

fn skip_unless_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    eprintln!("skipping {test}: needs root (namespaces, mounts, cgroups); CI runs as root");
    true
}

/// `berth-runtime`, built beside `berth`.
fn runtime_bin() -> PathBuf {
    let bin = berth_bin().with_file_name("berth-runtime");
    assert!(bin.exists(), "{} is missing: `cargo test --workspace` builds it", bin.display());
    bin
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A state root and a bundle around a busybox rootfs, with `runc spec`'s config.json.
struct Bundle {
    _dir: tempfile::TempDir,
    _rootfs: Rootfs,
    dir: PathBuf,
    state: PathBuf,
    config: Value,
}

impl Bundle {
    /// `runc spec`, made non-interactive, running `script` with sh.
    fn new(script: &str) -> Bundle {
        let dir = tempfile::Builder::new().prefix("berth-runtime-").tempdir().unwrap();
        let rootfs = Rootfs::new();
        let bundle = dir.path().join("bundle");
        std::fs::create_dir(&bundle).unwrap();
        run_tool("runc", &["spec", "--bundle", bundle.to_str().unwrap()], dir.path());
        let mut config: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        config["root"]["path"] = json!(rootfs.path_str());
        config["root"]["readonly"] = json!(false);
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["sh", "-c", script]);
        let state = dir.path().join("state");
        Bundle { dir: bundle, state, config, _rootfs: rootfs, _dir: dir }
    }

    fn write(&self) {
        std::fs::write(self.dir.join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(&self.state).args(args).stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(out.status.success(), "berth-runtime {args:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `create` with the container's stdout and stderr in `out`.
    fn create(&self, id: &str, out: &Path) -> Output {
        self.write();
        let log = std::fs::File::create(out).unwrap();
        self.cmd(&["create", "--bundle", self.dir.to_str().unwrap(), id])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .output()
            .unwrap()
    }

    /// `create` that must fail: its error output.
    fn create_fails(&self, id: &str) -> String {
        self.write();
        let out = self.cmd(&["create", "--bundle", self.dir.to_str().unwrap(), id]).output().unwrap();
        assert!(!out.status.success(), "create {id} succeeded");
        text(&out)
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// Wait until the container is `status`.
    fn wait_for(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.state(id);
            if state["status"] == status {
                return state;
            }
            assert!(Instant::now() < deadline, "{id} never became {status}: {state}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_container_is_created_started_stopped_and_deleted() {
    if skip_unless_root("a_container_is_created_started_stopped_and_deleted") {
        return;
    }
    let b = Bundle::new("echo pid $$; id -u; hostname");
    let out = b.dir.join("out");
    let created = b.create("c1", &out);
    assert!(created.status.success(), "{}", text(&created));
    let state = b.state("c1");
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["id"], "c1");
    assert_eq!(Path::new(state["bundle"].as_str().unwrap()), b.dir);
    let pid = state["pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // Created: set up, but the process has not run.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    let listed = b.ok(&["list", "--format", "json"]);
    assert!(listed.contains("\"c1\""), "{listed}");

    b.ok(&["start", "c1"]);
    b.wait_for("c1", "stopped");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "pid 1\n0\nrunc\n");
    let again = b.cmd(&["start", "c1"]).output().unwrap();
    assert!(!again.status.success() && text(&again).contains("stopped"), "{}", text(&again));

    b.ok(&["delete", "c1"]);
    let gone = b.cmd(&["state", "c1"]).output().unwrap();
    assert!(!gone.status.success());
    assert!(text(&gone).contains("container c1 does not exist"), "{}", text(&gone));
    // --force forgives a container that is already gone (containerd deletes twice).
    b.ok(&["delete", "--force", "c1"]);
}

#[test]
fn a_running_container_is_killed_and_deleted_only_with_force() {
    if skip_unless_root("a_running_container_is_killed_and_deleted_only_with_force") {
        return;
    }
    let b = Bundle::new("trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 1; done");
    let out = b.dir.join("out");
    assert!(b.create("k1", &out).status.success());
    b.ok(&["start", "k1"]);
    b.wait_for("k1", "running");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&out).unwrap().contains("ready") {
        assert!(Instant::now() < deadline, "the container never said ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let refused = b.cmd(&["delete", "k1"]).output().unwrap();
    assert!(!refused.status.success() && text(&refused).contains("running"), "{}", text(&refused));
    b.ok(&["kill", "k1", "TERM"]);
    b.wait_for("k1", "stopped");
    assert!(std::fs::read_to_string(&out).unwrap().contains("got TERM"));
    let refused = b.cmd(&["kill", "k1", "KILL"]).output().unwrap();
    assert!(!refused.status.success(), "killing a stopped container must fail");
    b.ok(&["delete", "k1"]);

    // A running container is deleted with --force: killed first.
    assert!(b.create("k2", &out).status.success());
    b.ok(&["start", "k2"]);
    b.wait_for("k2", "running");
    let pid = b.state("k2")["pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    b.ok(&["delete", "--force", "k2"]);
    assert!(b.cmd(&["state", "k2"]).output().unwrap().status.code() == Some(3));
    // Its cgroup is gone with it (runc spec's cgroupsPath is unset: berth/<id>).
    assert!(cgroup.contains("/berth/k2"), "{cgroup}");
    assert!(!Path::new("/sys/fs/cgroup/pids/berth/k2").exists());
}

#[test]
fn an_unsupported_field_fails_create_by_name_and_leaves_nothing() {
    if skip_unless_root("an_unsupported_field_fails_create_by_name_and_leaves_nothing") {
        return;
    }
    let mut b = Bundle::new("true");
    b.config["linux"]["intelRdt"] = json!({"closID": "guaranteed"});
    let err = b.create_fails("u1");
    assert!(err.contains("config.json: linux.intelRdt is not supported"), "{err}");
    assert_eq!(b.ok(&["list", "-q"]), "");

    b.config["linux"].as_object_mut().unwrap().remove("intelRdt");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]
    }));
    let err = b.create_fails("u2");
    assert!(err.contains("mounts[7].options \"tmpcopyup\" is not supported"), "{err}");

    // A program that does not exist fails create, not the container after start.
    let mut b = Bundle::new("true");
    b.config["process"]["args"] = json!(["/no/such/program"]);
    let err = b.create_fails("u3");
    assert!(err.contains("No such file or directory"), "{err}");
    assert_eq!(b.ok(&["list", "-q"]), "");
}

#[test]
fn hooks_run_in_the_spec_order_with_the_state_on_stdin() {
    if skip_unless_root("hooks_run_in_the_spec_order_with_the_state_on_stdin") {
        return;
    }
    let mut b = Bundle::new("echo process >> /hooks/order");
    let logs = tempfile::tempdir().unwrap();
    let order = logs.path().join("order");
    let host_hook = |name: &str| {
        let script = format!("echo {name} >> {}; cat > {}/{name}.json", order.display(), logs.path().display());
        json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
    };
    // startContainer runs inside the container: its path and files are the container's.
    let in_container = json!({"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /hooks/order"]});
    b.config["hooks"] = json!({
        "prestart": [host_hook("prestart")],
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [in_container],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")],
    });
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/hooks", "type": "bind", "source": logs.path(), "options": ["rbind", "rw"]
    }));
    let created = b.create("h1", &b.dir.join("out"));
    assert!(created.status.success(), "{}", text(&created));
    let pid = b.state("h1")["pid"].as_i64().unwrap();
    b.ok(&["start", "h1"]);
    b.wait_for("h1", "stopped");
    b.ok(&["delete", "h1"]);
    let seen = std::fs::read_to_string(&order).unwrap();
    // poststart runs after start, the process after startContainer; their relative order
    // is a race, so check each hook's place without it.
    let lines: Vec<&str> = seen.lines().collect();
    let at = |name: &str| lines.iter().position(|l| *l == name).unwrap_or_else(|| panic!("{name} missing: {seen}"));
    assert!(at("prestart") < at("createRuntime") && at("createRuntime") < at("createContainer"), "{seen}");
    assert!(at("createContainer") < at("startContainer") && at("startContainer") < at("process"), "{seen}");
    assert!(at("createContainer") < at("poststart") && at("poststop") == lines.len() - 1, "{seen}");
    let state: Value = serde_json::from_slice(&std::fs::read(logs.path().join("createRuntime.json")).unwrap()).unwrap();
    assert_eq!(
        (state["id"].as_str(), state["status"].as_str(), state["pid"].as_i64()),
        (Some("h1"), Some("creating"), Some(pid))
    );
    let state: Value = serde_json::from_slice(&std::fs::read(logs.path().join("poststop.json")).unwrap()).unwrap();
    assert_eq!(state["status"], "stopped");
}

/// Receive one descriptor on `listener` (what a console socket's owner does).
fn receive_fd(listener: &std::os::unix::net::UnixListener) -> OwnedFd {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut control = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: plain data, then a recvmsg into buffers that outlive the call; the
    // descriptor received is ours to own.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        assert!(libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) > 0);
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no descriptor came over the console socket");
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()))
    }
}

#[test]
fn a_terminal_is_handed_over_the_console_socket() {
    if skip_unless_root("a_terminal_is_handed_over_the_console_socket") {
        return;
    }
    let mut b = Bundle::new("[ -t 0 ] && [ -t 1 ] && echo on-a-tty; stty size");
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 99});
    b.write();
    let socket = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let create = b
        .cmd(&["create", "--bundle", b.dir.to_str().unwrap(), "--console-socket", socket.to_str().unwrap(), "t1"])
        .spawn()
        .unwrap();
    let master = receive_fd(&listener);
    let created = create.wait_with_output().unwrap();
    assert!(created.status.success(), "{}", text(&created));
    b.ok(&["start", "t1"]);
    // Read until the slave side is gone (EIO).
    let mut output = Vec::new();
    let _ = std::fs::File::from(master).read_to_end(&mut output);
    let output = String::from_utf8_lossy(&output);
    assert!(output.contains("on-a-tty"), "{output:?}");
    assert!(output.contains("33 99"), "{output:?}");
    b.wait_for("t1", "stopped");
    b.ok(&["delete", "t1"]);

    let missing = b.cmd(&["create", "--bundle", b.dir.to_str().unwrap(), "t2"]).output().unwrap();
    assert!(text(&missing).contains("--console-socket"), "{}", text(&missing));
}

/// Run `b` to completion (create, start, wait, delete) and return its output.
fn run_to_end(b: &Bundle, id: &str) -> String {
    let out = b.dir.join(format!("{id}.out"));
    let created = b.create(id, &out);
    assert!(created.status.success(), "{}", text(&created));
    b.ok(&["start", id]);
    b.wait_for(id, "stopped");
    b.ok(&["delete", id]);
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn a_seccomp_profile_is_applied_with_and_without_no_new_privileges() {
    if skip_unless_root("a_seccomp_profile_is_applied_with_and_without_no_new_privileges") {
        return;
    }
    for nnp in [true, false] {
        let mut b =
            Bundle::new("mkdir /tmp/refused 2>&1; echo mkdir $?; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status");
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
        let out = run_to_end(&b, &format!("s{}", nnp as u8));
        assert!(out.contains("Operation not permitted") && out.contains("mkdir 1"), "{out}");
        assert!(out.contains("Seccomp:\t2"), "{out}");
        assert!(out.contains(&format!("NoNewPrivs:\t{}", nnp as u8)), "{out}");
    }
}

#[test]
fn namespaces_are_joined_by_path_and_users_mapped() {
    if skip_unless_root("namespaces_are_joined_by_path_and_users_mapped") {
        return;
    }
    // A created container (never started) owns a uts namespace named "alpha".
    let mut a = Bundle::new("true");
    a.config["hostname"] = json!("alpha");
    assert!(a.create("alpha", &a.dir.join("out")).status.success());
    let pid = a.state("alpha")["pid"].as_i64().unwrap();

    let mut b = Bundle::new("hostname; cat /proc/self/uid_map; id -u");
    b.config.as_object_mut().unwrap().remove("hostname");
    let namespaces = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|n| n["type"] != "uts");
    namespaces.push(json!({"type": "uts", "path": format!("/proc/{pid}/ns/uts")}));
    namespaces.push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    // In a user namespace sysfs cannot be mounted without a network namespace of its own.
    let out = run_to_end(&b, "beta");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "alpha", "{out}");
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["0", "200000", "65536"], "{out}");
    assert_eq!(lines[2], "0", "{out}");
    a.ok(&["delete", "alpha"]);
}

#[test]
fn cgroup_limits_and_device_rules_apply() {
    if skip_unless_root("cgroup_limits_and_device_rules_apply") {
        return;
    }
    let mut b = Bundle::new("head -c 3 /dev/zero | wc -c; cat /sys/fs/cgroup/pids/pids.max; ls /sys/fs/cgroup");
    let id = format!("cg{}", std::process::id());
    b.config["linux"]["cgroupsPath"] = json!(format!("/berth-test/{id}"));
    b.config["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "pids": {"limit": 42},
        "memory": {"limit": 67108864}
    });
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }));
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!("skipping cgroup_limits_and_device_rules_apply: written for the v1 layout CI has");
        return;
    }
    let out = b.dir.join("out");
    assert!(b.create(&id, &out).status.success());
    let memory = format!("/sys/fs/cgroup/memory/berth-test/{id}");
    assert_eq!(std::fs::read_to_string(format!("{memory}/memory.limit_in_bytes")).unwrap(), "67108864\n");
    let devices = std::fs::read_to_string(format!("/sys/fs/cgroup/devices/berth-test/{id}/devices.list")).unwrap();
    assert!(devices.contains("c 1:5 rwm") && !devices.contains("a *:* rwm"), "{devices}");
    b.ok(&["start", &id]);
    b.wait_for(&id, "stopped");
    b.ok(&["delete", &id]);
    let out = std::fs::read_to_string(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["3", "42"], "{out}");
    assert!(lines.contains(&"memory") && lines.contains(&"pids"), "{out}");
    assert!(!Path::new(&memory).exists());
}

#[test]
fn a_berth_bundle_runs_as_under_crun() {
    if skip_unless_root("a_berth_bundle_runs_as_under_crun") {
        return;
    }
    prepare_cgroups_for_crun();
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let script = "exec 2>&1; echo $$; id; hostname; pwd; echo $FOO; cat /etc/hostname; \
                  grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status; ls /sys/class/net; \
                  head -c 16 /proc/kcore | wc -c; touch /proc/sys/x 2>&1; ls /dev | grep -vx core; ulimit -n";
    let out = Command::new(berth_bin())
        .args(["bundle", "--rootfs", r.path_str(), "--hostname", "interop", "-u", "alice", "-w", "/tmp"])
        .args(["-e", "FOO=bar", "--net", "none", "--ulimit", "nofile=512:1024"])
        .arg(&bundle)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run = |program: &Path, state: &Path, id: &str, verbs: &[&[&str]]| {
        let mut output = String::new();
        for verb in verbs {
            let out = Command::new(program)
                .arg("--root")
                .arg(state)
                .args(*verb)
                .args(verb.contains(&"run").then_some(["--bundle", bundle.to_str().unwrap()]).into_iter().flatten())
                .arg(id)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "{} {verb:?}: {}", program.display(), text(&out));
            output.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        output
    };
    let crun = run(Path::new("/usr/bin/crun"), &dir.path().join("crun"), "interop", &[&["run"]]);
    assert!(crun.starts_with("1\nuid=1000(alice)"), "{crun}");
    // berth-runtime's create keeps the caller's stdout for the container: capture it with
    // a file, since create returns before the process runs.
    let state = dir.path().join("berth");
    let out_file = dir.path().join("berth.out");
    let f = std::fs::File::create(&out_file).unwrap();
    // stderr too: the container keeps it, so a pipe would not close before it exits.
    let created = Command::new(runtime_bin())
        .arg("--root")
        .arg(&state)
        .args(["create", "--bundle", bundle.to_str().unwrap(), "interop"])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(created.success(), "{}", std::fs::read_to_string(&out_file).unwrap());
    run(&runtime_bin(), &state, "interop", &[&["start"]]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = run(&runtime_bin(), &state, "interop", &[&["state"]]);
        if s.contains("\"stopped\"") {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(10));
    }
    run(&runtime_bin(), &state, "interop", &[&["delete"]]);
    assert_eq!(std::fs::read_to_string(out_file).unwrap(), crun, "berth-runtime disagrees with crun");
}

/// Podman with its own storage and containers.conf, running berth-runtime. berth-runtime
/// keeps its default state root: podman's exit command (`podman container cleanup`, run by
/// conmon) does not pass `--runtime-flag`s on, and container IDs are unique anyway.
struct Podman {
    dir: tempfile::TempDir,
    image: String,
}

impl Podman {
    fn new() -> Option<Podman> {
        if Command::new("podman").arg("--version").output().is_err() {
            eprintln!("skipping the podman tests: podman is not installed (`just setup` installs it)");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("berth-podman-").tempdir().unwrap();
        // The settings this machine needs: no systemd (cgroupfs, file events) and ulimits
        // below the hard limits the CI machine allows.
        std::fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=10000:10000\", \"nproc=10000:10000\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        let p = Podman { dir, image: "berth.test/single:v1".to_string() };
        // An archive named in its index: `podman pull oci:DIR` would name the image after
        // the (mixed-case, so invalid) temporary path.
        let archive = p.dir.path().join("single.tar");
        let layout = format!("oci:{}:single", fixtures().layout.display());
        run_tool(
            "skopeo",
            &["copy", "-q", &layout, &format!("oci-archive:{}:{}", archive.display(), p.image)],
            p.dir.path(),
        );
        let out = p.cmd(&["load", "-q", "-i", archive.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "podman load failed: {}", text(&out));
        Some(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_with(&runtime_bin(), args)
    }

    fn cmd_with(&self, runtime: &Path, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "overlay", "--runtime"])
            .arg(runtime)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["rmi", "-af"]);
        detach_mounts_under(self.dir.path());
    }
}

/// Detach whatever is still mounted under `dir` (podman's and containerd's storage).
fn detach_mounts_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let mut under: Vec<&str> =
        mounts.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|m| m.starts_with(&prefix)).collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in under {
        let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn podman_runs_stops_and_removes_containers_through_berth_runtime() {
    if skip_unless_root("podman_runs_stops_and_removes_containers_through_berth_runtime") {
        return;
    }
    let Some(p) = Podman::new() else { return };
    let bb = "/bin/busybox";
    // The default network: podman makes the namespace and berth joins it by path.
    let out = p.run(&["run", "--rm", &p.image, bb, "sh", "-c", "echo hello from $(/bin/busybox hostname); exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello from "), "{}", text(&out));

    // The container podman asks for is the one crun makes: capabilities, seccomp (podman's
    // default profile), ids, devices, cgroup files, limits, masked and read-only paths.
    prepare_cgroups_for_crun();
    let probe = "exec 2>&1; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; id; \
                 ls /dev /dev/pts /dev/shm /sys/fs/cgroup/pids; cat /sys/fs/cgroup/pids/pids.max; \
                 /bin/busybox hostname other; ulimit -n; ulimit -u; cat /proc/self/uid_map; umask; \
                 /bin/busybox touch /proc/sys/x; head -c4 /proc/kcore | wc -c; ls -ld /dev/mqueue /run; \
                 wc -c < /etc/hostname; ls /sys/firmware; cat /proc/1/cmdline; echo";
    let args = ["run", "--rm", "--network", "none", &p.image, bb, "sh", "-c", probe];
    let berth = p.run(&args);
    let crun = p.cmd_with(Path::new("crun"), &args).output().unwrap();
    assert!(berth.status.success() && crun.status.success(), "{}\n{}", text(&berth), text(&crun));
    let said = String::from_utf8_lossy(&berth.stdout);
    assert!(said.contains("Seccomp:\t2") && said.contains("CapEff:\t00000000a80425fb"), "{said}");
    assert_eq!(said, String::from_utf8_lossy(&crun.stdout), "berth-runtime and crun disagree");

    // A command that does not exist: 127, as with crun and runc.
    let out = p.run(&["run", "--rm", "--network", "none", &p.image, "/no/such/program"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));

    // Detached, stopped (the TERM trap exits 3), removed.
    let script = "trap 'exit 3' TERM; while :; do /bin/busybox sleep 0.1; done";
    let out = p.run(&["run", "-d", "--network", "none", "--name", "waiter", &p.image, bb, "sh", "-c", script]);
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let state_dir = Path::new(berth::runtime::state::DEFAULT_ROOT).join(&id);
    assert!(state_dir.join("state.json").exists(), "no berth-runtime state at {}", state_dir.display());
    let status = p.run(&["inspect", "-f", "{{.State.Status}}", "waiter"]);
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "running", "{}", text(&status));
    let out = p.run(&["stop", "-t", "10", "waiter"]);
    assert!(out.status.success(), "{}", text(&out));
    let code = p.run(&["inspect", "-f", "{{.State.ExitCode}}", "waiter"]);
    assert_eq!(String::from_utf8_lossy(&code.stdout).trim(), "3", "{}", text(&code));
    let out = p.run(&["rm", "waiter"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!state_dir.exists(), "berth-runtime state left after podman rm");

    // -it: the terminal crosses conmon's console socket (script gives podman a tty).
    let podman = p.cmd(&[]).get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>();
    let line = format!(
        "CONTAINERS_CONF={} podman {} run --rm -it --network none {} {bb} sh -c '[ -t 0 ] && echo tty-ok'",
        p.dir.path().join("containers.conf").display(),
        podman.join(" "),
        p.image
    );
    // Its stdin stays open until podman is done: at end of input script would send the
    // terminal an EOF, and podman -i would pass that on.
    let mut script = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    script.stdout.take().unwrap().read_to_string(&mut said).unwrap();
    let out = script.wait_with_output().unwrap();
    assert!(out.status.success(), "{said}{}", text(&out));
    assert!(said.contains("tty-ok"), "{said}{}", text(&out));
}

/// A containerd daemon of the test's own: root, state and sockets in a temporary
/// directory; killed when dropped.
struct Containerd {
    dir: tempfile::TempDir,
    daemon: std::process::Child,
    namespace: String,
}

impl Containerd {
    fn start() -> Option<Containerd> {
        if Command::new("containerd").arg("--version").output().is_err() {
            eprintln!("skipping the containerd test: containerd is not installed (`just setup` installs it)");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("berth-containerd-").tempdir().unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\naddress = \"{sock}\"\n[ttrpc]\naddress = \"{sock}.ttrpc\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { dir, daemon, namespace: format!("berth-test-{}", std::process::id()) };
        // Ready when it answers.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd never answered: {}", c.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(c)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", &self.namespace])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // The shim keeps the runtime's state under its own root, named by our namespace.
        let _ = std::fs::remove_dir_all(format!("/run/containerd/runc/{}", self.namespace));
        detach_mounts_under(self.dir.path());
    }
}

#[test]
fn containerd_runs_containers_through_berth_runtime() {
    if skip_unless_root("containerd_runs_containers_through_berth_runtime") {
        return;
    }
    let Some(c) = Containerd::start() else { return };
    let archive = c.dir.path().join("image.tar");
    let layout = format!("oci:{}:single", fixtures().layout.display());
    run_tool(
        "skopeo",
        &["copy", "-q", &layout, &format!("oci-archive:{}:berth.test/single:v1", archive.display())],
        c.dir.path(),
    );
    let out = c.ctr(&["images", "import", "--base-name", "berth.test/single", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let image = "berth.test/single:v1";
    let runtime = runtime_bin();
    let runtime = runtime.to_str().unwrap();
    let out =
        c.ctr(&["run", "--rm", "--runc-binary", runtime, image, "c1", "/bin/busybox", "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", text(&out), c.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out =
        c.ctr(&["run", "--rm", "--runc-binary", runtime, image, "c2", "/bin/busybox", "cat", "/proc/self/status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NoNewPrivs:\t1"), "{}", text(&out));
    let left = c.ctr(&["containers", "ls", "-q"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout), "", "containers left behind");
}

#[test]
fn the_cgroup_v2_device_filter_allows_only_the_rules() {
    if skip_unless_root("the_cgroup_v2_device_filter_allows_only_the_rules") {
        return;
    }
    // The unified hierarchy: all of /sys/fs/cgroup on v2, `unified` on a hybrid machine.
    let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.subtree_control").exists());
    let Some(base) = base else {
        eprintln!("skipping the_cgroup_v2_device_filter_allows_only_the_rules: no cgroup v2 hierarchy");
        return;
    };
    let dir = base.join(format!("berth-test-devices-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let rule = |allow, kind, major, minor, access: &str| berth::run::DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: access.to_string(),
    };
    let rules = [rule(false, 'a', None, None, "rwm"), rule(true, 'c', Some(1), Some(3), "rw")];
    let attached = berth::run::attach_device_filter(&dir, &rules);
    let script = format!(
        "echo $$ > {}/cgroup.procs; echo x > /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null 2>&1 || echo zero-denied",
        dir.display()
    );
    let out = attached.as_ref().ok().map(|_| Command::new("/bin/sh").args(["-c", &script]).output().unwrap());
    // The cgroup empties asynchronously after the shell is reaped.
    for _ in 0..100 {
        if std::fs::remove_dir(&dir).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    attached.unwrap();
    let out = out.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "null-ok\nzero-denied\n", "{}", text(&out));
}
