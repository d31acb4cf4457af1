//! The pipeline end to end, against the real PostgreSQL and Redis of this machine: the
//! embedded revm chain (real Uniswap V3 bytecode) makes swaps, their events go over a Redis
//! stream to a host running real strategy components, whose proposals reach the engine over
//! gRPC and end SIMULATED with balanced ledger postings.
//!
//! Along the way the host is killed mid-stream and restarted under the same consumer name,
//! and the engine's gRPC server is stopped until the host has retried it several times:
//! every event must still be handled and acknowledged, and no proposal may become two tasks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use stratbox::market::Walk;
use stratbox_bus::{Bus, RedisBus, RedisBusConfig};
use stratbox_engine::{ChainState, Engine, EngineSettings, Store, server};
use stratbox_host::{HostConfig, HostRuntime, StrategyLimits};
use stratbox_host_service::{
    BusSeat, EngineLink, HostPlan, LocalStrategy, RetryPolicy, ServiceStats, assemble,
};
use stratbox_proto::v1;
use tokio::sync::watch;

use crate::support;
use support::{postgres_admin as postgres_base, redis_url, unique};

/// A database of its own, so runs never see each other's tasks.
fn fresh_database() -> String {
    let name = unique("stratbox_e2e");
    let status = std::process::Command::new("psql")
        .args([
            postgres_base().as_str(),
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .expect("psql runs");
    assert!(status.success(), "could not create database {name}");
    stratbox_testenv::postgres_database_url(&postgres_base(), &name)
}

struct Grpc {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

async fn serve(engine: &Engine, addr: SocketAddr) -> Grpc {
    let listener = server::bind(addr).await.expect("bind the engine's port");
    let (stop, mut rx) = watch::channel(false);
    let engine = engine.clone();
    let task = tokio::spawn(async move {
        server::serve_grpc(engine, listener, async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await
    });
    Grpc { stop, task }
}

impl Grpc {
    async fn shut(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn strategies() -> Vec<LocalStrategy> {
    let mut out = Vec::new();
    for (name, count) in [
        ("clamm-maker", 3usize),
        ("momentum", 2),
        ("clamm-narrow", 1),
    ] {
        // `clamm-narrow` is clamm-maker re-centring on almost every swap, so that the host
        // has proposals to deliver (and to hold during the engine outage) on most events.
        let file = if name == "clamm-narrow" {
            "clamm-maker"
        } else {
            name
        };
        let bytes = stratbox_strategies::bytes(file).expect("catalog component");
        let config = match name {
            "clamm-maker" => serde_json::json!({
                "pool": "{pool}", "half_width_ticks": 12000, "margin_ticks": 1200,
                "liquidity": "1000000000000000000", "max_slippage_bps": 100,
            })
            .to_string(),
            "clamm-narrow" => serde_json::json!({
                "pool": "{pool}", "half_width_ticks": 60, "margin_ticks": 0,
                "liquidity": "1000000000000000", "max_slippage_bps": 100,
            })
            .to_string(),
            _ => stratbox_strategies::momentum_config("{pool}"),
        };
        out.push(LocalStrategy {
            name: name.into(),
            bytes,
            config,
            instances: count,
        });
    }
    out
}

async fn start_host(
    engine_addr: SocketAddr,
    bus: Arc<dyn Bus>,
    seat: &BusSeat,
    runtime: &HostRuntime,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<ServiceStats>,
    watch::Sender<bool>,
) {
    let (stop_tx, stop) = watch::channel(false);
    let policy = RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(500),
        ..RetryPolicy::default()
    };
    let link = EngineLink::new(&format!("http://{engine_addr}"), policy).expect("engine link");
    let plan = HostPlan {
        seat: seat.clone(),
        runtime: runtime.clone(),
        limits: StrategyLimits::default(),
        strategies: strategies(),
        workers: 1,
        metrics: None,
    };
    let service = assemble::host(link, bus, plan, &stop)
        .await
        .expect("host assembles")
        .require_all()
        .expect("every strategy starts")
        .service;
    let stats = service.stats();
    let task = tokio::spawn(async move {
        service.run(stop).await.expect("host service");
    });
    (task, stats, stop_tx)
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_simulated_tasks_across_a_host_kill_and_an_engine_outage() {
    let database = fresh_database();
    let store = Store::connect(&database).await.expect("postgres store");
    // The market below publishes in bursts of 30 blocks, far faster than a chain would; the
    // Sync Sentinel would rightly refuse what the host proposes while it catches up, and
    // freshness is not what this test is about.
    let mut settings = EngineSettings::default();
    settings.risk.sentinel.max_lag_blocks = 1_000;
    let engine = Engine::start(
        store,
        ChainState::embedded().expect("embedded chain"),
        settings,
    )
    .await
    .expect("engine starts");
    let addr: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr")
    };
    let grpc = serve(&engine, addr).await;

    let bus: Arc<dyn Bus> = Arc::new(
        RedisBus::connect(RedisBusConfig::new(redis_url()))
            .await
            .expect("redis"),
    );
    let stream = unique("test:e2e:events");
    let seat = BusSeat {
        stream: stream.clone(),
        group: "hosts".into(),
        consumer: "host-1".into(),
        block: Duration::from_millis(50),
    };

    // 60 blocks of market: a swap and a block event each.
    let mut walk = Walk::new(11, &stream);
    let mut sent = walk.step(&engine, &bus).await.expect("first block") as u64;
    let runtime = HostRuntime::new(HostConfig::default()).expect("host runtime");
    let (host, stats, _stop) = start_host(addr, bus.clone(), &seat, &runtime).await;
    for _ in 1..30 {
        sent += walk.step(&engine, &bus).await.expect("market step") as u64;
    }
    wait_for(
        "the host to be under way",
        Duration::from_secs(60),
        async || stats.events.load(Relaxed) >= 20,
    )
    .await;

    // Take the engine away while the market goes on. The host keeps what it cannot deliver
    // and retries; nothing may be answered meanwhile.
    grpc.shut().await;
    let answered = || stats.simulated.load(Relaxed) + stats.rejected.load(Relaxed);
    // In the engine's place, a listener that counts the host's connection attempts and
    // hangs up on each: the outage lasts until the host has demonstrably retried, however
    // slow the machine, rather than for a guessed time.
    let attempts = Arc::new(AtomicUsize::new(0));
    let refuser = {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the engine's port while it is away");
        let attempts = attempts.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                attempts.fetch_add(1, SeqCst);
                drop(socket);
            }
        })
    };
    for _ in 0..30 {
        sent += walk
            .step(&engine, &bus)
            .await
            .expect("market step while the engine is away") as u64;
    }
    // A batch the engine answered as it shut down (graceful shutdown finishes requests in
    // flight) reaches the host's counters a moment after `shut` returns. The host handles
    // one event at a time and counts an answer before it delivers the next event's
    // proposals, so once it has tried to reconnect, every answer it got is counted.
    wait_for(
        "the host to try the engine after it stopped",
        Duration::from_secs(60),
        async || attempts.load(SeqCst) >= 1,
    )
    .await;
    let at_outage_start = answered();
    wait_for(
        "the host to retry while the engine is away",
        Duration::from_secs(60),
        async || attempts.load(SeqCst) >= 4,
    )
    .await;
    assert_eq!(
        answered() - at_outage_start,
        0,
        "proposals were answered while the engine was down"
    );
    refuser.abort();
    let _ = refuser.await;

    // Kill the host mid-stream, while it holds a batch it could not deliver: that batch is
    // never acknowledged by this run.
    host.abort();
    let _ = host.await;
    let published = bus.len(&stream).await.expect("stream length");
    assert_eq!(
        published, sent,
        "the stream holds what the market published"
    );
    assert!(
        published > 60,
        "a block event per block and some swaps, got {published}"
    );
    let unacked_at_kill = published - stats.acked.load(Relaxed);
    assert!(
        unacked_at_kill > 0,
        "the host had acknowledged everything before it was killed"
    );

    // The engine comes back; the host restarts under the same consumer name.
    let grpc = serve(&engine, addr).await;
    let (host, stats2, stop2) = start_host(addr, bus.clone(), &seat, &runtime).await;

    let total = bus.len(&stream).await.expect("stream length");
    wait_for(
        "every event to be acknowledged",
        Duration::from_secs(120),
        async || {
            bus.pending(&stream, "hosts")
                .await
                .map(|p| p.total == 0)
                .unwrap_or(false)
                && stats2.acked.load(Relaxed) + stats.acked.load(Relaxed) >= total
        },
    )
    .await;
    let _ = stop2.send(true);
    host.await.expect("host stops cleanly");

    // Every event acknowledged exactly by the two runs together (the killed run's
    // unacknowledged batch was acknowledged by the second).
    assert_eq!(
        stats.acked.load(Relaxed) + stats2.acked.load(Relaxed),
        total
    );
    assert!(
        stats2.proposals_sent.load(Relaxed) > 0,
        "the restarted host delivered nothing"
    );

    // No proposal became two tasks: one task per (instance, event, index).
    let mut seen: HashMap<(String, String, u32), String> = HashMap::new();
    let mut simulated = 0;
    let mut reasons: HashMap<String, u32> = HashMap::new();
    let mut page = String::new();
    loop {
        let (tasks, next) = engine
            .list_tasks("", None, 500, &page)
            .await
            .expect("list tasks");
        for t in tasks {
            let p = t.proposal.expect("task keeps its proposal");
            let key = (p.instance_id.clone(), p.event_id.clone(), p.index);
            if let Some(other) = seen.insert(key.clone(), t.task_id.clone()) {
                panic!("{key:?} became two tasks: {other} and {}", t.task_id);
            }
            if t.state == v1::TaskState::Simulated as i32 {
                simulated += 1;
            }
            *reasons.entry(t.reason_code.clone()).or_insert(0u32) += 1;
        }
        if next.is_empty() {
            break;
        }
        page = next;
    }
    assert!(
        simulated > 0,
        "no task reached SIMULATED; reasons {reasons:?}"
    );
    let postings = engine.check_ledger().await.expect("ledger balances");
    assert!(postings > 0, "no shadow fill was booked");

    grpc.shut().await;
    let _ = bus.delete_stream(&stream).await;
    drop(engine);
    drop_database(&database);
}

/// Best effort: a database left behind by a failed run holds evidence worth keeping.
fn drop_database(url: &str) {
    let Some(name) = url.rsplit('/').next() else {
        return;
    };
    let _ = std::process::Command::new("psql")
        .args([
            postgres_base().as_str(),
            "-qc",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ])
        .status();
}
