//! The engine's side of the risk gates: the state the pure `stratbox-risk` checks need
//! (kill switch, oracle quotes, permission trackers, each book's capital) and the mapping
//! from a proposal to their inputs.
//!
//! Order (first failure wins, each with its stable reason code): kill switch, Sync
//! Sentinel, triple oracle, permission level (and its per-level trade size), hard limits.
//!
//! Valuation: a pool's token1 is the quote unit. A trade's notional is its size in token1
//! at the pool's spot price (token0 amounts) or at par (token1 amounts); liquidity is
//! valued at its expected amounts. Anything that overflows 256 bits saturates, which the
//! size limits then refuse.
//!
//! Known simplification: every shadow book is judged as a fresh book holding
//! `book_capital` in cash (equity = peak = day start = cash, no exposure). The limits are
//! therefore per-trade sizes (notional share, leverage, cash reserve, concentration);
//! feeding each book's booked positions and PnL back into `AccountRisk` is left for the
//! live-trading issue.

use std::collections::HashMap;

use ruint::aliases::U512;
use stratbox_proto::U256;
use stratbox_risk::limits::{AccountRisk, AssetExposure, Leg, PostTrade, TradeEffect, TradeRisk};
use stratbox_risk::{
    ExecutionMode, GateInput, KillSwitch, OracleGuard, PermissionLevel, PermissionTracker,
    Rejection, RiskConfig, evaluate,
};

use crate::engine::market_key;
use crate::proposal::{CheckedProposal, TradeAction, hex_address};
use crate::simulation::PoolInfo;
use crate::store::KillSwitchRow;

/// What the gates are judged against, besides the proposal.
#[derive(Debug, Clone, Copy)]
pub struct GateContext<'a> {
    /// The engine's watermark: the Sync Sentinel's and the oracle's reference block.
    pub watermark: u64,
    /// The simulated chain's block (for logs; the watermark is what gates use).
    pub block: u64,
    pub now_ms: i64,
    pub requested: ExecutionMode,
    pub pool: Option<&'a PoolInfo>,
}

pub struct RiskBook {
    cfg: RiskConfig,
    kill: KillSwitch,
    oracle: OracleGuard<String>,
    permissions: HashMap<String, PermissionTracker>,
    capital: U256,
}

/// 1e18, the oracle's fixed point.
fn e18() -> U256 {
    U256::from(1_000_000_000_000_000_000u64)
}

fn saturate(v: U512) -> U256 {
    <U256 as ruint::UintTryFrom<U512>>::uint_try_from(v).unwrap_or(U256::MAX)
}

/// token0 amount in token1 units at the pool's spot price.
pub fn token0_in_token1(amount0: U256, sqrt_price_x96: U256) -> U256 {
    let p = U512::from(sqrt_price_x96);
    saturate((((U512::from(amount0) * p) >> 96) * p) >> 96)
}

/// The pool's spot price, token1 per token0 with 18 decimals (the oracle's form).
pub fn spot_price_e18(sqrt_price_x96: U256) -> U256 {
    token0_in_token1(e18(), sqrt_price_x96)
}

impl RiskBook {
    /// `book_capital`: the cash each shadow book is judged to hold, in raw quote units.
    pub fn new(cfg: RiskConfig, book_capital: U256) -> RiskBook {
        RiskBook {
            cfg,
            kill: KillSwitch::default(),
            oracle: OracleGuard::new(),
            permissions: HashMap::new(),
            capital: book_capital,
        }
    }

    pub fn config(&self) -> &RiskConfig {
        &self.cfg
    }

    pub fn kill_switch(&self) -> KillSwitchRow {
        KillSwitchRow {
            engaged: self.kill.engaged,
            reason: self.kill.reason.clone(),
            operator: self.kill.operator.clone(),
            changed_at_ms: self.kill.changed_at_ms,
        }
    }

    /// Sets the switch to a stored (or just decided) state.
    pub fn restore_kill_switch(&mut self, k: &KillSwitchRow) {
        self.kill = KillSwitch {
            engaged: k.engaged,
            reason: k.reason.clone(),
            operator: k.operator.clone(),
            changed_at_ms: k.changed_at_ms,
        };
    }

    /// Records a quote; a refused one (zero price, out of order) is logged and dropped.
    pub fn update_oracle(&mut self, market: &str, source: &str, price_e18: U256, block: u64) {
        if let Err(e) = self.oracle.update(market, source, price_e18, block) {
            tracing::warn!(market, source, error = %e, "oracle quote refused");
        }
    }

    pub fn level(&self, strategy: &str) -> PermissionLevel {
        self.permissions
            .get(strategy)
            .map(PermissionTracker::level)
            .unwrap_or(self.cfg.permission.initial_level)
    }

    /// Sets a strategy's permission level (operators, and tests).
    pub fn set_level(&mut self, strategy: &str, level: PermissionLevel) {
        self.permissions
            .insert(strategy.to_owned(), PermissionTracker::at_level(level));
    }

    /// Runs the gates for one proposal; the mode the trade may run in, or why not.
    pub fn evaluate(
        &mut self,
        p: &CheckedProposal,
        ctx: &GateContext<'_>,
    ) -> Result<ExecutionMode, Rejection> {
        let level = self.level(&p.strategy);
        let (market, notional, lp) = match ctx.pool {
            Some(info) => {
                let market = market_key(&info.token0, &info.token1);
                let notional = match p.action {
                    TradeAction::Swap {
                        zero_for_one,
                        amount_in,
                        ..
                    } => {
                        if zero_for_one {
                            token0_in_token1(amount_in, info.sqrt_price_x96)
                        } else {
                            amount_in
                        }
                    }
                    TradeAction::AddLiquidity(_) | TradeAction::RemoveLiquidity(_) => {
                        token0_in_token1(p.expected_amount0, info.sqrt_price_x96)
                            .saturating_add(p.expected_amount1)
                    }
                };
                (
                    market,
                    notional,
                    format!("lp:{}", hex_address(&p.action.pool())),
                )
            }
            // An unknown pool has no market; the oracle gate refuses it.
            None => (
                format!("unknown-pool:{}", hex_address(&p.action.pool())),
                U256::ZERO,
                String::new(),
            ),
        };
        let token0 = ctx.pool.map(|i| hex_address(&i.token0)).unwrap_or_default();
        let effect = match p.action {
            TradeAction::Swap {
                zero_for_one: true, ..
            } => TradeEffect::Swap {
                sell: Leg::Asset(&token0),
                buy: Leg::Cash,
            },
            TradeAction::Swap {
                zero_for_one: false,
                ..
            } => TradeEffect::Swap {
                sell: Leg::Cash,
                buy: Leg::Asset(&token0),
            },
            TradeAction::AddLiquidity(_) => TradeEffect::Projected(PostTrade {
                equity: self.capital,
                cash: self.capital.saturating_sub(notional),
                gross_exposure: notional,
                increased: Some(AssetExposure {
                    asset: &lp,
                    value: notional,
                }),
            }),
            TradeAction::RemoveLiquidity(_) => TradeEffect::Projected(PostTrade {
                equity: self.capital,
                cash: self.capital,
                gross_exposure: U256::ZERO,
                increased: None,
            }),
        };
        let account = AccountRisk {
            equity: self.capital,
            peak_equity: self.capital,
            day_start_equity: self.capital,
            cash: self.capital,
            gross_exposure: U256::ZERO,
            exposures: &[],
        };
        let trade = TradeRisk {
            notional,
            slippage_bps: p.max_slippage_bps,
            effect,
        };
        let input = GateInput {
            strategy: &p.strategy,
            kill_switch: &self.kill,
            engine_block: ctx.watermark,
            proposal_block: p.last_sync_block,
            market: market.as_str(),
            level,
            requested_mode: ctx.requested,
            account: &account,
            trade: &trade,
        };
        evaluate(&self.cfg, &mut self.oracle, &input).map(|c| c.mode)
    }
}

/// Why a risk configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RiskConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path} as TOML: {source}")]
    Toml {
        path: String,
        source: toml::de::Error,
    },
    #[error("parsing {path} as JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Invalid(#[from] stratbox_risk::ConfigError),
}

/// Loads thresholds from a TOML or JSON file (by extension; `.json` is JSON, anything else
/// TOML). Absent fields keep `stratbox-risk`'s defaults; unknown fields are refused.
pub fn load_risk_config(path: &std::path::Path) -> Result<RiskConfig, RiskConfigError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RiskConfigError::Read {
        path: p.clone(),
        source,
    })?;
    let cfg: RiskConfig = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        serde_json::from_str(&text).map_err(|source| RiskConfigError::Json { path: p, source })?
    } else {
        toml::from_str(&text).map_err(|source| RiskConfigError::Toml { path: p, source })?
    };
    cfg.validate()?;
    Ok(cfg)
}
