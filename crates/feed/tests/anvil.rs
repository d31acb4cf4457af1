//! The feed against a real Anvil running the real Uniswap V3 bytecode (stratbox-evm),
//! publishing on the real Redis (`STRATBOX_TEST_REDIS`, 127.0.0.1:6379 by default).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use alloy::network::Ethereum;
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::TransactionReceipt;
use alloy_primitives::{Address, B256, U256};
use stratbox_bus::{Bus, RedisBus, RedisBusConfig, StartId, decode_event};
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{DeployConfig, Deployment, deploy};
use stratbox_feed::{
    BlockHeader, BlockObserver, Feed, FeedConfig, FileCheckpoint, MemoryCheckpoint, StartBlock,
};
use stratbox_proto::v1::{ChainEvent, LiquidityEvent, Reorg, SwapEvent, chain_event::Kind};

const E18: u128 = 1_000_000_000_000_000_000;

struct Env {
    _anvil: Anvil,
    provider: RootProvider<Ethereum>,
    dep: Deployment,
    from: Address,
    bus: Arc<RedisBus>,
    stream: String,
}

async fn env() -> Env {
    let anvil = Anvil::spawn().unwrap();
    let provider = RootProvider::<Ethereum>::connect(&anvil.endpoint())
        .await
        .unwrap();
    let from = anvil.accounts()[0];
    let dep = deploy(&provider, from, &DeployConfig::default())
        .await
        .unwrap();
    let bus = Arc::new(
        RedisBus::connect(RedisBusConfig::new(stratbox_testenv::redis_url()))
            .await
            .expect("connect to Redis (STRATBOX_TEST_REDIS)"),
    );
    let stream = format!("test:feed:{}", uuid::Uuid::new_v4().simple());
    bus.ensure_group(&stream, "check", StartId::Beginning)
        .await
        .unwrap();
    Env {
        _anvil: anvil,
        provider,
        dep,
        from,
        bus,
        stream,
    }
}

impl Env {
    fn config(&self, start: u64) -> FeedConfig {
        FeedConfig {
            stream: self.stream.clone(),
            start: StartBlock::Number(start),
            poll_interval: Duration::from_millis(50),
            ..FeedConfig::new(self._anvil.endpoint(), vec![self.dep.pool])
        }
    }

    async fn head(&self) -> u64 {
        self.provider.get_block_number().await.unwrap()
    }

    /// Waits until the node's `latest` block is `number` (and `hash`, if given): the feed
    /// polls `latest`, and a receipt in hand does not prove the node already answers with
    /// its block there. A test that expects a poll to see a block waits for this first.
    async fn settled(&self, number: u64, hash: Option<B256>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let latest = self
                .provider
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                .await
                .unwrap()
                .expect("a latest block");
            if latest.header.number == number && hash.is_none_or(|h| h == latest.header.hash) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node's latest is {} {:#x}, expected {number} {hash:?}",
                latest.header.number,
                latest.header.hash
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Events published since the last call, in stream order.
    async fn drain(&self) -> Vec<ChainEvent> {
        let mut out = Vec::new();
        loop {
            let got = self
                .bus
                .read_group(&self.stream, "check", "t", 100, Duration::ZERO)
                .await
                .unwrap();
            if got.is_empty() {
                return out;
            }
            let ids: Vec<_> = got.iter().map(|d| d.id).collect();
            out.extend(got.iter().map(|d| decode_event(d).unwrap().event));
            self.bus.ack(&self.stream, "check", &ids).await.unwrap();
        }
    }

    async fn swap(&self, zero_for_one: bool, amount_in: u128) -> TransactionReceipt {
        self.dep
            .swap(
                &self.provider,
                self.from,
                zero_for_one,
                U256::from(amount_in),
                None,
            )
            .await
            .unwrap()
    }

    async fn evm(&self, method: &'static str, params: serde_json::Value) -> serde_json::Value {
        self.provider
            .raw_request(method.into(), params)
            .await
            .unwrap()
    }

    async fn cleanup(self) {
        self.bus.delete_stream(&self.stream).await.unwrap();
    }
}

/// Records each block the feed announces with the stream's length at that moment, to check
/// the announcement comes before any of the block's events.
struct Recorder {
    bus: Arc<RedisBus>,
    stream: String,
    seen: std::sync::Mutex<Vec<(u64, u64)>>,
}

impl BlockObserver for Recorder {
    fn head<'a>(
        &'a self,
        block: &'a BlockHeader,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let len = self.bus.len(&self.stream).await.unwrap();
            self.seen.lock().unwrap().push((block.number, len));
        })
    }
}

fn swap_of(e: &ChainEvent) -> Option<&SwapEvent> {
    match &e.kind {
        Some(Kind::Swap(s)) => Some(s),
        _ => None,
    }
}

fn block_of(e: &ChainEvent) -> Option<u64> {
    match &e.kind {
        Some(Kind::NewBlock(b)) => Some(b.number),
        _ => None,
    }
}

fn reorg_of(e: &ChainEvent) -> Option<&Reorg> {
    match &e.kind {
        Some(Kind::Reorg(r)) => Some(r),
        _ => None,
    }
}

fn value(a: &Option<stratbox_proto::v1::Amount>) -> U256 {
    stratbox_proto::parse_amount(&a.as_ref().unwrap().value).unwrap()
}

fn receipt_block(r: &TransactionReceipt) -> (u64, B256) {
    (r.block_number.unwrap(), r.block_hash.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_and_liquidity_become_chain_events() {
    let env = env().await;
    let start = env.head().await + 1;
    let mut feed = Feed::connect(
        env.config(start),
        env.bus.clone(),
        Box::new(MemoryCheckpoint::new()),
    )
    .await
    .unwrap();
    let watermark = feed.watermark();
    let (token0, token1) = (env.dep.token0, env.dep.token1);

    let t1_before = env
        .dep
        .balance_of(&env.provider, token1, env.from)
        .await
        .unwrap();
    let r1 = env.swap(true, E18).await;
    let t1_after = env
        .dep
        .balance_of(&env.provider, token1, env.from)
        .await
        .unwrap();
    let t0_before = env
        .dep
        .balance_of(&env.provider, token0, env.from)
        .await
        .unwrap();
    let r2 = env.swap(false, 3 * E18 / 10).await;
    let t0_after = env
        .dep
        .balance_of(&env.provider, token0, env.from)
        .await
        .unwrap();
    let r3 = env
        .dep
        .add_liquidity(&env.provider, env.from, -600, 600, E18)
        .await
        .unwrap();
    let r4 = env
        .dep
        .remove_liquidity(&env.provider, env.from, -600, 600, E18 / 2)
        .await
        .unwrap();
    let (sqrt_price, tick, _) = env.dep.pool_state(&env.provider).await.unwrap();

    env.settled(r4.block_number.unwrap(), r4.block_hash).await;
    let report = feed.poll_once().await.unwrap();
    assert_eq!(report.blocks, r4.block_number.unwrap() - start + 1);
    assert_eq!(report.reorgs, 0);
    let events = env.drain().await;
    assert_eq!(events.len() as u64, report.events);

    let chain_id = feed.chain_id();
    let swaps: Vec<(&ChainEvent, &SwapEvent)> = events
        .iter()
        .filter_map(|e| swap_of(e).map(|s| (e, s)))
        .collect();
    assert_eq!(swaps.len(), 2);
    let (e1, s1) = swaps[0];
    let (n1, h1) = receipt_block(&r1);
    assert!(s1.zero_for_one);
    assert_eq!(value(&s1.amount_in), U256::from(E18));
    assert_eq!(
        value(&s1.amount_out),
        t1_after - t1_before,
        "amount out must be what the trader received"
    );
    assert_eq!(e1.last_sync_block, n1);
    let o1 = s1.origin.as_ref().unwrap();
    assert_eq!(o1.block, n1);
    assert_eq!(o1.tx_hash, format!("{:#x}", r1.transaction_hash));
    assert_eq!(
        e1.event_id,
        format!("{chain_id}:{n1}:{}:{h1:#x}", o1.log_index)
    );
    assert_eq!(
        s1.pool.as_ref().unwrap().value,
        format!("{:#x}", env.dep.pool)
    );

    let (e2, s2) = swaps[1];
    assert!(!s2.zero_for_one);
    assert_eq!(value(&s2.amount_in), U256::from(3 * E18 / 10));
    assert_eq!(value(&s2.amount_out), t0_after - t0_before);
    assert_eq!(e2.last_sync_block, r2.block_number.unwrap());
    // Mint/burn do not move the price: the last swap's price is the pool's price now.
    assert_eq!(value(&s2.sqrt_price_x96), sqrt_price);
    assert_eq!(s2.tick, tick);

    let liq: Vec<(&str, &LiquidityEvent, u64)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Mint(l)) => Some(("mint", l, e.last_sync_block)),
            Some(Kind::Burn(l)) => Some(("burn", l, e.last_sync_block)),
            _ => None,
        })
        .collect();
    assert_eq!(liq.len(), 2);
    assert_eq!((liq[0].0, liq[0].2), ("mint", r3.block_number.unwrap()));
    assert_eq!((liq[0].1.tick_lower, liq[0].1.tick_upper), (-600, 600));
    assert_eq!(value(&liq[0].1.liquidity), U256::from(E18));
    assert!(value(&liq[0].1.amount0) > U256::ZERO);
    assert_eq!((liq[1].0, liq[1].2), ("burn", r4.block_number.unwrap()));
    assert_eq!(value(&liq[1].1.liquidity), U256::from(E18 / 2));

    // One new_block per block, closing it, in order; every event of a block carries it.
    let blocks: Vec<u64> = events.iter().filter_map(block_of).collect();
    assert_eq!(
        blocks,
        (start..=r4.block_number.unwrap()).collect::<Vec<_>>()
    );
    let mut current = start;
    for e in &events {
        assert_eq!(e.last_sync_block, current);
        assert_eq!(e.chain_id, chain_id);
        assert_eq!(e.trace.as_ref().unwrap().trace_id.len(), 32);
        if let Some(n) = block_of(e) {
            current = n + 1;
        }
    }
    assert_eq!(*watermark.borrow(), r4.block_number.unwrap());
    assert_eq!(
        feed.poll_once().await.unwrap().blocks,
        0,
        "nothing new, nothing published"
    );
    assert!(env.drain().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorgs_are_detected_and_the_canonical_chain_republished() {
    let env = env().await;
    let base = env.head().await;
    let recorder = Arc::new(Recorder {
        bus: env.bus.clone(),
        stream: env.stream.clone(),
        seen: Default::default(),
    });
    let mut feed = Feed::connect(
        env.config(base),
        env.bus.clone(),
        Box::new(MemoryCheckpoint::new()),
    )
    .await
    .unwrap()
    .with_observer(recorder.clone());
    let watermark = feed.watermark();
    feed.poll_once().await.unwrap();

    // Fork 1: two swaps, published; then the node rewinds below them.
    let snap = env.evm("evm_snapshot", serde_json::json!([])).await;
    env.swap(true, E18).await;
    let b = env.swap(true, 2 * E18).await;
    env.settled(base + 2, b.block_hash).await;
    feed.poll_once().await.unwrap();
    assert_eq!(*watermark.borrow(), base + 2);
    env.drain().await;
    assert_eq!(
        env.evm("evm_revert", serde_json::json!([snap])).await,
        serde_json::json!(true)
    );
    // A node whose head is behind ours, on our chain, is not a reorg (a lagging RPC replica
    // looks the same): nothing happens until a block that contradicts ours appears.
    env.settled(base, None).await;
    let report = feed.poll_once().await.unwrap();
    assert_eq!((report.blocks, report.reorgs), (0, 0));
    assert!(env.drain().await.is_empty());

    // Fork 2 replaces it: a different swap, then two empty blocks.
    let c = env.swap(false, 5 * E18).await;
    env.evm("evm_mine", serde_json::json!([])).await;
    env.evm("evm_mine", serde_json::json!([])).await;
    env.settled(base + 3, None).await;
    let report = feed.poll_once().await.unwrap();
    assert_eq!((report.blocks, report.reorgs), (3, 1));
    let events = env.drain().await;
    let r = reorg_of(&events[0]).expect("the reorg comes first");
    assert_eq!(
        (r.common_ancestor, r.old_head, r.new_head),
        (base, base + 2, base + 3)
    );
    assert_eq!(events[0].last_sync_block, base);
    let swaps: Vec<&SwapEvent> = events.iter().filter_map(swap_of).collect();
    assert_eq!(swaps.len(), 1);
    assert_eq!(value(&swaps[0].amount_in), U256::from(5 * E18));
    let (n_c, h_c) = receipt_block(&c);
    assert_eq!(n_c, base + 1);
    assert!(
        events[1].event_id.ends_with(&format!("{h_c:#x}")),
        "ids carry the new block hash"
    );
    assert_eq!(
        events.iter().filter_map(block_of).collect::<Vec<_>>(),
        vec![base + 1, base + 2, base + 3]
    );
    assert_eq!(*watermark.borrow(), base + 3);

    // Fork 3: our head replaced by a block of the same height (the node's head is one we do
    // not know), then the new branch grows.
    let snap = env.evm("evm_snapshot", serde_json::json!([])).await;
    let d = env.swap(true, 7 * E18).await;
    env.settled(base + 4, d.block_hash).await;
    feed.poll_once().await.unwrap();
    env.drain().await;
    env.evm("evm_revert", serde_json::json!([snap])).await;
    let e = env.swap(false, 11 * E18).await;
    env.settled(base + 4, e.block_hash).await;
    let report = feed.poll_once().await.unwrap();
    assert_eq!((report.blocks, report.reorgs), (1, 1));
    env.evm("evm_mine", serde_json::json!([])).await;
    env.evm("evm_mine", serde_json::json!([])).await;
    env.settled(base + 6, None).await;
    feed.poll_once().await.unwrap();
    let events = env.drain().await;
    let r = reorg_of(&events[0]).expect("the reorg comes first");
    assert_eq!(
        (r.common_ancestor, r.old_head, r.new_head),
        (base + 3, base + 4, base + 4)
    );
    let republished: Vec<u64> = events.iter().filter_map(block_of).collect();
    assert_eq!(republished, vec![base + 4, base + 5, base + 6]);
    let swaps: Vec<&SwapEvent> = events.iter().filter_map(swap_of).collect();
    assert_eq!(
        swaps.len(),
        1,
        "only the canonical branch's swap is published"
    );
    assert_eq!(value(&swaps[0].amount_in), U256::from(11 * E18));
    assert_eq!(events[1].last_sync_block, e.block_number.unwrap());
    assert_eq!(*watermark.borrow(), base + 6);
    assert_eq!(
        feed.head(),
        Some((
            base + 6,
            env.provider
                .get_block_by_number((base + 6).into())
                .await
                .unwrap()
                .unwrap()
                .header
                .hash
        ))
    );

    // The observer heard of every block the feed took as canonical, and of every rewind
    // (to the common ancestor), each before the first event about it was on the stream.
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![
            base,
            base + 1,
            base + 2,
            base, // rewind
            base + 1,
            base + 2,
            base + 3,
            base + 4,
            base + 3, // rewind
            base + 4,
            base + 5,
            base + 6
        ]
    );
    env.bus
        .ensure_group(&env.stream, "all", StartId::Beginning)
        .await
        .unwrap();
    let all: Vec<ChainEvent> = env
        .bus
        .read_group(&env.stream, "all", "t", 10_000, Duration::ZERO)
        .await
        .unwrap()
        .iter()
        .map(|d| decode_event(d).unwrap().event)
        .collect();
    for (number, len) in seen {
        let first = all
            .get(len as usize)
            .expect("events follow every announcement");
        assert_eq!(
            first.last_sync_block, number,
            "the first event after announcing block {number} is about it"
        );
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_without_gaps_or_duplicates() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.checkpoint");
    let start = env.head().await + 1;

    let mut feed = Feed::connect(
        env.config(start),
        env.bus.clone(),
        Box::new(FileCheckpoint::new(&path)),
    )
    .await
    .unwrap();
    env.swap(true, E18).await;
    env.swap(false, E18).await;
    feed.poll_once().await.unwrap();
    let head1 = feed.head().unwrap();
    drop(feed);

    // Blocks mined while the feed is down.
    env.swap(true, 2 * E18).await;
    env.swap(true, 3 * E18).await;
    let feed = Feed::connect(
        env.config(start),
        env.bus.clone(),
        Box::new(FileCheckpoint::new(&path)),
    )
    .await
    .unwrap();
    assert_eq!(
        feed.head(),
        Some(head1),
        "resumed from the checkpoint, not from `start`"
    );
    assert_eq!(*feed.watermark().borrow(), head1.0);
    // Run it as a service this time, until it caught up.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut watermark = feed.watermark();
    let target = env.head().await;
    let service = tokio::spawn(feed.run(stopped));
    tokio::time::timeout(
        Duration::from_secs(30),
        watermark.wait_for(|w| *w >= target),
    )
    .await
    .expect("feed did not catch up")
    .unwrap();
    stop.send(true).unwrap();
    service.await.unwrap().unwrap();

    // A reorg while the feed is down is found from the checkpointed hashes.
    let snap = env.evm("evm_snapshot", serde_json::json!([])).await;
    env.swap(true, 4 * E18).await;
    let mut feed = Feed::connect(
        env.config(start),
        env.bus.clone(),
        Box::new(FileCheckpoint::new(&path)),
    )
    .await
    .unwrap();
    feed.poll_once().await.unwrap();
    drop(feed);
    env.evm("evm_revert", serde_json::json!([snap])).await;
    let f = env.swap(false, 6 * E18).await;
    env.evm("evm_mine", serde_json::json!([])).await;
    env.settled(f.block_number.unwrap() + 1, None).await;
    let mut feed = Feed::connect(
        env.config(start),
        env.bus.clone(),
        Box::new(FileCheckpoint::new(&path)),
    )
    .await
    .unwrap();
    assert_eq!(feed.poll_once().await.unwrap().reorgs, 1);
    let end = env.head().await;
    assert_eq!(*feed.watermark().borrow(), end);

    let events = env.drain().await;
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "an event was published twice"
    );
    // Block sequence: contiguous from `start`, going back only right after the reorg event.
    let mut expected = start;
    let mut reorgs = 0;
    for e in &events {
        if let Some(r) = reorg_of(e) {
            reorgs += 1;
            assert_eq!(r.old_head, expected - 1);
            expected = r.common_ancestor + 1;
        }
        if let Some(n) = block_of(e) {
            assert_eq!(n, expected, "gap or duplicate at block {n}");
            expected += 1;
        }
    }
    assert_eq!(reorgs, 1);
    assert_eq!(expected, end + 1);
    let swaps: Vec<U256> = events
        .iter()
        .filter_map(swap_of)
        .map(|s| value(&s.amount_in))
        .collect();
    let expected_swaps: Vec<U256> = [1, 1, 2, 3, 4, 6]
        .iter()
        .map(|k| U256::from(k * E18))
        .collect();
    assert_eq!(
        swaps, expected_swaps,
        "every swap once, the orphaned one before the reorg"
    );
    env.cleanup().await;
}
