//! The engine restarted five times against a real chain while two hosts send it proposals.
//!
//! `stratbox engine --chain <anvil> --bus <redis> --feed-checkpoint F` follows Anvil: every
//! block it forks the node afresh, and simulations read what the fork has not cached from
//! the node. An engine that held a lock while it waited on such a read, with its async
//! workers queued behind that lock, hung for good within seconds of a restart under load
//! (no gRPC, no `/metrics`, SIGINT ignored). Here, each round the engine is stopped (SIGINT
//! in even rounds, SIGKILL in odd ones) while the market moves and two hosts (keyed,
//! running registered strategies deployed through the registry) keep proposing; it must
//! answer `grpc.health.v1` and decide new proposals within seconds of every restart, stop
//! on SIGINT, and never refuse a proposal because the state it simulated on changed under
//! it (`sim_reverted: account … is not prepared`).

use std::process::Stdio;
use std::time::Duration;

use stratbox::market::anvil::AnvilMarket;
use stratbox_engine::{Store, TaskState};
use stratbox_proto::v1;

use crate::support;
use support::{
    Process, add_key, component, free_port, key_file, redis_url, stratbox, unique, upload,
    wait_until,
};

const ROUNDS: usize = 5;
/// "Within seconds": an engine that hangs never gets there; one that works takes ~1-3 s.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

/// Tasks now, and the newest task's creation time (ms).
async fn tasks(store: &Store) -> (i64, i64) {
    let n: i64 = store
        .count_tasks()
        .await
        .expect("count tasks")
        .iter()
        .map(|(_, n)| n)
        .sum();
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(created_at_ms) FROM trade_tasks")
        .fetch_one(store.pool())
        .await
        .expect("newest task");
    (n, newest.unwrap_or(0))
}

fn healthy(engine: &str) -> bool {
    stratbox()
        .args(["health", "--engine", engine, "--timeout", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_restarts_under_load_against_anvil_and_answers_every_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut market = AnvilMarket::start(11).await.expect("anvil with the pool");
    let pool = format!("{:#x}", market.pool());
    let endpoint = market.endpoint();
    let database = format!("sqlite://{}/engine.db", dir.path().display());
    let stream = unique("test:engine_restart:events");
    let port = free_port();
    let engine_url = format!("http://127.0.0.1:{port}");
    let checkpoint = dir.path().join("feed.checkpoint");

    let ops = add_key("operator", "ops", &database);
    let host_keys = [
        key_file(dir.path(), "h1", &add_key("host-key", "h1", &database)),
        key_file(dir.path(), "h2", &add_key("host-key", "h2", &database)),
    ];
    let spawn_engine = |round: usize| {
        Process::spawn(
            "engine",
            stratbox()
                .current_dir(dir.path())
                .env("RUST_LOG", "warn,stratbox_engine=info")
                .args(["engine", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--database", &database])
                .args(["--chain", &endpoint, "--pool", &pool])
                .args(["--bus", &redis_url(), "--stream", &stream])
                .arg("--feed-checkpoint")
                .arg(&checkpoint)
                .args(["--feed-poll-interval", "50ms", "--oracle-from-pool"])
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(dir.path().join(format!("engine-{round}.log")))
                        .expect("engine log"),
                ),
        )
    };
    let mut engine = spawn_engine(0);
    wait_until("the engine's first health", RECOVERY_LIMIT, async || {
        healthy(&engine_url)
    })
    .await;

    // Registered strategies, two keyed hosts following the registry.
    for name in ["clamm-maker", "momentum"] {
        upload(&engine_url, &ops, name, &component(dir.path(), name));
    }
    let mut hosts: Vec<Process> = host_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            Process::spawn(
                "host",
                stratbox()
                    .current_dir(dir.path())
                    .env("RUST_LOG", "warn")
                    .args(["host", "--engine", &engine_url, "--watch-deployments"])
                    .args(["--bus", &redis_url(), "--stream", &stream])
                    .args(["--group", "hosts", "--consumer", &format!("h{}", i + 1)])
                    .arg("--key-file")
                    .arg(key)
                    .stdout(Stdio::null())
                    .stderr(
                        std::fs::File::create(dir.path().join(format!("host-{i}.log")))
                            .expect("host log"),
                    ),
            )
        })
        .collect();
    let maker = dir.path().join("maker.json");
    std::fs::write(
        &maker,
        serde_json::json!({
            "pool": "{pool}", "half_width_ticks": 60, "margin_ticks": 0,
            "liquidity": "1000000000000000", "max_slippage_bps": 100,
        })
        .to_string(),
    )
    .expect("maker config");
    let momentum = dir.path().join("momentum.json");
    // A low threshold: momentum trades on most moves of the walk.
    std::fs::write(
        &momentum,
        serde_json::json!({
            "pool": "{pool}", "lookback_blocks": 5, "threshold_bps": 1,
            "amount_in": "100000000000000000", "max_slippage_bps": 100,
        })
        .to_string(),
    )
    .expect("momentum config");
    for (name, config) in [("clamm-maker", &maker), ("momentum", &momentum)] {
        // Waits for both hosts to report the rollout, and fails if either refused it.
        let out = stratbox()
            .env("STRATBOX_API_KEY", &ops)
            .args(["strategy", "deploy", name, "--instances", "3", "--config"])
            .arg(config)
            .args(["--engine", &engine_url, "--timeout", "120s"])
            .output()
            .expect("stratbox runs");
        assert!(
            out.status.success(),
            "deploying {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The market moves on its own: a swap every 150 ms.
    let (stop_market, mut market_stopped) = tokio::sync::watch::channel(false);
    let driver = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(150)) => {}
                _ = market_stopped.wait_for(|s| *s) => break,
            }
            if let Err(e) = market.step().await {
                eprintln!("market step: {e}");
            }
        }
        market
    });

    let store = Store::connect(&database).await.expect("read the database");
    for round in 0..ROUNDS {
        // Proposals are flowing before the engine is stopped.
        let (before, _) = tasks(&store).await;
        wait_until(
            "new tasks before stopping the engine",
            Duration::from_secs(120),
            async || tasks(&store).await.0 > before,
        )
        .await;
        if round % 2 == 0 {
            assert!(
                engine.interrupt(),
                "round {round}: the engine did not stop on SIGINT (see engine-{round}.log)"
            );
        } else {
            engine.kill();
        }
        let restarted_ms = stratbox_engine::store::now_ms();
        engine = spawn_engine(round + 1);
        wait_until(
            &format!("round {round}: the engine's health after a restart"),
            RECOVERY_LIMIT,
            async || healthy(&engine_url),
        )
        .await;
        wait_until(
            &format!("round {round}: a proposal decided after a restart"),
            RECOVERY_LIMIT,
            async || tasks(&store).await.1 > restarted_ms,
        )
        .await;
    }

    let _ = stop_market.send(true);
    let market = driver.await.expect("market driver");
    for h in &mut hosts {
        assert!(h.interrupt(), "a host exits 0 on SIGINT");
    }
    assert!(engine.interrupt(), "the engine exits 0 on SIGINT");

    let mut all: Vec<v1::Task> = Vec::new();
    for state in [
        TaskState::Simulated,
        TaskState::Rejected,
        TaskState::Expired,
    ] {
        let rows = store.tasks_in_state(state).await.expect("tasks");
        all.extend(rows.into_iter().map(stratbox_engine::engine::task_to_wire));
    }
    let simulated = all
        .iter()
        .filter(|t| t.state == v1::TaskState::Simulated as i32)
        .count();
    assert!(simulated > 0, "no SIMULATED task in {} tasks", all.len());
    let raced: Vec<&v1::Task> = all
        .iter()
        .filter(|t| t.reason_code == "sim_reverted" || t.detail.contains("not prepared"))
        .collect();
    assert!(
        raced.is_empty(),
        "{} proposals refused because the state changed under their simulation, e.g. {:?}",
        raced.len(),
        raced.first().map(|t| (&t.reason_code, &t.detail))
    );
    store.close().await;
    drop(market);
}
