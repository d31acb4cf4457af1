//! What the governance sentinel stores (see [`crate::sentinel`]): the markets it halted, the
//! baseline reading of each watched contract, and the last block whose logs it read.
//!
//! A halt is one row per market, written with its audit row in one transaction, and removed
//! only by an operator's clear (also audited), which deletes the baselines of the market's
//! contracts in the same transaction so the next reading becomes the new baseline.

use sqlx::Row;

use super::{Audit, Store, StoreError, counted, insert_audits, now_ms};

/// One halted market, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernanceHalt {
    /// The market: its pool (lowercase 0x hex).
    pub market: String,
    /// The contract the change was seen on (lowercase 0x hex).
    pub contract: String,
    /// What changed: an event's name (`SetFeeProtocol`, `Upgraded`, ...) or a reading
    /// (`implementation_slot`, `admin_slot`, `beacon_slot`, `code_hash`).
    pub kind: String,
    /// The transaction that emitted the event; empty for a changed reading.
    pub tx_hash: String,
    /// The block the event was in, or the block the reading was made at.
    pub block: u64,
    /// For humans: the values seen.
    pub detail: String,
    /// Every contract the market trades through (pool, tokens, factory).
    pub watched: Vec<String>,
    /// When it was halted (ms since the epoch).
    pub halted_at_ms: i64,
}

/// A contract's baseline: what later readings are compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// The contract (lowercase 0x hex).
    pub contract: String,
    /// EIP-1967 implementation slot, as a 32-byte 0x hex word.
    pub implementation: String,
    /// EIP-1967 admin slot.
    pub admin: String,
    /// EIP-1967 beacon slot.
    pub beacon: String,
    /// keccak256 of the contract's code.
    pub code_hash: String,
    /// The block the reading was made at.
    pub block: u64,
}

fn block_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn halt_of(r: &sqlx::any::AnyRow) -> Result<GovernanceHalt, StoreError> {
    let watched: String = r.try_get("watched")?;
    Ok(GovernanceHalt {
        market: r.try_get("market")?,
        contract: r.try_get("contract")?,
        kind: r.try_get("kind")?,
        tx_hash: r.try_get("tx_hash")?,
        block: block_of(r.try_get("block")?),
        detail: r.try_get("detail")?,
        watched: watched
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        halted_at_ms: r.try_get("halted_at_ms")?,
    })
}

const HALT_COLS: &str = "market, contract, kind, tx_hash, block, detail, watched, halted_at_ms";

impl Store {
    /// Every market halted now, by market.
    pub async fn governance_halts(&self) -> Result<Vec<GovernanceHalt>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {HALT_COLS} FROM governance_halts ORDER BY market"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(halt_of).collect()
    }

    /// Halts markets for one change seen, with an audit row per market, in one transaction.
    /// A market halted already keeps its first cause; its audit row says it was seen again
    /// when `audit_repeats` (an event: each is its own admin action), and nothing is written
    /// for it otherwise (a reading that still differs, seen again at every check).
    ///
    /// `unless_rebaselined`: for a changed reading, the baseline it was compared with. The
    /// halt is written only while that baseline is still stored, so a reading made just
    /// before an operator's clear (which deletes it) cannot halt the market again.
    ///
    /// Returns the markets this call halted.
    pub async fn halt_governance(
        &self,
        halts: &[GovernanceHalt],
        audit_repeats: bool,
        unless_rebaselined: Option<&Baseline>,
        trace_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let mut halted = Vec::new();
        let mut audits = Vec::new();
        for h in halts {
            let values = "$1, $2, $3, $4, $5, $6, $7, $8";
            let sql = match unless_rebaselined {
                None => format!(
                    "INSERT INTO governance_halts ({HALT_COLS}) VALUES ({values}) \
                     ON CONFLICT (market) DO NOTHING"
                ),
                Some(_) => format!(
                    "INSERT INTO governance_halts ({HALT_COLS}) SELECT {values} \
                     WHERE EXISTS (SELECT 1 FROM governance_baselines WHERE contract = $9 \
                     AND implementation = $10 AND admin = $11 AND beacon = $12 AND code_hash = $13) \
                     ON CONFLICT (market) DO NOTHING"
                ),
            };
            let mut q = sqlx::query(&sql)
                .bind(&h.market)
                .bind(&h.contract)
                .bind(&h.kind)
                .bind(&h.tx_hash)
                .bind(to_i64(h.block))
                .bind(&h.detail)
                .bind(h.watched.join(","))
                .bind(now);
            if let Some(b) = unless_rebaselined {
                q = q
                    .bind(&b.contract)
                    .bind(&b.implementation)
                    .bind(&b.admin)
                    .bind(&b.beacon)
                    .bind(&b.code_hash);
            }
            counted();
            let new = q.execute(&mut *tx).await?.rows_affected() > 0;
            if new {
                halted.push(h.market.clone());
            }
            if new || audit_repeats {
                audits.push(Audit {
                    actor: "governance-sentinel".into(),
                    action: if new {
                        "governance_halt"
                    } else {
                        "governance_seen_while_halted"
                    }
                    .into(),
                    subject: h.market.clone(),
                    from_state: String::new(),
                    to_state: "HALTED".into(),
                    detail: format!(
                        "contract {} {} tx {} block {}: {}",
                        h.contract,
                        h.kind,
                        if h.tx_hash.is_empty() {
                            "-"
                        } else {
                            &h.tx_hash
                        },
                        h.block,
                        h.detail
                    ),
                    trace_id: trace_id.to_owned(),
                });
            }
        }
        insert_audits(self.backend, &mut tx, &audits, now).await?;
        tx.commit().await?;
        Ok(halted)
    }

    /// Lifts `market`'s halt: deletes it and the baselines of its contracts (read afresh at
    /// the sentinel's next check) and audits the clear under `operator` with `reason`, in
    /// one transaction. `None` when the market is not halted (nothing written).
    pub async fn clear_governance_halt(
        &self,
        market: &str,
        operator: &str,
        reason: &str,
        trace_id: &str,
    ) -> Result<Option<GovernanceHalt>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        counted();
        let row = sqlx::query(&format!(
            "DELETE FROM governance_halts WHERE market = $1 RETURNING {HALT_COLS}"
        ))
        .bind(market)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let halt = halt_of(&row)?;
        for contract in &halt.watched {
            counted();
            sqlx::query("DELETE FROM governance_baselines WHERE contract = $1")
                .bind(contract)
                .execute(&mut *tx)
                .await?;
        }
        let audit = Audit {
            actor: operator.to_owned(),
            action: "governance_halt_cleared".into(),
            subject: market.to_owned(),
            from_state: "HALTED".into(),
            to_state: "CLEAR".into(),
            detail: format!(
                "{reason} (halted for {} on {} at block {}; re-baselining {})",
                halt.kind,
                halt.contract,
                halt.block,
                halt.watched.join(",")
            ),
            trace_id: trace_id.to_owned(),
        };
        insert_audits(self.backend, &mut tx, &[audit], now).await?;
        tx.commit().await?;
        Ok(Some(halt))
    }

    /// Every stored baseline.
    pub async fn governance_baselines(&self) -> Result<Vec<Baseline>, StoreError> {
        let rows = sqlx::query(
            "SELECT contract, implementation, admin, beacon, code_hash, block FROM governance_baselines",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Baseline {
                    contract: r.try_get("contract")?,
                    implementation: r.try_get("implementation")?,
                    admin: r.try_get("admin")?,
                    beacon: r.try_get("beacon")?,
                    code_hash: r.try_get("code_hash")?,
                    block: block_of(r.try_get("block")?),
                })
            })
            .collect()
    }

    /// Stores a first reading as the contract's baseline; one stored already (by another
    /// engine on the same database, say) is kept. Returns whether this one was stored.
    pub async fn save_baseline(&self, b: &Baseline) -> Result<bool, StoreError> {
        counted();
        let n = sqlx::query(
            "INSERT INTO governance_baselines (contract, implementation, admin, beacon, code_hash, block, taken_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (contract) DO NOTHING",
        )
        .bind(&b.contract)
        .bind(&b.implementation)
        .bind(&b.admin)
        .bind(&b.beacon)
        .bind(&b.code_hash)
        .bind(to_i64(b.block))
        .bind(now_ms())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// The last block whose logs the sentinel read on `chain_id`.
    pub async fn governance_cursor(&self, chain_id: u64) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT block FROM governance_cursor WHERE chain_id = $1")
            .bind(to_i64(chain_id))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(block_of(r.try_get("block")?))).transpose()
    }

    /// Records that the sentinel has read the logs of every block up to `block`.
    pub async fn set_governance_cursor(&self, chain_id: u64, block: u64) -> Result<(), StoreError> {
        counted();
        sqlx::query(
            "INSERT INTO governance_cursor (chain_id, block, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (chain_id) DO UPDATE SET block = excluded.block, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(to_i64(chain_id))
        .bind(to_i64(block))
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
