//! `berth run` and `berth bundle`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use berth::ops::{self, BundleRequest, ContainerOptions, FetchRequest, Outcome, RunRequest, Target, UsageError};
use berth::run::Network;

use super::Ctx;
use super::fetch::PullPolicyArg;
use super::progress::Progress;
use super::registry::RegistryArgs;

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
  berth run docker://busybox -- echo hello      (fetched first when not in the store)
  berth run --keep --net none oci-layout:./layout:app
  berth run --rootfs ./rootfs -- /bin/sh -c 'echo hello'
  berth run --rootfs ./rootfs -it -- sh
  berth run --rootfs ./rootfs --user nobody --net none --volume /srv/data:/data:ro -- ls /data

The exit code is the process's (128 + N when signal N killed it); 126 when the command
cannot be executed, 127 when it does not exist in the container.")]
pub struct RunArgs {
    #[command(flatten)]
    container: ContainerArgs,
    /// Keep the container's upper directory (what it changed) after it exits.
    #[arg(long)]
    keep: bool,
    /// Run in a flattened copy of the image instead of an overlay of its snapshots.
    #[arg(long)]
    no_overlay: bool,
    /// When the image is a point: never (only the store), new (fetch when not stored),
    /// update (ask the source again).
    #[arg(long, value_enum, value_name = "POLICY")]
    pull_policy: Option<PullPolicyArg>,
    /// Platform to fetch from a multi-platform index, os/arch[/variant].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// When the image is fetched: pull eStargz and zstd:chunked layers partially (only
    /// the files the store lacks), as `berth fetch --partial`.
    #[arg(long)]
    partial: bool,
    /// When the image is fetched and every layer is eStargz or zstd:chunked: start the
    /// container once the layers' tables of contents are read; files arrive in the
    /// background (a file read first is fetched first), each checked before it is read.
    /// The image is stored when the container has exited and every layer is complete.
    #[arg(long)]
    lazy: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// IMAGE [COMMAND...] — or, with --rootfs, COMMAND... (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "IMAGE|COMMAND")]
    args: Vec<String>,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  berth bundle docker://busybox ./bundle -- /bin/sh -c 'echo hello'
  berth bundle --rootfs ./rootfs ./bundle -- /bin/sh -c 'echo hello'
  crun run --bundle ./bundle demo")]
pub struct BundleArgs {
    #[command(flatten)]
    container: ContainerArgs,
    /// IMAGE OUT, or with --rootfs just OUT: the stored image to bundle (rendered into
    /// OUT/rootfs) and the bundle directory to write (`config.json`; a --rootfs is
    /// referenced, not copied).
    #[arg(value_name = "[IMAGE] OUT", num_args = 1..=2, required = true)]
    targets: Vec<PathBuf>,
    /// The command (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

impl ContainerArgs {
    fn options(&self) -> ContainerOptions {
        ContainerOptions {
            entrypoint: self.entrypoint.clone(),
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            volumes: self.volume.clone(),
            read_only: self.read_only,
            network: match self.net {
                NetArg::Host => Network::Host,
                NetArg::None => Network::None,
            },
            private_users: self.private_users.clone(),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            ulimits: self.ulimit.clone(),
            memory: self.memory.clone(),
            cpus: self.cpus,
            pids_limit: self.pids_limit,
            tty: self.tty,
            interactive: self.interactive,
        }
    }
}

pub fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (target, command) = match &args.container.rootfs {
        Some(dir) => (Target::Rootfs(dir.clone()), args.args.clone()),
        None => {
            let Some((image, command)) = args.args.split_first() else {
                return Err(UsageError::new("give an image to run, or --rootfs DIR and a command after `--`").into());
            };
            // `IMAGE -- CMD…`: clap keeps the `--` once the trailing arguments began.
            let command = command.strip_prefix(&["--".to_string()]).unwrap_or(command);
            (Target::Image(image.clone()), command.to_vec())
        }
    };
    let request = RunRequest {
        target,
        container: args.container.options(),
        command,
        keep: args.keep,
        no_overlay: args.no_overlay,
        fetch: FetchRequest {
            platform: args.platform.clone(),
            pull_policy: args.pull_policy.map(PullPolicyArg::policy),
            partial: args.partial,
            lazy: args.lazy,
            registry: args.registry.options(),
            ..FetchRequest::default()
        },
    };
    // Bars on a terminal only: stdout belongs to the container.
    let progress = Arc::new(Progress::new(false, ctx.global.quiet));
    let result = ops::run_image(&ctx.ops, &request, progress.clone());
    progress.finish();
    let ran = result?;
    if let Some(kept) = &ran.kept_changes {
        eprintln!("berth: the container's changes are kept in {}", kept.display());
    }
    let code = ran.outcome.code().clamp(0, 255) as u8;
    match ran.outcome {
        Outcome::Interrupted { signal, after_run: false } => {
            eprintln!("berth: interrupted (signal {signal}) before the container started");
        }
        Outcome::Interrupted { signal, after_run: true } => {
            eprintln!("berth: interrupted (signal {signal}) while the layers were arriving; the image was not stored");
        }
        Outcome::NotExecuted(e) => eprintln!("berth: {:#}", anyhow::Error::from(e)),
        Outcome::Exited(_) => {}
    }
    Ok(ExitCode::from(code))
}

pub fn bundle(ctx: &Ctx, args: BundleArgs) -> anyhow::Result<ExitCode> {
    let (target, out) = match (&args.container.rootfs, args.targets.as_slice()) {
        (Some(dir), [out]) => (Target::Rootfs(dir.clone()), out.clone()),
        (None, [image, out]) => (Target::Image(image.to_string_lossy().into_owned()), out.clone()),
        (Some(_), _) => return Err(UsageError::new("with --rootfs, give only the bundle directory").into()),
        (None, _) => {
            return Err(
                UsageError::new("give the image and the bundle directory (or --rootfs DIR and the directory)").into()
            );
        }
    };
    let request = BundleRequest { target, out, container: args.container.options(), command: args.command };
    ops::bundle(&ctx.ops, &request)?;
    Ok(ExitCode::SUCCESS)
}
