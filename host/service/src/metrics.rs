//! A host's Prometheus metrics (`stratbox host --metrics-listen ADDR`, `/metrics`): events
//! by kind, strategy calls, fuel and errors by strategy and kind, proposals and what the
//! engine made of them, and the two latencies a host adds to a trade: the strategy call and
//! the delivery to the engine. Same crate and text format as the engine's metrics.
//!
//! The service feeds these as it works ([`crate::HostService::metrics_to`]); nothing here
//! samples on a timer, so a scrape shows exactly what was handled.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stratbox_proto::v1::{ChainEvent, ProposalResult, TaskState, chain_event::Kind};
use tokio::net::TcpListener;

use crate::fleet::Answer;
use crate::outcome::{Outcome, OutcomeKind};

type One = [(&'static str, String); 1];
type Two = [(&'static str, String); 2];
type Three = [(&'static str, String); 3];
type Four = [(&'static str, String); 4];

/// Signed basis points: slippage and markouts (world 0.2.0), ±10% either way.
fn bps_histogram() -> Histogram {
    Histogram::new([
        -1000.0, -500.0, -200.0, -100.0, -50.0, -20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0, 50.0,
        100.0, 200.0, 500.0, 1000.0,
    ])
}

fn histogram() -> Histogram {
    // 1 µs .. ~4 s: a warm strategy call is a few µs, a delivery a few ms.
    Histogram::new(exponential_buckets(0.000_001, 2.0, 23))
}

/// The host's Prometheus metrics (prefix `stratbox_host`).
pub struct HostMetrics {
    registry: Registry,
    /// Events read from the bus, by kind (`swap`, `mint`, `burn`, `new_block`, `reorg`,
    /// `duplicate`, `malformed`).
    pub events: Family<One, Counter>,
    /// Strategy calls by strategy.
    pub calls: Family<One, Counter>,
    /// Fuel used by strategy calls, by strategy: successful ones, and the failed ones that
    /// say what they burned (out of fuel, stopped at the deadline).
    pub fuel: Family<One, Counter>,
    /// Failed calls by strategy and error kind (`out_of_fuel`, `deadline`, ...).
    pub errors: Family<Two, Counter>,
    /// Proposals delivered to the engine, by strategy.
    pub proposals: Family<One, Counter>,
    /// The engine's answers, by resulting task state (`simulated`, `rejected`, ...).
    pub answers: Family<One, Counter>,
    /// One strategy call, by strategy.
    pub call_seconds: Family<One, Histogram, fn() -> Histogram>,
    /// Delivering one event's proposals until the engine answered (retries included).
    pub delivery_seconds: Histogram,
    /// Starts, swaps, scales and stops of strategies, by strategy, kind, result
    /// (`switched` or `refused`) and the refusal's reason (`init`, `load`, ...; empty when
    /// it switched). The log line of a refusal has the whole reason.
    pub rollouts: Family<Four, Counter>,
    /// 1 while this host runs nothing of a strategy because it failed to start (at
    /// start-up, or on its first deploy here), by strategy; 0 once it runs or is gone.
    pub quarantined: Family<One, Gauge>,
    /// Ends of proposals' tasks as strategies are told them, by strategy, final state and
    /// reason code: refusal rates by reason are `rejected` over all.
    pub outcomes: Family<Three, Counter>,
    /// Realised slippage of fills against the strategy's expectation, in basis points
    /// (positive: worse than expected), by strategy.
    pub slippage_bps: Family<One, Histogram, fn() -> Histogram>,
    /// Markouts of fills some blocks later, in basis points (negative: the price ran
    /// against the fill, toxic flow), by strategy.
    pub markout_bps: Family<One, Histogram, fn() -> Histogram>,
}

impl HostMetrics {
    /// Registers every metric, zeroed.
    pub fn new() -> Arc<HostMetrics> {
        let mut registry = Registry::with_prefix("stratbox_host");
        let events = Family::<One, Counter>::default();
        let calls = Family::<One, Counter>::default();
        let fuel = Family::<One, Counter>::default();
        let errors = Family::<Two, Counter>::default();
        let proposals = Family::<One, Counter>::default();
        let answers = Family::<One, Counter>::default();
        let call_seconds =
            Family::<One, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let delivery_seconds = histogram();
        let rollouts = Family::<Four, Counter>::default();
        let quarantined = Family::<One, Gauge>::default();
        let outcomes = Family::<Three, Counter>::default();
        let slippage_bps =
            Family::<One, Histogram, fn() -> Histogram>::new_with_constructor(bps_histogram);
        let markout_bps =
            Family::<One, Histogram, fn() -> Histogram>::new_with_constructor(bps_histogram);
        registry.register(
            "outcomes",
            "Ends of proposals' tasks told to strategies, by strategy, state and reason code",
            outcomes.clone(),
        );
        registry.register(
            "slippage_bps",
            "Realised slippage of fills against the strategy's expectation in basis points, by strategy",
            slippage_bps.clone(),
        );
        registry.register(
            "markout_bps",
            "Markouts of fills some blocks later in basis points (negative: toxic), by strategy",
            markout_bps.clone(),
        );
        registry.register(
            "rollouts",
            "Strategy starts, swaps, scales and stops, by strategy, kind, result and refusal reason",
            rollouts.clone(),
        );
        registry.register(
            "strategy_quarantined",
            "1 while this host runs nothing of a strategy because it failed to start, by strategy",
            quarantined.clone(),
        );
        registry.register(
            "events",
            "Events read from the bus, by kind",
            events.clone(),
        );
        registry.register(
            "strategy_calls",
            "Strategy calls, by strategy",
            calls.clone(),
        );
        registry.register(
            "fuel",
            "Fuel used by strategy calls, by strategy",
            fuel.clone(),
        );
        registry.register(
            "strategy_errors",
            "Failed strategy calls, by strategy and error kind",
            errors.clone(),
        );
        registry.register(
            "proposals",
            "Proposals delivered to the engine, by strategy",
            proposals.clone(),
        );
        registry.register(
            "engine_answers",
            "The engine's answers to delivered proposals, by task state",
            answers.clone(),
        );
        registry.register(
            "strategy_call_seconds",
            "Latency of one strategy call, by strategy",
            call_seconds.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Latency of delivering one event's proposals until the engine answered",
            delivery_seconds.clone(),
        );
        Arc::new(HostMetrics {
            registry,
            events,
            calls,
            fuel,
            errors,
            proposals,
            answers,
            call_seconds,
            delivery_seconds,
            rollouts,
            quarantined,
            outcomes,
            slippage_bps,
            markout_bps,
        })
    }

    /// One outcome as its strategy is told it: its end, or its markout.
    pub fn outcome(&self, told: &crate::execution::OutcomeFor) {
        use stratbox_host::wit::v0_2::FinalState;
        let o = &told.outcome;
        let strategy = [("strategy", told.strategy.clone())];
        if let Some(m) = &o.markout {
            self.markout_bps
                .get_or_create(&strategy)
                .observe(f64::from(m.bps));
            return;
        }
        let state = match o.state {
            FinalState::Simulated => "simulated",
            FinalState::Confirmed => "confirmed",
            FinalState::Rejected => "rejected",
            FinalState::Failed => "failed",
            FinalState::Expired => "expired",
        };
        self.outcomes
            .get_or_create(&[
                ("strategy", told.strategy.clone()),
                ("state", state.to_owned()),
                ("reason", o.reason_code.clone()),
            ])
            .inc();
        if matches!(o.state, FinalState::Simulated | FinalState::Confirmed) {
            self.slippage_bps
                .get_or_create(&strategy)
                .observe(f64::from(o.slippage_bps));
        }
    }

    /// Counts one event read from the bus, by kind.
    pub fn event(&self, kind: &'static str) {
        self.events
            .get_or_create(&[("kind", kind.to_owned())])
            .inc();
    }

    /// What a rollout (or a start-up) did with one strategy.
    pub fn rollout(&self, outcome: &Outcome) {
        let kind = match outcome.kind {
            OutcomeKind::Start => "start",
            OutcomeKind::Swap => "swap",
            OutcomeKind::Scale => "scale",
            OutcomeKind::Stop => "stop",
        };
        let result = if outcome.switched() {
            "switched"
        } else {
            "refused"
        };
        self.rollouts
            .get_or_create(&[
                ("strategy", outcome.name.clone()),
                ("kind", kind.to_owned()),
                ("result", result.to_owned()),
                ("reason", outcome.error_kind.to_owned()),
            ])
            .inc();
        // Only a strategy that runs nothing is quarantined: a refused swap or scale
        // leaves the running version running.
        let strategy = [("strategy", outcome.name.clone())];
        if !outcome.switched() && outcome.kind == OutcomeKind::Start {
            self.quarantined.get_or_create(&strategy).set(1);
        } else if outcome.switched() || outcome.kind == OutcomeKind::Stop {
            self.quarantined.get_or_create(&strategy).set(0);
        }
    }

    /// What the fleet did with one event.
    pub fn answered(&self, answers: &[Answer]) {
        for a in answers {
            let strategy = [("strategy", a.identity.strategy.clone())];
            self.calls.get_or_create(&strategy).inc();
            self.call_seconds
                .get_or_create(&strategy)
                .observe(a.elapsed.as_secs_f64());
            match &a.result {
                Ok(out) => {
                    self.fuel.get_or_create(&strategy).inc_by(out.fuel_used);
                }
                Err(e) => {
                    if let Some(fuel) = e.fuel_used() {
                        self.fuel.get_or_create(&strategy).inc_by(fuel);
                    }
                    self.errors
                        .get_or_create(&[
                            ("strategy", a.identity.strategy.clone()),
                            ("kind", e.kind().to_owned()),
                        ])
                        .inc();
                }
            }
        }
    }

    /// One delivery: proposals per strategy, the engine's answers, and how long it took.
    pub fn delivered<'a>(
        &self,
        strategies: impl IntoIterator<Item = &'a str>,
        results: &[ProposalResult],
        elapsed: Duration,
    ) {
        for s in strategies {
            self.proposals
                .get_or_create(&[("strategy", s.to_owned())])
                .inc();
        }
        for r in results {
            let state = TaskState::try_from(r.state)
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("TASK_STATE_")
                        .to_lowercase()
                })
                .unwrap_or_else(|_| "unknown".to_owned());
            self.answers.get_or_create(&[("state", state)]).inc();
        }
        self.delivery_seconds.observe(elapsed.as_secs_f64());
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The `kind` label of an event.
pub fn event_kind(event: &ChainEvent) -> &'static str {
    match &event.kind {
        Some(Kind::Swap(_)) => "swap",
        Some(Kind::Mint(_)) => "mint",
        Some(Kind::Burn(_)) => "burn",
        Some(Kind::NewBlock(_)) => "new_block",
        Some(Kind::Reorg(_)) => "reorg",
        #[allow(unreachable_patterns)]
        Some(_) => "other",
        None => "empty",
    }
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    metrics: Arc<HostMetrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Identity, RunOutput};
    use stratbox_host::CallError;

    fn answer(strategy: &str, result: Result<RunOutput, CallError>) -> Answer {
        Answer {
            identity: Identity {
                strategy: strategy.into(),
                version: "v".into(),
                instance_id: format!("{strategy}-0"),
                account: "book".into(),
            },
            result,
            elapsed: Duration::from_micros(5),
        }
    }

    fn outcome(kind: OutcomeKind, result: Result<crate::fleet::Switch, String>) -> Outcome {
        Outcome {
            name: "h".into(),
            version: "v".into(),
            revision: 0,
            kind,
            error_kind: if result.is_err() { "init" } else { "" },
            result,
            instances: 0,
            built: 0,
        }
    }

    #[test]
    fn a_strategy_refused_at_start_is_quarantined_until_it_runs() {
        let m = HostMetrics::new();
        m.rollout(&outcome(
            OutcomeKind::Start,
            Err("init failed: trap".into()),
        ));
        let text = m.render();
        for line in [
            r#"stratbox_host_strategy_quarantined{strategy="h"} 1"#,
            r#"stratbox_host_rollouts_total{strategy="h",kind="start",result="refused",reason="init"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // A refused swap leaves what runs running: no change to the gauge.
        m.rollout(&outcome(OutcomeKind::Swap, Err("init failed: trap".into())));
        assert!(
            m.render()
                .contains(r#"stratbox_host_strategy_quarantined{strategy="h"} 1"#)
        );
        m.rollout(&outcome(OutcomeKind::Start, Ok(Default::default())));
        let text = m.render();
        assert!(
            text.contains(r#"stratbox_host_strategy_quarantined{strategy="h"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"stratbox_host_rollouts_total{strategy="h",kind="start",result="switched",reason=""} 1"#),
            "{text}"
        );
    }

    #[test]
    fn the_fuel_of_a_call_stopped_at_its_deadline_is_counted() {
        let m = HostMetrics::new();
        m.answered(&[answer(
            "spinner",
            Err(CallError::Deadline {
                deadline_ms: 50,
                fuel_used: 777_000,
            }),
        )]);
        let text = m.render();
        assert!(
            text.contains(r#"stratbox_host_fuel_total{strategy="spinner"} 777000"#),
            "{text}"
        );
    }

    #[test]
    fn counts_calls_fuel_errors_and_answers_with_labels() {
        let m = HostMetrics::new();
        m.event("swap");
        m.answered(&[
            answer(
                "maker",
                Ok(RunOutput {
                    proposals: Vec::new(),
                    fuel_used: 1234,
                }),
            ),
            answer("hostile", Err(CallError::OutOfFuel { limit: 10 })),
        ]);
        m.delivered(
            ["maker", "maker"],
            &[
                ProposalResult {
                    state: TaskState::Simulated as i32,
                    ..Default::default()
                },
                ProposalResult {
                    state: TaskState::Rejected as i32,
                    ..Default::default()
                },
            ],
            Duration::from_millis(2),
        );
        let text = m.render();
        for line in [
            r#"stratbox_host_events_total{kind="swap"} 1"#,
            r#"stratbox_host_strategy_calls_total{strategy="maker"} 1"#,
            r#"stratbox_host_strategy_calls_total{strategy="hostile"} 1"#,
            r#"stratbox_host_fuel_total{strategy="maker"} 1234"#,
            r#"stratbox_host_strategy_errors_total{strategy="hostile",kind="out_of_fuel"} 1"#,
            r#"stratbox_host_proposals_total{strategy="maker"} 2"#,
            r#"stratbox_host_engine_answers_total{state="simulated"} 1"#,
            r#"stratbox_host_engine_answers_total{state="rejected"} 1"#,
            r#"stratbox_host_delivery_seconds_count 1"#,
            r#"stratbox_host_strategy_call_seconds_count{strategy="maker"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
