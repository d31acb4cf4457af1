//! The oracle guard's three independent price sources on a followed chain, each compared
//! with the traded pool's spot (`slot0`) by [`stratbox_risk::OracleGuard`]:
//!
//! - **`twap`**: the pool's own time-weighted average tick from its oracle, `observe([window,
//!   0])`, turned into a price with exact integer math (Uniswap's TickMath). A swap moves the
//!   spot at once but the average only by its share of the window, so a pool pushed away
//!   within one block disagrees with its own recent past. The pool must keep enough
//!   observations (`increaseObservationCardinalityNext`); one that cannot answer for the
//!   window is not fresh.
//! - **`chainlink`**: a Chainlink-style feed (`AggregatorV3Interface.latestRoundData`) per
//!   pool, its answer in whole tokens with the feed's decimals converted to the engine's
//!   raw-unit price. A round whose `updatedAt` is older than `feed_max_age` at the block's
//!   time, an incomplete round or a non-positive answer is not fresh.
//! - **`reference`**: an off-chain price pushed by an authenticated feeder over gRPC
//!   (`PushReferencePrice`, a feeder key); recorded at the engine's block when it arrives,
//!   so a feeder that stops is stale after the guard's `max_age_blocks`.
//!
//! The chain's two sources are read at the followed block, from the node, every block;
//! a source that cannot be read or is not fresh is marked stale in the guard with the
//! reason, which every refusal then names.
//!
//! Beside the guard's sources, an optional **ether mark**: a Chainlink-style ETH feed in the
//! quote token, read the same way every block. Gas is paid in ether, so a live strategy's
//! book holds (negative) ether; the mark values it in the quote unit (see
//! [`crate::books::Marks`]).

use std::collections::HashMap;
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::network::TransactionBuilder;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy_sol_types::SolCall;
use stratbox_evm::abi::{IERC20, IUniswapV3Pool, MockV3Aggregator};
use stratbox_proto::U256;
use stratbox_sdk::math::price::spot_price_e18;
use stratbox_sdk::math::tick_math::get_sqrt_ratio_at_tick;

/// The guard's name for the pool's time-weighted average.
pub const TWAP: &str = "twap";
/// The guard's name for the Chainlink-style feed.
pub const CHAINLINK: &str = "chainlink";
/// The guard's name for the feeder's off-chain reference.
pub const REFERENCE: &str = "reference";

/// Where each source comes from and when it is fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesConfig {
    /// The TWAP's window: long enough that one block's swap moves it little, short
    /// enough that it follows the market.
    pub twap_window: Duration,
    /// The Chainlink-style feed quoting each pool's token0 in token1 (whole tokens).
    pub feeds: Vec<([u8; 20], [u8; 20])>,
    /// A feed round older than this at the block's time is not fresh.
    pub feed_max_age: Duration,
    /// The feed that prices ether in the quote token: the ether mark gas is valued at.
    pub ether_feed: Option<EtherFeed>,
}

/// A Chainlink-style feed quoting one ether in whole `quote` tokens (an ETH/USD-style
/// feed, with `quote` the stablecoin the books are counted in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherFeed {
    /// The feed's address.
    pub feed: [u8; 20],
    /// The token its answers are in: the books' quote unit.
    pub quote: [u8; 20],
}

/// Ether's decimals: a wei is 10^-18 ether.
const ETHER_DECIMALS: u8 = 18;

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            twap_window: Duration::from_secs(60),
            feeds: Vec::new(),
            feed_max_age: Duration::from_secs(300),
            ether_feed: None,
        }
    }
}

/// What one read of a source gave: a price, or why the source is not fresh.
pub type Reading = Result<U256, String>;

/// Reads the chain's sources for a pool at a block.
pub struct SourceReader {
    provider: DynProvider,
    cfg: SourcesConfig,
    /// Feed -> (feed decimals, base decimals, quote decimals); read once per feed.
    decimals: tokio::sync::Mutex<HashMap<[u8; 20], (u8, u8, u8)>>,
}

impl SourceReader {
    /// A reader over the node at `rpc_url`.
    pub fn new(rpc_url: &str, cfg: SourcesConfig) -> Result<Self, String> {
        let url = rpc_url
            .parse()
            .map_err(|e| format!("node URL {rpc_url:?}: {e}"))?;
        Ok(SourceReader {
            provider: ProviderBuilder::new().connect_http(url).erased(),
            cfg,
            decimals: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The configuration read from.
    pub fn config(&self) -> &SourcesConfig {
        &self.cfg
    }

    async fn call<C: SolCall>(
        &self,
        to: [u8; 20],
        call: C,
        block: u64,
    ) -> Result<C::Return, String> {
        let tx = TransactionRequest::default()
            .with_to(alloy_primitives::Address::from(to))
            .with_input(call.abi_encode());
        let out = self
            .provider
            .call(tx)
            .block(BlockId::number(block))
            .await
            .map_err(|e| e.to_string())?;
        C::abi_decode_returns(&out).map_err(|e| format!("cannot decode the answer: {e}"))
    }

    /// The pool's average price over the window ending at `block`.
    pub async fn twap(&self, pool: [u8; 20], block: u64) -> Reading {
        let window = u32::try_from(self.cfg.twap_window.as_secs())
            .ok()
            .filter(|w| *w > 0)
            .ok_or_else(|| "the TWAP window must be 1 s to 136 years".to_owned())?;
        let out = self
            .call(
                pool,
                IUniswapV3Pool::observeCall {
                    secondsAgos: vec![window, 0],
                },
                block,
            )
            .await
            .map_err(|e| {
                format!("observe over {window} s failed (pool oracle too short or young?): {e}")
            })?;
        let (Some(then), Some(now)) = (out.tickCumulatives.first(), out.tickCumulatives.get(1))
        else {
            return Err("observe returned fewer than two cumulatives".to_owned());
        };
        twap_price_e18(then.as_i64(), now.as_i64(), window)
    }

    /// The feed's latest round as a price, if it is fresh at `block_time` (seconds).
    pub async fn chainlink(
        &self,
        feed: [u8; 20],
        (token0, token1): ([u8; 20], [u8; 20]),
        block: u64,
        block_time: u64,
    ) -> Reading {
        self.round_price(feed, Some(token0), token1, block, block_time)
            .await
    }

    /// The ether mark at `block`: quote-token raw units per ether (10^18 wei), if the
    /// ether feed is configured (`None` otherwise) and fresh.
    pub async fn ether_mark(&self, block: u64, block_time: u64) -> Option<Reading> {
        let f = self.cfg.ether_feed?;
        Some(
            self.round_price(f.feed, None, f.quote, block, block_time)
                .await,
        )
    }

    /// The feed's latest round, fresh at `block_time`, as raw `quote` per raw `base` with
    /// 18 decimals; `base` `None` is ether.
    async fn round_price(
        &self,
        feed: [u8; 20],
        base: Option<[u8; 20]>,
        quote: [u8; 20],
        block: u64,
        block_time: u64,
    ) -> Reading {
        let (feed_decimals, d0, d1) = self.decimals(feed, base, quote, block).await?;
        let round = self
            .call(feed, MockV3Aggregator::latestRoundDataCall {}, block)
            .await
            .map_err(|e| format!("latestRoundData failed: {e}"))?;
        let age = block_time.saturating_sub(round.updatedAt.saturating_to::<u64>());
        let max = self.cfg.feed_max_age.as_secs();
        if round.updatedAt.is_zero() {
            return Err("the feed has no round".to_owned());
        }
        if age > max {
            return Err(format!(
                "round {} updated {age} s before the block, more than {max} s",
                round.roundId
            ));
        }
        if round.answeredInRound < round.roundId {
            return Err(format!(
                "round {} is answered only in round {}",
                round.roundId, round.answeredInRound
            ));
        }
        if round.answer <= alloy_primitives::I256::ZERO {
            return Err(format!("answer {} is not a price", round.answer));
        }
        let answer = U256::from_limbs(*round.answer.into_raw().as_limbs());
        feed_price_e18(answer, feed_decimals, d0, d1)
    }

    async fn decimals(
        &self,
        feed: [u8; 20],
        base: Option<[u8; 20]>,
        quote: [u8; 20],
        block: u64,
    ) -> Result<(u8, u8, u8), String> {
        let mut known = self.decimals.lock().await;
        if let Some(d) = known.get(&feed) {
            return Ok(*d);
        }
        let f = self
            .call(feed, MockV3Aggregator::decimalsCall {}, block)
            .await
            .map_err(|e| format!("the feed's decimals: {e}"))?;
        let d0 = match base {
            Some(token) => self
                .call(token, IERC20::decimalsCall {}, block)
                .await
                .map_err(|e| format!("the base token's decimals: {e}"))?,
            None => ETHER_DECIMALS,
        };
        let d1 = self
            .call(quote, IERC20::decimalsCall {}, block)
            .await
            .map_err(|e| format!("the quote token's decimals: {e}"))?;
        known.insert(feed, (f, d0, d1));
        Ok((f, d0, d1))
    }

    /// The feed configured for `pool`, if any.
    pub fn feed_of(&self, pool: &[u8; 20]) -> Option<[u8; 20]> {
        self.cfg
            .feeds
            .iter()
            .find(|(p, _)| p == pool)
            .map(|(_, f)| *f)
    }
}

/// The price (raw token1 per raw token0, 18 decimals) at the average tick between two tick
/// cumulatives `window` seconds apart: the average is rounded towards negative infinity as
/// Uniswap's `OracleLibrary.consult` does, then priced exactly by TickMath.
pub fn twap_price_e18(then: i64, now: i64, window: u32) -> Reading {
    let delta = now
        .checked_sub(then)
        .ok_or_else(|| "tick cumulatives overflow".to_owned())?;
    let tick = delta.div_euclid(i64::from(window.max(1)));
    let tick = i32::try_from(tick).map_err(|_| format!("average tick {tick} out of range"))?;
    let sqrt = get_sqrt_ratio_at_tick(tick).map_err(|e| format!("average tick {tick}: {e}"))?;
    Ok(spot_price_e18(sqrt))
}

/// A feed's answer (whole token1 per whole token0 with `feed_decimals`) as the engine's
/// price: raw token1 per raw token0 with 18 decimals, rounded down, exact.
pub fn feed_price_e18(answer: U256, feed_decimals: u8, decimals0: u8, decimals1: u8) -> Reading {
    let ten = U256::from(10u8);
    let num_exp = 18u64 + u64::from(decimals1);
    let den_exp = u64::from(feed_decimals) + u64::from(decimals0);
    let pow = |e: u64| {
        ten.checked_pow(U256::from(e))
            .ok_or_else(|| format!("10^{e} overflows"))
    };
    let num = answer
        .checked_mul(pow(num_exp)?)
        .ok_or_else(|| format!("answer {answer} is out of range"))?;
    let price = num / pow(den_exp)?;
    if price.is_zero() {
        return Err(format!("answer {answer} is below one raw unit"));
    }
    Ok(price)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::math::Q96;

    #[test]
    fn a_constant_tick_averages_to_its_own_price() {
        let e18 = U256::from(10u64).pow(U256::from(18u8));
        assert_eq!(twap_price_e18(0, 0, 60), Ok(e18));
        let at = |t: i32| spot_price_e18(get_sqrt_ratio_at_tick(t).unwrap_or(Q96));
        assert_eq!(twap_price_e18(1_000, 1_000 + 60 * 200, 60), Ok(at(200)));
        assert_eq!(twap_price_e18(0, -60 * 200, 60), Ok(at(-200)));
        // -1 over 60 s averages to tick -1 (towards negative infinity), not 0.
        assert_eq!(twap_price_e18(0, -1, 60), Ok(at(-1)));
        assert_eq!(twap_price_e18(0, 59, 60), Ok(at(0)));
        assert!(twap_price_e18(i64::MIN, i64::MAX, 1).is_err());
    }

    #[test]
    fn feed_answers_convert_to_raw_unit_prices() {
        let e18 = U256::from(10u64).pow(U256::from(18u8));
        // 1.0 with 8 decimals, both tokens 18 decimals: price 1.
        assert_eq!(
            feed_price_e18(U256::from(100_000_000u64), 8, 18, 18),
            Ok(e18)
        );
        // 2000 USDC (6 decimals) per WETH (18): raw price 2000e6 / 1e18 = 2e-9, in e18 2e9.
        assert_eq!(
            feed_price_e18(U256::from(2_000u64) * U256::from(100_000_000u64), 8, 18, 6),
            Ok(U256::from(2_000_000_000u64))
        );
        assert!(feed_price_e18(U256::MAX, 8, 18, 18).is_err());
        assert!(feed_price_e18(U256::from(1u8), 18, 18, 0).is_err());
    }
}
