//! One strategy cannot stop the host: the real `stratbox host`, against a real `stratbox
//! engine` (SQLite) and a Redis stream, started with eleven hostile strategies beside a
//! healthy clamm-maker. Each hostile one misbehaves in `init`: prints, prints to stderr,
//! sleeps, panics, opens a UDP or TCP socket, spins, traps, exits with a code, returns an
//! error, allocates without bound.
//!
//! What must hold: the host starts (those that cannot start are quarantined, each reported
//! in its log and its metrics with its reason; the harmless ones run), handles every event,
//! and the clamm-maker's tasks in the engine are exactly those a host running it alone
//! makes from the same events on an engine of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stratbox_bus::{Bus, RedisBus, RedisBusConfig, publish_event};
use stratbox_proto::v1;
use stratbox_proto::v1::trading_engine_client::TradingEngineClient;
use tonic::transport::Channel;

use crate::support;
use support::{Proc, metric, redis_url, scrape, swing_event, unique, wait_for};

/// Twenty blocks of the swinging market: 80 swaps, each one a chance for clamm-maker to
/// move its position.
const EVENTS: u64 = 100;

/// A hostile `init` mode, and what the host must say about it: `None` when it starts and
/// runs (what it does is harmless off the async threads), else a piece of the reason it is
/// quarantined with (`a|b`: either piece).
const HOSTILES: [(&str, Option<&str>); 11] = [
    ("print-init", None),
    ("eprint-init", None),
    ("sleep-init", None),
    (
        "panic-init",
        Some(stratbox_strategies::HOSTILE_PANIC_MESSAGE),
    ),
    ("udp-init", Some("no UDP socket")),
    ("tcp-init", Some("no TCP socket")),
    // A spinning init meets its 1 s deadline or, on a loaded machine where the deadline's
    // ticker runs late, its fuel (under 3 s of a tight loop here): either limit stops it.
    (
        "spin-init",
        Some("deadline: the call was still running after 1000 ms|out of fuel"),
    ),
    ("trap-init", Some("unreachable")),
    ("exit-init", Some("exited with code 3")),
    ("fail-init", Some("refused on purpose")),
    ("grow-memory-init", Some("memory limit")),
];

fn maker_config(pool: &str) -> String {
    serde_json::json!({
        "pool": pool, "half_width_ticks": 60, "margin_ticks": 0,
        "liquidity": "1000000000000000", "max_slippage_bps": 100,
    })
    .to_string()
}

/// An engine of its own on a fresh SQLite file, with clamm-maker registered and a host key
/// (the path of its file is returned).
async fn engine(
    dir: &std::path::Path,
    name: &str,
) -> (
    Proc,
    String,
    TradingEngineClient<Channel>,
    std::path::PathBuf,
) {
    let database = format!("sqlite://{}", dir.join(format!("{name}.db")).display());
    let (proc_, stdout) = Proc::spawn(
        &[
            "engine",
            "--listen",
            "127.0.0.1:0",
            "--oracle-from-pool",
            "--database",
            &database,
        ],
        dir,
    );
    let url = format!("http://{}", support::listening_address(stdout));
    let client = TradingEngineClient::connect(url.clone())
        .await
        .expect("engine answers");
    let ops = support::add_key("operator", "ops", &database);
    support::upload(
        &url,
        &ops,
        "clamm-maker",
        std::path::Path::new(stratbox_strategies::CLAMM_MAKER),
    );
    let key = support::key_file(
        dir,
        &format!("{name}-host"),
        &support::add_key("host-key", &format!("{name}-host"), &database),
    );
    (proc_, url, client, key)
}

/// Every task of `strategy`, as what is compared between the runs: keyed by idempotency
/// key, the proposal, the state and the reason (not ids or times).
async fn tasks(
    engine: &mut TradingEngineClient<Channel>,
    strategy: &str,
) -> BTreeMap<String, (v1::Proposal, i32, String)> {
    let mut out = BTreeMap::new();
    for t in support::all_tasks(engine, strategy).await {
        let p = t.proposal.expect("a task keeps its proposal");
        out.insert(t.idempotency_key, (p, t.state, t.reason_code));
    }
    out
}

/// Runs a host with `strategies` (name, component, config) on `events` until it has
/// handled and acknowledged all of them; returns it (still running) with its metrics.
async fn run_host(
    dir: &std::path::Path,
    engine: &str,
    bus: &Arc<dyn Bus>,
    name: &str,
    key: &std::path::Path,
    strategies: &[(String, &str, String)],
    events: &[v1::ChainEvent],
) -> (Proc, String) {
    let stream = unique(&format!("test:host_startup:{name}"));
    let _ = bus.delete_stream(&stream).await;
    for e in events {
        publish_event(bus.as_ref(), &stream, e)
            .await
            .expect("publish");
    }
    let redis = redis_url();
    let mut args: Vec<String> = [
        "host",
        "--engine",
        engine,
        "--bus",
        &redis,
        "--stream",
        &stream,
        "--group",
        "hosts",
        "--consumer",
        name,
        "--metrics-listen",
        "127.0.0.1:0",
        // Fuel enough for `init` that the deadline stops the spinner and the memory limit
        // the allocator.
        "--limits",
        r#"{"fuel_init": 20000000000, "init_deadline_ms": 1000}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--key-file".into());
    args.push(key.display().to_string());
    for (strategy, component, config) in strategies {
        let file = dir.join(format!("{name}-{strategy}.json"));
        std::fs::write(&file, config).expect("write config");
        args.push("--strategy".into());
        args.push(format!("{strategy}={component}"));
        args.push("--strategy-config".into());
        args.push(format!("{strategy}={}", file.display()));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut host, _stdout) = Proc::spawn(&refs, dir);
    let addr = wait_for(
        "the host's metrics address",
        Duration::from_secs(180),
        async || {
            assert!(host.alive(), "the host exited:\n{}", host.tail());
            let line = host.find("metrics on http://")?;
            line.split("http://")
                .nth(1)?
                .split('/')
                .next()
                .map(str::to_owned)
        },
    )
    .await;
    let total = events.len() as u64;
    wait_for(
        "every event to be handled and acknowledged",
        Duration::from_secs(300),
        async || {
            assert!(host.alive(), "the host exited:\n{}", host.tail());
            let handled = metric(&scrape(&addr), "stratbox_host_events_total", "kind=");
            let pending = bus.pending(&stream, "hosts").await.ok()?.total;
            (handled >= total && pending == 0).then_some(())
        },
    )
    .await;
    let _ = bus.delete_stream(&stream).await;
    (host, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_eleven_hostile_strategies_runs_its_healthy_one_as_if_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus: Arc<dyn Bus> = Arc::new(
        RedisBus::connect(RedisBusConfig::new(redis_url()))
            .await
            .expect("Redis is reachable (STRATBOX_TEST_REDIS)"),
    );
    let (_solo_engine, solo_url, mut solo, solo_key) = engine(dir.path(), "solo").await;
    let (_mixed_engine, mixed_url, mut mixed, mixed_key) = engine(dir.path(), "mixed").await;
    let (pool, first_block) = support::first_market(&mut solo).await;
    let events: Vec<v1::ChainEvent> = (0..EVENTS)
        .map(|seq| swing_event("hs-start", seq, first_block, &pool))
        .collect();
    let maker = (
        "clamm-maker".to_owned(),
        stratbox_strategies::CLAMM_MAKER,
        maker_config(&pool),
    );

    // Alone.
    let (_solo_host, _) = run_host(
        dir.path(),
        &solo_url,
        &bus,
        "solo",
        &solo_key,
        std::slice::from_ref(&maker),
        &events,
    )
    .await;
    let alone = tasks(&mut solo, "clamm-maker").await;
    assert!(
        alone.len() >= 10,
        "the swinging market must make clamm-maker propose often, got {} tasks",
        alone.len()
    );

    // Beside eleven hostile strategies.
    let mut strategies = vec![maker];
    for (mode, _) in HOSTILES {
        strategies.push((
            format!("h-{mode}"),
            stratbox_strategies::HOSTILE,
            stratbox_strategies::hostile_config(mode),
        ));
    }
    let (mut host, addr) = run_host(
        dir.path(),
        &mixed_url,
        &bus,
        "mixed",
        &mixed_key,
        &strategies,
        &events,
    )
    .await;
    let beside = tasks(&mut mixed, "clamm-maker").await;
    assert_eq!(
        beside, alone,
        "clamm-maker's tasks beside the hostiles differ from its tasks alone"
    );

    // The host kept running, and says what it did with each hostile strategy.
    assert!(host.alive(), "the host exited:\n{}", host.tail());
    assert!(
        host.find("Cannot start a runtime").is_none(),
        "{}",
        host.tail()
    );
    let text = scrape(&addr);
    for (mode, reason) in HOSTILES {
        let name = format!("h-{mode}");
        let label = format!("strategy=\"{name}\"");
        let quarantined = metric(&text, "stratbox_host_strategy_quarantined", &label);
        let calls = metric(&text, "stratbox_host_strategy_calls_total", &label);
        match reason {
            None => {
                let line = host
                    .find(&format!("strategy {name} started"))
                    .unwrap_or_else(|| panic!("{name} did not start:\n{}", host.tail()));
                assert!(line.contains("1 instances"), "{line}");
                assert_eq!(quarantined, 0, "{name}\n{text}");
                assert_eq!(calls, EVENTS, "{name} runs beside the others\n{text}");
            }
            Some(reason) => {
                let line = host
                    .find(&format!("strategy {name} quarantined"))
                    .unwrap_or_else(|| panic!("{name} not reported:\n{}", host.tail()));
                assert!(line.contains("(init)"), "{line}");
                assert!(
                    reason.split('|').any(|r| line.contains(r)),
                    "{name}: {line}"
                );
                assert_eq!(quarantined, 1, "{name}\n{text}");
                let refused = format!(
                    "stratbox_host_rollouts_total{{strategy=\"{name}\",kind=\"start\",result=\"refused\",reason=\"init\"}} 1"
                );
                assert!(text.contains(&refused), "missing {refused:?} in\n{text}");
                assert_eq!(calls, 0, "{name} is not run\n{text}");
            }
        }
    }
    assert_eq!(
        metric(
            &text,
            "stratbox_host_strategy_calls_total",
            "strategy=\"clamm-maker\""
        ),
        EVENTS
    );
    assert!(host.alive(), "the host exited:\n{}", host.tail());
}
