//! The engine follows a live chain (Anvil): each block the feed announces moves the engine's
//! fork and watermark to it, and the gas gate to the block's base fee.

use alloy::providers::Provider;
use alloy_primitives::U256;
use stratbox::market::anvil::AnvilMarket;
use stratbox_engine::ChainState;
use stratbox_engine::follow::ForkFollower;
use stratbox_engine::{Engine, EngineSettings, Store};
use stratbox_feed::{BlockHeader, BlockObserver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_block_moves_the_fork_the_watermark_and_the_gas_price() {
    let mut market = AnvilMarket::start(4).await.expect("anvil with the pool");
    let pool = market.pool().into_array();
    let chain = ChainState::fork(&market.endpoint(), &[pool], None, 0, None)
        .await
        .expect("fork");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/engine.db", dir.path().display()))
        .await
        .expect("store");
    let engine = Engine::start(store, chain, EngineSettings::default())
        .await
        .expect("engine");
    assert_eq!(
        engine.gas_price(),
        U256::ZERO,
        "the configured price until a block"
    );
    let follower = ForkFollower::new(engine.clone(), &market.endpoint(), &[pool], false);

    for _ in 0..2 {
        market.step().await.expect("a swap");
        let b = market
            .provider()
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .expect("head")
            .expect("a block");
        let fee = b.header.base_fee_per_gas.expect("anvil charges a base fee");
        assert!(fee > 0);
        let header = BlockHeader {
            number: b.header.number,
            hash: b.header.hash,
            parent_hash: b.header.parent_hash,
            timestamp: b.header.timestamp,
            base_fee_per_gas: Some(fee),
        };
        follower.head(&header).await;
        assert_eq!(engine.watermark(), b.header.number);
        assert_eq!(engine.gas_price(), U256::from(fee));
        assert_eq!(engine.chain().block_number(), b.header.number);
        assert_eq!(engine.chain().gas_price(), U256::from(fee));
    }
}
