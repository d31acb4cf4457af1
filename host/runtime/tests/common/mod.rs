//! Shared setup for the host's integration tests: one runtime per test process, the
//! catalog's real components, and events from the deterministic sample walk.

#![allow(dead_code)]

use stratbox_host::replay::{Replayer, random_walk};
use stratbox_host::wit::{Event, Snapshot};
use stratbox_host::{HostConfig, HostRuntime, LoadedComponent};

pub fn runtime() -> HostRuntime {
    runtime_with(HostConfig {
        max_instances: 512,
        ..HostConfig::default()
    })
}

pub fn runtime_with(config: HostConfig) -> HostRuntime {
    HostRuntime::new(config).expect("runtime")
}

pub fn load(runtime: &HostRuntime, name: &str) -> LoadedComponent {
    let bytes = stratbox_strategies::bytes(name).expect("catalog component");
    runtime.load(&bytes).expect("component loads")
}

/// `(event, snapshot)` pairs of the sample random walk, in chain order.
pub fn events(blocks: u64) -> Vec<(Event, Snapshot)> {
    let mut replayer = Replayer::new();
    random_walk(7, blocks)
        .into_iter()
        .map(|line| replayer.apply(line))
        .collect()
}

pub fn pool() -> &'static str {
    stratbox_host::replay::SAMPLE_POOL
}
