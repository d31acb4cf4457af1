//! Starting again after a stop or a crash: tasks a previous engine left unfinished are
//! finished or expired, and the books are rebuilt from the ledger, so nothing the database
//! holds is lost or counted twice.

use super::*;

/// Reason code of a task that recovery expired (not a gate, so not a risk code).
pub const EXPIRED_ON_RECOVERY: &str = "expired_on_recovery";
/// What the engine does with tasks it finds in INIT at start (left by a crash between a
/// batch's two transactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recovery {
    /// Expire them (the default). Their proposals were judged against a watermark and an
    /// oracle state from before the crash; re-judging them now would trade on stale intent,
    /// and the strategy proposes again from fresh events anyway. Expiring keeps their
    /// idempotency keys taken, so a replay of the same proposal is answered with the
    /// EXPIRED task and can never execute twice.
    #[default]
    Expire,
    /// Run them through the gates and simulation again, as if just submitted.
    Reevaluate,
}

/// Loads every book from the ledger: the lines of each `strategy:<strategy>:<account>`
/// ledger account, matched to its (strategy, account) through the tasks that booked them.
pub(super) async fn load_books(
    store: &Store,
    book: &mut RiskBook,
    marks: &Marks,
) -> Result<(), EngineError> {
    use sqlx::Row;
    let pairs = sqlx::query("SELECT DISTINCT strategy, account FROM trade_tasks")
        .fetch_all(store.pool())
        .await
        .map_err(StoreError::from)?;
    let mut owners: HashMap<String, String> = HashMap::new();
    for r in &pairs {
        let strategy: String = r.try_get("strategy").map_err(StoreError::from)?;
        let account: String = r.try_get("account").map_err(StoreError::from)?;
        owners.insert(ledger::strategy_account(&strategy, &account), strategy);
    }
    let mut n = 0usize;
    for line in store.lines(None).await? {
        if let Some(strategy) = owners.get(&line.account) {
            book.load_line(&line.account, strategy, &line.asset, line.side, line.amount);
            n += 1;
        }
    }
    let stored = store.load_book_marks().await?;
    let restored = stored.len();
    for m in stored {
        book.restore_marks(m);
    }
    book.mark_all(marks, now_ms());
    if n > 0 || restored > 0 {
        info!(
            lines = n,
            marks = restored,
            "books loaded from the ledger and their marks"
        );
    }
    Ok(())
}

impl Engine {
    pub(super) async fn recover(&self, policy: Recovery) -> Result<(), EngineError> {
        let stuck = self.inner.store.tasks_in_state(TaskState::Init).await?;
        if stuck.is_empty() {
            return Ok(());
        }
        info!(
            tasks = stuck.len(),
            ?policy,
            "recovering tasks left in INIT"
        );
        match policy {
            Recovery::Expire => {
                let transitions: Vec<Transition> = stuck
                    .iter()
                    .map(|t| Transition {
                        task_id: t.task_id.clone(),
                        from: TaskState::Init,
                        to: TaskState::Expired,
                        reason_code: EXPIRED_ON_RECOVERY.into(),
                        detail: "left in INIT by an engine that stopped; expired at restart".into(),
                        sim: None,
                        trace_id: t.trace_id.clone(),
                        actor: "engine:recovery".into(),
                        posting: None,
                        and_stage: false,
                    })
                    .collect();
                let moved = self.inner.store.apply(&transitions).await?;
                for m in moved.iter().filter(|m| **m) {
                    let _ = m;
                    self.inner
                        .metrics
                        .moved(Some(TaskState::Init), TaskState::Expired);
                }
            }
            Recovery::Reevaluate => {
                let mut batch = Vec::new();
                for t in &stuck {
                    let p = v1::Proposal::decode(t.proposal.as_slice()).unwrap_or_default();
                    batch.push((
                        t.task_id.clone(),
                        t.idempotency_key.clone(),
                        t.trace_id.clone(),
                        p,
                    ));
                }
                for (task_id, key, trace_id, p) in batch {
                    let span = info_span!("recover", trace_id = %trace_id, task_id = %task_id);
                    self.decide_and_apply(&trace_id, vec![(task_id, key, p)])
                        .instrument(span)
                        .await?;
                }
            }
        }
        Ok(())
    }
}
