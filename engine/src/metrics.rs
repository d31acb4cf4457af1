//! Prometheus metrics, in text form on `/metrics`.
//!
//! Every reason code and every state has a series from the start (at zero), so a
//! dashboard's "rejections by reason" never has a hole that looks like a missing gate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stratbox_risk::ReasonCode;

use crate::fsm::TaskState;

type Label = [(&'static str, &'static str); 1];

/// What a receipt is compared with its simulation on (`prediction_differences{field}`).
pub const PREDICTED: [&str; 3] = ["amounts", "gas_used", "status"];

/// The routes a live trade can take (`routes{route}`).
pub const ROUTES: [&str; 2] = ["public", "private"];

/// Why a private trade fell back to the public route (`route_fallbacks{reason}`).
pub const FALLBACKS: [&str; 3] = ["unreachable", "refused", "not_included"];

/// What became of an alert for the webhook (`alerts{result}`; see `crate::alert`).
pub const ALERT_RESULTS: [&str; 3] = ["sent", "dropped", "failed"];

/// Running totals of where submits spend their time, for `stratbox bench engine`'s
/// profile (the histograms above answer "how long", these answer "where", summed).
#[derive(Debug, Default)]
pub struct StageTotals {
    /// Submit batches gated.
    pub batches: AtomicU64,
    /// Time in the gates, summed.
    pub gates_ns: AtomicU64,
    /// Wall time of a batch's simulation step (waiting for a core included).
    pub sim_wall_ns: AtomicU64,
    /// CPU time of simulation parts, summed over parts running at once.
    pub sim_cpu_ns: AtomicU64,
    /// Proposals simulated.
    pub simulations: AtomicU64,
    /// Wall time of a batch's storage transaction(s).
    pub store_ns: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl StageTotals {
    /// Records one batch's gate time.
    pub fn add_gates(&self, d: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.gates_ns.fetch_add(nanos(d), Ordering::Relaxed);
    }

    /// Records one batch's simulation wall time.
    pub fn add_sim_wall(&self, d: Duration) {
        self.sim_wall_ns.fetch_add(nanos(d), Ordering::Relaxed);
    }

    /// Records `n` simulations that took `d` of CPU together.
    pub fn add_sim_cpu(&self, d: Duration, n: usize) {
        self.sim_cpu_ns.fetch_add(nanos(d), Ordering::Relaxed);
        self.simulations
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Records one batch's storage time.
    pub fn add_store(&self, d: Duration) {
        self.store_ns.fetch_add(nanos(d), Ordering::Relaxed);
    }

    /// (batches, gates, sim wall, sim cpu, simulations, store) so far.
    pub fn snapshot(&self) -> [u64; 6] {
        [
            self.batches.load(Ordering::Relaxed),
            self.gates_ns.load(Ordering::Relaxed),
            self.sim_wall_ns.load(Ordering::Relaxed),
            self.sim_cpu_ns.load(Ordering::Relaxed),
            self.simulations.load(Ordering::Relaxed),
            self.store_ns.load(Ordering::Relaxed),
        ]
    }
}

/// The engine's Prometheus metrics (prefix `stratbox_engine`), served on `/metrics`.
pub struct EngineMetrics {
    registry: Registry,
    /// Every proposal's outcome, `ok` or a reason code.
    pub proposals: Family<Label, Counter>,
    /// Tasks by current state (moves with every transition).
    pub tasks: Family<Label, Gauge>,
    /// Submits answered with an existing task (idempotency key already taken).
    pub duplicates: Counter,
    /// Whole submit calls.
    pub submit_seconds: Histogram,
    /// The risk gates of a batch.
    pub gate_seconds: Histogram,
    /// Simulating a batch.
    pub sim_seconds: Histogram,
    /// A batch's storage transaction(s).
    pub store_seconds: Histogram,
    /// 1 while the kill switch is engaged.
    pub kill_switch: Gauge,
    /// The block the engine's view of the chain is at.
    pub watermark: Gauge,
    /// Assets whose ledger and chain balances differed at the last reconciliation.
    pub reconciliation_differences: Gauge,
    /// Receipts that differ from the simulation, by field (`amounts`, `gas_used`,
    /// `status`).
    pub prediction_differences: Family<Label, Counter>,
    /// Live trades by the route chosen for them (`public`, `private`; see `crate::route`).
    pub routes: Family<Label, Counter>,
    /// Private trades sent on the public fallback, by why (`unreachable`, `refused`,
    /// `not_included`).
    pub route_fallbacks: Family<Label, Counter>,
    /// Admin changes the governance sentinel saw that halted a market or were seen on a
    /// halted one, by kind (event name or reading; see [`crate::admin_change::KINDS`]).
    pub governance_hits: Family<Label, Counter>,
    /// Markets halted by the governance sentinel now: an alert fires while it is above 0.
    pub governance_halted_markets: Gauge,
    /// Strategies the risk monitor halted between proposals, by the hard limit their book
    /// breached (`limit`): an alert fires on any increase.
    pub risk_monitor_halts: Family<Label, Counter>,
    /// Unwinds the engine proposed for halted books, by the state they reached
    /// (`STAGED`, `SIMULATED`, `REJECTED`...).
    pub unwinds: Family<Label, Counter>,
    /// Nonce gaps the live path found and filled with a cancel (see `crate::live`).
    pub nonce_gaps: Counter,
    /// Alerts posted to the webhook, by result (`sent`, `dropped`, `failed`; see
    /// [`crate::alert`]).
    pub alerts: Family<Label, Counter>,
    /// Strategies at L0 now (halted until an operator restores them).
    pub halted_strategies: Gauge,
    /// Trades the signer refused, by its reason code.
    pub signer_refusals: Family<[(&'static str, String); 1], Counter>,
    /// Not exported: for `stratbox bench engine`.
    pub stages: StageTotals,
}

impl EngineMetrics {
    /// Registers every metric, zeroed.
    pub fn new() -> Arc<EngineMetrics> {
        let mut registry = Registry::with_prefix("stratbox_engine");
        let proposals = Family::<Label, Counter>::default();
        let tasks = Family::<Label, Gauge>::default();
        let duplicates = Counter::default();
        // 50 µs .. ~3.3 s.
        let h = || Histogram::new(exponential_buckets(0.000_05, 2.0, 17));
        let submit_seconds = h();
        let gate_seconds = h();
        let sim_seconds = h();
        let store_seconds = h();
        let kill_switch = Gauge::default();
        let watermark = Gauge::default();
        let reconciliation_differences = Gauge::default();
        let prediction_differences = Family::<Label, Counter>::default();
        let routes = Family::<Label, Counter>::default();
        let route_fallbacks = Family::<Label, Counter>::default();
        let governance_hits = Family::<Label, Counter>::default();
        let governance_halted_markets = Gauge::default();
        let risk_monitor_halts = Family::<Label, Counter>::default();
        let unwinds = Family::<Label, Counter>::default();
        registry.register(
            "risk_monitor_halts",
            "Strategies halted by the per-block risk monitor, by the hard limit their book breached",
            risk_monitor_halts.clone(),
        );
        for code in ReasonCode::ALL.iter().filter(|c| c.is_hard_limit()) {
            let _ = risk_monitor_halts.get_or_create(&[("limit", code.as_str())]);
        }
        registry.register(
            "unwinds",
            "Reduce-only unwinds the engine proposed for halted books, by the state they reached",
            unwinds.clone(),
        );
        let nonce_gaps = Counter::default();
        registry.register(
            "nonce_gaps",
            "Nonce gaps of the signing account filled with a cancel",
            nonce_gaps.clone(),
        );
        registry.register(
            "proposals",
            "Proposals by outcome (ok or reason code)",
            proposals.clone(),
        );
        registry.register("tasks", "Trade tasks by current state", tasks.clone());
        registry.register(
            "duplicates",
            "Proposals answered with an earlier task",
            duplicates.clone(),
        );
        registry.register(
            "submit_seconds",
            "Latency of one submitted batch, gates to stored result",
            submit_seconds.clone(),
        );
        registry.register(
            "gate_seconds",
            "Latency of the gates for one proposal",
            gate_seconds.clone(),
        );
        registry.register(
            "sim_seconds",
            "Latency of one proposal's revm simulation",
            sim_seconds.clone(),
        );
        registry.register(
            "store_seconds",
            "Latency of one batch's database transactions",
            store_seconds.clone(),
        );
        registry.register(
            "kill_switch_engaged",
            "1 while the kill switch is engaged",
            kill_switch.clone(),
        );
        registry.register(
            "watermark_block",
            "The engine's watermark (newest synchronised block)",
            watermark.clone(),
        );
        registry.register(
            "reconciliation_differences",
            "Assets of the signing account whose ledger and chain balances differed at the last reconciliation",
            reconciliation_differences.clone(),
        );
        registry.register(
            "prediction_differences",
            "Live receipts whose amounts, gas used or status differ from the revm simulation",
            prediction_differences.clone(),
        );
        registry.register(
            "governance_hits",
            "Admin changes (events, EIP-1967 slots, code) seen on contracts a market trades through",
            governance_hits.clone(),
        );
        registry.register(
            "governance_halted_markets",
            "Markets halted by the governance sentinel until an operator clears them",
            governance_halted_markets.clone(),
        );
        for kind in crate::admin_change::KINDS {
            let _ = governance_hits.get_or_create(&[("kind", kind)]);
        }
        registry.register(
            "routes",
            "Live trades by the route chosen for them (public mempool or private relay)",
            routes.clone(),
        );
        registry.register(
            "route_fallbacks",
            "Private trades sent on the public fallback, by why",
            route_fallbacks.clone(),
        );
        for route in ROUTES {
            let _ = routes.get_or_create(&[("route", route)]);
        }
        for why in FALLBACKS {
            let _ = route_fallbacks.get_or_create(&[("reason", why)]);
        }
        let alerts = Family::<Label, Counter>::default();
        let halted_strategies = Gauge::default();
        let signer_refusals = Family::<[(&'static str, String); 1], Counter>::default();
        registry.register(
            "alerts",
            "Alerts for the webhook, by result (sent, dropped on a full queue, failed after retries)",
            alerts.clone(),
        );
        for result in ALERT_RESULTS {
            let _ = alerts.get_or_create(&[("result", result)]);
        }
        registry.register(
            "halted_strategies",
            "Strategies halted at L0 until an operator restores them",
            halted_strategies.clone(),
        );
        registry.register(
            "signer_refusals",
            "Live trades the signer refused, by its reason code",
            signer_refusals.clone(),
        );
        // The signer's codes are its own (Zone C); the one without a code is there from
        // the start, so the family is exported before the first refusal.
        let _ = signer_refusals.get_or_create(&[("reason", "signer_refused".to_owned())]);
        for field in PREDICTED {
            let _ = prediction_differences.get_or_create(&[("field", field)]);
        }
        let _ = proposals.get_or_create(&[("result", stratbox_risk::OK)]);
        for code in ReasonCode::ALL {
            let _ = proposals.get_or_create(&[("result", code.as_str())]);
        }
        for s in TaskState::ALL {
            let _ = tasks.get_or_create(&[("state", s.as_str())]);
        }
        Arc::new(EngineMetrics {
            registry,
            proposals,
            tasks,
            duplicates,
            submit_seconds,
            gate_seconds,
            sim_seconds,
            store_seconds,
            kill_switch,
            watermark,
            reconciliation_differences,
            prediction_differences,
            routes,
            route_fallbacks,
            governance_hits,
            governance_halted_markets,
            risk_monitor_halts,
            unwinds,
            nonce_gaps,
            alerts,
            halted_strategies,
            signer_refusals,
            stages: StageTotals::default(),
        })
    }

    /// Counts one proposal's outcome: `ok` or its reason code.
    pub fn outcome(&self, code: &'static str) {
        self.proposals.get_or_create(&[("result", code)]).inc();
    }

    /// Proposals refused since start, per reason code (codes with none left out), in
    /// gate order: what a live view shows next to tasks by state.
    pub fn rejections(&self) -> Vec<(&'static str, u64)> {
        ReasonCode::ALL
            .iter()
            .map(|c| {
                let n = self
                    .proposals
                    .get_or_create(&[("result", c.as_str())])
                    .get();
                (c.as_str(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Moves one task between the per-state gauges; `from` is `None` for a new task.
    pub fn moved(&self, from: Option<TaskState>, to: TaskState) {
        if let Some(from) = from {
            self.tasks.get_or_create(&[("state", from.as_str())]).dec();
        }
        self.tasks.get_or_create(&[("state", to.as_str())]).inc();
    }

    /// Sets a state's gauge outright, e.g. from the store's counts at start.
    pub fn set_count(&self, state: TaskState, n: i64) {
        self.tasks
            .get_or_create(&[("state", state.as_str())])
            .set(n);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
