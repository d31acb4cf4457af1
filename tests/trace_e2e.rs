//! One trace id, end to end: the id a chain event is born with when it is published is the
//! id in the host's log lines, in the engine's log lines and in the task row the engine
//! stores for the proposal the event led to.
//!
//! Real components throughout: the embedded revm chain's market publishes on the in-process
//! bus, a host runs a real strategy component and delivers over gRPC to a real engine that
//! stores its tasks in this machine's PostgreSQL. Log lines are captured as JSON from the one
//! subscriber of this test binary, so both zones' lines land in one buffer.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use stratbox::market::Walk;
use stratbox_bus::{Bus, MemoryBus, StartId, decode_event};
use stratbox_engine::{ChainState, Engine, EngineSettings, Store, server};
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_host_service::{
    BusSeat, EngineLink, Handled, HostPlan, LocalStrategy, RetryPolicy, assemble,
};
use tokio::sync::{mpsc, watch};

use crate::support;
use support::{postgres_admin, unique};

/// Where the test's subscriber writes: one buffer every thread appends to.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Every captured line, parsed.
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
            .collect()
    }
}

/// The trace id a JSON log line carries: its own `trace_id` field or that of a span it is in.
fn trace_of(line: &serde_json::Value) -> Option<&str> {
    if let Some(t) = line["fields"]["trace_id"].as_str() {
        return Some(t);
    }
    line["spans"]
        .as_array()?
        .iter()
        .rev()
        .find_map(|s| s["trace_id"].as_str())
}

/// A database of its own, so runs never see each other's tasks.
fn fresh_database() -> (String, String) {
    let name = unique("stratbox_trace");
    let status = std::process::Command::new("psql")
        .args([
            postgres_admin().as_str(),
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .expect("psql runs");
    assert!(status.success(), "could not create database {name}");
    let base = postgres_admin();
    let root = base
        .rsplit_once('/')
        .map(|(r, _)| r.to_owned())
        .unwrap_or(base);
    (format!("{root}/{name}"), name)
}

fn drop_database(name: &str) {
    let _ = std::process::Command::new("psql")
        .args([
            postgres_admin().as_str(),
            "-qc",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_born_with_a_chain_event_is_the_id_of_its_logs_and_its_task() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "stratbox_host_service=debug,stratbox_engine=debug",
        ))
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this test binary");

    let (database, db_name) = fresh_database();
    let store = Store::connect(&database).await.expect("postgres store");
    let mut settings = EngineSettings::default();
    // The market publishes a block per step, as fast as the test goes; freshness is not
    // what this test is about.
    settings.risk.sentinel.max_lag_blocks = 1_000;
    let engine = Engine::start(
        store.clone(),
        ChainState::embedded().expect("embedded chain"),
        settings,
    )
    .await
    .expect("engine starts");
    let listener = server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind the engine's port");
    let addr: SocketAddr = listener.local_addr().expect("engine's address");
    let (stop_grpc, mut grpc_stopped) = watch::channel(false);
    let grpc = tokio::spawn(server::serve_grpc(engine.clone(), listener, async move {
        let _ = grpc_stopped.wait_for(|s| *s).await;
    }));

    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let stream = "test:trace:events".to_owned();
    let mut walk = Walk::new(5, &stream);
    // The first block before the host starts: it learns its pool from the engine's markets.
    let mut published = walk.step(&engine, &bus).await.expect("first block");

    let (stop_host, stop) = watch::channel(false);
    let link =
        EngineLink::new(&format!("http://{addr}"), RetryPolicy::default()).expect("engine link");
    let plan = HostPlan {
        seat: BusSeat {
            stream: stream.clone(),
            group: "hosts".into(),
            consumer: "host-1".into(),
            block: Duration::from_millis(50),
        },
        runtime: HostRuntime::new(HostConfig::default()).expect("host runtime"),
        limits: StrategyLimits::default(),
        // clamm-maker with a narrow band re-centres on almost every swap: proposals to follow.
        strategies: vec![LocalStrategy {
            name: "clamm-narrow".into(),
            bytes: stratbox_strategies::bytes("clamm-maker").expect("catalog component"),
            config: serde_json::json!({
                "pool": "{pool}", "half_width_ticks": 60, "margin_ticks": 0,
                "liquidity": "1000000000000000", "max_slippage_bps": 100,
            })
            .to_string(),
            instances: 1,
        }],
        workers: 1,
        metrics: None,
    };
    let mut service = assemble::host(link, bus.clone(), plan, &stop)
        .await
        .expect("host assembles")
        .require_all()
        .expect("the strategy starts")
        .service;
    let (handled_tx, mut handled_rx) = mpsc::unbounded_channel::<Handled>();
    service.report_to(handled_tx);
    let host = tokio::spawn(async move { service.run(stop).await });

    // Walk the market until the host has delivered proposals for some event; every event
    // published so far is then handled (the engine answered before the host reports).
    let mut handled = 0;
    let mut with_proposals: Vec<String> = Vec::new();
    let mut blocks = 1;
    loop {
        while handled < published {
            let h = tokio::time::timeout(Duration::from_secs(60), handled_rx.recv())
                .await
                .expect("the host handles each published event")
                .expect("the host is running");
            handled += 1;
            if h.proposals > 0 {
                with_proposals.push(h.event_id);
            }
        }
        if !with_proposals.is_empty() {
            break;
        }
        assert!(blocks < 40, "no proposal in {blocks} blocks");
        published += walk.step(&engine, &bus).await.expect("market step");
        blocks += 1;
    }

    // The trace id each event was born with, as it went over the bus.
    bus.ensure_group(&stream, "audit", StartId::Beginning)
        .await
        .expect("audit group");
    let deliveries = bus
        .read_group(&stream, "audit", "auditor", 10_000, Duration::ZERO)
        .await
        .expect("read the stream");
    assert_eq!(deliveries.len(), published);
    let born: HashMap<String, String> = deliveries
        .iter()
        .map(|d| {
            let e = decode_event(d).expect("a chain event").event;
            let trace = e.trace.expect("every event is born with a trace").trace_id;
            assert_eq!(trace.len(), 32, "a W3C trace id: {trace}");
            assert!(stratbox_proto::trace::is_usable(&trace), "{trace}");
            (e.event_id, trace)
        })
        .collect();
    let distinct: HashSet<&String> = born.values().collect();
    assert_eq!(
        distinct.len(),
        born.len(),
        "each event has its own trace id"
    );

    // The task rows, as the engine stored them: each carries its event's trace id exactly.
    let (tasks, _) = engine
        .list_tasks("", None, 1_000, "")
        .await
        .expect("list tasks");
    assert!(!tasks.is_empty(), "no task was stored");
    let rows: HashMap<String, String> = sqlx::query("SELECT task_id, trace_id FROM trade_tasks")
        .fetch_all(store.pool())
        .await
        .expect("read trade_tasks")
        .iter()
        .map(|r| {
            (
                r.try_get("task_id").expect("task_id"),
                r.try_get("trace_id").expect("trace_id"),
            )
        })
        .collect();
    assert_eq!(rows.len(), tasks.len());
    let mut traced_tasks = Vec::new();
    for task in &tasks {
        let event_id = &task
            .proposal
            .as_ref()
            .expect("task keeps its proposal")
            .event_id;
        let expected = born
            .get(event_id)
            .unwrap_or_else(|| panic!("task {} names unknown event {event_id}", task.task_id));
        assert_eq!(
            rows.get(&task.task_id),
            Some(expected),
            "task {}'s row",
            task.task_id
        );
        assert_eq!(&task.trace_id, expected);
        traced_tasks.push((event_id.clone(), expected.clone()));
    }
    for event_id in &with_proposals {
        assert!(
            traced_tasks.iter().any(|(e, _)| e == event_id),
            "event {event_id}'s proposals left no task"
        );
    }

    // Both zones' log lines about such an event carry the same id, and no line of either
    // zone carries an id the event was not born with.
    let _ = stop_host.send(true);
    host.await.expect("host task").expect("host stops cleanly");
    let lines = captured.lines();
    let zone = |line: &serde_json::Value, prefix: &str| {
        line["target"]
            .as_str()
            .is_some_and(|t| t.starts_with(prefix))
    };
    for (event_id, trace) in &traced_tasks {
        let of_trace: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| trace_of(l) == Some(trace.as_str()))
            .collect();
        let host_line = of_trace
            .iter()
            .find(|l| zone(l, "stratbox_host_service"))
            .unwrap_or_else(|| panic!("no host line carries {trace} (event {event_id})"));
        let in_event_span = host_line["spans"].as_array().is_some_and(|spans| {
            spans.iter().any(|s| {
                s["name"] == "event"
                    && s["trace_id"] == trace.as_str()
                    && s["event_id"] == event_id.as_str()
            })
        });
        assert!(
            in_event_span,
            "the host's line is not in the event's span: {host_line}"
        );
        assert!(
            of_trace.iter().any(|l| zone(l, "stratbox_engine")),
            "no engine line carries {trace} (event {event_id})"
        );
    }
    // Nothing about an event is logged under another id: no line in a host's event span or
    // in the engine's submit span carries an id no event was born with, and the engine
    // replaced no id it was sent.
    let known: HashSet<&str> = born.values().map(String::as_str).collect();
    let in_span = |line: &serde_json::Value, name: &str| {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["name"] == name))
    };
    let mut checked = 0;
    for line in &lines {
        assert_ne!(
            line["fields"]["message"], "unusable trace id replaced",
            "the engine replaced a trace id: {line}"
        );
        if (zone(line, "stratbox_host_service") && in_span(line, "event"))
            || (zone(line, "stratbox_engine") && in_span(line, "submit"))
        {
            let t = trace_of(line).unwrap_or_default();
            assert!(known.contains(t), "a line with an unborn trace id: {line}");
            checked += 1;
        }
    }
    assert!(checked >= 2 * traced_tasks.len(), "{checked} lines checked");

    let _ = stop_grpc.send(true);
    let _ = grpc.await;
    drop(engine);
    drop(store);
    drop_database(&db_name);
}
