//! What the live path stores: nonce leases, the nonce and signer request fixed on a task,
//! and every move after STAGED with the data it records.
//!
//! Write-ahead throughout: a task holds its nonce and the exact request the signer will be
//! sent before the signer is called, its signed transaction (SIGNED) before that is sent,
//! and BROADCAST before anyone waits for a receipt. A restarted engine therefore repeats a
//! step rather than guesses at it, and every step is one the chain or the signer answers
//! the same way twice (the signer is idempotent per task; a node that already has a
//! transaction answers "already known").
//!
//! Nonces come from `nonce_locks`: one lease per (chain, account), whose holder assigns
//! nonces only while its lease is unexpired and its fencing token is current. The token is
//! checked in the same transaction that takes the nonce and writes it on the task, so an
//! engine that lost its lease (paused, partitioned) cannot assign a nonce after the next
//! holder took over; the unique index on (chain_account, nonce) stands behind that.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Audit, Store, StoreError, counted, insert_audits, insert_postings, now_ms};
use crate::fsm::TaskState;
use crate::ledger::Posting;

/// A lease on one account's nonces, as taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The chain.
    pub chain_id: u64,
    /// The account, lowercase 0x hex.
    pub account: String,
    /// Who holds it (one engine process).
    pub holder: String,
    /// The fencing token: raised by every new holder.
    pub token: i64,
    /// Until when (ms since the epoch) unless renewed.
    pub expires_at_ms: i64,
    /// The next nonce the holder would assign.
    pub next_nonce: u64,
}

/// A task on the live path, with what the live path stored on it.
#[derive(Debug, Clone)]
pub struct LiveTask {
    /// The task.
    pub task_id: String,
    /// Its state.
    pub state: TaskState,
    /// The proposal, prost-encoded.
    pub proposal: Vec<u8>,
    /// The submit's trace id.
    pub trace_id: String,
    /// Simulated magnitudes and gas (see [`super::SimRecord`]), base-10.
    pub sim_amount0: String,
    /// See `sim_amount0`.
    pub sim_amount1: String,
    /// Simulated gas.
    pub sim_gas_used: i64,
    /// The sender, once a nonce is assigned.
    pub chain_account: String,
    /// The nonce, once assigned.
    pub nonce: Option<u64>,
    /// The request fixed with the nonce (prost `SignTransactionRequest`).
    pub signer_request: Option<Vec<u8>>,
    /// The signer's approval, once asked for.
    pub approval_id: String,
    /// The signed transaction's hash, once SIGNED.
    pub tx_hash: String,
    /// The signed transaction (EIP-2718 bytes), once SIGNED.
    pub raw_tx: Option<Vec<u8>>,
    /// The pool's amounts from the receipt (magnitudes, base-10), once CONFIRMED; empty
    /// before.
    pub actual_amount0: String,
    /// See `actual_amount0`.
    pub actual_amount1: String,
    /// When the task was decided (ms since the epoch): the age of the state it was
    /// simulated on.
    pub created_at_ms: i64,
    /// The node's block when its transaction was first sent (BROADCAST): fee bumps and the
    /// inclusion deadline count from it.
    pub broadcast_block: Option<u64>,
    /// How many times a reorg took its receipt away (see [`crate::live`]'s reorg watch):
    /// each inclusion books its postings under ids of its own.
    pub reorgs: u64,
}

/// A booked receipt, as [`Store::task_receipt`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReceipt {
    /// The receipt's block.
    pub block: u64,
    /// Gas the transaction used.
    pub gas_used: u64,
    /// The pool's token0 amount (a magnitude, base-10); empty for a revert.
    pub actual_amount0: String,
    /// As `actual_amount0`, for token1.
    pub actual_amount1: String,
}

/// The states a task is in while the live path still owes it something.
pub const OPEN_LIVE_STATES: [TaskState; 5] = [
    TaskState::Staged,
    TaskState::AwaitingApproval,
    TaskState::Approved,
    TaskState::Signed,
    TaskState::Broadcast,
];

const LIVE_COLS: &str = "task_id, state, proposal, trace_id, sim_amount0, sim_amount1, sim_gas_used, \
     chain_account, nonce, signer_request, approval_id, tx_hash, raw_tx, actual_amount0, actual_amount1, created_at_ms, broadcast_block, reorgs";

fn live_row(r: &AnyRow) -> Result<LiveTask, StoreError> {
    let state: String = r.try_get("state")?;
    let nonce: Option<i64> = r.try_get("nonce")?;
    Ok(LiveTask {
        task_id: r.try_get("task_id")?,
        state: state.parse()?,
        proposal: r.try_get("proposal")?,
        trace_id: r.try_get("trace_id")?,
        sim_amount0: r.try_get("sim_amount0")?,
        sim_amount1: r.try_get("sim_amount1")?,
        sim_gas_used: r.try_get("sim_gas_used")?,
        chain_account: r.try_get("chain_account")?,
        nonce: nonce.map(|n| n.max(0) as u64),
        signer_request: r.try_get("signer_request")?,
        approval_id: r.try_get("approval_id")?,
        tx_hash: r.try_get("tx_hash")?,
        raw_tx: r.try_get("raw_tx")?,
        actual_amount0: r.try_get("actual_amount0")?,
        actual_amount1: r.try_get("actual_amount1")?,
        created_at_ms: r.try_get("created_at_ms")?,
        broadcast_block: r
            .try_get::<Option<i64>, _>("broadcast_block")?
            .map(|b| b.max(0) as u64),
        reorgs: r.try_get::<i64, _>("reorgs")?.max(0) as u64,
    })
}

fn lease_row(r: &AnyRow) -> Result<Lease, StoreError> {
    let chain_id: i64 = r.try_get("chain_id")?;
    let next: i64 = r.try_get("next_nonce")?;
    Ok(Lease {
        chain_id: chain_id.max(0) as u64,
        account: r.try_get("account")?,
        holder: r.try_get("holder")?,
        token: r.try_get("token")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        next_nonce: next.max(0) as u64,
    })
}

pub(super) fn i64_of(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} does not fit a BIGINT")))
}

/// What a live move writes besides the state (each `None` leaves its column alone).
#[derive(Debug, Clone, Default)]
pub struct LiveUpdate {
    /// The approval the signer opened.
    pub approval_id: Option<String>,
    /// The signed transaction's hash (or the included replacement's).
    pub tx_hash: Option<String>,
    /// The signed transaction (or the replacement the chain included).
    pub raw_tx: Option<Vec<u8>>,
    /// The node's block when the transaction was sent.
    pub broadcast_block: Option<u64>,
    /// The receipt: block, status, gas used, effective gas price (wei, base-10).
    pub receipt: Option<(u64, u64, u64, String)>,
    /// The hash of the receipt's block (with `receipt`), which a reorg changes.
    pub receipt_block_hash: Option<String>,
    /// The pool's actual amounts (magnitudes, base-10).
    pub actual: Option<(String, String)>,
    /// Clears the nonce and the request (a nonce given back before anything was signed).
    pub release_nonce: bool,
    /// Booked in the same transaction: a receipt's real fill, the wallet's token moves and
    /// the gas it paid.
    pub postings: Vec<Posting>,
}

impl Store {
    /// Takes, renews or takes over the lease on `account`'s nonces for `ttl_ms`. A lease
    /// held by someone else and unexpired is not taken (`None`). A new holder gets a higher
    /// token. `chain_next` is the chain's own next nonce for the account (pending): the
    /// lease never assigns below it, so nonces used outside stratbox are skipped.
    pub async fn take_lease(
        &self,
        chain_id: u64,
        account: &str,
        holder: &str,
        ttl_ms: i64,
        chain_next: u64,
    ) -> Result<Option<Lease>, StoreError> {
        let chain = i64_of(chain_id, "chain id")?;
        let chain_next = i64_of(chain_next, "nonce")?;
        let now = now_ms();
        counted();
        sqlx::query(
            "INSERT INTO nonce_locks (chain_id, account, holder, token, expires_at_ms, next_nonce) \
             VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (chain_id, account) DO NOTHING",
        )
        .bind(chain)
        .bind(account)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(chain_next)
        .execute(&self.writer)
        .await?;
        counted();
        // Ours (renew, same token) or expired (take over, next token); never another's
        // live lease. The token moves only when the holder changes hands.
        let row = sqlx::query(
            "UPDATE nonce_locks SET \
               token = CASE WHEN holder = $3 AND expires_at_ms >= $4 THEN token ELSE token + 1 END, \
               holder = $3, expires_at_ms = $5, \
               next_nonce = CASE WHEN next_nonce > $6 THEN next_nonce ELSE $6 END \
             WHERE chain_id = $1 AND account = $2 AND (holder = $3 OR expires_at_ms < $4) \
             RETURNING chain_id, account, holder, token, expires_at_ms, next_nonce",
        )
        .bind(chain)
        .bind(account)
        .bind(holder)
        .bind(now)
        .bind(now + ttl_ms)
        .bind(chain_next)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(lease_row).transpose()
    }

    /// The lease on `account`, whoever holds it.
    pub async fn lease(&self, chain_id: u64, account: &str) -> Result<Option<Lease>, StoreError> {
        let row = sqlx::query(
            "SELECT chain_id, account, holder, token, expires_at_ms, next_nonce FROM nonce_locks \
             WHERE chain_id = $1 AND account = $2",
        )
        .bind(i64_of(chain_id, "chain id")?)
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(lease_row).transpose()
    }

    /// Gives the lease up (an orderly stop), so another engine need not wait for it to
    /// expire. Only the holder with this token can.
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE nonce_locks SET expires_at_ms = 0 \
             WHERE chain_id = $1 AND account = $2 AND holder = $3 AND token = $4",
        )
        .bind(i64_of(lease.chain_id, "chain id")?)
        .bind(&lease.account)
        .bind(&lease.holder)
        .bind(lease.token)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Assigns the lease's next nonce to `task_id` (which must be STAGED with no nonce) and
    /// stores on it the signer request `request(nonce)` builds, in one transaction that
    /// also checks the lease (holder, token, unexpired). `None` if the lease is no longer
    /// ours or the task was taken or moved.
    pub async fn assign_nonce(
        &self,
        lease: &Lease,
        task_id: &str,
        request: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<Option<u64>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        counted();
        let row = sqlx::query(
            "UPDATE nonce_locks SET next_nonce = next_nonce + 1 \
             WHERE chain_id = $1 AND account = $2 AND holder = $3 AND token = $4 AND expires_at_ms >= $5 \
             RETURNING next_nonce",
        )
        .bind(i64_of(lease.chain_id, "chain id")?)
        .bind(&lease.account)
        .bind(&lease.holder)
        .bind(lease.token)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let next: i64 = row.try_get("next_nonce")?;
        let nonce = next - 1;
        let bytes = request(nonce.max(0) as u64);
        counted();
        let moved = sqlx::query(
            "UPDATE trade_tasks SET chain_account = $1, nonce = $2, signer_request = $3, updated_at_ms = $4 \
             WHERE task_id = $5 AND state = $6 AND nonce IS NULL",
        )
        .bind(&lease.account)
        .bind(nonce)
        .bind(bytes)
        .bind(now)
        .bind(task_id)
        .bind(TaskState::Staged.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(None);
        }
        insert_audits(
            self.backend,
            &mut tx,
            &[Audit {
                actor: lease.holder.clone(),
                action: "nonce_assigned".into(),
                subject: task_id.into(),
                from_state: String::new(),
                to_state: String::new(),
                detail: format!(
                    "{} nonce {nonce} (lease token {})",
                    lease.account, lease.token
                ),
                trace_id: String::new(),
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(nonce.max(0) as u64))
    }

    /// Tasks STAGED and not yet given a nonce, oldest first.
    pub async fn unassigned_staged(&self, limit: i64) -> Result<Vec<LiveTask>, StoreError> {
        let sql = format!(
            "SELECT {LIVE_COLS} FROM trade_tasks WHERE state = $1 AND nonce IS NULL \
             ORDER BY task_id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(TaskState::Staged.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(live_row).collect()
    }

    /// `account`'s tasks the live path still owes something (a nonce assigned, not in an
    /// end state), in nonce order.
    pub async fn open_live(&self, account: &str) -> Result<Vec<LiveTask>, StoreError> {
        let states: Vec<&str> = OPEN_LIVE_STATES.iter().map(|s| s.as_str()).collect();
        let sql = format!(
            "SELECT {LIVE_COLS} FROM trade_tasks WHERE chain_account = $1 AND nonce IS NOT NULL \
             AND state IN ($2, $3, $4, $5, $6) ORDER BY nonce"
        );
        let mut q = sqlx::query(&sql).bind(account);
        for s in states {
            q = q.bind(s);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(live_row).collect()
    }

    /// One task's live view.
    pub async fn live_task(&self, task_id: &str) -> Result<Option<LiveTask>, StoreError> {
        let sql = format!("SELECT {LIVE_COLS} FROM trade_tasks WHERE task_id = $1");
        let row = sqlx::query(&sql)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(live_row).transpose()
    }

    /// What the chain did with `task_id`'s transaction, once its receipt is booked: the
    /// pool's amounts (magnitudes), the gas used and the receipt's block. `None` before (or
    /// for a task that never went on chain).
    pub async fn task_receipt(&self, task_id: &str) -> Result<Option<TaskReceipt>, StoreError> {
        let row = sqlx::query(
            "SELECT receipt_block, gas_used, actual_amount0, actual_amount1 FROM trade_tasks \
             WHERE task_id = $1 AND receipt_block IS NOT NULL",
        )
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let block: i64 = r.try_get("receipt_block")?;
        let gas: Option<i64> = r.try_get("gas_used")?;
        Ok(Some(TaskReceipt {
            block: u64::try_from(block).unwrap_or(0),
            gas_used: gas.and_then(|g| u64::try_from(g).ok()).unwrap_or(0),
            actual_amount0: r.try_get("actual_amount0")?,
            actual_amount1: r.try_get("actual_amount1")?,
        }))
    }

    /// A compare-and-set move on the live path with what it records, and its audit row.
    /// With `update.release_nonce` the lease's next nonce is given back too, if it is still
    /// the one after this task's (nothing assigned since). Returns whether it moved.
    #[allow(clippy::too_many_arguments)] // one per column group; a struct would only rename them
    pub async fn live_move(
        &self,
        task_id: &str,
        from: TaskState,
        to: TaskState,
        reason_code: &str,
        detail: &str,
        trace_id: &str,
        actor: &str,
        update: &LiveUpdate,
    ) -> Result<bool, StoreError> {
        from.check(to)?;
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let mut sets = vec![
            "state = $1".to_owned(),
            "reason_code = $2".into(),
            "detail = $3".into(),
            "updated_at_ms = $4".into(),
        ];
        let mut n = 6;
        let mut next = |col: &str, sets: &mut Vec<String>| {
            n += 1;
            sets.push(format!("{col} = ${n}"));
        };
        if update.approval_id.is_some() {
            next("approval_id", &mut sets);
        }
        if update.tx_hash.is_some() {
            next("tx_hash", &mut sets);
        }
        if update.raw_tx.is_some() {
            next("raw_tx", &mut sets);
        }
        if update.broadcast_block.is_some() {
            next("broadcast_block", &mut sets);
        }
        if update.receipt.is_some() {
            next("receipt_block", &mut sets);
            next("receipt_status", &mut sets);
            next("gas_used", &mut sets);
            next("effective_gas_price", &mut sets);
        }
        if update.receipt_block_hash.is_some() {
            next("receipt_block_hash", &mut sets);
        }
        if update.actual.is_some() {
            next("actual_amount0", &mut sets);
            next("actual_amount1", &mut sets);
        }
        let sql = format!(
            "UPDATE trade_tasks SET {} WHERE task_id = $5 AND state = $6 \
             RETURNING chain_account, nonce",
            sets.join(", ")
        );
        let mut q = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(reason_code)
            .bind(detail)
            .bind(now)
            .bind(task_id)
            .bind(from.as_str());
        if let Some(a) = &update.approval_id {
            q = q.bind(a);
        }
        if let Some(h) = &update.tx_hash {
            q = q.bind(h);
        }
        if let Some(r) = &update.raw_tx {
            q = q.bind(r);
        }
        if let Some(block) = update.broadcast_block {
            q = q.bind(i64_of(block, "block")?);
        }
        if let Some((block, status, gas, price)) = &update.receipt {
            q = q
                .bind(i64_of(*block, "block")?)
                .bind(i64_of(*status, "status")?)
                .bind(i64_of(*gas, "gas")?)
                .bind(price);
        }
        if let Some(h) = &update.receipt_block_hash {
            q = q.bind(h);
        }
        if let Some((a0, a1)) = &update.actual {
            q = q.bind(a0).bind(a1);
        }
        counted();
        let Some(row) = q.fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        let mut audit_detail = if detail.is_empty() {
            reason_code.to_owned()
        } else {
            format!("{reason_code}: {detail}")
        };
        if update.release_nonce {
            let account: String = row.try_get("chain_account")?;
            let nonce: Option<i64> = row.try_get("nonce")?;
            if let Some(nonce) = nonce {
                let given_back = sqlx::query(
                    "UPDATE nonce_locks SET next_nonce = $1 WHERE account = $2 AND next_nonce = $3",
                )
                .bind(nonce)
                .bind(&account)
                .bind(nonce + 1)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if given_back == 0 {
                    // A later nonce was assigned meanwhile: this one stays a gap on the
                    // chain until a cancelling transaction fills it.
                    audit_detail.push_str(&format!(" (nonce {nonce} left as a gap)"));
                } else {
                    sqlx::query(
                        "UPDATE trade_tasks SET nonce = NULL, signer_request = NULL WHERE task_id = $1",
                    )
                    .bind(task_id)
                    .execute(&mut *tx)
                    .await?;
                    audit_detail.push_str(&format!(" (nonce {nonce} given back)"));
                }
            }
        }
        let postings: Vec<&Posting> = update.postings.iter().collect();
        let new_accounts =
            insert_postings(self.backend, &self.known_accounts, &mut tx, &postings, now).await?;
        insert_audits(
            self.backend,
            &mut tx,
            &[Audit {
                actor: actor.into(),
                action: "task_transition".into(),
                subject: task_id.into(),
                from_state: from.as_str().into(),
                to_state: to.as_str().into(),
                detail: audit_detail,
                trace_id: trace_id.into(),
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        self.remember_accounts(new_accounts);
        Ok(true)
    }

    /// Every nonce each account used on tasks, for checks (no nonce may appear twice).
    pub async fn assigned_nonces(&self) -> Result<Vec<(String, u64, TaskState)>, StoreError> {
        let rows = sqlx::query(
            "SELECT chain_account, nonce, state FROM trade_tasks WHERE nonce IS NOT NULL \
             ORDER BY chain_account, nonce",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let nonce: i64 = r.try_get("nonce")?;
                let state: String = r.try_get("state")?;
                Ok((
                    r.try_get("chain_account")?,
                    nonce.max(0) as u64,
                    state.parse()?,
                ))
            })
            .collect()
    }
}
