//! The risk monitor's side of the books: every block the engine marks every book to market
//! and applies the hard limits whether or not its strategy proposes (see the engine's
//! `on_block`), so a book that goes quiet while it loses is halted as surely as one that
//! keeps proposing.
//!
//! Everything here is in memory: a pass values each book from its ledger balances already
//! held here, and what it changes reaches storage the way a proposal's changes do (a halt
//! at once with its audit row, moved marks with the background flush), never one write per
//! book per block.
//!
//! A halt also leaves the book owing an unwind ([`DueUnwind`]): the engine, in `staged` or
//! `live` mode, proposes to sell what the book holds back to its quote token, and the gates
//! let that one kind of trade through for a halted strategy because it only reduces
//! exposure ([`RiskBook::reduces_exposure`]).

use super::*;

/// A book whose breach halted its strategy: it may owe an unwind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueUnwind {
    /// The book's ledger account (`strategy:<strategy>:<account>`).
    pub book: String,
    /// Its strategy.
    pub strategy: String,
    /// The level the strategy was halted from: the furthest its trades went, so the
    /// furthest its unwind may go (a book that traded in shadow holds nothing real).
    pub from: PermissionLevel,
    /// The limit breached.
    pub code: ReasonCode,
}

/// A halt found by a monitor pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorHalt {
    /// The strategy halted.
    pub strategy: String,
    /// The book in breach (ledger account).
    pub book: String,
    /// The limit breached.
    pub code: ReasonCode,
    /// The limit's own account of the breach.
    pub detail: String,
}

impl RiskBook {
    /// One block's pass: every book valued at `marks`, its peak and day moved, and the hard
    /// limits (drawdown, daily loss, leverage, cash reserve, exposure) applied to what is
    /// booked. A book in breach halts its strategy (L0) with the same tracker change and
    /// level note as a breach found on a proposal; strategies already at L0 are only
    /// marked (their breach is not re-recorded block after block). Returns the new halts.
    pub fn mark_block(&mut self, marks: &Marks, now_ms: i64) -> Vec<MonitorHalt> {
        let capital = self.capital;
        let initial = self.cfg.permission.initial_level;
        let mut found: Vec<(String, String, Rejection)> = Vec::new();
        let mut days = Vec::new();
        for (acct, book) in self.books.iter_mut() {
            let v = book.value(capital, marks);
            let before = book.marks();
            if let Some((day, start, end)) = book.mark(v.equity, now_ms) {
                days.push((book.strategy.clone(), day, start, end));
            }
            if book.marks() != before && !self.marks_changed.contains(acct) {
                self.marks_changed.insert(acct.clone());
            }
            let level = self
                .permissions
                .get(&book.strategy)
                .map(PermissionTracker::level)
                .unwrap_or(initial);
            if level == PermissionLevel::L0 {
                continue;
            }
            let limits = self.cfg.limits.for_strategy(&book.strategy);
            if let Some(r) = book_breach(&limits, &v, book.peak_equity, book.day_start_equity) {
                found.push((acct.clone(), book.strategy.clone(), r));
            }
        }
        for (strategy, day, start, end) in days {
            self.record_day(&strategy, day, start, end);
        }
        let mut halts = Vec::new();
        for (book, strategy, r) in found {
            if let Some(from) = self.breach(&strategy, r.code, &r.detail, now_ms) {
                self.unwinds_due.push(DueUnwind {
                    book: book.clone(),
                    strategy: strategy.clone(),
                    from,
                    code: r.code,
                });
                halts.push(MonitorHalt {
                    strategy,
                    book,
                    code: r.code,
                    detail: r.detail,
                });
            }
        }
        halts
    }

    /// The books owing an unwind since the last call (halts found on proposals, fills or
    /// monitor passes), oldest first; forgotten here.
    pub fn take_unwinds(&mut self) -> Vec<DueUnwind> {
        std::mem::take(&mut self.unwinds_due)
    }

    /// What an unwind of `book` sells: per pool, the book's positive holding of the pool's
    /// token0, each token once (the first pool by address that prices it). Short holdings
    /// and liquidity positions are left alone (see the README's known gaps).
    pub fn unwind_sells(
        &self,
        book: &str,
        pools: &[(Address, PoolInfo)],
    ) -> Vec<(Address, PoolInfo, U256)> {
        let Some(b) = self.books.get(book) else {
            return Vec::new();
        };
        let mut pools: Vec<&(Address, PoolInfo)> = pools.iter().collect();
        pools.sort_by_key(|(a, _)| *a);
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for (addr, info) in pools {
            let token0 = hex_address(&info.token0);
            if !seen.insert(token0.clone()) {
                continue;
            }
            if let Some(bal) = b.balance(&token0)
                && !bal.negative
                && !bal.magnitude.is_zero()
            {
                out.push((*addr, *info, bal.magnitude));
            }
        }
        out
    }

    /// Whether `action` only reduces the exposure of book `acct`: a sale of the pool's
    /// token0 (`token0`) for its quote token of at most what the book holds. The one
    /// trade a halted strategy's book may make, and only when the engine built it.
    pub fn reduces_exposure(
        &self,
        acct: &str,
        action: &TradeAction,
        token0: &str,
    ) -> Result<(), Rejection> {
        let TradeAction::Swap {
            zero_for_one: true,
            amount_in,
            ..
        } = *action
        else {
            return Err(Rejection::new(
                ReasonCode::PermissionLevel,
                "an unwind may only sell the book's token0 for the pool's quote token",
            ));
        };
        let held = self
            .books
            .get(acct)
            .and_then(|b| b.balance(token0))
            .filter(|b| !b.negative)
            .map(|b| b.magnitude)
            .unwrap_or_default();
        if amount_in.is_zero() || amount_in > held {
            return Err(Rejection::new(
                ReasonCode::PermissionLevel,
                format!(
                    "an unwind sells {amount_in} of {token0} and the book holds {held}: only a sale of what the book holds reduces its exposure"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Side;

    const T0: [u8; 20] = [0x11; 20];
    const T1: [u8; 20] = [0x22; 20];
    const POOL: [u8; 20] = [0x33; 20];

    fn swap(zero_for_one: bool, amount_in: u64) -> TradeAction {
        TradeAction::Swap {
            pool: POOL,
            zero_for_one,
            amount_in: U256::from(amount_in),
            sqrt_price_limit_x96: None,
        }
    }

    #[test]
    fn only_a_sale_of_what_the_book_holds_reduces_exposure() {
        let mut rb = RiskBook::new(RiskConfig::default(), U256::from(1_000_000u64));
        let acct = strategy_account("s", "a");
        let t0 = hex_address(&T0);
        rb.load_line(&acct, "s", &t0, Side::Debit, U256::from(500u64));
        assert!(rb.reduces_exposure(&acct, &swap(true, 500), &t0).is_ok());
        assert!(rb.reduces_exposure(&acct, &swap(true, 1), &t0).is_ok());
        for (action, what) in [
            (swap(true, 501), "more than held"),
            (swap(true, 0), "nothing"),
            (swap(false, 10), "a buy"),
        ] {
            let r = rb.reduces_exposure(&acct, &action, &t0);
            assert_eq!(
                r.err().map(|r| r.code),
                Some(ReasonCode::PermissionLevel),
                "{what}"
            );
        }
        // A book short token0 holds nothing to sell.
        let short = strategy_account("s", "short");
        rb.load_line(&short, "s", &t0, Side::Credit, U256::from(500u64));
        assert!(rb.reduces_exposure(&short, &swap(true, 1), &t0).is_err());
        let info = PoolInfo {
            token0: T0,
            token1: T1,
            fee: 3_000,
            tick_spacing: 60,
            sqrt_price_x96: U256::from(1u8) << 96,
            tick: 0,
            liquidity: 0,
        };
        assert!(rb.unwind_sells(&short, &[(POOL, info)]).is_empty());
        assert_eq!(
            rb.unwind_sells(&acct, &[(POOL, info), ([0x44; 20], info)]),
            vec![(POOL, info, U256::from(500u64))],
            "each token is sold once"
        );
    }
}
