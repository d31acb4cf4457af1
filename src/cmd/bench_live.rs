//! `stratbox bench live`: proposal -> CONFIRMED on a real node, and the signer's share of it.
//!
//! One Anvil (the npm package) with the Uniswap V3 pool and stratbox's executor, the signer
//! in this process ([`stratbox::demo_signer`]: the development keystore, or with
//! `--threshold` the cached 2-of-3 demo key and its three share services), the engine in
//! live mode on a SQLite store and its live path with the default configuration (100 ms
//! poll; the L5 demotion rule off, as the bench's round trips lose fees). Trades go one at a time: a swap is submitted, followed to CONFIRMED, then the next,
//! so a trade's latency is never time spent queued behind another one.
//!
//! Two chain modes are measured in the same run, trades alternating between them: Anvil's
//! automine (a block per transaction) and 1 s blocks (`evm_setIntervalMining 1`, what
//! `anvil --block-time 1` sets). Each trade is split by the timestamps (ms) of its audit rows
//! in the engine's store, written in the same transactions as the moves themselves:
//!
//! - decide: `submit` called -> returned STAGED (timed by the caller, µs);
//! - wait: STAGED -> `nonce_assigned` (the live path's next step: its poll and its start);
//! - signer: `nonce_assigned` -> SIGNED (the task read back, the `SignTransaction` round
//!   trip over mutual TLS and the SIGNED write: the signer's share);
//! - send: SIGNED -> BROADCAST (`eth_sendRawTransaction` and its write);
//! - inclusion: BROADCAST -> CONFIRMED (the block, then the receipt found by a later step);
//! - total: `submit` called -> CONFIRMED written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy_primitives::U256;
use anyhow::Context;
use stratbox::demo_signer::{DemoKey, DemoSigner, Funding, Limits};
use stratbox::market::anvil::AnvilMarket;
use stratbox_engine::follow::{ForkFollower, follow_head};
use stratbox_engine::live::{Live, LiveConfig};
use stratbox_engine::proposal::{TradeAction, hex_address};
use stratbox_engine::{
    ChainState, Engine, EngineSettings, ExecutionMode, PermissionLevel, RiskConfig, Store,
    TaskState,
};
use stratbox_host::backtest::quantile;
use stratbox_proto::v1;
use stratbox_proto::v1::proposal::Action;

#[derive(clap::Args)]
pub struct Args {
    /// Fewer trades: a smoke run, not a measurement (3 per mode unless told).
    #[arg(long)]
    quick: bool,
    /// Trades measured with automine (default 30).
    #[arg(long)]
    trades: Option<usize>,
    /// Trades measured with 1 s blocks (default 10).
    #[arg(long)]
    block_trades: Option<usize>,
    /// Sign with the cached 2-of-3 demo threshold key (three share services in this
    /// process; the first time a keygen ceremony, minutes) instead of a development keystore.
    #[arg(long)]
    threshold: bool,
    /// Where the threshold key is cached (default: the cargo target dir, as `stratbox up`).
    #[arg(long, requires = "threshold")]
    key_cache: Option<std::path::PathBuf>,
    /// Print the rows as one JSON object too.
    #[arg(long)]
    json: bool,
}

const E17: u128 = 100_000_000_000_000_000;
/// How long one trade may take before the bench gives up on it.
const TRADE_PATIENCE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Automine,
    Blocks1s,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Automine => "automine",
            Mode::Blocks1s => "1 s blocks",
        }
    }
}

/// One trade's parts, each in ms.
#[derive(Default, Clone, Copy)]
struct Trade {
    decide: f64,
    wait: f64,
    signer: f64,
    send: f64,
    inclusion: f64,
    total: f64,
}

const PARTS: [&str; 6] = [
    "decide (submit -> STAGED)",
    "wait (STAGED -> nonce assigned)",
    "signer (nonce -> SIGNED)",
    "send (SIGNED -> BROADCAST)",
    "inclusion (BROADCAST -> CONFIRMED)",
    "total (submit -> CONFIRMED)",
];

impl Trade {
    fn parts(&self) -> [f64; 6] {
        [
            self.decide,
            self.wait,
            self.signer,
            self.send,
            self.inclusion,
            self.total,
        ]
    }
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    // The same quantile as the other benches, on durations in µs.
    let d: Vec<Duration> = v
        .iter()
        .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(quantile(&d, 0.5)), ms(quantile(&d, 0.99)))
}

struct Setup {
    market: AnvilMarket,
    signer: DemoSigner,
    engine: Engine,
    db: std::path::PathBuf,
    stop_live: tokio::sync::watch::Sender<bool>,
    live: tokio::task::JoinHandle<()>,
    stop_follow: tokio::sync::watch::Sender<bool>,
    following: tokio::task::JoinHandle<()>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let n_auto = args.trades.unwrap_or(if args.quick { 3 } else { 30 });
    let n_blocks = args.block_trades.unwrap_or(if args.quick { 3 } else { 10 });
    anyhow::ensure!(
        n_auto > 0 && n_blocks > 0,
        "--trades and --block-trades must be at least 1"
    );
    let dir = std::env::temp_dir().join(format!(
        "stratbox-bench-live-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let key = if args.threshold {
        DemoKey::Threshold {
            cache: args
                .key_cache
                .clone()
                .unwrap_or_else(stratbox::demo_signer::default_key_cache),
        }
    } else {
        DemoKey::DevKeystore
    };
    let result = measure(&dir, &key, n_auto, n_blocks, &args).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn start(dir: &std::path::Path, key: &DemoKey) -> anyhow::Result<Setup> {
    eprintln!("bench live: starting anvil and deploying the Uniswap V3 pool...");
    let market = AnvilMarket::start(0).await?;
    let signer = DemoSigner::start(
        &dir.join("signer"),
        key,
        market.deployment(),
        market.provider(),
        Limits::default(),
        |line| eprintln!("bench live: {line}"),
    )
    .await?;
    signer
        .fund(market.provider(), market.deployment(), Funding::default())
        .await
        .context("funding the signer's account")?;
    let db = dir.join("engine.db");
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .context("the engine's store")?;
    let fork = ChainState::fork(
        &market.endpoint(),
        &[market.pool().into_array()],
        None,
        0,
        None,
    )
    .await
    .context("forking anvil")?;
    let executor = market.deployment().executor.into_array();
    let fork = tokio::task::spawn_blocking(move || fork.use_executor(executor))
        .await
        .context("executor task")?
        .context("using the deployed executor")?;
    // The bench's swaps go back and forth and each pays the pool's fee and gas: as a
    // strategy it loses, and the default rule would demote it out of L5 (to shadow trades)
    // after 10. Latency is what is measured here, so the strategy stays at L5.
    let mut risk = RiskConfig::default();
    risk.permission.demotion.l5 = Default::default();
    let engine = Engine::start(
        store,
        fork,
        EngineSettings {
            mode: ExecutionMode::Live,
            risk,
            live_account: Some(signer.account().into_array()),
            ..EngineSettings::default()
        },
    )
    .await
    .context("starting the engine")?;
    engine.set_permission_level("bench", PermissionLevel::L5);
    let (stop_follow, follow_rx) = tokio::sync::watch::channel(false);
    let follower = Arc::new(ForkFollower::new(
        engine.clone(),
        &market.endpoint(),
        &[market.pool().into_array()],
        true,
    ));
    let following = tokio::spawn(follow_head(
        market.endpoint(),
        follower,
        Duration::from_millis(50),
        follow_rx,
    ));
    stratbox_engine::follow::quote_pools(&engine);
    let config = LiveConfig::new(
        &market.endpoint(),
        signer.account().into_array(),
        signer.endpoint(),
    );
    let live = Live::connect(engine.clone(), config)
        .await
        .context("starting the live path")?;
    let (stop_live, live_rx) = tokio::sync::watch::channel(false);
    let live = tokio::spawn(live.run(live_rx));
    Ok(Setup {
        market,
        signer,
        engine,
        db,
        stop_live,
        live,
        stop_follow,
        following,
    })
}

async fn measure(
    dir: &std::path::Path,
    key: &DemoKey,
    n_auto: usize,
    n_blocks: usize,
    args: &Args,
) -> anyhow::Result<()> {
    let s = start(dir, key).await?;
    let result = trades(&s, n_auto, n_blocks).await;
    // Stop in order: the live path, the follower, the signer, Anvil (dropped last).
    let _ = s.stop_live.send(true);
    let _ = s.live.await;
    let _ = s.stop_follow.send(true);
    let _ = s.following.await;
    let key_source = s.signer.key_source();
    if let Err(e) = s.signer.shutdown().await {
        eprintln!("bench live: stopping the signer: {e:#}");
    }
    drop(s.market);
    let (auto, blocks) = result?;
    print(key_source, args, &auto, &blocks);
    Ok(())
}

async fn set_mode(market: &AnvilMarket, mode: Mode) -> anyhow::Result<()> {
    let p = market.provider();
    match mode {
        Mode::Automine => {
            let _: serde_json::Value = p
                .raw_request("evm_setAutomine".into(), (true,))
                .await
                .context("evm_setAutomine")?;
        }
        Mode::Blocks1s => {
            let _: serde_json::Value = p
                .raw_request("evm_setIntervalMining".into(), (1u64,))
                .await
                .context("evm_setIntervalMining")?;
        }
    }
    Ok(())
}

async fn trades(
    s: &Setup,
    n_auto: usize,
    n_blocks: usize,
) -> anyhow::Result<(Vec<Trade>, Vec<Trade>)> {
    let audit = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}?mode=ro", s.db.display()))
        .await
        .context("reading the engine's audit log")?;
    // One warm-up trade (connections, the wallet opened and reconciled), not counted.
    set_mode(&s.market, Mode::Automine).await?;
    eprintln!("bench live: warm-up trade...");
    one_trade(s, &audit, 0).await.context("the warm-up trade")?;
    // The modes alternate trade by trade, so both see the same machine.
    let mut schedule = Vec::new();
    for i in 0..n_auto.max(n_blocks) {
        if i < n_auto {
            schedule.push(Mode::Automine);
        }
        if i < n_blocks {
            schedule.push(Mode::Blocks1s);
        }
    }
    let (mut auto, mut blocks) = (Vec::new(), Vec::new());
    let mut current = Mode::Automine;
    let mut checked_interval = false;
    for (i, mode) in schedule.into_iter().enumerate() {
        if mode != current {
            set_mode(&s.market, mode).await?;
            current = mode;
            if mode == Mode::Blocks1s && !checked_interval {
                // Blocks come without a transaction: interval mining is on.
                let from = s.market.block_number().await?;
                let started = Instant::now();
                while s.market.block_number().await? == from {
                    anyhow::ensure!(
                        started.elapsed() < Duration::from_secs(5),
                        "anvil mined no block in 5 s after evm_setIntervalMining 1"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                checked_interval = true;
            }
        }
        let t = one_trade(s, &audit, i + 1)
            .await
            .with_context(|| format!("trade {} ({})", i + 1, mode.name()))?;
        match mode {
            Mode::Automine => auto.push(t),
            Mode::Blocks1s => blocks.push(t),
        }
    }
    set_mode(&s.market, Mode::Automine).await?;
    audit.close().await;
    Ok((auto, blocks))
}

/// A swap of 0.1 token, direction alternating, its expected amounts quoted now; submitted
/// on the node's head, followed to CONFIRMED.
async fn one_trade(s: &Setup, audit: &sqlx::SqlitePool, i: usize) -> anyhow::Result<Trade> {
    let engine = &s.engine;
    let head = s.market.block_number().await?;
    let waited = Instant::now();
    while engine.watermark() < head {
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(30),
            "the engine's fork did not reach block {head}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let account = s.signer.account();
    let chain = engine.chain();
    let pool = *chain.pools().first().context("the fork has no pool")?;
    let zero_for_one = i.is_multiple_of(2);
    let amount_in = U256::from(E17);
    let action = TradeAction::Swap {
        pool,
        zero_for_one,
        amount_in,
        sqrt_price_limit_x96: None,
    };
    let q = chain
        .simulate(account.into_array(), &action, false)
        .context("quoting the swap")?;
    anyhow::ensure!(q.success, "the quote reverted: {}", q.revert_reason);
    let amount = |v: U256| {
        Some(v1::Amount {
            value: v.to_string(),
        })
    };
    let proposal = v1::Proposal {
        strategy: "bench".into(),
        strategy_version: "1.0.0".into(),
        instance_id: "bench-live".into(),
        account: hex_address(&account.into_array()),
        event_id: format!("bench-live-{i}"),
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
        reason: "bench live".into(),
    };

    let t0_ms = stratbox_engine::store::now_ms();
    let t0 = Instant::now();
    let r = engine
        .submit(&stratbox_engine::trace::fresh(), vec![proposal])
        .await
        .context("submit")?;
    let decide = t0.elapsed();
    let r = r.first().context("no answer")?;
    anyhow::ensure!(
        r.state == v1::TaskState::Staged as i32,
        "the proposal was not STAGED: {r:?}"
    );
    let task_id = r.task_id.clone();
    let store = engine.store();
    loop {
        let row = store
            .get_task(&task_id)
            .await?
            .context("the task vanished")?;
        if row.state == TaskState::Confirmed {
            break;
        }
        anyhow::ensure!(
            !row.state.is_terminal(),
            "task {task_id} ended {}: {} {}",
            row.state,
            row.reason_code,
            row.detail
        );
        anyhow::ensure!(
            t0.elapsed() < TRADE_PATIENCE,
            "task {task_id} not CONFIRMED within {TRADE_PATIENCE:?} (still {})",
            row.state
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT at_ms, action, to_state FROM audit_log WHERE subject = ?1 ORDER BY audit_id",
    )
    .bind(&task_id)
    .fetch_all(audit)
    .await
    .context("the task's audit rows")?;
    let at = |pred: &dyn Fn(&str, &str) -> bool, what: &str| -> anyhow::Result<i64> {
        rows.iter()
            .find(|(_, action, to)| pred(action, to))
            .map(|(at, _, _)| *at)
            .with_context(|| format!("task {task_id} has no audit row for {what}"))
    };
    let to = |state: TaskState| move |_: &str, to: &str| to == state.as_str();
    let staged = at(&to(TaskState::Staged), "STAGED")?;
    let nonce = at(&|action, _| action == "nonce_assigned", "nonce_assigned")?;
    let signed = at(&to(TaskState::Signed), "SIGNED")?;
    let broadcast = at(&to(TaskState::Broadcast), "BROADCAST")?;
    let confirmed = at(&to(TaskState::Confirmed), "CONFIRMED")?;
    let ms = |a: i64, b: i64| (b - a) as f64;
    Ok(Trade {
        decide: decide.as_secs_f64() * 1000.0,
        wait: ms(staged, nonce),
        signer: ms(nonce, signed),
        send: ms(signed, broadcast),
        inclusion: ms(broadcast, confirmed),
        total: ms(t0_ms, confirmed),
    })
}

fn print(key_source: &str, args: &Args, auto: &[Trade], blocks: &[Trade]) {
    let key = if args.threshold {
        format!("{key_source} (2-of-3 threshold key, three share services in this process)")
    } else {
        format!("{key_source} (development keystore, single key)")
    };
    println!(
        "proposal -> CONFIRMED on Anvil, one trade at a time, signer key: {key}; live path \
         poll 100 ms; parts from the engine's audit timestamps (ms resolution)"
    );
    println!();
    println!("| mode | part | median | p99 | n |");
    println!("|---|---|---|---|---|");
    let mut json = serde_json::Map::new();
    let mut shares = Vec::new();
    for (mode, trades) in [(Mode::Automine, auto), (Mode::Blocks1s, blocks)] {
        let mut mode_json = serde_json::Map::new();
        for (k, part) in PARTS.iter().enumerate() {
            let (median, p99) = stats(trades.iter().map(|t| t.parts()[k]).collect());
            println!(
                "| {} | {part} | {median:.1} ms | {p99:.1} ms | {} |",
                mode.name(),
                trades.len()
            );
            mode_json.insert(
                part.to_string(),
                serde_json::json!({"median_ms": median, "p99_ms": p99, "n": trades.len()}),
            );
        }
        let (share_median, share_p99) = stats(
            trades
                .iter()
                .map(|t| 100.0 * t.signer / t.total.max(1.0))
                .collect(),
        );
        mode_json.insert(
            "signer share %".into(),
            serde_json::json!({"median": share_median, "p99": share_p99}),
        );
        shares.push((mode, share_median, share_p99));
        json.insert(mode.name().into(), serde_json::Value::Object(mode_json));
    }
    println!();
    for (mode, median, p99) in shares {
        println!(
            "signer share of the total, {}: median {median:.1}%, p99 {p99:.1}%",
            mode.name()
        );
    }
    let median_total = |t: &[Trade]| stats(t.iter().map(|t| t.total).collect()).0;
    println!(
        "1 s blocks / automine, total medians side by side: {:.1}x",
        median_total(blocks) / median_total(auto).max(0.001)
    );
    if args.json {
        println!("{}", serde_json::Value::Object(json));
    }
}
