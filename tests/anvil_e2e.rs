//! The zones as separate processes against a real chain: a real Anvil (npm package) with
//! the real Uniswap V3 pool, the real Redis and PostgreSQL of this machine.
//!
//! `stratbox engine --chain <anvil> --pool <pool> --bus redis://…` follows the node and
//! publishes its pool events; `stratbox host` runs clamm-maker instances on them and sends
//! their proposals to the engine over gRPC. Swaps made on Anvil must become events on the
//! stream (stamped with their block), proposals, and SIMULATED tasks with balanced ledger
//! entries; the host's `/metrics` must count what it did; and one event's trace id must
//! appear in the JSON logs of both processes.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use stratbox::market::anvil::AnvilMarket;
use stratbox_bus::{Bus, RedisBus, RedisBusConfig, StartId, decode_event};
use stratbox_proto::v1::chain_event::Kind;

use crate::support;
use support::{
    Process, add_key, component, free_port, http_get, key_file, postgres_admin, psql, redis_url,
    stratbox, unique, upload, wait_until,
};

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The trace ids of a JSON log file's lines whose message is `message`.
fn traces_of(log: &Path, message: &str) -> HashSet<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .filter_map(|v| {
            v["span"]["trace_id"]
                .as_str()
                .or_else(|| v["trace_id"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_swaps_become_simulated_tasks_across_separate_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut market = AnvilMarket::start(3).await.expect("anvil with the pool");
    let pool = format!("{:#x}", market.pool());

    let database_name = unique("stratbox_anvil_e2e");
    let admin = postgres_admin();
    stratbox_engine::store::create_postgres_database(&admin, &database_name)
        .await
        .expect("create the test database");
    let database = stratbox_engine::store::with_database(&admin, &database_name);
    let stream = unique("test:anvil_e2e:events");
    let bus = RedisBus::connect(RedisBusConfig::new(redis_url()))
        .await
        .expect("redis");
    // A reader of our own, from the start of the stream, to see what the engine published.
    bus.ensure_group(&stream, "check", StartId::Beginning)
        .await
        .expect("check group");

    // Zone B.
    let engine_log = dir.path().join("engine.jsonl");
    let mut engine = Process::spawn(
        "engine",
        stratbox()
            .current_dir(dir.path())
            .env("RUST_LOG", "warn,stratbox_feed=debug,stratbox_engine=info")
            .args(["--log-format", "json", "engine", "--listen", "127.0.0.1:0"])
            .args(["--database", &database])
            .args(["--chain", &market.endpoint(), "--pool", &pool])
            .args(["--bus", &redis_url(), "--stream", &stream])
            .args(["--feed-poll-interval", "50ms", "--oracle-from-pool"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&engine_log).expect("engine log")),
    );
    let stdout = engine
        .child
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("engine stdout");
    let engine_addr = support::listening_address(stdout);

    // The operator admits the component the host will run, and gives the host its key:
    // the engine takes proposals only from registered strategies and keyed hosts.
    let wasm = component(dir.path(), "clamm-maker");
    let ops = add_key("operator", "ops", &database);
    upload(&format!("http://{engine_addr}"), &ops, "clamm-maker", &wasm);
    let host_key = key_file(
        dir.path(),
        "host-e2e",
        &add_key("host-key", "host-e2e", &database),
    );

    // Zone A.
    // A narrow band re-centres on almost every swap: proposals on most events.
    let config = serde_json::json!({
        "pool": "{pool}", "half_width_ticks": 60, "margin_ticks": 0,
        "liquidity": "1000000000000000", "max_slippage_bps": 100,
    })
    .to_string();
    let metrics_port = free_port();
    let host_log = dir.path().join("host.jsonl");
    let mut host = Process::spawn(
        "host",
        stratbox()
            .current_dir(dir.path())
            .env("RUST_LOG", "warn,stratbox_host_service=debug")
            .args(["--log-format", "json", "host"])
            .args(["--engine", &format!("http://{engine_addr}")])
            .args(["--bus", &redis_url(), "--stream", &stream])
            .args(["--group", "hosts", "--consumer", "host-e2e"])
            .arg("--key-file")
            .arg(&host_key)
            .args(["--strategy", &format!("clamm-maker={}", wasm.display())])
            .args(["--instances", "3", "--config", &config])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&host_log).expect("host log")),
    );
    wait_until(
        "the host's metrics endpoint",
        Duration::from_secs(60),
        async || http_get(metrics_port, "/metrics").is_some(),
    )
    .await;

    // Swaps on the chain, a block each, one after the other as a chain makes them: the next
    // swap waits until the engine has followed the node to the last one and published it.
    let mut receipts = Vec::new();
    for i in 0..12 {
        let before = bus.len(&stream).await.expect("stream length");
        receipts.push(market.step().await.expect("swap on anvil"));
        wait_until(
            &format!("the engine to publish swap {i}"),
            Duration::from_secs(60),
            async || bus.len(&stream).await.is_ok_and(|n| n > before),
        )
        .await;
    }
    let last_block = market.block_number().await.expect("head");

    // Every swap is on the stream, stamped with its own block.
    let mut events = Vec::new();
    wait_until(
        "the engine to publish up to the last block",
        Duration::from_secs(60),
        async || {
            loop {
                let got = bus
                    .read_group(&stream, "check", "t", 500, Duration::ZERO)
                    .await
                    .expect("read the stream");
                if got.is_empty() {
                    break;
                }
                let ids: Vec<_> = got.iter().map(|d| d.id).collect();
                events.extend(got.iter().map(|d| decode_event(d).expect("event").event));
                bus.ack(&stream, "check", &ids).await.expect("ack");
            }
            events
                .iter()
                .any(|e| matches!(&e.kind, Some(Kind::NewBlock(b)) if b.number == last_block))
        },
    )
    .await;
    let swaps: HashMap<String, u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Swap(s)) => {
                let origin = s.origin.as_ref().expect("origin");
                assert_eq!(e.last_sync_block, origin.block, "stamped with its block");
                Some((origin.tx_hash.clone(), origin.block))
            }
            _ => None,
        })
        .collect();
    for r in &receipts {
        let hash = format!("{:#x}", r.transaction_hash);
        assert_eq!(
            swaps.get(&hash),
            r.block_number.as_ref(),
            "swap {hash} is not on the stream with its block"
        );
    }
    let event_traces: HashSet<String> = events
        .iter()
        .filter_map(|e| e.trace.as_ref().map(|t| t.trace_id.clone()))
        .collect();

    let blocks_published = events
        .iter()
        .filter(|e| matches!(e.kind, Some(Kind::NewBlock(_))))
        .count() as f64;

    // The host handles every event: nothing pending in its group.
    wait_until(
        "the host to acknowledge every event",
        Duration::from_secs(120),
        async || {
            bus.pending(&stream, "hosts")
                .await
                .map(|p| p.total == 0)
                .unwrap_or(false)
                && bus
                    .len(&stream)
                    .await
                    .is_ok_and(|n| n >= events.len() as u64)
                && http_get(metrics_port, "/metrics")
                    .and_then(|m| sample(&m, r#"stratbox_host_events_total{kind="new_block"}"#))
                    .is_some_and(|n| n >= blocks_published)
        },
    )
    .await;

    // Tasks and the ledger in PostgreSQL.
    let by_state: HashMap<String, i64> = psql(
        &database,
        "SELECT state, count(*) FROM trade_tasks GROUP BY state",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().expect("count")))
    .collect();
    let simulated = by_state.get("SIMULATED").copied().unwrap_or(0);
    assert!(
        simulated > 0,
        "no SIMULATED task; tasks by state {by_state:?}"
    );
    let tasks: i64 = by_state.values().sum();
    let keys = psql(
        &database,
        "SELECT count(DISTINCT idempotency_key) FROM trade_tasks",
    );
    assert_eq!(keys[0][0].parse::<i64>().expect("count"), tasks);
    // Every task came from an event the engine published (its trace id).
    let task_traces: HashSet<String> = psql(&database, "SELECT DISTINCT trace_id FROM trade_tasks")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(
        task_traces.is_subset(&event_traces),
        "tasks with trace ids no event carried: {:?}",
        task_traces.difference(&event_traces).collect::<Vec<_>>()
    );
    // Shadow mode books every SIMULATED task, and nothing else.
    let booked = psql(
        &database,
        "SELECT count(DISTINCT e.task_id), count(*), count(DISTINCT e.posting_id) \
         FROM ledger_entries e JOIN trade_tasks t ON t.task_id = e.task_id \
         WHERE t.state = 'SIMULATED'",
    );
    let (booked_tasks, entries, postings): (i64, i64, i64) = (
        booked[0][0].parse().expect("count"),
        booked[0][1].parse().expect("count"),
        booked[0][2].parse().expect("count"),
    );
    assert_eq!(booked_tasks, simulated, "every SIMULATED task is booked");
    let all_entries = psql(&database, "SELECT count(*) FROM ledger_entries");
    assert_eq!(
        all_entries[0][0].parse::<i64>().expect("count"),
        entries,
        "ledger entries of tasks that are not SIMULATED"
    );
    assert!(entries >= 2 * postings, "a posting has at least two legs");
    // Balanced per asset: over the whole ledger and within every posting.
    let unbalanced = psql(
        &database,
        "SELECT posting_id, asset, sum(CASE side WHEN 'debit' THEN amount::numeric \
         ELSE -amount::numeric END) AS net FROM ledger_entries GROUP BY posting_id, asset \
         HAVING sum(CASE side WHEN 'debit' THEN amount::numeric ELSE -amount::numeric END) <> 0",
    );
    assert!(unbalanced.is_empty(), "unbalanced postings: {unbalanced:?}");
    let per_asset = psql(
        &database,
        "SELECT asset, sum(CASE side WHEN 'debit' THEN amount::numeric \
         ELSE -amount::numeric END) FROM ledger_entries GROUP BY asset",
    );
    assert!(
        per_asset.len() >= 2,
        "both pool tokens are booked: {per_asset:?}"
    );
    for row in &per_asset {
        assert_eq!(row[1], "0", "asset {} does not balance", row[0]);
    }

    // The host's metrics count what it did, with labels.
    let metrics = http_get(metrics_port, "/metrics").expect("metrics");
    let positive = |series: &str| {
        let v = sample(&metrics, series).unwrap_or(0.0);
        assert!(v > 0.0, "{series} is {v} in\n{metrics}");
        v
    };
    let swaps_seen = positive(r#"stratbox_host_events_total{kind="swap"}"#);
    assert!(swaps_seen as usize >= receipts.len());
    let calls = positive(r#"stratbox_host_strategy_calls_total{strategy="clamm-maker"}"#);
    assert!(
        calls >= 3.0 * swaps_seen,
        "three instances are called per event"
    );
    positive(r#"stratbox_host_fuel_total{strategy="clamm-maker"}"#);
    let sent = positive(r#"stratbox_host_proposals_total{strategy="clamm-maker"}"#);
    let answered_simulated = positive(r#"stratbox_host_engine_answers_total{state="simulated"}"#);
    assert!(answered_simulated <= sent);
    assert_eq!(
        answered_simulated as i64, simulated,
        "host and engine agree"
    );
    positive(r#"stratbox_host_strategy_call_seconds_count{strategy="clamm-maker"}"#);
    positive("stratbox_host_delivery_seconds_count");

    // Both stop cleanly on Ctrl-C.
    assert!(host.interrupt(), "host exits 0 on SIGINT");
    assert!(engine.interrupt(), "engine exits 0 on SIGINT");

    // One trace id from the chain event through the host to the engine's decision.
    let published = traces_of(&engine_log, "chain event published");
    let delivered = traces_of(&host_log, "proposals delivered");
    let decided = traces_of(&engine_log, "proposal simulated");
    assert!(
        !published.is_empty(),
        "no feed line in the engine's JSON log"
    );
    assert!(
        !delivered.is_empty(),
        "no delivery line in the host's JSON log"
    );
    let through: Vec<&String> = delivered
        .iter()
        .filter(|t| published.contains(*t) && decided.contains(*t))
        .collect();
    assert!(
        !through.is_empty(),
        "no trace id appears in the feed's, the host's and the engine's lines"
    );

    let _ = bus.delete_stream(&stream).await;
    drop(market);
    let _ = stratbox_engine::store::drop_postgres_database(&admin, &database_name).await;
}
