//! Chaos on the live path, with real processes: two `stratbox engine` processes in live mode
//! on one PostgreSQL database trade one account on Anvil (npm package, real Uniswap V3 pool
//! and executor) through the real signer, itself four processes: the signer service
//! (`stratbox signer --config`, mutual TLS, its own SQLite store) and three `stratbox signer
//! share` processes holding the 2-of-3 threshold key (the target dir's cached demo key, see
//! `src/demo_signer.rs`). Proposals keep arriving at both engines over gRPC; 50 times one
//! engine is SIGKILLed at a random moment and started again under its own lease name. Every
//! fifth round a signer process is SIGKILLed too, at a random moment while the engines trade:
//! in every fourth of those rounds one share process (a random one; it is started again once
//! a trade has been signed by the other pair without it, and the chaos waits until it answers
//! again), in the others the signer service itself (started again after a moment; the
//! engines' live paths wait for it and go on: it has signed again before the next signer
//! process is killed).
//!
//! Afterwards: every proposal answered with exactly one task, every task in an end state,
//! every nonce used once (in the database and on chain, with no gap), one swap on chain per
//! CONFIRMED task and none for any other task, the account's wallet reconciled to zero
//! against the chain, nothing signed twice at one nonce for different fields (the signer's
//! own record) and the signer's audit chain intact (`stratbox signer audit verify`). The
//! worst recovery (the recovery pass a restarted engine runs before its gRPC port opens, and
//! the time from its start until it answers health checks) and the kills by kind are printed.
//!
//! What is not done here:
//! - No host is killed: proposals come from this test's gRPC client, not from a `stratbox
//!   host` process running a strategy.
//! - The signer is never down while an engine starts: an engine's recovery pass asks the
//!   signer for a trade that was waiting for it and stops the engine's start when that call
//!   fails, so the signer's kills land while both engines run (the running live path waits
//!   and goes on).
//! - Proposals come one at a time, at most one every 2.5 s: the threshold key signs only as
//!   fast as its share processes make presignatures (about one every two seconds on two
//!   busy cores), and faster proposals would only queue behind it, and make every restarted
//!   engine's recovery wait for a presignature.
//! - No engine is killed while a share process is starting again: a share that accepts
//!   connections before it serves holds up the coordinator's presigning with it (and with it
//!   a recovering engine) until it answers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy_primitives::Address;
use alloy_sol_types::SolEvent;
use stratbox::demo_signer::{self, Funding, Limits, ProcessPorts, ProcessSigner};
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
/// Every this many rounds a signer process is killed as well.
const SIGNER_EVERY: usize = 5;
/// Of those rounds, every this many kill a share process, the others the signer service: a
/// share started again spends seconds of CPU on its Paillier tables before it answers, and
/// the chaos waits for it (see the module docs).
const SHARE_EVERY: usize = 4;
/// Proposals wait while this many tasks are open, and come at most one per `PACE` (see the
/// module docs).
const MAX_OPEN: i64 = 1;
const PACE: Duration = Duration::from_millis(2500);
const E18: u128 = 1_000_000_000_000_000_000;
const SHARE_NAMES: [&str; 3] = ["share-0", "share-1", "share-2"];

/// One engine process: its lease name, port and the files its output goes to.
struct EngineSlot {
    name: &'static str,
    port: u16,
    process: Option<Process>,
    starts: usize,
}

struct World {
    dir: PathBuf,
    database: String,
    anvil: String,
    pool: Address,
    executor: Address,
    account: Address,
    signer: stratbox_engine::live::SignerEndpoint,
    risk: PathBuf,
}

/// The last lines of a log, for a failure's message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Whether `process` has exited, and how.
fn exited(process: &mut Option<Process>) -> Option<std::process::ExitStatus> {
    process
        .as_mut()
        .and_then(|p| p.child.as_mut())
        .and_then(|c| c.try_wait().ok().flatten())
}

/// Zone C as four processes: the signer service and its three share processes, each
/// started again under the same ports and files after a kill.
struct SignerProcesses {
    files: ProcessSigner,
    logs: PathBuf,
    shares: [Option<Process>; 3],
    service: Option<Process>,
    starts: usize,
}

impl SignerProcesses {
    /// Files for the next start of `name`: stdout and stderr.
    fn outputs(&mut self, name: &str) -> (PathBuf, PathBuf) {
        self.starts += 1;
        (
            self.logs.join(format!("{name}-{}.out", self.starts)),
            self.logs.join(format!("{name}-{}.log", self.starts)),
        )
    }

    fn start_share(&mut self, index: usize) -> PathBuf {
        let (out, log) = self.outputs(SHARE_NAMES[index]);
        let mut cmd = stratbox();
        cmd.args(self.files.share_args(index))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(
                std::fs::File::create(&out).expect("share stdout"),
            ))
            .stderr(Stdio::from(std::fs::File::create(&log).expect("share log")));
        self.shares[index] = Some(Process::spawn(SHARE_NAMES[index], &mut cmd));
        log
    }

    fn kill_share(&mut self, index: usize) {
        if let Some(mut p) = self.shares[index].take() {
            p.kill();
        }
    }

    /// Starts the service and waits until it listens (it has connected to the shares and
    /// opened its store by then).
    async fn start_service(&mut self, what: &str) {
        let (out, log) = self.outputs("signer");
        let mut cmd = stratbox();
        cmd.arg("signer")
            .arg("--config")
            .arg(&self.files.config)
            .env(
                "RUST_LOG",
                "warn,stratbox_signer=info,stratbox_threshold=info",
            )
            .stdout(Stdio::from(
                std::fs::File::create(&out).expect("signer stdout"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(&log).expect("signer log"),
            ));
        self.service = Some(Process::spawn("signer", &mut cmd));
        wait_until(what, Duration::from_secs(120), async || {
            if let Some(status) = exited(&mut self.service) {
                panic!("{what}: the signer exited ({status}): {}", tail(&log));
            }
            std::fs::read_to_string(&out).is_ok_and(|t| t.contains("signer listening on"))
        })
        .await;
    }

    fn kill_service(&mut self) {
        if let Some(mut p) = self.service.take() {
            p.kill();
        }
    }

    /// Waits until all three shares answer holding the key, as the service's coordinator
    /// would see them.
    async fn wait_shares(&mut self, what: &str) {
        let client = self.files.client.clone();
        wait_until(what, Duration::from_secs(180), async || {
            for (index, share) in self.shares.iter_mut().enumerate() {
                if let Some(status) = exited(share) {
                    panic!("{what}: {} exited ({status})", SHARE_NAMES[index]);
                }
            }
            stratbox_threshold::ThresholdClient::connect(&client)
                .await
                .is_ok_and(|c| c.shares_down().is_empty())
        })
        .await;
    }
}

/// How many transactions the signer has signed (its own record, `signed_nonces`).
async fn signatures(store: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM signed_nonces WHERE raw_tx <> ''")
        .fetch_one(store)
        .await
        .expect("reading the signer's store")
}

/// Waits until the signer started again in round `restarted.0` has signed more than the
/// `restarted.1` transactions signed before it came back.
async fn resumed(restarted: &mut Option<(usize, i64)>, store: &sqlx::SqlitePool) {
    if let Some((round, before)) = restarted.take() {
        wait_until(
            &format!("a trade signed after the signer came back in round {round}"),
            Duration::from_secs(120),
            async || signatures(store).await > before,
        )
        .await;
    }
}

/// What was killed, for the report.
#[derive(Default)]
struct Kills {
    engines: usize,
    shares: [usize; 3],
    services: usize,
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

    /// Waits until the engine answers health checks; fails at once if it exited.
    async fn wait_healthy(&mut self, w: &World, what: &str) {
        let url = self.url();
        let log = w.dir.join(format!("{}-{}.log", self.name, self.starts - 1));
        wait_until(what, Duration::from_secs(60), async || {
            if let Some(status) = exited(&mut self.process) {
                panic!("{what}: the engine exited ({status}): {}", tail(&log));
            }
            healthy(&url)
        })
        .await;
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

/// Anvil with the deployment, the signer's files for processes (the account funded), the
/// risk config.
async fn world(dir: &Path, database: String) -> (World, ProcessSigner, Anvil) {
    let anvil = Anvil::spawn().expect("anvil (npm @foundry-rs/anvil-linux-amd64; scripts/setup)");
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().expect("url"));
    let d = deploy::deploy(&provider, anvil.accounts()[0], &DeployConfig::default())
        .await
        .expect("deploy");
    let ports = ProcessPorts {
        signer: free_port(),
        admin: free_port(),
        shares: [free_port(), free_port(), free_port()],
    };
    // The target dir's cached threshold key (the first time: one ceremony, minutes).
    let signer = demo_signer::write_process_files(
        &dir.join("signer"),
        &stratbox_testenv::target_dir(),
        &d,
        &provider,
        Limits::default(),
        ports,
    )
    .await
    .expect("the signer's files");
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
        account: signer.account,
        signer: signer.endpoint(),
        risk,
    };
    (w, signer, anvil)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_and_signer_processes_survive_sigkills_and_use_every_nonce_once() {
    let test_began = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = support::postgres_admin();
    let name = unique("stratbox_live_chaos");
    stratbox_engine::store::create_postgres_database(&admin, &name)
        .await
        .expect("create the test database");
    let database = stratbox_engine::store::with_database(&admin, &name);
    let (w, files, anvil) = world(dir.path(), database.clone()).await;
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().expect("url"));
    let store = Store::connect(&database).await.expect("store");

    // Zone C: three share processes (they open their shares while the engines start),
    // then the service (it needs two of them answering).
    let mut signer = SignerProcesses {
        files,
        logs: dir.path().to_owned(),
        shares: [None, None, None],
        service: None,
        starts: 0,
    };
    for index in 0..3 {
        signer.start_share(index);
    }

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
    for e in engines.iter_mut() {
        let what = format!("{} to answer", e.name);
        e.wait_healthy(&w, &what).await;
    }
    upload(
        &engines[0].url(),
        &ops,
        "momentum",
        &component(dir.path(), "momentum"),
    );
    signer
        .wait_shares("the three share processes to answer with the key")
        .await;
    signer.start_service("the signer service to listen").await;
    let signer_store = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&signer.files.database)
        .await
        .expect("the signer's store");

    // Proposals at both engines, one at a time, one per PACE while fewer than MAX_OPEN
    // tasks are open: each retried (same proposal, so the same task on a replay) at the other engine until
    // one answers.
    let urls = [engines[0].url(), engines[1].url()];
    let answered: Arc<Mutex<Vec<(usize, String, String)>>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let submitter = {
        let answered = answered.clone();
        let pool = w.pool;
        let node = ProviderBuilder::new().connect_http(w.anvil.parse().expect("url"));
        let store = store.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !*stop_rx.borrow() {
                let open: i64 = store
                    .count_tasks()
                    .await
                    .expect("count")
                    .iter()
                    .filter(|(state, _)| !state.is_terminal())
                    .map(|(_, n)| n)
                    .sum();
                if open >= MAX_OPEN {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
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
                tokio::time::sleep(PACE).await;
            }
        })
    };

    let setup_took = test_began.elapsed();
    let chaos_began = Instant::now();
    let mut in_signer_rounds = Duration::ZERO;
    let mut restarted: Option<(usize, i64)> = None;
    let mut worst_pass_ms = 0;
    let mut recovered_moves = 0;
    let mut worst_healthy = Duration::ZERO;
    let mut kills = Kills::default();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(100 + next() % 600)).await;
        let victim = &mut engines[(next() % 2) as usize];
        victim.kill();
        kills.engines += 1;
        let began = victim.start(&w);
        let what = format!("round {round}: {} to answer after a restart", victim.name);
        victim.wait_healthy(&w, &what).await;
        worst_healthy = worst_healthy.max(began.elapsed());
        let (moves, ms) = victim
            .recovery(&w, victim.starts - 1)
            .unwrap_or_else(|| panic!("round {round}: {} printed no recovery", victim.name));
        worst_pass_ms = worst_pass_ms.max(ms);
        recovered_moves += moves;

        if round % SIGNER_EVERY != SIGNER_EVERY - 1 {
            continue;
        }
        // A signer process too, at a random moment while both engines trade; the signer
        // started again the last time has signed since (the live paths went on).
        let special = Instant::now();
        resumed(&mut restarted, &signer_store).await;
        tokio::time::sleep(Duration::from_millis(next() % 800)).await;
        if (round / SIGNER_EVERY).is_multiple_of(SHARE_EVERY) {
            // 2-of-3: with one share down the coordinator signs with the other pair.
            let index = (next() % 3) as usize;
            let before = signatures(&signer_store).await;
            signer.kill_share(index);
            kills.shares[index] += 1;
            wait_until(
                &format!(
                    "round {round}: a trade signed while {} is down",
                    SHARE_NAMES[index]
                ),
                Duration::from_secs(120),
                async || signatures(&signer_store).await > before,
            )
            .await;
            // Started again, it answers once it has opened its share and made its tables;
            // no engine is killed meanwhile (a coordinator that picks the pair of a share
            // still starting waits for it, and so would a recovering engine).
            signer.start_share(index);
            signer
                .wait_shares(&format!("round {round}: {} back", SHARE_NAMES[index]))
                .await;
        } else {
            // The engines' calls fail while it is down; their live paths repeat the step.
            signer.kill_service();
            kills.services += 1;
            tokio::time::sleep(Duration::from_millis(200 + next() % 1300)).await;
            let before = signatures(&signer_store).await;
            signer
                .start_service(&format!("round {round}: the signer to listen again"))
                .await;
            restarted = Some((round, before));
        }
        in_signer_rounds += special.elapsed();
    }
    resumed(&mut restarted, &signer_store).await;
    let chaos_took = chaos_began.elapsed();
    let _ = stop_tx.send(true);
    submitter.await.expect("submitter");
    let drain_began = Instant::now();

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
    let drain_took = drain_began.elapsed();
    for e in engines.iter_mut() {
        if let Some(mut p) = e.process.take() {
            assert!(p.interrupt(), "{} stops on SIGINT", e.name);
        }
    }
    if let Some(mut p) = signer.service.take() {
        assert!(p.interrupt(), "the signer stops on SIGINT");
    }
    for share in signer.shares.iter_mut() {
        if let Some(mut p) = share.take() {
            p.interrupt();
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

    // The signer's side: at no nonce two different transactions signed (a fee bump of the
    // same call and a cancel are what may share one), and its audit chain intact.
    let conflicts: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT nonce, COUNT(DISTINCT to_address || '|' || value || '|' || input_hash || '|' || gas_limit) \
         FROM signed_nonces WHERE kind <> 'cancel' GROUP BY chain_id, account, nonce \
         HAVING COUNT(DISTINCT to_address || '|' || value || '|' || input_hash || '|' || gas_limit) > 1",
    )
    .fetch_all(&signer_store)
    .await
    .expect("the signer's nonces");
    assert!(
        conflicts.is_empty(),
        "nonces signed for different transactions: {conflicts:?}"
    );
    let signed = signatures(&signer_store).await;
    signer_store.close().await;
    let verify = stratbox()
        .args([
            "signer",
            "audit",
            "verify",
            "--database",
            &signer.files.database,
        ])
        .output()
        .expect("stratbox runs");
    let verified = String::from_utf8_lossy(&verify.stdout).trim().to_owned();
    assert!(
        verify.status.success(),
        "the signer's audit chain: {verified} {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    eprintln!(
        "live chaos: {ROUNDS} rounds; SIGKILLed: {} engines, {} share processes (by index {:?}), \
         the signer service {} times; {} proposals, tasks by state {counts:?}, refusals {refusals:?}; \
         {signed} transactions signed by the 2-of-3 key; signer {verified}; restarted engines' \
         recovery passes moved {recovered_moves} task(s); worst recovery pass {worst_pass_ms} ms, \
         worst start to healthy {} ms; took {:.0} s to set up, {:.0} s of rounds ({:.0} s of them \
         with a signer process killed), {:.0} s for the last tasks to end",
        kills.engines,
        kills.shares.iter().sum::<usize>(),
        kills.shares,
        kills.services,
        answered.len(),
        worst_healthy.as_millis(),
        setup_took.as_secs_f64(),
        chaos_took.as_secs_f64(),
        in_signer_rounds.as_secs_f64(),
        drain_took.as_secs_f64(),
    );
    // The kills landed mid-trade: restarted engines found tasks to finish.
    assert!(recovered_moves > 0, "no kill interrupted a trade");
    assert!(
        worst_healthy < Duration::from_secs(15),
        "recovery within the seed's 15 s"
    );
    store.close().await;
    drop(anvil);
    let _ = stratbox_engine::store::drop_postgres_database(&admin, &name).await;
}
