//! What one handler run's wasmtime `Store` holds: WASI (empty), the narrow context of
//! each capability, the memory limiter and the guest clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::host::{LogCtx, StoreCtx, TransportCtx};

/// Time spent inside host calls, which the guest's time budget does not count.
#[derive(Clone, Default)]
pub struct HostTime(Arc<AtomicU64>);

impl HostTime {
    /// Run `f`, crediting its duration to the host.
    pub fn measure<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let out = f();
        self.0.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    fn total(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

/// Wall time since the run started, less time spent in host calls.
pub struct GuestClock {
    started: Instant,
    host: HostTime,
}

impl GuestClock {
    pub fn new(host: HostTime) -> GuestClock {
        GuestClock { started: Instant::now(), host }
    }

    pub fn guest_elapsed(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host.total())
    }
}

/// Caps linear memory and remembers a breach so it can be reported as such.
pub struct MemoryLimiter {
    pub cap: usize,
    pub breached: Option<usize>,
}

/// Tables hold function references; legitimate handlers need a few thousand.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.breached = Some(desired);
            wasmtime::bail!("memory cap of {} bytes reached (growing from {current} to {desired})", self.cap);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

pub struct HandlerState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) clock: GuestClock,
    pub(super) transport: TransportCtx,
    pub(super) store: StoreCtx,
    pub(super) log: LogCtx,
}

impl WasiView for HandlerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
