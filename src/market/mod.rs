//! The market `stratbox up` runs: a random walk of real swaps on the real Uniswap V3
//! bytecode, with three oracle prices per market and the engine's watermark advanced block
//! by block.
//!
//! - [`Walk`]: on the in-process revm chain, published on the bus as the chain adapter
//!   would publish a live chain's.
//! - [`anvil::AnvilMarket`]: real swap transactions on an Anvil node; the chain adapter
//!   (stratbox-feed) follows the node and publishes the events.
//! - [`follow::ForkFollower`]: keeps an engine's fork and watermark at the feed's block.

pub mod anvil;

use std::sync::Arc;

use anyhow::Context;
use rand::SeedableRng;
use rand::rngs::StdRng;
use stratbox_bus::{Bus, publish_event};
use stratbox_engine::Engine;
use stratbox_engine::follow::quote_pool;
use stratbox_feed::{BlockHeader, new_block_event, pool_event};
use stratbox_proto::v1::ChainEvent;
use stratbox_sim::{Address, Executed};

/// The trader the random walk swaps from; not a strategy's account.
const WALKER: Address = Address::new([0x5a; 20]);

/// The in-process demo market: a seeded random walk of swaps on the simulator, so a run
/// with the same seed is replayed identically.
pub struct Walk {
    rng: StdRng,
    stream: String,
    /// Blocks stepped so far, for the `up` summary.
    pub blocks: u64,
    /// Swaps made so far (one per block), for the `up` summary.
    pub swaps: u64,
}

impl Walk {
    /// A walk publishing on `stream` (normally `stratbox_bus::CHAIN_EVENTS_STREAM`).
    pub fn new(seed: u64, stream: &str) -> Self {
        Walk {
            rng: StdRng::seed_from_u64(seed),
            stream: stream.to_owned(),
            blocks: 0,
            swaps: 0,
        }
    }

    /// One block with one random swap: commits it, publishes its events, updates oracles
    /// and the engine's watermark. Returns the events published.
    pub async fn step(&mut self, engine: &Engine, bus: &Arc<dyn Bus>) -> anyhow::Result<usize> {
        let rng = &mut self.rng;
        let (executed, chain_id, prices) =
            engine.update_chain(|chain| -> anyhow::Result<_> {
                chain.next_block();
                let executed = chain.random_swap(rng, WALKER).context("random-walk swap")?;
                let mut prices = Vec::new();
                for pool in chain.pools() {
                    let state = chain.pool_state(pool.address).context("pool state")?;
                    prices.push((pool.token0, pool.token1, state.sqrt_price_x96));
                }
                Ok((executed, chain.chain_id(), prices))
            })??;
        self.blocks += 1;
        self.swaps += 1;
        let block = executed.block_number;
        for (token0, token1, sqrt) in prices {
            quote_pool(engine, &token0.into_array(), &token1.into_array(), sqrt);
        }
        let events = chain_events(chain_id, &executed);
        for event in &events {
            publish_event(bus.as_ref(), &self.stream, event).await?;
        }
        engine.set_watermark(block);
        // Every book judged at this block's prices (see `Engine::on_block`).
        engine.on_block(block).await;
        Ok(events.len())
    }
}

/// The embedded chain has no block hashes of its own; derive a stable one from the
/// synthetic transaction hash so event ids stay unique per block.
fn header(e: &Executed) -> BlockHeader {
    BlockHeader {
        number: e.block_number,
        hash: e.tx_hash,
        parent_hash: Default::default(),
        timestamp: e.timestamp,
        // The embedded chain charges no base fee.
        base_fee_per_gas: None,
    }
}

/// The same events the chain adapter publishes for a live chain: the pool events of the
/// block in log order, then the `new_block` event that closes it.
fn chain_events(chain_id: u64, e: &Executed) -> Vec<ChainEvent> {
    let header = header(e);
    let mut out: Vec<ChainEvent> = e
        .events
        .iter()
        .map(|ev| {
            pool_event(
                chain_id,
                &header,
                u64::from(ev.log_index),
                &e.tx_hash,
                &ev.event,
            )
        })
        .collect();
    out.push(new_block_event(chain_id, &header));
    out
}
