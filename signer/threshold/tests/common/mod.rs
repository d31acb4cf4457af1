//! Shared by the threshold tests: cached Paillier primes and a cluster with a committed key.
#![allow(dead_code)]

use std::io::Write;
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

/// Safe primes for the three shares, generated once by the crate's own [`Primes::generate`]
/// (cggmp21's generator) and cached under `target/`, so a ceremony in a test costs the
/// protocol and not minutes of prime search. Test processes running at once take turns on a
/// file lock; the first generates, the rest read. The separate-process test and the bench
/// generate fresh primes.
pub fn test_primes() -> [Primes; 3] {
    let path = target_dir().join("stratbox-threshold-test-primes-v1.json");
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&lock_path)
        .expect("primes lock file");
    lock.lock().expect("locking the primes cache");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(list) = serde_json::from_str::<Vec<(String, String)>>(&text)
        && list.len() == 3
    {
        {
            {
                let parse =
                    |s: &str| stratbox_threshold::local::integer_from_hex(s).expect("cached prime");
                let primes: Vec<Primes> = list
                    .iter()
                    .map(|(p, q)| Primes {
                        p: parse(p),
                        q: parse(q),
                    })
                    .collect();
                return [primes[0].clone(), primes[1].clone(), primes[2].clone()];
            }
        }
    }
    eprintln!("generating Paillier safe primes for the test cache (once per target dir)");
    let workers: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(Primes::generate))
        .collect();
    let primes: Vec<Primes> = workers
        .into_iter()
        .map(|w| w.join().expect("prime generation"))
        .collect();
    let primes = [primes[0].clone(), primes[1].clone(), primes[2].clone()];
    let list: Vec<(String, String)> = primes
        .iter()
        .map(|p| (p.p.to_string_radix(16), p.q.to_string_radix(16)))
        .collect();
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).expect("primes cache");
    file.write_all(serde_json::to_string(&list).unwrap().as_bytes())
        .expect("writing primes cache");
    file.sync_all().expect("syncing primes cache");
    std::fs::rename(&tmp, &path).expect("placing primes cache");
    primes
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
