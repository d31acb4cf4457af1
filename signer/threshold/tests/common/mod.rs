//! Shared by the threshold tests: cached Paillier primes and a cluster with a committed key.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use stratbox_threshold::local::{LocalCluster, Primes};
use stratbox_threshold::{KeygenOutcome, keygen};

pub const PASSPHRASE: &str = "threshold test passphrase";

/// The target directory this test binary runs from (`target/release/deps/..` → `target`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// The primes cache of [`stratbox_threshold::local::cached_test_primes`] in this target dir.
pub fn test_primes() -> [Primes; 3] {
    stratbox_threshold::local::cached_test_primes(&target_dir()).expect("test primes")
}

/// A started in-process cluster with cached primes, and its committed key.
pub async fn cluster_with_key(dir: &std::path::Path) -> (LocalCluster, KeygenOutcome) {
    let primes = tokio::task::spawn_blocking(test_primes).await.unwrap();
    let cluster = LocalCluster::start(dir, PASSPHRASE, Some(&primes))
        .await
        .expect("cluster starts");
    let outcome = tokio::time::timeout(
        Duration::from_secs(900),
        keygen(&cluster.keygen_config(), |p| eprintln!("{p}")),
    )
    .await
    .expect("ceremony in time")
    .expect("ceremony succeeds");
    (cluster, outcome)
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
