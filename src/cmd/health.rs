//! `stratbox health`: asks a stratbox service's gRPC health service (`grpc.health.v1`)
//! whether it is serving, and exits 0 only if it is. What container health checks and
//! scripts run; it proves the service's event loop, store and chain answer (see
//! `stratbox_engine::health`), which a TCP connect does not.

use std::time::Duration;

use anyhow::Context;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[derive(clap::Args)]
pub struct Args {
    /// The service's gRPC address.
    #[arg(
        long,
        env = "STRATBOX_ENGINE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub engine: String,
    /// The service name to ask about; empty for the server as a whole.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Give up (and fail) after this long.
    #[arg(long, default_value = "5s", value_parser = super::up::parse_duration)]
    pub timeout: Duration,
    /// How the engine is verified (`--engine-ca`, ...).
    #[command(flatten)]
    pub tls: super::engine_tls::EngineTls,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let ask = async {
        let channel = args
            .tls
            .endpoint(&args.engine)?
            .connect_timeout(args.timeout)
            .connect()
            .await
            .with_context(|| format!("connecting to {}", args.engine))?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: args.service.clone(),
            })
            .await
            .context("asking grpc.health.v1.Health/Check")?
            .into_inner()
            .status();
        Ok::<_, anyhow::Error>(status)
    };
    let status = tokio::time::timeout(args.timeout, ask)
        .await
        .with_context(|| format!("{} did not answer within {:?}", args.engine, args.timeout))??;
    println!("{}", status.as_str_name());
    anyhow::ensure!(
        status == ServingStatus::Serving,
        "{} is not serving ({})",
        args.engine,
        status.as_str_name()
    );
    Ok(())
}
