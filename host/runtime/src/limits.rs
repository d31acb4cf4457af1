//! Every number that bounds a strategy, per strategy ([`StrategyLimits`]) and per host
//! process ([`HostConfig`]).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Limits of one strategy instance. Deserialised from the operator's configuration, so
/// every field has a default and unknown fields are refused (a typo must not silently
/// leave a limit at its default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrategyLimits {
    /// Fuel (roughly: wasm instructions) one `on-event` call may burn. The deterministic
    /// budget: the same call on the same input burns the same fuel on any machine.
    pub fuel_per_call: u64,
    /// Fuel for instantiation plus `init`.
    pub fuel_init: u64,
    /// Wall-clock deadline of one `on-event` call. Catches what fuel cannot (a host call
    /// that is slow) and what fuel is not enabled for (engines built without fuel).
    pub deadline_ms: u64,
    /// Wall-clock deadline of instantiation plus `init`.
    pub init_deadline_ms: u64,
    /// Largest linear memory the instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest table, in elements.
    pub table_elements: usize,
    /// Core instances, tables and memories one store may create. A Rust wasip2 component
    /// needs a handful of each; these only stop a component that tries to create many.
    pub max_core_instances: usize,
    /// Tables one store may create.
    pub max_tables: usize,
    /// Memories one store may create.
    pub max_memories: usize,
    /// Most proposals one call may return; more is `BadOutput`, checked before the list
    /// is copied out of the guest.
    pub max_proposals: usize,
    /// Longest string in a proposal (addresses, amounts, reason), in bytes.
    pub max_string_bytes: usize,
    /// All strings of one call's result together, in bytes.
    pub max_output_bytes: usize,
    /// Longest error message (`Err(String)` of `init` or `on-event`) kept, in bytes.
    pub max_error_bytes: usize,
    /// Most events one `host.history` call returns.
    pub max_history_events: u32,
    /// Bytes of `host.log`, stdout and stderr forwarded to tracing per call; the rest is
    /// counted and dropped.
    pub log_bytes_per_call: usize,
    /// Consecutive failures (traps, limits, bad output, failed init) before quarantine.
    pub max_consecutive_failures: u32,
    /// First quarantine; each further one doubles, up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    /// Ceiling of the doubling quarantine, ms.
    pub backoff_max_ms: u64,
}

impl Default for StrategyLimits {
    fn default() -> Self {
        Self {
            fuel_per_call: 20_000_000,
            fuel_init: 50_000_000,
            deadline_ms: 50,
            init_deadline_ms: 500,
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            max_core_instances: 32,
            max_tables: 32,
            max_memories: 4,
            max_proposals: 64,
            max_string_bytes: 1024,
            max_output_bytes: 256 << 10,
            max_error_bytes: 4096,
            max_history_events: 1024,
            log_bytes_per_call: 16 << 10,
            max_consecutive_failures: 3,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 300_000,
        }
    }
}

impl StrategyLimits {
    /// `deadline_ms` as a `Duration`.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// How instance memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocation {
    /// Slots reserved up front; an instance reuses a slot and its copy-on-write image, so
    /// a rebuild costs a few page-table operations instead of mmap + munmap.
    Pooling,
    /// mmap per instance. Slower to build, no up-front reservation; kept for comparison.
    OnDemand,
}

/// Settings of the one engine of a host process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Pooled (fast instantiation, reserved address space) or on-demand memory.
    pub allocation: Allocation,
    /// Live instances this host holds at most; the next one is refused with
    /// `PoolExhausted`. Each pooled memory slot reserves a little over 4 GiB of address
    /// space, and each instance takes about 6 memory mappings (its memory slot's 4, its
    /// fiber stack's 2): past roughly 10,000 instances (beside the default large pool) the
    /// kernel's default `vm.max_map_count` (65,530) would make allocation fail in ways that
    /// are hard to recover from, so [`crate::HostRuntime::new`] refuses a configuration that does not
    /// fit the machine ([`crate::capacity`]) and the default stays well below.
    pub max_instances: usize,
    /// Core instances, memories and tables one component instance may use from the pool.
    pub core_instances_per_component: usize,
    /// Memories one component instance may use from the pool.
    pub memories_per_component: usize,
    /// Tables one component instance may use from the pool.
    pub tables_per_component: usize,
    /// Bytes at the start of a pooled memory slot kept mapped and reset in place when an
    /// instance is dropped, instead of being returned to the kernel. A Rust guest touches
    /// its shadow stack (the first MiB) and the start of its heap on every `init`; keeping
    /// those pages resident turns a rebuild's page faults into a memset (measured: rebuild
    /// median 28 µs -> 11 µs for clamm-maker). The cost: a freed slot keeps the pages its
    /// last instance touched in this range resident until it is reused, so a host that
    /// once ran N instances keeps about N idle instances' worth of memory.
    pub keep_resident_bytes: usize,
    /// Freed pool slots preferred for reuse by the same component (warm images).
    pub max_unused_warm_slots: u32,
    /// Ceiling of any strategy's `memory_bytes`: the size a pool slot can grow to.
    pub max_memory_bytes: usize,
    /// Wasm stack, in bytes; deeper recursion traps with a stack overflow.
    pub max_wasm_stack: usize,
    /// Fuel metering on. Costs some speed (see `stratbox bench host`); without it only the
    /// wall-clock deadline bounds a call.
    pub fuel: bool,
    /// How often the epoch advances; the granularity of deadlines.
    pub epoch_tick_us: u64,
    /// With fuel on: calls run in slices of this much fuel, and the host looks at the
    /// clock between two slices. Wasmtime saves a call's fuel count at calls, returns and
    /// slice boundaries, not when an epoch deadline interrupts it, so a call stopped by
    /// the epoch alone reports only the fuel of its last call or return (for a tight loop:
    /// almost none). With slices, a call past its deadline is stopped at the next slice
    /// boundary with its fuel exact, and a host function that panics fails that call
    /// instead of unwinding through the host. 100,000 fuel is roughly 50-200 µs of guest
    /// code. 0: synchronous calls, deadlines by the epoch alone (cheaper per call, see
    /// `stratbox bench host`; fuel at a deadline then a lower bound).
    pub fuel_slice: u64,
    /// Where compiled components are kept across restarts. Only this directory is ever
    /// deserialised from; uploaded bytes are always compiled.
    pub cache_dir: Option<PathBuf>,
    /// Largest component file accepted.
    pub max_component_bytes: usize,
    /// A second pool for components that need more per instance than the fields above
    /// allow: a componentize-py build links libc, the interpreter and its adapters as 14
    /// core modules, where a Rust strategy has a handful. Each component goes to the first
    /// pool that fits what it declares ([`crate::check::ComponentNeeds`]), so big guests
    /// neither widen every slot of the main pool nor are refused by it.
    pub large_pool: PoolConfig,
}

/// The shape of a pool besides the main one: how many instances it holds and what one
/// component instance may take from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Live instances this pool holds at most.
    pub max_instances: usize,
    /// Core instances one component instance may use.
    pub core_instances_per_component: usize,
    /// Memories one component instance may use.
    pub memories_per_component: usize,
    /// Tables one component instance may use.
    pub tables_per_component: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_instances: 256,
            core_instances_per_component: 32,
            memories_per_component: 4,
            tables_per_component: 32,
        }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            allocation: Allocation::Pooling,
            max_instances: 4096,
            core_instances_per_component: 8,
            memories_per_component: 1,
            tables_per_component: 4,
            keep_resident_bytes: 2 << 20,
            max_unused_warm_slots: 32,
            max_memory_bytes: 1 << 30,
            max_wasm_stack: 512 << 10,
            fuel: true,
            epoch_tick_us: 1_000,
            fuel_slice: 100_000,
            cache_dir: None,
            max_component_bytes: crate::check::DEFAULT_MAX_COMPONENT_BYTES,
            large_pool: PoolConfig::default(),
        }
    }
}

impl HostConfig {
    /// The main pool's shape, as the top-level fields give it.
    pub fn main_pool(&self) -> PoolConfig {
        PoolConfig {
            max_instances: self.max_instances,
            core_instances_per_component: self.core_instances_per_component,
            memories_per_component: self.memories_per_component,
            tables_per_component: self.tables_per_component,
        }
    }

    /// The host's pools, the main one first: how messages name each, the prefix of its
    /// fields in this config, and its shape.
    pub(crate) fn pools(&self) -> [(&'static str, &'static str, PoolConfig); 2] {
        [
            ("main", "", self.main_pool()),
            ("large", "large_pool.", self.large_pool.clone()),
        ]
    }

    /// Calls run in fuel slices, on fiber stacks (see [`Self::fuel_slice`]): only then
    /// does a pool need stacks.
    pub fn runs_in_slices(&self) -> bool {
        self.fuel && self.fuel_slice > 0
    }

    /// How often the epoch advances (at least 1 µs): the granularity of call deadlines.
    pub fn epoch_tick(&self) -> Duration {
        Duration::from_micros(self.epoch_tick_us.max(1))
    }
}
