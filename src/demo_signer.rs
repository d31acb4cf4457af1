//! Zone C for a demo chain, inside this process: the signer service (mutual TLS on two
//! loopback ports, its own SQLite store, a development CA of its own) signing with the 2-of-3
//! threshold key through three share services run as tasks, or with the development
//! keystore; a deny-by-default policy naming exactly one deployment (its executor, tokens and
//! pool) and the one account it signs for; and that account made ready on a node with
//! unlocked accounts (Anvil): ether for gas, tokens, the executor approved.
//!
//! This is what `stratbox up --live` runs. The signer and the shares speak exactly the TLS
//! and protocols they speak as separate processes (`stratbox signer`, `stratbox signer
//! share`); only the process boundaries are missing, so nothing here isolates the key from
//! the engine's memory. Everything the signer keeps (certificates, store with its audit
//! chain, policy, the shares' sealed files) stays in one directory, so a run can be looked at
//! afterwards (`stratbox signer audit verify --database sqlite://DIR/signer.db`).
//!
//! [`write_process_files`] writes the same signer with the threshold key for separate
//! processes instead (`stratbox signer share` three times, `stratbox signer --config`), on
//! fixed loopback ports so a process killed and started again is found where it was: what
//! the chaos test (`tests/live_chaos.rs`) runs and kills.
//!
//! The threshold key is the one [`stratbox_threshold::local::cached_test_key`] keeps in a
//! cache directory: made once by a real keygen ceremony among three in-process shares (the
//! first time: Paillier prime search and the ceremony, minutes of CPU on a small machine),
//! read from the cache after. Its shares are sealed with a public passphrase, so it is a demo
//! key for a throwaway chain, never one for real funds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::network::{Ethereum, TransactionBuilder};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::{Address, U256};
use anyhow::Context;
use stratbox_engine::live::SignerEndpoint;
use stratbox_evm::abi::IERC20;
use stratbox_evm::deploy::{self, Deployment};
use stratbox_signer::config::SignerConfig;
use stratbox_signer::keys::{self, DevKeystore, KeySource, Passphrase};
use stratbox_threshold::local::{LocalCluster, cached_test_key};

/// Where the signer's key comes from.
#[derive(Debug, Clone)]
pub enum DemoKey {
    /// The 2-of-3 threshold key, its three share services run as tasks of this process; the
    /// key is made once and kept in `cache` (see the module docs).
    Threshold {
        /// The directory the key (and the primes it was made on) is cached in.
        cache: PathBuf,
    },
    /// Development mode: a fresh development keystore, the whole key in this process.
    DevKeystore,
}

/// Where a demo keeps its threshold key unless told: the cargo target directory (where the
/// tests and `stratbox bench signer` keep theirs, so one ceremony serves them all) when
/// `CARGO_TARGET_DIR` is set or `./target` exists, else `.stratbox/`.
pub fn default_key_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    let target = PathBuf::from("target");
    if target.is_dir() {
        return target;
    }
    PathBuf::from(".stratbox")
}

/// The policy's caps and approval thresholds, in raw units, the same for both tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most of a token one transaction may pay out.
    pub max_per_tx: U256,
    /// Most of a token the account may pay out in any rolling 24 hours.
    pub max_per_day: U256,
    /// Outflows above this wait for one approver.
    pub approval: U256,
    /// Outflows above this wait for two distinct approvers.
    pub two_approvals: U256,
}

const E18: u128 = 1_000_000_000_000_000_000;

impl Default for Limits {
    /// Room for a demo: the example strategies' trades (a momentum swap pays 0.1 of a token,
    /// a maker's mint at most about 1.3) sign without a human, far below the caps.
    fn default() -> Self {
        Limits {
            max_per_tx: U256::from(100 * E18),
            max_per_day: U256::from(1_000_000 * E18),
            approval: U256::from(50 * E18),
            two_approvals: U256::from(90 * E18),
        }
    }
}

/// What the account is given before it trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funding {
    /// Wei, for gas.
    pub ether: U256,
    /// Raw units of each pool token.
    pub tokens: U256,
}

impl Default for Funding {
    fn default() -> Self {
        Funding {
            ether: U256::from(100 * E18),
            tokens: U256::from(10_000 * E18),
        }
    }
}

/// A running signer with its shares (see the module docs). Stop it with
/// [`DemoSigner::shutdown`]; dropped, its tasks end with the runtime.
pub struct DemoSigner {
    running: stratbox_signer::Running,
    shares: Option<LocalCluster>,
    dir: PathBuf,
    account: Address,
    key_source: &'static str,
}

impl DemoSigner {
    /// Starts the signer for `deployment` in `dir` (created; it must not hold another
    /// signer's files). `progress` is told what takes time before it starts.
    pub async fn start(
        dir: &Path,
        key: &DemoKey,
        deployment: &Deployment,
        provider: &impl Provider<Ethereum>,
        limits: Limits,
        progress: impl Fn(&str),
    ) -> anyhow::Result<DemoSigner> {
        let Prepared {
            dir,
            chain_id,
            tokens,
            allowlist,
        } = prepare(dir, deployment, provider).await?;
        let dir = &dir;

        let (key_section, shares) = match key {
            DemoKey::Threshold { cache } => {
                progress(&format!(
                    "opening the demo threshold key cached in {} (the first time: a keygen \
                     ceremony, minutes on a small machine)...",
                    cache.display()
                ));
                let key = cached_test_key(cache)
                    .await
                    .with_context(|| format!("the demo threshold key in {}", cache.display()))?;
                progress(
                    "starting the three share services (each opens its sealed share and \
                     precomputes its Paillier tables, up to half a minute; until they answer \
                     the coordinator logs them as down)...",
                );
                let cluster = LocalCluster::start_with_key(&dir.join("shares"), &key)
                    .await
                    .context("starting the threshold key's share services")?;
                (threshold_section(&cluster.files), Some(cluster))
            }
            DemoKey::DevKeystore => {
                // A throwaway passphrase: the keystore lives as long as this demo's files.
                let passphrase = uuid::Uuid::new_v4().simple().to_string();
                let file = dir.join("dev-keystore.json");
                let pass =
                    Passphrase::new(passphrase.as_str()).context("the keystore passphrase")?;
                let path = file.clone();
                tokio::task::spawn_blocking(move || DevKeystore::create(&path, &pass))
                    .await
                    .context("keystore task")?
                    .context("creating the development keystore")?;
                write_private(&dir.join("passphrase"), &format!("{passphrase}\n"))?;
                (
                    "[keystore]\ndev_file = \"dev-keystore.json\"\npassphrase_file = \"passphrase\"\n"
                        .to_owned(),
                    None,
                )
            }
        };
        let config_path = write_config(dir, &allowlist, &key_section, 0, 0)?;
        let config = SignerConfig::load(&config_path).context("the signer's config")?;

        // The account is public data of the key (m/0), so the policy can name it before the
        // service starts, as an operator's would.
        let keys: Arc<dyn KeySource> = keys::open(&config)
            .await
            .context("opening the signer's key")?;
        let account = Address::from(keys.address(0).context("the key's account 0")?);
        let key_source = keys.kind();
        let policy = policy_text(chain_id, deployment, &tokens, account, limits);
        std::fs::write(dir.join("policy.toml"), policy).context("writing the signer's policy")?;
        let running = stratbox_signer::start(&config, keys)
            .await
            .context("starting the signer")?;
        Ok(DemoSigner {
            running,
            shares,
            dir: dir.to_path_buf(),
            account,
            key_source,
        })
    }

    /// The account the signer signs for (key index 0).
    pub fn account(&self) -> Address {
        self.account
    }

    /// The key source's name as the signer logs it (`threshold-2of3-cggmp21`, `dev-keystore`).
    pub fn key_source(&self) -> &'static str {
        self.key_source
    }

    /// Where its files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The approvers' port.
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.running.admin_addr
    }

    /// How the engine reaches it: its port and the engine's client certificate.
    pub fn endpoint(&self) -> SignerEndpoint {
        endpoint(&self.dir, self.running.addr.port())
    }

    /// Gives the account ether and tokens from the deployer and approves the executor for
    /// both tokens, sending as the account itself through the node's impersonation (Anvil):
    /// the demo has no other way to move the account's first nonces, and these moves happen
    /// before the engine opens the account's wallet, so its ledger starts from them.
    pub async fn fund(
        &self,
        provider: &impl Provider<Ethereum>,
        deployment: &Deployment,
        funding: Funding,
    ) -> anyhow::Result<()> {
        fund_account(provider, deployment, self.account, funding).await
    }

    /// Stops the signer, then the share services.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.running.shutdown().await;
        if let Some(shares) = self.shares {
            shares
                .shutdown()
                .await
                .context("stopping the share services")?;
        }
        Ok(())
    }
}

/// Loopback ports of a signer run as separate processes ([`write_process_files`]): fixed,
/// so a process that is killed and started again is found where its clients look for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessPorts {
    /// The engine's port of the signer service.
    pub signer: u16,
    /// The approvers' port.
    pub admin: u16,
    /// Shares 0, 1 and 2.
    pub shares: [u16; 3],
}

/// The files of the same signer as [`DemoSigner`]'s threshold one, to be run as four
/// processes: `stratbox signer share` three times ([`ProcessSigner::share_args`]) and
/// `stratbox signer --config` ([`ProcessSigner::config`]). Nothing runs until they are
/// started; the service needs two shares answering when it starts.
#[derive(Debug, Clone)]
pub struct ProcessSigner {
    /// Everything is under this directory.
    pub dir: PathBuf,
    /// The service's config file.
    pub config: PathBuf,
    /// The service's store (`stratbox signer audit verify --database` this).
    pub database: String,
    /// Each share's configuration (cluster file, identity, data directory, passphrase file).
    pub shares: [stratbox_threshold::ShareConfig; 3],
    /// The coordinator's connection to the shares as the service makes it (no background
    /// presigning), for a caller that waits until the shares answer.
    pub client: stratbox_threshold::ClientConfig,
    /// The account the signer signs for (key index 0).
    pub account: Address,
    port: u16,
}

impl ProcessSigner {
    /// The arguments after `stratbox` that run share `index`.
    pub fn share_args(&self, index: usize) -> Vec<std::ffi::OsString> {
        let s = &self.shares[index];
        let mut args: Vec<std::ffi::OsString> = vec![
            "signer".into(),
            "share".into(),
            "--index".into(),
            s.index.to_string().into(),
            "--cluster".into(),
            s.cluster.clone().into(),
            "--cert".into(),
            s.cert.clone().into(),
            "--key".into(),
            s.key.clone().into(),
            "--data-dir".into(),
            s.data_dir.clone().into(),
            "--no-pregenerate-primes".into(),
        ];
        if let Some(file) = &s.passphrase_file {
            args.push("--passphrase-file".into());
            args.push(file.clone().into());
        }
        args
    }

    /// How the engine reaches the service: its port and the engine's client certificate.
    pub fn endpoint(&self) -> SignerEndpoint {
        endpoint(&self.dir, self.port)
    }

    /// Gives the account ether and tokens and approves the executor (see [`DemoSigner::fund`]).
    pub async fn fund(
        &self,
        provider: &impl Provider<Ethereum>,
        deployment: &Deployment,
        funding: Funding,
    ) -> anyhow::Result<()> {
        fund_account(provider, deployment, self.account, funding).await
    }
}

/// Writes in `dir` (created; it must not hold another signer's files) what
/// [`DemoSigner::start`] makes for the cached threshold key of `cache`, for processes: the
/// development CA and certificates, the cluster file naming the shares' `ports`, each share's
/// sealed share from the cache in its own data directory with the (public) passphrase of the
/// cached key, the policy for `deployment`, and the service's config listening on `ports`.
/// The account is computed from the key's public data, so nothing needs to run yet.
pub async fn write_process_files(
    dir: &Path,
    cache: &Path,
    deployment: &Deployment,
    provider: &impl Provider<Ethereum>,
    limits: Limits,
    ports: ProcessPorts,
) -> anyhow::Result<ProcessSigner> {
    let Prepared {
        dir,
        chain_id,
        tokens,
        allowlist,
    } = prepare(dir, deployment, provider).await?;
    let key = cached_test_key(cache)
        .await
        .with_context(|| format!("the demo threshold key in {}", cache.display()))?;
    let account = Address::from(
        key.outcome
            .key
            .address(&stratbox_threshold::DerivationPath::account(0)?)
            .context("the key's account 0")?,
    );
    let keys_dir = dir.join("shares");
    let files =
        stratbox_threshold::init_cluster(&keys_dir, ports.shares.map(|p| format!("127.0.0.1:{p}")))
            .context("writing the shares' identities and cluster file")?;
    let passphrase_file = keys_dir.join("passphrase");
    write_private(
        &passphrase_file,
        stratbox_threshold::local::TEST_KEY_PASSPHRASE,
    )?;
    let mut shares = Vec::new();
    for index in 0..3u16 {
        let data_dir = stratbox_threshold::local::data_dir(&keys_dir, index);
        key.install_share(index, &data_dir)
            .with_context(|| format!("installing share {index}"))?;
        let (cert, tls_key) = files.shares[usize::from(index)].clone();
        let mut config = stratbox_threshold::ShareConfig::new(
            index,
            files.cluster.clone(),
            cert,
            tls_key,
            data_dir,
        );
        config.passphrase_file = Some(passphrase_file.clone());
        config.pregenerate_primes = false;
        shares.push(config);
    }
    let shares: [stratbox_threshold::ShareConfig; 3] = shares
        .try_into()
        .map_err(|_| anyhow::anyhow!("three shares"))?;
    let key_section = threshold_section(&files);
    let config = write_config(&dir, &allowlist, &key_section, ports.signer, ports.admin)?;
    std::fs::write(
        dir.join("policy.toml"),
        policy_text(chain_id, deployment, &tokens, account, limits),
    )
    .context("writing the signer's policy")?;
    let mut client = stratbox_threshold::ClientConfig::new(
        files.cluster.clone(),
        files.coordinator.0.clone(),
        files.coordinator.1.clone(),
    );
    client.pool_target = 0;
    Ok(ProcessSigner {
        database: database_url(&dir),
        dir,
        config,
        shares,
        client,
        account,
        port: ports.signer,
    })
}

/// What both ways of running the demo signer start from.
struct Prepared {
    /// Absolute: the config names files by paths taken from its own directory, and absolute
    /// ones keep the shares' files where they were made.
    dir: PathBuf,
    chain_id: u64,
    tokens: [(String, u8); 2],
    /// The `[[engine_clients]]` and `[[approvers]]` entries of the certificates made.
    allowlist: String,
}

/// Makes `dir`, reads the chain id and the pool tokens' terms, and issues the development
/// certificates: the engine's and one approver's client certificates, from a CA of this run.
async fn prepare(
    dir: &Path,
    deployment: &Deployment,
    provider: &impl Provider<Ethereum>,
) -> anyhow::Result<Prepared> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::path::absolute(dir)
        .with_context(|| format!("the absolute path of {}", dir.display()))?;
    let chain_id = provider
        .get_chain_id()
        .await
        .context("asking the node for its chain id")?;
    let tokens = [
        token_terms(provider, deployment.token0).await?,
        token_terms(provider, deployment.token1).await?,
    ];
    anyhow::ensure!(
        tokens[0].0 != tokens[1].0,
        "both pool tokens call themselves {}: the policy names tokens by symbol",
        tokens[0].0
    );
    let issued = stratbox_signer::certs::dev_set(
        &dir.join("certs"),
        &["localhost".to_owned(), "127.0.0.1".to_owned()],
        &["alice".to_owned()],
    )
    .context("making the signer's development certificates")?;
    let allowlist = stratbox_signer::certs::allowlist_toml(&issued);
    Ok(Prepared {
        dir,
        chain_id,
        tokens,
        allowlist,
    })
}

/// The config's `[threshold]` section for a cluster's files.
fn threshold_section(files: &stratbox_threshold::ClusterFiles) -> String {
    format!(
        "[threshold]\ncluster = {}\ncert = {}\nkey = {}\n\
         # A few presignatures ready per pair: each costs CPU the demo shares.\n\
         presign_pool = 2\n",
        toml_path(&files.cluster),
        toml_path(&files.coordinator.0),
        toml_path(&files.coordinator.1),
    )
}

fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("signer.db").display())
}

/// Writes `dir/signer.toml` (the store in `dir`, the policy and certificates beside it,
/// listening on loopback `port` and `admin_port`, 0 for any) and returns its path.
fn write_config(
    dir: &Path,
    allowlist: &str,
    key_section: &str,
    port: u16,
    admin_port: u16,
) -> anyhow::Result<PathBuf> {
    let path = dir.join("signer.toml");
    let text = format!(
        "database = {}\npolicy = \"policy.toml\"\nlisten = \"127.0.0.1:{port}\"\n\
         admin_listen = \"127.0.0.1:{admin_port}\"\ntls_cert = \"certs/signer.pem\"\n\
         tls_key = \"certs/signer.key\"\nclient_ca = \"certs/ca.pem\"\n\n{allowlist}\n{key_section}",
        toml_string(&database_url(dir)),
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// How the engine reaches a signer whose files are in `dir`, listening on `port`.
fn endpoint(dir: &Path, port: u16) -> SignerEndpoint {
    let certs = dir.join("certs");
    SignerEndpoint {
        url: format!("https://localhost:{port}"),
        ca: certs.join("ca.pem"),
        cert: certs.join("engine.pem"),
        key: certs.join("engine.key"),
        server_name: "localhost".into(),
    }
}

/// See [`DemoSigner::fund`].
async fn fund_account(
    provider: &impl Provider<Ethereum>,
    deployment: &Deployment,
    account: Address,
    funding: Funding,
) -> anyhow::Result<()> {
    deploy::send_request(
        provider,
        TransactionRequest::default()
            .with_from(deployment.deployer)
            .with_to(account)
            .with_value(funding.ether),
        "fund the signer's account with ether",
    )
    .await?;
    deployment
        .fund(provider, account, funding.tokens, funding.tokens)
        .await
        .context("giving the signer's account tokens")?;
    let _: () = provider
        .raw_request("anvil_impersonateAccount".into(), (account,))
        .await
        .context("anvil_impersonateAccount (the demo needs Anvil)")?;
    let approved = deployment.approve_executor(provider, account).await;
    let _: () = provider
        .raw_request("anvil_stopImpersonatingAccount".into(), (account,))
        .await
        .context("anvil_stopImpersonatingAccount")?;
    approved.context("approving the executor from the signer's account")?;
    Ok(())
}

/// A token's symbol and decimals as its contract gives them.
async fn token_terms(
    provider: &impl Provider<Ethereum>,
    token: Address,
) -> anyhow::Result<(String, u8)> {
    let symbol = deploy::read_call(provider, token, IERC20::symbolCall {}, "symbol")
        .await
        .with_context(|| format!("reading the symbol of {token:#x}"))?;
    let decimals = deploy::read_call(provider, token, IERC20::decimalsCall {}, "decimals")
        .await
        .with_context(|| format!("reading the decimals of {token:#x}"))?;
    // The symbol lands in the policy file and before approvers: only what reads plainly.
    let clean = symbol.len() <= 32
        && !symbol.is_empty()
        && symbol.chars().all(|c| c.is_ascii_alphanumeric());
    anyhow::ensure!(
        clean,
        "token {token:#x} calls itself {symbol:?}: the demo policy wants 1-32 letters and digits"
    );
    Ok((symbol, decimals))
}

/// The policy: this chain, the deployment's executor (swap, mint, burn), its two tokens and
/// pool, and `account` signing live (only outflows above `limits.approval` wait).
fn policy_text(
    chain_id: u64,
    d: &Deployment,
    tokens: &[(String, u8); 2],
    account: Address,
    limits: Limits,
) -> String {
    let [(s0, dec0), (s1, dec1)] = tokens;
    let token = |symbol: &str, address: Address, decimals: u8| {
        format!(
            "[[tokens]]\nsymbol = \"{symbol}\"\naddress = \"{address:#x}\"\ndecimals = {decimals}\n\
             max_per_tx = \"{}\"\nmax_per_day = \"{}\"\n\n",
            limits.max_per_tx, limits.max_per_day
        )
    };
    let threshold = format!(
        "{{ approval = \"{}\", two_approvals = \"{}\" }}",
        limits.approval, limits.two_approvals
    );
    format!(
        "# Written by `stratbox up --live` for the deployment it made.\n\
         chain_ids = [{chain_id}]\n\
         max_fee_per_gas = \"100000000000\"\n\
         max_priority_fee_per_gas = \"10000000000\"\n\
         max_gas_limit = 1000000\n\n\
         [[executors]]\naddress = \"{executor:#x}\"\nfunctions = [\"swap\", \"mint\", \"burn\"]\n\n\
         {t0}{t1}\
         [[pools]]\naddress = \"{pool:#x}\"\ntoken0 = \"{s0}\"\ntoken1 = \"{s1}\"\nfee = {fee}\n\n\
         [[accounts]]\naddress = \"{account:#x}\"\nkey_index = 0\nmode = \"live\"\n\
         thresholds = {{ {s0} = {threshold}, {s1} = {threshold} }}\n",
        executor = d.executor,
        t0 = token(s0, d.token0, *dec0),
        t1 = token(s1, d.token1, *dec1),
        pool = d.pool,
        fee = d.fee,
    )
}

/// A TOML basic string (paths may hold quotes or backslashes).
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn toml_path(p: &Path) -> String {
    toml_string(&p.display().to_string())
}

/// Writes a secret file readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_parses_and_names_the_deployment() {
        let d = Deployment {
            deployer: Address::repeat_byte(1),
            factory: Address::repeat_byte(2),
            pool: Address::repeat_byte(3),
            token0: Address::repeat_byte(4),
            token1: Address::repeat_byte(5),
            executor: Address::repeat_byte(6),
            fee: 3000,
            tick_spacing: 60,
        };
        let tokens = [("SBA".to_owned(), 18), ("SBB".to_owned(), 18)];
        let text = policy_text(
            31337,
            &d,
            &tokens,
            Address::repeat_byte(7),
            Limits::default(),
        );
        let policy = stratbox_signer::Policy::from_toml(&text).expect("the demo policy parses");
        assert_eq!(
            policy.chain_ids.iter().copied().collect::<Vec<_>>(),
            [31337]
        );
        assert_eq!(policy.executors.len(), 1);
        assert_eq!((policy.tokens.len(), policy.pools.len()), (2, 1));
        assert_eq!(policy.accounts.len(), 1);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
