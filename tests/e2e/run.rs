//! `berth run --rootfs` and `berth bundle`: a busybox rootfs (Debian's busybox-static),
//! real namespaces, real signals, and crun/runc running the bundle berth writes.
//! Every test needs root (namespaces, mounts, cgroups) and says so when it skips.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::berth_bin;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skip (return true) with a printed reason when not root.
fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipping {test}: needs root (namespaces, mounts, cgroups); CI runs as root");
    true
}

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "id", "sleep", "ls", "mount", "hostname", "env", "pwd", "true", "false", "touch", "grep",
    "wc", "kill", "tty", "head", "mkdir", "stat", "rm",
];

/// A busybox root file system in a world-readable temporary directory.
pub struct Rootfs {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Rootfs {
    /// With `/proc`, `/sys`, `/dev`, `/tmp` and the `/etc` files berth binds.
    pub fn new() -> Rootfs {
        Rootfs::build(true)
    }

    pub fn build(etc_mount_points: bool) -> Rootfs {
        let dir = tempfile::Builder::new().prefix("berth-rootfs-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root", "home/alice", "data"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox is missing: install busybox-static (`just setup` does)");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\nbob:x:1001:\n").unwrap();
        if etc_mount_points {
            for f in ["hosts", "hostname", "resolv.conf"] {
                std::fs::write(root.join("etc").join(f), "").unwrap();
            }
        }
        Rootfs { _dir: dir, path: root }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

/// `berth run --rootfs ROOT FLAGS... -- CMD...` → (exit code, stdout, stderr).
fn run(rootfs: &Rootfs, flags: &[&str], cmd: &[&str]) -> (i32, String, String) {
    let out = run_cmd(rootfs, flags, cmd).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_cmd(rootfs: &Rootfs, flags: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new(berth_bin());
    c.env_remove("BERTH_LOG").arg("run").arg("--rootfs").arg(&rootfs.path).args(flags).arg("--").args(cmd);
    c
}

fn sh(rootfs: &Rootfs, flags: &[&str], script: &str) -> (i32, String, String) {
    run(rootfs, flags, &["sh", "-c", script])
}

/// stdout of a run that must succeed.
fn ok(rootfs: &Rootfs, flags: &[&str], script: &str) -> String {
    let (code, out, err) = sh(rootfs, flags, script);
    assert_eq!(code, 0, "berth run {flags:?} -- sh -c {script:?} failed ({code}): {err}");
    out
}

#[test]
fn exit_codes_pass_through() {
    if skip_unless_root("exit_codes_pass_through") {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(run(&r, &[], &["true"]).0, 0);
    assert_eq!(run(&r, &[], &["false"]).0, 1);
    assert_eq!(sh(&r, &[], "exit 7").0, 7);
    let (code, _, err) = run(&r, &[], &["/no/such/program"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("/no/such/program"), "{err}");
    let (code, _, _) = run(&r, &[], &["no-such-program"]);
    assert_eq!(code, 127);
}

/// Wait until the berth process `pid` has a child (the container's pid 1); return it.
fn container_pid(berth: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{berth}/task/{berth}/children")).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "berth never started a container");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_signal_death_exits_128_plus_the_signal() {
    if skip_unless_root("a_signal_death_exits_128_plus_the_signal") {
        return;
    }
    let r = Rootfs::new();
    let mut child = run_cmd(&r, &[], &["sleep", "30"]).stdin(Stdio::null()).spawn().unwrap();
    let pid = container_pid(child.id());
    // Wait for the exec: until then the child is still berth.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().starts_with("sleep") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling a process of this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
}

#[test]
fn stdout_and_stderr_pass_through_and_stdin_is_null_without_i() {
    if skip_unless_root("stdout_and_stderr_pass_through_and_stdin_is_null_without_i") {
        return;
    }
    let r = Rootfs::new();
    let (code, out, err) = sh(&r, &[], "echo out; echo err >&2");
    assert_eq!((code, out.as_str()), (0, "out\n"));
    assert_eq!(err, "err\n");

    let feed = |flags: &[&str]| {
        let mut c = run_cmd(&r, flags, &["cat"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        use std::io::Write as _;
        let _ = c.stdin.take().unwrap().write_all(b"from stdin\n");
        let out = c.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(feed(&["-i"]), (Some(0), "from stdin\n".to_string()));
    assert_eq!(feed(&[]), (Some(0), String::new()));
}

#[test]
fn env_merges_image_defaults_flags_and_env_files() {
    if skip_unless_root("env_merges_image_defaults_flags_and_env_files") {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env");
    std::fs::write(&file, "# a comment\nFROM_FILE=1\nSHARED=file\n").unwrap();
    let out = ok(&r, &["--env-file", file.to_str().unwrap(), "-e", "SHARED=flag", "--env", "FOO=bar baz"], "env");
    let vars: Vec<&str> = out.lines().collect();
    for want in [
        "FROM_FILE=1",
        "SHARED=flag",
        "FOO=bar baz",
        "HOME=/root",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ] {
        assert!(vars.contains(&want), "{want} missing from {vars:?}");
    }
    assert!(!vars.contains(&"SHARED=file"));
}

#[test]
fn workdir_user_and_hostname_apply() {
    if skip_unless_root("workdir_user_and_hostname_apply") {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(ok(&r, &["--workdir", "/tmp"], "pwd"), "/tmp\n");
    assert_eq!(ok(&r, &["-u", "alice"], "id"), "uid=1000(alice) gid=1000(alice) groups=10(wheel)\n");
    assert_eq!(ok(&r, &["-u", "alice"], "echo $HOME"), "/home/alice\n");
    assert_eq!(ok(&r, &["--user", "1001:10"], "id -u; id -g"), "1001\n10\n");
    assert_eq!(ok(&r, &["--user", "bob:wheel"], "id -un; id -gn"), "bob\nwheel\n");
    assert_eq!(ok(&r, &["--user", "4242"], "id -u; id -g"), "4242\n0\n");
    let (code, _, err) = sh(&r, &["--user", "mallory"], "true");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("mallory"), "{err}");
    assert_eq!(ok(&r, &["--hostname", "box"], "hostname; cat /etc/hostname; grep -c box /etc/hosts"), "box\nbox\n1\n");
    // The default hostname is the container's generated name.
    assert_eq!(ok(&r, &[], "hostname").trim().len(), 12);
}

#[test]
fn volumes_bind_read_write_and_read_only() {
    if skip_unless_root("volumes_bind_read_write_and_read_only") {
        return;
    }
    let r = Rootfs::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    let rw = format!("{}:/data", host.path().display());
    assert_eq!(ok(&r, &["--volume", &rw], "cat /data/in; echo from container > /data/out"), "from host\n");
    assert_eq!(std::fs::read_to_string(host.path().join("out")).unwrap(), "from container\n");
    let ro = format!("{}:/mnt/ro:ro", host.path().display());
    let (code, _, err) = sh(&r, &["--volume", &ro], "cat /mnt/ro/in && touch /mnt/ro/new");
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!host.path().join("new").exists());
}

/// Every path under `dir` with its mode and size: a cheap snapshot to compare.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            out.push(format!("{} {:o} {}", e.path().display(), meta.permissions().mode(), meta.len()));
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn read_only_rootfs_is_never_written() {
    if skip_unless_root("read_only_rootfs_is_never_written") {
        return;
    }
    // No /etc/hosts etc. in this rootfs: berth must not create them when read-only.
    let r = Rootfs::build(false);
    let before = tree(&r.path);
    let (code, out, err) = sh(&r, &["--read-only"], "echo ok; touch /newfile");
    assert_eq!(out, "ok\n");
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    // /dev and /dev/shm stay writable.
    assert_eq!(ok(&r, &["--read-only"], "echo x > /dev/shm/f && cat /dev/shm/f"), "x\n");
    assert_eq!(tree(&r.path), before);
}

#[test]
fn the_process_is_pid_1_and_sees_only_its_own_pids() {
    if skip_unless_root("the_process_is_pid_1_and_sees_only_its_own_pids") {
        return;
    }
    let r = Rootfs::new();
    let out = ok(&r, &[], "echo $$; ls /proc | grep -c '^[0-9]'");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    let pids: u32 = lines[1].parse().unwrap();
    assert!((1..=4).contains(&pids), "{pids} pids visible");
    // A minimal /dev.
    let dev = ok(&r, &[], "ls /dev; echo x > /dev/null; head -c 4 /dev/zero | wc -c; ls /dev/pts");
    for node in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin"] {
        assert!(dev.lines().any(|l| l == node), "/dev/{node} missing: {dev}");
    }
    assert!(dev.lines().any(|l| l == "ptmx"));
    assert!(dev.contains("\n4\n"), "{dev}");
    // /sys and /proc/sys are read-only; /proc/kcore is masked.
    let (code, _, _) = sh(&r, &[], "touch /sys/x");
    assert_ne!(code, 0);
    let (code, _, err) = sh(&r, &[], "echo 1 > /proc/sys/kernel/printk_ratelimit");
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(ok(&r, &[], "head -c 16 /proc/kcore | wc -c; ls /proc/acpi 2>/dev/null | wc -l"), "0\n0\n");
}

#[test]
fn nothing_stays_mounted_after_exit() {
    if skip_unless_root("nothing_stays_mounted_after_exit") {
        return;
    }
    let r = Rootfs::new();
    let vol = tempfile::tempdir().unwrap();
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    ok(&r, &["--volume", &format!("{}:/data", vol.path().display())], "mount | grep -c ' on /data '");
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!after.contains(r.path_str()), "the rootfs is still mounted: {after}");
    assert_eq!(before, after);
}

#[test]
fn sigterm_to_berth_reaches_the_container() {
    if skip_unless_root("sigterm_to_berth_reaches_the_container") {
        return;
    }
    let r = Rootfs::new();
    let script = "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done";
    let mut child =
        run_cmd(&r, &[], &["sh", "-c", script]).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // SAFETY: signalling a process of this test.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[test]
fn a_terminal_is_a_pty_relayed_by_berth() {
    if skip_unless_root("a_terminal_is_a_pty_relayed_by_berth") {
        return;
    }
    let r = Rootfs::new();
    let (code, out, err) = sh(&r, &["-t"], "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; exit 4");
    assert_eq!(code, 4, "{err}");
    // Through the pty's line discipline, \n becomes \r\n.
    assert_eq!(out, "is-a-tty\r\n");
    let (_, out, _) = sh(&r, &[], "[ -t 1 ] || echo no-tty");
    assert_eq!(out, "no-tty\n");
}

#[test]
fn capabilities_no_new_privs_and_rlimits_apply() {
    if skip_unless_root("capabilities_no_new_privs_and_rlimits_apply") {
        return;
    }
    let r = Rootfs::new();
    let status = |flags: &[&str]| ok(&r, flags, "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status");
    // The common container default: docker's and podman's 0xa80425fb.
    let default = status(&[]);
    assert!(default.contains("CapEff:\t00000000a80425fb"), "{default}");
    assert!(default.contains("CapBnd:\t00000000a80425fb"), "{default}");
    assert!(default.contains("NoNewPrivs:\t1"), "{default}");
    let none = status(&["--cap-drop", "ALL"]);
    assert!(none.contains("CapEff:\t0000000000000000"), "{none}");
    let more = status(&["--cap-add", "NET_ADMIN", "--cap-drop", "CAP_KILL"]);
    assert!(more.contains(&format!("CapEff:\t{:016x}", (0xa80425fbu64 | (1 << 12)) & !(1 << 5))), "{more}");
    // A non-root user keeps only the bounding set.
    let alice = status(&["-u", "alice"]);
    assert!(alice.contains("CapEff:\t0000000000000000"), "{alice}");
    assert_eq!(ok(&r, &["--ulimit", "nofile=100:200"], "ulimit -n; ulimit -Hn"), "100\n200\n");
}

#[test]
fn net_none_has_only_loopback_and_it_is_up() {
    if skip_unless_root("net_none_has_only_loopback_and_it_is_up") {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(ok(&r, &["--net", "none"], "ls /sys/class/net"), "lo\n");
    // IFF_UP set: operstate of an up loopback is "unknown", of a down one "down".
    assert_eq!(ok(&r, &["--net", "none"], "cat /sys/class/net/lo/flags"), "0x9\n");
    let host = ok(&r, &[], "ls /sys/class/net");
    assert!(host.lines().count() >= 1);
}

#[test]
fn cgroup_limits_apply_and_the_cgroup_is_removed() {
    if skip_unless_root("cgroup_limits_apply_and_the_cgroup_is_removed") {
        return;
    }
    let r = Rootfs::new();
    let v1 = Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if !v1 && !v2 {
        eprintln!("skipping cgroup_limits_apply_and_the_cgroup_is_removed: no usable cgroup hierarchy");
        return;
    }
    // Print the cgroup, then wait (on stdin) while the test reads the limits from the
    // host: a `sleep 1` there ended the container too soon under CPU load.
    let mut child = run_cmd(
        &r,
        &["-i", "--pids-limit", "5", "--memory", "64m"],
        &["sh", "-c", "cat /proc/self/cgroup; echo end; read done; exit 0"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut cgroups = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "end" {
            break;
        }
        cgroups.push(line);
    }
    let path_of = |controller: &str| -> PathBuf {
        let line = cgroups
            .iter()
            .find(|l| {
                if v2 { l.starts_with("0::") } else { l.split(':').nth(1).unwrap().split(',').any(|c| c == controller) }
            })
            .unwrap_or_else(|| panic!("no {controller} cgroup in {cgroups:?}"));
        let rel = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
        if v2 { Path::new("/sys/fs/cgroup").join(rel) } else { Path::new("/sys/fs/cgroup").join(controller).join(rel) }
    };
    let pids = path_of("pids");
    let memory = path_of("memory");
    assert!(pids.to_string_lossy().contains("berth/"), "{pids:?}");
    assert_eq!(std::fs::read_to_string(pids.join("pids.max")).unwrap().trim(), "5");
    let mem_file = if v2 { "memory.max" } else { "memory.limit_in_bytes" };
    assert_eq!(std::fs::read_to_string(memory.join(mem_file)).unwrap().trim(), (64u64 << 20).to_string());
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!pids.exists(), "{} left behind", pids.display());
    assert!(!memory.exists(), "{} left behind", memory.display());

    // The limit bites: the sixth process cannot be forked. The sleeps outlive the loop
    // (they die with pid 1), however slowly it forks.
    let (_, out, err) = sh(&r, &["--pids-limit", "5"], "for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done; echo started");
    assert!(err.contains("fork"), "no fork failure with --pids-limit 5: {out} {err}");
}

/// An unprivileged user for rootless runs (created once).
fn unprivileged_user() -> Option<(u32, u32)> {
    const NAME: &str = "berth-rootless";
    let lookup = || {
        let out = Command::new("id").args(["-u", NAME]).output().ok()?;
        let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        let out = Command::new("id").args(["-g", NAME]).output().ok()?;
        Some((uid, String::from_utf8_lossy(&out.stdout).trim().parse().ok()?))
    };
    if let Some(ids) = lookup() {
        return Some(ids);
    }
    let status =
        Command::new("useradd").args(["--system", "--no-create-home", "--shell", "/bin/sh", NAME]).status().ok()?;
    if !status.success() {
        // Another test process may have created it meanwhile.
        return lookup();
    }
    lookup()
}

#[test]
fn rootless_runs_through_a_user_namespace() {
    if skip_unless_root("rootless_runs_through_a_user_namespace") {
        return;
    }
    let Some((uid, gid)) = unprivileged_user() else {
        panic!("cannot create an unprivileged user with useradd (install passwd: `just setup` does)");
    };
    let r = Rootfs::new();
    // The checkout may sit below a directory that user cannot enter: run a copy of berth
    // from the rootfs's world-readable parent.
    let bin = r.path.parent().unwrap().join("berth");
    if std::fs::hard_link(berth_bin(), &bin).is_err() {
        std::fs::copy(berth_bin(), &bin).unwrap();
    }
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
            bin.to_str().unwrap(),
            "run",
            "--rootfs",
            r.path_str(),
            "--hostname",
            "rootless",
            "--",
            "sh",
            "-c",
            "id -u; echo $$; hostname; cat /proc/self/uid_map; ls /proc | grep -c '^[0-9]'",
        ])
        .env("HOME", "/")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv missing: install util-linux");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rootless run failed: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(&lines[..3], ["0", "1", "rootless"], "{stdout}");
    let map: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(map, ["0", &uid.to_string(), "1"]);

    // A user other than 0 has no mapping in a rootless namespace: a clear usage error.
    let out = Command::new("setpriv")
        .args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups", "--"])
        .arg(&bin)
        .args(["run", "--rootfs", r.path_str(), "-u", "alice", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn private_users_as_root_maps_a_range() {
    if skip_unless_root("private_users_as_root_maps_a_range") {
        return;
    }
    let r = Rootfs::new();
    let out = ok(&r, &["--private-users=100000:65536", "--net", "none"], "cat /proc/self/uid_map; id -u");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    assert_eq!(lines[1], "0");
}

/// crun refuses a hybrid cgroup layout without a v1 hugetlb hierarchy; mount one.
pub(crate) fn prepare_cgroups_for_crun() {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() || base.join("hugetlb/cgroup.procs").exists() {
        return;
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let cgroup_line = mounts.lines().find(|l| l.split_whitespace().nth(4) == Some("/sys/fs/cgroup"));
    if cgroup_line.is_some_and(|l| l.split_whitespace().nth(5).is_some_and(|o| o.split(',').any(|o| o == "ro"))) {
        let _ = Command::new("mount").args(["-o", "remount,rw", "/sys/fs/cgroup"]).status();
    }
    let _ = std::fs::create_dir_all(base.join("hugetlb"));
    let _ = Command::new("mount").args(["-t", "cgroup", "-o", "hugetlb", "none", "/sys/fs/cgroup/hugetlb"]).status();
}

/// Write a bundle with `flags` and `cmd`, run it with `runtime`; return its stdout.
fn run_bundle(runtime: &str, rootfs: &Rootfs, flags: &[&str], cmd: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let out = Command::new(berth_bin())
        .args(["bundle", "--rootfs", rootfs.path_str()])
        .args(flags)
        .arg(&bundle)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "berth bundle failed: {}", String::from_utf8_lossy(&out.stderr));
    let state = dir.path().join("state");
    let name = format!("berth-test-{}", std::process::id());
    let out = Command::new(runtime)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&name)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {runtime} ({e}): install it (`just setup` does)"));
    assert!(out.status.success(), "{runtime} run failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bundles_run_the_same_under_crun_and_runc() {
    if skip_unless_root("bundles_run_the_same_under_crun_and_runc") {
        return;
    }
    prepare_cgroups_for_crun();
    let r = Rootfs::new();
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "volume\n").unwrap();
    let volume = format!("{}:/data:ro", vol.path().display());
    let flags =
        ["--hostname", "interop", "-u", "alice", "-w", "/tmp", "-e", "FOO=bar", "--volume", &volume, "--net", "none"];
    let script = "echo $$; id; hostname; pwd; echo $FOO; cat /data/f; cat /etc/hostname; \
                  grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status; ls /sys/class/net; \
                  head -c 16 /proc/kcore | wc -c; touch /proc/sys/x 2>&1; ls /dev | grep -vx core";
    let cmd = ["sh", "-c", script];
    let berth = {
        let (code, out, err) = run(&r, &flags, &cmd);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert!(berth.starts_with("1\nuid=1000(alice)"), "{berth}");
    for runtime in ["crun", "runc"] {
        assert_eq!(run_bundle(runtime, &r, &flags, &cmd), berth, "{runtime} disagrees with berth run");
    }
}
