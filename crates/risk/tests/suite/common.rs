use stratbox_risk::{
    AccountRisk, AssetExposure, ExecutionMode, GateInput, KillSwitch, Leg, OracleGuard,
    PermissionLevel, RiskConfig, TradeEffect, TradeRisk, U256,
};

pub fn u(n: u64) -> U256 {
    U256::from(n)
}

pub const MARKET: &str = "WETH/USDC";

/// A healthy account: equity 1_000_000, at its peak and day start, 500_000 cash,
/// gross exposure 500_000 of which 200_000 in WETH.
pub fn exposures() -> [AssetExposure<'static>; 2] {
    [
        AssetExposure {
            asset: "WETH",
            value: u(200_000),
        },
        AssetExposure {
            asset: "WBTC",
            value: u(300_000),
        },
    ]
}

pub fn account<'a>(exp: &'a [AssetExposure<'a>]) -> AccountRisk<'a> {
    AccountRisk {
        equity: u(1_000_000),
        peak_equity: u(1_000_000),
        day_start_equity: u(1_000_000),
        cash: u(500_000),
        gross_exposure: u(500_000),
        exposures: exp,
    }
}

/// Buy `notional` of WETH with cash, accepting `slippage_bps`.
pub fn buy(asset: &str, notional: u64, slippage_bps: u32) -> TradeRisk<'_> {
    TradeRisk {
        notional: u(notional),
        slippage_bps,
        effect: TradeEffect::Swap {
            sell: Leg::Cash,
            buy: Leg::Asset(asset),
        },
    }
}

pub fn sell(asset: &str, notional: u64, slippage_bps: u32) -> TradeRisk<'_> {
    TradeRisk {
        notional: u(notional),
        slippage_bps,
        effect: TradeEffect::Swap {
            sell: Leg::Asset(asset),
            buy: Leg::Cash,
        },
    }
}

/// 1 WETH = 3000 USDC, e18 fixed point.
pub fn px(bps_off: i64) -> U256 {
    let base = U256::from(3_000u64) * U256::from(10u64).pow(U256::from(18u64));
    let delta = base * U256::from(bps_off.unsigned_abs()) / U256::from(10_000u64);
    if bps_off < 0 {
        base - delta
    } else {
        base + delta
    }
}

pub fn agreeing_oracle(block: u64) -> OracleGuard {
    let mut g = OracleGuard::new();
    for s in ["uniswap", "chainlink", "cex"] {
        assert_eq!(g.update(MARKET, s, px(0), block), Ok(()));
    }
    g
}

pub fn input<'a>(
    kill: &'a KillSwitch,
    account: &'a AccountRisk<'a>,
    trade: &'a TradeRisk<'a>,
) -> GateInput<'a, str> {
    GateInput {
        strategy: "momentum",
        kill_switch: kill,
        engine_block: 100,
        proposal_block: 100,
        market: MARKET,
        level: PermissionLevel::L3,
        requested_mode: ExecutionMode::Live,
        account,
        trade,
    }
}

pub fn cfg() -> RiskConfig {
    RiskConfig::default()
}
