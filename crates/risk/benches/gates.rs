//! Throughput of the gates, with no benchmark framework (std only, so it adds no build).
//! Run: `cargo bench -p stratbox-risk`. Numbers are per call, median of several rounds.

use std::hint::black_box;
use std::time::Instant;

use stratbox_risk::{
    AccountRisk, AssetExposure, ExecutionMode, GateInput, KillSwitch, Leg, OracleGuard,
    PermissionConfig, PermissionLevel, PermissionTracker, RiskConfig, TradeEffect, TradeOutcome,
    TradeRisk, U256, evaluate,
};

fn per_call(name: &str, iters: u32, mut f: impl FnMut()) {
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    println!("{name:<40} {:>8.1} ns/call", rounds[rounds.len() / 2]);
}

fn main() {
    let cfg = RiskConfig::default();
    let price = U256::from(3_000u64) * U256::from(10u64).pow(U256::from(18u64));
    let mut oracle: OracleGuard = OracleGuard::new();
    for m in 0..100 {
        for s in ["uniswap", "chainlink", "cex"] {
            let _ = oracle.update(format!("MKT{m}").as_str(), s, price, 10);
        }
    }
    let _ = oracle.update("WETH/USDC", "uniswap", price, 10);
    let _ = oracle.update("WETH/USDC", "chainlink", price + U256::from(1u8), 10);
    let _ = oracle.update("WETH/USDC", "cex", price - U256::from(1u8), 10);
    let exposures = [
        AssetExposure {
            asset: "WETH",
            value: U256::from(100_000u64),
        },
        AssetExposure {
            asset: "WBTC",
            value: U256::from(100_000u64),
        },
    ];
    let account = AccountRisk {
        equity: U256::from(1_000_000u64),
        peak_equity: U256::from(1_050_000u64),
        day_start_equity: U256::from(1_010_000u64),
        cash: U256::from(800_000u64),
        gross_exposure: U256::from(200_000u64),
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
    let kill = KillSwitch::default();
    let input = GateInput {
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
    assert!(evaluate(&cfg, &mut oracle, &input).is_ok());
    per_call("evaluate, accepted (all gates)", 200_000, || {
        black_box(evaluate(&cfg, &mut oracle, black_box(&input)).is_ok());
    });
    let mut engaged = KillSwitch::default();
    let _ = engaged.engage("bench", "bench", 0);
    let killed = GateInput {
        kill_switch: &engaged,
        ..input
    };
    per_call("evaluate, refused at kill switch", 200_000, || {
        black_box(evaluate(&cfg, &mut oracle, black_box(&killed)).is_err());
    });
    let over_exposed = TradeRisk {
        notional: U256::from(200_001u64),
        ..trade
    };
    let level5 = GateInput {
        trade: &over_exposed,
        level: PermissionLevel::L5,
        ..input
    };
    assert_eq!(
        evaluate(&cfg, &mut oracle, &level5).map_err(|r| r.code),
        Err(stratbox_risk::ReasonCode::LimitExposure)
    );
    per_call(
        "evaluate, refused at limit_exposure (last)",
        200_000,
        || {
            black_box(evaluate(&cfg, &mut oracle, black_box(&level5)).is_err());
        },
    );
    per_call("oracle check, 3 sources", 200_000, || {
        black_box(
            oracle
                .check(&cfg.oracle, black_box("WETH/USDC"), 10)
                .is_ok(),
        );
    });
    let pc = PermissionConfig::default();
    let mut tracker = PermissionTracker::at_level(PermissionLevel::L5);
    per_call("permission record_trade", 1_000_000, || {
        black_box(tracker.record_trade(&pc, TradeOutcome::Won));
    });
}
