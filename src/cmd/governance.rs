//! `stratbox governance ...`: the markets the engine's governance sentinel halted (an admin
//! change seen on their pool, a token or the pool's factory) and an operator's clear.
//! Listing needs no key; clearing needs an operator key (see [`super::strategy::Remote`]) and
//! is audited under the key's operator with the reason given. A halt is stored, so it holds
//! across restarts until someone clears it.

use stratbox_host::display::{Escaped, json};
use stratbox_proto::v1;

use super::strategy::{Remote, authed, engine_client, rpc, trace};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every halted market, with the contract, event or reading, transaction and block.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Lift one market's halt; its contracts' slots and code are read afresh as the new
    /// baseline.
    Clear {
        /// The market: its pool's 0x address.
        #[arg(long)]
        market: String,
        /// Why it is safe to trade it again, for the audit log.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
}

fn address(a: &Option<v1::Address>) -> &str {
    a.as_ref().map_or("", |a| a.value.as_str())
}

fn to_json(h: &v1::GovernanceHalt) -> serde_json::Value {
    serde_json::json!({
        "market": address(&h.market),
        "contract": address(&h.contract),
        "kind": h.kind,
        "tx_hash": h.tx_hash,
        "block": h.block,
        "detail": h.detail,
        "halted_at_ms": h.halted_at_ms,
        "watched": h.watched.iter().map(|w| w.value.clone()).collect::<Vec<_>>(),
    })
}

/// One line per halt. The engine's answer is outside text: escaped (see
/// `stratbox_host::display`).
fn line(h: &v1::GovernanceHalt) -> String {
    format!(
        "{} HALTED: {} on {} at block {}{} ({})",
        Escaped(address(&h.market)),
        Escaped(&h.kind),
        Escaped(address(&h.contract)),
        h.block,
        if h.tx_hash.is_empty() {
            String::new()
        } else {
            format!(" in tx {}", Escaped(&h.tx_hash))
        },
        Escaped(&h.detail)
    )
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { remote } => {
            let halts = engine_client(&remote)
                .await?
                .list_governance_halts(v1::ListGovernanceHaltsRequest {
                    trace: Some(trace()),
                })
                .await
                .map_err(rpc)?
                .into_inner()
                .halts;
            if remote.json {
                let all: Vec<serde_json::Value> = halts.iter().map(to_json).collect();
                println!("{}", json(&serde_json::Value::Array(all))?);
            } else if halts.is_empty() {
                println!("no market is halted by the governance sentinel");
            } else {
                for h in &halts {
                    println!("{}", line(h));
                }
            }
        }
        Command::Clear {
            market,
            reason,
            remote,
        } => {
            let req = authed(
                &remote,
                v1::ClearGovernanceHaltRequest {
                    trace: Some(trace()),
                    market: Some(v1::Address { value: market }),
                    reason,
                },
            )?;
            let h = engine_client(&remote)
                .await?
                .clear_governance_halt(req)
                .await
                .map_err(rpc)?
                .into_inner();
            if remote.json {
                println!("{}", json(&to_json(&h))?);
            } else {
                println!(
                    "{} cleared (was halted for {} on {} at block {}); its contracts are re-baselined",
                    Escaped(address(&h.market)),
                    Escaped(&h.kind),
                    Escaped(address(&h.contract)),
                    h.block
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn parses_list_and_clear() {
        let cli = Cli::try_parse_from(["stratbox", "governance", "list", "--json"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Command::Governance(super::Command::List { .. }))
        ));
        let cli = Cli::try_parse_from([
            "stratbox",
            "governance",
            "clear",
            "--market",
            "0x00000000000000000000000000000000000000aa",
            "--reason",
            "fee switch reviewed",
        ]);
        match cli.map(|c| c.command) {
            Ok(Command::Governance(super::Command::Clear { market, reason, .. })) => {
                assert_eq!(market, "0x00000000000000000000000000000000000000aa");
                assert_eq!(reason, "fee switch reviewed");
            }
            _ => panic!("governance clear did not parse"),
        }
        assert!(
            Cli::try_parse_from(["stratbox", "governance", "clear", "--market", "0xaa"]).is_err(),
            "a clear needs a reason"
        );
    }
}
