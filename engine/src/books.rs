//! Per-(strategy, account) books: what the ledger says each shadow book holds, valued at
//! the pools' current prices, as the hard-limit gates judge it.
//!
//! A book starts with `book_capital` of notional cash in the quote unit (see
//! [`crate::gates`]) and holds the net of every fill booked on its ledger account
//! (`strategy:<strategy>:<account>`). Holdings are exact ledger balances; the valuation is
//! mark-to-market in the quote unit (a pool's token1): token1 at par, token0 at the pool's
//! spot price, a liquidity position at what it holds at the current price (the Uniswap V3
//! integer math of `stratbox-sdk`, rounded down). From that:
//! - equity = capital + the value of every holding (negative holdings subtract);
//! - cash = capital + quote-unit holdings;
//! - gross exposure = the sum of the absolute values of non-quote holdings.
//!
//! Peak equity and the day's starting equity are marks the engine keeps as it values the
//! book (on every proposal and every fill). They are stored (`book_marks`) with the
//! permission trackers, so a restart keeps judging drawdown from the same peak and the
//! day's loss from the same start: without them, restarting the engine would hand every
//! book a fresh daily-loss allowance. A book with no stored marks starts them at its
//! equity then.
//!
//! Simplification, documented: with several pools of different quote tokens the values
//! are summed as if the quote units were one; the embedded chain has one pool.

use std::collections::{BTreeMap, HashMap};

use ruint::aliases::U512;
use stratbox_proto::U256;
use stratbox_sdk::math::{liquidity_amounts, tick_math};

use crate::gates::token0_in_token1;
use crate::ledger::{Entry, Side, Signed};
use crate::proposal::{Address, hex_address};
use crate::simulation::PoolInfo;

/// Milliseconds per trading day (UTC days).
pub const DAY_MS: i64 = 86_400_000;

/// Prices of the pools the engine trades, by the assets they price.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// token0 (lowercase hex) -> the pool's sqrt price.
    token0: HashMap<String, U256>,
    /// pool (lowercase hex) -> its state.
    pools: HashMap<String, PoolInfo>,
}

impl Marks {
    pub fn new<'a>(pools: impl IntoIterator<Item = (&'a Address, &'a PoolInfo)>) -> Marks {
        let mut m = Marks::default();
        for (addr, info) in pools {
            m.token0
                .insert(hex_address(&info.token0), info.sqrt_price_x96);
            m.pools.insert(hex_address(addr), *info);
        }
        m
    }
}

/// What a book holds, valued.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Valuation {
    pub equity: U256,
    pub cash: U256,
    pub gross_exposure: U256,
    /// Absolute value per non-quote asset; liquidity positions are grouped per pool under
    /// `lp:<pool>` (the key the gates use for a liquidity trade).
    pub exposures: BTreeMap<String, U256>,
}

/// The marks of a book that outlive the process: its peak equity and the day it is in,
/// with that day's starting equity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookMarks {
    pub peak_equity: U256,
    /// UTC day number (milliseconds since the epoch / [`DAY_MS`]).
    pub day: i64,
    pub day_start_equity: U256,
}

/// A book's marks as stored, with whose book it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMarks {
    /// The book's ledger account (`strategy:<strategy>:<account>`).
    pub book: String,
    pub strategy: String,
    pub marks: BookMarks,
}

/// One book.
#[derive(Debug, Clone, Default)]
pub struct Book {
    pub strategy: String,
    /// Net holdings per asset: debits minus credits on the book's ledger account.
    balances: BTreeMap<String, (U512, U512)>,
    pub peak_equity: U256,
    pub day: i64,
    pub day_start_equity: U256,
    /// Equity just before the book's last fill: that trade is judged won or lost by the
    /// equity just before the next one.
    pub open_trade_equity: Option<U256>,
    started: bool,
}

fn saturate(v: U512) -> U256 {
    <U256 as ruint::UintTryFrom<U512>>::uint_try_from(v).unwrap_or(U256::MAX)
}

/// A liquidity position's value at the pool's price; `None` if it cannot be parsed.
fn lp_value(asset: &str, liquidity: U256, marks: &Marks) -> Option<(String, U256)> {
    let rest = asset.strip_prefix("lp:")?;
    let mut parts = rest.split(':');
    let pool = parts.next()?;
    let lower: i32 = parts.next()?.parse().ok()?;
    let upper: i32 = parts.next()?.parse().ok()?;
    let info = marks.pools.get(pool)?;
    let l: u128 = liquidity.try_into().ok()?;
    let a = tick_math::get_sqrt_ratio_at_tick(lower).ok()?;
    let b = tick_math::get_sqrt_ratio_at_tick(upper).ok()?;
    let (a0, a1) =
        liquidity_amounts::get_amounts_for_liquidity(info.sqrt_price_x96, a, b, l).ok()?;
    Some((
        format!("lp:{pool}"),
        token0_in_token1(a0, info.sqrt_price_x96).saturating_add(a1),
    ))
}

impl Book {
    pub fn new(strategy: &str) -> Book {
        Book {
            strategy: strategy.to_owned(),
            ..Book::default()
        }
    }

    /// Adds ledger lines of the book's account.
    pub fn apply(&mut self, asset: &str, side: Side, amount: U256) {
        let slot = self.balances.entry(asset.to_owned()).or_default();
        match side {
            Side::Debit => slot.0 += U512::from(amount),
            Side::Credit => slot.1 += U512::from(amount),
        }
    }

    /// Adds the entries of a posting that touch `ledger_account`.
    pub fn apply_entries(&mut self, ledger_account: &str, entries: &[Entry]) {
        for e in entries.iter().filter(|e| e.account == ledger_account) {
            self.apply(&e.asset, e.side, e.amount);
        }
    }

    /// Net holding of one asset.
    pub fn balance(&self, asset: &str) -> Option<Signed> {
        self.balances
            .get(asset)
            .and_then(|(d, c)| Signed::from_totals(*d, *c))
    }

    /// The book valued at `marks` on top of `capital`.
    pub fn value(&self, capital: U256, marks: &Marks) -> Valuation {
        let mut gains = U512::from(capital);
        let mut losses = U512::ZERO;
        let mut cash_gains = U512::from(capital);
        let mut cash_losses = U512::ZERO;
        let mut gross = U512::ZERO;
        let mut exposures: BTreeMap<String, U256> = BTreeMap::new();
        for (asset, (d, c)) in &self.balances {
            let Some(bal) = Signed::from_totals(*d, *c) else {
                continue;
            };
            if bal.is_zero() {
                continue;
            }
            let (key, value, is_cash) = if asset.starts_with("lp:") {
                match lp_value(asset, bal.magnitude, marks) {
                    Some((k, v)) => (k, v, false),
                    None => continue,
                }
            } else if let Some(sqrt) = marks.token0.get(asset) {
                (asset.clone(), token0_in_token1(bal.magnitude, *sqrt), false)
            } else {
                (asset.clone(), bal.magnitude, true)
            };
            if bal.negative {
                losses += U512::from(value);
            } else {
                gains += U512::from(value);
            }
            if is_cash {
                if bal.negative {
                    cash_losses += U512::from(value);
                } else {
                    cash_gains += U512::from(value);
                }
            } else {
                gross += U512::from(value);
                let e = exposures.entry(key).or_default();
                *e = e.saturating_add(value);
            }
        }
        Valuation {
            equity: saturate(gains.saturating_sub(losses)),
            cash: saturate(cash_gains.saturating_sub(cash_losses)),
            gross_exposure: saturate(gross),
            exposures,
        }
    }

    /// The book's marks; `None` before it was first valued.
    pub fn marks(&self) -> Option<BookMarks> {
        self.started.then_some(BookMarks {
            peak_equity: self.peak_equity,
            day: self.day,
            day_start_equity: self.day_start_equity,
        })
    }

    /// Takes stored marks back (at start, before the book is valued again).
    pub fn restore_marks(&mut self, m: BookMarks) {
        self.started = true;
        self.peak_equity = m.peak_equity;
        self.day = m.day;
        self.day_start_equity = m.day_start_equity;
    }

    /// Moves the peak and the day with a fresh valuation; returns the finished day
    /// `(day, start equity, end equity)` when a new day began.
    pub fn mark(&mut self, equity: U256, now_ms: i64) -> Option<(i64, U256, U256)> {
        let day = now_ms.div_euclid(DAY_MS);
        if !self.started {
            self.started = true;
            self.peak_equity = equity;
            self.day = day;
            self.day_start_equity = equity;
            return None;
        }
        self.peak_equity = self.peak_equity.max(equity);
        if day > self.day {
            let done = (self.day, self.day_start_equity, equity);
            self.day = day;
            self.day_start_equity = equity;
            return Some(done);
        }
        None
    }
}
