//! The gRPC face of the engine (`stratbox.v1.TradingEngine`).
//!
//! Each call opens a span carrying the request's trace id (or a fresh one), so every log
//! line about the request can be found. User input never becomes an RPC error: malformed
//! proposals are per-proposal `bad_input` results; only missing tasks (`NOT_FOUND`), bad
//! arguments to reads (`INVALID_ARGUMENT`) and storage failures (`UNAVAILABLE`) are.
//!
//! Operator actions (`SetKillSwitch`, `ClearKillSwitch`, `RestoreStrategy`,
//! `ClearGovernanceHalt`, `ProposeRiskLimits`, `CancelRiskChange`) are
//! authenticated first, by the [`Access`] given to [`EngineService::with_access`]: the port
//! is reachable from Zone A, so a name typed into a request proves nothing. With no
//! authenticator they are always `UNAUTHENTICATED`. `SubmitProposals` needs a host key when
//! there is an authenticator (see [`crate::access`]). The operator recorded (audit log, kill
//! switch state) is the authenticated name. The requests' old free-text `operator` field is
//! kept for wire compatibility and must be empty or that same name: a different name is
//! refused (`PERMISSION_DENIED`) rather than silently replaced, since it means the caller
//! holds someone else's key or is confused about whose it is.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use stratbox_proto::v1::trading_engine_server::TradingEngine;
use stratbox_proto::v1::{self, TraceContext};
use stratbox_risk::{PermissionError, PermissionLevel};
use tonic::{Request, Response, Status};
use tracing::{Instrument, error, info_span};

use crate::access::{Access, Role, no_operator_keys};
use crate::engine::{Engine, EngineError};
use crate::fsm::TaskState;
use crate::trace;

/// The `stratbox.v1.TradingEngine` gRPC service over an [`Engine`]; authenticates each call by
/// role.
pub struct EngineService {
    engine: Engine,
    access: Option<Arc<dyn Access>>,
    /// Turns true when the server shuts down: `WatchBalances` streams end then, or the
    /// server would wait on them for ever.
    closing: Option<tokio::sync::watch::Receiver<bool>>,
    /// The most a strategy deployment's memory may hold, keys and values.
    memory_cap: u64,
}

type BalancesStream = Pin<Box<dyn Stream<Item = Result<v1::BalancesUpdate, Status>> + Send>>;

impl EngineService {
    /// A service that refuses every operator action (no authenticator).
    pub fn new(engine: Engine) -> Self {
        EngineService {
            engine,
            access: None,
            closing: None,
            memory_cap: crate::store::DEFAULT_MEMORY_CAP_BYTES,
        }
    }

    /// Caps every deployment's memory at `bytes` (keys and values) instead of the default
    /// 64 KiB.
    pub fn with_memory_cap(mut self, bytes: u64) -> Self {
        self.memory_cap = bytes;
        self
    }

    /// Ends `WatchBalances` streams once `closing` turns true (or its sender is dropped).
    pub fn with_closing(mut self, closing: tokio::sync::watch::Receiver<bool>) -> Self {
        self.closing = Some(closing);
        self
    }

    /// Calls authenticated by `access` (the registry's keys).
    pub fn with_access(mut self, access: Arc<dyn Access>) -> Self {
        self.access = Some(access);
        self
    }

    /// The host submitting `request`, when the service has an authenticator.
    async fn host<T>(&self, request: &Request<T>) -> Result<Option<String>, Status> {
        match &self.access {
            None => Ok(None),
            Some(a) => a
                .authenticate(request.metadata(), Role::Host)
                .await
                .map(Some),
        }
    }

    /// The authenticated operator of `request`; `claimed` is the request's free-text
    /// operator field (see the module docs).
    async fn operator<T>(&self, request: &Request<T>, claimed: &str) -> Result<String, Status> {
        let auth = self.access.as_ref().ok_or_else(no_operator_keys)?;
        let name = auth
            .authenticate(request.metadata(), Role::Operator)
            .await?;
        let claimed = claimed.trim();
        if !claimed.is_empty() && claimed != name {
            return Err(Status::permission_denied(format!(
                "the request names operator {:?} but its key is {name:?}'s; leave `operator` empty",
                claimed.chars().take(64).collect::<String>()
            )));
        }
        Ok(name)
    }
}

/// A strategy name as proposals carry it (the engine keys trackers by it).
/// Most fills one `ReportExecution` may carry (a host sends a batch a second).
const MAX_FILL_REPORTS: usize = 4096;

fn check_strategy(name: &str) -> Result<(), Status> {
    if name.is_empty() || name.len() > crate::proposal::MAX_NAME_LEN {
        return Err(Status::invalid_argument(format!(
            "strategy: 1 to {} bytes",
            crate::proposal::MAX_NAME_LEN
        )));
    }
    Ok(())
}

/// "L0".."L5" (case-insensitive).
fn parse_level(s: &str) -> Result<PermissionLevel, Status> {
    let t = s.trim();
    PermissionLevel::ALL
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(t))
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "level {:?}: one of L1, L2, L3, L4, L5",
                t.chars().take(16).collect::<String>()
            ))
        })
}

fn trace_of(t: &Option<TraceContext>) -> String {
    trace::normalize(t.as_ref().map(|t| t.trace_id.as_str()).unwrap_or(""))
}

fn status(e: EngineError) -> Status {
    match e {
        EngineError::Invalid(m) => Status::invalid_argument(m),
        EngineError::Permission(p @ PermissionError::NotHalted(_)) => {
            Status::failed_precondition(p.to_string())
        }
        EngineError::Permission(p) => Status::invalid_argument(p.to_string()),
        other => {
            error!(error = %other, "engine error");
            Status::unavailable(other.to_string())
        }
    }
}

fn memory_status(e: crate::store::MemoryPutError) -> Status {
    use crate::store::MemoryPutError;
    match e {
        e @ MemoryPutError::Full { .. } => Status::resource_exhausted(e.to_string()),
        e @ MemoryPutError::Key(_) => Status::invalid_argument(e.to_string()),
        MemoryPutError::Store(e) => {
            error!(error = %e, "storing strategy memory");
            Status::unavailable(e.to_string())
        }
    }
}

#[tonic::async_trait]
impl TradingEngine for EngineService {
    async fn get_strategy_memory(
        &self,
        request: Request<v1::GetStrategyMemoryRequest>,
    ) -> Result<Response<v1::StrategyMemory>, Status> {
        self.host(&request).await?;
        let req = request.into_inner();
        check_strategy(&req.strategy)?;
        let store = self.engine.store();
        let entries = store
            .strategy_memory(&req.strategy)
            .await
            .map_err(|e| status(EngineError::from(e)))?;
        let used_bytes = entries
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        Ok(Response::new(v1::StrategyMemory {
            strategy: req.strategy,
            entries: entries
                .into_iter()
                .map(|(key, value)| v1::MemoryEntry { key, value })
                .collect(),
            used_bytes,
            cap_bytes: self.memory_cap,
        }))
    }

    async fn report_execution(
        &self,
        request: Request<v1::ReportExecutionRequest>,
    ) -> Result<Response<v1::ReportExecutionResponse>, Status> {
        let host = self.host(&request).await?.unwrap_or_default();
        let req = request.into_inner();
        if req.fills.len() > MAX_FILL_REPORTS {
            return Err(Status::invalid_argument(format!(
                "{} fills in one report: at most {MAX_FILL_REPORTS}",
                req.fills.len()
            )));
        }
        if let Some(f) = req
            .fills
            .iter()
            .find(|f| f.task_id.is_empty() || f.task_id.len() > 128)
        {
            return Err(Status::invalid_argument(format!(
                "task id of {} bytes: 1 to 128",
                f.task_id.len()
            )));
        }
        let fills: Vec<crate::store::FillFigures<'_>> = req
            .fills
            .iter()
            .map(|f| crate::store::FillFigures {
                task_id: &f.task_id,
                slippage_bps: f.has_slippage.then_some(f.slippage_bps),
                markout: (f.markout_blocks > 0).then_some((f.markout_bps, f.markout_blocks)),
            })
            .collect();
        let recorded = self
            .engine
            .record_execution(&host, &fills)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ReportExecutionResponse {
            recorded: u32::try_from(recorded).unwrap_or(u32::MAX),
        }))
    }

    async fn get_execution_quality(
        &self,
        request: Request<v1::GetExecutionQualityRequest>,
    ) -> Result<Response<v1::ExecutionQuality>, Status> {
        let req = request.into_inner();
        check_strategy(&req.strategy)?;
        Ok(Response::new(
            self.engine
                .execution_quality(&req.strategy)
                .await
                .map_err(status)?,
        ))
    }

    async fn put_strategy_memory(
        &self,
        request: Request<v1::PutStrategyMemoryRequest>,
    ) -> Result<Response<v1::StrategyMemory>, Status> {
        let host = self.host(&request).await?;
        let req = request.into_inner();
        check_strategy(&req.strategy)?;
        let changes: Vec<crate::store::MemoryWrite> = req
            .changes
            .into_iter()
            .map(|c| (c.key, (!c.remove).then_some(c.value)))
            .collect();
        let used_bytes = self
            .engine
            .store()
            .put_strategy_memory(&req.strategy, &changes, self.memory_cap)
            .await
            .map_err(memory_status)?;
        tracing::debug!(strategy = %req.strategy, host = host.as_deref().unwrap_or(""), changes = changes.len(), used_bytes, "strategy memory stored");
        Ok(Response::new(v1::StrategyMemory {
            strategy: req.strategy,
            entries: Vec::new(),
            used_bytes,
            cap_bytes: self.memory_cap,
        }))
    }

    async fn submit_proposals(
        &self,
        request: Request<v1::SubmitProposalsRequest>,
    ) -> Result<Response<v1::SubmitProposalsResponse>, Status> {
        let host = self.host(&request).await?;
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        if let Some(host) = host {
            tracing::debug!(host = %host, trace_id = %trace_id, proposals = req.proposals.len(), "submit");
        }
        // `Engine::submit` opens the span itself with this same id.
        let results = self
            .engine
            .submit(&trace_id, req.proposals)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::SubmitProposalsResponse { results }))
    }

    async fn get_task(
        &self,
        request: Request<v1::GetTaskRequest>,
    ) -> Result<Response<v1::Task>, Status> {
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        async {
            match self.engine.get_task(&req.task_id).await.map_err(status)? {
                Some(t) => Ok(Response::new(t)),
                None => Err(Status::not_found(format!(
                    "no task {:?}",
                    req.task_id.chars().take(64).collect::<String>()
                ))),
            }
        }
        .instrument(info_span!("get_task", trace_id = %trace_id))
        .await
    }

    async fn list_tasks(
        &self,
        request: Request<v1::ListTasksRequest>,
    ) -> Result<Response<v1::ListTasksResponse>, Status> {
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        async {
            let state = match v1::TaskState::try_from(req.state) {
                Ok(s) => TaskState::from_wire(s),
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "unknown task state {}",
                        req.state
                    )));
                }
            };
            let (tasks, next_page_token) = self
                .engine
                .list_tasks(&req.strategy, state, req.limit, &req.page_token)
                .await
                .map_err(status)?;
            Ok(Response::new(v1::ListTasksResponse {
                tasks,
                next_page_token,
            }))
        }
        .instrument(info_span!("list_tasks", trace_id = %trace_id))
        .await
    }

    async fn get_ledger(
        &self,
        request: Request<v1::GetLedgerRequest>,
    ) -> Result<Response<v1::GetLedgerResponse>, Status> {
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        async {
            let entries = self
                .engine
                .ledger(&req.account, &req.task_id, req.limit)
                .await
                .map_err(status)?;
            Ok(Response::new(v1::GetLedgerResponse { entries }))
        }
        .instrument(info_span!("get_ledger", trace_id = %trace_id))
        .await
    }

    async fn get_positions(
        &self,
        request: Request<v1::GetPositionsRequest>,
    ) -> Result<Response<v1::GetPositionsResponse>, Status> {
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        async {
            let positions = self.engine.positions(&req.account).await.map_err(status)?;
            Ok(Response::new(v1::GetPositionsResponse { positions }))
        }
        .instrument(info_span!("get_positions", trace_id = %trace_id))
        .await
    }

    async fn set_kill_switch(
        &self,
        request: Request<v1::SetKillSwitchRequest>,
    ) -> Result<Response<v1::KillSwitchState>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            let operator = self.operator(&request, &request.get_ref().operator).await?;
            let req = request.into_inner();
            if req.reason.trim().is_empty() {
                return Err(Status::invalid_argument(
                    "engaging the kill switch needs a reason",
                ));
            }
            let k = self
                .engine
                .engage_kill_switch(&trace_id, &req.reason, &operator, req.cancel_pending)
                .await
                .map_err(status)?;
            Ok(Response::new(k))
        }
        .instrument(info_span!("set_kill_switch", trace_id = %trace_id))
        .await
    }

    async fn clear_kill_switch(
        &self,
        request: Request<v1::ClearKillSwitchRequest>,
    ) -> Result<Response<v1::KillSwitchState>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            let operator = self.operator(&request, &request.get_ref().operator).await?;
            let k = self
                .engine
                .clear_kill_switch(&trace_id, &operator)
                .await
                .map_err(status)?;
            Ok(Response::new(k))
        }
        .instrument(info_span!("clear_kill_switch", trace_id = %trace_id))
        .await
    }

    async fn list_markets(
        &self,
        request: Request<v1::ListMarketsRequest>,
    ) -> Result<Response<v1::ListMarketsResponse>, Status> {
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        let _e = info_span!("list_markets", trace_id = %trace_id).entered();
        Ok(Response::new(v1::ListMarketsResponse {
            markets: self.engine.markets(),
        }))
    }

    async fn get_status(
        &self,
        request: Request<v1::GetStatusRequest>,
    ) -> Result<Response<v1::EngineStatus>, Status> {
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        let _e = info_span!("get_status", trace_id = %trace_id).entered();
        Ok(Response::new(self.engine.status()))
    }

    async fn get_permission(
        &self,
        request: Request<v1::GetPermissionRequest>,
    ) -> Result<Response<v1::Permission>, Status> {
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        let _e = info_span!("get_permission", trace_id = %trace_id).entered();
        check_strategy(&req.strategy)?;
        Ok(Response::new(
            self.engine.permission(&req.strategy).to_wire(),
        ))
    }

    async fn get_risk_limits(
        &self,
        request: Request<v1::GetRiskLimitsRequest>,
    ) -> Result<Response<v1::RiskLimits>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            let view = self.engine.risk_limits().await.map_err(status)?;
            Ok(Response::new(view.to_wire().map_err(status)?))
        }
        .instrument(info_span!("get_risk_limits", trace_id = %trace_id))
        .await
    }

    async fn propose_risk_limits(
        &self,
        request: Request<v1::ProposeRiskLimitsRequest>,
    ) -> Result<Response<v1::ProposeRiskLimitsResponse>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            let operator = self.operator(&request, &request.get_ref().operator).await?;
            let req = request.into_inner();
            // The `--risk-config` JSON schema: unknown fields refused, amounts as strings.
            let limits: stratbox_risk::RiskConfig = serde_json::from_str(&req.limits_json)
                .map_err(|e| Status::invalid_argument(format!("limits_json: {e}")))?;
            let done = self
                .engine
                .propose_risk_limits(&trace_id, &operator, limits, &req.reason)
                .await
                .map_err(status)?;
            Ok(Response::new(v1::ProposeRiskLimitsResponse {
                applied: done
                    .applied
                    .as_ref()
                    .map(crate::engine::RiskChange::to_wire),
                pending: done
                    .pending
                    .as_ref()
                    .map(crate::engine::RiskChange::to_wire),
                limits: Some(done.limits.to_wire().map_err(status)?),
            }))
        }
        .instrument(info_span!("propose_risk_limits", trace_id = %trace_id))
        .await
    }

    async fn cancel_risk_change(
        &self,
        request: Request<v1::CancelRiskChangeRequest>,
    ) -> Result<Response<v1::RiskChange>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            let operator = self.operator(&request, &request.get_ref().operator).await?;
            let req = request.into_inner();
            let id = i64::try_from(req.id)
                .map_err(|_| Status::not_found(format!("no risk change {}", req.id)))?;
            match self
                .engine
                .cancel_risk_change(&trace_id, &operator, id, &req.reason)
                .await
                .map_err(status)?
            {
                crate::engine::Cancelled::Done(c) => Ok(Response::new(c.to_wire())),
                crate::engine::Cancelled::NotFound => {
                    Err(Status::not_found(format!("no risk change {id}")))
                }
                crate::engine::Cancelled::NotPending(c) => Err(Status::failed_precondition(
                    format!("risk change {id} is {}, not pending", c.state),
                )),
            }
        }
        .instrument(info_span!("cancel_risk_change", trace_id = %trace_id))
        .await
    }

    type WatchBalancesStream = BalancesStream;

    async fn watch_balances(
        &self,
        request: Request<v1::WatchBalancesRequest>,
    ) -> Result<Response<Self::WatchBalancesStream>, Status> {
        let host = self.host(&request).await?;
        let trace_id = trace_of(&request.get_ref().trace);
        tracing::info!(trace_id = %trace_id, host = host.as_deref().unwrap_or(""), "watching balances");
        let engine = self.engine.clone();
        let (first, changes) = engine.watch_balances();
        let closing = self.closing.clone();
        // State: the next full view to send (first, or after falling behind), the changes.
        let stream = futures::stream::unfold(
            (Some(first), changes, closing, engine),
            |(full, mut changes, mut closing, engine)| async move {
                if let Some(full) = full {
                    return Some((Ok(full), (None, changes, closing, engine)));
                }
                let closed = async {
                    match closing.as_mut() {
                        Some(c) => {
                            let _ = c.wait_for(|c| *c).await;
                        }
                        // Without a closing signal a stream ends only when its client goes.
                        None => std::future::pending::<()>().await,
                    }
                };
                let next = tokio::select! {
                    biased;
                    _ = closed => return None,
                    next = changes.recv() => next,
                };
                match next {
                    Ok(update) => Some((Ok((*update).clone()), (None, changes, closing, engine))),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "a balance watcher fell behind; sending it every book again"
                        );
                        let (full, fresh) = engine.watch_balances();
                        Some((Ok(full), (None, fresh, closing, engine)))
                    }
                    Err(RecvError::Closed) => None,
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn restore_strategy(
        &self,
        request: Request<v1::RestoreStrategyRequest>,
    ) -> Result<Response<v1::Permission>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            let operator = self.operator(&request, "").await?;
            let req = request.into_inner();
            check_strategy(&req.strategy)?;
            let level = parse_level(&req.level)?;
            let view = self
                .engine
                .restore_strategy(&trace_id, &req.strategy, level, &operator)
                .await
                .map_err(status)?;
            Ok(Response::new(view.to_wire()))
        }
        .instrument(info_span!("restore_strategy", trace_id = %trace_id))
        .await
    }

    async fn list_governance_halts(
        &self,
        request: Request<v1::ListGovernanceHaltsRequest>,
    ) -> Result<Response<v1::ListGovernanceHaltsResponse>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            let halts = self.engine.governance_halts().await.map_err(status)?;
            Ok(Response::new(v1::ListGovernanceHaltsResponse {
                halts: halts.iter().map(crate::sentinel::halt_to_wire).collect(),
            }))
        }
        .instrument(info_span!("list_governance_halts", trace_id = %trace_id))
        .await
    }

    async fn clear_governance_halt(
        &self,
        request: Request<v1::ClearGovernanceHaltRequest>,
    ) -> Result<Response<v1::GovernanceHalt>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            let operator = self.operator(&request, "").await?;
            let req = request.into_inner();
            let market = req.market.map(|a| a.value).unwrap_or_default();
            match self
                .engine
                .clear_governance_halt(&trace_id, &market, &req.reason, &operator)
                .await
                .map_err(status)?
            {
                Some(h) => Ok(Response::new(crate::sentinel::halt_to_wire(&h))),
                None => Err(Status::not_found(format!(
                    "market {:?} is not halted by the governance sentinel",
                    market.chars().take(64).collect::<String>()
                ))),
            }
        }
        .instrument(info_span!("clear_governance_halt", trace_id = %trace_id))
        .await
    }

    async fn push_reference_price(
        &self,
        request: Request<v1::PushReferencePriceRequest>,
    ) -> Result<Response<v1::PushReferencePriceResponse>, Status> {
        let trace_id = trace_of(&request.get_ref().trace);
        async {
            // A price moves the oracle guard, so only a feeder's key may push one; an
            // engine served without keys has no feeders and takes prices in process only.
            let auth = self.access.as_ref().ok_or_else(|| {
                Status::unauthenticated(
                    "reference prices need a feeder key: start the engine with its registry",
                )
            })?;
            let feeder = auth.authenticate(request.metadata(), Role::Feeder).await?;
            let req = request.into_inner();
            let pool = req
                .pool
                .as_ref()
                .map(|a| stratbox_proto::parse_address(&a.value))
                .transpose()
                .map_err(|e| Status::invalid_argument(format!("pool: {e}")))?
                .ok_or_else(|| Status::invalid_argument("pool is required"))?;
            let price = req
                .price_e18
                .as_ref()
                .map(|a| stratbox_proto::parse_amount(&a.value))
                .transpose()
                .map_err(|e| Status::invalid_argument(format!("price_e18: {e}")))?
                .ok_or_else(|| Status::invalid_argument("price_e18 is required"))?;
            if price.is_zero() {
                return Err(Status::invalid_argument("price_e18 must be above zero"));
            }
            let (market, block) = self
                .engine
                .push_reference(&pool, price)
                .map_err(Status::not_found)?;
            tracing::debug!(%feeder, market, block, "reference price");
            Ok(Response::new(v1::PushReferencePriceResponse {
                market,
                block,
                feeder,
            }))
        }
        .instrument(info_span!("push_reference_price", trace_id = %trace_id))
        .await
    }
}
