//! The private route end to end: Anvil with the real Uniswap V3 pool and stratbox's
//! executor, the real signer (mutual TLS), `stratbox relay` as the private relay (a
//! stand-in for a real one, producing the chain's blocks every 500 ms like a builder), and
//! the engine's live path, on SQLite and on PostgreSQL.
//!
//! 1. A trade worth more than the threshold goes to the relay as a bundle. While the relay
//!    holds it (building paused), the node knows nothing of it: no transaction by its hash,
//!    nothing in `txpool_content`, the account's pending nonce unmoved. Once the relay
//!    builds its block the trade is CONFIRMED in exactly that block, booked as a public
//!    trade is (amounts as simulated, fill, wallet and gas postings).
//! 2. A trade under the threshold goes to the public mempool; the relay never sees it.
//! 3. With the relay down and no fallback configured, a private trade is signed and sent
//!    nowhere: blocks go by, the node never learns of it, the nonce stays unused. An
//!    engine restarted with the relay reachable recovers it by the stored route, privately.
//! 4. With the relay down and the fallback configured, the trade goes public, and the
//!    fallback is stored on the task's audit trail and counted.
//! 5. With a relay that takes bundles and never gets them included, the fallback sends the
//!    trade public once its blocks have passed.
//!
//! Afterwards every nonce was used once and the wallet reconciles to zero.

use std::time::Duration;

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy_primitives::{B256, U256};
use serde_json::Value;
use stratbox_engine::Engine;
use stratbox_engine::follow::{ForkFollower, follow_head};
use stratbox_engine::fsm::TaskState;
use stratbox_engine::live::{Live, LiveConfig, SignerEndpoint};
use stratbox_engine::replace::ReplacePolicy;
use stratbox_engine::route::PrivateRoute;
use stratbox_engine::store::RouteKind;
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig};

use crate::live_e2e::{fund_account, live_engine, start_signer, submit, swap, wait_state};
use crate::support;

const E18: u128 = 1_000_000_000_000_000_000;

/// Trades paying at least this much token1 go private (under the signer's approval
/// threshold of 5, so none waits for a human).
const MIN_VALUE: u128 = 2 * E18;

/// One running live path and how to stop it.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(engine: &Engine, config: LiveConfig) -> Running {
        let live = Live::connect(engine.clone(), config)
            .await
            .expect("live path connects");
        let r = live.recover().await.expect("recovery");
        eprintln!("recovery: {r:?}");
        let (stop, rx) = tokio::sync::watch::channel(false);
        Running {
            stop,
            task: tokio::spawn(live.run(rx)),
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("live path stops");
    }
}

async fn relay_call(relay: &DynProvider, method: &str, params: Value) -> Value {
    relay
        .raw_request(method.to_owned().into(), params)
        .await
        .unwrap_or_else(|e| panic!("relay {method}: {e}"))
}

/// The relay's record of the bundle carrying `tx_hash`, if it was sent one.
async fn bundle_of(relay: &DynProvider, tx_hash: &str) -> Option<Value> {
    let list = relay_call(relay, "relay_bundles", Value::Array(Vec::new())).await;
    list.as_array()?
        .iter()
        .rfind(|b| {
            b["tx_hashes"].as_array().is_some_and(|h| {
                h.iter()
                    .any(|h| h.as_str().is_some_and(|h| h.eq_ignore_ascii_case(tx_hash)))
            })
        })
        .cloned()
}

/// The bundle holding `tx_hash` that was included, else the newest holding it (for the
/// failure message). A trade's bundle is for one block; an engine that has not yet seen its
/// receipt sends it again for the next block, and the node refuses that one (`nonce too
/// low`) once the first is in: the newest bundle alone does not say whether it was included.
async fn included_bundle_of(relay: &DynProvider, tx_hash: &str) -> Option<Value> {
    let list = relay_call(relay, "relay_bundles", Value::Array(Vec::new())).await;
    let holding: Vec<&Value> = list
        .as_array()?
        .iter()
        .filter(|b| {
            b["tx_hashes"].as_array().is_some_and(|h| {
                h.iter()
                    .any(|h| h.as_str().is_some_and(|h| h.eq_ignore_ascii_case(tx_hash)))
            })
        })
        .collect();
    holding
        .iter()
        .find(|b| b["state"] == "included")
        .or(holding.last())
        .map(|b| (*b).clone())
}

/// Whether the node knows `tx_hash` in any way: by hash, or in its pool.
async fn node_knows<P: Provider>(provider: &P, tx_hash: &str) -> bool {
    let hash: B256 = tx_hash.parse().expect("hash");
    let by_hash = provider
        .get_transaction_by_hash(hash)
        .await
        .expect("eth_getTransactionByHash");
    let pool: Value = provider
        .raw_request("txpool_content".into(), ())
        .await
        .expect("txpool_content");
    by_hash.is_some()
        || pool
            .to_string()
            .to_lowercase()
            .contains(&tx_hash.to_lowercase())
}

async fn head<P: Provider>(provider: &P) -> u64 {
    provider.get_block_number().await.expect("head")
}

fn actions(audit: &[stratbox_engine::store::Audit]) -> Vec<&str> {
    audit.iter().map(|a| a.action.as_str()).collect()
}

async fn live_route(database: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,stratbox_engine=info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let anvil = Anvil::spawn().expect("anvil (npm @foundry-rs/anvil-linux-amd64; scripts/setup)");
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().expect("url"));
    let dev = anvil.accounts()[0];
    let d = deploy::deploy(&provider, dev, &DeployConfig::default())
        .await
        .expect("deploy");
    let (signer, account) = start_signer(dir.path(), &d).await;

    // The account's ether, tokens and approvals of the executor, made around stratbox.
    fund_account(&provider, dev, &d, account).await;

    // The relay: from now on it produces the chain's blocks, every 500 ms.
    let (relay_proc, stdout) = support::Proc::spawn(
        &[
            "relay",
            "--rpc",
            &anvil.endpoint(),
            "--listen",
            "127.0.0.1:0",
            "--block-time",
            "500ms",
        ],
        dir.path(),
    );
    let relay_url = format!("http://{}", support::listening_address(stdout));
    let relay = ProviderBuilder::new()
        .connect_http(relay_url.parse().expect("relay url"))
        .erased();
    let start = head(&provider).await;
    support::wait_until(
        "the relay to produce blocks",
        Duration::from_secs(20),
        async || head(&provider).await >= start + 2,
    )
    .await;

    // A malformed bundle is refused with a JSON-RPC error, not taken.
    for bad in [
        serde_json::json!([{"txs": [], "blockNumber": "0x99999"}]),
        serde_json::json!([{"txs": ["0x02ff"], "blockNumber": "0x99999"}]),
        serde_json::json!([{"txs": ["0x02"]}]),
    ] {
        let answer: Result<Value, _> = relay
            .raw_request("eth_sendBundle".into(), bad.clone())
            .await;
        let err = answer.expect_err("a malformed bundle is refused");
        assert!(
            err.as_error_resp().is_some_and(|e| e.code == -32602),
            "{bad}: {err}"
        );
    }

    // Zone B in live mode on the node, following its head.
    let (store, engine) = live_engine(database, &anvil.endpoint(), &d, account).await;
    let (stop_following, following_stop) = tokio::sync::watch::channel(false);
    let follower = std::sync::Arc::new(ForkFollower::new(
        engine.clone(),
        &anvil.endpoint(),
        &[d.pool.into_array()],
        true,
    ));
    let following = tokio::spawn(follow_head(
        anvil.endpoint(),
        follower,
        Duration::from_millis(50),
        following_stop,
    ));
    stratbox_engine::follow::quote_pools(&engine);

    let certs = dir.path().join("certs");
    let base = LiveConfig::new(
        &anvil.endpoint(),
        account.into_array(),
        SignerEndpoint {
            url: format!("https://localhost:{}", signer.addr.port()),
            ca: certs.join("ca.pem"),
            cert: certs.join("engine.pem"),
            key: certs.join("engine.key"),
            server_name: "localhost".into(),
        },
    );
    let route = |relay_url: &str, fallback: Option<u64>| LiveConfig {
        private: Some(PrivateRoute {
            min_value: Some(U256::from(MIN_VALUE)),
            fallback_after_blocks: fallback,
            relay_timeout: Duration::from_secs(2),
            ..PrivateRoute::new(relay_url)
        }),
        ..base.clone()
    };
    let metric = |family: &str, label: &'static str| -> u64 {
        let m = engine.metrics();
        match family {
            "routes" => m.routes.get_or_create(&[("route", label)]).get(),
            _ => m.route_fallbacks.get_or_create(&[("reason", label)]).get(),
        }
    };
    // Paying token1 (zero_for_one = false): the value is the input at par.
    let private_trade = |event: &str| swap(&engine, account, event, false, U256::from(3 * E18));

    // 1. Over the threshold: private. The relay holds it (building paused) and the node
    //    knows nothing of it; then the relay builds its block and it is CONFIRMED there.
    let live = Running::start(&engine, route(&relay_url, None)).await;
    let _ = relay_call(&relay, "relay_setBuilding", serde_json::json!([false])).await;
    // A block the relay was building as it was paused is mined by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paused_at = head(&provider).await;
    let big = submit(&engine, &provider, private_trade("big")).await;
    let held = support::wait_for(
        "the relay to hold the trade's bundle",
        Duration::from_secs(30),
        async || {
            let t = store.live_task(&big).await.expect("task")?;
            if t.tx_hash.is_empty() {
                return None;
            }
            bundle_of(&relay, &t.tx_hash).await.map(|b| (t, b))
        },
    )
    .await;
    let (task, bundle) = held;
    assert_eq!(bundle["state"], "held", "{bundle}");
    assert_eq!(
        bundle["block"].as_u64(),
        Some(paused_at + 1),
        "targeted at the next block"
    );
    let nonce = task.nonce.expect("a nonce");
    for _ in 0..5 {
        assert!(
            !node_knows(&provider, &task.tx_hash).await,
            "a private trade is not in the node's mempool while the relay holds it"
        );
        let pending = provider
            .get_transaction_count(account)
            .pending()
            .await
            .expect("pending nonce");
        assert_eq!(pending, nonce, "the account's nonce is not used publicly");
        let now = bundle_of(&relay, &task.tx_hash).await.expect("bundle");
        assert_eq!(
            now["state"], "held",
            "checked while the relay held it: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = store.route(&big).await.expect("route").expect("stored");
    assert_eq!(stored.route, RouteKind::Private, "{stored:?}");
    assert!(stored.why.starts_with("value "), "{stored:?}");
    let _ = relay_call(&relay, "relay_setBuilding", serde_json::json!([true])).await;
    let done = wait_state(&store, &big, TaskState::Confirmed).await;
    let receipt = provider
        .get_transaction_receipt(done.tx_hash.parse().expect("hash"))
        .await
        .expect("receipt rpc")
        .expect("receipt");
    assert_eq!(
        receipt.block_number,
        Some(paused_at + 1),
        "included in the block the bundle was for"
    );
    assert_eq!(receipt.from, account);
    let bundle = included_bundle_of(&relay, &done.tx_hash)
        .await
        .expect("bundle");
    assert_eq!(bundle["state"], "included", "{bundle}");
    assert_eq!(
        (&done.sim_amount0, &done.sim_amount1),
        (&done.actual_amount0, &done.actual_amount1),
        "booked from the receipt, as simulated"
    );
    let entries = store.entries(None, Some(&big), 0).await.expect("entries");
    for kind in ["fill", "wallet", "gas"] {
        assert!(
            entries
                .iter()
                .any(|e| e.posting_id.starts_with(&format!("{big}:{kind}"))),
            "the private trade's {kind} is booked as a public trade's: {entries:?}"
        );
    }
    let audit = store.audit_for(&big).await.expect("audit");
    assert!(
        actions(&audit).contains(&"route_private"),
        "{:?}",
        actions(&audit)
    );

    // 2. Under the threshold: public; the relay never sees it.
    let small = submit(
        &engine,
        &provider,
        swap(&engine, account, "small", false, U256::from(E18)),
    )
    .await;
    let done = wait_state(&store, &small, TaskState::Confirmed).await;
    let stored = store.route(&small).await.expect("route").expect("stored");
    assert_eq!(stored.route, RouteKind::Public, "{stored:?}");
    assert!(
        bundle_of(&relay, &done.tx_hash).await.is_none(),
        "a public trade is not sent to the relay"
    );
    live.stop().await;

    // 3. The relay down, no fallback: signed, sent nowhere, however many blocks go by.
    let down = format!("http://127.0.0.1:{}", support::free_port());
    let live = Running::start(&engine, route(&down, None)).await;
    let stuck = submit(&engine, &provider, private_trade("stuck")).await;
    let signed = wait_state(&store, &stuck, TaskState::Signed).await;
    let from = head(&provider).await;
    support::wait_until(
        "three blocks to go by",
        Duration::from_secs(30),
        async || head(&provider).await >= from + 3,
    )
    .await;
    let row = store.get_task(&stuck).await.expect("task").expect("row");
    assert_eq!(row.state, TaskState::Signed, "not sent: {}", row.detail);
    assert!(
        !node_knows(&provider, &signed.tx_hash).await,
        "without a fallback a private trade never reaches the public mempool"
    );
    let pending = provider
        .get_transaction_count(account)
        .pending()
        .await
        .expect("pending nonce");
    assert_eq!(Some(pending), signed.nonce, "its nonce is unused on chain");
    let audit = store.audit_for(&stuck).await.expect("audit");
    assert!(!actions(&audit).contains(&"route_fallback"));
    assert_eq!(metric("fallbacks", "unreachable"), 0);
    live.stop().await;
    // Restarted with the relay reachable: recovery sends it by its stored route.
    let live = Running::start(&engine, route(&relay_url, None)).await;
    let done = wait_state(&store, &stuck, TaskState::Confirmed).await;
    let bundle = included_bundle_of(&relay, &done.tx_hash)
        .await
        .expect("sent to the relay after the restart");
    assert_eq!(bundle["state"], "included", "{bundle}");
    live.stop().await;

    // 4. The relay down with the fallback on: public, and the fallback audited and counted.
    let live = Running::start(&engine, route(&down, Some(3))).await;
    let fallen = submit(&engine, &provider, private_trade("fallen")).await;
    let done = wait_state(&store, &fallen, TaskState::Confirmed).await;
    let stored = store.route(&fallen).await.expect("route").expect("stored");
    assert_eq!(stored.route, RouteKind::Public, "{stored:?}");
    assert!(stored.fallback.starts_with("unreachable: "), "{stored:?}");
    let audit = store.audit_for(&fallen).await.expect("audit");
    let acts = actions(&audit);
    let chosen = acts.iter().position(|a| *a == "route_private");
    let fell = acts.iter().position(|a| *a == "route_fallback");
    assert!(
        chosen.is_some() && fell > chosen,
        "chosen private, then fell back, on the task's audit trail: {acts:?}"
    );
    assert_eq!(metric("fallbacks", "unreachable"), 1);
    assert!(bundle_of(&relay, &done.tx_hash).await.is_none());
    live.stop().await;

    // 5. A relay that takes bundles and never gets them included (a second relay, following
    //    the chain's blocks, with building paused): after 3 blocks the fallback sends the
    //    trade public.
    let (_idle_proc, stdout) = support::Proc::spawn(
        &[
            "relay",
            "--rpc",
            &anvil.endpoint(),
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let idle_url = format!("http://{}", support::listening_address(stdout));
    let idle = ProviderBuilder::new()
        .connect_http(idle_url.parse().expect("relay url"))
        .erased();
    let _ = relay_call(&idle, "relay_setBuilding", serde_json::json!([false])).await;
    // Fee bumps off: the transaction the chain includes is then the one the relay was sent.
    let no_bumps = LiveConfig {
        replace: ReplacePolicy {
            bump_after_blocks: 0,
            ..ReplacePolicy::default()
        },
        ..route(&idle_url, Some(3))
    };
    let live = Running::start(&engine, no_bumps).await;
    let ignored = submit(&engine, &provider, private_trade("ignored")).await;
    let done = wait_state(&store, &ignored, TaskState::Confirmed).await;
    let stored = store.route(&ignored).await.expect("route").expect("stored");
    assert!(stored.fallback.starts_with("not_included: "), "{stored:?}");
    let first = stored.first_block.expect("the relay took it");
    let receipt = provider
        .get_transaction_receipt(done.tx_hash.parse().expect("hash"))
        .await
        .expect("receipt rpc")
        .expect("receipt");
    assert!(
        receipt.block_number.is_some_and(|b| b > first + 3),
        "public only after 3 blocks without inclusion: taken at {first}, {receipt:?}"
    );
    assert!(
        bundle_of(&idle, &done.tx_hash).await.is_some(),
        "the relay had it"
    );
    assert_eq!(metric("fallbacks", "not_included"), 1);
    live.stop().await;
    assert_eq!(
        (metric("routes", "private"), metric("routes", "public")),
        (4, 1)
    );

    // Every nonce once; the wallet as booked agrees with the chain.
    let nonces = store.assigned_nonces().await.expect("nonces");
    let mut seen = std::collections::BTreeSet::new();
    for (acct, n, _) in &nonces {
        assert!(seen.insert((acct.clone(), *n)), "nonce {n} used twice");
    }
    let r = stratbox_engine::reconcile::reconcile(&store, &provider, &account.into_array())
        .await
        .expect("reconcile")
        .expect("the wallet was opened");
    assert!(r.is_zero(), "{r}");

    let _ = stop_following.send(true);
    following.await.expect("follower stops");
    signer.shutdown().await;
    drop(relay_proc);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_route_on_anvil_with_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    live_route(&format!(
        "sqlite://{}",
        dir.path().join("engine.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_route_on_anvil_with_postgres() {
    let admin = support::postgres_admin();
    let name = support::unique("stratbox_live_route");
    stratbox_engine::store::create_postgres_database(&admin, &name)
        .await
        .expect("create the test database");
    live_route(&stratbox_engine::store::with_database(&admin, &name)).await;
    let _ = stratbox_engine::store::drop_postgres_database(&admin, &name).await;
}
