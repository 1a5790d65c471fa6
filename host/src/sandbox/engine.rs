//! The process's one wasmtime `Engine`, and the clock that interrupts guests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::SandboxError;

/// How often the epoch advances; the granularity of time budgets.
pub(super) const TICK: Duration = Duration::from_millis(10);

/// Largest linear memory any grant may allow; the pool reserves address space for it.
pub(super) const MAX_MEMORY: usize = 1 << 30;

fn config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.memory_reservation(MAX_MEMORY as u64);
    if pooling {
        // Handlers are few and small: a modest pool makes instantiation a few µs, and
        // creating the pool costs one guard-page mprotect per slot, so keep it small
        // (the default 1000 async stacks alone cost ~10 ms at start-up; runs are sync).
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(32)
            .total_core_instances(256)
            .total_memories(64)
            .total_tables(128)
            .total_stacks(1)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_core_instances_per_component(32)
            .max_memory_size(MAX_MEMORY);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

pub(super) fn build_engine() -> Result<Engine, SandboxError> {
    match Engine::new(&config(true)) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            // The pool reserves address space up front; a tight `ulimit -v` refuses it.
            tracing::warn!("pooling allocator unavailable ({e}); allocating instances on demand");
            Engine::new(&config(false)).map_err(SandboxError::Engine)
        }
    }
}

/// A background thread advancing the engine's epoch every [`TICK`].
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("berth-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // Parked rather than slept, so `drop` can wake it and exit at once.
                    std::thread::park_timeout(TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
