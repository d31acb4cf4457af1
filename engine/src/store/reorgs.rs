//! What the live path stores when a reorg takes a receipt away: the task back to
//! BROADCAST and everything its receipt booked reversed, in one transaction.
//!
//! A receipt is booked with its block's hash (`receipt_block_hash`). While that block is
//! within the watched depth of the head, the live path compares it with the chain's; when
//! they differ the receipt it booked no longer describes the chain, so neither may the
//! ledger. Each inclusion books its postings under ids of its own
//! ([`inclusion_posting_id`]), so a task included, reorged out and included again holds
//! both bookings and the reversal between them.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Audit, Store, StoreError, counted, insert_audits, insert_postings, now_ms};
use crate::fsm::TaskState;
use crate::ledger::{Entry, Posting, Side};

/// A task ended by a receipt that a reorg could still remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    /// The task.
    pub task_id: String,
    /// CONFIRMED, FAILED or EXPIRED (by its cancel).
    pub state: TaskState,
    /// The receipt's block.
    pub block: u64,
    /// That block's hash when the receipt was booked.
    pub block_hash: String,
    /// Reorgs the task has been through before this inclusion.
    pub reorgs: u64,
    /// The submit's trace id.
    pub trace_id: String,
}

/// The id a receipt's posting `base` (e.g. `<task>:fill`) has in the task's inclusion after
/// `reorgs` reorgs: the first keeps the plain id, later ones add `:r<n>`.
pub fn inclusion_posting_id(base: &str, reorgs: u64) -> String {
    if reorgs == 0 {
        base.to_owned()
    } else {
        format!("{base}:r{reorgs}")
    }
}

/// The postings a receipt books for a task (see `Live::included` and `Live::cancelled`),
/// under the ids of inclusion `reorgs`.
fn receipt_posting_ids(task_id: &str, reorgs: u64) -> [String; 3] {
    ["fill", "wallet", "gas"].map(|k| inclusion_posting_id(&format!("{task_id}:{k}"), reorgs))
}

impl Store {
    /// `account`'s tasks ended by a receipt in `from_block` or later, oldest block first.
    pub async fn included_since(
        &self,
        account: &str,
        from_block: u64,
    ) -> Result<Vec<Included>, StoreError> {
        let from = i64::try_from(from_block)
            .map_err(|_| StoreError::Corrupt(format!("block {from_block}")))?;
        let rows = sqlx::query(
            "SELECT task_id, state, receipt_block, receipt_block_hash, reorgs, trace_id \
             FROM trade_tasks WHERE chain_account = $1 AND receipt_block_hash IS NOT NULL \
             AND receipt_block >= $2 ORDER BY receipt_block, task_id",
        )
        .bind(account)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                let block: i64 = r.try_get("receipt_block")?;
                let reorgs: i64 = r.try_get("reorgs")?;
                Ok(Included {
                    task_id: r.try_get("task_id")?,
                    state: state.parse()?,
                    block: block.max(0) as u64,
                    block_hash: r.try_get("receipt_block_hash")?,
                    reorgs: reorgs.max(0) as u64,
                    trace_id: r.try_get("trace_id")?,
                })
            })
            .collect()
    }

    /// Moves `inc`'s task back to BROADCAST, if it is still as `inc` describes it (same
    /// state, same receipt block hash): the receipt's columns cleared, `broadcast_block` set
    /// to `head` (bumps and the inclusion deadline count again from now), `reorgs` raised,
    /// every posting that receipt booked reversed, and an audit row. Returns the reversals
    /// (for the books), or `None` if the task had moved meanwhile.
    pub async fn reorg_back(
        &self,
        inc: &Included,
        head: u64,
        detail: &str,
        actor: &str,
    ) -> Result<Option<Vec<Posting>>, StoreError> {
        let to = inc.state.check_reorg()?;
        let head = i64::try_from(head).map_err(|_| StoreError::Corrupt(format!("block {head}")))?;
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        counted();
        let moved = sqlx::query(
            "UPDATE trade_tasks SET state = $1, reason_code = 'reorg', detail = $2, \
             updated_at_ms = $3, receipt_block = NULL, receipt_status = NULL, gas_used = NULL, \
             effective_gas_price = '', actual_amount0 = '', actual_amount1 = '', \
             receipt_block_hash = NULL, reorgs = reorgs + 1, broadcast_block = $4 \
             WHERE task_id = $5 AND state = $6 AND receipt_block_hash = $7",
        )
        .bind(to.as_str())
        .bind(detail)
        .bind(now)
        .bind(head)
        .bind(&inc.task_id)
        .bind(inc.state.as_str())
        .bind(&inc.block_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(None);
        }
        let ids = receipt_posting_ids(&inc.task_id, inc.reorgs);
        counted();
        let rows = sqlx::query(
            "SELECT posting_id, account, asset, side, amount, memo FROM ledger_entries \
             WHERE task_id = $1 AND posting_id IN ($2, $3, $4) ORDER BY entry_id",
        )
        .bind(&inc.task_id)
        .bind(&ids[0])
        .bind(&ids[1])
        .bind(&ids[2])
        .fetch_all(&mut *tx)
        .await?;
        let mut booked: BTreeMap<String, (String, Vec<Entry>)> = BTreeMap::new();
        for r in &rows {
            let side: String = r.try_get("side")?;
            let entry = Entry {
                account: r.try_get("account")?,
                asset: r.try_get("asset")?,
                side: Side::parse(&side)
                    .ok_or_else(|| StoreError::Corrupt(format!("side {side:?}")))?,
                amount: super::reads::amount_col(r, "amount")?,
            };
            let slot = booked
                .entry(r.try_get("posting_id")?)
                .or_insert_with(|| (String::new(), Vec::new()));
            slot.0 = r.try_get("memo")?;
            slot.1.push(entry);
        }
        let mut reversals = Vec::with_capacity(booked.len());
        for (posting_id, (memo, entries)) in booked {
            let original = Posting::new(posting_id.clone(), inc.task_id.clone(), memo, entries)
                .map_err(|e| StoreError::Corrupt(format!("posting {posting_id}: {e}")))?;
            reversals.push(original.reversal(
                format!("{posting_id}:reorg"),
                format!("reversed: block {} left the chain (reorg)", inc.block),
            ));
        }
        let refs: Vec<&Posting> = reversals.iter().collect();
        let new_accounts =
            insert_postings(self.backend, &self.known_accounts, &mut tx, &refs, now).await?;
        insert_audits(
            self.backend,
            &mut tx,
            &[Audit {
                actor: actor.into(),
                action: "task_transition".into(),
                subject: inc.task_id.clone(),
                from_state: inc.state.as_str().into(),
                to_state: to.as_str().into(),
                detail: format!("reorg: {detail}"),
                trace_id: inc.trace_id.clone(),
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        self.remember_accounts(new_accounts);
        Ok(Some(reversals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_inclusion_books_under_its_own_ids() {
        assert_eq!(inclusion_posting_id("t:fill", 0), "t:fill");
        assert_eq!(inclusion_posting_id("t:fill", 2), "t:fill:r2");
        assert_eq!(
            receipt_posting_ids("t", 1),
            ["t:fill:r1", "t:wallet:r1", "t:gas:r1"]
        );
    }
}
