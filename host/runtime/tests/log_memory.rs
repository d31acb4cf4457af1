//! A `host.log` call of 60 MiB: the host decides by its length, copies at most one line of
//! it, and counts it as dropped. Measured with this test binary's allocator, which counts
//! the host's heap (guest memory is wasmtime's own mapping, not the heap): alone in its
//! binary, so no other test's allocations fall into the window.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use stratbox_host::{InstanceSpec, NoHistory, StrategyInstance, StrategyLimits};

/// The system allocator, counting live bytes and their peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_giant_log_message_is_dropped_by_its_length_without_being_copied() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let events = common::events(2);
    let (event, snapshot) = &events[0];
    // Room for the guest to build its 60 MiB message in its own memory.
    let limits = StrategyLimits {
        memory_bytes: 256 << 20,
        fuel_per_call: 5_000_000_000,
        deadline_ms: 20_000,
        ..StrategyLimits::default()
    };
    let spec = InstanceSpec::new(
        "hostile/giant-log",
        stratbox_strategies::hostile_config("giant-log"),
    )
    .with_limits(limits);
    let mut instance = StrategyInstance::new(&component, spec, NoHistory);
    instance.start().expect("starts");

    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let outcome = instance.call(event, snapshot, "t-giant-log");
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);

    let outcome = outcome.expect("a dropped log is not the guest's failure");
    assert!(outcome.proposals.is_empty());
    let giant = stratbox_strategies::HOSTILE_GIANT_LOG_BYTES;
    assert!(
        grew < 4 << 20,
        "the host's heap grew by {grew} bytes during a {giant}-byte log call"
    );
    let stats = instance.stats();
    assert_eq!(
        stats.output_dropped.get("over_budget"),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.output_dropped_bytes, giant as u64, "{stats:?}");
}
