//! How many `Chain::simulate` calls a second one thread does (a measurement, not a test).
//!
//! `cargo run --release -p stratbox-sim --example simulate_rate [iterations]`

use std::time::Instant;

use alloy_primitives::{U256, address};
use stratbox_sim::{Action, Chain, EmbeddedConfig, FundedAccount, SimError};

fn main() -> Result<(), SimError> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let trader = address!("0x00000000000000000000000000000000000be4c4");
    let plenty = U256::from(10u128.pow(30));
    let chain = Chain::embedded(&EmbeddedConfig {
        accounts: vec![FundedAccount {
            account: trader,
            amount0: plenty,
            amount1: plenty,
        }],
        ..EmbeddedConfig::default()
    })?;
    let pool = chain.pools()[0].address;

    let swap = |i: u32| Action::Swap {
        pool,
        zero_for_one: i.is_multiple_of(2),
        amount_in: U256::from(10u128.pow(18) + u128::from(i)),
        sqrt_price_limit_x96: None,
    };
    // Warm up caches and the allocator.
    for i in 0..1_000 {
        chain.simulate(trader, &[swap(i)])?;
    }
    let start = Instant::now();
    let mut gas = 0u64;
    for i in 0..iterations {
        let out = chain.simulate(trader, &[swap(i)])?;
        gas += out[0].gas_used;
    }
    let elapsed = start.elapsed();
    println!(
        "simulate(one swap): {iterations} in {elapsed:?} = {:.0}/s ({:.1} us each, avg gas {})",
        f64::from(iterations) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(iterations),
        gas / u64::from(iterations)
    );

    let add = Action::AddLiquidity {
        pool,
        tick_lower: -600,
        tick_upper: 600,
        liquidity: 10u128.pow(20),
    };
    let remove = Action::RemoveLiquidity {
        pool,
        tick_lower: -600,
        tick_upper: 600,
        liquidity: 10u128.pow(20),
    };
    let n = iterations / 2;
    let start = Instant::now();
    for _ in 0..n {
        chain.simulate(trader, &[add, remove])?;
    }
    let elapsed = start.elapsed();
    println!(
        "simulate([add, remove]): {n} in {elapsed:?} = {:.0}/s",
        f64::from(n) / elapsed.as_secs_f64()
    );
    Ok(())
}
