//! `stratbox approvals list | show ID | approve ID | reject ID --reason TEXT`: the signer's
//! approvers at work. These talk to the signer's own admin port over mutual TLS with the
//! approver's certificate (the signer's allowlist names them), never to the engine:
//! the engine's operators are not the signer's approvers.
//!
//! `show` prints the decoded trade — tokens and amounts with their symbols, the pool, the
//! fees, the engine's simulation figures as it reported them — not hex. `approve` shows the
//! approval again and binds the decision to the hash of exactly those fields (or to
//! `--fields-hash`, the one a previous `show` printed): if the signer's approval is bound to
//! anything else, the decision is refused.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use stratbox_proto::v1::{self, signer_admin_client::SignerAdminClient};
use stratbox_signer::store::now_ms;
use stratbox_signer::trade::format_units;
use tonic::transport::{Channel, Endpoint};

/// How to reach the signer's admin port.
#[derive(clap::Args, Clone)]
pub struct AdminRemote {
    /// The signer's admin (approvals) address.
    #[arg(
        long,
        default_value = "https://127.0.0.1:50062",
        env = "STRATBOX_SIGNER_ADMIN"
    )]
    pub signer_admin: String,
    /// The CA that issued the signer's certificate (PEM).
    #[arg(long, env = "STRATBOX_SIGNER_CA")]
    pub ca: PathBuf,
    /// Your approver certificate (PEM).
    #[arg(long, env = "STRATBOX_APPROVER_CERT")]
    pub cert: PathBuf,
    /// Its private key (PEM). A file, never the key itself on the command line.
    #[arg(long, env = "STRATBOX_APPROVER_KEY")]
    pub key: PathBuf,
    /// The name the signer's certificate must carry.
    #[arg(long, default_value = "localhost", env = "STRATBOX_SIGNER_SERVER_NAME")]
    pub server_name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Pending approvals first, then recent decided ones.
    List {
        /// Pending only.
        #[arg(long)]
        pending: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        remote: AdminRemote,
    },
    /// One approval: the decoded trade it would sign.
    Show {
        id: String,
        #[command(flatten)]
        remote: AdminRemote,
    },
    /// Approve (binds to the fields shown).
    Approve {
        id: String,
        /// The fields hash a previous `show` printed; without it, the fields shown now.
        #[arg(long)]
        fields_hash: Option<String>,
        /// Recorded with the decision.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: AdminRemote,
    },
    /// Reject.
    Reject {
        id: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: AdminRemote,
    },
}

/// A client for the admin port.
pub async fn admin_client(r: &AdminRemote) -> anyhow::Result<SignerAdminClient<Channel>> {
    let tls = stratbox_signer::tls::client_tls(&r.ca, Some((&r.cert, &r.key)), &r.server_name)?;
    let channel = Endpoint::from_shared(r.signer_admin.clone())
        .with_context(|| format!("signer admin address {}", r.signer_admin))?
        .tls_config(tls)?
        .connect_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to the signer's admin port {}", r.signer_admin))?;
    Ok(SignerAdminClient::new(channel))
}

/// One line from a gRPC status: the signer's message carries the reason code first.
pub fn rpc(s: tonic::Status) -> anyhow::Error {
    anyhow!("{} ({:?})", s.message(), s.code())
}

pub fn trace() -> v1::TraceContext {
    v1::TraceContext {
        trace_id: format!("{:032x}", uuid::Uuid::new_v4().as_u128()),
        span_id: String::new(),
    }
}

fn state_name(a: &v1::Approval) -> &'static str {
    match v1::ApprovalState::try_from(a.state).unwrap_or(v1::ApprovalState::Unspecified) {
        v1::ApprovalState::Pending => "PENDING",
        v1::ApprovalState::Approved => "APPROVED",
        v1::ApprovalState::Rejected => "REJECTED",
        v1::ApprovalState::Expired => "EXPIRED",
        v1::ApprovalState::Unspecified => "UNKNOWN",
    }
}

fn amount(a: &Option<v1::Amount>) -> String {
    a.as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_else(|| "0".into())
}

fn address(a: &Option<v1::Address>) -> String {
    a.as_ref().map(|a| a.value.clone()).unwrap_or_default()
}

fn wei_as(a: &Option<v1::Amount>, decimals: u8, unit: &str) -> String {
    let raw = amount(a);
    match stratbox_proto::parse_amount(&raw) {
        Ok(v) => format!("{} {unit} ({raw} wei)", format_units(v, decimals)),
        Err(_) => format!("{raw:?} (not an amount)"),
    }
}

fn relative(ms: i64) -> String {
    let d = ms - now_ms();
    let (abs, future) = (d.unsigned_abs() / 1000, d >= 0);
    let text = if abs >= 3600 {
        format!("{}h {}m", abs / 3600, (abs % 3600) / 60)
    } else if abs >= 60 {
        format!("{}m {}s", abs / 60, abs % 60)
    } else {
        format!("{abs}s")
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

fn approvals_count(a: &v1::Approval) -> usize {
    a.decided_by
        .iter()
        .filter(|d| d.decision == "approve")
        .count()
}

fn outflows_line(a: &v1::Approval) -> String {
    a.decoded
        .as_ref()
        .map(|d| {
            d.outflows
                .iter()
                .filter(|m| amount(&m.amount) != "0")
                .map(|m| format!("{} {}", m.display, m.symbol))
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "nothing".into())
}

/// The decoded trade, as an approver reads it.
pub fn render(a: &v1::Approval) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<13}{v}\n"));
    line(
        "approval",
        format!(
            "{}  {} ({} of {} approvals)  expires {}",
            a.approval_id,
            state_name(a),
            approvals_count(a),
            a.approvals_required,
            relative(a.expires_at_ms)
        ),
    );
    line("task", format!("{}  (trace {})", a.task_id, a.trace_id));
    line("account", a.account.clone());
    line("why", a.reason.clone());
    if let Some(d) = &a.decoded {
        let on = if d.pool_label.is_empty() {
            String::new()
        } else {
            format!(" on {} ({})", d.pool_label, address(&d.pool))
        };
        line("action", format!("{}{on}", d.action));
        for m in &d.outflows {
            line(
                "  pays",
                format!(
                    "at most {} {}  ({} raw units, token {}) to {}",
                    m.display,
                    m.symbol,
                    amount(&m.amount),
                    address(&m.token),
                    address(&m.to)
                ),
            );
        }
        for m in &d.inflows {
            line(
                "  receives",
                format!(
                    "at least {} {}  ({} raw units, token {})",
                    m.display,
                    m.symbol,
                    amount(&m.amount),
                    address(&m.token)
                ),
            );
        }
        for arg in &d.arguments {
            line("  arg", arg.clone());
        }
        line("worst fee", wei_as(&d.max_fee_wei, 18, "ETH"));
    }
    if let Some(tx) = &a.tx {
        line(
            "fees",
            format!(
                "max {} per gas, tip {}, gas limit {}",
                wei_as(&tx.max_fee_per_gas, 9, "gwei"),
                wei_as(&tx.max_priority_fee_per_gas, 9, "gwei"),
                tx.gas_limit
            ),
        );
        line(
            "transaction",
            format!(
                "chain {} nonce {} to {} value {}",
                tx.chain_id,
                tx.nonce,
                address(&tx.to),
                wei_as(&tx.value, 18, "ETH")
            ),
        );
    }
    match &a.simulation {
        Some(s) => line(
            "engine sim",
            format!(
                "as reported by the engine, not checked: amount0 {}{}, amount1 {}{}, gas used {} at {}, notional {}, block {}",
                if s.amount0_negative { "-" } else { "+" },
                amount(&s.amount0),
                if s.amount1_negative { "-" } else { "+" },
                amount(&s.amount1),
                s.gas_used,
                wei_as(&s.gas_price, 9, "gwei"),
                amount(&s.notional),
                s.block
            ),
        ),
        None => line("engine sim", "none reported".into()),
    }
    line("signing hash", a.signing_hash.clone());
    line("fields hash", a.fields_hash.clone());
    for d in &a.decided_by {
        line(
            "decided",
            format!(
                "{} {} {}{}",
                d.name,
                d.decision,
                relative(d.at_ms),
                if d.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", d.reason)
                }
            ),
        );
    }
    out
}

fn json(a: &v1::Approval) -> serde_json::Value {
    let d = a.decoded.clone().unwrap_or_default();
    serde_json::json!({
        "approval_id": a.approval_id,
        "state": state_name(a).to_lowercase(),
        "task_id": a.task_id,
        "account": a.account,
        "approvals_required": a.approvals_required,
        "approvals": approvals_count(a),
        "decided_by": a.decided_by.iter().map(|d| serde_json::json!({"name": d.name, "decision": d.decision, "at_ms": d.at_ms, "reason": d.reason})).collect::<Vec<_>>(),
        "expires_at_ms": a.expires_at_ms,
        "fields_hash": a.fields_hash,
        "signing_hash": a.signing_hash,
        "reason": a.reason,
        "action": d.action,
        "pool": d.pool_label,
        "outflows": d.outflows.iter().map(|m| serde_json::json!({"symbol": m.symbol, "amount": amount(&m.amount), "display": m.display, "token": address(&m.token)})).collect::<Vec<_>>(),
    })
}

async fn fetch(client: &mut SignerAdminClient<Channel>, id: &str) -> anyhow::Result<v1::Approval> {
    Ok(client
        .show_approval(v1::GetApprovalRequest {
            trace: Some(trace()),
            approval_id: id.to_owned(),
        })
        .await
        .map_err(rpc)?
        .into_inner())
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List {
            pending,
            limit,
            remote,
        } => {
            let list = admin_client(&remote)
                .await?
                .list_approvals(v1::ListApprovalsRequest {
                    trace: Some(trace()),
                    pending_only: pending,
                    limit,
                })
                .await
                .map_err(rpc)?
                .into_inner()
                .approvals;
            if remote.json {
                println!(
                    "{}",
                    serde_json::Value::Array(list.iter().map(json).collect())
                );
                return Ok(());
            }
            if list.is_empty() {
                println!("no approvals");
                return Ok(());
            }
            println!(
                "{:<36}  {:<8}  {:<9}  {:<20}  {:<28}  expires",
                "id", "state", "approvals", "action", "pays at most"
            );
            for a in &list {
                let action = a
                    .decoded
                    .as_ref()
                    .map(|d| d.action.clone())
                    .unwrap_or_default();
                println!(
                    "{:<36}  {:<8}  {:<9}  {:<20}  {:<28}  {}",
                    a.approval_id,
                    state_name(a),
                    format!("{}/{}", approvals_count(a), a.approvals_required),
                    action,
                    outflows_line(a),
                    relative(a.expires_at_ms)
                );
            }
            Ok(())
        }
        Command::Show { id, remote } => {
            let a = fetch(&mut admin_client(&remote).await?, &id).await?;
            if remote.json {
                println!("{}", json(&a));
            } else {
                print!("{}", render(&a));
            }
            Ok(())
        }
        Command::Approve {
            id,
            fields_hash,
            reason,
            remote,
        } => decide(&remote, &id, true, reason, fields_hash).await,
        Command::Reject { id, reason, remote } => {
            if reason.trim().is_empty() {
                return Err(anyhow!("--reason must say why"));
            }
            decide(&remote, &id, false, reason, None).await
        }
    }
}

async fn decide(
    remote: &AdminRemote,
    id: &str,
    approve: bool,
    reason: String,
    fields_hash: Option<String>,
) -> anyhow::Result<()> {
    let mut client = admin_client(remote).await?;
    let shown = fetch(&mut client, id).await?;
    if !remote.json {
        print!("{}", render(&shown));
    }
    let fields_hash = fields_hash.unwrap_or_else(|| shown.fields_hash.clone());
    let decided = client
        .decide_approval(v1::DecideApprovalRequest {
            trace: Some(v1::TraceContext {
                trace_id: shown.trace_id.clone(),
                span_id: String::new(),
            }),
            approval_id: id.to_owned(),
            approve,
            reason,
            fields_hash,
        })
        .await
        .map_err(rpc)?
        .into_inner();
    if remote.json {
        println!("{}", json(&decided));
    } else {
        println!(
            "{} {}: now {} ({} of {} approvals)",
            if approve { "approved" } else { "rejected" },
            decided.approval_id,
            state_name(&decided),
            approvals_count(&decided),
            decided.approvals_required
        );
    }
    Ok(())
}
