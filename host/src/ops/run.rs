//! `run` and `bundle`: an image (found, or fetched first) or a rootfs, as a container.
//!
//! The pipeline of `run IMAGE`: find the image in the store or fetch it (the pull
//! policy decides), mount its rootfs (an overlay of its layer snapshots and a fresh
//! upper directory, or a flattened copy where overlay cannot be used), build the
//! [`RunSpec`] from its config and the caller's options, ask the policy before the run,
//! launch. The container's directory (`<root>/containers/<name>`) is removed when the
//! process ends, except its `upper/` when kept.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::io;
use super::fetch::{FetchRequest, fetch_point};
use super::{Context, Doing, Error, UsageError};
use crate::ErrorKind;
use crate::HasKind;
use crate::fetch::PullPolicy;
use crate::policy::DecisionPoint;
use crate::render::{self, MountedRootfs, RenderError};
use crate::run::{
    self, DEFAULT_CAPABILITIES, ExitStatus, Network, Overrides, Resources, RunError, RunSpec, UserDb, UserNamespace,
};
use crate::store::{IngestObserver, LockMode, RuntimeConfig, Store, StoredImage};

/// How the container runs, as the user asked: shared by `run` and `bundle`.
#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// Replaces the image's entrypoint (and clears its cmd); empty: no entrypoint.
    pub entrypoint: Option<String>,
    /// `KEY=value`, or `KEY` to pass berth's own value; after the env files.
    pub env: Vec<String>,
    /// Files of `KEY=value` lines.
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    /// `USER[:GROUP]`, names or ids.
    pub user: Option<String>,
    /// Default: the container's name.
    pub hostname: Option<String>,
    /// `HOST:CONTAINER[:ro]`.
    pub volumes: Vec<String>,
    pub read_only: bool,
    pub network: Network,
    /// `BASE[:COUNT]`: a user namespace even as root.
    pub private_users: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `NAME=SOFT[:HARD]`.
    pub ulimits: Vec<String>,
    /// `512m`, …
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub tty: bool,
    pub interactive: bool,
}

/// What runs: a stored image (or a point to fetch), or a directory.
#[derive(Debug, Clone)]
pub enum Target {
    Image(String),
    Rootfs(PathBuf),
}

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub target: Target,
    pub container: ContainerOptions,
    /// Replaces the image's cmd (follows the entrypoint).
    pub command: Vec<String>,
    /// Keep the container's upper directory after it exits.
    pub keep: bool,
    /// A flattened copy instead of an overlay of snapshots.
    pub no_overlay: bool,
    /// How to fetch an image that is not stored (or with `PullPolicy::Update`).
    pub fetch: FetchRequest,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// The process ran and exited (or a signal killed it).
    Exited(ExitStatus),
    /// A termination signal arrived while the image was being fetched or rendered (the
    /// container never started), or, `after_run`, while a lazy run waited for its layers
    /// after the container had exited (the image was not stored).
    Interrupted { signal: i32, after_run: bool },
    /// The container was set up but its command could not be executed.
    NotExecuted(RunError),
}

impl Outcome {
    /// The shell's convention: the process's code (128 + N for signal N); 127 when the
    /// command does not exist, 126 when it cannot be executed.
    pub fn code(&self) -> i32 {
        match self {
            Outcome::Exited(status) => status.code(),
            Outcome::Interrupted { signal, .. } => 128 + signal,
            Outcome::NotExecuted(e) if e.kind() == ErrorKind::NotFound => 127,
            Outcome::NotExecuted(_) => 126,
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Ran {
    pub outcome: Outcome,
    /// The canonical point of the image, or the rootfs path.
    pub subject: String,
    /// Where the container's changes were kept (`keep`).
    pub kept_changes: Option<PathBuf>,
}

/// Run a container. Signals that would end berth (SIGINT, SIGTERM, SIGHUP, SIGQUIT) are
/// blocked from here on and forwarded to the container once it runs.
pub fn run_image(ctx: &Context, request: &RunRequest, observer: Arc<dyn IngestObserver>) -> Result<Ran, Error> {
    // Before fetch and render start threads: see SignalMask.
    let signals = run::SignalMask::block();
    let name = new_name()?;
    let mut prepared = match &request.target {
        Target::Image(image) => Some(prepare_rootfs(ctx, request, image, &name, observer)?),
        Target::Rootfs(_) => None,
    };
    let (rootfs, config, subject) = match (&prepared, &request.target) {
        (Some(p), _) => (p.rootfs.clone(), p.config.clone(), p.canonical.clone()),
        (None, Target::Rootfs(dir)) => (dir.clone(), RuntimeConfig::default(), dir.display().to_string()),
        (None, Target::Image(_)) => unreachable!("an image target is prepared"),
    };
    let spec = build_spec(&request.container, rootfs, &config, request.command.clone(), name)?;
    let configured_user = request.container.user.clone().or(config.user.clone()).unwrap_or_default();
    if let Some(policy) = ctx.policy(true)? {
        policy.require(&DecisionPoint::BeforeRun(crate::policy::facts::run(&subject, &spec, &configured_user)))?;
    }
    let kept_changes = prepared.as_ref().filter(|p| p.keep).map(|p| p.dir.join("upper"));
    if let Some(signal) = signals.take_termination() {
        return Ok(Ran { outcome: Outcome::Interrupted { signal, after_run: false }, subject, kept_changes });
    }
    let launched = run::launch(&spec);
    let pending = prepared.as_mut().and_then(|p| p.pending.take());
    drop(prepared);
    if let Some(pending) = pending {
        // The image is stored only now, complete; a layer that did not arrive fails the
        // run even when the container never read it. A termination signal (the container
        // is gone: it is berth's) stops the wait, and nothing is stored.
        let interrupted = std::cell::Cell::new(None);
        let give_up = || {
            if let Some(signal) = signals.take_termination() {
                interrupted.set(Some(signal));
            }
            interrupted.get().is_some()
        };
        if let Err(e) = pending.finish(&give_up) {
            if let Some(signal) = interrupted.get() {
                tracing::warn!("{e}");
                return Ok(Ran { outcome: Outcome::Interrupted { signal, after_run: true }, subject, kept_changes });
            }
            match &launched {
                Ok(status) => tracing::error!("the container exited ({}), but its image was not stored", status.code()),
                Err(_) => tracing::error!("the container did not run, and its image was not stored"),
            }
            return Err(e.into());
        }
    }
    let outcome = match launched {
        Ok(status) => Outcome::Exited(status),
        Err(e @ RunError::Exec { .. }) => Outcome::NotExecuted(e),
        Err(e) => return Err(e.into()),
    };
    Ok(Ran { outcome, subject, kept_changes })
}

/// An image's rootfs, ready to run, and what goes with it. Dropping it unmounts the
/// rootfs and removes the container's directory (all of it, or all but `upper/` when
/// kept); the store stays locked shared until then, so no gc removes a snapshot in use.
struct ContainerRootfs {
    rootfs: PathBuf,
    config: RuntimeConfig,
    canonical: String,
    /// `<root>/containers/<name>`.
    dir: PathBuf,
    mounted: Option<MountedRootfs>,
    /// A lazy run's layer mounts (below the overlay), bottom layer first.
    layer_mounts: Vec<crate::lazy::LayerMount>,
    /// A lazy run's image, stored once its layers are complete.
    pending: Option<crate::fetch::Pending>,
    keep: bool,
    /// Held while it runs: `gc` tells a live container from a killed run's leftovers.
    _claim: super::containers::Claim,
    _store: Arc<Store>,
}

impl ContainerRootfs {
    /// `<root>/containers/<name>`, made and claimed for a run of `record`; nothing
    /// mounted yet.
    fn claim(
        ctx: &Context,
        store: &Arc<Store>,
        record: &crate::store::ImageRecord,
        name: &str,
        keep: bool,
    ) -> Result<ContainerRootfs, Error> {
        let dir = ctx.root().join("containers").join(name);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let info = super::containers::ContainerInfo {
            name: name.to_string(),
            image: record.canonical.clone(),
            digest: record.manifest.digest.to_string(),
            pid: std::process::id(),
        };
        let claim = super::containers::claim(&dir, &info)?;
        Ok(ContainerRootfs {
            rootfs: dir.join("rootfs"),
            config: record.runtime.clone(),
            canonical: record.canonical.clone(),
            dir,
            mounted: None,
            layer_mounts: Vec::new(),
            pending: None,
            keep,
            _claim: claim,
            _store: store.clone(),
        })
    }
}

impl Drop for ContainerRootfs {
    fn drop(&mut self) {
        if let Some(mounted) = self.mounted.take()
            && let Err(e) = mounted.unmount()
        {
            tracing::warn!("{e}; unmounting lazily");
        }
        // Below the overlay, so after it.
        self.layer_mounts.clear();
        if self.keep {
            for sub in ["rootfs", "work", "empty"] {
                let _ = std::fs::remove_dir_all(self.dir.join(sub));
            }
            super::containers::release(&self.dir);
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("could not remove the container directory {}: {e}", self.dir.display());
        }
    }
}

/// Find `image` in the store, or fetch it when it is a distribution point (pull policy
/// as for `fetch`), then mount its rootfs under `<root>/containers/<name>`: an overlay
/// of its snapshots and a fresh upper directory, or a flattened copy when overlay cannot
/// be used (not root, `no_overlay`, or a hardlink into a lower layer).
fn prepare_rootfs(
    ctx: &Context,
    request: &RunRequest,
    image: &str,
    name: &str,
    observer: Arc<dyn IngestObserver>,
) -> Result<ContainerRootfs, Error> {
    let store = ctx.open_store(LockMode::Shared)?;
    store.observe_layer_reads(observer.clone());
    let stored = match ctx.find_image(&store, image) {
        Ok(found) if request.fetch.pull_policy != Some(PullPolicy::Update) => found,
        found => {
            let Ok(point) = ctx.point(image) else {
                return Err(found
                    .err()
                    .unwrap_or_else(|| UsageError::new(format!("{image:?} is not a stored image")).into()));
            };
            let fetched = fetch_point(ctx, &store, &point, &request.fetch, observer)
                .doing(|| format!("{image:?} is not a stored image, so berth tried to fetch it"))?;
            if let Some(pending) = fetched.pending {
                return mount_lazy_rootfs(ctx, &store, pending, name, request.keep);
            }
            store
                .resolve_ref(&fetched.record.canonical)?
                .ok_or_else(|| crate::store::StoreError::ImageNotFound(fetched.record.canonical.clone()))?
        }
    };
    mount_container_rootfs(ctx, &store, &stored, name, request.keep, request.no_overlay)
}

fn mount_container_rootfs(
    ctx: &Context,
    store: &Arc<Store>,
    stored: &StoredImage,
    name: &str,
    keep: bool,
    no_overlay: bool,
) -> Result<ContainerRootfs, Error> {
    let mut prepared = ContainerRootfs::claim(ctx, store, &stored.record, name, keep)?;
    let overlay = !no_overlay && rustix::process::geteuid().is_root();
    if overlay {
        match render::mount_rootfs(store, stored, &prepared.dir) {
            Ok(mounted) => {
                prepared.mounted = Some(mounted);
                return Ok(prepared);
            }
            Err(e @ RenderError::LowerHardlink { .. }) => {
                tracing::info!("{e}; rendering a flattened copy instead");
                let _ = std::fs::remove_dir(&prepared.rootfs);
            }
            Err(e) => return Err(e).doing(|| format!("rendering {}", stored.record.canonical)),
        }
    }
    render::flatten(store, stored, &prepared.rootfs)
        .doing(|| format!("rendering {} into {}", stored.record.canonical, prepared.rootfs.display()))?;
    Ok(prepared)
}

/// A lazy run's rootfs: each layer's FUSE mount (serving it while it arrives) under
/// `<dir>/lazy/<i>`, and an overlay of them with a fresh upper directory.
fn mount_lazy_rootfs(
    ctx: &Context,
    store: &Arc<Store>,
    pending: crate::fetch::Pending,
    name: &str,
    keep: bool,
) -> Result<ContainerRootfs, Error> {
    let record = pending.record();
    let mut prepared = ContainerRootfs::claim(ctx, store, record, name, keep)?;
    let dir = prepared.dir.clone();
    for (i, pull) in pending.pulls().iter().enumerate() {
        let at = dir.join("lazy").join(i.to_string());
        std::fs::create_dir_all(&at).map_err(io("creating", &at))?;
        prepared.layer_mounts.push(crate::lazy::mount(pull.clone(), &at)?);
    }
    let lowers: Vec<PathBuf> = prepared.layer_mounts.iter().map(|m| m.path().to_path_buf()).collect();
    let mounted = render::mount_overlay(&lowers, &dir, Default::default())
        .doing(|| format!("mounting the lazily pulled layers of {}", record.canonical))?;
    prepared.mounted = Some(mounted);
    prepared.pending = Some(pending);
    Ok(prepared)
}

/// `bundle`: what runc or crun need to run the container `run` would start.
#[derive(Debug, Clone)]
pub struct BundleRequest {
    /// A stored image (rendered, flattened, into `out/rootfs`), or a rootfs referenced
    /// in place.
    pub target: Target,
    /// The bundle directory (`config.json` is written there).
    pub out: PathBuf,
    pub container: ContainerOptions,
    pub command: Vec<String>,
}

/// Write an OCI runtime bundle; returns the rootfs it names.
pub fn bundle(ctx: &Context, request: &BundleRequest) -> Result<PathBuf, Error> {
    let name = new_name()?;
    let out = &request.out;
    let (rootfs, config) = match &request.target {
        Target::Rootfs(dir) => (dir.clone(), RuntimeConfig::default()),
        Target::Image(image) => {
            // The bundle owns its rootfs: a flattened copy at <out>/rootfs.
            let store = ctx.open_store(LockMode::Shared)?;
            let stored = ctx.find_image(&store, image)?;
            let rootfs = out.join("rootfs");
            std::fs::create_dir_all(out).map_err(io("creating", out))?;
            render::flatten(&store, &stored, &rootfs)
                .doing(|| format!("rendering {} into {}", stored.record.canonical, rootfs.display()))?;
            (rootfs, stored.record.runtime.clone())
        }
    };
    let spec = build_spec(&request.container, rootfs.clone(), &config, request.command.clone(), name)?;
    run::write_bundle(&spec, out)?;
    Ok(rootfs)
}

/// A fresh container name: 12 hex characters.
fn new_name() -> Result<String, Error> {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(io("reading", "/dev/urandom"))?;
    Ok(hex::encode(bytes))
}

/// The capability set: the defaults, less `cap_drop`, plus `cap_add` (`ALL` in either
/// means every capability).
pub fn capabilities(options: &ContainerOptions) -> Result<Vec<u32>, RunError> {
    let mut set: Vec<u32> = DEFAULT_CAPABILITIES.iter().filter_map(|c| run::capability_number(c)).collect();
    let is_all = |c: &String| c.eq_ignore_ascii_case("all");
    if options.cap_drop.iter().any(is_all) {
        set.clear();
    }
    if options.cap_add.iter().any(is_all) {
        set = run::all_capabilities();
    }
    for c in options.cap_drop.iter().filter(|c| !is_all(c)) {
        let n = run::parse_capability("--cap-drop", c)?;
        set.retain(|x| *x != n);
    }
    for c in options.cap_add.iter().filter(|c| !is_all(c)) {
        let n = run::parse_capability("--cap-add", c)?;
        if !set.contains(&n) {
            set.push(n);
        }
    }
    set.sort_unstable();
    Ok(set)
}

/// Build the run spec from the options, a rootfs and its image config.
fn build_spec(
    options: &ContainerOptions,
    rootfs: PathBuf,
    config: &RuntimeConfig,
    command: Vec<String>,
    name: String,
) -> Result<RunSpec, Error> {
    let rootfs = std::path::absolute(&rootfs).map_err(io("resolving", &rootfs))?;
    let hostname = options.hostname.clone().unwrap_or_else(|| name.clone());
    let mut env = Vec::new();
    for file in &options.env_files {
        let text = std::fs::read_to_string(file).map_err(io("reading the env file", file))?;
        env.extend(run::parse_env_file(&text));
    }
    env.extend(options.env.iter().cloned());
    let overrides = Overrides {
        entrypoint: options.entrypoint.as_ref().map(|e| if e.is_empty() { Vec::new() } else { vec![e.clone()] }),
        cmd: command,
        env,
        workdir: options.workdir.clone(),
        user: options.user.clone(),
        hostname: Some(hostname.clone()),
        terminal: options.tty,
        stdin: options.interactive,
    };
    let users = UserDb::read_in_root(&rootfs)?;
    let process = run::process_from_image(config, &overrides, &users, &hostname)?;
    let user_namespace = match &options.private_users {
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
        volumes: options.volumes.iter().map(|v| run::parse_volume(v)).collect::<Result<_, _>>()?,
        read_only: options.read_only,
        network: options.network,
        user_namespace,
        capabilities: capabilities(options)?,
        rlimits: options.ulimits.iter().map(|u| run::parse_rlimit(u)).collect::<Result<_, _>>()?,
        resources: Resources {
            memory: options.memory.as_deref().map(run::parse_size).transpose()?,
            cpus: options.cpus,
            pids: options.pids_limit,
        },
    })
}
