//! Keeps an engine in step with a live chain the feed follows: before the feed publishes a
//! block, the engine's simulation fork is moved to that block and its watermark (what the
//! Sync Sentinel compares proposals against) set to it.
//!
//! A fork reads the node's state at one fixed block; left alone it would simulate every
//! later trade against a pool price that has long moved. One fresh fork per block is cheap
//! on a local node (a few RPC calls, then state is fetched lazily and cached for the rest of
//! the block) and exact: every simulation sees the state its proposal's event came from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use alloy_primitives::B256;
use stratbox_feed::{BlockHeader, BlockObserver};
use stratbox_proto::U256;

use crate::price_sources::{CHAINLINK, SourceReader, SourcesConfig, TWAP};
use crate::{ChainState, Engine, market_key};
use stratbox_sdk::math::price::spot_price_e18;

/// Why a block could not be followed. The engine then keeps its previous fork and
/// watermark, so proposals on the new block are refused rather than simulated on old state.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Forking the node's state at the block failed (node down, block pruned).
    #[error("forking block {block}: {detail}")]
    Fork {
        /// The block to follow.
        block: u64,
        /// The node or simulator error.
        detail: String,
    },
    /// The node serves another chain than the engine's: a configuration error.
    #[error("the node is chain {node}, the engine simulates chain {engine}")]
    ChainId {
        /// The node's chain id.
        node: u64,
        /// The engine's chain id.
        engine: u64,
    },
}

/// A [`BlockObserver`] that refreshes an engine's fork and watermark.
pub struct ForkFollower {
    engine: Engine,
    rpc_url: String,
    pools: Vec<[u8; 20]>,
    quote_oracles: bool,
    /// The chain's price sources, read every block (see [`crate::price_sources`]).
    sources: Option<SourceReader>,
    /// Markets whose sources fail the guard, by market key, so a failure and a recovery
    /// are logged once each.
    failing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The block the engine's fork is at: a block seen twice (a feed restart) is not
    /// re-forked, a block replaced by a reorg (same number, new hash) is.
    current: tokio::sync::Mutex<Option<(u64, B256)>>,
    /// Forks made, and blocks that could not be followed.
    pub refreshes: AtomicU64,
    /// See `refreshes`.
    pub failures: AtomicU64,
}

impl ForkFollower {
    /// `quote_oracles`: report each pool's price as the three oracle sources after every
    /// refresh (demo and test setups with no independent price feed; see `quote_pools`).
    pub fn new(engine: Engine, rpc_url: &str, pools: &[[u8; 20]], quote_oracles: bool) -> Self {
        ForkFollower {
            engine,
            rpc_url: rpc_url.to_owned(),
            pools: pools.to_vec(),
            quote_oracles,
            sources: None,
            failing: std::sync::Mutex::new(std::collections::HashSet::new()),
            current: tokio::sync::Mutex::new(None),
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Feeds the oracle guard from real sources instead: every block, each pool's spot,
    /// its TWAP and (where configured) its Chainlink-style feed are read at that block into
    /// the oracle guard (the third source, the feeder's reference, arrives over gRPC).
    /// Replaces the self-quoting of `quote_oracles`. Errors on a malformed node URL.
    pub fn with_sources(mut self, cfg: SourcesConfig) -> Result<Self, String> {
        self.sources = Some(SourceReader::new(&self.rpc_url, cfg)?);
        Ok(self)
    }

    /// Moves the engine to `block`. Returns false if it was already there.
    pub async fn follow(&self, block: &BlockHeader) -> Result<bool, FollowError> {
        let mut current = self.current.lock().await;
        if *current == Some((block.number, block.hash)) {
            return Ok(false);
        }
        let started = Instant::now();
        // Built and warmed to the side (the node's answers awaited here, its state read on
        // the blocking pool), then published whole: simulations in flight finish on the
        // state they started with and nothing waits for them.
        let base_fee = block.base_fee_per_gas.map(u128::from).unwrap_or(0);
        let fork = ChainState::fork(
            &self.rpc_url,
            &self.pools,
            Some(block.number),
            base_fee,
            Some(self.engine.chain()),
        )
        .await
        .map_err(|e| FollowError::Fork {
            block: block.number,
            detail: e.to_string(),
        })?;
        let node = fork.chain_id();
        if node != self.engine.chain_id() {
            return Err(FollowError::ChainId {
                node,
                engine: self.engine.chain_id(),
            });
        }
        self.engine.replace_chain(fork);
        self.engine.set_watermark(block.number);
        // The gas gate judges trades at what the chain charges now: its base fee.
        if let Some(fee) = block.base_fee_per_gas {
            self.engine.set_gas_price(alloy_primitives::U256::from(fee));
        }
        if let Some(reader) = &self.sources {
            self.read_sources(reader, block).await;
        } else if self.quote_oracles {
            quote_pools(&self.engine);
        }
        *current = Some((block.number, block.hash));
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        // Every book judged at this block's prices (see `Engine::on_block`).
        self.engine.on_block(block.number).await;
        tracing::debug!(
            block = block.number,
            hash = %block.hash,
            micros = started.elapsed().as_micros() as u64,
            "engine fork follows the chain"
        );
        Ok(true)
    }
}

/// A pool, its token0 and token1, and its sqrt price, as the sources are read for it.
type PricedPool = ([u8; 20], [u8; 20], [u8; 20], U256);

impl ForkFollower {
    /// Reads every pool's sources at `block` into the guard and logs markets whose sources
    /// start or stop failing it; a start is also posted as an alert (`StratboxMarketHalted`,
    /// guard `oracle`).
    async fn read_sources(&self, reader: &SourceReader, block: &BlockHeader) {
        let pools: Vec<PricedPool> = self
            .engine
            .chain()
            .pool_infos()
            .iter()
            .map(|(a, i)| (*a, i.token0, i.token1, i.sqrt_price_x96))
            .collect();
        let reads = pools.iter().map(|(pool, token0, token1, _)| async move {
            let twap = reader.twap(*pool, block.number).await;
            let feed = match reader.feed_of(pool) {
                Some(feed) => Some(
                    reader
                        .chainlink(feed, (*token0, *token1), block.number, block.timestamp)
                        .await,
                ),
                None => None,
            };
            (twap, feed)
        });
        let (readings, ether) = futures::future::join(
            futures::future::join_all(reads),
            reader.ether_mark(block.number, block.timestamp),
        )
        .await;
        match ether {
            Some(Ok(mark)) => {
                let was = self.engine.set_ether_mark(mark, block.number);
                if was.is_some_and(|w| w.stale) {
                    tracing::info!(block = block.number, "the ether mark is fresh again");
                }
            }
            // Gas stays valued at the last fresh mark; said once when the feed goes stale.
            Some(Err(why)) => {
                let first = self.engine.ether_mark_stale(&why);
                if first {
                    tracing::warn!(block = block.number, reason = %why, "the ether feed is not fresh: gas is valued at its last fresh mark");
                }
            }
            None => {}
        }
        for ((_, token0, token1, sqrt), (twap, feed)) in pools.iter().zip(readings) {
            let market = market_key(token0, token1);
            self.engine.set_oracle_spot(&market, spot_price_e18(*sqrt));
            for (source, reading) in [(TWAP, Some(twap)), (CHAINLINK, feed)] {
                match reading {
                    Some(Ok(price)) => self.engine.update_oracle(&market, source, price),
                    Some(Err(why)) => self.engine.mark_oracle_stale(&market, source, &why),
                    None => {}
                }
            }
            // Said once when a market's sources part and once when they agree again; the
            // gate itself halts the market on its next proposal.
            let failure = self.engine.oracle_failure(&market);
            let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
            match failure {
                None => {
                    if failing.remove(&market) {
                        tracing::info!(market = %market, block = block.number, "oracle sources agree with the pool again");
                    }
                }
                Some((code, detail)) => {
                    if failing.insert(market.clone()) {
                        tracing::warn!(market = %market, block = block.number, reason = %code, detail = %detail, "oracle sources fail the guard: the market's next proposal halts it");
                        self.engine
                            .alerts()
                            .raise(crate::alert::Alert::market_halted(
                                &market,
                                "oracle",
                                &format!("{code}: {detail}"),
                            ));
                    }
                }
            }
        }
    }
}

impl BlockObserver for ForkFollower {
    fn head<'a>(
        &'a self,
        block: &'a BlockHeader,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Err(e) = self.follow(block).await {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(block = block.number, error = %e, "engine cannot follow the chain; keeping its previous fork and watermark");
            }
        })
    }
}

/// Keeps `follower` at the node's head without publishing anything: for an engine that
/// forks a node but runs no feed (no bus). Polls `eth_getBlockByNumber(latest)` every
/// `interval` until `stop` turns true; an unreachable node is retried.
pub async fn follow_head(
    rpc_url: String,
    follower: std::sync::Arc<ForkFollower>,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use alloy::providers::{Provider, RootProvider};
    let provider = match RootProvider::<alloy::network::Ethereum>::connect(&rpc_url).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(url = %rpc_url, error = %e, "cannot follow the node's head");
            return;
        }
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
        {
            Ok(Some(b)) => {
                let header = BlockHeader {
                    number: b.header.number,
                    hash: b.header.hash,
                    parent_hash: b.header.parent_hash,
                    timestamp: b.header.timestamp,
                    base_fee_per_gas: b.header.base_fee_per_gas,
                };
                follower.head(&header).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading the node's head failed; retrying"),
        }
    }
}

/// Oracle sources and their fixed offsets from the pool price, in tenths of a basis point,
/// so the triple-oracle gate sees three slightly different but agreeing prices.
const SOURCES: [(&str, i64); 3] = [("pool-spot", 0), ("feed-a", 7), ("feed-b", -5)];

/// Reports a pool's spot price as the three oracle sources (slightly apart, agreeing).
pub fn quote_pool(engine: &Engine, token0: &[u8; 20], token1: &[u8; 20], sqrt_price_x96: U256) {
    let spot = spot_price_e18(sqrt_price_x96);
    for (source, tenth_bps) in SOURCES {
        engine.update_oracle(&market_key(token0, token1), source, nudge(spot, tenth_bps));
    }
}

/// Quotes every pool of the engine's chain from its own state. For demos and tests, which
/// have no independent price feed: it makes the triple-oracle check agree with the pool.
pub fn quote_pools(engine: &Engine) {
    let pools: Vec<([u8; 20], [u8; 20], U256)> = engine
        .chain()
        .pool_infos()
        .iter()
        .map(|(_, i)| (i.token0, i.token1, i.sqrt_price_x96))
        .collect();
    for (token0, token1, sqrt) in pools {
        quote_pool(engine, &token0, &token1, sqrt);
    }
}

fn nudge(price: U256, tenth_bps: i64) -> U256 {
    let delta = price * U256::from(tenth_bps.unsigned_abs()) / U256::from(100_000u32);
    if tenth_bps >= 0 {
        price + delta
    } else {
        price - delta
    }
}
