//! Read queries: tasks, ledger lines and the ledger's balance check, as the gRPC service
//! and the command line show them. Nothing here changes state.

use super::*;

/// Largest page `ListTasks` returns.
pub const MAX_PAGE: u32 = 1000;

/// A stored task in its wire form; an undecodable stored proposal becomes `None`, not an error.
pub fn task_to_wire(t: TaskRow) -> v1::Task {
    let proposal = v1::Proposal::decode(t.proposal.as_slice()).ok();
    v1::Task {
        task_id: t.task_id,
        idempotency_key: t.idempotency_key,
        state: t.state.to_wire() as i32,
        reason_code: t.reason_code,
        detail: t.detail,
        proposal,
        trace_id: t.trace_id,
        sim_amount0: t.sim.map(|s| s.amount0.into()),
        sim_amount1: t.sim.map(|s| s.amount1.into()),
        sim_gas_used: t.sim.map(|s| s.gas_used).unwrap_or(0),
        sim_gas_price: t.sim.map(|s| s.gas_price.into()),
        created_at_ms: t.created_at_ms,
        updated_at_ms: t.updated_at_ms,
        actual_amount0: None,
        actual_amount1: None,
        gas_used: 0,
        receipt_block: 0,
    }
}

/// Nearest-rank percentiles of sorted basis points.
fn bps_summary(sorted: &[i32]) -> v1::BpsSummary {
    let at = |q: usize| -> i32 {
        if sorted.is_empty() {
            return 0;
        }
        let rank = (sorted.len() * q).div_ceil(100).max(1);
        sorted[rank - 1]
    };
    v1::BpsSummary {
        count: sorted.len() as u64,
        min: sorted.first().copied().unwrap_or(0),
        p10: at(10),
        p50: at(50),
        p90: at(90),
        max: sorted.last().copied().unwrap_or(0),
    }
}

impl Engine {
    /// The task, or `None` if no task has this id.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<v1::Task>, EngineError> {
        let Some(row) = self.inner.store.get_task(task_id).await? else {
            return Ok(None);
        };
        let mut task = task_to_wire(row);
        if let Some(r) = self.inner.store.task_receipt(task_id).await? {
            let amount = |a: String| (!a.is_empty()).then_some(v1::Amount { value: a });
            task.actual_amount0 = amount(r.actual_amount0);
            task.actual_amount1 = amount(r.actual_amount1);
            task.gas_used = r.gas_used;
            task.receipt_block = r.block;
        }
        Ok(Some(task))
    }

    /// Records hosts' measures of fills (see [`crate::store::Store::record_execution`]).
    pub async fn record_execution(
        &self,
        host: &str,
        fills: &[crate::store::FillFigures<'_>],
    ) -> Result<u64, EngineError> {
        Ok(self.inner.store.record_execution(host, fills).await?)
    }

    /// `strategy`'s execution quality: tasks by state, refusals by reason, and the
    /// distributions of its newest fills' slippage and markouts.
    pub async fn execution_quality(
        &self,
        strategy: &str,
    ) -> Result<v1::ExecutionQuality, EngineError> {
        let f = self.inner.store.execution_figures(strategy).await?;
        Ok(v1::ExecutionQuality {
            strategy: strategy.to_owned(),
            states: f
                .states
                .iter()
                .map(|(s, n)| v1::StateCount {
                    state: s.to_wire() as i32,
                    count: *n,
                })
                .collect(),
            refusals: f
                .refusals
                .into_iter()
                .map(|(reason_code, count)| v1::ReasonCount { reason_code, count })
                .collect(),
            slippage: Some(bps_summary(&f.slippage_bps)),
            markout: Some(bps_summary(&f.markout_bps)),
            window: crate::store::EXECUTION_WINDOW,
        })
    }

    /// A page of tasks; the token is the last task id of the previous page.
    pub async fn list_tasks(
        &self,
        strategy: &str,
        state: Option<TaskState>,
        limit: u32,
        page_token: &str,
    ) -> Result<(Vec<v1::Task>, String), EngineError> {
        let limit = if limit == 0 { 100 } else { limit.min(MAX_PAGE) };
        let rows = self
            .inner
            .store
            .list_tasks(&TaskFilter {
                strategy: (!strategy.is_empty()).then(|| strategy.to_owned()),
                state,
                after_task_id: (!page_token.is_empty()).then(|| page_token.to_owned()),
                limit: limit + 1,
            })
            .await?;
        let more = rows.len() > limit as usize;
        let page: Vec<TaskRow> = rows.into_iter().take(limit as usize).collect();
        let next = if more {
            page.last().map(|t| t.task_id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((page.into_iter().map(task_to_wire).collect(), next))
    }

    /// Ledger entries by account and/or task, oldest first; `limit` 0 means 1000, capped at 10000.
    pub async fn ledger(
        &self,
        account: &str,
        task_id: &str,
        limit: u32,
    ) -> Result<Vec<v1::LedgerEntry>, EngineError> {
        let limit = if limit == 0 { 1000 } else { limit.min(10_000) };
        let rows = self
            .inner
            .store
            .entries(
                (!account.is_empty()).then_some(account),
                (!task_id.is_empty()).then_some(task_id),
                limit,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|e| v1::LedgerEntry {
                entry_id: e.entry_id,
                posting_id: e.posting_id,
                task_id: e.task_id,
                account: e.account,
                asset: e.asset,
                side: match e.side {
                    ledger::Side::Debit => v1::Side::Debit as i32,
                    ledger::Side::Credit => v1::Side::Credit as i32,
                },
                amount: Some(e.amount.into()),
                memo: e.memo,
                created_at_ms: e.created_at_ms,
                reverses_posting_id: e.reverses_posting_id,
            })
            .collect())
    }

    /// Checks that every posting, and the whole ledger, balances per asset; returns how
    /// many ledger entries (lines) it checked.
    pub async fn check_ledger(&self) -> Result<usize, EngineError> {
        let lines = self.inner.store.lines(None).await?;
        ledger::check_balanced(&lines).map_err(|e| EngineError::Ledger(e.to_string()))?;
        Ok(lines.len())
    }
}

#[cfg(test)]
mod tests {
    use super::bps_summary;

    #[test]
    fn percentiles_are_nearest_rank() {
        let empty = bps_summary(&[]);
        assert_eq!((empty.count, empty.p50, empty.max), (0, 0, 0));
        let one = bps_summary(&[-7]);
        assert_eq!(
            (one.min, one.p10, one.p50, one.p90, one.max),
            (-7, -7, -7, -7, -7)
        );
        let v: Vec<i32> = (1..=20).collect();
        let s = bps_summary(&v);
        assert_eq!(
            (s.count, s.min, s.p10, s.p50, s.p90, s.max),
            (20, 1, 2, 10, 18, 20)
        );
    }
}
