//! `stratbox host`: a strategy host (Zone A) as a process of its own. It reaches only the
//! bus and the engine's gRPC port; it holds no credential for anything else.
//!
//! Hosts started with the same `--group` share the stream: each event goes to one host,
//! and a host that dies leaves its unacknowledged events to the others.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use stratbox_bus::{Bus, CHAIN_EVENTS_STREAM, GroupReader, GroupReaderConfig, RedisBus, RedisBusConfig, StartId};
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_pipeline::{Deployment, EngineLink, Fleet, HostService, Market, RetryPolicy, roster};
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct Args {
    /// The engine's gRPC address.
    #[arg(long, env = "STRATBOX_ENGINE", default_value = "http://127.0.0.1:50051")]
    pub engine: String,
    /// The Redis bus.
    #[arg(long, env = "STRATBOX_BUS", default_value = "redis://127.0.0.1:6379")]
    pub bus: String,
    /// Consumer group shared by every host of this deployment.
    #[arg(long, default_value = "hosts")]
    pub group: String,
    /// This host's consumer name: unique among live hosts, stable across its restarts so
    /// it picks up what it had not acknowledged. Defaults to the hostname.
    #[arg(long, env = "STRATBOX_CONSUMER")]
    pub consumer: Option<String>,
    /// A strategy to run, as NAME=FILE.wasm; repeat for several.
    #[arg(long = "strategy", value_parser = parse_strategy, required = true)]
    pub strategies: Vec<(String, PathBuf)>,
    /// Instances per strategy.
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Config JSON given to every instance's `init`; `{pool}` is replaced with the engine's
    /// first pool.
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// Per-strategy limits as JSON (fuel, memory, deadline...); defaults otherwise.
    #[arg(long)]
    pub limits: Option<String>,
    /// Fleet worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

fn parse_strategy(s: &str) -> Result<(String, PathBuf), String> {
    let (name, file) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=FILE.wasm"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("{name:?}: a strategy name is letters, digits, '-' and '_'"));
    }
    Ok((name.to_owned(), PathBuf::from(file)))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let consumer = match args.consumer.clone() {
        Some(c) => c,
        None => std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("host-{}", std::process::id())),
    };
    let limits: StrategyLimits = match &args.limits {
        Some(json) => serde_json::from_str(json).context("--limits is not valid limits JSON")?,
        None => StrategyLimits::default(),
    };

    let link = EngineLink::new(&args.engine, RetryPolicy::default())?;
    eprintln!("host {consumer}: waiting for the engine at {}", args.engine);
    let markets = link.markets(&mut stop.clone()).await?;
    let pool = markets
        .first()
        .and_then(|m| m.pool.as_ref())
        .map(|a| a.value.clone())
        .unwrap_or_default();
    let market = Arc::new(RwLock::new(Market::from_markets(&markets)));
    let history = market.read().unwrap_or_else(|p| p.into_inner()).history();
    let runtime = HostRuntime::new(HostConfig::default())?;
    let fleet = Arc::new(Fleet::start(args.workers, market)?);
    for (name, file) in &args.strategies {
        let component = runtime
            .load_file(file)
            .with_context(|| format!("loading {name} from {}", file.display()))?;
        let deployment = Deployment {
            strategy: name.clone(),
            version: component.sha256()[..12].to_owned(),
            account: format!("book:{name}"),
            config: args.config.replace("{pool}", &pool),
            count: args.instances,
            limits: limits.clone(),
        };
        let members = roster::build(&component, &deployment, &history)?;
        fleet.replace(name, members).await?;
        eprintln!("host {consumer}: {name} x{} ready", args.instances);
    }

    let bus: Arc<dyn Bus> = Arc::new(
        RedisBus::connect(RedisBusConfig::new(args.bus.clone()))
            .await
            .with_context(|| format!("connecting to the bus at {}", args.bus))?,
    );
    let reader = GroupReader::join(
        bus,
        CHAIN_EVENTS_STREAM,
        &args.group,
        &consumer,
        StartId::Beginning,
        GroupReaderConfig {
            block: Duration::from_millis(200),
            ..GroupReaderConfig::default()
        },
    )
    .await?;
    let service = HostService::new(reader, fleet, link);
    let task = tokio::spawn(service.run(stop));
    eprintln!("host {consumer}: consuming {CHAIN_EVENTS_STREAM} in group {}", args.group);
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    let _ = stop_tx.send(true);
    task.await.context("host task")??;
    Ok(())
}
