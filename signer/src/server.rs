//! The two listeners: the engine's (`stratbox.v1.Signer`) and the approvers'
//! (`stratbox.v1.SignerAdmin`), each mutual TLS with its own allowlist. TLS is terminated
//! here with tokio-rustls (tonic's own TLS server cannot pin client SPKIs); a connection
//! reaches gRPC only after the handshake accepted its certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stratbox_proto::v1;
use stratbox_proto::v1::signer_admin_server::{SignerAdmin, SignerAdminServer};
use stratbox_proto::v1::signer_server::{Signer as SignerRpc, SignerServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::audit::Entry;
use crate::config::SignerConfig;
use crate::keys::KeySource;
use crate::service::{ServiceError, Settings, Signer};
use crate::store::{DecideRefusal, Decision, Store};
use crate::tls::{self, Allowlist, HandshakeRefusal, Peer, Role};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Config.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// TLS.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Service.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Binding a port.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running signer.
pub struct Running {
    /// The engine's port.
    pub addr: SocketAddr,
    /// The approvers' port.
    pub admin_addr: SocketAddr,
    /// The service (for reloads from SIGHUP and for tests).
    pub signer: Arc<Signer>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops both listeners and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TCP connections and hands the ones whose TLS handshake succeeds to tonic.
fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut stop: watch::Receiver<bool>,
    name: &'static str,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Replies are small; Nagle would hold them for the client's delayed ACK.
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(listener = name, %peer, error = %e, "TLS handshake refused")
                    }
                    Err(_) => tracing::warn!(listener = name, %peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// The allowlisted peer of a request (the handshake already refused everyone else; this
/// maps the certificate to its name and role).
fn peer<T>(req: &Request<T>, allow: &Allowlist) -> Result<Peer, Status> {
    let certs = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs())
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    allow
        .peer_of(leaf)
        .cloned()
        .ok_or_else(|| Status::permission_denied("certificate not on the allowlist"))
}

fn internal(e: ServiceError) -> Status {
    tracing::error!(error = %e, "signer error");
    Status::internal(format!("signer: {e}"))
}

fn trace_of(t: &Option<v1::TraceContext>) -> String {
    t.as_ref().map(|t| t.trace_id.clone()).unwrap_or_default()
}

/// The engine's service.
struct EngineRpc {
    signer: Arc<Signer>,
    allow: Arc<Allowlist>,
}

#[tonic::async_trait]
impl SignerRpc for EngineRpc {
    async fn sign_transaction(
        &self,
        request: Request<v1::SignTransactionRequest>,
    ) -> Result<Response<v1::SignTransactionResponse>, Status> {
        let who = peer(&request, &self.allow)?;
        if who.role != Role::Engine {
            return Err(Status::permission_denied("not an engine certificate"));
        }
        let req = request.into_inner();
        let span = tracing::info_span!("sign_transaction", trace_id = %trace_of(&req.trace), task_id = %req.task_id, engine = %who.name);
        self.signer
            .sign(&req, &who.name)
            .instrument(span)
            .await
            .map(Response::new)
            .map_err(internal)
    }

    async fn get_approval(
        &self,
        request: Request<v1::GetApprovalRequest>,
    ) -> Result<Response<v1::Approval>, Status> {
        peer(&request, &self.allow)?;
        let req = request.into_inner();
        let span = tracing::info_span!("get_approval", trace_id = %trace_of(&req.trace), approval_id = %req.approval_id);
        match self
            .signer
            .approval(&req.approval_id)
            .instrument(span)
            .await
            .map_err(internal)?
        {
            Some(a) => Ok(Response::new(a)),
            None => Err(Status::not_found("no such approval")),
        }
    }
}

/// The approvers' service.
struct AdminRpc {
    signer: Arc<Signer>,
    allow: Arc<Allowlist>,
}

fn refusal_status(r: DecideRefusal) -> Status {
    match r {
        DecideRefusal::NotFound => Status::not_found("approval_not_found: no such approval"),
        DecideRefusal::Expired => Status::failed_precondition(
            "approval_expired: the approval expired before it was decided",
        ),
        DecideRefusal::NotPending(s) => Status::failed_precondition(format!(
            "approval_not_pending: the approval is already {s}"
        )),
        DecideRefusal::FieldsChanged => Status::failed_precondition(
            "approval_fields_changed: the approval is bound to other fields than the ones you were shown; show it again",
        ),
        DecideRefusal::AlreadyDecided => Status::failed_precondition(
            "approval_already_decided: you already decided this approval; a second approval must come from another approver",
        ),
    }
}

#[tonic::async_trait]
impl SignerAdmin for AdminRpc {
    async fn list_approvals(
        &self,
        request: Request<v1::ListApprovalsRequest>,
    ) -> Result<Response<v1::ListApprovalsResponse>, Status> {
        peer(&request, &self.allow)?;
        let req = request.into_inner();
        let limit = if req.limit == 0 { 50 } else { req.limit };
        let approvals = self
            .signer
            .approvals(req.pending_only, limit)
            .await
            .map_err(internal)?;
        Ok(Response::new(v1::ListApprovalsResponse { approvals }))
    }

    async fn show_approval(
        &self,
        request: Request<v1::GetApprovalRequest>,
    ) -> Result<Response<v1::Approval>, Status> {
        peer(&request, &self.allow)?;
        let req = request.into_inner();
        match self
            .signer
            .approval(&req.approval_id)
            .await
            .map_err(internal)?
        {
            Some(a) => Ok(Response::new(a)),
            None => Err(Status::not_found("approval_not_found: no such approval")),
        }
    }

    async fn decide_approval(
        &self,
        request: Request<v1::DecideApprovalRequest>,
    ) -> Result<Response<v1::Approval>, Status> {
        let who = peer(&request, &self.allow)?;
        if who.role != Role::Approver {
            return Err(Status::permission_denied(format!(
                "{} may view approvals but not decide them",
                who.name
            )));
        }
        let req = request.into_inner();
        if !req.approve && req.reason.trim().is_empty() {
            return Err(Status::invalid_argument("a rejection needs a reason"));
        }
        let trace_id = trace_of(&req.trace);
        let span = tracing::info_span!("decide_approval", trace_id = %trace_id, approval_id = %req.approval_id, approver = %who.name);
        let decided = self
            .signer
            .decide(&Decision {
                approval_id: &req.approval_id,
                approver: &who.name,
                approve: req.approve,
                reason: req.reason.trim(),
                fields_hash: &req.fields_hash,
                trace_id: &trace_id,
            })
            .instrument(span)
            .await
            .map_err(internal)?;
        decided.map(Response::new).map_err(refusal_status)
    }

    async fn policy_status(
        &self,
        request: Request<v1::PolicyStatusRequest>,
    ) -> Result<Response<v1::PolicyStatusResponse>, Status> {
        peer(&request, &self.allow)?;
        self.signer
            .promote_due(crate::store::now_ms())
            .await
            .map_err(internal)?;
        Ok(Response::new(self.signer.policy_status().await))
    }

    async fn reload_policy(
        &self,
        request: Request<v1::PolicyStatusRequest>,
    ) -> Result<Response<v1::PolicyStatusResponse>, Status> {
        let who = peer(&request, &self.allow)?;
        if who.role != Role::Approver {
            return Err(Status::permission_denied(format!(
                "{} may not reload the policy",
                who.name
            )));
        }
        self.signer
            .reload_policy(&format!("approver:{}", who.name))
            .await
            .map_err(|e| Status::failed_precondition(format!("policy refused: {e}")))?;
        Ok(Response::new(self.signer.policy_status().await))
    }
}

/// Writes handshake refusals to the audit log.
async fn audit_refusals(store: Store, mut rx: mpsc::Receiver<HandshakeRefusal>) {
    while let Some(r) = rx.recv().await {
        let e = Entry::new(
            "signer",
            "handshake_refused",
            r.fingerprint,
            format!("{} port: {}", r.listener, r.why),
            "",
        );
        if let Err(e) = store.audit(&e).await {
            tracing::error!(error = %e, "could not audit a handshake refusal");
        }
    }
}

/// Starts both listeners with `keys` as the key source. The listeners bind what `config`
/// says (port 0 picks a free port; see [`Running::addr`]).
pub async fn start(config: &SignerConfig, keys: Arc<dyn KeySource>) -> Result<Running, ServeError> {
    config.check()?;
    let store = Store::connect(&config.database).await?;
    let settings = Settings {
        policy_path: config.policy.clone(),
        policy_timelock_ms: (config.policy_timelock_secs as i64).saturating_mul(1000),
        approval_ttl_ms: (config.approval_ttl_secs as i64).saturating_mul(1000),
    };
    tracing::info!(key_source = keys.kind(), "opening the signer");
    let signer = Signer::open(store.clone(), keys, settings).await?;

    let (refused_tx, refused_rx) = mpsc::channel(256);
    let files = config.tls_files();
    let engine_allow = config.engine_allowlist()?;
    let admin_allow = config.admin_allowlist()?;
    let engine_tls = tls::server_config(
        &files,
        engine_allow.clone(),
        "signer",
        Some(refused_tx.clone()),
    )?;
    let admin_tls = tls::server_config(&files, admin_allow.clone(), "admin", Some(refused_tx))?;

    let bind = |addr: String| async move {
        TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let engine_listener = bind(config.listen.clone()).await?;
    let admin_listener = bind(config.admin_listen.clone()).await?;
    let addr = engine_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: config.admin_listen.clone(),
            source,
        })?;

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(audit_refusals(store.clone(), refused_rx)));

    let engine_svc = SignerServer::new(EngineRpc {
        signer: signer.clone(),
        allow: engine_allow,
    });
    let engine_in = incoming(
        engine_listener,
        TlsAcceptor::from(engine_tls),
        stop_rx.clone(),
        "signer",
    );
    let mut s = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(engine_svc)
            .serve_with_incoming_shutdown(engine_in, async move {
                let _ = s.changed().await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "signer listener stopped");
        }
    }));

    let admin_svc = SignerAdminServer::new(AdminRpc {
        signer: signer.clone(),
        allow: admin_allow,
    });
    let admin_in = incoming(
        admin_listener,
        TlsAcceptor::from(admin_tls),
        stop_rx.clone(),
        "admin",
    );
    let mut s = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(admin_svc)
            .serve_with_incoming_shutdown(admin_in, async move {
                let _ = s.changed().await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "admin listener stopped");
        }
    }));

    // Expiry and timelocks also happen on their own, not only when someone asks.
    let ticker = signer.clone();
    let mut s = stop_rx;
    tasks.push(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(e) = ticker.tick().await {
                        tracing::warn!(error = %e, "expiring approvals / promoting the policy");
                    }
                }
                _ = s.changed() => return,
            }
        }
    }));

    tracing::info!(%addr, %admin_addr, "signer listening (mutual TLS)");
    Ok(Running {
        addr,
        admin_addr,
        signer,
        stop,
        tasks,
    })
}
