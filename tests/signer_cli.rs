//! The signer through the real `stratbox` binary: `signer certs` makes the identities,
//! `signer dev-keystore create` the keys, `stratbox signer --config` serves over mutual TLS,
//! the test plays the engine with the generated client, and the approvers work with
//! `stratbox approvals list/show/approve/reject`. Then `signer policy status` and `signer
//! audit verify` on the untouched log and on one edited by hand.

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

/// A world: certificates, a keystore, a policy and a config in `dir`.
struct World {
    dir: PathBuf,
    account: String,
    /// The allowlist entries `signer certs` printed.
    allowlist: String,
}

impl World {
    fn new(dir: &Path) -> World {
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
                "database = \"{}\"\npolicy = \"policy.toml\"\napproval_ttl_secs = {ttl}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ntls_cert = \"certs/signer.pem\"\ntls_key = \"certs/signer.key\"\nclient_ca = \"certs/ca.pem\"\n[keystore]\ndev_file = \"dev-keystore.json\"\n\n{allowlist}",
                self.database(name)
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
