//! `stratbox risk ...`: the engine's risk limits, changed while it runs. What tightens a
//! limit applies at once; what loosens one waits for the engine's timelock
//! (`stratbox engine --risk-timelock`, 24 h by default) and can be cancelled until then.
//! Proposing and cancelling need an operator key (see [`super::strategy::Remote`]); every
//! step is audited under the key's operator. See `stratbox_engine::risk_change` for which
//! way each field loosens.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use stratbox_engine::gates::load_risk_config;
use stratbox_engine::risk_change::{self, show_value, utc};
use stratbox_host::display::{Escaped, json};
use stratbox_proto::v1;

use super::strategy::{Remote, authed, engine_client, rpc, trace};

#[derive(clap::Subcommand)]
pub enum Command {
    /// The limits in effect, field by field, and the changes waiting for the timelock
    /// with when each takes effect (`--json`: the limits as a `--risk-config` JSON file).
    Show {
        #[command(flatten)]
        remote: Remote,
    },
    /// Propose the limits in a file (TOML, or JSON by extension; the `--risk-config`
    /// format: absent fields take the defaults, unknown fields are refused, amounts are
    /// base-10 strings). What it tightens applies at once, what it loosens is pending.
    Set {
        /// The whole risk configuration proposed.
        #[arg(long)]
        file: PathBuf,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Withdraw a pending change (its id, from `stratbox risk show`).
    Cancel {
        /// The change's id.
        id: u64,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// A timelock length: `500ms`, `30s`, `90m`, `24h` or `2d` (a bare number is seconds).
pub fn parse_timelock(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let at = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(at);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{t:?} is not a duration like 24h, 90m, 30s or 500ms"))?;
    let secs = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{t:?} is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3_600),
        "d" => secs(86_400),
        _ => Err(format!(
            "{t:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
        )),
    }
}

/// `1d2h3m4s` style, for how long until a change applies.
fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

fn now_ms() -> i64 {
    stratbox_engine::store::now_ms()
}

/// One change, one line per field.
fn print_change(c: &v1::RiskChange) {
    let when = if c.state == "PENDING" {
        format!(
            "takes effect at {} (in {})",
            utc(c.effective_at_ms),
            span(c.effective_at_ms - now_ms())
        )
    } else {
        format!("in effect since {}", utc(c.effective_at_ms))
    };
    println!(
        "change {} {} by {} ({}), {when}{}",
        c.id,
        Escaped(&c.state),
        Escaped(&c.operator),
        Escaped(&c.source),
        if c.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", Escaped(&c.reason))
        }
    );
    for f in &c.fields {
        let value = |v: &str| {
            serde_json::from_str(v)
                .map(|v| show_value(&v))
                .unwrap_or_else(|_| v.to_owned())
        };
        println!(
            "  {:<50} {} -> {}{}",
            Escaped(&f.field),
            Escaped(&value(&f.old_value)),
            Escaped(&value(&f.new_value)),
            if f.loosens { "  (loosens)" } else { "" }
        );
    }
}

fn change_json(c: &v1::RiskChange) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "state": c.state,
        "operator": c.operator,
        "reason": c.reason,
        "source": c.source,
        "proposed_at_ms": c.proposed_at_ms,
        "effective_at_ms": c.effective_at_ms,
        "effective_at": utc(c.effective_at_ms),
        "decided_by": c.decided_by,
        "decided_at_ms": c.decided_at_ms,
        "detail": c.detail,
        "fields": c.fields.iter().map(|f| serde_json::json!({
            "field": f.field,
            "old": serde_json::from_str::<serde_json::Value>(&f.old_value).unwrap_or(serde_json::Value::Null),
            "new": serde_json::from_str::<serde_json::Value>(&f.new_value).unwrap_or(serde_json::Value::Null),
            "loosens": f.loosens,
        })).collect::<Vec<_>>(),
    })
}

fn limits_json(l: &v1::RiskLimits) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "version": l.version,
        "timelock_ms": l.timelock_ms,
        "limits": serde_json::from_str::<serde_json::Value>(&l.limits_json)
            .context("the engine's limits are not JSON")?,
        "pending": l.pending.iter().map(change_json).collect::<Vec<_>>(),
    }))
}

fn print_limits(l: &v1::RiskLimits) -> anyhow::Result<()> {
    let cfg: stratbox_engine::RiskConfig =
        serde_json::from_str(&l.limits_json).context("the engine's limits")?;
    println!(
        "risk limits in effect (version {}; loosening waits {}):",
        l.version,
        span(i64::try_from(l.timelock_ms).unwrap_or(i64::MAX))
    );
    for (field, value) in risk_change::fields(&cfg)? {
        println!("  {:<50} {}", Escaped(&field), Escaped(&show_value(&value)));
    }
    if l.pending.is_empty() {
        println!("no pending changes");
    } else {
        println!("pending changes:");
        for c in &l.pending {
            print_change(c);
        }
    }
    Ok(())
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Show { remote } => {
            let l = engine_client(&remote)
                .await?
                .get_risk_limits(v1::GetRiskLimitsRequest {
                    trace: Some(trace()),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            if remote.json {
                println!("{}", json(&limits_json(&l)?)?);
            } else {
                print_limits(&l)?;
            }
        }
        Command::Set {
            file,
            reason,
            remote,
        } => {
            // Parsed and validated here first, so a typo is reported against the file.
            let cfg = load_risk_config(&file)?;
            let req = authed(
                &remote,
                v1::ProposeRiskLimitsRequest {
                    trace: Some(trace()),
                    limits_json: serde_json::to_string(&cfg)?,
                    reason,
                    operator: String::new(),
                },
            )?;
            let done = engine_client(&remote)
                .await?
                .propose_risk_limits(req)
                .await
                .map_err(rpc)?
                .into_inner();
            if remote.json {
                println!(
                    "{}",
                    json(&serde_json::json!({
                        "applied": done.applied.as_ref().map(change_json),
                        "pending": done.pending.as_ref().map(change_json),
                    }))?
                );
            } else {
                if let Some(c) = &done.applied {
                    println!("tightened at once:");
                    print_change(c);
                }
                if let Some(c) = &done.pending {
                    println!(
                        "loosening pending under the timelock (cancel with `stratbox risk cancel {}`):",
                        c.id
                    );
                    print_change(c);
                }
            }
        }
        Command::Cancel { id, reason, remote } => {
            let req = authed(
                &remote,
                v1::CancelRiskChangeRequest {
                    trace: Some(trace()),
                    id,
                    reason,
                    operator: String::new(),
                },
            )?;
            let c = engine_client(&remote)
                .await?
                .cancel_risk_change(req)
                .await
                .map_err(rpc)?
                .into_inner();
            if remote.json {
                println!("{}", json(&change_json(&c))?);
            } else {
                print_change(&c);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelocks() {
        assert_eq!(parse_timelock("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_timelock("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timelock("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_timelock("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_timelock("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_timelock("1.5h").is_err());
        assert!(parse_timelock("-1h").is_err());
        assert!(parse_timelock("99999999999999999999h").is_err());
        assert!(parse_timelock("1w").is_err());
    }

    #[test]
    fn spans() {
        assert_eq!(span(1_500), "1s");
        assert_eq!(span(61_000), "1m1s");
        assert_eq!(span(86_400_000), "1d0h");
        assert_eq!(span(3_600_000 * 5 + 60_000), "5h1m");
    }
}
