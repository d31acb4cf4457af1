//! `stratbox`: one command for every zone and every operator task.
//!
//! Each subcommand lives in its own module under `cmd/` and the parser in `cli.rs`, both
//! in the library (so tests parse with the same parser); this file only parses the
//! command line, sets up logging, and dispatches.

use clap::Parser;
use stratbox::cli::{Cli, Command, LogFormat};
use stratbox::cmd;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Up(args) => cmd::up::run(args).await,
        Command::Engine(args) => cmd::engine::run(*args).await,
        Command::Host(args) => cmd::host::run(args).await,
        Command::Strategy(command) => cmd::strategy::run(command).await,
        Command::New(args) => cmd::new::run(args).await,
        Command::Build(args) => cmd::build::run(args).await,
        Command::Operator(command) => {
            cmd::operator::run(stratbox_engine::Role::Operator, command).await
        }
        Command::HostKey(command) => cmd::operator::run(stratbox_engine::Role::Host, command).await,
        Command::FeederKey(command) => {
            cmd::operator::run(stratbox_engine::Role::Feeder, command).await
        }
        Command::KillSwitch(command) => cmd::kill_switch::run(command).await,
        Command::Risk(command) => cmd::risk::run(command).await,
        Command::Governance(command) => cmd::governance::run(command).await,
        Command::Reconcile(args) => cmd::reconcile::run(args).await,
        Command::Signer(args) => cmd::signer::run(args).await,
        Command::Approvals(command) => cmd::approvals::run(command).await,
        Command::Relay(args) => cmd::relay::run(args).await,
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
