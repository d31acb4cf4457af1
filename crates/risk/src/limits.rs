//! Hard limits on an account, judged on the account as it would be after the trade.
//!
//! All amounts are in raw units of one quote asset. The projection is deliberately
//! pessimistic: the trade costs its full accepted slippage (`notional * slippage_bps`,
//! rounded up) off equity, and the exposure it adds counts at the full notional.
//!
//! | code                 | metric (post-trade)                 | passes when          |
//! |----------------------|-------------------------------------|----------------------|
//! | `limit_slippage`     | accepted slippage                   | <= max               |
//! | `limit_drawdown`     | (peak - equity) / peak              | < max (strictly)     |
//! | `limit_daily_loss`   | (day start - equity) / day start    | < max (strictly)     |
//! | `limit_leverage`     | gross exposure / equity             | <= max               |
//! | `limit_cash_reserve` | cash / equity                       | >= min               |
//! | `limit_exposure`     | exposure to the bought asset / equity | <= max             |
//!
//! The peak used is the larger of the recorded peak and the current equity (a peak that
//! lags a new high is stale, not a drawdown). A zero peak or zero day-start equity means
//! no drawdown or daily loss can be measured and those two limits pass. An account with
//! neither equity nor a peak has never been funded and any trade on it is `bad_input`; one
//! whose equity fell to zero from a peak is at a 100% drawdown.
//!
//! With `allow_risk_reducing`, a trade that leaves leverage, cash reserve or exposure over
//! its limit but strictly better than before is allowed, so a breached account can always
//! trade its way back. Drawdown and daily loss have no such exemption: a trade can only
//! worsen them (by its slippage), and reaching them is a breach ([`account_breach`]).
//!
//! Only the asset a trade buys is checked for concentration: every other asset's exposure
//! is unchanged or smaller, and refusing an unrelated trade because some other position
//! drifted over 30% on price moves would block nothing but the trade.

use std::cmp::Ordering;

use ruint::aliases::{U256, U512};

use crate::config::{EffectiveLimits, LevelPolicy};
use crate::ratio::{apply_bps_ceil, apply_bps_floor, cmp_ratio_bps, ratio_bps};
use crate::reason::{ReasonCode, Rejection};

/// Exposure to one asset, valued in the quote unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssetExposure<'a> {
    /// The asset's identifier, matched exactly against a trade's `buy` leg.
    pub asset: &'a str,
    /// Its value, raw units of the quote asset.
    pub value: U256,
}

/// A snapshot of an account (or a strategy's book) before the trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRisk<'a> {
    /// Current equity, raw quote units.
    pub equity: U256,
    /// Highest recorded equity, raw quote units; zero means no drawdown can be measured.
    pub peak_equity: U256,
    /// Equity at the start of the current trading day.
    pub day_start_equity: U256,
    /// Quote-asset balance, raw units.
    pub cash: U256,
    /// Sum of the absolute exposures of all non-cash positions.
    pub gross_exposure: U256,
    /// Per-asset exposure; an asset not listed counts as zero.
    pub exposures: &'a [AssetExposure<'a>],
}

impl AccountRisk<'_> {
    /// Exposure to `asset` in raw quote units; zero if not listed.
    pub fn exposure_to(&self, asset: &str) -> U256 {
        self.exposures
            .iter()
            .find(|e| e.asset == asset)
            .map_or(U256::ZERO, |e| e.value)
    }
}

/// One side of a swap: the quote asset (cash) or another asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg<'a> {
    /// The quote asset.
    Cash,
    /// A non-cash asset, by identifier.
    Asset(&'a str),
}

/// What the trade does to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeEffect<'a> {
    /// Give `sell` for `buy`, both worth the trade's notional; the crate projects the result.
    Swap {
        /// What is given up.
        sell: Leg<'a>,
        /// What is received; a non-cash `buy` is checked for concentration.
        buy: Leg<'a>,
    },
    /// The engine's own projection (e.g. for liquidity positions).
    Projected(PostTrade<'a>),
}

/// The account after the trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostTrade<'a> {
    /// Projected equity, raw quote units.
    pub equity: U256,
    /// Projected quote-asset balance, raw units.
    pub cash: U256,
    /// Projected gross exposure, raw quote units.
    pub gross_exposure: U256,
    /// The asset whose exposure the trade increases, with its exposure after the trade.
    pub increased: Option<AssetExposure<'a>>,
}

/// A proposed trade, valued in the quote unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeRisk<'a> {
    /// Trade size in raw quote units; zero is `bad_input`.
    pub notional: U256,
    /// The most slippage the proposal accepts (the proto's `max_slippage_bps`).
    pub slippage_bps: u32,
    /// How the trade changes the account.
    pub effect: TradeEffect<'a>,
}

fn reject(code: ReasonCode, detail: String) -> Rejection {
    Rejection::new(code, detail)
}

/// Project the account after `trade` (see the module docs for the pessimism). Cash spent
/// beyond the balance saturates to zero; [`check_trade`] refuses such a trade.
pub fn project<'a>(
    account: &AccountRisk<'a>,
    trade: &TradeRisk<'a>,
) -> Result<PostTrade<'a>, Rejection> {
    let (sell, buy) = match trade.effect {
        TradeEffect::Projected(p) => return Ok(p),
        TradeEffect::Swap { sell, buy } => (sell, buy),
    };
    if sell == buy {
        return Err(reject(
            ReasonCode::BadInput,
            "a swap must sell and buy different assets".into(),
        ));
    }
    let n = trade.notional;
    let cost = apply_bps_ceil(n, trade.slippage_bps.into());
    let equity = account.equity.saturating_sub(cost);
    let mut cash = account.cash;
    let mut gross = account.gross_exposure;
    let mut increased = None;
    match sell {
        // Spending more cash than the account holds saturates to zero here;
        // `check_trade` refuses it at the cash-reserve gate, in its place in the order.
        Leg::Cash => cash = cash.saturating_sub(n),
        Leg::Asset(_) => gross = gross.saturating_sub(n),
    }
    match buy {
        Leg::Cash => cash = cash.saturating_add(n.saturating_sub(cost)),
        Leg::Asset(a) => {
            gross = gross.saturating_add(n);
            increased = Some(AssetExposure {
                asset: a,
                value: account.exposure_to(a).saturating_add(n),
            });
        }
    }
    Ok(PostTrade {
        equity,
        cash,
        gross_exposure: gross,
        increased,
    })
}

/// `a/b` against `c/d`, exactly; a zero denominator is an infinite ratio (0/0 is zero).
fn cmp_ratios(a: U256, b: U256, c: U256, d: U256) -> Ordering {
    match (b.is_zero(), d.is_zero()) {
        (true, true) => (!a.is_zero()).cmp(&!c.is_zero()),
        (true, false) => {
            if a.is_zero() {
                U256::ZERO.cmp(&c)
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if c.is_zero() {
                a.cmp(&U256::ZERO)
            } else {
                Ordering::Less
            }
        }
        (false, false) => {
            let l: U512 = a.widening_mul(d);
            let r: U512 = c.widening_mul(b);
            l.cmp(&r)
        }
    }
}

/// The per-level trade size (`limit_notional`): at most `max_trade_bps_of_equity` of the
/// pre-trade equity (rounded down) and at most `max_notional` if set. A zero notional is
/// `bad_input`.
pub fn check_notional(
    policy: &LevelPolicy,
    account: &AccountRisk<'_>,
    trade: &TradeRisk<'_>,
) -> Result<(), Rejection> {
    if trade.notional.is_zero() {
        return Err(reject(
            ReasonCode::BadInput,
            "trade notional is zero".into(),
        ));
    }
    let cap = apply_bps_floor(account.equity, policy.max_trade_bps_of_equity.into());
    if trade.notional > cap {
        return Err(reject(
            ReasonCode::LimitNotional,
            format!(
                "notional {} is over {} bps of equity ({cap})",
                trade.notional, policy.max_trade_bps_of_equity
            ),
        ));
    }
    if let Some(max) = policy.max_notional
        && trade.notional > max
    {
        return Err(reject(
            ReasonCode::LimitNotional,
            format!("notional {} is over the level's cap {max}", trade.notional),
        ));
    }
    Ok(())
}

/// The hard-limit gates, in order: slippage, drawdown, daily loss, leverage, cash reserve,
/// exposure. Returns the first failure.
pub fn check_trade(
    limits: &EffectiveLimits,
    account: &AccountRisk<'_>,
    trade: &TradeRisk<'_>,
) -> Result<(), Rejection> {
    if u64::from(trade.slippage_bps) > crate::ratio::BPS_ONE {
        return Err(reject(
            ReasonCode::BadInput,
            format!("slippage {} bps is more than 100%", trade.slippage_bps),
        ));
    }
    if account.equity.is_zero() && account.peak_equity.is_zero() {
        return Err(reject(
            ReasonCode::BadInput,
            "account has never had equity".into(),
        ));
    }
    if trade.slippage_bps > limits.max_slippage_bps {
        return Err(reject(
            ReasonCode::LimitSlippage,
            format!(
                "accepts {} bps slippage, max {}",
                trade.slippage_bps, limits.max_slippage_bps
            ),
        ));
    }
    let post = project(account, trade)?;
    check_drawdown(limits, account, post.equity)?;
    check_daily_loss(limits, account, post.equity)?;

    let reducing = limits.allow_risk_reducing;
    // Leverage: gross / equity <= max.
    if cmp_ratio_bps(post.gross_exposure, post.equity, limits.max_leverage_bps).is_gt() {
        let better = cmp_ratios(
            post.gross_exposure,
            post.equity,
            account.gross_exposure,
            account.equity,
        )
        .is_lt();
        if !(reducing && better) {
            return Err(reject(
                ReasonCode::LimitLeverage,
                format!(
                    "leverage would be {} bps of equity, max {}",
                    ratio_bps(post.gross_exposure, post.equity),
                    limits.max_leverage_bps
                ),
            ));
        }
    }
    // Cash reserve: the trade must be payable, then cash / equity >= min.
    if let TradeEffect::Swap {
        sell: Leg::Cash, ..
    } = trade.effect
        && trade.notional > account.cash
    {
        return Err(reject(
            ReasonCode::LimitCashReserve,
            format!(
                "trade spends {} cash, account holds {}",
                trade.notional, account.cash
            ),
        ));
    }
    if cmp_ratio_bps(post.cash, post.equity, limits.min_cash_reserve_bps.into()).is_lt() {
        let better = !post.equity.is_zero()
            && cmp_ratios(post.cash, post.equity, account.cash, account.equity).is_gt();
        if !(reducing && better) {
            return Err(reject(
                ReasonCode::LimitCashReserve,
                format!(
                    "cash reserve would be {} bps of equity, min {}",
                    ratio_bps(post.cash, post.equity),
                    limits.min_cash_reserve_bps
                ),
            ));
        }
    }
    // Single-asset exposure: exposure / equity <= max.
    if let Some(inc) = post.increased
        && cmp_ratio_bps(inc.value, post.equity, limits.max_asset_exposure_bps.into()).is_gt()
    {
        let before = account.exposure_to(inc.asset);
        let better = cmp_ratios(inc.value, post.equity, before, account.equity).is_lt();
        if !(reducing && better) {
            return Err(reject(
                ReasonCode::LimitExposure,
                format!(
                    "exposure to {} would be {} bps of equity, max {}",
                    inc.asset,
                    ratio_bps(inc.value, post.equity),
                    limits.max_asset_exposure_bps
                ),
            ));
        }
    }
    Ok(())
}

fn check_drawdown(
    limits: &EffectiveLimits,
    account: &AccountRisk<'_>,
    equity: U256,
) -> Result<(), Rejection> {
    let peak = account.peak_equity.max(account.equity);
    let dd = peak.saturating_sub(equity);
    if !peak.is_zero() && cmp_ratio_bps(dd, peak, limits.max_drawdown_bps.into()).is_ge() {
        return Err(reject(
            ReasonCode::LimitDrawdown,
            format!(
                "drawdown would be {} bps from peak {peak}, must stay under {}",
                ratio_bps(dd, peak),
                limits.max_drawdown_bps
            ),
        ));
    }
    Ok(())
}

fn check_daily_loss(
    limits: &EffectiveLimits,
    account: &AccountRisk<'_>,
    equity: U256,
) -> Result<(), Rejection> {
    let start = account.day_start_equity;
    let loss = start.saturating_sub(equity);
    if !start.is_zero() && cmp_ratio_bps(loss, start, limits.max_daily_loss_bps.into()).is_ge() {
        return Err(reject(
            ReasonCode::LimitDailyLoss,
            format!(
                "daily loss would be {} bps of the day's start {start}, must stay under {}",
                ratio_bps(loss, start),
                limits.max_daily_loss_bps
            ),
        ));
    }
    Ok(())
}

/// Whether the account *as it stands* is in breach of a hard limit: drawdown, daily loss or
/// leverage (the limits market moves alone can break). The engine should call this on every
/// account update and, on `Some`, call
/// [`PermissionTracker::on_hard_limit_breach`](crate::PermissionTracker::on_hard_limit_breach)
/// for the strategies trading the account. A refused proposal is not a breach: the gate
/// prevented it. Cash reserve and concentration drift are enforced per trade only.
pub fn account_breach(limits: &EffectiveLimits, account: &AccountRisk<'_>) -> Option<Rejection> {
    if let Err(r) = check_drawdown(limits, account, account.equity) {
        return Some(r);
    }
    if let Err(r) = check_daily_loss(limits, account, account.equity) {
        return Some(r);
    }
    if cmp_ratio_bps(
        account.gross_exposure,
        account.equity,
        limits.max_leverage_bps,
    )
    .is_gt()
    {
        return Some(reject(
            ReasonCode::LimitLeverage,
            format!(
                "leverage is {} bps of equity, max {}",
                ratio_bps(account.gross_exposure, account.equity),
                limits.max_leverage_bps
            ),
        ));
    }
    None
}
