//! The two things the host offers a strategy: a log line and a look at past events.
//!
//! On wasm32 these call the WIT imports. On any other target (the workspace's native tests,
//! the engine linking this crate for its math) there is no host, so they fall back to a
//! per-thread test double: logs are collected and `history` serves events a test installed
//! with [`testing::set_history`]. That lets a strategy's logic be unit-tested natively with
//! the same code path it runs in the sandbox.

use crate::types::{Event, Level};

/// Writes one line to the host's log, tagged there with strategy, instance and trace id.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::stratbox::strategy::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    testing::record_log(level, message);
}

/// [`log`] at `Trace` level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// [`log`] at `Debug` level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// [`log`] at `Info` level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// [`log`] at `Warn` level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// [`log`] at `Error` level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Past events of `pool` from `from_block` on, oldest first, at most `limit`. The host
/// never returns anything after the current watermark, so this cannot see the future.
pub fn history(pool: &str, from_block: u64, limit: u32) -> Vec<Event> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::stratbox::strategy::host::history(pool, from_block, limit)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        testing::serve_history(pool, from_block, limit)
    }
}

/// The native stand-in for the host (not compiled for wasm32).
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use crate::types::{Event, Level, same_address};
    use std::cell::RefCell;

    thread_local! {
        static HISTORY: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
        static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    /// Installs the events `history` serves on this thread, in chain order. Like the real
    /// host it filters by pool and block and caps at `limit`; the caller is responsible for
    /// not installing events past the watermark it is simulating.
    pub fn set_history(events: Vec<Event>) {
        HISTORY.with(|h| *h.borrow_mut() = events);
    }

    /// Takes (and clears) the lines logged on this thread.
    pub fn take_logs() -> Vec<(Level, String)> {
        LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }

    pub(crate) fn record_log(level: Level, message: &str) {
        LOGS.with(|l| l.borrow_mut().push((level, message.to_owned())));
    }

    pub(crate) fn serve_history(pool: &str, from_block: u64, limit: u32) -> Vec<Event> {
        HISTORY.with(|h| {
            h.borrow()
                .iter()
                .filter(|e| e.pool().is_some_and(|p| same_address(p, pool)))
                .filter(|e| e.block() >= from_block)
                .take(limit as usize)
                .cloned()
                .collect()
        })
    }
}
