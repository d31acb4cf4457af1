//! Replaying recorded events through one instance: what `stratbox backtest` runs.
//!
//! `host.history` is served from the events replayed so far (the current one included)
//! and the host clips it at the snapshot's watermark, so a strategy cannot see ahead.
//! Quarantine backoff is measured in *event* time, not wall time: a backtest replays
//! hours in seconds, and a backoff in wall time would skip the rest of the file.

use crate::history::SharedHistory;
use crate::instance::{InstanceSpec, InstanceStats, StrategyInstance};
use crate::limits::StrategyLimits;
use crate::proposal::ValidatedProposal;
use crate::replay::{ReplayLine, Replayer};
use crate::runtime::LoadedComponent;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Errors kept verbatim in the report; the rest are only counted.
const MAX_ERROR_SAMPLES: usize = 20;

/// How a backtest instantiates the strategy.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// The config string handed to `init` (the strategy parses it; `{}` by default).
    pub config: String,
    /// Fuel, memory and deadline limits, as in production so results carry over.
    pub limits: StrategyLimits,
    /// Seed of the guest's randomness: same seed, same run.
    pub seed: u64,
}

impl Default for BacktestOptions {
    fn default() -> Self {
        Self {
            config: "{}".into(),
            limits: StrategyLimits::default(),
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
/// A proposal the strategy made during the backtest.
pub struct ProposalRecord {
    /// The block of the event that produced it.
    pub block: u64,
    /// The trace id the event carried.
    pub trace_id: String,
    /// The proposal, after the host's validation.
    pub proposal: ValidatedProposal,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
/// One failed call, kept as a sample.
pub struct ErrorRecord {
    /// The block of the event being handled.
    pub block: u64,
    /// The [`CallError`](crate::CallError) kind, e.g. `out_of_fuel`.
    pub kind: &'static str,
    /// The error's (escaped) text.
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
/// Fuel burned over the run, to size a strategy's fuel limit.
pub struct FuelSummary {
    /// Over all calls.
    pub total: u64,
    /// Mean per call, rounded down.
    pub mean_per_call: u64,
    /// The most any one call burned; compare with the limit.
    pub max_per_call: u64,
}

/// Latency of calls into the guest, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest call.
    pub max_us: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
/// What `stratbox strategy backtest` prints (as JSON).
pub struct BacktestReport {
    /// The world the component targets.
    pub world: String,
    /// Hex sha256 of the component, to tie the report to the exact bytes.
    pub sha256: String,
    /// Events replayed.
    pub events: u64,
    /// Calls into the guest (`init` and `on-event`).
    pub calls: u64,
    /// Proposals made (`proposals.len()`), for readers that skip the list.
    pub proposal_count: u64,
    /// The proposals made, in order.
    pub proposals: Vec<ProposalRecord>,
    /// Failed calls by kind (`out_of_fuel`, `deadline`, `trap`, ...).
    pub errors: BTreeMap<&'static str, u64>,
    /// The first few errors verbatim; the rest are only counted in `errors`.
    pub error_samples: Vec<ErrorRecord>,
    /// Fuel burned.
    pub fuel: FuelSummary,
    /// Time per call.
    pub latency: LatencySummary,
    /// The instance's own counters at the end.
    pub stats: InstanceStats,
}

/// The `q` quantile of sorted `values` (nearest rank).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn us(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1000.0 * 100.0).round() / 100.0
}

/// Replays `lines` through a fresh instance of `component`.
pub fn run(
    component: &LoadedComponent,
    lines: Vec<ReplayLine>,
    options: &BacktestOptions,
) -> BacktestReport {
    let history = SharedHistory::new();
    let spec = InstanceSpec {
        name: "backtest".into(),
        config: options.config.clone(),
        limits: options.limits.clone(),
        seed: options.seed,
        granted_dir: None,
        // A backtest's memory starts empty and is kept by nobody.
        memory: Default::default(),
    };
    let mut instance = StrategyInstance::new(component, spec, history.clone());
    let mut replayer = Replayer::new();
    let origin = Instant::now();
    let first_timestamp = lines.first().map(|l| l.timestamp).unwrap_or(0);

    let mut proposals = Vec::new();
    let mut error_samples = Vec::new();
    let mut latencies = Vec::with_capacity(lines.len());
    let mut fuel_max = 0u64;
    let mut events = 0u64;
    for line in lines {
        events += 1;
        let (event, snapshot) = replayer.apply(line);
        history.push(event.clone());
        let block = snapshot.last_sync_block;
        let trace_id = format!("backtest-{block}-{events}");
        let now = origin + Duration::from_secs(snapshot.timestamp.saturating_sub(first_timestamp));
        let ran_before = instance.stats().guest_calls;
        let result = instance.call_at(now, &event, &snapshot, &trace_id);
        if instance.stats().guest_calls > ran_before {
            let m = instance.last_call();
            latencies.push(m.elapsed);
            fuel_max = fuel_max.max(m.fuel_used);
        }
        match result {
            Ok(outcome) => {
                for proposal in outcome.proposals {
                    proposals.push(ProposalRecord {
                        block,
                        trace_id: trace_id.clone(),
                        proposal,
                    });
                }
            }
            Err(e) => {
                if error_samples.len() < MAX_ERROR_SAMPLES {
                    error_samples.push(ErrorRecord {
                        block,
                        kind: e.kind(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    latencies.sort();
    let stats = instance.stats().clone();
    let calls_with_fuel = stats.guest_calls.max(1);
    BacktestReport {
        world: component.report().world.clone(),
        sha256: component.sha256().to_string(),
        events,
        calls: stats.calls,
        proposal_count: proposals.len() as u64,
        proposals,
        errors: stats.errors.clone(),
        error_samples,
        fuel: FuelSummary {
            total: stats.fuel_used,
            mean_per_call: stats.fuel_used / calls_with_fuel,
            max_per_call: fuel_max,
        },
        latency: LatencySummary {
            p50_us: us(quantile(&latencies, 0.50)),
            p90_us: us(quantile(&latencies, 0.90)),
            p99_us: us(quantile(&latencies, 0.99)),
            max_us: us(latencies.last().copied().unwrap_or_default()),
        },
        stats,
    }
}
