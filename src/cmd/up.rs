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

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use stratbox_bus::{Bus, CHAIN_EVENTS_STREAM, MemoryBus};
use stratbox_engine::ledger::Signed;
use stratbox_engine::proposal::hex_address;
use stratbox_engine::{ChainState, Engine, EngineSettings, Store, TaskState, server};
use stratbox_evm::abi::IERC20;
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_host_service::{
    BusSeat, EngineLink, Fleet, HostPlan, LocalStrategy, RetryPolicy, ServiceStats, assemble,
};
use stratbox_proto::{U256, v1};
use tokio::sync::watch;

use stratbox::market::Walk;
use stratbox::market::anvil::AnvilMarket;
use stratbox_engine::follow::ForkFollower;
use stratbox_feed::{Feed, FeedConfig, MemoryCheckpoint, StartBlock};

#[derive(clap::Args)]
pub struct Args {
    /// Stop after this long (e.g. `30`, `30s`, `2m`); without it, run until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Chain to run against: the embedded revm chain (default) or `anvil`.
    #[arg(long, default_value = "embedded")]
    pub chain: String,
    /// Where the engine keeps its state; a fresh SQLite file per run by default.
    #[arg(long)]
    pub database: Option<String>,
    /// `clamm-maker` instances the host runs.
    #[arg(long, default_value_t = 10)]
    pub clamm_instances: usize,
    /// `momentum` instances the host runs.
    #[arg(long, default_value_t = 2)]
    pub momentum_instances: usize,
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
        .map_err(|_| format!("{s:?} is not a duration like 30, 30s, 500ms or 2m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long")),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
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
            Source::Anvil { market, .. } => market.step().await.map(|_| ()),
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
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let anvil = match args.chain.as_str() {
        "embedded" => false,
        "anvil" => true,
        other => anyhow::bail!(
            "--chain {other:?}: `stratbox up` runs the embedded chain or `anvil`; for a node of \
             your own run `stratbox engine --chain URL --pool ADDR --bus redis://...`"
        ),
    };
    let started = Instant::now();
    let (stop_tx, stop) = watch::channel(false);

    // Zone B: the engine, serving gRPC on a loopback port of its own.
    let database = match args.database.clone() {
        Some(url) => url,
        None => {
            let dir = std::path::Path::new(".stratbox").join("up");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            format!("sqlite://{}/run-{stamp}.db", dir.display())
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
        Some(AnvilMarket::start(args.seed).await?)
    } else {
        None
    };
    let chain = match &market {
        None => ChainState::embedded().context("deploying the embedded chain")?,
        Some(m) => ChainState::fork(&m.endpoint(), &[m.pool().into_array()], None, 0, None)
            .await
            .context("forking anvil")?,
    };
    let engine = Engine::start(store, chain, EngineSettings::default())
        .await
        .context("starting the engine")?;
    let tokens = Tokens::read(&engine).await;
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
        Some(market) => {
            let follower = Arc::new(ForkFollower::new(
                engine.clone(),
                &market.endpoint(),
                &[market.pool().into_array()],
                true,
            ));
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
            // watermark, a fork at the head and oracle prices.
            feed.poll_once().await.context("first feed poll")?;
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

    // Zone A: a host with the example strategies, talking to the engine over gRPC.
    let link = EngineLink::new(&format!("http://{engine_addr}"), RetryPolicy::default())?;
    let runtime = tokio::task::spawn_blocking(|| HostRuntime::new(HostConfig::default()))
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
    ];
    let mut strategies = Vec::new();
    for (name, instances, config) in examples {
        let bytes = stratbox_strategies::bytes(name)
            .with_context(|| format!("reading the {name} component"))?;
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
    let deadline = args.duration.map(|d| started + d);
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
        source.step(&engine, &bus).await?;
        if !args.json && last_table.elapsed() >= Duration::from_secs(1) {
            last_table = Instant::now();
            let table = render(&engine, &fleet, &host_stats, source.counts(), started)
                .await
                .text(&tokens);
            if interactive {
                print!("\x1b[2J\x1b[H{table}");
            } else {
                print!("{table}");
            }
            let _ = std::io::stdout().flush();
        }
    }

    // Stop: the feed, then the host finishes the event in hand and acknowledges it; then
    // the engine; Anvil last (dropped with the market).
    let _ = stop_tx.send(true);
    source.stop_feed().await?;
    host.await.context("host task")??;
    grpc.await.context("gRPC task")??;
    let seconds = started.elapsed().as_secs_f64();
    let mut summary = render(&engine, &fleet, &host_stats, source.counts(), started).await;
    summary.by_strategy = tasks_by_strategy(&engine).await?;
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
    drop(source);
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
            "refused": self.refused.iter().map(|(c, n)| (c.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            "pnl": pnl,
            "balances": balances,
        })
    }
}

fn parse_amount(a: &v1::Amount) -> Option<U256> {
    a.parse().ok()
}

fn state_name(s: TaskState) -> String {
    format!("{s:?}").to_uppercase()
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
        assert!(parse_duration("5h").is_err());
    }
}
