//! Property tests: the gates never panic, and their verdicts are consistent.

use proptest::prelude::*;
use stratbox_risk::{
    AccountRisk, AssetExposure, ExecutionMode, GateInput, KillSwitch, Leg, LimitsConfig,
    OracleGuard, PermissionLevel, PostTrade, RiskConfig, TradeEffect, TradeRisk, U256, check_trade,
    evaluate,
};

fn amount() -> impl Strategy<Value = U256> {
    prop_oneof![
        Just(U256::ZERO),
        Just(U256::from(1u8)),
        Just(U256::MAX),
        Just(U256::MAX - U256::from(1u8)),
        (0u64..10_000_000).prop_map(U256::from),
        any::<[u64; 4]>().prop_map(U256::from_limbs),
    ]
}

fn level() -> impl Strategy<Value = PermissionLevel> {
    (0u8..6).prop_map(|n| PermissionLevel::from_u8(n).unwrap_or(PermissionLevel::L0))
}

fn mode() -> impl Strategy<Value = ExecutionMode> {
    prop_oneof![
        Just(ExecutionMode::Shadow),
        Just(ExecutionMode::Staged),
        Just(ExecutionMode::Live)
    ]
}

const ASSETS: [&str; 3] = ["WETH", "WBTC", "ARB"];

fn leg() -> impl Strategy<Value = Leg<'static>> {
    prop_oneof![
        Just(Leg::Cash),
        (0usize..3).prop_map(|i| Leg::Asset(ASSETS[i])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn evaluate_never_panics(
        equity in amount(), peak in amount(), day_start in amount(), cash in amount(),
        gross in amount(), exp in proptest::collection::vec(amount(), 3),
        notional in amount(), slippage in any::<u32>(), sell in leg(), buy in leg(),
        projected in any::<bool>(), post in proptest::collection::vec(amount(), 4),
        engine_block in any::<u64>(), proposal_block in any::<u64>(),
        prices in proptest::collection::vec((amount(), any::<u64>()), 0..5),
        lvl in level(), m in mode(), engaged in any::<bool>(),
        max_lag in any::<u64>(), max_dev in any::<u32>(), lev in any::<u64>(),
    ) {
        let exposures: Vec<AssetExposure<'_>> = ASSETS
            .iter()
            .zip(&exp)
            .map(|(a, v)| AssetExposure { asset: a, value: *v })
            .collect();
        let account = AccountRisk {
            equity, peak_equity: peak, day_start_equity: day_start, cash,
            gross_exposure: gross, exposures: &exposures,
        };
        let effect = if projected {
            TradeEffect::Projected(PostTrade {
                equity: post[0], cash: post[1], gross_exposure: post[2],
                increased: Some(AssetExposure { asset: "WETH", value: post[3] }),
            })
        } else {
            TradeEffect::Swap { sell, buy }
        };
        let trade = TradeRisk { notional, slippage_bps: slippage, effect };
        let mut cfg = RiskConfig::default();
        cfg.sentinel.max_lag_blocks = max_lag;
        cfg.oracle.max_deviation_bps = max_dev;
        cfg.limits.max_leverage_bps = lev;
        let mut oracle: OracleGuard = OracleGuard::new();
        for (i, (p, b)) in prices.iter().enumerate() {
            let _ = oracle.update("M", &format!("s{i}"), *p, *b);
        }
        let mut kill = KillSwitch::default();
        if engaged {
            let _ = kill.engage("r", "op", 0);
        }
        let input = GateInput {
            strategy: "s", kill_switch: &kill, engine_block, proposal_block, market: "M",
            level: lvl, requested_mode: m, account: &account, trade: &trade,
        };
        let first = evaluate(&cfg, &mut oracle, &input);
        // Deterministic for the same state (the oracle's halt state may have changed, so
        // compare only accepted verdicts, which do not change it).
        if let Ok(c) = first {
            prop_assert!(c.mode <= m);
            prop_assert!(lvl != PermissionLevel::L0);
            prop_assert!(!engaged);
            let second = evaluate(&cfg, &mut oracle, &input);
            prop_assert_eq!(second, Ok(c));
        }
    }

    /// Buying with cash: if a trade passes the hard limits, any smaller one does too.
    #[test]
    fn smaller_cash_buys_pass_when_larger_ones_do(
        equity in 1u64..10_000_000, cash in 0u64..10_000_000, gross in 0u64..10_000_000,
        held in 0u64..10_000_000, n in 1u64..10_000_000, k in 1u64..10_000_000,
        slippage in 0u32..200,
    ) {
        let e = [AssetExposure { asset: "WETH", value: U256::from(held) }];
        let a = AccountRisk {
            equity: U256::from(equity), peak_equity: U256::from(equity),
            day_start_equity: U256::from(equity), cash: U256::from(cash),
            gross_exposure: U256::from(gross), exposures: &e,
        };
        let t = |n: u64| TradeRisk {
            notional: U256::from(n), slippage_bps: slippage,
            effect: TradeEffect::Swap { sell: Leg::Cash, buy: Leg::Asset("WETH") },
        };
        let mut limits = LimitsConfig::default().for_strategy("s");
        limits.allow_risk_reducing = false;
        let smaller = n.saturating_sub(k).max(1);
        if check_trade(&limits, &a, &t(n)).is_ok() {
            prop_assert_eq!(check_trade(&limits, &a, &t(smaller)), Ok(()));
        }
    }

    /// The oracle's verdict does not depend on the order the quotes arrived in.
    #[test]
    fn oracle_verdict_is_order_independent(
        prices in proptest::collection::vec(1u64..1_000_000, 3..8), rot in 0usize..8,
    ) {
        let cfg = RiskConfig::default().oracle;
        let mut a: OracleGuard = OracleGuard::new();
        let mut b: OracleGuard = OracleGuard::new();
        let n = prices.len();
        for (i, p) in prices.iter().enumerate() {
            let _ = a.update("M", &format!("s{i}"), U256::from(*p), 1);
        }
        for j in 0..n {
            let i = (j + rot) % n;
            let _ = b.update("M", &format!("s{i}"), U256::from(prices[i]), 1);
        }
        prop_assert_eq!(a.check(&cfg, "M", 1), b.check(&cfg, "M", 1));
    }
}
