//! Health that means something: the engine is ready only when its event loop, its store
//! and its chain all answer.
//!
//! A TCP check says only that the kernel accepts connections; an engine whose async
//! workers are all blocked still passes it. Every check here runs as a task on the
//! engine's own runtime, so an answer at all proves the event loop is turning; the store
//! must answer a query and the chain's node (when the engine follows one) must answer an
//! RPC, each within [`CHECK_TIMEOUT`].
//!
//! Two faces, one check:
//! - gRPC `grpc.health.v1.Health` on the engine's port (what `stratbox health`, grpcurl,
//!   Kubernetes' `grpc` probes and compose ask): `""` and `stratbox.v1.TradingEngine` are
//!   SERVING only while the last check passed; checks run every [`CHECK_INTERVAL`].
//! - HTTP on the metrics port: `/live` (200 while the event loop answers) and `/ready`
//!   (runs the check now: 200 or 503, with each part's result as JSON).

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::engine::Engine;

/// How long each part of a check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the gRPC health status is re-checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

pub use crate::chain::ChainProbe;

/// One check's result: each part `ok` or the reason it is not.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// True when every part is `ok`: what `/ready` answers 200 for.
    pub ready: bool,
    /// `ok`, or why the store is not usable.
    pub store: String,
    /// `ok`, or why the chain (a fork's node) is not usable.
    pub chain: String,
    /// The engine's watermark when checked.
    pub watermark: u64,
}

const OK: &str = "ok";

async fn within<F>(what: &str, f: F) -> String
where
    F: Future<Output = Result<(), String>>,
{
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => OK.to_owned(),
        Ok(Err(e)) => e,
        Err(_) => format!("{what} did not answer within {CHECK_TIMEOUT:?}"),
    }
}

/// Checks the store and the chain now.
pub async fn check(engine: &Engine) -> Readiness {
    let store = within("the store", async {
        sqlx::query("SELECT 1")
            .fetch_one(engine.store().pool())
            .await
            .map(|_| ())
            .map_err(|e| format!("the store: {e}"))
    })
    .await;
    let chain = match engine.chain_probe() {
        None => OK.to_owned(),
        Some(probe) => within("the chain's node", probe()).await,
    };
    Readiness {
        ready: store == OK && chain == OK,
        store,
        chain,
        watermark: engine.watermark(),
    }
}

/// The engine's gRPC health service, kept up to date by a task that checks every
/// [`CHECK_INTERVAL`] until `stop` resolves. Starts NOT_SERVING until the first check.
pub fn grpc_service(
    engine: Engine,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        let mut stop = std::pin::pin!(stop);
        let mut last: Option<bool> = None;
        loop {
            let r = check(&engine).await;
            let status = if r.ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for name in ["", "stratbox.v1.TradingEngine"] {
                reporter.set_service_status(name, status).await;
            }
            if last != Some(r.ready) {
                if r.ready {
                    tracing::info!(watermark = r.watermark, "engine ready");
                } else {
                    tracing::warn!(store = %r.store, chain = %r.chain, "engine not ready");
                }
                last = Some(r.ready);
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
                _ = &mut stop => break,
            }
        }
    });
    service
}
