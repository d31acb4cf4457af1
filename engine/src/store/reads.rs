//! Reading the store back: tasks, ledger entries and lines, the kill switch, permission
//! records, book marks and audit rows, decoded from either backend's rows. Nothing here
//! writes.

use super::*;

pub(super) fn amount_col(row: &AnyRow, col: &str) -> Result<U256, StoreError> {
    let s: String = row.try_get(col)?;
    parse_amount(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(super) fn summary(row: &AnyRow) -> Result<TaskSummary, StoreError> {
    Ok(TaskSummary {
        task_id: row.try_get("task_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        state: TaskState::from_str(&row.try_get::<String, _>("state")?)?,
        reason_code: row.try_get("reason_code")?,
        detail: row.try_get("detail")?,
    })
}

pub(super) fn task_row(row: &AnyRow) -> Result<TaskRow, StoreError> {
    let a0: String = row.try_get("sim_amount0")?;
    let sim = if a0.is_empty() {
        None
    } else {
        Some(SimRecord {
            amount0: amount_col(row, "sim_amount0")?,
            amount1: amount_col(row, "sim_amount1")?,
            gas_used: u64::try_from(row.try_get::<i64, _>("sim_gas_used")?).unwrap_or(0),
            gas_price: amount_col(row, "sim_gas_price")?,
        })
    };
    Ok(TaskRow {
        task_id: row.try_get("task_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        state: TaskState::from_str(&row.try_get::<String, _>("state")?)?,
        reason_code: row.try_get("reason_code")?,
        detail: row.try_get("detail")?,
        mode: row.try_get("mode")?,
        strategy: row.try_get("strategy")?,
        account: row.try_get("account")?,
        proposal: row.try_get("proposal")?,
        trace_id: row.try_get("trace_id")?,
        sim,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub(super) fn entry_row(row: &AnyRow) -> Result<EntryRow, StoreError> {
    let side: String = row.try_get("side")?;
    Ok(EntryRow {
        entry_id: row.try_get("entry_id")?,
        posting_id: row.try_get("posting_id")?,
        task_id: row.try_get("task_id")?,
        account: row.try_get("account")?,
        asset: row.try_get("asset")?,
        side: Side::parse(&side).ok_or_else(|| StoreError::Corrupt(format!("side {side:?}")))?,
        amount: amount_col(row, "amount")?,
        memo: row.try_get("memo")?,
        created_at_ms: row.try_get("created_at_ms")?,
        reverses_posting_id: row.try_get("reverses_posting_id")?,
    })
}

impl Store {
    /// The database server's version and the settings its commit latency depends on, for a
    /// benchmark to print beside its figures: PostgreSQL's `server_version`,
    /// `synchronous_commit`, `fsync`, `wal_sync_method` and `shared_buffers`; SQLite's
    /// version, journal mode and `synchronous` level.
    pub async fn server_settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let queries: &[(&str, &str)] = match self.backend {
            Backend::Postgres => &[
                (
                    "server_version",
                    "SELECT current_setting('server_version') AS v",
                ),
                (
                    "synchronous_commit",
                    "SELECT current_setting('synchronous_commit') AS v",
                ),
                ("fsync", "SELECT current_setting('fsync') AS v"),
                (
                    "wal_sync_method",
                    "SELECT current_setting('wal_sync_method') AS v",
                ),
                (
                    "shared_buffers",
                    "SELECT current_setting('shared_buffers') AS v",
                ),
            ],
            Backend::Sqlite => &[
                ("sqlite_version", "SELECT sqlite_version() AS v"),
                (
                    "journal_mode",
                    "SELECT CAST(journal_mode AS TEXT) AS v FROM pragma_journal_mode",
                ),
                (
                    "synchronous",
                    "SELECT CAST(synchronous AS TEXT) AS v FROM pragma_synchronous",
                ),
            ],
        };
        let mut out = Vec::with_capacity(queries.len());
        for (name, sql) in queries {
            let v: String = sqlx::query(sql)
                .fetch_one(&self.writer)
                .await?
                .try_get("v")?;
            out.push(((*name).to_owned(), v));
        }
        Ok(out)
    }

    /// The task, or `None` if no task has this id.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<TaskRow>, StoreError> {
        let sql = format!("SELECT {TASK_COLS} FROM trade_tasks WHERE task_id = $1");
        let row = sqlx::query(&sql)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(task_row).transpose()
    }

    /// Tasks in task-id order (ids are UUIDv7, so creation order), one page at a time.
    pub async fn list_tasks(&self, f: &TaskFilter) -> Result<Vec<TaskRow>, StoreError> {
        let mut sql = format!("SELECT {TASK_COLS} FROM trade_tasks WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if f.strategy.is_some() {
            sql.push_str(&format!(" AND strategy = {}", next()));
        }
        if f.state.is_some() {
            sql.push_str(&format!(" AND state = {}", next()));
        }
        if f.after_task_id.is_some() {
            sql.push_str(&format!(" AND task_id > {}", next()));
        }
        sql.push_str(&format!(" ORDER BY task_id LIMIT {}", next()));
        let mut q = sqlx::query(&sql);
        if let Some(s) = &f.strategy {
            q = q.bind(s);
        }
        if let Some(s) = f.state {
            q = q.bind(s.as_str());
        }
        if let Some(s) = &f.after_task_id {
            q = q.bind(s);
        }
        q = q.bind(i64::from(f.limit));
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(task_row)
            .collect()
    }

    /// Every task in `state`, by id; e.g. to resume work after a restart.
    pub async fn tasks_in_state(&self, state: TaskState) -> Result<Vec<TaskRow>, StoreError> {
        let sql = format!("SELECT {TASK_COLS} FROM trade_tasks WHERE state = $1 ORDER BY task_id");
        sqlx::query(&sql)
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(task_row)
            .collect()
    }

    /// Tasks per state, for metrics; states with no task are absent.
    pub async fn count_tasks(&self) -> Result<Vec<(TaskState, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM trade_tasks GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    TaskState::from_str(&r.try_get::<String, _>("state")?)?,
                    r.try_get::<i64, _>("n")?,
                ))
            })
            .collect()
    }

    /// Ledger entries, newest last, filtered by account and/or task; `limit` 0 = all.
    pub async fn entries(
        &self,
        account: Option<&str>,
        task_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EntryRow>, StoreError> {
        let mut sql = String::from(
            "SELECT entry_id, posting_id, task_id, account, asset, side, amount, memo, created_at_ms, \
             reverses_posting_id FROM ledger_entries WHERE 1 = 1",
        );
        let mut n = 0;
        if account.is_some() {
            n += 1;
            sql.push_str(&format!(" AND account = ${n}"));
        }
        if task_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND task_id = ${n}"));
        }
        sql.push_str(" ORDER BY entry_id");
        if limit > 0 {
            n += 1;
            sql.push_str(&format!(" LIMIT ${n}"));
        }
        let mut q = sqlx::query(&sql);
        if let Some(a) = account {
            q = q.bind(a);
        }
        if let Some(t) = task_id {
            q = q.bind(t);
        }
        if limit > 0 {
            q = q.bind(i64::from(limit));
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(entry_row)
            .collect()
    }

    /// Ledger lines for checking and positions; `account_prefix` narrows by account name.
    pub async fn lines(&self, account: Option<&str>) -> Result<Vec<StoredLine>, StoreError> {
        Ok(self
            .entries(account, None, 0)
            .await?
            .into_iter()
            .map(|e| StoredLine {
                posting_id: e.posting_id,
                account: e.account,
                asset: e.asset,
                side: e.side,
                amount: e.amount,
            })
            .collect())
    }

    /// The persisted kill switch; `None` if it was never set.
    pub async fn load_kill_switch(&self) -> Result<Option<KillSwitchRow>, StoreError> {
        let row = sqlx::query("SELECT engaged, reason, operator, changed_at_ms FROM engine_flags WHERE name = 'kill_switch'")
            .fetch_optional(&self.pool)
            .await?;
        let cancel: Option<i64> = sqlx::query_scalar(
            "SELECT engaged FROM engine_flags WHERE name = 'kill_switch_cancel_pending'",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(KillSwitchRow {
                engaged: r.try_get::<i64, _>("engaged")? != 0,
                reason: r.try_get("reason")?,
                operator: r.try_get("operator")?,
                changed_at_ms: r.try_get("changed_at_ms")?,
                cancel_pending: cancel.unwrap_or(0) != 0,
            })
        })
        .transpose()
    }

    /// Every stored permission tracker: (strategy, the tracker as JSON), by strategy.
    pub async fn load_permissions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT strategy, tracker FROM strategy_permissions ORDER BY strategy")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("strategy")?, r.try_get("tracker")?)))
            .collect()
    }

    /// Every book's stored marks.
    pub async fn load_book_marks(&self) -> Result<Vec<StoredMarks>, StoreError> {
        let rows = sqlx::query(
            "SELECT book, strategy, peak_equity, day, day_start_equity FROM book_marks ORDER BY book",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let book: String = r.try_get("book")?;
                let amount = |col: &str| -> Result<U256, StoreError> {
                    let text: String = r.try_get(col)?;
                    parse_amount(&text)
                        .map_err(|e| StoreError::Corrupt(format!("book_marks {book}: {col}: {e}")))
                };
                Ok(StoredMarks {
                    strategy: r.try_get("strategy")?,
                    marks: BookMarks {
                        peak_equity: amount("peak_equity")?,
                        day: r.try_get("day")?,
                        day_start_equity: amount("day_start_equity")?,
                    },
                    book,
                })
            })
            .collect()
    }

    /// Audit records about `subject`, oldest first.
    pub async fn audit_for(&self, subject: &str) -> Result<Vec<Audit>, StoreError> {
        let rows = sqlx::query(
            "SELECT actor, action, subject, from_state, to_state, detail, trace_id FROM audit_log WHERE subject = $1 ORDER BY audit_id",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Audit {
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    from_state: r.try_get("from_state")?,
                    to_state: r.try_get("to_state")?,
                    detail: r.try_get("detail")?,
                    trace_id: r.try_get("trace_id")?,
                })
            })
            .collect()
    }
}
