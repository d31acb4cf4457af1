//! The accept path of `evaluate` must not allocate: it runs for every proposal.
//! A counting global allocator (per thread, so parallel tests do not interfere) proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use stratbox_risk::{
    AccountRisk, AssetExposure, ExecutionMode, GateInput, KillSwitch, Leg, OracleGuard,
    PermissionLevel, RiskConfig, TradeEffect, TradeRisk, U256, evaluate,
};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get().wrapping_add(1)));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[test]
fn accept_path_does_not_allocate_and_reject_path_is_counted() {
    let cfg = RiskConfig::default();
    let price = U256::from(3_000u64) * U256::from(10u64).pow(U256::from(18u64));
    let mut oracle: OracleGuard = OracleGuard::new();
    for s in ["a", "b", "c"] {
        assert!(oracle.update("WETH/USDC", s, price, 10).is_ok());
    }
    let kill = KillSwitch::default();
    let exposures = [AssetExposure {
        asset: "WETH",
        value: U256::from(100_000u64),
    }];
    let account = AccountRisk {
        equity: U256::from(1_000_000u64),
        peak_equity: U256::from(1_000_000u64),
        day_start_equity: U256::from(1_000_000u64),
        cash: U256::from(900_000u64),
        gross_exposure: U256::from(100_000u64),
        exposures: &exposures,
    };
    let trade = TradeRisk {
        notional: U256::from(10_000u64),
        slippage_bps: 30,
        effect: TradeEffect::Swap {
            sell: Leg::Cash,
            buy: Leg::Asset("WETH"),
        },
    };
    let mut input = GateInput {
        strategy: "momentum",
        kill_switch: &kill,
        engine_block: 10,
        proposal_block: 9,
        market: "WETH/USDC",
        level: PermissionLevel::L4,
        requested_mode: ExecutionMode::Live,
        account: &account,
        trade: &trade,
    };
    let before = allocs();
    let mut accepted = 0;
    for _ in 0..100 {
        if evaluate(&cfg, &mut oracle, &input).is_ok() {
            accepted += 1;
        }
    }
    let used = allocs() - before;
    assert_eq!(accepted, 100);
    assert_eq!(used, 0, "accept path allocated {used} times");

    // The counter does see allocations: a rejection builds its detail string.
    input.proposal_block = 0;
    let before = allocs();
    assert!(evaluate(&cfg, &mut oracle, &input).is_err());
    assert!(allocs() > before);
}
