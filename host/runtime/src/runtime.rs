//! The engine, the linker, the epoch ticker and the compiled-component cache: everything
//! a host process has exactly one of.

use crate::capacity::{Capacity, Machine};
use crate::capture::OutputCounters;
use crate::check::{CheckReport, ComponentNeeds, check_component};
use crate::error::{CallError, LoadError};
use crate::lift::{BoundedList, ErrorString, RawProposal};
use crate::limits::{Allocation, HostConfig, PoolConfig, StrategyLimits};
use crate::sandbox::{HostCtx, StoreState};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use wasmtime::Store;
use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, InstancePre, Linker, Resource, ResourceTable,
};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use crate::wit::{Event, Snapshot};

/// The WASI version wasmtime-wasi 48 registers its interfaces under; guests importing any
/// 0.2.x version are matched to it by semver.
const WASI_MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";
/// The strategy world's host interface, as `bindgen!` registers it; 0.1.x guests match it.
const STRATEGY_HOST: &str = "stratbox:strategy/host@0.1.0";

/// A host process's wasmtime runtime. Cheap to clone (shared).
#[derive(Clone)]
pub struct HostRuntime {
    inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    /// The main pool first, then the large one (see [`HostConfig::large_pool`]).
    pools: Vec<Pool>,
    pub(crate) config: HostConfig,
    /// What the configuration needs from the machine, as estimated when it was built.
    capacity: Capacity,
    compiled: Mutex<HashMap<String, Arc<Compiled>>>,
    _ticker: Ticker,
}

/// One wasmtime engine, its instance pool and its linker. Compiled code belongs to the
/// engine that compiled it, so a component lives in exactly one pool.
pub(crate) struct Pool {
    /// How messages name the pool (`main`, `large`).
    name: &'static str,
    /// Where the pool's fields sit in [`HostConfig`]: the main pool's at the top level,
    /// the large one's under `large_pool.`.
    config_prefix: &'static str,
    pub(crate) engine: Engine,
    linker: Linker<StoreState>,
    shape: PoolConfig,
    live: AtomicUsize,
}

impl Pool {
    fn new(
        name: &'static str,
        config_prefix: &'static str,
        config: &HostConfig,
        shape: PoolConfig,
    ) -> Result<Self, LoadError> {
        let engine = Engine::new(&engine_config(config, &shape))
            .map_err(|e| LoadError::Engine(format!("{name} pool: {e:#}")))?;
        let linker = build_linker(&engine).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        Ok(Pool {
            name,
            config_prefix,
            engine,
            linker,
            shape,
            live: AtomicUsize::new(0),
        })
    }

    /// Why `needs` does not fit one instance slot of this pool, if it does not.
    fn misfit(&self, needs: &ComponentNeeds) -> Option<String> {
        [
            (
                needs.core_instances,
                self.shape.core_instances_per_component,
                "core instances",
                "core_instances_per_component",
            ),
            (
                needs.memories,
                self.shape.memories_per_component,
                "memories",
                "memories_per_component",
            ),
            (
                needs.tables,
                self.shape.tables_per_component,
                "tables",
                "tables_per_component",
            ),
        ]
        .into_iter()
        .find(|(need, max, _, _)| need > max)
        .map(|(need, max, what, f)| {
            format!(
                "{need} {what} per instance, over {max} ({}{f})",
                self.config_prefix
            )
        })
    }
}

/// Advances every pool's engine's epoch every tick: the clock deadlines are measured in.
/// Stops when the runtime (and with it every instance) is dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engines: Vec<Engine>, tick: std::time::Duration) -> Result<Self, LoadError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("stratbox-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|e| LoadError::Engine(format!("starting the epoch ticker: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A pollable that is ready at once: what a guest's sleep resolves to. The guest's only
/// time is the event time, which does not pass while it runs; a real sleep would block the
/// calling thread where no epoch deadline can reach it.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

fn ready_pollable(table: &mut ResourceTable) -> wasmtime::Result<Resource<DynPollable>> {
    let ready = table.push(Ready)?;
    subscribe(table, ready)
}

fn engine_config(config: &HostConfig, shape: &PoolConfig) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.consume_fuel(config.fuel);
    c.epoch_interruption(true);
    c.max_wasm_stack(config.max_wasm_stack);
    c.memory_init_cow(true);
    c.parallel_compilation(true);
    c.cranelift_opt_level(OptLevel::Speed);
    // The same strategy on the same events must compute the same floats on any CPU.
    c.cranelift_nan_canonicalization(true);
    // wasmtime's defaults for a 64-bit host, set here from the constants the capacity
    // estimate computes with, so that the two cannot drift apart.
    c.memory_reservation(crate::capacity::MEMORY_RESERVATION);
    c.memory_guard_size(crate::capacity::MEMORY_GUARD);
    c.guard_before_linear_memory(true);
    c.async_stack_size(crate::capacity::FIBER_STACK_BYTES);
    if config.allocation == Allocation::Pooling {
        let n = shape.max_instances.max(1);
        // A store keeps the fiber stack its last sliced call ran on, so every live
        // instance holds one: without this, wasmtime's default of 1,000 stacks would fail
        // the 1,001st instance's `init`. Without slices no call runs on a fiber.
        let stacks = if config.runs_in_slices() { n } else { 0 };
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n as u32)
            .total_core_instances((n * shape.core_instances_per_component) as u32)
            .total_memories((n * shape.memories_per_component) as u32)
            .total_tables((n * shape.tables_per_component) as u32)
            .total_stacks(stacks as u32)
            .table_elements(crate::capacity::TABLE_ELEMENTS)
            .max_core_instances_per_component(shape.core_instances_per_component as u32)
            .max_memories_per_component(shape.memories_per_component as u32)
            .max_tables_per_component(shape.tables_per_component as u32)
            .max_memory_size(config.max_memory_bytes)
            .linear_memory_keep_resident(config.keep_resident_bytes)
            .table_keep_resident(64 << 10)
            .max_unused_warm_slots(config.max_unused_warm_slots);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

impl HostRuntime {
    /// Builds the wasmtime engine and starts its epoch ticker; errors if `config` cannot be
    /// honoured: its full pools would not fit the machine's memory mappings or address
    /// space ([`LoadError::Capacity`], checked before anything is reserved), or a pool
    /// cannot reserve its slots.
    pub fn new(config: HostConfig) -> Result<Self, LoadError> {
        let capacity = Capacity::estimate(&config, &Machine::read());
        capacity.check()?;
        tracing::debug!(%capacity, "host capacity");
        let pools = config
            .pools()
            .into_iter()
            .map(|(name, prefix, shape)| Pool::new(name, prefix, &config, shape))
            .collect::<Result<Vec<_>, _>>()?;
        let ticker = Ticker::start(
            pools.iter().map(|p| p.engine.clone()).collect(),
            config.epoch_tick(),
        )?;
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| LoadError::Engine(format!("cache dir {}: {e}", dir.display())))?;
        }
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                pools,
                config,
                capacity,
                compiled: Mutex::new(HashMap::new()),
                _ticker: ticker,
            }),
        })
    }

    /// As built with.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// What the configuration needs from the machine (memory mappings, address space) and
    /// what the machine allowed when the runtime was built; physical memory is reported
    /// there, not checked.
    pub fn capacity(&self) -> &Capacity {
        &self.inner.capacity
    }

    /// Live instances right now, in every pool (each holds a pool slot).
    pub fn live_instances(&self) -> usize {
        self.inner
            .pools
            .iter()
            .map(|p| p.live.load(Ordering::Relaxed))
            .sum()
    }

    /// Checks, compiles (or takes from the cache) and prepares a component.
    ///
    /// The bytes are always checked against the stratbox world first. Compiled code is
    /// looked up by the sha256 of the bytes: in memory, then in the host's own cache
    /// directory. Uploaded bytes are never deserialised as compiled code; deserialising
    /// skips validation, so only artifacts this host wrote itself are trusted.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        let report = check_component(bytes, self.inner.config.max_component_bytes)?;
        let pool = self.inner.pool_for(&report.needs)?;
        let key = report.sha256.clone();
        let cached = self
            .inner
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let compiled = match cached {
            Some(c) => c,
            None => {
                let component = self.compile(pool, bytes, &key)?;
                let compiled = Arc::new(Compiled::new(&self.inner, pool, component, report)?);
                self.inner
                    .compiled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, compiled.clone());
                compiled
            }
        };
        Ok(LoadedComponent {
            runtime: self.inner.clone(),
            compiled,
        })
    }

    /// Reads a component file and loads it; refuses oversized files before reading them.
    pub fn load_file(&self, path: &std::path::Path) -> Result<LoadedComponent, LoadError> {
        let bytes = read_capped(path, self.inner.config.max_component_bytes)?;
        self.load(&bytes)
    }

    fn cache_path(&self, pool: usize, key: &str) -> Option<PathBuf> {
        let dir = self.inner.config.cache_dir.as_ref()?;
        // The engine's compatibility hash is part of the name, so artifacts of another
        // wasmtime version or configuration are never even opened.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(
            &self.inner.pools[pool]
                .engine
                .precompile_compatibility_hash(),
            &mut hasher,
        );
        let engine = std::hash::Hasher::finish(&hasher);
        Some(dir.join(format!("{key}-{engine:016x}.cwasm")))
    }

    fn compile(&self, pool: usize, bytes: &[u8], key: &str) -> Result<Component, LoadError> {
        let engine = &self.inner.pools[pool].engine;
        if let Some(path) = self.cache_path(pool, key)
            && path.is_file()
        {
            // SAFETY: `path` is in the host's own cache directory, named by the sha256 of
            // bytes that just passed `check`, and was written by `Component::serialize`
            // of this engine configuration. Nothing else writes there.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached component")
                }
            }
        }
        let component =
            Component::new(engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        if let Some(path) = self.cache_path(pool, key) {
            let written = component
                .serialize()
                .map_err(|e| e.to_string())
                .and_then(|artifact| {
                    // Write then rename, so a crash never leaves a half-written artifact
                    // under the final name.
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, artifact).map_err(|e| e.to_string())?;
                    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
                });
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component");
            }
        }
        Ok(component)
    }
}

/// Reads at most `max + 1` bytes, so an oversized file is refused without reading it all.
pub fn read_capped(path: &std::path::Path, max: usize) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?;
    if bytes.len() > max {
        let size = std::fs::metadata(path)
            .map(|m| m.len() as usize)
            .unwrap_or(bytes.len());
        return Err(LoadError::Check(crate::check::CheckError::Oversized {
            size,
            limit: max,
        }));
    }
    Ok(bytes)
}

fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::<StoreState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    crate::wit::Strategy::add_to_linker::<StoreState, HasSelf<HostCtx>>(&mut linker, |s| {
        &mut s.host
    })?;
    // World 0.2.0's new imports, beside 0.1.0's: every component may link them, and a 0.1.x
    // component, which does not import them, is linked exactly as before.
    crate::wit::v0_2::stratbox::strategy0_2_0::memory::add_to_linker::<StoreState, HasSelf<HostCtx>>(
        &mut linker,
        |s| &mut s.host,
    )?;
    crate::wit::v0_2::stratbox::strategy0_2_0::outcomes::add_to_linker::<
        StoreState,
        HasSelf<HostCtx>,
    >(&mut linker, |s| &mut s.host)?;
    // Replace the two WASI functions that would block on real time (see `Ready`), and
    // `host.log` (below).
    linker.allow_shadowing(true);
    {
        let mut clock = linker.instance(WASI_MONOTONIC_CLOCK)?;
        clock.func_wrap(
            "subscribe-duration",
            |mut cx: wasmtime::StoreContextMut<'_, StoreState>, (_,): (u64,)| {
                Ok((ready_pollable(&mut cx.data_mut().table)?,))
            },
        )?;
        clock.func_wrap(
            "subscribe-instant",
            |mut cx: wasmtime::StoreContextMut<'_, StoreState>, (_,): (u64,)| {
                Ok((ready_pollable(&mut cx.data_mut().table)?,))
            },
        )?;
    }
    // `host.log` takes its message as `LogText`: the length first, at most one line's worth
    // copied. The bindings' `String` would copy all of it, however large, before the host
    // could look at its length.
    linker.instance(STRATEGY_HOST)?.func_wrap(
        "log",
        |mut cx: wasmtime::StoreContextMut<'_, StoreState>,
         (level, message): (crate::wit::Level, crate::lift::LogText)| {
            cx.data_mut().host.log_text(level, message);
            Ok(())
        },
    )?;
    linker.allow_shadowing(false);
    Ok(linker)
}

/// What is shared by every instance of one component: compiled code, the pre-linked
/// instance and the export indices. Holds no reference back to the runtime, so the
/// runtime's cache of these makes no cycle.
pub(crate) struct Compiled {
    /// Index of the pool (and engine) the component was compiled for.
    pub(crate) pool: usize,
    pub(crate) pre: InstancePre<StoreState>,
    pub(crate) report: CheckReport,
    pub(crate) init: ComponentExportIndex,
    pub(crate) on_event: ComponentExportIndex,
    /// `save` and `restore` (world 0.1.1), present together or not at all: looked up
    /// here rather than demanded by the bindings, so 0.1.0 components load unchanged.
    pub(crate) state: Option<StateExports>,
    /// `on-outcome` (world 0.2.0), looked up like `state`: optional.
    pub(crate) on_outcome: Option<ComponentExportIndex>,
}

/// The optional exports through which a strategy hands its state to its next version.
#[derive(Clone, Copy)]
pub(crate) struct StateExports {
    pub(crate) save: ComponentExportIndex,
    pub(crate) restore: ComponentExportIndex,
}

impl Compiled {
    fn new(
        runtime: &RuntimeInner,
        pool: usize,
        component: Component,
        report: CheckReport,
    ) -> Result<Self, LoadError> {
        let pre = runtime.pools[pool]
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Compile(format!("linking: {e:#}")))?;
        let init = component
            .get_export_index(None, "init")
            .ok_or_else(|| LoadError::Compile("no export `init`".into()))?;
        let on_event = component
            .get_export_index(None, "on-event")
            .ok_or_else(|| LoadError::Compile("no export `on-event`".into()))?;
        let state = match (
            component.get_export_index(None, "save"),
            component.get_export_index(None, "restore"),
        ) {
            (Some(save), Some(restore)) => Some(StateExports { save, restore }),
            (None, None) => None,
            _ => {
                return Err(LoadError::Compile(
                    "exports only one of `save` and `restore`; a stateful strategy exports both"
                        .into(),
                ));
            }
        };
        let on_outcome = component.get_export_index(None, "on-outcome");
        let compiled = Self {
            pool,
            pre,
            report,
            init,
            on_event,
            state,
            on_outcome,
        };
        // Type-check the exports once, against a real instance: every later instance of
        // this component has the same types, so calls can skip the check.
        typecheck_exports(runtime, &compiled)
            .map_err(|e| LoadError::Compile(format!("exports: {e}")))?;
        Ok(compiled)
    }
}

/// A component ready to be instantiated many times.
#[derive(Clone)]
pub struct LoadedComponent {
    pub(crate) runtime: Arc<RuntimeInner>,
    pub(crate) compiled: Arc<Compiled>,
}

impl LoadedComponent {
    /// What `check` found: world, imports, exports, size, sha256.
    pub fn report(&self) -> &CheckReport {
        &self.compiled.report
    }

    /// Hex sha256 of the component's bytes: its identity in caches and the registry.
    pub fn sha256(&self) -> &str {
        &self.compiled.report.sha256
    }

    /// Exports `save` and `restore` (world `stratbox:strategy/strategy@0.1.1`), so its state
    /// can be handed to the version that replaces it.
    pub fn is_stateful(&self) -> bool {
        self.compiled.state.is_some()
    }

    /// Exports `on-outcome` (world `stratbox:strategy/strategy@0.2.0`): wants to be told what
    /// became of its proposals.
    pub fn wants_outcomes(&self) -> bool {
        self.compiled.on_outcome.is_some()
    }
}

/// A claim on one of the host's instance slots, released on drop.
pub(crate) struct Slot {
    runtime: Arc<RuntimeInner>,
    pool: usize,
}

impl RuntimeInner {
    /// The engine of `pool`, which a store of a component compiled there must use.
    pub(crate) fn engine(&self, pool: usize) -> &Engine {
        &self.pools[pool].engine
    }

    /// The first pool one instance of a component with `needs` fits in, or why none does.
    fn pool_for(&self, needs: &ComponentNeeds) -> Result<usize, LoadError> {
        let mut why = Vec::new();
        for (i, pool) in self.pools.iter().enumerate() {
            match pool.misfit(needs) {
                None => return Ok(i),
                Some(reason) => why.push(reason),
            }
        }
        Err(LoadError::Compile(format!(
            "the component fits none of the host's instance pools: {}",
            why.last().cloned().unwrap_or_default()
        )))
    }

    /// Counts instances against the pool's `max_instances` before wasmtime is asked, so
    /// exhaustion is a clear error in both allocation modes (and on-demand allocation
    /// cannot run the process into `vm.max_map_count`).
    pub(crate) fn acquire_slot(self: &Arc<Self>, pool: usize) -> Result<Slot, CallError> {
        let p = &self.pools[pool];
        let max = p.shape.max_instances;
        let taken = p
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(Slot {
                runtime: self.clone(),
                pool,
            }),
            Err(n) => Err(CallError::PoolExhausted(format!(
                "{n} live instances in the {} pool, the host is configured for at most {max} ({}max_instances)",
                p.name, p.config_prefix
            ))),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.runtime.pools[self.pool]
            .live
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// Epoch ticks that cover `deadline_ms` on this runtime's ticker.
pub(crate) fn epoch_ticks(runtime: &RuntimeInner, deadline_ms: u64) -> u64 {
    // The ticker advances every `tick`; a trap fires between (n-1) and n ticks after the
    // deadline is set, so one extra tick guarantees at least `deadline_ms`.
    let tick_us = runtime.config.epoch_tick().as_micros().max(1) as u64;
    deadline_ms
        .saturating_mul(1000)
        .div_ceil(tick_us)
        .saturating_add(1)
}

/// Instantiates a throwaway instance and type-checks the exports against the types the
/// host calls them with. Run once per component at load time.
fn typecheck_exports(runtime: &RuntimeInner, compiled: &Compiled) -> Result<(), String> {
    let limits = StrategyLimits::default();
    let state = StoreState::new(
        &limits,
        0,
        None,
        Box::new(crate::history::NoHistory),
        Arc::new(OutputCounters::default()),
        crate::memory::StrategyMemory::default(),
    )?;
    let mut store = Store::new(runtime.engine(compiled.pool), state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    if runtime.config.fuel {
        store
            .set_fuel(limits.fuel_init)
            .map_err(|e| e.to_string())?;
    }
    store.set_epoch_deadline(epoch_ticks(runtime, limits.init_deadline_ms));
    let instance = compiled
        .pre
        .instantiate(&mut store)
        .map_err(|e| format!("instantiating: {e}"))?;
    instance
        .get_typed_func::<(&str,), (Result<(), ErrorString>,)>(&mut store, &compiled.init)
        .map_err(|e| format!("`init`: {e}"))?;
    instance
        .get_typed_func::<(&Event, &Snapshot), (Result<BoundedList<RawProposal>, ErrorString>,)>(
            &mut store,
            &compiled.on_event,
        )
        .map_err(|e| format!("`on-event`: {e}"))?;
    if let Some(state) = &compiled.state {
        instance
            .get_typed_func::<(), (Vec<u8>,)>(&mut store, &state.save)
            .map_err(|e| format!("`save`: {e}"))?;
        instance
            .get_typed_func::<(&[u8],), (Result<(), ErrorString>,)>(&mut store, &state.restore)
            .map_err(|e| format!("`restore`: {e}"))?;
    }
    if let Some(on_outcome) = &compiled.on_outcome {
        instance
            .get_typed_func::<(&crate::wit::v0_2::Outcome,), (Result<(), ErrorString>,)>(
                &mut store, on_outcome,
            )
            .map_err(|e| format!("`on-outcome`: {e}"))?;
    }
    Ok(())
}
