//! Rebuilds, quarantine with backoff, and pool exhaustion.

mod common;

use std::time::{Duration, Instant};
use stratbox_host::{
    CallError, HostConfig, InstanceSpec, NoHistory, StrategyInstance, StrategyLimits,
};

fn hostile_spec(mode: &str, limits: StrategyLimits) -> InstanceSpec {
    InstanceSpec::new(mode, stratbox_strategies::hostile_config(mode)).with_limits(limits)
}

#[test]
fn a_failed_instance_is_rebuilt_and_init_runs_again() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let events = common::events(2);
    let (e, s) = &events[0];
    let limits = StrategyLimits {
        max_consecutive_failures: 100,
        ..StrategyLimits::default()
    };
    let mut trapper =
        StrategyInstance::new(&component, hostile_spec("trap", limits.clone()), NoHistory);
    for round in 1..=3u64 {
        assert!(matches!(trapper.call(e, s, "t"), Err(CallError::Trap(_))));
        assert!(!trapper.is_live());
        assert_eq!(trapper.stats().builds, round, "one fresh store per call");
        assert_eq!(trapper.stats().inits, round, "init re-ran on every rebuild");
    }

    // A kill is not a failure, and the rebuilt instance answers normally.
    let mut good =
        StrategyInstance::new(&component, hostile_spec("well-behaved", limits), NoHistory);
    good.start().expect("start");
    assert_eq!(good.stats().inits, 1);
    good.kill();
    assert!(!good.is_live());
    assert!(
        good.call(e, s, "t")
            .expect("after kill")
            .proposals
            .is_empty()
    );
    assert_eq!(good.stats().inits, 2);
    assert_eq!(good.stats().quarantines, 0);
    assert_eq!(runtime.live_instances(), 1);
}

#[test]
fn repeated_failures_quarantine_with_doubling_backoff() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let events = common::events(2);
    let (e, s) = &events[0];
    let limits = StrategyLimits {
        max_consecutive_failures: 3,
        backoff_initial_ms: 1_000,
        backoff_max_ms: 3_000,
        ..StrategyLimits::default()
    };
    let mut instance = StrategyInstance::new(&component, hostile_spec("trap", limits), NoHistory);
    let t0 = Instant::now();
    for _ in 0..3 {
        assert!(matches!(
            instance.call_at(t0, e, s, "t"),
            Err(CallError::Trap(_))
        ));
    }
    assert_eq!(
        instance.quarantined_until(),
        Some(t0 + Duration::from_secs(1))
    );
    let builds = instance.stats().builds;
    match instance.call_at(t0 + Duration::from_millis(500), e, s, "t") {
        Err(CallError::Quarantined { failures, retry_in }) => {
            assert_eq!(failures, 3);
            assert_eq!(retry_in, Duration::from_millis(500));
        }
        other => panic!("expected quarantine, got {other:?}"),
    }
    assert_eq!(
        instance.stats().builds,
        builds,
        "a quarantined instance is not rebuilt"
    );

    // After the backoff it is tried again; failing again doubles the backoff...
    let t1 = t0 + Duration::from_secs(1);
    assert!(matches!(
        instance.call_at(t1, e, s, "t"),
        Err(CallError::Trap(_))
    ));
    assert_eq!(
        instance.quarantined_until(),
        Some(t1 + Duration::from_secs(2))
    );
    // ...up to the maximum.
    let t2 = t1 + Duration::from_secs(2);
    assert!(matches!(
        instance.call_at(t2, e, s, "t"),
        Err(CallError::Trap(_))
    ));
    assert_eq!(
        instance.quarantined_until(),
        Some(t2 + Duration::from_secs(3))
    );
    assert_eq!(instance.stats().quarantines, 3);
    assert_eq!(instance.stats().errors.get("quarantined"), Some(&1));

    // Init failures count too.
    let mut bad_init = StrategyInstance::new(
        &component,
        hostile_spec(
            "fail-init",
            StrategyLimits {
                max_consecutive_failures: 2,
                ..StrategyLimits::default()
            },
        ),
        NoHistory,
    );
    assert!(matches!(
        bad_init.call_at(t0, e, s, "t"),
        Err(CallError::Init(_))
    ));
    assert!(matches!(
        bad_init.call_at(t0, e, s, "t"),
        Err(CallError::Init(_))
    ));
    assert!(matches!(
        bad_init.call_at(t0, e, s, "t"),
        Err(CallError::Quarantined { .. })
    ));
}

#[test]
fn pool_exhaustion_is_a_clear_error_and_frees_on_drop() {
    for allocation in [
        stratbox_host::Allocation::Pooling,
        stratbox_host::Allocation::OnDemand,
    ] {
        let runtime = common::runtime_with(HostConfig {
            allocation,
            max_instances: 4,
            ..HostConfig::default()
        });
        let component = common::load(&runtime, "hostile");
        let mut instances: Vec<StrategyInstance> = (0..4)
            .map(|i| {
                let mut inst = StrategyInstance::new(
                    &component,
                    InstanceSpec::new(
                        format!("wb{i}"),
                        stratbox_strategies::hostile_config("well-behaved"),
                    ),
                    NoHistory,
                );
                inst.start().expect("within the pool");
                inst
            })
            .collect();
        assert_eq!(runtime.live_instances(), 4);
        let mut fifth = StrategyInstance::new(
            &component,
            InstanceSpec::new("wb5", stratbox_strategies::hostile_config("well-behaved")),
            NoHistory,
        );
        match fifth.start() {
            Err(CallError::PoolExhausted(reason)) => {
                assert!(reason.contains("at most 4"), "{reason}");
                assert!(!reason.contains('\n'));
            }
            other => panic!("{allocation:?}: expected pool exhaustion, got {other:?}"),
        }
        assert_eq!(
            fifth.stats().quarantines,
            0,
            "exhaustion is not the strategy's failure"
        );
        instances.pop();
        fifth.start().expect("a freed slot is reused");
        assert_eq!(runtime.live_instances(), 4);
    }
}

#[test]
fn limits_above_the_hosts_ceiling_are_a_config_error() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let limits = StrategyLimits {
        memory_bytes: runtime.config().max_memory_bytes + 1,
        ..StrategyLimits::default()
    };
    let mut inst =
        StrategyInstance::new(&component, hostile_spec("well-behaved", limits), NoHistory);
    assert!(matches!(inst.start(), Err(CallError::Config(_))));
}

#[test]
fn limits_deserialize_with_defaults_and_refuse_typos() {
    let limits: StrategyLimits = serde_json::from_str(r#"{"fuel_per_call": 5}"#).expect("partial");
    assert_eq!(limits.fuel_per_call, 5);
    assert_eq!(limits.deadline_ms, StrategyLimits::default().deadline_ms);
    assert!(serde_json::from_str::<StrategyLimits>(r#"{"fuel_per_cal": 5}"#).is_err());
}

#[test]
fn compiled_components_are_cached_by_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HostConfig {
        max_instances: 8,
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let bytes = stratbox_strategies::bytes("clamm-maker").expect("bytes");
    let first = common::runtime_with(config.clone())
        .load(&bytes)
        .expect("compiles");
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(files.len(), 1, "one artifact written");
    let name = files[0]
        .as_ref()
        .expect("entry")
        .file_name()
        .into_string()
        .expect("utf8");
    assert!(name.starts_with(first.sha256()), "{name}");
    // A second runtime (a restart) loads from the cache and works.
    let runtime = common::runtime_with(config);
    let again = runtime.load(&bytes).expect("from cache");
    assert_eq!(again.sha256(), first.sha256());
    let events = common::events(1);
    let mut inst = StrategyInstance::new(
        &again,
        InstanceSpec::new("m", stratbox_strategies::clamm_maker_config(common::pool())),
        NoHistory,
    );
    assert!(inst.call(&events[0].0, &events[0].1, "t").is_ok());
}
