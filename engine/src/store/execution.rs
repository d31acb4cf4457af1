//! Execution quality (`task_execution`): the slippage and markouts hosts measured for
//! strategies' fills, and the counts of a strategy's tasks by state and refusal reason read
//! from its own tasks. What `stratbox strategy show` prints.
//!
//! A report names only a task and figures; the strategy is the task's own, so a host cannot
//! file figures under another strategy's name, and a task the engine does not hold is
//! skipped.

use sqlx::Row;

use super::{Store, StoreError, counted, now_ms};
use crate::fsm::TaskState;

/// Newest fills a summary of slippage or markouts covers.
pub const EXECUTION_WINDOW: u32 = 10_000;

/// One fill's figures from a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillFigures<'a> {
    /// The task.
    pub task_id: &'a str,
    /// Realised slippage, signed basis points (positive = worse than expected).
    pub slippage_bps: Option<i32>,
    /// The markout and the blocks after the fill it was measured at.
    pub markout: Option<(i32, u32)>,
}

/// A strategy's tasks and its fills' figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFigures {
    /// Tasks by their state now.
    pub states: Vec<(TaskState, u64)>,
    /// REJECTED tasks by reason code, most frequent first.
    pub refusals: Vec<(String, u64)>,
    /// Slippage of the newest fills, in basis points, sorted.
    pub slippage_bps: Vec<i32>,
    /// Markouts of the newest fills, in basis points, sorted.
    pub markout_bps: Vec<i32>,
}

impl Store {
    /// Records `fills` measured by `host`, each in its own statement: a figure a report
    /// leaves out keeps its stored value. Returns how many named a task the engine holds.
    pub async fn record_execution(
        &self,
        host: &str,
        fills: &[FillFigures<'_>],
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut recorded = 0;
        let mut tx = self.writer.begin().await?;
        for f in fills {
            counted();
            let done = sqlx::query(
                "INSERT INTO task_execution \
                 (task_id, strategy, slippage_bps, markout_bps, markout_blocks, host, updated_at_ms) \
                 SELECT task_id, strategy, $2, $3, $4, $5, $6 FROM trade_tasks WHERE task_id = $1 \
                 ON CONFLICT (task_id) DO UPDATE SET \
                 slippage_bps = COALESCE(excluded.slippage_bps, task_execution.slippage_bps), \
                 markout_bps = COALESCE(excluded.markout_bps, task_execution.markout_bps), \
                 markout_blocks = COALESCE(excluded.markout_blocks, task_execution.markout_blocks), \
                 host = excluded.host, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(f.task_id)
            .bind(f.slippage_bps.map(i64::from))
            .bind(f.markout.map(|(bps, _)| i64::from(bps)))
            .bind(f.markout.map(|(_, blocks)| i64::from(blocks)))
            .bind(host)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            recorded += done.rows_affected().min(1);
        }
        tx.commit().await?;
        counted();
        Ok(recorded)
    }

    /// `strategy`'s tasks by state and refusal reason, and the figures of its newest
    /// [`EXECUTION_WINDOW`] fills of each kind.
    pub async fn execution_figures(&self, strategy: &str) -> Result<ExecutionFigures, StoreError> {
        let rows = sqlx::query(
            "SELECT state, reason_code, CAST(COUNT(*) AS BIGINT) AS n FROM trade_tasks \
             WHERE strategy = $1 GROUP BY state, reason_code",
        )
        .bind(strategy)
        .fetch_all(&self.pool)
        .await?;
        let mut out = ExecutionFigures::default();
        for r in &rows {
            let state: TaskState = r.try_get::<String, _>("state")?.parse()?;
            let n = u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
            match out.states.iter_mut().find(|(s, _)| *s == state) {
                Some((_, count)) => *count += n,
                None => out.states.push((state, n)),
            }
            if state == TaskState::Rejected {
                out.refusals.push((r.try_get("reason_code")?, n));
            }
        }
        out.states.sort_by_key(|(s, _)| s.as_str());
        out.refusals
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (column, into) in [
            ("slippage_bps", &mut out.slippage_bps),
            ("markout_bps", &mut out.markout_bps),
        ] {
            let sql = format!(
                "SELECT {column} AS bps FROM task_execution WHERE strategy = $1 AND {column} IS NOT NULL \
                 ORDER BY updated_at_ms DESC LIMIT {EXECUTION_WINDOW}"
            );
            let rows = sqlx::query(&sql)
                .bind(strategy)
                .fetch_all(&self.pool)
                .await?;
            for r in &rows {
                let bps: i64 = r.try_get("bps")?;
                into.push(bps.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
            }
            into.sort_unstable();
        }
        Ok(out)
    }
}
