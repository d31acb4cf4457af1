//! Creating tasks already decided: a submitted batch in as few statements as the backend
//! allows.
//!
//! A submit decides its tasks (gates, simulation) before it stores them, so a new task's
//! first row can already hold its decision. The compare-and-set from INIT is then made
//! against the task's absence: `INSERT ... ON CONFLICT (idempotency_key) DO NOTHING`
//! creates and moves a task together, or does neither when its key was taken, exactly as
//! an INIT row followed by `UPDATE ... WHERE state = 'INIT'` in one transaction would. No
//! reader could ever see that INIT row (it lived only inside the transaction), but writing
//! it and then its successor cost a second heap tuple and a second entry in each of
//! `trade_tasks`' four indexes per task. The audit trail is unchanged: `task_created`
//! (to INIT), then `task_transition`.
//!
//! On PostgreSQL the batch is one statement: data-modifying CTEs over two JSON parameters
//! (`json_to_recordset`), which runs as its own transaction in one round trip instead of
//! BEGIN, five statements and COMMIT. Its text does not depend on the batch size, so each
//! connection prepares it once. SQLite runs in-process, so it has no round trips to
//! save, and it has no data-modifying CTEs: it writes the rows, the postings and the
//! audit rows in one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde::Serialize;
use sqlx::Row;

use super::{
    Backend, Inserted, NewTask, Store, StoreError, TaskSummary, Transition, counted, created_audit,
    insert_accounts, insert_audits, insert_postings, insert_rows, now_ms, read_existing,
    sim_columns, what_inserting_did,
};
use crate::fsm::TaskState;
use crate::ledger::Posting;

/// Each task's transition: every transition must be the first move (from INIT) of a task
/// in `tasks`, and no task may have two, which is the shape of a submit.
pub(super) fn first_moves<'a>(
    tasks: &[NewTask],
    transitions: &'a [Transition],
) -> Result<Vec<Option<&'a Transition>>, StoreError> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task_id.as_str(), i))
        .collect();
    let mut out = vec![None; tasks.len()];
    for t in transitions {
        let bad = |why: &str| StoreError::NotFirstMoves(format!("task {}: {why}", t.task_id));
        if t.from != TaskState::Init {
            return Err(bad("moves from a state other than INIT"));
        }
        let i = *index
            .get(t.task_id.as_str())
            .ok_or_else(|| bad("not among the tasks to create"))?;
        if out[i].replace(t).is_some() {
            return Err(bad("has two moves"));
        }
    }
    Ok(out)
}

/// Creates `tasks` with their decisions (see the module docs). Answers as
/// [`Store::create_and_apply`]: per task what inserting did, per transition whether it
/// moved (it did exactly when its task was created here).
pub(super) async fn create(
    store: &Store,
    tasks: &[NewTask],
    decisions: &[Option<&Transition>],
    transitions: &[Transition],
) -> Result<(Vec<Inserted>, Vec<bool>), StoreError> {
    let now = now_ms();
    let created = match store.backend {
        Backend::Postgres => create_pg(store, tasks, decisions, now).await?,
        Backend::Sqlite => create_sqlite(store, tasks, decisions, now).await?,
    };
    let missing: Vec<&str> = tasks
        .iter()
        .filter(|t| !created.contains(&t.task_id))
        .map(|t| t.idempotency_key.as_str())
        .collect();
    // Read after the commit: the winner of a key is committed by then (an insert that
    // conflicts with an open transaction waits for it).
    let existing: HashMap<String, TaskSummary> = if missing.is_empty() {
        HashMap::new()
    } else {
        let mut conn = store.pool.acquire().await?;
        read_existing(store.backend, &mut conn, &missing).await?
    };
    let inserted = what_inserting_did(tasks, &created, &existing)?;
    let moved = transitions
        .iter()
        .map(|t| created.contains(&t.task_id))
        .collect();
    Ok((inserted, moved))
}

async fn create_sqlite(
    store: &Store,
    tasks: &[NewTask],
    decisions: &[Option<&Transition>],
    now: i64,
) -> Result<HashSet<String>, StoreError> {
    let mut tx = store.writer.begin().await?;
    counted(); // BEGIN
    let created = insert_rows(store.backend, &mut tx, tasks, decisions, now).await?;
    let ours = || {
        decisions
            .iter()
            .flatten()
            .filter(|d| created.contains(&d.task_id))
    };
    let postings: Vec<&Posting> = ours().filter_map(|d| d.posting.as_ref()).collect();
    let new_accounts = insert_postings(
        store.backend,
        &store.known_accounts,
        &mut tx,
        &postings,
        now,
    )
    .await?;
    let audits: Vec<_> = tasks
        .iter()
        .filter(|t| created.contains(&t.task_id))
        .map(created_audit)
        .chain(ours().flat_map(|d| d.audits()))
        .collect();
    insert_audits(store.backend, &mut tx, &audits, now).await?;
    counted(); // COMMIT
    tx.commit().await?;
    store.remember_accounts(new_accounts);
    Ok(created)
}

/// A task row as the PostgreSQL statement reads it from JSON (the proposal in hex).
#[derive(Serialize)]
struct TaskJson<'a> {
    task_id: &'a str,
    idempotency_key: &'a str,
    state: &'a str,
    reason_code: &'a str,
    detail: &'a str,
    mode: &'a str,
    strategy: &'a str,
    account: &'a str,
    proposal: String,
    trace_id: &'a str,
    sim_amount0: String,
    sim_amount1: String,
    sim_gas_used: i64,
    sim_gas_price: String,
    /// Who decided the task; `None` for a task stored undecided (INIT).
    actor: Option<&'a str>,
    /// Decided SIMULATED and moved on to STAGED in the same write (`state` is STAGED).
    staged: bool,
    /// Its place in the batch, which orders the rows written for it.
    n: usize,
}

/// A ledger entry as the PostgreSQL statement reads it (the amount a base-10 string).
#[derive(Serialize)]
struct EntryJson<'a> {
    posting_id: &'a str,
    task_id: &'a str,
    account: &'a str,
    asset: &'a str,
    side: &'static str,
    amount: String,
    memo: &'a str,
    reverses_posting_id: &'a str,
    n: usize,
}

/// $1 the tasks, $2 the entries (JSON arrays), $3 the time. Entries and audit rows are
/// written only for the tasks the insert created, in the order they were given, so
/// `entry_id` and `audit_id` keep the order the other path writes them in.
static PG_CREATE_DECIDED: LazyLock<String> = LazyLock::new(|| {
    let init = TaskState::Init.as_str();
    let simulated = TaskState::Simulated.as_str();
    let staged = TaskState::Staged.as_str();
    let ok = stratbox_risk::OK;
    format!(
        "WITH t AS ( \
           SELECT * FROM json_to_recordset($1::json) AS x(task_id text, \
             idempotency_key text, state text, reason_code text, detail text, mode text, \
             strategy text, account text, proposal text, trace_id text, sim_amount0 text, \
             sim_amount1 text, sim_gas_used bigint, sim_gas_price text, actor text, staged boolean, \
             n bigint) \
         ), ins AS ( \
           INSERT INTO trade_tasks (task_id, idempotency_key, state, reason_code, detail, mode, \
             strategy, account, proposal, trace_id, sim_amount0, sim_amount1, sim_gas_used, \
             sim_gas_price, created_at_ms, updated_at_ms) \
           SELECT task_id, idempotency_key, state, reason_code, detail, mode, strategy, account, \
             decode(proposal, 'hex'), trace_id, sim_amount0, sim_amount1, sim_gas_used, \
             sim_gas_price, $3, $3 \
           FROM t ORDER BY n \
           ON CONFLICT (idempotency_key) DO NOTHING RETURNING task_id \
         ), aud AS ( \
           INSERT INTO audit_log (subject, at_ms, actor, action, from_state, to_state, detail, trace_id) \
           SELECT subject, $3, actor, action, from_state, to_state, detail, trace_id FROM ( \
             SELECT 0 AS part, t.n, t.task_id AS subject, 'engine' AS actor, \
               'task_created' AS action, '' AS from_state, '{init}' AS to_state, '' AS detail, t.trace_id \
             FROM t JOIN ins USING (task_id) \
             UNION ALL \
             SELECT 1, t.n, t.task_id, t.actor, 'task_transition', '{init}', \
               CASE WHEN t.staged THEN '{simulated}' ELSE t.state END, \
               CASE WHEN t.detail = '' THEN t.reason_code ELSE t.reason_code || ': ' || t.detail END, \
               t.trace_id \
             FROM t JOIN ins USING (task_id) WHERE t.actor IS NOT NULL \
             UNION ALL \
             SELECT 2, t.n, t.task_id, t.actor, 'task_transition', '{simulated}', '{staged}', '{ok}', \
               t.trace_id \
             FROM t JOIN ins USING (task_id) WHERE t.staged \
           ) a ORDER BY part > 0, n, part \
         ), led AS ( \
           INSERT INTO ledger_entries (posting_id, task_id, account, asset, side, amount, memo, \
             created_at_ms, reverses_posting_id) \
           SELECT e.posting_id, e.task_id, e.account, e.asset, e.side, e.amount, e.memo, $3, \
             e.reverses_posting_id \
           FROM json_to_recordset($2::json) AS e(posting_id text, task_id text, \
             account text, asset text, side text, amount text, memo text, \
             reverses_posting_id text, n bigint) \
           JOIN ins USING (task_id) ORDER BY e.n \
         ) \
         SELECT task_id FROM ins"
    )
});

async fn create_pg(
    store: &Store,
    tasks: &[NewTask],
    decisions: &[Option<&Transition>],
    now: i64,
) -> Result<HashSet<String>, StoreError> {
    let mut rows = Vec::with_capacity(tasks.len());
    let mut entries = Vec::with_capacity(tasks.len() * 4);
    for (i, t) in tasks.iter().enumerate() {
        let d = decisions.get(i).copied().flatten();
        let (a0, a1, gas, price) = sim_columns(d.and_then(|d| d.sim));
        rows.push(TaskJson {
            task_id: &t.task_id,
            idempotency_key: &t.idempotency_key,
            state: d.map_or(TaskState::Init, |d| d.stored_state()).as_str(),
            staged: d.is_some_and(|d| d.stored_state() != d.to),
            reason_code: d.map_or("", |d| d.reason_code.as_str()),
            detail: d.map_or("", |d| d.detail.as_str()),
            mode: t.mode,
            strategy: &t.strategy,
            account: &t.account,
            proposal: hex::encode(&t.proposal),
            trace_id: &t.trace_id,
            sim_amount0: a0,
            sim_amount1: a1,
            sim_gas_used: gas,
            sim_gas_price: price,
            actor: d.map(|d| d.actor.as_str()),
            n: i,
        });
        if let Some(p) = d.and_then(|d| d.posting.as_ref()) {
            for e in p.entries() {
                entries.push(EntryJson {
                    posting_id: &p.posting_id,
                    task_id: &p.task_id,
                    account: &e.account,
                    asset: &e.asset,
                    side: e.side.as_str(),
                    amount: e.amount.to_string(),
                    memo: &p.memo,
                    reverses_posting_id: &p.reverses_posting_id,
                    n: entries.len(),
                });
            }
        }
    }
    let tasks_json = json(&rows)?;
    let entries_json = json(&entries)?;
    // Accounts the entries need, in a statement of their own: creating an account is
    // idempotent and harmless if the batch then fails, and rare after the first batches.
    let postings: Vec<&Posting> = decisions
        .iter()
        .flatten()
        .filter_map(|d| d.posting.as_ref())
        .collect();
    let mut conn = store.writer.acquire().await?;
    let new_accounts = insert_accounts(
        store.backend,
        &store.known_accounts,
        &mut conn,
        &postings,
        now,
    )
    .await?;
    store.remember_accounts(new_accounts);
    counted();
    let rows = sqlx::query(&PG_CREATE_DECIDED)
        .bind(tasks_json)
        .bind(entries_json)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("task_id").map_err(StoreError::from))
        .collect()
}

fn json<T: Serialize>(rows: &T) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("encoding a batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str) -> NewTask {
        NewTask {
            task_id: id.into(),
            idempotency_key: format!("key-{id}"),
            mode: "shadow",
            strategy: "s".into(),
            account: "a".into(),
            proposal: Vec::new(),
            trace_id: String::new(),
        }
    }

    fn moving(id: &str, from: TaskState, to: TaskState) -> Transition {
        Transition {
            task_id: id.into(),
            from,
            to,
            reason_code: String::new(),
            detail: String::new(),
            sim: None,
            trace_id: String::new(),
            actor: "engine".into(),
            posting: None,
            and_stage: false,
        }
    }

    #[test]
    fn a_submit_shape_pairs_each_task_with_its_move() {
        let tasks = [task("a"), task("b")];
        let moves = [moving("b", TaskState::Init, TaskState::Rejected)];
        let paired = first_moves(&tasks, &moves).expect("a submit's shape");
        assert!(paired[0].is_none());
        assert_eq!(paired[1].map(|t| t.to), Some(TaskState::Rejected));
    }

    #[test]
    fn other_shapes_are_refused_by_name() {
        let tasks = [task("a")];
        for (moves, why) in [
            (
                vec![moving("a", TaskState::Simulated, TaskState::Staged)],
                "other than INIT",
            ),
            (
                vec![moving("z", TaskState::Init, TaskState::Rejected)],
                "not among",
            ),
            (
                vec![
                    moving("a", TaskState::Init, TaskState::Rejected),
                    moving("a", TaskState::Init, TaskState::Simulated),
                ],
                "two moves",
            ),
        ] {
            match first_moves(&tasks, &moves) {
                Err(StoreError::NotFirstMoves(m)) => assert!(m.contains(why), "{m}"),
                other => panic!(
                    "expected NotFirstMoves ({why}), got {:?}",
                    other.map(|v| v.len())
                ),
            }
        }
    }
}
