//! `stratbox bench signer`: the signer's hot paths, measured side by side in one run.
//!
//! - the policy check: decode an `executor.swap` (and an `executor.mint`, whose worst case
//!   runs the Uniswap V3 tick math) and judge it against a policy, daily cap included (the
//!   day's spend as the store would hand it over); the issue's target is under 50 µs;
//! - building the transaction from plain fields and its signing hash, plus the check;
//! - single-key signing with the development keystore;
//! - threshold signing with the 2-of-3 key (three share servers on loopback, mutual TLS,
//!   a real keygen ceremony on primes cached in the target dir: a bench key, never a real
//!   one; with `--quick` no ceremony, the target dir's cached test key instead) beside
//!   single-key signing of the same transactions, alternated, and how many presignatures a
//!   second the shares make (`stratbox_threshold::bench`);
//! - a whole `SignTransaction` round trip over mutual TLS with the SQLite store (parse,
//!   check, nonce reservation, signing, the stored answer and its audit entry).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::aliases::{I24, U160};
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use anyhow::Context;
use stratbox_evm::abi::StratboxExecutor;
use stratbox_host::backtest::quantile;
use stratbox_proto::v1;
use stratbox_signer::keys::{DevKeystore, KeySource, Passphrase};
use stratbox_signer::trade::{check_daily, evaluate};
use stratbox_signer::tx::PlainTx;
use stratbox_signer::{Policy, certs};
use tonic::transport::Endpoint;

#[derive(clap::Args)]
pub struct Args {
    /// Fewer iterations: a smoke run, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Print the rows as one JSON object too.
    #[arg(long)]
    json: bool,
    /// Transactions signed by the threshold key and the single key, alternately (default 200,
    /// 3 with --quick).
    #[arg(long)]
    threshold_transactions: Option<usize>,
}

struct Row {
    name: &'static str,
    n: usize,
    median: Duration,
    p99: Duration,
}

fn row(name: &'static str, mut samples: Vec<Duration>) -> Row {
    samples.sort();
    Row {
        name,
        n: samples.len(),
        median: quantile(&samples, 0.5),
        p99: quantile(&samples, 0.99),
    }
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_nanos() as f64 / 1000.0)
}

const EXECUTOR: &str = "0x00000000000000000000000000000000000000e1";
const POOL: &str = "0x00000000000000000000000000000000000000c1";
const SBA: &str = "0x00000000000000000000000000000000000000a1";
const SBB: &str = "0x00000000000000000000000000000000000000b1";

fn policy_text(account: &str) -> String {
    format!(
        r#"
chain_ids = [31337]
max_fee_per_gas = "100000000000"
max_priority_fee_per_gas = "10000000000"
max_gas_limit = 1000000
[[executors]]
address = "{EXECUTOR}"
functions = ["swap", "mint"]
[[tokens]]
symbol = "SBA"
address = "{SBA}"
decimals = 18
max_per_tx = "1000000000000000000000000"
max_per_day = "1000000000000000000000000000"
[[tokens]]
symbol = "SBB"
address = "{SBB}"
decimals = 18
max_per_tx = "1000000000000000000000000"
max_per_day = "1000000000000000000000000000"
[[pools]]
address = "{POOL}"
token0 = "SBA"
token1 = "SBB"
fee = 3000
[[accounts]]
address = "{account}"
key_index = 0
mode = "live"
thresholds = {{ SBA = {{ approval = "1000000000000000000000000", two_approvals = "1000000000000000000000000" }}, SBB = {{ approval = "1000000000000000000000000", two_approvals = "1000000000000000000000000" }} }}
"#
    )
}

fn wire(nonce: u64, input: Vec<u8>) -> v1::Eip1559Transaction {
    let a = |v: &str| Some(v1::Amount { value: v.into() });
    v1::Eip1559Transaction {
        chain_id: 31337,
        nonce,
        max_priority_fee_per_gas: a("1000000000"),
        max_fee_per_gas: a("20000000000"),
        gas_limit: 300_000,
        to: Some(v1::Address {
            value: EXECUTOR.into(),
        }),
        value: a("0"),
        input,
    }
}

fn addr(s: &str) -> Address {
    Address::from(stratbox_proto::parse_address(s).unwrap_or_default())
}

fn swap_input(amount_in: u64) -> Vec<u8> {
    StratboxExecutor::swapCall {
        pool: addr(POOL),
        zeroForOne: true,
        amountIn: U256::from(amount_in),
        sqrtPriceLimitX96: U160::ZERO,
        amountOutMinimum: U256::from(1u8),
    }
    .abi_encode()
}

fn mint_input() -> anyhow::Result<Vec<u8>> {
    Ok(StratboxExecutor::mintCall {
        pool: addr(POOL),
        tickLower: I24::try_from(-600i32).context("tick")?,
        tickUpper: I24::try_from(600i32).context("tick")?,
        liquidity: 10u128.pow(18),
    }
    .abi_encode())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let n_check = if args.quick { 2_000 } else { 50_000 };
    let n_sign = if args.quick { 200 } else { 5_000 };
    let n_rpc = if args.quick { 50 } else { 1_000 };

    let ks_path = dir.join("ks.json");
    let keys: Arc<dyn KeySource> = Arc::new(
        tokio::task::spawn_blocking(move || {
            DevKeystore::create(&ks_path, &Passphrase::new("bench")?)
        })
        .await??,
    );
    let account = format!("0x{}", hex::encode(keys.address(0)?));
    let policy = Policy::from_toml(&policy_text(&account))?;
    let from =
        PlainTx::from_wire(&wire(0, swap_input(1_000_000))).map_err(|r| anyhow::anyhow!("{r}"))?;
    let account_addr = addr(&account);
    let mut spent = BTreeMap::new();
    spent.insert(
        addr(SBA),
        stratbox_proto::parse_amount("12345678901234567890")?,
    );
    let selector = swap_selector_check(&policy, &from, account_addr)?;

    // The policy check: decode + judge + daily cap.
    let mut samples = Vec::with_capacity(n_check);
    for _ in 0..n_check {
        let t = Instant::now();
        let eval = evaluate(&policy, &from, account_addr).map_err(|r| anyhow::anyhow!("{r}"))?;
        check_daily(&policy, &eval, &spent).map_err(|r| anyhow::anyhow!("{r}"))?;
        samples.push(t.elapsed());
    }
    let check_swap = row(
        "policy check, executor.swap (decode, judge, daily cap)",
        samples,
    );

    let mint = PlainTx::from_wire(&wire(0, mint_input()?)).map_err(|r| anyhow::anyhow!("{r}"))?;
    let mut samples = Vec::with_capacity(n_check);
    for _ in 0..n_check {
        let t = Instant::now();
        let eval = evaluate(&policy, &mint, account_addr).map_err(|r| anyhow::anyhow!("{r}"))?;
        check_daily(&policy, &eval, &spent).map_err(|r| anyhow::anyhow!("{r}"))?;
        samples.push(t.elapsed());
    }
    let check_mint = row(
        "policy check, executor.mint (+ tick math worst case)",
        samples,
    );

    let w = wire(7, swap_input(1_000_000));
    let mut samples = Vec::with_capacity(n_check);
    for _ in 0..n_check {
        let t = Instant::now();
        let tx = PlainTx::from_wire(&w).map_err(|r| anyhow::anyhow!("{r}"))?;
        let _hash = tx.signing_hash();
        let eval = evaluate(&policy, &tx, account_addr).map_err(|r| anyhow::anyhow!("{r}"))?;
        check_daily(&policy, &eval, &spent).map_err(|r| anyhow::anyhow!("{r}"))?;
        samples.push(t.elapsed());
    }
    let build_check = row("plain fields -> tx + signing hash + policy check", samples);

    let hash = from.signing_hash();
    let mut samples = Vec::with_capacity(n_sign);
    for _ in 0..n_sign {
        let t = Instant::now();
        let _sig = keys.sign_prehash(0, hash).await?;
        samples.push(t.elapsed());
    }
    let single_key = row("single-key signing (development keystore, k256)", samples);

    // ---- threshold rows --------------------------------------------------------------
    let cache = primes_cache_dir();
    let (primes, key) = if args.quick {
        eprintln!(
            "bench signer: keygen ceremony skipped in --quick mode (the cached test key in {}, \
             made by one ceremony per cache dir: a bench key only)",
            cache.display()
        );
        let key = stratbox_threshold::local::cached_test_key(&cache).await?;
        (None, Some(key))
    } else {
        eprintln!(
            "bench signer: threshold key ceremony on primes cached in {} (a bench key only)",
            cache.display()
        );
        let primes = tokio::task::spawn_blocking(move || {
            stratbox_threshold::local::cached_test_primes(&cache)
        })
        .await??;
        (Some(primes), None)
    };
    let threshold = stratbox_threshold::bench::run(stratbox_threshold::bench::BenchConfig {
        transactions: args
            .threshold_transactions
            .unwrap_or(if args.quick { 3 } else { 200 })
            .max(1),
        presign_concurrency: 2,
        primes,
        key,
    })
    .await
    .context("threshold signing bench")?;
    let threshold_row = Row {
        name: "threshold 2-of-3 signing, online (presignature ready)",
        n: threshold.transactions,
        median: threshold.threshold.median,
        p99: threshold.threshold.p99,
    };
    let alternated_row = Row {
        name: "single-key signing, the same transactions, alternated",
        n: threshold.transactions,
        median: threshold.single_key.median,
        p99: threshold.single_key.p99,
    };

    let rtt = round_trip(&dir, keys.clone(), &account, n_rpc).await?;

    let rows = [
        &check_swap,
        &check_mint,
        &build_check,
        &single_key,
        &threshold_row,
        &alternated_row,
        &rtt,
    ];
    println!("| measurement | median | p99 | n |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.name,
            us(r.median),
            us(r.p99),
            r.n
        );
    }
    let ratio = single_key.median.as_nanos() as f64 / check_swap.median.as_nanos().max(1) as f64;
    println!();
    println!("single-key signing / policy check (swap), medians: {ratio:.1}x");
    println!(
        "threshold / single-key signing, medians side by side: {:.1}x",
        threshold.median_ratio()
    );
    println!(
        "presignatures per second (pair 0,1): {:.2} ({} in {:.1} s); keygen ceremony {}",
        threshold.presignatures_per_second(),
        threshold.presignatures,
        threshold.presign_elapsed.as_secs_f64(),
        threshold.dkg.map_or_else(
            || "skipped (cached test key)".to_string(),
            |d| format!("{:.1} s", d.as_secs_f64())
        )
    );
    println!(
        "target: online threshold signing under 10 ms median: {} (median {}, p99 {})",
        if threshold.meets_target() {
            "met"
        } else {
            "NOT met"
        },
        us(threshold.threshold.median),
        us(threshold.threshold.p99)
    );
    println!(
        "target: policy check under 50 µs: {} (swap median {}, p99 {}; mint median {}, p99 {})",
        if check_swap.p99 < Duration::from_micros(50) && check_mint.p99 < Duration::from_micros(50)
        {
            "met"
        } else {
            "NOT met"
        },
        us(check_swap.median),
        us(check_swap.p99),
        us(check_mint.median),
        us(check_mint.p99)
    );
    let _ = selector;
    if args.json {
        let obj: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|r| {
                (
                    r.name.to_string(),
                    serde_json::json!({"median_ns": r.median.as_nanos() as u64, "p99_ns": r.p99.as_nanos() as u64, "n": r.n}),
                )
            })
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Sanity: the swap decodes as the executor's swap and needs no approval (the bench
/// measures what it claims to).
fn swap_selector_check(policy: &Policy, tx: &PlainTx, account: Address) -> anyhow::Result<String> {
    let eval = evaluate(policy, tx, account)
        .map_err(|r| anyhow::anyhow!("the bench's swap does not pass: {r}"))?;
    anyhow::ensure!(
        eval.trade.action == "executor.swap" && eval.approvals_required == 0,
        "unexpected {:?}",
        eval.trade.action
    );
    Ok(eval.trade.action)
}

/// Where the bench's Paillier primes are cached: `CARGO_TARGET_DIR`, else `./target` when it
/// exists (a checkout), else the temp dir.
fn primes_cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    let target = std::path::PathBuf::from("target");
    if target.is_dir() {
        return target;
    }
    std::env::temp_dir().join("stratbox-bench-primes")
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "stratbox-bench-signer-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn round_trip(
    dir: &std::path::Path,
    keys: Arc<dyn KeySource>,
    account: &str,
    n: usize,
) -> anyhow::Result<Row> {
    let certs_dir = dir.join("certs");
    let issued = certs::dev_set(&certs_dir, &["localhost".into()], &["alice".into()])?;
    std::fs::write(dir.join("policy.toml"), policy_text(account))?;
    let config_text = format!(
        "database = \"sqlite://{}\"\npolicy = \"policy.toml\"\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ntls_cert = \"certs/signer.pem\"\ntls_key = \"certs/signer.key\"\nclient_ca = \"certs/ca.pem\"\n[keystore]\ndev_file = \"ks.json\"\n\n{}",
        dir.join("signer.db").display(),
        certs::allowlist_toml(&issued)
    );
    std::fs::write(dir.join("signer.toml"), config_text)?;
    let config = stratbox_signer::config::SignerConfig::load(&dir.join("signer.toml"))?;
    let running = stratbox_signer::start(&config, keys).await?;
    let tls = stratbox_signer::tls::client_tls(
        &certs_dir.join("ca.pem"),
        Some((&certs_dir.join("engine.pem"), &certs_dir.join("engine.key"))),
        "localhost",
    )?;
    let channel = Endpoint::from_shared(format!("https://localhost:{}", running.addr.port()))?
        .tls_config(tls)?
        .connect()
        .await?;
    let mut client = v1::signer_client::SignerClient::new(channel);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let req = v1::SignTransactionRequest {
            trace: None,
            task_id: format!("bench-{i}"),
            tx: Some(wire(i as u64, swap_input(1_000 + i as u64))),
            from: Some(v1::Address {
                value: account.into(),
            }),
            simulation: None,
            approval_id: String::new(),
        };
        let t = Instant::now();
        let r = client.sign_transaction(req).await?.into_inner();
        samples.push(t.elapsed());
        anyhow::ensure!(
            r.outcome == v1::SignOutcome::Signed as i32,
            "bench request {i} not signed: {} {}",
            r.reason_code,
            r.detail
        );
    }
    running.shutdown().await;
    Ok(row(
        "SignTransaction round trip over mTLS, SQLite store",
        samples,
    ))
}
