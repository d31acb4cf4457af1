//! A host is refused when it is built if its configuration cannot fit the machine, and the
//! mappings an instance really adds stay within what the capacity check assumes.

mod common;

use stratbox_host::{
    HostConfig, HostRuntime, InstanceSpec, LoadError, NoHistory, StrategyInstance,
};

#[test]
fn an_absurd_max_instances_is_refused_naming_the_limit() {
    let result = HostRuntime::new(HostConfig {
        max_instances: 10_000_000,
        ..HostConfig::default()
    });
    let Err(err) = result else {
        panic!("a host for 10,000,000 instances was built");
    };
    assert!(matches!(err, LoadError::Capacity(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("vm.max_map_count") || text.contains("address space"),
        "{text}"
    );
    assert!(text.contains("max_instances 10,000,000"), "{text}");
    // The whole chain, as `{:#}` prints it, says it once.
    let mut chain = text.clone();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert_eq!(
        chain.matches("max_instances 10,000,000").count(),
        1,
        "{chain}"
    );
}

/// Lines of `/proc/self/maps`: the mappings the process holds.
fn mappings() -> u64 {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .count() as u64
}

#[test]
fn an_instance_adds_no_more_mappings_than_assumed() {
    const N: usize = 64;
    let runtime = common::runtime_with(HostConfig {
        max_instances: N,
        ..HostConfig::default()
    });
    let component = common::load(&runtime, "clamm-maker");
    let assumed = runtime.capacity().pools[0].mappings_per_instance;
    let before = mappings();
    let mut instances = Vec::with_capacity(N);
    for i in 0..N {
        let spec = InstanceSpec::new(
            format!("clamm-maker/{i}"),
            stratbox_strategies::clamm_maker_config(common::pool()),
        );
        let mut instance = StrategyInstance::new(&component, spec, NoHistory);
        instance.start().expect("instance starts");
        instances.push(instance);
    }
    let grown = mappings().saturating_sub(before);
    // Slack for what the test harness maps meanwhile (another test's thread stack).
    assert!(
        grown <= N as u64 * assumed + 16,
        "{N} instances added {grown} mappings; the capacity check assumes {assumed} each"
    );
}
