//! The only time a strategy sees: the timestamp of the event it is being called for.
//!
//! A strategy that could read the real clock could behave differently in a backtest and
//! live, and could time the host. Both WASI clocks therefore read one value the host sets
//! from the snapshot before every call. The monotonic clock never goes backwards even if
//! event timestamps do (they should not, but the guest is promised monotonicity).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

#[derive(Clone, Default)]
pub(crate) struct EventClock {
    inner: Arc<Times>,
}

#[derive(Default)]
struct Times {
    wall_ns: AtomicU64,
    monotonic_ns: AtomicU64,
}

impl EventClock {
    /// Sets the clock to `unix_seconds` (the snapshot's timestamp).
    pub(crate) fn set_unix_seconds(&self, unix_seconds: u64) {
        let ns = unix_seconds.saturating_mul(1_000_000_000);
        self.inner.wall_ns.store(ns, Ordering::Relaxed);
        self.inner.monotonic_ns.fetch_max(ns, Ordering::Relaxed);
    }
}

impl HostWallClock for EventClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.inner.wall_ns.load(Ordering::Relaxed))
    }
}

impl HostMonotonicClock for EventClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        self.inner.monotonic_ns.load(Ordering::Relaxed)
    }
}
