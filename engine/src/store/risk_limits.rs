//! What the risk-limit timelock stores (migration 0011): the limits in effect, one row, and
//! every change proposed to them. Every write is one transaction that moves the limits'
//! `version` on by one with a compare-and-set, so engines sharing a database never apply a
//! change twice and each sees the others' changes by the version moving.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Audit, Store, StoreError, insert_audits, now_ms};

/// A change waiting for its timelock.
pub const PENDING: &str = "PENDING";
/// A change in effect (at once for a tightening, when due for a loosening).
pub const APPLIED: &str = "APPLIED";
/// A pending change an operator withdrew.
pub const CANCELLED: &str = "CANCELLED";
/// A pending change that, when due, no longer made a valid configuration.
pub const FAILED: &str = "FAILED";

/// The limits in effect, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLimits {
    /// Moves on by one with every change of the risk state.
    pub version: i64,
    /// The `RiskConfig` as JSON.
    pub config: String,
    /// When they last changed, ms since the epoch.
    pub updated_at_ms: i64,
    /// Who changed them last (an operator, or `engine`).
    pub updated_by: String,
}

/// One proposed change, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskChangeRow {
    /// Its number, for `stratbox risk cancel`.
    pub id: i64,
    /// [`PENDING`], [`APPLIED`], [`CANCELLED`] or [`FAILED`].
    pub state: String,
    /// The fields it moves, JSON (`[FieldChange]`).
    pub fields: String,
    /// Who proposed it (the authenticated operator, or `engine` for the file at start).
    pub operator: String,
    /// Why, as the operator said.
    pub reason: String,
    /// `api` or `risk-file`.
    pub source: String,
    /// When it was proposed.
    pub proposed_at_ms: i64,
    /// When it takes (or took) effect.
    pub effective_at_ms: i64,
    /// Who ended it, once not pending (an operator cancelling, or `engine`).
    pub decided_by: String,
    /// When it was applied, cancelled or failed.
    pub decided_at_ms: Option<i64>,
    /// Why it was cancelled or failed.
    pub detail: String,
    /// The request's trace id.
    pub trace_id: String,
}

/// A change to record (see [`Store::commit_risk`]).
#[derive(Debug, Clone)]
pub struct NewRiskChange {
    /// [`APPLIED`] (a tightening, at once) or [`PENDING`].
    pub state: &'static str,
    /// See [`RiskChangeRow::fields`].
    pub fields: String,
    /// See [`RiskChangeRow::operator`].
    pub operator: String,
    /// See [`RiskChangeRow::reason`].
    pub reason: String,
    /// See [`RiskChangeRow::source`].
    pub source: &'static str,
    /// See [`RiskChangeRow::effective_at_ms`].
    pub effective_at_ms: i64,
    /// See [`RiskChangeRow::trace_id`].
    pub trace_id: String,
}

/// A pending change leaving [`PENDING`].
#[derive(Debug, Clone)]
pub struct RiskDecision {
    /// Which change.
    pub id: i64,
    /// [`APPLIED`], [`CANCELLED`] or [`FAILED`].
    pub state: &'static str,
    /// Who ended it.
    pub by: String,
    /// Why (cancelled, failed); empty when applied.
    pub detail: String,
}

const CHANGE_COLS: &str = "change_id, state, fields, operator, reason, source, proposed_at_ms, \
     effective_at_ms, decided_by, decided_at_ms, detail, trace_id";

fn change_row(r: &AnyRow) -> Result<RiskChangeRow, StoreError> {
    Ok(RiskChangeRow {
        id: r.try_get("change_id")?,
        state: r.try_get("state")?,
        fields: r.try_get("fields")?,
        operator: r.try_get("operator")?,
        reason: r.try_get("reason")?,
        source: r.try_get("source")?,
        proposed_at_ms: r.try_get("proposed_at_ms")?,
        effective_at_ms: r.try_get("effective_at_ms")?,
        decided_by: r.try_get("decided_by")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
        detail: r.try_get("detail")?,
        trace_id: r.try_get("trace_id")?,
    })
}

impl Store {
    /// The limits in effect; `None` before the first engine stored any.
    pub async fn risk_limits(&self) -> Result<Option<StoredLimits>, StoreError> {
        let row = sqlx::query(
            "SELECT version, config, updated_at_ms, updated_by FROM risk_limits WHERE name = 'effective'",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredLimits {
                version: r.try_get("version")?,
                config: r.try_get("config")?,
                updated_at_ms: r.try_get("updated_at_ms")?,
                updated_by: r.try_get("updated_by")?,
            })
        })
        .transpose()
    }

    /// The risk state's version and when the earliest pending change is due, in one cheap
    /// read: what the engine's timer asks every tick.
    pub async fn risk_clock(&self) -> Result<Option<(i64, Option<i64>)>, StoreError> {
        let row = sqlx::query(
            "SELECT version, (SELECT MIN(effective_at_ms) FROM risk_limit_changes WHERE state = 'PENDING') AS due \
             FROM risk_limits WHERE name = 'effective'",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("version")?, r.try_get("due")?)))
            .transpose()
    }

    /// Changes in `state` (every state when `None`), oldest first, at most `limit`.
    pub async fn risk_changes(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RiskChangeRow>, StoreError> {
        let rows = match state {
            Some(s) => {
                sqlx::query(&format!(
                    "SELECT {CHANGE_COLS} FROM risk_limit_changes WHERE state = $1 ORDER BY change_id LIMIT $2"
                ))
                .bind(s)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {CHANGE_COLS} FROM risk_limit_changes ORDER BY change_id LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(change_row).collect()
    }

    /// One change by its number.
    pub async fn risk_change(&self, id: i64) -> Result<Option<RiskChangeRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CHANGE_COLS} FROM risk_limit_changes WHERE change_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(change_row).transpose()
    }

    /// Stores the first limits in effect (version 1) with its audit row, unless another
    /// engine on the database did first: `false` then, and nothing written.
    pub async fn init_risk_limits(
        &self,
        config: &str,
        by: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "INSERT INTO risk_limits (name, version, config, updated_at_ms, updated_by) \
             VALUES ('effective', 1, $1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(config)
        .bind(now)
        .bind(by)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            insert_audits(self.backend, &mut tx, std::slice::from_ref(audit), now).await?;
            tx.commit().await?;
        }
        Ok(done)
    }

    /// One change of the risk state, all or nothing: if the version is still `expected`,
    /// moves it on by one (with `config` as the limits in effect, when given), records
    /// `new` changes, ends `decided` ones (each must still be pending) and writes the audit
    /// rows `audits` makes from the new changes' numbers. `None`, with nothing written,
    /// when another writer got there first: the caller reads again and retries.
    pub async fn commit_risk(
        &self,
        expected: i64,
        config: Option<&str>,
        by: &str,
        new: &[NewRiskChange],
        decided: &[RiskDecision],
        audits: impl FnOnce(&[i64]) -> Vec<Audit>,
    ) -> Result<Option<(i64, Vec<i64>)>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        // First, so a second writer on PostgreSQL waits here for the first to commit and
        // then finds the version moved.
        let moved = sqlx::query(
            "UPDATE risk_limits SET version = version + 1, config = COALESCE($1, config), \
             updated_at_ms = $2, updated_by = $3 WHERE name = 'effective' AND version = $4",
        )
        .bind(config)
        .bind(now)
        .bind(by)
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(None);
        }
        let mut ids = Vec::with_capacity(new.len());
        for c in new {
            let decided_at = (c.state != PENDING).then_some(now);
            let row = sqlx::query(
                "INSERT INTO risk_limit_changes (state, fields, operator, reason, source, proposed_at_ms, \
                 effective_at_ms, decided_by, decided_at_ms, detail, trace_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', $10) RETURNING change_id",
            )
            .bind(c.state)
            .bind(&c.fields)
            .bind(&c.operator)
            .bind(&c.reason)
            .bind(c.source)
            .bind(now)
            .bind(c.effective_at_ms)
            .bind(if decided_at.is_some() {
                c.operator.as_str()
            } else {
                ""
            })
            .bind(decided_at)
            .bind(&c.trace_id)
            .fetch_one(&mut *tx)
            .await?;
            ids.push(row.try_get::<i64, _>("change_id")?);
        }
        for d in decided {
            let n = sqlx::query(
                "UPDATE risk_limit_changes SET state = $1, decided_by = $2, decided_at_ms = $3, detail = $4 \
                 WHERE change_id = $5 AND state = 'PENDING'",
            )
            .bind(d.state)
            .bind(&d.by)
            .bind(now)
            .bind(&d.detail)
            .bind(d.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(None);
            }
        }
        insert_audits(self.backend, &mut tx, &audits(&ids), now).await?;
        tx.commit().await?;
        Ok(Some((expected + 1, ids)))
    }
}
