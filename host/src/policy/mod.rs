//! Policy: decisions taken by a pure, fuel-metered component.
//!
//! A policy component implements the `berth:policy` world: given the facts of a decision
//! point (before fetch, after resolve, before run) and the policy file's text, it
//! returns allow or deny with reasons. It imports nothing but `log` — [`Policy::load`]
//! refuses a component that imports anything else — so it cannot read files, clocks or
//! randomness, and the same facts always give the same decision. It runs on its own
//! engine with fuel instead of epochs (deterministic, and independent of machine load).
//! Whatever goes wrong inside it (out of fuel, the memory cap, a trap) is a **deny**.
//!
//! The built-in default component evaluates `policy.toml` (see `policies/default`).
//! Every decision is logged with the component's digest; with a store, it is also
//! appended to `<root>/policy.log` as a JSON line.
//!
//! Glossary:
//! - *facts*: what a decision point knows, built by [`facts`] from berth's own types.
//! - *fuel*: wasmtime's instruction budget; [`DEFAULT_FUEL`] is far above what a
//!   policy file needs (≈ 10⁴–10⁵ units per decision) and far below a runaway loop.

mod error;
pub mod facts;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

pub use bindings::berth::policy::facts::{
    Decision, DecisionPoint, LayerFacts, PointFacts, ResolvedFacts, RunFacts, VolumeFacts,
};
pub use error::PolicyError;

use crate::sandbox::ComponentCache;
use crate::store::{Algorithm, Digest};

mod bindings {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../wit/policy",
    });
}

include!(concat!(env!("OUT_DIR"), "/default_policy.rs"));

/// Instructions (roughly) one decision may execute.
pub const DEFAULT_FUEL: u64 = 200_000_000;
/// Linear memory one decision may use.
pub const DEFAULT_MEMORY: usize = 64 << 20;

/// What a policy may import: `log`, and the type-only `facts` interface (no functions).
const ALLOWED_IMPORTS: &[&str] = &["berth:policy/log@0.1.0", "berth:policy/facts@0.1.0"];

/// Default locations of the policy file, first found wins.
pub fn default_policy_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(home) = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
    {
        files.push(home.join("berth/policy.toml"));
    }
    files.push(PathBuf::from("/etc/berth/policy.toml"));
    files
}

struct PolicyState {
    limiter: MemoryCap,
    component: String,
}

/// Refuses memory growth past the cap and remembers that it did, so the deny says why.
struct MemoryCap {
    cap: usize,
    breached: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.breached = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl bindings::berth::policy::log::Host for PolicyState {
    fn log(&mut self, level: bindings::berth::policy::log::Level, message: String) {
        use bindings::berth::policy::log::Level;
        let message: String = message.chars().take(4096).collect();
        let policy = self.component.as_str();
        match level {
            Level::Trace => tracing::trace!(policy, "{message}"),
            Level::Debug => tracing::debug!(policy, "{message}"),
            Level::Info => tracing::info!(policy, "{message}"),
            Level::Warn => tracing::warn!(policy, "{message}"),
            Level::Error => tracing::error!(policy, "{message}"),
        }
    }
}

/// A loaded policy: component, configuration text, limits.
pub struct Policy {
    engine: Engine,
    pre: bindings::PolicyPre<PolicyState>,
    digest: Digest,
    /// Where the component came from: `builtin` or a path.
    source: String,
    config: String,
    /// Where the configuration came from, for messages.
    config_origin: String,
    pub fuel: u64,
    pub memory: usize,
    audit_log: Option<PathBuf>,
}

/// One decision and what it cost.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub decision: Decision,
    pub fuel_used: u64,
    pub elapsed: Duration,
}

fn engine() -> Result<Engine, PolicyError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    // Deterministic: NaN bit patterns canonicalised (threads are off by default).
    config.cranelift_nan_canonicalization(true);
    config.memory_reservation(DEFAULT_MEMORY as u64 * 2);
    Engine::new(&config).map_err(PolicyError::Engine)
}

impl Policy {
    /// The built-in default policy component evaluating `config` (a policy.toml text).
    pub fn builtin(config: String, config_origin: &str, cache_dir: Option<PathBuf>) -> Result<Policy, PolicyError> {
        Policy::load(DEFAULT_POLICY, "builtin", config, config_origin, cache_dir)
    }

    /// Load a policy component. It must import nothing but `berth:policy/log`.
    pub fn load(
        bytes: &[u8],
        source: &str,
        config: String,
        config_origin: &str,
        cache_dir: Option<PathBuf>,
    ) -> Result<Policy, PolicyError> {
        let engine = engine()?;
        let digest = Digest::of_bytes(Algorithm::Sha256, bytes);
        let cache = ComponentCache::new(&engine, cache_dir);
        let (component, _) = cache
            .load_or_compile(&engine, bytes, digest.hex())
            .map_err(|e| PolicyError::Compile { source_name: source.to_string(), source: Box::new(e) })?;
        check_imports(&engine, &component, source)?;
        let mut linker: Linker<PolicyState> = Linker::new(&engine);
        bindings::berth::policy::log::add_to_linker::<_, HasSelf<PolicyState>>(&mut linker, |s| s)
            .map_err(PolicyError::Engine)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PolicyError::Link { source_name: source.to_string(), source: e })?;
        let pre = bindings::PolicyPre::new(instance_pre)
            .map_err(|e| PolicyError::Link { source_name: source.to_string(), source: e })?;
        Ok(Policy {
            engine,
            pre,
            digest,
            source: source.to_string(),
            config,
            config_origin: config_origin.to_string(),
            fuel: DEFAULT_FUEL,
            memory: DEFAULT_MEMORY,
            audit_log: None,
        })
    }

    /// Also append every decision to `file` (one JSON object per line).
    pub fn with_audit_log(mut self, file: PathBuf) -> Policy {
        self.audit_log = Some(file);
        self
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn config_origin(&self) -> &str {
        &self.config_origin
    }

    /// Decide at `point`, and turn a deny into [`PolicyError::Denied`], naming the policy,
    /// the decision point and the reasons: how every enforcing caller asks.
    pub fn require(&self, point: &DecisionPoint) -> Result<Evaluated, PolicyError> {
        let evaluated = self.evaluate(point);
        if evaluated.decision.allow {
            return Ok(evaluated);
        }
        let (stage, subject) = facts::describe(point);
        Err(PolicyError::Denied {
            policy: format!("{} ({})", self.config_origin, self.digest.short()),
            stage,
            subject,
            reasons: evaluated.decision.reasons,
        })
    }

    /// Decide at `point`. Never fails: a policy that cannot decide denies.
    pub fn evaluate(&self, point: &DecisionPoint) -> Evaluated {
        let started = Instant::now();
        let state = PolicyState {
            limiter: MemoryCap { cap: self.memory, breached: false },
            component: self.digest.to_string(),
        };
        let mut store = wasmtime::Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let outcome = store.set_fuel(self.fuel).map_err(|e| format!("{e:#}")).and_then(|_| {
            let instance = self.pre.instantiate(&mut store).map_err(|e| format!("{e:#}"))?;
            instance.call_evaluate(&mut store, &self.config, point).map_err(|e| e.to_string())
        });
        let outcome = outcome.map_err(|e| {
            if store.data().limiter.breached {
                format!("it exceeded its memory cap ({} bytes)", self.memory)
            } else if store.get_fuel().is_ok_and(|f| f == 0) {
                format!("it ran out of fuel ({} units)", self.fuel)
            } else {
                format!("it trapped: {e}")
            }
        });
        let fuel_used = self.fuel - store.get_fuel().unwrap_or(0);
        let decision = match outcome {
            Ok(d) => d,
            Err(why) => Decision { allow: false, reasons: vec![format!("the policy failed, so it denies: {why}")] },
        };
        let evaluated = Evaluated { decision, fuel_used, elapsed: started.elapsed() };
        self.record(point, &evaluated);
        evaluated
    }

    fn record(&self, point: &DecisionPoint, e: &Evaluated) {
        let (stage, subject) = facts::describe(point);
        tracing::info!(
            policy = %self.digest,
            stage,
            subject,
            allow = e.decision.allow,
            reasons = ?e.decision.reasons,
            fuel = e.fuel_used,
            "policy decision"
        );
        let Some(file) = &self.audit_log else { return };
        let line = serde_json::json!({
            "time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "policy": self.digest.to_string(),
            "policySource": self.source,
            "config": self.config_origin,
            "stage": stage,
            "subject": subject,
            "allow": e.decision.allow,
            "reasons": e.decision.reasons,
        });
        if let Err(err) = append_line(file, &line.to_string()) {
            tracing::warn!("could not append to the policy log {}: {err}", file.display());
        }
    }
}

/// One `write` of a whole line with O_APPEND, so concurrent berths do not interleave.
fn append_line(file: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    f.write_all(format!("{line}\n").as_bytes())
}

/// A policy may import `berth:policy/log` and nothing else: no WASI, no handler imports.
fn check_imports(engine: &Engine, component: &Component, source: &str) -> Result<(), PolicyError> {
    let extra: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| !ALLOWED_IMPORTS.contains(&name.as_str()))
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::Imports { source_name: source.to_string(), imports: extra })
    }
}
