//! `berth run` and `berth bundle`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use berth::run::{self, DEFAULT_CAPABILITIES, Network, Overrides, Resources, RunError, RunSpec, UserDb, UserNamespace};
use berth::store::RuntimeConfig;

use super::Ctx;

/// How the container runs: shared by `berth run` and `berth bundle`.
#[derive(clap::Args, Debug)]
pub struct ContainerArgs {
    /// Run in this directory (an exploded root file system) instead of an image.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Replace the image's entrypoint (and clear its cmd); arguments after `--` follow it.
    #[arg(long, visible_alias = "exec", value_name = "PROGRAM")]
    entrypoint: Option<String>,
    /// Set an environment variable (`KEY=value`, or `KEY` to pass berth's own value).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read environment variables from a file (`KEY=value` lines, `#` comments).
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// User and group inside the container: names (from the rootfs's /etc/passwd and
    /// /etc/group) or ids.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// The container's hostname (default: its generated name).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Bind a host path into the container (`ro` for read-only). No `-v`: that is --verbose.
    #[arg(long, value_name = "HOST:CONTAINER[:ro]")]
    volume: Vec<String>,
    /// Mount the rootfs read-only (berth then never writes to it).
    #[arg(long)]
    read_only: bool,
    /// Network: the host's, or a new namespace with only loopback.
    #[arg(long, visible_alias = "network", value_enum, default_value = "host")]
    net: NetArg,
    /// Use a user namespace even as root: container ids 0..COUNT map to host ids
    /// BASE..BASE+COUNT (default 0:65536). Rootless runs always get one.
    #[arg(long, value_name = "BASE[:COUNT]", num_args = 0..=1, default_missing_value = "0:65536")]
    private_users: Option<String>,
    /// Add a capability to the default set (`ALL` for every one).
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,
    /// Remove a capability from the default set (`ALL` for every one).
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Set a resource limit, e.g. nofile=1024:2048.
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    ulimit: Vec<String>,
    /// Memory limit (cgroup), e.g. 512m.
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    /// CPU limit (cgroup), e.g. 0.5.
    #[arg(long, value_name = "CPUS")]
    cpus: Option<f64>,
    /// Maximum number of processes (cgroup).
    #[arg(long, value_name = "N")]
    pids_limit: Option<i64>,
    /// Give the process a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Keep stdin open (otherwise the process reads /dev/null).
    #[arg(short, long)]
    interactive: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum NetArg {
    Host,
    None,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  berth run --rootfs ./rootfs -- /bin/sh -c 'echo hello'
  berth run --rootfs ./rootfs -it -- sh
  berth run --rootfs ./rootfs --user nobody --net none --volume /srv/data:/data:ro -- ls /data

The exit code is the process's (128 + N when signal N killed it); 126 when the command
cannot be executed, 127 when it does not exist in the container.")]
pub struct RunArgs {
    #[command(flatten)]
    container: ContainerArgs,
    /// IMAGE [COMMAND...] — or, with --rootfs, COMMAND... (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "IMAGE|COMMAND")]
    args: Vec<String>,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  berth bundle --rootfs ./rootfs ./bundle -- /bin/sh -c 'echo hello'
  crun run --bundle ./bundle demo")]
pub struct BundleArgs {
    #[command(flatten)]
    container: ContainerArgs,
    /// The bundle directory to write (`config.json`; the rootfs is referenced, not copied).
    out: PathBuf,
    /// The command (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// A rootfs ready to run, and the image config that goes with it.
pub struct ImageRootfs {
    pub rootfs: PathBuf,
    pub config: RuntimeConfig,
}

/// Render `image` and mount it (overlay of its snapshots + a fresh upper dir).
///
/// The seam for render: fill this in when `render` lands; everything after it (user
/// lookup, overrides, launch, bundle) already works on the returned rootfs. The returned
/// value should also own whatever unmounts and removes the rootfs when dropped.
fn rootfs_for_image(_ctx: &Ctx, image: &str) -> anyhow::Result<ImageRootfs> {
    anyhow::bail!(
        "rendering images is not available yet, so {image:?} cannot be run: run an exploded root file system with --rootfs DIR"
    )
}

/// A fresh container name: 12 hex characters.
fn new_name() -> anyhow::Result<String> {
    let mut bytes = [0u8; 6];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(hex::encode(bytes))
}

fn capabilities(args: &ContainerArgs) -> anyhow::Result<Vec<u32>> {
    let mut set: Vec<u32> = DEFAULT_CAPABILITIES.iter().filter_map(|c| run::capability_number(c)).collect();
    let is_all = |c: &String| c.eq_ignore_ascii_case("all");
    if args.cap_drop.iter().any(is_all) {
        set.clear();
    }
    if args.cap_add.iter().any(is_all) {
        set = run::all_capabilities();
    }
    for c in args.cap_drop.iter().filter(|c| !is_all(c)) {
        let n = run::parse_capability("--cap-drop", c)?;
        set.retain(|x| *x != n);
    }
    for c in args.cap_add.iter().filter(|c| !is_all(c)) {
        let n = run::parse_capability("--cap-add", c)?;
        if !set.contains(&n) {
            set.push(n);
        }
    }
    set.sort_unstable();
    Ok(set)
}

/// Build the run spec from the flags, a rootfs and its image config.
fn build_spec(
    args: &ContainerArgs,
    rootfs: PathBuf,
    config: &RuntimeConfig,
    command: Vec<String>,
) -> anyhow::Result<RunSpec> {
    let rootfs = std::path::absolute(&rootfs).with_context(|| format!("resolving {}", rootfs.display()))?;
    let name = new_name().context("generating a container name")?;
    let hostname = args.hostname.clone().unwrap_or_else(|| name.clone());
    let mut env = Vec::new();
    for file in &args.env_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading the env file {}", file.display()))?;
        env.extend(run::parse_env_file(&text));
    }
    env.extend(args.env.iter().cloned());
    let overrides = Overrides {
        entrypoint: args.entrypoint.as_ref().map(|e| if e.is_empty() { Vec::new() } else { vec![e.clone()] }),
        cmd: command,
        env,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        hostname: Some(hostname.clone()),
        terminal: args.tty,
        stdin: args.interactive,
    };
    let users = UserDb::read_in_root(&rootfs)?;
    let process = run::process_from_image(config, &overrides, &users, &hostname)?;
    let user_namespace = match &args.private_users {
        None => UserNamespace::Auto,
        Some(text) => {
            let bad =
                || RunError::BadOption { option: "--private-users", value: text.clone(), expected: "BASE[:COUNT]" };
            let (base, count) = text.split_once(':').unwrap_or((text, "65536"));
            UserNamespace::Private {
                host_base: base.parse().map_err(|_| bad())?,
                count: count.parse().ok().filter(|c| *c > 0).ok_or_else(bad)?,
            }
        }
    };
    Ok(RunSpec {
        name,
        rootfs,
        process,
        hostname,
        volumes: args.volume.iter().map(|v| run::parse_volume(v)).collect::<Result<_, _>>()?,
        read_only: args.read_only,
        network: match args.net {
            NetArg::Host => Network::Host,
            NetArg::None => Network::None,
        },
        user_namespace,
        capabilities: capabilities(args)?,
        rlimits: args.ulimit.iter().map(|u| run::parse_rlimit(u)).collect::<Result<_, _>>()?,
        resources: Resources {
            memory: args.memory.as_deref().map(run::parse_size).transpose()?,
            cpus: args.cpus,
            pids: args.pids_limit,
        },
    })
}

pub fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (rootfs, config, command, _image) = match &args.container.rootfs {
        Some(dir) => (dir.clone(), RuntimeConfig::default(), args.args, None),
        None => {
            let Some((image, command)) = args.args.split_first() else {
                anyhow::bail!("give an image to run, or --rootfs DIR and a command after `--`");
            };
            let prepared = rootfs_for_image(ctx, image)?;
            (prepared.rootfs.clone(), prepared.config.clone(), command.to_vec(), Some(prepared))
        }
    };
    let spec = build_spec(&args.container, rootfs, &config, command)?;
    match run::launch(&spec) {
        Ok(status) => Ok(ExitCode::from(status.code().clamp(0, 255) as u8)),
        Err(e @ RunError::Exec { .. }) => {
            let code = if e.kind() == berth::ErrorKind::NotFound { 127 } else { 126 };
            eprintln!("berth: {:#}", anyhow::Error::from(e));
            Ok(ExitCode::from(code))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn bundle(_ctx: &Ctx, args: BundleArgs) -> anyhow::Result<ExitCode> {
    let Some(rootfs) = args.container.rootfs.clone() else {
        anyhow::bail!("bundles of images need render, which is not available yet: give --rootfs DIR");
    };
    let spec = build_spec(&args.container, rootfs, &RuntimeConfig::default(), args.command)?;
    run::write_bundle(&spec, &args.out)?;
    Ok(ExitCode::SUCCESS)
}
