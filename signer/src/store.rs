//! The signer's own store: SQLite by default, PostgreSQL when configured, one code path over
//! sqlx's `Any` driver (the SQL is what both speak; placeholders are `$n`). Never the
//! engine's database: a compromised engine must not be able to rewrite what the signer
//! remembers signing.
//!
//! Amounts are the wire's base-10 TEXT. Every decision is written with its audit entry in
//! one transaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, U256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::audit::{self, Entry};
use crate::nonce::NonceRecord;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Neither `sqlite:` nor `postgres://`.
    #[error("unsupported database url (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl,
    /// Creating the SQLite file's directory failed.
    #[error("creating the database directory: {0}")]
    Io(#[from] std::io::Error),
    /// A row that does not parse.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A task's state in the signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Signed; `raw_tx` holds the bytes.
    Signed,
    /// Waiting for approvers.
    AwaitingApproval,
    /// Refused for good.
    Refused,
    /// Reserved for signing (nonce and spend recorded), signature not stored yet.
    Signing,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Signed => "signed",
            Outcome::AwaitingApproval => "awaiting_approval",
            Outcome::Refused => "refused",
            Outcome::Signing => "signing",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "signed" => Outcome::Signed,
            "awaiting_approval" => Outcome::AwaitingApproval,
            "refused" => Outcome::Refused,
            "signing" => Outcome::Signing,
            other => return Err(StoreError::Corrupt(format!("outcome {other:?}"))),
        })
    }
}

/// One engine task as the signer recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    /// The engine's task id.
    pub task_id: String,
    /// sha256 of the request's canonical fields.
    pub request_hash: String,
    /// The signing account (0x, lowercase).
    pub account: String,
    /// Chain id.
    pub chain_id: u64,
    /// Nonce.
    pub nonce: u64,
    /// The EIP-1559 signing hash (0x).
    pub signing_hash: String,
    /// Where it stands.
    pub outcome: Outcome,
    /// A refusal's code.
    pub reason_code: String,
    /// A refusal's or a wait's detail.
    pub detail: String,
    /// Its approval, if it needed one.
    pub approval_id: String,
    /// Approvers needed.
    pub approvals_required: u32,
    /// The signed transaction (hex, no 0x).
    pub raw_tx: String,
    /// The transaction hash (0x).
    pub tx_hash: String,
    /// The trace id of the first request.
    pub trace_id: String,
}

fn request_row(r: &AnyRow) -> Result<RequestRow, StoreError> {
    Ok(RequestRow {
        task_id: r.try_get("task_id")?,
        request_hash: r.try_get("request_hash")?,
        account: r.try_get("account")?,
        chain_id: r.try_get::<i64, _>("chain_id")? as u64,
        nonce: r.try_get::<i64, _>("nonce")? as u64,
        signing_hash: r.try_get("signing_hash")?,
        outcome: Outcome::parse(&r.try_get::<String, _>("outcome")?)?,
        reason_code: r.try_get("reason_code")?,
        detail: r.try_get("detail")?,
        approval_id: r.try_get("approval_id")?,
        approvals_required: r.try_get::<i64, _>("approvals_required")? as u32,
        raw_tx: r.try_get("raw_tx")?,
        tx_hash: r.try_get("tx_hash")?,
        trace_id: r.try_get("trace_id")?,
    })
}

/// An approval as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    /// Its id.
    pub approval_id: String,
    /// The task it is for.
    pub task_id: String,
    /// sha256 of the fields shown.
    pub fields_hash: String,
    /// The account (0x).
    pub account: String,
    /// pending | approved | rejected | expired.
    pub state: String,
    /// Approvers needed.
    pub required: u32,
    /// Why it waits.
    pub reason: String,
    /// The encoded `v1::Approval` view it was created with (hex).
    pub view: String,
    /// Trace id.
    pub trace_id: String,
    /// Created, ms.
    pub created_at_ms: i64,
    /// Expires, ms.
    pub expires_at_ms: i64,
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The approver's name (from their certificate's allowlist entry).
    pub approver: String,
    /// approve | reject.
    pub decision: String,
    /// Their reason.
    pub reason: String,
    /// When.
    pub at_ms: i64,
}

fn approval_row(r: &AnyRow) -> Result<ApprovalRow, StoreError> {
    Ok(ApprovalRow {
        approval_id: r.try_get("approval_id")?,
        task_id: r.try_get("task_id")?,
        fields_hash: r.try_get("fields_hash")?,
        account: r.try_get("account")?,
        state: r.try_get("state")?,
        required: r.try_get::<i64, _>("required")? as u32,
        reason: r.try_get("reason")?,
        view: r.try_get("view")?,
        trace_id: r.try_get("trace_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
    })
}

/// The stored policy state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    /// Canonical TOML of the active policy.
    pub active_toml: String,
    /// Its hash.
    pub active_hash: String,
    /// Since when.
    pub active_since_ms: i64,
    /// The file waiting for its timelock (empty when none).
    pub pending_toml: String,
    /// Its hash.
    pub pending_hash: String,
    /// When it takes effect.
    pub pending_effective_ms: i64,
    /// Its loosening changes, one per line.
    pub pending_changes: String,
}

/// What a signing reservation must record.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// The nonce record (raw_tx empty until signed).
    pub record: NonceRecord,
    /// Chain id.
    pub chain_id: u64,
    /// Account.
    pub account: Address,
    /// Outflows to count against the daily caps (none for a replacement or cancel).
    pub spend: Vec<(Address, U256)>,
}

/// A database handle.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
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

/// Opens a signer store for reading only, without migrating: for `audit verify`, which
/// must never change what it checks. SQLite is opened `mode=ro`.
pub async fn open_read_only(url: &str) -> Result<AnyPool, StoreError> {
    sqlx::any::install_default_drivers();
    if url.starts_with("sqlite:") {
        let rest = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = rest.split_once('?').map(|(p, _)| p).unwrap_or(rest);
        if !Path::new(path).is_file() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no database file at {path}"),
            )));
        }
        Ok(AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{path}?mode=ro"))
            .await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?)
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

impl Store {
    /// Connects (creating an SQLite file if needed) and migrates.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = if url.starts_with("sqlite:") {
            let url = sqlite_url(url)?;
            // One connection: SQLite has one writer, and signing decisions are serialised
            // per account anyway.
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            sqlx::Executor::execute(&mut *conn, pragma).await?;
                        }
                        Ok(())
                    })
                })
                .connect(&url)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            pool
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .connect(url)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            pool
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Store { pool })
    }

    /// The pool (for audit verification and tests).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Appends one audit entry on its own.
    pub async fn audit(&self, e: &Entry) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        audit::append(&mut tx, now_ms(), e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A task's row.
    pub async fn request(&self, task_id: &str) -> Result<Option<RequestRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM sign_requests WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request_row).transpose()
    }

    async fn upsert_request(
        tx: &mut Transaction<'static, Any>,
        row: &RequestRow,
        request: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sign_requests (task_id, request_hash, account, chain_id, nonce, signing_hash, outcome, \
             reason_code, detail, approval_id, approvals_required, raw_tx, tx_hash, trace_id, request, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) \
             ON CONFLICT (task_id) DO UPDATE SET outcome = excluded.outcome, reason_code = excluded.reason_code, \
             detail = excluded.detail, approval_id = excluded.approval_id, approvals_required = excluded.approvals_required, \
             raw_tx = excluded.raw_tx, tx_hash = excluded.tx_hash, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&row.task_id)
        .bind(&row.request_hash)
        .bind(&row.account)
        .bind(row.chain_id as i64)
        .bind(row.nonce as i64)
        .bind(&row.signing_hash)
        .bind(row.outcome.as_str())
        .bind(&row.reason_code)
        .bind(&row.detail)
        .bind(&row.approval_id)
        .bind(row.approvals_required as i64)
        .bind(&row.raw_tx)
        .bind(&row.tx_hash)
        .bind(&row.trace_id)
        .bind(request)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records a task's final refusal (or other row state) with its audit entry.
    pub async fn record(
        &self,
        row: &RequestRow,
        request: &str,
        e: &Entry,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        Self::upsert_request(&mut tx, row, request, now).await?;
        audit::append(&mut tx, now, e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a task that waits for approval, with its approval, unless the task already
    /// has one (a concurrent identical request): then the stored row is returned instead.
    pub async fn create_awaiting(
        &self,
        row: &RequestRow,
        request: &str,
        approval: &ApprovalRow,
        e: &Entry,
    ) -> Result<Option<RequestRow>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO approvals (approval_id, task_id, fields_hash, account, state, required, reason, view, trace_id, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(&approval.approval_id)
        .bind(&approval.task_id)
        .bind(&approval.fields_hash)
        .bind(&approval.account)
        .bind(&approval.state)
        .bind(approval.required as i64)
        .bind(&approval.reason)
        .bind(&approval.view)
        .bind(&approval.trace_id)
        .bind(approval.created_at_ms)
        .bind(approval.expires_at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return self.request(&row.task_id).await;
        }
        Self::upsert_request(&mut tx, row, request, now).await?;
        audit::append(&mut tx, now, e).await?;
        tx.commit().await?;
        Ok(None)
    }

    /// Everything signed (or reserved) for `(chain, account)` at `nonce`, and the highest
    /// nonce signed for it.
    async fn nonces(
        conn: &mut sqlx::AnyConnection,
        chain_id: u64,
        account: &str,
        nonce: u64,
    ) -> Result<(Vec<NonceRecord>, Option<u64>), StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM signed_nonces WHERE chain_id = $1 AND account = $2 AND nonce = $3",
        )
        .bind(chain_id as i64)
        .bind(account)
        .bind(nonce as i64)
        .fetch_all(&mut *conn)
        .await?;
        let records = rows
            .iter()
            .map(nonce_record)
            .collect::<Result<Vec<_>, _>>()?;
        let highest: Option<i64> = sqlx::query(
            "SELECT MAX(nonce) FROM signed_nonces WHERE chain_id = $1 AND account = $2",
        )
        .bind(chain_id as i64)
        .bind(account)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        Ok((records, highest.map(|h| h as u64)))
    }

    /// Read-only view for a pre-check before an approval is created.
    pub async fn nonce_view(
        &self,
        chain_id: u64,
        account: &str,
        nonce: u64,
    ) -> Result<(Vec<NonceRecord>, Option<u64>), StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::nonces(&mut conn, chain_id, account, nonce).await
    }

    async fn spent_in(
        conn: &mut sqlx::AnyConnection,
        account: &str,
        tokens: &[Address],
        since_ms: i64,
    ) -> Result<BTreeMap<Address, U256>, StoreError> {
        let mut out = BTreeMap::new();
        for token in tokens {
            let rows = sqlx::query(
                "SELECT amount FROM spend WHERE account = $1 AND token = $2 AND at_ms > $3",
            )
            .bind(account)
            .bind(format!("{token:#x}"))
            .bind(since_ms)
            .fetch_all(&mut *conn)
            .await?;
            let mut total = U256::ZERO;
            for r in rows {
                let s: String = r.try_get(0)?;
                let v = U256::from_str_radix(&s, 10)
                    .map_err(|_| StoreError::Corrupt(format!("spend amount {s:?}")))?;
                total = total.saturating_add(v);
            }
            out.insert(*token, total);
        }
        Ok(out)
    }

    /// What `account` moved out per token in the 24 hours before `now`.
    pub async fn spent(
        &self,
        account: &str,
        tokens: &[Address],
        now: i64,
    ) -> Result<BTreeMap<Address, U256>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::spent_in(&mut conn, account, tokens, now - DAY_MS).await
    }

    /// Reserves a nonce and the day's spend for signing, after `judge` accepts what the
    /// store holds — all inside one transaction that first takes the account's lock row, so
    /// two signings for one account never both pass. `judge` gets the records at the nonce,
    /// the highest nonce signed and the day's spend, and returns the reservation to write
    /// or a refusal (written as the task's outcome with `refusal_entry`).
    pub async fn reserve<F, R>(
        &self,
        tokens: &[Address],
        row: &RequestRow,
        request: &str,
        judge: F,
    ) -> Result<Result<Reservation, R>, StoreError>
    where
        F: FnOnce(
            &[NonceRecord],
            Option<u64>,
            &BTreeMap<Address, U256>,
        ) -> Result<Reservation, Box<(R, RequestRow, Entry)>>,
    {
        let (chain_id, account, nonce) = (row.chain_id, row.account.as_str(), row.nonce);
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO account_locks (chain_id, account, n) VALUES ($1, $2, 0) ON CONFLICT (chain_id, account) DO NOTHING")
            .bind(chain_id as i64)
            .bind(account)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE account_locks SET n = n + 1 WHERE chain_id = $1 AND account = $2")
            .bind(chain_id as i64)
            .bind(account)
            .execute(&mut *tx)
            .await?;
        let (records, highest) = Self::nonces(&mut tx, chain_id, account, nonce).await?;
        let spent = Self::spent_in(&mut tx, account, tokens, now - DAY_MS).await?;
        match judge(&records, highest, &spent) {
            Err(refused) => {
                let (refusal, refused_row, entry) = *refused;
                Self::upsert_request(&mut tx, &refused_row, request, now).await?;
                audit::append(&mut tx, now, &entry).await?;
                tx.commit().await?;
                Ok(Err(refusal))
            }
            Ok(res) => {
                let r = &res.record;
                // An identical transaction already recorded needs no second record.
                let exists = records.iter().any(|x| x.signing_hash == r.signing_hash);
                if !exists {
                    sqlx::query(
                        "INSERT INTO signed_nonces (chain_id, account, nonce, signing_hash, to_address, value, input_hash, gas_limit, \
                         max_fee_per_gas, max_priority_fee_per_gas, kind, task_id, raw_tx, tx_hash, signed_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '', '', $13)",
                    )
                    .bind(chain_id as i64)
                    .bind(account)
                    .bind(nonce as i64)
                    .bind(&r.signing_hash)
                    .bind(&r.to)
                    .bind(&r.value)
                    .bind(&r.input_hash)
                    .bind(r.gas_limit as i64)
                    .bind(r.max_fee_per_gas.to_string())
                    .bind(r.max_priority_fee_per_gas.to_string())
                    .bind(&r.kind)
                    .bind(&r.task_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    for (token, amount) in &res.spend {
                        sqlx::query("INSERT INTO spend (chain_id, account, token, amount, at_ms, task_id) VALUES ($1, $2, $3, $4, $5, $6)")
                            .bind(chain_id as i64)
                            .bind(account)
                            .bind(format!("{token:#x}"))
                            .bind(amount.to_string())
                            .bind(now)
                            .bind(&r.task_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let mut signing = row.clone();
                signing.outcome = Outcome::Signing;
                Self::upsert_request(&mut tx, &signing, request, now).await?;
                tx.commit().await?;
                Ok(Ok(res))
            }
        }
    }

    /// Stores the signature of a reservation and the task's answer.
    pub async fn finish_signed(
        &self,
        row: &RequestRow,
        request: &str,
        e: &Entry,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE signed_nonces SET raw_tx = $1, tx_hash = $2 WHERE chain_id = $3 AND account = $4 AND nonce = $5 AND signing_hash = $6 AND raw_tx = ''",
        )
        .bind(&row.raw_tx)
        .bind(&row.tx_hash)
        .bind(row.chain_id as i64)
        .bind(&row.account)
        .bind(row.nonce as i64)
        .bind(&row.signing_hash)
        .execute(&mut *tx)
        .await?;
        Self::upsert_request(&mut tx, row, request, now).await?;
        audit::append(&mut tx, now, e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Undoes a reservation whose signing failed: the nonce record and spend go, and the
    /// task goes back to waiting (it had an approval) or is forgotten, so a re-send retries.
    pub async fn release(&self, row: &RequestRow, e: &Entry) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM signed_nonces WHERE chain_id = $1 AND account = $2 AND nonce = $3 AND signing_hash = $4 AND raw_tx = '' AND task_id = $5",
        )
        .bind(row.chain_id as i64)
        .bind(&row.account)
        .bind(row.nonce as i64)
        .bind(&row.signing_hash)
        .bind(&row.task_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM spend WHERE task_id = $1")
            .bind(&row.task_id)
            .execute(&mut *tx)
            .await?;
        if row.approval_id.is_empty() {
            sqlx::query("DELETE FROM sign_requests WHERE task_id = $1")
                .bind(&row.task_id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE sign_requests SET outcome = 'awaiting_approval', updated_at_ms = $2 WHERE task_id = $1")
                .bind(&row.task_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        audit::append(&mut tx, now, e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The signed record of a nonce for an identical transaction, if one exists.
    pub async fn signed_identical(
        &self,
        chain_id: u64,
        account: &str,
        nonce: u64,
        signing_hash: &str,
    ) -> Result<Option<NonceRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM signed_nonces WHERE chain_id = $1 AND account = $2 AND nonce = $3 AND signing_hash = $4 AND raw_tx <> ''",
        )
        .bind(chain_id as i64)
        .bind(account)
        .bind(nonce as i64)
        .bind(signing_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(nonce_record).transpose()
    }

    /// How many transactions were signed (tests: "nothing was signed").
    pub async fn signed_count(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM signed_nonces WHERE raw_tx <> ''")
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    // ---- approvals ----------------------------------------------------------------------

    /// One approval and its votes.
    pub async fn approval(&self, id: &str) -> Result<Option<(ApprovalRow, Vec<Vote>)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM approvals WHERE approval_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let a = approval_row(&row)?;
        let votes = self.votes(id).await?;
        Ok(Some((a, votes)))
    }

    async fn votes(&self, id: &str) -> Result<Vec<Vote>, StoreError> {
        let rows = sqlx::query("SELECT approver, decision, reason, at_ms FROM approval_votes WHERE approval_id = $1 ORDER BY at_ms, approver")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Vote {
                    approver: r.try_get(0)?,
                    decision: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    at_ms: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Approvals, pending first then newest.
    pub async fn approvals(
        &self,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<(ApprovalRow, Vec<Vote>)>, StoreError> {
        let sql = if pending_only {
            "SELECT * FROM approvals WHERE state = 'pending' ORDER BY created_at_ms DESC LIMIT $1"
        } else {
            "SELECT * FROM approvals ORDER BY CASE WHEN state = 'pending' THEN 0 ELSE 1 END, created_at_ms DESC LIMIT $1"
        };
        let rows = sqlx::query(sql)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let a = approval_row(r)?;
            let v = self.votes(&a.approval_id).await?;
            out.push((a, v));
        }
        Ok(out)
    }

    /// Marks pending approvals past their expiry as expired (one audit entry each); returns
    /// how many.
    pub async fn expire_approvals(&self, now: i64) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "UPDATE approvals SET state = 'expired', decided_at_ms = $1 WHERE state = 'pending' AND expires_at_ms <= $1 RETURNING approval_id, task_id, trace_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let id: String = r.try_get(0)?;
            let task: String = r.try_get(1)?;
            let trace: String = r.try_get(2)?;
            audit::append(
                &mut tx,
                now,
                &Entry::new(
                    "signer",
                    "approval_expired",
                    &id,
                    format!("task {task}: not decided in time"),
                    trace,
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Records one approver's decision. The approval row is updated first (a row lock on
    /// PostgreSQL) so two decisions never count past each other. Returns the new state, or
    /// the reason it was refused.
    pub async fn decide(
        &self,
        d: &Decision<'_>,
    ) -> Result<Result<String, DecideRefusal>, StoreError> {
        let Decision {
            approval_id: id,
            approver,
            approve,
            reason,
            fields_hash,
            trace_id,
        } = *d;
        let now = now_ms();
        let mut tx = self.begin().await?;
        let Some(row) =
            sqlx::query("UPDATE approvals SET state = state WHERE approval_id = $1 RETURNING *")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(Err(DecideRefusal::NotFound));
        };
        let a = approval_row(&row)?;
        if a.state == "pending" && a.expires_at_ms <= now {
            sqlx::query(
                "UPDATE approvals SET state = 'expired', decided_at_ms = $2 WHERE approval_id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            audit::append(
                &mut tx,
                now,
                &Entry::new(
                    "signer",
                    "approval_expired",
                    id,
                    format!("task {}: not decided in time", a.task_id),
                    &a.trace_id,
                ),
            )
            .await?;
            tx.commit().await?;
            return Ok(Err(DecideRefusal::Expired));
        }
        if a.state != "pending" {
            return Ok(Err(DecideRefusal::NotPending(a.state)));
        }
        if a.fields_hash != fields_hash {
            return Ok(Err(DecideRefusal::FieldsChanged));
        }
        let inserted = sqlx::query(
            "INSERT INTO approval_votes (approval_id, approver, decision, reason, at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (approval_id, approver) DO NOTHING",
        )
        .bind(id)
        .bind(approver)
        .bind(if approve { "approve" } else { "reject" })
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(Err(DecideRefusal::AlreadyDecided));
        }
        let approvals: i64 = sqlx::query(
            "SELECT COUNT(*) FROM approval_votes WHERE approval_id = $1 AND decision = 'approve'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let state = if !approve {
            "rejected"
        } else if approvals >= a.required as i64 {
            "approved"
        } else {
            "pending"
        };
        sqlx::query("UPDATE approvals SET state = $2, decided_at_ms = $3 WHERE approval_id = $1")
            .bind(id)
            .bind(state)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            now,
            &Entry::new(
                format!("approver:{approver}"),
                if approve {
                    "approval_approved"
                } else {
                    "approval_rejected"
                },
                id,
                format!(
                    "task {}: {} ({approvals} of {} approvals){}",
                    a.task_id,
                    state,
                    a.required,
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    }
                ),
                trace_id,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(state.to_owned()))
    }

    /// Raises an approval's required count (the policy tightened while it waited) and puts
    /// it back to pending if it no longer has enough.
    pub async fn require_more(&self, id: &str, required: u32, e: &Entry) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE approvals SET required = $2, state = 'pending' WHERE approval_id = $1")
            .bind(id)
            .bind(required as i64)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sign_requests SET approvals_required = $2 WHERE approval_id = $1")
            .bind(id)
            .bind(required as i64)
            .execute(&mut *tx)
            .await?;
        audit::append(&mut tx, now, e).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- policy -----------------------------------------------------------------------

    /// The stored policy state, if any.
    pub async fn policy_state(&self) -> Result<Option<PolicyState>, StoreError> {
        let row = sqlx::query("SELECT * FROM policy_state WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| -> Result<PolicyState, StoreError> {
            Ok(PolicyState {
                active_toml: r.try_get("active_toml")?,
                active_hash: r.try_get("active_hash")?,
                active_since_ms: r.try_get("active_since_ms")?,
                pending_toml: r.try_get("pending_toml")?,
                pending_hash: r.try_get("pending_hash")?,
                pending_effective_ms: r.try_get("pending_effective_ms")?,
                pending_changes: r.try_get("pending_changes")?,
            })
        })
        .transpose()
    }

    /// Writes the policy state with its audit entries.
    pub async fn save_policy_state(
        &self,
        s: &PolicyState,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO policy_state (id, active_toml, active_hash, active_since_ms, pending_toml, pending_hash, pending_effective_ms, pending_changes) \
             VALUES (1, $1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET active_toml = excluded.active_toml, \
             active_hash = excluded.active_hash, active_since_ms = excluded.active_since_ms, pending_toml = excluded.pending_toml, \
             pending_hash = excluded.pending_hash, pending_effective_ms = excluded.pending_effective_ms, pending_changes = excluded.pending_changes",
        )
        .bind(&s.active_toml)
        .bind(&s.active_hash)
        .bind(s.active_since_ms)
        .bind(&s.pending_toml)
        .bind(&s.pending_hash)
        .bind(s.pending_effective_ms)
        .bind(&s.pending_changes)
        .execute(&mut *tx)
        .await?;
        for e in entries {
            audit::append(&mut tx, now, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// One approver's decision on one approval.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The approval.
    pub approval_id: &'a str,
    /// Who decides (their allowlist name).
    pub approver: &'a str,
    /// Approve or reject.
    pub approve: bool,
    /// Why (required to reject).
    pub reason: &'a str,
    /// The fields hash the approver was shown.
    pub fields_hash: &'a str,
    /// The approval's trace id, for the audit entry.
    pub trace_id: &'a str,
}

/// Why an approver's decision was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideRefusal {
    /// No such approval.
    NotFound,
    /// It expired.
    Expired,
    /// Already approved, rejected or expired.
    NotPending(String),
    /// The approver was shown other fields than the approval is bound to.
    FieldsChanged,
    /// This approver already decided it (two approvals must come from two people).
    AlreadyDecided,
}

/// A day in milliseconds: the caps' rolling window.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn nonce_record(r: &AnyRow) -> Result<NonceRecord, StoreError> {
    let fee = |col: &str| -> Result<u128, StoreError> {
        let s: String = r.try_get(col)?;
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("{col} {s:?}")))
    };
    Ok(NonceRecord {
        signing_hash: r.try_get("signing_hash")?,
        to: r.try_get("to_address")?,
        value: r.try_get("value")?,
        input_hash: r.try_get("input_hash")?,
        gas_limit: r.try_get::<i64, _>("gas_limit")? as u64,
        max_fee_per_gas: fee("max_fee_per_gas")?,
        max_priority_fee_per_gas: fee("max_priority_fee_per_gas")?,
        kind: r.try_get("kind")?,
        task_id: r.try_get("task_id")?,
        raw_tx: r.try_get("raw_tx")?,
        tx_hash: r.try_get("tx_hash")?,
    })
}
