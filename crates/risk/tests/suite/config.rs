use stratbox_risk::{ModeCeiling, PermissionLevel, RiskConfig, U256};

#[test]
fn defaults_are_the_house_limits() {
    let c = RiskConfig::default();
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.oracle.max_deviation_bps, 50);
    assert_eq!(c.oracle.min_sources, 3);
    assert_eq!(c.limits.max_drawdown_bps, 1_000);
    assert_eq!(c.limits.max_daily_loss_bps, 500);
    assert_eq!(c.limits.max_leverage_bps, 50_000);
    assert_eq!(c.limits.min_cash_reserve_bps, 1_000);
    assert_eq!(c.limits.max_asset_exposure_bps, 3_000);
    let p = &c.permission;
    assert_eq!(p.initial_level, PermissionLevel::L1);
    assert_eq!(
        (
            p.promotion.l1_to_l2.min_days,
            p.promotion.l1_to_l2.min_win_rate_bps
        ),
        (7, Some(5_000))
    );
    assert_eq!(
        (
            p.promotion.l2_to_l3.min_days,
            p.promotion.l2_to_l3.min_sharpe
        ),
        (30, Some(1.0))
    );
    assert_eq!(
        (
            p.promotion.l3_to_l4.min_win_rate_bps,
            p.promotion.l3_to_l4.min_sharpe
        ),
        (Some(6_000), Some(1.5))
    );
    assert_eq!(
        (
            p.promotion.l4_to_l5.min_win_rate_bps,
            p.promotion.l4_to_l5.min_winning_day_streak
        ),
        (Some(7_000), 20)
    );
    assert_eq!(p.demotion.l5.below_win_rate_bps, Some(6_500));
    assert_eq!(p.demotion.l4.below_win_rate_bps, Some(5_500));
    assert_eq!(p.demotion.l3.below_win_rate_bps, Some(4_500));
    assert_eq!(p.demotion.l2.losing_trade_streak, Some(3));
    assert_eq!(p.levels.l0.mode, ModeCeiling::Halted);
}

#[test]
fn loads_partial_toml_over_defaults() {
    let text = r#"
        [sentinel]
        max_lag_blocks = 5

        [oracle]
        max_deviation_bps = 25

        [limits]
        max_slippage_bps = 30

        [limits.strategies.momentum]
        max_asset_exposure_bps = 1000

        [permission.levels.l3]
        mode = "staged"
        max_trade_bps_of_equity = 1500
        max_notional = "1000000000000000000000"

        [permission.promotion.l1_to_l2]
        min_days = 14
        min_trades = 20
        min_win_rate_bps = 5500
    "#;
    let c: RiskConfig = match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => panic!("config did not load: {e}"),
    };
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.sentinel.max_lag_blocks, 5);
    assert_eq!(c.sentinel.max_lead_blocks, 0);
    assert_eq!(c.oracle.max_deviation_bps, 25);
    assert_eq!(c.oracle.min_sources, 3);
    assert_eq!(c.limits.max_slippage_bps, 30);
    assert_eq!(c.limits.max_drawdown_bps, 1_000);
    assert_eq!(
        c.limits.for_strategy("momentum").max_asset_exposure_bps,
        1_000
    );
    assert_eq!(c.permission.levels.l3.mode, ModeCeiling::Staged);
    assert_eq!(
        c.permission.levels.l3.max_notional,
        Some(U256::from(10u64).pow(U256::from(21u64)))
    );
    assert_eq!(c.permission.levels.l4.max_trade_bps_of_equity, 2_500);
    assert_eq!(c.permission.promotion.l1_to_l2.min_days, 14);
    assert_eq!(c.permission.promotion.l2_to_l3.min_days, 30);
}

#[test]
fn loads_json_and_round_trips() {
    let c = RiskConfig::default();
    let json = serde_json::to_string(&c).unwrap_or_default();
    let back: Result<RiskConfig, _> = serde_json::from_str(&json);
    assert_eq!(back.ok(), Some(c));
    let empty: Result<RiskConfig, _> = serde_json::from_str("{}");
    assert_eq!(empty.ok(), Some(RiskConfig::default()));
}

#[test]
fn typos_and_bad_amounts_are_refused() {
    assert!(toml::from_str::<RiskConfig>("[limits]\nmax_drawdwn_bps = 5").is_err());
    assert!(toml::from_str::<RiskConfig>("[permission.levels.l1]\nmax_notional = \"-5\"").is_err());
    assert!(
        toml::from_str::<RiskConfig>("[permission.levels.l1]\nmax_notional = \"007\"").is_err()
    );
    assert!(
        toml::from_str::<RiskConfig>("[permission.levels.l1]\nmax_notional = \"1.5\"").is_err()
    );
    assert!(toml::from_str::<RiskConfig>("[permission.levels.l1]\nmode = \"yolo\"").is_err());
}

#[test]
fn validation_catches_nonsense() {
    let field = |c: &RiskConfig| c.validate().err().map(|e| e.field);
    let mut c = RiskConfig::default();
    c.oracle.min_sources = 0;
    assert_eq!(field(&c).as_deref(), Some("oracle.min_sources"));

    let mut c = RiskConfig::default();
    c.oracle.min_sources = 9;
    assert_eq!(field(&c).as_deref(), Some("oracle.min_sources"));

    let mut c = RiskConfig::default();
    c.limits.max_drawdown_bps = 10_001;
    assert_eq!(field(&c).as_deref(), Some("limits.max_drawdown_bps"));

    let mut c = RiskConfig::default();
    c.limits.strategies.insert(
        "loose".into(),
        stratbox_risk::LimitsOverride {
            max_daily_loss_bps: Some(800),
            ..Default::default()
        },
    );
    assert_eq!(
        field(&c).as_deref(),
        Some("limits.strategies.loose.max_daily_loss_bps")
    );

    let mut c = RiskConfig::default();
    c.permission.initial_level = PermissionLevel::L0;
    assert_eq!(field(&c).as_deref(), Some("permission.initial_level"));

    let mut c = RiskConfig::default();
    c.permission.levels.l0.mode = ModeCeiling::Shadow;
    assert_eq!(field(&c).as_deref(), Some("permission.levels.l0.mode"));

    let mut c = RiskConfig::default();
    c.permission.promotion.l3_to_l4.min_trades = 0;
    assert_eq!(
        field(&c).as_deref(),
        Some("permission.promotion.l3_to_l4.min_trades")
    );

    let mut c = RiskConfig::default();
    c.permission.promotion.l2_to_l3.min_sharpe = Some(f64::NAN);
    assert_eq!(
        field(&c).as_deref(),
        Some("permission.promotion.l2_to_l3.min_sharpe")
    );

    let mut c = RiskConfig::default();
    c.permission.demotion.l2.losing_trade_streak = Some(0);
    assert_eq!(
        field(&c).as_deref(),
        Some("permission.demotion.l2.losing_trade_streak")
    );
}
