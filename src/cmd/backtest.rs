//! `stratbox backtest`: replays a JSONL event file (format: `host/README.md`) through one
//! instance of a strategy and reports its proposals, errors by kind, fuel and latency.
//!
//! The instance gets the limits `stratbox host` would give it, within the same host
//! ceilings: a `--memory-mib` above the host's memory ceiling is refused, not granted.
//! Everything the strategy wrote (reasons, error messages) is printed escaped.

use anyhow::Context;
use stratbox_host::backtest::{BacktestOptions, BacktestReport};
use stratbox_host::display::{Escaped, json};
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};

#[derive(clap::Args)]
pub struct Args {
    /// The strategy component (.wasm).
    #[arg(long)]
    strategy: std::path::PathBuf,
    /// Events, one JSON object per line.
    #[arg(long)]
    events: std::path::PathBuf,
    /// JSON config passed to the strategy's `init`.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Fuel per call.
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory limit of the instance, in MiB; at most the host's ceiling (1024 MiB).
    #[arg(long)]
    memory_mib: Option<usize>,
    /// Wall-clock deadline per call, in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Seed of the instance's WASI randomness.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // Compilation and the replay are CPU-bound and synchronous.
    tokio::task::spawn_blocking(move || backtest(args)).await?
}

fn backtest(args: Args) -> anyhow::Result<()> {
    let config: serde_json::Value =
        serde_json::from_str(&args.config).context("--config is not JSON")?;
    let mut limits = StrategyLimits::default();
    if let Some(fuel) = args.fuel {
        limits.fuel_per_call = fuel;
    }
    // The same ceiling as a host's: a backtest that passes must not need more than a
    // host will ever give.
    let host = HostConfig {
        // One instance: a small pool, so the process reserves little address space.
        max_instances: 2,
        ..HostConfig::default()
    };
    if let Some(mib) = args.memory_mib {
        let bytes = mib
            .checked_mul(1 << 20)
            .filter(|b| *b <= host.max_memory_bytes);
        limits.memory_bytes = bytes.with_context(|| {
            format!(
                "--memory-mib {mib} is over the host's memory ceiling of {} MiB: no host would give a strategy that much",
                host.max_memory_bytes >> 20
            )
        })?;
    }
    if let Some(ms) = args.deadline_ms {
        limits.deadline_ms = ms;
    }
    let runtime = HostRuntime::new(host)?;
    let component = runtime
        .load_file(&args.strategy)
        .with_context(|| format!("{}", args.strategy.display()))?;
    let file =
        std::fs::File::open(&args.events).with_context(|| format!("{}", args.events.display()))?;
    let lines = stratbox_host::replay::read_jsonl(std::io::BufReader::new(file))
        .with_context(|| format!("{}", args.events.display()))?;
    let options = BacktestOptions {
        config: config.to_string(),
        limits,
        seed: args.seed,
    };
    let report = stratbox_host::backtest::run(&component, lines, &options);
    if args.json {
        println!("{}", json(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(())
}

fn print_summary(r: &BacktestReport) {
    println!("strategy  {} ({})", Escaped(&r.world), &r.sha256[..16]);
    println!(
        "events    {}   calls {}   proposals {}",
        r.events, r.calls, r.proposal_count
    );
    println!(
        "fuel      total {}   mean/call {}   max/call {}",
        r.fuel.total, r.fuel.mean_per_call, r.fuel.max_per_call
    );
    println!(
        "latency   p50 {:.1} µs   p90 {:.1} µs   p99 {:.1} µs   max {:.1} µs",
        r.latency.p50_us, r.latency.p90_us, r.latency.p99_us, r.latency.max_us
    );
    if r.errors.is_empty() {
        println!("errors    none");
    } else {
        let kinds: Vec<String> = r.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("errors    {}", kinds.join("   "));
        for e in &r.error_samples {
            println!("  block {}: {}", e.block, Escaped(&e.message));
        }
    }
    for p in &r.proposals {
        let action = json(&p.proposal.action).unwrap_or_default();
        println!(
            "  block {}  {}  expected0 {} expected1 {}  slippage {} bps  {}",
            p.block,
            action,
            p.proposal.expected_amount0,
            p.proposal.expected_amount1,
            p.proposal.max_slippage_bps,
            Escaped(&p.proposal.reason)
        );
    }
}
