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
            current: tokio::sync::Mutex::new(None),
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
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
        if self.quote_oracles {
            quote_pools(&self.engine);
        }
        *current = Some((block.number, block.hash));
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            block = block.number,
            hash = %block.hash,
            micros = started.elapsed().as_micros() as u64,
            "engine fork follows the chain"
        );
        Ok(true)
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
