//! The random-walk market on a real node: an Anvil started from the npm package, the real
//! tokens, Uniswap V3 factory, pool and executor deployed there, and one real swap
//! transaction per step (Anvil automines a block per transaction).
//!
//! The swap sizes follow the embedded walk's rule (a price step of 0.005%..0.3%), so a
//! strategy tuned on the embedded market sees the same kind of market here.
//!
//! With [`AnvilMarket::start_price_sources`] the market also has an outside price: a fair
//! value that walks slowly (a stand-in for the market beyond this pool; there is none on a
//! local node), a Chainlink `MockV3Aggregator` the keeper moves to it after every swap, and
//! the fair value for an off-chain feeder to push. The pool's walk then trades around the
//! fair value in smaller steps (arbitrage pulls it back beyond 0.1%), so its spot, its TWAP,
//! the feed and the reference stay within the oracle guard's band, as a real market's do.

use alloy::network::Ethereum;
use alloy::network::TransactionBuilder;
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::TransactionReceipt;
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::{Address, U256};
use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{
    DeployConfig, Deployment, deploy, executor_swap_calldata, send_request,
};

const MAX_STEP_PPM: u64 = 3_000;
const MIN_STEP_PPM: u64 = 50;
/// sqrt(P) steps of a walk around an outside price: 0.005%..0.05% in price.
const ANCHORED_MAX_STEP_PPM: u64 = 250;
const ANCHORED_MIN_STEP_PPM: u64 = 25;
/// A swap on one full-range position takes ~110k gas; crossing initialised ticks more.
const SWAP_GAS: u64 = 1_000_000;
use stratbox_sdk::math::price::{input_for_step, spot_price_e18};

/// Decimals of the demo's price feed, as Chainlink's USD feeds have.
pub const FEED_DECIMALS: u8 = 8;

/// The outside price of a market with price sources (see the module docs).
struct Outside {
    feed: Address,
    /// Raw token1 per raw token0, 18 decimals (the engine's price unit).
    fair_e18: U256,
    /// The ETH feed in token1 (the ether mark gas is valued at) and when its keeper last
    /// sent a round.
    ether_feed: Address,
    ether_kept: std::time::Instant,
}

/// The demo's ether price: 2000 token1 per ether (a stable ETH/USD-like figure).
pub const ETHER_PRICE: u64 = 2_000;
/// How often the keeper sends a round to the ether feed: well within any sensible
/// `feed_max_age`, and rarely enough that the walk's blocks are mostly swaps.
const ETHER_KEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// The ether feed's answer: [`ETHER_PRICE`] with [`FEED_DECIMALS`].
fn ether_answer() -> alloy_primitives::I256 {
    alloy_primitives::I256::from_raw(U256::from(
        ETHER_PRICE * 10u64.pow(u32::from(FEED_DECIMALS)),
    ))
}

/// A running Anvil with stratbox's contracts. Dropping it kills Anvil.
pub struct AnvilMarket {
    anvil: Anvil,
    provider: RootProvider<Ethereum>,
    deployment: Deployment,
    trader: Address,
    rng: StdRng,
    /// Blocks mined so far by [`AnvilMarket::step`], for the `up` summary.
    pub blocks: u64,
    /// Swaps sent so far, for the `up` summary.
    pub swaps: u64,
    outside: Option<Outside>,
}

impl AnvilMarket {
    /// Starts Anvil (from `node_modules`, installing the pinned packages if missing) and
    /// deploys the default pool: price 1, 0.3% fee, full-range seed liquidity, like the
    /// embedded chain's.
    pub async fn start(seed: u64) -> anyhow::Result<Self> {
        let anvil = tokio::task::spawn_blocking(Anvil::spawn)
            .await
            .context("starting anvil")?
            .context("starting anvil from node_modules/@foundry-rs/anvil-linux-amd64")?;
        Self::on(anvil, seed).await
    }

    /// Deploys on an Anvil the caller started.
    pub async fn on(anvil: Anvil, seed: u64) -> anyhow::Result<Self> {
        let provider = RootProvider::<Ethereum>::connect(&anvil.endpoint())
            .await
            .with_context(|| format!("connecting to anvil at {}", anvil.endpoint()))?;
        let deployer = *anvil
            .accounts()
            .first()
            .context("anvil reported no dev accounts")?;
        let deployment = deploy(&provider, deployer, &DeployConfig::default())
            .await
            .context("deploying the pool on anvil")?;
        Ok(AnvilMarket {
            anvil,
            provider,
            deployment,
            // The deployer holds 1e30 of each token and has approved the executor.
            trader: deployer,
            rng: StdRng::seed_from_u64(seed),
            blocks: 0,
            swaps: 0,
            outside: None,
        })
    }

    /// Gives the market an outside price (see the module docs): raises the pool's
    /// observation cardinality so `observe` answers over `twap_window`, deploys the price
    /// feed at the pool's price, and moves the node's clock on by the window (a new pool's
    /// oracle cannot answer for seconds before it existed). Returns the feed's address.
    pub async fn start_price_sources(
        &mut self,
        twap_window: std::time::Duration,
    ) -> anyhow::Result<Address> {
        // One observation per block at most; room for the window at one block a second.
        let cardinality =
            u16::try_from(twap_window.as_secs().saturating_add(10)).unwrap_or(u16::MAX);
        self.deployment
            .grow_oracle(&self.provider, cardinality)
            .await
            .context("raising the pool's observation cardinality")?;
        let (sqrt_price, _, _) = self
            .deployment
            .pool_state(&self.provider)
            .await
            .context("reading the pool")?;
        let fair_e18 = spot_price_e18(sqrt_price);
        let feed = stratbox_evm::deploy::deploy_price_feed(
            &self.provider,
            self.trader,
            FEED_DECIMALS,
            feed_answer(fair_e18)?,
        )
        .await
        .context("deploying the price feed")?;
        let ether_feed = stratbox_evm::deploy::deploy_price_feed(
            &self.provider,
            self.trader,
            FEED_DECIMALS,
            ether_answer(),
        )
        .await
        .context("deploying the ether feed")?;
        let _: serde_json::Value = self
            .provider
            .raw_request("evm_increaseTime".into(), [twap_window.as_secs()])
            .await
            .context("moving anvil's clock past the TWAP window")?;
        let _: serde_json::Value = self
            .provider
            .raw_request("evm_mine".into(), serde_json::json!([]))
            .await
            .context("mining after the clock moved")?;
        // The keeper's first round after the clock moved: the deploy's round is as old as
        // the window now.
        stratbox_evm::deploy::update_price_feed(
            &self.provider,
            self.trader,
            feed,
            feed_answer(fair_e18)?,
        )
        .await
        .context("the keeper's first update of the price feed")?;
        stratbox_evm::deploy::update_price_feed(
            &self.provider,
            self.trader,
            ether_feed,
            ether_answer(),
        )
        .await
        .context("the keeper's first update of the ether feed")?;
        self.outside = Some(Outside {
            feed,
            fair_e18,
            ether_feed,
            ether_kept: std::time::Instant::now(),
        });
        Ok(feed)
    }

    /// The keeper's rounds now, on both feeds: before the chain is followed, so they are
    /// fresh when the first proposal is judged however long the start took (the signer's
    /// first key ceremony takes a minute or more, and the chain's clock runs on).
    pub async fn keep(&mut self) -> anyhow::Result<()> {
        self.keep_price().await?;
        self.keep_ether().await
    }

    /// A round on the price feed at the outside price.
    async fn keep_price(&mut self) -> anyhow::Result<()> {
        if let Some(outside) = &self.outside {
            stratbox_evm::deploy::update_price_feed(
                &self.provider,
                self.trader,
                outside.feed,
                feed_answer(outside.fair_e18)?,
            )
            .await
            .context("the keeper's update of the price feed")?;
            self.blocks += 1;
        }
        Ok(())
    }

    /// A round on the ether feed.
    async fn keep_ether(&mut self) -> anyhow::Result<()> {
        if let Some(outside) = &mut self.outside {
            stratbox_evm::deploy::update_price_feed(
                &self.provider,
                self.trader,
                outside.ether_feed,
                ether_answer(),
            )
            .await
            .context("the keeper's update of the ether feed")?;
            outside.ether_kept = std::time::Instant::now();
            self.blocks += 1;
        }
        Ok(())
    }

    /// The Chainlink-style ETH feed in token1 the keeper updates (the ether mark), once
    /// [`AnvilMarket::start_price_sources`] ran.
    pub fn ether_feed(&self) -> Option<Address> {
        self.outside.as_ref().map(|o| o.ether_feed)
    }

    /// The Chainlink-style feed the keeper updates, once
    /// [`AnvilMarket::start_price_sources`] ran.
    pub fn price_feed(&self) -> Option<Address> {
        self.outside.as_ref().map(|o| o.feed)
    }

    /// The outside price the feeder pushes (raw token1 per raw token0, 18 decimals), once
    /// [`AnvilMarket::start_price_sources`] ran.
    pub fn fair_price_e18(&self) -> Option<U256> {
        self.outside.as_ref().map(|o| o.fair_e18)
    }

    /// `http://127.0.0.1:<port>`
    pub fn endpoint(&self) -> String {
        self.anvil.endpoint()
    }

    /// The Uniswap V3 pool the walk trades on.
    pub fn pool(&self) -> Address {
        self.deployment.pool
    }

    /// Every contract address deployed at start.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// An HTTP provider on this Anvil, for callers that read the chain directly.
    pub fn provider(&self) -> &RootProvider<Ethereum> {
        &self.provider
    }

    /// The chain head; errors when Anvil is unreachable.
    pub async fn block_number(&self) -> anyhow::Result<u64> {
        Ok(self.provider.get_block_number().await?)
    }

    /// One random swap, sent and mined; its receipt holds the pool's `Swap` log.
    pub async fn step(&mut self) -> anyhow::Result<TransactionReceipt> {
        let (sqrt_price, _tick, liquidity) = self
            .deployment
            .pool_state(&self.provider)
            .await
            .context("reading the pool")?;
        let (zero_for_one, step_ppm) = match &mut self.outside {
            None => (
                self.rng.random_bool(0.5),
                U256::from(self.rng.random_range(MIN_STEP_PPM..=MAX_STEP_PPM)),
            ),
            Some(outside) => {
                // The fair value moves up to 0.01% a block; the pool trades around it.
                let drift = U256::from(self.rng.random_range(0u32..=10));
                let moved = outside.fair_e18 * drift / U256::from(100_000u32);
                outside.fair_e18 = if self.rng.random_bool(0.5) {
                    outside.fair_e18 + moved
                } else {
                    outside.fair_e18 - moved
                };
                let spot = spot_price_e18(sqrt_price);
                let band = outside.fair_e18 / U256::from(1_000u32);
                let zero_for_one = if spot > outside.fair_e18 + band {
                    true
                } else if spot + band < outside.fair_e18 {
                    false
                } else {
                    self.rng.random_bool(0.5)
                };
                (
                    zero_for_one,
                    U256::from(
                        self.rng
                            .random_range(ANCHORED_MIN_STEP_PPM..=ANCHORED_MAX_STEP_PPM),
                    ),
                )
            }
        };
        let amount_in = swap_amount(zero_for_one, sqrt_price, liquidity, step_ppm);
        let data = executor_swap_calldata(
            self.deployment.pool,
            zero_for_one,
            amount_in,
            None,
            U256::ZERO,
        )?;
        let tx = TransactionRequest::default()
            .with_from(self.trader)
            .with_to(self.deployment.executor)
            .with_input(data)
            // Not the node's estimate: Anvil estimates against the last block, where the
            // pool's oracle slot for this second may already be written; executed in a new
            // second the swap writes it and runs out of the estimated gas.
            .with_gas_limit(SWAP_GAS);
        let receipt = match send_request(&self.provider, tx.clone(), "swap").await {
            Ok(r) => r,
            Err(e) => {
                // The receipt says only "reverted"; replaying it as a call says why.
                let why = match self.provider.call(tx).await {
                    Ok(_) => "the replay as a call succeeds".to_owned(),
                    Err(e) => e.to_string(),
                };
                return Err(anyhow::Error::new(e).context(format!(
                    "random-walk swap on anvil (zero_for_one {zero_for_one}, amount_in {amount_in}): {why}"
                )));
            }
        };
        self.blocks += 1;
        self.swaps += 1;
        // The keeper: a new round on the feed at the outside price, and on the ether feed
        // every ETHER_KEEP_EVERY.
        self.keep_price().await?;
        if self
            .outside
            .as_ref()
            .is_some_and(|o| o.ether_kept.elapsed() >= ETHER_KEEP_EVERY)
        {
            self.keep_ether().await?;
        }
        Ok(receipt)
    }
}

/// The feed's answer for a raw-unit price: the demo's tokens both have 18 decimals, so the
/// whole-token price is the raw one, given with [`FEED_DECIMALS`].
fn feed_answer(price_e18: U256) -> anyhow::Result<alloy_primitives::I256> {
    let answer = price_e18 / U256::from(10u64).pow(U256::from(18 - FEED_DECIMALS));
    alloy_primitives::I256::try_from(answer).context("price out of the feed's range")
}

/// Input that moves sqrt(P) by about `step_ppm` millionths: Δx = L·Δ(1/√P), Δy = L·Δ√P.
fn swap_amount(zero_for_one: bool, sqrt_price_x96: U256, liquidity: u128, step_ppm: U256) -> U256 {
    input_for_step(
        zero_for_one,
        sqrt_price_x96,
        U256::from(liquidity.max(1)),
        step_ppm,
        U256::from(1_000u32),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::math::Q96;

    #[test]
    fn amounts_scale_with_liquidity_and_step() {
        let l = 1_000_000_000_000_000_000_000_000u128; // 1e24 at price 1
        let a = swap_amount(true, Q96, l, U256::from(3_000u32));
        let b = swap_amount(false, Q96, l, U256::from(3_000u32));
        assert_eq!(a, U256::from(3_000_000_000_000_000_000_000u128));
        assert_eq!(a, b);
        assert_eq!(
            swap_amount(true, Q96, 0, U256::from(50u32)),
            U256::from(1_000u32)
        );
    }
}
