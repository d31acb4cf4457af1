//! `stratbox bench ...`: each target prints a table of medians and ratios measured side by
//! side in one run, because the machines this runs on are shared and noisy.

#[derive(clap::Subcommand)]
pub enum Command {
    /// The strategy host: warm calls, rebuilds, fan-out, fuel cost, memory per instance.
    Host(super::bench_host::Args),
    /// The engine: proposals per second and latency to SIMULATED, SQLite beside PostgreSQL.
    Engine(super::bench_engine::Args),
    /// The whole pipeline: chain swap to engine answer, with many instances.
    Pipeline(super::bench_pipeline::Args),
    /// The signer: policy check, single-key signing, a signing round trip over mTLS.
    Signer(super::bench_signer::Args),
    /// Deploys on a running fleet: the pause a hot swap and a scale put on the event path.
    Rollout(super::bench_rollout::Args),
    /// The live path on Anvil: proposal to CONFIRMED (automine and 1 s blocks), the signer's
    /// share of it.
    Live(super::bench_live::Args),
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Host(args) => super::bench_host::run(args).await,
        Command::Engine(args) => super::bench_engine::run(args).await,
        Command::Pipeline(args) => super::bench_pipeline::run(args).await,
        Command::Signer(args) => super::bench_signer::run(args).await,
        Command::Rollout(args) => super::bench_rollout::run(args).await,
        Command::Live(args) => super::bench_live::run(args).await,
    }
}
