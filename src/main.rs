//! `stratbox`: one command for every zone and every operator task.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only parses the
//! command line, sets up logging, and dispatches.

use clap::{Parser, Subcommand, ValueEnum};

mod cmd;

#[derive(Parser)]
#[command(name = "stratbox", version, about, propagate_version = true)]
struct Cli {
    /// Log line format. `json` puts the trace id of each trade in a field of its own.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "STRATBOX_LOG_FORMAT")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run all zones on embedded defaults: engine, market, host and strategies.
    Up(cmd::up::Args),
    /// Run the engine (Zone B) as a gRPC service.
    Engine(cmd::engine::Args),
    /// Run a strategy host (Zone A) against an engine and a bus.
    Host(cmd::host::Args),
    /// Inspect and manage strategy components.
    #[command(subcommand)]
    Strategy(cmd::strategy::Command),
    /// Operator keys: upload, deploy, kill switch (run against the engine's database).
    #[command(subcommand)]
    Operator(cmd::operator::Command),
    /// Host keys: what a strategy host presents to submit proposals and follow deployments.
    #[command(subcommand)]
    HostKey(cmd::operator::Command),
    /// Read, engage and clear the engine's kill switch.
    #[command(subcommand)]
    KillSwitch(cmd::kill_switch::Command),
    /// Run the signer (Zone C), or manage its certificates, audit log, policy and
    /// development keystore.
    Signer(cmd::signer::Args),
    /// The signer's approvals: list, show, approve, reject (approver certificate).
    #[command(subcommand)]
    Approvals(cmd::approvals::Command),
    /// Replay recorded events through one strategy instance.
    Backtest(cmd::backtest::Args),
    /// Ask a service's gRPC health service whether it is serving (exit 0 only if so).
    Health(cmd::health::Args),
    /// Measure the hot paths and print a table.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Up(args) => cmd::up::run(args).await,
        Command::Engine(args) => cmd::engine::run(args).await,
        Command::Host(args) => cmd::host::run(args).await,
        Command::Strategy(command) => cmd::strategy::run(command).await,
        Command::Operator(command) => {
            cmd::operator::run(stratbox_engine::Role::Operator, command).await
        }
        Command::HostKey(command) => cmd::operator::run(stratbox_engine::Role::Host, command).await,
        Command::KillSwitch(command) => cmd::kill_switch::run(command).await,
        Command::Signer(args) => cmd::signer::run(args).await,
        Command::Approvals(command) => cmd::approvals::run(command).await,
        Command::Backtest(args) => cmd::backtest::run(args).await,
        Command::Bench(command) => cmd::bench::run(command).await,
        Command::Health(args) => cmd::health::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line: the chain of causes joined, so scripts can grep it. Causes may
            // quote a strategy or an engine; nothing they wrote may act on the terminal.
            let text = format!("{err:#}");
            eprintln!("error: {}", stratbox_host::display::Escaped(&text));
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
