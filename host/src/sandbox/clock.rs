//! The guest's clock: wall time of a run less the time spent in host calls, which the
//! guest's time budget does not count (a large download is not the parser's time).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
