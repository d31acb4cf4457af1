//! Durable permission levels: each strategy's [`PermissionTracker`] in
//! `strategy_permissions` (as JSON), and one `audit_log` row per level change.
//!
//! - A **level change** (a breach halting a strategy, a promotion, a demotion) is stored
//!   with its audit row before the engine answers the submit that caused it: a crash right
//!   after an answer cannot forget an L0. The check on every submit is one atomic load
//!   ([`Durability::flush_levels`]); storage is touched only when a level changed.
//! - A change of a tracker's **record alone** (a trade or a day booked) is written by a
//!   background flush once a second ([`crate::Engine::start`]); a crash loses at most that
//!   second of record, never a level.
//! - A book's **marks** (peak equity, the day and its starting equity; see
//!   [`crate::books`]) go with the same writes: with a level change at once, otherwise
//!   within the second. A crash can lose at most that second of a rising peak.
//! - A **human restore** is stored and audited (actor: the operator) before it takes effect
//!   ([`restore`]): a restore that cannot be stored never lets a strategy trade.
//!
//! Writes are serialised by one lock held from taking the changes out of the book to the
//! commit, so rows reach the database in the order the book made them: a slow flush can
//! never overwrite a newer level with an older one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use stratbox_proto::v1;
use stratbox_risk::{
    Breach, LevelStats, PermissionLevel, PermissionTracker, Transition, TransitionCause,
};

use crate::gates::RiskBook;
use crate::store::{Audit, Store, StoreError};

/// The `action` of a level change's audit row.
pub const AUDIT_ACTION: &str = "permission_level";

/// The audit subject of a strategy (the registry's too, so one query finds both).
pub fn subject(strategy: &str) -> String {
    format!("strategy:{strategy}")
}

/// A strategy's permission as operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionView {
    /// The strategy.
    pub strategy: String,
    /// What it may do now.
    pub level: PermissionLevel,
    /// The hard-limit breach that halted it, while it is halted.
    pub breach: Option<Breach>,
    /// Who last restored it, and when (ms).
    pub restored_by: Option<(String, i64)>,
    /// Its record since it entered its level.
    pub stats: LevelStats,
}

impl PermissionView {
    /// A snapshot of `strategy`'s tracker.
    pub fn new(strategy: &str, t: &PermissionTracker) -> PermissionView {
        PermissionView {
            strategy: strategy.to_owned(),
            level: t.level(),
            breach: t.breach(),
            restored_by: t.restored_by().map(|(op, at)| (op.to_owned(), at)),
            stats: *t.stats(),
        }
    }

    /// The `Permission` message of the API.
    pub fn to_wire(&self) -> v1::Permission {
        let s = &self.stats;
        v1::Permission {
            strategy: self.strategy.clone(),
            level: self.level.as_str().into(),
            breach_code: self
                .breach
                .map(|b| b.code.as_str().to_owned())
                .unwrap_or_default(),
            breach_at_ms: self.breach.map(|b| b.at_ms).unwrap_or_default(),
            restored_by: self
                .restored_by
                .as_ref()
                .map(|(op, _)| op.clone())
                .unwrap_or_default(),
            restored_at_ms: self
                .restored_by
                .as_ref()
                .map(|(_, at)| *at)
                .unwrap_or_default(),
            days_at_level: s.days,
            trades_won: s.trades_won,
            trades_lost: s.trades_lost,
            trades_flat: s.trades_flat,
            losing_trade_streak: s.losing_trade_streak,
        }
    }
}

/// The audit row of one level change: actor `engine` for automatic changes, the operator
/// for a human restore; the levels as from/to state, the cause as detail.
pub fn audit_of(strategy: &str, t: &Transition, trace_id: &str) -> Audit {
    let (actor, detail) = match &t.cause {
        TransitionCause::HumanRestore { operator } => {
            (operator.clone(), t.cause.as_str().to_owned())
        }
        TransitionCause::HardLimitBreach { code } => (
            "engine".to_owned(),
            format!("{}: {}", t.cause.as_str(), code.as_str()),
        ),
        other => ("engine".to_owned(), other.as_str().to_owned()),
    };
    Audit {
        actor,
        action: AUDIT_ACTION.into(),
        subject: subject(strategy),
        from_state: t.from.as_str().into(),
        to_state: t.to.as_str().into(),
        detail,
        trace_id: trace_id.to_owned(),
    }
}

fn lock(m: &Mutex<RiskBook>) -> MutexGuard<'_, RiskBook> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn to_json(t: &PermissionTracker) -> Result<String, StoreError> {
    serde_json::to_string(t).map_err(|e| StoreError::Corrupt(format!("permission tracker: {e}")))
}

/// Loads the stored trackers. A row that does not parse halts its strategy (L0, for a human
/// to restore) rather than letting it start afresh at the initial level, which would undo
/// the very halt this table exists to keep.
pub async fn load(store: &Store) -> Result<Vec<(String, PermissionTracker)>, StoreError> {
    let rows = store.load_permissions().await?;
    Ok(rows
        .into_iter()
        .map(|(strategy, json)| {
            let t = serde_json::from_str::<PermissionTracker>(&json).unwrap_or_else(|e| {
                tracing::error!(strategy = %strategy, error = %e, "stored permission tracker does not parse; strategy halted (L0) until a human restores it");
                PermissionTracker::at_level(PermissionLevel::L0)
            });
            (strategy, t)
        })
        .collect())
}

/// The engine's side of storing trackers: the write lock and how far storage has caught up
/// with the book's level changes.
pub struct Durability {
    /// Held from draining the book to the commit (see the module docs).
    write: tokio::sync::Mutex<()>,
    /// The book's count of level changes ([`RiskBook::level_counter`]).
    made: Arc<AtomicU64>,
    /// The count as of the last successful write.
    stored: AtomicU64,
    /// Where a halt to L0 is announced once stored (see [`crate::alert`]).
    alerts: crate::alert::Alerts,
    /// Holds the halted-strategies gauge; `None` in tests that need no metrics.
    metrics: Option<Arc<crate::metrics::EngineMetrics>>,
}

impl Durability {
    /// Over `book`, whose present state is taken as stored (it was just loaded).
    pub fn new(book: &RiskBook) -> Durability {
        let made = book.level_counter();
        let stored = AtomicU64::new(made.load(Ordering::Acquire));
        Durability {
            write: tokio::sync::Mutex::new(()),
            made,
            stored,
            alerts: crate::alert::Alerts::default(),
            metrics: None,
        }
    }

    /// Announces stored halts to `alerts` and keeps `metrics`' halted-strategies gauge.
    pub fn with_outlets(
        self,
        alerts: crate::alert::Alerts,
        metrics: Arc<crate::metrics::EngineMetrics>,
    ) -> Durability {
        Durability {
            alerts,
            metrics: Some(metrics),
            ..self
        }
    }

    /// After a stored level change: the gauge re-counted from the book, a halt announced.
    fn announce<'t>(
        &self,
        book: &Mutex<RiskBook>,
        transitions: impl IntoIterator<Item = (&'t String, &'t Transition)>,
    ) {
        if let Some(m) = &self.metrics {
            let n = lock(book).halted_strategies();
            m.halted_strategies
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (s, t) in transitions {
            if t.to == PermissionLevel::L0 {
                let cause = audit_of(s, t, "").detail;
                self.alerts.raise(crate::alert::Alert::strategy_halted(
                    s,
                    t.from.as_str(),
                    &cause,
                ));
            }
        }
    }

    /// Whether a level change has been made that is not stored yet.
    pub fn levels_pending(&self) -> bool {
        self.made.load(Ordering::Acquire) > self.stored.load(Ordering::Acquire)
    }

    /// Stores every change if a level change is pending, else does nothing (one atomic
    /// load: the hot path of a submit). Returns once every level change made before the
    /// call is stored, by this call or by a concurrent one.
    pub async fn flush_levels(
        &self,
        store: &Store,
        book: &Mutex<RiskBook>,
        trace_id: &str,
    ) -> Result<(), StoreError> {
        let target = self.made.load(Ordering::Acquire);
        if self.stored.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let _w = self.write.lock().await;
        // A concurrent flush may have stored them while this one waited.
        if self.stored.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        self.write_changes(store, book, trace_id).await
    }

    /// Stores every change since the last write, level or record (the background flush).
    pub async fn flush_all(
        &self,
        store: &Store,
        book: &Mutex<RiskBook>,
        trace_id: &str,
    ) -> Result<(), StoreError> {
        if !lock(book).has_changes() {
            return Ok(());
        }
        let _w = self.write.lock().await;
        self.write_changes(store, book, trace_id).await
    }

    /// Drains the book and writes what it had; on failure hands it all back. Call with
    /// `write` held.
    async fn write_changes(
        &self,
        store: &Store,
        book: &Mutex<RiskBook>,
        trace_id: &str,
    ) -> Result<(), StoreError> {
        let (changes, made) = {
            let mut b = lock(book);
            (b.drain_changes(), b.level_changes())
        };
        let result = async {
            let rows = changes
                .trackers
                .iter()
                .map(|(s, t)| Ok((s.clone(), to_json(t)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let audits: Vec<Audit> = changes
                .transitions
                .iter()
                .map(|(s, t)| audit_of(s, t, trace_id))
                .collect();
            store.save_permissions(&rows, &changes.marks, &audits).await
        }
        .await;
        match result {
            Ok(()) => {
                self.stored.fetch_max(made, Ordering::AcqRel);
                for (s, t) in &changes.transitions {
                    tracing::info!(strategy = %s, from = %t.from, to = %t.to, cause = t.cause.as_str(), "permission level stored");
                }
                self.announce(book, changes.transitions.iter().map(|(s, t)| (s, t)));
                Ok(())
            }
            Err(e) => {
                lock(book).requeue(changes);
                Err(e)
            }
        }
    }

    /// A human restore of a halted strategy: refused (nothing changed) unless the tracker
    /// allows it; stored with its audit row (actor: `operator`) before it takes effect.
    pub async fn restore(
        &self,
        store: &Store,
        book: &Mutex<RiskBook>,
        trace_id: &str,
        strategy: &str,
        level: PermissionLevel,
        operator: &str,
    ) -> Result<PermissionView, RestoreError> {
        let _w = self.write.lock().await;
        let now = crate::store::now_ms();
        let (tracker, change) = lock(book).plan_restore(strategy, level, operator, now)?;
        let audit = audit_of(strategy, &change, trace_id);
        store
            .save_permissions(&[(strategy.to_owned(), to_json(&tracker)?)], &[], &[audit])
            .await?;
        let view = PermissionView::new(strategy, &tracker);
        lock(book).install(strategy, tracker);
        self.announce(book, std::iter::empty());
        tracing::warn!(strategy, from = %change.from, to = %change.to, operator, "strategy restored by an operator");
        Ok(view)
    }
}

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The tracker refuses (e.g. the strategy is not halted).
    #[error(transparent)]
    Refused(#[from] stratbox_risk::PermissionError),
    /// The restore could not be persisted, so it was not made.
    #[error(transparent)]
    Store(#[from] StoreError),
}
