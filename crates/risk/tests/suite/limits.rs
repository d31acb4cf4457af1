use stratbox_risk::config::EffectiveLimits;
use stratbox_risk::{
    AccountRisk, AssetExposure, Leg, LevelPolicy, LimitsConfig, LimitsOverride, ModeCeiling,
    PostTrade, ReasonCode, TradeEffect, TradeRisk, U256, account_breach, check_notional,
    check_trade, project,
};

use super::common::{account, buy, exposures, sell, u};

fn lim() -> EffectiveLimits {
    LimitsConfig::default().for_strategy("any")
}

fn code(r: Result<(), stratbox_risk::Rejection>) -> Option<ReasonCode> {
    r.err().map(|r| r.code)
}

#[test]
fn healthy_trade_passes() {
    let e = exposures();
    let a = account(&e);
    assert_eq!(check_trade(&lim(), &a, &buy("WETH", 50_000, 30)), Ok(()));
    assert_eq!(check_trade(&lim(), &a, &sell("WBTC", 50_000, 30)), Ok(()));
}

#[test]
fn slippage_boundary() {
    let e = exposures();
    let a = account(&e);
    assert_eq!(check_trade(&lim(), &a, &buy("WETH", 1_000, 100)), Ok(()));
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("WETH", 1_000, 101))),
        Some(ReasonCode::LimitSlippage)
    );
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("WETH", 1_000, 10_001))),
        Some(ReasonCode::BadInput)
    );
}

#[test]
fn drawdown_boundary_is_strict() {
    let e = exposures();
    let mut a = account(&e);
    a.day_start_equity = u(900_000); // keep the daily-loss gate out of the way
    a.equity = u(900_001);
    assert_eq!(check_trade(&lim(), &a, &buy("WETH", 1_000, 0)), Ok(()));
    a.equity = u(900_000); // exactly 10% down from the peak: not "under 10%"
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("WETH", 1_000, 0))),
        Some(ReasonCode::LimitDrawdown)
    );
    // The trade's worst-case slippage counts: 10 bps of 10_000 = 10 takes 900_010 to 900_000.
    a.equity = u(900_010);
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("WETH", 10_000, 10))),
        Some(ReasonCode::LimitDrawdown)
    );
    assert_eq!(check_trade(&lim(), &a, &buy("WETH", 10_000, 9)), Ok(()));
    // A stale peak below equity is not a drawdown.
    a.peak_equity = u(1);
    a.equity = u(1_000_000);
    a.day_start_equity = u(1_000_000);
    assert_eq!(check_trade(&lim(), &a, &buy("WETH", 1_000, 0)), Ok(()));
}

#[test]
fn daily_loss_boundary_is_strict() {
    let e = exposures();
    let mut a = account(&e);
    a.equity = u(950_001);
    assert_eq!(check_trade(&lim(), &a, &buy("WETH", 1_000, 0)), Ok(()));
    a.equity = u(950_000);
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("WETH", 1_000, 0))),
        Some(ReasonCode::LimitDailyLoss)
    );
}

fn levered<'a>(e: &'a [AssetExposure<'a>]) -> AccountRisk<'a> {
    AccountRisk {
        equity: u(100_000),
        peak_equity: u(100_000),
        day_start_equity: u(100_000),
        cash: u(50_000),
        gross_exposure: u(490_000),
        exposures: e,
    }
}

#[test]
fn leverage_boundary_is_inclusive() {
    let e = [AssetExposure {
        asset: "WETH",
        value: u(25_000),
    }];
    let a = levered(&e);
    assert_eq!(check_trade(&lim(), &a, &buy("ARB", 10_000, 0)), Ok(()));
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("ARB", 10_001, 0))),
        Some(ReasonCode::LimitLeverage)
    );
}

#[test]
fn cash_reserve_boundary_is_inclusive() {
    let e = exposures();
    let mut a = account(&e);
    a.cash = u(150_000);
    assert_eq!(check_trade(&lim(), &a, &buy("ARB", 50_000, 0)), Ok(()));
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("ARB", 50_001, 0))),
        Some(ReasonCode::LimitCashReserve)
    );
    // Spending more cash than held is refused at the same gate.
    a.cash = u(1_000);
    let r = check_trade(&lim(), &a, &buy("ARB", 2_000, 0));
    assert!(
        r.as_ref()
            .err()
            .is_some_and(|r| r.code == ReasonCode::LimitCashReserve && r.detail.contains("holds"))
    );
}

#[test]
fn exposure_boundary_is_inclusive_and_only_for_the_bought_asset() {
    let e = exposures();
    let a = account(&e);
    assert_eq!(check_trade(&lim(), &a, &buy("WETH", 100_000, 0)), Ok(()));
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("WETH", 100_001, 0))),
        Some(ReasonCode::LimitExposure)
    );
    // WBTC sits at exactly 30%: buying WETH is fine, buying one more unit of WBTC is not.
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("WBTC", 1, 0))),
        Some(ReasonCode::LimitExposure)
    );
    let over = [AssetExposure {
        asset: "WBTC",
        value: u(400_000),
    }];
    let b = AccountRisk {
        exposures: &over,
        ..account(&over)
    };
    assert_eq!(check_trade(&lim(), &b, &buy("WETH", 1_000, 0)), Ok(()));
}

#[test]
fn risk_reducing_trades_pass_over_the_limit_unless_disabled() {
    let e = [AssetExposure {
        asset: "WETH",
        value: u(600_000),
    }];
    let a = AccountRisk {
        gross_exposure: u(600_000),
        ..levered(&e)
    };
    // 6x leverage, 600% WETH. Selling WETH for cash improves leverage (and cash).
    assert_eq!(check_trade(&lim(), &a, &sell("WETH", 50_000, 0)), Ok(()));
    // Buying more makes it worse.
    assert_eq!(
        code(check_trade(&lim(), &a, &buy("WETH", 1_000, 0))),
        Some(ReasonCode::LimitLeverage)
    );
    let strict = EffectiveLimits {
        allow_risk_reducing: false,
        ..lim()
    };
    assert_eq!(
        code(check_trade(&strict, &a, &sell("WETH", 50_000, 0))),
        Some(ReasonCode::LimitLeverage)
    );
    // Cash reserve under the minimum: selling an asset for cash improves it.
    let e2 = exposures();
    let mut c = account(&e2);
    c.cash = u(50_000);
    assert_eq!(check_trade(&lim(), &c, &sell("WETH", 10_000, 0)), Ok(()));
    assert_eq!(
        code(check_trade(&strict, &c, &sell("WETH", 10_000, 0))),
        Some(ReasonCode::LimitCashReserve)
    );
}

#[test]
fn swap_projection_is_pessimistic() {
    let e = exposures();
    let a = account(&e);
    let p = project(&a, &buy("WETH", 100_000, 50));
    assert_eq!(
        p,
        Ok(PostTrade {
            equity: u(999_500),
            cash: u(400_000),
            gross_exposure: u(600_000),
            increased: Some(AssetExposure {
                asset: "WETH",
                value: u(300_000)
            }),
        })
    );
    let p = project(&a, &sell("WETH", 100_000, 50));
    assert_eq!(
        p,
        Ok(PostTrade {
            equity: u(999_500),
            cash: u(599_500),
            gross_exposure: u(400_000),
            increased: None,
        })
    );
    let same = TradeRisk {
        notional: u(1),
        slippage_bps: 0,
        effect: TradeEffect::Swap {
            sell: Leg::Asset("WETH"),
            buy: Leg::Asset("WETH"),
        },
    };
    assert_eq!(
        code(check_trade(&lim(), &a, &same)),
        Some(ReasonCode::BadInput)
    );
}

#[test]
fn explicit_projection_is_used_as_given() {
    let e = exposures();
    let a = account(&e);
    let t = |asset_value: u64| TradeRisk {
        notional: u(10_000),
        slippage_bps: 10,
        effect: TradeEffect::Projected(PostTrade {
            equity: u(1_000_000),
            cash: u(490_000),
            gross_exposure: u(510_000),
            increased: Some(AssetExposure {
                asset: "LP-WETH-USDC",
                value: u(asset_value),
            }),
        }),
    };
    assert_eq!(check_trade(&lim(), &a, &t(300_000)), Ok(()));
    assert_eq!(
        code(check_trade(&lim(), &a, &t(300_001))),
        Some(ReasonCode::LimitExposure)
    );
}

#[test]
fn zero_equity_is_refused_not_divided_by() {
    let a = AccountRisk {
        equity: U256::ZERO,
        peak_equity: U256::ZERO,
        day_start_equity: U256::ZERO,
        cash: U256::ZERO,
        gross_exposure: U256::ZERO,
        exposures: &[],
    };
    assert_eq!(
        code(check_trade(&lim(), &a, &sell("WETH", 1, 0))),
        Some(ReasonCode::BadInput)
    );
    let b = AccountRisk {
        peak_equity: u(10),
        ..a
    };
    assert_eq!(
        code(check_trade(&lim(), &b, &sell("WETH", 1, 0))),
        Some(ReasonCode::LimitDrawdown)
    );
    // Slippage that eats all equity is a 100% drawdown even at a 100% limit.
    let c = AccountRisk {
        equity: u(10),
        peak_equity: u(10),
        day_start_equity: u(10),
        cash: u(10),
        ..a
    };
    let all = EffectiveLimits {
        max_drawdown_bps: 10_000,
        max_daily_loss_bps: 10_000,
        max_slippage_bps: 10_000,
        ..lim()
    };
    assert_eq!(
        code(check_trade(&all, &c, &buy("WETH", 10, 10_000))),
        Some(ReasonCode::LimitDrawdown)
    );
}

#[test]
fn max_amounts_do_not_panic() {
    let e = [AssetExposure {
        asset: "WETH",
        value: U256::MAX,
    }];
    let a = AccountRisk {
        equity: U256::MAX,
        peak_equity: U256::MAX,
        day_start_equity: U256::MAX,
        cash: U256::MAX,
        gross_exposure: U256::MAX,
        exposures: &e,
    };
    let t = TradeRisk {
        notional: U256::MAX,
        slippage_bps: 0,
        effect: TradeEffect::Swap {
            sell: Leg::Cash,
            buy: Leg::Asset("WETH"),
        },
    };
    // Spends every unit of cash: the reserve gate refuses it.
    assert_eq!(
        code(check_trade(&lim(), &a, &t)),
        Some(ReasonCode::LimitCashReserve)
    );
    let t = TradeRisk {
        slippage_bps: 100,
        ..t
    };
    // 1% of 2^256-1 lost to slippage is a 1% drawdown, still under 10%; cash fails.
    assert_eq!(
        code(check_trade(&lim(), &a, &t)),
        Some(ReasonCode::LimitCashReserve)
    );
    let t = sell("WETH", 0, 100);
    let t = TradeRisk {
        notional: U256::MAX,
        ..t
    };
    // Selling everything for cash: 1% drawdown, no exposure left, cash saturates at MAX.
    assert_eq!(check_trade(&lim(), &a, &t), Ok(()));
    assert!(account_breach(&lim(), &a).is_none());
}

#[test]
fn notional_per_level() {
    let e = exposures();
    let a = account(&e);
    let l3 = LevelPolicy {
        mode: ModeCeiling::Live,
        max_trade_bps_of_equity: 2_000,
        max_notional: None,
    };
    assert_eq!(check_notional(&l3, &a, &buy("WETH", 200_000, 0)), Ok(()));
    assert_eq!(
        code(check_notional(&l3, &a, &buy("WETH", 200_001, 0))),
        Some(ReasonCode::LimitNotional)
    );
    let capped = LevelPolicy {
        max_notional: Some(u(1_000)),
        ..l3
    };
    assert_eq!(check_notional(&capped, &a, &buy("WETH", 1_000, 0)), Ok(()));
    assert_eq!(
        code(check_notional(&capped, &a, &buy("WETH", 1_001, 0))),
        Some(ReasonCode::LimitNotional)
    );
    assert_eq!(
        code(check_notional(&l3, &a, &buy("WETH", 0, 0))),
        Some(ReasonCode::BadInput)
    );
}

#[test]
fn account_breach_detects_state_limits_only() {
    let e = exposures();
    let mut a = account(&e);
    assert!(account_breach(&lim(), &a).is_none());
    a.day_start_equity = u(900_000);
    a.equity = u(900_000);
    assert_eq!(
        account_breach(&lim(), &a).map(|r| r.code),
        Some(ReasonCode::LimitDrawdown)
    );
    let mut b = account(&e);
    b.equity = u(950_000);
    b.peak_equity = u(950_000);
    assert_eq!(
        account_breach(&lim(), &b).map(|r| r.code),
        Some(ReasonCode::LimitDailyLoss)
    );
    let mut c = account(&e);
    c.gross_exposure = u(5_000_001);
    assert_eq!(
        account_breach(&lim(), &c).map(|r| r.code),
        Some(ReasonCode::LimitLeverage)
    );
    c.gross_exposure = u(5_000_000);
    assert!(account_breach(&lim(), &c).is_none());
    // Cash and concentration drift are not breaches.
    let mut d = account(&e);
    d.cash = U256::ZERO;
    assert!(account_breach(&lim(), &d).is_none());
}

#[test]
fn strategy_overrides_only_tighten() {
    let mut cfg = LimitsConfig::default();
    cfg.strategies.insert(
        "careful".into(),
        LimitsOverride {
            max_slippage_bps: Some(30),
            max_leverage_bps: Some(90_000), // looser: clamped to the account's 5x
            min_cash_reserve_bps: Some(2_000),
            ..LimitsOverride::default()
        },
    );
    let c = cfg.for_strategy("careful");
    assert_eq!(
        (
            c.max_slippage_bps,
            c.max_leverage_bps,
            c.min_cash_reserve_bps
        ),
        (30, 50_000, 2_000)
    );
    assert_eq!(cfg.for_strategy("other"), lim());
    let e = exposures();
    let a = account(&e);
    assert_eq!(
        code(check_trade(&c, &a, &buy("WETH", 1_000, 31))),
        Some(ReasonCode::LimitSlippage)
    );
}
