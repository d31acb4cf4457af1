//! Triple-oracle agreement: a market trades only while its independent price sources agree.
//!
//! The guard keeps the latest price per (market, source) as a U256 fixed-point number with
//! 18 decimals. [`OracleGuard::check`] takes the *fresh* quotes (at most `max_age_blocks`
//! older than the engine's block; a quote from a later block than the engine's is fresh),
//! requires at least `min_sources` of them (three by default), takes their median (the mean
//! of the two middle quotes for an even count) and requires every fresh quote to lie within
//! `max_deviation_bps` of it, boundary included. The comparison is exact (no rounding).
//!
//! **Halting.** The first failed check halts the market and reports the cause
//! (`oracle_missing` or `oracle_disagreement`); from then on proposals get `market_halted`.
//! A halted market resumes only when the guard sees agreement again *on a fresh round*:
//! every quote in the agreeing set must have arrived after the halt. Quotes that were
//! already there when the market halted are the ones that disagreed (or were too few), so
//! they cannot vouch for recovery; waiting for each source to report again means a single
//! source flickering back into line does not reopen the market on stale company.
//! Recovery is judged lazily, at the next check, because nothing else runs the gates.
//!
//! **Anchored on the traded price.** A market whose traded pool's spot price has been set
//! ([`OracleGuard::set_spot`], every block by the engine's chain follower) compares every
//! fresh quote with that spot instead of with the median: each source must lie within
//! `max_deviation_bps` of the price trades execute at, so a pool pushed away from its
//! time-weighted average, its price feed and the off-chain reference in one block fails
//! however well those three agree among themselves. A spot older than `max_age_blocks` makes
//! the market `oracle_missing`. Without a spot (the embedded demo, unit tests) the median is
//! the reference as before.
//!
//! **Stale sources.** A source the engine read but judged not fresh by its own rule (a
//! Chainlink round whose `updatedAt` is too old, a pool oracle that cannot answer for the
//! window) is marked with [`OracleGuard::mark_stale`] and the reason: it counts as absent
//! until it reports again, and the refusal names it and why.
//!
//! A market with no quotes at all is refused with `oracle_missing` but not halted and not
//! stored: proposals name markets, and an untrusted strategy must not be able to grow the
//! guard's state by inventing them.
//!
//! The check does not allocate: the guard is keyed by any `K` borrowed as `Q` (e.g.
//! `String`/`str` or an address type), and the median is taken on a stack array.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use ruint::aliases::U256;

use crate::config::OracleConfig;
use crate::ratio::{cmp_ratio_bps, ratio_bps};
use crate::reason::{ReasonCode, Rejection};

/// Most sources one market may have; a further source is `TooManySources`.
pub use crate::config::MAX_SOURCES;

/// A quote update that was refused; the guard is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OracleError {
    #[error("source {name:?} reported a zero price")]
    /// A price of zero was reported.
    ZeroPrice {
        /// The source.
        name: String,
    },
    #[error("source {name:?} reported block {block}, older than its last quote at {last}")]
    /// The quote's block is older than the source's last quote.
    OutOfOrder {
        /// The source.
        name: String,
        /// The refused quote's block.
        block: u64,
        /// Block of the quote already held.
        last: u64,
    },
    #[error("a market can have at most {MAX_SOURCES} sources")]
    /// A new source would exceed [`MAX_SOURCES`] for the market.
    TooManySources,
    #[error("a source needs a name")]
    /// The source name was empty.
    EmptySource,
}

#[derive(Debug, Clone)]
struct Quote {
    source: String,
    price_e18: U256,
    block: u64,
    /// The guard-wide update sequence number, to tell quotes that arrived after a halt.
    seq: u64,
    /// Why the source's last reading was not fresh (see [`OracleGuard::mark_stale`]); such a
    /// quote counts as absent until the source reports again.
    stale: Option<String>,
}

/// The traded pool's own price: what every source is compared with when set.
#[derive(Debug, Clone, Copy)]
struct Spot {
    price_e18: U256,
    block: u64,
}

/// Why and when a market was halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Halt {
    /// The failure that halted it: `oracle_missing` or `oracle_disagreement`.
    pub code: ReasonCode,
    /// The engine block of the check that halted it.
    pub at_block: u64,
    seq: u64,
}

#[derive(Debug, Clone, Default)]
struct MarketState {
    quotes: Vec<Quote>,
    halted: Option<Halt>,
    spot: Option<Spot>,
}

/// What the current fresh quotes say about a market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assessment {
    /// Enough fresh quotes, all within `max_deviation_bps` of the median.
    Agree {
        /// Median of the fresh quotes, 18-decimal fixed point.
        median_e18: U256,
        /// Number of fresh quotes.
        sources: usize,
    },
    /// Fewer fresh quotes than `min_sources`.
    Missing {
        /// Number of fresh quotes.
        fresh: usize,
        /// The configured `min_sources`.
        required: usize,
    },
    /// Some fresh quote lies beyond `max_deviation_bps` of the reference: the pool's spot
    /// when the market has one, else the median.
    Disagree {
        /// Median of the fresh quotes, 18-decimal fixed point.
        median_e18: U256,
        /// What the quotes were compared with: the spot, or the median.
        against_e18: U256,
        /// The quote furthest from `against_e18`.
        worst_e18: U256,
        /// Distance of `worst_e18` from `against_e18`, bps of it rounded down.
        deviation_bps: u64,
    },
}

/// Latest quote per (market, source) and each market's halt state; keyed by `K`.
#[derive(Debug, Clone)]
pub struct OracleGuard<K = String> {
    markets: HashMap<K, MarketState>,
    seq: u64,
}

impl<K> Default for OracleGuard<K> {
    fn default() -> Self {
        OracleGuard {
            markets: HashMap::new(),
            seq: 0,
        }
    }
}

impl<K: Eq + Hash> OracleGuard<K> {
    /// A guard with no markets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `source`'s latest price for `market`, observed at `block`. A quote older than
    /// the source's last one is refused (feeds can arrive out of order); the same block
    /// replaces it.
    pub fn update<Q>(
        &mut self,
        market: &Q,
        source: &str,
        price_e18: U256,
        block: u64,
    ) -> Result<(), OracleError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if source.is_empty() {
            return Err(OracleError::EmptySource);
        }
        if price_e18.is_zero() {
            return Err(OracleError::ZeroPrice {
                name: source.to_owned(),
            });
        }
        let seq = self.seq.wrapping_add(1);
        let state = match self.markets.get_mut(market) {
            Some(s) => s,
            None => self.markets.entry(market.to_owned()).or_default(),
        };
        if let Some(q) = state.quotes.iter_mut().find(|q| q.source == source) {
            if block < q.block {
                return Err(OracleError::OutOfOrder {
                    name: source.to_owned(),
                    block,
                    last: q.block,
                });
            }
            q.price_e18 = price_e18;
            q.block = block;
            q.seq = seq;
            q.stale = None;
        } else {
            if state.quotes.len() >= MAX_SOURCES {
                return Err(OracleError::TooManySources);
            }
            state.quotes.push(Quote {
                source: source.to_owned(),
                price_e18,
                block,
                seq,
                stale: None,
            });
        }
        self.seq = seq;
        Ok(())
    }

    /// Records the traded pool's spot price for `market` at `block`: from then on every
    /// source is compared with it (see the module docs). An older block than the last spot's
    /// is ignored.
    pub fn set_spot<Q>(
        &mut self,
        market: &Q,
        price_e18: U256,
        block: u64,
    ) -> Result<(), OracleError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if price_e18.is_zero() {
            return Err(OracleError::ZeroPrice {
                name: "spot".to_owned(),
            });
        }
        let state = match self.markets.get_mut(market) {
            Some(s) => s,
            None => self.markets.entry(market.to_owned()).or_default(),
        };
        if state.spot.is_none_or(|s| s.block <= block) {
            state.spot = Some(Spot { price_e18, block });
        }
        Ok(())
    }

    /// Marks `source` of `market` not fresh, saying `why`: it counts as absent until its next
    /// [`OracleGuard::update`]. Its last price is kept (not used) so a refusal can show it.
    pub fn mark_stale<Q>(&mut self, market: &Q, source: &str, why: &str) -> Result<(), OracleError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if source.is_empty() {
            return Err(OracleError::EmptySource);
        }
        let state = match self.markets.get_mut(market) {
            Some(s) => s,
            None => self.markets.entry(market.to_owned()).or_default(),
        };
        if let Some(q) = state.quotes.iter_mut().find(|q| q.source == source) {
            if q.stale.as_deref() != Some(why) {
                q.stale = Some(why.to_owned());
            }
            return Ok(());
        }
        if state.quotes.len() >= MAX_SOURCES {
            return Err(OracleError::TooManySources);
        }
        state.quotes.push(Quote {
            source: source.to_owned(),
            price_e18: U256::ZERO,
            block: 0,
            seq: 0,
            stale: Some(why.to_owned()),
        });
        Ok(())
    }

    /// Whether `market` is halted.
    pub fn halt<Q>(&self, market: &Q) -> Option<Halt>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.markets.get(market).and_then(|s| s.halted)
    }

    /// What the fresh quotes say right now, without changing the halt state.
    pub fn assess<Q>(&self, cfg: &OracleConfig, market: &Q, now_block: u64) -> Assessment
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.markets.get(market) {
            Some(s) => assess(s, cfg, now_block).0,
            None => Assessment::Missing {
                fresh: 0,
                required: cfg.min_sources as usize,
            },
        }
    }

    /// Why a proposal on `market` would fail the oracle gate now (the code a market that is
    /// not halted would get, and the sources named), or `None` when the fresh quotes agree.
    /// Changes nothing: for watching, not for gating.
    pub fn failure<Q>(
        &self,
        cfg: &OracleConfig,
        market: &Q,
        now_block: u64,
    ) -> Option<(ReasonCode, String)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(state) = self.markets.get(market) else {
            return Some((
                ReasonCode::OracleMissing,
                "no oracle quotes for this market".to_owned(),
            ));
        };
        let (a, _) = assess(state, cfg, now_block);
        let code = match a {
            Assessment::Agree { .. } => return None,
            Assessment::Missing { .. } => ReasonCode::OracleMissing,
            Assessment::Disagree { .. } => ReasonCode::OracleDisagreement,
        };
        Some((code, explain(state, cfg, now_block, &a)))
    }

    /// The oracle gate for a proposal on `market` at the engine's `now_block`. Returns the
    /// median price on success (see the module docs for halting and recovery).
    pub fn check<Q>(
        &mut self,
        cfg: &OracleConfig,
        market: &Q,
        now_block: u64,
    ) -> Result<U256, Rejection>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let halt_seq = self.seq;
        let Some(state) = self.markets.get_mut(market) else {
            return Err(Rejection::new(
                ReasonCode::OracleMissing,
                format!(
                    "no oracle quotes for this market (need {})",
                    cfg.min_sources
                ),
            ));
        };
        let (a, oldest_seq) = assess(state, cfg, now_block);
        match (state.halted, a) {
            (None, Assessment::Agree { median_e18, .. }) => Ok(median_e18),
            (Some(h), Assessment::Agree { median_e18, .. }) if oldest_seq > h.seq => {
                state.halted = None;
                Ok(median_e18)
            }
            (Some(h), Assessment::Agree { .. }) => Err(Rejection::new(
                ReasonCode::MarketHalted,
                format!(
                    "market halted at block {} ({}); sources agree again but not all have reported since",
                    h.at_block, h.code
                ),
            )),
            (Some(h), fail) => Err(Rejection::new(
                ReasonCode::MarketHalted,
                format!(
                    "market halted at block {} ({}); now: {}",
                    h.at_block,
                    h.code,
                    explain(state, cfg, now_block, &fail)
                ),
            )),
            (None, fail) => {
                let code = match fail {
                    Assessment::Missing { .. } => ReasonCode::OracleMissing,
                    _ => ReasonCode::OracleDisagreement,
                };
                if cfg.halt_on_failure {
                    state.halted = Some(Halt {
                        code,
                        at_block: now_block,
                        seq: halt_seq,
                    });
                }
                Err(Rejection::new(code, explain(state, cfg, now_block, &fail)))
            }
        }
    }
}

/// A failed assessment in words, naming the sources: which one is off and by how much, or
/// which are not fresh and why. Only on a refusal, so it may allocate.
fn explain(state: &MarketState, cfg: &OracleConfig, now_block: u64, a: &Assessment) -> String {
    let name_of = |price: U256| {
        state
            .quotes
            .iter()
            .find(|q| q.stale.is_none() && q.price_e18 == price)
            .map_or("a source", |q| q.source.as_str())
    };
    match a {
        Assessment::Agree {
            median_e18,
            sources,
        } => {
            format!("{sources} sources agree on {median_e18}")
        }
        Assessment::Missing { fresh, required } => {
            let mut text = format!("{fresh} fresh oracle sources, need {required}");
            let mut not_fresh = Vec::new();
            if let Some(spot) = state.spot
                && now_block.saturating_sub(spot.block) > cfg.max_age_blocks
            {
                not_fresh.push(format!("the pool's spot (block {})", spot.block));
            }
            for q in &state.quotes {
                if let Some(why) = &q.stale {
                    not_fresh.push(format!("{} ({why})", q.source));
                } else if now_block.saturating_sub(q.block) > cfg.max_age_blocks {
                    not_fresh.push(format!(
                        "{} (last quote at block {}, more than {} blocks ago)",
                        q.source, q.block, cfg.max_age_blocks
                    ));
                }
            }
            if !not_fresh.is_empty() {
                text.push_str("; not fresh: ");
                text.push_str(&not_fresh.join(", "));
            }
            text
        }
        Assessment::Disagree {
            median_e18,
            against_e18,
            worst_e18,
            deviation_bps,
        } => {
            if state.spot.is_some() {
                format!(
                    "{} quotes {worst_e18}, {deviation_bps} bps from the pool's spot {against_e18} (sources' median {median_e18})",
                    name_of(*worst_e18)
                )
            } else {
                format!(
                    "{} quotes {worst_e18}, {deviation_bps} bps from the median {median_e18}",
                    name_of(*worst_e18)
                )
            }
        }
    }
}

/// The assessment and the oldest update sequence number among the fresh quotes.
fn assess(state: &MarketState, cfg: &OracleConfig, now_block: u64) -> (Assessment, u64) {
    let mut prices = [U256::ZERO; MAX_SOURCES];
    let mut n = 0usize;
    let mut oldest_seq = u64::MAX;
    for q in &state.quotes {
        let age = now_block.saturating_sub(q.block);
        if age > cfg.max_age_blocks || q.stale.is_some() {
            continue;
        }
        if let Some(slot) = prices.get_mut(n) {
            *slot = q.price_e18;
            n = n.saturating_add(1);
            oldest_seq = oldest_seq.min(q.seq);
        }
    }
    let required = (cfg.min_sources as usize).max(1);
    let fresh = prices.get_mut(..n).unwrap_or_default();
    let spot_stale = state
        .spot
        .is_some_and(|s| now_block.saturating_sub(s.block) > cfg.max_age_blocks);
    if n < required || fresh.is_empty() || spot_stale {
        return (Assessment::Missing { fresh: n, required }, oldest_seq);
    }
    fresh.sort_unstable();
    let median = median_sorted(fresh);
    let against = state.spot.map_or(median, |s| s.price_e18);
    let mut worst = (U256::ZERO, against);
    for &p in fresh.iter() {
        let d = p.abs_diff(against);
        if d > worst.0 {
            worst = (d, p);
        }
    }
    let within = cmp_ratio_bps(worst.0, against, cfg.max_deviation_bps.into()).is_le();
    let a = if within {
        Assessment::Agree {
            median_e18: median,
            sources: n,
        }
    } else {
        Assessment::Disagree {
            median_e18: median,
            against_e18: against,
            worst_e18: worst.1,
            deviation_bps: ratio_bps(worst.0, against),
        }
    };
    (a, oldest_seq)
}

/// Median of a sorted non-empty slice; the mean of the middle two (rounded down) for an
/// even count, computed as `lo + (hi - lo) / 2` so it cannot overflow.
fn median_sorted(sorted: &[U256]) -> U256 {
    let len = sorted.len();
    let mid = len / 2;
    let hi = sorted.get(mid).copied().unwrap_or_default();
    if len % 2 == 1 {
        return hi;
    }
    let lo = sorted
        .get(mid.saturating_sub(1))
        .copied()
        .unwrap_or_default();
    lo.saturating_add(
        hi.saturating_sub(lo)
            .checked_div(U256::from(2u8))
            .unwrap_or_default(),
    )
}
