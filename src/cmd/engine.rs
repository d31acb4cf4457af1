//! `stratbox engine`: Zone B as a gRPC service (with server reflection) and Prometheus
//! metrics, on embedded defaults unless told otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use std::sync::Arc;
use stratbox_bus::{CHAIN_EVENTS_STREAM, RedisBus, RedisBusConfig};
use stratbox_engine::follow::ForkFollower;
use stratbox_engine::gates::{load_risk_config, spot_price_e18};
use stratbox_engine::live::{Live, LiveConfig, LiveError, SignerEndpoint};
use stratbox_engine::price_sources::{EtherFeed, SourcesConfig};
use stratbox_engine::replace::ReplacePolicy;
use stratbox_engine::route::PrivateRoute;
use stratbox_engine::sentinel::{Sentinel, SentinelConfig};
use stratbox_engine::{
    ChainState, Engine, EngineSettings, ExecutionMode, RiskConfig, Store, market_key, server,
};
use stratbox_feed::{Checkpoint, Feed, FeedConfig, FileCheckpoint, MemoryCheckpoint, StartBlock};
use tokio::sync::watch;

/// Bump steps, percent (an alias so clap parses the list as one value).
type Ladder = Vec<u32>;

#[derive(clap::Args)]
pub struct Args {
    /// gRPC address. Plain TCP is served only on a loopback address; any other needs
    /// `--tls-cert` and `--tls-key`.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Serve the gRPC port over TLS with this certificate chain (PEM): operator and host
    /// keys then never cross the network in clear. Clients verify it (`--engine-ca`).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require a client certificate issued by this CA (PEM) from every host and CLI that
    /// connects (`--engine-cert`/`--engine-key` on their side).
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Post critical events (a reconciliation difference, the kill switch engaged, a
    /// strategy halted to L0, a market halted) to this URL in Alertmanager's JSON format,
    /// e.g. `http://alertmanager:9093/api/v2/alerts`. Sent in the background, retried, never
    /// in the way of a trade; dropped and counted when the queue is full.
    #[arg(long, env = "STRATBOX_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,
    /// `sqlite://PATH` (embedded default) or `postgres://...`.
    #[arg(
        long,
        default_value = "sqlite://.stratbox/engine.db",
        env = "STRATBOX_DATABASE"
    )]
    pub database: String,
    /// JSON-RPC node to fork instead of the embedded revm chain (needs `--pool`).
    #[arg(long)]
    pub chain: Option<String>,
    /// Pools to trade on a forked chain (0x addresses; repeat or comma-separate).
    #[arg(long = "pool", value_delimiter = ',')]
    pub pools: Vec<String>,
    /// Block to fork at (default: the node's latest).
    #[arg(long)]
    pub fork_block: Option<u64>,
    /// How far trades go: `shadow` stops at SIMULATED and books virtual fills.
    #[arg(long, default_value = "shadow", value_parser = parse_mode)]
    pub mode: ExecutionMode,
    /// Risk thresholds (TOML, or JSON by extension); defaults from stratbox-risk. Once the
    /// engine has stored limits, a file that loosens them is queued under the timelock
    /// rather than applied (see `stratbox risk`).
    #[arg(long)]
    pub risk_config: Option<PathBuf>,
    /// How long a change that loosens the risk limits waits before it applies (`stratbox
    /// risk set`, or a looser --risk-config at start); tightening applies at once.
    #[arg(long, default_value = "24h", value_parser = super::risk::parse_timelock)]
    pub risk_timelock: Duration,
    /// With `--chain`: no new block for longer than this makes the engine's data stale,
    /// and every proposal is refused (`stale_watermark`) until the next block, however small
    /// the block lag. `0s` judges by block lag only. The embedded chain, whose blocks come
    /// only from a market walking it, is never judged by time.
    #[arg(long, default_value = "60s", value_parser = super::up::parse_duration)]
    pub max_block_age: Duration,
    /// Serve Prometheus `/metrics` on this address.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// DEMO AND TESTS ONLY: report each pool's own spot price as all three oracle sources,
    /// so an engine with no price sources passes the oracle gate. It makes the
    /// triple-oracle check agree with itself: never in production. Without it, an engine on
    /// a `--chain` reads the real sources (`--twap-window`, `--price-feed`, and feeders'
    /// `PushReferencePrice`).
    #[arg(long)]
    pub oracle_from_pool: bool,
    /// On a `--chain`: the window of each pool's own time-weighted average price
    /// (`observe`), the oracle guard's `twap` source. The pool must keep enough
    /// observations (`increaseObservationCardinalityNext`) or the source is not fresh.
    #[arg(long, default_value = "10m", value_parser = super::up::parse_duration)]
    pub twap_window: Duration,
    /// On a `--chain`: a Chainlink-style feed (`AggregatorV3Interface`) quoting a pool's
    /// token0 in token1 (whole tokens), the guard's `chainlink` source: `POOL=FEED`, 0x
    /// addresses (repeat or comma-separate).
    #[arg(long = "price-feed", value_delimiter = ',', value_parser = parse_price_feed)]
    pub price_feeds: Vec<([u8; 20], [u8; 20])>,
    /// A feed round whose `updatedAt` is older than this at the block's time is not fresh.
    #[arg(long, default_value = "1h", value_parser = super::up::parse_duration)]
    pub feed_max_age: Duration,
    /// On a `--chain`: a Chainlink-style ETH feed quoting one ether in the books' quote
    /// token (the first pool's token1), 0x address: the ether mark live gas is valued at on
    /// strategies' books. Without it gas is booked in ether but left out of book values.
    #[arg(long = "ether-feed", value_parser = parse_ether_feed)]
    pub ether_feed: Option<[u8; 20]>,
    /// With `--chain`: run the chain adapter, publishing the pools' events (stamped with
    /// `last_sync_block`) on this Redis bus's `stream:chain:events`. The engine's watermark
    /// and fork then follow the blocks it publishes.
    #[arg(long, env = "STRATBOX_BUS")]
    pub bus: Option<String>,
    /// Where the chain adapter remembers what it published, so a restart neither skips
    /// nor repeats blocks. Without it the feed starts at `--feed-start` every time.
    #[arg(long)]
    pub feed_checkpoint: Option<PathBuf>,
    /// First block the chain adapter publishes when it has no checkpoint (default: the
    /// node's head).
    #[arg(long)]
    pub feed_start: Option<u64>,
    /// How often the chain adapter (or, without `--bus`, the fork) polls the node.
    #[arg(long, default_value = "250ms", value_parser = super::up::parse_duration)]
    pub feed_poll_interval: Duration,
    /// The bus stream the chain adapter appends to (hosts read the same one).
    #[arg(long, default_value = CHAIN_EVENTS_STREAM)]
    pub stream: String,
    /// Live path (`--mode staged|live` on a `--chain`): the signer's engine port,
    /// `https://HOST:PORT`. Trades are signed there (mutual TLS) and sent to the chain.
    #[arg(long, requires_all = ["signer_ca", "signer_cert", "signer_key", "account", "executor"])]
    pub signer: Option<String>,
    /// The CA that issued the signer's certificate (PEM).
    #[arg(long)]
    pub signer_ca: Option<PathBuf>,
    /// The engine's client certificate for the signer (PEM, on the signer's allowlist).
    #[arg(long)]
    pub signer_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    pub signer_key: Option<PathBuf>,
    /// The name the signer's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    pub signer_server_name: String,
    /// The on-chain account live trades are sent from (the signer's account, 0x address).
    #[arg(long)]
    pub account: Option<String>,
    /// The executor contract deployed on the chain that live trades go through (0x address).
    #[arg(long)]
    pub executor: Option<String>,
    /// Live path: how often the account's wallet in the ledger is reconciled against the
    /// chain (a difference engages the kill switch; see `stratbox reconcile`). Two node
    /// reads per asset each time.
    #[arg(long, default_value = "5s", value_parser = super::up::parse_duration)]
    pub reconcile_every: Duration,
    /// Live path: a trade not yet sent to the signer this long after it was decided is
    /// EXPIRED rather than signed on a state that old.
    #[arg(long, default_value = "10m", value_parser = super::up::parse_duration)]
    pub unsigned_deadline: Duration,
    /// Live path: this engine's name on the account's nonce lease. A stable name per engine
    /// (a pod's, say) lets a restarted engine resume its lease at once instead of waiting
    /// for it to expire; each engine needs its own. Default: a fresh name per start.
    #[arg(long)]
    pub lease_holder: Option<String>,
    /// Live path: how long the nonce lease lasts unless renewed: another engine takes the
    /// account over this long after its holder stopped.
    #[arg(long, default_value = "10s", value_parser = super::up::parse_duration)]
    pub lease_ttl: Duration,
    /// Live path: a transaction not included this many blocks after it (or its last bump)
    /// was sent is replaced by the same call with higher fees; 0 never bumps.
    #[arg(long, default_value_t = 3)]
    pub bump_after_blocks: u64,
    /// Live path: each bump's raise of both fees over the previous attempt, percent, at
    /// least 10 (what nodes require of a replacement); as many bumps as steps.
    #[arg(long, default_value = "15,15,15", value_parser = stratbox_engine::replace::parse_ladder)]
    pub bump_ladder: Ladder,
    /// Live path: a trade not included this many blocks after it was first sent is
    /// cancelled (a 0-value transfer to the account at its nonce) and EXPIRED; 0 never.
    #[arg(long, default_value_t = 20)]
    pub inclusion_deadline_blocks: u64,
    /// Live path: a receipt's block is checked against the chain's until it is this many
    /// blocks below the head; a receipt a reorg removes sends its task back to BROADCAST
    /// and reverses what it booked. 0 turns the watch off.
    #[arg(long, default_value_t = 64)]
    pub reorg_depth: u64,
    /// Live path, private route: a relay taking `eth_sendBundle` (JSON-RPC over HTTP).
    /// Trades worth at least `--private-min-value`, and every trade of a
    /// `--private-strategy`, are sent there as bundles for the next block instead of to the
    /// public mempool, and again for each following block until included.
    #[arg(long)]
    pub private_relay: Option<String>,
    /// Private route: the value from which a trade goes to the relay, in raw units of its
    /// pool's token1 (the engine's quote unit: a swap's input at the pool's spot price).
    #[arg(long, requires = "private_relay", value_parser = parse_value)]
    pub private_min_value: Option<stratbox_proto::U256>,
    /// Private route: strategies whose every trade goes to the relay (sensitive), whatever
    /// its value (repeat or comma-separate).
    #[arg(
        long = "private-strategy",
        requires = "private_relay",
        value_delimiter = ','
    )]
    pub private_strategies: Vec<String>,
    /// Private route: turns the public fallback on. A private trade is then sent to the
    /// public mempool when the relay cannot be reached or refuses it, or has not got it
    /// included this many blocks after it first took it (logged, audited, counted).
    /// Without it nothing private is ever sent publicly.
    #[arg(long, requires = "private_relay", value_parser = clap::value_parser!(u64).range(1..))]
    pub private_fallback_after_blocks: Option<u64>,
    /// Private route: a relay call taking longer than this counts as the relay unreachable.
    #[arg(long, default_value = "5s", value_parser = super::up::parse_duration)]
    pub private_relay_timeout: Duration,
    /// Strategy registry: uploads larger than this many bytes are refused.
    #[arg(long, default_value_t = stratbox_registry::admission::DEFAULT_MAX_COMPONENT_BYTES)]
    pub max_component_bytes: usize,
    /// Strategy registry: an upload's compile (a child process) is killed after this long.
    #[arg(long, default_value = "60s", value_parser = super::up::parse_duration)]
    pub compile_timeout: Duration,
    /// With `--chain`: the governance sentinel (on unless `--governance-sentinel false`)
    /// halts a market when an admin event is seen on its pool, a token or the pool's
    /// factory, or their EIP-1967 slots or code change; an operator clears it (`stratbox
    /// governance`). It polls the node every `--feed-poll-interval`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub governance_sentinel: bool,
    /// Governance sentinel: read the watched contracts' EIP-1967 slots and code hash every
    /// this many blocks (four reads per contract; logs are read for every block).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub governance_every_blocks: u64,
}

fn parse_value(s: &str) -> Result<stratbox_proto::U256, String> {
    stratbox_proto::parse_amount(s)
        .map_err(|e| format!("{s:?}: {e} (a base-10 amount of raw units)"))
}

/// How often a starting engine tries its live path's recovery pass against a signer or node
/// that fails, before it starts anyway and leaves the rest to the live path's steps.
const RECOVERY_TRIES: u32 = 10;

fn parse_ether_feed(s: &str) -> Result<[u8; 20], String> {
    stratbox_proto::parse_address(s.trim()).map_err(|e| format!("--ether-feed {s:?}: {e}"))
}

fn parse_price_feed(s: &str) -> Result<([u8; 20], [u8; 20]), String> {
    let (pool, feed) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected POOL=FEED (two 0x addresses)"))?;
    let parse = |what: &str, a: &str| {
        stratbox_proto::parse_address(a.trim()).map_err(|e| format!("{what} {a:?}: {e}"))
    };
    Ok((parse("pool", pool)?, parse("feed", feed)?))
}

fn parse_mode(s: &str) -> Result<ExecutionMode, String> {
    match s {
        "shadow" => Ok(ExecutionMode::Shadow),
        "staged" => Ok(ExecutionMode::Staged),
        "live" => Ok(ExecutionMode::Live),
        other => Err(format!("unknown mode {other:?} (shadow, staged or live)")),
    }
}

fn feed_pool_prices(engine: &Engine) {
    let quotes: Vec<(String, stratbox_proto::U256)> = engine
        .chain()
        .pool_infos()
        .iter()
        .map(|(_, i)| {
            (
                market_key(&i.token0, &i.token1),
                spot_price_e18(i.sqrt_price_x96),
            )
        })
        .collect();
    for (market, price) in quotes {
        for source in ["pool-spot-a", "pool-spot-b", "pool-spot-c"] {
            engine.update_oracle(&market, source, price);
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let risk = match &args.risk_config {
        Some(p) => load_risk_config(p)?,
        None => RiskConfig::default(),
    };
    // Before anything starts: a port that would carry keys in clear is refused here.
    let tls = args
        .tls_cert
        .as_ref()
        .zip(args.tls_key.as_ref())
        .map(|(cert, key)| server::ServerTls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        });
    match &tls {
        Some(t) => t.check()?,
        None => server::check_plain_listen(args.listen)?,
    }
    let store = Store::connect(&args.database)
        .await
        .with_context(|| format!("opening the database {}", redact(&args.database)))?;
    let chain = match &args.chain {
        None => tokio::task::spawn_blocking(ChainState::embedded)
            .await?
            .context("deploying the embedded chain")?,
        Some(url) => {
            anyhow::ensure!(
                !args.pools.is_empty(),
                "--chain needs at least one --pool to trade"
            );
            let pools = args
                .pools
                .iter()
                .map(|p| stratbox_proto::parse_address(p).with_context(|| format!("--pool {p}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let fork = ChainState::fork(url, &pools, args.fork_block, 0, None)
                .await
                .context("forking the chain")?;
            match &args.executor {
                Some(e) => {
                    let executor = stratbox_proto::parse_address(e)
                        .with_context(|| format!("--executor {e}"))?;
                    tokio::task::spawn_blocking(move || fork.use_executor(executor))
                        .await?
                        .context("--executor")?
                }
                None => fork,
            }
        }
    };
    let live_account = args
        .account
        .as_deref()
        .map(|a| stratbox_proto::parse_address(a).with_context(|| format!("--account {a}")))
        .transpose()?;
    if args.signer.is_some() {
        anyhow::ensure!(
            args.chain.is_some(),
            "--signer needs --chain: live trades are sent to a real chain's node"
        );
        anyhow::ensure!(
            args.mode != ExecutionMode::Shadow,
            "--signer needs --mode staged or live (shadow trades stop at SIMULATED)"
        );
    } else if args.mode != ExecutionMode::Shadow {
        eprintln!(
            "warning: --mode {} without --signer: trades stop at STAGED until an engine with a signer takes them",
            args.mode
        );
    }
    let settings = EngineSettings {
        mode: args.mode,
        risk,
        // Only what the registry admitted may propose (see stratbox_engine::catalog).
        strategies: stratbox_engine::StrategyCheck::Registry,
        live_account,
        risk_timelock: args.risk_timelock,
        max_block_age: (args.chain.is_some() && !args.max_block_age.is_zero())
            .then_some(args.max_block_age),
        ..EngineSettings::default()
    };
    let engine = Engine::start(store, chain, settings)
        .await
        .context("starting the engine")?;
    if let Some(url) = &args.chain {
        engine.set_chain_probe(node_probe(url)?);
    }
    if let Some(url) = &args.alert_webhook {
        // Detached: it posts until the engine is dropped at exit.
        drop(
            engine
                .start_alert_webhook(stratbox_engine::alert::WebhookConfig::new(url))
                .context("--alert-webhook")?,
        );
        println!(
            "alerts: critical events posted to {}",
            stratbox_engine::alert::redacted(url)
        );
    }
    // A followed chain is quoted by its follower at every block instead.
    if args.oracle_from_pool && args.chain.is_none() {
        feed_pool_prices(&engine);
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let follow = match &args.chain {
        Some(url) => Some(follow_chain(&args, url, &engine, stop_rx.clone()).await?),
        None => None,
    };
    let sentinel = match (&args.chain, args.governance_sentinel) {
        (Some(url), true) => {
            let config = SentinelConfig {
                poll_interval: args.feed_poll_interval,
                check_every_blocks: args.governance_every_blocks,
                ..SentinelConfig::new(url)
            };
            let mut sentinel = Sentinel::connect(engine.clone(), config)
                .await
                .context("starting the governance sentinel")?;
            // The first pass before the port opens: baselines taken, stored halts in force.
            sentinel
                .pass()
                .await
                .context("the governance sentinel's first pass")?;
            println!(
                "governance sentinel: watching {} market(s), slots and code every {} block(s)",
                sentinel.markets().len(),
                args.governance_every_blocks
            );
            Some(tokio::spawn(sentinel.run(stop_rx.clone())))
        }
        _ => None,
    };
    let live = match (&args.signer, &args.chain, live_account) {
        (Some(signer), Some(url), Some(account)) => {
            anyhow::ensure!(
                args.lease_ttl >= Duration::from_millis(500),
                "--lease-ttl must be at least 500ms: the holder renews it between steps"
            );
            if let Some(h) = &args.lease_holder {
                anyhow::ensure!(
                    !h.trim().is_empty() && h.len() <= 200 && !h.chars().any(char::is_control),
                    "--lease-holder must be 1 to 200 printable characters"
                );
            }
            let endpoint = SignerEndpoint {
                url: signer.clone(),
                ca: args.signer_ca.clone().context("--signer-ca")?,
                cert: args.signer_cert.clone().context("--signer-cert")?,
                key: args.signer_key.clone().context("--signer-key")?,
                server_name: args.signer_server_name.clone(),
            };
            let config = LiveConfig {
                reconcile_every: args.reconcile_every,
                unsigned_deadline: args.unsigned_deadline,
                lease_ttl: args.lease_ttl,
                replace: ReplacePolicy {
                    bump_after_blocks: args.bump_after_blocks,
                    ladder: args.bump_ladder.clone(),
                    inclusion_deadline_blocks: args.inclusion_deadline_blocks,
                },
                reorg_depth: args.reorg_depth,
                private: args.private_relay.as_ref().map(|relay| PrivateRoute {
                    min_value: args.private_min_value,
                    sensitive_strategies: args.private_strategies.clone(),
                    fallback_after_blocks: args.private_fallback_after_blocks,
                    relay_timeout: args.private_relay_timeout,
                    ..PrivateRoute::new(relay)
                }),
                ..LiveConfig::new(url, account, endpoint)
            };
            let config = match &args.lease_holder {
                Some(h) => LiveConfig {
                    holder: h.clone(),
                    ..config
                },
                None => config,
            };
            let live = Live::connect(engine.clone(), config)
                .await
                .context("starting the live path")?;
            println!(
                "live path: trades from {} signed by {signer}",
                stratbox_engine::proposal::hex_address(&account)
            );
            if let Some(relay) = &args.private_relay {
                let from = args.private_min_value.map(|v| v.to_string());
                let fallback = args
                    .private_fallback_after_blocks
                    .map(|n| format!("on (relay failing, or not included after {n} blocks)"));
                println!(
                    "private route: relay {relay}; from value {}; sensitive strategies [{}]; public fallback {}",
                    from.as_deref().unwrap_or("(none)"),
                    args.private_strategies.join(", "),
                    fallback.as_deref().unwrap_or("off"),
                );
            }
            // Before the gRPC port opens: every task a crash left open is resolved against
            // the chain first, so no proposal is accepted on a state the engine is unsure of.
            // A signer or node that is down delays it (a few tries, a second apart); it
            // does not keep the engine from starting: the live path's steps finish what is
            // left, oldest first, and take no nonce while an earlier task waits before
            // signing. A bad configuration or an unreadable row stops the start.
            let mut tries = 0;
            let r = loop {
                tries += 1;
                match live.recover().await {
                    Ok(r) => break Some(r),
                    Err(e @ (LiveError::Config(_) | LiveError::Corrupt { .. })) => {
                        return Err(e).context("recovering the live path's open tasks");
                    }
                    Err(e) if tries < RECOVERY_TRIES => {
                        eprintln!("live path recovery (try {tries}): {e}; trying again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        eprintln!(
                            "live path recovery incomplete after {tries} tries: {e}; the live path's steps finish it"
                        );
                        break None;
                    }
                }
            };
            if let Some(r) = r {
                println!(
                    "live path recovery: {} move(s), {} task(s) still open, in {} ms{}",
                    r.moved.len(),
                    r.still_open,
                    r.elapsed.as_millis(),
                    if r.leased {
                        ""
                    } else {
                        " (the nonce lease is held by another engine)"
                    }
                );
            }
            Some(tokio::spawn(live.run(stop_rx.clone())))
        }
        _ => None,
    };
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let listener = server::bind(args.listen).await?;
    let grpc_addr = listener.local_addr()?;
    // The strategy registry on the engine's own database and port; uploads compile in a
    // child process of this same binary (`stratbox strategy compile`).
    let registry = stratbox_registry::Registry::open(
        engine.store().pool().clone(),
        engine.store().backend(),
        stratbox_registry::RegistryConfig {
            max_component_bytes: args.max_component_bytes,
            compile_timeout: args.compile_timeout,
            ..Default::default()
        },
        Arc::new(stratbox_registry::ProcessCompiler::stratbox(
            std::env::current_exe().context("locating the stratbox binary")?,
            args.compile_timeout,
        )),
    )
    .await
    .context("opening the strategy registry")?;
    // A version is admitted for proposals by the time its uploader is told it was stored.
    let catalog_engine = engine.clone();
    registry.on_upload(Arc::new(move || {
        let engine = catalog_engine.clone();
        Box::pin(async move {
            if let Err(e) = engine.refresh_catalog().await {
                tracing::warn!(error = %e, "re-reading the admitted strategies after an upload");
            }
        })
    }));
    // Operator actions on the engine (kill switch, restoring a halted strategy) take the
    // registry's operator keys.
    let transport = match &tls {
        Some(t) if t.client_ca.is_some() => "gRPC over TLS, client certificates required",
        Some(_) => "gRPC over TLS",
        None => "gRPC",
    };
    let grpc = tokio::spawn(server::serve_grpc_tls(
        engine.clone(),
        stratbox_registry::routes(registry.clone()),
        Some(registry.access()),
        tls,
        listener,
        stopped(stop_rx.clone()),
    ));
    let metrics = match args.metrics_listen {
        Some(addr) => {
            let l = server::bind(addr).await?;
            println!("metrics on http://{}/metrics", l.local_addr()?);
            Some(tokio::spawn(server::serve_metrics(
                engine.clone(),
                l,
                stopped(stop_rx.clone()),
            )))
        }
        None => None,
    };
    let feeder = (args.oracle_from_pool && args.chain.is_none()).then(|| {
        let engine = engine.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => feed_pool_prices(&engine),
                    _ = rx.changed() => break,
                }
            }
        })
    });
    let status = engine.status();
    println!(
        "stratbox engine listening on {grpc_addr} ({transport}, reflection on); database {} ({}); chain id {}, watermark {}; mode {}",
        redact(&args.database),
        engine.store().backend().name(),
        status.chain_id,
        status.last_sync_block,
        status.mode
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("shutting down");
    // Ends hosts' WatchDeployments streams, which the gRPC server would otherwise wait on.
    registry.shutdown();
    let _ = stop_tx.send(true);
    grpc.await?.context("gRPC server")?;
    if let Some(m) = metrics {
        m.await?.context("metrics server")?;
    }
    if let Some(f) = feeder {
        let _ = f.await;
    }
    if let Some(f) = follow {
        f.await?.context("chain adapter")?;
    }
    if let Some(l) = live {
        l.await?;
    }
    if let Some(s) = sentinel {
        s.await?;
    }
    // Records changed in the last second (level changes are stored already).
    if let Err(e) = engine.flush_permissions().await {
        eprintln!("storing permission records at shutdown: {e}");
    }
    engine.store().close().await;
    Ok(())
}

/// Keeps the engine at the forked node's head: with `--bus`, the chain adapter publishes
/// each block's pool events and, before it does, moves the engine's fork and watermark to
/// that block; without, only the fork and watermark follow the head.
async fn follow_chain(
    args: &Args,
    url: &str,
    engine: &Engine,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let pools = engine.chain().pools();
    let follower = ForkFollower::new(engine.clone(), url, &pools, args.oracle_from_pool);
    let follower = if args.oracle_from_pool {
        eprintln!(
            "--oracle-from-pool: DEMO ONLY, the oracle guard compares each pool's price with itself"
        );
        follower
    } else {
        for (pool, _) in &args.price_feeds {
            anyhow::ensure!(
                pools.contains(pool),
                "--price-feed names pool {}, which the engine does not trade",
                stratbox_engine::proposal::hex_address(pool)
            );
        }
        follower
            .with_sources(SourcesConfig {
                twap_window: args.twap_window,
                feeds: args.price_feeds.clone(),
                feed_max_age: args.feed_max_age,
                ether_feed: match args.ether_feed {
                    None => None,
                    Some(feed) => {
                        let quote = engine.chain().pool_infos().first().map(|(_, i)| i.token1);
                        let quote = quote.context("--ether-feed: the engine trades no pool")?;
                        Some(EtherFeed { feed, quote })
                    }
                },
            })
            .map_err(anyhow::Error::msg)?
    };
    let follower = Arc::new(follower);
    let Some(bus_url) = &args.bus else {
        let task = stratbox_engine::follow::follow_head(
            url.to_owned(),
            follower,
            args.feed_poll_interval,
            stop,
        );
        return Ok(tokio::spawn(async move {
            task.await;
            Ok(())
        }));
    };
    let bus = Arc::new(
        RedisBus::connect(RedisBusConfig::new(bus_url.clone()))
            .await
            .with_context(|| format!("connecting to the bus at {bus_url}"))?,
    );
    let checkpoint: Box<dyn Checkpoint> = match &args.feed_checkpoint {
        Some(path) => Box::new(FileCheckpoint::new(path)),
        None => Box::new(MemoryCheckpoint::new()),
    };
    let config = FeedConfig {
        poll_interval: args.feed_poll_interval,
        stream: args.stream.clone(),
        start: args
            .feed_start
            .map_or(StartBlock::Latest, StartBlock::Number),
        ..FeedConfig::new(
            url,
            pools
                .iter()
                .map(|p| stratbox_sim::Address::from(*p))
                .collect(),
        )
    };
    let feed = Feed::connect(config, bus, checkpoint)
        .await
        .context("connecting the chain adapter")?
        .with_observer(follower);
    println!(
        "chain adapter: following {url} (chain id {}) into {} on {bus_url}",
        feed.chain_id(),
        args.stream
    );
    Ok(tokio::spawn(async move {
        feed.run(stop).await.map_err(anyhow::Error::from)
    }))
}

/// Readiness asks the node for its block number (see `stratbox_engine::health`).
fn node_probe(url: &str) -> anyhow::Result<stratbox_engine::health::ChainProbe> {
    use alloy::providers::{Provider, ProviderBuilder};
    let provider = ProviderBuilder::new()
        .connect_http(url.parse().with_context(|| format!("--chain {url}"))?)
        .erased();
    Ok(std::sync::Arc::new(move || {
        let provider = provider.clone();
        Box::pin(async move {
            provider
                .get_block_number()
                .await
                .map(|_| ())
                .map_err(|e| format!("the chain's node: {e}"))
        })
    }))
}

/// Hides a password in a database URL before printing it.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
