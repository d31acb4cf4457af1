//! The signing decision, end to end: parse the plain fields, build the transaction and its
//! hash, decode the calldata, judge it against the active policy, the nonce record and the
//! day's spend, wait for approvers when the policy says so, sign, record. Every answer is
//! stored per task id (a re-send gets the same answer) and audited.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_primitives::{Address, U256};
use prost::Message;
use sha2::{Digest, Sha256};
use stratbox_proto::v1;
use tokio::sync::{Mutex, RwLock};

use crate::audit::Entry;
use crate::keys::{KeySource, hex_addr};
use crate::nonce::{self, Allowed, NonceRecord};
use crate::policy::{self, Policy, PolicyError};
use crate::reason::{Reason, Refusal};
use crate::store::{
    ApprovalRow, DecideRefusal, Decision, Outcome, PolicyState, RequestRow, Reservation, Store,
    StoreError, Vote, now_ms,
};
use crate::trade::{self, Evaluation, Trade, format_units};
use crate::tx::{PlainTx, hex32};

/// Why the service could not answer at all (as opposed to a refusal, which is an answer).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy file was refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The policy names an account the key source does not hold, or holds at another index.
    #[error("policy account {account} (key_index {index}): {why}")]
    KeyMismatch {
        /// The account.
        account: String,
        /// Its key index.
        index: u32,
        /// What the key source said.
        why: String,
    },
}

/// Settings the service needs besides its store and keys.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The policy file (re-read on reload).
    pub policy_path: std::path::PathBuf,
    /// How long a loosening change waits.
    pub policy_timelock_ms: i64,
    /// How long an approval stays open.
    pub approval_ttl_ms: i64,
}

struct PolicyCell {
    active: Arc<Policy>,
    state: PolicyState,
    pending: Option<Arc<Policy>>,
    last_reload: String,
}

/// The signer.
pub struct Signer {
    store: Store,
    keys: Arc<dyn KeySource>,
    settings: Settings,
    policy: RwLock<PolicyCell>,
    /// Serialises policy changes (reloads and promotions); never held across signing.
    policy_change: Mutex<()>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn amount_text(field: &str, a: &Option<v1::Amount>) -> Result<String, Refusal> {
    match a {
        None => Ok("0".into()),
        Some(a) => stratbox_proto::parse_amount(&a.value)
            .map(|v| v.to_string())
            .map_err(|e| Refusal::new(Reason::BadRequest, format!("simulation.{field}: {e}"))),
    }
}

/// The reported simulation in a fixed text form (amounts checked as amounts).
fn simulation_canonical(s: &Option<v1::ReportedSimulation>) -> Result<String, Refusal> {
    let Some(s) = s else {
        return Ok("simulation=none".into());
    };
    Ok(format!(
        "simulation=amount0:{}{};amount1:{}{};gas_used:{};gas_price:{};notional:{};block:{}",
        if s.amount0_negative { "-" } else { "" },
        amount_text("amount0", &s.amount0)?,
        if s.amount1_negative { "-" } else { "" },
        amount_text("amount1", &s.amount1)?,
        s.gas_used,
        amount_text("gas_price", &s.gas_price)?,
        amount_text("notional", &s.notional)?,
        s.block
    ))
}

fn movement(policy: &Policy, m: &trade::Movement) -> v1::TokenMovement {
    let (symbol, decimals) = policy
        .tokens
        .get(&m.token)
        .map(|t| (t.symbol.clone(), t.decimals))
        .unwrap_or_else(|| (format!("{:#x}", m.token), 0));
    v1::TokenMovement {
        token: Some(v1::Address {
            value: format!("{:#x}", m.token),
        }),
        symbol,
        decimals: decimals as u32,
        amount: Some(v1::Amount {
            value: m.amount.to_string(),
        }),
        display: format_units(m.amount, decimals),
        to: Some(v1::Address {
            value: format!("{:#x}", m.counterparty),
        }),
    }
}

/// The decoded view approvers are shown.
pub fn decoded_view(policy: &Policy, tx: &PlainTx, t: &Trade) -> v1::DecodedTrade {
    let max_fee = U256::from(tx.gas_limit) * U256::from(tx.max_fee_per_gas);
    v1::DecodedTrade {
        action: t.action.clone(),
        pool: t.pool.map(|p| v1::Address {
            value: format!("{p:#x}"),
        }),
        pool_label: t.pool.map(|p| trade::label(policy, &p)).unwrap_or_default(),
        outflows: t.outflows.iter().map(|m| movement(policy, m)).collect(),
        inflows: t.inflows.iter().map(|m| movement(policy, m)).collect(),
        arguments: t.arguments.clone(),
        max_fee_wei: Some(v1::Amount {
            value: max_fee.to_string(),
        }),
    }
}

fn state_enum(state: &str) -> v1::ApprovalState {
    match state {
        "pending" => v1::ApprovalState::Pending,
        "approved" => v1::ApprovalState::Approved,
        "rejected" => v1::ApprovalState::Rejected,
        "expired" => v1::ApprovalState::Expired,
        _ => v1::ApprovalState::Unspecified,
    }
}

/// An approval as the wire shows it: the view it was created with, its current state and
/// who decided.
pub fn approval_view(row: &ApprovalRow, votes: &[Vote], now: i64) -> v1::Approval {
    let mut view = hex::decode(&row.view)
        .ok()
        .and_then(|b| v1::Approval::decode(b.as_slice()).ok())
        .unwrap_or_default();
    let state = if row.state == "pending" && row.expires_at_ms <= now {
        "expired"
    } else {
        row.state.as_str()
    };
    view.approval_id = row.approval_id.clone();
    view.task_id = row.task_id.clone();
    view.fields_hash = row.fields_hash.clone();
    view.state = state_enum(state) as i32;
    view.approvals_required = row.required;
    view.expires_at_ms = row.expires_at_ms;
    view.created_at_ms = row.created_at_ms;
    view.decided_by = votes
        .iter()
        .map(|v| v1::Approver {
            name: v.approver.clone(),
            decision: v.decision.clone(),
            at_ms: v.at_ms,
            reason: v.reason.clone(),
        })
        .collect();
    view
}

fn refused(r: &Refusal, signing_hash: &str, account: &str) -> v1::SignTransactionResponse {
    v1::SignTransactionResponse {
        outcome: v1::SignOutcome::Refused as i32,
        tx_hash: signing_hash.to_owned(),
        signer_address: account.to_owned(),
        reason_code: r.reason.as_str().to_owned(),
        detail: r.detail.clone(),
        ..Default::default()
    }
}

fn answer(row: &RequestRow) -> v1::SignTransactionResponse {
    match row.outcome {
        Outcome::Signed => v1::SignTransactionResponse {
            outcome: v1::SignOutcome::Signed as i32,
            raw_transaction: hex::decode(&row.raw_tx).unwrap_or_default(),
            tx_hash: row.tx_hash.clone(),
            signer_address: row.account.clone(),
            approval_id: row.approval_id.clone(),
            approvals_required: row.approvals_required,
            ..Default::default()
        },
        Outcome::Refused => v1::SignTransactionResponse {
            outcome: v1::SignOutcome::Refused as i32,
            tx_hash: row.signing_hash.clone(),
            signer_address: row.account.clone(),
            reason_code: row.reason_code.clone(),
            detail: row.detail.clone(),
            approval_id: row.approval_id.clone(),
            approvals_required: row.approvals_required,
            ..Default::default()
        },
        Outcome::AwaitingApproval | Outcome::Signing => v1::SignTransactionResponse {
            outcome: v1::SignOutcome::AwaitingApproval as i32,
            tx_hash: row.signing_hash.clone(),
            signer_address: row.account.clone(),
            approval_id: row.approval_id.clone(),
            detail: row.detail.clone(),
            approvals_required: row.approvals_required,
            ..Default::default()
        },
    }
}

/// One parsed request.
struct Parsed {
    task_id: String,
    from: Address,
    account: String,
    tx: PlainTx,
    signing_hash: String,
    request_canon: String,
    request_hash: String,
    trace_id: String,
    actor: String,
}

impl Parsed {
    fn row(&self, outcome: Outcome) -> RequestRow {
        RequestRow {
            task_id: self.task_id.clone(),
            request_hash: self.request_hash.clone(),
            account: self.account.clone(),
            chain_id: self.tx.chain_id,
            nonce: self.tx.nonce,
            signing_hash: self.signing_hash.clone(),
            outcome,
            reason_code: String::new(),
            detail: String::new(),
            approval_id: String::new(),
            approvals_required: 0,
            raw_tx: String::new(),
            tx_hash: String::new(),
            trace_id: self.trace_id.clone(),
        }
    }

    fn refused_row(&self, base: &RequestRow, r: &Refusal) -> RequestRow {
        let mut row = base.clone();
        row.outcome = Outcome::Refused;
        row.reason_code = r.reason.as_str().to_owned();
        row.detail = r.detail.clone();
        row
    }

    fn entry(&self, action: &str, detail: impl Into<String>) -> Entry {
        Entry::new(&self.actor, action, &self.task_id, detail, &self.trace_id)
    }

    fn refusal_entry(&self, r: &Refusal) -> Entry {
        self.entry(
            "sign_refused",
            format!(
                "{}: {} (account {} chain {} nonce {} to {:#x} signing hash {})",
                r.reason,
                r.detail,
                self.account,
                self.tx.chain_id,
                self.tx.nonce,
                self.tx.to,
                self.signing_hash
            ),
        )
    }
}

impl Signer {
    /// Opens the service: loads the stored policy state and applies the policy file to it
    /// (the first start takes the file as it is; later starts treat it as a reload).
    pub async fn open(
        store: Store,
        keys: Arc<dyn KeySource>,
        settings: Settings,
    ) -> Result<Arc<Signer>, ServiceError> {
        let file = Policy::load(&settings.policy_path)?;
        check_keys(&file, keys.as_ref())?;
        let now = now_ms();
        let (cell, fresh) = match store.policy_state().await? {
            Some(state) => {
                let active = Policy::from_toml(&state.active_toml)?;
                let pending = if state.pending_toml.is_empty() {
                    None
                } else {
                    Some(Arc::new(Policy::from_toml(&state.pending_toml)?))
                };
                (
                    PolicyCell {
                        active: Arc::new(active),
                        state,
                        pending,
                        last_reload: String::new(),
                    },
                    false,
                )
            }
            None => {
                let state = PolicyState {
                    active_toml: file.canonical_toml(),
                    active_hash: file.hash(),
                    active_since_ms: now,
                    pending_toml: String::new(),
                    pending_hash: String::new(),
                    pending_effective_ms: 0,
                    pending_changes: String::new(),
                };
                store
                    .save_policy_state(
                        &state,
                        &[Entry::new(
                            "signer",
                            "policy_bootstrap",
                            &state.active_hash,
                            "first start: the policy file becomes the active policy",
                            "",
                        )],
                    )
                    .await?;
                (
                    PolicyCell {
                        active: Arc::new(file.clone()),
                        state,
                        pending: None,
                        last_reload: "first start".into(),
                    },
                    true,
                )
            }
        };
        let signer = Arc::new(Signer {
            store,
            keys,
            settings,
            policy: RwLock::new(cell),
            policy_change: Mutex::new(()),
        });
        if !fresh {
            signer.apply_policy(file, "signer").await?;
        }
        signer.promote_due(now_ms()).await?;
        Ok(signer)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The key source.
    pub fn keys(&self) -> &Arc<dyn KeySource> {
        &self.keys
    }

    /// Re-reads the policy file: tightening applies at once, loosening waits for the
    /// timelock. `actor` is who asked (for the audit log).
    pub async fn reload_policy(&self, actor: &str) -> Result<String, ServiceError> {
        let file = Policy::load(&self.settings.policy_path)?;
        check_keys(&file, self.keys.as_ref())?;
        self.apply_policy(file, actor).await
    }

    async fn apply_policy(&self, file: Policy, actor: &str) -> Result<String, ServiceError> {
        let _change = self.policy_change.lock().await;
        let now = now_ms();
        let (active, mut state, had_pending) = {
            let cell = self.policy.read().await;
            (
                cell.active.clone(),
                cell.state.clone(),
                cell.pending.is_some(),
            )
        };
        let file_hash = file.hash();
        let mut entries = Vec::new();
        let (new_active, pending, summary) = if file_hash == active.hash() {
            if had_pending {
                entries.push(Entry::new(
                    actor,
                    "policy_pending_cancelled",
                    &state.pending_hash,
                    "the file is the active policy again",
                    "",
                ));
            }
            (active.clone(), None, "unchanged".to_owned())
        } else {
            let changes = policy::diff(&active, &file);
            let (loosen, tighten): (Vec<_>, Vec<_>) = changes.into_iter().partition(|c| c.loosens);
            let tight = if loosen.is_empty() {
                file.clone()
            } else {
                policy::meet(&active, &file)
            };
            if !tighten.is_empty() {
                entries.push(Entry::new(
                    actor,
                    "policy_tightened",
                    tight.hash(),
                    tighten
                        .iter()
                        .map(|c| c.text.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    "",
                ));
            }
            if loosen.is_empty() {
                if had_pending {
                    entries.push(Entry::new(
                        actor,
                        "policy_pending_cancelled",
                        &state.pending_hash,
                        "superseded by a file that only tightens",
                        "",
                    ));
                }
                (
                    Arc::new(tight),
                    None,
                    format!("applied {} tightening change(s) at once", tighten.len()),
                )
            } else {
                let effective = if had_pending && state.pending_hash == file_hash {
                    state.pending_effective_ms
                } else {
                    now + self.settings.policy_timelock_ms
                };
                let text = loosen
                    .iter()
                    .map(|c| c.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                entries.push(Entry::new(
                    actor,
                    "policy_loosening_pending",
                    &file_hash,
                    format!(
                        "takes effect at {effective} ms: {}",
                        text.replace('\n', "; ")
                    ),
                    "",
                ));
                let summary = format!(
                    "applied {} tightening change(s) at once; {} loosening change(s) wait until {effective} ms",
                    tighten.len(),
                    loosen.len()
                );
                (
                    Arc::new(tight),
                    Some((Arc::new(file), effective, text)),
                    summary,
                )
            }
        };
        if new_active.hash() != state.active_hash {
            state.active_toml = new_active.canonical_toml();
            state.active_hash = new_active.hash();
            state.active_since_ms = now;
        }
        match &pending {
            Some((p, effective, text)) => {
                state.pending_toml = p.canonical_toml();
                state.pending_hash = p.hash();
                state.pending_effective_ms = *effective;
                state.pending_changes = text.clone();
            }
            None => {
                state.pending_toml.clear();
                state.pending_hash.clear();
                state.pending_effective_ms = 0;
                state.pending_changes.clear();
            }
        }
        self.store.save_policy_state(&state, &entries).await?;
        let mut cell = self.policy.write().await;
        cell.active = new_active;
        cell.pending = pending.map(|(p, _, _)| p);
        cell.state = state;
        cell.last_reload = summary.clone();
        tracing::info!(actor, %summary, "policy reloaded");
        Ok(summary)
    }

    /// Makes a pending loosening change active once its time has come.
    pub async fn promote_due(&self, now: i64) -> Result<bool, ServiceError> {
        {
            let cell = self.policy.read().await;
            if cell.pending.is_none() || cell.state.pending_effective_ms > now {
                return Ok(false);
            }
        }
        let _change = self.policy_change.lock().await;
        let (pending, mut state) = {
            let cell = self.policy.read().await;
            match &cell.pending {
                Some(p) if cell.state.pending_effective_ms <= now => {
                    (p.clone(), cell.state.clone())
                }
                _ => return Ok(false),
            }
        };
        if let Err(e) = check_keys(&pending, self.keys.as_ref()) {
            tracing::error!(error = %e, "a pending policy names keys the key source does not hold; it stays pending");
            return Ok(false);
        }
        let entry = Entry::new(
            "signer",
            "policy_loosened",
            pending.hash(),
            format!(
                "timelock ended: {}",
                state.pending_changes.replace('\n', "; ")
            ),
            "",
        );
        state.active_toml = pending.canonical_toml();
        state.active_hash = pending.hash();
        state.active_since_ms = now;
        state.pending_toml.clear();
        state.pending_hash.clear();
        state.pending_effective_ms = 0;
        state.pending_changes.clear();
        self.store.save_policy_state(&state, &[entry]).await?;
        let mut cell = self.policy.write().await;
        cell.active = pending;
        cell.pending = None;
        cell.state = state;
        cell.last_reload = "a loosening change took effect after its timelock".into();
        Ok(true)
    }

    /// The active policy (promoting a pending change whose time has come).
    pub async fn active_policy(&self) -> Result<Arc<Policy>, ServiceError> {
        self.promote_due(now_ms()).await?;
        Ok(self.policy.read().await.active.clone())
    }

    /// `policy status`.
    pub async fn policy_status(&self) -> v1::PolicyStatusResponse {
        let cell = self.policy.read().await;
        v1::PolicyStatusResponse {
            active_hash: cell.state.active_hash.clone(),
            active_since_ms: cell.state.active_since_ms,
            active_toml: cell.active.canonical_toml(),
            pending: cell
                .pending
                .as_ref()
                .map(|_| v1::PendingPolicyChange {
                    changes: cell
                        .state
                        .pending_changes
                        .lines()
                        .map(str::to_owned)
                        .collect(),
                    policy_hash: cell.state.pending_hash.clone(),
                    effective_at_ms: cell.state.pending_effective_ms,
                })
                .into_iter()
                .collect(),
            last_reload: cell.last_reload.clone(),
            timelock_secs: (self.settings.policy_timelock_ms / 1000).max(0) as u64,
        }
    }

    /// Expires approvals past their time and promotes due policy changes; run periodically.
    pub async fn tick(&self) -> Result<(), ServiceError> {
        let now = now_ms();
        self.store.expire_approvals(now).await?;
        self.promote_due(now).await?;
        Ok(())
    }

    // ---- signing --------------------------------------------------------------------

    /// Answers one `SignTransaction`. `caller` is the engine certificate's allowlist name.
    pub async fn sign(
        &self,
        req: &v1::SignTransactionRequest,
        caller: &str,
    ) -> Result<v1::SignTransactionResponse, ServiceError> {
        let trace_id = req
            .trace
            .as_ref()
            .map(|t| t.trace_id.clone())
            .unwrap_or_default();
        let actor = format!("engine:{caller}");
        let unstored = |r: Refusal, detail: String| async move {
            self.store
                .audit(&Entry::new(
                    &actor,
                    "sign_refused",
                    req.task_id.chars().take(200).collect::<String>(),
                    detail,
                    &trace_id,
                ))
                .await?;
            Ok::<_, ServiceError>(refused(&r, "", ""))
        };
        let parsed = match self.parse(req, caller) {
            Ok(p) => p,
            Err(r) => {
                let detail = format!("{}: {}", r.reason, r.detail);
                return unstored(r, detail).await;
            }
        };
        let p = &parsed;
        if let Some(row) = self.store.request(&p.task_id).await? {
            if row.request_hash != p.request_hash {
                let r = Refusal::new(
                    Reason::TaskConflict,
                    format!("task {} was sent before with different fields", p.task_id),
                );
                self.store.audit(&p.refusal_entry(&r)).await?;
                return Ok(refused(&r, &p.signing_hash, &p.account));
            }
            if !req.approval_id.is_empty() && req.approval_id != row.approval_id {
                let r = Refusal::new(
                    Reason::ApprovalMismatch,
                    format!("approval {} is not this task's", req.approval_id),
                );
                self.store.audit(&p.refusal_entry(&r)).await?;
                return Ok(refused(&r, &p.signing_hash, &p.account));
            }
            return self.resume(p, row).await;
        }
        let base = p.row(Outcome::Refused);
        if !req.approval_id.is_empty() {
            let r = Refusal::new(
                Reason::ApprovalMismatch,
                format!(
                    "approval {} is bound to other fields than this request's",
                    req.approval_id
                ),
            );
            return self.refuse(p, &base, &r).await;
        }
        let policy = self.active_policy().await?;
        let eval = match trade::evaluate(&policy, &p.tx, p.from) {
            Ok(e) => e,
            Err(r) => return self.refuse(p, &base, &r).await,
        };
        // Refuse early what the nonce record or the day's spend would refuse at signing,
        // rather than ask a human to approve what can never be signed.
        let (records, highest) = self
            .store
            .nonce_view(p.tx.chain_id, &p.account, p.tx.nonce)
            .await?;
        let allowed = match nonce::judge(&p.tx, &p.signing_hash, eval.cancel, &records, highest) {
            Ok(a) => a,
            Err(r) => return self.refuse(p, &base, &r).await,
        };
        if allowed == Allowed::Original {
            let tokens: Vec<Address> = eval.trade.outflows.iter().map(|m| m.token).collect();
            let spent = self.store.spent(&p.account, &tokens, now_ms()).await?;
            if let Err(r) = trade::check_daily(&policy, &eval, &spent) {
                return self.refuse(p, &base, &r).await;
            }
        }
        // A fee bump repeats a call already signed at this nonce (approved then, if it had
        // to be) with only higher fees, within the policy's ceilings; a cancel moves nothing.
        // Neither can move more than what was signed, and only one transaction per nonce is
        // ever mined, so neither waits for a human: the engine needs them when the market
        // moved away from a pending transaction, which is when a human is slowest to help.
        if eval.approvals_required > 0 && allowed == Allowed::Original {
            return self.ask_approval(p, &policy, &eval, req).await;
        }
        self.sign_now(p, p.row(Outcome::Signing), &policy, &eval)
            .await
    }

    fn parse(&self, req: &v1::SignTransactionRequest, caller: &str) -> Result<Parsed, Refusal> {
        let bad = |d: &str| Refusal::new(Reason::BadRequest, d);
        let task_id = req.task_id.clone();
        if task_id.is_empty() || task_id.len() > 200 || task_id.chars().any(char::is_control) {
            return Err(bad("task_id must be 1 to 200 printable characters"));
        }
        let from = crate::tx::address("from", &req.from)?;
        let tx = PlainTx::from_wire(req.tx.as_ref().ok_or_else(|| bad("tx is missing"))?)?;
        if tx.chain_id > i64::MAX as u64
            || tx.nonce > i64::MAX as u64
            || tx.gas_limit > i64::MAX as u64
        {
            return Err(bad("chain_id, nonce and gas_limit must be below 2^63"));
        }
        let sim = simulation_canonical(&req.simulation)?;
        let request_canon = format!(
            "task_id={task_id}\nfrom={from:#x}\n{}\n{sim}",
            tx.canonical()
        );
        Ok(Parsed {
            request_hash: sha256_hex(request_canon.as_bytes()),
            signing_hash: hex32(&tx.signing_hash()),
            account: format!("{from:#x}"),
            task_id,
            from,
            tx,
            request_canon,
            trace_id: req
                .trace
                .as_ref()
                .map(|t| t.trace_id.clone())
                .unwrap_or_default(),
            actor: format!("engine:{caller}"),
        })
    }

    async fn refuse(
        &self,
        p: &Parsed,
        base: &RequestRow,
        r: &Refusal,
    ) -> Result<v1::SignTransactionResponse, ServiceError> {
        let row = p.refused_row(base, r);
        self.store
            .record(&row, &p.request_canon, &p.refusal_entry(r))
            .await?;
        tracing::info!(reason = %r.reason, detail = %r.detail, "refused");
        Ok(answer(&row))
    }

    async fn ask_approval(
        &self,
        p: &Parsed,
        policy: &Policy,
        eval: &Evaluation,
        req: &v1::SignTransactionRequest,
    ) -> Result<v1::SignTransactionResponse, ServiceError> {
        let now = now_ms();
        let decoded = decoded_view(policy, &p.tx, &eval.trade);
        let mut bound = p.request_canon.as_bytes().to_vec();
        bound.push(0);
        bound.extend_from_slice(&decoded.encode_to_vec());
        let fields_hash = sha256_hex(&bound);
        let approval_id = uuid::Uuid::new_v4().to_string();
        let view = v1::Approval {
            approval_id: approval_id.clone(),
            state: v1::ApprovalState::Pending as i32,
            task_id: p.task_id.clone(),
            decided_by: vec![],
            fields_hash: fields_hash.clone(),
            approvals_required: eval.approvals_required,
            created_at_ms: now,
            expires_at_ms: now + self.settings.approval_ttl_ms,
            account: p.account.clone(),
            tx: Some(p.tx.to_wire()),
            decoded: Some(decoded),
            simulation: req.simulation.clone(),
            trace_id: p.trace_id.clone(),
            reason: eval.why.clone(),
            signing_hash: p.signing_hash.clone(),
        };
        let approval = ApprovalRow {
            approval_id: approval_id.clone(),
            task_id: p.task_id.clone(),
            fields_hash,
            account: p.account.clone(),
            state: "pending".into(),
            required: eval.approvals_required,
            reason: eval.why.clone(),
            view: hex::encode(view.encode_to_vec()),
            trace_id: p.trace_id.clone(),
            created_at_ms: now,
            expires_at_ms: now + self.settings.approval_ttl_ms,
        };
        let mut row = p.row(Outcome::AwaitingApproval);
        row.approval_id = approval_id.clone();
        row.approvals_required = eval.approvals_required;
        row.detail = eval.why.clone();
        let entry = p.entry(
            "awaiting_approval",
            format!(
                "approval {approval_id}: {} approver(s) needed: {}",
                eval.approvals_required, eval.why
            ),
        );
        match self
            .store
            .create_awaiting(&row, &p.request_canon, &approval, &entry)
            .await?
        {
            // A concurrent identical request created it first: answer as that one did.
            Some(existing) if existing.request_hash == p.request_hash => Ok(answer(&existing)),
            Some(_) => {
                let r = Refusal::new(
                    Reason::TaskConflict,
                    format!("task {} was sent before with different fields", p.task_id),
                );
                Ok(refused(&r, &p.signing_hash, &p.account))
            }
            None => {
                tracing::info!(%approval_id, required = eval.approvals_required, "awaiting approval");
                Ok(answer(&row))
            }
        }
    }

    async fn resume(
        &self,
        p: &Parsed,
        row: RequestRow,
    ) -> Result<v1::SignTransactionResponse, ServiceError> {
        match row.outcome {
            Outcome::Signed | Outcome::Refused => Ok(answer(&row)),
            Outcome::Signing => {
                let policy = self.active_policy().await?;
                match trade::evaluate(&policy, &p.tx, p.from) {
                    Ok(eval) => self.sign_now(p, row, &policy, &eval).await,
                    Err(r) => {
                        self.store
                            .release(
                                &row,
                                &p.entry("sign_released", format!("policy now refuses it: {r}")),
                            )
                            .await?;
                        self.refuse(p, &row, &r).await
                    }
                }
            }
            Outcome::AwaitingApproval => {
                let now = now_ms();
                let Some((approval, _votes)) = self.store.approval(&row.approval_id).await? else {
                    return Err(StoreError::Corrupt(format!(
                        "task {} names a missing approval",
                        row.task_id
                    ))
                    .into());
                };
                let state = if approval.state == "pending" && approval.expires_at_ms <= now {
                    self.store.expire_approvals(now).await?;
                    "expired"
                } else {
                    approval.state.as_str()
                };
                match state {
                    "pending" => Ok(answer(&row)),
                    "rejected" => {
                        let r = Refusal::new(
                            Reason::ApprovalRejected,
                            format!("approval {} was rejected", approval.approval_id),
                        );
                        self.refuse(p, &row, &r).await
                    }
                    "expired" => {
                        let r = Refusal::new(
                            Reason::ApprovalExpired,
                            format!(
                                "approval {} expired before it was decided",
                                approval.approval_id
                            ),
                        );
                        self.refuse(p, &row, &r).await
                    }
                    // An approval is a permission until it expires: one approved but not
                    // collected by then is not used (the market it was judged on is gone).
                    "approved" if approval.expires_at_ms <= now => {
                        let r = Refusal::new(
                            Reason::ApprovalExpired,
                            format!(
                                "approval {} expired before the transaction was collected",
                                approval.approval_id
                            ),
                        );
                        self.refuse(p, &row, &r).await
                    }
                    "approved" => {
                        let policy = self.active_policy().await?;
                        let eval = match trade::evaluate(&policy, &p.tx, p.from) {
                            Ok(e) => e,
                            Err(r) => return self.refuse(p, &row, &r).await,
                        };
                        if eval.approvals_required > approval.required {
                            self.store
                                .require_more(
                                    &approval.approval_id,
                                    eval.approvals_required,
                                    &p.entry(
                                        "approval_reopened",
                                        format!(
                                            "the policy now needs {} approvers",
                                            eval.approvals_required
                                        ),
                                    ),
                                )
                                .await?;
                            let mut waiting = row.clone();
                            waiting.approvals_required = eval.approvals_required;
                            return Ok(answer(&waiting));
                        }
                        self.sign_now(p, row, &policy, &eval).await
                    }
                    other => Err(StoreError::Corrupt(format!("approval state {other:?}")).into()),
                }
            }
        }
    }

    async fn sign_now(
        &self,
        p: &Parsed,
        row: RequestRow,
        policy: &Policy,
        eval: &Evaluation,
    ) -> Result<v1::SignTransactionResponse, ServiceError> {
        let tokens: Vec<Address> = eval.trade.outflows.iter().map(|m| m.token).collect();
        let judged = self
            .store
            .reserve(
                &tokens,
                &row,
                &p.request_canon,
                |records, highest, spent| {
                    let fail = |r: Refusal| {
                        let refused_row = p.refused_row(&row, &r);
                        let entry = p.refusal_entry(&r);
                        Box::new((r, refused_row, entry))
                    };
                    let allowed =
                        nonce::judge(&p.tx, &p.signing_hash, eval.cancel, records, highest)
                            .map_err(fail)?;
                    let spend = if allowed == Allowed::Original {
                        trade::check_daily(policy, eval, spent).map_err(fail)?;
                        eval.trade
                            .outflows
                            .iter()
                            .map(|m| (m.token, m.amount))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    Ok(Reservation {
                        record: NonceRecord {
                            signing_hash: p.signing_hash.clone(),
                            to: format!("{:#x}", p.tx.to),
                            value: p.tx.value.to_string(),
                            input_hash: p.tx.input_hash(),
                            gas_limit: p.tx.gas_limit,
                            max_fee_per_gas: p.tx.max_fee_per_gas,
                            max_priority_fee_per_gas: p.tx.max_priority_fee_per_gas,
                            kind: allowed.kind().to_owned(),
                            task_id: p.task_id.clone(),
                            raw_tx: String::new(),
                            tx_hash: String::new(),
                        },
                        chain_id: p.tx.chain_id,
                        account: p.from,
                        spend,
                    })
                },
            )
            .await?;
        let reservation = match judged {
            Ok(r) => r,
            Err(refusal) => {
                tracing::info!(reason = %refusal.reason, detail = %refusal.detail, "refused at signing");
                return Ok(refused(&refusal, &p.signing_hash, &p.account));
            }
        };
        let hash = p.tx.signing_hash();
        let signed = self
            .keys
            .sign_prehash_traced(eval.key_index, hash, &p.trace_id)
            .await;
        let sig = match signed
            .map_err(|e| e.to_string())
            .and_then(|sig| verify_signer(&hash, &sig, p.from).map(|()| sig))
        {
            Ok(sig) => sig,
            Err(why) => {
                tracing::error!(key_source = self.keys.kind(), %why, "signing failed");
                self.store
                    .release(
                        &row,
                        &p.entry("sign_failed", format!("{}: {why}", self.keys.kind())),
                    )
                    .await?;
                let r = Refusal::new(
                    Reason::KeyUnavailable,
                    format!("the key source could not sign: {why}"),
                );
                return Ok(refused(&r, &p.signing_hash, &p.account));
            }
        };
        let (raw, tx_hash) = p.tx.finish(&sig);
        let mut done = row.clone();
        done.outcome = Outcome::Signed;
        done.raw_tx = hex::encode(&raw);
        done.tx_hash = hex32(&tx_hash);
        let entry = p.entry(
            "signed",
            format!(
                "{} ({}) account {} chain {} nonce {} tx {} signing hash {}{}",
                eval.trade.action,
                reservation.record.kind,
                p.account,
                p.tx.chain_id,
                p.tx.nonce,
                done.tx_hash,
                p.signing_hash,
                if done.approval_id.is_empty() {
                    String::new()
                } else {
                    format!(" approval {}", done.approval_id)
                }
            ),
        );
        self.store
            .finish_signed(&done, &p.request_canon, &entry)
            .await?;
        tracing::info!(tx_hash = %done.tx_hash, kind = %reservation.record.kind, "signed");
        Ok(answer(&done))
    }

    // ---- approvals --------------------------------------------------------------------

    /// One approval as the wire shows it.
    pub async fn approval(&self, id: &str) -> Result<Option<v1::Approval>, ServiceError> {
        let now = now_ms();
        Ok(self
            .store
            .approval(id)
            .await?
            .map(|(row, votes)| approval_view(&row, &votes, now)))
    }

    /// Approvals, pending first.
    pub async fn approvals(
        &self,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<v1::Approval>, ServiceError> {
        let now = now_ms();
        self.store.expire_approvals(now).await?;
        Ok(self
            .store
            .approvals(pending_only, limit.clamp(1, 1000))
            .await?
            .iter()
            .map(|(row, votes)| approval_view(row, votes, now))
            .collect())
    }

    /// Records an approver's decision.
    pub async fn decide(
        &self,
        d: &Decision<'_>,
    ) -> Result<Result<v1::Approval, DecideRefusal>, ServiceError> {
        match self.store.decide(d).await? {
            Err(r) => Ok(Err(r)),
            Ok(_) => Ok(self
                .approval(d.approval_id)
                .await?
                .ok_or(DecideRefusal::NotFound)),
        }
    }
}

/// Checks that the key source holds every policy account's key at its index.
fn check_keys(policy: &Policy, keys: &dyn KeySource) -> Result<(), ServiceError> {
    for (account, acc) in &policy.accounts {
        let mismatch = |why: String| ServiceError::KeyMismatch {
            account: format!("{account:#x}"),
            index: acc.key_index,
            why,
        };
        let held = keys
            .address(acc.key_index)
            .map_err(|e| mismatch(e.to_string()))?;
        if Address::from(held) != *account {
            return Err(mismatch(format!(
                "the key source holds {} there",
                hex_addr(&held)
            )));
        }
    }
    Ok(())
}

/// The signature must recover to the account: a key source that answers with another key's
/// signature (or garbage) is caught before anything is stored as signed.
fn verify_signer(
    hash: &[u8; 32],
    sig: &crate::keys::Signature,
    account: Address,
) -> Result<(), String> {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&sig.r);
    bytes[32..].copy_from_slice(&sig.s);
    let s = Signature::from_slice(&bytes).map_err(|e| format!("malformed signature: {e}"))?;
    if s.normalize_s().is_some() {
        return Err("signature s is not in the lower half (EIP-2)".into());
    }
    let recid = RecoveryId::new(sig.y_parity, false);
    let key = VerifyingKey::recover_from_prehash(hash, &s, recid)
        .map_err(|e| format!("signature does not recover: {e}"))?;
    let point = key.to_encoded_point(false);
    let digest = alloy_primitives::keccak256(&point.as_bytes()[1..]);
    if Address::from_slice(&digest[12..]) != account {
        return Err("the signature is not the account's".into());
    }
    Ok(())
}

/// What moved out per token, keyed by address (used by the benchmark).
pub fn outflow_tokens(eval: &Evaluation) -> BTreeMap<Address, U256> {
    let mut out = BTreeMap::new();
    for m in &eval.trade.outflows {
        let e = out.entry(m.token).or_insert(U256::ZERO);
        *e = e.saturating_add(m.amount);
    }
    out
}
