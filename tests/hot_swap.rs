//! Hot swap, refused rollout and scaling against real processes: `stratbox engine` on a
//! fresh PostgreSQL database with its strategy registry, `stratbox host` following the
//! registry (`--watch-deployments`) and reading a Redis stream.
//!
//! 10,000 events are streamed while the strategy `hs` is swapped from version 1 (`tally`,
//! a stateful 0.1.1 component that proposes once per swap, numbered by its event count)
//! to version 2 (`clamm-maker`, a 0.1.0 component). Then a version that traps in `init` is
//! deployed (nothing may switch; the reason must be visible in `ShowStrategy`), and the
//! strategy is scaled 1 -> 200 -> 1. The engine process is the same throughout.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use stratbox_bus::{Bus, RedisBus, RedisBusConfig, publish_event};
use stratbox_proto::v1;
use stratbox_proto::v1::registry_client::RegistryClient;
use stratbox_proto::v1::trading_engine_client::TradingEngineClient;
use tonic::transport::Channel;

use crate::support;

const EVENTS: u64 = 10_000;

use support::{PER_BLOCK, Proc, metric, postgres_admin, redis_url, scrape, wait_for};

fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii key"),
    );
    r
}

fn event(seq: u64, first_block: u64, pool: &str) -> v1::ChainEvent {
    support::swing_event("hs", seq, first_block, pool)
}

fn seq_of(event_id: &str) -> u64 {
    event_id
        .strip_prefix("hs:")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a test event id: {event_id}"))
}

fn is_swap(seq: u64) -> bool {
    seq % PER_BLOCK != PER_BLOCK - 1
}

/// The newest rollout report of `host` about `hs` for `version`, once it has one.
async fn report(
    registry: &mut RegistryClient<Channel>,
    host: &str,
    version: &str,
    instances: Option<u32>,
) -> Option<v1::RolloutReport> {
    let shown = registry
        .show_strategy(v1::ShowStrategyRequest { name: "hs".into() })
        .await
        .ok()?
        .into_inner();
    shown.rollouts.into_iter().find(|r| {
        r.host == host && r.version == version && instances.is_none_or(|n| r.instances == n)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_refused_rollout_and_scaling_while_events_flow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_name = format!("stratbox_hot_swap_{}", std::process::id());
    stratbox_engine::store::create_postgres_database(&postgres_admin(), &db_name)
        .await
        .expect("create database");
    let database = stratbox_engine::store::with_database(&postgres_admin(), &db_name);

    // Zone B: the engine with its registry, on an ephemeral port.
    let (mut engine_proc, engine_out) = Proc::spawn(
        &[
            "engine",
            "--listen",
            "127.0.0.1:0",
            "--oracle-from-pool",
            "--database",
            &database,
        ],
        dir.path(),
    );
    let engine_pid = engine_proc.child.id();
    let addr = support::listening_address(engine_out);
    let url = format!("http://{addr}");
    let mut engine = TradingEngineClient::connect(url.clone())
        .await
        .expect("engine");
    let mut registry = RegistryClient::connect(url.clone())
        .await
        .expect("registry")
        .max_decoding_message_size(64 << 20);
    let (pool, first_block) = support::first_market(&mut engine).await;

    // An operator key, from the CLI that prints it once.
    let added = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["operator", "add", "hot-swap-test", "--database", &database])
        .output()
        .expect("operator add");
    assert!(
        added.status.success(),
        "operator add: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let key = String::from_utf8_lossy(&added.stdout)
        .split_whitespace()
        .last()
        .expect("a key")
        .to_owned();

    let mut versions = Vec::new();
    for component in ["tally", "clamm-maker", "hostile"] {
        let bytes = stratbox_strategies::bytes(component).expect("catalog component");
        let v = registry
            .upload_strategy(authed(
                &key,
                v1::UploadStrategyRequest {
                    trace: None,
                    name: "hs".into(),
                    component: bytes,
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("upload {component}: {e}"))
            .into_inner();
        versions.push(v.version);
    }
    let (v1_, v2_, v3_) = (&versions[0], &versions[1], &versions[2]);

    // Zone A: a host following the registry.
    let stream = format!("test:hot_swap:{}", std::process::id());
    let bus: Arc<dyn Bus> = Arc::new(
        RedisBus::connect(RedisBusConfig::new(redis_url()))
            .await
            .expect("redis"),
    );
    let _ = bus.delete_stream(&stream).await;
    let host_name = "hot-swap-host";
    // The host's own key: its reports are recorded under the key's name.
    let host_key = support::key_file(
        dir.path(),
        host_name,
        &support::add_key("host-key", host_name, &database),
    );
    let host_key = host_key.display().to_string();
    let (mut host, _host_out) = Proc::spawn(
        &[
            "host",
            "--engine",
            &url,
            "--bus",
            &redis_url(),
            "--stream",
            &stream,
            "--group",
            "hosts",
            "--consumer",
            host_name,
            "--workers",
            "2",
            "--watch-deployments",
            "--key-file",
            &host_key,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let metrics_addr = host.metrics_address().await;
    let scrape_now = || scrape(&metrics_addr);

    // Version 1 with two instances, before any event.
    let deploy = |version: &str, instances: u32, config: String| v1::DeployRequest {
        trace: None,
        name: "hs".into(),
        version: version.to_owned(),
        instances,
        config_json: config,
    };
    registry
        .deploy(authed(
            &key,
            deploy(
                v1_,
                2,
                serde_json::json!({"pool": pool, "amount_in": "1000"}).to_string(),
            ),
        ))
        .await
        .expect("deploy v1");
    let r1 = wait_for(
        "version 1 to start on the host",
        Duration::from_secs(120),
        async || report(&mut registry, host_name, v1_, None).await,
    )
    .await;
    assert!(r1.switched, "{r1:?}\n{}", host.tail());

    // 10,000 events, published while the host works through them.
    let publisher = {
        let bus = bus.clone();
        let stream = stream.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            for seq in 0..EVENTS {
                publish_event(bus.as_ref(), &stream, &event(seq, first_block, &pool))
                    .await
                    .expect("publish");
            }
        })
    };
    let events_handled = |text: &str| metric(text, "stratbox_host_events_total", "kind=");
    wait_for(
        "the host to be a third of the way",
        Duration::from_secs(300),
        async || (events_handled(&scrape_now()) >= EVENTS / 3).then_some(()),
    )
    .await;

    // Version 2 midway: built and started off the event path, then switched.
    let narrow = serde_json::json!({
        "pool": pool, "half_width_ticks": 60, "margin_ticks": 0,
        "liquidity": "1000000000000000", "max_slippage_bps": 100,
    })
    .to_string();
    registry
        .deploy(authed(&key, deploy(v2_, 2, narrow)))
        .await
        .expect("deploy v2");
    let at_deploy = events_handled(&scrape_now());
    let r2 = wait_for(
        "version 2 to switch",
        Duration::from_secs(120),
        async || report(&mut registry, host_name, v2_, None).await,
    )
    .await;
    assert!(r2.switched, "{r2:?}");
    // The pause is measured (how long is `stratbox bench rollout`'s to say), not judged.
    assert!(r2.max_pause_ns > 0);
    assert_eq!(r2.instances, 2);
    publisher.await.expect("publisher");
    wait_for(
        "every event to be handled and acknowledged",
        Duration::from_secs(600),
        async || {
            let done = events_handled(&scrape_now()) >= EVENTS
                && bus.pending(&stream, "hosts").await.ok()?.total == 0;
            done.then_some(())
        },
    )
    .await;
    let text = scrape_now();
    assert_eq!(events_handled(&text), EVENTS, "events handled != published");
    assert_eq!(
        metric(&text, "stratbox_host_events_total", "kind=\"duplicate\""),
        0
    );
    assert!(
        at_deploy < EVENTS,
        "the swap was not midway: {at_deploy} events were handled before it was deployed"
    );

    // Every proposal is one task; every event's tasks come from one version; the version
    // changes once, at one event boundary.
    let tasks = support::all_tasks(&mut engine, "hs").await;
    let mut keys = HashSet::new();
    let mut by_event: BTreeMap<u64, Vec<&v1::Proposal>> = BTreeMap::new();
    for t in &tasks {
        assert!(
            keys.insert(t.idempotency_key.clone()),
            "two tasks with one key"
        );
        let p = t.proposal.as_ref().expect("task keeps its proposal");
        by_event.entry(seq_of(&p.event_id)).or_default().push(p);
    }
    let mut last_v1 = None;
    let mut first_v2 = None;
    for (seq, ps) in &by_event {
        let versions: BTreeSet<&str> = ps.iter().map(|p| p.strategy_version.as_str()).collect();
        assert_eq!(versions.len(), 1, "event {seq} handled by {versions:?}");
        if versions.contains(v1_.as_str()) {
            last_v1 = Some(*seq);
        } else if first_v2.is_none() {
            first_v2 = Some(*seq);
        }
    }
    let (Some(last_v1), Some(first_v2)) = (last_v1, first_v2) else {
        panic!("one version made no tasks: last v1 {last_v1:?}, first v2 {first_v2:?}");
    };
    assert!(
        last_v1 < first_v2,
        "v1 handled {last_v1} after v2 handled {first_v2}"
    );
    // Version 1 (tally) witnesses every event it handled: each of its two instances
    // proposes on every swap, numbered by how many events it has seen. Counting from the
    // first event, the number is the event's position: nothing skipped, nothing twice.
    for seq in (0..=last_v1).filter(|s| is_swap(*s)) {
        let ps = by_event
            .get(&seq)
            .unwrap_or_else(|| panic!("swap {seq} before the switch has no task"));
        let instances: BTreeSet<&str> = ps.iter().map(|p| p.instance_id.as_str()).collect();
        assert_eq!(instances.len(), 2, "event {seq}: {instances:?}");
        for p in ps {
            assert_eq!(p.reason, format!("tally {}", seq + 1), "event {seq}");
        }
    }
    assert!(
        by_event
            .range(first_v2..)
            .all(|(_, ps)| ps.iter().all(|p| p.strategy_version == *v2_)),
        "a task after the switch is not version 2"
    );
    println!(
        "{} tasks: version {v1_} handled events 0..={last_v1}, version {v2_} from {first_v2} on",
        tasks.len()
    );

    // A version that traps in `init`: nothing switches, and the operator sees why.
    registry
        .deploy(authed(
            &key,
            deploy(v3_, 2, serde_json::json!({"mode": "trap-init"}).to_string()),
        ))
        .await
        .expect("deploy v3");
    let r3 = wait_for(
        "the refused rollout report",
        Duration::from_secs(120),
        async || report(&mut registry, host_name, v3_, None).await,
    )
    .await;
    assert!(!r3.switched, "{r3:?}");
    assert!(r3.error.contains("init"), "{}", r3.error);
    println!("refused rollout of v{v3_}: {}", r3.error);
    let more = 100;
    for seq in EVENTS..EVENTS + more {
        publish_event(bus.as_ref(), &stream, &event(seq, first_block, &pool))
            .await
            .expect("publish");
    }
    wait_for(
        "the events after the refused rollout",
        Duration::from_secs(120),
        async || (events_handled(&scrape_now()) >= EVENTS + more).then_some(()),
    )
    .await;
    let after: Vec<v1::Task> = support::all_tasks(&mut engine, "hs")
        .await
        .into_iter()
        .filter(|t| {
            t.proposal
                .as_ref()
                .is_some_and(|p| seq_of(&p.event_id) >= EVENTS)
        })
        .collect();
    assert!(!after.is_empty(), "version 2 stopped proposing");
    assert!(
        after.iter().all(|t| t
            .proposal
            .as_ref()
            .is_some_and(|p| p.strategy_version == *v2_)),
        "a task after the refused rollout is not version 2"
    );

    // Scale 1 -> 200 -> 1 while running; the refused v3 stays refused, so roll back to v2
    // first (the current deployment is v3 in the registry).
    registry
        .deploy(authed(
            &key,
            deploy(
                v2_,
                1,
                serde_json::json!({
                    "pool": pool, "half_width_ticks": 60, "margin_ticks": 0,
                    "liquidity": "1000000000000000", "max_slippage_bps": 100,
                })
                .to_string(),
            ),
        ))
        .await
        .expect("deploy v2 with one instance");
    let mut next = EVENTS + more;
    for target in [1u32, 200, 1] {
        if target != 1 || next > EVENTS + more {
            registry
                .scale(authed(
                    &key,
                    v1::ScaleRequest {
                        trace: None,
                        name: "hs".into(),
                        instances: target,
                    },
                ))
                .await
                .expect("scale");
        }
        let r = wait_for("the scale to apply", Duration::from_secs(180), async || {
            report(&mut registry, host_name, v2_, Some(target)).await
        })
        .await;
        assert!(r.switched, "{r:?}");
        let calls_before = metric(
            &scrape_now(),
            "stratbox_host_strategy_calls_total",
            "strategy=\"hs\"",
        );
        let handled_before = events_handled(&scrape_now());
        let blocks = 10;
        for _ in 0..blocks {
            // Block events only, so the 200 makers do not all re-centre on every event.
            let seq = next + (PER_BLOCK - 1 - next % PER_BLOCK);
            publish_event(bus.as_ref(), &stream, &event(seq, first_block, &pool))
                .await
                .expect("publish");
            next = seq + 1;
        }
        wait_for("the block events", Duration::from_secs(120), async || {
            (events_handled(&scrape_now()) >= handled_before + blocks).then_some(())
        })
        .await;
        let calls = metric(
            &scrape_now(),
            "stratbox_host_strategy_calls_total",
            "strategy=\"hs\"",
        ) - calls_before;
        assert_eq!(
            calls,
            blocks * target as u64,
            "calls with {target} instances"
        );
    }

    // The same engine process served all of it.
    assert!(
        engine_proc.alive(),
        "the engine exited:\n{}",
        engine_proc.tail()
    );
    assert_eq!(engine_proc.child.id(), engine_pid);
    let status = engine
        .get_status(v1::GetStatusRequest { trace: None })
        .await;
    assert!(status.is_ok(), "engine stopped answering: {status:?}");
    assert!(host.alive(), "the host exited:\n{}", host.tail());

    drop(host);
    drop(engine_proc);
    let _ = bus.delete_stream(&stream).await;
    let _ = stratbox_engine::store::drop_postgres_database(&postgres_admin(), &db_name).await;
}
