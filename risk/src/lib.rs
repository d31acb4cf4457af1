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
//!
//! Money is `U256` in raw units of one quote asset and every ratio is compared exactly in
//! basis points ([`ratio`]); no float ever becomes an amount. The only floats are the
//! Sharpe-ratio statistics in [`permission`], which gate promotions and never size a trade.
//!
//! The accept path of [`gates::evaluate`] does not allocate; a [`Rejection`] carries a
//! human-readable detail and is built only when a gate fails.

#![deny(clippy::arithmetic_side_effects)]

pub mod amount;
pub mod config;
pub mod gates;
pub mod kill_switch;
pub mod limits;
pub mod metrics;
pub mod oracle;
pub mod permission;
pub mod ratio;
pub mod reason;
pub mod sentinel;

pub use ruint::aliases::U256;

pub use amount::{AmountError, parse_amount};
pub use config::{
    ConfigError, DemotionRule, Demotions, EffectiveLimits, LevelPolicies, LevelPolicy,
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
