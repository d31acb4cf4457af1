use stratbox_risk::{
    AccountRisk, AssetExposure, Clearance, ExecutionMode, GateInput, GateMetrics, KillSwitch,
    LimitsOverride, PermissionLevel, ReasonCode, RiskConfig, U256, evaluate,
};

use super::common::{MARKET, account, agreeing_oracle, buy, cfg, exposures, input, px, u};

#[test]
fn a_clean_proposal_is_cleared_with_its_mode_and_price() {
    let (kill, e) = (KillSwitch::default(), exposures());
    let a = account(&e);
    let t = buy("WETH", 10_000, 30);
    let mut o = agreeing_oracle(100);
    let r = evaluate(&cfg(), &mut o, &input(&kill, &a, &t));
    assert_eq!(
        r,
        Ok(Clearance {
            level: PermissionLevel::L3,
            mode: ExecutionMode::Live,
            oracle_price_e18: px(0),
        })
    );
    // An L1 strategy in a live engine runs in shadow.
    let i = GateInput {
        level: PermissionLevel::L1,
        ..input(&kill, &a, &t)
    };
    assert_eq!(
        evaluate(&cfg(), &mut o, &i).map(|c| c.mode),
        Ok(ExecutionMode::Shadow)
    );
}

/// Which gates a scenario breaks; each flag breaks exactly one gate.
#[derive(Default, Clone, Copy)]
struct Breaks {
    kill: bool,
    stale: bool,
    oracle: bool,
    level: bool,
    notional: bool,
    slippage: bool,
    drawdown: bool,
    daily_loss: bool,
    leverage: bool,
    cash: bool,
    exposure: bool,
}

fn run(b: Breaks) -> Result<Clearance, stratbox_risk::Rejection> {
    let mut config = cfg();
    if b.notional {
        config.permission.levels.l3.max_notional = Some(u(5_000));
    }
    let mut kill = KillSwitch::default();
    if b.kill {
        kill.engage("test", "op", 1).ok();
    }
    let arb = [AssetExposure {
        asset: "ARB",
        value: u(if b.exposure { 400_000 } else { 0 }),
    }];
    let a = AccountRisk {
        equity: u(1_000_000),
        peak_equity: u(if b.drawdown { 2_000_000 } else { 1_000_000 }),
        day_start_equity: u(if b.daily_loss { 1_100_000 } else { 1_000_000 }),
        cash: u(if b.cash { 50_000 } else { 500_000 }),
        gross_exposure: u(if b.leverage { 6_000_000 } else { 500_000 }),
        exposures: &arb,
    };
    let t = buy("ARB", 10_000, if b.slippage { 500 } else { 0 });
    let mut o = agreeing_oracle(100);
    let i = GateInput {
        proposal_block: if b.stale { 0 } else { 100 },
        market: if b.oracle { "NOPE" } else { MARKET },
        level: if b.level {
            PermissionLevel::L0
        } else {
            PermissionLevel::L3
        },
        ..input(&kill, &a, &t)
    };
    evaluate(&config, &mut o, &i)
}

#[test]
fn gates_run_in_the_documented_order() {
    let mut b = Breaks {
        kill: true,
        stale: true,
        oracle: true,
        level: true,
        notional: true,
        slippage: true,
        drawdown: true,
        daily_loss: true,
        leverage: true,
        cash: true,
        exposure: true,
    };
    type Fix = fn(&mut Breaks);
    let order: [(ReasonCode, Fix); 11] = [
        (ReasonCode::KillSwitch, |b| b.kill = false),
        (ReasonCode::StaleWatermark, |b| b.stale = false),
        (ReasonCode::OracleMissing, |b| b.oracle = false),
        (ReasonCode::PermissionLevel, |b| b.level = false),
        (ReasonCode::LimitNotional, |b| b.notional = false),
        (ReasonCode::LimitSlippage, |b| b.slippage = false),
        (ReasonCode::LimitDrawdown, |b| b.drawdown = false),
        (ReasonCode::LimitDailyLoss, |b| b.daily_loss = false),
        (ReasonCode::LimitLeverage, |b| b.leverage = false),
        (ReasonCode::LimitCashReserve, |b| b.cash = false),
        (ReasonCode::LimitExposure, |b| b.exposure = false),
    ];
    for (expected, fix) in order {
        assert_eq!(run(b).map_err(|r| r.code).err(), Some(expected));
        fix(&mut b);
    }
    assert!(run(b).is_ok());
    // And each break alone is caught by its own gate.
    for (expected, fix) in order {
        let mut only = Breaks {
            kill: true,
            stale: true,
            oracle: true,
            level: true,
            notional: true,
            slippage: true,
            drawdown: true,
            daily_loss: true,
            leverage: true,
            cash: true,
            exposure: true,
        };
        // Clear every flag but the one `expected` is about.
        for (other, other_fix) in order {
            if other != expected {
                other_fix(&mut only);
            }
        }
        assert_eq!(run(only).map_err(|r| r.code).err(), Some(expected));
        fix(&mut only);
        assert!(run(only).is_ok());
    }
}

#[test]
fn oracle_halt_reports_market_halted_to_later_proposals() {
    let (kill, e) = (KillSwitch::default(), exposures());
    let a = account(&e);
    let t = buy("WETH", 10_000, 30);
    let mut o = agreeing_oracle(100);
    o.update(MARKET, "cex", px(60), 100).ok();
    let c = cfg();
    let code = |o: &mut stratbox_risk::OracleGuard| {
        evaluate(&c, o, &input(&kill, &a, &t))
            .map_err(|r| r.code)
            .err()
    };
    assert_eq!(code(&mut o), Some(ReasonCode::OracleDisagreement));
    assert_eq!(code(&mut o), Some(ReasonCode::MarketHalted));
    for s in ["uniswap", "chainlink", "cex"] {
        o.update(MARKET, s, px(1), 100).ok();
    }
    assert_eq!(code(&mut o), None);
}

#[test]
fn kill_switch_wins_even_over_a_halted_market() {
    let (mut kill, e) = (KillSwitch::default(), exposures());
    kill.engage("incident", "op", 5).ok();
    let a = account(&e);
    let t = buy("WETH", 10_000, 30);
    let mut o: stratbox_risk::OracleGuard = stratbox_risk::OracleGuard::new();
    let r = evaluate(&cfg(), &mut o, &input(&kill, &a, &t));
    assert_eq!(r.map_err(|r| r.code), Err(ReasonCode::KillSwitch));
}

#[test]
fn strategy_overrides_apply_in_evaluate() {
    let (kill, e) = (KillSwitch::default(), exposures());
    let a = account(&e);
    let t = buy("WETH", 10_000, 30);
    let mut c: RiskConfig = cfg();
    c.limits.strategies.insert(
        "momentum".into(),
        LimitsOverride {
            max_slippage_bps: Some(20),
            ..Default::default()
        },
    );
    let mut o = agreeing_oracle(100);
    let r = evaluate(&c, &mut o, &input(&kill, &a, &t));
    assert_eq!(r.map_err(|r| r.code), Err(ReasonCode::LimitSlippage));
    let other = GateInput {
        strategy: "maker",
        ..input(&kill, &a, &t)
    };
    assert!(evaluate(&c, &mut o, &other).is_ok());
}

#[test]
fn metrics_count_verdicts() {
    let m = GateMetrics::new();
    for b in [
        Breaks::default(),
        Breaks {
            kill: true,
            ..Breaks::default()
        },
        Breaks {
            cash: true,
            ..Breaks::default()
        },
        Breaks {
            cash: true,
            ..Breaks::default()
        },
    ] {
        m.observe(&run(b));
    }
    let s = m.snapshot();
    assert_eq!(s.accepted, 1);
    assert_eq!(s.rejected(ReasonCode::KillSwitch), 1);
    assert_eq!(s.rejected(ReasonCode::LimitCashReserve), 2);
    assert_eq!(s.total_rejected(), 3);
}

#[test]
fn max_amounts_through_every_gate_do_not_panic() {
    let kill = KillSwitch::default();
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
    let mut t = buy("WETH", 1, 100);
    t.notional = U256::MAX;
    let mut o = agreeing_oracle(100);
    let i = GateInput {
        engine_block: u64::MAX,
        proposal_block: u64::MAX,
        ..input(&kill, &a, &t)
    };
    // The oracle quotes (block 100) are stale at block u64::MAX.
    assert_eq!(
        evaluate(&cfg(), &mut o, &i).map_err(|r| r.code),
        Err(ReasonCode::OracleMissing)
    );
    let mut o = agreeing_oracle(100);
    let i = GateInput {
        engine_block: 100,
        proposal_block: 100,
        ..i
    };
    // 2^256-1 is more than 20% of 2^256-1 of equity.
    assert_eq!(
        evaluate(&cfg(), &mut o, &i).map_err(|r| r.code),
        Err(ReasonCode::LimitNotional)
    );
}
