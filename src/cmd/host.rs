//! `stratbox host`: a strategy host (Zone A) as a process of its own. It reaches only the
//! bus and the engine's gRPC port; it holds no credential for anything else.
//!
//! Hosts started with the same `--group` share the stream: each event goes to one host,
//! and a host that dies leaves its unacknowledged events to the others.
//!
//! Its strategies start like a deploy (see `stratbox_host_service::assemble`): compiled and
//! `init`-ed on blocking threads, each on its own. One that fails to start is refused,
//! logged with its reason and counted (`stratbox_host_strategy_quarantined`), and the
//! host runs the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use stratbox_bus::{Bus, CHAIN_EVENTS_STREAM, RedisBus, RedisBusConfig};
use stratbox_host::display::Escaped;
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_host_service::{
    BusSeat, EngineLink, HostKey, HostMetrics, HostPlan, LocalStrategy, RegistryLink, RetryPolicy,
    Rollout, assemble, rollout,
};
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct Args {
    /// The engine's gRPC address.
    #[arg(
        long,
        env = "STRATBOX_ENGINE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub engine: String,
    /// The Redis bus.
    #[arg(long, env = "STRATBOX_BUS", default_value = "redis://127.0.0.1:6379")]
    pub bus: String,
    /// The bus stream of chain events (the engine's `--stream`).
    #[arg(long, default_value = CHAIN_EVENTS_STREAM)]
    pub stream: String,
    /// Consumer group shared by every host of this deployment.
    #[arg(long, default_value = "hosts")]
    pub group: String,
    /// This host's consumer name: unique among live hosts, stable across its restarts so
    /// it picks up what it had not acknowledged. Defaults to the hostname.
    #[arg(long, env = "STRATBOX_CONSUMER")]
    pub consumer: Option<String>,
    /// A strategy to run, as NAME=FILE.wasm; repeat for several.
    #[arg(long = "strategy", value_parser = parse_strategy)]
    pub strategies: Vec<(String, PathBuf)>,
    /// A read-only directory of components: every `NAME.wasm` in it runs as strategy NAME
    /// (the deployment's mount, see deploy/compose.yaml).
    #[arg(long = "strategies")]
    pub strategy_dir: Option<PathBuf>,
    /// Instances per strategy.
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Config JSON given to every instance's `init`; `{pool}` is replaced with the engine's
    /// first pool.
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// The config of one strategy, as NAME=FILE.json (instead of `--config`); repeat for
    /// several. `{pool}` is replaced as in `--config`.
    #[arg(long = "strategy-config", value_parser = parse_strategy)]
    pub strategy_configs: Vec<(String, PathBuf)>,
    /// Per-strategy limits as JSON (fuel, memory, deadline...); defaults otherwise.
    #[arg(long)]
    pub limits: Option<String>,
    /// Fleet worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Where compiled components are kept, so a restart (or a second host on the same
    /// disk) loads them instead of compiling again: an interpreter-sized component (a
    /// Python strategy, ~18 MB) takes seconds to compile. Only this host's own artifacts are
    /// ever read from it. Without it every start compiles.
    #[arg(long, env = "STRATBOX_HOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Also run what the engine's strategy registry deploys (`stratbox strategy deploy`),
    /// following its changes while running: hot swaps, scaling, rollbacks. Needs no
    /// operator key. With this flag `--strategy`/`--strategies` are optional.
    #[arg(long)]
    pub watch_deployments: bool,
    /// The host's key (`stratbox host-key add NAME`), in a file: an engine served with its
    /// registry accepts proposals and rollout reports only from hosts holding one.
    #[arg(long, env = "STRATBOX_HOST_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Serve Prometheus `/metrics` on this address (events, calls, fuel, errors by kind,
    /// latencies, proposals).
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How the engine is verified (`--engine-ca`, and a client certificate when the engine
    /// requires one).
    #[command(flatten)]
    pub tls: super::engine_tls::EngineTls,
}

fn parse_strategy(s: &str) -> Result<(String, PathBuf), String> {
    let (name, file) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=FILE.wasm"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "{name:?}: a strategy name is letters, digits, '-' and '_'"
        ));
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

    let mut wanted = args.strategies.clone();
    if let Some(dir) = &args.strategy_dir {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                wanted.push(
                    parse_strategy(&format!("{stem}={}", path.display()))
                        .map_err(anyhow::Error::msg)?,
                );
            }
        }
    }
    if wanted.is_empty() && !args.watch_deployments {
        anyhow::bail!(
            "no strategy to run: give --strategy NAME=FILE.wasm, --strategies DIR or --watch-deployments"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in &wanted {
        anyhow::ensure!(seen.insert(name), "strategy {name} is given twice");
    }
    let mut configs = std::collections::BTreeMap::new();
    for (name, file) in &args.strategy_configs {
        anyhow::ensure!(
            wanted.iter().any(|(n, _)| n == name),
            "--strategy-config {name}: no strategy of that name is given"
        );
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the config of {name} from {}", file.display()))?;
        serde_json::from_str::<serde_json::Value>(&text)
            .with_context(|| format!("the config of {name} in {} is not JSON", file.display()))?;
        configs.insert(name.clone(), text);
    }
    // The key from a file, or from STRATBOX_HOST_KEY (never a flag: it would land in shell
    // history and `ps`).
    let key = match (&args.key_file, std::env::var("STRATBOX_HOST_KEY")) {
        (Some(path), _) => HostKey::from_file(path)?,
        (None, Ok(text)) => HostKey::new(&text)?,
        (None, Err(_)) => HostKey::none(),
    };
    let link = EngineLink::over(args.tls.endpoint(&args.engine)?, RetryPolicy::default())
        .with_key(key.clone());
    // Creating the engine reserves its pool and reading components is file I/O: neither
    // belongs on an async worker thread. Compiling waits for the start-up below, which
    // runs on blocking threads too.
    let (runtime, strategies) = {
        let wanted = wanted.clone();
        let config = args.config.clone();
        let instances = args.instances;
        let host_config = HostConfig {
            cache_dir: args.cache_dir.clone(),
            ..HostConfig::default()
        };
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let runtime = HostRuntime::new(host_config)?;
            // What the host can hold, before it is asked to: the limits an operator may
            // need to raise are named here rather than at the instance that fails.
            tracing::info!(capacity = %runtime.capacity(), "host capacity");
            let mut strategies = Vec::new();
            for (name, file) in wanted {
                let bytes = stratbox_host::runtime::read_capped(
                    &file,
                    runtime.config().max_component_bytes,
                )
                .with_context(|| format!("reading {name} from {}", file.display()))?;
                strategies.push(LocalStrategy {
                    config: configs
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| config.clone()),
                    name,
                    bytes,
                    instances,
                });
            }
            Ok((runtime, strategies))
        })
        .await
        .context("the start-up task")??
    };
    let bus: Arc<dyn Bus> = Arc::new(
        RedisBus::connect(RedisBusConfig::new(args.bus.clone()))
            .await
            .with_context(|| format!("connecting to the bus at {}", args.bus))?,
    );
    let seat = BusSeat {
        stream: args.stream.clone(),
        group: args.group.clone(),
        consumer: consumer.clone(),
        block: Duration::from_millis(200),
    };
    let metrics = args.metrics_listen.map(|_| HostMetrics::new());
    eprintln!("host {consumer}: waiting for the engine at {}", args.engine);
    let assembled = assemble::host(
        link,
        bus,
        HostPlan {
            seat,
            runtime: runtime.clone(),
            limits: limits.clone(),
            strategies,
            workers: args.workers,
            metrics: metrics.clone(),
        },
        &stop,
    )
    .await?;
    for outcome in &assembled.started {
        match outcome.refusal() {
            None => eprintln!(
                "host {consumer}: strategy {} started ({} instances)",
                Escaped(&outcome.name),
                outcome.instances
            ),
            Some(reason) => eprintln!(
                "host {consumer}: strategy {} quarantined, not run ({}): {reason}",
                Escaped(&outcome.name),
                outcome.error_kind
            ),
        }
    }
    let (service, fleet, memories) = (assembled.service, assembled.fleet, assembled.memories);
    let watcher = if args.watch_deployments {
        let registry = RegistryLink::over(args.tls.endpoint(&args.engine)?).with_key(key.clone());
        let mut rollout = Rollout::new(consumer.clone(), fleet.clone(), runtime.clone(), limits);
        rollout.memories_from(memories);
        if let Some(m) = &metrics {
            rollout.metrics_to(m.clone());
        }
        eprintln!(
            "host {consumer}: following the strategy registry at {}",
            args.engine
        );
        Some(tokio::spawn(rollout::watch(
            registry,
            rollout,
            stop.clone(),
        )))
    } else {
        None
    };
    let metrics = match (args.metrics_listen, metrics) {
        (Some(addr), Some(m)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics address {addr}"))?;
            eprintln!(
                "host {consumer}: metrics on http://{}/metrics",
                listener.local_addr()?
            );
            let mut rx = stop.clone();
            Some(tokio::spawn(stratbox_host_service::metrics::serve(
                m,
                listener,
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                },
            )))
        }
        _ => None,
    };
    let task = tokio::spawn(service.run(stop));
    eprintln!(
        "host {consumer}: consuming {} in group {}",
        args.stream, args.group
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    let _ = stop_tx.send(true);
    task.await.context("host task")??;
    if let Some(w) = watcher {
        w.await.context("registry watcher")?;
    }
    if let Some(m) = metrics {
        m.await?.context("metrics server")?;
    }
    Ok(())
}
