//! What the live path stores of the nonce gaps it fills (`nonce_gaps`; the logic is
//! `crate::live`'s `gap` module).
//!
//! A gap is planned only under the account's lease, in the transaction that checks it is
//! still one: below the lease's next nonce, held by no open task, not planned before. Like
//! a replacement, its cancel is stored before each side effect (request before the signer
//! is asked, bytes before they are sent), so a restarted engine follows it to its end.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::live::i64_of;
use super::{
    Audit, Lease, OPEN_LIVE_STATES, Store, StoreError, counted, insert_audits, insert_postings,
    now_ms,
};
use crate::ledger::Posting;

/// Where a gap's cancel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapState {
    /// Its signer request is fixed; the signer has not answered yet.
    Planned,
    /// Signed; its bytes are stored and may have been sent.
    Signed,
    /// Sent to the node.
    Sent,
    /// Its receipt is booked: the nonce is used and the gas paid.
    Filled,
    /// The nonce was used by a transaction other than the cancel (nothing booked here).
    Used,
    /// The signer refused the cancel: the account's queue stays stuck.
    Refused,
}

impl GapState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            GapState::Planned => "planned",
            GapState::Signed => "signed",
            GapState::Sent => "sent",
            GapState::Filled => "filled",
            GapState::Used => "used",
            GapState::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "planned" => GapState::Planned,
            "signed" => GapState::Signed,
            "sent" => GapState::Sent,
            "filled" => GapState::Filled,
            "used" => GapState::Used,
            "refused" => GapState::Refused,
            other => return Err(StoreError::Corrupt(format!("nonce gap state {other:?}"))),
        })
    }

    /// Whether the live path still owes the gap something.
    pub fn is_open(self) -> bool {
        matches!(self, GapState::Planned | GapState::Signed | GapState::Sent)
    }
}

/// One nonce gap and its cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceGap {
    /// The account, lowercase 0x hex.
    pub account: String,
    /// The nonce.
    pub nonce: u64,
    /// Where its cancel is.
    pub state: GapState,
    /// The request the signer is sent (prost `SignTransactionRequest`), fixed when planned.
    pub signer_request: Vec<u8>,
    /// Once signed.
    pub tx_hash: String,
    /// Once signed.
    pub raw_tx: Option<Vec<u8>>,
    /// The node's block when it was sent.
    pub sent_block: Option<u64>,
    /// The block that included the cancel (filled) or in which the nonce was found used.
    pub block: Option<u64>,
    /// What ended it.
    pub detail: String,
}

const GAP_COLS: &str =
    "account, nonce, state, signer_request, tx_hash, raw_tx, sent_block, block, detail";

fn gap_row(r: &AnyRow) -> Result<NonceGap, StoreError> {
    let nonce: i64 = r.try_get("nonce")?;
    let state: String = r.try_get("state")?;
    let sent: Option<i64> = r.try_get("sent_block")?;
    let block: Option<i64> = r.try_get("block")?;
    Ok(NonceGap {
        account: r.try_get("account")?,
        nonce: u64::try_from(nonce)
            .map_err(|_| StoreError::Corrupt(format!("nonce gap at {nonce}")))?,
        state: GapState::parse(&state)?,
        signer_request: r.try_get("signer_request")?,
        tx_hash: r.try_get("tx_hash")?,
        raw_tx: r.try_get("raw_tx")?,
        sent_block: sent.map(|b| b.max(0) as u64),
        block: block.map(|b| b.max(0) as u64),
        detail: r.try_get("detail")?,
    })
}

fn open_states_sql() -> String {
    OPEN_LIVE_STATES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// `account`'s gaps, lowest nonce first; with `open_only`, those still being filled.
    pub async fn nonce_gaps(
        &self,
        account: &str,
        open_only: bool,
    ) -> Result<Vec<NonceGap>, StoreError> {
        let filter = if open_only {
            " AND state IN ('planned', 'signed', 'sent')"
        } else {
            ""
        };
        let sql =
            format!("SELECT {GAP_COLS} FROM nonce_gaps WHERE account = $1{filter} ORDER BY nonce");
        let rows = sqlx::query(&sql)
            .bind(account)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(gap_row).collect()
    }

    /// Whether `nonce` is a gap of the lease's account now: the lease is held as `lease`
    /// says, its next nonce is above `nonce`, no open task holds `nonce`, and no gap was
    /// planned at it before.
    pub async fn is_nonce_gap(&self, lease: &Lease, nonce: u64) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        gap_check(&mut conn, lease, nonce).await
    }

    /// Plans the cancel filling the gap at `nonce` with the request the signer will be sent,
    /// and audits it, if `nonce` is still a gap (see [`Store::is_nonce_gap`]), checked in
    /// the same transaction. `false` when it is not (any more).
    pub async fn plan_gap(
        &self,
        lease: &Lease,
        nonce: u64,
        signer_request: &[u8],
        detail: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        if !gap_check(&mut tx, lease, nonce).await? {
            return Ok(false);
        }
        counted();
        sqlx::query(
            "INSERT INTO nonce_gaps (account, nonce, state, signer_request, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, 'planned', $3, $4, $4)",
        )
        .bind(&lease.account)
        .bind(i64_of(nonce, "nonce")?)
        .bind(signer_request)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_audits(
            self.backend,
            &mut tx,
            &[Audit {
                actor: lease.holder.clone(),
                action: "nonce_gap".into(),
                subject: lease.account.clone(),
                from_state: String::new(),
                to_state: GapState::Planned.as_str().into(),
                detail: detail.into(),
                trace_id: String::new(),
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a gap's signed cancel (before it is sent).
    pub async fn gap_signed(
        &self,
        account: &str,
        nonce: u64,
        tx_hash: &str,
        raw_tx: &[u8],
    ) -> Result<(), StoreError> {
        counted();
        sqlx::query(
            "UPDATE nonce_gaps SET state = 'signed', tx_hash = $1, raw_tx = $2, updated_at_ms = $3 \
             WHERE account = $4 AND nonce = $5 AND state = 'planned'",
        )
        .bind(tx_hash)
        .bind(raw_tx)
        .bind(now_ms())
        .bind(account)
        .bind(i64_of(nonce, "nonce")?)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records the block a gap's cancel was sent at.
    pub async fn gap_sent(&self, account: &str, nonce: u64, block: u64) -> Result<(), StoreError> {
        counted();
        sqlx::query(
            "UPDATE nonce_gaps SET state = 'sent', sent_block = $1, updated_at_ms = $2 \
             WHERE account = $3 AND nonce = $4 AND state = 'signed'",
        )
        .bind(i64_of(block, "block")?)
        .bind(now_ms())
        .bind(account)
        .bind(i64_of(nonce, "nonce")?)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Ends an open gap as `to` (filled, used or refused) with what ended it, booking
    /// `postings` (the cancel's gas when filled) in the same transaction. `false` if it was
    /// ended already.
    #[allow(clippy::too_many_arguments)]
    pub async fn end_gap(
        &self,
        account: &str,
        nonce: u64,
        to: GapState,
        block: Option<u64>,
        detail: &str,
        postings: &[Posting],
        actor: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        counted();
        let row = sqlx::query(
            "UPDATE nonce_gaps SET state = $1, block = $2, detail = $3, updated_at_ms = $4 \
             WHERE account = $5 AND nonce = $6 AND state IN ('planned', 'signed', 'sent') \
             RETURNING state",
        )
        .bind(to.as_str())
        .bind(block.map(|b| i64_of(b, "block")).transpose()?)
        .bind(detail)
        .bind(now)
        .bind(account)
        .bind(i64_of(nonce, "nonce")?)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_none() {
            return Ok(false);
        }
        let postings: Vec<&Posting> = postings.iter().collect();
        insert_postings(self.backend, &self.known_accounts, &mut tx, &postings, now).await?;
        insert_audits(
            self.backend,
            &mut tx,
            &[Audit {
                actor: actor.into(),
                action: "nonce_gap".into(),
                subject: account.into(),
                from_state: String::new(),
                to_state: to.as_str().into(),
                detail: format!("nonce {nonce}: {detail}"),
                trace_id: String::new(),
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// See [`Store::is_nonce_gap`].
async fn gap_check(
    conn: &mut sqlx::AnyConnection,
    lease: &Lease,
    nonce: u64,
) -> Result<bool, StoreError> {
    let n = i64_of(nonce, "nonce")?;
    counted();
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT next_nonce FROM nonce_locks \
         WHERE chain_id = $1 AND account = $2 AND holder = $3 AND token = $4 AND expires_at_ms >= $5",
    )
    .bind(i64_of(lease.chain_id, "chain id")?)
    .bind(&lease.account)
    .bind(&lease.holder)
    .bind(lease.token)
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    if next.is_none_or(|next| next <= n) {
        return Ok(false);
    }
    let held_sql = format!(
        "SELECT COUNT(*) FROM trade_tasks WHERE chain_account = $1 AND nonce = $2 AND state IN ({})",
        open_states_sql()
    );
    counted();
    let held: i64 = sqlx::query_scalar(&held_sql)
        .bind(&lease.account)
        .bind(n)
        .fetch_one(&mut *conn)
        .await?;
    if held > 0 {
        return Ok(false);
    }
    counted();
    let planned: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM nonce_gaps WHERE account = $1 AND nonce = $2")
            .bind(&lease.account)
            .bind(n)
            .fetch_one(&mut *conn)
            .await?;
    Ok(planned == 0)
}
