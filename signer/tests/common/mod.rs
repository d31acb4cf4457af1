//! The signer's test harness: a real signer on loopback with real mutual TLS (a fresh dev
//! CA per test), a key (the development keystore, or with [`Options::threshold`] the 2-of-3
//! threshold key: three share servers on loopback holding the target dir's cached test key, made by one real ceremony), a policy file, and a store that is either a fresh SQLite
//! file or a fresh PostgreSQL database (dropped afterwards). The tests play the engine with
//! the generated tonic clients.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::aliases::U160;
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use sqlx::Connection;
use stratbox_evm::abi::{IERC20, StratboxExecutor};
use stratbox_proto::v1;
use stratbox_proto::v1::signer_admin_client::SignerAdminClient;
use stratbox_proto::v1::signer_client::SignerClient;
use stratbox_signer::certs::{DevCa, Issued};
use stratbox_signer::config::SignerConfig;
use stratbox_signer::keys::{self, DevKeystore, KeySource, Passphrase};
use stratbox_signer::{Running, start};
use stratbox_threshold::local::{LocalCluster, cached_test_key};
use tonic::transport::{Channel, Endpoint};

/// Runs `async fn $name(Backend)` as `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await;
            }
        }
    };
}

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const CHAIN: u64 = 31337;
pub const EXECUTOR: Address = Address::repeat_byte(0xe1);
pub const POOL: Address = Address::repeat_byte(0xc1);
// token0 must be the lower address.
pub const SBA: Address = Address::repeat_byte(0xa1);
pub const SBB: Address = Address::repeat_byte(0xb1);
pub const STRANGER: Address = Address::repeat_byte(0x55);

pub fn pg_admin() -> String {
    stratbox_testenv::postgres_url()
}

/// A fresh PostgreSQL database; fails (never skips) when the server is missing.
pub async fn fresh_pg() -> (String, String) {
    let admin = pg_admin();
    let name = format!("signer_test_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {admin} (STRATBOX_TEST_POSTGRES) is needed for the signer's PostgreSQL tests: {e}")
    });
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .expect("create database");
    (stratbox_testenv::postgres_database_url(&admin, &name), name)
}

pub async fn drop_pg(name: &str) {
    if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await;
    }
}

/// Makes the policy text from the keystore's two accounts.
pub type PolicyFn = Arc<dyn Fn(Address, Address) -> String + Send + Sync>;

/// Options of one harness.
#[derive(Clone)]
pub struct Options {
    pub timelock_secs: u64,
    pub approval_ttl_secs: u64,
    /// Policy text; `None` for [`policy_text`] with the keystore's accounts.
    pub policy: Option<PolicyFn>,
    /// Sign with the threshold key (three share servers holding the cached test key) instead of the
    /// development keystore.
    pub threshold: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timelock_secs: 24 * 3600,
            approval_ttl_secs: 3600,
            policy: None,
            threshold: false,
        }
    }
}

/// The policy the tests use. Account 0 is live (approval above 1000 SBA, two approvers
/// above 5000), account 1 is staged. Caps: 10000 per transaction, 20000 a day.
pub fn policy_text(account0: Address, account1: Address) -> String {
    format!(
        r#"
chain_ids = [{CHAIN}]
max_fee_per_gas = "100000000000"
max_priority_fee_per_gas = "10000000000"
max_gas_limit = 1000000

[[executors]]
address = "{EXECUTOR:#x}"
functions = ["swap", "mint"]

[[tokens]]
symbol = "SBA"
address = "{SBA:#x}"
decimals = 3
max_per_tx = "10000"
max_per_day = "20000"
functions = ["approve", "transfer"]

[[tokens]]
symbol = "SBB"
address = "{SBB:#x}"
decimals = 0
max_per_tx = "10000"
max_per_day = "20000"

[[pools]]
address = "{POOL:#x}"
token0 = "SBA"
token1 = "SBB"
fee = 3000

[[accounts]]
address = "{account0:#x}"
key_index = 0
mode = "live"
thresholds = {{ SBA = {{ approval = "1000", two_approvals = "5000" }}, SBB = {{ approval = "1000", two_approvals = "5000" }} }}

[[accounts]]
address = "{account1:#x}"
key_index = 1
mode = "staged"
thresholds = {{ SBA = {{ approval = "1000", two_approvals = "5000" }} }}
"#
    )
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
    pub config: SignerConfig,
    pub config_path: PathBuf,
    pub keys: Arc<dyn KeySource>,
    /// The share servers, when the key is the threshold key.
    pub cluster: Option<LocalCluster>,
    pub account: Address,
    pub staged_account: Address,
    pub issued: Vec<Issued>,
    pub intruder: Issued,
    pub pg_name: Option<String>,
    pub database: String,
}

impl Harness {
    pub async fn start(backend: Backend) -> Harness {
        Self::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, opts: Options) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        let ca = DevCa::create(&certs).expect("ca");
        let mut issued = vec![
            ca.issue_server(&certs, "signer", &["localhost".into(), "127.0.0.1".into()])
                .expect("server"),
            ca.issue_client(&certs, "engine", "engine").expect("engine"),
        ];
        for name in ["alice", "bob", "carol"] {
            issued.push(ca.issue_client(&certs, name, "approver").expect("approver"));
        }
        // Same CA, never allowlisted.
        let intruder = ca
            .issue_client(&certs, "intruder", "engine")
            .expect("intruder");

        let (key_section, cluster) = if opts.threshold {
            // The target dir's cached test key: one real ceremony per target dir (the
            // ceremony is tested where it is the subject: the threshold crate's whole_key
            // test and tests/signer_cli.rs).
            let key = tokio::time::timeout(
                Duration::from_secs(1200),
                cached_test_key(&stratbox_testenv::target_dir()),
            )
            .await
            .expect("cached test key in time")
            .expect("cached test key");
            let cluster = LocalCluster::start_with_key(&dir.path().join("threshold"), &key)
                .await
                .expect("share servers start");
            let section = format!(
                "[threshold]\ncluster = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\npresign_pool = 2\n",
                cluster.files.cluster.display(),
                cluster.files.coordinator.0.display(),
                cluster.files.coordinator.1.display(),
            );
            (section, Some(cluster))
        } else {
            let ks_path = dir.path().join("dev-keystore.json");
            let pass = Passphrase::new("test passphrase").expect("passphrase");
            tokio::task::spawn_blocking(move || DevKeystore::create(&ks_path, &pass))
                .await
                .expect("keystore task")
                .expect("keystore");
            std::fs::write(dir.path().join("passphrase"), "test passphrase\n").expect("passphrase");
            (
                "[keystore]\ndev_file = \"dev-keystore.json\"\npassphrase_file = \"passphrase\"\n"
                    .to_string(),
                None,
            )
        };
        // The accounts are derived from public data only, so the policy can name them before
        // the service starts; the key source is opened from the config as the binary does.
        let probe_config = |extra: &str| {
            format!(
                "policy = \"policy.toml\"\ntls_cert = \"certs/signer.pem\"\n\
                 tls_key = \"certs/signer.key\"\nclient_ca = \"certs/ca.pem\"\n{extra}"
            )
        };
        let probe_path = dir.path().join("probe.toml");
        std::fs::write(&probe_path, probe_config(&key_section)).expect("probe config");
        let keys = keys::open(&SignerConfig::load(&probe_path).expect("probe config loads"))
            .await
            .expect("key source opens");
        let account = Address::from(keys.address(0).expect("a0"));
        let staged_account = Address::from(keys.address(1).expect("a1"));
        let policy = match &opts.policy {
            Some(f) => f(account, staged_account),
            None => policy_text(account, staged_account),
        };
        std::fs::write(dir.path().join("policy.toml"), policy).expect("policy");

        let (database, pg_name) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("signer.db").display()),
                None,
            ),
            Backend::Postgres => {
                let (url, name) = fresh_pg().await;
                (url, Some(name))
            }
        };
        let fp = |n: &str| {
            issued
                .iter()
                .find(|i| i.name == n)
                .expect("issued")
                .spki_sha256
                .clone()
        };
        let config_text = format!(
            r#"
database = "{database}"
policy = "policy.toml"
policy_timelock_secs = {timelock}
approval_ttl_secs = {ttl}
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
tls_cert = "certs/signer.pem"
tls_key = "certs/signer.key"
client_ca = "certs/ca.pem"

{key_section}
[[engine_clients]]
name = "engine"
spki_sha256 = "{engine}"

[[approvers]]
name = "alice"
role = "approver"
spki_sha256 = "{alice}"

[[approvers]]
name = "bob"
role = "approver"
spki_sha256 = "{bob}"

[[approvers]]
name = "carol"
role = "viewer"
spki_sha256 = "{carol}"
"#,
            timelock = opts.timelock_secs,
            ttl = opts.approval_ttl_secs,
            engine = fp("engine"),
            alice = fp("alice"),
            bob = fp("bob"),
            carol = fp("carol"),
        );
        let config_path = dir.path().join("signer.toml");
        std::fs::write(&config_path, config_text).expect("config");
        let config = SignerConfig::load(&config_path).expect("config loads");
        let running = start(&config, keys.clone()).await.expect("signer starts");
        Harness {
            dir,
            running: Some(running),
            config,
            config_path,
            keys,
            cluster,
            account,
            staged_account,
            issued,
            intruder,
            pg_name,
            database,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    pub fn store(&self) -> &stratbox_signer::store::Store {
        self.running().signer.store()
    }

    async fn channel(
        &self,
        addr: std::net::SocketAddr,
        identity: Option<&str>,
    ) -> Result<Channel, tonic::transport::Error> {
        let certs = self.certs();
        let (cert, key) = match identity {
            Some(n) => (
                certs.join(format!("{n}.pem")),
                certs.join(format!("{n}.key")),
            ),
            None => (PathBuf::new(), PathBuf::new()),
        };
        let tls = stratbox_signer::tls::client_tls(
            &certs.join("ca.pem"),
            identity.map(|_| (cert.as_path(), key.as_path())),
            "localhost",
        )
        .expect("client tls");
        Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
            .expect("endpoint")
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
    }

    /// The engine's client (or another identity's, or none) on the signing port.
    pub async fn engine_as(
        &self,
        identity: Option<&str>,
    ) -> Result<SignerClient<Channel>, tonic::transport::Error> {
        Ok(SignerClient::new(
            self.channel(self.running().addr, identity).await?,
        ))
    }

    pub async fn engine(&self) -> SignerClient<Channel> {
        self.engine_as(Some("engine"))
            .await
            .expect("engine connects")
    }

    pub async fn admin_as(
        &self,
        identity: &str,
    ) -> Result<SignerAdminClient<Channel>, tonic::transport::Error> {
        Ok(SignerAdminClient::new(
            self.channel(self.running().admin_addr, Some(identity))
                .await?,
        ))
    }

    pub async fn admin(&self, identity: &str) -> SignerAdminClient<Channel> {
        self.admin_as(identity).await.expect("admin connects")
    }

    pub async fn sign(&self, req: v1::SignTransactionRequest) -> v1::SignTransactionResponse {
        self.engine()
            .await
            .sign_transaction(req)
            .await
            .expect("sign rpc")
            .into_inner()
    }

    pub async fn signed_count(&self) -> i64 {
        self.store().signed_count().await.expect("count")
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        stratbox_signer::audit::entries(self.store().pool())
            .await
            .expect("audit")
            .into_iter()
            .map(|s| s.entry.action)
            .collect()
    }

    /// Restarts the signer on the same store and files (same ports are not kept).
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        self.running = Some(
            start(&self.config, self.keys.clone())
                .await
                .expect("signer restarts"),
        );
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        if let Some(name) = &self.pg_name {
            drop_pg(name).await;
        }
        if let Some(cluster) = self.cluster.take() {
            let _ = cluster.shutdown().await;
        }
    }
}

pub fn amount(v: impl ToString) -> Option<v1::Amount> {
    Some(v1::Amount {
        value: v.to_string(),
    })
}

pub fn addr(a: Address) -> Option<v1::Address> {
    Some(v1::Address {
        value: format!("{a:#x}"),
    })
}

/// `executor.swap` of `amount_in` SBA for SBB.
pub fn swap_input(amount_in: u64) -> Vec<u8> {
    StratboxExecutor::swapCall {
        pool: POOL,
        zeroForOne: true,
        amountIn: U256::from(amount_in),
        sqrtPriceLimitX96: U160::ZERO,
        amountOutMinimum: U256::from(1u8),
    }
    .abi_encode()
}

pub fn transfer_input(to: Address, amount: u64) -> Vec<u8> {
    IERC20::transferCall {
        to,
        amount: U256::from(amount),
    }
    .abi_encode()
}

pub fn approve_input(spender: Address) -> Vec<u8> {
    IERC20::approveCall {
        spender,
        amount: U256::MAX,
    }
    .abi_encode()
}

pub struct Tx {
    pub chain_id: u64,
    pub nonce: u64,
    pub max_fee: u128,
    pub tip: u128,
    pub gas_limit: u64,
    pub to: Address,
    pub value: U256,
    pub input: Vec<u8>,
}

impl Tx {
    pub fn call(nonce: u64, to: Address, input: Vec<u8>) -> Tx {
        Tx {
            chain_id: CHAIN,
            nonce,
            max_fee: 20_000_000_000,
            tip: 1_000_000_000,
            gas_limit: 300_000,
            to,
            value: U256::ZERO,
            input,
        }
    }

    pub fn swap(nonce: u64, amount_in: u64) -> Tx {
        Tx::call(nonce, EXECUTOR, swap_input(amount_in))
    }

    pub fn wire(&self) -> v1::Eip1559Transaction {
        v1::Eip1559Transaction {
            chain_id: self.chain_id,
            nonce: self.nonce,
            max_priority_fee_per_gas: amount(self.tip),
            max_fee_per_gas: amount(self.max_fee),
            gas_limit: self.gas_limit,
            to: addr(self.to),
            value: amount(self.value),
            input: self.input.clone(),
        }
    }

    pub fn request(&self, task: &str, from: Address) -> v1::SignTransactionRequest {
        v1::SignTransactionRequest {
            trace: Some(v1::TraceContext {
                trace_id: format!("{:032x}", uuid::Uuid::new_v4().as_u128()),
                span_id: String::new(),
            }),
            task_id: task.into(),
            tx: Some(self.wire()),
            from: addr(from),
            simulation: Some(v1::ReportedSimulation {
                amount0: amount(1000),
                amount0_negative: false,
                amount1: amount(990),
                amount1_negative: true,
                gas_used: 120_000,
                gas_price: amount(1_000_000_000u64),
                notional: amount(1000),
                block: 7,
            }),
            approval_id: String::new(),
        }
    }
}

pub fn outcome(r: &v1::SignTransactionResponse) -> v1::SignOutcome {
    v1::SignOutcome::try_from(r.outcome).unwrap_or(v1::SignOutcome::Unspecified)
}

/// Asserts a refusal with `code`.
#[track_caller]
pub fn assert_refused(r: &v1::SignTransactionResponse, code: &str) {
    assert_eq!(outcome(r), v1::SignOutcome::Refused, "{r:?}");
    assert_eq!(r.reason_code, code, "{r:?}");
    assert!(
        r.raw_transaction.is_empty(),
        "a refusal carries no transaction: {r:?}"
    );
}

#[track_caller]
pub fn assert_signed(r: &v1::SignTransactionResponse) {
    assert_eq!(outcome(r), v1::SignOutcome::Signed, "{r:?}");
    assert!(!r.raw_transaction.is_empty());
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn approval_state(a: &v1::Approval) -> v1::ApprovalState {
    v1::ApprovalState::try_from(a.state).unwrap_or(v1::ApprovalState::Unspecified)
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
