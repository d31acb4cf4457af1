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
//! - `signer dev-keystore create --out FILE --accounts N` makes the development keystore
//!   (passphrase from `--passphrase-file` or `STRATBOX_SIGNER_PASSPHRASE`, never a flag).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use stratbox_proto::v1;
use stratbox_signer::audit::{self, Verdict};
use stratbox_signer::config::SignerConfig;
use stratbox_signer::keys::{DevKeystore, KdfParams, read_passphrase};

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
    /// The development keystore (every key in one encrypted file: development only).
    #[command(subcommand, name = "dev-keystore")]
    DevKeystore(KeystoreCommand),
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
    /// Make a new development keystore with N random accounts.
    Create {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        accounts: u32,
        /// File with the passphrase (default: STRATBOX_SIGNER_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// The addresses in a development keystore (no passphrase needed).
    Addresses { file: PathBuf },
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
        Some(Command::DevKeystore(k)) => keystore(k),
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
    let file = config.keystore.dev_file.clone().ok_or_else(|| {
        anyhow!(
            "[keystore] dev_file is not set: this build signs with the development keystore only"
        )
    })?;
    let passphrase = read_passphrase(config.keystore.passphrase_file.as_deref())?;
    let keys = tokio::task::spawn_blocking(move || DevKeystore::open(&file, &passphrase)).await??;
    tracing::warn!("signing with the DEVELOPMENT keystore: every key is in this process");
    let running = stratbox_signer::start(&config, Arc::new(keys)).await?;
    println!(
        "signer listening on {} (engine, mTLS) and {} (approvers, mTLS)",
        running.addr, running.admin_addr
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

fn keystore(command: KeystoreCommand) -> anyhow::Result<()> {
    match command {
        KeystoreCommand::Create {
            out,
            accounts,
            passphrase_file,
        } => {
            if accounts == 0 {
                bail!("--accounts must be at least 1");
            }
            let passphrase = read_passphrase(passphrase_file.as_deref())?;
            let ks = DevKeystore::create(&out, &passphrase, accounts, KdfParams::default())?;
            println!(
                "development keystore {} ({} accounts; every key in one file: development only)",
                out.display(),
                ks.len()
            );
            for a in DevKeystore::addresses_in(&out)?.iter().enumerate() {
                println!("key_index {}  {}", a.0, a.1);
            }
            Ok(())
        }
        KeystoreCommand::Addresses { file } => {
            for a in DevKeystore::addresses_in(&file)?.iter().enumerate() {
                println!("key_index {}  {}", a.0, a.1);
            }
            Ok(())
        }
    }
}
