//! `stratbox up`: the whole system on embedded defaults, in one process.
//!
//! It starts the engine (SQLite, the in-process revm chain with the real Uniswap V3 pool)
//! serving gRPC on a loopback port, an in-process bus, a market that makes a random walk of
//! swaps on that pool, and a host running the example strategies, which reaches the engine
//! over gRPC exactly as a separate `stratbox host` process would. It prints a live table
//! and a summary when it stops (Ctrl-C, SIGTERM or `--duration`).
//!
//! `--chain anvil` runs the same against a real node: an Anvil from the npm package with
//! the real pool deployed, the walk sending real swap transactions, the chain adapter
//! following the node into the bus, and the engine's fork moved to each block it publishes.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use stratbox_bus::{Bus, CHAIN_EVENTS_STREAM, MemoryBus};
use stratbox_engine::{ChainState, Engine, EngineSettings, Store, TaskState, server};
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_host_service::{
    BusSeat, EngineLink, Fleet, HostPlan, LocalStrategy, RetryPolicy, ServiceStats, assemble,
};
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
        "m" => Ok(Duration::from_secs(n * 60)),
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
        println!("starting anvil and deploying the Uniswap V3 pool...");
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
            println!(
                "anvil at {} (chain id {}), pool {}",
                market.endpoint(),
                engine.chain_id(),
                market.pool()
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
        if last_table.elapsed() >= Duration::from_secs(1) {
            last_table = Instant::now();
            let table = render(&engine, &fleet, &host_stats, source.counts(), started).await;
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
    println!("\nsummary after {:.1}s", started.elapsed().as_secs_f64());
    print!(
        "{}",
        render(&engine, &fleet, &host_stats, source.counts(), started).await
    );
    if let Source::Anvil { follower: f, .. } = &source {
        use std::sync::atomic::Ordering::Relaxed;
        println!(
            "fork    followed {} blocks of anvil ({} could not be followed)",
            f.refreshes.load(Relaxed),
            f.failures.load(Relaxed)
        );
    }
    let balanced = engine.check_ledger().await.context("checking the ledger")?;
    println!("ledger: {balanced} entries; every posting and the whole ledger balance per asset");
    println!("database: {database}");
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
            println!("waiting for the host to handle the chain's head ({published} events)...");
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

async fn render(
    engine: &Engine,
    fleet: &Fleet,
    host: &ServiceStats,
    (blocks, swaps): (u64, u64),
    started: Instant,
) -> String {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    let stats = fleet.stats();
    let _ = writeln!(
        out,
        "stratbox up  {:>6.1}s  block {}  watermark {}  swaps {}",
        started.elapsed().as_secs_f64(),
        blocks,
        engine.watermark(),
        swaps
    );
    let _ = writeln!(
        out,
        "host    events {:>7}  calls {:>8}  proposals {:>6}  fuel {:>12}",
        host.events.load(Relaxed),
        stats.calls.load(Relaxed),
        stats.proposals.load(Relaxed),
        stats.fuel.load(Relaxed)
    );
    let errors = stats.errors();
    let errors = if errors.is_empty() {
        "none".to_owned()
    } else {
        errors
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(out, "errors  {errors}");
    match engine.store().count_tasks().await {
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
    let refused = engine.metrics().rejections();
    if !refused.is_empty() {
        let line = refused
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(out, "refused {line}");
    }
    match engine.shadow_pnl().await {
        Ok(rows) if !rows.is_empty() => {
            for (strategy, asset, pnl) in rows {
                let sign = if pnl.negative { "-" } else { "+" };
                let _ = writeln!(
                    out,
                    "pnl     {strategy:<24} {sign}{} (raw units of {asset})",
                    pnl.magnitude
                );
            }
        }
        Ok(_) => {
            let _ = writeln!(out, "pnl     no shadow fills yet");
        }
        Err(e) => {
            let _ = writeln!(out, "pnl     unavailable: {e}");
        }
    }
    out
}

fn state_name(s: TaskState) -> String {
    format!("{s:?}").to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
