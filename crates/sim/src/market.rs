//! A deterministic random-walk market for `stratbox up` and demos: each call makes one swap
//! that moves a pool's price by a small random step, from a trader funded as needed.

use alloy_primitives::{Address, U256};
use rand::Rng;

use crate::{Action, Chain, Executed, SimError};

/// Largest price step of one random swap, in millionths of the sqrt price (0.3%).
const MAX_STEP_PPM: u64 = 3_000;
const MIN_STEP_PPM: u64 = 50;
use stratbox_sdk::math::price::input_for_step;

impl Chain {
    /// One random swap on a random pool of this chain, committed. The same `rng` state gives the
    /// same swap on the same chain state. The trader is funded (and approves the executor) when
    /// its balance would not cover the swap.
    pub fn random_swap<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        trader: Address,
    ) -> Result<Executed, SimError> {
        let pools = self.pools();
        if pools.is_empty() {
            return Err(SimError::Invalid("no pools to trade on".into()));
        }
        let info = pools[rng.random_range(0..pools.len())];
        let state = self.pool_state(info.address)?;
        let zero_for_one = rng.random_bool(0.5);
        let step_ppm = U256::from(rng.random_range(MIN_STEP_PPM..=MAX_STEP_PPM));
        let liquidity = U256::from(state.liquidity.max(1));
        // Input that moves sqrt(P) by about step.
        let amount_in = input_for_step(
            zero_for_one,
            state.sqrt_price_x96,
            liquidity,
            step_ppm,
            U256::from(1_000u32),
        );
        let token_in = if zero_for_one {
            info.token0
        } else {
            info.token1
        };
        let balance = self.balance_of(token_in, trader)?;
        if balance < amount_in {
            self.fund(trader, token_in, amount_in.saturating_mul(U256::from(10u8)))?;
        }
        self.execute(
            trader,
            &Action::Swap {
                pool: info.address,
                zero_for_one,
                amount_in,
                sqrt_price_limit_x96: None,
            },
        )
    }
}
