//! `stratbox operator ...`, `stratbox host-key ...` and `stratbox feeder-key ...`: the keys of the engine's principals
//! (see `stratbox_engine::access`), managed directly on the engine's database by someone who
//! has access to it (there is no API to create the first key, so none to abuse).
//!
//! Operators change what runs and stop trading; hosts submit proposals and report
//! rollouts; feeders push reference prices. A key grants exactly one of the three. Revoking is effective at once for
//! operators and within `stratbox_registry::auth::HOST_KEY_CACHE` for hosts.

use anyhow::Context;
use stratbox_engine::{Role, Store};

/// The engine's database, as every key command takes it.
#[derive(clap::Args)]
pub struct Database {
    /// The engine's database: `sqlite://PATH` or `postgres://...`.
    #[arg(
        long,
        default_value = "sqlite://.stratbox/engine.db",
        env = "STRATBOX_DATABASE"
    )]
    pub database: String,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a key and print it once on stdout (only its sha256 is stored):
    /// `stratbox operator add alice > alice.key`.
    Add {
        name: String,
        #[command(flatten)]
        db: Database,
    },
    /// Revoke a key: from now on it authenticates nothing. The name stays taken, so audit
    /// rows keep meaning one holder.
    Revoke {
        name: String,
        #[command(flatten)]
        db: Database,
    },
    /// List names, creation times and revocations (never keys or hashes).
    List {
        #[command(flatten)]
        db: Database,
    },
}

/// Who ran the command, as far as this machine knows: the audit row's actor.
fn actor() -> String {
    format!(
        "db:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

async fn open(db: &Database) -> anyhow::Result<Store> {
    Store::connect(&db.database)
        .await
        .context("opening the engine's database")
}

/// Runs `command` on keys of `role` (`stratbox operator` or `stratbox host-key`).
pub async fn run(role: Role, command: Command) -> anyhow::Result<()> {
    let trace_id = stratbox_engine::trace::fresh();
    match command {
        Command::Add { name, db } => {
            let store = open(&db).await?;
            let key = stratbox_registry::auth::add_principal(
                store.pool(),
                &name,
                role,
                &actor(),
                &trace_id,
            )
            .await
            .map_err(anyhow::Error::new);
            store.close().await;
            let key = key?;
            println!("{}", key.expose());
            eprintln!(
                "{} {name} created; the key above is shown only this once (the engine keeps its sha256)",
                role.as_str()
            );
            Ok(())
        }
        Command::Revoke { name, db } => {
            let store = open(&db).await?;
            let done =
                stratbox_registry::auth::revoke(store.pool(), &name, role, &actor(), &trace_id)
                    .await
                    .map_err(anyhow::Error::new);
            store.close().await;
            done?;
            eprintln!("{} {name} revoked", role.as_str());
            Ok(())
        }
        Command::List { db } => {
            let store = open(&db).await?;
            let listed = stratbox_registry::auth::list(store.pool(), role)
                .await
                .map_err(anyhow::Error::new);
            store.close().await;
            for p in listed? {
                let state = if p.revoked_at_ms == 0 {
                    "active".to_owned()
                } else {
                    format!("revoked at {}", p.revoked_at_ms)
                };
                println!(
                    "{}\t{}\t{state}",
                    stratbox_host::display::Escaped(&p.name),
                    p.created_at_ms
                );
            }
            Ok(())
        }
    }
}
