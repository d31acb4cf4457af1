//! Serving: gRPC (with server reflection, so grpcurl can list and call the service) and
//! Prometheus `/metrics` on a separate port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use stratbox_proto::v1::trading_engine_server::TradingEngineServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::engine::Engine;
use crate::operators::OperatorAuth;
use crate::service::EngineService;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("metrics server: {0}")]
    Metrics(std::io::Error),
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves the engine's gRPC API on `listener` until `shutdown` resolves. No operator keys:
/// operator actions over gRPC are refused (see [`serve_grpc_with_operators`]).
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
/// actions over gRPC are refused (see [`serve_grpc_with_operators`]).
pub async fn serve_grpc_with(
    engine: Engine,
    extra: tonic::service::Routes,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_grpc_with_operators(engine, extra, None, listener, shutdown).await
}

/// Like [`serve_grpc_with`], with operator actions (kill switch, restoring a halted
/// strategy) authenticated by `operators`; `None` refuses them all (`UNAUTHENTICATED`).
pub async fn serve_grpc_with_operators(
    engine: Engine,
    extra: tonic::service::Routes,
    operators: Option<Arc<dyn OperatorAuth>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    // Both reflection versions: grpc.reflection.v1 for current clients, v1alpha for the
    // many deployed ones (grpcurl 1.8, Postman) that only speak it.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(stratbox_proto::FILE_DESCRIPTOR_SET)
    };
    let v1 = reflection()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let service = match operators {
        Some(o) => EngineService::new(engine).with_operators(o),
        None => EngineService::new(engine),
    };
    let routes = extra
        .add_service(TradingEngineServer::new(service))
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
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Serves `/metrics` (Prometheus text format) on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    engine: Engine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let engine = engine.clone();
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
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Metrics)
}
