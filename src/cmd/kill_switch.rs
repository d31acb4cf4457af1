//! `stratbox kill-switch ...`: read, engage and clear the engine's kill switch, the first
//! gate every proposal meets. Engaging and clearing need an operator key (see
//! [`super::strategy::Remote`]); every change is audited under the key's operator, and the
//! switch is stored, so a restarted engine keeps refusing trades until someone clears it.

use stratbox_host::display::{Escaped, json};
use stratbox_proto::v1;

use super::strategy::{Remote, authed, engine_client, rpc, trace};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Whether the switch is engaged, why and by whom.
    Show {
        #[command(flatten)]
        remote: Remote,
    },
    /// Engage it: the engine refuses every proposal (`kill_switch`) until it is cleared.
    Set {
        /// Why, for the audit log and for whoever clears it.
        #[arg(long)]
        reason: String,
        /// Also end what is in flight on the live path: trades not yet sent to the signer
        /// (or waiting for an approval) are EXPIRED, transactions pending on chain are
        /// replaced by a cancel at their nonce.
        #[arg(long)]
        cancel_pending: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Clear it: proposals are judged by the other gates again.
    Clear {
        #[command(flatten)]
        remote: Remote,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let (state, remote) = match command {
        Command::Show { remote } => {
            let status = engine_client(&remote)
                .await?
                .get_status(v1::GetStatusRequest {
                    trace: Some(trace()),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            (status.kill_switch.unwrap_or_default(), remote)
        }
        Command::Set {
            reason,
            cancel_pending,
            remote,
        } => {
            let req = authed(
                &remote,
                v1::SetKillSwitchRequest {
                    trace: Some(trace()),
                    reason,
                    operator: String::new(),
                    cancel_pending,
                },
            )?;
            let k = engine_client(&remote)
                .await?
                .set_kill_switch(req)
                .await
                .map_err(rpc)?
                .into_inner();
            (k, remote)
        }
        Command::Clear { remote } => {
            let req = authed(
                &remote,
                v1::ClearKillSwitchRequest {
                    trace: Some(trace()),
                    operator: String::new(),
                },
            )?;
            let k = engine_client(&remote)
                .await?
                .clear_kill_switch(req)
                .await
                .map_err(rpc)?
                .into_inner();
            (k, remote)
        }
    };
    // The engine's answer is outside text: escaped (see `stratbox_host::display`).
    if remote.json {
        println!(
            "{}",
            json(&serde_json::json!({
                "engaged": state.engaged,
                "reason": state.reason,
                "operator": state.operator,
                "changed_at_ms": state.changed_at_ms,
                "cancel_pending": state.cancel_pending,
            }))?
        );
    } else if state.engaged {
        println!(
            "kill switch ENGAGED by {} at {} ms{}: {}",
            Escaped(&state.operator),
            state.changed_at_ms,
            if state.cancel_pending {
                " (cancelling what is pending)"
            } else {
                ""
            },
            Escaped(&state.reason)
        );
    } else if state.operator.is_empty() {
        println!("kill switch off");
    } else {
        println!(
            "kill switch off (cleared by {} at {} ms)",
            Escaped(&state.operator),
            state.changed_at_ms
        );
    }
    Ok(())
}
