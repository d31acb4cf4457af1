//! Permission levels: how much a strategy may do, earned from its own track record.
//!
//! A strategy starts at [`PermissionConfig::initial_level`] (L1 by default) and moves one
//! level at a time:
//!
//! - **Promotion** is judged once a day, in [`PermissionTracker::record_day`], against the
//!   [`PromotionRule`] out of the current level. Every figure is measured *since the strategy
//!   entered its current level*: "L1 -> L2 after 7 days at 50% win rate" means at least 7
//!   recorded days at L1 and a trade win rate of at least 50% over the trades decided at L1.
//!   Stats reset on every level change, so each level is earned afresh.
//! - **Demotion** is judged on every trade outcome ([`PermissionTracker::record_trade`]) and
//!   again at each day's end, against the [`DemotionRule`] of the current level: the win rate
//!   at the level falling strictly below its floor (once `min_trades` trades are decided), or
//!   a run of losing trades. A demotion also resets the stats.
//! - **A hard-limit breach** ([`PermissionTracker::on_hard_limit_breach`]) drops any level to
//!   L0 at once. L0 does not trade and never promotes itself: only
//!   [`PermissionTracker::restore`], naming a human operator, leaves it.
//!
//! Definitions (edge cases):
//! - Win rate = won / (won + lost) over trades at the level. Flat trades count in neither and
//!   neither extend nor break a losing streak. With no decided trade there is no win rate,
//!   so a win-rate promotion cannot fire (`min_trades >= 1` is enforced by validation).
//! - A winning day has a strictly positive PnL; a flat day breaks a winning-day streak.
//!   Days must be recorded in strictly increasing order; a gap in day numbers (a day the
//!   engine did not record because the strategy was inactive) neither counts nor breaks a
//!   streak.
//! - Sharpe = mean / sample standard deviation of the daily returns at the level, times
//!   sqrt(`sharpe_periods_per_year`), risk-free rate zero. It needs at least two days and a
//!   non-zero spread; otherwise there is no Sharpe and a Sharpe promotion cannot fire.
//!   This is the one place floats are used: a statistic that gates a promotion and never
//!   becomes an amount.
//! - At most one level change per call. A day that both breaks a demotion rule and meets a
//!   promotion rule demotes.
//!
//! Time is passed in (day numbers, milliseconds); nothing here reads a clock.

use std::cmp::Ordering;

use ruint::aliases::{U256, U512};
use serde::{Deserialize, Serialize};

use crate::config::PermissionConfig;
use crate::reason::{ReasonCode, Rejection};

pub use crate::level::{ExecutionMode, ModeCeiling, PermissionLevel};

/// How a trade ended, as the engine books it (virtual PnL in shadow mode counts too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TradeOutcome {
    /// Ended with positive PnL.
    Won,
    /// Ended with negative PnL.
    Lost,
    /// Ended with zero PnL.
    Flat,
}

/// The sign of a day's PnL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayOutcome {
    /// Positive PnL for the day.
    Win,
    /// Negative PnL for the day.
    Loss,
    /// Zero PnL for the day.
    Flat,
}

/// One day of a strategy's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayResult {
    /// Day number, strictly increasing (e.g. days since the Unix epoch, UTC).
    pub day: u32,
    /// The day's PnL sign, decided exactly from the amounts.
    pub outcome: DayOutcome,
    /// The day's return in parts per billion of the day's starting equity, for the Sharpe
    /// ratio. Saturates at the `i64` range.
    pub return_ppb: i64,
}

impl DayResult {
    /// Build a day from exact amounts: `pnl` as a magnitude with a sign, over the equity at
    /// the day's start. A zero starting equity gives a zero return (there was nothing to
    /// return on) but keeps the PnL's sign.
    pub fn from_pnl(day: u32, pnl: U256, negative: bool, start_equity: U256) -> DayResult {
        let outcome = if pnl.is_zero() {
            DayOutcome::Flat
        } else if negative {
            DayOutcome::Loss
        } else {
            DayOutcome::Win
        };
        let magnitude: u64 = if start_equity.is_zero() {
            0
        } else {
            let wide: U512 = pnl.widening_mul(U256::from(1_000_000_000u64));
            wide.checked_div(U512::from(start_equity))
                .map_or(u64::MAX, |q| q.saturating_to::<u64>())
        };
        let m = i64::try_from(magnitude).unwrap_or(i64::MAX);
        let return_ppb = if negative { m.saturating_neg() } else { m };
        DayResult {
            day,
            outcome,
            return_ppb,
        }
    }
}

/// What the strategy has done since it entered its current level.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LevelStats {
    /// Trading days recorded at this level.
    pub days: u32,
    /// Trades booked as [`TradeOutcome::Won`] at this level.
    pub trades_won: u64,
    /// Trades booked as [`TradeOutcome::Lost`] at this level.
    pub trades_lost: u64,
    /// Trades booked as [`TradeOutcome::Flat`] at this level.
    pub trades_flat: u64,
    /// Consecutive losing trades; a win resets it, a flat trade leaves it unchanged.
    pub losing_trade_streak: u32,
    /// Consecutive winning days up to now.
    pub winning_day_streak: u32,
    /// Welford running mean and sum of squared deviations of daily returns (ppb).
    pub return_mean: f64,
    /// Welford sum of squared deviations of daily returns (ppb^2); variance is `m2 / (days - 1)`.
    pub return_m2: f64,
}

impl LevelStats {
    /// Won plus lost trades (flat ones excluded), saturating.
    pub fn decided_trades(&self) -> u64 {
        self.trades_won.saturating_add(self.trades_lost)
    }

    /// Win rate in bps, rounded down; `None` with no decided trade. For display: decisions
    /// compare exactly with [`LevelStats::cmp_win_rate`].
    pub fn win_rate_bps(&self) -> Option<u64> {
        let n = self.decided_trades();
        if n == 0 {
            return None;
        }
        Some(crate::ratio::ratio_bps(
            U256::from(self.trades_won),
            U256::from(n),
        ))
    }

    /// Compare the win rate with `bps` exactly; `None` with no decided trade.
    pub fn cmp_win_rate(&self, bps: u32) -> Option<Ordering> {
        let n = self.decided_trades();
        if n == 0 {
            return None;
        }
        Some(crate::ratio::cmp_ratio_bps(
            U256::from(self.trades_won),
            U256::from(n),
            bps.into(),
        ))
    }

    /// Annualised Sharpe ratio of daily returns at this level (see the module docs).
    pub fn sharpe(&self, periods_per_year: u32) -> Option<f64> {
        if self.days < 2 {
            return None;
        }
        let var = self.return_m2 / f64::from(self.days.saturating_sub(1));
        let sd = var.sqrt();
        if !(sd.is_finite() && sd > 0.0) {
            return None;
        }
        let s = self.return_mean / sd * f64::from(periods_per_year).sqrt();
        s.is_finite().then_some(s)
    }

    fn push_return(&mut self, ppb: i64) {
        // `days` was already incremented for this day.
        let x = ppb as f64;
        let n = f64::from(self.days);
        let delta = x - self.return_mean;
        self.return_mean += delta / n;
        self.return_m2 += delta * (x - self.return_mean);
    }
}

/// Why a level changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionCause {
    /// Met the promotion rule out of the previous level.
    Promotion,
    /// Win rate at the level fell below the level's floor.
    WinRateDemotion,
    /// Too many losing trades in a row.
    LosingStreakDemotion,
    /// A hard limit was breached; the strategy is halted until a human restores it.
    HardLimitBreach {
        /// The breached limit's code.
        code: ReasonCode,
    },
    /// A human restored a halted strategy.
    HumanRestore {
        /// Who restored it.
        operator: String,
    },
}

impl TransitionCause {
    /// The snake_case name, the same as the serde tag.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransitionCause::Promotion => "promotion",
            TransitionCause::WinRateDemotion => "win_rate_demotion",
            TransitionCause::LosingStreakDemotion => "losing_streak_demotion",
            TransitionCause::HardLimitBreach { .. } => "hard_limit_breach",
            TransitionCause::HumanRestore { .. } => "human_restore",
        }
    }
}

/// A level change, for the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Level before the change.
    pub from: PermissionLevel,
    /// Level after the change.
    pub to: PermissionLevel,
    /// What triggered the change.
    pub cause: TransitionCause,
    /// The stats at the old level when it changed.
    pub stats: LevelStats,
}

/// Why a tracker call was refused. The tracker's state is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("day {day} is not after the last recorded day {last}")]
    /// A day was recorded that is not after the last one (days must strictly increase).
    DayOutOfOrder {
        /// The day given.
        day: u32,
        /// The last day already recorded.
        last: u32,
    },
    #[error("only a halted (L0) strategy can be restored; it is at {0}")]
    /// A restore was asked for a strategy that is not at L0; carries its current level.
    NotHalted(PermissionLevel),
    #[error("cannot restore to {requested}: allowed L1..={max}")]
    /// The restore target is L0 or above the allowed maximum.
    RestoreLevel {
        /// The level asked for.
        requested: PermissionLevel,
        /// The highest level a restore may grant.
        max: PermissionLevel,
    },
    /// The restore named no operator.
    #[error("a restore must name the human operator")]
    NoOperator,
}

/// The last hard-limit breach, kept until a human restores the strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    /// The breached limit's code (one where [`ReasonCode::is_hard_limit`] holds).
    pub code: ReasonCode,
    /// When it was recorded, Unix ms.
    pub at_ms: i64,
}

/// A strategy's permission level and the record that moves it. A value type: the engine
/// stores it (it is serde-serialisable) and feeds it outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionTracker {
    level: PermissionLevel,
    stats: LevelStats,
    last_day: Option<u32>,
    breach: Option<Breach>,
    restored_by: Option<String>,
    restored_at_ms: Option<i64>,
}

impl PermissionTracker {
    /// A new strategy at the configured initial level.
    pub fn new(cfg: &PermissionConfig) -> Self {
        Self::at_level(cfg.initial_level)
    }

    /// A tracker at a given level with an empty record (e.g. migrating existing strategies).
    pub fn at_level(level: PermissionLevel) -> Self {
        PermissionTracker {
            level,
            stats: LevelStats::default(),
            last_day: None,
            breach: None,
            restored_by: None,
            restored_at_ms: None,
        }
    }

    /// The strategy's current level.
    pub fn level(&self) -> PermissionLevel {
        self.level
    }

    /// True at L0: no automatic rule will ever move the strategy; a human must restore it.
    pub fn requires_human(&self) -> bool {
        self.level == PermissionLevel::L0
    }

    /// Counters since the strategy entered its current level.
    pub fn stats(&self) -> &LevelStats {
        &self.stats
    }

    /// The last day recorded; `None` before the first. A new day must be greater.
    pub fn last_day(&self) -> Option<u32> {
        self.last_day
    }

    /// The breach that halted the strategy, while it is halted.
    pub fn breach(&self) -> Option<Breach> {
        self.breach
    }

    /// Who last restored the strategy, and when.
    pub fn restored_by(&self) -> Option<(&str, i64)> {
        match (&self.restored_by, self.restored_at_ms) {
            (Some(op), Some(at)) => Some((op.as_str(), at)),
            _ => None,
        }
    }

    fn change(&mut self, to: PermissionLevel, cause: TransitionCause) -> Transition {
        let t = Transition {
            from: self.level,
            to,
            cause,
            stats: self.stats,
        };
        self.level = to;
        self.stats = LevelStats::default();
        t
    }

    /// Book one trade outcome at the current level and apply the level's demotion rule.
    /// Ignored at L0 (a halted strategy has no record to build).
    pub fn record_trade(
        &mut self,
        cfg: &PermissionConfig,
        outcome: TradeOutcome,
    ) -> Option<Transition> {
        if self.level == PermissionLevel::L0 {
            return None;
        }
        let s = &mut self.stats;
        match outcome {
            TradeOutcome::Won => {
                s.trades_won = s.trades_won.saturating_add(1);
                s.losing_trade_streak = 0;
            }
            TradeOutcome::Lost => {
                s.trades_lost = s.trades_lost.saturating_add(1);
                s.losing_trade_streak = s.losing_trade_streak.saturating_add(1);
            }
            TradeOutcome::Flat => {
                s.trades_flat = s.trades_flat.saturating_add(1);
            }
        }
        self.apply_demotion(cfg)
    }

    /// Book one day at the current level, then apply the demotion rule and, failing that,
    /// the promotion rule. Days must arrive in strictly increasing order.
    pub fn record_day(
        &mut self,
        cfg: &PermissionConfig,
        day: DayResult,
    ) -> Result<Option<Transition>, PermissionError> {
        if let Some(last) = self.last_day
            && day.day <= last
        {
            return Err(PermissionError::DayOutOfOrder { day: day.day, last });
        }
        self.last_day = Some(day.day);
        if self.level == PermissionLevel::L0 {
            return Ok(None);
        }
        let s = &mut self.stats;
        s.days = s.days.saturating_add(1);
        s.winning_day_streak = match day.outcome {
            DayOutcome::Win => s.winning_day_streak.saturating_add(1),
            DayOutcome::Loss | DayOutcome::Flat => 0,
        };
        s.push_return(day.return_ppb);
        if let Some(t) = self.apply_demotion(cfg) {
            return Ok(Some(t));
        }
        Ok(self.apply_promotion(cfg))
    }

    fn apply_demotion(&mut self, cfg: &PermissionConfig) -> Option<Transition> {
        let rule = cfg.demotion_from(self.level)?;
        let to = self.level.down()?;
        if let Some(n) = rule.losing_trade_streak
            && self.stats.losing_trade_streak >= n
        {
            return Some(self.change(to, TransitionCause::LosingStreakDemotion));
        }
        if let Some(floor) = rule.below_win_rate_bps {
            let enough = self.stats.decided_trades() >= u64::from(rule.min_trades);
            if enough && self.stats.cmp_win_rate(floor) == Some(Ordering::Less) {
                return Some(self.change(to, TransitionCause::WinRateDemotion));
            }
        }
        None
    }

    /// Whether the current record meets the promotion rule out of the current level.
    pub fn promotion_due(&self, cfg: &PermissionConfig) -> bool {
        let Some(rule) = cfg.promotion_from(self.level) else {
            return false;
        };
        let s = &self.stats;
        if s.days < rule.min_days
            || s.decided_trades() < u64::from(rule.min_trades)
            || s.winning_day_streak < rule.min_winning_day_streak
        {
            return false;
        }
        if let Some(w) = rule.min_win_rate_bps {
            match s.cmp_win_rate(w) {
                Some(Ordering::Greater | Ordering::Equal) => {}
                _ => return false,
            }
        }
        if let Some(min) = rule.min_sharpe {
            match s.sharpe(cfg.sharpe_periods_per_year) {
                Some(v) if v >= min => {}
                _ => return false,
            }
        }
        true
    }

    fn apply_promotion(&mut self, cfg: &PermissionConfig) -> Option<Transition> {
        if !self.promotion_due(cfg) {
            return None;
        }
        let to = self.level.up()?;
        Some(self.change(to, TransitionCause::Promotion))
    }

    /// A hard limit was breached: drop to L0 until a human restores the strategy. Returns
    /// `None` if already at L0 (the latest breach is still recorded).
    pub fn on_hard_limit_breach(&mut self, code: ReasonCode, at_ms: i64) -> Option<Transition> {
        self.breach = Some(Breach { code, at_ms });
        if self.level == PermissionLevel::L0 {
            return None;
        }
        Some(self.change(
            PermissionLevel::L0,
            TransitionCause::HardLimitBreach { code },
        ))
    }

    /// A human restores a halted strategy to `level` (at most
    /// [`PermissionConfig::max_restore_level`], L1 by default). The record starts afresh.
    pub fn restore(
        &mut self,
        cfg: &PermissionConfig,
        level: PermissionLevel,
        operator: &str,
        at_ms: i64,
    ) -> Result<Transition, PermissionError> {
        if self.level != PermissionLevel::L0 {
            return Err(PermissionError::NotHalted(self.level));
        }
        if level == PermissionLevel::L0 || level > cfg.max_restore_level {
            return Err(PermissionError::RestoreLevel {
                requested: level,
                max: cfg.max_restore_level,
            });
        }
        let operator = operator.trim();
        if operator.is_empty() {
            return Err(PermissionError::NoOperator);
        }
        self.breach = None;
        self.restored_by = Some(operator.to_owned());
        self.restored_at_ms = Some(at_ms);
        Ok(self.change(
            level,
            TransitionCause::HumanRestore {
                operator: operator.to_owned(),
            },
        ))
    }

    /// The permission gate for a trade at this tracker's level; see [`check_level`].
    pub fn check(
        &self,
        cfg: &PermissionConfig,
        requested: ExecutionMode,
    ) -> Result<ExecutionMode, Rejection> {
        check_level(cfg, self.level, requested)
    }
}

/// The permission gate: the mode a trade at `level` runs in when the engine asks for
/// `requested`, or `permission_level` if the level may not trade.
pub fn check_level(
    cfg: &PermissionConfig,
    level: PermissionLevel,
    requested: ExecutionMode,
) -> Result<ExecutionMode, Rejection> {
    cfg.levels.get(level).mode.cap(requested).ok_or_else(|| {
        Rejection::new(
            ReasonCode::PermissionLevel,
            format!("strategy is at {level}, which may not trade"),
        )
    })
}
