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
    /// Some fresh quote lies beyond `max_deviation_bps` of the median.
    Disagree {
        /// Median of the fresh quotes, 18-decimal fixed point.
        median_e18: U256,
        /// The quote furthest from the median and its distance in bps (rounded down).
        worst_e18: U256,
        /// Distance of `worst_e18` from the median, bps rounded down.
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
        } else {
            if state.quotes.len() >= MAX_SOURCES {
                return Err(OracleError::TooManySources);
            }
            state.quotes.push(Quote {
                source: source.to_owned(),
                price_e18,
                block,
                seq,
            });
        }
        self.seq = seq;
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
                    describe(&fail)
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
                Err(Rejection::new(code, describe(&fail)))
            }
        }
    }
}

fn describe(a: &Assessment) -> String {
    match a {
        Assessment::Agree {
            median_e18,
            sources,
        } => {
            format!("{sources} sources agree on {median_e18}")
        }
        Assessment::Missing { fresh, required } => {
            format!("{fresh} fresh oracle sources, need {required}")
        }
        Assessment::Disagree {
            median_e18,
            worst_e18,
            deviation_bps,
        } => {
            format!("a source quotes {worst_e18}, {deviation_bps} bps from the median {median_e18}")
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
        if age > cfg.max_age_blocks {
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
    if n < required || fresh.is_empty() {
        return (Assessment::Missing { fresh: n, required }, oldest_seq);
    }
    fresh.sort_unstable();
    let median = median_sorted(fresh);
    let mut worst = (U256::ZERO, median);
    for &p in fresh.iter() {
        let d = p.abs_diff(median);
        if d > worst.0 {
            worst = (d, p);
        }
    }
    let within = cmp_ratio_bps(worst.0, median, cfg.max_deviation_bps.into()).is_le();
    let a = if within {
        Assessment::Agree {
            median_e18: median,
            sources: n,
        }
    } else {
        Assessment::Disagree {
            median_e18: median,
            worst_e18: worst.1,
            deviation_bps: ratio_bps(worst.0, median),
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
