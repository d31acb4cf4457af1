//! Risk configuration. Every threshold is a value here, never a constant in the checks.
//!
//! `RiskConfig` deserializes from TOML or JSON (any serde format); every section and field
//! is optional and defaults to the house limits, and unknown fields are refused so a typo
//! cannot silently leave a limit at its default. Ratios are basis points (1% = 100 bps);
//! amounts are base-10 strings of raw quote units. Call [`RiskConfig::validate`] after
//! loading.

use std::collections::BTreeMap;

use ruint::aliases::U256;
use serde::{Deserialize, Serialize};

use crate::level::{ModeCeiling, PermissionLevel};
use crate::ratio::BPS_ONE;

/// The whole risk configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Data freshness: how far a proposal's block may be from the engine's.
    pub sentinel: SentinelConfig,
    /// Agreement of the price sources.
    pub oracle: OracleConfig,
    /// Hard limits on each account and book.
    pub limits: LimitsConfig,
    /// Permission levels and how strategies move between them.
    pub permission: PermissionConfig,
    /// The gas price the engine executes at.
    pub gas: GasConfig,
}

/// The gas-price gate: a trade is not worth taking at any price the network asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GasConfig {
    /// Highest gas price (base fee plus tip) a trade may be simulated and sent at, in gwei.
    /// Exactly this much passes.
    pub max_gas_price_gwei: u64,
}

impl Default for GasConfig {
    fn default() -> Self {
        GasConfig {
            max_gas_price_gwei: 500,
        }
    }
}

/// Sync Sentinel: how far a proposal's watermark may be from the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentinelConfig {
    /// A proposal built on a snapshot more than this many blocks behind the engine's
    /// watermark is refused (`stale_watermark`). Exactly `max_lag_blocks` behind passes.
    pub max_lag_blocks: u64,
    /// A proposal whose watermark is ahead of the engine's saw state the engine cannot
    /// simulate against yet; allowed up to this many blocks (0 = never ahead).
    pub max_lead_blocks: u64,
}

impl Default for SentinelConfig {
    fn default() -> Self {
        SentinelConfig {
            max_lag_blocks: 3,
            max_lead_blocks: 0,
        }
    }
}

/// Most sources one market can have; bounds the stack array the median is taken on.
pub const MAX_SOURCES: usize = 8;

/// Triple-oracle agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OracleConfig {
    /// Fresh sources needed before a market may trade.
    pub min_sources: u32,
    /// Largest allowed distance of any source from the median, in bps of the median.
    /// Exactly this far passes.
    pub max_deviation_bps: u32,
    /// A quote older than this many blocks (relative to the engine's block) is not fresh.
    pub max_age_blocks: u64,
    /// Halt a market on an oracle failure (see [`crate::oracle`] for how it recovers).
    /// When false, each proposal is judged on the quotes of the moment.
    pub halt_on_failure: bool,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            min_sources: 3,
            max_deviation_bps: 50,
            max_age_blocks: 10,
            halt_on_failure: true,
        }
    }
}

/// Hard limits on an account (or a strategy's book, if the engine keeps one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest slippage a proposal may accept. Exactly this much passes.
    pub max_slippage_bps: u32,
    /// Drawdown from peak equity must stay strictly below this.
    pub max_drawdown_bps: u32,
    /// Loss since the day's starting equity must stay strictly below this.
    pub max_daily_loss_bps: u32,
    /// Gross exposure over equity may be at most this (5x = 50_000 bps).
    pub max_leverage_bps: u64,
    /// Cash over equity must be at least this.
    pub min_cash_reserve_bps: u32,
    /// Exposure to any one asset over equity may be at most this.
    pub max_asset_exposure_bps: u32,
    /// A trade whose leverage, cash reserve or asset exposure is over the limit but strictly
    /// better than before the trade is allowed, so an account can always de-risk.
    pub allow_risk_reducing: bool,
    /// Per-strategy overrides; they may only tighten (checked by [`RiskConfig::validate`]).
    pub strategies: BTreeMap<String, LimitsOverride>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_slippage_bps: 100,
            max_drawdown_bps: 1_000,
            max_daily_loss_bps: 500,
            max_leverage_bps: 50_000,
            min_cash_reserve_bps: 1_000,
            max_asset_exposure_bps: 3_000,
            allow_risk_reducing: true,
            strategies: BTreeMap::new(),
        }
    }
}

/// The limits actually applied to one strategy: the account limits with that strategy's
/// overrides folded in. `Copy`, so resolving it on every proposal does not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    /// As [`LimitsConfig::max_slippage_bps`], after the strategy's override.
    pub max_slippage_bps: u32,
    /// As [`LimitsConfig::max_drawdown_bps`], after the strategy's override.
    pub max_drawdown_bps: u32,
    /// As [`LimitsConfig::max_daily_loss_bps`], after the strategy's override.
    pub max_daily_loss_bps: u32,
    /// As [`LimitsConfig::max_leverage_bps`], after the strategy's override.
    pub max_leverage_bps: u64,
    /// As [`LimitsConfig::min_cash_reserve_bps`], after the strategy's override.
    pub min_cash_reserve_bps: u32,
    /// As [`LimitsConfig::max_asset_exposure_bps`], after the strategy's override.
    pub max_asset_exposure_bps: u32,
    /// As [`LimitsConfig::allow_risk_reducing`], after the strategy's override.
    pub allow_risk_reducing: bool,
}

/// A strategy's tighter limits. Absent fields use the account limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverride {
    /// Replaces [`LimitsConfig::max_slippage_bps`] for this strategy when tighter.
    pub max_slippage_bps: Option<u32>,
    /// Replaces [`LimitsConfig::max_drawdown_bps`] for this strategy when tighter.
    pub max_drawdown_bps: Option<u32>,
    /// Replaces [`LimitsConfig::max_daily_loss_bps`] for this strategy when tighter.
    pub max_daily_loss_bps: Option<u32>,
    /// Replaces [`LimitsConfig::max_leverage_bps`] for this strategy when tighter.
    pub max_leverage_bps: Option<u64>,
    /// Replaces [`LimitsConfig::min_cash_reserve_bps`] for this strategy when tighter.
    pub min_cash_reserve_bps: Option<u32>,
    /// Replaces [`LimitsConfig::max_asset_exposure_bps`] for this strategy when tighter.
    pub max_asset_exposure_bps: Option<u32>,
}

impl LimitsConfig {
    /// The limits for `strategy`. Overrides can only tighten: even an unvalidated looser
    /// override is clamped to the account limit here.
    pub fn for_strategy(&self, strategy: &str) -> EffectiveLimits {
        let mut e = EffectiveLimits {
            max_slippage_bps: self.max_slippage_bps,
            max_drawdown_bps: self.max_drawdown_bps,
            max_daily_loss_bps: self.max_daily_loss_bps,
            max_leverage_bps: self.max_leverage_bps,
            min_cash_reserve_bps: self.min_cash_reserve_bps,
            max_asset_exposure_bps: self.max_asset_exposure_bps,
            allow_risk_reducing: self.allow_risk_reducing,
        };
        if let Some(o) = self.strategies.get(strategy) {
            if let Some(v) = o.max_slippage_bps {
                e.max_slippage_bps = e.max_slippage_bps.min(v);
            }
            if let Some(v) = o.max_drawdown_bps {
                e.max_drawdown_bps = e.max_drawdown_bps.min(v);
            }
            if let Some(v) = o.max_daily_loss_bps {
                e.max_daily_loss_bps = e.max_daily_loss_bps.min(v);
            }
            if let Some(v) = o.max_leverage_bps {
                e.max_leverage_bps = e.max_leverage_bps.min(v);
            }
            if let Some(v) = o.min_cash_reserve_bps {
                e.min_cash_reserve_bps = e.min_cash_reserve_bps.max(v);
            }
            if let Some(v) = o.max_asset_exposure_bps {
                e.max_asset_exposure_bps = e.max_asset_exposure_bps.min(v);
            }
        }
        e
    }
}

/// Permission levels: what each level may do, and how strategies move between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionConfig {
    /// The level a new strategy starts at.
    pub initial_level: PermissionLevel,
    /// The highest level a human may restore a halted (L0) strategy to.
    pub max_restore_level: PermissionLevel,
    /// Periods per year used to annualise the Sharpe ratio of daily returns (365: crypto
    /// markets trade every day).
    pub sharpe_periods_per_year: u32,
    /// What each level may do.
    pub levels: LevelPolicies,
    /// When a strategy moves up a level.
    pub promotion: Promotions,
    /// When a strategy moves down a level.
    pub demotion: Demotions,
}

impl Default for PermissionConfig {
    fn default() -> Self {
        PermissionConfig {
            initial_level: PermissionLevel::L1,
            max_restore_level: PermissionLevel::L1,
            sharpe_periods_per_year: 365,
            levels: LevelPolicies::default(),
            promotion: Promotions::default(),
            demotion: Demotions::default(),
        }
    }
}

/// What one level may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LevelPolicy {
    /// The furthest a trade at this level may go: `halted` (no trading at all), `shadow`
    /// (simulate and book virtual PnL), `staged` (human approval), `live`.
    pub mode: ModeCeiling,
    /// Largest trade as a share of the account's equity (unit-free, so it needs no
    /// knowledge of the quote asset's decimals).
    pub max_trade_bps_of_equity: u32,
    /// Optional absolute cap on a trade's notional, in raw quote units.
    #[serde(
        with = "crate::amount::decimal_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_notional: Option<U256>,
}

impl Default for LevelPolicy {
    fn default() -> Self {
        LevelPolicy {
            mode: ModeCeiling::Halted,
            max_trade_bps_of_equity: 0,
            max_notional: None,
        }
    }
}

/// One [`LevelPolicy`] per level; named fields read well in TOML (`[permission.levels.l3]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LevelPolicies {
    /// What L0 may do.
    pub l0: LevelPolicy,
    /// What L1 may do.
    pub l1: LevelPolicy,
    /// What L2 may do.
    pub l2: LevelPolicy,
    /// What L3 may do.
    pub l3: LevelPolicy,
    /// What L4 may do.
    pub l4: LevelPolicy,
    /// What L5 may do.
    pub l5: LevelPolicy,
}

impl LevelPolicies {
    /// The policy of `level`.
    pub fn get(&self, level: PermissionLevel) -> &LevelPolicy {
        match level {
            PermissionLevel::L0 => &self.l0,
            PermissionLevel::L1 => &self.l1,
            PermissionLevel::L2 => &self.l2,
            PermissionLevel::L3 => &self.l3,
            PermissionLevel::L4 => &self.l4,
            PermissionLevel::L5 => &self.l5,
        }
    }
}

impl Default for LevelPolicies {
    fn default() -> Self {
        let p = |mode, bps| LevelPolicy {
            mode,
            max_trade_bps_of_equity: bps,
            max_notional: None,
        };
        LevelPolicies {
            l0: p(ModeCeiling::Halted, 0),
            l1: p(ModeCeiling::Shadow, 500),
            l2: p(ModeCeiling::Staged, 1_000),
            l3: p(ModeCeiling::Live, 2_000),
            l4: p(ModeCeiling::Live, 2_500),
            l5: p(ModeCeiling::Live, 3_000),
        }
    }
}

/// Conditions to move up one level, all measured since the strategy entered its current
/// level (each level is earned afresh). Every present condition must hold.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromotionRule {
    /// Recorded days at the current level.
    pub min_days: u32,
    /// Decided (won or lost) trades at the current level; a win rate needs at least one.
    pub min_trades: u32,
    /// Trade win rate at the current level, at least.
    pub min_win_rate_bps: Option<u32>,
    /// Annualised Sharpe ratio of daily returns at the current level, at least. Needs at
    /// least two days and a non-zero spread of returns.
    pub min_sharpe: Option<f64>,
    /// Winning days in a row, ending with the latest recorded day.
    pub min_winning_day_streak: u32,
}

/// The rule for each step up; none leads out of L0 (a human restores) or L5.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Promotions {
    /// L1 to L2.
    pub l1_to_l2: PromotionRule,
    /// L2 to L3.
    pub l2_to_l3: PromotionRule,
    /// L3 to L4.
    pub l3_to_l4: PromotionRule,
    /// L4 to L5.
    pub l4_to_l5: PromotionRule,
}

impl Default for Promotions {
    fn default() -> Self {
        Promotions {
            // "L1 -> L2 after 7 days at 50% win rate"
            l1_to_l2: PromotionRule {
                min_days: 7,
                min_trades: 1,
                min_win_rate_bps: Some(5_000),
                ..PromotionRule::default()
            },
            // "L2 -> L3 after 30 days at Sharpe 1.0"
            l2_to_l3: PromotionRule {
                min_days: 30,
                min_sharpe: Some(1.0),
                ..PromotionRule::default()
            },
            // "L3 -> L4 at 60% win rate and Sharpe 1.5"
            l3_to_l4: PromotionRule {
                min_trades: 1,
                min_win_rate_bps: Some(6_000),
                min_sharpe: Some(1.5),
                ..PromotionRule::default()
            },
            // "L4 -> L5 at 70% win rate and 20 winning days in a row"
            l4_to_l5: PromotionRule {
                min_trades: 1,
                min_win_rate_bps: Some(7_000),
                min_winning_day_streak: 20,
                ..PromotionRule::default()
            },
        }
    }
}

/// Conditions that move a strategy down one level; any one is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemotionRule {
    /// Demote when the trade win rate at the current level falls strictly below this...
    pub below_win_rate_bps: Option<u32>,
    /// ...once at least this many trades have been decided at the level (so one early loss
    /// right after a promotion is not a 0% win rate).
    pub min_trades: u32,
    /// Demote after this many losing trades in a row.
    pub losing_trade_streak: Option<u32>,
}

/// The rule for each level that can lose one; L1 falls only to L0, by a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Demotions {
    /// Out of L2, one level down.
    pub l2: DemotionRule,
    /// Out of L3, one level down.
    pub l3: DemotionRule,
    /// Out of L4, one level down.
    pub l4: DemotionRule,
    /// Out of L5, one level down.
    pub l5: DemotionRule,
}

impl Default for Demotions {
    fn default() -> Self {
        let wr = |bps| DemotionRule {
            below_win_rate_bps: Some(bps),
            min_trades: 10,
            losing_trade_streak: None,
        };
        Demotions {
            // "L2 -> L1 on 3 losses in a row"
            l2: DemotionRule {
                losing_trade_streak: Some(3),
                ..DemotionRule::default()
            },
            l3: wr(4_500),
            l4: wr(5_500),
            l5: wr(6_500),
        }
    }
}

impl PermissionConfig {
    /// The rule that promotes out of `level`, if any (none out of L0 or L5).
    pub fn promotion_from(&self, level: PermissionLevel) -> Option<&PromotionRule> {
        match level {
            PermissionLevel::L1 => Some(&self.promotion.l1_to_l2),
            PermissionLevel::L2 => Some(&self.promotion.l2_to_l3),
            PermissionLevel::L3 => Some(&self.promotion.l3_to_l4),
            PermissionLevel::L4 => Some(&self.promotion.l4_to_l5),
            PermissionLevel::L0 | PermissionLevel::L5 => None,
        }
    }

    /// The rule that demotes out of `level`, if any (none out of L0 or L1).
    pub fn demotion_from(&self, level: PermissionLevel) -> Option<&DemotionRule> {
        match level {
            PermissionLevel::L2 => Some(&self.demotion.l2),
            PermissionLevel::L3 => Some(&self.demotion.l3),
            PermissionLevel::L4 => Some(&self.demotion.l4),
            PermissionLevel::L5 => Some(&self.demotion.l5),
            PermissionLevel::L0 | PermissionLevel::L1 => None,
        }
    }
}

/// A configuration that loaded but makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid risk configuration: {field}: {problem}")]
pub struct ConfigError {
    /// The offending key, dotted (`limits.max_slippage_bps`).
    pub field: String,
    /// What is wrong with its value.
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

fn at_most_one(field: &str, bps: u64) -> Result<(), ConfigError> {
    if bps > BPS_ONE {
        return Err(bad(field, format!("{bps} bps is more than 100%")));
    }
    Ok(())
}

impl RiskConfig {
    /// Check ranges and internal consistency. The checks never panic on an invalid config
    /// either; validation is what an operator reads when a config is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let o = &self.oracle;
        if o.min_sources == 0 {
            return Err(bad("oracle.min_sources", "must be at least 1"));
        }
        if o.min_sources as usize > MAX_SOURCES {
            return Err(bad(
                "oracle.min_sources",
                format!("at most {MAX_SOURCES} sources per market"),
            ));
        }
        at_most_one("oracle.max_deviation_bps", o.max_deviation_bps.into())?;

        let l = &self.limits;
        at_most_one("limits.max_slippage_bps", l.max_slippage_bps.into())?;
        at_most_one("limits.max_drawdown_bps", l.max_drawdown_bps.into())?;
        at_most_one("limits.max_daily_loss_bps", l.max_daily_loss_bps.into())?;
        at_most_one("limits.min_cash_reserve_bps", l.min_cash_reserve_bps.into())?;
        at_most_one(
            "limits.max_asset_exposure_bps",
            l.max_asset_exposure_bps.into(),
        )?;
        for (name, ov) in &l.strategies {
            let f = |k: &str| format!("limits.strategies.{name}.{k}");
            let looser = |v: Option<u64>, base: u64, upper: bool| match v {
                Some(v) if upper => v > base,
                Some(v) => v < base,
                None => false,
            };
            let checks: [(&str, Option<u64>, u64, bool); 6] = [
                (
                    "max_slippage_bps",
                    ov.max_slippage_bps.map(u64::from),
                    l.max_slippage_bps.into(),
                    true,
                ),
                (
                    "max_drawdown_bps",
                    ov.max_drawdown_bps.map(u64::from),
                    l.max_drawdown_bps.into(),
                    true,
                ),
                (
                    "max_daily_loss_bps",
                    ov.max_daily_loss_bps.map(u64::from),
                    l.max_daily_loss_bps.into(),
                    true,
                ),
                (
                    "max_leverage_bps",
                    ov.max_leverage_bps,
                    l.max_leverage_bps,
                    true,
                ),
                (
                    "min_cash_reserve_bps",
                    ov.min_cash_reserve_bps.map(u64::from),
                    l.min_cash_reserve_bps.into(),
                    false,
                ),
                (
                    "max_asset_exposure_bps",
                    ov.max_asset_exposure_bps.map(u64::from),
                    l.max_asset_exposure_bps.into(),
                    true,
                ),
            ];
            for (k, v, base, upper) in checks {
                if looser(v, base, upper) {
                    return Err(bad(
                        f(k),
                        "a strategy override may only tighten the account limit",
                    ));
                }
                if k != "max_leverage_bps"
                    && let Some(v) = v
                {
                    at_most_one(&f(k), v)?;
                }
            }
        }

        let p = &self.permission;
        if p.initial_level == PermissionLevel::L0 {
            return Err(bad(
                "permission.initial_level",
                "a new strategy cannot start halted: leaving L0 needs a human",
            ));
        }
        if p.max_restore_level == PermissionLevel::L0 {
            return Err(bad("permission.max_restore_level", "must be L1 or above"));
        }
        if p.sharpe_periods_per_year == 0 {
            return Err(bad(
                "permission.sharpe_periods_per_year",
                "must be at least 1",
            ));
        }
        if p.levels.l0.mode != ModeCeiling::Halted {
            return Err(bad(
                "permission.levels.l0.mode",
                "L0 is halted by definition",
            ));
        }
        for level in PermissionLevel::ALL {
            let pol = p.levels.get(level);
            at_most_one(
                &format!("permission.levels.{}.max_trade_bps_of_equity", level.key()),
                pol.max_trade_bps_of_equity.into(),
            )?;
        }
        for level in PermissionLevel::ALL {
            if let Some(r) = p.promotion_from(level) {
                let name = format!("permission.promotion.{}_to_{}", level.key(), level.key_up());
                if let Some(w) = r.min_win_rate_bps {
                    at_most_one(&format!("{name}.min_win_rate_bps"), w.into())?;
                    if r.min_trades == 0 {
                        return Err(bad(
                            format!("{name}.min_trades"),
                            "a win-rate condition needs at least one decided trade",
                        ));
                    }
                }
                if let Some(s) = r.min_sharpe
                    && !s.is_finite()
                {
                    return Err(bad(format!("{name}.min_sharpe"), "must be a finite number"));
                }
            }
            if let Some(r) = p.demotion_from(level) {
                let name = format!("permission.demotion.{}", level.key());
                if let Some(w) = r.below_win_rate_bps {
                    at_most_one(&format!("{name}.below_win_rate_bps"), w.into())?;
                }
                if r.losing_trade_streak == Some(0) {
                    return Err(bad(
                        format!("{name}.losing_trade_streak"),
                        "must be at least 1",
                    ));
                }
            }
        }
        Ok(())
    }
}
