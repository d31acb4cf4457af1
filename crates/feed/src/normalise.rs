//! Pool logs -> `ChainEvent`s. Pure: the live follower and the embedded in-process chain
//! (stratbox-sim's revm logs) both go through here, so a strategy sees the same events
//! whichever produced them.

use alloy_primitives::{Address, B256, Log, U256};
use alloy_sol_types::{SolEvent, sol};
use stratbox_evm::pool_events::{PoolEvent, decode_pool_log};
use stratbox_proto::v1::{
    self, Amount, BlockInfo, ChainEvent, EventOrigin, LiquidityEvent, SwapEvent, TraceContext,
    chain_event::Kind,
};

sol! {
    /// Uniswap V3 pool events (v3-core `IUniswapV3PoolEvents`).
    event Swap(
        address indexed sender,
        address indexed recipient,
        int256 amount0,
        int256 amount1,
        uint160 sqrtPriceX96,
        uint128 liquidity,
        int24 tick
    );
    event Mint(
        address sender,
        address indexed owner,
        int24 indexed tickLower,
        int24 indexed tickUpper,
        uint128 amount,
        uint256 amount0,
        uint256 amount1
    );
    event Burn(
        address indexed owner,
        int24 indexed tickLower,
        int24 indexed tickUpper,
        uint128 amount,
        uint256 amount0,
        uint256 amount1
    );
}

/// `topic0` of the events the feed follows, for log filters.
pub const POOL_EVENT_TOPICS: [B256; 3] = [
    Swap::SIGNATURE_HASH,
    Mint::SIGNATURE_HASH,
    Burn::SIGNATURE_HASH,
];

/// The header fields every event of a block carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Block number.
    pub number: u64,
    /// Block hash; consumers detect reorgs by it.
    pub hash: B256,
    /// Parent block hash, linking the chain for reorg detection.
    pub parent_hash: B256,
    /// Block timestamp, seconds since the Unix epoch.
    pub timestamp: u64,
    /// EIP-1559 base fee (wei); `None` before London or on chains without one. The engine
    /// judges trades' gas price at it.
    pub base_fee_per_gas: Option<u64>,
}

/// A log with where it sits in its block. Implemented for RPC logs (which know their index
/// and transaction) and for bare `alloy_primitives::Log`s from an in-process EVM, whose
/// index is their position in the slice handed to [`events_from_logs`].
pub trait BlockLog {
    /// The log itself.
    fn log(&self) -> &Log;
    /// Position in the block; `None` to use the position in the slice given.
    fn log_index(&self) -> Option<u64> {
        None
    }
    /// The emitting transaction, if known (in-process logs have none).
    fn tx_hash(&self) -> Option<B256> {
        None
    }
}

impl BlockLog for Log {
    fn log(&self) -> &Log {
        self
    }
}

impl BlockLog for alloy::rpc::types::Log {
    fn log(&self) -> &Log {
        &self.inner
    }
    fn log_index(&self) -> Option<u64> {
        self.log_index
    }
    fn tx_hash(&self) -> Option<B256> {
        self.transaction_hash
    }
}

/// 32 lowercase hex digits (W3C trace-id), fresh per event so each can be followed through
/// host, engine and signer logs.
pub fn new_trace_id() -> String {
    stratbox_proto::trace::new_id()
}

pub(crate) fn hex_hash(h: &B256) -> String {
    format!("{h:#x}")
}

fn amount(v: U256) -> Option<Amount> {
    Some(Amount {
        value: v.to_string(),
    })
}

fn address(a: &Address) -> Option<v1::Address> {
    Some(v1::Address {
        value: format!("{a:#x}"),
    })
}

/// The stable identity consumers deduplicate on.
pub fn event_id(chain_id: u64, block: &BlockHeader, log_index: u64) -> String {
    format!(
        "{chain_id}:{}:{log_index}:{}",
        block.number,
        hex_hash(&block.hash)
    )
}

fn envelope(chain_id: u64, block: &BlockHeader, event_id: String, kind: Kind) -> ChainEvent {
    ChainEvent {
        event_id,
        // Events are published only once the whole block has been read, so the block
        // itself is the newest fully processed one.
        last_sync_block: block.number,
        timestamp: block.timestamp,
        trace: Some(TraceContext {
            trace_id: new_trace_id(),
            span_id: String::new(),
        }),
        chain_id,
        kind: Some(kind),
    }
}

/// One decoded pool event as the bus carries it. Uniswap reports signed deltas from the
/// pool's side (positive = paid in); strategies get magnitudes and a direction instead.
fn pool_event_kind(origin: EventOrigin, event: &PoolEvent) -> Kind {
    let liquidity = |l: &stratbox_evm::pool_events::LiquidityEvent| LiquidityEvent {
        origin: Some(origin.clone()),
        pool: address(&l.pool),
        owner: address(&l.owner),
        tick_lower: l.tick_lower,
        tick_upper: l.tick_upper,
        liquidity: amount(U256::from(l.liquidity)),
        amount0: amount(l.amount0),
        amount1: amount(l.amount1),
    };
    match event {
        PoolEvent::Swap(s) => Kind::Swap(SwapEvent {
            origin: Some(origin.clone()),
            pool: address(&s.pool),
            zero_for_one: s.zero_for_one(),
            amount_in: amount(s.amount_in()),
            amount_out: amount(s.amount_out()),
            sqrt_price_x96: amount(s.sqrt_price_x96),
            liquidity: amount(U256::from(s.liquidity)),
            tick: s.tick,
        }),
        PoolEvent::Mint(l) => Kind::Mint(liquidity(l)),
        PoolEvent::Burn(l) => Kind::Burn(liquidity(l)),
    }
}

/// A pool event that was already decoded (the embedded revm chain hands these out) in
/// the same form [`events_from_logs`] gives a live chain's logs.
pub fn pool_event(
    chain_id: u64,
    block: &BlockHeader,
    log_index: u64,
    tx_hash: &B256,
    event: &PoolEvent,
) -> ChainEvent {
    let origin = EventOrigin {
        block: block.number,
        log_index: u32::try_from(log_index).unwrap_or(u32::MAX),
        tx_hash: hex_hash(tx_hash),
    };
    envelope(
        chain_id,
        block,
        event_id(chain_id, block, log_index),
        pool_event_kind(origin, event),
    )
}

/// Normalises one block: its Swap/Mint/Burn logs in log order, then a `new_block` event that
/// closes the block (a consumer seeing it knows the block is complete). Logs that are not
/// Uniswap V3 pool events, or do not decode, are skipped; callers filter by pool address.
pub fn events_from_logs<L: BlockLog>(
    chain_id: u64,
    block: &BlockHeader,
    logs: &[L],
) -> Vec<ChainEvent> {
    let mut out = Vec::with_capacity(logs.len() + 1);
    for (position, l) in logs.iter().enumerate() {
        let log = l.log();
        let log_index = l.log_index().unwrap_or(position as u64);
        let origin = EventOrigin {
            block: block.number,
            log_index: u32::try_from(log_index).unwrap_or(u32::MAX),
            tx_hash: l.tx_hash().map(|h| hex_hash(&h)).unwrap_or_default(),
        };
        match decode_pool_log(log) {
            Some(event) => out.push(envelope(
                chain_id,
                block,
                event_id(chain_id, block, log_index),
                pool_event_kind(origin, &event),
            )),
            None if log
                .topics()
                .first()
                .is_some_and(|t| POOL_EVENT_TOPICS.contains(t)) =>
            {
                tracing::warn!(
                    block = block.number,
                    log_index,
                    "pool event log does not decode; skipped"
                );
            }
            None => {}
        }
    }
    out.push(new_block_event(chain_id, block));
    out
}

/// The event that closes a block.
pub fn new_block_event(chain_id: u64, block: &BlockHeader) -> ChainEvent {
    let id = format!(
        "{chain_id}:{}:block:{}",
        block.number,
        hex_hash(&block.hash)
    );
    envelope(
        chain_id,
        block,
        id,
        Kind::NewBlock(BlockInfo {
            number: block.number,
            timestamp: block.timestamp,
            hash: hex_hash(&block.hash),
            parent_hash: hex_hash(&block.parent_hash),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::aliases::{I24, U160};
    use alloy_primitives::{I256, LogData, address, b256};

    const POOL: Address = address!("0x1111111111111111111111111111111111111111");

    fn block() -> BlockHeader {
        BlockHeader {
            number: 42,
            hash: b256!("0x00000000000000000000000000000000000000000000000000000000000000aa"),
            parent_hash: b256!(
                "0x00000000000000000000000000000000000000000000000000000000000000bb"
            ),
            timestamp: 1_700_000_042,
            base_fee_per_gas: None,
        }
    }

    fn log(data: LogData) -> Log {
        Log {
            address: POOL,
            data,
        }
    }

    fn swap(amount0: i128, amount1: i128) -> Log {
        log(Swap {
            sender: Address::ZERO,
            recipient: Address::ZERO,
            amount0: I256::try_from(amount0).unwrap(),
            amount1: I256::try_from(amount1).unwrap(),
            sqrtPriceX96: U160::from(79_228_162_514_264_337_593_543_950_336u128),
            liquidity: 1_000_000,
            tick: I24::try_from(-887_220).unwrap(),
        }
        .encode_log_data())
    }

    fn swap_of(e: &ChainEvent) -> &SwapEvent {
        match &e.kind {
            Some(Kind::Swap(s)) => s,
            other => panic!("not a swap: {other:?}"),
        }
    }

    #[test]
    fn swaps_become_magnitudes_with_a_direction() {
        let logs = [swap(1_000, -997), swap(-2_000, 2_010)];
        let events = events_from_logs(31337, &block(), &logs);
        assert_eq!(events.len(), 3);
        let a = swap_of(&events[0]);
        assert!(a.zero_for_one);
        assert_eq!(a.amount_in.as_ref().unwrap().value, "1000");
        assert_eq!(a.amount_out.as_ref().unwrap().value, "997");
        assert_eq!(a.tick, -887_220);
        assert_eq!(
            a.sqrt_price_x96.as_ref().unwrap().value,
            "79228162514264337593543950336"
        );
        assert_eq!(a.liquidity.as_ref().unwrap().value, "1000000");
        assert_eq!(
            a.pool.as_ref().unwrap().value,
            "0x1111111111111111111111111111111111111111"
        );
        let b = swap_of(&events[1]);
        assert!(!b.zero_for_one);
        assert_eq!(b.amount_in.as_ref().unwrap().value, "2010");
        assert_eq!(b.amount_out.as_ref().unwrap().value, "2000");
        assert_eq!(b.origin.as_ref().unwrap().log_index, 1);
    }

    #[test]
    fn every_event_is_stamped_and_the_block_closes_the_list() {
        let unrelated = log(LogData::new_unchecked(
            vec![B256::repeat_byte(9)],
            vec![1, 2, 3].into(),
        ));
        let mint = log(Mint {
            sender: Address::ZERO,
            owner: POOL,
            tickLower: I24::try_from(-60).unwrap(),
            tickUpper: I24::try_from(60).unwrap(),
            amount: 5,
            amount0: U256::from(7),
            amount1: U256::from(8),
        }
        .encode_log_data());
        let burn = log(Burn {
            owner: POOL,
            tickLower: I24::try_from(-60).unwrap(),
            tickUpper: I24::try_from(60).unwrap(),
            amount: 5,
            amount0: U256::from(6),
            amount1: U256::from(7),
        }
        .encode_log_data());
        let events = events_from_logs(10, &block(), &[mint, unrelated, burn]);
        assert_eq!(events.len(), 3, "the unrelated log must be skipped");
        let hash = "0x00000000000000000000000000000000000000000000000000000000000000aa";
        assert_eq!(events[0].event_id, format!("10:42:0:{hash}"));
        assert_eq!(events[1].event_id, format!("10:42:2:{hash}"));
        assert_eq!(events[2].event_id, format!("10:42:block:{hash}"));
        match &events[0].kind {
            Some(Kind::Mint(m)) => {
                assert_eq!((m.tick_lower, m.tick_upper), (-60, 60));
                assert_eq!(m.amount0.as_ref().unwrap().value, "7");
                assert_eq!(
                    m.owner.as_ref().unwrap().value,
                    "0x1111111111111111111111111111111111111111"
                );
            }
            other => panic!("not a mint: {other:?}"),
        }
        assert!(
            matches!(&events[1].kind, Some(Kind::Burn(b)) if b.amount1.as_ref().unwrap().value == "7")
        );
        match &events[2].kind {
            Some(Kind::NewBlock(b)) => {
                assert_eq!(b.number, 42);
                assert_eq!(b.hash, hash);
                assert_eq!(b.timestamp, 1_700_000_042);
            }
            other => panic!("not a block: {other:?}"),
        }
        let mut traces = std::collections::HashSet::new();
        for e in &events {
            assert_eq!(e.last_sync_block, 42);
            assert_eq!(e.timestamp, 1_700_000_042);
            assert_eq!(e.chain_id, 10);
            let t = &e.trace.as_ref().unwrap().trace_id;
            assert_eq!(t.len(), 32);
            assert!(
                t.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            );
            assert!(
                traces.insert(t.clone()),
                "trace ids must be fresh per event"
            );
        }
    }

    #[test]
    fn malformed_pool_log_is_skipped() {
        let bad = log(LogData::new_unchecked(
            vec![Swap::SIGNATURE_HASH],
            vec![0u8; 5].into(),
        ));
        let events = events_from_logs(1, &block(), &[bad]);
        assert_eq!(events.len(), 1);
        assert!(matches!(events[0].kind, Some(Kind::NewBlock(_))));
    }
}
