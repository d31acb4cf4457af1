//! The oracle guard fed by three real, independent sources on Anvil, for two markets (two
//! real Uniswap V3 pools from `@uniswap/v3-core` 1.0.1, on tokens of their own), each
//! compared with its pool's spot: the pool's TWAP (`observe`, its observation cardinality
//! raised), a Chainlink `MockV3Aggregator` (`@chainlink/contracts` 0.4.1, `latestRoundData`)
//! per pool that the test's keeper updates, and an off-chain reference pushed over gRPC
//! with a feeder key. Each round: the keeper updates the feeds, the follower reads the
//! chain's sources at the head, the feeder pushes, and one proposal per market is submitted;
//! the reason codes the engine returns are what is asserted.
//!
//! - (a) a swap pushes market A's spot 2% within one block: A is refused
//!   `oracle_disagreement` and then `market_halted` while B trades; swapped back, with every
//!   source reporting again after the halt, A trades again;
//! - (b) A's keeper stops and the chain's time moves past the feed's maximum age: A is
//!   refused `oracle_missing`, B trades; a new round on A's feed (and the feeder's next push)
//!   resumes it;
//! - (c) A's feeder stops for more than the guard's `max_age_blocks`: `oracle_missing`, B
//!   trades; its next push resumes A;
//! - a push with no key, a host's key, or a feeder's key for a pool the engine does not
//!   trade is refused;
//! - the ether mark (a third `MockV3Aggregator`, 2000 of market A's token1 per ether, kept
//!   by A's keeper) is read every block, kept at its last fresh price and flagged stale
//!   while A's keeper is away, and fresh again after.
//!
//! SQLite only: the guard's state is in memory and nothing here touches the store's SQL.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy::providers::{Provider, RootProvider};
use alloy_primitives::{Address as EvmAddress, I256, U256 as EvmU256};
use common::*;
use stratbox_engine::follow::ForkFollower;
use stratbox_engine::price_sources::{EtherFeed, SourcesConfig};
use stratbox_engine::{ChainState, Engine, EngineSettings, Role, Store, server};
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig, Deployment, PRICE_ONE_X96};
use stratbox_feed::{BlockHeader, BlockObserver};
use stratbox_proto::v1::{self, trading_engine_client::TradingEngineClient};

const FEEDER_KEY: &str = "feeder-key-0123456789";
const HOST_KEY: &str = "host-key-0123456789";
/// The TWAP's window and the feeds' maximum age, seconds of chain time.
const WINDOW: u64 = 120;
const FEED_MAX_AGE: u64 = 300;
/// Price 1 with the feed's 8 decimals (both tokens have 18).
const ONE_E8: i64 = 100_000_000;
/// The ether feed's answer: 2000 quote tokens per ether, 8 decimals.
const ETHER_E8: i64 = 2_000 * ONE_E8;

struct Setup {
    anvil: Anvil,
    p: RootProvider,
    markets: [Deployment; 2],
    feeds: [EvmAddress; 2],
    ether_feed: EvmAddress,
    engine: Engine,
    follower: ForkFollower,
    client: TradingEngineClient<tonic::transport::Channel>,
}

/// Which of the two markets' keeper and feeder act in a round.
#[derive(Clone, Copy)]
struct Acting {
    keeper: [bool; 2],
    feeder: [bool; 2],
}

const ALL: Acting = Acting {
    keeper: [true, true],
    feeder: [true, true],
};

async fn rpc(p: &RootProvider, method: &'static str, params: serde_json::Value) {
    let _: serde_json::Value = p
        .raw_request(method.into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"));
}

fn e18() -> stratbox_proto::U256 {
    e(1, 18)
}

impl Setup {
    async fn start(db: &Db) -> Setup {
        let anvil = Anvil::spawn().expect("anvil (npm @foundry-rs/anvil-linux-amd64)");
        let p = RootProvider::<alloy::network::Ethereum>::connect(&anvil.endpoint())
            .await
            .expect("connect to anvil");
        let deployer = anvil.accounts()[0];
        let mut markets = Vec::new();
        let mut feeds = Vec::new();
        for _ in 0..2 {
            // Tokens, factory and pool of its own: two markets with different token pairs.
            let d = deploy::deploy(&p, deployer, &DeployConfig::default())
                .await
                .expect("deploy");
            d.grow_oracle(&p, 200)
                .await
                .expect("observation cardinality");
            let feed =
                deploy::deploy_price_feed(&p, deployer, 8, I256::try_from(ONE_E8).expect("i256"))
                    .await
                    .expect("price feed");
            markets.push(d);
            feeds.push(feed);
        }
        let ether_feed =
            deploy::deploy_price_feed(&p, deployer, 8, I256::try_from(ETHER_E8).expect("i256"))
                .await
                .expect("ether feed");
        let markets: [Deployment; 2] = markets.try_into().expect("two");
        let feeds: [EvmAddress; 2] = feeds.try_into().expect("two");
        // A window of history: before it the pools' oracles cannot answer (`OLD`).
        rpc(&p, "evm_increaseTime", serde_json::json!([WINDOW + 10])).await;
        rpc(&p, "evm_mine", serde_json::json!([])).await;

        let pools: Vec<[u8; 20]> = markets.iter().map(|d| d.pool.into_array()).collect();
        let chain = ChainState::fork(&anvil.endpoint(), &pools, None, 0, None)
            .await
            .expect("fork");
        let store = Store::connect(&db.url()).await.expect("store");
        let engine = Engine::start(store, chain, EngineSettings::default())
            .await
            .expect("engine");
        let follower = ForkFollower::new(engine.clone(), &anvil.endpoint(), &pools, false)
            .with_sources(SourcesConfig {
                twap_window: Duration::from_secs(WINDOW),
                feeds: markets
                    .iter()
                    .zip(&feeds)
                    .map(|(d, f)| (d.pool.into_array(), f.into_array()))
                    .collect(),
                feed_max_age: Duration::from_secs(FEED_MAX_AGE),
                ether_feed: Some(EtherFeed {
                    feed: ether_feed.into_array(),
                    quote: markets[0].token1.into_array(),
                }),
            })
            .expect("sources");

        let listener = server::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(server::serve_grpc_with_access(
            engine.clone(),
            tonic::service::Routes::default(),
            Some(Arc::new(TestKeys(vec![
                (FEEDER_KEY, "feeder-1", Role::Feeder),
                (HOST_KEY, "host-1", Role::Host),
            ]))),
            listener,
            std::future::pending(),
        ));
        let client = TradingEngineClient::connect(url).await.expect("client");
        Setup {
            anvil,
            p,
            markets,
            feeds,
            ether_feed,
            engine,
            follower,
            client,
        }
    }

    /// The keeper's new round on market `i`'s feed: price 1, stamped with the block's time.
    async fn keep(&self, i: usize) {
        deploy::update_price_feed(
            &self.p,
            self.anvil.accounts()[0],
            self.feeds[i],
            I256::try_from(ONE_E8).expect("i256"),
        )
        .await
        .expect("updateAnswer");
        if i == 0 {
            deploy::update_price_feed(
                &self.p,
                self.anvil.accounts()[0],
                self.ether_feed,
                I256::try_from(ETHER_E8).expect("i256"),
            )
            .await
            .expect("updateAnswer on the ether feed");
        }
    }

    /// The engine's ether mark: (quote raw units per ether, stale).
    fn ether_mark(&self) -> (stratbox_proto::U256, bool) {
        let m = self.engine.ether_mark().expect("an ether mark");
        (m.price, m.stale)
    }

    fn push_request(&self, pool: EvmAddress) -> v1::PushReferencePriceRequest {
        v1::PushReferencePriceRequest {
            trace: None,
            pool: address(&pool.into_array()),
            price_e18: amount(e18()),
        }
    }

    /// The feeder's push of price 1 for market `i`.
    async fn push(&mut self, i: usize) {
        let req = with_key(self.push_request(self.markets[i].pool), FEEDER_KEY);
        let r = self
            .client
            .push_reference_price(req)
            .await
            .expect("a feeder's push")
            .into_inner();
        assert_eq!(r.feeder, "feeder-1");
        assert_eq!(r.block, self.engine.watermark());
    }

    /// The follower at the node's head, as the chain adapter would announce it.
    async fn follow(&self) {
        let b = self
            .p
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .expect("head")
            .expect("a block");
        let header = BlockHeader {
            number: b.header.number,
            hash: b.header.hash,
            parent_hash: b.header.parent_hash,
            timestamp: b.header.timestamp,
            base_fee_per_gas: b.header.base_fee_per_gas,
        };
        self.follower.head(&header).await;
        assert_eq!(self.engine.watermark(), b.header.number, "followed");
    }

    /// One round; the reason code of one small swap proposed on each market.
    async fn round(&mut self, label: &str, acting: Acting) -> [String; 2] {
        for i in 0..2 {
            if acting.keeper[i] {
                self.keep(i).await;
            }
        }
        self.follow().await;
        for i in 0..2 {
            if acting.feeder[i] {
                self.push(i).await;
            }
        }
        let mut batch = Vec::new();
        for (i, d) in self.markets.iter().enumerate() {
            let action = swap_action(d.pool.into_array(), true, e(1, 15));
            let quoting = self.engine.clone();
            let q = tokio::task::spawn_blocking(move || quote(&quoting, "acct-1", &action))
                .await
                .expect("quote");
            assert!(q.success, "quote reverted: {}", q.revert_reason);
            batch.push(proposal(
                &self.engine,
                "watcher",
                &format!("{label}-{i}"),
                0,
                &action,
                q.amount0,
                q.amount1,
                50,
            ));
        }
        let results = self.engine.submit("", batch).await.expect("submit");
        let codes: Vec<String> = results.iter().map(|r| r.reason_code.clone()).collect();
        for r in &results {
            let expected = if r.reason_code == "ok" {
                v1::TaskState::Simulated
            } else {
                v1::TaskState::Rejected
            };
            assert_eq!(state(r), expected, "{label}: {r:?}");
        }
        codes.try_into().expect("two results")
    }

    /// A swap from the deployer on market `i` that moves its price by itself, mined in one
    /// block: buying token0 with `amount1` token1, or selling token0 back down to price 1.
    async fn swap(&self, i: usize, buy_amount1: Option<EvmU256>) {
        let d = &self.markets[i];
        let (zero_for_one, amount, limit) = match buy_amount1 {
            Some(a) => (false, a, None),
            None => (
                true,
                EvmU256::from(10u8).pow(EvmU256::from(24u8)),
                Some(PRICE_ONE_X96),
            ),
        };
        d.swap(&self.p, d.deployer, zero_for_one, amount, limit)
            .await
            .expect("swap");
    }
}

fn codes(a: &str, b: &str) -> [String; 2] {
    [a.to_owned(), b.to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sources_halt_only_the_affected_market_and_resume_on_a_fresh_round() {
    let db = sqlite().await;
    let mut s = Setup::start(&db).await;
    assert_eq!(s.round("start", ALL).await, codes("ok", "ok"));
    assert_eq!(s.round("steady", ALL).await, codes("ok", "ok"));

    // (a) One block's swap takes A's spot 2% up; its TWAP, feed and reference stay at 1.
    s.swap(0, Some(EvmU256::from(10u8).pow(EvmU256::from(22u8))))
        .await;
    assert_eq!(
        s.round("pushed", ALL).await,
        codes("oracle_disagreement", "ok"),
        "the spot left its own average: only market A halts"
    );
    assert_eq!(
        s.round("still-pushed", ALL).await,
        codes("market_halted", "ok")
    );
    // Swapped back to 1 in one block: the few seconds at +2% moved the 120 s average less
    // than the band, and every source has reported since the halt.
    s.swap(0, None).await;
    assert_eq!(
        s.round("swapped-back", ALL).await,
        codes("ok", "ok"),
        "sources agree on a fresh round: A resumes"
    );

    // (b) A's keeper stops; the chain's clock moves past the feed's maximum age. B's keeper
    // goes on (its round is stamped after the jump).
    rpc(
        &s.p,
        "evm_increaseTime",
        serde_json::json!([FEED_MAX_AGE + 1]),
    )
    .await;
    let a_silent = Acting {
        keeper: [false, true],
        feeder: [true, true],
    };
    let ether = e(2_000, 18);
    assert_eq!(s.ether_mark(), (ether, false), "2000 token1 per ether");
    assert_eq!(
        s.round("feed-stale", a_silent).await,
        codes("oracle_missing", "ok"),
        "A's Chainlink round is too old: A halts, B trades"
    );
    assert_eq!(
        s.ether_mark(),
        (ether, true),
        "the ether feed's round is as old: the last fresh mark, flagged stale"
    );
    assert_eq!(
        s.round("feed-still-stale", a_silent).await,
        codes("market_halted", "ok")
    );
    assert_eq!(
        s.round("keeper-back", ALL).await,
        codes("ok", "ok"),
        "a new round on A's feed, with the other sources after it: A resumes"
    );
    assert_eq!(s.ether_mark(), (ether, false), "a new ether round: fresh");

    // (c) A's feeder stops pushing; the chain goes on for more than max_age_blocks (10).
    let a_unfed = Acting {
        keeper: [true, true],
        feeder: [false, true],
    };
    assert_eq!(s.round("unfed", a_unfed).await, codes("ok", "ok"));
    rpc(&s.p, "anvil_mine", serde_json::json!(["0xa"])).await;
    assert_eq!(
        s.round("reference-stale", a_unfed).await,
        codes("oracle_missing", "ok"),
        "A's reference is more than 10 blocks old: A halts, B trades"
    );
    assert_eq!(
        s.round("reference-still-stale", a_unfed).await,
        codes("market_halted", "ok")
    );
    assert_eq!(
        s.round("feeder-back", ALL).await,
        codes("ok", "ok"),
        "the feeder pushes again: A resumes"
    );

    // Pushes the engine must refuse: no key, a host's key, a pool it does not trade.
    let req = s.push_request(s.markets[0].pool);
    let refused = s
        .client
        .push_reference_price(req.clone())
        .await
        .expect_err("a push without a key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let refused = s
        .client
        .push_reference_price(with_key(req.clone(), "not-a-key"))
        .await
        .expect_err("a push with an unknown key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let refused = s
        .client
        .push_reference_price(with_key(req, HOST_KEY))
        .await
        .expect_err("a push with a host's key");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let unknown_pool = with_key(s.push_request(s.markets[0].token0), FEEDER_KEY);
    let refused = s
        .client
        .push_reference_price(unknown_pool)
        .await
        .expect_err("a push for a pool the engine does not trade");
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    // None of the refused pushes counted: a quote pushed before the halt cannot resume A.
    s.swap(0, Some(EvmU256::from(10u8).pow(EvmU256::from(22u8))))
        .await;
    let keeper_only = Acting {
        keeper: [true, true],
        feeder: [false, true],
    };
    assert_eq!(
        s.round("pushed-again", keeper_only).await,
        codes("oracle_disagreement", "ok")
    );
    s.swap(0, None).await;
    assert_eq!(
        s.round("back-unfed", keeper_only).await,
        codes("market_halted", "ok"),
        "A's reference predates the halt: no fresh round yet"
    );
    assert_eq!(s.round("back-fed", ALL).await, codes("ok", "ok"));
    db.cleanup().await;
}
