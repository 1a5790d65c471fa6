//! Operations: one function per user-visible verb, the one library path every front end
//! takes (the `berth` command, `berth serve`, the OCI runtime CLI).
//!
//! An operation takes a [`Context`] (where the store is, which policy applies) and a
//! plain options struct, makes every decision the verb involves (which image, fetch or
//! not, overlay or flattened, which policy decision points), and returns a typed result
//! for the caller to show. It never prints: progress reaches the caller through an
//! [`IngestObserver`](crate::store::IngestObserver), notices through the context.
//!
//! Glossary:
//! - *context*: the store root, the policy configuration and how to tell the user that
//!   the store is busy; cheap to build, opened lazily by each operation.
//! - *request*: an operation's options, as plain data (`FetchRequest`, `RunRequest`, …).
//! - *input*: what a user typed to name an image: a distribution point (friendly or
//!   canonical), a digest, or an ID prefix; [`Context::find_image`] resolves it.

mod containers;
mod error;
mod fetch;
mod handler;
mod image;
mod info;
mod policy;
mod registry;
mod render;
mod run;
mod runtime;
mod serve;
mod store;
mod trust;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use containers::{ContainerInfo, Found, containers};
pub use error::{Doing, Error, UsageError};
pub use fetch::{FetchRequest, RegistryOptions, fetch, parse_platform_option};
pub use handler::{
    HandlerRow, add_handler, handler_keys, inspect_handler, list_handlers, remove_handler, remove_handler_key,
    trust_handler_key, verify_handlers,
};
pub use image::{Removal, Removed, cat_manifest, inspect_image, list_images, remove_images};
pub use info::{DiskUsage, HandlerVersion, Info, Usage, disk_usage, info};
pub use policy::{EvalRequest, Evaluation, evaluate_policy};
pub use registry::{LoginRequest, login, logout};
pub use render::{Exported, Rendered, Verified, export, extract, render, verify};
pub use run::{BundleRequest, ContainerOptions, Outcome, Ran, RunRequest, Target, bundle, capabilities, run_image};
pub use runtime::{
    CreateRequest, parse_signal, runtime_create, runtime_delete, runtime_features, runtime_kill, runtime_list,
    runtime_ps, runtime_start, runtime_state,
};
pub use serve::{PushedManifest, record_push, serve};
pub use store::{Checked, Collected, Reset, fsck, gc, system_reset};
pub use trust::{KeyReview, TrustAdd, Trusted, discover_keys, list_trusted_keys, remove_trusted_key, trust_keys};

use crate::cimd::{self, DistributionPoint};
use crate::fetch::DropIns;
use crate::fetch::dropin;
use crate::policy::Policy;
use crate::sandbox::Sandbox;
use crate::store::{LockMode, Store, StoredImage};
use crate::trust::HandlerKeyring;

/// Told, before an operation waits for another berth process, what it waits for.
pub type WaitNotice = Arc<dyn Fn(&str) + Send + Sync>;

/// Where the policy comes from: a file (`--policy`), a component (`--policy-component`),
/// or, when neither is given, the first default policy file that exists.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    pub file: Option<PathBuf>,
    pub component: Option<PathBuf>,
}

/// What every operation needs: the store root and the policy configuration.
#[derive(Clone)]
pub struct Context {
    root: PathBuf,
    policy: PolicyConfig,
    on_wait: Option<WaitNotice>,
}

impl Context {
    /// A context for the store at `root`, or at the default root when `None`:
    /// `/var/lib/berth` as root, else `$XDG_DATA_HOME/berth` (`~/.local/share/berth`).
    pub fn new(root: Option<PathBuf>) -> Context {
        Context { root: root.unwrap_or_else(default_root), policy: PolicyConfig::default(), on_wait: None }
    }

    pub fn with_policy(mut self, policy: PolicyConfig) -> Context {
        self.policy = policy;
        self
    }

    /// Tell the user when an operation waits for another berth process.
    pub fn with_wait_notice(mut self, notice: WaitNotice) -> Context {
        self.on_wait = Some(notice);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Open the store, waiting for a conflicting lock holder.
    pub fn open_store(&self, mode: LockMode) -> Result<Arc<Store>, Error> {
        let root = self.root.clone();
        self.open_store_saying(mode, move || {
            format!("waiting for another berth process to release the store at {}", root.display())
        })
    }

    /// Open the store exclusively to remove things: running containers hold it shared,
    /// so the wait names them.
    pub fn open_store_to_remove(&self) -> Result<Arc<Store>, Error> {
        let root = self.root.clone();
        self.open_store_saying(LockMode::Exclusive, move || {
            let live = containers::describe_live(&root);
            if live.is_empty() {
                format!("waiting for another berth process to release the store at {}", root.display())
            } else {
                format!("waiting for running containers to exit (they use the store's layers): {}", live.join(", "))
            }
        })
    }

    fn open_store_saying(&self, mode: LockMode, why: impl Fn() -> String) -> Result<Arc<Store>, Error> {
        let root = &self.root;
        let notice = self.on_wait.clone();
        let store = Store::open(root, mode, &mut || {
            if let Some(n) = &notice {
                n(&why());
            }
        })
        .doing(|| format!("opening the store at {}", root.display()))?;
        Ok(Arc::new(store))
    }

    /// The sandbox, with its compiled-component cache in the store.
    pub fn sandbox(&self) -> Result<Sandbox, Error> {
        Ok(Sandbox::new(Some(self.component_cache()))?)
    }

    fn component_cache(&self) -> PathBuf {
        self.root.join("cache").join("components")
    }

    /// Drop-in handlers: the store's and the system's handler directories, and the keys
    /// trusted to sign them.
    pub fn dropins(&self) -> Arc<DropIns> {
        Arc::new(DropIns { dirs: dropin::default_dirs(&self.root), keys: HandlerKeyring::new(&self.root) })
    }

    /// The configured policy; `None` when there is neither a policy file nor a
    /// component. Enforced decisions (`audit`) are appended to `<root>/policy.log`.
    pub fn policy(&self, audit: bool) -> Result<Option<Arc<Policy>>, Error> {
        let file = match &self.policy.file {
            Some(f) => Some(f.clone()),
            None => crate::policy::default_policy_files().into_iter().find(|f| f.exists()),
        };
        if file.is_none() && self.policy.component.is_none() {
            return Ok(None);
        }
        let (config, origin) = match &file {
            Some(f) => {
                (std::fs::read_to_string(f).map_err(error::io("reading the policy file", f))?, f.display().to_string())
            }
            None => (String::new(), "(no policy file)".to_string()),
        };
        let cache = Some(self.component_cache());
        let loaded = match &self.policy.component {
            Some(c) => {
                let bytes = std::fs::read(c).map_err(error::io("reading the policy component", c))?;
                Policy::load(&bytes, &c.display().to_string(), config, &origin, cache)?
            }
            None => Policy::builtin(config, &origin, cache)?,
        };
        let loaded = if audit { loaded.with_audit_log(self.root.join("policy.log")) } else { loaded };
        Ok(Some(Arc::new(loaded)))
    }

    /// Parse what a user typed as a distribution point, friendly or canonical (relative
    /// paths against the current directory).
    pub fn point(&self, input: &str) -> Result<DistributionPoint, Error> {
        let cwd = std::env::current_dir().map_err(error::io("reading the current directory", "."))?;
        Ok(cimd::parse_friendly(input, &cwd)?)
    }

    /// Find a stored image by what the user typed: a point (friendly or canonical), a
    /// digest, or an ID prefix.
    pub fn find_image(&self, store: &Store, input: &str) -> Result<StoredImage, Error> {
        let canonical = self.point(input).ok().map(|p| p.to_string());
        Ok(store.find_image(input, canonical.as_deref())?)
    }
}

fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/berth");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("berth")
}
