//! Test harness: one share process as its own OS process, for the tests that must look at a
//! share's memory from outside (`tests/whole_key.rs`). Production runs
//! `stratbox signer share --index I`, which calls the same `run_share`.
//!
//! Binds 127.0.0.1:0 and prints `listening PORT`, waits for a `start` line on stdin (the
//! cluster file names that port by then), serves until stdin says `stop` or closes.
//! Configuration from the environment: THRESHOLD_INDEX, THRESHOLD_CLUSTER, THRESHOLD_CERT,
//! THRESHOLD_KEY, THRESHOLD_DATA_DIR, THRESHOLD_PASSPHRASE_FILE.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use stratbox_threshold::{ShareConfig, run_share_on};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn main() -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "stratbox_threshold=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let index: u16 = env("THRESHOLD_INDEX")?
        .parse()
        .map_err(|e| format!("THRESHOLD_INDEX: {e}"))?;
    let mut config = ShareConfig::new(
        index,
        PathBuf::from(env("THRESHOLD_CLUSTER")?),
        PathBuf::from(env("THRESHOLD_CERT")?),
        PathBuf::from(env("THRESHOLD_KEY")?),
        PathBuf::from(env("THRESHOLD_DATA_DIR")?),
    );
    config.passphrase_file = Some(PathBuf::from(env("THRESHOLD_PASSPHRASE_FILE")?));
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        println!("listening {port}");
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (start_tx, start_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut start = Some(start_tx);
            for line in std::io::stdin().lock().lines() {
                match line.as_deref().map(str::trim) {
                    Ok("start") => {
                        if let Some(tx) = start.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok("stop") | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = stop_tx.send(());
        });
        start_rx
            .await
            .map_err(|_| "stdin closed before start".to_string())?;
        run_share_on(listener, config, async {
            let _ = stop_rx.await;
        })
        .await
        .map_err(|e| e.to_string())
    })
}
