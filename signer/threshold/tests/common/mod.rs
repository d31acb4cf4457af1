//! Shared by the threshold tests: cached Paillier primes and a cluster with a committed key.
//!
//! The key is the target dir's cached test key (`stratbox_threshold::local::cached_test_key`):
//! one real ceremony per target dir, its sealed shares installed into each test's cluster.
//! The ceremony itself is the subject of `whole_key.rs` (separate processes) and of the CLI
//! and deployment tests, which run their own.
#![allow(dead_code)]

use std::time::Duration;

use stratbox_threshold::KeygenOutcome;
use stratbox_threshold::local::{LocalCluster, Primes, TEST_KEY_PASSPHRASE};

/// The shares' passphrase: the cached test key's.
pub const PASSPHRASE: &str = TEST_KEY_PASSPHRASE;

/// The primes cache of [`stratbox_threshold::local::cached_test_primes`] in this target dir.
pub fn test_primes() -> [Primes; 3] {
    stratbox_threshold::local::cached_test_primes(&stratbox_testenv::target_dir())
        .expect("test primes")
}

/// A started in-process cluster holding the cached test key, and what its ceremony reported.
pub async fn cluster_with_key(dir: &std::path::Path) -> (LocalCluster, KeygenOutcome) {
    let key = tokio::time::timeout(
        Duration::from_secs(1200),
        stratbox_threshold::local::cached_test_key(&stratbox_testenv::target_dir()),
    )
    .await
    .expect("cached test key in time")
    .expect("cached test key");
    let cluster = LocalCluster::start_with_key(dir, &key)
        .await
        .expect("cluster starts");
    (cluster, key.outcome)
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "stratbox_threshold=info".into()),
        )
        .with_test_writer()
        .try_init();
}
