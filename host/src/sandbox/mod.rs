//! The sandbox: runs handler components under wasmtime with nothing but their grant.
//!
//! One [`Sandbox`] per process holds the `Engine`, the linker with the host's imports,
//! the compile cache and the epoch ticker. Each run gets a fresh `Store` (so no state
//! survives between fetches), a memory cap, a guest-time budget, an empty WASI context
//! (no env, args, preopens or sockets) and the capabilities its [`Grant`] names.
//!
//! Glossary:
//! - *component*: a handler's wasm bytes; *loaded*: compiled (or deserialized from the
//!   cache) and pre-linked into an `InstancePre`, reused by every later run.
//! - *grant*: what one run may touch (a local path, limits).
//! - *trap*: the guest stopped abnormally (a crash, the time budget, the memory cap);
//!   it fails that run only.

mod bindings;
mod cache;
mod clock;
mod engine;
mod error;
mod grant;
mod host;
mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

pub use bindings::berth::handler::types as bindings_types;
pub use bindings::berth::handler::types::{Error as HandlerError, Platform as WitPlatform};
pub use bindings::exports::berth::handler::resolver::{
    ImageFormat as WitImageFormat, ImageRecord as WitImageRecord, ResolveOptions,
};
pub use cache::CacheOutcome;
pub(crate) use cache::ComponentCache;
pub use error::SandboxError;
pub use grant::{Grant, Limits, LocalGrant, NetworkGrant};
pub use host::IngestStats;

use bindings::CimdHandlerPre;
use clock::{GuestClock, HostTime};
use host::{LogCtx, StoreCtx, TransportCtx};
use state::{HandlerState, MemoryLimiter};

use crate::store::{Digest, IngestObserver, Store};
use crate::transport::{HttpClient, LocalAccess};

/// Bytes of guest stderr kept for the error message of a crash (a panic message).
const STDERR_CAPTURE: usize = 16 * 1024;

/// A compiled, pre-linked handler component.
#[derive(Clone)]
pub struct LoadedHandler {
    pub name: String,
    pub digest: Digest,
    pub cache: CacheOutcome,
    pre: CimdHandlerPre<HandlerState>,
}

/// What a run can reach outside its grant: the store and a progress observer.
pub struct RunContext {
    pub store: Arc<Store>,
    pub observer: Arc<dyn IngestObserver>,
    /// The host's HTTP client, for runs whose grant names hosts.
    pub http: Option<Arc<HttpClient>>,
    /// Whether eStargz layers may be pulled partially (only their missing files).
    pub partial: bool,
    /// Whether chunked layers may be pulled lazily: the TOC now, the rest in the
    /// background (`berth run --lazy`); the fetch returns before they are complete.
    pub lazy: bool,
}

/// The result of one `resolve` call.
pub struct RunOutcome {
    pub result: Result<WitImageRecord, HandlerError>,
    pub ingest: IngestStats,
    /// Layers pulled partially, by blob digest: what the store holds for them instead.
    pub assembled: std::collections::HashMap<Digest, crate::store::Assembled>,
    /// Layers being pulled lazily, by blob digest (see [`RunContext::lazy`]).
    pub lazy: std::collections::HashMap<Digest, crate::chunked::LazyPull>,
}

/// Raised by the epoch callback when the guest's time budget is spent.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("time budget exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

pub struct Sandbox {
    engine: Engine,
    linker: Linker<HandlerState>,
    cache: cache::ComponentCache,
    loaded: Mutex<HashMap<Digest, LoadedHandler>>,
    _ticker: engine::EpochTicker,
}

impl Sandbox {
    /// `cache_dir`: where compiled components are kept; `None` compiles every time.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Sandbox, SandboxError> {
        let engine = engine::build_engine()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(SandboxError::Engine)?;
        use bindings::berth::handler::{log, store, transport, types};
        types::add_to_linker::<_, HasSelf<HandlerState>>(&mut linker, |s| s).map_err(SandboxError::Engine)?;
        transport::add_to_linker::<_, HasSelf<TransportCtx>>(&mut linker, |s| &mut s.transport)
            .map_err(SandboxError::Engine)?;
        store::add_to_linker::<_, HasSelf<StoreCtx>>(&mut linker, |s| &mut s.store).map_err(SandboxError::Engine)?;
        log::add_to_linker::<_, HasSelf<LogCtx>>(&mut linker, |s| &mut s.log).map_err(SandboxError::Engine)?;
        let cache = cache::ComponentCache::new(&engine, cache_dir);
        let ticker = engine::EpochTicker::start(&engine);
        Ok(Sandbox { engine, linker, cache, loaded: Mutex::new(HashMap::new()), _ticker: ticker })
    }

    /// Compile (or load from the cache) and pre-link a component; cheap when repeated.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedHandler, SandboxError> {
        let digest = Digest::of_bytes(crate::store::Algorithm::Sha256, bytes);
        if let Some(found) = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(&digest) {
            return Ok(found.clone());
        }
        let (component, outcome) = self.cache.load_or_compile(&self.engine, bytes, digest.hex())?;
        let link_err = |source| SandboxError::Link { digest: digest.to_string(), source };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(link_err)?;
        let pre = CimdHandlerPre::new(instance_pre).map_err(link_err)?;
        let loaded = LoadedHandler { name: name.to_string(), digest: digest.clone(), cache: outcome, pre };
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(digest, loaded.clone());
        Ok(loaded)
    }

    /// A fresh store for one run of `handler` under `grant`: its own WASI context (no
    /// env, args, preopens or sockets), memory cap and guest-time budget.
    fn run_store(
        &self,
        handler: &LoadedHandler,
        grant: &Grant,
        ctx: RunContext,
    ) -> Result<(wasmtime::Store<HandlerState>, MemoryOutputPipe), SandboxError> {
        let name = handler.name.clone();
        let local = match &grant.local {
            Some(g) => Some(Arc::new(
                LocalAccess::open(&g.path, g.kind)
                    .map_err(|source| SandboxError::Grant { handler: name.clone(), source })?,
            )),
            None => None,
        };
        let limits = &grant.limits;
        let host_time = HostTime::default();
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut state = HandlerState {
            wasi,
            table: Default::default(),
            limiter: MemoryLimiter { cap: limits.memory_bytes.min(engine::MAX_MEMORY), breached: None },
            clock: GuestClock::new(host_time.clone()),
            transport: TransportCtx {
                handler: name.clone(),
                local: local.clone(),
                http: ctx.http.clone(),
                network: grant.network.clone(),
                read_cap: limits.read_cap,
                host_time: host_time.clone(),
            },
            store: StoreCtx::new(
                name.clone(),
                ctx.store,
                local,
                ctx.observer,
                limits.read_cap,
                limits.max_concurrent_ingests,
                host_time,
            ),
            log: LogCtx { handler: name.clone() },
        };
        state.store.http = ctx.http;
        state.store.partial = ctx.partial;
        state.store.lazy = ctx.lazy;
        state.store.network = grant.network.clone();
        let mut store = wasmtime::Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let budget = limits.time_budget;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            if ctx.data().clock.guest_elapsed() > budget {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        Ok((store, stderr))
    }

    /// Run `resolve(point, options)` in a fresh instance of `handler` under `grant`.
    pub fn resolve(
        &self,
        handler: &LoadedHandler,
        grant: &Grant,
        ctx: RunContext,
        point: &str,
        options: &ResolveOptions,
    ) -> Result<RunOutcome, SandboxError> {
        let (mut store, stderr) = self.run_store(handler, grant, ctx)?;
        let started = Instant::now();
        let result = handler
            .pre
            .instantiate(&mut store)
            .and_then(|instance| instance.berth_handler_resolver().call_resolve(&mut store, point, options));
        tracing::debug!(handler = %handler.name, elapsed = ?started.elapsed(), "resolve returned");
        let ingest = store.data().store.stats();
        let assembled = std::mem::take(&mut *store.data().store.assembled.lock().unwrap_or_else(|p| p.into_inner()));
        let lazy = std::mem::take(&mut *store.data().store.lazy_pulls.lock().unwrap_or_else(|p| p.into_inner()));
        match result {
            Ok(result) => Ok(RunOutcome { result, ingest, assembled, lazy }),
            Err(e) => Err(classify_trap(e, store.data(), &handler.name, grant.limits.time_budget, &stderr)),
        }
    }

    /// Run `discovery.discover-pubkeys(prefix)` of a handler that exports it (the appc
    /// handler's world, `appc-handler`): the URLs of the keys announced for `prefix`.
    pub fn discover_pubkeys(
        &self,
        handler: &LoadedHandler,
        grant: &Grant,
        ctx: RunContext,
        prefix: &str,
    ) -> Result<Result<Vec<String>, HandlerError>, SandboxError> {
        type Answer = (Result<Vec<String>, HandlerError>,);
        let call = self.call_export::<(&str,), Answer>(
            handler,
            grant,
            ctx,
            DISCOVERY_INTERFACE,
            "discover-pubkeys",
            (prefix,),
        )?;
        call.map(|(urls,)| urls).ok_or_else(|| SandboxError::Trap {
            handler: handler.name.clone(),
            message: format!("the handler does not export {DISCOVERY_INTERFACE}"),
            stderr: String::new(),
        })
    }

    /// Run `signatures.attached(point, digest)` of a handler that exports it (the registry
    /// handlers' world, `registry-handler`): the signature payloads stored beside manifest
    /// `digest`, stored. `Ok(None)` when the handler does not export it (a drop-in for
    /// another scheme).
    pub fn attached_signatures(
        &self,
        handler: &LoadedHandler,
        grant: &Grant,
        ctx: RunContext,
        point: &str,
        digest: &str,
    ) -> Result<Option<Result<Vec<bindings_types::Descriptor>, HandlerError>>, SandboxError> {
        type Answer = (Result<Vec<bindings_types::Descriptor>, HandlerError>,);
        let call = self.call_export::<(&str, &str), Answer>(
            handler,
            grant,
            ctx,
            SIGNATURES_INTERFACE,
            "attached",
            (point, digest),
        )?;
        Ok(call.map(|(found,)| found))
    }

    /// Call `func` of `interface`, an export beside `resolver`, in a fresh instance of
    /// `handler` under `grant`; `None` when the handler does not export the interface.
    fn call_export<P, R>(
        &self,
        handler: &LoadedHandler,
        grant: &Grant,
        ctx: RunContext,
        interface: &str,
        func: &str,
        params: P,
    ) -> Result<Option<R>, SandboxError>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
    {
        let (mut store, stderr) = self.run_store(handler, grant, ctx)?;
        let result = (|| {
            let instance = handler.pre.instance_pre().instantiate(&mut store)?;
            let Some(exported) = instance.get_export_index(&mut store, None, interface) else {
                return Ok(None);
            };
            let index = instance
                .get_export_index(&mut store, Some(&exported), func)
                .ok_or_else(|| wasmtime::Error::msg(format!("the handler's {interface} has no {func}")))?;
            let typed = instance.get_typed_func::<P, R>(&mut store, &index)?;
            Ok(Some(typed.call(&mut store, params)?))
        })();
        result.map_err(|e| classify_trap(e, store.data(), &handler.name, grant.limits.time_budget, &stderr))
    }
}

/// The interface the appc handler exports beside `resolver`.
const DISCOVERY_INTERFACE: &str = "berth:handler/discovery@0.1.0";

/// The interface the registry handlers export beside `resolver`.
const SIGNATURES_INTERFACE: &str = "berth:handler/signatures@0.1.0";

fn classify_trap(
    e: wasmtime::Error,
    state: &HandlerState,
    handler: &str,
    budget: std::time::Duration,
    stderr: &MemoryOutputPipe,
) -> SandboxError {
    let handler = handler.to_string();
    if let Some(wanted) = state.limiter.breached {
        return SandboxError::MemoryCap { handler, wanted, cap: state.limiter.cap };
    }
    if e.downcast_ref::<DeadlineExceeded>().is_some()
        || matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt))
    {
        return SandboxError::Timeout { handler, budget };
    }
    let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
    SandboxError::Trap { handler, message: format!("{e:#}"), stderr }
}
