//! `berth run` and `berth bundle`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use std::sync::Arc;

use berth::cimd::{DistributionPoint, PointKind};
use berth::fetch::{self, FetchOptions};
use berth::policy::{DecisionPoint, PolicyError, RunFacts, VolumeFacts};
use berth::render::{self, MountedRootfs, RenderError};
use berth::run::{self, DEFAULT_CAPABILITIES, Network, Overrides, Resources, RunError, RunSpec, UserDb, UserNamespace};
use berth::store::{LockMode, RuntimeConfig, Store, StoredImage};

use super::Ctx;
use super::fetch::PullPolicyArg;
use super::progress::Progress;
use super::registry::{InsecureOption, RegistryArgs};

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

/// An image's rootfs, ready to run, and what goes with it. Dropping it unmounts the
/// rootfs and removes the container's directory (all of it, or all but `upper/` when
/// kept); the store stays locked shared until then, so no gc removes a snapshot in use.
struct ImageRootfs {
    rootfs: PathBuf,
    config: RuntimeConfig,
    canonical: String,
    /// `<root>/containers/<name>`.
    dir: PathBuf,
    mounted: Option<MountedRootfs>,
    keep: bool,
    _store: Arc<Store>,
}

impl Drop for ImageRootfs {
    fn drop(&mut self) {
        if let Some(mounted) = self.mounted.take()
            && let Err(e) = mounted.unmount()
        {
            tracing::warn!("{e}; unmounting lazily");
        }
        if self.keep {
            for sub in ["rootfs", "work", "empty"] {
                let _ = std::fs::remove_dir_all(self.dir.join(sub));
            }
            eprintln!("berth: the container's changes are kept in {}", self.dir.join("upper").display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("could not remove the container directory {}: {e}", self.dir.display());
        }
    }
}

/// Find `image` in the store, or fetch it when it is a distribution point (pull policy
/// as for `berth fetch`), then mount its rootfs under `<root>/containers/<name>`: an
/// overlay of its snapshots and a fresh upper directory, or a flattened copy when overlay
/// cannot be used (not root, `--no-overlay`, or a hardlink into a lower layer).
fn rootfs_for_image(ctx: &Ctx, args: &RunArgs, image: &str, name: &str) -> anyhow::Result<ImageRootfs> {
    let store = ctx.open_store(LockMode::Shared)?;
    let stored = match ctx.find(&store, image) {
        Ok(found) if !matches!(args.pull_policy, Some(PullPolicyArg::Update)) => found,
        found => {
            let Ok(point) = ctx.point(image) else {
                return Err(found.err().unwrap_or_else(|| anyhow::anyhow!("{image:?} is not a stored image")));
            };
            fetch_for_run(ctx, args, &store, &point)?
        }
    };
    let dir = render::containers_root(&store).join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut prepared = ImageRootfs {
        rootfs: dir.join("rootfs"),
        config: stored.record.runtime.clone(),
        canonical: stored.record.canonical.clone(),
        dir,
        mounted: None,
        keep: args.keep,
        _store: store.clone(),
    };
    let overlay = !args.no_overlay && rustix::process::geteuid().is_root();
    let overlay_error = if overlay {
        match render::mount_rootfs(&store, &stored, &prepared.dir) {
            Ok(mounted) => {
                prepared.mounted = Some(mounted);
                return Ok(prepared);
            }
            Err(e @ RenderError::LowerHardlink { .. }) => Some(e),
            Err(e) => return Err(anyhow::Error::from(e).context(format!("rendering {}", stored.record.canonical))),
        }
    } else {
        None
    };
    if let Some(e) = overlay_error {
        tracing::info!("{e}; rendering a flattened copy instead");
        let _ = std::fs::remove_dir(&prepared.rootfs);
    }
    render::flatten(&store, &stored, &prepared.rootfs)
        .with_context(|| format!("rendering {} into {}", stored.record.canonical, prepared.rootfs.display()))?;
    Ok(prepared)
}

/// `berth run` of a point that is not in the store yet (or with `--pull-policy update`).
fn fetch_for_run(
    ctx: &Ctx,
    args: &RunArgs,
    store: &Arc<Store>,
    point: &DistributionPoint,
) -> anyhow::Result<StoredImage> {
    let mut options = FetchOptions::default();
    if let Some(p) = &args.platform {
        options.platform = fetch::parse_platform(p)
            .ok_or_else(|| anyhow::anyhow!("--platform {p:?} is not os/arch[/variant], e.g. linux/arm64/v8"))?;
    }
    options.pull_policy = args.pull_policy.map(PullPolicyArg::policy);
    if matches!(point.kind(), PointKind::Docker | PointKind::Oci | PointKind::Appc | PointKind::AciArchive) {
        options.http = Some(args.registry.client()?);
    }
    options.insecure_image = args.registry.insecure(InsecureOption::Image);
    options.policy = ctx.policy(true)?;
    options.dropins = Some(ctx.dropins());
    let sandbox = ctx.sandbox()?;
    // Bars on a terminal only: stdout belongs to the container.
    let progress = Arc::new(Progress::new(false, ctx.global.quiet));
    let result = fetch::fetch(store, &sandbox, point, &options, progress.clone());
    progress.finish();
    let fetched = result?;
    store
        .resolve_ref(&fetched.record.canonical)?
        .with_context(|| format!("{} was fetched but is not in the store", fetched.record.canonical))
}

/// The before-run decision of the configured policy, if there is one.
fn check_policy(ctx: &Ctx, image: &str, spec: &RunSpec, configured_user: &str) -> anyhow::Result<()> {
    let Some(policy) = ctx.policy(true)? else { return Ok(()) };
    let facts = RunFacts {
        image: image.to_string(),
        user: if configured_user.is_empty() { spec.process.user.uid.to_string() } else { configured_user.to_string() },
        uid: spec.process.user.uid,
        capabilities: spec.capabilities.iter().filter_map(|c| run::capability_name(*c)).map(String::from).collect(),
        volumes: spec
            .volumes
            .iter()
            .map(|v| VolumeFacts {
                source: v.host.display().to_string(),
                target: v.container.clone(),
                read_only: v.read_only,
            })
            .collect(),
        network: match spec.network {
            Network::Host => "host".into(),
            Network::None => "none".into(),
        },
        read_only_rootfs: spec.read_only,
    };
    let evaluated = policy.evaluate(&DecisionPoint::BeforeRun(facts));
    if !evaluated.decision.allow {
        return Err(PolicyError::Denied {
            policy: policy.digest().to_string(),
            stage: "before-run",
            subject: image.to_string(),
            reasons: evaluated.decision.reasons,
        }
        .into());
    }
    Ok(())
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
    name: String,
) -> anyhow::Result<RunSpec> {
    let rootfs = std::path::absolute(&rootfs).with_context(|| format!("resolving {}", rootfs.display()))?;
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
    // Before fetch and render start threads: see SignalMask.
    let signals = run::SignalMask::block();
    let name = new_name().context("generating a container name")?;
    let (image, command) = match &args.container.rootfs {
        Some(_) => (None, args.args.clone()),
        None => {
            let Some((image, command)) = args.args.split_first() else {
                anyhow::bail!("give an image to run, or --rootfs DIR and a command after `--`");
            };
            // `IMAGE -- CMD…`: clap keeps the `--` once the trailing arguments began.
            let command = command.strip_prefix(&["--".to_string()]).unwrap_or(command);
            (Some(image.clone()), command.to_vec())
        }
    };
    let prepared = match &image {
        Some(image) => Some(rootfs_for_image(ctx, &args, image, &name)?),
        None => None,
    };
    let (rootfs, config, subject) = match (&prepared, &args.container.rootfs) {
        (Some(p), _) => (p.rootfs.clone(), p.config.clone(), p.canonical.clone()),
        (None, Some(dir)) => (dir.clone(), RuntimeConfig::default(), dir.display().to_string()),
        (None, None) => unreachable!("an image or --rootfs"),
    };
    let spec = build_spec(&args.container, rootfs, &config, command, name)?;
    let configured_user = args.container.user.clone().or(config.user.clone()).unwrap_or_default();
    check_policy(ctx, &subject, &spec, &configured_user)?;
    if let Some(signal) = signals.take_termination() {
        // ^C while fetching or rendering: stop before the container starts.
        eprintln!("berth: interrupted (signal {signal}) before the container started");
        return Ok(ExitCode::from(128 + signal as u8));
    }
    let outcome = run::launch(&spec);
    drop(prepared);
    match outcome {
        Ok(status) => Ok(ExitCode::from(status.code().clamp(0, 255) as u8)),
        Err(e @ RunError::Exec { .. }) => {
            let code = if e.kind() == berth::ErrorKind::NotFound { 127 } else { 126 };
            eprintln!("berth: {:#}", anyhow::Error::from(e));
            Ok(ExitCode::from(code))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn bundle(ctx: &Ctx, args: BundleArgs) -> anyhow::Result<ExitCode> {
    let name = new_name().context("generating a container name")?;
    let (rootfs, config, out) = match (&args.container.rootfs, args.targets.as_slice()) {
        (Some(dir), [out]) => (dir.clone(), RuntimeConfig::default(), out.clone()),
        (None, [image, out]) => {
            // The bundle owns its rootfs: a flattened copy at <out>/rootfs.
            let store = ctx.open_store(LockMode::Shared)?;
            let stored = ctx.find(&store, &image.to_string_lossy())?;
            let rootfs = out.join("rootfs");
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            render::flatten(&store, &stored, &rootfs)
                .with_context(|| format!("rendering {} into {}", stored.record.canonical, rootfs.display()))?;
            (rootfs, stored.record.runtime.clone(), out.clone())
        }
        (Some(_), _) => anyhow::bail!("with --rootfs, give only the bundle directory"),
        (None, _) => anyhow::bail!("give the image and the bundle directory (or --rootfs DIR and the directory)"),
    };
    let spec = build_spec(&args.container, rootfs, &config, args.command, name)?;
    run::write_bundle(&spec, &out)?;
    Ok(ExitCode::SUCCESS)
}
