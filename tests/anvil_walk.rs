//! The random walk on a real Anvil: every step is a mined swap on the real pool that moves
//! its price, and the price stays where the walk's rule keeps it (near 1).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::eips::BlockNumberOrTag;
use alloy::providers::Provider;
use stratbox::market::anvil::AnvilMarket;

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_is_a_mined_swap_that_moves_the_price() {
    let mut market = AnvilMarket::start(9).await.expect("anvil with the pool");
    let start = market.block_number().await.expect("head");
    let (mut price, _, _) = market
        .deployment()
        .pool_state(market.provider())
        .await
        .expect("pool");
    for i in 0..20u64 {
        if i == 1 {
            // A swap in a later second than the last block (it writes the pool's oracle):
            // Anvil stamps blocks with the clock, so wait until the clock is past the head's.
            let head = market
                .provider()
                .get_block_by_number(BlockNumberOrTag::Latest)
                .await
                .expect("head block")
                .expect("a head block")
                .header
                .timestamp;
            let deadline = Instant::now() + Duration::from_secs(10);
            while unix_seconds() <= head {
                assert!(
                    Instant::now() < deadline,
                    "the clock never passed block time {head}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let receipt = market.step().await.expect("a swap");
        assert!(receipt.status());
        assert_eq!(
            receipt.block_number,
            Some(start + i + 1),
            "a block per swap"
        );
        let (now, _, _) = market
            .deployment()
            .pool_state(market.provider())
            .await
            .expect("pool");
        assert_ne!(now, price, "step {i} did not move the price");
        price = now;
    }
    assert_eq!((market.blocks, market.swaps), (20, 20));
}
