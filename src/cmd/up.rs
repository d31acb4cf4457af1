//! `stratbox up`: the whole system on embedded defaults, in one process.
//!
//! It starts the engine (SQLite, the in-process revm chain with the real Uniswap V3 pool)
//! serving gRPC on a loopback port, an in-process bus, a market that makes a random walk of
//! swaps on that pool, and a host running the example strategies, which reaches the engine
//! over gRPC exactly as a separate `stratbox host` process would. It prints a live table
//! and a summary when it stops (Ctrl-C, SIGTERM or `--duration`).
//!
//! Amounts are printed in the token's own terms (`-0.000139 SB1`): each token's `symbol()`
//! and `decimals()` are read from the chain it runs on, and raw units are scaled with
//! integer arithmetic only. `--json` keeps the raw units.
//!
//! `--chain anvil` runs the same against a real node: an Anvil from the npm package with
//! the real pool deployed, the walk sending real swap transactions, the chain adapter
//! following the node into the bus, and the engine's fork moved to each block it publishes.
//! The oracle guard is fed by real sources there: the pool's TWAP, a Chainlink-style feed
//! the walk's keeper updates after every swap, and a reference price the demo's feeder
//! pushes (see [`stratbox::market::anvil`]), each compared with the pool's spot.
//!
//! `--live` adds Zone C and takes trades to the chain: the signer with its share services in
//! this process ([`stratbox::demo_signer`]), its account funded on Anvil, the engine in live
//! mode with the example strategies at L5, and the live path signing, sending and confirming
//! their trades. At the end the wallet the ledger books is reconciled against the chain.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use stratbox_bus::{Bus, CHAIN_EVENTS_STREAM, MemoryBus};
use stratbox_engine::ledger::{self, Signed};
use stratbox_engine::live::{Live, LiveConfig};
use stratbox_engine::price_sources::{EtherFeed, SourcesConfig};
use stratbox_engine::proposal::hex_address;
use stratbox_engine::reconcile::Reconciliation;
use stratbox_engine::sentinel::{Sentinel, SentinelConfig};
use stratbox_engine::{
    ChainState, Engine, EngineSettings, ExecutionMode, PermissionLevel, Store, TaskState, server,
};
use stratbox_evm::abi::IERC20;
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_host_service::{
    BusSeat, EngineLink, Fleet, HostPlan, LocalStrategy, RetryPolicy, ServiceStats, assemble,
};
use stratbox_proto::{U256, v1};
use tokio::sync::watch;

use stratbox::demo_signer::{DemoKey, DemoSigner, Funding, Limits};
use stratbox::market::Walk;
use stratbox::market::anvil::AnvilMarket;
use stratbox_engine::follow::ForkFollower;
use stratbox_feed::{Feed, FeedConfig, MemoryCheckpoint, StartBlock};

#[derive(clap::Args)]
pub struct Args {
    /// Stop this long after the market starts moving (e.g. `30`, `30s`, `2m`; setting up is
    /// not counted); without it, run until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Chain to run against: the embedded revm chain or `anvil` (default: embedded; anvil
    /// with `--live`).
    #[arg(long)]
    pub chain: Option<String>,
    /// Take trades to the chain (implies `--chain anvil`): the signer (Zone C) with the
    /// 2-of-3 threshold key's three share services in this process, its account funded on
    /// Anvil, the engine in live mode with the example strategies at L5. Trades are signed,
    /// sent and CONFIRMED (or FAILED) from their receipts; at the end the account's wallet in
    /// the ledger is reconciled against the chain, and a difference makes the exit non-zero.
    #[arg(long)]
    pub live: bool,
    /// With `--live`: sign with a fresh development keystore (the whole key in this process)
    /// instead of the threshold key.
    #[arg(long, requires = "live")]
    pub dev_keystore: bool,
    /// With `--live`: where the demo's threshold key is made once (a real keygen ceremony,
    /// minutes on a small machine) and kept. Default: `CARGO_TARGET_DIR`, else `./target` if
    /// it exists (shared with the tests and `stratbox bench signer`), else `.stratbox/`. Its
    /// shares are sealed with a public passphrase: a demo key, never for real funds.
    #[arg(long, requires = "live", conflicts_with = "dev_keystore")]
    pub key_cache: Option<PathBuf>,
    /// Where the engine keeps its state; a fresh SQLite file per run by default.
    #[arg(long)]
    pub database: Option<String>,
    /// `clamm-maker` instances the host runs.
    #[arg(long, default_value_t = 10)]
    pub clamm_instances: usize,
    /// `momentum` instances the host runs.
    #[arg(long, default_value_t = 2)]
    pub momentum_instances: usize,
    /// Instances of `clamm-maker-py`, the maker written in Python (componentize-py).
    #[arg(long, default_value_t = 2)]
    pub python_instances: usize,
    /// Instances of `clamm-maker-js`, the maker written in JavaScript (ComponentizeJS).
    #[arg(long, default_value_t = 2)]
    pub js_instances: usize,
    /// Time between market blocks.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub block_interval: Duration,
    /// Seed of the market's random walk.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Fleet worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// No live table: print the summary as one JSON object, amounts in raw units (base-10
    /// strings) beside each token's symbol and decimals.
    #[arg(long)]
    pub json: bool,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30, 30s, 500ms, 2m or 1h"))?;
    let secs = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long"))
    };
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3_600),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    }
}

/// Where the market's blocks come from.
enum Source {
    /// The in-process revm chain; the walk publishes its events itself.
    Embedded(Box<Walk>),
    /// An Anvil node: the walk sends real transactions, the feed follows the node.
    Anvil {
        market: Box<AnvilMarket>,
        feed: Option<tokio::task::JoinHandle<Result<(), stratbox_feed::FeedError>>>,
        follower: Arc<ForkFollower>,
    },
}

impl Source {
    async fn step(&mut self, engine: &Engine, bus: &Arc<dyn Bus>) -> anyhow::Result<()> {
        match self {
            Source::Embedded(walk) => walk.step(engine, bus).await.map(|_| ()),
            Source::Anvil { market, .. } => {
                market.step().await?;
                push_reference(engine, market);
                Ok(())
            }
        }
    }

    /// Waits for the feed to stop (after the stop signal went out).
    async fn stop_feed(&mut self) -> anyhow::Result<()> {
        if let Source::Anvil { feed, .. } = self
            && let Some(task) = feed.take()
        {
            task.await.context("feed task")?.context("feed")?;
        }
        Ok(())
    }

    fn counts(&self) -> (u64, u64) {
        match self {
            Source::Embedded(walk) => (walk.blocks, walk.swaps),
            Source::Anvil { market, .. } => (market.blocks, market.swaps),
        }
    }

    fn market(&self) -> Option<&AnvilMarket> {
        match self {
            Source::Anvil { market, .. } => Some(market),
            Source::Embedded(_) => None,
        }
    }
}

/// The oracle guard's sources on Anvil: the pool's TWAP over this window, the keeper's
/// Chainlink-style feed (fresh for this long) and the feeder's reference.
const TWAP_WINDOW: Duration = Duration::from_secs(60);
const FEED_MAX_AGE: Duration = Duration::from_secs(120);

/// The demo's off-chain feeder, in process: pushes the market's outside price as the
/// guard's `reference` source (a deployment's feeder pushes over gRPC with a feeder key).
fn push_reference(engine: &Engine, market: &AnvilMarket) {
    if let Some(price) = market.fair_price_e18()
        && let Err(e) = engine.push_reference(&market.pool().into_array(), price)
    {
        tracing::warn!(error = %e, "the demo's feeder could not push its reference price");
    }
}

/// Who the kill switch names when the end of a `--live` run engages it.
const END_OF_RUN: &str = "stratbox up";
/// How long the end of a `--live` run waits for signed transactions' receipts.
const DRAIN_PATIENCE: Duration = Duration::from_secs(60);

/// The live path of a `--live` run and the signer it signs with.
struct LiveRun {
    signer: DemoSigner,
    account: [u8; 20],
    /// The live path's name on the account's nonce lease.
    holder: String,
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    /// The same account's live path, never run: `Live::run` consumes the running one, and
    /// what is left at the end is followed and reconciled after that one has stopped.
    checker: Live,
}

impl LiveRun {
    /// Connects the live path to the signer, resolves what an earlier run on the same
    /// database left open, and starts it.
    async fn start(
        engine: &Engine,
        market: &AnvilMarket,
        signer: DemoSigner,
        json: bool,
    ) -> anyhow::Result<LiveRun> {
        let account = signer.account().into_array();
        let config = LiveConfig::new(&market.endpoint(), account, signer.endpoint());
        let holder = config.holder.clone();
        let live = Live::connect(engine.clone(), config.clone())
            .await
            .context("starting the live path")?;
        let checker = Live::connect(engine.clone(), config)
            .await
            .context("connecting the reconciliation")?;
        let r = live
            .recover()
            .await
            .context("recovering the live path's open tasks")?;
        anyhow::ensure!(
            r.leased,
            "another engine holds the nonce lease of {} in this database",
            hex_address(&account)
        );
        if !r.moved.is_empty() || r.still_open > 0 {
            say(
                json,
                &format!(
                    "live path recovery: {} move(s), {} task(s) still open",
                    r.moved.len(),
                    r.still_open
                ),
            );
        }
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(live.run(stop_rx));
        Ok(LiveRun {
            signer,
            account,
            holder,
            task,
            stop,
            checker,
        })
    }

    /// Ends the live path cleanly once the host has stopped: the kill switch holds every
    /// trade not yet signed, what is signed is followed to its receipt (up to
    /// [`DRAIN_PATIENCE`]), the live path stops and gives its lease back, the switch is
    /// cleared if this engaged it, and the wallet is reconciled with nothing of this engine's
    /// in flight. A difference found here is recorded and engages the kill switch, as it
    /// would during the run, so an engine reopening the database holds its trades.
    async fn finish(self, engine: &Engine) -> (LiveEnd, DemoSigner) {
        // Engaged already (a reconciliation difference, say), it stays as it is.
        let ours = !engine.kill_switch().engaged
            && match engine
                .set_kill_switch("", "the run is ending: nothing more is signed", END_OF_RUN)
                .await
            {
                Ok(_) => true,
                Err(e) => {
                    eprintln!("engaging the kill switch at the end: {e}");
                    false
                }
            };
        let started = Instant::now();
        let drained =
            || async { in_flight(engine).await == Some(0) || started.elapsed() > DRAIN_PATIENCE };
        let mut told = false;
        while !drained().await {
            if !told && started.elapsed() > Duration::from_secs(2) {
                eprintln!("waiting for the receipts of signed trades...");
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            eprintln!("the live path task: {e}");
        }
        // A trade the signer answered in the live path's last step was sent then; its
        // receipt is followed here, by the same steps, before the wallet is read.
        let mut stepped = false;
        while !drained().await {
            stepped = true;
            if let Err(e) = self.checker.step().await {
                eprintln!("following the last signed trades: {e}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let account = hex_address(&self.account);
        if stepped
            && let Ok(Some(lease)) = engine.store().lease(engine.chain_id(), &account).await
            && lease.holder == self.holder
            && let Err(e) = engine.store().release_lease(&lease).await
        {
            eprintln!("giving the nonce lease back: {e}");
        }
        if ours
            && engine.kill_switch().engaged
            && engine.kill_switch().operator == END_OF_RUN
            && let Err(e) = engine.clear_kill_switch("", END_OF_RUN).await
        {
            eprintln!("clearing the kill switch at the end: {e}");
        }
        let at_end = engine.store().count_tasks().await.ok().map(|counts| {
            let sum = |states: &[TaskState]| -> i64 {
                counts
                    .iter()
                    .filter(|(s, _)| states.contains(s))
                    .map(|(_, n)| n)
                    .sum()
            };
            AtEnd {
                in_flight: sum(&[TaskState::Signed, TaskState::Broadcast]),
                unsigned: sum(&[
                    TaskState::Staged,
                    TaskState::AwaitingApproval,
                    TaskState::Approved,
                ]),
            }
        });
        let wallet = self.checker.reconcile().await.map_err(|e| format!("{e:#}"));
        (
            LiveEnd {
                account,
                key_source: self.signer.key_source(),
                signer_dir: self.signer.dir().display().to_string(),
                wallet,
                at_end,
            },
            self.signer,
        )
    }
}

/// Trades of the live account signed or sent and not yet resolved from a receipt; `None`
/// when the database could not be read.
async fn in_flight(engine: &Engine) -> Option<i64> {
    let counts = engine.store().count_tasks().await.ok()?;
    Some(
        counts
            .iter()
            .filter(|(s, _)| matches!(s, TaskState::Signed | TaskState::Broadcast))
            .map(|(_, n)| n)
            .sum(),
    )
}

/// What the table and the summary show of the live path.
struct LiveEnd {
    account: String,
    key_source: &'static str,
    signer_dir: String,
    /// The wallet as booked against the chain; `None` before the live path opened it.
    wallet: Result<Option<Reconciliation>, String>,
    /// What was left open when the run ended (the summary only).
    at_end: Option<AtEnd>,
}

/// Trades still open when the live path stopped.
struct AtEnd {
    /// Signed or sent, no receipt booked.
    in_flight: i64,
    /// Decided but not signed: held by the kill switch, or waiting for a human.
    unsigned: i64,
}

/// The wallet as the ledger books it against the chain now, for the live table. Read
/// beside the running live path, a trade booked between the ledger's and the chain's reading
/// shows as a difference for a moment, so one that is not zero is read again.
async fn wallet_now(
    engine: &Engine,
    market: &AnvilMarket,
    account: &[u8; 20],
) -> Result<Option<Reconciliation>, String> {
    let read = || stratbox_engine::reconcile::reconcile(engine.store(), market.provider(), account);
    match read().await.map_err(|e| e.to_string())? {
        Some(r) if !r.is_zero() && r.in_flight == 0 => read().await.map_err(|e| e.to_string()),
        other => Ok(other),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let anvil = match (args.chain.as_deref(), args.live) {
        (None, live) => live,
        (Some("embedded"), false) => false,
        (Some("embedded"), true) => anyhow::bail!(
            "--live runs against Anvil (trades are signed and sent to a real node): drop \
             --chain embedded, or use --chain anvil"
        ),
        (Some("anvil"), _) => true,
        (Some(other), _) => anyhow::bail!(
            "--chain {other:?}: `stratbox up` runs the embedded chain or `anvil`; for a node of \
             your own run `stratbox engine --chain URL --pool ADDR --bus redis://...`"
        ),
    };
    let started = Instant::now();
    let (stop_tx, stop) = watch::channel(false);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let run_dir = std::path::Path::new(".stratbox").join("up");

    // Zone B: the engine, serving gRPC on a loopback port of its own.
    let database = match args.database.clone() {
        Some(url) => url,
        None => {
            std::fs::create_dir_all(&run_dir)
                .with_context(|| format!("creating {}", run_dir.display()))?;
            format!("sqlite://{}/run-{stamp}.db", run_dir.display())
        }
    };
    let store = Store::connect(&database)
        .await
        .with_context(|| format!("opening {database}"))?;
    let market = if anvil {
        say(
            args.json,
            "starting anvil and deploying the Uniswap V3 pool...",
        );
        let mut market = AnvilMarket::start(args.seed).await?;
        // The oracle guard's real sources: the pool's TWAP, a price feed, a reference.
        market.start_price_sources(TWAP_WINDOW).await?;
        Some(market)
    } else {
        None
    };

    // Zone C with --live: the signer for the deployment, its account funded.
    let signer = match &market {
        Some(m) if args.live => {
            let key = if args.dev_keystore {
                DemoKey::DevKeystore
            } else {
                DemoKey::Threshold {
                    cache: args
                        .key_cache
                        .clone()
                        .unwrap_or_else(stratbox::demo_signer::default_key_cache),
                }
            };
            let dir = run_dir.join(format!("run-{stamp}-signer"));
            anyhow::ensure!(
                !dir.exists(),
                "{} exists already (another run started this second?)",
                dir.display()
            );
            let signer = DemoSigner::start(
                &dir,
                &key,
                m.deployment(),
                m.provider(),
                Limits::default(),
                |line| say(args.json, line),
            )
            .await?;
            signer
                .fund(m.provider(), m.deployment(), Funding::default())
                .await
                .context("funding the signer's account")?;
            let certs = dir.join("certs");
            say(
                args.json,
                &format!(
                    "signer: account {:#x}, key {}{}, files in {}\n\
                     approvals (the demo's trades are under the threshold): stratbox approvals \
                     list --signer-admin https://localhost:{} --ca {} --cert {} --key {}",
                    signer.account(),
                    signer.key_source(),
                    if args.dev_keystore {
                        " (DEVELOPMENT: the whole key in this process)"
                    } else {
                        " (three share services in this process)"
                    },
                    dir.display(),
                    signer.admin_addr().port(),
                    certs.join("ca.pem").display(),
                    certs.join("alice.pem").display(),
                    certs.join("alice.key").display(),
                ),
            );
            Some(signer)
        }
        _ => None,
    };
    let chain = match &market {
        None => ChainState::embedded().context("deploying the embedded chain")?,
        Some(m) => {
            let fork = ChainState::fork(&m.endpoint(), &[m.pool().into_array()], None, 0, None)
                .await
                .context("forking anvil")?;
            if signer.is_some() {
                // Live trades go through the executor deployed on the node, from the account.
                let executor = m.deployment().executor.into_array();
                tokio::task::spawn_blocking(move || fork.use_executor(executor))
                    .await
                    .context("executor task")?
                    .context("using the deployed executor")?
            } else {
                fork
            }
        }
    };
    let settings = match &signer {
        Some(s) => EngineSettings {
            mode: ExecutionMode::Live,
            live_account: Some(s.account().into_array()),
            ..EngineSettings::default()
        },
        None => EngineSettings::default(),
    };
    let engine = Engine::start(store, chain, settings)
        .await
        .context("starting the engine")?;
    let mut tokens = Tokens::read(&engine).await;
    if signer.is_some() {
        tokens.0.insert(
            ledger::ETHER.to_owned(),
            Token {
                symbol: "ETH".into(),
                decimals: 18,
            },
        );
    }
    let listener = server::bind("127.0.0.1:0".parse()?).await?;
    let engine_addr = listener.local_addr()?;
    let grpc = {
        let engine = engine.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            server::serve_grpc(engine, listener, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        })
    };

    // The bus, and the first block so the market has a price before strategies start.
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let mut source = match market {
        None => {
            let mut walk = Walk::new(args.seed, CHAIN_EVENTS_STREAM);
            walk.step(&engine, &bus).await?;
            Source::Embedded(Box::new(walk))
        }
        Some(mut market) => {
            let feeds = market
                .price_feed()
                .map(|f| (market.pool().into_array(), f.into_array()))
                .into_iter()
                .collect();
            let follower = Arc::new(
                ForkFollower::new(
                    engine.clone(),
                    &market.endpoint(),
                    &[market.pool().into_array()],
                    false,
                )
                .with_sources(SourcesConfig {
                    twap_window: TWAP_WINDOW,
                    feeds,
                    feed_max_age: FEED_MAX_AGE,
                    ether_feed: market.ether_feed().map(|f| EtherFeed {
                        feed: f.into_array(),
                        quote: market.deployment().token1.into_array(),
                    }),
                })
                .map_err(anyhow::Error::msg)?,
            );
            let config = FeedConfig {
                poll_interval: Duration::from_millis(50),
                start: StartBlock::Latest,
                ..FeedConfig::new(market.endpoint(), vec![market.pool()])
            };
            let mut feed = Feed::connect(config, bus.clone(), Box::new(MemoryCheckpoint::new()))
                .await
                .context("connecting the feed to anvil")?
                .with_observer(follower.clone());
            // The node's head, published before the host starts: the engine then has a
            // watermark, a fork at the head and oracle prices, a fresh feed round among
            // them.
            market.keep().await?;
            feed.poll_once().await.context("first feed poll")?;
            push_reference(&engine, &market);
            let feed = tokio::spawn(feed.run(stop.clone()));
            say(
                args.json,
                &format!(
                    "anvil at {} (chain id {}), pool {}",
                    market.endpoint(),
                    engine.chain_id(),
                    market.pool()
                ),
            );
            Source::Anvil {
                market: Box::new(market),
                feed: Some(feed),
                follower,
            }
        }
    };

    // The live path, before any strategy proposes.
    let mut live = match (signer, source.market()) {
        (Some(signer), Some(market)) => {
            Some(LiveRun::start(&engine, market, signer, args.json).await?)
        }
        _ => None,
    };

    // On a real node, the governance sentinel watches what the engine trades through (the
    // pool, its tokens, the factory) from before the first proposal, as `stratbox engine
    // --governance-sentinel` does.
    let sentinel = match source.market() {
        Some(market) => {
            let mut sentinel =
                Sentinel::connect(engine.clone(), SentinelConfig::new(&market.endpoint()))
                    .await
                    .context("starting the governance sentinel")?;
            sentinel
                .pass()
                .await
                .context("the governance sentinel's first pass")?;
            say(
                args.json,
                &format!(
                    "governance sentinel: watching {} market(s) (stratbox governance list)",
                    sentinel.markets().len()
                ),
            );
            Some(tokio::spawn(sentinel.run(stop.clone())))
        }
        None => None,
    };

    // Zone A: a host with the example strategies, talking to the engine over gRPC.
    let link = EngineLink::new(&format!("http://{engine_addr}"), RetryPolicy::default())?;
    // Compiled components are kept across runs: the Python maker is an 18 MB component whose
    // first compile takes seconds, its next start a file read.
    let host_config = HostConfig {
        cache_dir: Some(std::path::Path::new(".stratbox").join("cache")),
        ..HostConfig::default()
    };
    let runtime = tokio::task::spawn_blocking(|| HostRuntime::new(host_config))
        .await
        .context("creating the host runtime")??;
    let examples = [
        (
            "clamm-maker",
            args.clamm_instances,
            demo_maker_config("{pool}"),
        ),
        (
            "momentum",
            args.momentum_instances,
            stratbox_strategies::momentum_config("{pool}"),
        ),
        (
            "clamm-maker-py",
            args.python_instances,
            demo_maker_config("{pool}"),
        ),
        (
            "clamm-maker-js",
            args.js_instances,
            demo_maker_config("{pool}"),
        ),
    ];
    let mut strategies = Vec::new();
    for (name, instances, config) in examples {
        if instances == 0 {
            continue;
        }
        let bytes = stratbox_strategies::bytes(name)
            .with_context(|| format!("reading the {name} component"))?;
        if live.is_some() {
            // A new strategy starts at L1, which stops at SIMULATED; L5 may trade live.
            engine.set_permission_level(name, PermissionLevel::L5);
        }
        strategies.push(LocalStrategy {
            name: name.to_owned(),
            bytes,
            config,
            instances,
        });
    }
    let seat = BusSeat {
        stream: CHAIN_EVENTS_STREAM.to_owned(),
        group: "hosts".to_owned(),
        consumer: "host-up".to_owned(),
        block: Duration::from_millis(100),
    };
    let plan = HostPlan {
        seat,
        runtime,
        limits: StrategyLimits::default(),
        strategies,
        workers: args.workers,
        metrics: None,
    };
    let assembled = assemble::host(link, bus.clone(), plan, &stop)
        .await?
        .require_all()?;
    let (service, fleet) = (assembled.service, assembled.fleet);
    let host_stats = service.stats();
    let host = tokio::spawn(service.run(stop.clone()));
    host_caught_up(bus.as_ref(), &host_stats, &host, Duration::from_secs(60)).await?;

    // The market and the live table until told to stop.
    let deadline = args.duration.map(|d| Instant::now() + d);
    let mut ticker = tokio::time::interval(args.block_interval);
    let mut last_table = Instant::now();
    let interactive = std::io::stdout().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // A supervisor's stop (SIGTERM) ends the run as cleanly as Ctrl-C, so Anvil is killed.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = term.recv() => break,
            _ = ticker.tick() => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if host.is_finished() {
            // Its error, if it failed, is reported below where the task is awaited.
            eprintln!("the host stopped; ending the run");
            break;
        }
        if live.as_ref().is_some_and(|l| l.task.is_finished()) {
            eprintln!("the live path stopped; ending the run");
            break;
        }
        source.step(&engine, &bus).await?;
        if !args.json && last_table.elapsed() >= Duration::from_secs(1) {
            last_table = Instant::now();
            let mut table = render(&engine, &fleet, &host_stats, source.counts(), started).await;
            if let (Some(l), Some(market)) = (&live, source.market()) {
                table.live = Some(LiveEnd {
                    account: hex_address(&l.account),
                    key_source: l.signer.key_source(),
                    signer_dir: l.signer.dir().display().to_string(),
                    wallet: wallet_now(&engine, market, &l.account).await,
                    at_end: None,
                });
            }
            let table = table.text(&tokens);
            if interactive {
                print!("\x1b[2J\x1b[H{table}");
            } else {
                print!("{table}");
            }
            let _ = std::io::stdout().flush();
        }
    }

    // Stop: the feed, then the host finishes the event in hand and acknowledges it; then
    // the engine's port and the live path (what is signed followed to its receipt); the
    // signer; Anvil last (dropped with the market).
    let _ = stop_tx.send(true);
    source.stop_feed().await?;
    host.await.context("host task")??;
    grpc.await.context("gRPC task")??;
    if let Some(s) = sentinel {
        s.await.context("governance sentinel task")?;
    }
    let (live_end, signer) = match live.take() {
        Some(l) => {
            let (end, signer) = l.finish(&engine).await;
            (Some(end), Some(signer))
        }
        None => (None, None),
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut summary = render(&engine, &fleet, &host_stats, source.counts(), started).await;
    summary.by_strategy = tasks_by_strategy(&engine).await?;
    for strategy in summary.by_strategy.keys() {
        let q = engine
            .execution_quality(strategy)
            .await
            .context("reading the execution figures")?;
        summary.execution.insert(strategy.clone(), q);
    }
    summary.live = live_end;
    let followed = match &source {
        Source::Anvil { follower: f, .. } => {
            use std::sync::atomic::Ordering::Relaxed;
            Some((f.refreshes.load(Relaxed), f.failures.load(Relaxed)))
        }
        Source::Embedded(_) => None,
    };
    let balanced = engine.check_ledger().await.context("checking the ledger")?;
    if args.json {
        let mut json = summary.json(&tokens);
        json["seconds"] = serde_json::json!(seconds);
        json["ledger_entries"] = serde_json::json!(balanced);
        json["database"] = serde_json::json!(database);
        if let Some((refreshes, failures)) = followed {
            json["fork"] = serde_json::json!({ "followed": refreshes, "failed": failures });
        }
        println!("{json}");
    } else {
        println!("\nsummary after {seconds:.1}s");
        print!("{}", summary.text(&tokens));
        if let Some((refreshes, failures)) = followed {
            println!(
                "fork    followed {refreshes} blocks of anvil ({failures} could not be followed)"
            );
        }
        println!(
            "ledger: {balanced} entries; every posting and the whole ledger balance per asset"
        );
        println!("database: {database}");
    }
    if let Some(signer) = signer {
        signer.shutdown().await.context("stopping the signer")?;
    }
    drop(source);
    if let Some(end) = &summary.live {
        match &end.wallet {
            Ok(Some(r)) if r.is_zero() => {}
            Ok(Some(r)) => anyhow::bail!(
                "the reconciliation at the end found a difference: {}",
                r.differences()
                    .map(|a| format!("{} {}", a.asset, a.difference))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Ok(None) => anyhow::bail!("the live path never opened the account's wallet"),
            Err(e) => anyhow::bail!("reconciling the wallet at the end: {e}"),
        }
    }
    Ok(())
}

/// Waits until the host has handled every event published so far (the chain's head), so
/// the market starts moving only then. A maker proposes its position once and assumes it
/// holds; if the market ran ahead while the host was still starting (a loaded machine),
/// the engine would rightly refuse those first proposals against the newer state
/// (`sim_max_in`, or `stale_watermark` a few blocks on) and the demo would book nothing.
pub(crate) async fn host_caught_up(
    bus: &dyn Bus,
    stats: &ServiceStats,
    host: &tokio::task::JoinHandle<impl Sized>,
    patience: Duration,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let published = bus
        .len(CHAIN_EVENTS_STREAM)
        .await
        .context("reading the event stream's length")?;
    let handled = || {
        stats.events.load(Relaxed)
            + stats.duplicates_skipped.load(Relaxed)
            + stats.malformed.load(Relaxed)
    };
    let started = Instant::now();
    let mut told = false;
    // A host that stopped is reported where its task is awaited, after the run.
    while handled() < published && !host.is_finished() {
        if started.elapsed() > patience {
            anyhow::bail!(
                "the host handled {} of the chain's first {published} events in {patience:?}; \
                 see the log above",
                handled()
            );
        }
        if !told && started.elapsed() > Duration::from_secs(2) {
            // On stderr: stdout is the table, or with `--json` nothing but the summary.
            eprintln!("waiting for the host to handle the chain's head ({published} events)...");
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The catalog's maker keeps a ±6% band at 50 bps, which the engine rightly refuses when
/// the walk moves the price a block or two between proposal and simulation (amounts of a
/// narrow band move ~10x faster than the price). The demo uses a band of about ×0.3..×3.3 and the
/// engine's default 1% slippage cap, so that most of its proposals are simulated and booked.
fn demo_maker_config(pool: &str) -> String {
    serde_json::json!({
        "pool": pool,
        "half_width_ticks": 12000,
        "margin_ticks": 1200,
        "liquidity": "1000000000000000000",
        "max_slippage_bps": 100,
    })
    .to_string()
}

/// A progress note: on stdout with the table, on stderr when stdout is the JSON summary.
fn say(json: bool, line: &str) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// What the chain says of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    symbol: String,
    decimals: u8,
}

/// The symbol and decimals of every token the engine's pools trade, read from the chain.
#[derive(Debug, Default)]
struct Tokens(BTreeMap<String, Token>);

impl Tokens {
    /// Asks each pool token's contract. A token that does not answer is shown by address
    /// in raw units (never with guessed decimals).
    async fn read(engine: &Engine) -> Tokens {
        let chain = engine.chain();
        // A fork reads what it has not cached from its node, blocking: off the async threads.
        let read = tokio::task::spawn_blocking(move || {
            let mut out = BTreeMap::new();
            for (_, info) in chain.pool_infos() {
                for token in [info.token0, info.token1] {
                    let key = hex_address(&token);
                    if out.contains_key(&key) {
                        continue;
                    }
                    let at = stratbox_sim::Address::from(token);
                    let symbol = chain.chain().call(at, IERC20::symbolCall {});
                    let decimals = chain.chain().call(at, IERC20::decimalsCall {});
                    match (symbol, decimals) {
                        (Ok(symbol), Ok(decimals)) => {
                            out.insert(
                                key,
                                Token {
                                    symbol: clean_symbol(&symbol),
                                    decimals,
                                },
                            );
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::warn!(token = %key, error = %e, "the token did not say its symbol and decimals; showing raw units");
                        }
                    }
                }
            }
            out
        })
        .await;
        match read {
            Ok(map) => Tokens(map),
            Err(e) => {
                tracing::warn!(error = %e, "reading token symbols failed; showing raw units");
                Tokens::default()
            }
        }
    }

    fn get(&self, token: &str) -> Option<&Token> {
        self.0.get(&token.to_ascii_lowercase())
    }

    /// `amount` of `token` as people read it (`0.1 SB0`), or raw units and the address.
    fn show(&self, token: &str, amount: U256, negative: bool) -> String {
        let sign = if negative && !amount.is_zero() {
            "-"
        } else {
            ""
        };
        match self.get(token) {
            Some(t) => format!("{sign}{} {}", format_units(amount, t.decimals), t.symbol),
            None => format!("{sign}{amount} (raw units of {token})"),
        }
    }
}

/// A symbol comes from a contract: keep it short and printable.
fn clean_symbol(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(16)
        .collect();
    if s.is_empty() { "?".to_owned() } else { s }
}

/// Fraction digits shown when they are not all needed to show a value at all.
const SHOWN_DECIMALS: usize = 6;

/// `amount` raw units at `decimals`, with integer arithmetic only: the whole part exactly,
/// the fraction cut (not rounded) to six digits without trailing zeros, unless a nonzero
/// value would read as zero, in which case every digit is shown.
fn format_units(amount: U256, decimals: u8) -> String {
    let digits = amount.to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = d + 1);
    let (whole, fraction) = padded.split_at(padded.len() - d);
    let cut = &fraction[..SHOWN_DECIMALS.min(d)];
    let shown = if whole.bytes().all(|b| b == b'0') && cut.bytes().all(|b| b == b'0') {
        fraction
    } else {
        cut
    };
    let shown = shown.trim_end_matches('0');
    if shown.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{shown}")
    }
}

/// What the live table and the summary show.
struct Summary {
    elapsed: f64,
    blocks: u64,
    swaps: u64,
    watermark: u64,
    events: u64,
    calls: u64,
    proposals: u64,
    fuel: u64,
    errors: BTreeMap<&'static str, u64>,
    tasks: Result<Vec<(TaskState, i64)>, String>,
    refused: Vec<(&'static str, u64)>,
    pnl: Result<Vec<(String, String, Signed)>, String>,
    /// Every book's token balances, as the engine publishes them to hosts.
    balances: Vec<v1::BookBalances>,
    /// Tasks per strategy and state (the summary only: it reads every task).
    by_strategy: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per strategy, the slippage and markouts the host reported of its fills (the summary
    /// only).
    execution: BTreeMap<String, v1::ExecutionQuality>,
    /// The live path's account and its wallet against the chain (`--live`).
    live: Option<LiveEnd>,
}

async fn render(
    engine: &Engine,
    fleet: &Fleet,
    host: &ServiceStats,
    (blocks, swaps): (u64, u64),
    started: Instant,
) -> Summary {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = fleet.stats();
    let (balances, _) = engine.watch_balances();
    Summary {
        elapsed: started.elapsed().as_secs_f64(),
        blocks,
        swaps,
        watermark: engine.watermark(),
        events: host.events.load(Relaxed),
        calls: stats.calls.load(Relaxed),
        proposals: stats.proposals.load(Relaxed),
        fuel: stats.fuel.load(Relaxed),
        errors: stats.errors(),
        tasks: engine
            .store()
            .count_tasks()
            .await
            .map_err(|e| e.to_string()),
        refused: engine.metrics().rejections(),
        pnl: engine.shadow_pnl().await.map_err(|e| e.to_string()),
        balances: balances.books,
        by_strategy: BTreeMap::new(),
        execution: BTreeMap::new(),
        live: None,
    }
}

/// Reads every task once and counts them per strategy and state.
async fn tasks_by_strategy(
    engine: &Engine,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut token = String::new();
    loop {
        let (page, next) = engine
            .list_tasks("", None, stratbox_engine::engine::MAX_PAGE, &token)
            .await
            .context("reading the tasks")?;
        for t in page {
            let state = v1::TaskState::try_from(t.state)
                .map(|s| s.as_str_name().trim_start_matches("TASK_STATE_").to_owned())
                .unwrap_or_else(|_| t.state.to_string());
            let strategy = t.proposal.map(|p| p.strategy).unwrap_or_default();
            *out.entry(strategy).or_default().entry(state).or_default() += 1;
        }
        if next.is_empty() {
            return Ok(out);
        }
        token = next;
    }
}

impl Summary {
    fn text(&self, tokens: &Tokens) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "stratbox up  {:>6.1}s  block {}  watermark {}  swaps {}",
            self.elapsed, self.blocks, self.watermark, self.swaps
        );
        let _ = writeln!(
            out,
            "host    events {:>7}  calls {:>8}  proposals {:>6}  fuel {:>12}",
            self.events, self.calls, self.proposals, self.fuel
        );
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(out, "errors  {errors}");
        match &self.tasks {
            Ok(counts) => {
                let line = counts
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(s, n)| format!("{}={n}", state_name(*s)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = writeln!(
                    out,
                    "tasks   {}",
                    if line.is_empty() {
                        "none yet".into()
                    } else {
                        line
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(out, "tasks   unavailable: {e}");
            }
        }
        for (strategy, states) in &self.by_strategy {
            let line = states
                .iter()
                .map(|(s, n)| format!("{s}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(out, "trades  {strategy:<24} {line}");
        }
        for (strategy, q) in &self.execution {
            let figure = |name: &str, b: &Option<v1::BpsSummary>| {
                let b = (*b).unwrap_or_default();
                if b.count == 0 {
                    format!("{name} none")
                } else {
                    format!("{name} n={} p50={} p90={} bps", b.count, b.p50, b.p90)
                }
            };
            let _ = writeln!(
                out,
                "fills   {strategy:<24} {}; {}",
                figure("slippage", &q.slippage),
                figure("markout", &q.markout)
            );
        }
        if let Some(live) = &self.live {
            live.text(&mut out, tokens);
        }
        if !self.refused.is_empty() {
            let line = self
                .refused
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(out, "refused {line}");
        }
        match &self.pnl {
            Ok(rows) if !rows.is_empty() => {
                for (strategy, asset, pnl) in rows {
                    let shown = tokens.show(asset, pnl.magnitude, pnl.negative);
                    let shown = if pnl.negative || pnl.magnitude.is_zero() {
                        shown
                    } else {
                        format!("+{shown}")
                    };
                    let _ = writeln!(out, "pnl     {strategy:<24} {shown}");
                }
            }
            Ok(_) => {
                let _ = writeln!(out, "pnl     no shadow fills yet");
            }
            Err(e) => {
                let _ = writeln!(out, "pnl     unavailable: {e}");
            }
        }
        for book in &self.balances {
            let held = book
                .balances
                .iter()
                .filter_map(|b| {
                    let token = &b.token.as_ref()?.value;
                    let amount = parse_amount(b.amount.as_ref()?)?;
                    Some(tokens.show(token, amount, false))
                })
                .collect::<Vec<_>>()
                .join("  ");
            let _ = writeln!(
                out,
                "balance {:<24} {held}",
                format!("{} ({})", book.strategy, book.account)
            );
        }
        out
    }

    /// The summary with amounts in raw units (base-10 strings), beside each token's
    /// symbol and decimals as the chain gave them.
    fn json(&self, tokens: &Tokens) -> serde_json::Value {
        use serde_json::json;
        let token = |address: &str| match tokens.get(address) {
            Some(t) => json!({ "address": address, "symbol": t.symbol, "decimals": t.decimals }),
            None => json!({ "address": address }),
        };
        let tasks: BTreeMap<String, i64> = match &self.tasks {
            Ok(counts) => counts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (state_name(*s), *n))
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        let pnl: Vec<serde_json::Value> = match &self.pnl {
            Ok(rows) => rows
                .iter()
                .map(|(strategy, asset, pnl)| {
                    json!({
                        "strategy": strategy,
                        "token": token(asset),
                        "amount": pnl.magnitude.to_string(),
                        "negative": pnl.negative,
                    })
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let balances: Vec<serde_json::Value> = self
            .balances
            .iter()
            .map(|b| {
                let held: Vec<serde_json::Value> = b
                    .balances
                    .iter()
                    .filter_map(|t| {
                        let address = &t.token.as_ref()?.value;
                        Some(json!({
                            "token": token(address),
                            "amount": t.amount.as_ref()?.value,
                        }))
                    })
                    .collect();
                json!({ "strategy": b.strategy, "account": b.account, "balances": held })
            })
            .collect();
        json!({
            "blocks": self.blocks,
            "swaps": self.swaps,
            "watermark": self.watermark,
            "host": {
                "events": self.events,
                "calls": self.calls,
                "proposals": self.proposals,
                "fuel": self.fuel,
                "errors": self.errors,
            },
            "tasks": tasks,
            "strategies": self.by_strategy,
            "execution": self.execution.iter().map(|(name, q)| {
                (name.clone(), serde_json::json!({
                    "slippage_bps": super::strategy::bps_json(&q.slippage),
                    "markout_bps": super::strategy::bps_json(&q.markout),
                }))
            }).collect::<BTreeMap<_, _>>(),
            "refused": self.refused.iter().map(|(c, n)| (c.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            "pnl": pnl,
            "balances": balances,
            "live": self.live.as_ref().map(|l| l.json(&token)),
        })
    }
}

impl LiveEnd {
    /// The account, then one `wallet` line per asset and the verdict.
    fn text(&self, out: &mut String, tokens: &Tokens) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "live    account {}  key {}  signer files {}",
            self.account, self.key_source, self.signer_dir
        );
        if let Some(end) = &self.at_end {
            let _ = writeln!(
                out,
                "live    at the end: {} signed or sent without a receipt, {} decided but not signed \
                 (held by the kill switch)",
                end.in_flight, end.unsigned
            );
        }
        let r = match &self.wallet {
            Ok(Some(r)) => r,
            Ok(None) => {
                let _ = writeln!(out, "wallet  not opened yet");
                return;
            }
            Err(e) => {
                let _ = writeln!(out, "wallet  unavailable: {e}");
                return;
            }
        };
        for a in &r.assets {
            let (symbol, shown): (String, Box<dyn Fn(U256) -> String>) = match tokens.get(&a.asset)
            {
                Some(t) => {
                    let decimals = t.decimals;
                    (
                        t.symbol.clone(),
                        Box::new(move |v| format_units(v, decimals)),
                    )
                }
                None => (a.asset.clone(), Box::new(|v: U256| v.to_string())),
            };
            let signed = |v: &Signed| {
                let sign = match (v.magnitude.is_zero(), v.negative) {
                    (true, _) => "",
                    (false, true) => "-",
                    (false, false) => "+",
                };
                format!("{sign}{}", shown(v.magnitude))
            };
            let ledger = if a.ledger.negative {
                signed(&a.ledger)
            } else {
                shown(a.ledger.magnitude)
            };
            let _ = writeln!(
                out,
                "wallet  {symbol:<8} ledger {ledger}  chain {}  difference {}",
                shown(a.chain),
                signed(&a.difference)
            );
        }
        let in_flight = if r.in_flight > 0 {
            format!(
                " ({} in flight: may be mined and not yet booked)",
                r.in_flight
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "reconciliation at block {}: difference {}{in_flight}",
            r.block,
            if r.is_zero() { "0" } else { "NOT zero" }
        );
    }

    /// The same in raw units (base-10 strings).
    fn json(&self, token: &dyn Fn(&str) -> serde_json::Value) -> serde_json::Value {
        use serde_json::json;
        let reconciliation = match &self.wallet {
            Ok(Some(r)) => json!({
                "block": r.block,
                "in_flight": r.in_flight,
                "zero": r.is_zero(),
                "assets": r.assets.iter().map(|a| json!({
                    "asset": a.asset,
                    "token": token(&a.asset),
                    "ledger": a.ledger.magnitude.to_string(),
                    "ledger_negative": a.ledger.negative,
                    "chain": a.chain.to_string(),
                    "difference": a.difference.magnitude.to_string(),
                    "difference_negative": a.difference.negative,
                })).collect::<Vec<_>>(),
            }),
            Ok(None) | Err(_) => serde_json::Value::Null,
        };
        json!({
            "account": self.account,
            "key_source": self.key_source,
            "signer_dir": self.signer_dir,
            "reconciliation": reconciliation,
            "error": self.wallet.as_ref().err(),
            "in_flight_at_end": self.at_end.as_ref().map(|e| e.in_flight),
            "unsigned_at_end": self.at_end.as_ref().map(|e| e.unsigned),
        })
    }
}

fn parse_amount(a: &v1::Amount) -> Option<U256> {
    a.parse().ok()
}

fn state_name(s: TaskState) -> String {
    s.as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::{U256, format_units, parse_duration};
    use std::time::Duration;

    #[test]
    fn units_are_scaled_exactly() {
        let u = |s: &str| s.parse::<U256>().unwrap();
        assert_eq!(format_units(u("139000000000000"), 18), "0.000139");
        assert_eq!(format_units(u("1000000000000000000000000"), 18), "1000000");
        assert_eq!(format_units(u("1500000"), 6), "1.5");
        assert_eq!(format_units(u("123456789"), 6), "123.456789");
        assert_eq!(
            format_units(u("1234567891"), 7),
            "123.456789",
            "cut, not rounded"
        );
        assert_eq!(
            format_units(u("1"), 18),
            "0.000000000000000001",
            "never reads as 0"
        );
        assert_eq!(format_units(u("0"), 18), "0");
        assert_eq!(format_units(u("42"), 0), "42");
        assert_eq!(format_units(U256::MAX, 77), "1.15792");
        assert_eq!(format_units(U256::from(5u8), 255).len(), 257);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("1.5s").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration(&format!("{}h", u64::MAX)).is_err());
    }
}
