//! The signer through the real `stratbox` binary: `signer certs` makes the identities,
//! `signer dev-keystore create` the keys, `stratbox signer --config` serves over mutual TLS,
//! the test plays the engine with the generated client, and the approvers work with
//! `stratbox approvals list/show/approve/reject`. Then `signer policy status` and `signer
//! audit verify` on the untouched log and on one edited by hand.
//!
//! And the threshold key through the binary: `signer cluster init`, three `signer share`
//! processes, `signer keygen`, and `stratbox signer --config` with `[threshold]` signing
//! for the address the ceremony printed, with one share process killed (any two sign) and
//! refusing with two killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::aliases::U160;
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use sqlx::{Connection, Executor};
use stratbox_evm::abi::StratboxExecutor;
use stratbox_proto::v1::{self, signer_client::SignerClient};
use tonic::transport::{Channel, Endpoint};

const PASS: &str = "cli test passphrase";
const EXECUTOR: &str = "0x00000000000000000000000000000000000000e1";
const POOL: &str = "0x00000000000000000000000000000000000000c1";
const SBA: &str = "0x00000000000000000000000000000000000000a1";
const SBB: &str = "0x00000000000000000000000000000000000000b1";

fn stratbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(args)
        .env("STRATBOX_SIGNER_PASSPHRASE", PASS)
        .output()
        .expect("run stratbox")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Signer {
    child: Child,
    addr: String,
    admin: String,
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Signer {
    /// SIGTERM, and wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the signer did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Which key the world's signer holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    /// `signer dev-keystore create`.
    Dev,
    /// `signer cluster init`, three `signer share` processes, `signer keygen`.
    Threshold,
}

/// A world: certificates, a key, a policy and a config in `dir`.
struct World {
    dir: PathBuf,
    account: String,
    /// The allowlist entries `signer certs` printed.
    allowlist: String,
    /// The config's key section.
    key_section: String,
    /// The share processes, by index (threshold key only).
    shares: Vec<Option<Child>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for child in self.shares.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Three free loopback ports (bound and released: the share processes bind them next).
fn free_ports() -> [u16; 3] {
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let port = |i: usize| listeners[i].local_addr().expect("addr").port();
    [port(0), port(1), port(2)]
}

/// `stratbox signer cluster init`, the three share processes (primes seeded from the test
/// cache so the ceremony costs the protocol, not minutes of prime search), and `stratbox
/// signer keygen`. Returns the share processes and account 0's address.
fn threshold_key(dir: &Path) -> (Vec<Option<Child>>, String) {
    let ports = free_ports();
    let keys = dir.join("keys");
    let share_args: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = ok(stratbox(&[
        "signer",
        "cluster",
        "init",
        "--out",
        keys.to_str().unwrap_or_default(),
        "--share",
        &share_args[0],
        "--share",
        &share_args[1],
        "--share",
        &share_args[2],
    ]));
    assert!(out.contains("cluster file:"), "{out}");
    let again = failed(stratbox(&[
        "signer",
        "cluster",
        "init",
        "--out",
        keys.to_str().unwrap_or_default(),
        "--share",
        "a:1",
        "--share",
        "b:1",
        "--share",
        "c:1",
    ]));
    assert!(again.contains("refusing to overwrite"), "{again}");
    let primes = stratbox_threshold::local::cached_test_primes(&stratbox_testenv::target_dir())
        .expect("primes");
    let pass = stratbox_threshold::Passphrase::new(PASS).expect("passphrase");
    let cluster = keys.join("cluster.json");
    let mut shares = Vec::new();
    for index in 0..3u16 {
        let data = dir.join(format!("share-{index}"));
        stratbox_threshold::local::seed_primes(&data, index, &pass, &primes[usize::from(index)])
            .expect("seed primes");
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .args([
                "signer",
                "share",
                "--index",
                &index.to_string(),
                "--cluster",
            ])
            .arg(&cluster)
            .arg("--cert")
            .arg(keys.join(format!("share-{index}.crt.pem")))
            .arg("--key")
            .arg(keys.join(format!("share-{index}.key.pem")))
            .arg("--data-dir")
            .arg(&data)
            .env("STRATBOX_SHARE_PASSPHRASE", PASS)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn share");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines.next().expect("the share printed").expect("utf-8");
        assert_eq!(
            line,
            format!(
                "share {index} listening on {}",
                share_args[usize::from(index)]
            ),
        );
        std::thread::spawn(move || lines.for_each(drop));
        shares.push(Some(child));
    }
    let out = ok(Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["signer", "keygen", "--accounts", "2", "--cluster"])
        .arg(&cluster)
        .arg("--cert")
        .arg(keys.join("coordinator.crt.pem"))
        .arg("--key")
        .arg(keys.join("coordinator.key.pem"))
        .output()
        .expect("run keygen"));
    let accounts: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("account "))
        .collect();
    assert_eq!(accounts.len(), 2, "{out}");
    let account = accounts[0]
        .strip_prefix("0 ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    (shares, account)
}

impl World {
    /// SIGKILLs share process `index` (threshold key only).
    fn kill_share(&mut self, index: usize) {
        if let Some(mut share) = self.shares[index].take() {
            share.kill().expect("kill share");
            share.wait().expect("reap share");
        }
    }

    fn new(dir: &Path) -> World {
        World::with_key(dir, Key::Dev)
    }

    fn with_key(dir: &Path, key: Key) -> World {
        let out = ok(stratbox(&[
            "signer",
            "certs",
            "--out",
            dir.join("certs").to_str().unwrap_or_default(),
            "--approver",
            "alice",
            "--approver",
            "bob",
        ]));
        let allowlist = out
            .split("# allowlist entries for the signer's config file:")
            .nth(1)
            .expect("allowlist")
            .to_owned();
        assert!(
            allowlist.contains("[[engine_clients]]") && allowlist.contains("name = \"bob\""),
            "{out}"
        );
        let (shares, account, key_section) = match key {
            Key::Dev => {
                let ks = dir.join("dev-keystore.json");
                let out = ok(stratbox(&[
                    "signer",
                    "dev-keystore",
                    "create",
                    "--out",
                    ks.to_str().unwrap_or_default(),
                    "--accounts",
                    "1",
                ]));
                let account = out
                    .lines()
                    .find_map(|l| l.strip_prefix("key_index 0  "))
                    .expect("address printed")
                    .trim()
                    .to_owned();
                (
                    Vec::new(),
                    account,
                    "[keystore]\ndev_file = \"dev-keystore.json\"\n".to_string(),
                )
            }
            Key::Threshold => {
                let (shares, account) = threshold_key(dir);
                (
                    shares,
                    account,
                    "[threshold]\ncluster = \"keys/cluster.json\"\n\
                     cert = \"keys/coordinator.crt.pem\"\nkey = \"keys/coordinator.key.pem\"\n\
                     presign_pool = 2\nshare_timeout_ms = 1000\n"
                        .to_string(),
                )
            }
        };
        std::fs::write(
            dir.join("policy.toml"),
            format!(
                r#"chain_ids = [31337]
max_fee_per_gas = "100000000000"
max_priority_fee_per_gas = "10000000000"
max_gas_limit = 1000000
[[executors]]
address = "{EXECUTOR}"
functions = ["swap"]
[[tokens]]
symbol = "SBA"
address = "{SBA}"
decimals = 3
max_per_tx = "100000"
max_per_day = "1000000"
[[tokens]]
symbol = "SBB"
address = "{SBB}"
decimals = 3
max_per_tx = "100000"
max_per_day = "1000000"
[[pools]]
address = "{POOL}"
token0 = "SBA"
token1 = "SBB"
fee = 3000
[[accounts]]
address = "{account}"
key_index = 0
mode = "live"
thresholds = {{ SBA = {{ approval = "1000", two_approvals = "5000" }} }}
"#
            ),
        )
        .expect("policy");
        World {
            dir: dir.to_owned(),
            account,
            allowlist,
            key_section,
            shares,
        }
    }

    fn certs(&self) -> PathBuf {
        self.dir.join("certs")
    }

    fn database(&self, name: &str) -> String {
        format!("sqlite://{}", self.dir.join(format!("{name}.db")).display())
    }

    fn config(&self, name: &str, ttl: u64, allowlist: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "database = \"{}\"\npolicy = \"policy.toml\"\napproval_ttl_secs = {ttl}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ntls_cert = \"certs/signer.pem\"\ntls_key = \"certs/signer.key\"\nclient_ca = \"certs/ca.pem\"\n{}\n{allowlist}",
                self.database(name),
                self.key_section
            ),
        )
        .expect("config");
        path
    }

    fn spawn(&self, config: &Path) -> Signer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .args(["signer", "--config", config.to_str().unwrap_or_default()])
            .env("STRATBOX_SIGNER_PASSPHRASE", PASS)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn signer");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = loop {
            let l = lines
                .next()
                .expect("the signer printed its addresses")
                .expect("utf-8");
            if l.contains("listening on") {
                break l;
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        let addrs: Vec<&str> = line
            .split_whitespace()
            .filter(|w| w.starts_with("127.0.0.1:"))
            .collect();
        assert_eq!(addrs.len(), 2, "{line}");
        Signer {
            child,
            addr: addrs[0].to_owned(),
            admin: addrs[1].to_owned(),
        }
    }

    /// `stratbox approvals …` as `who`, against `signer`'s admin port.
    fn approvals(&self, signer: &Signer, who: &str, args: &[&str]) -> Output {
        self.admin_cmd("approvals", signer, who, args)
    }

    /// `stratbox signer …` as `who` (for the subcommands that use the admin port).
    fn signer_cmd(&self, signer: &Signer, who: &str, args: &[&str]) -> Output {
        self.admin_cmd("signer", signer, who, args)
    }

    fn admin_cmd(&self, command: &str, signer: &Signer, who: &str, args: &[&str]) -> Output {
        let certs = self.certs();
        let admin = format!(
            "https://localhost:{}",
            signer.admin.rsplit(':').next().unwrap_or_default()
        );
        Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .arg(command)
            .args(args)
            .env("STRATBOX_SIGNER_ADMIN", admin)
            .env("STRATBOX_SIGNER_CA", certs.join("ca.pem"))
            .env("STRATBOX_APPROVER_CERT", certs.join(format!("{who}.pem")))
            .env("STRATBOX_APPROVER_KEY", certs.join(format!("{who}.key")))
            .output()
            .expect("run stratbox")
    }

    async fn engine(&self, signer: &Signer) -> SignerClient<Channel> {
        let certs = self.certs();
        let tls = stratbox_signer::tls::client_tls(
            &certs.join("ca.pem"),
            Some((&certs.join("engine.pem"), &certs.join("engine.key"))),
            "localhost",
        )
        .expect("tls");
        let port = signer.addr.rsplit(':').next().unwrap_or_default();
        let channel = Endpoint::from_shared(format!("https://localhost:{port}"))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls config")
            .connect()
            .await
            .expect("engine connects");
        SignerClient::new(channel)
    }
}

fn swap(task: &str, account: &str, nonce: u64, amount_in: u64) -> v1::SignTransactionRequest {
    let a = |v: String| Some(v1::Amount { value: v });
    let pool = Address::from(stratbox_proto::parse_address(POOL).unwrap_or_default());
    v1::SignTransactionRequest {
        trace: Some(v1::TraceContext {
            trace_id: format!("{:032x}", nonce + 1),
            span_id: String::new(),
        }),
        task_id: task.into(),
        tx: Some(v1::Eip1559Transaction {
            chain_id: 31337,
            nonce,
            max_priority_fee_per_gas: a("1000000000".into()),
            max_fee_per_gas: a("20000000000".into()),
            gas_limit: 300_000,
            to: Some(v1::Address {
                value: EXECUTOR.into(),
            }),
            value: a("0".into()),
            input: StratboxExecutor::swapCall {
                pool,
                zeroForOne: true,
                amountIn: U256::from(amount_in),
                sqrtPriceLimitX96: U160::ZERO,
                amountOutMinimum: U256::from(1u8),
            }
            .abi_encode(),
        }),
        from: Some(v1::Address {
            value: account.into(),
        }),
        simulation: Some(v1::ReportedSimulation {
            amount0: a(amount_in.to_string()),
            amount1: a((amount_in * 99 / 100).to_string()),
            amount1_negative: true,
            gas_used: 130_000,
            gas_price: a("1000000000".into()),
            ..Default::default()
        }),
        approval_id: String::new(),
    }
}

fn outcome(r: &v1::SignTransactionResponse) -> v1::SignOutcome {
    v1::SignOutcome::try_from(r.outcome).unwrap_or(v1::SignOutcome::Unspecified)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_through_the_real_binary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let w = World::new(tmp.path());
    let config = w.config("main", 3600, &w.allowlist);
    let signer = w.spawn(&config);
    let mut engine = w.engine(&signer).await;

    // Over the threshold: waits.
    let big = swap("cli-big", &w.account, 0, 2000);
    let r = engine
        .sign_transaction(big.clone())
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(outcome(&r), v1::SignOutcome::AwaitingApproval, "{r:?}");
    let id = r.approval_id.clone();

    let list = ok(w.approvals(&signer, "alice", &["list", "--pending"]));
    assert!(
        list.contains(&id) && list.contains("PENDING") && list.contains("2 SBA"),
        "{list}"
    );
    let shown = ok(w.approvals(&signer, "bob", &["show", &id]));
    for want in [
        "executor.swap on SBA/SBB 0.3%",
        "at most 2 SBA",
        "amountIn = 2 SBA (2000)",
        "20 gwei",
        "as reported by the engine",
        "gas used 130000",
    ] {
        assert!(shown.contains(want), "show lacks {want:?}:\n{shown}");
    }
    assert!(
        !shown.contains(&hex_of_input(&big)),
        "show prints the decoded trade, not hex"
    );

    // Still not signed; approve; then the engine's re-send is signed.
    let again = engine
        .sign_transaction(big.clone())
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(
        again.approval_id, id,
        "no second approval for the same request"
    );
    let approved = ok(w.approvals(&signer, "alice", &["approve", &id]));
    assert!(approved.contains("now APPROVED"), "{approved}");
    let signed = engine
        .sign_transaction(big)
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(outcome(&signed), v1::SignOutcome::Signed, "{signed:?}");
    assert!(!signed.raw_transaction.is_empty());

    // Two approvers above 5000 SBA: alice twice does not count.
    let huge = swap("cli-huge", &w.account, 1, 6000);
    let r = engine
        .sign_transaction(huge.clone())
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(r.approvals_required, 2);
    let once = ok(w.approvals(&signer, "alice", &["approve", &r.approval_id]));
    assert!(once.contains("now PENDING (1 of 2 approvals)"), "{once}");
    let twice = failed(w.approvals(&signer, "alice", &["approve", &r.approval_id]));
    assert!(twice.contains("approval_already_decided"), "{twice}");
    let waiting = engine
        .sign_transaction(huge.clone())
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(outcome(&waiting), v1::SignOutcome::AwaitingApproval);
    // Bound to the fields shown: a stale hash is refused.
    let stale = failed(w.approvals(
        &signer,
        "bob",
        &["approve", &r.approval_id, "--fields-hash", &"0".repeat(64)],
    ));
    assert!(stale.contains("approval_fields_changed"), "{stale}");
    ok(w.approvals(&signer, "bob", &["approve", &r.approval_id]));
    let signed = engine
        .sign_transaction(huge)
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(outcome(&signed), v1::SignOutcome::Signed, "{signed:?}");

    // Reject needs a reason; then the engine is refused.
    let rej = swap("cli-rej", &w.account, 2, 3000);
    let r = engine
        .sign_transaction(rej.clone())
        .await
        .expect("sign")
        .into_inner();
    let no_reason =
        failed(w.approvals(&signer, "bob", &["reject", &r.approval_id, "--reason", " "]));
    assert!(no_reason.contains("reason"), "{no_reason}");
    let rejected = ok(w.approvals(
        &signer,
        "bob",
        &["reject", &r.approval_id, "--reason", "too big for today"],
    ));
    assert!(rejected.contains("now REJECTED"), "{rejected}");
    let refused = engine
        .sign_transaction(rej)
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(refused.reason_code, "approval_rejected");

    // Policy status over the admin port.
    let status = ok(w.signer_cmd(&signer, "alice", &["policy", "status"]));
    assert!(
        status.contains("active policy") && status.contains("pending: none"),
        "{status}"
    );

    // Audit: intact while untouched (read while the signer is stopped).
    signer.stop();
    let db = w.database("main");
    let intact = ok(stratbox(&["signer", "audit", "verify", "--database", &db]));
    assert!(intact.contains("audit log intact"), "{intact}");

    // Edited by hand (the append-only trigger dropped first): named.
    let mut conn = sqlx::SqliteConnection::connect(&format!("{db}?mode=rw"))
        .await
        .expect("open");
    conn.execute("DROP TRIGGER audit_log_no_update")
        .await
        .expect("drop trigger");
    conn.execute("UPDATE audit_log SET detail = 'approved by nobody' WHERE seq = 4")
        .await
        .expect("edit");
    drop(conn);
    let broken = failed(stratbox(&["signer", "audit", "verify", "--database", &db]));
    assert!(broken.contains("BROKEN at entry 4"), "{broken}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_approval_through_the_real_binary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let w = World::new(tmp.path());
    let config = w.config("short", 1, &w.allowlist);
    let signer = w.spawn(&config);
    let mut engine = w.engine(&signer).await;
    let req = swap("cli-exp", &w.account, 0, 2000);
    let r = engine
        .sign_transaction(req.clone())
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(outcome(&r), v1::SignOutcome::AwaitingApproval);
    let start = Instant::now();
    loop {
        let shown = ok(w.approvals(&signer, "alice", &["show", &r.approval_id]));
        if shown.contains("EXPIRED") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never expired:\n{shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = failed(w.approvals(&signer, "alice", &["approve", &r.approval_id]));
    assert!(
        late.contains("approval_expired") || late.contains("approval_not_pending"),
        "{late}"
    );
    let refused = engine
        .sign_transaction(req)
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(refused.reason_code, "approval_expired");
    signer.stop();
}

fn hex_of_input(req: &v1::SignTransactionRequest) -> String {
    hex::encode(req.tx.as_ref().map(|t| t.input.clone()).unwrap_or_default())
}

/// The address that signed a raw EIP-2718 transaction.
fn recovered_signer(raw: &[u8]) -> String {
    use alloy::eips::eip2718::Decodable2718;
    let envelope = alloy::consensus::TxEnvelope::decode_2718(&mut &raw[..]).expect("a transaction");
    let signed = envelope.as_eip1559().expect("an EIP-1559 transaction");
    let sig = signed.signature();
    let recoverable = stratbox_threshold::Signature {
        r: sig.r().to_be_bytes::<32>(),
        s: sig.s().to_be_bytes::<32>(),
        y_parity: sig.v(),
    };
    let address = recoverable
        .recover_address(&signed.signature_hash().0)
        .expect("recovers");
    stratbox_threshold::address_hex(&address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_key_through_the_real_binary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut w = World::with_key(tmp.path(), Key::Threshold);
    let config = w.config("threshold", 3600, &w.allowlist);
    let signer = w.spawn(&config);
    let mut engine = w.engine(&signer).await;

    let account = w.account.clone();
    let small = |nonce: u64| swap(&format!("t-{nonce}"), &account, nonce, 500);
    let r = engine
        .sign_transaction(small(0))
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(outcome(&r), v1::SignOutcome::Signed, "{r:?}");
    assert_eq!(
        recovered_signer(&r.raw_transaction),
        w.account.to_lowercase(),
        "signed by the key the ceremony made, for the address it printed"
    );

    // One share process gone: the other two still sign.
    w.kill_share(2);
    let r = engine
        .sign_transaction(small(1))
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(outcome(&r), v1::SignOutcome::Signed, "{r:?}");
    assert_eq!(
        recovered_signer(&r.raw_transaction),
        w.account.to_lowercase()
    );

    // Two gone: no pair can sign, and the answer says so; nothing is signed.
    w.kill_share(1);
    let r = engine
        .sign_transaction(small(2))
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(outcome(&r), v1::SignOutcome::Refused, "{r:?}");
    assert_eq!(r.reason_code, "key_unavailable", "{r:?}");
    assert!(r.raw_transaction.is_empty());
    signer.stop();
}
