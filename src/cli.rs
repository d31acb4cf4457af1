//! The `stratbox` command line: every subcommand and flag, as clap parses them. The
//! binary and the deploy-file tests (tests/deploy_args.rs) share this one parser.

use clap::{Parser, Subcommand, ValueEnum};

use crate::cmd;

/// The whole command line: global flags and one subcommand.
#[derive(Parser)]
#[command(name = "stratbox", version, about, propagate_version = true)]
pub struct Cli {
    /// Log line format. `json` puts the trace id of each trade in a field of its own.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "STRATBOX_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for a log collector.
    Json,
}

/// The subcommands: one per zone, and the operator tasks.
#[derive(Subcommand)]
pub enum Command {
    /// Run all zones on embedded defaults: engine, market, host and strategies.
    Up(cmd::up::Args),
    /// Run the engine (Zone B) as a gRPC service.
    // Boxed: its flags make it several times the size of every other variant.
    Engine(Box<cmd::engine::Args>),
    /// Run a strategy host (Zone A) against an engine and a bus.
    Host(cmd::host::Args),
    /// Inspect and manage strategy components.
    #[command(subcommand)]
    Strategy(cmd::strategy::Command),
    /// Start a strategy project in Rust, Python or JavaScript (`--lang`) that tests and
    /// builds as it stands.
    New(cmd::new::Args),
    /// Build a project made by `stratbox new` into a component and check it as
    /// `stratbox strategy check` does.
    Build(cmd::build::Args),
    /// Operator keys: upload, deploy, kill switch (run against the engine's database).
    #[command(subcommand)]
    Operator(cmd::operator::Command),
    /// Host keys: what a strategy host presents to submit proposals and follow deployments.
    #[command(subcommand)]
    HostKey(cmd::operator::Command),
    /// Feeder keys: what a price feeder presents to push off-chain reference prices
    /// (`PushReferencePrice`, one of the oracle guard's three sources).
    #[command(subcommand)]
    FeederKey(cmd::operator::Command),
    /// Read, engage and clear the engine's kill switch.
    #[command(subcommand)]
    KillSwitch(cmd::kill_switch::Command),
    /// The engine's risk limits: show them, propose new ones (tightening applies at once,
    /// loosening after the engine's timelock) and cancel a pending change.
    #[command(subcommand)]
    Risk(cmd::risk::Command),
    /// Markets halted by the governance sentinel (admin changes on the contracts they
    /// trade through): list them, or clear one (operator key).
    #[command(subcommand)]
    Governance(cmd::governance::Command),
    /// Compare the signing account's balances in the engine's ledger with the chain's
    /// (exit 0 only when they agree); `--adopt` books a traced difference.
    Reconcile(cmd::reconcile::Args),
    /// Run the signer (Zone C), or manage its certificates, audit log, policy and
    /// development keystore.
    Signer(cmd::signer::Args),
    /// The signer's approvals: list, show, approve, reject (approver certificate).
    #[command(subcommand)]
    Approvals(cmd::approvals::Command),
    /// A local private relay (`eth_sendBundle`) on an Anvil node: a stand-in for a real
    /// relay, for development and tests of the private route.
    Relay(cmd::relay::Args),
    /// Replay recorded events through one strategy instance.
    Backtest(cmd::backtest::Args),
    /// Ask a service's gRPC health service whether it is serving (exit 0 only if so).
    Health(cmd::health::Args),
    /// Measure the hot paths and print a table.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
}
