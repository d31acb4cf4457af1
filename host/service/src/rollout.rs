//! Rollouts: a host making its fleet what the registry says it should run, while events
//! flow, without losing or repeating any.
//!
//! The registry (Zone B) sends the whole desired state — every deployment: strategy,
//! version, component sha256, instance count, config — and sends it again after every
//! change. [`Rollout::reconcile`] compares it with what this host runs and, per strategy:
//!
//! - **new version or config** (a deploy or a rollback): fetches the component, checks its
//!   sha256, compiles it, builds and `init`s *all* the new instances off the event path.
//!   If any fails, nothing switches and the registry is told why. Otherwise the fleet
//!   switches between two events ([`Fleet::replace`]): calls in flight finish on the old
//!   version, each old instance's state goes to the new instance of the same id when both
//!   export `save`/`restore`, and the longest pause any shard held its events back is
//!   measured and reported.
//! - **same version, other count** (a scale): builds only the added instances, or drops
//!   the surplus; the others are not touched.
//! - **gone from the set**: its instances are dropped.
//!
//! [`watch`] keeps a `WatchDeployments` stream open against the engine, reconnecting with
//! backoff; a reconnect simply reconciles against the newest set.
//!
//! A host's own strategies (files given on its command line, the catalog's in `stratbox
//! up`) start the same way, through [`Rollout::start_local`]: as a deployment of revision
//! 0 whose bytes come from memory. So start-up builds off the async threads like a deploy,
//! and a strategy that fails to start is refused and reported while the others run.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stratbox_host::{HostRuntime, LoadedComponent, StrategyLimits};
use stratbox_proto::v1::registry_client::RegistryClient;
use stratbox_proto::v1::{
    self, DeploymentSet, FetchComponentRequest, RolloutReport, WatchDeploymentsRequest,
};
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::credentials::HostKey;
use crate::fleet::{Fleet, FleetError, Switch};
use crate::memory::MemoryBook;
use crate::metrics::HostMetrics;
use crate::roster::{self, Deployment};

/// Why a deployment could not be rolled out on this host.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The component's bytes could not be fetched.
    #[error("fetching component {sha256}: {reason}")]
    Fetch {
        /// The component asked for.
        sha256: String,
        /// Why the source could not give it.
        reason: String,
    },
    /// The bytes fetched are not the component announced: nothing is loaded from them.
    #[error("component bytes hash to {got}, the registry announced {want}")]
    Sha256Mismatch {
        /// The announced hash.
        want: String,
        /// The hash of the bytes received.
        got: String,
    },
    /// The runtime refused or failed to compile the component.
    #[error("loading the component: {0}")]
    Load(#[from] stratbox_host::LoadError),
    /// An instance's `init` failed; the running version is kept.
    #[error(transparent)]
    Start(#[from] roster::StartError),
    /// The fleet could not take the new instances.
    #[error("fleet: {0}")]
    Fleet(#[from] FleetError),
    /// The blocking task building instances panicked or was cancelled.
    #[error("the build task stopped: {0}")]
    Join(String),
    /// The registry address (first) does not parse; the second is why.
    #[error("registry address {0:?} is not a valid URI: {1}")]
    BadAddress(String, String),
    /// The strategy's memory could not be loaded from the engine; starting it on an empty
    /// one would overwrite what is stored.
    #[error("loading the strategy's memory: {0}")]
    Memory(crate::delivery::DeliveryError),
}

impl RolloutError {
    /// Stable name for metrics and logs: the host's `CallError::kind()` of a failed start
    /// (`init`, `pool_exhausted`, ...), else what went wrong before any instance was built.
    pub fn kind(&self) -> &'static str {
        match self {
            RolloutError::Fetch { .. } => "fetch",
            RolloutError::Sha256Mismatch { .. } => "sha256_mismatch",
            RolloutError::Load(_) => "load",
            RolloutError::Start(e) => e.source.kind(),
            RolloutError::Fleet(_) => "fleet",
            RolloutError::Join(_) => "join",
            RolloutError::BadAddress(..) => "bad_address",
            RolloutError::Memory(_) => "memory",
        }
    }
}

/// A strategy a host runs from bytes it was given (a file on its command line, a catalog
/// component), rather than from the registry.
#[derive(Debug, Clone)]
pub struct LocalStrategy {
    /// The name it runs under, in logs, metrics and proposals.
    pub name: String,
    /// The component, checked and compiled at start like a registry upload.
    pub bytes: Vec<u8>,
    /// JSON given to every instance's `init`; `{pool}` is replaced with the first pool.
    pub config: String,
    /// How many instances to run.
    pub instances: usize,
}

/// Component bytes held in memory, by sha256: where [`Rollout::start_local`] fetches from.
pub struct LocalComponents(BTreeMap<String, Vec<u8>>);

impl ComponentSource for LocalComponents {
    fn fetch(&self, sha256: &str) -> impl Future<Output = Result<Vec<u8>, String>> + Send {
        let found = self
            .0
            .get(sha256)
            .cloned()
            .ok_or_else(|| format!("no local component {sha256}"));
        async move { found }
    }
}

/// Where component bytes come from: the registry, or a map in tests.
pub trait ComponentSource: Sync {
    /// The bytes of the component with hex sha256 `sha256`; the caller checks the hash.
    fn fetch(&self, sha256: &str) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// What a strategy runs on this host right now.
struct Running {
    version: String,
    sha256: String,
    config: String,
    revision: u64,
    component: LoadedComponent,
    /// Instance ids in creation order; a scale-down drops from the end.
    ids: Vec<String>,
}

/// The strategies a host runs for the registry, and how to change them.
pub struct Rollout {
    host: String,
    fleet: Arc<Fleet>,
    runtime: HostRuntime,
    limits: StrategyLimits,
    running: BTreeMap<String, Running>,
    /// Deployment revisions that failed to start here, so a resent set does not retry
    /// (and re-report) the same failure on every unrelated change.
    refused: BTreeMap<String, u64>,
    metrics: Option<Arc<HostMetrics>>,
    /// Each strategy's memory, handed to every instance it builds (world 0.2.0).
    memories: Arc<MemoryBook>,
}

pub use crate::outcome::{Outcome, OutcomeKind};

impl Rollout {
    /// `host` names this host in reports; `limits` apply to every registry strategy.
    pub fn new(
        host: impl Into<String>,
        fleet: Arc<Fleet>,
        runtime: HostRuntime,
        limits: StrategyLimits,
    ) -> Self {
        Rollout {
            host: host.into(),
            fleet,
            runtime,
            limits,
            running: BTreeMap::new(),
            refused: BTreeMap::new(),
            metrics: None,
            memories: Arc::new(MemoryBook::in_process()),
        }
    }

    /// Takes the strategies' memories from `book` (by default they live in this process
    /// only).
    pub fn memories_from(&mut self, book: Arc<MemoryBook>) {
        self.memories = book;
    }

    /// Records every outcome in `metrics` (rollouts by result, quarantined strategies).
    pub fn metrics_to(&mut self, metrics: Arc<HostMetrics>) {
        self.metrics = Some(metrics);
    }

    fn record(&self, outcome: &Outcome) {
        log_outcome(outcome);
        if let Some(m) = &self.metrics {
            m.rollout(outcome);
        }
    }

    /// This host's name, as reported to the registry.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Starts this host's own strategies, each like a first deployment: compiled, built
    /// and `init`-ed off the async threads, all instances of a strategy or none. One that
    /// fails is refused (logged, and its outcome says why) and the others run.
    pub async fn start_local(&mut self, strategies: Vec<LocalStrategy>) -> Vec<Outcome> {
        let mut bytes = BTreeMap::new();
        let mut deployments = Vec::with_capacity(strategies.len());
        for s in strategies {
            let sha256 = stratbox_host::check::sha256_hex(&s.bytes);
            deployments.push(v1::Deployment {
                name: s.name,
                version: sha256[..12].to_owned(),
                sha256: sha256.clone(),
                instances: u32::try_from(s.instances).unwrap_or(u32::MAX),
                config_json: s.config,
                revision: 0,
                ..Default::default()
            });
            bytes.insert(sha256, s.bytes);
        }
        let set = DeploymentSet {
            revision: 0,
            deployments,
        };
        self.reconcile(&set, &LocalComponents(bytes)).await
    }

    /// The version each registry strategy runs here.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.running
            .iter()
            .map(|(n, r)| (n.clone(), r.version.clone()))
            .collect()
    }

    /// Markets the fleet serves: every one of them switches at the same event boundary.
    pub fn markets(&self) -> u32 {
        let market = self
            .fleet
            .market()
            .read()
            .unwrap_or_else(|p| p.into_inner());
        u32::try_from(market.snapshot("", "").pools.len()).unwrap_or(u32::MAX)
    }

    /// Makes this host run `set`. Returns what changed (nothing for deployments already
    /// running as asked or already refused at the same revision).
    pub async fn reconcile<S: ComponentSource>(
        &mut self,
        set: &DeploymentSet,
        source: &S,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for d in &set.deployments {
            if let Some(outcome) = self.apply(d, source).await {
                self.record(&outcome);
                outcomes.push(outcome);
            }
        }
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !set.deployments.iter().any(|d| &d.name == *n))
            .cloned()
            .collect();
        for name in gone {
            let Some(running) = self.running.remove(&name) else {
                continue;
            };
            let result = self
                .fleet
                .replace(&name, Vec::new())
                .await
                .map_err(|e| e.to_string());
            let error_kind = if result.is_err() { "fleet" } else { "" };
            let outcome = Outcome {
                name,
                version: running.version,
                revision: set.revision,
                kind: OutcomeKind::Stop,
                result,
                error_kind,
                instances: 0,
                built: 0,
            };
            self.record(&outcome);
            outcomes.push(outcome);
        }
        self.refused
            .retain(|name, _| set.deployments.iter().any(|d| &d.name == name));
        outcomes
    }

    async fn apply<S: ComponentSource>(
        &mut self,
        d: &v1::Deployment,
        source: &S,
    ) -> Option<Outcome> {
        let count = d.instances as usize;
        let current = self.running.get(&d.name);
        let same_target = current.is_some_and(|r| {
            r.version == d.version
                && r.sha256.eq_ignore_ascii_case(&d.sha256)
                && r.config == d.config_json
        });
        if same_target && current.is_some_and(|r| r.ids.len() == count) {
            if let Some(r) = self.running.get_mut(&d.name) {
                r.revision = d.revision;
            }
            return None;
        }
        if self.refused.get(&d.name) == Some(&d.revision) {
            return None;
        }
        let before = current.map(|r| r.ids.len()).unwrap_or(0);
        let (kind, result) = if same_target {
            (OutcomeKind::Scale, self.scale(d).await)
        } else {
            let kind = if current.is_some() {
                OutcomeKind::Swap
            } else {
                OutcomeKind::Start
            };
            (kind, self.swap(d, source).await)
        };
        let error_kind = result.as_ref().err().map_or("", RolloutError::kind);
        let result = result.map_err(|e| e.to_string());
        if result.is_err() {
            self.refused.insert(d.name.clone(), d.revision);
        } else {
            self.refused.remove(&d.name);
        }
        let instances = self.running.get(&d.name).map(|r| r.ids.len()).unwrap_or(0);
        let built = match (&result, kind) {
            (Err(_), _) => 0,
            (Ok(_), OutcomeKind::Scale) => count.saturating_sub(before),
            (Ok(_), _) => count,
        };
        Some(Outcome {
            name: d.name.clone(),
            version: d.version.clone(),
            revision: d.revision,
            kind,
            result,
            error_kind,
            instances,
            built,
        })
    }

    async fn deployment(
        &self,
        d: &v1::Deployment,
        count: usize,
    ) -> Result<Deployment, RolloutError> {
        let memory = self
            .memories
            .memory(&d.name)
            .await
            .map_err(RolloutError::Memory)?;
        let pool = {
            let market = self
                .fleet
                .market()
                .read()
                .unwrap_or_else(|p| p.into_inner());
            market.first_pool().unwrap_or_default().to_owned()
        };
        Ok(Deployment {
            strategy: d.name.clone(),
            version: d.version.clone(),
            account: format!("book:{}", d.name),
            config: d.config_json.replace("{pool}", &pool),
            count,
            limits: self.limits.clone(),
            memory,
        })
    }

    /// A new version (or config): everything built and started first, then one switch.
    async fn swap<S: ComponentSource>(
        &mut self,
        d: &v1::Deployment,
        source: &S,
    ) -> Result<Switch, RolloutError> {
        let bytes = source
            .fetch(&d.sha256)
            .await
            .map_err(|reason| RolloutError::Fetch {
                sha256: d.sha256.clone(),
                reason,
            })?;
        let got = stratbox_host::check::sha256_hex(&bytes);
        if !got.eq_ignore_ascii_case(&d.sha256) {
            return Err(RolloutError::Sha256Mismatch {
                want: d.sha256.clone(),
                got,
            });
        }
        let count = d.instances as usize;
        let deployment = self.deployment(d, count).await?;
        let ids: Vec<String> = (0..count)
            .map(|i| roster::instance_id(&d.name, i))
            .collect();
        let runtime = self.runtime.clone();
        let history = self
            .fleet
            .market()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .history();
        let build_ids = ids.clone();
        // Compiling and `init`-ing hundreds of instances is CPU work: off the runtime's
        // threads, so the event loop keeps going meanwhile.
        let (component, members) = tokio::task::spawn_blocking(move || {
            let component = runtime.load(&bytes)?;
            let members = roster::build_ids(&component, &deployment, &history, &build_ids)?;
            Ok::<_, RolloutError>((component, members))
        })
        .await
        .map_err(|e| RolloutError::Join(e.to_string()))??;
        let switch = self.fleet.replace(&d.name, members).await?;
        self.running.insert(
            d.name.clone(),
            Running {
                version: d.version.clone(),
                sha256: d.sha256.to_ascii_lowercase(),
                config: d.config_json.clone(),
                revision: d.revision,
                component,
                ids,
            },
        );
        Ok(switch)
    }

    /// Same version, other count: only the difference is built or dropped.
    async fn scale(&mut self, d: &v1::Deployment) -> Result<Switch, RolloutError> {
        let count = d.instances as usize;
        let Some(running) = self.running.get(&d.name) else {
            return Ok(Switch::default());
        };
        let have = running.ids.len();
        if count < have {
            let surplus: Vec<String> = running.ids[count..].to_vec();
            let switch = self.fleet.remove(&d.name, &surplus).await?;
            if let Some(r) = self.running.get_mut(&d.name) {
                r.ids.truncate(count);
                r.revision = d.revision;
            }
            return Ok(switch);
        }
        // New ids continue after the highest one in use, so none is reused while live.
        let next = running
            .ids
            .iter()
            .filter_map(|id| id.rsplit('-').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1);
        let ids: Vec<String> = (next..next + (count - have))
            .map(|i| roster::instance_id(&d.name, i))
            .collect();
        let component = running.component.clone();
        let deployment = self.deployment(d, count).await?;
        let history = self
            .fleet
            .market()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .history();
        let build_ids = ids.clone();
        let members = tokio::task::spawn_blocking(move || {
            roster::build_ids(&component, &deployment, &history, &build_ids)
        })
        .await
        .map_err(|e| RolloutError::Join(e.to_string()))??;
        let switch = self.fleet.add(members).await?;
        if let Some(r) = self.running.get_mut(&d.name) {
            r.ids.extend(ids);
            r.revision = d.revision;
        }
        Ok(switch)
    }
}

fn log_outcome(o: &Outcome) {
    match &o.result {
        Ok(s) => tracing::info!(
            strategy = %o.name,
            version = %o.version,
            revision = o.revision,
            kind = ?o.kind,
            instances = o.instances,
            pause_ns = u64::try_from(s.max_pause.as_nanos()).unwrap_or(u64::MAX),
            shard_pauses_ns = ?s.pauses.iter().map(|p| p.as_nanos()).collect::<Vec<_>>(),
            state_handed_over = s.handed_over,
            state_failures = ?s.hand_over_failures,
            "rollout switched"
        ),
        Err(e) => tracing::error!(
            strategy = %o.name,
            version = %o.version,
            revision = o.revision,
            kind = ?o.kind,
            reason = o.error_kind,
            error = %stratbox_host::display::escape(e),
            "rollout refused; nothing switched"
        ),
    }
}

/// The engine's registry, as a host sees it: the desired state, component bytes, and
/// where rollout reports go. Needs no operator credential.
#[derive(Clone)]
pub struct RegistryLink {
    channel: Channel,
    client: RegistryClient<InterceptedService<Channel, HostKey>>,
}

impl RegistryLink {
    /// Connects lazily, like the engine link: a registry not up yet is retried, not refused.
    pub fn new(url: &str) -> Result<Self, RolloutError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| RolloutError::BadAddress(url.to_owned(), e.to_string()))?;
        Ok(Self::over(endpoint))
    }

    /// Like [`RegistryLink::new`], over an endpoint the caller made (e.g. with TLS to
    /// verify the engine).
    pub fn over(endpoint: Endpoint) -> Self {
        let channel = endpoint
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        RegistryLink {
            client: RegistryClient::with_interceptor(channel.clone(), HostKey::none())
                .max_decoding_message_size(64 << 20),
            channel,
        }
    }

    /// Sends `key` with every call (watching, fetching and reporting need a host key).
    pub fn with_key(mut self, key: HostKey) -> Self {
        self.client = RegistryClient::with_interceptor(self.channel.clone(), key)
            .max_decoding_message_size(64 << 20);
        self
    }

    /// Tells the registry how a rollout went on this host (what `deploy --wait` watches).
    pub async fn report(&self, report: RolloutReport) -> Result<(), tonic::Status> {
        self.client.clone().report_rollout(report).await.map(|_| ())
    }
}

impl ComponentSource for RegistryLink {
    fn fetch(&self, sha256: &str) -> impl Future<Output = Result<Vec<u8>, String>> + Send {
        let mut client = self.client.clone();
        let request = FetchComponentRequest {
            sha256: sha256.to_owned(),
        };
        async move {
            client
                .fetch_component(request)
                .await
                .map(|r| r.into_inner().bytes)
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        }
    }
}

/// Follows the registry until `stop`: every desired state it sends is reconciled and
/// each change reported back. A broken stream is reopened with backoff (100 ms doubling
/// to 5 s, reset once a set arrives).
pub async fn watch(
    link: RegistryLink,
    mut rollout: Rollout,
    mut stop: watch::Receiver<bool>,
) -> Rollout {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return rollout;
        }
        let request = WatchDeploymentsRequest {
            host: rollout.host().to_owned(),
        };
        let mut client = link.client.clone();
        let opened = tokio::select! {
            r = client.watch_deployments(request) => r,
            _ = stop.wait_for(|s| *s) => return rollout,
        };
        match opened {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    let next = tokio::select! {
                        m = stream.message() => m,
                        _ = stop.wait_for(|s| *s) => return rollout,
                    };
                    match next {
                        Ok(Some(set)) => {
                            backoff = Duration::from_millis(100);
                            tracing::debug!(
                                revision = set.revision,
                                deployments = set.deployments.len(),
                                "desired state"
                            );
                            let outcomes = rollout.reconcile(&set, &link).await;
                            let markets = rollout.markets();
                            for o in outcomes {
                                if o.kind == OutcomeKind::Stop {
                                    continue;
                                }
                                if let Err(e) =
                                    link.report(o.to_report(rollout.host(), markets)).await
                                {
                                    tracing::warn!(strategy = %o.name, error = %e, "could not report the rollout");
                                }
                            }
                        }
                        Ok(None) => {
                            tracing::warn!("registry closed the deployment stream; reopening");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(code = ?e.code(), message = e.message(), "deployment stream broke; reopening");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(code = ?e.code(), message = e.message(), retry_in_ms = backoff.as_millis() as u64, "registry unreachable");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return rollout,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
