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
//! Ether on a book is the gas its live trades paid (strategies do not trade ether). It is
//! valued at the ether mark (an ETH feed in the quote token, see
//! [`crate::price_sources`]): it moves equity and cash, never exposure. Without a mark
//! ether is left out of the valuation: counting wei as quote units at par would be wrong
//! by many orders of magnitude, in either direction.
//!
//! Simplification, documented: with several pools of different quote tokens the values
//! are summed as if the quote units were one; the embedded chain has one pool.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ruint::aliases::U512;
use stratbox_proto::U256;
use stratbox_sdk::math::{liquidity_amounts, tick_math};

use crate::ledger::{ETHER, Entry, Side, Signed};
use crate::proposal::{Address, hex_address};
use crate::simulation::PoolInfo;
use stratbox_sdk::math::price::token0_in_token1;

/// Milliseconds per trading day (UTC days).
pub const DAY_MS: i64 = 86_400_000;

/// Prices of the pools the engine trades, by the assets they price.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// token0 (lowercase hex) -> the pool's sqrt price.
    token0: HashMap<String, U256>,
    /// pool (lowercase hex) -> its state.
    pools: HashMap<String, PoolInfo>,
    /// Quote-unit raw units per ether (10^18 wei), when an ether feed is configured.
    ether: Option<U256>,
}

impl Marks {
    /// Marks from the pools' current states; assets of no known pool have no mark.
    pub fn new<'a>(pools: impl IntoIterator<Item = (&'a Address, &'a PoolInfo)>) -> Marks {
        let mut m = Marks::default();
        for (addr, info) in pools {
            m.token0
                .insert(hex_address(&info.token0), info.sqrt_price_x96);
            m.pools.insert(hex_address(addr), *info);
        }
        m
    }

    /// These marks with ether priced at `mark` (quote raw units per 10^18 wei).
    pub fn with_ether(mut self, mark: Option<U256>) -> Marks {
        self.ether = mark;
        self
    }
}

/// Ether's value at `mark`, rounded so a cost is never understated: down for what the book
/// holds, up for what it owes.
fn ether_value(wei: U256, mark: U256, owed: bool) -> U256 {
    saturate(ether_value_wide(wei, mark, owed))
}

/// [`ether_value`] in 512 bits (cannot overflow).
pub(crate) fn ether_value_wide(wei: U256, mark: U256, owed: bool) -> U512 {
    let e18 = U512::from(10u64).pow(U512::from(18u8));
    let product = U512::from(wei) * U512::from(mark);
    if owed {
        product.div_ceil(e18)
    } else {
        product / e18
    }
}

/// What a book holds, valued.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Valuation {
    /// Cash plus the marked value of every holding, in raw units of the quote token.
    pub equity: U256,
    /// Starting capital plus quote-token holdings, raw units.
    pub cash: U256,
    /// Sum of the absolute values of non-quote holdings, in raw units of the quote token.
    pub gross_exposure: U256,
    /// Absolute value per non-quote asset; liquidity positions are grouped per pool under
    /// `lp:<pool>` (the key the gates use for a liquidity trade).
    pub exposures: BTreeMap<String, U256>,
}

/// A quantity moved up and down by trades judged but not yet booked: kept as two exact
/// totals so a reservation released later takes back exactly what it added, whatever was
/// reserved and released in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flow {
    up: U512,
    down: U512,
}

impl Flow {
    fn of(before: U256, after: U256) -> Flow {
        if after >= before {
            Flow {
                up: U512::from(after - before),
                down: U512::ZERO,
            }
        } else {
            Flow {
                up: U512::ZERO,
                down: U512::from(before - after),
            }
        }
    }

    fn on(self, v: U256) -> U256 {
        saturate((U512::from(v) + self.up).saturating_sub(self.down))
    }

    fn add(&mut self, o: Flow) {
        self.up += o.up;
        self.down += o.down;
    }

    fn remove(&mut self, o: Flow) {
        self.up = self.up.saturating_sub(o.up);
        self.down = self.down.saturating_sub(o.down);
    }

    fn is_zero(self) -> bool {
        self.up.is_zero() && self.down.is_zero()
    }
}

/// What trades that passed the gates but are not booked yet will do to a book, in the
/// quote unit, as the gates projected them: one such trade per reservation, or the sum of
/// a book's reservations.
///
/// Why: the gates judge each proposal against the book as it would stand, and proposals
/// judged one after another in a batch, or in batches running at once, are all decided
/// before any of them fills. Without this, ten proposals each within the exposure limit
/// pass together and the book breaches it once they fill.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    equity: Flow,
    cash: Flow,
    gross: Flow,
    exposures: BTreeMap<String, Flow>,
}

impl Pending {
    /// The change from `before` to `after` (the gates' projection of one trade).
    pub fn between(before: &Valuation, after: &Valuation) -> Pending {
        let mut exposures = BTreeMap::new();
        for k in before.exposures.keys().chain(after.exposures.keys()) {
            let b = before.exposures.get(k).copied().unwrap_or_default();
            let a = after.exposures.get(k).copied().unwrap_or_default();
            let f = Flow::of(b, a);
            if !f.is_zero() {
                exposures.insert(k.clone(), f);
            }
        }
        Pending {
            equity: Flow::of(before.equity, after.equity),
            cash: Flow::of(before.cash, after.cash),
            gross: Flow::of(before.gross_exposure, after.gross_exposure),
            exposures,
        }
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        *self == Pending::default()
    }

    /// Adds another pending effect to this one.
    pub fn add(&mut self, o: &Pending) {
        self.equity.add(o.equity);
        self.cash.add(o.cash);
        self.gross.add(o.gross);
        for (k, f) in &o.exposures {
            self.exposures.entry(k.clone()).or_default().add(*f);
        }
    }

    /// Takes back a reservation [`Pending::add`]ed earlier.
    pub fn remove(&mut self, o: &Pending) {
        self.equity.remove(o.equity);
        self.cash.remove(o.cash);
        self.gross.remove(o.gross);
        for (k, f) in &o.exposures {
            if let Some(e) = self.exposures.get_mut(k) {
                e.remove(*f);
                if e.is_zero() {
                    self.exposures.remove(k);
                }
            }
        }
    }

    /// `v` with these trades done (each quantity saturating at zero).
    pub fn on(&self, v: &Valuation) -> Valuation {
        let mut exposures = v.exposures.clone();
        for (k, f) in &self.exposures {
            let e = exposures.entry(k.clone()).or_default();
            *e = f.on(*e);
        }
        exposures.retain(|_, e| !e.is_zero());
        Valuation {
            equity: self.equity.on(v.equity),
            cash: self.cash.on(v.cash),
            gross_exposure: self.gross.on(v.gross_exposure),
            exposures,
        }
    }
}

/// The marks of a book that outlive the process: its peak equity and the day it is in,
/// with that day's starting equity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookMarks {
    /// Highest equity seen: the drawdown reference.
    pub peak_equity: U256,
    /// UTC day number (milliseconds since the epoch / [`DAY_MS`]).
    pub day: i64,
    /// Equity at the start of `day`: the daily-loss reference.
    pub day_start_equity: U256,
}

/// A book's marks as stored, with whose book it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMarks {
    /// The book's ledger account (`strategy:<strategy>:<account>`).
    pub book: String,
    /// The strategy trading in the book.
    pub strategy: String,
    /// Its marks.
    pub marks: BookMarks,
}

/// One book.
#[derive(Debug, Clone, Default)]
pub struct Book {
    /// The strategy trading in the book.
    pub strategy: String,
    /// Net holdings per asset: debits minus credits on the book's ledger account.
    balances: BTreeMap<String, (U512, U512)>,
    /// See [`BookMarks::peak_equity`].
    pub peak_equity: U256,
    /// See [`BookMarks::day`].
    pub day: i64,
    /// See [`BookMarks::day_start_equity`].
    pub day_start_equity: U256,
    /// Equity just before the book's last fill: that trade is judged won or lost by the
    /// equity just before the next one.
    pub open_trade_equity: Option<U256>,
    started: bool,
    /// The sum of this book's reservations (see [`Pending`]).
    pub pending: Pending,
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
    /// An empty book for `strategy`.
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

    /// What the book holds per token, as a strategy trading it is shown: `capital` in
    /// each `quote` token (the unit the capital is counted in) plus the net of its fills.
    /// Liquidity positions are not tokens and are left out, as is the ether gas cost (the
    /// account's, not a token the strategy holds). A net short holding (a shadow
    /// book may sell what it never bought) is 0: these are what the account can spend.
    pub fn token_balances(
        &self,
        capital: U256,
        quote: &BTreeSet<String>,
    ) -> BTreeMap<String, U256> {
        let mut out: BTreeMap<String, U256> = BTreeMap::new();
        let capital = U512::from(capital);
        for token in quote {
            out.insert(token.clone(), saturate(capital));
        }
        for (asset, (d, c)) in &self.balances {
            if asset.starts_with("lp:") || asset == ETHER {
                continue;
            }
            let debits = if quote.contains(asset) {
                d.saturating_add(capital)
            } else {
                *d
            };
            out.insert(asset.clone(), saturate(debits.saturating_sub(*c)));
        }
        out
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
            let (key, value, is_cash) = if asset == ETHER {
                match marks.ether {
                    Some(mark) => (
                        asset.clone(),
                        ether_value(bal.magnitude, mark, bal.negative),
                        true,
                    ),
                    None => continue,
                }
            } else if asset.starts_with("lp:") {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn val(equity: u64, cash: u64, exposures: &[(&str, u64)]) -> Valuation {
        let exposures: BTreeMap<String, U256> = exposures
            .iter()
            .map(|(k, v)| ((*k).to_owned(), U256::from(*v)))
            .collect();
        Valuation {
            equity: U256::from(equity),
            cash: U256::from(cash),
            gross_exposure: exposures.values().copied().sum(),
            exposures,
        }
    }

    #[test]
    fn gas_in_ether_is_a_cost_at_the_ether_mark_and_nothing_without_one() {
        let mut book = Book::new("s");
        // Paid 0.0015 ether of gas (the strategy's book owes it to the network).
        book.apply(ETHER, Side::Credit, U256::from(1_500_000_000_000_000u64));
        let capital = U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u8));
        // 2000 quote tokens (18 decimals) per ether: 3 quote tokens of gas.
        let mark = U256::from(2_000u64) * U256::from(10u64).pow(U256::from(18u8));
        let v = book.value(capital, &Marks::default().with_ether(Some(mark)));
        let three = U256::from(3u64) * U256::from(10u64).pow(U256::from(18u8));
        assert_eq!((v.equity, v.cash), (capital - three, capital - three));
        assert_eq!(
            v.gross_exposure,
            U256::ZERO,
            "gas is a cost, not a position"
        );
        assert!(v.exposures.is_empty());
        // Without a mark the wei are not counted as quote units at par.
        let v = book.value(capital, &Marks::default());
        assert_eq!((v.equity, v.cash), (capital, capital));
        // What is owed rounds up: 1 wei at 1 raw unit per ether still costs one raw unit.
        assert_eq!(
            ether_value(U256::from(1u8), U256::from(1u8), true),
            U256::from(1u8)
        );
        assert_eq!(
            ether_value(U256::from(1u8), U256::from(1u8), false),
            U256::ZERO
        );
        // Strategies are not shown ether among their tokens.
        let shown = book.token_balances(capital, &BTreeSet::new());
        assert!(!shown.contains_key(ETHER), "{shown:?}");
    }

    #[test]
    fn reservations_add_up_and_release_exactly_in_any_order() {
        let book = val(1_000, 1_000, &[]);
        let buy = Pending::between(&book, &val(998, 600, &[("t0", 400)]));
        let lp = Pending::between(&book, &val(1_000, 700, &[("lp:p", 300)]));
        let mut sum = Pending::default();
        sum.add(&buy);
        sum.add(&lp);
        assert_eq!(sum.on(&book), val(998, 300, &[("t0", 400), ("lp:p", 300)]));
        // Released in the other order than taken: what is left is exactly the other one.
        sum.remove(&buy);
        assert_eq!(sum, lp);
        sum.remove(&lp);
        assert!(sum.is_empty());
        assert_eq!(sum.on(&book), book);
    }

    #[test]
    fn a_reservation_spending_more_than_a_book_holds_saturates_at_zero() {
        let book = val(100, 100, &[("t0", 50)]);
        let sell = Pending::between(&val(1_000, 1_000, &[("t0", 500)]), &val(900, 0, &[]));
        assert_eq!(sell.on(&book), val(0, 0, &[]));
        let max = Valuation {
            equity: U256::MAX,
            ..Valuation::default()
        };
        let up = Pending::between(&Valuation::default(), &max);
        let mut twice = up.clone();
        twice.add(&up);
        assert_eq!(twice.on(&max).equity, U256::MAX, "saturates, does not wrap");
    }
}
