//! What the live path stores of the transactions that replace a broadcast one at its nonce
//! (`live_replacements`; the policy is [`crate::replace`]).
//!
//! Each replacement is written in three steps, each before its side effect: planned (the
//! exact signer request, fixed), signed (its bytes and hash, before they are sent), sent
//! (the node's block then, from which the next bump is counted). A restarted engine finds
//! every transaction that may be mined at the task's nonce and follows them all.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Audit, Store, StoreError, counted, insert_audits, now_ms};

/// What a replacement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplacementKind {
    /// The same call with higher fees.
    Bump,
    /// A 0-value transfer to the account itself: the nonce used, nothing traded.
    Cancel,
}

impl ReplacementKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplacementKind::Bump => "bump",
            ReplacementKind::Cancel => "cancel",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "bump" => Ok(ReplacementKind::Bump),
            "cancel" => Ok(ReplacementKind::Cancel),
            other => Err(StoreError::Corrupt(format!("replacement kind {other:?}"))),
        }
    }
}

/// One replacement of a task's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The task.
    pub task_id: String,
    /// 1, 2, …: the order they were planned in (0 is the task's own transaction).
    pub attempt: u32,
    /// Bump or cancel.
    pub kind: ReplacementKind,
    /// The request the signer is sent (prost `SignTransactionRequest`), fixed when planned.
    pub signer_request: Vec<u8>,
    /// Once signed.
    pub tx_hash: String,
    /// Once signed.
    pub raw_tx: Option<Vec<u8>>,
    /// The node's block when it was sent.
    pub sent_block: Option<u64>,
    /// Why the signer refused it (`''` unless it did).
    pub refused: String,
}

fn replacement_row(r: &AnyRow) -> Result<Replacement, StoreError> {
    let attempt: i64 = r.try_get("attempt")?;
    let kind: String = r.try_get("kind")?;
    let sent: Option<i64> = r.try_get("sent_block")?;
    Ok(Replacement {
        task_id: r.try_get("task_id")?,
        attempt: u32::try_from(attempt)
            .map_err(|_| StoreError::Corrupt(format!("replacement attempt {attempt}")))?,
        kind: ReplacementKind::parse(&kind)?,
        signer_request: r.try_get("signer_request")?,
        tx_hash: r.try_get("tx_hash")?,
        raw_tx: r.try_get("raw_tx")?,
        sent_block: sent.map(|b| b.max(0) as u64),
        refused: r.try_get("refused")?,
    })
}

fn block_i64(block: u64) -> Result<i64, StoreError> {
    i64::try_from(block).map_err(|_| StoreError::Corrupt(format!("block {block}")))
}

impl Store {
    /// A task's replacements, in the order they were planned.
    pub async fn replacements(&self, task_id: &str) -> Result<Vec<Replacement>, StoreError> {
        let rows = sqlx::query(
            "SELECT task_id, attempt, kind, signer_request, tx_hash, raw_tx, sent_block, refused \
             FROM live_replacements WHERE task_id = $1 ORDER BY attempt",
        )
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(replacement_row).collect()
    }

    /// Plans replacement `attempt` of `task_id` with the request the signer will be sent,
    /// and audits it. `false` if that attempt was planned already (by this engine before a
    /// crash, or by another that held the lease): the caller reads it back instead.
    pub async fn plan_replacement(
        &self,
        task_id: &str,
        attempt: u32,
        kind: ReplacementKind,
        signer_request: &[u8],
        actor: &str,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        counted();
        let inserted = sqlx::query(
            "INSERT INTO live_replacements (task_id, attempt, kind, signer_request, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task_id, attempt) DO NOTHING",
        )
        .bind(task_id)
        .bind(i64::from(attempt))
        .bind(kind.as_str())
        .bind(signer_request)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted != 1 {
            return Ok(false);
        }
        insert_audits(
            self.backend,
            &mut tx,
            &[Audit {
                actor: actor.into(),
                action: format!("replacement_{}", kind.as_str()),
                subject: task_id.into(),
                from_state: String::new(),
                to_state: String::new(),
                detail: detail.into(),
                trace_id: String::new(),
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a replacement's signed transaction (before it is sent).
    pub async fn replacement_signed(
        &self,
        task_id: &str,
        attempt: u32,
        tx_hash: &str,
        raw_tx: &[u8],
    ) -> Result<(), StoreError> {
        counted();
        sqlx::query(
            "UPDATE live_replacements SET tx_hash = $1, raw_tx = $2 \
             WHERE task_id = $3 AND attempt = $4 AND tx_hash = ''",
        )
        .bind(tx_hash)
        .bind(raw_tx)
        .bind(task_id)
        .bind(i64::from(attempt))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records the block a replacement was sent at (the next bump counts from it).
    pub async fn replacement_sent(
        &self,
        task_id: &str,
        attempt: u32,
        block: u64,
    ) -> Result<(), StoreError> {
        counted();
        sqlx::query(
            "UPDATE live_replacements SET sent_block = $1 \
             WHERE task_id = $2 AND attempt = $3 AND sent_block IS NULL",
        )
        .bind(block_i64(block)?)
        .bind(task_id)
        .bind(i64::from(attempt))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records that the signer refused a replacement; no further bump is planned after it.
    pub async fn replacement_refused(
        &self,
        task_id: &str,
        attempt: u32,
        why: &str,
    ) -> Result<(), StoreError> {
        counted();
        sqlx::query(
            "UPDATE live_replacements SET refused = $1 WHERE task_id = $2 AND attempt = $3",
        )
        .bind(why.chars().take(1024).collect::<String>())
        .bind(task_id)
        .bind(i64::from(attempt))
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
