//! Serving: gRPC (with server reflection, so grpcurl can list and call the service, and the
//! standard health service, see [`crate::health`]) and, on a separate port, Prometheus
//! `/metrics` with the HTTP health endpoints `/live` and `/ready`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use stratbox_proto::v1::trading_engine_server::TradingEngineServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::access::Access;
use crate::engine::Engine;
use crate::service::EngineService;

/// Why the engine's servers could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is taken or not ours.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// The reflection service could not be built from the embedded descriptors.
    #[error("reflection: {0}")]
    Reflection(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The HTTP metrics server failed.
    #[error("metrics server: {0}")]
    Metrics(std::io::Error),
    /// The TLS files could not be read or do not make a server identity.
    #[error("engine TLS: {0}")]
    Tls(String),
    /// Plain TCP asked for on an address other machines can reach: operator keys and host
    /// keys would cross the network in clear.
    #[error(
        "refusing to serve gRPC in plain TCP on {0}, which is not a loopback address: give the engine --tls-cert and --tls-key (or listen on 127.0.0.1)"
    )]
    PlainNotLoopback(SocketAddr),
}

/// The engine's TLS identity on its gRPC port and, when hosts and operators must present a
/// client certificate, the CA that issues them.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The engine's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA of the client certificates required (PEM); `None` asks for none.
    pub client_ca: Option<PathBuf>,
}

impl ServerTls {
    /// tonic's server settings from the files (rustls with ring, the provider the whole
    /// workspace uses).
    pub fn config(&self) -> Result<tonic::transport::ServerTlsConfig, ServeError> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| ServeError::Tls(format!("{}: {e}", p.display())))
        };
        let identity = tonic::transport::Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        let mut tls = tonic::transport::ServerTlsConfig::new()
            .identity(identity)
            .timeout(std::time::Duration::from_secs(10));
        if let Some(ca) = &self.client_ca {
            tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        Ok(tls)
    }

    /// Reads the files and builds the TLS acceptor once, so a bad certificate or key stops a
    /// start instead of failing inside the serving task.
    pub fn check(&self) -> Result<(), ServeError> {
        tonic::transport::Server::builder()
            .tls_config(self.config()?)
            .map(|_| ())
            .map_err(|e| ServeError::Tls(format!("{}: {e}", self.cert.display())))
    }
}

/// Refuses plain TCP anywhere but loopback (see [`ServeError::PlainNotLoopback`]).
pub fn check_plain_listen(addr: SocketAddr) -> Result<(), ServeError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServeError::PlainNotLoopback(addr))
    }
}

/// Binds `addr` (port 0 for any free port) before serving, so a caller learns the real
/// address and a bind error is reported at start.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves the engine's gRPC API on `listener` until `shutdown` resolves. No keys: operator
/// actions over gRPC are refused and anyone may submit (see [`serve_grpc_with_access`]).
pub async fn serve_grpc(
    engine: Engine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_grpc_with(
        engine,
        tonic::service::Routes::default(),
        listener,
        shutdown,
    )
    .await
}

/// Like [`serve_grpc`], with more services on the same port (the strategy registry:
/// `stratbox_registry::routes(registry)`); reflection lists them too, since the descriptor
/// set holds every stratbox proto. A streaming service in `extra` must end its streams
/// when `shutdown` resolves, or the server waits for them. No operator keys: operator
/// actions over gRPC are refused (see [`serve_grpc_with_access`]).
pub async fn serve_grpc_with(
    engine: Engine,
    extra: tonic::service::Routes,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_grpc_with_access(engine, extra, None, listener, shutdown).await
}

/// Like [`serve_grpc_with`], with calls authenticated by `access` (see [`crate::access`]):
/// operator actions need an operator key, submitting a host key. `None` refuses every
/// operator action (`UNAUTHENTICATED`) and lets anyone submit. Plain TCP, so loopback only.
pub async fn serve_grpc_with_access(
    engine: Engine,
    extra: tonic::service::Routes,
    access: Option<Arc<dyn Access>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_grpc_tls(engine, extra, access, None, listener, shutdown).await
}

/// Like [`serve_grpc_with_access`], over TLS with `tls`; `None` serves plain TCP, which is
/// refused unless the listener is on a loopback address.
pub async fn serve_grpc_tls(
    engine: Engine,
    extra: tonic::service::Routes,
    access: Option<Arc<dyn Access>>,
    tls: Option<ServerTls>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let tls = match tls {
        Some(t) => Some(t.config()?),
        None => {
            let addr = listener
                .local_addr()
                .map_err(|e| ServeError::Tls(format!("the listener's address: {e}")))?;
            check_plain_listen(addr)?;
            None
        }
    };
    // Both reflection versions: grpc.reflection.v1 for current clients, v1alpha for the
    // many deployed ones (grpcurl 1.8, Postman) that only speak it.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(stratbox_proto::ENGINE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = reflection()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    // The health task ends when the server does (its sender dropped below).
    let (health_stop, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let health = crate::health::grpc_service(engine.clone(), async {
        let _ = health_stopped.await;
    });
    // Streams of this service end when the server starts shutting down.
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let service = EngineService::new(engine).with_closing(closing);
    let service = match access {
        Some(a) => service.with_access(a),
        None => service,
    };
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let routes = extra
        .add_service(TradingEngineServer::new(service))
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha);
    // tonic applies its TCP_NODELAY default only to listeners it binds itself; on a stream
    // handed in, Nagle's algorithm stays on, and a response written in several pieces
    // then waits for the client's delayed ACK: ~40 ms stalls on answers for large batches.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.and_then(|stream| {
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    });
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let served = builder
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    drop(health_stop);
    served?;
    Ok(())
}

/// Serves `/metrics` (Prometheus text format), `/live` and `/ready` (see
/// [`crate::health`]) on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    engine: Engine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = engine.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let engine = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        engine.metrics().render(),
                    )
                }
            }),
        )
        .route("/live", axum::routing::get(|| async { "live\n" }))
        .route(
            "/ready",
            axum::routing::get(move || {
                let engine = engine.clone();
                async move {
                    let r = crate::health::check(&engine).await;
                    let code = if r.ready {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    };
                    let body = serde_json::to_string(&r).unwrap_or_default();
                    (
                        code,
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Metrics)
}
