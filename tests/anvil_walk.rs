//! The random walk on a real Anvil: every step is a mined swap on the real pool that moves
//! its price, and the price stays where the walk's rule keeps it (near 1).

use stratbox::market::anvil::AnvilMarket;

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
            // A swap in a later second than the last block (it writes the pool's oracle).
            tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
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
