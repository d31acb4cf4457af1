//! Strategy memory (`strategy_memory`): the engine's record of each deployment's key-value
//! entries (world `stratbox:strategy@0.2.0`'s `memory`), kept by strategy name so that hot
//! swaps, rollbacks and restarts of hosts and engine all see the same entries.
//!
//! A put applies a host's changes and checks the cap in one transaction: either every
//! change is stored or, when they would grow the memory over the cap, none is.

use sqlx::Row;

use super::{Store, StoreError, counted, now_ms};

/// Longest key, in bytes (the host refuses longer ones first; this is the engine's own check).
pub const MAX_MEMORY_KEY_BYTES: usize = 128;

/// What one deployment may hold by default, keys and values, in bytes.
pub const DEFAULT_MEMORY_CAP_BYTES: u64 = 64 << 10;

/// One change to a deployment's memory: `None` removes the key.
pub type MemoryWrite = (String, Option<Vec<u8>>);

/// Why a put stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum MemoryPutError {
    /// Empty or longer than [`MAX_MEMORY_KEY_BYTES`].
    #[error("memory key of {0} bytes: keys are 1 to {MAX_MEMORY_KEY_BYTES} bytes")]
    Key(usize),
    /// The changes would grow the memory over its cap.
    #[error(
        "memory of strategy {strategy:?} would hold {would} bytes after these changes, over its cap of {cap} bytes (it holds {used}); nothing was changed"
    )]
    Full {
        /// The deployment.
        strategy: String,
        /// Bytes held before.
        used: u64,
        /// Bytes the changes would leave.
        would: u64,
        /// The cap.
        cap: u64,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MemoryPutError {
    fn from(e: sqlx::Error) -> Self {
        MemoryPutError::Store(StoreError::Db(e))
    }
}

/// The bytes an entry counts against the cap.
fn entry_bytes(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl Store {
    /// Every entry of `strategy`'s memory, in key order.
    pub async fn strategy_memory(
        &self,
        strategy: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT mkey, value_hex FROM strategy_memory WHERE strategy = $1 ORDER BY mkey",
        )
        .bind(strategy)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let key: String = r.try_get("mkey")?;
                let hex_value: String = r.try_get("value_hex")?;
                let value = hex::decode(&hex_value)
                    .map_err(|e| StoreError::Corrupt(format!("memory {strategy}/{key}: {e}")))?;
                Ok((key, value))
            })
            .collect()
    }

    /// Bytes `strategy`'s memory holds.
    pub async fn strategy_memory_used(&self, strategy: &str) -> Result<u64, StoreError> {
        let used: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS used FROM strategy_memory WHERE strategy = $1",
        )
        .bind(strategy)
        .fetch_one(&self.pool)
        .await?
        .try_get("used")?;
        Ok(used.max(0) as u64)
    }

    /// Applies `changes` in order, in one transaction, unless they would leave the memory
    /// over `cap` bytes and larger than before (a memory already over a lowered cap may
    /// still shrink). Returns the bytes held after.
    pub async fn put_strategy_memory(
        &self,
        strategy: &str,
        changes: &[MemoryWrite],
        cap: u64,
    ) -> Result<u64, MemoryPutError> {
        if let Some((key, _)) = changes
            .iter()
            .find(|(k, _)| k.is_empty() || k.len() > MAX_MEMORY_KEY_BYTES)
        {
            return Err(MemoryPutError::Key(key.len()));
        }
        let now = now_ms();
        let sum = "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS used FROM strategy_memory WHERE strategy = $1";
        let mut tx = self.writer.begin().await?;
        counted();
        let used: i64 = sqlx::query(sum)
            .bind(strategy)
            .fetch_one(&mut *tx)
            .await?
            .try_get("used")?;
        for (key, value) in changes {
            counted();
            match value {
                Some(value) => {
                    sqlx::query(
                        "INSERT INTO strategy_memory (strategy, mkey, value_hex, bytes, updated_at_ms) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (strategy, mkey) DO UPDATE SET value_hex = excluded.value_hex, \
                         bytes = excluded.bytes, updated_at_ms = excluded.updated_at_ms",
                    )
                    .bind(strategy)
                    .bind(key.as_str())
                    .bind(hex::encode(value))
                    .bind(entry_bytes(key, value) as i64)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM strategy_memory WHERE strategy = $1 AND mkey = $2")
                        .bind(strategy)
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        counted();
        let would: i64 = sqlx::query(sum)
            .bind(strategy)
            .fetch_one(&mut *tx)
            .await?
            .try_get("used")?;
        let (used, would) = (used.max(0) as u64, would.max(0) as u64);
        if would > cap && would > used {
            tx.rollback().await?;
            return Err(MemoryPutError::Full {
                strategy: strategy.to_owned(),
                used,
                would,
                cap,
            });
        }
        tx.commit().await?;
        counted();
        Ok(would)
    }
}
