//! The live path end to end on a real chain: Anvil (npm package) with the real Uniswap V3
//! pool and stratbox's executor deployed, the real signer service (mutual TLS, its own
//! SQLite store, the development keystore, a deny-by-default policy) and the engine in
//! live mode, on SQLite and on PostgreSQL.
//!
//! Proposals become STAGED in the write that decides them, take nonces from the engine's
//! lease, are signed by the signer from plain fields, broadcast, and CONFIRMED from their
//! receipts; the pool's actual amounts equal the simulated ones (each trade is the only
//! transaction in its block, on the state it was simulated against); balances on chain
//! move by exactly those amounts. A trade over the signer's approval threshold waits for a
//! human (AWAITING_APPROVAL), is approved over the signer's admin port and confirmed; a
//! trade over the policy's cap is refused by the signer (REJECTED) and gives its nonce back,
//! so the next trade takes it; no nonce is used twice. A second live path (a restarted
//! engine, a new lease holder) takes the lease over only after the first gave it up.
//!
//! The account's wallet is booked from the chain (opening balances, each receipt's token
//! transfers and gas) and reconciles to zero difference, by the library and by
//! `stratbox reconcile`; ether sent to the account around stratbox is found before the next
//! trade is signed, recorded, engages the kill switch and holds that trade until an
//! operator adopts the difference and clears the switch. An engine that crashed after
//! BROADCAST, whose transaction the node then dropped, is restarted: its recovery pass sends
//! the stored transaction again unchanged and books it, and starts nothing new. A trade
//! held unsigned past its deadline is EXPIRED without a nonce.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use stratbox_engine::follow::{ForkFollower, follow_head};
use stratbox_engine::fsm::TaskState;
use stratbox_engine::live::{Live, LiveConfig, SignerEndpoint};
use stratbox_engine::proposal::{TradeAction, hex_address};
use stratbox_engine::replace::ReplacePolicy;
use stratbox_engine::store::{GapState, ReplacementKind};
use stratbox_engine::{ChainState, Engine, EngineSettings, ExecutionMode, Store};
use stratbox_evm::abi::IERC20;
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig, Deployment};
use stratbox_proto::v1;
use stratbox_proto::v1::proposal::Action;
use stratbox_proto::v1::signer_admin_client::SignerAdminClient;
use stratbox_signer::certs::DevCa;
use stratbox_signer::config::SignerConfig;
use stratbox_signer::keys::{self, DevKeystore, Passphrase};
use tonic::transport::Endpoint;

use crate::support;

const E18: u128 = 1_000_000_000_000_000_000;

fn policy(d: &Deployment, account: Address) -> String {
    format!(
        r#"
chain_ids = [31337]
max_fee_per_gas = "100000000000"
max_priority_fee_per_gas = "10000000000"
max_gas_limit = 1000000

[[executors]]
address = "{executor:#x}"
functions = ["swap", "mint", "burn"]

[[tokens]]
symbol = "TK0"
address = "{t0:#x}"
decimals = 18
max_per_tx = "10000000000000000000"
max_per_day = "100000000000000000000"

[[tokens]]
symbol = "TK1"
address = "{t1:#x}"
decimals = 18
max_per_tx = "10000000000000000000"
max_per_day = "100000000000000000000"

[[pools]]
address = "{pool:#x}"
token0 = "TK0"
token1 = "TK1"
fee = 3000

[[accounts]]
address = "{account:#x}"
key_index = 0
mode = "live"
thresholds = {{ TK0 = {{ approval = "5000000000000000000", two_approvals = "9000000000000000000" }}, TK1 = {{ approval = "5000000000000000000", two_approvals = "9000000000000000000" }} }}
"#,
        executor = d.executor,
        t0 = d.token0,
        t1 = d.token1,
        pool = d.pool,
    )
}

/// The signer service on loopback with the development keystore; returns it, the account
/// it signs for (m/0) and where the engine's and the approver's certificates are.
pub(crate) async fn start_signer(
    dir: &Path,
    d: &Deployment,
) -> (stratbox_signer::Running, Address) {
    let certs = dir.join("certs");
    let ca = DevCa::create(&certs).expect("dev CA");
    ca.issue_server(&certs, "signer", &["localhost".into(), "127.0.0.1".into()])
        .expect("server certificate");
    let engine = ca
        .issue_client(&certs, "engine", "engine")
        .expect("engine certificate");
    let alice = ca
        .issue_client(&certs, "alice", "approver")
        .expect("approver certificate");
    let keystore = dir.join("dev-keystore.json");
    let pass = Passphrase::new("live test passphrase").expect("passphrase");
    let ks = keystore.clone();
    tokio::task::spawn_blocking(move || DevKeystore::create(&ks, &pass))
        .await
        .expect("keystore task")
        .expect("keystore");
    std::fs::write(dir.join("passphrase"), "live test passphrase\n").expect("passphrase file");
    let config_text = |extra: &str| {
        format!(
            r#"
database = "sqlite://{db}"
policy = "policy.toml"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
tls_cert = "certs/signer.pem"
tls_key = "certs/signer.key"
client_ca = "certs/ca.pem"

[keystore]
dev_file = "dev-keystore.json"
passphrase_file = "passphrase"
{extra}"#,
            db = dir.join("signer.db").display()
        )
    };
    // The account is public data of the keystore: named in the policy before the start.
    std::fs::write(dir.join("policy.toml"), "").expect("placeholder policy");
    std::fs::write(dir.join("probe.toml"), config_text("")).expect("probe config");
    let keys = keys::open(&SignerConfig::load(&dir.join("probe.toml")).expect("probe config"))
        .await
        .expect("key source");
    let account = Address::from(keys.address(0).expect("account 0"));
    std::fs::write(dir.join("policy.toml"), policy(d, account)).expect("policy");
    let clients = format!(
        "\n[[engine_clients]]\nname = \"engine\"\nspki_sha256 = \"{}\"\n\n\
         [[approvers]]\nname = \"alice\"\nrole = \"approver\"\nspki_sha256 = \"{}\"\n",
        engine.spki_sha256, alice.spki_sha256
    );
    std::fs::write(dir.join("signer.toml"), config_text(&clients)).expect("signer config");
    let config = SignerConfig::load(&dir.join("signer.toml")).expect("signer config loads");
    let running = stratbox_signer::start(&config, keys)
        .await
        .expect("signer starts");
    (running, account)
}

async fn balance<P: Provider>(provider: &P, token: Address, account: Address) -> U256 {
    deploy::read_call(
        provider,
        token,
        IERC20::balanceOfCall { account },
        "balance",
    )
    .await
    .expect("balanceOf")
}

fn amount(v: U256) -> Option<v1::Amount> {
    Some(v1::Amount {
        value: v.to_string(),
    })
}

/// A swap of `amount_in` expecting what the chain quotes for it now from `account`.
pub(crate) fn swap(
    engine: &Engine,
    account: Address,
    event: &str,
    zero_for_one: bool,
    amount_in: U256,
) -> v1::Proposal {
    let chain = engine.chain();
    let pool = chain.pools()[0];
    let action = TradeAction::Swap {
        pool,
        zero_for_one,
        amount_in,
        sqrt_price_limit_x96: None,
    };
    let q = chain
        .simulate(account.into_array(), &action, false)
        .expect("quote");
    assert!(q.success, "quote reverted: {}", q.revert_reason);
    v1::Proposal {
        strategy: "momentum".into(),
        strategy_version: "1.0.0".into(),
        instance_id: "i-1".into(),
        account: hex_address(&account.into_array()),
        event_id: event.into(),
        index: 0,
        last_sync_block: engine.watermark(),
        action: Some(Action::Swap(v1::SwapAction {
            pool: Some(v1::Address {
                value: hex_address(&pool),
            }),
            zero_for_one,
            amount_in: amount(amount_in),
            sqrt_price_limit_x96: None,
        })),
        expected_amount0: amount(q.amount0),
        expected_amount1: amount(q.amount1),
        max_slippage_bps: 100,
        reason: "live test".into(),
    }
}

/// A mint (`add`) or burn of 10^18 liquidity on ticks [-6000, 6000) of the pool, expecting
/// what the chain quotes for it now from `account`.
fn liquidity(engine: &Engine, account: Address, event: &str, add: bool) -> v1::Proposal {
    let chain = engine.chain();
    let pool = chain.pools()[0];
    let range = stratbox_engine::proposal::Range {
        pool,
        tick_lower: -6000,
        tick_upper: 6000,
        liquidity: E18,
    };
    let action = if add {
        TradeAction::AddLiquidity(range)
    } else {
        TradeAction::RemoveLiquidity(range)
    };
    let q = chain
        .simulate(account.into_array(), &action, false)
        .expect("quote");
    assert!(q.success, "quote reverted: {}", q.revert_reason);
    let r = v1::RangeLiquidity {
        pool: Some(v1::Address {
            value: hex_address(&pool),
        }),
        tick_lower: -6000,
        tick_upper: 6000,
        liquidity: amount(U256::from(E18)),
    };
    v1::Proposal {
        action: Some(if add {
            Action::AddLiquidity(r)
        } else {
            Action::RemoveLiquidity(r)
        }),
        expected_amount0: amount(q.amount0),
        expected_amount1: amount(q.amount1),
        ..swap(engine, account, event, true, U256::from(1000u64))
    }
}

/// The account's ether for gas, tokens to trade and its approvals of the executor, made
/// outside stratbox (impersonated on Anvil): two transactions of the account, so its next
/// nonce is 2.
pub(crate) async fn fund_account<P: Provider>(
    provider: &P,
    dev: Address,
    d: &Deployment,
    account: Address,
) {
    deploy::send_request(
        provider,
        TransactionRequest::default()
            .with_from(dev)
            .with_to(account)
            .with_value(U256::from(10 * E18)),
        "fund ether",
    )
    .await
    .expect("ether");
    d.fund(
        provider,
        account,
        U256::from(100 * E18),
        U256::from(100 * E18),
    )
    .await
    .expect("tokens");
    let _: () = provider
        .raw_request("anvil_impersonateAccount".into(), (account,))
        .await
        .expect("impersonate");
    for token in [d.token0, d.token1] {
        let approve = IERC20::approveCall {
            spender: d.executor,
            amount: U256::MAX,
        };
        deploy::send_request(
            provider,
            TransactionRequest::default()
                .with_from(account)
                .with_to(token)
                .with_input(approve.abi_encode()),
            "approve the executor",
        )
        .await
        .expect("approve");
    }
    let _: () = provider
        .raw_request("anvil_stopImpersonatingAccount".into(), (account,))
        .await
        .expect("stop impersonating");
}

/// Zone B in live mode on the node (`endpoint`), simulating through the deployed executor,
/// with `momentum` at L5 so the test's trades pass the permission gate.
pub(crate) async fn live_engine(
    database: &str,
    endpoint: &str,
    d: &Deployment,
    account: Address,
) -> (Store, Engine) {
    let store = Store::connect(database).await.expect("engine store");
    let fork = ChainState::fork(endpoint, &[d.pool.into_array()], None, 0, None)
        .await
        .expect("fork");
    let executor = d.executor.into_array();
    let fork = tokio::task::spawn_blocking(move || fork.use_executor(executor))
        .await
        .expect("task")
        .expect("the deployed executor");
    let engine = Engine::start(
        store.clone(),
        fork,
        EngineSettings {
            mode: ExecutionMode::Live,
            live_account: Some(account.into_array()),
            ..EngineSettings::default()
        },
    )
    .await
    .expect("engine");
    engine.set_permission_level("momentum", stratbox_engine::PermissionLevel::L5);
    (store, engine)
}

/// Steps `live` by hand until one of its steps moves `task` to `want`.
async fn step_until(live: &Live, task: &str, want: TaskState, what: &str) {
    support::wait_until(what, Duration::from_secs(60), async || {
        live.step()
            .await
            .expect("step")
            .moved
            .iter()
            .any(|(t, s)| t == task && *s == want)
    })
    .await;
}

/// Waits for the engine's fork to reach the chain's head.
async fn catch_up<P: Provider>(engine: &Engine, head: &P) {
    let block = head.get_block_number().await.expect("head");
    support::wait_until(
        &format!("the engine's fork to reach block {block}"),
        Duration::from_secs(30),
        async || engine.watermark() >= block,
    )
    .await;
}

/// Submits one proposal, on the chain's head (the fork follower caught up), and returns its
/// task (STAGED: decided and staged in one write).
pub(crate) async fn submit<P: Provider>(engine: &Engine, head: &P, p: v1::Proposal) -> String {
    catch_up(engine, head).await;
    let r = engine
        .submit(&stratbox_engine::trace::fresh(), vec![p])
        .await
        .expect("submit");
    assert_eq!(
        r[0].state,
        v1::TaskState::Staged as i32,
        "a live trade that passes is STAGED by the submit: {:?}",
        r[0]
    );
    r[0].task_id.clone()
}

/// The outcome a host's follower of open tasks tells of `task_id`, asking the engine over
/// gRPC as a host does.
async fn told_of(engine: &Engine, task_id: &str) -> stratbox_host_service::OutcomeFor {
    use stratbox_host_service::{EngineLink, OpenTask, RetryPolicy, Tracker, execution};
    let listener = stratbox_engine::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(stratbox_engine::server::serve_grpc(
        engine.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let link = EngineLink::new(&format!("http://{addr}"), RetryPolicy::default()).expect("link");
    let (open, open_rx) = tokio::sync::mpsc::channel(4);
    let (ended_tx, mut ended) = tokio::sync::mpsc::channel(4);
    let (_shut, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(execution::follow_tasks(link, open_rx, ended_tx, shutdown));
    let proposal = engine
        .get_task(task_id)
        .await
        .expect("read")
        .and_then(|t| t.proposal)
        .expect("the task's proposal");
    open.send(OpenTask {
        task_id: task_id.to_owned(),
        proposal,
    })
    .await
    .expect("follower");
    let (open, task) = tokio::time::timeout(Duration::from_secs(30), ended.recv())
        .await
        .expect("the follower tells the task's end")
        .expect("an end");
    let _ = stop.send(());
    serving.await.expect("join").expect("served");
    Tracker::new(5)
        .followed(&open.proposal, &task, 0)
        .expect("an end")
}

pub(crate) async fn wait_state(
    store: &Store,
    task_id: &str,
    want: TaskState,
) -> stratbox_engine::store::LiveTask {
    support::wait_until(
        &format!("task {task_id} to reach {want}"),
        Duration::from_secs(90),
        async || {
            store
                .get_task(task_id)
                .await
                .expect("read task")
                .is_some_and(|t| t.state == want || t.state.is_terminal())
        },
    )
    .await;
    let row = store.get_task(task_id).await.expect("task").expect("row");
    assert_eq!(
        row.state, want,
        "task {task_id}: {} {}",
        row.reason_code, row.detail
    );
    store
        .live_task(task_id)
        .await
        .expect("live")
        .expect("live row")
}

/// Mines blocks whose base fee is twice the pending transaction's fee cap (so it cannot be
/// included: the market moved away from it) until the live path sends a replacement for
/// the task; returns that replacement.
async fn mine_priced_out<P: Provider>(
    provider: &P,
    store: &Store,
    task: &stratbox_engine::store::LiveTask,
) -> stratbox_engine::store::Replacement {
    use alloy::consensus::Transaction as _;
    let hash: alloy_primitives::B256 = task.tx_hash.parse().expect("hash");
    let tx = provider
        .get_transaction_by_hash(hash)
        .await
        .expect("rpc")
        .expect("the node holds the transaction");
    let priced_out = U256::from(tx.max_fee_per_gas()) * U256::from(2u8);
    let mut sent = None;
    support::wait_until(
        &format!("a replacement of {} to be sent", task.task_id),
        Duration::from_secs(60),
        async || {
            sent = store
                .replacements(&task.task_id)
                .await
                .expect("replacements")
                .into_iter()
                .find(|r| r.sent_block.is_some());
            if sent.is_some() {
                return true;
            }
            let _: () = provider
                .raw_request("anvil_setNextBlockBaseFeePerGas".into(), (priced_out,))
                .await
                .expect("raise the base fee");
            let _: serde_json::Value = provider
                .raw_request("evm_mine".into(), ())
                .await
                .expect("mine");
            false
        },
    )
    .await;
    let _: serde_json::Value = provider
        .raw_request("evm_mine".into(), ())
        .await
        .expect("mine the replacement");
    sent.expect("found")
}

/// `stratbox reconcile` against the engine's database and the node: (success, stdout).
async fn reconcile_cli(
    database: &str,
    chain: &str,
    account: Address,
    adopt: bool,
) -> (bool, String) {
    let mut cmd = support::stratbox();
    cmd.args([
        "reconcile",
        "--database",
        database,
        "--chain",
        chain,
        "--account",
        &format!("{account:#x}"),
    ]);
    if adopt {
        cmd.args(["--adopt", "--reason", "treasury deposit, ticket 42"]);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("task")
        .expect("stratbox reconcile runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("stratbox reconcile:\n{stdout}{stderr}");
    (out.status.success(), stdout)
}

async fn live_path(database: &str) {
    // The live path's log lines, shown when the test fails.
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

    // The account: ether for gas, tokens to trade, and its approvals of the executor,
    // made outside stratbox, so its nonces 0 and 1 are used already and the engine's lease
    // must start at the chain's 2.
    fund_account(&provider, dev, &d, account).await;

    // Zone B in live mode, simulating against the node through the deployed executor.
    let (store, engine) = live_engine(database, &anvil.endpoint(), &d, account).await;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (stop_following, following_stop) = tokio::sync::watch::channel(false);
    // The fork and watermark follow the node's head; the pool is quoted as the oracle (the
    // oracle is not what this test is about: the truthful-inputs issue feeds real ones).
    let follower = Arc::new(ForkFollower::new(
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
    let signer_endpoint = SignerEndpoint {
        url: format!("https://localhost:{}", signer.addr.port()),
        ca: certs.join("ca.pem"),
        cert: certs.join("engine.pem"),
        key: certs.join("engine.key"),
        server_name: "localhost".into(),
    };
    let config = LiveConfig::new(
        &anvil.endpoint(),
        account.into_array(),
        signer_endpoint.clone(),
    );
    let live = Live::connect(engine.clone(), config.clone())
        .await
        .expect("live path connects");
    let running = tokio::spawn(live.run(stop.clone()));

    // 1. A swap under the approval threshold: signed and confirmed, amounts as simulated.
    let before0 = balance(&provider, d.token0, account).await;
    let before1 = balance(&provider, d.token1, account).await;
    let t1 = submit(
        &engine,
        &provider,
        swap(&engine, account, "e1", true, U256::from(E18)),
    )
    .await;
    let done = wait_state(&store, &t1, TaskState::Confirmed).await;
    assert_eq!(done.nonce, Some(2), "the lease starts at the chain's nonce");
    assert_eq!(
        (&done.sim_amount0, &done.sim_amount1),
        (&done.actual_amount0, &done.actual_amount1),
        "predicted and actual amounts of a trade included on the state it was simulated on"
    );
    let after0 = balance(&provider, d.token0, account).await;
    let after1 = balance(&provider, d.token1, account).await;
    assert_eq!(
        (before0 - after0).to_string(),
        done.actual_amount0,
        "token0 paid, on chain"
    );
    assert_eq!(
        (after1 - before1).to_string(),
        done.actual_amount1,
        "token1 received, on chain"
    );
    let receipt = provider
        .get_transaction_receipt(done.tx_hash.parse().expect("hash"))
        .await
        .expect("receipt rpc")
        .expect("receipt");
    assert_eq!(receipt.from, account, "sent from the signer's account");
    assert_eq!(
        receipt.to,
        Some(d.executor),
        "through the deployed executor"
    );

    // What a host tells the strategy of it (world 0.2.0): a task the engine's answer left
    // at STAGED, followed over gRPC to its receipt; told CONFIRMED with the chain's amounts,
    // gas and block.
    let told = told_of(&engine, &t1).await;
    assert_eq!(
        told.outcome.state,
        stratbox_host::wit::v0_2::FinalState::Confirmed
    );
    assert_eq!(
        (&told.outcome.filled_amount0, &told.outcome.filled_amount1),
        (&done.actual_amount0, &done.actual_amount1)
    );
    assert_eq!(told.outcome.gas_used, receipt.gas_used);
    assert_eq!(Some(told.outcome.block), receipt.block_number);

    // 2. Over the policy's per-transaction cap: the signer refuses, the nonce comes back.
    let big = submit(
        &engine,
        &provider,
        swap(&engine, account, "e2", false, U256::from(20 * E18)),
    )
    .await;
    wait_state(&store, &big, TaskState::Rejected).await;
    let row = store.get_task(&big).await.expect("task").expect("row");
    assert!(
        row.reason_code.starts_with("signer_"),
        "the signer's reason: {}",
        row.reason_code
    );

    // 3. The next trade takes the nonce the refused one gave back.
    let t3 = submit(
        &engine,
        &provider,
        swap(&engine, account, "e3", false, U256::from(E18)),
    )
    .await;
    let done = wait_state(&store, &t3, TaskState::Confirmed).await;
    assert_eq!(
        done.nonce,
        Some(3),
        "the refused trade's nonce was given back"
    );

    // 4. Over the approval threshold: a human approves on the signer's admin port.
    let t4 = submit(
        &engine,
        &provider,
        swap(&engine, account, "e4", true, U256::from(6 * E18)),
    )
    .await;
    let waiting = wait_state(&store, &t4, TaskState::AwaitingApproval).await;
    assert!(
        !waiting.approval_id.is_empty(),
        "the signer's approval id is on the task"
    );
    let tls = stratbox_signer::tls::client_tls(
        &certs.join("ca.pem"),
        Some((&certs.join("alice.pem"), &certs.join("alice.key"))),
        "localhost",
    )
    .expect("approver tls");
    let channel = Endpoint::from_shared(format!("https://localhost:{}", signer.admin_addr.port()))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("admin connects");
    let mut admin = SignerAdminClient::new(channel);
    let shown = admin
        .show_approval(v1::GetApprovalRequest {
            trace: None,
            approval_id: waiting.approval_id.clone(),
        })
        .await
        .expect("show approval")
        .into_inner();
    assert_eq!(shown.task_id, t4, "the approval is the task's");
    admin
        .decide_approval(v1::DecideApprovalRequest {
            trace: None,
            approval_id: waiting.approval_id.clone(),
            approve: true,
            reason: "checked".into(),
            fields_hash: shown.fields_hash.clone(),
        })
        .await
        .expect("approve");
    let done = wait_state(&store, &t4, TaskState::Confirmed).await;
    assert_eq!(done.nonce, Some(4));

    // 5. A restart: a new live path (another holder) cannot take the lease while the first
    // holds it; once the first stops and gives it back, the new one trades on.
    let second = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-restarted".into(),
            ..config.clone()
        },
    )
    .await
    .expect("second live path");
    let r = second.step().await.expect("step");
    assert!(!r.leased, "the lease is held by the running live path");
    let _ = stop_tx.send(true);
    running.await.expect("live path stops");
    let (stop_tx2, stop2) = tokio::sync::watch::channel(false);
    let running2 = tokio::spawn(second.run(stop2));
    let t5 = submit(
        &engine,
        &provider,
        swap(&engine, account, "e5", false, U256::from(E18)),
    )
    .await;
    let done = wait_state(&store, &t5, TaskState::Confirmed).await;
    assert_eq!(done.nonce, Some(5));
    let lease = store
        .lease(31337, &hex_address(&account.into_array()))
        .await
        .expect("lease")
        .expect("a lease row");
    assert_eq!(lease.holder, "engine-restarted");
    assert_eq!(lease.token, 2, "a new holder, a new fencing token");

    // 6. Two live paths on one database at once, one of them killed without giving its
    // lease back (a crash): the other takes over when the lease expires and trades on.
    let _ = stop_tx2.send(true);
    running2.await.expect("second live path stops");
    let short = |holder: &str| LiveConfig {
        holder: holder.into(),
        lease_ttl: Duration::from_secs(2),
        ..config.clone()
    };
    let a = Live::connect(engine.clone(), short("engine-a"))
        .await
        .expect("live path a");
    let b = Live::connect(engine.clone(), short("engine-b"))
        .await
        .expect("live path b");
    let (stop_ab, stop_ab_rx) = tokio::sync::watch::channel(false);
    let run_a = tokio::spawn(a.run(stop_ab_rx.clone()));
    let run_b = tokio::spawn(b.run(stop_ab_rx));
    let mut tasks = Vec::new();
    for i in 0..4 {
        tasks.push(
            submit(
                &engine,
                &provider,
                swap(
                    &engine,
                    account,
                    &format!("c{i}"),
                    i % 2 == 0,
                    U256::from(E18 / 2),
                ),
            )
            .await,
        );
        if i == 1 {
            run_a.abort();
        }
    }
    for t in &tasks {
        wait_state(&store, t, TaskState::Confirmed).await;
    }
    let _ = stop_ab.send(true);
    let _ = run_b.await;

    // Every nonce used once, and the chain agrees.
    let used = store.assigned_nonces().await.expect("nonces");
    let nonces: Vec<u64> = used.iter().map(|(_, n, _)| *n).collect();
    assert_eq!(
        nonces,
        (2..10).collect::<Vec<u64>>(),
        "one task per nonce: {used:?}"
    );
    let chain_nonce = provider
        .get_transaction_count(account)
        .await
        .expect("nonce");
    assert_eq!(
        chain_nonce, 10,
        "every assigned nonce was mined, none twice"
    );

    // The ledger holds the real fills: one balanced posting per confirmed trade.
    let confirmed = store
        .list_tasks(&stratbox_engine::store::TaskFilter {
            state: Some(TaskState::Confirmed),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("tasks");
    assert_eq!(confirmed.len(), 8);
    for t in &confirmed {
        let lines = store
            .entries(None, Some(&t.task_id), 0)
            .await
            .expect("entries");
        let posted = |suffix: &str| {
            lines
                .iter()
                .filter(|l| l.posting_id == format!("{}:{suffix}", t.task_id))
                .count()
        };
        assert_eq!(
            (posted("fill"), posted("wallet"), posted("gas")),
            (6, 4, 2),
            "the strategy's share (the fill's two legs and its gas against the network), the \
             wallet's two tokens and its gas, each a debit and a credit: {lines:?}"
        );
    }

    // 7. The wallet as booked agrees with the chain, by the library and by the CLI.
    let me = account.into_array();
    let r = stratbox_engine::reconcile::reconcile(&store, &provider, &me)
        .await
        .expect("reconcile")
        .expect("the wallet was opened before the first trade");
    assert!(r.is_zero(), "{r}");
    assert_eq!(r.in_flight, 0);
    let mut assets: Vec<String> = r.assets.iter().map(|a| a.asset.clone()).collect();
    assets.sort();
    let mut want = vec![
        "ether".to_owned(),
        hex_address(&d.token0.into_array()),
        hex_address(&d.token1.into_array()),
    ];
    want.sort();
    assert_eq!(assets, want, "ether and both tokens are reconciled");
    let ether = r.assets.iter().find(|a| a.asset == "ether").expect("ether");
    assert!(
        ether.chain < stratbox_proto::U256::from(10 * E18),
        "gas was paid and booked: {r}"
    );
    let (ok, text) = reconcile_cli(database, &anvil.endpoint(), account, false).await;
    assert!(ok && text.contains("difference: zero"), "{text}");

    // 8. Ether sent to the account around stratbox: found before the next trade is
    // signed, recorded, and the kill switch holds that trade.
    deploy::send_request(
        &provider,
        TransactionRequest::default()
            .with_from(dev)
            .with_to(account)
            .with_value(U256::from(E18)),
        "an outside deposit",
    )
    .await
    .expect("deposit");
    let held = submit(
        &engine,
        &provider,
        swap(&engine, account, "k1", true, U256::from(E18 / 2)),
    )
    .await;
    let c = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-c".into(),
            reconcile_every: Duration::from_millis(100),
            ..config.clone()
        },
    )
    .await
    .expect("live path c");
    let (stop_c, stop_c_rx) = tokio::sync::watch::channel(false);
    let run_c = tokio::spawn(c.run(stop_c_rx));
    support::wait_until(
        "the kill switch engaged by reconciliation",
        Duration::from_secs(60),
        async || engine.kill_switch().engaged,
    )
    .await;
    let switch = engine.kill_switch();
    assert_eq!(switch.operator, "reconciliation");
    assert!(
        switch.reason.contains("1000000000000000000"),
        "{}",
        switch.reason
    );
    let findings = store.findings(&hex_address(&me)).await.expect("findings");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (findings[0].asset.as_str(), findings[0].difference.as_str()),
        ("ether", "1000000000000000000")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = store.live_task(&held).await.expect("task").expect("row");
    assert_eq!(
        (waiting.state, waiting.nonce),
        (TaskState::Staged, None),
        "nothing is signed while the ledger and the chain differ"
    );
    let (ok, text) = reconcile_cli(database, &anvil.endpoint(), account, false).await;
    assert!(!ok && text.contains("difference: NOT zero"), "{text}");

    // The operator traces the deposit, adopts it and clears the switch: the trade goes on.
    let (ok, text) = reconcile_cli(database, &anvil.endpoint(), account, true).await;
    assert!(
        ok && text.contains("adopted: ether 1000000000000000000")
            && text.contains("difference: zero"),
        "{text}"
    );
    engine
        .clear_kill_switch("", "test operator")
        .await
        .expect("clear");
    wait_state(&store, &held, TaskState::Confirmed).await;
    let r = stratbox_engine::reconcile::reconcile(&store, &provider, &me)
        .await
        .expect("reconcile")
        .expect("opened");
    assert!(r.is_zero(), "after the held trade: {r}");
    let _ = stop_c.send(true);
    run_c.await.expect("live path c stops");
    assert_eq!(
        store
            .findings(&hex_address(&me))
            .await
            .expect("findings")
            .len(),
        1,
        "an adopted difference is not found again"
    );

    // 9. A crash after BROADCAST, and the node then loses the transaction: the restarted
    // engine's recovery pass sends it again unchanged and books it, and starts nothing new.
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .expect("automine off");
    let lost = submit(
        &engine,
        &provider,
        swap(&engine, account, "r1", false, U256::from(E18 / 2)),
    )
    .await;
    let crashed = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-d".into(),
            lease_ttl: Duration::from_secs(1),
            ..config.clone()
        },
    )
    .await
    .expect("live path d");
    support::wait_until(
        "the trade to be broadcast (not mined: automine is off)",
        Duration::from_secs(60),
        async || {
            crashed.step().await.expect("step");
            store
                .get_task(&lost)
                .await
                .expect("task")
                .is_some_and(|t| t.state == TaskState::Broadcast)
        },
    )
    .await;
    drop(crashed); // killed: its lease is not given back
    let sent = store.live_task(&lost).await.expect("task").expect("row");
    let _: serde_json::Value = provider
        .raw_request("anvil_dropTransaction".into(), (sent.tx_hash.clone(),))
        .await
        .expect("drop the transaction from the node's pool");
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .expect("automine on");
    let next = submit(
        &engine,
        &provider,
        swap(&engine, account, "r2", true, U256::from(E18 / 2)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // the crashed lease expires
    let restarted = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-e".into(),
            ..config.clone()
        },
    )
    .await
    .expect("live path e");
    let hash: alloy_primitives::B256 = sent.tx_hash.parse().expect("hash");
    let known = async || {
        provider
            .get_transaction_by_hash(hash)
            .await
            .expect("rpc")
            .is_some()
    };
    assert!(!known().await, "the node has lost the transaction");
    let recovery = restarted.recover().await.expect("recovery");
    assert!(recovery.leased, "{recovery:?}");
    // Anvil mines a re-sent transaction on arrival, but its receipt may appear a moment
    // after the send returns: booked by the recovery pass, or by the first step after it.
    assert!(
        known().await,
        "the recovery pass sent it again: {recovery:?}"
    );
    assert!(
        recovery.moved == vec![(lost.clone(), TaskState::Confirmed)]
            || (recovery.moved.is_empty() && recovery.still_open == 1),
        "{recovery:?}"
    );
    let (stop_e, stop_e_rx) = tokio::sync::watch::channel(false);
    let waiting = store.live_task(&next).await.expect("task").expect("row");
    assert_eq!(
        (waiting.state, waiting.nonce),
        (TaskState::Staged, None),
        "recovery starts no new trade"
    );
    let run_e = tokio::spawn(restarted.run(stop_e_rx));
    let done = wait_state(&store, &lost, TaskState::Confirmed).await;
    assert_eq!(
        (done.tx_hash.as_str(), done.nonce),
        (sent.tx_hash.as_str(), sent.nonce),
        "the same signed transaction, not a new one"
    );
    wait_state(&store, &next, TaskState::Confirmed).await;
    let _ = stop_e.send(true);
    run_e.await.expect("live path e stops");
    let r = stratbox_engine::reconcile::reconcile(&store, &provider, &me)
        .await
        .expect("reconcile")
        .expect("opened");
    assert!(r.is_zero(), "after recovery: {r}");

    // 10. A trade held unsigned past its deadline (here by the kill switch) is EXPIRED,
    // not signed later on a stale state, and takes no nonce.
    let stale = submit(
        &engine,
        &provider,
        swap(&engine, account, "s1", true, U256::from(E18 / 2)),
    )
    .await;
    engine
        .set_kill_switch("", "test: hold every trade", "test operator")
        .await
        .expect("engage");
    let f = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-f".into(),
            unsigned_deadline: Duration::from_millis(300),
            ..config.clone()
        },
    )
    .await
    .expect("live path f");
    let (stop_f, stop_f_rx) = tokio::sync::watch::channel(false);
    let run_f = tokio::spawn(f.run(stop_f_rx));
    let expired = wait_state(&store, &stale, TaskState::Expired).await;
    assert_eq!(
        expired.nonce, None,
        "an expired unsigned trade takes no nonce"
    );
    let row = store.get_task(&stale).await.expect("task").expect("row");
    assert_eq!(row.reason_code, "deadline", "{}", row.detail);
    let _ = stop_f.send(true);
    run_f.await.expect("live path f stops");
    engine
        .clear_kill_switch("", "test operator")
        .await
        .expect("clear");

    // 11. A transaction stuck by a low fee (the base fee rose past its cap after it was
    // sent) is replaced at its nonce by the same call with higher fees, which is confirmed;
    // the first transaction is never mined.
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .expect("automine off");
    let bumping = LiveConfig {
        holder: "engine-g".into(),
        replace: ReplacePolicy {
            bump_after_blocks: 2,
            ladder: vec![15, 15],
            inclusion_deadline_blocks: 0,
        },
        ..config.clone()
    };
    let stuck = submit(
        &engine,
        &provider,
        swap(&engine, account, "bumped-1", true, U256::from(E18 / 2)),
    )
    .await;
    let g = Live::connect(engine.clone(), bumping.clone())
        .await
        .expect("live path g");
    let (stop_g, stop_g_rx) = tokio::sync::watch::channel(false);
    let run_g = tokio::spawn(g.run(stop_g_rx));
    let first = wait_state(&store, &stuck, TaskState::Broadcast).await;
    let sent_replacement = mine_priced_out(&provider, &store, &first).await;
    let done = wait_state(&store, &stuck, TaskState::Confirmed).await;
    assert_eq!(done.nonce, first.nonce, "replaced at the same nonce");
    assert_eq!(
        done.tx_hash, sent_replacement.tx_hash,
        "the task names the transaction the chain included"
    );
    assert_ne!(done.tx_hash, first.tx_hash);
    assert_eq!(sent_replacement.kind, ReplacementKind::Bump);
    let first_hash: alloy_primitives::B256 = first.tx_hash.parse().expect("hash");
    assert!(
        provider
            .get_transaction_receipt(first_hash)
            .await
            .expect("rpc")
            .is_none(),
        "the underpriced transaction was never mined"
    );
    assert_eq!(
        (&done.sim_amount0, &done.sim_amount1),
        (&done.actual_amount0, &done.actual_amount1),
        "nothing else traded meanwhile: the bump filled as simulated"
    );
    let _ = stop_g.send(true);
    run_g.await.expect("live path g stops");

    // 12. A transaction not included by its deadline is cancelled at its nonce (a 0-value
    // transfer to the account itself) and EXPIRED; nothing is traded, the gas is booked
    // and the wallet still reconciles to zero.
    let cancelling = LiveConfig {
        holder: "engine-h".into(),
        replace: ReplacePolicy {
            bump_after_blocks: 0,
            ladder: vec![],
            inclusion_deadline_blocks: 3,
        },
        ..config.clone()
    };
    let late = submit(
        &engine,
        &provider,
        swap(&engine, account, "cancelled-1", true, U256::from(E18 / 2)),
    )
    .await;
    let tokens_before = (
        balance(&provider, d.token0, account).await,
        balance(&provider, d.token1, account).await,
    );
    let h = Live::connect(engine.clone(), cancelling)
        .await
        .expect("live path h");
    let (stop_h, stop_h_rx) = tokio::sync::watch::channel(false);
    let run_h = tokio::spawn(h.run(stop_h_rx));
    let pending = wait_state(&store, &late, TaskState::Broadcast).await;
    let cancel = mine_priced_out(&provider, &store, &pending).await;
    assert_eq!(cancel.kind, ReplacementKind::Cancel);
    let expired = wait_state(&store, &late, TaskState::Expired).await;
    let row = store.get_task(&late).await.expect("task").expect("row");
    assert_eq!(row.reason_code, "deadline", "{}", row.detail);
    assert!(row.detail.contains("cancelled"), "{}", row.detail);
    assert_eq!(expired.tx_hash, cancel.tx_hash);
    assert_eq!(
        (
            balance(&provider, d.token0, account).await,
            balance(&provider, d.token1, account).await,
        ),
        tokens_before,
        "the cancel traded nothing"
    );
    let chain_next = provider
        .get_transaction_count(account)
        .await
        .expect("nonce");
    assert_eq!(
        Some(chain_next),
        expired.nonce.map(|n| n + 1),
        "the cancel used the trade's nonce"
    );
    let _ = stop_h.send(true);
    run_h.await.expect("live path h stops");

    // 13. The kill switch engaged with cancel-pending: a trade never sent to the signer is
    // EXPIRED without a nonce, and a transaction pending on chain is replaced at once by a
    // cancel at its nonce, which the chain includes (EXPIRED, `kill_switch`).
    let patient = LiveConfig {
        replace: ReplacePolicy {
            bump_after_blocks: 0,
            ladder: vec![],
            inclusion_deadline_blocks: 0,
        },
        ..config.clone()
    };
    let in_flight = submit(
        &engine,
        &provider,
        swap(&engine, account, "killed-1", true, U256::from(E18 / 2)),
    )
    .await;
    let j = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-j".into(),
            ..patient.clone()
        },
    )
    .await
    .expect("live path j");
    let (stop_j, stop_j_rx) = tokio::sync::watch::channel(false);
    let run_j = tokio::spawn(j.run(stop_j_rx));
    let pending = wait_state(&store, &in_flight, TaskState::Broadcast).await;
    let _ = stop_j.send(true);
    run_j.await.expect("live path j stops");
    let unsent = submit(
        &engine,
        &provider,
        swap(&engine, account, "killed-2", false, U256::from(E18 / 2)),
    )
    .await;
    let k = engine
        .engage_kill_switch("", "test: stop everything", "test operator", true)
        .await
        .expect("engage with cancel-pending");
    assert!(k.engaged && k.cancel_pending, "{k:?}");
    let kl = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-k".into(),
            ..patient
        },
    )
    .await
    .expect("live path k");
    let (stop_k, stop_k_rx) = tokio::sync::watch::channel(false);
    let run_k = tokio::spawn(kl.run(stop_k_rx));
    let never_sent = wait_state(&store, &unsent, TaskState::Expired).await;
    assert_eq!(never_sent.nonce, None, "it took no nonce");
    // The cancel goes out at once (no block passes): it replaces the pending transaction
    // in the node's pool, and the next block includes it.
    let killed_cancel = support::wait_for(
        "the kill switch's cancel to be sent",
        Duration::from_secs(30),
        async || {
            store
                .replacements(&pending.task_id)
                .await
                .expect("replacements")
                .into_iter()
                .find(|r| r.sent_block.is_some())
        },
    )
    .await;
    assert_eq!(killed_cancel.kind, ReplacementKind::Cancel);
    let _: serde_json::Value = provider
        .raw_request("evm_mine".into(), ())
        .await
        .expect("mine the cancel");
    let cancelled = wait_state(&store, &in_flight, TaskState::Expired).await;
    assert_eq!(cancelled.tx_hash, killed_cancel.tx_hash);
    for id in [&unsent, &in_flight] {
        let row = store.get_task(id).await.expect("task").expect("row");
        assert_eq!(row.reason_code, "kill_switch", "{}", row.detail);
    }
    let _ = stop_k.send(true);
    run_k.await.expect("live path k stops");
    engine
        .clear_kill_switch("", "test operator")
        .await
        .expect("clear");
    assert!(!engine.kill_switch().cancel_pending);
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .expect("automine on");
    let r = stratbox_engine::reconcile::reconcile(&store, &provider, &me)
        .await
        .expect("reconcile")
        .expect("opened");
    assert!(r.is_zero(), "after bumps and cancels: {r}");

    // 14. A reorg takes a confirmed trade's block away (Anvil's `anvil_reorg` replaces the
    // head block with an empty one; the node drops the transaction). The next step finds
    // the receipt's block hash changed: the task is BROADCAST again, everything its receipt
    // booked is reversed (the wallet and the strategy's book hold what they held before
    // it), and the same signed bytes are sent again at the same nonce. Once a block
    // includes them the task is CONFIRMED again, booked under its second inclusion's ids.
    let book = hex_address(&me);
    let book_before = engine.token_balances("momentum", &book);
    let reorged = submit(
        &engine,
        &provider,
        swap(&engine, account, "reorged", true, U256::from(E18 / 4)),
    )
    .await;
    let l = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-l".into(),
            ..config.clone()
        },
    )
    .await
    .expect("live path l");
    step_until(
        &l,
        &reorged,
        TaskState::Confirmed,
        "the reorged trade to confirm",
    )
    .await;
    let confirmed = store.live_task(&reorged).await.expect("task").expect("row");
    let book_after = engine.token_balances("momentum", &book);
    assert_ne!(book_after, book_before, "the fill is on the book");
    let old = provider
        .get_transaction_receipt(confirmed.tx_hash.parse().expect("hash"))
        .await
        .expect("receipt rpc")
        .expect("receipt");
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .expect("automine off");
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_reorg".into(),
            (1u64, Vec::<serde_json::Value>::new()),
        )
        .await
        .expect("anvil_reorg");
    assert!(
        provider
            .get_transaction_receipt(old.transaction_hash)
            .await
            .expect("receipt rpc")
            .is_none(),
        "the reorg removed the receipt"
    );
    let moved = l.step().await.expect("step after the reorg").moved;
    assert_eq!(moved, vec![(reorged.clone(), TaskState::Broadcast)]);
    let back = store.live_task(&reorged).await.expect("task").expect("row");
    assert_eq!(back.state, TaskState::Broadcast);
    assert_eq!((back.reorgs, back.nonce), (1, confirmed.nonce));
    assert_eq!(back.actual_amount0, "", "the receipt's amounts are cleared");
    let row = store.get_task(&reorged).await.expect("task").expect("row");
    assert_eq!(row.reason_code, "reorg", "{}", row.detail);
    let entries = store
        .entries(None, Some(&reorged), 0)
        .await
        .expect("entries");
    let reversed: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.posting_id.ends_with(":reorg"))
        .map(|e| e.reverses_posting_id.as_str())
        .collect();
    let booked: std::collections::BTreeSet<String> = ["fill", "wallet", "gas"]
        .iter()
        .map(|k| format!("{reorged}:{k}"))
        .collect();
    assert_eq!(
        reversed,
        booked.iter().map(String::as_str).collect(),
        "every posting of the receipt reversed"
    );
    assert_eq!(
        engine.token_balances("momentum", &book),
        book_before,
        "the strategy's book no longer holds the fill"
    );
    let r = stratbox_engine::reconcile::reconcile(&store, &provider, &me)
        .await
        .expect("reconcile")
        .expect("opened");
    assert!(r.is_zero(), "after the reorg, before re-inclusion: {r}");
    assert!(
        provider
            .get_transaction_by_hash(old.transaction_hash)
            .await
            .expect("tx rpc")
            .is_some(),
        "the same signed transaction was sent again"
    );
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .expect("automine on");
    let _: serde_json::Value = provider
        .raw_request("evm_mine".into(), ())
        .await
        .expect("mine it again");
    step_until(
        &l,
        &reorged,
        TaskState::Confirmed,
        "the reorged trade to confirm again",
    )
    .await;
    let new = provider
        .get_transaction_receipt(old.transaction_hash)
        .await
        .expect("receipt rpc")
        .expect("included again");
    assert_ne!(new.block_hash, old.block_hash, "in another block");
    let again = store.live_task(&reorged).await.expect("task").expect("row");
    assert_eq!(again.state, TaskState::Confirmed);
    assert_eq!(
        (&again.actual_amount0, &again.actual_amount1),
        (&confirmed.actual_amount0, &confirmed.actual_amount1),
        "the same swap on the same pool state"
    );
    assert!(
        store
            .entries(None, Some(&reorged), 0)
            .await
            .expect("entries")
            .iter()
            .any(|e| e.posting_id == format!("{reorged}:fill:r1")),
        "the second inclusion booked under its own ids"
    );
    assert_eq!(engine.token_balances("momentum", &book), book_after);
    let r = stratbox_engine::reconcile::reconcile(&store, &provider, &me)
        .await
        .expect("reconcile")
        .expect("opened");
    assert!(r.is_zero(), "after the reorg and re-inclusion: {r}");

    // 15. Recovery by nonce: a pending trade's nonce is taken by a transaction the engine
    // never signed (sent from the account by someone else, impersonated on Anvil, at the
    // same nonce with higher fees, so the node's pool replaces the trade with it). No
    // receipt of the task's own transaction will ever come; the next step finds the nonce
    // used on chain and none of its transactions mined: FAILED (`nonce_used`), and the kill
    // switch engaged, since whatever sent it can send more. The outsider's gas is a
    // reconciliation difference the operator adopts.
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .expect("automine off");
    let taken = submit(
        &engine,
        &provider,
        swap(&engine, account, "nonce-taken", false, U256::from(E18 / 4)),
    )
    .await;
    let m = Live::connect(
        engine.clone(),
        LiveConfig {
            holder: "engine-m".into(),
            replace: ReplacePolicy {
                bump_after_blocks: 0,
                ladder: vec![],
                inclusion_deadline_blocks: 0,
            },
            ..config.clone()
        },
    )
    .await
    .expect("live path m");
    step_until(
        &m,
        &taken,
        TaskState::Broadcast,
        "the trade to be broadcast",
    )
    .await;
    let pending = store.live_task(&taken).await.expect("task").expect("row");
    let ours = {
        use alloy::consensus::Transaction as _;
        provider
            .get_transaction_by_hash(pending.tx_hash.parse().expect("hash"))
            .await
            .expect("rpc")
            .expect("the node holds the trade")
            .max_fee_per_gas()
    };
    let _: () = provider
        .raw_request("anvil_impersonateAccount".into(), (account,))
        .await
        .expect("impersonate");
    let outsider = provider
        .send_transaction(
            TransactionRequest::default()
                .with_from(account)
                .with_to(account)
                .with_nonce(pending.nonce.expect("nonce"))
                .with_gas_limit(21_000)
                .with_max_fee_per_gas(ours * 2)
                .with_max_priority_fee_per_gas(ours),
        )
        .await
        .expect("the outsider's transaction replaces the trade in the pool");
    let outsider = *outsider.tx_hash();
    let _: () = provider
        .raw_request("anvil_stopImpersonatingAccount".into(), (account,))
        .await
        .expect("stop impersonating");
    let _: serde_json::Value = provider
        .raw_request("evm_mine".into(), ())
        .await
        .expect("mine the outsider");
    assert!(
        provider
            .get_transaction_receipt(outsider)
            .await
            .expect("rpc")
            .is_some(),
        "the outsider's transaction took the nonce"
    );
    // The nonce must stay used for two blocks with no receipt of the trade's (a node may
    // count a nonce before it serves the receipt): blocks are mined until then.
    let mut moved = Vec::new();
    support::wait_until(
        "the task to fail on its used nonce",
        Duration::from_secs(60),
        async || {
            moved.extend(m.step().await.expect("step").moved);
            if moved.contains(&(taken.clone(), TaskState::Failed)) {
                return true;
            }
            let _: serde_json::Value = provider
                .raw_request("evm_mine".into(), ())
                .await
                .expect("mine");
            false
        },
    )
    .await;
    assert_eq!(moved, vec![(taken.clone(), TaskState::Failed)]);
    let row = store.get_task(&taken).await.expect("task").expect("row");
    assert_eq!(row.reason_code, "nonce_used", "{}", row.detail);
    assert!(row.detail.contains(&pending.tx_hash), "{}", row.detail);
    let k = engine.kill_switch();
    assert!(k.engaged, "the kill switch is engaged: {k:?}");
    let (ok, text) = reconcile_cli(database, &anvil.endpoint(), account, true).await;
    assert!(ok && text.contains("difference: zero"), "{text}");
    engine
        .clear_kill_switch("", "test operator")
        .await
        .expect("clear");
    let _: () = provider
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .expect("automine on");

    // 16. A nonce gap: a nonce below the lease's next that no task holds and the chain has
    // not used. The live path leaves none by design, so the test makes one by hand,
    // raising the lease's next nonce as a lost task row would leave it. The next trade
    // takes the nonce above the gap and waits in the node's pool behind it; once the gap
    // has stood two blocks the live path fills it with a cancel (signed by the signer as
    // any cancel: it moves nothing), the trade is mined behind it, the cancel's gas is
    // booked and the wallet reconciles to zero.
    let gap = provider
        .get_transaction_count(account)
        .await
        .expect("nonce");
    let raised = sqlx::query(
        "UPDATE nonce_locks SET next_nonce = next_nonce + 1 WHERE account = $1 AND next_nonce = $2",
    )
    .bind(hex_address(&account.into_array()))
    .bind(i64::try_from(gap).expect("nonce"))
    .execute(store.pool())
    .await
    .expect("skip a nonce")
    .rows_affected();
    assert_eq!(raised, 1, "the lease's next nonce was the chain's");
    let behind = submit(
        &engine,
        &provider,
        swap(&engine, account, "behind-gap", true, U256::from(E18 / 4)),
    )
    .await;
    step_until(
        &m,
        &behind,
        TaskState::Broadcast,
        "the trade behind the gap to be broadcast",
    )
    .await;
    let waiting = store.live_task(&behind).await.expect("task").expect("row");
    assert_eq!(
        waiting.nonce,
        Some(gap + 1),
        "the trade took the nonce above the gap"
    );
    let mut moved = Vec::new();
    support::wait_until(
        "the gap filled and the trade behind it confirmed",
        Duration::from_secs(60),
        async || {
            moved.extend(m.step().await.expect("step").moved);
            if moved.contains(&(behind.clone(), TaskState::Confirmed)) {
                return true;
            }
            let _: serde_json::Value = provider
                .raw_request("evm_mine".into(), ())
                .await
                .expect("mine");
            false
        },
    )
    .await;
    let account_hex = hex_address(&account.into_array());
    // The cancel's receipt may be booked by the step after the trade's.
    support::wait_until(
        "the gap's cancel booked",
        Duration::from_secs(30),
        async || {
            m.step().await.expect("step");
            store
                .nonce_gaps(&account_hex, false)
                .await
                .expect("gaps")
                .iter()
                .all(|g| g.state == GapState::Filled)
        },
    )
    .await;
    let gaps = store.nonce_gaps(&account_hex, false).await.expect("gaps");
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].nonce, gaps[0].state), (gap, GapState::Filled));
    let cancel = provider
        .get_transaction_by_hash(gaps[0].tx_hash.parse().expect("hash"))
        .await
        .expect("rpc")
        .expect("the cancel is on chain");
    {
        use alloy::consensus::Transaction as _;
        assert_eq!(
            (
                cancel.to(),
                cancel.value(),
                cancel.input().len(),
                cancel.nonce()
            ),
            (Some(account), U256::ZERO, 0, gap),
            "a 0-value transfer to the account itself at the gap's nonce"
        );
    }
    assert_eq!(engine.metrics().nonce_gaps.get(), 1);
    assert!(!engine.kill_switch().engaged, "a filled gap stops nothing");
    let (ok, text) = reconcile_cli(database, &anvil.endpoint(), account, false).await;
    assert!(ok && text.contains("difference: zero"), "{text}");

    // 17. Liquidity, live: a mint and then a burn of the same range through the executor.
    // Each is booked on the strategy's book from its receipt: the tokens the executor's
    // event says were paid (or received, with fees) against the position's liquidity.
    let book_account = stratbox_engine::ledger::strategy_account("momentum", &account_hex);
    let lp = stratbox_engine::ledger::lp_asset(&d.pool.into_array(), -6000, 6000);
    let on_book = async |asset: &str| {
        let lines = store.lines(Some(&book_account)).await.expect("lines");
        stratbox_engine::ledger::positions(&lines)
            .expect("balanced")
            .get(&(book_account.clone(), asset.to_owned()))
            .map_or(alloy_primitives::I256::ZERO, |p| {
                let m = alloy_primitives::I256::from_raw(p.magnitude);
                if p.negative { -m } else { m }
            })
    };
    let tokens = [d.token0, d.token1].map(|t| hex_address(&t.into_array()));
    let tokens_before = [on_book(&tokens[0]).await, on_book(&tokens[1]).await];
    let mut liquidity_trades = Vec::new();
    for (event, add) in [("lp-add", true), ("lp-remove", false)] {
        // Quoted on the head: the burn's on the block that holds the mint.
        catch_up(&engine, &provider).await;
        let t = submit(&engine, &provider, liquidity(&engine, account, event, add)).await;
        step_until(
            &m,
            &t,
            TaskState::Confirmed,
            "the liquidity trade to confirm",
        )
        .await;
        let l = store.live_task(&t).await.expect("task").expect("row");
        assert_eq!(
            (&l.sim_amount0, &l.sim_amount1),
            (&l.actual_amount0, &l.actual_amount1),
            "{event}: simulated and included on the same state"
        );
        let position = on_book(&lp).await;
        let want = if add {
            alloy_primitives::I256::try_from(E18).expect("fits")
        } else {
            alloy_primitives::I256::ZERO
        };
        assert_eq!(
            position, want,
            "{event}: the position on the strategy's book"
        );
        liquidity_trades.push(l);
    }
    for (i, token) in tokens.iter().enumerate() {
        let amount = |l: &stratbox_engine::store::LiveTask| {
            let v = if i == 0 {
                &l.actual_amount0
            } else {
                &l.actual_amount1
            };
            alloy_primitives::I256::from_dec_str(v).expect("amount")
        };
        // Paid for the mint, received back by the burn (no swap in between: no fees).
        assert_eq!(
            tokens_before[i] - amount(&liquidity_trades[0]) + amount(&liquidity_trades[1]),
            on_book(token).await,
            "token {i} on the strategy's book"
        );
    }
    let (ok, text) = reconcile_cli(database, &anvil.endpoint(), account, false).await;
    assert!(ok && text.contains("difference: zero"), "{text}");

    // 18. Gas on the strategy's book. Every receipt of a momentum task (filled, reverted
    // or its cancel) books its gas in ether on the strategy's book against the network;
    // the gap's cancel, no strategy's, is only the wallet's. The book leaves ether out of
    // its value until there is an ether mark, then counts it as a cost at the mark,
    // rounded against the book.
    let lines = store.lines(None).await.expect("lines");
    let pos = stratbox_engine::ledger::positions(&lines).expect("balanced");
    let ether = |acct: String| {
        pos.get(&(acct, stratbox_engine::ledger::ETHER.to_owned()))
            .copied()
            .unwrap_or_default()
    };
    let strategy_gas = ether(book_account.clone());
    let network = ether(stratbox_engine::ledger::network_account(&account_hex));
    let wallet_gas = ether(stratbox_engine::ledger::gas_account(&account_hex));
    let gap_receipt = provider
        .get_transaction_receipt(gaps[0].tx_hash.parse().expect("hash"))
        .await
        .expect("rpc")
        .expect("the gap's cancel was mined");
    let gap_gas = U256::from(gap_receipt.gas_used) * U256::from(gap_receipt.effective_gas_price);
    assert!(
        strategy_gas.negative && !network.negative,
        "{strategy_gas} {network}"
    );
    assert_eq!(strategy_gas.magnitude, network.magnitude);
    assert_eq!(
        network.magnitude + gap_gas,
        wallet_gas.magnitude,
        "the strategy paid every wei of the wallet's gas but the gap's"
    );
    let (unmarked, _, _) = engine.book("momentum", &account_hex).expect("a book");
    let mark = U256::from(2_000u64) * U256::from(E18);
    engine.set_ether_mark(mark, provider.get_block_number().await.expect("head"));
    let (marked, _, _) = engine.book("momentum", &account_hex).expect("a book");
    let cost = (network.magnitude * mark).div_ceil(U256::from(E18));
    assert_eq!(
        unmarked.equity - marked.equity,
        cost,
        "gas at 2000 per ether"
    );
    assert_eq!(unmarked.cash - marked.cash, cost);
    assert_eq!(
        unmarked.gross_exposure, marked.gross_exposure,
        "gas is no exposure"
    );

    // What revm predicted against each receipt. A trade submitted alone on the head is
    // included on the state it was simulated on: equal amounts. Trades submitted while
    // others were in flight (step 6, and r2 before the recovered r1) may differ; the
    // metric counts exactly the receipts whose stored amounts differ.
    let differences = |field: &'static str| {
        engine
            .metrics()
            .prediction_differences
            .get_or_create(&[("field", field)])
            .get()
    };
    let mut differing = 0;
    let mut confirmed_ids = Vec::new();
    for t in store
        .list_tasks(&stratbox_engine::store::TaskFilter {
            state: Some(TaskState::Confirmed),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("tasks")
    {
        let l = store
            .live_task(&t.task_id)
            .await
            .expect("task")
            .expect("row");
        if (&l.sim_amount0, &l.sim_amount1) != (&l.actual_amount0, &l.actual_amount1) {
            differing += 1;
        }
        confirmed_ids.push(t.task_id);
    }
    assert_eq!(confirmed_ids.len(), 16);
    assert_eq!(differences("amounts"), differing);
    let (lp_add, lp_remove) = (&liquidity_trades[0].task_id, &liquidity_trades[1].task_id);
    for alone in [
        &t1, &t3, &t4, &t5, &held, &stuck, &behind, lp_add, lp_remove,
    ] {
        let l = store.live_task(alone).await.expect("task").expect("row");
        assert_eq!(
            (&l.sim_amount0, &l.sim_amount1),
            (&l.actual_amount0, &l.actual_amount1),
            "task {alone}: simulated and included on the same state"
        );
    }
    assert_eq!(differences("status"), 0, "no trade reverted");
    let _ = stop_following.send(true);
    following.await.expect("follower stops");
    signer.shutdown().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_trades_confirm_on_anvil_with_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    live_path(&format!(
        "sqlite://{}",
        dir.path().join("engine.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_trades_confirm_on_anvil_with_postgres() {
    let admin = support::postgres_admin();
    let name = support::unique("stratbox_live_e2e");
    stratbox_engine::store::create_postgres_database(&admin, &name)
        .await
        .expect("create the test database");
    live_path(&stratbox_engine::store::with_database(&admin, &name)).await;
    let _ = stratbox_engine::store::drop_postgres_database(&admin, &name).await;
}
