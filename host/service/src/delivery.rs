//! Proposals from the host to the engine over gRPC, without loss and without duplicates.
//!
//! When the engine is unreachable the host keeps what it has not delivered and retries
//! with backoff; because the engine deduplicates on the idempotency key derived from each
//! proposal, a retry of a batch the engine had in fact accepted returns the first tasks
//! and never creates second ones. The caller acknowledges the bus message only after
//! [`EngineLink::submit`] returns, so a host that dies mid-retry leaves the event pending
//! for another host, which again cannot create duplicates.

use std::time::Duration;

use stratbox_proto::v1::trading_engine_client::TradingEngineClient;
use stratbox_proto::v1::{self, ListMarketsRequest, SubmitProposalsRequest, TraceContext};
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::credentials::HostKey;

type Client = TradingEngineClient<InterceptedService<Channel, HostKey>>;

/// Why proposals could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The engine address (first) does not parse; the second is why.
    #[error("engine address {0:?} is not a valid URI: {1}")]
    BadAddress(String, String),
    /// A non-retryable status (e.g. unauthenticated); retryable ones are retried.
    #[error("the engine refused the batch: {0}")]
    Refused(tonic::Status),
    /// The engine broke the one-result-per-proposal contract: a version mismatch or bug.
    #[error("the engine answered {got} results for {sent} proposals")]
    Mismatch {
        /// Proposals sent.
        sent: usize,
        /// Results received.
        got: usize,
    },
    /// The engine refused a strategy's memory changes (over its cap, or a bad key); retrying
    /// the same changes cannot succeed.
    #[error("the engine refused the memory changes: {0}")]
    MemoryRefused(tonic::Status),
    /// Shutdown came while retrying; the count is the proposals not delivered.
    #[error("shut down with {0} proposals undelivered (they stay pending on the bus)")]
    ShutDown(usize),
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First pause between retries; doubles up to `max`.
    pub initial: Duration,
    /// Ceiling of the pause.
    pub max: Duration,
    /// Most proposals per request; larger outputs are sent in several requests.
    pub max_batch: usize,
    /// Bounds each request; a timed-out one is retried.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
            max_batch: 512,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A host's connection to the engine.
#[derive(Clone)]
pub struct EngineLink {
    channel: Channel,
    client: Client,
    policy: RetryPolicy,
}

impl EngineLink {
    /// Connects lazily: an engine that is not up yet is retried on first use, not refused.
    pub fn new(url: &str, policy: RetryPolicy) -> Result<Self, DeliveryError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| DeliveryError::BadAddress(url.to_owned(), e.to_string()))?;
        Ok(Self::over(endpoint, policy))
    }

    /// Like [`EngineLink::new`], over an endpoint the caller made (e.g. with TLS to verify
    /// the engine).
    pub fn over(endpoint: Endpoint, policy: RetryPolicy) -> Self {
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(2))
            .timeout(policy.request_timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        EngineLink {
            client: TradingEngineClient::with_interceptor(channel.clone(), HostKey::none()),
            channel,
            policy,
        }
    }

    /// Sends `key` with every call (an engine served with its registry needs a host key).
    pub fn with_key(mut self, key: HostKey) -> Self {
        self.client = TradingEngineClient::with_interceptor(self.channel.clone(), key);
        self
    }

    /// Delivers every proposal, retrying transient failures until accepted or shut down.
    /// Results come back in the order of `proposals`.
    pub async fn submit(
        &self,
        trace_id: &str,
        proposals: &[v1::Proposal],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<v1::ProposalResult>, DeliveryError> {
        let mut results = Vec::with_capacity(proposals.len());
        let total = proposals.len();
        for chunk in proposals.chunks(self.policy.max_batch.max(1)) {
            let request = SubmitProposalsRequest {
                trace: Some(TraceContext {
                    trace_id: trace_id.to_owned(),
                    span_id: String::new(),
                }),
                proposals: chunk.to_vec(),
            };
            let delivered = results.len();
            let response = self
                .retrying(shutdown, total - delivered, |mut client| {
                    let request = request.clone();
                    async move { client.submit_proposals(request).await }
                })
                .await?;
            if response.results.len() != chunk.len() {
                return Err(DeliveryError::Mismatch {
                    sent: chunk.len(),
                    got: response.results.len(),
                });
            }
            results.extend(response.results);
        }
        Ok(results)
    }

    /// The engine's markets, retried like a submit: a host cannot start without them.
    pub async fn markets(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<v1::Market>, DeliveryError> {
        let response = self
            .retrying(shutdown, 0, |mut client| async move {
                client
                    .list_markets(ListMarketsRequest { trace: None })
                    .await
            })
            .await?;
        Ok(response.markets)
    }

    /// A strategy deployment's stored memory and cap, in one attempt: a rollout that cannot
    /// load it is refused, and retried with the next deployment change.
    pub async fn memory(&self, strategy: &str) -> Result<v1::StrategyMemory, DeliveryError> {
        let mut client = self.client.clone();
        client
            .get_strategy_memory(v1::GetStrategyMemoryRequest {
                trace: None,
                strategy: strategy.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(DeliveryError::Refused)
    }

    /// Stores a strategy's memory changes, retrying transient failures like a submit (the
    /// changes are idempotent: each sets or removes a key). The engine's over-the-cap answer
    /// (`RESOURCE_EXHAUSTED`, which a submit retries) is final here.
    pub async fn put_memory(
        &self,
        trace_id: &str,
        strategy: &str,
        changes: Vec<v1::MemoryChange>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<v1::StrategyMemory, DeliveryError> {
        let request = v1::PutStrategyMemoryRequest {
            trace: Some(TraceContext {
                trace_id: trace_id.to_owned(),
                span_id: String::new(),
            }),
            strategy: strategy.to_owned(),
            changes,
        };
        let result = self
            .retrying(shutdown, 0, |mut client| {
                let request = request.clone();
                async move {
                    client.put_strategy_memory(request).await.map_err(|s| {
                        if s.code() == tonic::Code::ResourceExhausted {
                            // Not transient for a memory put: see the doc comment.
                            tonic::Status::failed_precondition(s.message())
                        } else {
                            s
                        }
                    })
                }
            })
            .await;
        match result {
            Err(DeliveryError::Refused(s))
                if matches!(
                    s.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
                ) =>
            {
                Err(DeliveryError::MemoryRefused(s))
            }
            other => other,
        }
    }

    /// One task as the engine holds it now (with its receipt's figures once it has one),
    /// in one attempt bounded by `timeout`; `None` for a task the engine does not hold.
    pub async fn task(
        &self,
        task_id: &str,
        timeout: Duration,
    ) -> Result<Option<v1::Task>, DeliveryError> {
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(v1::GetTaskRequest {
            trace: None,
            task_id: task_id.to_owned(),
        });
        request.set_timeout(timeout);
        match client.get_task(request).await {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(DeliveryError::Refused(s)),
        }
    }

    /// Sends measures of fills (see [`crate::execution`]) in one attempt; returns how many
    /// the engine recorded.
    pub async fn report_execution(
        &self,
        fills: Vec<v1::FillMeasure>,
    ) -> Result<u32, DeliveryError> {
        let mut client = self.client.clone();
        client
            .report_execution(v1::ReportExecutionRequest { trace: None, fills })
            .await
            .map(|r| r.into_inner().recorded)
            .map_err(DeliveryError::Refused)
    }

    /// Opens the engine's stream of its books' balances (see [`crate::balances`]).
    pub async fn watch_balances(
        &self,
    ) -> Result<tonic::Streaming<v1::BalancesUpdate>, tonic::Status> {
        let mut client = self.client.clone();
        client
            .watch_balances(v1::WatchBalancesRequest { trace: None })
            .await
            .map(tonic::Response::into_inner)
    }

    /// `account`'s positions as the engine's ledger holds them.
    pub async fn positions(&self, account: &str) -> Result<Vec<v1::Position>, DeliveryError> {
        let mut client = self.client.clone();
        client
            .get_positions(v1::GetPositionsRequest {
                trace: None,
                account: account.to_owned(),
            })
            .await
            .map(|r| r.into_inner().positions)
            .map_err(DeliveryError::Refused)
    }

    async fn retrying<T, F, Fut>(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        pending: usize,
        mut call: F,
    ) -> Result<T, DeliveryError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut backoff = self.policy.initial;
        let mut attempt = 0u32;
        loop {
            match call(self.client.clone()).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if is_transient(&status) => {
                    attempt += 1;
                    tracing::warn!(attempt, code = ?status.code(), message = status.message(), retry_in_ms = backoff.as_millis() as u64, "engine unreachable; keeping proposals and retrying");
                }
                Err(status) => return Err(DeliveryError::Refused(status)),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Err(DeliveryError::ShutDown(pending)),
            }
            backoff = (backoff * 2).min(self.policy.max);
        }
    }
}

/// Failures where trying again later can succeed; everything else is the engine saying no.
fn is_transient(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
    )
}
