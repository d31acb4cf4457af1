//! The governance sentinel on a real chain: Anvil with the real Uniswap V3 factory and pools
//! (`@uniswap/v3-core` 1.0.1) and OpenZeppelin 4.9.6 tokens, one behind OpenZeppelin's
//! `TransparentUpgradeableProxy` (an ERC1967 proxy) from `@openzeppelin/contracts`. SQLite
//! and PostgreSQL.
//!
//! - `fee_protocol_change_halts_only_its_pool`: the factory's owner calls `setFeeProtocol` on
//!   one pool; exactly that pool's market is halted (`governance_halt`, with the event, its
//!   transaction and block, audited and counted) while a second pool on the same tokens and
//!   factory goes on trading. The halt survives an engine restart (and the restarted
//!   sentinel does not see the event twice). Over gRPC, a clear without a key or with a
//!   host's key is refused and the halt stays; an operator's clear lifts it (audited with the
//!   operator's name and reason) and the market trades again. Then a token's code is
//!   replaced with `anvil_setCode` (no event at all): the code-hash reading halts every
//!   market of that token.
//! - `proxy_upgrade_halts_every_market_of_the_token`: the proxy's admin upgrades the proxied
//!   token to a second implementation (`upgradeTo`, a real `Upgraded` event): both markets
//!   with that token are halted, the market without it is not. After an operator clears
//!   them (re-baselining), the implementation slot is written back with
//!   `anvil_setStorageAt` (no event): the slot reading halts both again, which it could only
//!   do if the clear had re-baselined the slot.

#[macro_use]
mod common;

use std::sync::Arc;

use alloy::providers::{Provider, RootProvider};
use alloy_primitives::{Address as EvmAddress, Bytes, U256 as EvmU256};
use alloy_sol_types::{SolCall, SolValue, sol};
use common::*;
use stratbox_engine::follow::quote_pools;
use stratbox_engine::proposal::hex_address;
use stratbox_engine::sentinel::{IMPLEMENTATION_SLOT, Sentinel, SentinelConfig};
use stratbox_engine::{ChainState, Engine, EngineSettings, Role, Store, server};
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig, Deployment, PRICE_ONE_X96};
use stratbox_proto::v1::{self, trading_engine_client::TradingEngineClient};

sol! {
    interface PoolOwnerActions {
        function setFeeProtocol(uint8 feeProtocol0, uint8 feeProtocol1) external;
    }
    interface ProxyAdminActions {
        function upgradeTo(address newImplementation) external;
    }
}

const OPS_KEY: &str = "ops-key-0123456789";
const HOST_KEY: &str = "host-key-0123456789";

async fn provider(anvil: &Anvil) -> RootProvider {
    RootProvider::<alloy::network::Ethereum>::connect(&anvil.endpoint())
        .await
        .expect("connect to anvil")
}

/// Creates and initialises the pool of `(a, b, fee)` on the deployment's factory.
async fn create_pool(
    p: &RootProvider,
    d: &Deployment,
    a: EvmAddress,
    b: EvmAddress,
    fee: u32,
) -> EvmAddress {
    let (t0, t1) = if a < b { (a, b) } else { (b, a) };
    deploy::send(
        p,
        d.deployer,
        d.factory,
        deploy::create_pool_calldata(t0, t1, fee).expect("calldata"),
        "createPool",
    )
    .await
    .expect("createPool");
    let pool = deploy::read_call(
        p,
        d.factory,
        stratbox_evm::abi::IUniswapV3Factory::getPoolCall {
            tokenA: t0,
            tokenB: t1,
            fee: deploy::uint24(fee).expect("fee"),
        },
        "getPool",
    )
    .await
    .expect("getPool");
    deploy::send(
        p,
        d.deployer,
        pool,
        deploy::initialize_calldata(PRICE_ONE_X96).expect("calldata"),
        "initialize",
    )
    .await
    .expect("initialize");
    pool
}

/// An engine forking the node and trading `pools`, quoted from the pools themselves.
async fn engine_on(db: &Db, anvil: &Anvil, pools: &[EvmAddress]) -> Engine {
    let pools: Vec<[u8; 20]> = pools.iter().map(|p| p.into_array()).collect();
    let chain = ChainState::fork(&anvil.endpoint(), &pools, None, 0, None)
        .await
        .expect("fork");
    let store = Store::connect(&db.url()).await.expect("store");
    let engine = Engine::start(store, chain, EngineSettings::default())
        .await
        .expect("engine");
    quote_pools(&engine);
    engine
}

async fn sentinel(engine: &Engine, anvil: &Anvil) -> Sentinel {
    Sentinel::connect(engine.clone(), SentinelConfig::new(&anvil.endpoint()))
        .await
        .expect("sentinel")
}

/// A small sell of token0 on `pool`, expecting what the engine's fork quotes (a pool with no
/// liquidity quotes nothing: the expectation is then a token of output, which the gates
/// never get to judge on a halted market).
async fn swap(engine: &Engine, pool: EvmAddress, event: &str) -> v1::Proposal {
    let action = swap_action(pool.into_array(), true, e(1, 15));
    let quoting = engine.clone();
    let q = tokio::task::spawn_blocking(move || quote(&quoting, "acct-1", &action))
        .await
        .expect("quote");
    let (e0, e1) = if q.success {
        (q.amount0, q.amount1)
    } else {
        (e(1, 15), stratbox_proto::U256::from(1u8))
    };
    proposal(engine, "watcher", event, 0, &action, e0, e1, 50)
}

/// Submits one proposal per pool; (state, reason code) of each.
async fn outcomes(
    engine: &Engine,
    pools: &[EvmAddress],
    round: &str,
) -> Vec<(v1::TaskState, String)> {
    let mut batch = Vec::new();
    for (i, p) in pools.iter().enumerate() {
        batch.push(swap(engine, *p, &format!("{round}-{i}")).await);
    }
    engine
        .submit("", batch)
        .await
        .expect("submit")
        .iter()
        .map(|r| (state(r), r.reason_code.clone()))
        .collect()
}

fn market(p: EvmAddress) -> String {
    hex_address(&p.into_array())
}

async fn halted(engine: &Engine) -> Vec<(String, String)> {
    engine
        .governance_halts()
        .await
        .expect("halts")
        .into_iter()
        .map(|h| (h.market, h.kind))
        .collect()
}

/// Audit rows of the sentinel and of clears: (actor, action, subject, detail).
async fn audits(engine: &Engine) -> Vec<(String, String, String, String)> {
    use sqlx::Row;
    sqlx::query(
        "SELECT actor, action, subject, detail FROM audit_log WHERE action LIKE 'governance%' ORDER BY audit_id",
    )
    .fetch_all(engine.store().pool())
    .await
    .expect("audit rows")
    .iter()
    .map(|r| {
        (
            r.get::<String, _>("actor"),
            r.get::<String, _>("action"),
            r.get::<String, _>("subject"),
            r.get::<String, _>("detail"),
        )
    })
    .collect()
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

async fn fee_protocol_change_halts_only_its_pool(db: &Db) {
    let anvil = Anvil::spawn().expect("anvil (npm @foundry-rs/anvil-linux-amd64)");
    let p = provider(&anvil).await;
    let deployer = anvil.accounts()[0];
    let d = deploy::deploy(&p, deployer, &DeployConfig::default())
        .await
        .expect("deploy");
    // A second market on the same tokens and factory: only the pool differs.
    let pool2 = create_pool(&p, &d, d.token0, d.token1, 500).await;
    let (lower, upper) = stratbox_evm::pool_bounds::full_range(10);
    Deployment {
        pool: pool2,
        fee: 500,
        tick_spacing: 10,
        ..d
    }
    .add_liquidity(
        &p,
        deployer,
        lower,
        upper,
        1_000_000_000_000_000_000_000_000,
    )
    .await
    .expect("liquidity on the second pool");
    let pools = [d.pool, pool2];

    let engine = engine_on(db, &anvil, &pools).await;
    let mut watch = sentinel(&engine, &anvil).await;
    let first = watch.pass().await.expect("first pass");
    assert!(first.read_state, "the first pass takes the baselines");
    assert!(first.halted.is_empty(), "{first:?}");
    assert_eq!(watch.markets().len(), 2);
    assert!(
        watch
            .markets()
            .iter()
            .all(|m| m.factory == d.factory.into_array()),
        "each pool's factory is read from the pool"
    );
    let ok = (v1::TaskState::Simulated, "ok".to_owned());
    assert_eq!(
        outcomes(&engine, &pools, "before").await,
        [ok.clone(), ok.clone()]
    );

    // The factory's owner switches the first pool's protocol fee on.
    let receipt = deploy::send(
        &p,
        deployer,
        d.pool,
        Bytes::from(
            PoolOwnerActions::setFeeProtocolCall {
                feeProtocol0: 4,
                feeProtocol1: 4,
            }
            .abi_encode(),
        ),
        "setFeeProtocol",
    )
    .await
    .expect("setFeeProtocol by the factory's owner");
    let pass = watch.pass().await.expect("pass");
    assert_eq!(pass.events, 1, "{pass:?}");
    assert_eq!(pass.halted, [market(d.pool)]);
    let halts = engine.governance_halts().await.expect("halts");
    assert_eq!(halts.len(), 1, "{halts:?}");
    let h = &halts[0];
    assert_eq!(h.market, market(d.pool));
    assert_eq!(h.contract, market(d.pool));
    assert_eq!(h.kind, "SetFeeProtocol");
    assert_eq!(h.tx_hash, format!("{:#x}", receipt.transaction_hash));
    assert_eq!(Some(h.block), receipt.block_number);
    assert!(h.detail.contains("feeProtocol0New: 4"), "{}", h.detail);
    let mut watched = h.watched.clone();
    watched.sort();
    let mut expected: Vec<String> = [d.pool, d.token0, d.token1, d.factory]
        .into_iter()
        .map(market)
        .collect();
    expected.sort();
    assert_eq!(watched, expected);

    let after = outcomes(&engine, &pools, "after").await;
    assert_eq!(
        after,
        [
            (v1::TaskState::Rejected, "governance_halt".to_owned()),
            ok.clone()
        ],
        "only the pool whose fee changed is halted"
    );
    let rows = audits(&engine).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, action, subject, detail) = &rows[0];
    assert_eq!(
        (actor.as_str(), action.as_str(), subject.as_str()),
        (
            "governance-sentinel",
            "governance_halt",
            market(d.pool).as_str()
        )
    );
    assert!(
        detail.contains("SetFeeProtocol")
            && detail.contains(&h.tx_hash)
            && detail.contains(&format!("block {}", h.block)),
        "{detail}"
    );
    let metrics = engine.metrics().render();
    assert!(
        metrics.contains("stratbox_engine_governance_halted_markets 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("stratbox_engine_governance_hits_total{kind=\"SetFeeProtocol\"} 1"),
        "{metrics}"
    );

    // Restart: the halt is stored; the restarted sentinel resumes after the blocks read.
    drop(watch);
    engine.store().close().await;
    drop(engine);
    let engine = engine_on(db, &anvil, &pools).await;
    assert_eq!(
        outcomes(&engine, &pools, "restarted").await,
        [
            (v1::TaskState::Rejected, "governance_halt".to_owned()),
            ok.clone()
        ],
        "the halt survives the restart, before any sentinel runs"
    );
    assert!(
        engine
            .metrics()
            .render()
            .contains("stratbox_engine_governance_halted_markets 1")
    );
    let mut watch = sentinel(&engine, &anvil).await;
    let pass = watch.pass().await.expect("pass after restart");
    assert_eq!((pass.events, pass.changed_readings), (0, 0), "{pass:?}");
    assert_eq!(audits(&engine).await.len(), 1, "nothing seen twice");

    // Clearing over gRPC: an operator's key only.
    let listener = server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve_grpc_with_access(
        engine.clone(),
        tonic::service::Routes::default(),
        Some(Arc::new(TestKeys(vec![
            (OPS_KEY, "ops", Role::Operator),
            (HOST_KEY, "host-1", Role::Host),
        ]))),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let mut client = TradingEngineClient::connect(url).await.expect("client");
    let listed = client
        .list_governance_halts(v1::ListGovernanceHaltsRequest { trace: None })
        .await
        .expect("list")
        .into_inner()
        .halts;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].market.as_ref().map(|a| a.value.clone()),
        Some(market(d.pool))
    );
    assert_eq!(listed[0].kind, "SetFeeProtocol");
    let clear = || v1::ClearGovernanceHaltRequest {
        trace: None,
        market: Some(v1::Address {
            value: market(d.pool),
        }),
        reason: "protocol fee reviewed: trades still net positive".into(),
    };
    let refused = client
        .clear_governance_halt(clear())
        .await
        .expect_err("a clear without a key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let refused = client
        .clear_governance_halt(with_key(clear(), HOST_KEY))
        .await
        .expect_err("a clear with a host's key");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert_eq!(
        halted(&engine).await.len(),
        1,
        "refused clears change nothing"
    );
    let cleared = client
        .clear_governance_halt(with_key(clear(), OPS_KEY))
        .await
        .expect("an operator's clear")
        .into_inner();
    assert_eq!(cleared.kind, "SetFeeProtocol");
    let again = client
        .clear_governance_halt(with_key(clear(), OPS_KEY))
        .await
        .expect_err("nothing left to clear");
    assert_eq!(again.code(), tonic::Code::NotFound, "{again:?}");
    assert!(halted(&engine).await.is_empty());
    let rows = audits(&engine).await;
    let (actor, action, subject, detail) = rows.last().expect("the clear's audit row");
    assert_eq!(
        (actor.as_str(), action.as_str(), subject.as_str()),
        ("ops", "governance_halt_cleared", market(d.pool).as_str())
    );
    assert!(detail.contains("protocol fee reviewed"), "{detail}");
    assert_eq!(
        outcomes(&engine, &pools, "cleared").await,
        [ok.clone(), ok.clone()],
        "the market trades again"
    );
    let pass = watch.pass().await.expect("pass after the clear");
    assert!(
        pass.halted.is_empty(),
        "re-baselined, nothing new: {pass:?}"
    );

    // A change that emits nothing: token1's code replaced.
    p.raw_request::<_, serde_json::Value>(
        "anvil_setCode".into(),
        (
            d.token1,
            Bytes::from_static(stratbox_evm::bytecode::ERC20_RUNTIME).to_string() + "00",
        ),
    )
    .await
    .expect("anvil_setCode");
    p.raw_request::<_, serde_json::Value>("evm_mine".into(), Vec::<u64>::new())
        .await
        .expect("evm_mine");
    let pass = watch.pass().await.expect("pass after the code change");
    assert_eq!(pass.events, 0, "{pass:?}");
    assert_eq!(pass.changed_readings, 1, "{pass:?}");
    assert_eq!(
        sorted(halted(&engine).await),
        sorted(vec![
            (market(d.pool), "code_hash".to_owned()),
            (market(pool2), "code_hash".to_owned()),
        ]),
        "every market of the token"
    );
    p.raw_request::<_, serde_json::Value>("evm_mine".into(), Vec::<u64>::new())
        .await
        .expect("evm_mine");
    let pass = watch.pass().await.expect("another pass");
    assert!(pass.read_state, "{pass:?}");
    assert_eq!(pass.changed_readings, 0, "a change is acted on once");
    let _ = stop.send(());
    serving.await.expect("join").expect("server");
    engine.store().close().await;
}

both!(fee_protocol_change_halts_only_its_pool);

/// Creation code of an OpenZeppelin 4.9.6 artifact in `node_modules`.
fn artifact(name: &'static str) -> Vec<u8> {
    const DIR: &str = "@openzeppelin/contracts/build/contracts";
    let node_modules = stratbox_evm::node_modules::locate("@openzeppelin/contracts/package.json")
        .expect("node_modules with @openzeppelin/contracts (npm ci)");
    let path = node_modules.join(DIR).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("artifact");
    let json: serde_json::Value = serde_json::from_str(&text).expect("artifact JSON");
    let code = json["bytecode"].as_str().expect("bytecode");
    hex::decode(code.trim_start_matches("0x")).expect("hex bytecode")
}

async fn proxy_upgrade_halts_every_market_of_the_token(db: &Db) {
    let anvil = Anvil::spawn().expect("anvil (npm @foundry-rs/anvil-linux-amd64)");
    let p = provider(&anvil).await;
    let deployer = anvil.accounts()[0];
    let admin = anvil.accounts()[1];
    let d = deploy::deploy(&p, deployer, &DeployConfig::default())
        .await
        .expect("deploy");
    let v1_impl = deploy::deploy_code(
        &p,
        deployer,
        deploy::erc20_creation("Proxied", "PRX"),
        "implementation 1",
    )
    .await
    .expect("implementation 1");
    let v2_impl = deploy::deploy_code(
        &p,
        deployer,
        deploy::erc20_creation("Proxied v2", "PRX2"),
        "implementation 2",
    )
    .await
    .expect("implementation 2");
    let mut creation = artifact("TransparentUpgradeableProxy");
    creation.extend((v1_impl, admin, Bytes::new()).abi_encode_params());
    let proxy = deploy::deploy_code(&p, deployer, creation.into(), "proxy")
        .await
        .expect("TransparentUpgradeableProxy");
    let with_a = create_pool(&p, &d, proxy, d.token0, 3000).await;
    let with_b = create_pool(&p, &d, proxy, d.token1, 3000).await;
    let pools = [d.pool, with_a, with_b];

    let engine = engine_on(db, &anvil, &pools).await;
    let mut watch = sentinel(&engine, &anvil).await;
    assert!(watch.pass().await.expect("first pass").halted.is_empty());

    // The proxy's admin upgrades the token.
    let receipt = deploy::send(
        &p,
        admin,
        proxy,
        Bytes::from(
            ProxyAdminActions::upgradeToCall {
                newImplementation: v2_impl,
            }
            .abi_encode(),
        ),
        "upgradeTo",
    )
    .await
    .expect("upgradeTo by the proxy's admin");
    let pass = watch.pass().await.expect("pass");
    assert_eq!(pass.events, 1, "{pass:?}");
    assert_eq!(
        sorted(halted(&engine).await),
        sorted(vec![
            (market(with_a), "Upgraded".to_owned()),
            (market(with_b), "Upgraded".to_owned()),
        ])
    );
    let halts = engine.governance_halts().await.expect("halts");
    assert!(
        halts.iter().all(|h| h.contract == market(proxy)
            && h.tx_hash == format!("{:#x}", receipt.transaction_hash)
            && h.detail
                .to_lowercase()
                .contains(&format!("{v2_impl:#x}").to_lowercase()[2..])),
        "{halts:?}"
    );
    let after = outcomes(&engine, &pools, "after").await;
    assert_eq!(
        after,
        [
            (v1::TaskState::Simulated, "ok".to_owned()),
            (v1::TaskState::Rejected, "governance_halt".to_owned()),
            (v1::TaskState::Rejected, "governance_halt".to_owned()),
        ],
        "the market without the token goes on"
    );
    let metrics = engine.metrics().render();
    assert!(
        metrics.contains("stratbox_engine_governance_hits_total{kind=\"Upgraded\"} 2"),
        "one hit per market halted: {metrics}"
    );

    // An operator clears both: the proxy's slots are re-baselined at the new implementation.
    for m in [with_a, with_b] {
        engine
            .clear_governance_halt("", &market(m), "upgrade audited", "ops")
            .await
            .expect("clear")
            .expect("was halted");
    }
    assert!(halted(&engine).await.is_empty());
    let pass = watch.pass().await.expect("pass after the clears");
    assert!(pass.halted.is_empty(), "{pass:?}");

    // A silent upgrade: the implementation slot written straight back to version 1.
    p.raw_request::<_, serde_json::Value>(
        "anvil_setStorageAt".into(),
        (
            proxy,
            IMPLEMENTATION_SLOT,
            alloy_primitives::B256::from(EvmU256::from_be_slice(v1_impl.as_slice())),
        ),
    )
    .await
    .expect("anvil_setStorageAt");
    p.raw_request::<_, serde_json::Value>("evm_mine".into(), Vec::<u64>::new())
        .await
        .expect("evm_mine");
    let pass = watch.pass().await.expect("pass after the silent upgrade");
    assert_eq!((pass.events, pass.changed_readings), (0, 1), "{pass:?}");
    assert_eq!(
        sorted(halted(&engine).await),
        sorted(vec![
            (market(with_a), "implementation_slot".to_owned()),
            (market(with_b), "implementation_slot".to_owned()),
        ])
    );
    let h = &engine.governance_halts().await.expect("halts")[0];
    assert!(h.tx_hash.is_empty(), "a reading has no transaction");
    assert!(
        h.detail
            .to_lowercase()
            .contains(&format!("{v1_impl:#x}").to_lowercase()[2..]),
        "{}",
        h.detail
    );
    assert_eq!(
        outcomes(&engine, &pools, "silent").await[0],
        (v1::TaskState::Simulated, "ok".to_owned())
    );
    engine.store().close().await;
}

both!(proxy_upgrade_halts_every_market_of_the_token);
