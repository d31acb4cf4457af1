//! What one store holds: the WASI context that grants nothing, the resource limiter that
//! remembers why it said no, and the host side of `stratbox:strategy/host`.

use crate::capture::{OutputCounters, OutputSink, Stream};
use crate::clock::EventClock;
use crate::display::escape;
use crate::history::{History, clip};
use crate::lift::LogText;
use crate::limits::StrategyLimits;
use crate::memory::StrategyMemory;
use crate::random::SeededRng;
use crate::wit::{self, Event, Level};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Where a granted directory appears inside the guest.
pub const GRANTED_DIR_GUEST_PATH: &str = "/data";

/// `pool` arguments longer than any address are answered with nothing.
const MAX_POOL_ARG_BYTES: usize = 64;

pub(crate) struct StoreState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) host: HostCtx,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreState {
    /// A store's data for one instance. The only grant is the optional read-only
    /// directory; everything else WASI offers is closed, empty or backed by the host:
    /// no env, no args, stdin closed, stdout/stderr into tracing, clocks at event time,
    /// seeded randomness, no sockets and no name lookup.
    pub(crate) fn new(
        limits: &StrategyLimits,
        seed: u64,
        granted_dir: Option<&Path>,
        history: Box<dyn History>,
        output: Arc<OutputCounters>,
        memory: StrategyMemory,
    ) -> Result<Self, String> {
        let sink = OutputSink::new(limits.log_bytes_per_call, output);
        let clock = EventClock::default();
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(sink.stream(Stream::Stdout))
            .stderr(sink.stream(Stream::Stderr))
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .secure_random(SeededRng::new(seed))
            .insecure_random(SeededRng::new(seed ^ 0x5354_5241_5442_4f58))
            .insecure_random_seed(u128::from(seed) << 64 | u128::from(!seed))
            .max_random_size(64 << 10)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // Reads of a granted directory happen on the calling thread: there is no
            // async runtime to hand them to, and a round trip through one costs more.
            .allow_blocking_current_thread(true);
        if let Some(dir) = granted_dir {
            builder
                .preopened_dir(dir, GRANTED_DIR_GUEST_PATH, FsPerms::ReadOnly)
                .map_err(|e| format!("granting {}: {e}", dir.display()))?;
        }
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .table_elements(limits.table_elements)
            .instances(limits.max_core_instances)
            .tables(limits.max_tables)
            .memories(limits.max_memories)
            .trap_on_grow_failure(true)
            .build();
        Ok(Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                limits: store_limits,
                memory_bytes: limits.memory_bytes,
                denied: None,
            },
            host: HostCtx {
                history,
                watermark: 0,
                max_history_events: limits.max_history_events as usize,
                sink,
                clock,
                memory,
            },
        })
    }

    pub(crate) fn into_history(self) -> Box<dyn History> {
        self.host.history
    }
}

/// `StoreLimits` plus a memory of the last refusal. With `trap_on_grow_failure` a refused
/// grow becomes a trap whose error looks like any other; this flag is how the host tells
/// "hit its memory limit" apart from "trapped".
pub(crate) struct Limiter {
    limits: StoreLimits,
    memory_bytes: usize,
    pub(crate) denied: Option<String>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let answer = self.limits.memory_growing(current, desired, maximum);
        if !matches!(answer, Ok(true)) {
            self.denied = Some(format!(
                "growing memory from {current} to {desired} bytes refused (limit {} bytes)",
                self.memory_bytes
            ));
        }
        answer
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if self.denied.is_none() {
            self.denied = Some(format!("memory growth failed: {error}"));
        }
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let answer = self.limits.table_growing(current, desired, maximum);
        if !matches!(answer, Ok(true)) {
            self.denied = Some(format!(
                "growing a table from {current} to {desired} elements refused"
            ));
        }
        answer
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if self.denied.is_none() {
            self.denied = Some(format!("table growth failed: {error}"));
        }
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The host side of `stratbox:strategy/host` for one instance.
pub(crate) struct HostCtx {
    history: Box<dyn History>,
    /// The snapshot's `last-sync-block` of the call in progress.
    pub(crate) watermark: u64,
    max_history_events: usize,
    pub(crate) sink: OutputSink,
    pub(crate) clock: EventClock,
    /// The deployment's memory (world 0.2.0), shared with its other instances.
    memory: StrategyMemory,
}

impl wit::stratbox::strategy::types::Host for HostCtx {}

impl wit::v0_2::stratbox::strategy0_2_0::outcomes::Host for HostCtx {}

impl wit::v0_2::stratbox::strategy0_2_0::memory::Host for HostCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.memory.get(&key))
    }

    /// A refusal is the guest's to handle (a `result`), not a trap: a full memory is a
    /// state the strategy can act on, e.g. by removing old entries.
    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        Ok(self.memory.set(&key, value).map_err(|e| e.to_string()))
    }

    fn remove(&mut self, key: String) -> wasmtime::Result<()> {
        self.memory.remove(&key);
        Ok(())
    }

    fn keys(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.memory.keys())
    }
}

impl HostCtx {
    /// `host.log`: charged to the call's budget by its length, before anything but its
    /// first [`LogText::MAX_BYTES`] was copied; dropped (and counted) over budget, else
    /// forwarded cut to that head, escaped.
    pub(crate) fn log_text(&mut self, level: Level, message: LogText) {
        if !self.sink.lock().charge(message.len) {
            return;
        }
        let text = escape(&message.head);
        match level {
            Level::Trace => tracing::trace!(target: "stratbox::guest", "{text}"),
            Level::Debug => tracing::debug!(target: "stratbox::guest", "{text}"),
            Level::Info => tracing::info!(target: "stratbox::guest", "{text}"),
            Level::Warn => tracing::warn!(target: "stratbox::guest", "{text}"),
            Level::Error => tracing::error!(target: "stratbox::guest", "{text}"),
        }
    }
}

impl wit::stratbox::strategy::host::Host for HostCtx {
    /// Not reached from a guest: the linker serves `log` with [`HostCtx::log_text`], which
    /// looks at the length before copying (see `runtime::build_linker`). Kept equivalent
    /// for any other caller of the bindings.
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let mut end = message.len().min(LogText::MAX_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = LogText {
            len: message.len(),
            head: message[..end].to_owned(),
        };
        self.log_text(level, text);
        Ok(())
    }

    fn history(
        &mut self,
        pool: String,
        from_block: u64,
        limit: u32,
    ) -> wasmtime::Result<Vec<Event>> {
        if pool.len() > MAX_POOL_ARG_BYTES {
            return Ok(Vec::new());
        }
        let limit = (limit as usize).min(self.max_history_events);
        if limit == 0 || from_block > self.watermark {
            return Ok(Vec::new());
        }
        let mut events = self
            .history
            .events(&pool, from_block, limit, self.watermark);
        let future = clip(&mut events, from_block, limit, self.watermark);
        if future > 0 {
            tracing::warn!(
                dropped = future,
                watermark = self.watermark,
                "history provider returned events after the watermark; dropped"
            );
        }
        Ok(events)
    }
}
