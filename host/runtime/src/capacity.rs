//! What a host configuration needs from the machine, set against what the machine allows,
//! so that a host that cannot hold the instances it is configured for says so when it is
//! built instead of failing at some later instance.
//!
//! Three per-process limits bound how many instances one host holds:
//! - the kernel's `vm.max_map_count`: every memory slot an instance has used and every
//!   fiber stack is a few memory mappings of its own. Past the limit `mmap` and `mprotect`
//!   fail: in wasmtime that is a failed instantiation, in the allocator an abort.
//! - the address space (`RLIMIT_AS`, and the 128 TiB a 64-bit Linux process has): a pool
//!   reserves a memory reservation plus guard regions for every memory slot up front.
//! - the pools' slots (`max_instances`): the instance past them is refused with
//!   `PoolExhausted`, a clear error, at any time (see `RuntimeInner::acquire_slot`).
//!
//! The first two are checked here, once, by [`crate::HostRuntime::new`]. Physical memory is
//! reported ([`Capacity::mem_available`]) but never refused on: what an instance keeps
//! resident depends on what its strategy does (a maker that caches a history grows, an
//! idle one does not) and on what else runs on the machine, so no figure per instance
//! could be both safe and useful. `stratbox bench host --instances N` measures it.

use crate::limits::{Allocation, HostConfig, PoolConfig};
use std::fmt;

/// Address space wasmtime reserves for one linear memory, whatever its limit below it: the
/// 4 GiB a 32-bit wasm address can reach, so that compiled code needs no bounds checks.
/// The engine is configured with this constant ([`crate::runtime`]), so the estimate and
/// the engine cannot drift apart.
pub(crate) const MEMORY_RESERVATION: u64 = 1 << 32;
/// The inaccessible guard after each linear memory (and once before the first slot of a
/// pool), in bytes: wasmtime's default for 64-bit hosts, set explicitly like the above.
pub(crate) const MEMORY_GUARD: u64 = 32 << 20;
/// Size of the fiber stack a call in fuel slices runs on: wasmtime's default, explicit.
pub(crate) const FIBER_STACK_BYTES: usize = 2 << 20;
/// Elements of one pooled table slot: wasmtime's default, explicit.
pub(crate) const TABLE_ELEMENTS: usize = 20_000;
/// Bytes wasmtime reserves per table element of a pooled table slot (its nominal largest
/// element, a pointer on a 64-bit host): 20,000 elements make a 160 KiB slot.
const TABLE_ELEMENT_BYTES: u64 = 8;
const PAGE: u64 = 4096;

/// Memory mappings one used memory slot of a pool holds, from wasmtime 48's pooling
/// allocator and read off `/proc/self/maps` of a host running clamm-maker: the slot's
/// read-write head (a Rust guest's shadow stack, the first MiB), the copy-on-write image
/// of its data segment (a mapping of the image's memfd), the read-write rest of its
/// initial memory, and the inaccessible rest of the slot with its guard. Growing the
/// memory only moves the border between the last two, so the count stays 4. A slot keeps
/// them after its instance is dropped (the image stays mapped for the next instance), so
/// they are counted for every slot, not only the live ones. A guest whose image starts at
/// address 0 or that has none needs fewer: 4 is the most.
const MAPPINGS_PER_MEMORY_POOLED: u64 = 4;
/// The same for on-demand allocation: each memory is its own reservation, so its leading
/// guard is a mapping of its own instead of the previous slot's tail.
const MAPPINGS_PER_MEMORY_ON_DEMAND: u64 = 5;
/// A fiber stack is a read-write stack and the inaccessible guard page below it. The pool
/// makes all of them when it is built; a store keeps the one its last call ran on.
const MAPPINGS_PER_STACK: u64 = 2;
/// Mappings left for what the host adds besides its instances: compiled code (three or
/// so per loaded component), thread stacks, allocator arenas, memfd images.
const HEADROOM_MAPPINGS: u64 = 512;
/// The address space a 64-bit Linux process can map without asking for more: 47 bits on
/// x86-64 (a kernel with 5-level page tables hands out more only to a process that asks
/// with an address hint, which wasmtime does not). Smaller than RLIMIT_AS unless an
/// operator set one.
pub const USER_ADDRESS_SPACE: u64 = 1 << 47;

/// The machine's limits and what the process already uses of them, as read from `/proc`.
/// Every figure is optional: what cannot be read is not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// `/proc/sys/vm/max_map_count`.
    pub max_map_count: Option<u64>,
    /// Lines of `/proc/self/maps`: mappings the process holds already.
    pub mappings_in_use: u64,
    /// The soft `RLIMIT_AS` in bytes (`/proc/self/limits`); `None` when unlimited.
    pub rlimit_as: Option<u64>,
    /// `VmSize` of `/proc/self/status`: address space the process holds already, bytes.
    pub address_space_in_use: u64,
    /// `MemAvailable` of `/proc/meminfo`, bytes.
    pub mem_available: Option<u64>,
}

impl Machine {
    /// The figures of this process and machine now.
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Machine {
            max_map_count: read("/proc/sys/vm/max_map_count").and_then(|s| s.trim().parse().ok()),
            mappings_in_use: mappings_in_use(),
            rlimit_as: read("/proc/self/limits").and_then(|s| soft_rlimit_as(&s)),
            address_space_in_use: read("/proc/self/status")
                .and_then(|s| kib_field(&s, "VmSize"))
                .unwrap_or(0),
            mem_available: read("/proc/meminfo").and_then(|s| kib_field(&s, "MemAvailable")),
        }
    }
}

/// Lines of `/proc/self/maps`: the memory mappings the process holds (0 where unreadable).
pub fn mappings_in_use() -> u64 {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |s| s.lines().count() as u64)
}

/// The `Name:   1234 kB` line of a `/proc` file such as `status`, `meminfo` or
/// `smaps_rollup`, in bytes.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    let kib = text.lines().find_map(|l| {
        let v = l.strip_prefix(name)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse::<u64>().ok()
    })?;
    Some(kib.saturating_mul(1024))
}

/// The soft limit of the `Max address space` line of `/proc/self/limits`, unless unlimited.
fn soft_rlimit_as(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    line.trim_start_matches("Max address space")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One pool's share of what the host needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCapacity {
    /// How messages name the pool (`main`, `large`).
    pub name: &'static str,
    /// Where its `max_instances` sits in [`HostConfig`] (`max_instances`,
    /// `large_pool.max_instances`).
    pub field: String,
    /// Live instances it holds at most.
    pub max_instances: usize,
    /// Mappings made when the pool is built (its fiber stacks; none on demand).
    pub mappings_at_start: u64,
    /// Mappings one instance adds, at most, the first time it uses its slots (on demand:
    /// its memories and its fiber stack).
    pub mappings_per_instance: u64,
    /// Address space of the pool's memories, tables and stacks, bytes: reserved when the
    /// pool is built, or on demand as instances are, at most this much.
    pub address_space: u64,
}

impl PoolCapacity {
    fn of(
        name: &'static str,
        prefix: &str,
        shape: &PoolConfig,
        config: &HostConfig,
    ) -> PoolCapacity {
        // As `engine_config` sizes the pool: at least one instance.
        let n = shape.max_instances.max(1) as u64;
        let memories_per_instance = shape.memories_per_component as u64;
        let stacks_per_instance = u64::from(config.runs_in_slices());
        let memory_mappings = memories_per_instance.saturating_mul(match config.allocation {
            Allocation::Pooling => MAPPINGS_PER_MEMORY_POOLED,
            Allocation::OnDemand => MAPPINGS_PER_MEMORY_ON_DEMAND,
        });
        let stack_mappings = stacks_per_instance * MAPPINGS_PER_STACK;
        // A pool makes all its stacks when it is built; on demand, each store makes its own.
        let (mappings_at_start, mappings_per_instance) = match config.allocation {
            Allocation::Pooling => (n.saturating_mul(stack_mappings), memory_mappings),
            Allocation::OnDemand => (0, memory_mappings + stack_mappings),
        };
        // A slot holds the larger of the reservation and the memory limit, then a guard.
        let slot = round_up(
            MEMORY_RESERVATION.max(config.max_memory_bytes as u64) + MEMORY_GUARD,
            PAGE,
        );
        let table = round_up(TABLE_ELEMENTS as u64 * TABLE_ELEMENT_BYTES, PAGE);
        let stack = FIBER_STACK_BYTES as u64 + PAGE;
        let address_space = n
            .saturating_mul(memories_per_instance)
            .saturating_mul(slot)
            .saturating_add(MEMORY_GUARD)
            .saturating_add(
                n.saturating_mul(shape.tables_per_component as u64)
                    .saturating_mul(table),
            )
            .saturating_add(n.saturating_mul(stacks_per_instance).saturating_mul(stack));
        PoolCapacity {
            name,
            field: format!("{prefix}max_instances"),
            max_instances: shape.max_instances,
            mappings_at_start,
            mappings_per_instance,
            address_space,
        }
    }

    /// Mappings the pool holds with every slot used.
    pub fn mappings(&self) -> u64 {
        (self.max_instances.max(1) as u64)
            .saturating_mul(self.mappings_per_instance)
            .saturating_add(self.mappings_at_start)
    }
}

/// A limit and how much of it the configuration needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// What the process would hold with every pool full: what it holds already, plus the
    /// pools, plus headroom.
    pub needed: u64,
    /// The limit; `None` when it could not be read (then it is not checked).
    pub allowed: Option<u64>,
}

impl Need {
    /// `needed / allowed`, each shown with `show` (`unknown` for a limit not read).
    pub fn show(&self, show: fn(u64) -> String) -> String {
        let allowed = self.allowed.map_or_else(|| "unknown".to_string(), show);
        format!("{} / {allowed}", show(self.needed))
    }

    fn exceeded(&self) -> Option<u64> {
        self.allowed.filter(|allowed| self.needed > *allowed)
    }
}

/// What a host configuration needs from the machine and what the machine allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Each pool, the main one first.
    pub pools: Vec<PoolCapacity>,
    /// Memory mappings, against `vm.max_map_count`.
    pub mappings: Need,
    /// Address space in bytes, against the smaller of `RLIMIT_AS` and
    /// [`USER_ADDRESS_SPACE`].
    pub address_space: Need,
    /// The soft `RLIMIT_AS` when one is set: it, not the 128 TiB, is then the limit.
    pub rlimit_as: Option<u64>,
    /// `MemAvailable` when the host was built, bytes. Reported, not checked: see the
    /// module documentation.
    pub mem_available: Option<u64>,
}

impl Capacity {
    /// What `config` needs on `machine`. Pure arithmetic: `machine` says what the limits are.
    pub fn estimate(config: &HostConfig, machine: &Machine) -> Capacity {
        let pools: Vec<PoolCapacity> = config
            .pools()
            .into_iter()
            .map(|(name, prefix, shape)| PoolCapacity::of(name, prefix, &shape, config))
            .collect();
        let mappings = pools.iter().fold(
            machine.mappings_in_use.saturating_add(HEADROOM_MAPPINGS),
            |sum, p| sum.saturating_add(p.mappings()),
        );
        let address_space = pools.iter().fold(machine.address_space_in_use, |sum, p| {
            sum.saturating_add(p.address_space)
        });
        let address_limit = machine
            .rlimit_as
            .map_or(USER_ADDRESS_SPACE, |r| r.min(USER_ADDRESS_SPACE));
        Capacity {
            pools,
            mappings: Need {
                needed: mappings,
                allowed: machine.max_map_count,
            },
            address_space: Need {
                needed: address_space,
                allowed: Some(address_limit),
            },
            rlimit_as: machine.rlimit_as,
            mem_available: machine.mem_available,
        }
    }

    /// Refuses a configuration whose full pools would not fit the machine, naming the limit.
    pub fn check(&self) -> Result<(), CapacityError> {
        if let Some(allowed) = self.mappings.exceeded() {
            return Err(CapacityError::Mappings {
                instances: self.instances(),
                needed: self.mappings.needed,
                allowed,
            });
        }
        if let Some(allowed) = self.address_space.exceeded() {
            return Err(CapacityError::AddressSpace {
                instances: self.instances(),
                needed: self.address_space.needed,
                allowed,
                limit: match self.rlimit_as {
                    Some(r) if r <= USER_ADDRESS_SPACE => "RLIMIT_AS (ulimit -v)",
                    _ => "the user address space of a 64-bit Linux process",
                },
            });
        }
        Ok(())
    }

    /// `max_instances 20,000 (+256 large_pool.max_instances)`.
    fn instances(&self) -> String {
        let mut pools = self.pools.iter();
        let mut text = pools.next().map_or_else(String::new, |p| {
            format!("{} {}", p.field, thousands(p.max_instances as u64))
        });
        for p in pools {
            text.push_str(&format!(
                " (+{} {})",
                thousands(p.max_instances as u64),
                p.field
            ));
        }
        text
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; memory mappings {} (vm.max_map_count); address space {}; MemAvailable {}",
            self.instances(),
            self.mappings.show(thousands),
            self.address_space.show(bytes),
            self.mem_available
                .map_or_else(|| "unknown".to_string(), bytes),
        )
    }
}

/// A configuration the machine cannot hold, with the limit it would run into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    /// More memory mappings than `vm.max_map_count` allows.
    #[error(
        "{instances} needs about {} memory mappings; vm.max_map_count is {}: lower max_instances or raise vm.max_map_count (sysctl -w vm.max_map_count={})",
        thousands(*.needed), thousands(*.allowed), suggested_map_count(*.needed)
    )]
    Mappings {
        /// The pools' sizes, as configured.
        instances: String,
        /// Mappings the process would hold with every pool full.
        needed: u64,
        /// `vm.max_map_count`.
        allowed: u64,
    },
    /// More address space than the process may map.
    #[error(
        "{instances} reserves about {} of address space (a memory reservation and guard per memory slot); {limit} is {}: lower max_instances or memories_per_component",
        bytes(*.needed), bytes(*.allowed)
    )]
    AddressSpace {
        /// The pools' sizes, as configured.
        instances: String,
        /// Bytes the process would hold with every pool reserved.
        needed: u64,
        /// The limit, bytes.
        allowed: u64,
        /// Which limit: RLIMIT_AS or the user address space.
        limit: &'static str,
    },
}

/// A `vm.max_map_count` that holds `needed` with room to spare: the next multiple of 65,536.
fn suggested_map_count(needed: u64) -> u64 {
    round_up(needed.saturating_add(1), 1 << 16)
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to).saturating_mul(to)
}

/// `20000` as `20,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in the largest binary unit that keeps a number above 1.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine like the default Linux one: 65,530 mappings, no RLIMIT_AS.
    fn machine() -> Machine {
        Machine {
            max_map_count: Some(65_530),
            mappings_in_use: 200,
            rlimit_as: None,
            address_space_in_use: 1 << 30,
            mem_available: Some(16 << 30),
        }
    }

    fn config(max_instances: usize) -> HostConfig {
        HostConfig {
            max_instances,
            ..HostConfig::default()
        }
    }

    #[test]
    fn per_instance_figures_follow_the_pool_shape() {
        let c = Capacity::estimate(&config(4096), &machine());
        let (main, large) = (&c.pools[0], &c.pools[1]);
        // One memory (4 mappings) per main-pool instance, four per large-pool instance;
        // one fiber stack (2 mappings) per instance of either, made with the pool.
        assert_eq!(main.mappings_per_instance, 4);
        assert_eq!(main.mappings_at_start, 2 * 4096);
        assert_eq!(large.mappings_per_instance, 16);
        assert_eq!(large.mappings_at_start, 2 * 256);
        assert_eq!(
            c.mappings.needed,
            200 + HEADROOM_MAPPINGS + 4096 * 6 + 256 * 18
        );
        assert_eq!(c.pools[1].field, "large_pool.max_instances");
        c.check()
            .expect("the default configuration fits a default machine");
    }

    #[test]
    fn ten_thousand_instances_fit_the_default_map_count() {
        let c = Capacity::estimate(&config(10_000), &machine());
        assert!(c.check().is_ok(), "{c}");
    }

    #[test]
    fn too_many_mappings_name_vm_max_map_count_and_the_knob() {
        let c = Capacity::estimate(&config(20_000), &machine());
        let err = c
            .check()
            .expect_err("20,000 instances exceed 65,530 mappings");
        assert!(matches!(err, CapacityError::Mappings { .. }), "{err}");
        let text = err.to_string();
        for part in [
            "max_instances 20,000 (+256 large_pool.max_instances)",
            "vm.max_map_count is 65,530",
            "lower max_instances or raise vm.max_map_count",
            "vm.max_map_count=131072",
        ] {
            assert!(text.contains(part), "{part:?} not in {text:?}");
        }
    }

    #[test]
    fn without_fuel_slices_there_are_no_fiber_stacks() {
        let c = Capacity::estimate(
            &HostConfig {
                fuel_slice: 0,
                ..config(1000)
            },
            &machine(),
        );
        assert_eq!(c.pools[0].mappings_at_start, 0);
        assert_eq!(c.pools[0].mappings_per_instance, 4);
    }

    #[test]
    fn address_space_is_checked_against_rlimit_as_and_the_user_space() {
        // Each main-pool memory slot reserves 4 GiB + 32 MiB.
        let c = Capacity::estimate(&config(100), &machine());
        let slot = (4u64 << 30) + (32 << 20);
        assert!(c.pools[0].address_space >= 100 * slot);
        assert_eq!(c.address_space.allowed, Some(USER_ADDRESS_SPACE));

        let limited = Machine {
            rlimit_as: Some(64 << 30),
            ..machine()
        };
        let err = Capacity::estimate(&config(100), &limited)
            .check()
            .expect_err("100 slots of 4 GiB exceed a 64 GiB RLIMIT_AS");
        assert!(
            err.to_string()
                .contains("RLIMIT_AS (ulimit -v) is 64.0 GiB"),
            "{err}"
        );

        // Plenty of mappings, but 40,000 slots of 4 GiB exceed 128 TiB.
        let roomy = Machine {
            max_map_count: Some(u64::MAX),
            ..machine()
        };
        let err = Capacity::estimate(&config(40_000), &roomy)
            .check()
            .expect_err("40,000 slots exceed the user address space");
        assert!(matches!(err, CapacityError::AddressSpace { .. }), "{err}");
        assert!(err.to_string().contains("user address space"), "{err}");
    }

    #[test]
    fn limits_that_cannot_be_read_are_not_checked() {
        let unknown = Machine {
            max_map_count: None,
            ..machine()
        };
        assert!(
            Capacity::estimate(&config(20_000), &unknown)
                .check()
                .is_ok()
        );
    }

    #[test]
    fn the_soft_rlimit_as_is_read_from_proc_self_limits() {
        let unlimited = "Limit                     Soft Limit           Hard Limit           Units     \n\
                         Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(soft_rlimit_as(unlimited), None);
        let set =
            "Max address space         68719476736          unlimited            bytes     \n";
        assert_eq!(soft_rlimit_as(set), Some(64 << 30));
    }

    #[test]
    fn numbers_read_as_operators_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(65_530), "65,530");
        assert_eq!(thousands(10_000_000), "10,000,000");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 << 30), "64.0 GiB");
        assert_eq!(suggested_map_count(80_256), 131_072);
    }
}
