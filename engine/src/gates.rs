//! The engine's side of the risk gates: the state the pure `stratbox-risk` checks need
//! (kill switch, oracle quotes, permission trackers, each book's capital) and the mapping
//! from a proposal to their inputs.
//!
//! Order (first failure wins, each with its stable reason code): a pool the engine does not
//! trade, a market the governance sentinel halted (`governance_halt`, see
//! [`crate::sentinel`]), kill switch, Sync Sentinel, triple oracle, permission level (and its
//! per-level trade size), hard limits.
//!
//! Valuation: a pool's token1 is the quote unit. A trade's notional is its size in token1
//! at the pool's spot price (token0 amounts) or at par (token1 amounts); liquidity is
//! valued at its expected amounts. Anything that overflows 256 bits saturates, which the
//! size limits then refuse.
//!
//! Each (strategy, account) is judged on its own book ([`crate::books`]): `book_capital` of
//! notional cash plus every fill booked on the ledger, valued at the pools' prices, with
//! its peak and the day's starting equity. Booked losses therefore feed drawdown, daily
//! loss, leverage, cash reserve and exposure. A book found in breach of a hard limit (when
//! judged or after a fill) drops its strategy to L0 until a human restores it; every fill
//! decides the book's previous trade (won, lost or flat by the book's equity since) and
//! every finished day is recorded, which is what promotes and demotes strategies.
//!
//! Proposals judged before earlier ones filled (later in one batch, or in batches running
//! at once) are judged on the book with those trades done as the gates projected them:
//! each trade that passes holds a reservation ([`crate::books::Pending`]) on its book until
//! its batch is settled, when the fill that replaces it is booked under the same lock.
//!
//! After the hard limits, the gas-price gate refuses every trade while the network's gas
//! price is over `gas.max_gas_price_gwei` (`gas_price`).
//!
//! Durability: the book remembers which trackers changed and which level changes happened
//! since the engine last stored them ([`RiskBook::drain_changes`]); the engine writes a
//! level change before it answers the submit that caused it, and a change of a record alone
//! within a second (see [`crate::permissions`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::books::{Book, Marks, Pending, StoredMarks, Valuation};
use crate::ledger::{Posting, strategy_account};
use stratbox_risk::{DayResult, ReasonCode, TradeOutcome, account_breach};

use stratbox_proto::U256;
use stratbox_risk::limits::{AccountRisk, AssetExposure, Leg, PostTrade, TradeEffect, TradeRisk};
use stratbox_risk::{
    ExecutionMode, GateInput, KillSwitch, OracleGuard, PermissionError, PermissionLevel,
    PermissionTracker, Rejection, RiskConfig, Transition, evaluate,
};

use crate::proposal::{Address, CheckedProposal, TradeAction, hex_address};
use crate::simulation::PoolInfo;
use crate::store::KillSwitchRow;

pub mod watch;

/// What the gates are judged against, besides the proposal.
#[derive(Debug, Clone, Copy)]
pub struct GateContext<'a> {
    /// The engine's watermark: the Sync Sentinel's and the oracle's reference block.
    pub watermark: u64,
    /// The simulated chain's block (for logs; the watermark is what gates use).
    pub block: u64,
    /// Wall clock, ms since the Unix epoch (cooldowns, drawdown windows).
    pub now_ms: i64,
    /// The mode the proposal asks for; the strategy's permission level may not allow it.
    pub requested: ExecutionMode,
    /// The proposal's pool, if the engine trades it; `None` is refused as an unknown pool.
    pub pool: Option<&'a PoolInfo>,
    /// Prices every book is valued at.
    pub marks: &'a Marks,
    /// How long ago the engine learned of its newest block, and the most that is fresh;
    /// `None`: staleness is judged by block lag only (see [`crate::engine`]'s risk monitor).
    pub block_age: Option<BlockAge>,
    /// The proposal is an unwind the engine built for a halted book (see [`watch`]): it
    /// passes the permission level and the hard limits only if it reduces the book's
    /// exposure. Never set for what a strategy submits.
    pub unwind: bool,
}

/// The age of the engine's newest block against the most the time sentinel allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockAge {
    /// Milliseconds since the engine learned of its newest block.
    pub age_ms: u64,
    /// The most that is still fresh (`--max-block-age`).
    pub max_ms: u64,
}

/// Level changes by strategy, oldest first.
pub type LevelChanges = Vec<(String, Transition)>;

/// What changed since the last [`RiskBook::drain_changes`], for the engine to store.
#[derive(Debug, Default)]
pub struct Changes {
    /// Trackers that changed, as they are now, by strategy.
    pub trackers: Vec<(String, PermissionTracker)>,
    /// Permission level changes, by strategy.
    pub transitions: LevelChanges,
    /// Books' marks that moved, as they are now, by ledger account.
    pub marks: Vec<StoredMarks>,
}

/// The risk state every proposal is gated against: thresholds, kill switch, oracle, per-strategy
/// books and permission levels.
pub struct RiskBook {
    cfg: RiskConfig,
    kill: KillSwitch,
    /// Engaged with `--cancel-pending`: the live path also ends what is unsigned and cancels
    /// what is pending (see [`KillSwitchRow::cancel_pending`]).
    cancel_pending: bool,
    oracle: OracleGuard<String>,
    permissions: HashMap<String, PermissionTracker>,
    /// Strategies whose tracker changed since the last [`RiskBook::drain_changes`].
    changed: HashSet<String>,
    /// Level changes since the last drain, in the order they happened.
    transitions: LevelChanges,
    /// Books (by ledger account) whose marks moved since the last drain.
    marks_changed: HashSet<String>,
    /// Level changes ever made here (transitions and [`RiskBook::set_level`]). Shared, so
    /// the engine can tell without this book's lock whether one is not stored yet: that is
    /// the whole cost of durability on a submit that changed no level.
    level_changes: Arc<AtomicU64>,
    capital: U256,
    /// By ledger account (`strategy:<strategy>:<account>`).
    books: HashMap<String, Book>,
    /// The price the engine would execute at, wei.
    gas_price_wei: U256,
    /// Reservations by task id: the book they are held on and what they hold.
    reservations: HashMap<String, (String, Pending)>,
    /// Markets (by pool) the governance sentinel halted, with why: refused before any other
    /// gate until an operator clears them (see [`crate::sentinel`]).
    governance_halts: HashMap<Address, String>,
    /// Books whose breach halted their strategy since the risk monitor last looked: each
    /// may owe an unwind (see [`watch`]).
    unwinds_due: Vec<watch::DueUnwind>,
}

/// Price conversions live with the rest of the Uniswap V3 math, in the SDK.
pub use stratbox_sdk::math::price::{spot_price_e18, token0_in_token1};

/// The oracle market of a pool: `token0/token1` (lowercase 0x addresses); the feed reports
/// prices under the same key (base/quote).
pub fn market_key(base: &Address, quote: &Address) -> String {
    format!("{}/{}", hex_address(base), hex_address(quote))
}

impl RiskBook {
    /// `book_capital`: the cash each shadow book is judged to hold, in raw quote units.
    pub fn new(cfg: RiskConfig, book_capital: U256) -> RiskBook {
        RiskBook {
            cfg,
            kill: KillSwitch::default(),
            cancel_pending: false,
            oracle: OracleGuard::new(),
            permissions: HashMap::new(),
            changed: HashSet::new(),
            transitions: Vec::new(),
            marks_changed: HashSet::new(),
            level_changes: Arc::new(AtomicU64::new(0)),
            capital: book_capital,
            books: HashMap::new(),
            gas_price_wei: U256::ZERO,
            reservations: HashMap::new(),
            governance_halts: HashMap::new(),
            unwinds_due: Vec::new(),
        }
    }

    /// Halts a market (its pool) for an admin change the governance sentinel saw.
    pub fn halt_market(&mut self, pool: Address, why: String) {
        self.governance_halts.entry(pool).or_insert(why);
    }

    /// Replaces every governance halt with the stored ones (at start, and at each of the
    /// sentinel's passes, so a clear made through another engine on the database applies).
    pub fn set_market_halts(&mut self, halts: HashMap<Address, String>) {
        self.governance_halts = halts;
    }

    /// Lifts a market's governance halt (after the clear is stored).
    pub fn lift_market_halt(&mut self, pool: &Address) {
        self.governance_halts.remove(pool);
    }

    /// How many markets are halted by the governance sentinel.
    pub fn market_halts(&self) -> usize {
        self.governance_halts.len()
    }

    /// Sets the network gas price (wei) trades are judged at.
    pub fn set_gas_price(&mut self, wei: U256) {
        self.gas_price_wei = wei;
    }

    /// The gas price set last (wei).
    pub fn gas_price(&self) -> U256 {
        self.gas_price_wei
    }

    /// Adds ledger lines of a book at start (`ledger_account` is the book's account).
    pub fn load_line(
        &mut self,
        ledger_account: &str,
        strategy: &str,
        asset: &str,
        side: crate::ledger::Side,
        amount: U256,
    ) {
        self.books
            .entry(ledger_account.to_owned())
            .or_insert_with(|| Book::new(strategy))
            .apply(asset, side, amount);
    }

    /// Takes a book's stored marks back at start (before [`RiskBook::mark_all`]). Marks of
    /// a book with no ledger lines are kept too: its equity is its capital, and its peak
    /// may be above that.
    pub fn restore_marks(&mut self, stored: StoredMarks) {
        self.books
            .entry(stored.book)
            .or_insert_with(|| Book::new(&stored.strategy))
            .restore_marks(stored.marks);
    }

    /// Marks every loaded book at `marks`: a book with stored marks keeps its peak (raised
    /// if equity is above it) and, on the same day, its day start; a day that ended while
    /// the engine was down is recorded as ending at the equity now. A book with no stored
    /// marks starts them at its equity now.
    pub fn mark_all(&mut self, marks: &Marks, now_ms: i64) {
        let capital = self.capital;
        let mut days = Vec::new();
        for (acct, book) in self.books.iter_mut() {
            let before = book.marks();
            let v = book.value(capital, marks);
            if let Some((day, start, end)) = book.mark(v.equity, now_ms) {
                days.push((book.strategy.clone(), day, start, end));
            }
            if book.marks() != before {
                self.marks_changed.insert(acct.clone());
            }
        }
        for (strategy, day, start, end) in days {
            self.record_day(&strategy, day, start, end);
        }
    }

    /// A book valued at `marks`, with its peak and day-start marks.
    pub fn book(
        &self,
        strategy: &str,
        account: &str,
        marks: &Marks,
    ) -> Option<(Valuation, U256, U256)> {
        self.books
            .get(&strategy_account(strategy, account))
            .map(|b| {
                (
                    b.value(self.capital, marks),
                    b.peak_equity,
                    b.day_start_equity,
                )
            })
    }

    /// The cash each book starts with, in raw quote units.
    pub fn capital(&self) -> U256 {
        self.capital
    }

    /// Every book's token balances (see [`Book::token_balances`]) as (strategy, account,
    /// balances), in no particular order.
    pub fn token_balances(
        &self,
        quote: &BTreeSet<String>,
    ) -> Vec<(String, String, BTreeMap<String, U256>)> {
        self.books
            .iter()
            .filter_map(|(acct, b)| {
                let account = acct.strip_prefix(&strategy_account(&b.strategy, ""))?;
                Some((
                    b.strategy.clone(),
                    account.to_owned(),
                    b.token_balances(self.capital, quote),
                ))
            })
            .collect()
    }

    /// One book's token balances; a book with no fills holds its capital.
    pub fn token_balances_of(
        &self,
        strategy: &str,
        account: &str,
        quote: &BTreeSet<String>,
    ) -> BTreeMap<String, U256> {
        match self.books.get(&strategy_account(strategy, account)) {
            Some(b) => b.token_balances(self.capital, quote),
            None => Book::new(strategy).token_balances(self.capital, quote),
        }
    }

    /// The tracker of `strategy`, to change: every caller changes it, so it is marked.
    fn tracker(&mut self, strategy: &str) -> &mut PermissionTracker {
        let cfg = &self.cfg.permission;
        if !self.changed.contains(strategy) {
            self.changed.insert(strategy.to_owned());
        }
        self.permissions
            .entry(strategy.to_owned())
            .or_insert_with(|| PermissionTracker::new(cfg))
    }

    /// Records a level change for the engine to store (and audit).
    fn note(&mut self, strategy: &str, t: Transition) {
        self.transitions.push((strategy.to_owned(), t));
        self.level_changes.fetch_add(1, Ordering::AcqRel);
    }

    /// A hard limit breached by the book as it stands: the strategy drops to L0. Returns
    /// the level it dropped from, if this breach is what halted it.
    fn breach(
        &mut self,
        strategy: &str,
        code: ReasonCode,
        detail: &str,
        now_ms: i64,
    ) -> Option<PermissionLevel> {
        let t = self.tracker(strategy).on_hard_limit_breach(code, now_ms)?;
        tracing::warn!(
            strategy,
            from = %t.from,
            to = %t.to,
            code = code.as_str(),
            detail,
            "hard limit breached: strategy halted until a human restores it"
        );
        let from = t.from;
        self.note(strategy, t);
        Some(from)
    }

    fn record_day(&mut self, strategy: &str, day: i64, start: U256, end: U256) {
        let (pnl, negative) = if end >= start {
            (end - start, false)
        } else {
            (start - end, true)
        };
        let day = u32::try_from(day).unwrap_or(u32::MAX);
        let cfg = self.cfg.permission.clone();
        match self
            .tracker(strategy)
            .record_day(&cfg, DayResult::from_pnl(day, pnl, negative, start))
        {
            Ok(Some(t)) => {
                tracing::info!(strategy, from = %t.from, to = %t.to, cause = t.cause.as_str(), "permission level changed at day end");
                self.note(strategy, t);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(strategy, error = %e, "day not recorded"),
        }
    }

    /// Marks a book and checks it for a breach; the valuation it judged.
    fn judge_book(
        &mut self,
        ledger_account: &str,
        strategy: &str,
        marks: &Marks,
        now_ms: i64,
    ) -> (Valuation, U256, U256) {
        let capital = self.capital;
        let book = self
            .books
            .entry(ledger_account.to_owned())
            .or_insert_with(|| Book::new(strategy));
        let v = book.value(capital, marks);
        let before = book.marks();
        let day_done = book.mark(v.equity, now_ms);
        let moved = book.marks() != before;
        let (peak, day_start) = (book.peak_equity, book.day_start_equity);
        if moved && !self.marks_changed.contains(ledger_account) {
            self.marks_changed.insert(ledger_account.to_owned());
        }
        if let Some((day, start, end)) = day_done {
            self.record_day(strategy, day, start, end);
        }
        let limits = self.cfg.limits.for_strategy(strategy);
        if let Some(r) = book_breach(&limits, &v, peak, day_start)
            && let Some(from) = self.breach(strategy, r.code, &r.detail, now_ms)
        {
            self.unwinds_due.push(watch::DueUnwind {
                book: ledger_account.to_owned(),
                strategy: strategy.to_owned(),
                from,
                code: r.code,
            });
        }
        (v, peak, day_start)
    }

    /// Books shadow fills that were stored: each decides its book's previous trade, moves
    /// the book's holdings and marks, and a book left in breach halts its strategy.
    pub fn on_fills<'p>(
        &mut self,
        fills: impl IntoIterator<Item = (&'p str, &'p str, &'p Posting)>,
        marks: &Marks,
        now_ms: i64,
    ) {
        let capital = self.capital;
        for (strategy, account, posting) in fills {
            let acct = strategy_account(strategy, account);
            let book = self
                .books
                .entry(acct.clone())
                .or_insert_with(|| Book::new(strategy));
            let before = book.value(capital, marks).equity;
            let previous = book.open_trade_equity.replace(before);
            book.apply_entries(&acct, posting.entries());
            if let Some(prev) = previous {
                let outcome = match before.cmp(&prev) {
                    std::cmp::Ordering::Greater => TradeOutcome::Won,
                    std::cmp::Ordering::Less => TradeOutcome::Lost,
                    std::cmp::Ordering::Equal => TradeOutcome::Flat,
                };
                let cfg = self.cfg.permission.clone();
                if let Some(t) = self.tracker(strategy).record_trade(&cfg, outcome) {
                    tracing::info!(strategy, from = %t.from, to = %t.to, cause = t.cause.as_str(), "permission level changed by a trade");
                    self.note(strategy, t);
                }
            }
            self.judge_book(&acct, strategy, marks, now_ms);
        }
    }

    /// A fill taken back (a reorg removed the receipt it was booked from): its reversal
    /// leaves the book, which is judged again. Not a trade, so no outcome is recorded
    /// towards the strategy's permission level.
    pub fn on_reversal(
        &mut self,
        strategy: &str,
        account: &str,
        reversal: &Posting,
        marks: &Marks,
        now_ms: i64,
    ) {
        let acct = strategy_account(strategy, account);
        let book = self
            .books
            .entry(acct.clone())
            .or_insert_with(|| Book::new(strategy));
        book.apply_entries(&acct, reversal.entries());
        self.judge_book(&acct, strategy, marks, now_ms);
    }

    /// The thresholds in force.
    pub fn config(&self) -> &RiskConfig {
        &self.cfg
    }

    /// Replaces the thresholds (a risk-limit change that is stored and due): every later
    /// proposal is judged by them. Trackers, books and reservations are kept.
    pub fn set_config(&mut self, cfg: RiskConfig) {
        self.cfg = cfg;
    }

    /// The kill switch as it is now, in the form the store persists.
    pub fn kill_switch(&self) -> KillSwitchRow {
        KillSwitchRow {
            engaged: self.kill.engaged,
            reason: self.kill.reason.clone(),
            operator: self.kill.operator.clone(),
            changed_at_ms: self.kill.changed_at_ms,
            cancel_pending: self.kill.engaged && self.cancel_pending,
        }
    }

    /// Sets the switch to a stored (or just decided) state.
    pub fn restore_kill_switch(&mut self, k: &KillSwitchRow) {
        self.cancel_pending = k.engaged && k.cancel_pending;
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

    /// The traded pool's spot price for `market`: every source is compared with it (see
    /// [`stratbox_risk::oracle`]); a refused one (zero) is logged and dropped.
    pub fn set_oracle_spot(&mut self, market: &str, price_e18: U256, block: u64) {
        if let Err(e) = self.oracle.set_spot(market, price_e18, block) {
            tracing::warn!(market, error = %e, "spot price refused");
        }
    }

    /// A source read but not fresh, with why; it counts as absent until it reports again.
    pub fn mark_oracle_stale(&mut self, market: &str, source: &str, why: &str) {
        if let Err(e) = self.oracle.mark_stale(market, source, why) {
            tracing::warn!(market, source, error = %e, "stale mark refused");
        }
    }

    /// Why `market`'s sources would fail the oracle gate at `block`, or `None` when they
    /// agree; changes nothing (see [`stratbox_risk::OracleGuard::failure`]).
    pub fn oracle_failure(&self, market: &str, block: u64) -> Option<(ReasonCode, String)> {
        self.oracle.failure(&self.cfg.oracle, market, block)
    }

    /// `strategy`'s permission level; the configured initial level for one never seen.
    pub fn level(&self, strategy: &str) -> PermissionLevel {
        self.permissions
            .get(strategy)
            .map(PermissionTracker::level)
            .unwrap_or(self.cfg.permission.initial_level)
    }

    /// Sets a strategy's permission level with an empty record (tests and bootstrapping;
    /// operators restore a halted strategy with [`RiskBook::plan_restore`]). Stored like
    /// any level change, but with no audit row: there is no [`Transition`] cause for it.
    pub fn set_level(&mut self, strategy: &str, level: PermissionLevel) {
        self.permissions
            .insert(strategy.to_owned(), PermissionTracker::at_level(level));
        self.changed.insert(strategy.to_owned());
        self.level_changes.fetch_add(1, Ordering::AcqRel);
    }

    /// How many strategies are at L0 now (the halted-strategies gauge).
    pub fn halted_strategies(&self) -> usize {
        self.permissions
            .values()
            .filter(|t| t.level() == PermissionLevel::L0)
            .count()
    }

    /// A copy of a strategy's tracker (a new one at the initial level if it has none).
    pub fn tracker_of(&self, strategy: &str) -> PermissionTracker {
        self.permissions
            .get(strategy)
            .cloned()
            .unwrap_or_else(|| PermissionTracker::new(&self.cfg.permission))
    }

    /// Trackers loaded from storage at start; not marked as changed.
    pub fn restore_trackers(
        &mut self,
        trackers: impl IntoIterator<Item = (String, PermissionTracker)>,
    ) {
        self.permissions.extend(trackers);
    }

    /// The trackers changed since the last drain (as they are now) and the level changes
    /// made since, oldest first; both are forgotten here. A caller that fails to store
    /// them hands them back with [`RiskBook::requeue`].
    pub fn drain_changes(&mut self) -> Changes {
        let changed = std::mem::take(&mut self.changed);
        let mut trackers: Vec<(String, PermissionTracker)> = changed
            .into_iter()
            .filter_map(|s| self.permissions.get(&s).cloned().map(|t| (s, t)))
            .collect();
        trackers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut marks: Vec<StoredMarks> = std::mem::take(&mut self.marks_changed)
            .into_iter()
            .filter_map(|a| {
                let b = self.books.get(&a)?;
                Some(StoredMarks {
                    strategy: b.strategy.clone(),
                    marks: b.marks()?,
                    book: a,
                })
            })
            .collect();
        marks.sort_by(|a, b| a.book.cmp(&b.book));
        Changes {
            trackers,
            transitions: std::mem::take(&mut self.transitions),
            marks,
        }
    }

    /// Hands back what a failed store could not write, to be stored with the next drain:
    /// the strategies are marked again (their trackers are read afresh then) and the level
    /// changes go back before any made since.
    pub fn requeue(&mut self, failed: Changes) {
        self.changed
            .extend(failed.trackers.into_iter().map(|(s, _)| s));
        self.marks_changed
            .extend(failed.marks.into_iter().map(|m| m.book));
        let mut transitions = failed.transitions;
        transitions.append(&mut self.transitions);
        self.transitions = transitions;
    }

    /// Whether anything changed since the last drain.
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty() || !self.transitions.is_empty() || !self.marks_changed.is_empty()
    }

    /// How many level changes this book has made; see the field's doc.
    pub fn level_changes(&self) -> u64 {
        self.level_changes.load(Ordering::Acquire)
    }

    /// The counter behind [`RiskBook::level_changes`], to read without this book's lock.
    pub fn level_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.level_changes)
    }

    /// What a human restore of `strategy` to `level` would make of its tracker, without
    /// changing it: the engine stores the result first and only then [`RiskBook::install`]s
    /// it, so a restore that could not be stored never lets the strategy trade. Refused if
    /// the strategy is not halted, the level is L0 or above `max_restore_level`, or the
    /// operator is empty.
    pub fn plan_restore(
        &self,
        strategy: &str,
        level: PermissionLevel,
        operator: &str,
        now_ms: i64,
    ) -> Result<(PermissionTracker, Transition), PermissionError> {
        let mut t = self.tracker_of(strategy);
        let change = t.restore(&self.cfg.permission, level, operator, now_ms)?;
        Ok((t, change))
    }

    /// Puts a tracker that is already stored in place (after [`RiskBook::plan_restore`]).
    pub fn install(&mut self, strategy: &str, tracker: PermissionTracker) {
        self.permissions.insert(strategy.to_owned(), tracker);
    }

    /// Runs the gates for one proposal; the mode the trade may run in, or why not. A
    /// proposal that passes holds a reservation on its book under `hold_as` (its task id)
    /// until [`RiskBook::release`]: later proposals for the book are judged as if it had
    /// filled as the gates projected it.
    pub fn evaluate(
        &mut self,
        p: &CheckedProposal,
        ctx: &GateContext<'_>,
        hold_as: &str,
    ) -> Result<ExecutionMode, Rejection> {
        // The level as it was, then the book as it stands: a book found in breach halts
        // its strategy for every later proposal, and this one is refused by the hard limit
        // it breaches (a trade can only worsen drawdown and daily loss), naming the cause.
        // Breaches are judged on what is booked; the trade on the book with every trade
        // that passed before it and is not booked yet.
        let level = self.level(&p.strategy);
        let acct = strategy_account(&p.strategy, &p.account);
        let (booked, peak, day_start) = self.judge_book(&acct, &p.strategy, ctx.marks, ctx.now_ms);
        let val = match self.books.get(&acct) {
            Some(b) if !b.pending.is_empty() => b.pending.on(&booked),
            _ => booked,
        };
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
            // A pool the engine does not trade has no market, no price and no state to
            // simulate against: refused for what it is, not for a missing oracle.
            None => {
                return Err(Rejection::new(
                    ReasonCode::UnknownPool,
                    format!(
                        "the engine does not trade pool {}",
                        hex_address(&p.action.pool())
                    ),
                ));
            }
        };
        // An admin change on a contract this market trades through: whatever the other
        // gates say, the market's contracts may no longer behave as simulated.
        if let Some(why) = self.governance_halts.get(&p.action.pool()) {
            return Err(Rejection::new(
                ReasonCode::GovernanceHalt,
                format!(
                    "market {} is halted by the governance sentinel: {why}",
                    hex_address(&p.action.pool())
                ),
            ));
        }
        if let Some(age) = ctx.block_age {
            // The time sentinel sits with the block-lag one, after the kill switch.
            self.kill.check()?;
            stratbox_risk::sentinel::check_block_age(age.max_ms, age.age_ms)?;
        }
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
                equity: val.equity,
                cash: val.cash.saturating_sub(notional),
                gross_exposure: val.gross_exposure.saturating_add(notional),
                increased: Some(AssetExposure {
                    asset: &lp,
                    value: val
                        .exposures
                        .get(&lp)
                        .copied()
                        .unwrap_or_default()
                        .saturating_add(notional),
                }),
            }),
            TradeAction::RemoveLiquidity(_) => TradeEffect::Projected(PostTrade {
                equity: val.equity,
                cash: val.cash.saturating_add(notional),
                gross_exposure: val.gross_exposure.saturating_sub(notional),
                increased: None,
            }),
        };
        let exposures: Vec<AssetExposure<'_>> = val
            .exposures
            .iter()
            .map(|(k, e)| AssetExposure {
                asset: k,
                value: *e,
            })
            .collect();
        let account = AccountRisk {
            equity: val.equity,
            peak_equity: peak,
            day_start_equity: day_start,
            cash: val.cash,
            gross_exposure: val.gross_exposure,
            exposures: &exposures,
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
        let mode = if ctx.unwind {
            let reduces = self.reduces_exposure(&acct, &p.action, &token0);
            stratbox_risk::gates::evaluate_unwind(&self.cfg, &mut self.oracle, &input, reduces)
                .map(|c| c.mode)?
        } else {
            evaluate(&self.cfg, &mut self.oracle, &input).map(|c| c.mode)?
        };
        stratbox_risk::gas::check(&self.cfg.gas, self.gas_price_wei)?;
        let held = held_effect(&val, &account, &trade, &p.action, &token0, &lp);
        self.hold(hold_as, &acct, held);
        Ok(mode)
    }

    fn hold(&mut self, task: &str, acct: &str, held: Pending) {
        if held.is_empty() {
            return;
        }
        if let Some(book) = self.books.get_mut(acct) {
            book.pending.add(&held);
            if let Some((old_acct, old)) = self
                .reservations
                .insert(task.to_owned(), (acct.to_owned(), held))
                && let Some(b) = self.books.get_mut(&old_acct)
            {
                // A task judged twice holds once.
                b.pending.remove(&old);
            }
        }
    }

    /// Drops the reservations held under these task ids (decided, booked or abandoned).
    pub fn release<'t>(&mut self, tasks: impl IntoIterator<Item = &'t str>) {
        for t in tasks {
            if let Some((acct, held)) = self.reservations.remove(t)
                && let Some(b) = self.books.get_mut(&acct)
            {
                b.pending.remove(&held);
            }
        }
    }

    /// How many reservations are held (every one is released when its batch is done).
    pub fn reservations(&self) -> usize {
        self.reservations.len()
    }
}

/// The hard limit a book valued at `v`, with its peak and day-start equity, breaches.
fn book_breach(
    limits: &stratbox_risk::EffectiveLimits,
    v: &Valuation,
    peak: U256,
    day_start: U256,
) -> Option<Rejection> {
    let exposures: Vec<AssetExposure<'_>> = v
        .exposures
        .iter()
        .map(|(k, e)| AssetExposure {
            asset: k,
            value: *e,
        })
        .collect();
    let account = AccountRisk {
        equity: v.equity,
        peak_equity: peak,
        day_start_equity: day_start,
        cash: v.cash,
        gross_exposure: v.gross_exposure,
        exposures: &exposures,
    };
    account_breach(limits, &account)
}

/// What a trade that passed will do to its book, as the gates projected it: the same
/// pessimistic projection the limits judged (a swap pays its full slippage), plus the
/// exposure it gives up.
fn held_effect(
    val: &Valuation,
    account: &AccountRisk<'_>,
    trade: &TradeRisk<'_>,
    action: &TradeAction,
    token0: &str,
    lp: &str,
) -> Pending {
    let Ok(post) = stratbox_risk::limits::project(account, trade) else {
        return Pending::default();
    };
    let mut exposures = val.exposures.clone();
    if let Some(inc) = post.increased {
        exposures.insert(inc.asset.to_owned(), inc.value);
    }
    let given_up = match action {
        TradeAction::Swap {
            zero_for_one: true, ..
        } => Some(token0),
        TradeAction::RemoveLiquidity(_) => Some(lp),
        _ => None,
    };
    if let Some(asset) = given_up
        && let Some(e) = exposures.get_mut(asset)
    {
        *e = e.saturating_sub(trade.notional);
    }
    exposures.retain(|_, e| !e.is_zero());
    let after = Valuation {
        equity: post.equity,
        cash: post.cash,
        gross_exposure: post.gross_exposure,
        exposures,
    };
    Pending::between(val, &after)
}

/// Why a risk configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RiskConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for the config.
    #[error("parsing {path} as TOML: {source}")]
    Toml {
        /// The file.
        path: String,
        /// The parser's error.
        source: toml::de::Error,
    },
    /// The file is not valid JSON for the config.
    #[error("parsing {path} as JSON: {source}")]
    Json {
        /// The file.
        path: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The values parse but break a rule (e.g. a negative limit, min above max).
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
