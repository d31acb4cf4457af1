//! What the live path stores of the route a trade's transactions take (`live_routes`; the
//! policy is [`crate::route`]).
//!
//! The route is written before the first transaction is sent (write-ahead), so a restarted
//! engine sends the same task's transactions — its own, its fee bumps, its cancel — by the
//! route already chosen, and never leaks a private trade to the public mempool because the
//! decision was made again on a different state. The public fallback is one more stored
//! change, with its reason, audited on the task in the same transaction.

use sqlx::Row;

use super::{Audit, Store, StoreError, counted, insert_audits, now_ms};

/// Where a task's transactions are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `eth_sendRawTransaction` to the node: the public mempool.
    Public,
    /// `eth_sendBundle` to a private relay.
    Private,
}

impl RouteKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Public => "public",
            RouteKind::Private => "private",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "public" => Ok(RouteKind::Public),
            "private" => Ok(RouteKind::Private),
            other => Err(StoreError::Corrupt(format!("route {other:?}"))),
        }
    }
}

/// A task's stored route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoute {
    /// The task.
    pub task_id: String,
    /// Where its transactions go now.
    pub route: RouteKind,
    /// Why it was chosen.
    pub why: String,
    /// The node's head when the relay first accepted one of its bundles.
    pub first_block: Option<u64>,
    /// Why the public fallback fired (`''` unless it did).
    pub fallback: String,
}

impl Store {
    /// The task's route, if one was stored.
    pub async fn route(&self, task_id: &str) -> Result<Option<StoredRoute>, StoreError> {
        let row = sqlx::query(
            "SELECT task_id, route, why, first_block, fallback FROM live_routes WHERE task_id = $1",
        )
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let route: String = r.try_get("route")?;
        let first: Option<i64> = r.try_get("first_block")?;
        Ok(Some(StoredRoute {
            task_id: r.try_get("task_id")?,
            route: RouteKind::parse(&route)?,
            why: r.try_get("why")?,
            first_block: first.map(|b| b.max(0) as u64),
            fallback: r.try_get("fallback")?,
        }))
    }

    /// Stores `route` for the task unless one is stored already (by this engine before a
    /// crash, or another that held the lease), with an audit row; returns the stored one,
    /// which is the one to follow.
    pub async fn choose_route(
        &self,
        task_id: &str,
        route: RouteKind,
        why: &str,
        actor: &str,
    ) -> Result<StoredRoute, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        counted();
        let inserted = sqlx::query(
            "INSERT INTO live_routes (task_id, route, why, decided_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(task_id)
        .bind(route.as_str())
        .bind(why)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            insert_audits(
                self.backend,
                &mut tx,
                &[Audit {
                    actor: actor.into(),
                    action: format!("route_{}", route.as_str()),
                    subject: task_id.into(),
                    from_state: String::new(),
                    to_state: String::new(),
                    detail: why.into(),
                    trace_id: String::new(),
                }],
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.route(task_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("task {task_id}: route not stored")))
    }

    /// Records the block the relay first accepted a bundle of the task at (kept if set).
    pub async fn route_first_block(&self, task_id: &str, block: u64) -> Result<(), StoreError> {
        let block = i64::try_from(block)
            .map_err(|_| StoreError::Corrupt(format!("block {block} does not fit a BIGINT")))?;
        counted();
        sqlx::query(
            "UPDATE live_routes SET first_block = $1 WHERE task_id = $2 AND first_block IS NULL",
        )
        .bind(block)
        .bind(task_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Moves a private route to the public fallback with its reason, audited
    /// (`route_fallback`) in the same transaction; `false` if it was not private.
    pub async fn route_fallback(
        &self,
        task_id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let reason: String = reason.chars().take(1024).collect();
        let mut tx = self.writer.begin().await?;
        counted();
        let moved = sqlx::query(
            "UPDATE live_routes SET route = $1, fallback = $2 WHERE task_id = $3 AND route = $4",
        )
        .bind(RouteKind::Public.as_str())
        .bind(&reason)
        .bind(task_id)
        .bind(RouteKind::Private.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        insert_audits(
            self.backend,
            &mut tx,
            &[Audit {
                actor: actor.into(),
                action: "route_fallback".into(),
                subject: task_id.into(),
                from_state: String::new(),
                to_state: String::new(),
                detail: reason,
                trace_id: String::new(),
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
