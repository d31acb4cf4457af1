//! The backtest event file: JSON Lines, one delivered event per line, mirroring the WIT
//! `event` variant field for field (kebab-case names, amounts as base-10 strings), plus
//! what the host needs to build the snapshot the strategy is called with. See
//! `host/runtime/README.md` for the format and `host/runtime/testdata/` for a sample.
//!
//! [`Replayer`] turns lines into `(event, snapshot)` pairs: pool states are carried over
//! from line to line, replaced by a line's `pools`, and updated by swaps of known pools;
//! the watermark is the event's block.

use crate::proposal::parse_amount;
use crate::wit;
use ruint::aliases::{U256, U512};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::BufRead;

/// Where a log-derived event sits in the chain (WIT `origin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Origin {
    /// Block number.
    pub block: u64,
    /// Index of the log within its block.
    pub log_index: u32,
    /// 0x-hex transaction hash; empty when unknown (optional in the file).
    #[serde(default)]
    pub tx_hash: String,
}

/// A pool swap (WIT `swap-event`); amounts are base-10 strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Swap {
    /// Where the log sits.
    pub origin: Origin,
    /// 0x address of the pool.
    pub pool: String,
    /// True when token0 was paid in.
    pub zero_for_one: bool,
    /// Raw units paid in.
    pub amount_in: String,
    /// Raw units received.
    pub amount_out: String,
    /// Q64.96 sqrt price after the swap.
    pub sqrt_price_x96: String,
    /// In-range liquidity after the swap.
    pub liquidity: String,
    /// Tick after the swap.
    pub tick: i32,
}

/// A mint or burn (WIT `liquidity-event`); amounts are base-10 strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Liquidity {
    /// Where the log sits.
    pub origin: Origin,
    /// 0x address of the pool.
    pub pool: String,
    /// 0x address of the position's owner.
    pub owner: String,
    /// Lower tick (inclusive).
    pub tick_lower: i32,
    /// Upper tick (exclusive).
    pub tick_upper: i32,
    /// Liquidity added or removed.
    pub liquidity: String,
    /// Raw token0 moved.
    pub amount0: String,
    /// Raw token1 moved.
    pub amount1: String,
}

/// An oracle price update (WIT `oracle-price`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OraclePrice {
    /// Where the update sits.
    pub origin: Origin,
    /// Which oracle reported it.
    pub source: String,
    /// 0x address of the base token.
    pub base: String,
    /// 0x address of the quote token.
    pub quote: String,
    /// Price of one base in quote, scaled by 10^18, base-10.
    pub price_e18: String,
}

/// A new block (WIT `new-block`), delivered before that block's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NewBlock {
    /// Block number.
    pub number: u64,
    /// Unix seconds.
    pub timestamp: u64,
    /// 0x-hex block hash; empty when unknown.
    #[serde(default)]
    pub hash: String,
}

/// The WIT `event` variant; `type` names the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// See [`NewBlock`].
    NewBlock(NewBlock),
    /// See [`Swap`].
    Swap(Swap),
    /// Liquidity added.
    Mint(Liquidity),
    /// Liquidity removed.
    Burn(Liquidity),
    /// See [`OraclePrice`].
    OraclePrice(OraclePrice),
}

/// The WIT `pool-state` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PoolState {
    /// 0x address.
    pub pool: String,
    /// 0x address of the lower-addressed token.
    pub token0: String,
    /// 0x address of the other token.
    pub token1: String,
    /// Fee in hundredths of a basis point.
    pub fee: u32,
    /// Tick spacing.
    pub tick_spacing: i32,
    /// Q64.96 sqrt price, base-10.
    pub sqrt_price_x96: String,
    /// Current tick.
    pub tick: i32,
    /// In-range liquidity, base-10.
    pub liquidity: String,
}

/// One token balance of the strategy's account (WIT `token-balance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenBalance {
    /// 0x address of the token.
    pub token: String,
    /// Raw units, base-10.
    pub amount: String,
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReplayLine {
    /// Unix seconds of the event's block: the snapshot's timestamp.
    pub timestamp: u64,
    /// The event delivered.
    pub event: Event,
    /// Pool states after this event; replaces the known state of these pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<Vec<PoolState>>,
    /// The account's balances after this event; replaces the known balances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<Vec<TokenBalance>>,
}

impl Event {
    /// The block the event belongs to: the snapshot's watermark.
    pub fn block(&self) -> u64 {
        match self {
            Event::NewBlock(b) => b.number,
            Event::Swap(s) => s.origin.block,
            Event::Mint(l) | Event::Burn(l) => l.origin.block,
            Event::OraclePrice(o) => o.origin.block,
        }
    }

    /// Position in the chain: (block, log index); new-block events come first in a block.
    pub fn position(&self) -> (u64, Option<u32>) {
        match self {
            Event::NewBlock(b) => (b.number, None),
            Event::Swap(s) => (s.origin.block, Some(s.origin.log_index)),
            Event::Mint(l) | Event::Burn(l) => (l.origin.block, Some(l.origin.log_index)),
            Event::OraclePrice(o) => (o.origin.block, Some(o.origin.log_index)),
        }
    }

    fn amounts(&self) -> Vec<(&'static str, &str)> {
        match self {
            Event::NewBlock(_) => vec![],
            Event::Swap(s) => vec![
                ("amount-in", &s.amount_in),
                ("amount-out", &s.amount_out),
                ("sqrt-price-x96", &s.sqrt_price_x96),
                ("liquidity", &s.liquidity),
            ],
            Event::Mint(l) | Event::Burn(l) => vec![
                ("liquidity", &l.liquidity),
                ("amount0", &l.amount0),
                ("amount1", &l.amount1),
            ],
            Event::OraclePrice(o) => vec![("price-e18", &o.price_e18)],
        }
    }
}

fn origin(o: Origin) -> wit::EventOrigin {
    wit::EventOrigin {
        block: o.block,
        log_index: o.log_index,
        tx_hash: o.tx_hash,
    }
}

fn liquidity(l: Liquidity) -> wit::LiquidityEvent {
    wit::LiquidityEvent {
        origin: origin(l.origin),
        pool: l.pool,
        owner: l.owner,
        tick_lower: l.tick_lower,
        tick_upper: l.tick_upper,
        liquidity: l.liquidity,
        amount0: l.amount0,
        amount1: l.amount1,
    }
}

impl From<Event> for wit::Event {
    fn from(e: Event) -> Self {
        match e {
            Event::NewBlock(b) => wit::Event::NewBlock(wit::BlockInfo {
                number: b.number,
                timestamp: b.timestamp,
                hash: b.hash,
            }),
            Event::Swap(s) => wit::Event::Swap(wit::SwapEvent {
                origin: origin(s.origin),
                pool: s.pool,
                zero_for_one: s.zero_for_one,
                amount_in: s.amount_in,
                amount_out: s.amount_out,
                sqrt_price_x96: s.sqrt_price_x96,
                liquidity: s.liquidity,
                tick: s.tick,
            }),
            Event::Mint(l) => wit::Event::Mint(liquidity(l)),
            Event::Burn(l) => wit::Event::Burn(liquidity(l)),
            Event::OraclePrice(o) => wit::Event::OraclePrice(wit::OraclePrice {
                origin: origin(o.origin),
                source: o.source,
                base: o.base,
                quote: o.quote,
                price_e18: o.price_e18,
            }),
        }
    }
}

impl From<PoolState> for wit::PoolState {
    fn from(p: PoolState) -> Self {
        wit::PoolState {
            pool: p.pool,
            token0: p.token0,
            token1: p.token1,
            fee: p.fee,
            tick_spacing: p.tick_spacing,
            sqrt_price_x96: p.sqrt_price_x96,
            tick: p.tick,
            liquidity: p.liquidity,
        }
    }
}

/// A line that cannot be replayed, with its 1-based line number.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ReplayError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub message: String,
}

/// Reads and checks a whole file: every line parses, amounts are strict base-10 integers,
/// and events are in chain order (a backtest out of order would leak the future).
pub fn read_jsonl(reader: impl BufRead) -> Result<Vec<ReplayLine>, ReplayError> {
    let mut lines = Vec::new();
    let mut last: Option<(u64, Option<u32>)> = None;
    for (i, text) in reader.lines().enumerate() {
        let line = i + 1;
        let text = text.map_err(|e| ReplayError {
            line,
            message: e.to_string(),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let parsed: ReplayLine = serde_json::from_str(&text).map_err(|e| ReplayError {
            line,
            message: e.to_string(),
        })?;
        for (name, amount) in parsed.event.amounts() {
            parse_amount(amount).map_err(|e| ReplayError {
                line,
                message: format!("{name}: {e}"),
            })?;
        }
        let position = parsed.event.position();
        if let Some(prev) = last
            && position < prev
        {
            return Err(ReplayError {
                line,
                message: format!(
                    "event at block {} is before the previous one (block {}): events must be in chain order",
                    position.0, prev.0
                ),
            });
        }
        last = Some(position);
        lines.push(parsed);
    }
    Ok(lines)
}

/// Builds each call's snapshot from the lines delivered so far.
#[derive(Debug, Default)]
pub struct Replayer {
    pools: BTreeMap<String, wit::PoolState>,
    balances: Vec<wit::TokenBalance>,
}

impl Replayer {
    /// A replayer that knows no pools or balances yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers one line: the event and the snapshot as of its block.
    pub fn apply(&mut self, line: ReplayLine) -> (wit::Event, wit::Snapshot) {
        let block = line.event.block();
        if let Event::Swap(s) = &line.event
            && let Some(pool) = self.pools.get_mut(&s.pool.to_ascii_lowercase())
        {
            pool.sqrt_price_x96 = s.sqrt_price_x96.clone();
            pool.liquidity = s.liquidity.clone();
            pool.tick = s.tick;
        }
        for p in line.pools.into_iter().flatten() {
            self.pools.insert(p.pool.to_ascii_lowercase(), p.into());
        }
        if let Some(balances) = line.balances {
            self.balances = balances
                .into_iter()
                .map(|b| wit::TokenBalance {
                    token: b.token,
                    amount: b.amount,
                })
                .collect();
        }
        let snapshot = wit::Snapshot {
            last_sync_block: block,
            timestamp: line.timestamp,
            pools: self.pools.values().cloned().collect(),
            balances: self.balances.clone(),
        };
        (line.event.into(), snapshot)
    }
}

/// `sqrt(1.0001^tick) * 2^96`, rounded up: Uniswap V3's `TickMath.getSqrtRatioAtTick`,
/// from the SDK (whose math is checked against the pool bytecode); the sample walk clamps
/// ticks to the valid range, so this never fails.
pub fn sqrt_price_at_tick(tick: i32) -> U256 {
    use stratbox_sdk::math::tick_math::{MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick};
    get_sqrt_ratio_at_tick(tick.clamp(MIN_TICK, MAX_TICK)).unwrap_or_default()
}

/// Addresses of the sample's pool and tokens.
pub const SAMPLE_POOL: &str = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640";
/// token0 of the sample pool.
pub const SAMPLE_TOKEN0: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
/// token1 of the sample pool.
pub const SAMPLE_TOKEN1: &str = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2";
/// The account the sample's strategy trades as.
pub const SAMPLE_ACCOUNT: &str = "0x00000000000000000000000000000000005ba5e5";

/// A deterministic random walk of swaps on one pool: a `new-block` per block, then up to
/// three swaps, each moving the tick by up to 60 either way, and an oracle price every
/// ten blocks. Amounts follow the constant-liquidity curve in integer math.
pub fn random_walk(seed: u64, blocks: u64) -> Vec<ReplayLine> {
    let mut rng = crate::random::SeededRng::new(seed);
    let mut next = move || rand_core::Rng::next_u64(&mut rng);
    let liquidity = U256::from(10u64).pow(U256::from(21u8));
    let liquidity_s = liquidity.to_string();
    let first_block = 18_000_000u64;
    let mut tick: i32 = 0;
    let mut lines = Vec::new();
    let pool_state = |tick: i32| PoolState {
        pool: SAMPLE_POOL.into(),
        token0: SAMPLE_TOKEN0.into(),
        token1: SAMPLE_TOKEN1.into(),
        fee: 3000,
        tick_spacing: 60,
        sqrt_price_x96: sqrt_price_at_tick(tick).to_string(),
        tick,
        liquidity: liquidity_s.clone(),
    };
    let balance = (U256::from(10u64).pow(U256::from(20u8))).to_string();
    for b in 0..blocks {
        let number = first_block + b;
        let timestamp = 1_700_000_000 + b * 12;
        lines.push(ReplayLine {
            timestamp,
            event: Event::NewBlock(NewBlock {
                number,
                timestamp,
                hash: format!("0x{:064x}", number.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            }),
            pools: (b == 0).then(|| vec![pool_state(tick)]),
            balances: (b == 0).then(|| {
                vec![
                    TokenBalance {
                        token: SAMPLE_TOKEN0.into(),
                        amount: balance.clone(),
                    },
                    TokenBalance {
                        token: SAMPLE_TOKEN1.into(),
                        amount: balance.clone(),
                    },
                ]
            }),
        });
        let swaps = next() % 4;
        for i in 0..swaps {
            let step = (next() % 60) as i32 + 1;
            let down = next() % 2 == 0;
            let new_tick = if down { tick - step } else { tick + step };
            let (a, c) = (sqrt_price_at_tick(tick), sqrt_price_at_tick(new_tick));
            let (lo, hi) = if a < c { (a, c) } else { (c, a) };
            let diff = U512::from(hi - lo);
            let l = U512::from(liquidity);
            let amount1 = (l * diff) >> 96;
            let amount0 = ((l << 96) * diff) / U512::from(hi) / U512::from(lo);
            let (amount_in, amount_out): (U512, U512) = if down {
                (amount0, amount1)
            } else {
                (amount1, amount0)
            };
            // The 0.3% fee is paid on top of what moves the price.
            let amount_in = amount_in * U512::from(1_000_000u64) / U512::from(997_000u64);
            tick = new_tick;
            lines.push(ReplayLine {
                timestamp,
                event: Event::Swap(Swap {
                    origin: Origin {
                        block: number,
                        log_index: i as u32,
                        tx_hash: format!("0x{:064x}", number * 16 + i),
                    },
                    pool: SAMPLE_POOL.into(),
                    zero_for_one: down,
                    amount_in: amount_in.to_string(),
                    amount_out: amount_out.to_string(),
                    sqrt_price_x96: sqrt_price_at_tick(tick).to_string(),
                    liquidity: liquidity_s.clone(),
                    tick,
                }),
                pools: None,
                balances: None,
            });
        }
        if b % 10 == 9 {
            let sqrt = U512::from(sqrt_price_at_tick(tick));
            let price_e18: U512 = (sqrt * sqrt * U512::from(10u64).pow(U512::from(18u8))) >> 192;
            lines.push(ReplayLine {
                timestamp,
                event: Event::OraclePrice(OraclePrice {
                    origin: Origin {
                        block: number,
                        log_index: 100,
                        tx_hash: String::new(),
                    },
                    source: "sample-twap".into(),
                    base: SAMPLE_TOKEN0.into(),
                    quote: SAMPLE_TOKEN1.into(),
                    price_e18: price_e18.to_string(),
                }),
                pools: None,
                balances: None,
            });
        }
    }
    lines
}

/// Writes lines as JSONL.
pub fn to_jsonl(lines: &[ReplayLine]) -> String {
    let mut out = String::new();
    for line in lines {
        // Serialising these plain structs cannot fail.
        if let Ok(text) = serde_json::to_string(line) {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_math_matches_known_values() {
        // Values from Uniswap's TickMath tests.
        assert_eq!(sqrt_price_at_tick(0), U256::from(1u8) << 96);
        assert_eq!(sqrt_price_at_tick(-887_272).to_string(), "4295128739");
        assert_eq!(
            sqrt_price_at_tick(887_272).to_string(),
            "1461446703485210103287273052203988822378723970342"
        );
    }

    #[test]
    fn sample_file_is_the_generator_output() {
        let text = include_str!("../testdata/random-walk.jsonl");
        assert_eq!(
            text,
            to_jsonl(&random_walk(7, 200)),
            "regenerate host/runtime/testdata/random-walk.jsonl"
        );
        let parsed = read_jsonl(text.as_bytes()).expect("sample parses");
        assert_eq!(parsed.len(), text.lines().count());
    }

    #[test]
    fn out_of_order_files_are_refused() {
        let mut lines = random_walk(1, 3);
        lines.swap(0, 2);
        let err = read_jsonl(to_jsonl(&lines).as_bytes()).expect_err("out of order");
        assert!(err.message.contains("chain order"), "{err}");
    }
}
