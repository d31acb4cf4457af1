//! `stratbox bench pipeline`: the latency from a swap landing on the (embedded) chain to
//! the engine answering for its proposals, with many strategy instances, through the same
//! pieces `stratbox up` runs: revm chain -> bus -> host fleet -> gRPC -> gates, revm
//! simulation, storage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use stratbox::market::Walk;
use stratbox_bus::{Bus, CHAIN_EVENTS_STREAM, MemoryBus};
use stratbox_engine::{ChainState, Engine, EngineSettings, Store, server};
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_host_service::{BusSeat, EngineLink, HostPlan, LocalStrategy, RetryPolicy, assemble};
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct Args {
    /// Strategy instances on the host (split between clamm-maker and momentum).
    #[arg(long, default_value_t = 100)]
    pub instances: usize,
    /// Blocks (each with one swap) to measure.
    #[arg(long, default_value_t = 1000)]
    pub blocks: usize,
    /// Blocks run before measuring: the first batches create ledger accounts, prepare SQL
    /// statements and fund simulation accounts, which a running system did long ago.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// Time between blocks; 0 publishes as fast as the pipeline takes them (throughput).
    #[arg(long, default_value = "20ms", value_parser = super::up::parse_duration)]
    pub block_interval: Duration,
    /// Engine database (a fresh SQLite file by default).
    #[arg(long)]
    pub database: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempdir()?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    let mut settings = EngineSettings::default();
    // A latency benchmark must not measure refusals for lag it causes itself.
    settings.risk.sentinel.max_lag_blocks = u64::MAX / 4;
    let engine = Engine::start(
        Store::connect(&database).await?,
        ChainState::embedded()?,
        settings,
    )
    .await?;
    let listener = server::bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop) = watch::channel(false);
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
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let mut walk = Walk::new(5, CHAIN_EVENTS_STREAM);
    walk.step(&engine, &bus).await?;

    let runtime = tokio::task::spawn_blocking(|| HostRuntime::new(HostConfig::default())).await??;
    let makers = args.instances * 9 / 10;
    let mut strategies = Vec::new();
    for (name, instances) in [
        ("clamm-maker", makers),
        ("momentum", args.instances - makers),
    ] {
        // Narrow bands so makers re-centre often and the engine has work per swap.
        let config = match name {
            "clamm-maker" => serde_json::json!({
                "pool": "{pool}", "half_width_ticks": 120, "margin_ticks": 0,
                "liquidity": "1000000000000000", "max_slippage_bps": 100,
            })
            .to_string(),
            _ => stratbox_strategies::momentum_config("{pool}"),
        };
        strategies.push(LocalStrategy {
            name: name.into(),
            bytes: stratbox_strategies::bytes(name)?,
            config,
            instances,
        });
    }
    let seat = BusSeat {
        stream: CHAIN_EVENTS_STREAM.into(),
        group: "bench".into(),
        consumer: "bench-host".into(),
        block: Duration::from_millis(5),
    };
    let link = EngineLink::new(&format!("http://{addr}"), RetryPolicy::default())?;
    let plan = HostPlan {
        seat,
        runtime,
        limits: StrategyLimits::default(),
        strategies,
        workers: 2,
        metrics: None,
    };
    let mut service = assemble::host(link, bus.clone(), plan, &stop)
        .await?
        .require_all()?
        .service;
    let (tx, mut handled) = tokio::sync::mpsc::unbounded_channel();
    service.report_to(tx);
    let stats = service.stats();
    let host = tokio::spawn(service.run(stop.clone()));
    // As `up` does: the makers propose once, on the state they first see.
    super::up::host_caught_up(bus.as_ref(), &stats, &host, Duration::from_secs(60)).await?;

    let stages0 = engine.metrics().stages.snapshot();
    // Warm up, then measure: block number -> when its swap was committed and published.
    let mut landed: HashMap<u64, Instant> = HashMap::new();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(args.block_interval.max(Duration::from_micros(1)));
    for i in 0..args.warmup + args.blocks {
        if !args.block_interval.is_zero() {
            ticker.tick().await;
        }
        let t = Instant::now();
        walk.step(&engine, &bus).await?;
        if i >= args.warmup {
            landed.insert(engine.watermark(), t);
        }
    }
    let published = bus.len(CHAIN_EVENTS_STREAM).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut all = Vec::new();
    let mut with_proposals = Vec::new();
    // Events with proposals, by stage: waiting for the host, strategies, engine.
    let mut stages: [Vec<Duration>; 3] = Default::default();
    let mut seen = 0u64;
    while seen < published {
        let h = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            handled.recv(),
        )
        .await
        .context("the pipeline did not drain within 120 s")?
        .context("host stopped")?;
        seen += 1;
        let block = h
            .event_id
            .split(':')
            .nth(1)
            .and_then(|b| b.parse::<u64>().ok());
        if let Some(t0) = block.and_then(|b| landed.get(&b)) {
            let latency = h.answered.saturating_duration_since(*t0);
            all.push(latency);
            if h.proposals > 0 {
                with_proposals.push(latency);
                stages[0].push(h.received.saturating_duration_since(*t0));
                stages[1].push(h.dispatched.saturating_duration_since(h.received));
                stages[2].push(h.answered.saturating_duration_since(h.dispatched));
            }
        }
    }
    let elapsed = started.elapsed();
    let stages1 = engine.metrics().stages.snapshot();
    let _ = stop_tx.send(true);
    let _ = host.await;
    let _ = grpc.await;

    use std::sync::atomic::Ordering::Relaxed;
    println!(
        "stratbox bench pipeline: {} instances, {} blocks measured after {} of warm-up, block interval {:?}",
        args.instances, args.blocks, args.warmup, args.block_interval
    );
    println!(
        "{:<46} {:>10} {:>10} {:>8}",
        "chain -> engine answered", "p50", "p99", "n"
    );
    let [queued, strategies_ms, engine_ms] = stages;
    for (label, v) in [
        ("every event", all),
        (
            "events with proposals (to SIMULATED/REJECTED)",
            with_proposals,
        ),
        ("  of which: landed -> host reads it", queued),
        ("            strategy instances", strategies_ms),
        ("            engine (gRPC, gates, sim, store)", engine_ms),
    ] {
        let (p50, p99, n) = percentiles(v);
        println!("{label:<46} {:>8.2}ms {:>8.2}ms {:>8}", ms(p50), ms(p99), n);
    }
    println!(
        "events handled {}  proposals {}  simulated {}  rejected {}  events/s {:.0}",
        stats.events.load(Relaxed),
        stats.proposals_sent.load(Relaxed),
        stats.simulated.load(Relaxed),
        stats.rejected.load(Relaxed),
        stats.events.load(Relaxed) as f64 / elapsed.as_secs_f64()
    );
    let refused = engine.metrics().rejections();
    if !refused.is_empty() {
        let by_code: Vec<String> = refused
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        println!("refused (warm-up included) {}", by_code.join(" "));
    }
    // The engine's side, per batch it was sent: [batches, gates, sim wall, sim cpu,
    // simulations, store] (see stratbox_engine::metrics::Stages::snapshot).
    let d = |i: usize| stages1[i].saturating_sub(stages0[i]);
    let batches = d(0).max(1) as f64;
    println!(
        "engine per batch ({} batches): gates {:.2}ms  simulation wall {:.2}ms  \
         ({} distinct simulations)  storage {:.2}ms",
        d(0),
        d(1) as f64 / 1e6 / batches,
        d(2) as f64 / 1e6 / batches,
        d(4),
        d(5) as f64 / 1e6 / batches,
    );
    Ok(())
}

/// p50, p99 (nearest rank) and the count.
fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, usize) {
    v.sort();
    let q = |p: f64| {
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    (q(0.5), q(0.99), v.len())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("stratbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
