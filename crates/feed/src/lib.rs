//! The chain adapter and data processor (Zone B).
//!
//! [`Feed`] follows a chain through alloy, turns each block's Uniswap V3 Swap/Mint/Burn logs
//! into `ChainEvent`s ([`events_from_logs`], also used on logs of the embedded revm chain),
//! and appends them to the bus stream `stream:chain:events`. Every event carries the
//! watermark `last_sync_block` the engine's Sync Sentinel checks, and a stable `event_id`
//! consumers deduplicate on, since delivery is at least once.
#![warn(missing_docs)]

mod canon;
mod checkpoint;
mod error;
mod follower;
mod normalise;

pub use canon::CanonicalChain;
pub use checkpoint::{Checkpoint, FileCheckpoint, MemoryCheckpoint, SavedChain};
pub use error::FeedError;
pub use follower::{BlockObserver, Feed, FeedConfig, PollReport, StartBlock};
pub use normalise::{
    BlockHeader, BlockLog, Burn, Mint, POOL_EVENT_TOPICS, Swap, event_id, events_from_logs,
    new_block_event, new_trace_id, pool_event,
};
