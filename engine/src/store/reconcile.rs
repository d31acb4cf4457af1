//! What reconciliation stores: each wallet's opening (booked once) and the differences
//! found.

use sqlx::Row;

use super::{Audit, Store, StoreError, counted, insert_audits, insert_postings, now_ms};
use crate::ledger::Posting;

/// A difference between the ledger and the chain, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The signing account.
    pub account: String,
    /// The block the chain was read at.
    pub block: u64,
    /// Ether or a token address.
    pub asset: String,
    /// The ledger's balance, base 10 (signed).
    pub ledger: String,
    /// The chain's, base 10.
    pub chain: String,
    /// `chain - ledger`, base 10 (signed).
    pub difference: String,
    /// When it was found (ms since the epoch).
    pub found_at_ms: i64,
}

impl Store {
    /// The block `account`'s wallet was opened at, if it was.
    pub async fn wallet_opening(&self, account: &str) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT block FROM wallet_openings WHERE account = $1")
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get::<i64, _>("block")?.max(0) as u64))
            .transpose()
    }

    /// Books `account`'s opening balances once: the posting, its audit row and the opening
    /// mark in one transaction. `false` (nothing written) when the wallet was opened
    /// already, by this engine or another racing it on the same database.
    pub async fn open_wallet(
        &self,
        account: &str,
        block: u64,
        posting: &Posting,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        counted();
        let marked = sqlx::query(
            "INSERT INTO wallet_openings (account, block, opened_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (account) DO NOTHING",
        )
        .bind(account)
        .bind(i64::try_from(block).unwrap_or(i64::MAX))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        let new_accounts =
            insert_postings(self.backend, &self.known_accounts, &mut tx, &[posting], now).await?;
        insert_audits(self.backend, &mut tx, std::slice::from_ref(audit), now).await?;
        tx.commit().await?;
        self.remember_accounts(new_accounts);
        Ok(true)
    }

    /// Records findings with one audit row naming them, in one transaction.
    pub async fn record_findings(
        &self,
        findings: &[Finding],
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        for f in findings {
            counted();
            sqlx::query(
                "INSERT INTO reconciliation_findings \
                 (account, block, asset, ledger, chain, difference, found_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&f.account)
            .bind(i64::try_from(f.block).unwrap_or(i64::MAX))
            .bind(&f.asset)
            .bind(&f.ledger)
            .bind(&f.chain)
            .bind(&f.difference)
            .bind(f.found_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        insert_audits(self.backend, &mut tx, std::slice::from_ref(audit), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `account`'s findings, oldest first.
    pub async fn findings(&self, account: &str) -> Result<Vec<Finding>, StoreError> {
        let rows = sqlx::query(
            "SELECT account, block, asset, ledger, chain, difference, found_at_ms \
             FROM reconciliation_findings WHERE account = $1 ORDER BY finding_id",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let block: i64 = r.try_get("block")?;
                Ok(Finding {
                    account: r.try_get("account")?,
                    block: block.max(0) as u64,
                    asset: r.try_get("asset")?,
                    ledger: r.try_get("ledger")?,
                    chain: r.try_get("chain")?,
                    difference: r.try_get("difference")?,
                    found_at_ms: r.try_get("found_at_ms")?,
                })
            })
            .collect()
    }
}
