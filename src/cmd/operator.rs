//! `stratbox operator ...`: operator accounts for the registry's admin API, managed directly
//! on the engine's database by someone who has access to it (there is no API to create the
//! first operator, so none to abuse).

use anyhow::Context;
use stratbox_engine::Store;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create an operator and print its API key once on stdout (only its sha256 is
    /// stored): `stratbox operator add alice > alice.key`.
    Add {
        name: String,
        /// The engine's database: `sqlite://PATH` or `postgres://...`.
        #[arg(
            long,
            default_value = "sqlite://.stratbox/engine.db",
            env = "STRATBOX_DATABASE"
        )]
        database: String,
    },
    /// List operators (names and creation times; never keys or hashes).
    List {
        #[arg(
            long,
            default_value = "sqlite://.stratbox/engine.db",
            env = "STRATBOX_DATABASE"
        )]
        database: String,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Add { name, database } => {
            let store = Store::connect(&database)
                .await
                .context("opening the engine's database")?;
            // Who ran the command, as far as this machine knows: the audit row's actor.
            let actor = format!(
                "db:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            );
            let trace_id = stratbox_engine::trace::fresh();
            let key = stratbox_registry::add_operator(store.pool(), &name, &actor, &trace_id)
                .await
                .map_err(anyhow::Error::new)?;
            store.close().await;
            println!("{}", key.expose());
            eprintln!(
                "operator {name} created; the key above is shown only this once (the engine keeps its sha256)"
            );
            Ok(())
        }
        Command::List { database } => {
            let store = Store::connect(&database)
                .await
                .context("opening the engine's database")?;
            let operators = stratbox_registry::auth::list_operators(store.pool())
                .await
                .map_err(anyhow::Error::new)?;
            store.close().await;
            for (name, created) in operators {
                println!("{}\t{created}", stratbox_host::display::Escaped(&name));
            }
            Ok(())
        }
    }
}
