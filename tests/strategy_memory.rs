//! World 0.2.0 end to end, with processes: `stratbox engine` (SQLite, its registry) and
//! `stratbox host --watch-deployments` on a Redis stream run `momentum` built for 0.2.0 beside
//! `clamm-maker` (0.1.0). Momentum is told the outcome of every proposal (it counts them by
//! state in its memory, `outcomes:<state>`) and its fills' markouts. The test checks the
//! count the engine stores against the host's own count of outcomes told (the metric) across
//! a hot swap to a new version (the memory is kept, not restarted), a SIGKILL and restart of
//! the engine (what was stored is read back, and the host's changes go on being stored), and
//! a restart of the host (it loads the memory from the engine and counts on from there).

use std::sync::Arc;
use std::time::Duration;

use stratbox_bus::{Bus, RedisBus, RedisBusConfig, publish_event};
use stratbox_proto::v1;
use stratbox_proto::v1::registry_client::RegistryClient;
use stratbox_proto::v1::trading_engine_client::TradingEngineClient;
use tonic::transport::Channel;

use crate::support;
use support::{Proc, add_key, free_port, key_file, metric, redis_url, scrape, wait_for};

const STATES: [&str; 5] = ["simulated", "confirmed", "rejected", "failed", "expired"];

fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii key"),
    );
    r
}

/// Momentum's outcomes as its memory in the engine counts them, and every entry.
async fn stored(engine: &str, host_key: &str) -> Option<(u64, Vec<(String, Vec<u8>)>)> {
    let mut c = TradingEngineClient::connect(engine.to_owned()).await.ok()?;
    let m = c
        .get_strategy_memory(authed(
            host_key,
            v1::GetStrategyMemoryRequest {
                trace: None,
                strategy: "mom".into(),
            },
        ))
        .await
        .ok()?
        .into_inner();
    let entries: Vec<(String, Vec<u8>)> = m.entries.into_iter().map(|e| (e.key, e.value)).collect();
    let count = entries
        .iter()
        .filter(|(k, _)| STATES.iter().any(|s| *k == format!("outcomes:{s}")))
        .map(|(_, v)| u64::from_le_bytes(v.as_slice().try_into().expect("a u64")))
        .sum();
    Some((count, entries))
}

/// Outcomes (ends, not markouts) the host told momentum, by its metric.
fn told(metrics: &str) -> u64 {
    metric(
        &scrape(metrics),
        "stratbox_host_outcomes_total",
        "strategy=\"mom\"",
    )
}

fn engine_args<'a>(listen: &'a str, database: &'a str) -> Vec<&'a str> {
    vec![
        "engine",
        "--listen",
        listen,
        "--oracle-from-pool",
        // The default ("1h") does not parse (`--feed-max-age` takes ms, s or m): a defect of
        // the engine's flags left for their owner.
        "--feed-max-age",
        "60m",
        "--database",
        database,
    ]
}

fn host<'a>(url: &'a str, redis: &'a str, stream: &'a str, key: &'a str) -> Vec<&'a str> {
    vec![
        "host",
        "--engine",
        url,
        "--bus",
        redis,
        "--stream",
        stream,
        "--group",
        "hosts",
        "--consumer",
        "memory-host",
        "--workers",
        "2",
        "--watch-deployments",
        "--key-file",
        key,
        "--metrics-listen",
        "127.0.0.1:0",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn momentum_0_2_keeps_its_memory_across_a_hot_swap_and_restarts_beside_a_0_1_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", dir.path().join("engine.db").display());
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    let (engine_proc, _out) = Proc::spawn(&engine_args(&listen, &database), dir.path());
    let mut engine_proc = Some(engine_proc);
    let mut engine = wait_for("the engine", Duration::from_secs(60), async || {
        TradingEngineClient::connect(url.clone()).await.ok()
    })
    .await;
    let (pool, first_block) = support::first_market(&mut engine).await;
    let mut registry: RegistryClient<Channel> = RegistryClient::connect(url.clone())
        .await
        .expect("registry");

    let operator = add_key("operator", "memory-test", &database);
    let host_key = add_key("host-key", "memory-host", &database);
    let host_key_file = key_file(dir.path(), "memory-host", &host_key);
    let host_key_file = host_key_file.display().to_string();
    let mut versions = std::collections::BTreeMap::new();
    for (name, component) in [("mom", "momentum"), ("maker", "clamm-maker")] {
        let v = registry
            .upload_strategy(authed(
                &operator,
                v1::UploadStrategyRequest {
                    trace: None,
                    name: name.into(),
                    component: stratbox_strategies::bytes(component).expect("catalog"),
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("upload {component}: {e}"))
            .into_inner();
        assert_eq!(
            v.world,
            if name == "mom" {
                "stratbox:strategy/strategy@0.2.0"
            } else {
                "stratbox:strategy/strategy@0.1.0"
            }
        );
        versions.insert(name, v.version);
    }
    let momentum = |threshold: u32| {
        serde_json::json!({
            // One block back: the synthetic market's first swap of a block goes the other way
            // from the block before's (two back it goes the same way, which reads as flat).
            "pool": pool, "lookback_blocks": 1, "threshold_bps": threshold,
            "amount_in": "1000000000000000", "max_slippage_bps": 10000,
        })
        .to_string()
    };
    let deploy = |name: &str, config: String| v1::DeployRequest {
        trace: None,
        name: name.into(),
        version: versions[name].clone(),
        instances: 1,
        config_json: config,
    };
    registry
        .deploy(authed(&operator, deploy("mom", momentum(30))))
        .await
        .expect("deploy mom");
    registry
        .deploy(authed(
            &operator,
            deploy("maker", stratbox_strategies::clamm_maker_config(&pool)),
        ))
        .await
        .expect("deploy maker");

    let stream = format!("test:strategy_memory:{}", std::process::id());
    let bus: Arc<dyn Bus> = Arc::new(
        RedisBus::connect(RedisBusConfig::new(redis_url()))
            .await
            .expect("redis"),
    );
    let _ = bus.delete_stream(&stream).await;
    let redis = redis_url();
    let args = host(&url, &redis, &stream, &host_key_file);
    let (host_proc, _host_out) = Proc::spawn(&args, dir.path());
    let mut host_proc = Some(host_proc);
    let mut metrics = host_proc.as_ref().unwrap().metrics_address().await;

    let mut seq = 0u64;
    let publish = async |seq: &mut u64, n: u64| {
        for _ in 0..n {
            publish_event(
                bus.as_ref(),
                &stream,
                &support::swing_event("mem", *seq, first_block, &pool),
            )
            .await
            .expect("publish");
            *seq += 1;
        }
    };
    // Every event handled and acknowledged, the memory stored: the host is quiet.
    let settle = async |what: &str, metrics: &str, seq: u64| {
        wait_for(what, Duration::from_secs(180), async || {
            let handled = metric(&scrape(metrics), "stratbox_host_events_total", "kind=");
            let pending = bus.pending(&stream, "hosts").await.ok()?.total;
            (handled >= seq && pending == 0).then_some(())
        })
        .await;
    };

    // Version 1 runs until it has been told at least three outcomes.
    wait_for(
        "momentum's first outcomes",
        Duration::from_secs(300),
        async || {
            publish(&mut seq, 25).await;
            (told(&metrics) >= 3).then_some(())
        },
    )
    .await;
    settle("the first events", &metrics, seq).await;
    let before_swap = told(&metrics);
    let (count, entries) = stored(&url, &host_key).await.expect("memory");
    assert_eq!(count, before_swap, "stored {entries:?}");

    // Hot swap to version 2 (a new config): the memory goes on, not from zero.
    registry
        .deploy(authed(&operator, deploy("mom", momentum(31))))
        .await
        .expect("deploy mom v2");
    wait_for("the swap", Duration::from_secs(120), async || {
        let shown = registry
            .show_strategy(v1::ShowStrategyRequest { name: "mom".into() })
            .await
            .ok()?
            .into_inner();
        let current = shown.deployments.first()?;
        assert!(current.config_json.contains("31"), "{current:?}");
        shown
            .rollouts
            .iter()
            .any(|r| r.host == "memory-host" && r.revision == current.revision && r.switched)
            .then_some(())
    })
    .await;
    wait_for(
        "outcomes after the swap",
        Duration::from_secs(300),
        async || {
            publish(&mut seq, 25).await;
            (told(&metrics) > before_swap).then_some(())
        },
    )
    .await;
    settle("the events after the swap", &metrics, seq).await;
    let (count, _) = stored(&url, &host_key).await.expect("memory");
    assert_eq!(
        count,
        told(&metrics),
        "the stored count is every outcome told, before and after the swap"
    );

    // The engine is killed and started again on the same database and port.
    let before_kill = stored(&url, &host_key).await.expect("memory");
    drop(engine_proc.take());
    let (engine_proc2, _out2) = Proc::spawn(&engine_args(&listen, &database), dir.path());
    engine_proc = Some(engine_proc2);
    let after = wait_for(
        "the restarted engine",
        Duration::from_secs(60),
        async || stored(&url, &host_key).await,
    )
    .await;
    assert_eq!(
        after, before_kill,
        "what the engine stored survived the kill"
    );
    let at_restart = told(&metrics);
    wait_for(
        "outcomes after the restart",
        Duration::from_secs(300),
        async || {
            publish(&mut seq, 25).await;
            (told(&metrics) > at_restart).then_some(())
        },
    )
    .await;
    settle("the events after the restart", &metrics, seq).await;
    let (count, _) = stored(&url, &host_key).await.expect("memory");
    assert_eq!(count, told(&metrics), "the host's changes are stored again");

    // The host is restarted: it loads the memory from the engine and counts on from there.
    let told_by_first_host = told(&metrics);
    drop(host_proc.take());
    let (host2, _host_out2) = Proc::spawn(&args, dir.path());
    host_proc = Some(host2);
    metrics = host_proc.as_ref().unwrap().metrics_address().await;
    wait_for(
        "outcomes on the new host",
        Duration::from_secs(300),
        async || {
            publish(&mut seq, 25).await;
            (told(&metrics) > 0).then_some(())
        },
    )
    .await;
    // The new host's count of events starts at zero: settle on what is pending only.
    wait_for(
        "the new host to be quiet",
        Duration::from_secs(180),
        async || (bus.pending(&stream, "hosts").await.ok()?.total == 0).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (count, entries) = stored(&url, &host_key).await.expect("memory");
    assert_eq!(
        count,
        told_by_first_host + told(&metrics),
        "the new host counted on from the stored memory: {entries:?}"
    );

    // The 0.1.0 component ran beside it all along, and keeps no memory.
    let maker_tasks = engine
        .list_tasks(v1::ListTasksRequest {
            strategy: "maker".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("tasks")
        .into_inner()
        .tasks;
    assert!(!maker_tasks.is_empty(), "clamm-maker proposed nothing");
    let mut c = TradingEngineClient::connect(url.clone())
        .await
        .expect("engine");
    let maker_memory = c
        .get_strategy_memory(authed(
            &host_key,
            v1::GetStrategyMemoryRequest {
                trace: None,
                strategy: "maker".into(),
            },
        ))
        .await
        .expect("maker memory")
        .into_inner();
    assert!(maker_memory.entries.is_empty());
    // `stratbox strategy show` prints the execution quality the engine keeps: momentum's
    // tasks by state and its refusals by reason, as the engine holds them. (Its events do not
    // move this engine's watermark, so every proposal here is refused `stale_watermark`; the
    // fills' figures are checked where trades fill: engine_grpc, live_e2e, up_cli.)
    let show = |json: bool| {
        let mut cmd = support::stratbox();
        cmd.args(["strategy", "show", "mom", "--engine", &url]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("stratbox strategy show");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut by_state = std::collections::BTreeMap::<String, u64>::new();
    for t in support::all_tasks(&mut engine, "mom").await {
        let name = v1::TaskState::try_from(t.state)
            .expect("state")
            .as_str_name()
            .trim_start_matches("TASK_STATE_")
            .to_owned();
        *by_state.entry(name).or_default() += 1;
    }
    let shown = show(true);
    let v: serde_json::Value = serde_json::from_str(&shown).expect("show --json");
    let q = &v["execution"];
    let shown_states: std::collections::BTreeMap<String, u64> = q["states"]
        .as_array()
        .expect("states")
        .iter()
        .map(|s| {
            (
                s["state"].as_str().expect("state").to_owned(),
                s["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert!(!by_state.is_empty());
    assert_eq!(shown_states, by_state, "{shown}");
    let refused: u64 = q["refusals"]
        .as_array()
        .expect("refusals")
        .iter()
        .map(|r| r["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        refused,
        by_state.get("REJECTED").copied().unwrap_or(0),
        "{shown}"
    );
    let text = show(false);
    assert!(
        text.contains("execution quality:") && text.contains("REFUSED BY"),
        "{text}"
    );
    println!("{text}");
    let text = scrape(&metrics);
    println!(
        "momentum told {} outcomes in all; markouts measured by the second host: {}",
        count,
        metric(&text, "stratbox_host_markout_bps_count", "strategy=\"mom\"")
    );
    drop(host_proc);
    drop(engine_proc);
}
