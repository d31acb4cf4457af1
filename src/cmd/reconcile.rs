//! `stratbox reconcile`: the signing account's balances as the engine's ledger books them,
//! beside the chain's, at the node's latest block (see `stratbox_engine::reconcile`).
//!
//! Exit status 0 only when every difference is zero, so a cron job or a deploy check can
//! run it. A difference the operator has traced (a deposit, a withdrawal) is booked with
//! `--adopt --reason TEXT`, audited under the user who ran it; the live path then stops
//! seeing it, and the kill switch it engaged can be cleared.

use anyhow::{Context, bail};
use stratbox_engine::ledger;
use stratbox_engine::proposal::hex_address;
use stratbox_engine::reconcile::reconcile;
use stratbox_engine::store::Audit;

use super::operator::Database;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: Database,
    /// The chain's JSON-RPC node.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    chain: String,
    /// The signing account (0x address), as given to `stratbox engine --account`.
    #[arg(long)]
    account: String,
    /// Book the differences found into the ledger (against the account's opening balances)
    /// after checking that nothing is in flight. Needs `--reason`.
    #[arg(long, requires = "reason")]
    adopt: bool,
    /// Why the differences are adopted, for the audit log.
    #[arg(long)]
    reason: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let account = stratbox_proto::parse_address(&args.account)
        .with_context(|| format!("--account {}", args.account))?;
    // A read: a mistyped SQLite path must not leave a new, empty engine database behind.
    if let Some(path) = args.db.database.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            bail!(
                "no engine database at {path} (--database {})",
                args.db.database
            );
        }
    }
    let store = stratbox_engine::Store::connect(&args.db.database)
        .await
        .context("opening the engine's database")?;
    let url = args
        .chain
        .parse()
        .with_context(|| format!("--chain {}", args.chain))?;
    let provider = alloy::providers::ProviderBuilder::new().connect_http(url);
    let name = hex_address(&account);
    let found = reconcile(&store, &provider, &account)
        .await
        .with_context(|| format!("reconciling {name} against {}", args.chain))?;
    let Some(mut r) = found else {
        bail!(
            "no opening balances are booked for {name} in {}: the live path books them before \
             its first trade (stratbox engine --mode live --account {name})",
            args.db.database
        );
    };
    if args.adopt && !r.is_zero() {
        if r.in_flight > 0 {
            bail!(
                "{} transaction(s) of {name} are in flight: a difference may be one mined and \
                 not yet booked; adopt once they are CONFIRMED or FAILED",
                r.in_flight
            );
        }
        let reason = args.reason.unwrap_or_default();
        let differences: Vec<(String, ledger::Signed)> = r
            .differences()
            .map(|a| (a.asset.clone(), a.difference))
            .collect();
        let shown: Vec<String> = differences
            .iter()
            .map(|(asset, d)| format!("{asset} {d}"))
            .collect();
        let posting = ledger::adjustment_posting(
            format!(
                "adjust:{name}:{}:{}",
                r.block,
                stratbox_engine::trace::fresh()
            ),
            &name,
            format!("adopted at block {}: {reason}", r.block),
            &differences,
        );
        let audit = Audit {
            actor: format!(
                "db:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            ),
            action: "reconciliation_adopted".into(),
            subject: name.clone(),
            from_state: String::new(),
            to_state: String::new(),
            detail: format!("block {}: {}; {reason}", r.block, shown.join(", ")),
            trace_id: String::new(),
        };
        store
            .post(&posting, &audit)
            .await
            .context("booking the adjustment")?;
        println!("adopted: {}", shown.join(", "));
        r = reconcile(&store, &provider, &account)
            .await?
            .context("the wallet's ledger lines vanished")?;
    }
    println!("{r}");
    store.close().await;
    if !r.is_zero() {
        bail!(
            "the ledger and the chain differ for {name} at block {}",
            r.block
        );
    }
    Ok(())
}
