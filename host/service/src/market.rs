//! What the host knows of the market: the pools' latest state, the watermark, and the
//! recent events strategies may ask for through `host.history`.
//!
//! Everything here but the balances is derived from bus events only (plus the pools'
//! static fields, which the engine lists at start), so two hosts reading the same stream build the same
//! snapshots, and a strategy never learns more than the watermark allows.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};

use stratbox_host::History;
use stratbox_host::wit::{Event, PoolState, Snapshot, event_block, event_pool};
use stratbox_proto::v1;

use crate::balances::BookBalances;

/// Events kept per pool for `host.history`. Older ones are dropped; strategies that need
/// longer look-backs should keep their own aggregates.
pub const HISTORY_PER_POOL: usize = 4096;

/// The market as of the watermark.
#[derive(Debug, Default)]
pub struct Market {
    pools: BTreeMap<String, PoolState>,
    /// Each book's balances, followed from the engine (see [`crate::balances`]).
    balances: BookBalances,
    watermark: u64,
    timestamp: u64,
    history: SharedMarketHistory,
    /// The engine's first market, as it listed them: what `{pool}` in a config means.
    first_pool: Option<String>,
}

impl Market {
    /// The pool `{pool}` in a strategy's config stands for: the engine's first market, else
    /// the lowest pool address known.
    pub fn first_pool(&self) -> Option<&str> {
        self.first_pool
            .as_deref()
            .or_else(|| self.pools.keys().next().map(String::as_str))
    }

    /// Starts from the engine's list of markets (static fields and state at start).
    pub fn from_markets(markets: &[v1::Market]) -> Self {
        let mut market = Market::default();
        for m in markets {
            let text = |a: &Option<v1::Address>| {
                a.as_ref()
                    .map(|a| a.value.to_ascii_lowercase())
                    .unwrap_or_default()
            };
            let amount = |a: &Option<v1::Amount>| {
                a.as_ref()
                    .map(|a| a.value.clone())
                    .unwrap_or_else(|| "0".into())
            };
            let pool = text(&m.pool);
            if market.first_pool.is_none() {
                market.first_pool = Some(pool.clone());
            }
            market.watermark = market.watermark.max(m.block);
            market.pools.insert(
                pool.clone(),
                PoolState {
                    pool,
                    token0: text(&m.token0),
                    token1: text(&m.token1),
                    fee: m.fee,
                    tick_spacing: m.tick_spacing,
                    sqrt_price_x96: amount(&m.sqrt_price_x96),
                    tick: m.tick,
                    liquidity: amount(&m.liquidity),
                },
            );
        }
        market
    }

    /// The balances instances are shown, which [`crate::balances::follow`] keeps current.
    pub fn book_balances(&self) -> &BookBalances {
        &self.balances
    }

    /// The events seen so far, shared with the instances' `host.history` imports.
    pub fn history(&self) -> SharedMarketHistory {
        self.history.clone()
    }

    /// The highest block seen: strategies see nothing past it.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Applies a delivered event: pool state, watermark, history.
    pub fn apply(&mut self, event: &Event, last_sync_block: u64, timestamp: u64) {
        self.watermark = self.watermark.max(last_sync_block).max(event_block(event));
        self.timestamp = self.timestamp.max(timestamp);
        if let Event::NewBlock(b) = event {
            self.timestamp = self.timestamp.max(b.timestamp);
        }
        if let Event::Swap(s) = event
            && let Some(pool) = self.pools.get_mut(&s.pool)
        {
            pool.sqrt_price_x96.clone_from(&s.sqrt_price_x96);
            pool.tick = s.tick;
            pool.liquidity.clone_from(&s.liquidity);
        }
        self.history.push(event);
    }

    /// Blocks after `ancestor` are gone: drop their history and lower the watermark. Pool
    /// state is refreshed by the canonical events the feed re-publishes next.
    pub fn rewind(&mut self, ancestor: u64) {
        self.watermark = self.watermark.min(ancestor);
        self.history.rewind(ancestor);
    }

    /// The snapshot an instance of `strategy` trading for `account` is given with the
    /// current event: the market, and that book's balances as the engine last published.
    pub fn snapshot(&self, strategy: &str, account: &str) -> Snapshot {
        Snapshot {
            last_sync_block: self.watermark,
            timestamp: self.timestamp,
            pools: self.pools.values().cloned().collect(),
            balances: self.balances.of(strategy, account),
        }
    }
}

/// Recent events per pool, shared by every instance on this host.
#[derive(Debug, Default, Clone)]
pub struct SharedMarketHistory {
    inner: Arc<RwLock<BTreeMap<String, VecDeque<Event>>>>,
}

impl SharedMarketHistory {
    fn push(&self, event: &Event) {
        let Some(pool) = event_pool(event) else {
            return;
        };
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let events = inner.entry(pool.to_owned()).or_default();
        if events.len() == HISTORY_PER_POOL {
            events.pop_front();
        }
        events.push_back(event.clone());
    }

    fn rewind(&self, ancestor: u64) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for events in inner.values_mut() {
            while events.back().is_some_and(|e| event_block(e) > ancestor) {
                events.pop_back();
            }
        }
    }
}

impl History for SharedMarketHistory {
    fn events(&mut self, pool: &str, from_block: u64, limit: usize, watermark: u64) -> Vec<Event> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(events) = inner.get(&pool.to_ascii_lowercase()) else {
            return Vec::new();
        };
        // Events are in chain order: skip to `from_block`, stop at the watermark.
        let start = events.partition_point(|e| event_block(e) < from_block);
        events
            .range(start..)
            .take_while(|e| event_block(e) <= watermark)
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_host::wit::{EventOrigin, SwapEvent};

    fn swap(block: u64, tick: i32) -> Event {
        Event::Swap(SwapEvent {
            origin: EventOrigin {
                block,
                log_index: 0,
                tx_hash: String::new(),
            },
            pool: "0xaa".into(),
            zero_for_one: true,
            amount_in: "1".into(),
            amount_out: "1".into(),
            sqrt_price_x96: "1".into(),
            liquidity: "1".into(),
            tick,
        })
    }

    #[test]
    fn history_never_passes_the_watermark_and_rewinds() {
        let mut market = Market::default();
        for b in 1..=10 {
            market.apply(&swap(b, b as i32), b, b);
        }
        let mut h = market.history();
        let got = h.events("0xAA", 3, 100, 6);
        assert_eq!(
            got.iter().map(event_block).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
        market.rewind(4);
        assert_eq!(market.watermark(), 4);
        assert_eq!(h.events("0xaa", 0, 100, 100).len(), 4);
    }
}
