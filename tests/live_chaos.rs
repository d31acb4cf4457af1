//! Chaos on the live path, with real processes: two `stratbox engine` processes in live mode
//! on one PostgreSQL database trade one account on Anvil (npm package, real Uniswap V3 pool
//! and executor) through the real signer service (mutual TLS, development keystore, in this
//! test's process). Proposals keep arriving at both engines over gRPC; 50 times one of
//! them is SIGKILLed at a random moment and started again under its own lease name.
//!
//! Afterwards: every proposal answered with exactly one task, every task in an end state,
//! every nonce used once (in the database and on chain, with no gap), one swap on chain per
//! CONFIRMED task and none for any other task, and the account's wallet reconciled to zero
//! against the chain. The worst recovery (the recovery pass a restarted engine runs before
//! its gRPC port opens, and the time from its start until it answers health checks) is
//! printed.
//!
//! What is not killed here: the signer (its shares are not separate processes in this test)
//! and a host (proposals come from this test's gRPC client).

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy_primitives::Address;
use alloy_sol_types::SolEvent;
use stratbox::demo_signer::{DemoKey, DemoSigner, Funding, Limits};
use stratbox_engine::Store;
use stratbox_engine::fsm::TaskState;
use stratbox_engine::proposal::hex_address;
use stratbox_evm::abi::IUniswapV3Pool;
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig};
use stratbox_proto::v1;
use stratbox_proto::v1::proposal::Action;
use stratbox_proto::v1::trading_engine_client::TradingEngineClient;

use crate::support;
use support::{Process, add_key, component, free_port, stratbox, unique, upload, wait_until};

const ROUNDS: usize = 50;
const E18: u128 = 1_000_000_000_000_000_000;

/// One engine process: its lease name, port and the files its output goes to.
struct EngineSlot {
    name: &'static str,
    port: u16,
    process: Option<Process>,
    starts: usize,
}

struct World {
    dir: std::path::PathBuf,
    database: String,
    anvil: String,
    pool: Address,
    executor: Address,
    account: Address,
    signer: stratbox_engine::live::SignerEndpoint,
    risk: std::path::PathBuf,
}

impl EngineSlot {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stdout_path(&self, w: &World, start: usize) -> std::path::PathBuf {
        w.dir.join(format!("{}-{start}.out", self.name))
    }

    /// Starts the engine (again) under its own lease name.
    fn start(&mut self, w: &World) -> Instant {
        let start = self.starts;
        self.starts += 1;
        let out = std::fs::File::create(self.stdout_path(w, start)).expect("engine stdout");
        let err = std::fs::File::create(w.dir.join(format!("{}-{start}.log", self.name)))
            .expect("engine log");
        let mut cmd = stratbox();
        cmd.current_dir(&w.dir)
            .env("RUST_LOG", "warn,stratbox_engine=info")
            .args(["engine", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database", &w.database])
            .args(["--chain", &w.anvil, "--pool", &format!("{:#x}", w.pool)])
            .args(["--feed-poll-interval", "50ms", "--oracle-from-pool"])
            .arg("--risk-config")
            .arg(&w.risk)
            .args(["--mode", "live", "--signer", &w.signer.url])
            .arg("--signer-ca")
            .arg(&w.signer.ca)
            .arg("--signer-cert")
            .arg(&w.signer.cert)
            .arg("--signer-key")
            .arg(&w.signer.key)
            .args(["--account", &format!("{:#x}", w.account)])
            .args(["--executor", &format!("{:#x}", w.executor)])
            .args(["--lease-holder", self.name, "--lease-ttl", "2s"])
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let began = Instant::now();
        self.process = Some(Process::spawn(self.name, &mut cmd));
        began
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// What the recovery pass of start `start` printed: tasks it moved, and its own time
    /// in ms (`live path recovery: N move(s), M task(s) still open, in T ms`).
    fn recovery(&self, w: &World, start: usize) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(self.stdout_path(w, start)).ok()?;
        let line = text
            .lines()
            .find(|l| l.starts_with("live path recovery:"))?;
        let moves = line
            .strip_prefix("live path recovery: ")?
            .split(' ')
            .next()?
            .parse()
            .ok()?;
        let ms = line.split(" in ").nth(1)?.split(' ').next()?.parse().ok()?;
        Some((moves, ms))
    }
}

fn healthy(url: &str) -> bool {
    stratbox()
        .args(["health", "--engine", url, "--timeout", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn amount(v: u128) -> Option<v1::Amount> {
    Some(v1::Amount {
        value: v.to_string(),
    })
}

/// A small swap, alternating direction so the account's holdings stay level. Only the
/// output's expectation is judged (at least 1 unit): the simulation fixes the amounts.
fn proposal(i: usize, pool: Address) -> v1::Proposal {
    let zero_for_one = i.is_multiple_of(2);
    let amount_in = E18 / 10;
    let (e0, e1) = if zero_for_one {
        (amount_in, 1)
    } else {
        (1, amount_in)
    };
    v1::Proposal {
        strategy: "momentum".into(),
        strategy_version: "1".into(),
        instance_id: "chaos-1".into(),
        account: hex_address(&[0x11; 20]),
        event_id: format!("chaos-{i}"),
        index: 0,
        last_sync_block: 0,
        action: Some(Action::Swap(v1::SwapAction {
            pool: Some(v1::Address {
                value: hex_address(&pool.into_array()),
            }),
            zero_for_one,
            amount_in: amount(amount_in),
            sqrt_price_limit_x96: None,
        })),
        expected_amount0: amount(e0),
        expected_amount1: amount(e1),
        max_slippage_bps: 100,
        reason: "chaos".into(),
    }
}

/// Submits proposal `i` to `url`; its task id, or why not.
async fn submit(url: &str, key: &str, p: v1::Proposal) -> Result<v1::ProposalResult, String> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(v1::SubmitProposalsRequest {
        trace: None,
        proposals: vec![p],
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}")
            .parse()
            .map_err(|_| "key".to_owned())?,
    );
    let mut results = TradingEngineClient::new(channel)
        .submit_proposals(request)
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
        .into_inner()
        .results;
    results.pop().ok_or_else(|| "no result".to_owned())
}

async fn world(dir: &Path, database: String) -> (World, DemoSigner, Anvil) {
    let anvil = Anvil::spawn().expect("anvil (npm @foundry-rs/anvil-linux-amd64; scripts/setup)");
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().expect("url"));
    let d = deploy::deploy(&provider, anvil.accounts()[0], &DeployConfig::default())
        .await
        .expect("deploy");
    let signer = DemoSigner::start(
        &dir.join("signer"),
        &DemoKey::DevKeystore,
        &d,
        &provider,
        Limits::default(),
        |_| {},
    )
    .await
    .expect("signer");
    signer
        .fund(&provider, &d, Funding::default())
        .await
        .expect("fund the account");
    let risk = dir.join("risk.toml");
    // Alternating swaps lose the pool's fee every time, which demotes a strategy a level at
    // a time down to shadow trading; here every level trades live, so the chaos goes on
    // (demotion is tested in stratbox-risk and engine/tests/permissions.rs).
    let mut text = "[permission]\ninitial_level = \"L5\"\n".to_owned();
    for level in ["l1", "l2", "l3", "l4", "l5"] {
        text.push_str(&format!(
            "[permission.levels.{level}]\nmode = \"live\"\nmax_trade_bps_of_equity = 3000\n"
        ));
    }
    std::fs::write(&risk, text).expect("risk config");
    let w = World {
        dir: dir.to_owned(),
        database,
        anvil: anvil.endpoint(),
        pool: d.pool,
        executor: d.executor,
        account: signer.account(),
        signer: signer.endpoint(),
        risk,
    };
    (w, signer, anvil)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_survive_fifty_sigkills_and_use_every_nonce_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = support::postgres_admin();
    let name = unique("stratbox_live_chaos");
    stratbox_engine::store::create_postgres_database(&admin, &name)
        .await
        .expect("create the test database");
    let database = stratbox_engine::store::with_database(&admin, &name);
    let (w, signer, anvil) = world(dir.path(), database.clone()).await;
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().expect("url"));
    let store = Store::connect(&database).await.expect("store");

    let ops = add_key("operator", "ops", &database);
    let host_key = add_key("host-key", "chaos", &database);
    let mut engines = [
        EngineSlot {
            name: "engine-a",
            port: free_port(),
            process: None,
            starts: 0,
        },
        EngineSlot {
            name: "engine-b",
            port: free_port(),
            process: None,
            starts: 0,
        },
    ];
    for e in engines.iter_mut() {
        e.start(&w);
    }
    for e in &engines {
        let url = e.url();
        wait_until(
            &format!("{} to answer", e.name),
            Duration::from_secs(60),
            async || healthy(&url),
        )
        .await;
    }
    upload(
        &engines[0].url(),
        &ops,
        "momentum",
        &component(dir.path(), "momentum"),
    );

    // Proposals at both engines, one at a time: each retried (same proposal, so the same
    // task on a replay) at the other engine until one answers.
    let urls = [engines[0].url(), engines[1].url()];
    let answered: Arc<Mutex<Vec<(usize, String, String)>>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let submitter = {
        let answered = answered.clone();
        let pool = w.pool;
        let node = ProviderBuilder::new().connect_http(w.anvil.parse().expect("url"));
        tokio::spawn(async move {
            let mut i = 0;
            while !*stop_rx.borrow() {
                // Judged on the block before the head: within the engines' allowed lag
                // (3), never ahead of an engine that has not seen the head yet.
                let head = node.get_block_number().await.expect("head");
                let p = v1::Proposal {
                    last_sync_block: head.saturating_sub(1),
                    ..proposal(i, pool)
                };
                let mut attempt = 0;
                loop {
                    let url = &urls[(i + attempt) % 2];
                    match submit(url, &host_key, p.clone()).await {
                        Ok(r) => {
                            answered
                                .lock()
                                .expect("lock")
                                .push((i, r.task_id, r.reason_code));
                            break;
                        }
                        Err(_) => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };

    let mut worst_pass_ms = 0;
    let mut recovered_moves = 0;
    let mut worst_healthy = Duration::ZERO;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(100 + next() % 900)).await;
        let victim = &mut engines[(next() % 2) as usize];
        victim.kill();
        let began = victim.start(&w);
        let url = victim.url();
        wait_until(
            &format!("round {round}: {} to answer after a restart", victim.name),
            Duration::from_secs(60),
            async || healthy(&url),
        )
        .await;
        worst_healthy = worst_healthy.max(began.elapsed());
        let (moves, ms) = victim
            .recovery(&w, victim.starts - 1)
            .unwrap_or_else(|| panic!("round {round}: {} printed no recovery", victim.name));
        worst_pass_ms = worst_pass_ms.max(ms);
        recovered_moves += moves;
    }
    let _ = stop_tx.send(true);
    submitter.await.expect("submitter");

    // Everything the engines took ends.
    wait_until(
        "every task in an end state",
        Duration::from_secs(120),
        async || {
            store
                .count_tasks()
                .await
                .expect("count")
                .iter()
                .all(|(state, n)| *n == 0 || state.is_terminal())
        },
    )
    .await;
    for e in engines.iter_mut() {
        if let Some(mut p) = e.process.take() {
            assert!(p.interrupt(), "{} stops on SIGINT", e.name);
        }
    }

    // Every proposal answered with one task, and every task is one of theirs. The only
    // answer without a task: an engine that had not yet read the upload from the registry
    // (another engine took it) refuses the strategy as unknown, storing nothing.
    let answered = answered.lock().expect("lock").clone();
    let untasked: Vec<_> = answered.iter().filter(|(_, t, _)| t.is_empty()).collect();
    assert!(
        untasked
            .iter()
            .all(|(_, _, reason)| reason == "unknown_strategy"),
        "{untasked:?}"
    );
    let mut ids: Vec<&str> = answered
        .iter()
        .filter(|(_, t, _)| !t.is_empty())
        .map(|(_, t, _)| t.as_str())
        .collect();
    let tasked = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), tasked, "one task per proposal");
    let counts = store.count_tasks().await.expect("count");
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total as usize, tasked, "no task lost or made twice");
    for id in &ids {
        assert!(
            store.get_task(id).await.expect("read").is_some(),
            "task {id} answered but not stored"
        );
    }
    let count = |s: TaskState| {
        counts
            .iter()
            .find(|(state, _)| *state == s)
            .map_or(0, |(_, n)| *n as usize)
    };
    let confirmed = count(TaskState::Confirmed);

    // Nonces: each once, and the chain's count is exactly the approvals made when the
    // account was funded plus one per task with a receipt.
    let account = w.account;
    let mut mined = Vec::new();
    for (acct, nonce, state) in store.assigned_nonces().await.expect("nonces") {
        assert_eq!(acct, hex_address(&account.into_array()));
        if matches!(
            state,
            TaskState::Confirmed | TaskState::Failed | TaskState::Expired
        ) {
            mined.push(nonce);
        }
    }
    let mut unique_nonces = mined.clone();
    unique_nonces.dedup();
    assert_eq!(unique_nonces.len(), mined.len(), "a nonce used twice");
    let chain_next = provider
        .get_transaction_count(account)
        .await
        .expect("nonce");
    let first = chain_next - mined.len() as u64;
    assert_eq!(
        mined,
        (first..chain_next).collect::<Vec<_>>(),
        "the tasks' nonces are exactly the chain's, with no gap"
    );
    assert!(first <= 3, "only the funding's approvals came before");

    // One swap on chain per confirmed task (no other swaps are made here).
    let swaps = provider
        .get_logs(
            &Filter::new()
                .address(w.pool)
                .event_signature(IUniswapV3Pool::Swap::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .expect("logs");
    assert_eq!(swaps.len(), confirmed, "one swap per CONFIRMED task");

    let r = stratbox_engine::reconcile::reconcile(&store, &provider, &account.into_array())
        .await
        .expect("reconcile")
        .expect("opened");
    assert!(r.is_zero(), "after the chaos: {r}");
    assert!(confirmed >= 20, "trades went through: {counts:?}");
    let refusals: Vec<(String, i64)> = sqlx::query_as(
        "SELECT reason_code, COUNT(*) FROM trade_tasks WHERE state = 'REJECTED' GROUP BY reason_code",
    )
    .fetch_all(store.pool())
    .await
    .expect("refusals");
    eprintln!(
        "live chaos: {ROUNDS} SIGKILLs, {} proposals, tasks by state {counts:?}, refusals {refusals:?}; \
         restarted engines' recovery passes moved {recovered_moves} task(s); worst recovery pass \
         {worst_pass_ms} ms, worst start to healthy {} ms",
        answered.len(),
        worst_healthy.as_millis()
    );
    // The kills landed mid-trade: restarted engines found tasks to finish.
    assert!(recovered_moves > 0, "no kill interrupted a trade");
    assert!(
        worst_healthy < Duration::from_secs(15),
        "recovery within the seed's 15 s"
    );
    signer.shutdown().await.expect("signer stops");
    store.close().await;
    drop(anvil);
    let _ = stratbox_engine::store::drop_postgres_database(&admin, &name).await;
}
