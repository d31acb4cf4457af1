//! One strategy instance and the supervisor around it.
//!
//! [`StrategyInstance`] owns at most one live wasmtime store of a component. A call that
//! the host had to stop (fuel, deadline, memory, trap) or refuse (bad output) throws the
//! store away; the next call builds a fresh one from the component's `InstancePre` and
//! runs `init` again, so no state of a failed instance survives. After
//! `max_consecutive_failures` such failures in a row the instance is quarantined: calls
//! are answered with `Quarantined` until a backoff passes, doubling each time.

use crate::error::CallError;
use crate::history::History;
use crate::lift::{BoundedList, ErrorString, LiftBounds, OutputTooLarge, RawProposal};
use crate::limits::StrategyLimits;
use crate::proposal::{ValidatedProposal, validate};
use crate::runtime::{Compiled, LoadedComponent, RuntimeInner, Slot};
use crate::sandbox::StoreState;
use crate::wit::{Event, Snapshot};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmtime::component::{Func, TypedFunc};
use wasmtime::{Store, Trap};

type InitFn<'a> = TypedFunc<(&'a str,), (Result<(), ErrorString>,)>;
type SaveFn = TypedFunc<(), (Vec<u8>,)>;
type RestoreFn<'a> = TypedFunc<(&'a [u8],), (Result<(), ErrorString>,)>;
type OnEventFn<'a> =
    TypedFunc<(&'a Event, &'a Snapshot), (Result<BoundedList<RawProposal>, ErrorString>,)>;

/// How to run one instance: its operator config, limits, seed and grant.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Label in logs and metrics, e.g. `clamm-maker/eth-usdc`.
    pub name: String,
    /// JSON given to `init`.
    pub config: String,
    pub limits: StrategyLimits,
    /// Seeds the instance's WASI randomness; the same seed replays the same draws.
    pub seed: u64,
    /// At most one directory, granted read-only at `/data`.
    pub granted_dir: Option<PathBuf>,
}

impl InstanceSpec {
    pub fn new(name: impl Into<String>, config: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            config: config.into(),
            limits: StrategyLimits::default(),
            seed: 0,
            granted_dir: None,
        }
    }

    pub fn with_limits(mut self, limits: StrategyLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// A successful call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    pub proposals: Vec<ValidatedProposal>,
    /// Fuel burned by this call (0 on an engine without fuel).
    pub fuel_used: u64,
}

/// What the last call cost, whether or not it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallMetrics {
    pub fuel_used: u64,
    /// Time inside the guest call, lifting and validation included.
    pub elapsed: Duration,
}

/// Counters of one instance, for metrics and the backtest report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct InstanceStats {
    pub calls: u64,
    /// Calls that reached the guest's `on-event` (not refused by quarantine or a failed
    /// build).
    pub guest_calls: u64,
    pub ok_calls: u64,
    pub proposals: u64,
    /// Stores built (the first one and every rebuild).
    pub builds: u64,
    /// `init` calls that succeeded.
    pub inits: u64,
    pub quarantines: u64,
    pub fuel_used: u64,
    /// Errors by `CallError::kind()`.
    pub errors: BTreeMap<&'static str, u64>,
}

/// Largest state a strategy may hand over in a hot swap. The guest's own memory limit
/// bounds what it can return at all; this keeps a state that is mostly garbage from
/// being copied into a second instance.
pub const MAX_STATE_BYTES: usize = 16 << 20;

/// A live store and the handles into it.
struct Live {
    store: Store<StoreState>,
    on_event: Func,
    /// `save` and `restore`, when the component exports them.
    state: Option<(Func, Func)>,
    // Dropped after the store, releasing the host's slot count once wasmtime's is free.
    _slot: Slot,
}

fn epoch_ticks(runtime: &RuntimeInner, deadline_ms: u64) -> u64 {
    // The ticker advances every `tick`; a trap fires between (n-1) and n ticks after the
    // deadline is set, so one extra tick guarantees at least `deadline_ms`.
    let tick_us = runtime.config.epoch_tick().as_micros().max(1) as u64;
    deadline_ms
        .saturating_mul(1000)
        .div_ceil(tick_us)
        .saturating_add(1)
}

fn lift_bounds(limits: &StrategyLimits) -> LiftBounds {
    LiftBounds {
        max_list: limits.max_proposals,
        max_string: limits.max_string_bytes,
        max_total_bytes: limits.max_output_bytes,
        max_error: limits.max_error_bytes,
    }
}

/// Turns what wasmtime returned into the error a strategy's operator can act on.
fn classify(
    err: wasmtime::Error,
    denied: Option<String>,
    fuel_limit: u64,
    deadline_ms: u64,
    last_stderr: String,
) -> CallError {
    if let Some(too_large) = err.downcast_ref::<OutputTooLarge>() {
        return CallError::BadOutput(too_large.0.clone());
    }
    if let Some(reason) = denied {
        return CallError::MemoryLimit(reason);
    }
    if err
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return CallError::PoolExhausted(err.to_string());
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel { limit: fuel_limit },
        Some(Trap::Interrupt) => CallError::Deadline { deadline_ms },
        Some(trap) if last_stderr.is_empty() => CallError::Trap(trap.to_string()),
        Some(trap) => CallError::Trap(format!("{trap} (guest stderr: {last_stderr})")),
        // Not a wasm trap: a host function or the canonical ABI refused what the guest
        // passed (e.g. invalid UTF-8, a pointer out of bounds).
        None => CallError::Trap(format!("{err}").lines().next().unwrap_or("").to_string()),
    }
}

/// Instantiates a throwaway instance and type-checks the exports against the types the
/// host calls them with. Run once per component at load time.
pub(crate) fn typecheck_exports(runtime: &RuntimeInner, compiled: &Compiled) -> Result<(), String> {
    let limits = StrategyLimits::default();
    let state = StoreState::new(&limits, 0, None, Box::new(crate::history::NoHistory))?;
    let mut store = Store::new(&runtime.engine, state);
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
    Ok(())
}

impl Live {
    /// Builds a store, instantiates and runs `init`. On failure the history provider is
    /// handed back so the supervisor can try again later.
    fn build(
        component: &LoadedComponent,
        spec: &InstanceSpec,
        history: Box<dyn History>,
    ) -> Result<(Live, u64), (CallError, Box<dyn History>)> {
        let runtime = &component.runtime;
        let limits = &spec.limits;
        if limits.memory_bytes > runtime.config.max_memory_bytes {
            return Err((
                CallError::Config(format!(
                    "memory limit {} bytes is over the host's ceiling of {} bytes",
                    limits.memory_bytes, runtime.config.max_memory_bytes
                )),
                history,
            ));
        }
        let slot = match runtime.acquire_slot() {
            Ok(slot) => slot,
            Err(e) => return Err((e, history)),
        };
        let state = match StoreState::new(limits, spec.seed, spec.granted_dir.as_deref(), history) {
            Ok(state) => state,
            Err(e) => {
                // `StoreState::new` only fails granting the directory, before it takes
                // ownership of anything but `history`; rebuild is pointless until the
                // operator fixes the grant.
                return Err((CallError::Config(e), Box::new(crate::history::NoHistory)));
            }
        };
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        if runtime.config.fuel
            && let Err(e) = store.set_fuel(limits.fuel_init)
        {
            return Err((
                CallError::Config(e.to_string()),
                store.into_data().into_history(),
            ));
        }
        store.set_epoch_deadline(epoch_ticks(runtime, limits.init_deadline_ms));

        let fail = |store: Store<StoreState>, err: wasmtime::Error| {
            let mut store = store;
            let denied = store.data_mut().limiter.denied.take();
            let stderr = store.data().host.sink.lock().take_last_stderr();
            store.data().host.sink.lock().end_call();
            let error = match classify(
                err,
                denied,
                limits.fuel_init,
                limits.init_deadline_ms,
                stderr,
            ) {
                e @ CallError::PoolExhausted(_) => e,
                e => CallError::Init(e.to_string()),
            };
            (error, store.into_data().into_history())
        };

        let instance = match component.compiled.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => return Err(fail(store, e)),
        };
        let (Some(init), Some(on_event)) = (
            instance.get_func(&mut store, &component.compiled.init),
            instance.get_func(&mut store, &component.compiled.on_event),
        ) else {
            let e = wasmtime::format_err!("exports missing after instantiation");
            return Err(fail(store, e));
        };
        let state = match &component.compiled.state {
            None => None,
            Some(exports) => match (
                instance.get_func(&mut store, exports.save),
                instance.get_func(&mut store, exports.restore),
            ) {
                (Some(save), Some(restore)) => Some((save, restore)),
                _ => {
                    let e = wasmtime::format_err!("`save`/`restore` missing after instantiation");
                    return Err(fail(store, e));
                }
            },
        };
        // SAFETY: the export types were checked against exactly these Rust types when the
        // component was loaded (`typecheck_exports`), and every instance of a component
        // has the same export types.
        let init_fn: InitFn<'_> = unsafe { TypedFunc::new_unchecked(init) };
        let result = {
            let _bounds = lift_bounds(limits).install();
            init_fn.call(&mut store, (spec.config.as_str(),))
        };
        let fuel_used = if runtime.config.fuel {
            limits
                .fuel_init
                .saturating_sub(store.get_fuel().unwrap_or(0))
        } else {
            0
        };
        match result {
            Ok((Ok(()),)) => {
                store.data().host.sink.lock().end_call();
                Ok((
                    Live {
                        store,
                        on_event,
                        state,
                        _slot: slot,
                    },
                    fuel_used,
                ))
            }
            Ok((Err(message),)) => {
                store.data().host.sink.lock().end_call();
                Err((CallError::Init(message.0), store.into_data().into_history()))
            }
            Err(e) => Err(fail(store, e)),
        }
    }

    /// Gives a state call the per-call fuel and deadline, like an event.
    fn arm(&mut self, runtime: &RuntimeInner, limits: &StrategyLimits) -> Result<(), CallError> {
        self.store.data_mut().limiter.denied = None;
        if runtime.config.fuel {
            self.store
                .set_fuel(limits.fuel_per_call)
                .map_err(|e| CallError::Config(e.to_string()))?;
        }
        self.store
            .set_epoch_deadline(epoch_ticks(runtime, limits.deadline_ms));
        Ok(())
    }

    fn failed(&mut self, err: wasmtime::Error, limits: &StrategyLimits) -> CallError {
        let denied = self.store.data_mut().limiter.denied.take();
        let stderr = {
            let mut sink = self.store.data().host.sink.lock();
            let s = sink.take_last_stderr();
            sink.end_call();
            s
        };
        classify(
            err,
            denied,
            limits.fuel_per_call,
            limits.deadline_ms,
            stderr,
        )
    }

    /// `Ok(None)`: the component does not export `save`.
    fn save(
        &mut self,
        runtime: &RuntimeInner,
        limits: &StrategyLimits,
    ) -> Result<Option<Vec<u8>>, CallError> {
        let Some((save, _)) = self.state else {
            return Ok(None);
        };
        self.arm(runtime, limits)?;
        // SAFETY: the type was checked against exactly this one at load time.
        let save: SaveFn = unsafe { TypedFunc::new_unchecked(save) };
        match save.call(&mut self.store, ()) {
            Ok((bytes,)) => {
                self.store.data().host.sink.lock().end_call();
                if bytes.len() > MAX_STATE_BYTES {
                    return Err(CallError::BadOutput(format!(
                        "saved state is {} bytes, over the limit of {MAX_STATE_BYTES}",
                        bytes.len()
                    )));
                }
                Ok(Some(bytes))
            }
            Err(e) => Err(self.failed(e, limits)),
        }
    }

    /// `Ok(false)`: the component does not export `restore`.
    fn restore(
        &mut self,
        runtime: &RuntimeInner,
        limits: &StrategyLimits,
        state: &[u8],
    ) -> Result<bool, CallError> {
        let Some((_, restore)) = self.state else {
            return Ok(false);
        };
        self.arm(runtime, limits)?;
        // SAFETY: the type was checked against exactly this one at load time.
        let restore: RestoreFn<'_> = unsafe { TypedFunc::new_unchecked(restore) };
        let result = {
            let _bounds = lift_bounds(limits).install();
            restore.call(&mut self.store, (state,))
        };
        match result {
            Ok((Ok(()),)) => {
                self.store.data().host.sink.lock().end_call();
                Ok(true)
            }
            Ok((Err(message),)) => {
                self.store.data().host.sink.lock().end_call();
                Err(CallError::Strategy(format!(
                    "restore refused the state: {}",
                    message.0
                )))
            }
            Err(e) => Err(self.failed(e, limits)),
        }
    }

    fn call(
        &mut self,
        runtime: &RuntimeInner,
        limits: &StrategyLimits,
        event: &Event,
        snapshot: &Snapshot,
    ) -> (Result<CallOutcome, CallError>, CallMetrics) {
        let fuel = runtime.config.fuel;
        {
            let data = self.store.data_mut();
            data.host.watermark = snapshot.last_sync_block;
            data.host.clock.set_unix_seconds(snapshot.timestamp);
            data.limiter.denied = None;
        }
        if fuel && let Err(e) = self.store.set_fuel(limits.fuel_per_call) {
            return (
                Err(CallError::Config(e.to_string())),
                CallMetrics::default(),
            );
        }
        self.store
            .set_epoch_deadline(epoch_ticks(runtime, limits.deadline_ms));
        // SAFETY: see `Live::build`: checked once per component at load time.
        let on_event: OnEventFn<'_> = unsafe { TypedFunc::new_unchecked(self.on_event) };
        let start = Instant::now();
        let result = {
            let _bounds = lift_bounds(limits).install();
            on_event.call(&mut self.store, (event, snapshot))
        };
        let fuel_used = if fuel {
            limits
                .fuel_per_call
                .saturating_sub(self.store.get_fuel().unwrap_or(0))
        } else {
            0
        };
        let outcome = match result {
            Ok((Ok(list),)) => {
                self.store.data().host.sink.lock().end_call();
                list.0
                    .into_iter()
                    .enumerate()
                    .map(|(i, raw)| validate(raw, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|proposals| CallOutcome {
                        proposals,
                        fuel_used,
                    })
                    .map_err(CallError::BadOutput)
            }
            Ok((Err(message),)) => {
                self.store.data().host.sink.lock().end_call();
                Err(CallError::Strategy(message.0))
            }
            Err(e) => {
                let denied = self.store.data_mut().limiter.denied.take();
                let stderr = {
                    let mut sink = self.store.data().host.sink.lock();
                    let s = sink.take_last_stderr();
                    sink.end_call();
                    s
                };
                Err(classify(
                    e,
                    denied,
                    limits.fuel_per_call,
                    limits.deadline_ms,
                    stderr,
                ))
            }
        };
        let metrics = CallMetrics {
            fuel_used,
            elapsed: start.elapsed(),
        };
        (outcome, metrics)
    }
}

/// Supervises one instance of a component: see the module docs.
pub struct StrategyInstance {
    component: LoadedComponent,
    spec: InstanceSpec,
    live: Option<Live>,
    /// Held here while no store is live; moved into the store while one is.
    history: Option<Box<dyn History>>,
    consecutive_failures: u32,
    quarantine_level: u32,
    quarantined_until: Option<Instant>,
    stats: InstanceStats,
    last_call: CallMetrics,
}

impl StrategyInstance {
    /// A supervisor with no live store yet; the first call (or [`Self::start`]) builds one.
    pub fn new(
        component: &LoadedComponent,
        spec: InstanceSpec,
        history: impl History + 'static,
    ) -> Self {
        Self {
            component: component.clone(),
            spec,
            live: None,
            history: Some(Box::new(history)),
            consecutive_failures: 0,
            quarantine_level: 0,
            quarantined_until: None,
            stats: InstanceStats::default(),
            last_call: CallMetrics::default(),
        }
    }

    pub fn spec(&self) -> &InstanceSpec {
        &self.spec
    }

    pub fn stats(&self) -> &InstanceStats {
        &self.stats
    }

    /// Fuel and time of the last `on-event` call, failed or not.
    pub fn last_call(&self) -> CallMetrics {
        self.last_call
    }

    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    pub fn quarantined_until(&self) -> Option<Instant> {
        self.quarantined_until
    }

    /// Builds the store and runs `init` now rather than on the first call.
    pub fn start(&mut self) -> Result<(), CallError> {
        self.start_at(Instant::now())
    }

    pub fn start_at(&mut self, now: Instant) -> Result<(), CallError> {
        self.check_quarantine(now)?;
        self.ensure_live(now)
    }

    /// Exports `save` and `restore`.
    pub fn is_stateful(&self) -> bool {
        self.component.is_stateful()
    }

    /// The live instance's state, for the version that replaces it. `Ok(None)` when the
    /// component is not stateful or no instance is live (a quarantined or never-started
    /// instance has no state worth handing over). A failed `save` discards the instance
    /// like a failed call.
    pub fn save(&mut self) -> Result<Option<Vec<u8>>, CallError> {
        let Some(live) = self.live.as_mut() else {
            return Ok(None);
        };
        let result = live.save(&self.component.runtime, &self.spec.limits);
        if let Err(e) = &result
            && e.discards_instance()
        {
            self.kill();
        }
        result
    }

    /// Hands `state` (from an earlier version's [`Self::save`]) to the live instance, which
    /// must have been started. `Ok(false)` when the component does not export `restore`.
    /// A refusal (`CallError::Strategy`) leaves the instance as `init` made it; a trap
    /// discards it, so its next call rebuilds it from `init` alone.
    pub fn restore(&mut self, state: &[u8]) -> Result<bool, CallError> {
        self.ensure_live(Instant::now())?;
        let Some(live) = self.live.as_mut() else {
            return Err(CallError::Config(
                "no live instance after a successful build".into(),
            ));
        };
        let result = live.restore(&self.component.runtime, &self.spec.limits, state);
        if let Err(e) = &result
            && e.discards_instance()
        {
            self.kill();
        }
        result
    }

    /// Throws the live store away (an operator's kill, or a benchmark's). Not a failure:
    /// the next call rebuilds without counting towards quarantine.
    pub fn kill(&mut self) {
        if let Some(live) = self.live.take() {
            self.history = Some(live.store.into_data().into_history());
        }
    }

    /// Calls `on-event`. `trace_id` tags every log line the call produces.
    pub fn call(
        &mut self,
        event: &Event,
        snapshot: &Snapshot,
        trace_id: &str,
    ) -> Result<CallOutcome, CallError> {
        self.call_at(Instant::now(), event, snapshot, trace_id)
    }

    /// [`Self::call`] with the supervisor's notion of now given, so quarantine can be
    /// tested and replayed without waiting.
    pub fn call_at(
        &mut self,
        now: Instant,
        event: &Event,
        snapshot: &Snapshot,
        trace_id: &str,
    ) -> Result<CallOutcome, CallError> {
        let span = tracing::info_span!(
            "strategy_call",
            strategy = %self.spec.name,
            component = %&self.component.sha256()[..12],
            trace_id = %trace_id,
        );
        let _entered = span.enter();
        self.stats.calls += 1;
        let result = self.call_inner(now, event, snapshot);
        match &result {
            Ok(outcome) => {
                self.stats.ok_calls += 1;
                self.stats.proposals += outcome.proposals.len() as u64;
            }
            Err(e) => {
                *self.stats.errors.entry(e.kind()).or_default() += 1;
                tracing::debug!(kind = e.kind(), error = %e, "strategy call failed");
            }
        }
        result
    }

    fn call_inner(
        &mut self,
        now: Instant,
        event: &Event,
        snapshot: &Snapshot,
    ) -> Result<CallOutcome, CallError> {
        self.check_quarantine(now)?;
        self.ensure_live(now)?;
        let Some(live) = self.live.as_mut() else {
            return Err(CallError::Config(
                "no live instance after a successful build".into(),
            ));
        };
        let (result, metrics) =
            live.call(&self.component.runtime, &self.spec.limits, event, snapshot);
        self.last_call = metrics;
        self.stats.guest_calls += 1;
        self.stats.fuel_used += metrics.fuel_used;
        match &result {
            Ok(_) => {
                self.consecutive_failures = 0;
                self.quarantine_level = 0;
            }
            Err(e) if e.discards_instance() => {
                self.kill();
                self.record_failure(now, e);
            }
            Err(_) => {}
        }
        result
    }

    fn check_quarantine(&mut self, now: Instant) -> Result<(), CallError> {
        if let Some(until) = self.quarantined_until {
            if now < until {
                return Err(CallError::Quarantined {
                    failures: self.consecutive_failures,
                    retry_in: until - now,
                });
            }
            tracing::info!(strategy = %self.spec.name, "quarantine over; rebuilding");
            self.quarantined_until = None;
        }
        Ok(())
    }

    fn ensure_live(&mut self, now: Instant) -> Result<(), CallError> {
        if self.live.is_some() {
            return Ok(());
        }
        let history = self
            .history
            .take()
            .unwrap_or_else(|| Box::new(crate::history::NoHistory));
        self.stats.builds += 1;
        match Live::build(&self.component, &self.spec, history) {
            Ok((live, _init_fuel)) => {
                self.stats.inits += 1;
                self.live = Some(live);
                Ok(())
            }
            Err((error, history)) => {
                self.history = Some(history);
                if error.is_failure() {
                    self.record_failure(now, &error);
                }
                Err(error)
            }
        }
    }

    fn record_failure(&mut self, now: Instant, error: &CallError) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let limits = &self.spec.limits;
        if self.consecutive_failures < limits.max_consecutive_failures {
            return;
        }
        self.quarantine_level = self.quarantine_level.saturating_add(1);
        let factor = 1u64 << (self.quarantine_level - 1).min(32);
        let backoff_ms = limits
            .backoff_initial_ms
            .saturating_mul(factor)
            .min(limits.backoff_max_ms);
        let backoff = Duration::from_millis(backoff_ms);
        self.quarantined_until = Some(now + backoff);
        self.stats.quarantines += 1;
        tracing::warn!(
            strategy = %self.spec.name,
            failures = self.consecutive_failures,
            backoff_ms,
            last_error = %error,
            "strategy instance quarantined"
        );
    }
}
