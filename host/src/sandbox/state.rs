//! What one handler run's wasmtime `Store` holds: WASI (empty), the narrow context of
//! each capability, the memory limiter and the guest clock.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::clock::GuestClock;
use super::host::{LogCtx, StoreCtx, TransportCtx};

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

/// `types` declares only types; its host trait is empty.
impl super::bindings::berth::handler::types::Host for HandlerState {}
