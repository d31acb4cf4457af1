//! The gRPC face of the engine (`stratbox.v1.TradingEngine`).
//!
//! Each call opens a span carrying the request's trace id (or a fresh one), so every log
//! line about the request can be found. User input never becomes an RPC error: malformed
//! proposals are per-proposal `bad_input` results; only missing tasks (`NOT_FOUND`), bad
//! arguments to reads (`INVALID_ARGUMENT`) and storage failures (`UNAVAILABLE`) are.

use stratbox_proto::v1::trading_engine_server::TradingEngine;
use stratbox_proto::v1::{self, TraceContext};
use tonic::{Request, Response, Status};
use tracing::{Instrument, error, info_span};

use crate::engine::{Engine, EngineError};
use crate::fsm::TaskState;
use crate::trace;

pub struct EngineService {
    engine: Engine,
}

impl EngineService {
    pub fn new(engine: Engine) -> Self {
        EngineService { engine }
    }
}

fn trace_of(t: &Option<TraceContext>) -> String {
    trace::normalize(t.as_ref().map(|t| t.trace_id.as_str()).unwrap_or(""))
}

fn status(e: EngineError) -> Status {
    match e {
        EngineError::Invalid(m) => Status::invalid_argument(m),
        other => {
            error!(error = %other, "engine error");
            Status::unavailable(other.to_string())
        }
    }
}

#[tonic::async_trait]
impl TradingEngine for EngineService {
    async fn submit_proposals(
        &self,
        request: Request<v1::SubmitProposalsRequest>,
    ) -> Result<Response<v1::SubmitProposalsResponse>, Status> {
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
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
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        async {
            if req.operator.trim().is_empty() || req.reason.trim().is_empty() {
                return Err(Status::invalid_argument(
                    "engaging the kill switch needs an operator and a reason",
                ));
            }
            let k = self
                .engine
                .set_kill_switch(&trace_id, &req.reason, &req.operator)
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
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        async {
            if req.operator.trim().is_empty() {
                return Err(Status::invalid_argument(
                    "clearing the kill switch needs an operator",
                ));
            }
            let k = self
                .engine
                .clear_kill_switch(&trace_id, &req.operator)
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
}
