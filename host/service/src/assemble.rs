//! Putting a host together: the engine's markets, a fleet with the requested strategies
//! started, and a service reading the bus. `stratbox host`, `stratbox up` and the
//! end-to-end tests all build their hosts here, so they run the same thing.
//!
//! The host follows the engine's books ([`crate::balances::follow`], until `stop`) so each
//! instance is shown its own account's balances.
//!
//! The strategies start as a deploy does ([`Rollout::start_local`]): compiled, built and
//! `init`-ed on blocking threads, never on the async ones, and each on its own: one that
//! fails to start is refused (logged, counted in the metrics, returned in
//! [`Assembled::started`]) and the host runs the others.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use stratbox_bus::{Bus, BusError, GroupReader, GroupReaderConfig, StartId};
use stratbox_host::{HostRuntime, StrategyLimits};
use tokio::sync::watch;

use crate::delivery::{DeliveryError, EngineLink};
use crate::fleet::{Fleet, FleetError};
use crate::market::Market;
use crate::memory::MemoryBook;
use crate::metrics::HostMetrics;
use crate::rollout::{LocalStrategy, Outcome, Rollout};
use crate::service::HostService;

/// Where a host reads and who it is there.
#[derive(Debug, Clone)]
pub struct BusSeat {
    /// The chain-events stream.
    pub stream: String,
    /// The consumer group all hosts share, so each event goes to one host.
    pub group: String,
    /// This host's name in the group; a restart with the same name resumes its pending events.
    pub consumer: String,
    /// How long one read waits for new events.
    pub block: Duration,
}

/// What a host runs and how.
pub struct HostPlan {
    /// Where to read.
    pub seat: BusSeat,
    /// The wasm engine instances run in.
    pub runtime: HostRuntime,
    /// Limits of every instance of `strategies`.
    pub limits: StrategyLimits,
    /// The strategies to start, from local files (not the registry).
    pub strategies: Vec<LocalStrategy>,
    /// Fleet worker threads.
    pub workers: usize,
    /// Where the service and the start-up record what they do, if anywhere.
    pub metrics: Option<Arc<HostMetrics>>,
}

/// A host ready to run.
pub struct Assembled<B: Bus + ?Sized> {
    /// Call `run` on it to serve.
    pub service: HostService<B>,
    /// The running instances, shared with the service and any rollout.
    pub fleet: Arc<Fleet>,
    /// How each strategy's start went, in the order given; a refused one runs nothing.
    pub started: Vec<Outcome>,
    /// The strategies' memories the service stores after each event: a rollout that builds
    /// instances beside it (the registry's) must hand out these, or its instances' changes
    /// would never be stored.
    pub memories: Arc<MemoryBook>,
}

impl<B: Bus + ?Sized> Assembled<B> {
    /// The strategies that were refused, with why.
    pub fn refused(&self) -> impl Iterator<Item = &Outcome> {
        self.started.iter().filter(|o| !o.switched())
    }

    /// `self` if every strategy started, else an error naming each refused one and why:
    /// for callers that run only strategies of their own, where a refusal is a bug.
    pub fn require_all(self) -> Result<Self, AssembleError> {
        let refused: Vec<String> = self
            .refused()
            .map(|o| format!("{}: {}", o.name, o.refusal().unwrap_or_default()))
            .collect();
        if refused.is_empty() {
            Ok(self)
        } else {
            Err(AssembleError::Refused(refused.join("; ")))
        }
    }
}

/// Why a host could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The engine link could not be set up.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The fleet's workers could not start.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The consumer group could not be created.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// From [`Assembled::require_all`]: every refused strategy with its reason.
    #[error("strategies refused at start-up: {0}")]
    Refused(String),
}

/// How long a host waits at start for the engine's first view of the books' balances.
pub const BALANCES_PATIENCE: Duration = Duration::from_secs(5);

/// Builds a host. `{pool}` in a strategy's config is replaced by the engine's first pool.
pub async fn host<B: Bus + ?Sized>(
    link: EngineLink,
    bus: Arc<B>,
    plan: HostPlan,
    stop: &watch::Receiver<bool>,
) -> Result<Assembled<B>, AssembleError> {
    let markets = link.markets(&mut stop.clone()).await?;
    let market = Market::from_markets(&markets);
    // Each instance is shown its own book's balances, followed from the engine.
    let balances = market.book_balances().clone();
    tokio::spawn(crate::balances::follow(
        link.clone(),
        balances.clone(),
        stop.clone(),
    ));
    let market = Arc::new(RwLock::new(market));
    let fleet = Arc::new(Fleet::start(plan.workers, market)?);
    let mut rollout = Rollout::new(
        plan.seat.consumer.clone(),
        fleet.clone(),
        plan.runtime,
        plan.limits,
    );
    if let Some(m) = &plan.metrics {
        rollout.metrics_to(m.clone());
    }
    let memories = Arc::new(MemoryBook::engine(link.clone()));
    rollout.memories_from(memories.clone());
    let started = rollout.start_local(plan.strategies).await;
    let running = started.iter().filter(|o| o.switched()).count();
    if running < started.len() {
        tracing::warn!(
            running,
            refused = started.len() - running,
            "some strategies were refused at start-up; the host runs the others"
        );
    }
    let reader = GroupReader::join(
        bus,
        &plan.seat.stream,
        &plan.seat.group,
        &plan.seat.consumer,
        StartId::Beginning,
        GroupReaderConfig {
            block: plan.seat.block,
            ..GroupReaderConfig::default()
        },
    )
    .await?;
    // Strategies that size trades by their balances would skip the first events without
    // them; an engine that cannot stream them yet is waited for only briefly.
    if !balances.wait_ready(BALANCES_PATIENCE).await {
        tracing::warn!(
            patience_ms = BALANCES_PATIENCE.as_millis() as u64,
            "no balances from the engine yet; instances see none until they arrive"
        );
    }
    let mut service = HostService::new(reader, fleet.clone(), link);
    service.memories_from(memories.clone());
    if let Some(m) = plan.metrics {
        service.metrics_to(m);
    }
    Ok(Assembled {
        service,
        fleet,
        started,
        memories,
    })
}
