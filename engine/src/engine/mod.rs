//! The engine: proposals in, gates, exact simulation, one compare-and-set per task, and
//! the shadow ledger.
//!
//! A submitted batch is decided first (gates under a short lock, then simulation of every
//! proposal that passed, concurrently against the shared chain state; see [`crate::gates`]
//! for the reservations the gates take on each book)
//! and then stored in one database transaction: every new task is created in INIT and moved
//! by its compare-and-set to SIMULATED or REJECTED, with its shadow fill and audit rows.
//! One commit per batch; tasks left in INIT by an older engine (or a crash of the
//! recovery path) are still found and handled by [`Recovery`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use prost::Message;
use ruint::aliases::U512;
use sha2::{Digest, Sha256};
use stratbox_proto::v1;
use stratbox_proto::{U256, parse_address};
use stratbox_risk::{ExecutionMode, ReasonCode, Rejection, RiskConfig};
use tracing::{Instrument, debug, info, info_span, warn};

use arc_swap::ArcSwap;

use crate::balances::{BalanceFeed, Update, quote_tokens};
use crate::books::{Marks, Valuation};
use crate::catalog::{Catalog, StrategyCheck};
use crate::chain::ChainProbe;
use crate::chain::ChainState;
use crate::fsm::TaskState;
use crate::gates::{GateContext, RiskBook};
use crate::group_commit::GroupCommit;
use crate::ledger::{self, Leg, Posting, Signed};
use crate::metrics::EngineMetrics;
use crate::permissions::{Durability, PermissionView, RestoreError};
use crate::proposal::{self, Address, CheckedProposal, TradeAction, hex_address};
use crate::simulation::{PoolInfo, SimError, SimOutcome, check_outcome};
use crate::store::{
    Audit, Backend, Inserted, KillSwitchRow, NewTask, SimRecord, Store, StoreError, TaskFilter,
    TaskRow, Transition, now_ms,
};
use crate::trace;

mod decision;
mod governance;
mod monitor;
mod reads;
mod recovery;
mod risk_limits;
mod valuation;

use decision::*;
pub use monitor::{BlockReport, UNWIND_KEY_PREFIX};
pub use reads::{MAX_PAGE, task_to_wire};
use recovery::load_books;
pub use recovery::{EXPIRED_ON_RECOVERY, Recovery};
pub use risk_limits::{Cancelled, Proposed, RiskChange, RiskLimitsView};
pub use valuation::EtherMark;
use valuation::*;

/// Why an engine call failed (a refused proposal is not an error: it is a REJECTED task).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database failed; the call may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The simulation thread died or answered nothing.
    #[error("simulation worker: {0}")]
    Worker(String),
    /// A booking that does not balance: a bug, nothing was written.
    #[error("ledger: {0}")]
    Ledger(String),
    /// A malformed request argument, or one naming nothing (e.g. an unknown posting).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A permission change the strategy's tracker refuses (e.g. restoring one not halted).
    #[error(transparent)]
    Permission(#[from] stratbox_risk::PermissionError),
    /// Other writers kept winning a compare-and-set (risk limits); the call may be retried.
    #[error("{0}")]
    Busy(String),
}

/// How an engine is started.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The most a task may go (shadow: simulate only).
    pub mode: ExecutionMode,
    /// Risk thresholds the gates apply.
    pub risk: RiskConfig,
    /// What to do with tasks a crash left in INIT.
    pub recovery: Recovery,
    /// The engine's starting watermark; `None` = the chain's current block.
    pub watermark: Option<u64>,
    /// The cash each shadow book is judged to hold for the hard limits, in raw units of the
    /// pool's quote token (see [`crate::gates`]).
    pub book_capital: U256,
    /// The gas price trades are judged at until [`Engine::set_gas_price`] (wei); the
    /// embedded chain's base fee is zero.
    pub gas_price_wei: U256,
    /// On SQLite, let concurrent batches share a storage transaction ([`GroupCommit`]).
    /// PostgreSQL always commits each batch on its own: it already shares WAL flushes
    /// between concurrent connections, and one shared transaction would serialise
    /// statements it runs on several connections at once (measured: 2,600 against 3,700
    /// proposals/s at batch 10). Off is kept for the benchmark's comparison.
    pub group_commit: bool,
    /// Whether only strategies the registry admitted may propose (see [`crate::catalog`]).
    pub strategies: StrategyCheck,
    /// The on-chain account staged and live trades are sent from (the signer's account):
    /// they are simulated from it, holding what it really holds, with no shadow funding.
    /// `None`: from the proposal's account.
    pub live_account: Option<Address>,
    /// How long a change that loosens the risk limits waits before it applies (see
    /// `risk_limits`): `--risk-timelock`, 24 hours by default.
    pub risk_timelock: Duration,
    /// With no new block ([`Engine::on_block`]) for longer than this, every proposal is
    /// refused as stale (`stale_watermark`) until the next block; `None` judges staleness
    /// by block lag only (`--max-block-age`).
    pub max_block_age: Option<Duration>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            mode: ExecutionMode::Shadow,
            risk: RiskConfig::default(),
            recovery: Recovery::Expire,
            watermark: None,
            // 1,000,000 units of an 18-decimal quote token.
            book_capital: U256::from(10u64).pow(U256::from(24u64)),
            gas_price_wei: U256::ZERO,
            group_commit: true,
            strategies: StrategyCheck::Any,
            live_account: None,
            risk_timelock: Duration::from_secs(24 * 60 * 60),
            max_block_age: None,
        }
    }
}

/// One simulation the engine runs for a batch.
#[derive(Debug, Clone, Copy)]
struct SimJob {
    /// The proposal's position in the batch.
    index: usize,
    from: Address,
    action: TradeAction,
    /// Give `from` the shadow funding first (a shadow book holds nothing on chain).
    shadow: bool,
}

/// How long a batch's simulations may take before its trades are refused: only a fork
/// whose node stopped answering comes near it.
pub const SIM_DEADLINE: Duration = Duration::from_secs(15);

/// Fewer simulations than this per blocking task cost more in hand-offs than they gain.
const MIN_SIMS_PER_PART: usize = 4;

/// At most this many simulations in a batch (~0.4 ms of CPU) run on the submitting task
/// itself: measured on 2 cores, the hand-offs to the blocking pool and back cost more than
/// running them here (batch 3 on PostgreSQL: ~6,500 against ~5,950 proposals/s).
const INLINE_SIMS: usize = 4;

struct Inner {
    store: Store,
    /// Submitted batches reach storage through here, sharing commits (see [`GroupCommit`]).
    commits: Option<GroupCommit>,
    /// The chain state every batch reads (see [`crate::chain`]): replaced whole, never
    /// locked by a reader.
    chain: ArcSwap<ChainState>,
    /// Serialises whoever replaces the chain (read, change, publish), so two changes cannot
    /// lose one another. Readers never take it.
    chain_writer: Mutex<()>,
    /// Simulation parts running at once: the machine's cores.
    workers: usize,
    cpu: Arc<tokio::sync::Semaphore>,
    risk: Arc<Mutex<RiskBook>>,
    /// Stores the book's permission trackers (see [`crate::permissions`]).
    permissions: Durability,
    watermark: AtomicU64,
    mode: ExecutionMode,
    chain_id: u64,
    metrics: Arc<EngineMetrics>,
    /// The strategies the registry admitted (see [`crate::catalog`]).
    catalog: Catalog,
    /// How readiness asks the chain's node (see [`crate::health`]); none for a chain that
    /// has no node.
    chain_probe: Mutex<Option<ChainProbe>>,
    /// The books' balance changes, for `WatchBalances` (see [`crate::balances`]).
    balances: BalanceFeed,
    /// See [`EngineSettings::live_account`].
    live_account: Option<Address>,
    /// Risk-limit changes and their timelock (see `risk_limits`).
    limits: risk_limits::Timelock,
    /// Critical events for the webhook (see [`crate::alert`]).
    alerts: crate::alert::Alerts,
    /// The risk monitor's clock and its unwinds in flight (see `monitor`).
    monitor: monitor::Monitor,
    /// The ether mark (see `valuation`); a short lock, never held across I/O.
    ether: Mutex<Option<EtherMark>>,
    /// Whether a stale ether feed that never had a fresh round was said already.
    ether_never_fresh: std::sync::atomic::AtomicBool,
}

/// The in-process engine; cheap to clone (every clone is the same engine).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// The name the lead's `stratbox up` uses for an engine it holds.
pub type EngineHandle = Engine;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these values half-updated in a way that
    // matters more than stopping all trading would; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The address a shadow book simulates from: the account itself if it is an address,
/// otherwise one derived from its name.
pub fn sim_address(account: &str) -> Address {
    if let Ok(a) = parse_address(account) {
        return a;
    }
    let d = Sha256::digest(format!("stratbox.shadow:{account}").as_bytes());
    let mut a = [0u8; 20];
    a.copy_from_slice(&d[..20]);
    a
}

pub use crate::gates::market_key;

impl Engine {
    /// Starts an engine over an open store and a chain, and runs recovery.
    pub async fn start(
        store: Store,
        chain: ChainState,
        settings: EngineSettings,
    ) -> Result<Engine, EngineError> {
        settings
            .risk
            .validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let chain_id = chain.chain_id();
        let watermark = settings.watermark.unwrap_or_else(|| chain.block_number());
        // The limits in effect are the stored ones: the file given at start only tightens
        // them at once; what it loosens waits for the timelock (see `risk_limits`).
        let (risk, risk_version) =
            risk_limits::at_start(&store, &settings.risk, settings.risk_timelock).await?;
        let mut book = RiskBook::new(risk, settings.book_capital);
        book.set_gas_price(settings.gas_price_wei);
        let chain = chain.with_gas_price(settings.gas_price_wei);
        if let Some(k) = store.load_kill_switch().await? {
            book.restore_kill_switch(&k);
        }
        // Markets the governance sentinel halted stay halted across a restart.
        let governance_halts = store.governance_halts().await?;
        book.set_market_halts(governance::halts_by_pool(&governance_halts));
        load_books(&store, &mut book, &marks_of(&chain)).await?;
        book.restore_trackers(crate::permissions::load(&store).await?);
        let metrics = EngineMetrics::new();
        // Critical events go to the webhook once one is started (`start_alert_webhook`).
        let alerts = crate::alert::Alerts::new(metrics.clone());
        let permissions = Durability::new(&book).with_outlets(alerts.clone(), metrics.clone());
        metrics
            .halted_strategies
            .set(i64::try_from(book.halted_strategies()).unwrap_or(i64::MAX));
        for (state, n) in store.count_tasks().await? {
            metrics.set_count(state, n);
        }
        metrics
            .watermark
            .set(i64::try_from(watermark).unwrap_or(i64::MAX));
        metrics
            .kill_switch
            .set(i64::from(book.kill_switch().engaged));
        metrics
            .governance_halted_markets
            .set(i64::try_from(book.market_halts()).unwrap_or(i64::MAX));
        let catalog = Catalog::new(settings.strategies);
        catalog.refresh(&store).await?;
        let workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        let engine = Engine {
            inner: Arc::new(Inner {
                commits: (settings.group_commit && store.backend() == Backend::Sqlite)
                    .then(|| GroupCommit::start(store.clone())),
                store,
                chain: ArcSwap::from_pointee(chain),
                chain_writer: Mutex::new(()),
                workers,
                cpu: Arc::new(tokio::sync::Semaphore::new(workers)),
                risk: Arc::new(Mutex::new(book)),
                permissions,
                watermark: AtomicU64::new(watermark),
                mode: settings.mode,
                chain_id,
                metrics,
                catalog,
                chain_probe: Mutex::new(None),
                balances: BalanceFeed::default(),
                live_account: settings.live_account,
                limits: risk_limits::Timelock::new(settings.risk_timelock, risk_version),
                alerts,
                monitor: monitor::Monitor::new(settings.max_block_age),
                ether: Mutex::new(None),
                ether_never_fresh: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        spawn_permission_flush(Arc::downgrade(&engine.inner));
        risk_limits::spawn_timer(Arc::downgrade(&engine.inner));
        engine.recover(settings.recovery).await?;
        Ok(engine)
    }

    /// Re-reads the strategies the registry admitted (after an upload in this process).
    pub async fn refresh_catalog(&self) -> Result<(), EngineError> {
        Ok(self.inner.catalog.refresh(&self.inner.store).await?)
    }

    /// The engine's store, e.g. for a registry sharing its database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The engine's metrics, for the `/metrics` endpoint.
    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.inner.metrics
    }

    /// Where critical events go (see [`crate::alert`]): nowhere until a webhook is started.
    pub fn alerts(&self) -> &crate::alert::Alerts {
        &self.inner.alerts
    }

    /// Posts critical events to `config.url` from now on (`stratbox engine --alert-webhook`).
    pub fn start_alert_webhook(
        &self,
        config: crate::alert::WebhookConfig,
    ) -> Result<tokio::task::JoinHandle<()>, crate::alert::AlertError> {
        self.inner.alerts.start_webhook(config)
    }

    /// The execution mode it was started in.
    pub fn mode(&self) -> ExecutionMode {
        self.inner.mode
    }

    /// The chain it simulates and would trade on.
    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    /// The chain state now. Cheap (an `Arc`); it never changes under its holder.
    pub fn chain(&self) -> Arc<ChainState> {
        self.inner.chain.load_full()
    }

    /// Sets how readiness checks the chain's node (a fork's RPC).
    pub fn set_chain_probe(&self, probe: ChainProbe) {
        *lock(&self.inner.chain_probe) = Some(probe);
    }

    /// The probe readiness uses; `None` for an embedded chain, which is always there.
    pub fn chain_probe(&self) -> Option<ChainProbe> {
        lock(&self.inner.chain_probe).clone()
    }

    /// Publishes a new chain state (the fork follower's next block). Batches already
    /// deciding finish on the state they started with.
    pub fn replace_chain(&self, next: ChainState) {
        let _writer = lock(&self.inner.chain_writer);
        self.inner.chain.store(Arc::new(next));
    }

    /// Changes the chain (the embedded market's swaps, tests moving a price): `f` runs on a
    /// copy of the current state, which is then published. Simulations in flight keep the
    /// state they started on. On a fork this re-reads pool state from the node: call it off
    /// the async workers there.
    pub fn update_chain<R>(
        &self,
        f: impl FnOnce(&mut stratbox_sim::Chain) -> R,
    ) -> Result<R, EngineError> {
        let _writer = lock(&self.inner.chain_writer);
        let (next, r) = self
            .inner
            .chain
            .load()
            .edit(f)
            .map_err(|e| EngineError::Worker(e.to_string()))?;
        self.inner.chain.store(Arc::new(next));
        Ok(r)
    }

    /// The last block the engine has fully seen; proposals from beyond it are refused.
    pub fn watermark(&self) -> u64 {
        self.inner.watermark.load(Ordering::Acquire)
    }

    /// The newest block the engine has synchronised (the Sync Sentinel's reference).
    pub fn set_watermark(&self, block: u64) {
        self.inner.watermark.store(block, Ordering::Release);
        self.inner
            .metrics
            .watermark
            .set(i64::try_from(block).unwrap_or(i64::MAX));
    }

    /// One oracle source's price for a market (`market_key(base, quote)`), units of quote
    /// per unit of base with 18 decimals, as of the engine's watermark.
    pub fn update_oracle(&self, market: &str, source: &str, price_e18: U256) {
        let block = self.watermark();
        lock(&self.inner.risk).update_oracle(market, source, price_e18, block);
    }

    /// The traded pool's spot price for `market` as of the watermark: what the oracle
    /// guard compares every source with.
    pub fn set_oracle_spot(&self, market: &str, price_e18: U256) {
        let block = self.watermark();
        lock(&self.inner.risk).set_oracle_spot(market, price_e18, block);
    }

    /// A source of `market` read but not fresh, with why (see
    /// [`stratbox_risk::OracleGuard::mark_stale`]).
    pub fn mark_oracle_stale(&self, market: &str, source: &str, why: &str) {
        lock(&self.inner.risk).mark_oracle_stale(market, source, why);
    }

    /// Why `market`'s oracle sources would fail the gate at the watermark (code and the
    /// sources named), or `None` when they agree. Changes nothing: the gate itself is
    /// judged, and a market halted, on the next proposal.
    pub fn oracle_failure(&self, market: &str) -> Option<(ReasonCode, String)> {
        let block = self.watermark();
        lock(&self.inner.risk).oracle_failure(market, block)
    }

    /// An off-chain reference price for `pool`'s market, from an authenticated feeder:
    /// the guard's `reference` source, recorded at the watermark (so it goes stale after
    /// `max_age_blocks` unless pushed again). Returns the market and the block. A pool the
    /// engine does not trade is refused, so a feeder cannot grow the guard's state.
    pub fn push_reference(
        &self,
        pool: &[u8; 20],
        price_e18: U256,
    ) -> Result<(String, u64), String> {
        if price_e18.is_zero() {
            return Err("a reference price of zero".to_owned());
        }
        let info = self
            .chain()
            .pool(pool)
            .ok_or_else(|| format!("the engine does not trade pool {}", hex_address(pool)))?;
        let market = market_key(&info.token0, &info.token1);
        let block = self.watermark();
        lock(&self.inner.risk).update_oracle(
            &market,
            crate::price_sources::REFERENCE,
            price_e18,
            block,
        );
        Ok((market, block))
    }

    /// Sets a strategy's permission level with an empty record (tests and bootstrapping;
    /// operators use [`Engine::restore_strategy`]). Stored by the next submit or within a
    /// second, without an audit row.
    pub fn set_permission_level(&self, strategy: &str, level: stratbox_risk::PermissionLevel) {
        lock(&self.inner.risk).set_level(strategy, level);
    }

    /// The kill switch as it is now, in its wire form.
    pub fn kill_switch(&self) -> v1::KillSwitchState {
        let k = lock(&self.inner.risk).kill_switch();
        v1::KillSwitchState {
            engaged: k.engaged,
            reason: k.reason,
            operator: k.operator,
            changed_at_ms: k.changed_at_ms,
            cancel_pending: k.cancel_pending,
        }
    }

    /// Engages the kill switch: persisted and audited before it is reported.
    pub async fn set_kill_switch(
        &self,
        trace_id: &str,
        reason: &str,
        operator: &str,
    ) -> Result<v1::KillSwitchState, EngineError> {
        self.change_kill_switch(trace_id, true, reason, operator, false)
            .await
    }

    /// Engages the kill switch and, with `cancel_pending`, has the live path expire every
    /// trade not yet sent to the signer (waiting for approval included) and replace every
    /// transaction pending on chain with a cancel at its nonce. Tasks already sent to the
    /// signer and not answered stay held: the signer may have signed them.
    pub async fn engage_kill_switch(
        &self,
        trace_id: &str,
        reason: &str,
        operator: &str,
        cancel_pending: bool,
    ) -> Result<v1::KillSwitchState, EngineError> {
        self.change_kill_switch(trace_id, true, reason, operator, cancel_pending)
            .await
    }

    /// Releases the kill switch: persisted and audited before it is reported.
    pub async fn clear_kill_switch(
        &self,
        trace_id: &str,
        operator: &str,
    ) -> Result<v1::KillSwitchState, EngineError> {
        self.change_kill_switch(trace_id, false, "", operator, false)
            .await
    }

    async fn change_kill_switch(
        &self,
        trace_id: &str,
        engaged: bool,
        reason: &str,
        operator: &str,
        cancel_pending: bool,
    ) -> Result<v1::KillSwitchState, EngineError> {
        let row = KillSwitchRow {
            engaged,
            reason: clip(reason, 512),
            operator: if operator.is_empty() {
                "unknown".into()
            } else {
                clip(operator, 128)
            },
            changed_at_ms: now_ms(),
            cancel_pending: engaged && cancel_pending,
        };
        // Engage in memory first (fail safe: trading stops even if the write fails); clear
        // only after the write, so a failed clear leaves trading stopped.
        if engaged {
            lock(&self.inner.risk).restore_kill_switch(&row);
        }
        self.inner.store.save_kill_switch(&row, trace_id).await?;
        if !engaged {
            lock(&self.inner.risk).restore_kill_switch(&row);
        }
        self.inner.metrics.kill_switch.set(i64::from(engaged));
        warn!(trace_id, engaged, operator = %row.operator, reason = %row.reason, "kill switch changed");
        if engaged {
            self.inner
                .alerts
                .raise(crate::alert::Alert::kill_switch_engaged(
                    &row.operator,
                    &row.reason,
                ));
        }
        Ok(self.kill_switch())
    }

    /// The pools the chain trades, with their state now.
    pub fn markets(&self) -> Vec<v1::Market> {
        let chain = self.chain();
        let block = chain.block_number();
        chain
            .pool_infos()
            .iter()
            .map(|(p, i)| v1::Market {
                pool: Some(v1::Address {
                    value: hex_address(p),
                }),
                token0: Some(v1::Address {
                    value: hex_address(&i.token0),
                }),
                token1: Some(v1::Address {
                    value: hex_address(&i.token1),
                }),
                fee: i.fee,
                tick_spacing: i.tick_spacing,
                sqrt_price_x96: Some(i.sqrt_price_x96.into()),
                tick: i.tick,
                liquidity: Some(U256::from(i.liquidity).into()),
                block,
            })
            .collect()
    }

    /// What `GetStatus` answers: watermark, mode, kill switch and the like.
    pub fn status(&self) -> v1::EngineStatus {
        v1::EngineStatus {
            last_sync_block: self.watermark(),
            mode: self.inner.mode.as_str().into(),
            kill_switch: Some(self.kill_switch()),
            chain_id: self.inner.chain_id,
        }
    }

    /// Submits a batch: one result per proposal, in order. Never fails for bad input (that
    /// is a per-proposal `bad_input`); fails only when storage does.
    pub async fn submit(
        &self,
        trace_id: &str,
        proposals: Vec<v1::Proposal>,
    ) -> Result<Vec<v1::ProposalResult>, EngineError> {
        let trace_id = trace::normalize(trace_id);
        let span = info_span!("submit", trace_id = %trace_id, proposals = proposals.len());
        // On its own task: a caller that goes away (a client closing its connection drops
        // the request's future) must not stop a batch half-way, e.g. after its commit and
        // before its fills reach the books.
        let engine = self.clone();
        tokio::spawn(
            async move { engine.submit_inner(trace_id, proposals, None).await }.instrument(span),
        )
        .await
        .map_err(|e| EngineError::Worker(e.to_string()))?
    }

    /// `unwind`: the batch is the engine's own unwind of halted books, to run in that mode
    /// (see `monitor`); `None` for what strategies submit.
    async fn submit_inner(
        &self,
        trace_id: String,
        proposals: Vec<v1::Proposal>,
        unwind: Option<ExecutionMode>,
    ) -> Result<Vec<v1::ProposalResult>, EngineError> {
        let started = Instant::now();
        let m = &self.inner.metrics;
        // Junk (malformed, or from a strategy the registry never admitted) is answered and
        // counted but leaves nothing behind: storing it would let replays of junk grow the
        // database without bound, and it can never trade.
        let mut junk: HashMap<usize, Rejection> = HashMap::new();
        let mut keys: Vec<String> = Vec::with_capacity(proposals.len());
        for (i, p) in proposals.iter().enumerate() {
            match proposal::check(p) {
                Err(bad) => {
                    junk.insert(i, Rejection::new(ReasonCode::BadInput, bad.to_string()));
                    keys.push(String::new());
                }
                Ok(cp) => {
                    if unwind.is_some() {
                        // Built by the engine for a book it holds: no registry version.
                        keys.push(format!(
                            "{UNWIND_KEY_PREFIX}{}",
                            proposal::idempotency_key(&cp)
                        ));
                    } else if !self
                        .inner
                        .catalog
                        .admits(&self.inner.store, &cp.strategy, &cp.strategy_version)
                        .await
                    {
                        junk.insert(
                            i,
                            Rejection::new(
                                ReasonCode::UnknownStrategy,
                                format!(
                                    "the registry has no strategy {:?} at version {:?}",
                                    cp.strategy, cp.strategy_version
                                ),
                            ),
                        );
                        keys.push(String::new());
                    } else {
                        keys.push(proposal::idempotency_key(&cp));
                    }
                }
            }
        }
        for r in junk.values() {
            m.outcome(r.code.as_str());
            debug!(reason = %r.code, detail = %r.detail, "proposal refused before storage");
        }
        // The first position of each key in the batch.
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<usize> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if junk.contains_key(&i) {
                continue;
            }
            if !first.contains_key(k.as_str()) {
                first.insert(k.as_str(), i);
                unique.push(i);
            }
        }
        let mode = unwind.unwrap_or(self.inner.mode).as_str();
        let new_tasks: Vec<NewTask> = unique
            .iter()
            .map(|&i| {
                let p = &proposals[i];
                NewTask {
                    task_id: uuid::Uuid::now_v7().to_string(),
                    idempotency_key: keys[i].clone(),
                    mode,
                    strategy: p.strategy.clone(),
                    // The checked form: an address account in lowercase, one book however
                    // it is written.
                    account: proposal::check(p)
                        .map(|cp| cp.account)
                        .unwrap_or_else(|_| clip(&p.account, proposal::MAX_NAME_LEN)),
                    proposal: p.encode_to_vec(),
                    trace_id: trace_id.clone(),
                }
            })
            .collect();

        // Decide first (gates, simulation), then create and move every task in one
        // transaction. A proposal whose key is already taken is decided for nothing and
        // answered with the first task; that waste is the price of one commit per batch
        // instead of two, and replays are rare next to fresh proposals.
        let to_decide: Vec<(String, String, v1::Proposal)> = unique
            .iter()
            .zip(&new_tasks)
            .map(|(&i, t)| {
                (
                    t.task_id.clone(),
                    t.idempotency_key.clone(),
                    proposals[i].clone(),
                )
            })
            .collect();
        let mut decided = self.decide(&trace_id, &to_decide, unwind).await?;
        if unwind.is_some() {
            for t in &mut decided.transitions {
                t.actor = monitor::ACTOR.into();
            }
        }
        let t_store = Instant::now();
        let (inserted, moved) = match &self.inner.commits {
            Some(commits) => {
                commits
                    .create_and_apply(new_tasks.clone(), decided.transitions.clone())
                    .await?
            }
            None => {
                self.inner
                    .store
                    .create_and_apply(&new_tasks, &decided.transitions)
                    .await?
            }
        };
        let mut store_secs = t_store.elapsed().as_secs_f64();
        self.inner.metrics.stages.add_store(t_store.elapsed());

        let mut results: HashMap<usize, v1::ProposalResult> = HashMap::new();
        let mut created: HashSet<&str> = HashSet::new();
        for ((&i, t), ins) in unique.iter().zip(&new_tasks).zip(inserted) {
            match ins {
                Inserted::Created => {
                    m.moved(None, TaskState::Init);
                    created.insert(t.task_id.as_str());
                }
                Inserted::Existing(s) => {
                    m.duplicates.inc();
                    debug!(task_id = %s.task_id, "duplicate proposal");
                    results.insert(
                        i,
                        v1::ProposalResult {
                            task_id: s.task_id,
                            idempotency_key: s.idempotency_key,
                            state: s.state.to_wire() as i32,
                            reason_code: s.reason_code,
                            detail: s.detail,
                            duplicate: true,
                            ..Default::default()
                        },
                    );
                }
            }
        }
        // Only the transitions of tasks this call created were applied.
        let Decided {
            transitions,
            fills,
            held,
        } = decided;
        let mut keep: Vec<bool> = Vec::with_capacity(transitions.len());
        for t in &transitions {
            keep.push(created.contains(t.task_id.as_str()));
        }
        let mut ours: Vec<Transition> = Vec::new();
        let mut ours_moved: Vec<bool> = Vec::new();
        let mut ours_fills: Vec<BookedFill> = Vec::new();
        let mut index: HashMap<usize, usize> = HashMap::new();
        for (i, ((t, mv), k)) in transitions.into_iter().zip(moved).zip(&keep).enumerate() {
            if *k {
                index.insert(i, ours.len());
                ours.push(t);
                ours_moved.push(mv);
            }
        }
        for f in fills {
            if let Some(&j) = index.get(&f.transition) {
                ours_fills.push(BookedFill { transition: j, ..f });
            }
        }
        let key_of: HashMap<&str, &str> = to_decide
            .iter()
            .map(|(t, k, _)| (t.as_str(), k.as_str()))
            .collect();
        let (decided, secs) = self
            .settle(ours, ours_moved, ours_fills, held, &key_of)
            .await?;
        store_secs += secs;
        for (&i, t) in unique.iter().zip(&new_tasks) {
            if let Some(r) = decided.get(&t.task_id) {
                results.insert(i, r.clone());
            }
        }
        let mut out = Vec::with_capacity(proposals.len());
        for (i, k) in keys.iter().enumerate() {
            if let Some(r) = junk.remove(&i) {
                out.push(v1::ProposalResult {
                    task_id: String::new(),
                    idempotency_key: String::new(),
                    state: TaskState::Rejected.to_wire() as i32,
                    reason_code: r.code.as_str().into(),
                    detail: clip(&r.detail, 1024),
                    duplicate: false,
                    decided_block: self.watermark(),
                    ..Default::default()
                });
                continue;
            }
            let f = first.get(k.as_str()).copied().unwrap_or(i);
            let mut r = results.get(&f).cloned().unwrap_or_default();
            if f != i {
                r.duplicate = true;
                m.duplicates.inc();
            }
            out.push(r);
        }
        m.store_seconds.observe(store_secs);
        m.submit_seconds.observe(started.elapsed().as_secs_f64());
        Ok(out)
    }

    /// Gates, simulation and the compare-and-set for tasks already stored in INIT (the
    /// recovery path; a submit creates and moves its tasks in one transaction).
    async fn decide_and_apply(
        &self,
        trace_id: &str,
        tasks: Vec<(String, String, v1::Proposal)>,
    ) -> Result<HashMap<String, v1::ProposalResult>, EngineError> {
        if tasks.is_empty() {
            return Ok(HashMap::new());
        }
        let Decided {
            transitions,
            fills,
            held,
        } = self.decide(trace_id, &tasks, None).await?;
        let moved = self.inner.store.apply(&transitions).await?;
        let keys: HashMap<&str, &str> = tasks
            .iter()
            .map(|(t, k, _)| (t.as_str(), k.as_str()))
            .collect();
        Ok(self.settle(transitions, moved, fills, held, &keys).await?.0)
    }

    /// Gates and simulation for tasks in INIT: the transition each should take, with its
    /// shadow posting, and which of them go on to STAGED. A task whose key marks it as the
    /// engine's unwind (see `monitor`) is judged as one, in `unwind_mode` (the engine's
    /// mode if `None`, as for one recovered from INIT).
    async fn decide(
        &self,
        trace_id: &str,
        tasks: &[(String, String, v1::Proposal)],
        unwind_mode: Option<ExecutionMode>,
    ) -> Result<Decided, EngineError> {
        if tasks.is_empty() {
            return Ok(Decided::default());
        }
        let m = self.inner.metrics.clone();
        let checked: Vec<Result<CheckedProposal, proposal::BadInput>> =
            tasks.iter().map(|(_, _, p)| proposal::check(p)).collect();

        // One chain state for the whole batch: the gates judge the prices the simulations
        // then run against.
        let chain = self.chain();
        let pool_info: HashMap<Address, PoolInfo> = chain.pool_infos().iter().copied().collect();
        let block = chain.block_number();
        let marks = Marks::new(pool_info.iter()).with_ether(self.ether_mark().map(|m| m.price));

        // Gates.
        let t_gates = Instant::now();
        let watermark = self.watermark();
        let now = now_ms();
        let block_age = self.block_age();
        let mut verdicts: Vec<Verdict> = Vec::with_capacity(tasks.len());
        let mut held = Held {
            risk: Some(Arc::clone(&self.inner.risk)),
            tasks: Vec::new(),
        };
        {
            let mut book = lock(&self.inner.risk);
            for ((task_id, key, _), c) in tasks.iter().zip(&checked) {
                let t = Instant::now();
                let v = match c {
                    Err(bad) => {
                        Verdict::Reject(Rejection::new(ReasonCode::BadInput, bad.to_string()))
                    }
                    Ok(cp) => {
                        let unwind = key.starts_with(UNWIND_KEY_PREFIX);
                        let ctx = GateContext {
                            watermark,
                            block,
                            now_ms: now,
                            requested: match unwind_mode {
                                Some(m) if unwind => m,
                                _ => self.inner.mode,
                            },
                            pool: pool_info.get(&cp.action.pool()),
                            marks: &marks,
                            block_age,
                            unwind,
                        };
                        match book.evaluate(cp, &ctx, task_id) {
                            Ok(mode) => {
                                held.tasks.push(task_id.clone());
                                Verdict::Pass { mode }
                            }
                            Err(r) => Verdict::Reject(r),
                        }
                    }
                };
                m.gate_seconds.observe(t.elapsed().as_secs_f64());
                verdicts.push(v);
            }
        }
        m.stages.add_gates(t_gates.elapsed());

        // Simulation: concurrently, on the blocking pool, against the batch's chain state.
        let jobs: Vec<SimJob> = verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Verdict::Pass { mode } => Some((i, *mode)),
                Verdict::Reject(_) => None,
            })
            .filter_map(|(i, mode)| {
                checked[i].as_ref().ok().map(|cp| SimJob {
                    index: i,
                    from: match (mode, self.inner.live_account) {
                        (ExecutionMode::Staged | ExecutionMode::Live, Some(a)) => a,
                        _ => sim_address(&cp.account),
                    },
                    action: cp.action,
                    shadow: mode == ExecutionMode::Shadow,
                })
            })
            .collect();
        let t_sim = Instant::now();
        let outcomes = self.simulate_all(&chain, jobs).await?;
        m.stages.add_sim_wall(t_sim.elapsed());

        // Transitions: the pure step, from what was judged and simulated.
        decide_transitions(
            trace_id, tasks, verdicts, &checked, &outcomes, &pool_info, held,
        )
    }

    /// Simulates `jobs` concurrently on `chain`: the batch is cut into at most one part per
    /// core, each part runs on the blocking pool (every simulation on its own overlay of the
    /// snapshot, no lock held), and a semaphore sized to the cores keeps concurrent batches
    /// from oversubscribing the CPU. A batch of at most [`INLINE_SIMS`] simulations on a
    /// chain that never waits on a node runs on the calling task instead. A batch that does
    /// not finish within [`SIM_DEADLINE`] (a node that stopped answering) is refused rather
    /// than left hanging.
    async fn simulate_all(
        &self,
        chain: &Arc<ChainState>,
        jobs: Vec<SimJob>,
    ) -> Result<HashMap<usize, Result<SimOutcome, SimError>>, EngineError> {
        if jobs.is_empty() {
            return Ok(HashMap::new());
        }
        // Every simulation in a batch runs on the same state, so the same action from the
        // same address has the same outcome: simulate it once. Instances of one strategy
        // sharing a book often propose exactly the same trade on the same event.
        let mut first: HashMap<(Address, TradeAction, bool), usize> = HashMap::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let jobs: Vec<SimJob> = jobs
            .into_iter()
            .filter(|j| match first.entry((j.from, j.action, j.shadow)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    repeats.push((j.index, *e.get()));
                    false
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(j.index);
                    true
                }
            })
            .collect();
        let parts = self
            .inner
            .workers
            .min(jobs.len().div_ceil(MIN_SIMS_PER_PART))
            .max(1);
        let per = jobs.len().div_ceil(parts);
        let run_part = |part: Vec<SimJob>| {
            let chain = Arc::clone(chain);
            let m = self.inner.metrics.clone();
            move || {
                let t_part = Instant::now();
                let out: Vec<(usize, Result<SimOutcome, SimError>)> = part
                    .into_iter()
                    .map(|j| {
                        let t = Instant::now();
                        let r = chain.simulate(j.from, &j.action, j.shadow);
                        m.sim_seconds.observe(t.elapsed().as_secs_f64());
                        (j.index, r)
                    })
                    .collect();
                m.stages.add_sim_cpu(t_part.elapsed(), out.len());
                out
            }
        };
        let mut outcomes = HashMap::new();
        if jobs.len() <= INLINE_SIMS && !chain.may_block() {
            // See INLINE_SIMS: cheaper here than two thread hand-offs.
            let _permit = self
                .inner
                .cpu
                .acquire()
                .await
                .map_err(|e| EngineError::Worker(e.to_string()))?;
            outcomes.extend(run_part(jobs)());
        } else {
            let mut handles = Vec::with_capacity(parts);
            let mut rest = jobs;
            while !rest.is_empty() {
                let tail = rest.split_off(per.min(rest.len()));
                let part = std::mem::replace(&mut rest, tail);
                let permit = self
                    .inner
                    .cpu
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| EngineError::Worker(e.to_string()))?;
                let span = tracing::Span::current();
                let work = run_part(part);
                handles.push(tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    let _e = span.enter();
                    work()
                }));
            }
            match tokio::time::timeout(SIM_DEADLINE, futures::future::join_all(handles)).await {
                Ok(parts) => {
                    for h in parts {
                        let part = h.map_err(|e| EngineError::Worker(e.to_string()))?;
                        outcomes.extend(part);
                    }
                }
                Err(_) => {
                    // The parts go on until the node times them out; their answers are
                    // dropped. Nothing here is answered as if it had been simulated.
                    warn!(
                        deadline_ms = SIM_DEADLINE.as_millis() as u64,
                        "simulations did not finish in time; refusing the batch's trades"
                    );
                }
            }
        }
        for (i, of) in repeats {
            if let Some(o) = outcomes.get(&of).cloned() {
                outcomes.insert(i, o);
            }
        }
        Ok(outcomes)
    }

    /// After the compare-and-set (which stored non-shadow trades as STAGED already, see
    /// [`Transition::and_stage`]): feeds the books and metrics, and builds each task's
    /// answer. Returns the answers by task id and the seconds spent in storage.
    async fn settle(
        &self,
        transitions: Vec<Transition>,
        moved: Vec<bool>,
        fills: Vec<BookedFill>,
        held: Held,
        keys: &HashMap<&str, &str>,
    ) -> Result<(HashMap<String, v1::ProposalResult>, f64), EngineError> {
        let m = self.inner.metrics.clone();
        let t_store = Instant::now();
        self.after_fills(&transitions, &moved, &fills, held);
        // A level changed by these fills, or by the gates that decided them (a book found
        // in breach), is stored before anyone is answered; otherwise this is one load.
        let trace_id = transitions.first().map_or("", |t| t.trace_id.as_str());
        self.inner
            .permissions
            .flush_levels(&self.inner.store, &self.inner.risk, trace_id)
            .await?;
        let store_secs = t_store.elapsed().as_secs_f64();

        let mut out = HashMap::with_capacity(transitions.len());
        let block = self.watermark();
        for (t, moved) in transitions.into_iter().zip(moved) {
            // A task someone else moved is answered from its row, without these.
            let sim = t.sim.as_ref().filter(|_| moved).map(|s| {
                (
                    v1::Amount {
                        value: s.amount0.to_string(),
                    },
                    v1::Amount {
                        value: s.amount1.to_string(),
                    },
                    s.gas_used,
                )
            });
            let result = if moved {
                m.moved(Some(TaskState::Init), t.to);
                if t.stored_state() != t.to {
                    m.moved(Some(t.to), t.stored_state());
                }
                m.outcome(if t.to == TaskState::Rejected {
                    reason_static(&t.reason_code)
                } else {
                    stratbox_risk::OK
                });
                let state = t.stored_state();
                if t.to == TaskState::Rejected {
                    info!(task_id = %t.task_id, reason = %t.reason_code, detail = %t.detail, "proposal rejected");
                } else {
                    info!(task_id = %t.task_id, state = %state, "proposal simulated");
                }
                (state, t.reason_code, t.detail)
            } else {
                // Someone else moved it (recovery, a concurrent worker): report what is stored.
                self.inner
                    .store
                    .get_task(&t.task_id)
                    .await?
                    .map(|r| (r.state, r.reason_code, r.detail))
                    .unwrap_or((TaskState::Failed, "missing".into(), String::new()))
            };
            let key = keys
                .get(t.task_id.as_str())
                .map(|k| (*k).to_owned())
                .unwrap_or_default();
            out.insert(
                t.task_id.clone(),
                v1::ProposalResult {
                    task_id: t.task_id,
                    idempotency_key: key,
                    state: result.0.to_wire() as i32,
                    reason_code: result.1,
                    detail: result.2,
                    duplicate: false,
                    sim_amount0: sim.as_ref().map(|s| s.0.clone()),
                    sim_amount1: sim.as_ref().map(|s| s.1.clone()),
                    sim_gas_used: sim.as_ref().map_or(0, |s| s.2),
                    decided_block: block,
                },
            );
        }
        Ok((out, store_secs))
    }

    /// Stored fills feed the books the hard limits judge, and the permission trackers; the
    /// batch's reservations are released under the same lock, so no proposal is judged on
    /// a book that counts a trade twice or not at all.
    fn after_fills(
        &self,
        transitions: &[Transition],
        moved: &[bool],
        fills: &[BookedFill],
        mut held: Held,
    ) {
        let booked: Vec<(&str, &str, &Posting)> = fills
            .iter()
            .filter(|f| moved.get(f.transition).copied().unwrap_or(false))
            .filter_map(|f| {
                transitions
                    .get(f.transition)
                    .and_then(|t| t.posting.as_ref())
                    .map(|p| (f.strategy.as_str(), f.account.as_str(), p))
            })
            .collect();
        self.feed_books(&mut held, booked);
    }

    /// Releases `held` and gives the books their stored fills under one lock, publishing
    /// the changed books' balances (so a watcher's full view and its changes never overlap).
    fn feed_books(&self, held: &mut Held, booked: Vec<(&str, &str, &Posting)>) {
        if booked.is_empty() {
            held.release(&mut lock(&self.inner.risk));
            return;
        }
        let chain = self.chain();
        let marks = self.marks(&chain);
        let changed: Vec<(&str, &str)> = booked.iter().map(|(s, a, _)| (*s, *a)).collect();
        let mut book = lock(&self.inner.risk);
        held.release(&mut book);
        book.on_fills(booked, &marks, now_ms());
        self.inner
            .balances
            .publish(&book, &quote_tokens(&chain), changed);
    }

    /// A live trade's real fill, stored already with its CONFIRMED move: the book learns
    /// it as it learns a shadow fill, so the limits judge what the account really holds.
    pub fn book_live_fill(&self, strategy: &str, account: &str, posting: &Posting) {
        self.feed_books(&mut Held::default(), vec![(strategy, account, posting)]);
    }

    /// A live fill a reorg took back (see [`crate::live`]): the book no longer holds it.
    pub fn unbook_live_fill(&self, strategy: &str, account: &str, reversal: &Posting) {
        let chain = self.chain();
        let marks = self.marks(&chain);
        let mut book = lock(&self.inner.risk);
        book.on_reversal(strategy, account, reversal, &marks, now_ms());
        self.inner
            .balances
            .publish(&book, &quote_tokens(&chain), vec![(strategy, account)]);
    }

    /// Every book's token balances now (the first `WatchBalances` message) and a receiver
    /// of the changes after it (see [`crate::balances`]).
    pub fn watch_balances(&self) -> (v1::BalancesUpdate, tokio::sync::broadcast::Receiver<Update>) {
        let quote = quote_tokens(&self.chain());
        let book = lock(&self.inner.risk);
        self.inner.balances.watch(&book, &quote)
    }

    /// One book's token balances now: its capital in the quote token plus its fills (a book
    /// with no fills holds its capital).
    pub fn token_balances(
        &self,
        strategy: &str,
        account: &str,
    ) -> std::collections::BTreeMap<String, U256> {
        let quote = quote_tokens(&self.chain());
        lock(&self.inner.risk).token_balances_of(strategy, account, &quote)
    }

    /// The network gas price trades are judged and simulated at (wei); the gas gate refuses
    /// every trade while it is over the configured cap.
    pub fn set_gas_price(&self, wei: U256) {
        // The chain first: a trade the gate passes at the new price is simulated at it.
        {
            let _writer = lock(&self.inner.chain_writer);
            let next = self.inner.chain.load().with_gas_price(wei);
            self.inner.chain.store(Arc::new(next));
        }
        lock(&self.inner.risk).set_gas_price(wei);
    }

    /// The network gas price (wei) trades are simulated and judged at.
    pub fn gas_price(&self) -> U256 {
        lock(&self.inner.risk).gas_price()
    }

    /// A strategy's permission level now.
    pub fn permission_level(&self, strategy: &str) -> stratbox_risk::PermissionLevel {
        lock(&self.inner.risk).level(strategy)
    }

    /// A strategy's permission: level, the breach that halted it, who restored it, its
    /// record at the level. A strategy the engine has not seen is at the initial level.
    pub fn permission(&self, strategy: &str) -> PermissionView {
        PermissionView::new(strategy, &lock(&self.inner.risk).tracker_of(strategy))
    }

    /// A human restores a strategy halted at L0 to `level` (at most the configured
    /// `max_restore_level`). Refused, with nothing changed, if the strategy is not halted,
    /// `level` is L0 or too high, or `operator` is empty; otherwise stored and audited
    /// (actor: `operator`) before it takes effect and is returned.
    pub async fn restore_strategy(
        &self,
        trace_id: &str,
        strategy: &str,
        level: stratbox_risk::PermissionLevel,
        operator: &str,
    ) -> Result<PermissionView, EngineError> {
        Ok(self
            .inner
            .permissions
            .restore(
                &self.inner.store,
                &self.inner.risk,
                trace_id,
                strategy,
                level,
                &clip(operator, 128),
            )
            .await?)
    }

    /// Stores every tracker change not stored yet (the background flush does this every
    /// second; tests and shutdown call it to be sure).
    pub async fn flush_permissions(&self) -> Result<(), EngineError> {
        Ok(self
            .inner
            .permissions
            .flush_all(&self.inner.store, &self.inner.risk, "")
            .await?)
    }

    /// A book as the hard limits see it now: its valuation, peak equity and the day's
    /// starting equity; `None` if it has never traded.
    /// Reservations held by proposals that passed the gates and whose batch is not settled
    /// yet (see [`crate::books::Pending`]); zero whenever no submit is in flight.
    pub fn reservations(&self) -> usize {
        lock(&self.inner.risk).reservations()
    }

    /// Books a correction: the reversal of an earlier posting, audited.
    pub async fn reverse_posting(
        &self,
        trace_id: &str,
        posting_id: &str,
        operator: &str,
        memo: &str,
    ) -> Result<String, EngineError> {
        let rows = self.inner.store.entries(None, None, 0).await?;
        let original: Vec<_> = rows.iter().filter(|e| e.posting_id == posting_id).collect();
        let Some(first) = original.first() else {
            return Err(EngineError::Invalid(format!("no posting {posting_id}")));
        };
        let entries = original
            .iter()
            .map(|e| ledger::Entry {
                account: e.account.clone(),
                asset: e.asset.clone(),
                side: e.side,
                amount: e.amount,
            })
            .collect();
        let p = Posting::new(
            posting_id.to_owned(),
            first.task_id.clone(),
            String::new(),
            entries,
        )
        .map_err(|e| EngineError::Ledger(e.to_string()))?;
        let new_id = format!("{posting_id}:reversal:{}", uuid::Uuid::now_v7());
        let r = p.reversal(new_id.clone(), clip(memo, 512));
        let audit = Audit {
            actor: clip(operator, 128),
            action: "posting_reversed".into(),
            subject: posting_id.to_owned(),
            from_state: String::new(),
            to_state: String::new(),
            detail: new_id.clone(),
            trace_id: trace_id.to_owned(),
        };
        self.inner.store.post(&r, &audit).await?;
        Ok(new_id)
    }
}

/// How often trackers whose record alone changed are stored.
const PERMISSION_FLUSH: Duration = Duration::from_secs(1);

/// The background flush of permission trackers (see [`crate::permissions`]). It holds the
/// engine weakly and ends once every handle is dropped or the store is closed; a failed
/// write is logged and retried on the next tick.
fn spawn_permission_flush(engine: Weak<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        warn!("no tokio runtime: permission records are stored only with level changes");
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(PERMISSION_FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = engine.upgrade() else { break };
            if inner.store.pool().is_closed() {
                break;
            }
            if let Err(e) = inner
                .permissions
                .flush_all(&inner.store, &inner.risk, "")
                .await
            {
                warn!(error = %e, "storing permission trackers failed; retrying in a second");
            }
        }
    });
}

impl From<RestoreError> for EngineError {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Refused(r) => EngineError::Permission(r),
            RestoreError::Store(s) => EngineError::Store(s),
        }
    }
}
