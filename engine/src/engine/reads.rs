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
    }
}

impl Engine {
    /// The task, or `None` if no task has this id.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<v1::Task>, EngineError> {
        Ok(self.inner.store.get_task(task_id).await?.map(task_to_wire))
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
