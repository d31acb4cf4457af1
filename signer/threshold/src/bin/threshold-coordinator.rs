//! Test harness: the coordinator as its own OS process, for `tests/whole_key.rs`, which
//! scans its memory from outside. Production is the signer service holding a
//! `ThresholdClient`.
//!
//! Modes (THRESHOLD_MODE):
//! - `run` (default): runs the keygen ceremony over THRESHOLD_CLUSTER with THRESHOLD_CERT /
//!   THRESHOLD_KEY, fills presignature pools, signs one hash per pair for accounts
//!   0..THRESHOLD_ACCOUNTS, printing one JSON line per step, then prints `{"event":"ready"}`
//!   and keeps everything in memory until stdin says `stop` or closes.
//! - `hold`: reads one hex line from stdin, keeps its bytes in memory, prints `holding`, and
//!   waits likewise: the positive control that shows the memory scan finds a 32-byte secret
//!   in a live process.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use stratbox_threshold::{
    ClientConfig, DerivationPath, KeygenConfig, PAIRS, ThresholdClient, address_hex, keygen,
};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn say(value: serde_json::Value) {
    println!("{value}");
    let _ = std::io::stdout().flush();
}

fn wait_for_stop() {
    for line in std::io::stdin().lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("stop") | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn main() -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "stratbox_threshold=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if std::env::var("THRESHOLD_MODE").as_deref() == Ok("hold") {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let held = hex::decode(line.trim()).map_err(|e| e.to_string())?;
        println!("holding");
        let _ = std::io::stdout().flush();
        wait_for_stop();
        // Keep `held` alive until here.
        std::hint::black_box(&held);
        return Ok(());
    }
    let cluster = PathBuf::from(env("THRESHOLD_CLUSTER")?);
    let cert = PathBuf::from(env("THRESHOLD_CERT")?);
    let key = PathBuf::from(env("THRESHOLD_KEY")?);
    let accounts: u32 = env("THRESHOLD_ACCOUNTS")
        .unwrap_or_else(|_| "2".into())
        .parse()
        .map_err(|e| format!("THRESHOLD_ACCOUNTS: {e}"))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let client = runtime.block_on(async {
        let mut config = KeygenConfig::new(cluster.clone(), cert.clone(), key.clone());
        config.accounts = accounts;
        let outcome = keygen(&config, |p| eprintln!("{p}"))
            .await
            .map_err(|e| e.to_string())?;
        say(serde_json::json!({
            "event": "keygen",
            "public_key": hex::encode(outcome.key.shared_public_key),
            "addresses": outcome.addresses.iter().map(|(_, a)| address_hex(a)).collect::<Vec<_>>(),
        }));
        let mut client_config = ClientConfig::new(cluster, cert, key);
        client_config.pool_target = 2;
        let client = ThresholdClient::connect(&client_config)
            .await
            .map_err(|e| e.to_string())?;
        client
            .wait_for_pools(&PAIRS, 1, Duration::from_secs(900))
            .await
            .map_err(|e| e.to_string())?;
        for account in 0..accounts {
            let path = DerivationPath::account(account).map_err(|e| e.to_string())?;
            for pair in PAIRS {
                let mut hash = [0u8; 32];
                hash[0] = account as u8;
                hash[1] = pair[0] as u8;
                hash[2] = pair[1] as u8;
                let sig = client
                    .sign_prehash_with(pair, &path, hash)
                    .await
                    .map_err(|e| e.to_string())?;
                let recovered = sig.recover_address(&hash).map_err(|e| e.to_string())?;
                say(serde_json::json!({
                    "event": "signed",
                    "account": account,
                    "pair": pair,
                    "recovered": address_hex(&recovered),
                    "address": address_hex(&client.address(&path).map_err(|e| e.to_string())?),
                }));
            }
        }
        Ok::<_, String>(client)
    })?;
    say(serde_json::json!({"event": "ready"}));
    wait_for_stop();
    drop(client);
    Ok(())
}
