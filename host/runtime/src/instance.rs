//! One strategy instance and the supervisor around it.
//!
//! [`StrategyInstance`] owns at most one live wasmtime store of a component. A call that
//! the host had to stop (fuel, deadline, memory, trap) or refuse (bad output) throws the
//! store away; the next call builds a fresh one from the component's `InstancePre` and
//! runs `init` again, so no state of a failed instance survives. After
//! `max_consecutive_failures` such failures in a row the instance is quarantined: calls
//! are answered with `Quarantined` until a backoff passes, doubling each time.

use crate::capture::OutputCounters;
use crate::error::CallError;
use crate::history::History;
use crate::lift::{BoundedList, ErrorString, LiftBounds, OutputTooLarge, RawProposal};
use crate::limits::StrategyLimits;
use crate::memory::StrategyMemory;
use crate::proposal::{ValidatedProposal, validate};
use crate::runtime::{LoadedComponent, RuntimeInner, Slot, epoch_ticks};
use crate::sandbox::StoreState;
use crate::wit::v0_2::Outcome;
use crate::wit::{Event, Snapshot};
use serde::Serialize;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use wasmtime::component::{ComponentNamedList, Func, Lift, Lower, TypedFunc};
use wasmtime::{Store, Trap};

type InitFn<'a> = TypedFunc<(&'a str,), (Result<(), ErrorString>,)>;
type SaveFn = TypedFunc<(), (Vec<u8>,)>;
type RestoreFn<'a> = TypedFunc<(&'a [u8],), (Result<(), ErrorString>,)>;
type OnOutcomeFn<'a> = TypedFunc<(&'a Outcome,), (Result<(), ErrorString>,)>;
type OnEventFn<'a> =
    TypedFunc<(&'a Event, &'a Snapshot), (Result<BoundedList<RawProposal>, ErrorString>,)>;

/// How to run one instance: its operator config, limits, seed and grant.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Label in logs and metrics, e.g. `clamm-maker/eth-usdc`.
    pub name: String,
    /// JSON given to `init`.
    pub config: String,
    /// Fuel, memory, deadline and quarantine limits.
    pub limits: StrategyLimits,
    /// Seeds the instance's WASI randomness; the same seed replays the same draws.
    pub seed: u64,
    /// At most one directory, granted read-only at `/data`.
    pub granted_dir: Option<PathBuf>,
    /// The deployment's memory (world 0.2.0's `memory`), shared by its instances; a fresh
    /// one, kept by nobody, unless given.
    pub memory: StrategyMemory,
}

impl InstanceSpec {
    /// Default limits, seed 0 and no granted directory.
    pub fn new(name: impl Into<String>, config: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            config: config.into(),
            limits: StrategyLimits::default(),
            seed: 0,
            granted_dir: None,
            memory: StrategyMemory::default(),
        }
    }

    /// Gives the instance its deployment's memory, keeping the rest.
    pub fn with_memory(mut self, memory: StrategyMemory) -> Self {
        self.memory = memory;
        self
    }

    /// Replaces the limits, keeping the rest.
    pub fn with_limits(mut self, limits: StrategyLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// A successful call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// Proposals the call made, validated; empty when it made none.
    pub proposals: Vec<ValidatedProposal>,
    /// Fuel burned by this call (0 on an engine without fuel).
    pub fuel_used: u64,
}

/// What the last call cost, whether or not it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallMetrics {
    /// Fuel burned (0 on an engine without fuel).
    pub fuel_used: u64,
    /// Time inside the guest call, lifting and validation included.
    pub elapsed: Duration,
}

/// Counters of one instance, for metrics and the backtest report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct InstanceStats {
    /// Calls asked for, refused ones included.
    pub calls: u64,
    /// Calls that reached the guest's `on-event` (not refused by quarantine or a failed
    /// build).
    pub guest_calls: u64,
    /// Calls that returned `Ok`.
    pub ok_calls: u64,
    /// Proposals returned, after validation.
    pub proposals: u64,
    /// Stores built (the first one and every rebuild).
    pub builds: u64,
    /// `init` calls that succeeded.
    pub inits: u64,
    /// Times the instance was put in quarantine.
    pub quarantines: u64,
    /// Fuel burned by `on-event` calls, failed ones included (a call stopped at its
    /// deadline counts what it burned until then).
    pub fuel_used: u64,
    /// Errors by `CallError::kind()`.
    pub errors: BTreeMap<&'static str, u64>,
    /// Guest output (stdout, stderr, `host.log`) the host did not forward, by reason
    /// (`over_budget`: the call's `log_bytes_per_call` was spent): writes and messages.
    pub output_dropped: BTreeMap<&'static str, u64>,
    /// Their bytes.
    pub output_dropped_bytes: u64,
    /// `on-outcome` calls that returned `Ok`.
    pub outcomes: u64,
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
    /// `on-outcome`, when the component exports it.
    on_outcome: Option<Func>,
    // Dropped after the store, releasing the host's slot count once wasmtime's is free.
    _slot: Slot,
}

fn lift_bounds(limits: &StrategyLimits) -> LiftBounds {
    LiftBounds {
        max_list: limits.max_proposals,
        max_string: limits.max_string_bytes,
        max_total_bytes: limits.max_output_bytes,
        max_error: limits.max_error_bytes,
    }
}

/// What the host knows about a guest call that failed, besides the error itself.
struct Failure {
    /// Why the resource limiter refused a grow, if it did.
    denied: Option<String>,
    fuel_limit: u64,
    /// Fuel the call burned, as far as the store can tell.
    fuel_used: u64,
    deadline_ms: u64,
    /// The guest's own account of its end on stderr (a panic message), if any.
    guest_message: String,
}

/// Turns what wasmtime returned into the error a strategy's operator can act on.
fn classify(err: wasmtime::Error, failure: Failure) -> CallError {
    let Failure {
        denied,
        fuel_limit,
        fuel_used,
        deadline_ms,
        guest_message,
    } = failure;
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
    // `exit` (WASI cli) unwinds the guest with its code.
    if let Some(exit) = err
        .chain()
        .find_map(|e| e.downcast_ref::<wasmtime_wasi::I32Exit>())
    {
        return CallError::Exit { code: exit.0 };
    }
    let with_message = |what: String| {
        if guest_message.is_empty() {
            what
        } else {
            format!("{what} (guest stderr: {guest_message})")
        }
    };
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel { limit: fuel_limit },
        Some(Trap::Interrupt) => CallError::Deadline {
            deadline_ms,
            fuel_used,
        },
        Some(trap) => CallError::Trap(with_message(trap.to_string())),
        // Not a wasm trap: a host function or the canonical ABI refused what the guest
        // passed (e.g. invalid UTF-8, a pointer out of bounds). Its own words are the root
        // cause; the outer layers are wasmtime's backtrace.
        None => CallError::Trap(with_message(err.root_cause().to_string())),
    }
}

/// How long after its deadline the epoch interrupt stops a sliced call that did not reach
/// a slice boundary in time (a long host call). Its fuel count is then only what wasmtime
/// last saved, a lower bound.
fn epoch_backstop_ms(deadline_ms: u64) -> u64 {
    (deadline_ms / 4).max(10)
}

/// Whether calls on this runtime run in fuel slices (see `HostConfig::fuel_slice`).
fn sliced(runtime: &RuntimeInner) -> bool {
    runtime.config.runs_in_slices()
}

/// The allowance of one guest call.
#[derive(Clone, Copy, Debug)]
struct Budget {
    fuel: u64,
    deadline_ms: u64,
}

impl Budget {
    /// Instantiation plus `init`.
    fn init(limits: &StrategyLimits) -> Self {
        Budget {
            fuel: limits.fuel_init,
            deadline_ms: limits.init_deadline_ms,
        }
    }

    /// `on-event`, `save`, `restore`.
    fn call(limits: &StrategyLimits) -> Self {
        Budget {
            fuel: limits.fuel_per_call,
            deadline_ms: limits.deadline_ms,
        }
    }
}

/// Why a guest call did not return normally.
enum Stopped {
    /// Wasmtime's error: a trap, a refused host call, an exit.
    Error(wasmtime::Error),
    /// Still running at a slice boundary after its deadline.
    Deadline,
    /// A host function panicked while serving the guest.
    HostPanic(String),
}

/// Gives `store` the fuel and deadlines of `budget`; returns when the call must stop.
fn arm(
    runtime: &RuntimeInner,
    store: &mut Store<StoreState>,
    budget: Budget,
) -> Result<Instant, CallError> {
    let started = Instant::now();
    store.data_mut().limiter.denied = None;
    if runtime.config.fuel {
        store
            .set_fuel(budget.fuel)
            .map_err(|e| CallError::Config(e.to_string()))?;
    }
    let epoch_ms = if sliced(runtime) {
        budget
            .deadline_ms
            .saturating_add(epoch_backstop_ms(budget.deadline_ms))
    } else {
        budget.deadline_ms
    };
    store.set_epoch_deadline(epoch_ticks(runtime, epoch_ms));
    Ok(started + Duration::from_millis(budget.deadline_ms))
}

/// Fuel burned since [`arm`] gave the store `budget` (0 on an engine without fuel).
fn fuel_used(runtime: &RuntimeInner, store: &Store<StoreState>, budget: Budget) -> u64 {
    if runtime.config.fuel {
        budget.fuel.saturating_sub(store.get_fuel().unwrap_or(0))
    } else {
        0
    }
}

/// Polls a guest call to its end on this thread, looking at the clock at every fuel slice
/// boundary and giving up (dropping the call, which unwinds the guest) once `deadline`
/// has passed. A panic of a host function serving the call is caught here: it fails
/// this call, not the thread, the host or the strategies beside it.
fn drive<T>(
    call: impl Future<Output = wasmtime::Result<T>>,
    deadline: Instant,
) -> Result<T, Stopped> {
    let mut call = std::pin::pin!(call);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(Ok(value))) => return Ok(value),
            Ok(Poll::Ready(Err(e))) => return Err(Stopped::Error(e)),
            Ok(Poll::Pending) if Instant::now() >= deadline => return Err(Stopped::Deadline),
            Ok(Poll::Pending) => {}
            Err(panic) => return Err(Stopped::HostPanic(panic_message(panic.as_ref()))),
        }
    }
}

/// Calls `func` on `store`: in fuel slices through [`drive`] when the runtime slices,
/// else synchronously (the epoch alone stops it) through [`guard`].
fn run<P, R>(
    runtime: &RuntimeInner,
    store: &mut Store<StoreState>,
    func: TypedFunc<P, R>,
    params: P,
    deadline: Instant,
) -> Result<R, Stopped>
where
    P: ComponentNamedList + Lower + Send + Sync,
    R: ComponentNamedList + Lift + Send + Sync + 'static,
{
    if sliced(runtime) {
        drive(func.call_async(store, params), deadline)
    } else {
        guard(|| func.call(store, params))
    }
}

/// [`drive`] for a synchronous step: only the host-panic guard.
fn guard<T>(step: impl FnOnce() -> wasmtime::Result<T>) -> Result<T, Stopped> {
    match std::panic::catch_unwind(AssertUnwindSafe(step)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Stopped::Error(e)),
        Err(panic) => Err(Stopped::HostPanic(panic_message(panic.as_ref()))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The error for a call that `stopped`, from what the store recorded.
fn stopped_error(
    store: &mut Store<StoreState>,
    stopped: Stopped,
    budget: Budget,
    fuel_used: u64,
) -> CallError {
    let denied = store.data_mut().limiter.denied.take();
    let guest_message = {
        let mut sink = store.data().host.sink.lock();
        let message = sink.take_guest_message();
        sink.end_call();
        message
    };
    match stopped {
        Stopped::Deadline => CallError::Deadline {
            deadline_ms: budget.deadline_ms,
            fuel_used,
        },
        Stopped::HostPanic(message) => {
            tracing::error!(panic = %crate::display::escape(&message), "a host function panicked serving a strategy call; the instance is discarded");
            CallError::Trap(format!(
                "the host failed while serving the guest: {message}"
            ))
        }
        Stopped::Error(err) => classify(
            err,
            Failure {
                denied,
                fuel_limit: budget.fuel,
                fuel_used,
                deadline_ms: budget.deadline_ms,
                guest_message,
            },
        ),
    }
}

impl Live {
    /// Builds a store, instantiates and runs `init`. On failure the history provider is
    /// handed back so the supervisor can try again later.
    fn build(
        component: &LoadedComponent,
        spec: &InstanceSpec,
        history: Box<dyn History>,
        output: &Arc<OutputCounters>,
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
        let slot = match runtime.acquire_slot(component.compiled.pool) {
            Ok(slot) => slot,
            Err(e) => return Err((e, history)),
        };
        let state = match StoreState::new(
            limits,
            spec.seed,
            spec.granted_dir.as_deref(),
            history,
            output.clone(),
            spec.memory.clone(),
        ) {
            Ok(state) => state,
            Err(e) => {
                // `StoreState::new` only fails granting the directory, before it takes
                // ownership of anything but `history`; rebuild is pointless until the
                // operator fixes the grant.
                return Err((CallError::Config(e), Box::new(crate::history::NoHistory)));
            }
        };
        let mut store = Store::new(runtime.engine(component.compiled.pool), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        let budget = Budget::init(limits);
        let deadline = match arm(runtime, &mut store, budget) {
            Ok(deadline) => deadline,
            Err(e) => return Err((e, store.into_data().into_history())),
        };

        let fail = |store: Store<StoreState>, stopped: Stopped| {
            let mut store = store;
            let used = fuel_used(runtime, &store, budget);
            let error = match stopped_error(&mut store, stopped, budget, used) {
                e @ CallError::PoolExhausted(_) => e,
                e => CallError::Init(e.to_string()),
            };
            (error, store.into_data().into_history())
        };

        // Instantiation runs no guest code but start functions; it stays synchronous (the
        // epoch bounds it). Calls after it may go in fuel slices.
        let instance = match guard(|| component.compiled.pre.instantiate(&mut store)) {
            Ok(instance) => instance,
            Err(stopped) => return Err(fail(store, stopped)),
        };
        if sliced(runtime)
            && let Err(e) = store.fuel_async_yield_interval(Some(runtime.config.fuel_slice))
        {
            return Err((
                CallError::Config(e.to_string()),
                store.into_data().into_history(),
            ));
        }
        let (Some(init), Some(on_event)) = (
            instance.get_func(&mut store, &component.compiled.init),
            instance.get_func(&mut store, &component.compiled.on_event),
        ) else {
            let e = wasmtime::format_err!("exports missing after instantiation");
            return Err(fail(store, Stopped::Error(e)));
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
                    return Err(fail(store, Stopped::Error(e)));
                }
            },
        };
        let on_outcome = match component.compiled.on_outcome {
            None => None,
            Some(index) => match instance.get_func(&mut store, index) {
                Some(f) => Some(f),
                None => {
                    let e = wasmtime::format_err!("`on-outcome` missing after instantiation");
                    return Err(fail(store, Stopped::Error(e)));
                }
            },
        };
        // SAFETY: the export types were checked against exactly these Rust types when the
        // component was loaded (`typecheck_exports`), and every instance of a component
        // has the same export types.
        let init_fn: InitFn<'_> = unsafe { TypedFunc::new_unchecked(init) };
        let result = {
            let _bounds = lift_bounds(limits).install();
            run(
                runtime,
                &mut store,
                init_fn,
                (spec.config.as_str(),),
                deadline,
            )
        };
        let used = fuel_used(runtime, &store, budget);
        match result {
            Ok((Ok(()),)) => {
                store.data().host.sink.lock().end_call();
                Ok((
                    Live {
                        store,
                        on_event,
                        state,
                        on_outcome,
                        _slot: slot,
                    },
                    used,
                ))
            }
            Ok((Err(message),)) => {
                store.data().host.sink.lock().end_call();
                Err((CallError::Init(message.0), store.into_data().into_history()))
            }
            Err(stopped) => Err(fail(store, stopped)),
        }
    }

    /// Ends a guest call of this store: the error it stopped with, or what it returned.
    fn finish<T>(
        &mut self,
        runtime: &RuntimeInner,
        budget: Budget,
        result: Result<T, Stopped>,
    ) -> (Result<T, CallError>, u64) {
        let used = fuel_used(runtime, &self.store, budget);
        let result = match result {
            Ok(value) => {
                self.store.data().host.sink.lock().end_call();
                Ok(value)
            }
            Err(stopped) => Err(stopped_error(&mut self.store, stopped, budget, used)),
        };
        (result, used)
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
        let budget = Budget::call(limits);
        let deadline = arm(runtime, &mut self.store, budget)?;
        // SAFETY: the type was checked against exactly this one at load time.
        let save: SaveFn = unsafe { TypedFunc::new_unchecked(save) };
        let result = run(runtime, &mut self.store, save, (), deadline);
        let ((bytes,), _) = match self.finish(runtime, budget, result) {
            (Ok(value), used) => (value, used),
            (Err(e), _) => return Err(e),
        };
        if bytes.len() > MAX_STATE_BYTES {
            return Err(CallError::BadOutput(format!(
                "saved state is {} bytes, over the limit of {MAX_STATE_BYTES}",
                bytes.len()
            )));
        }
        Ok(Some(bytes))
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
        let budget = Budget::call(limits);
        let deadline = arm(runtime, &mut self.store, budget)?;
        // SAFETY: the type was checked against exactly this one at load time.
        let restore: RestoreFn<'_> = unsafe { TypedFunc::new_unchecked(restore) };
        let result = {
            let _bounds = lift_bounds(limits).install();
            run(runtime, &mut self.store, restore, (state,), deadline)
        };
        match self.finish(runtime, budget, result).0? {
            (Ok(()),) => Ok(true),
            (Err(message),) => Err(CallError::Strategy(format!(
                "restore refused the state: {}",
                message.0
            ))),
        }
    }

    /// `Ok(false)`: the component does not export `on-outcome`.
    fn on_outcome(
        &mut self,
        runtime: &RuntimeInner,
        limits: &StrategyLimits,
        outcome: &Outcome,
    ) -> Result<bool, CallError> {
        let Some(on_outcome) = self.on_outcome else {
            return Ok(false);
        };
        let budget = Budget::call(limits);
        let deadline = arm(runtime, &mut self.store, budget)?;
        // SAFETY: the type was checked against exactly this one at load time.
        let on_outcome: OnOutcomeFn<'_> = unsafe { TypedFunc::new_unchecked(on_outcome) };
        let result = {
            let _bounds = lift_bounds(limits).install();
            run(runtime, &mut self.store, on_outcome, (outcome,), deadline)
        };
        match self.finish(runtime, budget, result).0? {
            (Ok(()),) => Ok(true),
            (Err(message),) => Err(CallError::Strategy(message.0)),
        }
    }

    fn call(
        &mut self,
        runtime: &RuntimeInner,
        limits: &StrategyLimits,
        event: &Event,
        snapshot: &Snapshot,
    ) -> (Result<CallOutcome, CallError>, CallMetrics) {
        {
            let data = self.store.data_mut();
            data.host.watermark = snapshot.last_sync_block;
            data.host.clock.set_unix_seconds(snapshot.timestamp);
        }
        let budget = Budget::call(limits);
        let deadline = match arm(runtime, &mut self.store, budget) {
            Ok(deadline) => deadline,
            Err(e) => return (Err(e), CallMetrics::default()),
        };
        // SAFETY: see `Live::build`: checked once per component at load time.
        let on_event: OnEventFn<'_> = unsafe { TypedFunc::new_unchecked(self.on_event) };
        let start = Instant::now();
        let result = {
            let _bounds = lift_bounds(limits).install();
            run(
                runtime,
                &mut self.store,
                on_event,
                (event, snapshot),
                deadline,
            )
        };
        let (result, fuel_used) = self.finish(runtime, budget, result);
        let outcome = match result {
            Ok((Ok(list),)) => list
                .0
                .into_iter()
                .enumerate()
                .map(|(i, raw)| validate(raw, i))
                .collect::<Result<Vec<_>, _>>()
                .map(|proposals| CallOutcome {
                    proposals,
                    fuel_used,
                })
                .map_err(CallError::BadOutput),
            Ok((Err(message),)) => Err(CallError::Strategy(message.0)),
            Err(e) => Err(e),
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
    /// Shared with every store this instance builds.
    output: Arc<OutputCounters>,
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
            output: Arc::new(OutputCounters::default()),
        }
    }

    /// What the instance was built from.
    pub fn spec(&self) -> &InstanceSpec {
        &self.spec
    }

    /// Counters since the instance was created.
    pub fn stats(&self) -> &InstanceStats {
        &self.stats
    }

    /// Fuel and time of the last `on-event` call, failed or not.
    pub fn last_call(&self) -> CallMetrics {
        self.last_call
    }

    /// True while a store is built and `init` has succeeded; false after a failure tore it down.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// When a quarantined instance may be called again; `None` when not quarantined.
    pub fn quarantined_until(&self) -> Option<Instant> {
        self.quarantined_until
    }

    /// Builds the store and runs `init` now rather than on the first call.
    pub fn start(&mut self) -> Result<(), CallError> {
        self.start_at(Instant::now())
    }

    /// [`Self::start`] at a given `now`, so quarantine timing can be tested without sleeping.
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

    /// Exports `on-outcome` (world 0.2.0).
    pub fn wants_outcomes(&self) -> bool {
        self.component.wants_outcomes()
    }

    /// Tells the instance what became of one of its proposals. `Ok(false)` when the
    /// component does not export `on-outcome`. Runs under the same fuel and deadline as an
    /// event; a failure counts like a failed event (a trap discards the store, repeated ones
    /// quarantine the instance), since an outcome is as much the strategy's input as an event.
    pub fn on_outcome(&mut self, outcome: &Outcome) -> Result<bool, CallError> {
        if !self.component.wants_outcomes() {
            return Ok(false);
        }
        let now = Instant::now();
        self.check_quarantine(now)?;
        self.ensure_live(now)?;
        let Some(live) = self.live.as_mut() else {
            return Err(CallError::Config(
                "no live instance after a successful build".into(),
            ));
        };
        let result = live.on_outcome(&self.component.runtime, &self.spec.limits, outcome);
        self.count_output();
        match &result {
            Ok(_) => self.stats.outcomes += 1,
            Err(e) => {
                *self.stats.errors.entry(e.kind()).or_default() += 1;
                if e.discards_instance() {
                    self.kill();
                    self.record_failure(now, e);
                }
            }
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
        self.count_output();
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

    /// Copies the output counters into the stats.
    fn count_output(&mut self) {
        let (writes, bytes) = self.output.over_budget();
        if writes > 0 {
            self.stats.output_dropped.insert("over_budget", writes);
        }
        self.stats.output_dropped_bytes = bytes;
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
        let built = Live::build(&self.component, &self.spec, history, &self.output);
        self.count_output();
        match built {
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
