//! `stratbox bench rollout`: what a deploy costs the event path.
//!
//! A swap or a scale builds and `init`s its instances off the event path; each worker shard
//! then stops taking events only for the switch itself. That stop (the longest over the
//! shards) is the pause an event arriving at that moment waits, and what `tests/hot_swap.rs`
//! and `pipeline/tests/rollout.rs` check happens without measuring it: timings belong to a
//! bench run on purpose, not to a test's output.
//!
//! Each round, on one fleet with real catalog components:
//! - swaps a stateful strategy (momentum) between two versions, its state handed over;
//! - scales a stateless one (clamm-maker) from 1 to `--scale-to` instances and back;
//!
//! with a block dispatched to every instance between changes, so every change lands on a
//! fleet that is working. Medians and p99 over the rounds, and the share of each change that
//! fell on the event path (pause / whole change).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use stratbox_host::backtest::quantile;
use stratbox_host::check::sha256_hex;
use stratbox_host::replay::SAMPLE_POOL;
use stratbox_host::wit::{BlockInfo, Event};
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_host_service::{ComponentSource, Fleet, Market, OutcomeKind, Rollout};
use stratbox_proto::v1::{self, DeploymentSet};

#[derive(clap::Args)]
pub struct Args {
    /// Rounds of each change (a swap, a scale up, a scale down).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Instances of the stateful strategy that every swap replaces.
    #[arg(long, default_value_t = 4)]
    pub swap_instances: u32,
    /// Instances a scale goes up to from one, and back down from.
    #[arg(long, default_value_t = 200)]
    pub scale_to: u32,
    /// Worker shards of the fleet (a host's `--workers`).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Print the rows as one JSON object too.
    #[arg(long)]
    pub json: bool,
}

/// Catalog components by sha256, as the registry would serve them.
struct Components(HashMap<String, Vec<u8>>);

impl ComponentSource for Components {
    async fn fetch(&self, sha256: &str) -> Result<Vec<u8>, String> {
        self.0
            .get(sha256)
            .cloned()
            .ok_or_else(|| format!("no component {sha256}"))
    }
}

/// One kind of change over the rounds: the pause on the event path and the whole change.
#[derive(Default)]
struct Samples {
    pause: Vec<Duration>,
    whole: Vec<Duration>,
}

struct Row {
    name: String,
    median: Option<Duration>,
    p99: Option<Duration>,
    value: String,
}

fn market() -> Market {
    let addr = |v: &str| {
        Some(v1::Address {
            value: v.to_owned(),
        })
    };
    let amount = |v: &str| {
        Some(v1::Amount {
            value: v.to_owned(),
        })
    };
    Market::from_markets(&[v1::Market {
        pool: addr(SAMPLE_POOL),
        token0: addr("0x0000000000000000000000000000000000000010"),
        token1: addr("0x0000000000000000000000000000000000000020"),
        fee: 3000,
        tick_spacing: 60,
        sqrt_price_x96: amount("79228162514264337593543950336"),
        tick: 0,
        liquidity: amount("100000000000000000000"),
        block: 1,
    }])
}

fn deployment(
    name: &str,
    version: &str,
    sha256: &str,
    instances: u32,
    config: &str,
    revision: u64,
) -> v1::Deployment {
    v1::Deployment {
        name: name.into(),
        version: version.into(),
        sha256: sha256.into(),
        instances,
        config_json: config.into(),
        revision,
        ..Default::default()
    }
}

/// Gives block `n` to every instance; fails unless all `expected` instances answered
/// without an error, so a broken change is never measured as a fast one.
async fn block(fleet: &Fleet, n: u64, expected: usize) -> anyhow::Result<()> {
    let event = Event::NewBlock(BlockInfo {
        number: n,
        timestamp: n * 12,
        hash: String::new(),
    });
    fleet
        .market()
        .write()
        .map_err(|_| anyhow::anyhow!("the market lock is poisoned"))?
        .apply(&event, n, n * 12);
    let answers = fleet.dispatch(event, &format!("bench-{n}")).await?;
    anyhow::ensure!(
        answers.len() == expected,
        "block {n}: {} instances answered, expected {expected}",
        answers.len()
    );
    if let Some(failed) = answers.iter().find(|a| a.result.is_err()) {
        anyhow::bail!(
            "block {n}: {} failed: {:?}",
            failed.identity.instance_id,
            failed.result.as_ref().err()
        );
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        args.swap_instances > 0,
        "--swap-instances must be at least 1"
    );
    anyhow::ensure!(args.scale_to > 1, "--scale-to must be more than 1");
    anyhow::ensure!(args.workers > 0, "--workers must be at least 1");

    let mut bytes = HashMap::new();
    let mut sha = HashMap::new();
    for name in ["momentum", "clamm-maker"] {
        let b = stratbox_strategies::bytes(name).with_context(|| name.to_string())?;
        sha.insert(name, sha256_hex(&b));
        bytes.insert(sha256_hex(&b), b);
    }
    let components = Components(bytes);
    let fleet = Arc::new(Fleet::start(args.workers, Arc::new(RwLock::new(market())))?);
    let max_instances = (args.swap_instances as usize) * 2 + args.scale_to as usize + 16;
    let runtime = tokio::task::spawn_blocking(move || {
        HostRuntime::new(HostConfig {
            max_instances,
            ..HostConfig::default()
        })
    })
    .await??;
    let mut rollout = Rollout::new(
        "bench-host",
        fleet.clone(),
        runtime,
        StrategyLimits::default(),
    );

    let momentum = stratbox_strategies::momentum_config("{pool}");
    let maker = stratbox_strategies::clamm_maker_config("{pool}");
    let mut revision = 0u64;
    let mut blocks = 1u64;
    // The desired state the registry would send: `m` at a version, `c` at a count.
    let mut desired = |m_version: &str, c_instances: u32| {
        revision += 1;
        DeploymentSet {
            revision,
            deployments: vec![
                deployment(
                    "m",
                    m_version,
                    &sha["momentum"],
                    args.swap_instances,
                    &momentum,
                    revision,
                ),
                deployment("c", "1", &sha["clamm-maker"], c_instances, &maker, revision),
            ],
        }
    };

    let started = rollout.reconcile(&desired("1", 1), &components).await;
    for outcome in &started {
        anyhow::ensure!(
            outcome.switched(),
            "{} did not start: {:?}",
            outcome.name,
            outcome.result
        );
    }
    let small = args.swap_instances as usize + 1;
    let large = args.swap_instances as usize + args.scale_to as usize;
    block(&fleet, blocks, small).await?;

    let (mut swap, mut up, mut down) = (Samples::default(), Samples::default(), Samples::default());
    let mut version = "1";
    for _ in 0..args.rounds {
        version = if version == "1" { "2" } else { "1" };
        let changes = [
            (desired(version, 1), OutcomeKind::Swap, &mut swap, small),
            (
                desired(version, args.scale_to),
                OutcomeKind::Scale,
                &mut up,
                large,
            ),
            (desired(version, 1), OutcomeKind::Scale, &mut down, small),
        ];
        for (set, kind, samples, live) in changes {
            let t = Instant::now();
            let outcomes = rollout.reconcile(&set, &components).await;
            let whole = t.elapsed();
            let [outcome] = outcomes.as_slice() else {
                anyhow::bail!("one change expected, the rollout made {}", outcomes.len());
            };
            anyhow::ensure!(
                outcome.kind == kind,
                "{}: a {kind:?} expected, got {:?}",
                outcome.name,
                outcome.kind
            );
            let switch = outcome
                .result
                .as_ref()
                .map_err(|e| anyhow::anyhow!("{} refused: {e}", outcome.name))?;
            if kind == OutcomeKind::Swap {
                anyhow::ensure!(
                    switch.handed_over == args.swap_instances as usize,
                    "state reached {} of {} new instances: {:?}",
                    switch.handed_over,
                    args.swap_instances,
                    switch.hand_over_failures
                );
            }
            samples.pause.push(switch.max_pause);
            samples.whole.push(whole);
            blocks += 1;
            block(&fleet, blocks, live).await?;
        }
    }

    let mut rows = Vec::new();
    for (what, samples) in [
        (
            format!("swap, {} stateful momentum instances", args.swap_instances),
            &mut swap,
        ),
        (format!("scale clamm-maker 1 -> {}", args.scale_to), &mut up),
        (
            format!("scale clamm-maker {} -> 1", args.scale_to),
            &mut down,
        ),
    ] {
        samples.pause.sort();
        samples.whole.sort();
        let pause = quantile(&samples.pause, 0.5);
        let whole = quantile(&samples.whole, 0.5);
        rows.push(Row {
            name: format!("{what}: pause on the event path"),
            median: Some(pause),
            p99: Some(quantile(&samples.pause, 0.99)),
            value: String::new(),
        });
        rows.push(Row {
            name: format!("{what}: whole change"),
            median: Some(whole),
            p99: Some(quantile(&samples.whole, 0.99)),
            value: String::new(),
        });
        rows.push(Row {
            name: format!("{what}: pause / whole (median ratio)"),
            median: None,
            p99: None,
            value: format!(
                "{:.5}",
                pause.as_secs_f64() / whole.as_secs_f64().max(1e-12)
            ),
        });
    }

    println!(
        "stratbox bench rollout: {} rounds, {} worker shards",
        args.rounds, args.workers
    );
    println!(
        "{:<70} {:>12} {:>12} {:>10}",
        "measurement", "median", "p99", "value"
    );
    println!("{}", "-".repeat(107));
    for r in &rows {
        println!(
            "{:<70} {:>12} {:>12} {:>10}",
            r.name,
            fmt(r.median),
            fmt(r.p99),
            r.value
        );
    }
    if args.json {
        let json: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "median_ns": r.median.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                    "p99_ns": r.p99.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                    "value": r.value,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&json)?);
    }
    Ok(())
}

/// Pauses are microseconds and whole changes milliseconds: each in its own unit.
fn fmt(d: Option<Duration>) -> String {
    match d {
        None => String::new(),
        Some(d) if d < Duration::from_millis(1) => {
            format!("{:.2} µs", d.as_nanos() as f64 / 1e3)
        }
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
    }
}
