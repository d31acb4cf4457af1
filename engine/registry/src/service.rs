//! The gRPC face of the registry (`stratbox.v1.Registry`), served on the engine's port.
//!
//! Upload, deploy, scale and rollback need `authorization: Bearer <operator api key>`;
//! without one the call is `UNAUTHENTICATED` before anything else happens (for a chunked
//! upload: before a single message of it is read). The calls hosts make (watch, fetch,
//! report) need a host's key (`stratbox host-key add`), which grants nothing else: a report
//! is recorded under the key's host, never under a name the report claims. Watching and
//! fetching also take an operator's key (operators read what runs). The reading calls
//! (list, show) need no key.

use std::pin::Pin;

use futures::Stream;
use stratbox_engine::trace;
use stratbox_proto::v1::registry_server::{Registry as RegistryRpc, RegistryServer};
use stratbox_proto::v1::{self, TraceContext};
use tonic::{Request, Response, Status};
use tracing::{Instrument, info_span};

use crate::auth::{self, Operator};
use crate::error::RegistryError;
use crate::registry::{Registry, parse_version};

/// Slack over the component cap for the rest of an upload message, so a component just
/// over the cap reaches the registry's own check (and its clear reason) instead of
/// tonic's generic "message too large".
const MESSAGE_SLACK: usize = 1 << 20;

/// The `stratbox.v1.Registry` gRPC service: authenticates each call, then calls [`Registry`].
pub struct RegistryService {
    registry: Registry,
}

impl RegistryService {
    /// Serves `registry`; clones of it share its state.
    pub fn new(registry: Registry) -> Self {
        RegistryService { registry }
    }
}

/// The tonic server for `registry`, with message limits that fit its component cap.
pub fn server(registry: Registry) -> RegistryServer<RegistryService> {
    let limit = registry
        .config()
        .max_component_bytes
        .saturating_add(MESSAGE_SLACK);
    RegistryServer::new(RegistryService::new(registry))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
}

/// The registry as routes to hand to `stratbox_engine::server::serve_grpc_with`.
pub fn routes(registry: Registry) -> tonic::service::Routes {
    tonic::service::Routes::new(server(registry))
}

fn trace_of(t: &Option<TraceContext>) -> String {
    trace::normalize(t.as_ref().map(|t| t.trace_id.as_str()).unwrap_or(""))
}

impl RegistryService {
    async fn operator<T>(&self, request: &Request<T>) -> Result<Operator, Status> {
        let key = auth::bearer(request.metadata())?;
        Ok(self.registry.authenticate(key).await?)
    }

    async fn host<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let key = auth::bearer(request.metadata())?;
        Ok(self.registry.authenticate_host(key).await?)
    }

    /// A host, or an operator: who may see what runs. Returns the name and whether it is
    /// a host.
    async fn reader<T>(&self, request: &Request<T>) -> Result<(String, bool), Status> {
        let key = auth::bearer(request.metadata())?;
        match self.registry.authenticate_host(key).await {
            Ok(host) => Ok((host, true)),
            Err(crate::RegistryError::PermissionDenied(_)) => {
                Ok((self.registry.authenticate(key).await?.name, false))
            }
            Err(e) => Err(e.into()),
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::DeploymentSet, Status>> + Send>>;

#[tonic::async_trait]
impl RegistryRpc for RegistryService {
    async fn upload_strategy(
        &self,
        request: Request<v1::UploadStrategyRequest>,
    ) -> Result<Response<v1::StrategyVersion>, Status> {
        let operator = self.operator(&request).await?;
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        let span = info_span!("registry.upload", trace_id = %trace_id, operator = %operator.name, strategy = %req.name);
        let v = self
            .registry
            .upload(&operator, &req.name, &req.component, &trace_id)
            .instrument(span)
            .await?;
        Ok(Response::new(v))
    }

    async fn upload_strategy_chunks(
        &self,
        request: Request<tonic::Streaming<v1::UploadChunk>>,
    ) -> Result<Response<v1::StrategyVersion>, Status> {
        let operator = self.operator(&request).await?;
        let mut stream = request.into_inner();
        let header = match stream.message().await?.and_then(|c| c.part) {
            Some(v1::upload_chunk::Part::Header(h)) => h,
            _ => {
                return Err(RegistryError::Invalid(
                    "a chunked upload starts with its header (name and size)".into(),
                )
                .into());
            }
        };
        let trace_id = trace_of(&header.trace);
        let span = info_span!("registry.upload", trace_id = %trace_id, operator = %operator.name, strategy = %header.name);
        async {
            let size = usize::try_from(header.size_bytes).unwrap_or(usize::MAX);
            // Name and size first: an oversized upload is refused before its bytes are read.
            self.registry
                .check_upload(&operator, &header.name, size, &trace_id)?;
            let mut bytes = Vec::with_capacity(size);
            while let Some(chunk) = stream.message().await? {
                let Some(v1::upload_chunk::Part::Data(data)) = chunk.part else {
                    return Err(RegistryError::Invalid(
                        "a chunked upload has one header, first".into(),
                    )
                    .into());
                };
                if data.len() > size - bytes.len() {
                    return Err(RegistryError::Invalid(format!(
                        "the upload sent more than the {size} bytes it announced"
                    ))
                    .into());
                }
                bytes.extend_from_slice(&data);
            }
            if bytes.len() != size {
                return Err(RegistryError::Invalid(format!(
                    "the upload ended after {} of the {size} bytes it announced",
                    bytes.len()
                ))
                .into());
            }
            let v = self
                .registry
                .upload(&operator, &header.name, &bytes, &trace_id)
                .await?;
            Ok(Response::new(v))
        }
        .instrument(span)
        .await
    }

    async fn list_strategies(
        &self,
        _request: Request<v1::ListStrategiesRequest>,
    ) -> Result<Response<v1::ListStrategiesResponse>, Status> {
        let versions = self.registry.list().await?;
        Ok(Response::new(v1::ListStrategiesResponse { versions }))
    }

    async fn show_strategy(
        &self,
        request: Request<v1::ShowStrategyRequest>,
    ) -> Result<Response<v1::ShowStrategyResponse>, Status> {
        Ok(Response::new(
            self.registry.show(&request.into_inner().name).await?,
        ))
    }

    async fn deploy(
        &self,
        request: Request<v1::DeployRequest>,
    ) -> Result<Response<v1::Deployment>, Status> {
        let operator = self.operator(&request).await?;
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        let version = parse_version(&req.version)?;
        let span = info_span!("registry.deploy", trace_id = %trace_id, operator = %operator.name, strategy = %req.name);
        let d = self
            .registry
            .deploy(
                &operator,
                &req.name,
                version,
                req.instances,
                &req.config_json,
                &trace_id,
            )
            .instrument(span)
            .await?;
        Ok(Response::new(d))
    }

    async fn scale(
        &self,
        request: Request<v1::ScaleRequest>,
    ) -> Result<Response<v1::Deployment>, Status> {
        let operator = self.operator(&request).await?;
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        let span = info_span!("registry.scale", trace_id = %trace_id, operator = %operator.name, strategy = %req.name);
        let d = self
            .registry
            .scale(&operator, &req.name, req.instances, &trace_id)
            .instrument(span)
            .await?;
        Ok(Response::new(d))
    }

    async fn rollback(
        &self,
        request: Request<v1::RollbackRequest>,
    ) -> Result<Response<v1::Deployment>, Status> {
        let operator = self.operator(&request).await?;
        let req = request.into_inner();
        let trace_id = trace_of(&req.trace);
        let span = info_span!("registry.rollback", trace_id = %trace_id, operator = %operator.name, strategy = %req.name);
        let d = self
            .registry
            .rollback(&operator, &req.name, &trace_id)
            .instrument(span)
            .await?;
        Ok(Response::new(d))
    }

    type WatchDeploymentsStream = WatchStream;

    async fn watch_deployments(
        &self,
        request: Request<v1::WatchDeploymentsRequest>,
    ) -> Result<Response<Self::WatchDeploymentsStream>, Status> {
        let (who, is_host) = self.reader(&request).await?;
        let host: String = request.into_inner().host.chars().take(128).collect();
        tracing::info!(principal = %who, host = %host, "watching deployments");
        // A host counts as watching while its stream lives: `strategy deploy` waits for
        // the reports of exactly these.
        let guard = is_host.then(|| self.registry.watching(&who));
        let desired = self.registry.subscribe();
        let closed = self.registry.closed();
        // First the whole current set, then the newest set after each change (changes in
        // between coalesce: a host only needs the newest desired state).
        let stream = futures::stream::unfold(
            (desired, closed, true, guard),
            |(mut desired, mut closed, first, guard)| async move {
                if *closed.borrow() {
                    return None;
                }
                if !first {
                    tokio::select! {
                        changed = desired.changed() => changed.ok()?,
                        _ = closed.wait_for(|c| *c) => return None,
                    }
                }
                let set = (**desired.borrow_and_update()).clone();
                Some((Ok(set), (desired, closed, false, guard)))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_component(
        &self,
        request: Request<v1::FetchComponentRequest>,
    ) -> Result<Response<v1::Component>, Status> {
        self.reader(&request).await?;
        let sha256 = request.into_inner().sha256;
        let bytes = self.registry.fetch_component(&sha256).await?;
        Ok(Response::new(v1::Component { sha256, bytes }))
    }

    async fn report_rollout(
        &self,
        request: Request<v1::RolloutReport>,
    ) -> Result<Response<v1::RolloutAck>, Status> {
        let host = self.host(&request).await?;
        let report = request.into_inner();
        tracing::info!(host = %host, strategy = %report.name.chars().take(64).collect::<String>(), switched = report.switched, max_pause_ns = report.max_pause_ns, "rollout report");
        self.registry.report_rollout(&host, report).await?;
        Ok(Response::new(v1::RolloutAck {}))
    }
}
