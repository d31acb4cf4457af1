//! Storage: one schema per backend (SQLite embedded, PostgreSQL in production), one code
//! path over sqlx's `Any` driver.
//!
//! The SQL below is the common subset both speak (`ON CONFLICT`, `RETURNING`,
//! `UPDATE ... FROM (VALUES ...)`; placeholders are `$n`, except that the multi-row batch
//! statements give SQLite anonymous `?`, see [`placeholders`]); amounts are stored as the
//! wire's base-10 TEXT, so both backends hold them exactly and read them back the same way.
//!
//! Every state change is a compare-and-set: `UPDATE trade_tasks SET state = new ... WHERE
//! task_id = id AND state = expected`, and the engine acts only on the rows the database
//! says it changed. A batch runs its compare-and-sets as one statement (one row of VALUES
//! per task) whose `RETURNING` names exactly the tasks that moved; ledger postings and
//! audit rows are written only for those, in the same transaction.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use stratbox_proto::{U256, parse_amount};

use crate::books::{BookMarks, StoredMarks};
use crate::fsm::{IllegalTransition, TaskState, UnknownState};
use crate::ledger::{Posting, Side, StoredLine};

mod decided;
mod execution;
mod gaps;
mod governance;
mod live;
mod memory;
mod reads;
mod reconcile;
mod reorgs;
mod replacements;
mod risk_limits;
mod routes;

pub use execution::{EXECUTION_WINDOW, ExecutionFigures, FillFigures};
pub use gaps::{GapState, NonceGap};
pub use governance::{Baseline, GovernanceHalt};
pub use live::{Lease, LiveTask, LiveUpdate, OPEN_LIVE_STATES, TaskReceipt};
pub use memory::{DEFAULT_MEMORY_CAP_BYTES, MAX_MEMORY_KEY_BYTES, MemoryPutError, MemoryWrite};
pub use reconcile::Finding;
pub use reorgs::{Included, inclusion_posting_id};
pub use replacements::{Replacement, ReplacementKind};
pub use risk_limits::{
    APPLIED, CANCELLED, FAILED, NewRiskChange, PENDING, RiskChangeRow, RiskDecision, StoredLimits,
};
pub use routes::{RouteKind, StoredRoute};

use reads::*;

/// SQL statements the batch paths sent (BEGIN and COMMIT included), process-wide: the
/// benchmark divides it by the proposals it submitted.
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// See [`STATEMENTS`].
pub fn statements_executed() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

fn counted() {
    STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The schema could not be brought up to date at open.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Neither `sqlite://` nor `postgres://`.
    #[error("unsupported database url {0:?} (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    /// The SQLite file's directory could not be created.
    #[error("creating the database directory: {0}")]
    Io(#[from] std::io::Error),
    /// A stored value does not decode (e.g. an unknown state name or a bad amount).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A transition the task state machine forbids; nothing was written.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// The store was closed (engine shutting down); the write was not made.
    #[error("the engine's committer has stopped")]
    Closed,
    /// A create batch broke its contract: a caller bug, nothing was written.
    #[error("a batch to create must hold at most one move from INIT per task it creates: {0}")]
    NotFirstMoves(String),
}

impl From<UnknownState> for StoreError {
    fn from(e: UnknownState) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Which database a store runs on; picked from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file, for a single engine (embedded mode, tests).
    Sqlite,
    /// For production and several readers.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Wall-clock ms since the Unix epoch, as rows store time; 0 if the clock is before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A task to create in INIT.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Fresh id, unique; tasks list in its order.
    pub task_id: String,
    /// The submitter's key: a second submit with it returns the first task instead.
    pub idempotency_key: String,
    /// How the task is run, e.g. `shadow`.
    pub mode: &'static str,
    /// The proposing strategy.
    pub strategy: String,
    /// The account traded for.
    pub account: String,
    /// The proposal as submitted, prost-encoded.
    pub proposal: Vec<u8>,
    /// The submit's trace id.
    pub trace_id: String,
}

/// The part of a task a submit result needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummary {
    /// The task.
    pub task_id: String,
    /// Its idempotency key.
    pub idempotency_key: String,
    /// Its state now.
    pub state: TaskState,
    /// Machine-readable reason of the last transition (e.g. a gate's code); empty if none.
    pub reason_code: String,
    /// Human-readable detail of the last transition.
    pub detail: String,
}

/// What inserting one task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// A new task in INIT.
    Created,
    /// The idempotency key was taken: the first task.
    Existing(TaskSummary),
}

/// Simulated movement recorded on a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimRecord {
    /// Magnitude of token0 moved, raw units.
    pub amount0: U256,
    /// Magnitude of token1 moved, raw units.
    pub amount1: U256,
    /// Gas the simulated transaction used.
    pub gas_used: u64,
    /// Wei per unit of gas the simulation paid.
    pub gas_price: U256,
}

/// One compare-and-set, with what it books.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The task to move.
    pub task_id: String,
    /// The state it must be in; otherwise nothing is written (lost race).
    pub from: TaskState,
    /// The state it moves to; must be legal from `from`.
    pub to: TaskState,
    /// Machine-readable reason, stored on the task and in the audit log.
    pub reason_code: String,
    /// Human-readable detail.
    pub detail: String,
    /// Simulation result to record, if this move follows a simulation.
    pub sim: Option<SimRecord>,
    /// Trace id for the audit record.
    pub trace_id: String,
    /// Who moved it (`engine`, an operator), for the audit record.
    pub actor: String,
    /// Booked in the same transaction, only if the compare-and-set succeeds.
    pub posting: Option<Posting>,
    /// Moves on from SIMULATED to STAGED in the same write (a staged or live trade that
    /// simulated cleanly): the row holds STAGED, the audit log both moves. Only with
    /// `to` SIMULATED.
    pub and_stage: bool,
}

impl Transition {
    /// The state the row holds after this transition.
    pub fn stored_state(&self) -> TaskState {
        if self.and_stage && self.to == TaskState::Simulated {
            TaskState::Staged
        } else {
            self.to
        }
    }

    /// The audit rows it writes: its move, and the move on to STAGED with `and_stage`.
    fn audits(&self) -> Vec<Audit> {
        let mut out = vec![transition_audit(self)];
        if self.stored_state() != self.to {
            out.push(Audit {
                from_state: self.to.as_str().into(),
                to_state: self.stored_state().as_str().into(),
                detail: stratbox_risk::OK.into(),
                ..transition_audit(self)
            });
        }
        out
    }
}

/// A full task row.
#[derive(Debug, Clone)]
pub struct TaskRow {
    /// See [`NewTask::task_id`].
    pub task_id: String,
    /// See [`NewTask::idempotency_key`].
    pub idempotency_key: String,
    /// Current state.
    pub state: TaskState,
    /// Reason code of the last transition; empty if none.
    pub reason_code: String,
    /// Detail of the last transition.
    pub detail: String,
    /// See [`NewTask::mode`].
    pub mode: String,
    /// The proposing strategy.
    pub strategy: String,
    /// The account traded for.
    pub account: String,
    /// The proposal as submitted, prost-encoded.
    pub proposal: Vec<u8>,
    /// The submit's trace id.
    pub trace_id: String,
    /// The simulation result, once simulated.
    pub sim: Option<SimRecord>,
    /// When submitted, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// When last moved, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

/// One ledger entry (one side of a posting) as stored.
#[derive(Debug, Clone)]
pub struct EntryRow {
    /// Insertion order; entries list in it.
    pub entry_id: i64,
    /// The balanced posting it belongs to.
    pub posting_id: String,
    /// The task that booked it.
    pub task_id: String,
    /// The ledger account, e.g. a trader's or the pool's.
    pub account: String,
    /// The asset, e.g. a token address.
    pub asset: String,
    /// Debit or credit.
    pub side: Side,
    /// Raw units; never negative, the side gives the direction.
    pub amount: U256,
    /// Why it was booked.
    pub memo: String,
    /// When, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// The posting this one reverses; empty when it reverses nothing.
    pub reverses_posting_id: String,
}

/// The persisted kill switch, read at start so an engaged switch survives a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillSwitchRow {
    /// True: no new task may proceed.
    pub engaged: bool,
    /// Why it was last changed.
    pub reason: String,
    /// Who changed it.
    pub operator: String,
    /// When, ms since the Unix epoch.
    pub changed_at_ms: i64,
    /// Engaged with `--cancel-pending`: the live path also expires every trade not sent to
    /// the signer and replaces every pending transaction with a cancel. Stored as its own
    /// `engine_flags` row (`kill_switch_cancel_pending`).
    pub cancel_pending: bool,
}

/// One audit record.
#[derive(Debug, Clone)]
pub struct Audit {
    /// Who acted (`engine`, an operator or host name).
    pub actor: String,
    /// What was done, e.g. a transition or `kill_switch`.
    pub action: String,
    /// What it was done to, e.g. a task id.
    pub subject: String,
    /// State before; empty when not a state change.
    pub from_state: String,
    /// State after; empty when not a state change.
    pub to_state: String,
    /// Free text; never a secret.
    pub detail: String,
    /// The request's trace id, to join logs and audit.
    pub trace_id: String,
}

/// Which tasks to list; every set field must match. Pages by `after_task_id`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this strategy's tasks.
    pub strategy: Option<String>,
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks after this id: the last id of the previous page.
    pub after_task_id: Option<String>,
    /// Most rows returned.
    pub limit: u32,
}

/// Placeholders for `rows` rows of `cols` parameters, numbered in bind order.
///
/// SQLite gets anonymous `?`, PostgreSQL `$n`. sqlx binds every SQLite parameter by first
/// asking for its name (`sqlite3_bind_parameter_name`), which walks the statement's list of
/// named parameters: with `$n` names a statement of N binds costs O(N²) on every execution
/// (a 500-row ledger insert spent 24 ms there, a 300-row one 9 ms). Anonymous `?` have no
/// name, so each lookup is O(1) and the cost is linear in the rows again.
fn placeholders(backend: Backend, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * (cols * 6 + 3));
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        if cols > 1 {
            s.push('(');
        }
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            match backend {
                Backend::Sqlite => s.push('?'),
                Backend::Postgres => {
                    s.push('$');
                    s.push_str(&n.to_string());
                }
            }
            n += 1;
        }
        if cols > 1 {
            s.push(')');
        }
    }
    s
}

const TASK_COLS: &str = "task_id, idempotency_key, state, reason_code, detail, mode, strategy, account, proposal, \
     trace_id, sim_amount0, sim_amount1, sim_gas_used, sim_gas_price, created_at_ms, updated_at_ms";

/// The engine's database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. On SQLite a pool of one connection: SQLite takes one writer at a
    /// time, and a second connection that finds the database locked waits in SQLite's
    /// busy handler, which sleeps in steps of up to 100 ms; writers queued on this pool
    /// instead take their turn the moment the connection is free. On PostgreSQL, `pool`.
    writer: AnyPool,
    backend: Backend,
    /// Shared by clones, so every handle skips the upsert of accounts any of them made.
    known_accounts: std::sync::Arc<KnownAccounts>,
    /// Held by every clone; the SQLite checkpointer stops once the last one is gone.
    _alive: std::sync::Arc<()>,
}

impl Store {
    /// Connects, creating an SQLite file (and its directory) if needed, and migrates.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.chars().take(80).collect()));
        };
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let writer = sqlite_pool(&url, 1).await?;
                sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
                (sqlite_pool(&url, 4).await?, writer)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .connect(&url)
                    .await?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                (pool.clone(), pool)
            }
        };
        let alive = std::sync::Arc::new(());
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoints(pool.clone(), std::sync::Arc::downgrade(&alive)));
        }
        Ok(Store {
            pool,
            writer,
            backend,
            known_accounts: std::sync::Arc::default(),
            _alive: alive,
        })
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The read pool, shared with the registry when they share a database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the read and write pools, for an orderly shutdown; the store is unusable after.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Creates tasks in INIT, keyed by idempotency key, in one transaction. A key that is
    /// already taken (by an earlier submit or a concurrent one) creates nothing and returns
    /// the first task: `INSERT ... ON CONFLICT DO NOTHING`, then read the winner.
    ///
    /// The caller passes distinct keys.
    pub async fn insert_tasks(&self, tasks: &[NewTask]) -> Result<Vec<Inserted>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let (inserted, audits) = insert_tasks_tx(self.backend, &mut tx, tasks, now).await?;
        insert_audits(self.backend, &mut tx, &audits, now).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Applies compare-and-set transitions in one transaction and books the postings of
    /// the ones that moved. Returns, per transition, whether it moved.
    pub async fn apply(&self, transitions: &[Transition]) -> Result<Vec<bool>, StoreError> {
        for t in transitions {
            t.from.check(t.to)?;
        }
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let applied = apply_tx(
            self.backend,
            &self.known_accounts,
            &mut tx,
            transitions,
            now,
        )
        .await?;
        insert_audits(self.backend, &mut tx, &applied.audits, now).await?;
        tx.commit().await?;
        self.remember_accounts(applied.new_accounts);
        let moved = applied.moved;
        Ok(transitions
            .iter()
            .map(|t| moved.contains(&t.task_id))
            .collect())
    }

    /// A submitted batch in one database transaction: creates each task with its decision,
    /// the task's one transition from INIT, as a compare-and-set against the task's absence
    /// (idempotency key unique, as [`Store::insert_tasks`]), with its posting and audit rows
    /// (as [`Store::apply`]); see [`decided`]. A task whose key was taken is neither created
    /// nor moved: the first task's answer stands.
    ///
    /// One commit per batch: a crash either keeps the whole batch (decided) or none of it
    /// (the client was not answered and retries under the same keys), so no task is ever
    /// left in INIT by this path. Returns, per task, what inserting did, and per transition
    /// whether it moved.
    pub async fn create_and_apply(
        &self,
        tasks: &[NewTask],
        transitions: &[Transition],
    ) -> Result<(Vec<Inserted>, Vec<bool>), StoreError> {
        for t in transitions {
            t.from.check(t.to)?;
        }
        let decisions = decided::first_moves(tasks, transitions)?;
        decided::create(self, tasks, &decisions, transitions).await
    }

    /// Books a posting outside any task transition (corrections, reversals).
    pub async fn post(&self, posting: &Posting, audit: &Audit) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let new_accounts =
            insert_postings(self.backend, &self.known_accounts, &mut tx, &[posting], now).await?;
        insert_audits(self.backend, &mut tx, std::slice::from_ref(audit), now).await?;
        tx.commit().await?;
        self.remember_accounts(new_accounts);
        Ok(())
    }

    /// Records accounts a committed transaction created (see [`KnownAccounts`]).
    fn remember_accounts(&self, accounts: Vec<String>) {
        if accounts.is_empty() {
            return;
        }
        self.known_accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(accounts);
    }

    /// Persists the kill switch and audits the change in one transaction.
    pub async fn save_kill_switch(
        &self,
        k: &KillSwitchRow,
        trace_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO engine_flags (name, engaged, reason, operator, changed_at_ms) VALUES ('kill_switch', $1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET engaged = excluded.engaged, reason = excluded.reason, \
             operator = excluded.operator, changed_at_ms = excluded.changed_at_ms",
        )
        .bind(i64::from(k.engaged))
        .bind(&k.reason)
        .bind(&k.operator)
        .bind(k.changed_at_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO engine_flags (name, engaged, reason, operator, changed_at_ms) VALUES ('kill_switch_cancel_pending', $1, '', $2, $3) \
             ON CONFLICT (name) DO UPDATE SET engaged = excluded.engaged, operator = excluded.operator, \
             changed_at_ms = excluded.changed_at_ms",
        )
        .bind(i64::from(k.engaged && k.cancel_pending))
        .bind(&k.operator)
        .bind(k.changed_at_ms)
        .execute(&mut *tx)
        .await?;
        let audit = Audit {
            actor: k.operator.clone(),
            action: if k.engaged {
                "kill_switch_set"
            } else {
                "kill_switch_cleared"
            }
            .into(),
            subject: "kill_switch".into(),
            from_state: String::new(),
            to_state: if k.engaged { "ENGAGED" } else { "CLEAR" }.into(),
            detail: if k.engaged && k.cancel_pending {
                format!("{} (cancel pending)", k.reason)
            } else {
                k.reason.clone()
            },
            trace_id: trace_id.to_owned(),
        };
        insert_audits(self.backend, &mut tx, &[audit], k.changed_at_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Upserts permission trackers (strategy, tracker JSON) and books' marks and writes
    /// `audits` in one transaction, so a level change and its audit row are stored
    /// together or not at all. A strategy (or book) named twice keeps its last row.
    pub async fn save_permissions(
        &self,
        trackers: &[(String, String)],
        marks: &[StoredMarks],
        audits: &[Audit],
    ) -> Result<(), StoreError> {
        if trackers.is_empty() && marks.is_empty() && audits.is_empty() {
            return Ok(());
        }
        // One row per key: PostgreSQL refuses an upsert that touches a row twice.
        let rows = last_of(trackers, |(s, _)| s.as_str());
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO strategy_permissions (strategy, tracker, updated_at_ms) VALUES {} \
                 ON CONFLICT (strategy) DO UPDATE SET tracker = excluded.tracker, \
                 updated_at_ms = excluded.updated_at_ms",
                placeholders(self.backend, chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for (strategy, tracker) in chunk.iter().copied() {
                q = q.bind(strategy).bind(tracker).bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        let marks = last_of(marks, |m| m.book.as_str());
        for chunk in marks.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO book_marks (book, strategy, peak_equity, day, day_start_equity, \
                 updated_at_ms) VALUES {} ON CONFLICT (book) DO UPDATE SET \
                 peak_equity = excluded.peak_equity, day = excluded.day, \
                 day_start_equity = excluded.day_start_equity, updated_at_ms = excluded.updated_at_ms",
                placeholders(self.backend, chunk.len(), 6)
            );
            let mut q = sqlx::query(&sql);
            for m in chunk {
                q = q
                    .bind(&m.book)
                    .bind(&m.strategy)
                    .bind(m.marks.peak_equity.to_string())
                    .bind(m.marks.day)
                    .bind(m.marks.day_start_equity.to_string())
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        insert_audits(self.backend, &mut tx, audits, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Rows a multi-row statement is padded up to: a chunk of `n` rows is sent as the smallest
/// of these sizes that holds it, the missing rows bound as padding that the statement
/// filters out (a NULL first column).
///
/// sqlx prepares and caches one statement per SQL text and connection. Sizing statements
/// by the batch made nearly every batch of a live stream a new text, prepared (and on
/// PostgreSQL, planned) again: with the cache bypassed a 200-proposal batch spent 53 ms in
/// storage on PostgreSQL instead of 32. A few fixed sizes keep every text cached. Padding
/// adds at most half as many rows again (a quarter above 64), and the first-column filter
/// drops them before any table, index or trigger sees them; 17 sizes times 5 statements
/// fit sqlx's cache of 100 statements per connection.
const SIZES: [usize; 17] = [
    8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512,
];

/// Rows per statement at most (the largest of [`SIZES`]): 512 rows of the widest table (15
/// columns) are well below SQLite's 32766 and PostgreSQL's 65535 bind parameters.
const CHUNK: usize = SIZES[SIZES.len() - 1];

/// The fixed size a chunk of `rows` rows is sent as.
fn padded(rows: usize) -> usize {
    SIZES.iter().copied().find(|&s| s >= rows).unwrap_or(CHUNK)
}

/// The insert half of [`Store::insert_tasks`] inside a transaction; returns what each
/// insert did and the audit rows to write.
async fn insert_tasks_tx(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tasks: &[NewTask],
    now: i64,
) -> Result<(Vec<Inserted>, Vec<Audit>), StoreError> {
    let created = insert_rows(backend, tx, tasks, &[], now).await?;
    let audits: Vec<Audit> = tasks
        .iter()
        .filter(|t| created.contains(&t.task_id))
        .map(created_audit)
        .collect();
    let missing: Vec<&str> = tasks
        .iter()
        .filter(|t| !created.contains(&t.task_id))
        .map(|t| t.idempotency_key.as_str())
        .collect();
    let existing = read_existing(backend, tx, &missing).await?;
    Ok((what_inserting_did(tasks, &created, &existing)?, audits))
}

/// The last row of each key, in the order the rows were given.
fn last_of<'a, T>(rows: &'a [T], key: impl Fn(&'a T) -> &'a str) -> Vec<&'a T> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        last.insert(key(r), i);
    }
    rows.iter()
        .enumerate()
        .filter(|(i, r)| last.get(key(r)) == Some(i))
        .map(|(_, r)| r)
        .collect()
}

/// Per task: created here, or the first task holding its key.
fn what_inserting_did(
    tasks: &[NewTask],
    created: &std::collections::HashSet<String>,
    existing: &HashMap<String, TaskSummary>,
) -> Result<Vec<Inserted>, StoreError> {
    tasks
        .iter()
        .map(|t| {
            if created.contains(&t.task_id) {
                Ok(Inserted::Created)
            } else {
                // `get`, not `remove`: a group commit can carry one key in several batches.
                existing
                    .get(&t.idempotency_key)
                    .cloned()
                    .map(Inserted::Existing)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "key {} neither inserted nor found",
                            t.idempotency_key
                        ))
                    })
            }
        })
        .collect()
}

/// Inserts `tasks` unless their idempotency key is taken, each in the state its decision
/// (same index in `decisions`) moves it to, or in INIT without one; returns the ids of
/// the tasks created.
async fn insert_rows(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tasks: &[NewTask],
    decisions: &[Option<&Transition>],
    now: i64,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut created: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (c, chunk) in tasks.chunks(CHUNK).enumerate() {
        let size = padded(chunk.len());
        // `INSERT ... SELECT ... WHERE` rather than `INSERT ... VALUES` so padding rows
        // (NULL task_id) are dropped before the insert.
        let sql = format!(
            "INSERT INTO trade_tasks ({TASK_COLS}) SELECT * FROM (VALUES {}) AS v WHERE v.column1 IS NOT NULL \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING task_id",
            placeholders(backend, size, 16)
        );
        let mut q = sqlx::query(&sql);
        let last = chunk.len() - 1;
        for i in 0..size {
            // Padding repeats the last row's values (so every column keeps its type) under
            // a NULL task_id.
            let t = &chunk[i.min(last)];
            let d = decisions.get(c * CHUNK + i.min(last)).copied().flatten();
            let (a0, a1, gas, price) = sim_columns(d.and_then(|d| d.sim));
            q = q
                .bind((i <= last).then_some(t.task_id.as_str()))
                .bind(&t.idempotency_key)
                .bind(d.map_or(TaskState::Init, |d| d.stored_state()).as_str())
                .bind(d.map_or("", |d| d.reason_code.as_str()))
                .bind(d.map_or("", |d| d.detail.as_str()))
                .bind(t.mode)
                .bind(&t.strategy)
                .bind(&t.account)
                .bind(&t.proposal)
                .bind(&t.trace_id)
                .bind(a0)
                .bind(a1)
                .bind(gas)
                .bind(price)
                .bind(now)
                .bind(now);
        }
        counted();
        for row in q.fetch_all(&mut **tx).await? {
            created.insert(row.try_get::<String, _>("task_id")?);
        }
    }
    Ok(created)
}

/// The stored summaries of the tasks holding `keys`.
async fn read_existing(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    keys: &[&str],
) -> Result<HashMap<String, TaskSummary>, StoreError> {
    let mut existing: HashMap<String, TaskSummary> = HashMap::new();
    for chunk in keys.chunks(CHUNK) {
        let size = padded(chunk.len());
        let sql = format!(
            "SELECT task_id, idempotency_key, state, reason_code, detail FROM trade_tasks WHERE idempotency_key IN ({})",
            placeholders(backend, size, 1)
        );
        let mut q = sqlx::query(&sql);
        let last = chunk.len() - 1;
        // Padding repeats the last key, which `IN` ignores.
        for i in 0..size {
            q = q.bind(chunk[i.min(last)]);
        }
        counted();
        for row in q.fetch_all(&mut *conn).await? {
            let s = summary(&row)?;
            existing.insert(s.idempotency_key.clone(), s);
        }
    }
    Ok(existing)
}

/// A task's simulated amounts and gas as stored (empty amounts when it has none).
fn sim_columns(sim: Option<SimRecord>) -> (String, String, i64, String) {
    match sim {
        Some(s) => (
            s.amount0.to_string(),
            s.amount1.to_string(),
            i64::try_from(s.gas_used).unwrap_or(i64::MAX),
            s.gas_price.to_string(),
        ),
        None => (String::new(), String::new(), 0, "0".into()),
    }
}

fn created_audit(t: &NewTask) -> Audit {
    Audit {
        actor: "engine".into(),
        action: "task_created".into(),
        subject: t.task_id.clone(),
        from_state: String::new(),
        to_state: TaskState::Init.as_str().into(),
        detail: String::new(),
        trace_id: t.trace_id.clone(),
    }
}

fn transition_audit(t: &Transition) -> Audit {
    Audit {
        actor: t.actor.clone(),
        action: "task_transition".into(),
        subject: t.task_id.clone(),
        from_state: t.from.as_str().into(),
        to_state: t.to.as_str().into(),
        detail: if t.detail.is_empty() {
            t.reason_code.clone()
        } else {
            format!("{}: {}", t.reason_code, t.detail)
        },
        trace_id: t.trace_id.clone(),
    }
}

/// What [`apply_tx`] did: the task ids that moved, the audit rows to write, and the ledger
/// accounts it created (see [`insert_postings`]).
struct Applied {
    moved: std::collections::HashSet<String>,
    audits: Vec<Audit>,
    new_accounts: Vec<String>,
}

/// The compare-and-set half of [`Store::apply`] inside a transaction: one multi-row
/// `UPDATE ... WHERE state = expected RETURNING` per chunk, then the postings of the tasks
/// that moved.
async fn apply_tx(
    backend: Backend,
    known_accounts: &KnownAccounts,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    transitions: &[Transition],
    now: i64,
) -> Result<Applied, StoreError> {
    let mut moved: std::collections::HashSet<String> = std::collections::HashSet::new();
    for chunk in transitions.chunks(CHUNK) {
        let size = padded(chunk.len());
        // column1 task_id, column2 expected, column3 new, column4 reason, column5 detail,
        // column6 amount0, column7 amount1, column8 gas, column9 now, column10 gas price.
        // Padding rows have a NULL task_id, which equals no row.
        let sql = format!(
            "UPDATE trade_tasks SET state = v.column3, reason_code = v.column4, detail = v.column5, \
             sim_amount0 = v.column6, sim_amount1 = v.column7, sim_gas_used = v.column8, updated_at_ms = v.column9, \
             sim_gas_price = v.column10 \
             FROM (VALUES {}) AS v WHERE trade_tasks.task_id = v.column1 AND trade_tasks.state = v.column2 \
             RETURNING task_id",
            placeholders(backend, size, 10)
        );
        let mut q = sqlx::query(&sql);
        let last = chunk.len() - 1;
        for i in 0..size {
            let t = &chunk[i.min(last)];
            let (a0, a1, gas, price) = sim_columns(t.sim);
            q = q
                .bind((i <= last).then_some(t.task_id.as_str()))
                .bind(t.from.as_str())
                .bind(t.stored_state().as_str())
                .bind(&t.reason_code)
                .bind(&t.detail)
                .bind(a0)
                .bind(a1)
                .bind(gas)
                .bind(now)
                .bind(price);
        }
        counted();
        for row in q.fetch_all(&mut **tx).await? {
            moved.insert(row.try_get::<String, _>("task_id")?);
        }
    }
    let postings: Vec<&Posting> = transitions
        .iter()
        .filter(|t| moved.contains(&t.task_id))
        .filter_map(|t| t.posting.as_ref())
        .collect();
    let new_accounts = insert_postings(backend, known_accounts, tx, &postings, now).await?;
    let audits: Vec<Audit> = transitions
        .iter()
        .filter(|t| moved.contains(&t.task_id))
        .flat_map(Transition::audits)
        .collect();
    Ok(Applied {
        moved,
        audits,
        new_accounts,
    })
}

async fn insert_audits(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    audits: &[Audit],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in audits.chunks(CHUNK) {
        let size = padded(chunk.len());
        // Padding rows have a NULL subject and are dropped before the insert.
        let sql = format!(
            "INSERT INTO audit_log (subject, at_ms, actor, action, from_state, to_state, detail, trace_id) \
             SELECT * FROM (VALUES {}) AS v WHERE v.column1 IS NOT NULL",
            placeholders(backend, size, 8)
        );
        let mut q = sqlx::query(&sql);
        let last = chunk.len() - 1;
        for i in 0..size {
            let a = &chunk[i.min(last)];
            q = q
                .bind((i <= last).then_some(a.subject.as_str()))
                .bind(now)
                .bind(&a.actor)
                .bind(&a.action)
                .bind(&a.from_state)
                .bind(&a.to_state)
                .bind(&a.detail)
                .bind(&a.trace_id);
        }
        counted();
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Ledger accounts this store has seen committed. Accounts are never deleted (entries
/// reference them), so an account in this set needs no upsert; the foreign key on
/// `ledger_entries` still checks it in the database.
type KnownAccounts = std::sync::Mutex<std::collections::HashSet<String>>;

/// Books `postings`: upserts the accounts not in `known_accounts`, then appends the
/// entries. Returns the accounts it upserted, for the caller to add to `known_accounts`
/// once the transaction has committed (never before: a rollback would forget them).
async fn insert_postings(
    backend: Backend,
    known_accounts: &KnownAccounts,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    postings: &[&Posting],
    now: i64,
) -> Result<Vec<String>, StoreError> {
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    let new_accounts = insert_accounts(backend, known_accounts, tx, postings, now).await?;
    let rows: Vec<(&Posting, &crate::ledger::Entry)> = postings
        .iter()
        .flat_map(|p| p.entries().iter().map(move |e| (*p, e)))
        .collect();
    for chunk in rows.chunks(CHUNK) {
        let size = padded(chunk.len());
        // Padding rows have a NULL posting_id and are dropped before the insert (and its
        // checks and triggers).
        let sql = format!(
            "INSERT INTO ledger_entries (posting_id, task_id, account, asset, side, amount, memo, created_at_ms, reverses_posting_id) \
             SELECT * FROM (VALUES {}) AS v WHERE v.column1 IS NOT NULL",
            placeholders(backend, size, 9)
        );
        let mut q = sqlx::query(&sql);
        let last = chunk.len() - 1;
        for i in 0..size {
            let (p, e) = chunk[i.min(last)];
            q = q
                .bind((i <= last).then_some(p.posting_id.as_str()))
                .bind(&p.task_id)
                .bind(&e.account)
                .bind(&e.asset)
                .bind(e.side.as_str())
                .bind(e.amount.to_string())
                .bind(&p.memo)
                .bind(now)
                .bind(&p.reverses_posting_id);
        }
        counted();
        q.execute(&mut **tx).await?;
    }
    Ok(new_accounts)
}

/// Upserts the accounts of `postings` not in `known_accounts`; returns them, for the
/// caller to add to `known_accounts` once they are committed.
async fn insert_accounts(
    backend: Backend,
    known_accounts: &KnownAccounts,
    conn: &mut sqlx::AnyConnection,
    postings: &[&Posting],
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let mut accounts: Vec<&str> = postings
        .iter()
        .flat_map(|p| p.entries().iter().map(|e| e.account.as_str()))
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    {
        // A poisoned lock only means another batch panicked; the set is still valid.
        let known = known_accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        accounts.retain(|a| !known.contains(*a));
    }
    // Rare after the first batches, so sized by what is new rather than padded.
    for chunk in accounts.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO ledger_accounts (account, kind, created_at_ms) VALUES {} ON CONFLICT (account) DO NOTHING",
            placeholders(backend, chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql);
        for a in chunk {
            let kind = a.split(':').next().unwrap_or("other");
            q = q.bind(*a).bind(kind).bind(now);
        }
        counted();
        q.execute(&mut *conn).await?;
    }
    Ok(accounts.into_iter().map(str::to_owned).collect())
}

/// An SQLite pool of at most `max` connections. WAL lets readers (GetTask, ListTasks) run
/// beside the writer; NORMAL sync is durable across process crashes in WAL mode, which is
/// the crash model here.
async fn sqlite_pool(url: &str, max: u32) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .after_connect(|conn, _| {
            Box::pin(async move {
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    // Checkpoints run beside the writer (see `checkpoints`).
                    "PRAGMA wal_autocheckpoint = 0",
                    // 64 MiB of page cache instead of 2: idempotency keys are hashes, so
                    // every batch inserts into pages all over their index. Not measured on
                    // its own; the README's pipeline numbers were taken with it.
                    "PRAGMA cache_size = -65536",
                    "PRAGMA busy_timeout = 10000",
                    "PRAGMA foreign_keys = ON",
                ] {
                    sqlx::Executor::execute(&mut *conn, pragma).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// How often the SQLite write-ahead log is checkpointed into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Checkpoints the SQLite write-ahead log until the pool closes or every handle on the
/// store is dropped.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL pages: that
/// commit copies the log into the database file and syncs it, and the batch it carries
/// (and every batch queued behind the single writer) waits, which is where storage's
/// worst latencies came from. Here a passive checkpoint runs on its own connection
/// instead: it copies what no reader still needs and never blocks a writer, and each
/// writer restarts the log from its beginning once a checkpoint has caught up.
async fn checkpoints(pool: AnyPool, store: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        if store.strong_count() == 0 {
            pool.close().await;
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_all(&pool)
            .await
            && !pool.is_closed()
        {
            tracing::warn!(error = %e, "checkpointing the SQLite write-ahead log");
        }
    }
}

/// `sqlite://PATH` with the file created if missing (`mode=rwc`) and its directory made.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| path != ":memory:" && !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)?;
    }
    Ok(match query {
        Some(q) if q.contains("mode=") => format!("sqlite://{path}?{q}"),
        Some(q) => format!("sqlite://{path}?{q}&mode=rwc"),
        None => format!("sqlite://{path}?mode=rwc"),
    })
}

/// Creates a PostgreSQL database (for benchmarks and tests that need a fresh one).
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    check_db_name(name)?;
    let mut c = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await?;
    Ok(())
}

/// Drops a PostgreSQL database, disconnecting its sessions.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    check_db_name(name)?;
    let mut c = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await?;
    Ok(())
}

/// Database names are interpolated into DDL: only `[a-z0-9_]` is accepted.
fn check_db_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::UnsupportedUrl(format!(
            "database name {name:?}"
        )));
    }
    Ok(())
}

/// `postgres://host/db` with the database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}
