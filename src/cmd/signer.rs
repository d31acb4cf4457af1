//! `stratbox signer`: Zone C.
//!
//! - `stratbox signer --config signer.toml [--listen … --tls-cert … --tls-key … --client-ca …]`
//!   (or `stratbox signer serve …`) runs the service: the engine's mTLS port and the
//!   approvers' admin port. SIGHUP re-reads the policy file (tightening at once, loosening
//!   after the timelock); Ctrl-C or SIGTERM stops it.
//! - `signer certs --out DIR [--approver NAME …]` makes a development CA, the signer's
//!   server certificate, the engine's and each approver's client certificate, and prints
//!   their SPKI fingerprints as allowlist entries.
//! - `signer audit verify --database URL` checks the audit log's hash chain.
//! - `signer policy status | reload` (admin port) and `signer policy check FILE` (offline).
//! - The threshold key (2-of-3, CGGMP21; see signer/threshold/README.md):
//!   `signer cluster init --out DIR --share HOST:PORT ×3` makes the shares' and the
//!   coordinator's TLS identities and the cluster file; `signer share --index I …` runs one
//!   share process; `signer keygen …` runs the distributed key generation ceremony once.
//! - `signer dev-keystore create --out FILE` makes the development keystore, the whole key in
//!   one file (passphrase from `--passphrase-file` or `STRATBOX_SIGNER_PASSPHRASE`, never a
//!   flag).

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use stratbox_proto::v1;
use stratbox_signer::audit::{self, Verdict};
use stratbox_signer::config::SignerConfig;
use stratbox_signer::keys::{self, DevKeystore, hex_addr, read_passphrase};
use stratbox_threshold::{DerivationPath, KeygenConfig, ShareConfig};

use super::approvals::{AdminRemote, admin_client, rpc, trace};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// How to run the service. The config file says everything; the flags override it.
#[derive(clap::Args, Clone, Default)]
pub struct ServeArgs {
    /// The signer's config file (see signer/README.md).
    #[arg(long, env = "STRATBOX_SIGNER_CONFIG")]
    config: Option<PathBuf>,
    /// The engine's port.
    #[arg(long)]
    listen: Option<String>,
    /// The approvers' port.
    #[arg(long)]
    admin_listen: Option<String>,
    /// The signer's certificate (PEM).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The CA that issues client certificates (PEM).
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// The signer's own store: sqlite://PATH or postgres://… (never the engine's).
    #[arg(long, env = "STRATBOX_SIGNER_DATABASE")]
    database: Option<String>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve(ServeArgs),
    /// Make a development CA and certificates, and print the allowlist entries.
    Certs {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// An approver certificate to make (repeat for more).
        #[arg(long = "approver", default_values_t = ["alice".to_string(), "bob".to_string()])]
        approvers: Vec<String>,
        /// Names the signer's server certificate is valid for.
        #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "signer".to_string()])]
        hosts: Vec<String>,
    },
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The development keystore (the whole key in one encrypted file: development only).
    #[command(subcommand, name = "dev-keystore")]
    DevKeystore(KeystoreCommand),
    /// The threshold key's cluster: identities and the cluster file.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run one share process of the 2-of-3 threshold key.
    Share(ShareArgs),
    /// Run the distributed key generation ceremony (once, with every share process up).
    Keygen(KeygenArgs),
}

#[derive(clap::Subcommand)]
enum ClusterCommand {
    /// Make the three shares' and the coordinator's TLS identities and the cluster file in
    /// DIR (cluster.json, share-I.{crt,key}.pem, coordinator.{crt,key}.pem). For one operator
    /// setting up a test or staging cluster; in production each machine makes its own key.
    Init {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// Where share 0, 1 and 2 listen, host:port (give it three times, in order).
        #[arg(long = "share", required = true, num_args = 1)]
        shares: Vec<String>,
    },
}

#[derive(clap::Args)]
struct ShareArgs {
    /// This share's index: 0, 1 or 2.
    #[arg(long)]
    index: u16,
    /// The cluster file.
    #[arg(long)]
    cluster: PathBuf,
    /// This share's certificate (PEM), the one the cluster file pins for INDEX.
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// Where the sealed share and its pregenerated primes are kept.
    #[arg(long)]
    data_dir: PathBuf,
    /// File with the passphrase sealing the share (default: STRATBOX_SHARE_PASSPHRASE).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Listen here instead of the cluster file's address (e.g. 0.0.0.0:50070 in a container).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Do not generate the Paillier primes in the background before the ceremony.
    #[arg(long)]
    no_pregenerate_primes: bool,
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// The cluster file.
    #[arg(long)]
    cluster: PathBuf,
    /// The coordinator's certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// How many account addresses (m/0 … m/N-1) to print.
    #[arg(long, default_value_t = 3)]
    accounts: u32,
    /// Give up after this many seconds (prime generation dominates a first ceremony).
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
}

#[derive(clap::Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exits non-zero naming the first altered or missing entry.
    Verify {
        /// The signer's store.
        #[arg(long, env = "STRATBOX_SIGNER_DATABASE")]
        database: String,
    },
}

#[derive(clap::Subcommand)]
enum PolicyCommand {
    /// The active policy and the changes waiting for their timelock (admin port).
    Status {
        /// Print the active policy too.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        remote: AdminRemote,
    },
    /// Re-read the policy file now, as SIGHUP does (admin port, approvers only).
    Reload {
        #[command(flatten)]
        remote: AdminRemote,
    },
    /// Check a policy file offline and print its canonical form and hash.
    Check { file: PathBuf },
}

#[derive(clap::Subcommand)]
enum KeystoreCommand {
    /// Make a new development keystore (one random master key; account i is m/i).
    Create {
        #[arg(long)]
        out: PathBuf,
        /// How many account addresses to print.
        #[arg(long, default_value_t = 1)]
        accounts: u32,
        /// File with the passphrase (default: STRATBOX_SIGNER_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// The account addresses of a development keystore.
    Addresses {
        file: PathBuf,
        /// How many account addresses to print.
        #[arg(long, default_value_t = 1)]
        accounts: u32,
        /// File with the passphrase (default: STRATBOX_SIGNER_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        None => serve(args.serve).await,
        Some(Command::Serve(s)) => serve(s).await,
        Some(Command::Certs {
            out,
            approvers,
            hosts,
        }) => certs(out, approvers, hosts),
        Some(Command::Audit(AuditCommand::Verify { database })) => verify(&database).await,
        Some(Command::Policy(p)) => policy(p).await,
        Some(Command::DevKeystore(k)) => keystore(k).await,
        Some(Command::Cluster(ClusterCommand::Init { out, shares })) => cluster_init(out, shares),
        Some(Command::Share(a)) => share(a).await,
        Some(Command::Keygen(a)) => keygen(a).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let path = args
        .config
        .clone()
        .ok_or_else(|| anyhow!("--config FILE (or STRATBOX_SIGNER_CONFIG) is required: it holds the allowlists, the policy file and the keystore"))?;
    let mut config = SignerConfig::load(&path)?;
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.admin_listen {
        config.admin_listen = v;
    }
    if let Some(v) = args.tls_cert {
        config.tls_cert = v;
    }
    if let Some(v) = args.tls_key {
        config.tls_key = v;
    }
    if let Some(v) = args.client_ca {
        config.client_ca = v;
    }
    if let Some(v) = args.database {
        config.database = v;
    }
    let keys = keys::open(&config)
        .await
        .context("opening the signer's key")?;
    let running = stratbox_signer::start(&config, keys).await?;
    println!(
        "signer listening on {} (engine, mTLS) and {} (approvers, mTLS), key: {}",
        running.addr,
        running.admin_addr,
        running.signer.keys().kind()
    );

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match running.signer.reload_policy("signer:SIGHUP").await {
                    Ok(summary) => eprintln!("policy reloaded: {summary}"),
                    Err(e) => eprintln!("policy reload refused, the active policy stays: {e}"),
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    running.shutdown().await;
    Ok(())
}

fn certs(out: PathBuf, approvers: Vec<String>, hosts: Vec<String>) -> anyhow::Result<()> {
    let issued = stratbox_signer::certs::dev_set(&out, &hosts, &approvers)?;
    println!("development CA: {}", out.join("ca.pem").display());
    for i in &issued {
        println!(
            "{:<8} {:<10} {}  spki sha256 {}",
            i.kind,
            i.name,
            i.cert.display(),
            i.spki_sha256
        );
    }
    println!("\n# allowlist entries for the signer's config file:\n");
    print!("{}", stratbox_signer::certs::allowlist_toml(&issued));
    Ok(())
}

async fn verify(database: &str) -> anyhow::Result<()> {
    let pool = stratbox_signer::store::open_read_only(database)
        .await
        .context("opening the signer's store")?;
    match audit::verify(&pool).await? {
        Verdict::Intact { entries, head } => {
            println!("audit log intact: {entries} entries, head {head}");
            Ok(())
        }
        Verdict::Broken { seq, why } => bail!("audit log BROKEN at entry {seq}: {why}"),
    }
}

async fn policy(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check { file } => {
            let p = stratbox_signer::Policy::load(&file)?;
            print!("{}", p.canonical_toml());
            println!("# sha256 {}", p.hash());
            Ok(())
        }
        PolicyCommand::Status { full, remote } => {
            let s = admin_client(&remote)
                .await?
                .policy_status(v1::PolicyStatusRequest {
                    trace: Some(trace()),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            print_status(&s, full || remote.json, remote.json);
            Ok(())
        }
        PolicyCommand::Reload { remote } => {
            let s = admin_client(&remote)
                .await?
                .reload_policy(v1::PolicyStatusRequest {
                    trace: Some(trace()),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            print_status(&s, false, remote.json);
            Ok(())
        }
    }
}

fn print_status(s: &v1::PolicyStatusResponse, full: bool, json: bool) {
    let now = stratbox_signer::store::now_ms();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "active_hash": s.active_hash,
                "active_since_ms": s.active_since_ms,
                "active_toml": s.active_toml,
                "timelock_secs": s.timelock_secs,
                "last_reload": s.last_reload,
                "pending": s.pending.iter().map(|p| serde_json::json!({
                    "policy_hash": p.policy_hash,
                    "effective_at_ms": p.effective_at_ms,
                    "changes": p.changes,
                })).collect::<Vec<_>>(),
            })
        );
        return;
    }
    println!(
        "active policy {} (since {} s ago)",
        s.active_hash,
        (now - s.active_since_ms).max(0) / 1000
    );
    println!("timelock for loosening changes: {} s", s.timelock_secs);
    if !s.last_reload.is_empty() {
        println!("last reload: {}", s.last_reload);
    }
    if s.pending.is_empty() {
        println!("pending: none");
    }
    for p in &s.pending {
        println!(
            "pending {} takes effect in {} s:",
            p.policy_hash,
            ((p.effective_at_ms - now).max(0) + 999) / 1000
        );
        for c in &p.changes {
            println!("  loosens: {c}");
        }
    }
    if full {
        println!("\n{}", s.active_toml);
    }
}

fn print_addresses(keys: &DevKeystore, accounts: u32) -> anyhow::Result<()> {
    for i in 0..accounts {
        println!(
            "key_index {i}  {}",
            hex_addr(&keys.address_at(&DerivationPath::account(i)?)?)
        );
    }
    Ok(())
}

async fn keystore(command: KeystoreCommand) -> anyhow::Result<()> {
    match command {
        KeystoreCommand::Create {
            out,
            accounts,
            passphrase_file,
        } => {
            let passphrase = read_passphrase(passphrase_file.as_deref())?;
            let path = out.clone();
            let ks = tokio::task::spawn_blocking(move || DevKeystore::create(&path, &passphrase))
                .await??;
            println!(
                "development keystore {} (the whole key in one file: development only)",
                out.display()
            );
            print_addresses(&ks, accounts)
        }
        KeystoreCommand::Addresses {
            file,
            accounts,
            passphrase_file,
        } => {
            let passphrase = read_passphrase(passphrase_file.as_deref())?;
            let ks = tokio::task::spawn_blocking(move || DevKeystore::open(&file, &passphrase))
                .await??;
            print_addresses(&ks, accounts)
        }
    }
}

fn cluster_init(out: PathBuf, shares: Vec<String>) -> anyhow::Result<()> {
    let [a, b, c]: [String; 3] = shares.try_into().map_err(|given: Vec<String>| {
        anyhow!(
            "give --share exactly three times (shares 0, 1, 2 in order); got {}",
            given.len()
        )
    })?;
    if out.join("cluster.json").exists() {
        bail!(
            "{} already holds a cluster.json; refusing to overwrite a cluster's identities",
            out.display()
        );
    }
    let files = stratbox_threshold::init_cluster(&out, [a, b, c])?;
    println!("cluster file: {}", files.cluster.display());
    for (i, (cert, key)) in files.shares.iter().enumerate() {
        println!("share {i}: {} {}", cert.display(), key.display());
    }
    println!(
        "coordinator (the signer service): {} {}",
        files.coordinator.0.display(),
        files.coordinator.1.display()
    );
    println!(
        "\nnext: start `stratbox signer share --index I` for I = 0, 1, 2, then run \
         `stratbox signer keygen` once"
    );
    Ok(())
}

async fn share(a: ShareArgs) -> anyhow::Result<()> {
    let mut config = ShareConfig::new(a.index, a.cluster, a.cert, a.key, a.data_dir);
    config.passphrase_file = a.passphrase_file;
    config.listen = a.listen;
    config.pregenerate_primes = !a.no_pregenerate_primes;
    let address = stratbox_threshold::share::listen_address(&config)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("share {}: cannot listen on {address}", a.index))?;
    println!("share {} listening on {}", a.index, listener.local_addr()?);
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    stratbox_threshold::run_share_on(listener, config, shutdown).await?;
    Ok(())
}

async fn keygen(a: KeygenArgs) -> anyhow::Result<()> {
    let mut config = KeygenConfig::new(a.cluster, a.cert, a.key);
    config.accounts = a.accounts;
    config.timeout = std::time::Duration::from_secs(a.timeout_secs);
    let outcome = stratbox_threshold::keygen(&config, |p| eprintln!("keygen: {p}")).await?;
    eprintln!(
        "keygen: ceremony {} done in {:.1} s",
        outcome.ceremony_id,
        outcome.elapsed.as_secs_f64()
    );
    for (account, address) in &outcome.addresses {
        println!("account {account} {}", hex_addr(address));
    }
    Ok(())
}
