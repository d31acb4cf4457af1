//! The live path: STAGED tasks carried to the chain through the signer.
//!
//! `STAGED -> [AWAITING_APPROVAL -> APPROVED] -> SIGNED -> BROADCAST -> CONFIRMED | FAILED`,
//! or REJECTED / EXPIRED before signing. One account's tasks are taken in order, one at a
//! time up to SIGNED: the next nonce is assigned only when no earlier task of the account
//! is still waiting for the signer or a human, so a refusal can give its nonce back instead
//! of leaving a gap (a task waiting for approval holds the account's queue; see the README).
//! Signed transactions are then broadcast and their receipts awaited side by side; one not
//! included in time is replaced at its nonce by a fee bump, and past its deadline by a
//! cancel ([`crate::replace`]), and whichever the chain includes decides the task.
//!
//! Every step is stored before its side effect (see [`crate::store`]'s `live` module), and
//! [`Live::step`] is the same code after a crash as in steady state: it resumes what the
//! database says is open, asking the signer again with the stored request (answered
//! idempotently per task), re-sending a stored signed transaction, re-reading receipts.
//!
//! The engine holds no key: it sends plain transaction fields to the signer (Zone C) over
//! mutual TLS and gets back a signed transaction, or a refusal with the signer's reason.
//!
//! What the account holds is booked from the chain, not from simulations: its opening
//! balances before its first trade, then each receipt's token transfers and gas. While it
//! holds the lease the live path reconciles that wallet against the chain
//! ([`crate::reconcile`]); a difference with nothing in flight is recorded and engages the
//! kill switch, which stops every trade not yet signed until an operator adopts or
//! explains it (`stratbox reconcile --adopt`) and clears the switch.
//!
//! A receipt is not the end of the story while its block can still be reorganised away:
//! the live path watches the blocks of recent receipts ([`reorg`]) and moves a task whose
//! receipt left the chain back to BROADCAST, reversing what the receipt booked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy_primitives::{B256, U256 as AU256};
use alloy_sol_types::SolEvent;
use prost::Message;
use ruint::aliases::U512;
use stratbox_evm::abi::IERC20;
use stratbox_proto::U256;
use stratbox_proto::v1::{self, signer_client::SignerClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tracing::{Instrument, error, info, info_span, warn};

use crate::engine::Engine;
use crate::fsm::TaskState;
use crate::ledger::{self, Leg, Posting, Signed};
use crate::proposal::{self, Address, TradeAction, hex_address};
use crate::reconcile::{self, ReconcileError, Reconciliation};
use crate::replace::{self, Next, ReplacePolicy};
use crate::store::{
    Audit, Finding, Lease, LiveTask, LiveUpdate, Replacement, ReplacementKind, StoreError,
    inclusion_posting_id,
};

mod gap;
mod reorg;

/// Why the live path could not take a step (a refused trade is not an error: it is a
/// REJECTED task).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The database failed; the step is repeated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signer could not be reached or failed; the step is repeated.
    #[error("signer: {0}")]
    Signer(String),
    /// The chain's node failed; the step is repeated.
    #[error("chain node: {0}")]
    Rpc(String),
    /// Bad configuration (files, addresses).
    #[error("live path configuration: {0}")]
    Config(String),
    /// Reconciling the wallet failed; it is tried again.
    #[error("reconciliation: {0}")]
    Reconcile(#[from] ReconcileError),
    /// Engaging the kill switch failed (it is engaged in memory regardless).
    #[error("engine: {0}")]
    Engine(String),
    /// Sending by the trade's route failed.
    #[error(transparent)]
    Route(#[from] crate::route::RouteError),
    /// A stored row the live path cannot read (a bug or a hand-edited database).
    #[error("task {task_id}: {detail}")]
    Corrupt {
        /// The task.
        task_id: String,
        /// What is wrong.
        detail: String,
    },
}

/// How to reach the signer: its gRPC address and the engine's mutual-TLS identity.
#[derive(Debug, Clone)]
pub struct SignerEndpoint {
    /// `https://HOST:PORT` of the signer's engine port.
    pub url: String,
    /// The CA that issued the signer's server certificate.
    pub ca: PathBuf,
    /// The engine's client certificate (on the signer's allowlist).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The name the signer's certificate is checked against.
    pub server_name: String,
}

/// How the live path runs.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The chain's JSON-RPC node, where transactions are sent and receipts read.
    pub rpc_url: String,
    /// The account trades are sent from (one of the signer's).
    pub account: Address,
    /// The signer.
    pub signer: SignerEndpoint,
    /// This engine's name on nonce leases (unique per process).
    pub holder: String,
    /// How long a lease lasts unless renewed; another engine takes over after it.
    pub lease_ttl: Duration,
    /// Pause between steps when there is nothing to do.
    pub poll: Duration,
    /// Priority fee offered (wei per gas); the max fee is twice the base fee plus it.
    pub priority_fee_wei: u128,
    /// Gas limit: the simulated gas times this, within `[min_gas_limit, max_gas_limit]`.
    pub gas_limit_factor: f64,
    /// Lowest gas limit sent.
    pub min_gas_limit: u64,
    /// Highest gas limit sent.
    pub max_gas_limit: u64,
    /// How often the wallet is reconciled against the chain while this engine holds the
    /// lease (two reads per asset).
    pub reconcile_every: Duration,
    /// A STAGED task not yet sent to the signer this long after it was decided is EXPIRED
    /// instead: it was simulated on a state that old (while the kill switch held it, say).
    /// Tasks already sent to the signer are not expired this way: the signer may have
    /// signed, and its nonce must not be given to another transaction.
    pub unsigned_deadline: Duration,
    /// When a broadcast transaction not yet included is bumped or cancelled.
    pub replace: ReplacePolicy,
    /// The private route (a relay taking bundles) and its public fallback; `None` sends
    /// every trade to the public mempool ([`crate::route`]).
    pub private: Option<crate::route::PrivateRoute>,
    /// How many blocks below the head a receipt's block is still checked against the
    /// chain's (a reorg deeper than this is not seen); 0 turns the watch off.
    pub reorg_depth: u64,
}

impl LiveConfig {
    /// Defaults for everything but where things are.
    pub fn new(rpc_url: &str, account: Address, signer: SignerEndpoint) -> Self {
        LiveConfig {
            rpc_url: rpc_url.to_owned(),
            account,
            signer,
            holder: format!("engine-{}", uuid::Uuid::new_v4().simple()),
            lease_ttl: Duration::from_secs(10),
            poll: Duration::from_millis(100),
            priority_fee_wei: 1_000_000_000,
            gas_limit_factor: 1.5,
            min_gas_limit: 100_000,
            max_gas_limit: 1_000_000,
            reconcile_every: Duration::from_secs(5),
            unsigned_deadline: Duration::from_secs(600),
            replace: ReplacePolicy::default(),
            private: None,
            reorg_depth: 64,
        }
    }
}

/// What one step did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Whether this engine held the account's lease.
    pub leased: bool,
    /// Tasks moved, as `(task, to)`.
    pub moved: Vec<(String, TaskState)>,
}

/// What [`Live::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Whether this engine held the account's lease (without it, nothing was done).
    pub leased: bool,
    /// Tasks moved, as `(task, to)`, in order.
    pub moved: Vec<(String, TaskState)>,
    /// Open tasks left for the ordinary steps (waiting on a receipt or a human).
    pub still_open: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// A transaction sent at a task's nonce: its hash, its signed bytes, and the replacement it
/// is (`None` for the task's own).
type Sent<'a> = (&'a str, Option<&'a [u8]>, Option<&'a Replacement>);

/// The live path of one engine for one account.
pub struct Live {
    engine: Engine,
    config: LiveConfig,
    account: String,
    signer: SignerClient<Channel>,
    provider: DynProvider,
    chain_id: u64,
    /// Set once the wallet's opening balances are known to be booked.
    opened: AtomicBool,
    /// Where each transaction is sent: the node, or the private relay ([`crate::route`]).
    router: crate::route::Router,
    /// The head the reorg watch last found consistent with every receipt it holds.
    tip: reorg::Tip,
    /// Tasks whose nonce the chain counts as used while no receipt of theirs is found, with
    /// the head when that was first seen (see [`NONCE_USED_BLOCKS`]).
    nonce_used_since: tokio::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// The nonce gap the live path may be looking at (see the `gap` module).
    gap_watch: tokio::sync::Mutex<gap::GapWatch>,
}

/// How many blocks a task's nonce must stay used on chain, with no receipt of any of its
/// transactions, before the task is judged taken by a transaction it never signed.
const NONCE_USED_BLOCKS: u64 = 2;

fn amount(v: U256) -> Option<v1::Amount> {
    Some(v.into())
}

fn address(a: &Address) -> Option<v1::Address> {
    Some(v1::Address {
        value: hex_address(a),
    })
}

impl Live {
    /// Connects to the signer (mutual TLS, lazily: a signer that is down delays trades, it
    /// does not stop the engine) and the node.
    pub async fn connect(engine: Engine, config: LiveConfig) -> Result<Live, LiveError> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| LiveError::Config(format!("{}: {e}", p.display())))
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&config.signer.ca)?))
            .identity(Identity::from_pem(
                read(&config.signer.cert)?,
                read(&config.signer.key)?,
            ))
            .domain_name(config.signer.server_name.clone());
        let channel = Endpoint::from_shared(config.signer.url.clone())
            .map_err(|e| LiveError::Config(format!("signer url {}: {e}", config.signer.url)))?
            .tls_config(tls)
            .map_err(|e| LiveError::Config(format!("signer TLS: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        let url = config
            .rpc_url
            .parse()
            .map_err(|e| LiveError::Config(format!("node url {}: {e}", config.rpc_url)))?;
        let provider = ProviderBuilder::new().connect_http(url).erased();
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?;
        if chain_id != engine.chain_id() {
            return Err(LiveError::Config(format!(
                "the node is chain {chain_id}, the engine trades chain {}",
                engine.chain_id()
            )));
        }
        let router =
            crate::route::Router::new(&engine, &provider, config.private.clone(), &config.holder)?;
        Ok(Live {
            router,
            account: hex_address(&config.account),
            engine,
            config,
            signer: SignerClient::new(channel),
            provider,
            chain_id,
            opened: AtomicBool::new(false),
            tip: reorg::Tip::default(),
            nonce_used_since: tokio::sync::Mutex::default(),
            gap_watch: tokio::sync::Mutex::default(),
        })
    }

    /// Steps until `stop` turns true, then gives the lease back.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut lease: Option<Lease> = None;
        let mut reconciled: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let stepped = self.step_with(&mut lease, true).await;
            if let Err(e) = &stepped {
                warn!(error = %e, "live path step failed; repeating");
            }
            // Only the lease holder reconciles: it is the one booking the account's receipts,
            // and it does so between its own steps, so its trades never race the reading.
            let due = reconciled.is_none_or(|at| at.elapsed() >= self.config.reconcile_every);
            if lease.is_some() && due && self.opened.load(Ordering::Acquire) {
                reconciled = Some(Instant::now());
                if let Err(e) = self.reconcile().await {
                    warn!(error = %e, "reconciling the wallet; trying again");
                }
            }
            if matches!(&stepped, Ok(r) if !r.moved.is_empty()) {
                continue;
            }
            let pause = self.config.poll.saturating_sub(started.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if let Some(l) = lease
            && let Err(e) = self.engine.store().release_lease(&l).await
        {
            warn!(error = %e, "giving the nonce lease back");
        }
    }

    /// One step (see the module docs); what a crash interrupts, the next step finishes.
    pub async fn step(&self) -> Result<StepReport, LiveError> {
        self.step_with(&mut None, true).await
    }

    /// The recovery pass a starting engine runs before it accepts a proposal: under the
    /// lease, every task the database says is open is moved as far as it goes now — signed
    /// transactions the node lost are sent again unchanged, included ones booked from their
    /// receipts, unsigned ones put to the signer again (or ended) — and no new task is
    /// started. It stops when a round moves nothing; what still waits (a receipt not mined
    /// yet, a human's approval) the ordinary steps follow. With the lease held by another
    /// live engine, it does nothing: that engine is already doing this.
    pub async fn recover(&self) -> Result<Recovery, LiveError> {
        let started = Instant::now();
        let mut held = None;
        let mut report = Recovery::default();
        // Each round moves every open task at least one state or stops; 64 rounds is far
        // more than the states a task passes through.
        for _ in 0..64 {
            let r = self.step_with(&mut held, false).await?;
            report.leased = r.leased;
            if !r.leased || r.moved.is_empty() {
                break;
            }
            report.moved.extend(r.moved);
        }
        report.still_open = self.engine.store().open_live(&self.account).await?.len();
        report.elapsed = started.elapsed();
        info!(
            account = %self.account,
            leased = report.leased,
            moved = report.moved.len(),
            still_open = report.still_open,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "live path recovery done"
        );
        Ok(report)
    }

    async fn step_with(
        &self,
        held: &mut Option<Lease>,
        start_new: bool,
    ) -> Result<StepReport, LiveError> {
        let mut report = StepReport::default();
        let ttl = i64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        // A lease with more than half its time left is used as held: renewing it costs a
        // node call and two writes, every poll. Nothing trusts the cached copy: a nonce is
        // only ever taken against the stored lease (`Store::assign_nonce`).
        if let Some(lease) = held.as_ref()
            && lease.expires_at_ms - crate::store::now_ms() > ttl / 2
        {
            let lease = lease.clone();
            report.leased = true;
            report.moved = self.work(&lease, start_new).await?;
            return Ok(report);
        }
        let chain_next = self
            .provider
            .get_transaction_count(alloy_primitives::Address::from(self.config.account))
            .pending()
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?;
        let Some(lease) = self
            .engine
            .store()
            .take_lease(
                self.chain_id,
                &self.account,
                &self.config.holder,
                ttl,
                chain_next,
            )
            .await?
        else {
            *held = None;
            return Ok(report);
        };
        if held.as_ref().map(|l| l.token) != Some(lease.token) {
            info!(account = %self.account, token = lease.token, next_nonce = lease.next_nonce, "nonce lease taken");
        }
        *held = Some(lease.clone());
        report.leased = true;
        report.moved = self.work(&lease, start_new).await?;
        Ok(report)
    }

    /// Under `lease`: every open task moved as far as it goes, then (if `start_new` and no
    /// earlier task is waiting before signing) the next STAGED task started.
    async fn work(
        &self,
        lease: &Lease,
        start_new: bool,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        // Before this engine's first trade: the wallet opened, and reconciled, so money moved
        // while no engine was watching stops trading before anything is signed.
        if !self.opened.load(Ordering::Acquire) {
            self.open_wallet().await?;
            self.reconcile().await?;
            self.opened.store(true, Ordering::Release);
        }
        // First, receipts a reorg took away: their tasks are open again below.
        let mut moved_all = self.watch_reorgs().await?;
        let open = self.engine.store().open_live(&self.account).await?;
        let mut blocked = false;
        for task in open {
            let span = info_span!("live", trace_id = %task.trace_id, task_id = %task.task_id);
            let moved = self.advance(&task, &mut blocked).instrument(span).await?;
            moved_all.extend(moved);
        }
        // Then a nonce none of them holds, below the lease's next, that the chain waits for.
        self.fill_gaps(lease).await?;
        // The oldest STAGED task never sent to the signer: EXPIRED past its deadline (kill
        // switch or not: expiring signs nothing; the next stale one goes on the next step,
        // which follows at once), else started unless something holds the queue. The kill
        // switch stops everything not yet signed: no nonce taken, no signer asked
        // (`ask_signer`). What is signed already is followed to its receipt.
        if let Some(task) = self.engine.store().unassigned_staged(1).await?.pop() {
            let span = info_span!("live", trace_id = %task.trace_id, task_id = %task.task_id);
            let kill = self.engine.kill_switch();
            if self.past_unsigned_deadline(&task) {
                moved_all.extend(self.expire_unsigned(&task).instrument(span).await?);
            } else if kill.engaged && kill.cancel_pending {
                moved_all.extend(
                    self.end_before_signing(
                        &task,
                        TaskState::Staged,
                        TaskState::Expired,
                        "kill_switch",
                        "expired by the kill switch (cancel pending)",
                    )
                    .instrument(span)
                    .await?,
                );
            } else if start_new && !blocked && !kill.engaged {
                moved_all.extend(self.start(lease, task).instrument(span).await?);
            }
        }
        Ok(moved_all)
    }

    /// Moves one open task as far as it goes now. `blocked` is set while a task before
    /// signing is unresolved: no later task may take a nonce then.
    async fn advance(
        &self,
        task: &LiveTask,
        blocked: &mut bool,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        match task.state {
            TaskState::Staged => {
                let r = self.ask_signer(task, TaskState::Staged, "").await?;
                *blocked |=
                    r.is_empty() || r.iter().any(|(_, s)| *s == TaskState::AwaitingApproval);
                Ok(r)
            }
            TaskState::AwaitingApproval => {
                // Nothing is signed while a human has not approved, and the engine asks for
                // no signature under the kill switch: the trade can end, its nonce back.
                let kill = self.engine.kill_switch();
                if kill.engaged && kill.cancel_pending {
                    return self
                        .end_before_signing(
                            task,
                            TaskState::AwaitingApproval,
                            TaskState::Expired,
                            "kill_switch",
                            "expired by the kill switch (cancel pending) while awaiting approval",
                        )
                        .await;
                }
                let r = self.check_approval(task).await?;
                *blocked |= r.is_empty();
                Ok(r)
            }
            TaskState::Approved => {
                let r = self
                    .ask_signer(task, TaskState::Approved, &task.approval_id)
                    .await?;
                *blocked |= r.is_empty();
                Ok(r)
            }
            TaskState::Signed => self.broadcast(task).await,
            TaskState::Broadcast => self.check_receipt(task).await,
            _ => Ok(Vec::new()),
        }
    }

    /// Whether a task was decided longer ago than the unsigned deadline.
    fn past_unsigned_deadline(&self, task: &LiveTask) -> bool {
        let deadline = i64::try_from(self.config.unsigned_deadline.as_millis()).unwrap_or(i64::MAX);
        crate::store::now_ms().saturating_sub(task.created_at_ms) > deadline
    }

    /// EXPIRED (`deadline`): a STAGED task never sent to the signer, decided too long ago.
    async fn expire_unsigned(
        &self,
        task: &LiveTask,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        let detail = format!(
            "not sent to the signer within {} ms of being decided",
            self.config.unsigned_deadline.as_millis()
        );
        self.end_before_signing(
            task,
            TaskState::Staged,
            TaskState::Expired,
            "deadline",
            &detail,
        )
        .await
    }

    /// Assigns the next nonce to a STAGED task with the request it fixes, then asks the
    /// signer.
    async fn start(
        &self,
        lease: &Lease,
        task: LiveTask,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        let p = v1::Proposal::decode(task.proposal.as_slice()).map_err(|e| LiveError::Corrupt {
            task_id: task.task_id.clone(),
            detail: format!("stored proposal: {e}"),
        })?;
        let cp = match proposal::check(&p) {
            Ok(cp) => cp,
            Err(e) => {
                return self
                    .end_before_signing(
                        &task,
                        TaskState::Staged,
                        TaskState::Rejected,
                        "bad_input",
                        &e.to_string(),
                    )
                    .await;
            }
        };
        let request = match self.build_request(&task, &cp).await? {
            Ok(r) => r,
            Err(detail) => {
                return self
                    .end_before_signing(
                        &task,
                        TaskState::Staged,
                        TaskState::Rejected,
                        "not_live_tradable",
                        &detail,
                    )
                    .await;
            }
        };
        let assigned = self
            .engine
            .store()
            .assign_nonce(lease, &task.task_id, |nonce| {
                let mut r = request.clone();
                if let Some(tx) = r.tx.as_mut() {
                    tx.nonce = nonce;
                }
                r.encode_to_vec()
            })
            .await?;
        let Some(nonce) = assigned else {
            return Ok(Vec::new());
        };
        info!(nonce, "nonce assigned");
        let Some(task) = self.engine.store().live_task(&task.task_id).await? else {
            return Ok(Vec::new());
        };
        self.ask_signer(&task, TaskState::Staged, "").await
    }

    /// The signer request for a task (nonce 0, set when it is assigned), or why the task
    /// cannot be traded live.
    async fn build_request(
        &self,
        task: &LiveTask,
        cp: &proposal::CheckedProposal,
    ) -> Result<Result<v1::SignTransactionRequest, String>, LiveError> {
        let chain = self.engine.chain();
        let Some(executor) = chain.live_executor() else {
            return Ok(Err(
                "the engine simulates no executor deployed on the chain (see ChainState::use_executor)"
                    .into(),
            ));
        };
        let sim0 = U256::from_str_radix(&task.sim_amount0, 10).unwrap_or_default();
        let sim1 = U256::from_str_radix(&task.sim_amount1, 10).unwrap_or_default();
        let min_out = match cp.action {
            TradeAction::Swap { zero_for_one, .. } => {
                let out = if zero_for_one { sim1 } else { sim0 };
                let keep = U256::from(10_000u32 - cp.max_slippage_bps.min(10_000));
                out * keep / U256::from(10_000u32)
            }
            _ => U256::ZERO,
        };
        let input = match chain.live_calldata(&cp.action, min_out) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?
            .ok_or_else(|| LiveError::Rpc("no latest block".into()))?;
        let base_fee = u128::from(block.header.base_fee_per_gas.unwrap_or(0));
        let priority = self.config.priority_fee_wei;
        let max_fee = base_fee.saturating_mul(2).saturating_add(priority);
        let gas = (task.sim_gas_used.max(0) as f64 * self.config.gas_limit_factor) as u64;
        let gas_limit = gas.clamp(self.config.min_gas_limit, self.config.max_gas_limit);
        let (negative0, negative1) = match cp.action {
            TradeAction::Swap { zero_for_one, .. } => (!zero_for_one, zero_for_one),
            TradeAction::AddLiquidity(_) => (false, false),
            TradeAction::RemoveLiquidity(_) => (true, true),
        };
        Ok(Ok(v1::SignTransactionRequest {
            trace: Some(v1::TraceContext {
                trace_id: task.trace_id.clone(),
                span_id: String::new(),
            }),
            task_id: task.task_id.clone(),
            tx: Some(v1::Eip1559Transaction {
                chain_id: self.chain_id,
                nonce: 0,
                max_priority_fee_per_gas: amount(U256::from(priority)),
                max_fee_per_gas: amount(U256::from(max_fee)),
                gas_limit,
                to: address(&executor),
                value: amount(U256::ZERO),
                input,
            }),
            from: address(&self.config.account),
            simulation: Some(v1::ReportedSimulation {
                amount0: amount(sim0),
                amount0_negative: negative0,
                amount1: amount(sim1),
                amount1_negative: negative1,
                gas_used: task.sim_gas_used.max(0) as u64,
                gas_price: amount(chain.gas_price()),
                notional: amount(sim0.max(sim1)),
                block: chain.block_number(),
            }),
            approval_id: String::new(),
        }))
    }

    /// Sends the task's stored request (with `approval_id` once approved) and moves the task
    /// by the answer. Nothing moves when the signer cannot be reached.
    async fn ask_signer(
        &self,
        task: &LiveTask,
        from: TaskState,
        approval_id: &str,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        if self.engine.kill_switch().engaged {
            return Ok(Vec::new());
        }
        let bytes = task
            .signer_request
            .as_ref()
            .ok_or_else(|| LiveError::Corrupt {
                task_id: task.task_id.clone(),
                detail: "a nonce but no signer request".into(),
            })?;
        let mut request = v1::SignTransactionRequest::decode(bytes.as_slice()).map_err(|e| {
            LiveError::Corrupt {
                task_id: task.task_id.clone(),
                detail: format!("stored signer request: {e}"),
            }
        })?;
        request.approval_id = approval_id.to_owned();
        let answer = self.sign(request).await?;
        match v1::SignOutcome::try_from(answer.outcome).unwrap_or(v1::SignOutcome::Unspecified) {
            v1::SignOutcome::Signed => {
                let update = LiveUpdate {
                    tx_hash: Some(answer.tx_hash.clone()),
                    raw_tx: Some(answer.raw_transaction.clone()),
                    ..LiveUpdate::default()
                };
                let moved = self
                    .move_task(
                        task,
                        from,
                        TaskState::Signed,
                        "ok",
                        &answer.tx_hash,
                        &update,
                    )
                    .await?;
                if !moved {
                    return Ok(Vec::new());
                }
                info!(tx_hash = %answer.tx_hash, "signed");
                let mut out = vec![(task.task_id.clone(), TaskState::Signed)];
                let signed = LiveTask {
                    state: TaskState::Signed,
                    tx_hash: answer.tx_hash,
                    raw_tx: Some(answer.raw_transaction),
                    ..task.clone()
                };
                out.extend(self.broadcast(&signed).await?);
                Ok(out)
            }
            v1::SignOutcome::AwaitingApproval if from == TaskState::Staged => {
                let update = LiveUpdate {
                    approval_id: Some(answer.approval_id.clone()),
                    ..LiveUpdate::default()
                };
                let detail = format!(
                    "approval {} needs {} approver(s)",
                    answer.approval_id, answer.approvals_required
                );
                let moved = self
                    .move_task(
                        task,
                        from,
                        TaskState::AwaitingApproval,
                        "approval_required",
                        &detail,
                        &update,
                    )
                    .await?;
                if moved {
                    info!(approval_id = %answer.approval_id, "awaiting approval");
                    return Ok(vec![(task.task_id.clone(), TaskState::AwaitingApproval)]);
                }
                Ok(Vec::new())
            }
            v1::SignOutcome::AwaitingApproval => Ok(Vec::new()),
            v1::SignOutcome::Refused => {
                let reason = if answer.reason_code.is_empty() {
                    "signer_refused".to_owned()
                } else {
                    format!("signer_{}", answer.reason_code)
                };
                self.engine
                    .metrics()
                    .signer_refusals
                    .get_or_create(&[("reason", reason.clone())])
                    .inc();
                self.end_before_signing(task, from, TaskState::Rejected, &reason, &answer.detail)
                    .await
            }
            v1::SignOutcome::Unspecified => Err(LiveError::Signer(format!(
                "answer without an outcome (code {})",
                answer.outcome
            ))),
        }
    }

    /// One SignTransaction call; a signer that cannot be reached is an error (the step is
    /// repeated), an answer of any outcome is the caller's to act on.
    async fn sign(
        &self,
        request: v1::SignTransactionRequest,
    ) -> Result<v1::SignTransactionResponse, LiveError> {
        Ok(self
            .signer
            .clone()
            .sign_transaction(request)
            .await
            .map_err(|s| LiveError::Signer(format!("{}: {}", s.code(), s.message())))?
            .into_inner())
    }

    /// One stored move of `task` with what it records (see `Store::live_move`), counted in
    /// the metrics when it happened; `false` when the task was no longer in `from`.
    async fn move_task(
        &self,
        task: &LiveTask,
        from: TaskState,
        to: TaskState,
        reason: &str,
        detail: &str,
        update: &LiveUpdate,
    ) -> Result<bool, LiveError> {
        let moved = self
            .engine
            .store()
            .live_move(
                &task.task_id,
                from,
                to,
                reason,
                detail,
                &task.trace_id,
                &self.config.holder,
                update,
            )
            .await?;
        if moved {
            self.engine.metrics().moved(Some(from), to);
        }
        Ok(moved)
    }

    /// REJECTED or EXPIRED before anything was signed: the nonce is given back.
    async fn end_before_signing(
        &self,
        task: &LiveTask,
        from: TaskState,
        to: TaskState,
        reason: &str,
        detail: &str,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        let update = LiveUpdate {
            release_nonce: true,
            ..LiveUpdate::default()
        };
        let detail: String = detail.chars().take(1024).collect();
        let moved = self
            .move_task(task, from, to, reason, &detail, &update)
            .await?;
        if !moved {
            return Ok(Vec::new());
        }
        warn!(reason, detail = %detail, state = %to, "live trade ended before signing");
        Ok(vec![(task.task_id.clone(), to)])
    }

    async fn check_approval(&self, task: &LiveTask) -> Result<Vec<(String, TaskState)>, LiveError> {
        let approval = self
            .signer
            .clone()
            .get_approval(v1::GetApprovalRequest {
                trace: Some(v1::TraceContext {
                    trace_id: task.trace_id.clone(),
                    span_id: String::new(),
                }),
                approval_id: task.approval_id.clone(),
            })
            .await
            .map_err(|s| LiveError::Signer(format!("{}: {}", s.code(), s.message())))?
            .into_inner();
        match v1::ApprovalState::try_from(approval.state).unwrap_or(v1::ApprovalState::Unspecified)
        {
            v1::ApprovalState::Approved => {
                let who: Vec<&str> = approval
                    .decided_by
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect();
                let moved = self
                    .move_task(
                        task,
                        TaskState::AwaitingApproval,
                        TaskState::Approved,
                        "approved",
                        &format!("by {}", who.join(", ")),
                        &LiveUpdate::default(),
                    )
                    .await?;
                if !moved {
                    return Ok(Vec::new());
                }
                let mut out = vec![(task.task_id.clone(), TaskState::Approved)];
                let approved = LiveTask {
                    state: TaskState::Approved,
                    ..task.clone()
                };
                out.extend(
                    self.ask_signer(&approved, TaskState::Approved, &task.approval_id)
                        .await?,
                );
                Ok(out)
            }
            v1::ApprovalState::Rejected => {
                let reason = if approval.reason.is_empty() {
                    "rejected by an approver".to_owned()
                } else {
                    approval.reason.clone()
                };
                self.end_before_signing(
                    task,
                    TaskState::AwaitingApproval,
                    TaskState::Rejected,
                    "approval_rejected",
                    &reason,
                )
                .await
            }
            v1::ApprovalState::Expired => {
                self.end_before_signing(
                    task,
                    TaskState::AwaitingApproval,
                    TaskState::Expired,
                    "approval_expired",
                    "no decision in time",
                )
                .await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Sends a SIGNED task's stored transaction and moves it to BROADCAST. A node that has
    /// it already (a re-send after a crash) counts as sent.
    async fn broadcast(&self, task: &LiveTask) -> Result<Vec<(String, TaskState)>, LiveError> {
        let raw = task.raw_tx.as_ref().ok_or_else(|| LiveError::Corrupt {
            task_id: task.task_id.clone(),
            detail: "SIGNED without a signed transaction".into(),
        })?;
        // By the trade's route: the public mempool, or the private relay (which may also
        // hold it, unsent, when it fails and no public fallback is configured).
        let sent = match self.router.first_send(task, raw).await? {
            crate::route::Sent::Public => self.provider.send_raw_transaction(raw).await.map(drop),
            crate::route::Sent::Private => Ok(()),
            crate::route::Sent::Held => return Ok(Vec::new()),
        };
        if let Err(e) = sent {
            let text = e.to_string();
            let known = text.contains("already known") || text.contains("already imported");
            // Mined already (a crash after sending, before BROADCAST was stored)?
            let mined = !known && self.receipt(&task.tx_hash, &task.task_id).await?.is_some();
            if !known && !mined {
                return Err(LiveError::Rpc(format!("sending {}: {text}", task.tx_hash)));
            }
        }
        let head = self.head().await?;
        let update = LiveUpdate {
            broadcast_block: Some(head),
            ..LiveUpdate::default()
        };
        let moved = self
            .move_task(
                task,
                TaskState::Signed,
                TaskState::Broadcast,
                "ok",
                &task.tx_hash,
                &update,
            )
            .await?;
        if !moved {
            return Ok(Vec::new());
        }
        info!(tx_hash = %task.tx_hash, block = head, "broadcast");
        let mut out = vec![(task.task_id.clone(), TaskState::Broadcast)];
        let sent = LiveTask {
            state: TaskState::Broadcast,
            broadcast_block: Some(head),
            ..task.clone()
        };
        out.extend(self.check_receipt(&sent).await?);
        Ok(out)
    }

    async fn receipt(
        &self,
        tx_hash: &str,
        task_id: &str,
    ) -> Result<Option<alloy::rpc::types::TransactionReceipt>, LiveError> {
        let hash: B256 = tx_hash.parse().map_err(|e| LiveError::Corrupt {
            task_id: task_id.to_owned(),
            detail: format!("stored tx hash {tx_hash:?}: {e}"),
        })?;
        self.provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))
    }

    /// The node's latest block number.
    async fn head(&self) -> Result<u64, LiveError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))
    }

    /// Sends a signed transaction again, unchanged, if the node knows nothing of it
    /// (dropped from its pool, or a node restarted without it); true if the node took it.
    /// A node that refuses it (priced under the base fee, say, which is why some nodes
    /// drop it) leaves it to a replacement.
    async fn resend_if_lost(
        &self,
        task_id: &str,
        tx_hash: &str,
        raw: Option<&[u8]>,
    ) -> Result<bool, LiveError> {
        let Some(raw) = raw else {
            return Ok(false);
        };
        // A privately routed one is the relay's: sent again for each block while not
        // included (the node never holds it), unless it falls back to the public route.
        if !self.router.follow_up(task_id, raw).await? {
            return Ok(false);
        }
        let hash: B256 = tx_hash.parse().map_err(|e| LiveError::Corrupt {
            task_id: task_id.to_owned(),
            detail: format!("stored tx hash {tx_hash:?}: {e}"),
        })?;
        let pending = self
            .provider
            .get_transaction_by_hash(hash)
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?;
        if pending.is_some() {
            return Ok(false);
        }
        warn!(
            tx_hash,
            "the node does not know the transaction; sending it again"
        );
        match self.provider.send_raw_transaction(raw).await {
            Ok(_) => Ok(true),
            Err(e) => {
                warn!(error = %e, "the node refused it again");
                Ok(false)
            }
        }
    }

    /// Follows a BROADCAST task: CONFIRMED or FAILED by the receipt of its transaction or
    /// of a fee bump of it, EXPIRED by its cancel's. Without a receipt, the transaction the
    /// node should hold is sent again if the node lost it, and a bump or the cancel is
    /// sent when due ([`crate::replace`]).
    async fn check_receipt(&self, task: &LiveTask) -> Result<Vec<(String, TaskState)>, LiveError> {
        let replacements = self.engine.store().replacements(&task.task_id).await?;
        // Every transaction that may be mined at the nonce, newest (the likeliest) first.
        let mut sent: Vec<Sent<'_>> = replacements
            .iter()
            .rev()
            .filter(|r| !r.tx_hash.is_empty())
            .map(|r| (r.tx_hash.as_str(), r.raw_tx.as_deref(), Some(r)))
            .collect();
        sent.push((task.tx_hash.as_str(), task.raw_tx.as_deref(), None));
        for &(hash, _, by) in &sent {
            if let Some(receipt) = self.receipt(hash, &task.task_id).await? {
                self.nonce_used_since.lock().await.remove(&task.task_id);
                return self.included(task, by, receipt).await;
            }
        }
        // Then by nonce: the account's nonce used on chain, by none of these, for
        // NONCE_USED_BLOCKS blocks (a node may count a nonce before it serves the receipt
        // of the transaction that used it: one read of each is no proof).
        if let Some(nonce) = task.nonce
            && self.mined_nonce().await? > nonce
        {
            let head = self.head().await?;
            let since = *self
                .nonce_used_since
                .lock()
                .await
                .entry(task.task_id.clone())
                .or_insert(head);
            if head >= since.saturating_add(NONCE_USED_BLOCKS) {
                return self.nonce_used_elsewhere(task, &sent, nonce).await;
            }
            // Nothing else can be mined at the nonce: no re-send, no replacement.
            return Ok(Vec::new());
        }
        // The node should hold the newest one it accepted; a node that mines on arrival
        // includes it at once, otherwise a later step reads its receipt.
        if let Some(&(hash, raw, by)) = sent
            .iter()
            .find(|(_, _, by)| by.is_none_or(|r| r.refused.is_empty()))
            && self.resend_if_lost(&task.task_id, hash, raw).await?
        {
            return match self.receipt(hash, &task.task_id).await? {
                Some(receipt) => self.included(task, by, receipt).await,
                None => Ok(Vec::new()),
            };
        }
        self.replace_if_due(task, &replacements).await?;
        Ok(Vec::new())
    }

    /// The account's next nonce as of the latest block: every nonce below it is used.
    async fn mined_nonce(&self) -> Result<u64, LiveError> {
        self.provider
            .get_transaction_count(alloy_primitives::Address::from(self.config.account))
            .latest()
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))
    }

    /// The task's nonce is used on chain, and no receipt of the transactions it signed was
    /// found: read them once more (one may have been mined between the two reads), else
    /// the nonce went to a transaction this engine never signed for the task — another
    /// system sending from the account, or a key used elsewhere. Nothing of the task can be
    /// included any more: it is FAILED (`nonce_used`), and the kill switch is engaged,
    /// because whatever sent that transaction can send more.
    async fn nonce_used_elsewhere(
        &self,
        task: &LiveTask,
        sent: &[Sent<'_>],
        nonce: u64,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        self.nonce_used_since.lock().await.remove(&task.task_id);
        for &(hash, _, by) in sent {
            if let Some(receipt) = self.receipt(hash, &task.task_id).await? {
                return self.included(task, by, receipt).await;
            }
        }
        let ours: Vec<&str> = sent.iter().map(|(hash, _, _)| *hash).collect();
        let detail = format!(
            "nonce {nonce} of {} was used on chain by a transaction this task never signed \
             (its own: {})",
            self.account,
            ours.join(", ")
        );
        let moved = self
            .move_task(
                task,
                TaskState::Broadcast,
                TaskState::Failed,
                "nonce_used",
                &detail,
                &LiveUpdate::default(),
            )
            .await?;
        if !moved {
            return Ok(Vec::new());
        }
        error!(detail = %detail, "a nonce of the account was used elsewhere; engaging the kill switch");
        self.engine
            .set_kill_switch(&task.trace_id, &detail, "live-path")
            .await
            .map_err(|e| LiveError::Engine(e.to_string()))?;
        Ok(vec![(task.task_id.clone(), TaskState::Failed)])
    }

    /// Finishes a replacement a crash (or a signer that was down) interrupted, else plans,
    /// signs and sends the next one if [`ReplacePolicy::next`] says it is due.
    async fn replace_if_due(
        &self,
        task: &LiveTask,
        replacements: &[Replacement],
    ) -> Result<(), LiveError> {
        if let Some(r) = replacements.last()
            && r.refused.is_empty()
        {
            if r.tx_hash.is_empty() {
                return self.sign_replacement(task, r).await;
            }
            if r.sent_block.is_none() {
                let raw = r.raw_tx.as_deref().unwrap_or_default();
                return self.send_replacement(task, r, &r.tx_hash, raw).await;
            }
        }
        // A task broadcast by an engine from before replacements has no block to count
        // from: it is followed to its receipt as it was.
        let Some(broadcast_block) = task.broadcast_block else {
            return Ok(());
        };
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?
            .ok_or_else(|| LiveError::Rpc("no latest block".into()))?;
        let head = block.header.number;
        let kill = self.engine.kill_switch();
        let Next::Plan {
            attempt,
            kind,
            percent,
        } = self.config.replace.next(
            head,
            broadcast_block,
            replacements,
            kill.engaged,
            kill.engaged && kill.cancel_pending,
        )
        else {
            return Ok(());
        };
        let corrupt = |what: &str, e: prost::DecodeError| LiveError::Corrupt {
            task_id: task.task_id.clone(),
            detail: format!("stored {what}: {e}"),
        };
        let original =
            v1::SignTransactionRequest::decode(task.signer_request.as_deref().unwrap_or_default())
                .map_err(|e| corrupt("signer request", e))?;
        let (mut top_fee, mut top_tip) = replace::request_fees(&original);
        for r in replacements {
            let earlier = v1::SignTransactionRequest::decode(r.signer_request.as_slice())
                .map_err(|e| corrupt("replacement request", e))?;
            let (fee, tip) = replace::request_fees(&earlier);
            top_fee = top_fee.max(fee);
            top_tip = top_tip.max(tip);
        }
        let base_fee = u128::from(block.header.base_fee_per_gas.unwrap_or(0));
        let fees = replace::replacement_fees(
            top_fee,
            top_tip,
            percent,
            base_fee,
            self.config.priority_fee_wei,
        );
        let request = replace::replacement_request(&original, attempt, kind, fees);
        let detail = format!(
            "{} {attempt} at nonce {}: fees {}/{} wei (+{percent}% over {top_fee}/{top_tip}, base fee {base_fee}), not included {} blocks after block {broadcast_block}",
            kind.as_str(),
            task.nonce.unwrap_or_default(),
            fees.0,
            fees.1,
            head.saturating_sub(broadcast_block),
        );
        let bytes = request.encode_to_vec();
        let planned = self
            .engine
            .store()
            .plan_replacement(
                &task.task_id,
                attempt,
                kind,
                &bytes,
                &self.config.holder,
                &detail,
            )
            .await?;
        if !planned {
            return Ok(());
        }
        warn!(detail = %detail, "replacing a pending transaction");
        let r = Replacement {
            task_id: task.task_id.clone(),
            attempt,
            kind,
            signer_request: bytes,
            tx_hash: String::new(),
            raw_tx: None,
            sent_block: None,
            refused: String::new(),
        };
        self.sign_replacement(task, &r).await
    }

    /// Asks the signer for a planned replacement (its stored request, so a repeat is
    /// answered with the same bytes) and sends it; a refusal is recorded and ends bumping.
    async fn sign_replacement(&self, task: &LiveTask, r: &Replacement) -> Result<(), LiveError> {
        let request =
            v1::SignTransactionRequest::decode(r.signer_request.as_slice()).map_err(|e| {
                LiveError::Corrupt {
                    task_id: task.task_id.clone(),
                    detail: format!("stored replacement request: {e}"),
                }
            })?;
        let answer = self.sign(request).await?;
        let store = self.engine.store();
        match v1::SignOutcome::try_from(answer.outcome).unwrap_or(v1::SignOutcome::Unspecified) {
            v1::SignOutcome::Signed => {
                store
                    .replacement_signed(
                        &task.task_id,
                        r.attempt,
                        &answer.tx_hash,
                        &answer.raw_transaction,
                    )
                    .await?;
                self.send_replacement(task, r, &answer.tx_hash, &answer.raw_transaction)
                    .await
            }
            v1::SignOutcome::Refused | v1::SignOutcome::AwaitingApproval => {
                let why = if answer.outcome == v1::SignOutcome::AwaitingApproval as i32 {
                    "signer: a replacement waits for a human".to_owned()
                } else {
                    format!("signer_{}: {}", answer.reason_code, answer.detail)
                };
                store
                    .replacement_refused(&task.task_id, r.attempt, &why)
                    .await?;
                warn!(kind = r.kind.as_str(), attempt = r.attempt, why = %why, "replacement refused");
                Ok(())
            }
            v1::SignOutcome::Unspecified => Err(LiveError::Signer(format!(
                "answer without an outcome (code {})",
                answer.outcome
            ))),
        }
    }

    /// Sends a signed replacement and records the block it went out at. A node that
    /// refuses it (underpriced, say) has it recorded as refused: the transaction before it
    /// is still the one pending, and the deadline's cancel still comes.
    async fn send_replacement(
        &self,
        task: &LiveTask,
        r: &Replacement,
        tx_hash: &str,
        raw: &[u8],
    ) -> Result<(), LiveError> {
        let store = self.engine.store();
        // A replacement goes by the task's route (`crate::route`).
        let sent = match self.router.replacement(&task.task_id, raw).await? {
            crate::route::Sent::Public => self.provider.send_raw_transaction(raw).await.map(drop),
            crate::route::Sent::Private => Ok(()),
            crate::route::Sent::Held => return Ok(()),
        };
        if let Err(e) = sent {
            let text = e.to_string();
            let known = text.contains("already known") || text.contains("already imported");
            let mined = !known && self.receipt(tx_hash, &task.task_id).await?.is_some();
            if !known && !mined {
                if e.as_error_resp().is_none() {
                    return Err(LiveError::Rpc(format!("sending {tx_hash}: {text}")));
                }
                // The node answered: it will not take this one (an earlier transaction at
                // the nonce may have been mined meanwhile; the next step reads it).
                store
                    .replacement_refused(&task.task_id, r.attempt, &format!("node: {text}"))
                    .await?;
                warn!(tx_hash, error = %text, "the node refused a replacement");
                return Ok(());
            }
        }
        let head = self.head().await?;
        store
            .replacement_sent(&task.task_id, r.attempt, head)
            .await?;
        info!(
            tx_hash,
            kind = r.kind.as_str(),
            attempt = r.attempt,
            block = head,
            "replacement sent"
        );
        Ok(())
    }

    /// Moves a BROADCAST task by the receipt of one of its transactions: `by` is the
    /// replacement it belongs to (`None` for the task's own).
    async fn included(
        &self,
        task: &LiveTask,
        by: Option<&Replacement>,
        receipt: alloy::rpc::types::TransactionReceipt,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        if let Some(r) = by
            && r.kind == ReplacementKind::Cancel
        {
            return self.cancelled(task, r, &receipt).await;
        }
        let executor = alloy_primitives::Address::from(self.engine.chain().executor());
        let logs: Vec<alloy_primitives::Log> = receipt
            .inner
            .logs()
            .iter()
            .map(|l| l.inner.clone())
            .collect();
        let moved = ChainFill::from_logs(&logs, executor);
        let (a0, a1) = (moved.amount0, moved.amount1);
        let ok = receipt.status();
        let to = if ok {
            TaskState::Confirmed
        } else {
            TaskState::Failed
        };
        let block = receipt.block_number.unwrap_or_default();
        let fill = if ok {
            self.live_fill(task, &moved)
        } else {
            None
        };
        // The wallet, from what the chain did: the tokens its Transfer logs moved (none when
        // it reverted) and the gas it paid either way.
        let moves = token_moves(&logs, self.config.account);
        let gas_wei = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
        let fill = self.strategy_share(task, fill, gas_wei, "gas of a reverted trade");
        let mut postings: Vec<Posting> = fill.iter().map(|(_, _, p)| p.clone()).collect();
        if !moves.is_empty() {
            postings.push(ledger::wallet_posting(&task.task_id, &self.account, &moves));
        }
        if !gas_wei.is_zero() {
            postings.push(ledger::gas_posting(&task.task_id, &self.account, gas_wei));
        }
        for p in &mut postings {
            p.posting_id = inclusion_posting_id(&p.posting_id, task.reorgs);
        }
        let update = LiveUpdate {
            postings,
            receipt: Some((
                block,
                u64::from(ok),
                receipt.gas_used,
                receipt.effective_gas_price.to_string(),
            )),
            receipt_block_hash: receipt.block_hash.map(|h| h.to_string()),
            actual: Some((a0.to_string(), a1.to_string())),
            // A fee bump was mined: the task names the transaction the chain holds.
            tx_hash: by.map(|r| r.tx_hash.clone()),
            raw_tx: by.and_then(|r| r.raw_tx.clone()),
            ..LiveUpdate::default()
        };
        let (reason, mut detail) = if ok {
            ("ok", format!("block {block}"))
        } else {
            ("reverted", format!("reverted in block {block}"))
        };
        if let Some(r) = by {
            detail.push_str(&format!(" by fee bump {} ({})", r.attempt, r.tx_hash));
        }
        detail.push_str(&format!(
            "; gas {} at {} wei, simulated {}; amounts {a0}/{a1}, simulated {}/{}",
            receipt.gas_used,
            receipt.effective_gas_price,
            task.sim_gas_used,
            task.sim_amount0,
            task.sim_amount1
        ));
        // What revm predicted against what the chain did: the columns keep both figures;
        // a difference is counted and logged (a trade included on another state than it
        // was simulated on differs in amounts; one that differs on the same state is a bug).
        let differs = [
            (
                "amounts",
                (a0.to_string(), a1.to_string())
                    != (task.sim_amount0.clone(), task.sim_amount1.clone()),
            ),
            (
                "gas_used",
                i64::try_from(receipt.gas_used).ok() != Some(task.sim_gas_used),
            ),
            ("status", !ok),
        ];
        let moved = self
            .move_task(task, TaskState::Broadcast, to, reason, &detail, &update)
            .await?;
        if !moved {
            return Ok(Vec::new());
        }
        if let Some((strategy, account, posting)) = &fill {
            self.engine.book_live_fill(strategy, account, posting);
        }
        for (field, differ) in differs {
            if differ {
                self.engine
                    .metrics()
                    .prediction_differences
                    .get_or_create(&[("field", field)])
                    .inc();
                warn!(field, detail = %detail, "the receipt differs from the simulation");
            }
        }
        info!(block, gas_used = receipt.gas_used, state = %to, "receipt");
        Ok(vec![(task.task_id.clone(), to)])
    }

    /// EXPIRED (`deadline`, or `kill_switch` when the switch sent it) by the receipt of the
    /// task's cancel: the nonce is used, nothing was traded, and the gas it paid is booked.
    async fn cancelled(
        &self,
        task: &LiveTask,
        r: &Replacement,
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> Result<Vec<(String, TaskState)>, LiveError> {
        let block = receipt.block_number.unwrap_or_default();
        let gas_wei = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
        let share = self.strategy_share(task, None, gas_wei, "gas of the cancel");
        let mut postings: Vec<Posting> = share.iter().map(|(_, _, p)| p.clone()).collect();
        if !gas_wei.is_zero() {
            postings.push(ledger::gas_posting(&task.task_id, &self.account, gas_wei));
        }
        for p in &mut postings {
            p.posting_id = inclusion_posting_id(&p.posting_id, task.reorgs);
        }
        let update = LiveUpdate {
            postings,
            receipt: Some((
                block,
                u64::from(receipt.status()),
                receipt.gas_used,
                receipt.effective_gas_price.to_string(),
            )),
            receipt_block_hash: receipt.block_hash.map(|h| h.to_string()),
            tx_hash: Some(r.tx_hash.clone()),
            raw_tx: r.raw_tx.clone(),
            ..LiveUpdate::default()
        };
        let kill = self.engine.kill_switch();
        let (reason, why) = if kill.engaged && kill.cancel_pending {
            ("kill_switch", "cancelled by the kill switch".to_owned())
        } else {
            (
                "deadline",
                format!(
                    "not included within {} blocks",
                    self.config.replace.inclusion_deadline_blocks
                ),
            )
        };
        let detail = format!(
            "{why}: nonce {} cancelled by {} in block {block} (gas {} at {} wei)",
            task.nonce.unwrap_or_default(),
            r.tx_hash,
            receipt.gas_used,
            receipt.effective_gas_price,
        );
        let moved = self
            .move_task(
                task,
                TaskState::Broadcast,
                TaskState::Expired,
                reason,
                &detail,
                &update,
            )
            .await?;
        if !moved {
            return Ok(Vec::new());
        }
        if let Some((strategy, account, posting)) = &share {
            self.engine.book_live_fill(strategy, account, posting);
        }
        warn!(detail = %detail, "live trade cancelled");
        Ok(vec![(task.task_id.clone(), TaskState::Expired)])
    }

    /// Books the wallet's opening balances, read from the chain, unless they are booked
    /// already: ether and every token of the engine's pools, at the latest block. Done
    /// before this engine's first step, when nothing of the account can be in flight that
    /// the ledger does not know (any open task is already in the database and booked on its
    /// receipt, after the opening).
    async fn open_wallet(&self) -> Result<(), LiveError> {
        let store = self.engine.store();
        if store.wallet_opening(&self.account).await?.is_some() {
            return Ok(());
        }
        let block = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?;
        let mut assets = vec![ledger::ETHER.to_owned()];
        for (_, info) in self.engine.chain().pool_infos() {
            assets.push(hex_address(&info.token0));
            assets.push(hex_address(&info.token1));
        }
        assets.sort();
        assets.dedup();
        let mut balances = Vec::with_capacity(assets.len());
        for asset in assets {
            let v = reconcile::chain_balance(&self.provider, &self.config.account, &asset, block)
                .await?;
            balances.push((asset, v));
        }
        let shown: Vec<String> = balances.iter().map(|(a, v)| format!("{a} {v}")).collect();
        let posting = ledger::opening_posting(&self.account, block, &balances);
        let audit = Audit {
            actor: self.config.holder.clone(),
            action: "wallet_opened".into(),
            subject: self.account.clone(),
            from_state: String::new(),
            to_state: String::new(),
            detail: format!("block {block}: {}", shown.join(", ")),
            trace_id: String::new(),
        };
        if store
            .open_wallet(&self.account, block, &posting, &audit)
            .await?
        {
            info!(account = %self.account, block, balances = %shown.join(", "), "wallet opened");
        }
        Ok(())
    }

    /// Reconciles the wallet now (see [`crate::reconcile`]). A difference with nothing in
    /// flight, found while the kill switch is released, is recorded with an audit row and
    /// engages the kill switch; one seen while the switch is engaged is only reported (the
    /// operator clearing it without adopting the difference has it engaged again here).
    /// `None` before the wallet is opened.
    pub async fn reconcile(&self) -> Result<Option<Reconciliation>, LiveError> {
        let Some(r) =
            reconcile::reconcile(self.engine.store(), &self.provider, &self.config.account).await?
        else {
            return Ok(None);
        };
        let count = r.differences().count();
        self.engine
            .metrics()
            .reconciliation_differences
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        if r.is_zero() || r.in_flight > 0 || self.engine.kill_switch().engaged {
            return Ok(Some(r));
        }
        let found_at_ms = crate::store::now_ms();
        let findings: Vec<Finding> = r
            .differences()
            .map(|a| Finding {
                account: r.account.clone(),
                block: r.block,
                asset: a.asset.clone(),
                ledger: a.ledger.to_string(),
                chain: a.chain.to_string(),
                difference: a.difference.to_string(),
                found_at_ms,
            })
            .collect();
        let shown: Vec<String> = findings
            .iter()
            .map(|f| format!("{} {}", f.asset, f.difference))
            .collect();
        let shown = shown.join(", ");
        let audit = Audit {
            actor: self.config.holder.clone(),
            action: "reconciliation_difference".into(),
            subject: r.account.clone(),
            from_state: String::new(),
            to_state: String::new(),
            detail: format!("block {}: {shown}", r.block),
            trace_id: String::new(),
        };
        self.engine
            .store()
            .record_findings(&findings, &audit)
            .await?;
        error!(account = %r.account, block = r.block, differences = %shown, "the ledger and the chain differ; engaging the kill switch");
        for f in &findings {
            self.engine
                .alerts()
                .raise(crate::alert::Alert::reconciliation_difference(
                    &f.account,
                    &f.asset,
                    f.block,
                    &f.ledger,
                    &f.chain,
                    &f.difference,
                ));
        }
        let reason = format!(
            "{} differs from the chain at block {}: {shown} (stratbox reconcile)",
            r.account, r.block
        );
        self.engine
            .set_kill_switch("", &reason, "reconciliation")
            .await
            .map_err(|e| LiveError::Engine(e.to_string()))?;
        Ok(Some(r))
    }

    /// What a receipt does to the strategy's book (`<task>:fill`): its fill, if it filled,
    /// and the gas it paid in ether (valued at the ether mark, see [`crate::books`]) — a
    /// reverted trade or a cancel costs its strategy gas too. `None` if there is nothing
    /// to book or the task's proposal no longer reads.
    fn strategy_share(
        &self,
        task: &LiveTask,
        fill: Option<(String, String, Posting)>,
        gas_wei: U256,
        memo: &str,
    ) -> Option<(String, String, Posting)> {
        let (strategy, account, posting) = match fill {
            Some(f) => f,
            None if gas_wei.is_zero() => return None,
            None => {
                let p = v1::Proposal::decode(task.proposal.as_slice()).ok()?;
                let cp = proposal::check(&p).ok()?;
                let empty = Posting::new(
                    format!("{}:fill", task.task_id),
                    task.task_id.clone(),
                    memo.to_owned(),
                    Vec::new(),
                )
                .ok()?;
                (cp.strategy, cp.account, empty)
            }
        };
        let book = ledger::strategy_account(&strategy, &account);
        let posting = posting.with_strategy_gas(&book, &self.account, gas_wei);
        Some((strategy, account, posting))
    }

    /// The ledger posting of a confirmed trade's real fill between the strategy's book and
    /// the pool, from what the receipt's logs say moved, as a shadow fill is booked from its
    /// simulation: a swap's amounts from the pool's `Swap`; a liquidity change's from the
    /// executor's event (tokens paid for a mint; principal and fees received for a burn)
    /// against the position's liquidity (`ledger::lp_asset`).
    fn live_fill(&self, task: &LiveTask, moved: &ChainFill) -> Option<(String, String, Posting)> {
        let p = v1::Proposal::decode(task.proposal.as_slice()).ok()?;
        let cp = proposal::check(&p).ok()?;
        let pool = cp.action.pool();
        let info = self.engine.chain().pool(&pool)?;
        let token = |asset: &Address, amount: AU256, to_strategy: bool| Leg {
            asset: hex_address(asset),
            amount: U256::from_limbs(*amount.as_limbs()),
            to_strategy,
        };
        let lp = |r: &proposal::Range, to_strategy: bool| Leg {
            asset: ledger::lp_asset(&pool, r.tick_lower, r.tick_upper),
            amount: U256::from(r.liquidity),
            to_strategy,
        };
        let legs = match &cp.action {
            TradeAction::Swap { zero_for_one, .. } => vec![
                token(&info.token0, moved.amount0, !zero_for_one),
                token(&info.token1, moved.amount1, *zero_for_one),
            ],
            TradeAction::AddLiquidity(r) if moved.liquidity == Some(r.liquidity) => vec![
                token(&info.token0, moved.booked0, false),
                token(&info.token1, moved.booked1, false),
                lp(r, true),
            ],
            TradeAction::RemoveLiquidity(r) if moved.liquidity == Some(r.liquidity) => vec![
                token(&info.token0, moved.booked0, true),
                token(&info.token1, moved.booked1, true),
                lp(r, false),
            ],
            _ => {
                warn!(
                    liquidity = ?moved.liquidity,
                    "the receipt's executor events do not match the liquidity proposed; not booked on the strategy's book"
                );
                return None;
            }
        };
        match ledger::fill_posting(
            format!("{}:fill", task.task_id),
            task.task_id.clone(),
            format!("live {}", cp.action.kind()),
            &ledger::strategy_account(&cp.strategy, &cp.account),
            &ledger::venue_account(&pool),
            &legs,
        ) {
            Ok(posting) => Some((cp.strategy, cp.account, posting)),
            Err(e) => {
                warn!(error = %e, "the live fill does not balance; not booked");
                None
            }
        }
    }
}

/// What one receipt's logs say a trade moved through the pool.
#[derive(Debug, Default, PartialEq, Eq)]
struct ChainFill {
    /// Token0 through the pool: a swap's in or out, a mint's paid, a burn's principal
    /// (what the simulation reports, so the two compare).
    amount0: AU256,
    /// As `amount0`, for token1.
    amount1: AU256,
    /// Token0 the strategy's book moves: `amount0`, plus a burn's fees collected.
    booked0: AU256,
    /// As `booked0`, for token1.
    booked1: AU256,
    /// Liquidity the executor added or removed (`None` for a swap).
    liquidity: Option<u128>,
}

impl ChainFill {
    fn from_logs(logs: &[alloy_primitives::Log], executor: alloy_primitives::Address) -> Self {
        use stratbox_evm::abi::StratboxExecutor::{LiquidityAdded, LiquidityRemoved};
        let mut f = ChainFill::default();
        for (_, event) in stratbox_evm::pool_events::decode_receipt_logs(logs, executor) {
            if let stratbox_evm::pool_events::PoolEvent::Swap(s) = event {
                f.amount0 = f.amount0.saturating_add(s.amount0.unsigned_abs());
                f.amount1 = f.amount1.saturating_add(s.amount1.unsigned_abs());
            }
        }
        for log in logs.iter().filter(|l| l.address == executor) {
            if let Ok(x) = LiquidityAdded::decode_log(log) {
                f.amount0 = f.amount0.saturating_add(x.amount0);
                f.amount1 = f.amount1.saturating_add(x.amount1);
                f.liquidity = Some(f.liquidity.unwrap_or(0).saturating_add(x.liquidity));
            } else if let Ok(x) = LiquidityRemoved::decode_log(log) {
                f.amount0 = f.amount0.saturating_add(x.amount0);
                f.amount1 = f.amount1.saturating_add(x.amount1);
                f.booked0 = f.booked0.saturating_add(x.fees0);
                f.booked1 = f.booked1.saturating_add(x.fees1);
                f.liquidity = Some(f.liquidity.unwrap_or(0).saturating_add(x.liquidity));
            }
        }
        f.booked0 = f.booked0.saturating_add(f.amount0);
        f.booked1 = f.booked1.saturating_add(f.amount1);
        f
    }
}

/// The tokens `account` received (positive) or sent (negative) by `logs`' ERC-20 Transfer
/// events, per token address, netted; tokens that net to zero are left out. Summed in 512
/// bits, so no number of events (a token's `value` is anything its contract logs) can
/// overflow; a net beyond 256 bits, which no balance can be, is left out and shows as a
/// reconciliation difference.
fn token_moves(logs: &[alloy_primitives::Log], account: Address) -> Vec<(String, Signed)> {
    let me = alloy_primitives::Address::from(account);
    let mut net: BTreeMap<String, (U512, U512)> = BTreeMap::new();
    for log in logs {
        if log.topics().first() != Some(&IERC20::Transfer::SIGNATURE_HASH) {
            continue;
        }
        let Ok(t) = IERC20::Transfer::decode_log(log) else {
            continue;
        };
        let value = U512::from(U256::from_limbs(*t.value.as_limbs()));
        let slot = net.entry(hex_address(&log.address.0.0)).or_default();
        if t.to == me {
            slot.0 = slot.0.saturating_add(value);
        }
        if t.from == me {
            slot.1 = slot.1.saturating_add(value);
        }
    }
    net.into_iter()
        .filter_map(|(token, (inflow, outflow))| {
            Signed::from_totals(inflow, outflow)
                .filter(|moved| !moved.is_zero())
                .map(|moved| (token, moved))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(token: u8, from: [u8; 20], to: [u8; 20], value: AU256) -> alloy_primitives::Log {
        alloy_primitives::Log {
            address: alloy_primitives::Address::repeat_byte(token),
            data: IERC20::Transfer {
                from: from.into(),
                to: to.into(),
                value,
            }
            .encode_log_data(),
        }
    }

    #[test]
    fn chain_fills_take_liquidity_from_the_executor_only() {
        use stratbox_evm::abi::StratboxExecutor::{LiquidityAdded, LiquidityRemoved};
        let executor = alloy_primitives::Address::repeat_byte(0xee);
        let log = |address, data| alloy_primitives::Log { address, data };
        let added = LiquidityAdded {
            account: alloy_primitives::Address::repeat_byte(0xaa),
            pool: alloy_primitives::Address::repeat_byte(0xbb),
            tickLower: alloy_primitives::aliases::I24::try_from(-60).expect("tick"),
            tickUpper: alloy_primitives::aliases::I24::try_from(60).expect("tick"),
            liquidity: 1_000,
            amount0: AU256::from(11),
            amount1: AU256::from(12),
        };
        let removed = LiquidityRemoved {
            account: added.account,
            pool: added.pool,
            tickLower: added.tickLower,
            tickUpper: added.tickUpper,
            liquidity: 1_000,
            amount0: AU256::from(10),
            amount1: AU256::from(11),
            fees0: AU256::from(2),
            fees1: AU256::from(3),
        };
        // The same event from any other contract is not the executor's word.
        let forged = log(
            alloy_primitives::Address::repeat_byte(0x01),
            added.encode_log_data(),
        );
        let mint = ChainFill::from_logs(
            &[forged.clone(), log(executor, added.encode_log_data())],
            executor,
        );
        assert_eq!(
            mint,
            ChainFill {
                amount0: AU256::from(11),
                amount1: AU256::from(12),
                booked0: AU256::from(11),
                booked1: AU256::from(12),
                liquidity: Some(1_000),
            }
        );
        let burn = ChainFill::from_logs(
            &[log(executor, removed.encode_log_data()), forged],
            executor,
        );
        assert_eq!(
            burn,
            ChainFill {
                amount0: AU256::from(10),
                amount1: AU256::from(11),
                booked0: AU256::from(12),
                booked1: AU256::from(14),
                liquidity: Some(1_000),
            },
            "principal compared with the simulation; principal and fees booked"
        );
        assert_eq!(ChainFill::from_logs(&[], executor), ChainFill::default());
    }

    #[test]
    fn token_moves_net_per_token_and_never_overflow() {
        let (me, pool) = ([0xaa; 20], [0xbb; 20]);
        let logs = [
            transfer(1, me, pool, AU256::from(100)),
            transfer(1, pool, me, AU256::from(30)),
            transfer(2, pool, me, AU256::from(5)),
            transfer(3, me, pool, AU256::from(7)),
            transfer(3, pool, me, AU256::from(7)),
            transfer(4, pool, me, AU256::MAX),
            transfer(4, pool, me, AU256::MAX),
            transfer(5, pool, [0xcc; 20], AU256::from(9)),
        ];
        let s = |v: u64, negative| Signed {
            magnitude: U256::from(v),
            negative,
        };
        assert_eq!(
            token_moves(&logs, me),
            vec![
                (hex_address(&[1; 20]), s(70, true)),
                (hex_address(&[2; 20]), s(5, false)),
            ],
            "netted per token; zero nets, sums past 256 bits and others' transfers left out"
        );
    }
}
