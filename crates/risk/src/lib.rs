//! Pre-trade risk gates for stratbox.
//!
//! The engine calls [`gates::evaluate`] for every proposal before simulating it. Everything
//! here is pure logic: no IO, no clocks, no async. Time, blocks and state come in as
//! arguments and the engine persists the state values ([`KillSwitch`],
//! [`PermissionTracker`]), so replaying the same inputs gives the same verdicts.
//!
//! Gates run in this order and the first failure wins (see [`gates`]):
//!
//! 1. kill switch (`kill_switch`)
//! 2. data freshness, the Sync Sentinel (`stale_watermark`)
//! 3. triple-oracle agreement (`oracle_missing`, `oracle_disagreement`, `market_halted`)
//! 4. permission level (`permission_level`) and its per-level trade size (`limit_notional`)
//! 5. hard limits: `limit_slippage`, `limit_drawdown`, `limit_daily_loss`, `limit_leverage`,
//!    `limit_cash_reserve`, `limit_exposure`
//! 6. gas price (`gas_price`, [`gas::check`]), run by the engine after [`gates::evaluate`]
//!    with the network's current price
//!
//! Money is `U256` in raw units of one quote asset and every ratio is compared exactly in
//! basis points ([`ratio`]); no float ever becomes an amount. The only floats are the
//! Sharpe-ratio statistics in [`permission`], which gate promotions and never size a trade.
//!
//! The accept path of [`gates::evaluate`] does not allocate; a [`Rejection`] carries a
//! human-readable detail and is built only when a gate fails.
//!
//! ```
//! use stratbox_risk::*;
//!
//! let cfg = RiskConfig::default(); // or toml::from_str / serde_json::from_str, then validate()
//! cfg.validate().expect("default config is valid");
//! let mut oracle: OracleGuard = OracleGuard::new();
//! let price = U256::from(3_000u64) * U256::from(10u64).pow(U256::from(18u64));
//! for source in ["uniswap", "chainlink", "cex"] {
//!     oracle.update("WETH/USDC", source, price, 100).expect("valid quote");
//! }
//! let kill = KillSwitch::default();
//! let tracker = PermissionTracker::new(&cfg.permission); // L1: shadow only
//! let account = AccountRisk {
//!     equity: U256::from(1_000_000u64),
//!     peak_equity: U256::from(1_000_000u64),
//!     day_start_equity: U256::from(1_000_000u64),
//!     cash: U256::from(1_000_000u64),
//!     gross_exposure: U256::ZERO,
//!     exposures: &[],
//! };
//! let trade = TradeRisk {
//!     notional: U256::from(10_000u64),
//!     slippage_bps: 30,
//!     effect: TradeEffect::Swap { sell: Leg::Cash, buy: Leg::Asset("WETH") },
//! };
//! let input = GateInput {
//!     strategy: "momentum",
//!     kill_switch: &kill,
//!     engine_block: 101,
//!     proposal_block: 100,
//!     market: "WETH/USDC",
//!     level: tracker.level(),
//!     requested_mode: ExecutionMode::Live,
//!     account: &account,
//!     trade: &trade,
//! };
//! let metrics = GateMetrics::new();
//! let verdict = evaluate(&cfg, &mut oracle, &input);
//! metrics.observe(&verdict);
//! assert_eq!(verdict.map(|c| c.mode), Ok(ExecutionMode::Shadow));
//! ```
#![warn(missing_docs)]
#![deny(clippy::arithmetic_side_effects)]

pub mod amount;
pub mod config;
pub mod gas;
pub mod gates;
pub mod kill_switch;
pub mod level;
pub mod limits;
pub mod metrics;
pub mod oracle;
pub mod permission;
pub mod ratio;
pub mod reason;
pub mod sentinel;

pub use ruint::aliases::U256;

pub use amount::{AmountParseError, parse_amount};
pub use config::{
    ConfigError, DemotionRule, Demotions, EffectiveLimits, GasConfig, LevelPolicies, LevelPolicy,
    LimitsConfig, LimitsOverride, OracleConfig, PermissionConfig, PromotionRule, Promotions,
    RiskConfig, SentinelConfig,
};
pub use gates::{Clearance, GateInput, evaluate};
pub use kill_switch::{KillSwitch, KillSwitchError};
pub use limits::{
    AccountRisk, AssetExposure, Leg, PostTrade, TradeEffect, TradeRisk, account_breach,
    check_notional, check_trade, project,
};
pub use metrics::{GateMetrics, MetricsSnapshot};
pub use oracle::{Assessment, Halt, MAX_SOURCES, OracleError, OracleGuard};
pub use permission::{
    Breach, DayOutcome, DayResult, ExecutionMode, LevelStats, ModeCeiling, PermissionError,
    PermissionLevel, PermissionTracker, TradeOutcome, Transition, TransitionCause, check_level,
};
pub use reason::{OK, ReasonCode, Rejection, UnknownReasonCode};
