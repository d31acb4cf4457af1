//! Risk limits changed while the engine runs, under a timelock.
//!
//! The limits in effect live in the database (`risk_limits`, migration 0011), not in the
//! file the engine was started with: otherwise anyone holding that file could loosen them
//! by a restart. A change (an operator's `ProposeRiskLimits`, or the file given at start
//! when it differs from what is stored) is compared with the limits in effect field by
//! field ([`crate::risk_change`]): the fields it tightens apply at once, the fields it
//! loosens are stored as one PENDING change that applies when its timelock
//! (`--risk-timelock`, [`super::EngineSettings::risk_timelock`]) runs out. A mixed change
//! is split that way rather than refused, so tightening is never delayed by a loosening
//! proposed with it. Every step is audited (subject `risk_limits`) with the operator, the
//! old and new values and when it takes effect; a pending change can be cancelled.
//!
//! Pending changes apply without a restart: a timer asks the database once a second for
//! the risk state's version and the earliest due change (one indexed read, nothing on the
//! proposal path), applies what is due, and installs limits another engine on the same
//! database changed. They survive a restart: a change that came due while the engine was
//! down applies as it starts.
//!
//! A pending change applies its own fields onto the limits in effect when it is due; a
//! tightening made in the meantime to one of those fields is therefore loosened again when
//! it applies, unless the pending change is cancelled (`stratbox risk cancel`).

use std::sync::Weak;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use stratbox_proto::v1;
use stratbox_risk::RiskConfig;
use tracing::{info, warn};

use super::decision::clip;
use super::{Engine, EngineError, Inner, lock};
use crate::risk_change::{self, FieldChange, describe, utc};
use crate::store::{
    APPLIED, Audit, CANCELLED, FAILED, NewRiskChange, PENDING, RiskChangeRow, RiskDecision, Store,
    now_ms,
};

/// The audit log's subject for every risk-limit row.
pub const AUDIT_SUBJECT: &str = "risk_limits";
/// A change an operator proposed over gRPC.
pub const SOURCE_API: &str = "api";
/// A change the risk file given at start made.
pub const SOURCE_FILE: &str = "risk-file";
/// Who the engine's own changes are recorded as.
const ENGINE: &str = "engine";
/// How often the timer looks for due changes and other engines' changes.
const TICK: Duration = Duration::from_secs(1);
/// Writes lost to another writer before a call gives up (the caller may retry).
const ATTEMPTS: usize = 8;
/// Pending changes read at most (far more than anyone queues).
const MAX_PENDING: i64 = 1_000;

/// The engine's side of the timelock: its length, and which version of the stored risk
/// state the gates judge by.
pub(super) struct Timelock {
    delay: Duration,
    /// The version of the limits installed in the risk book; only ever moves up.
    version: AtomicI64,
    /// Serialises this engine's own writes (other engines are kept out by the version's
    /// compare-and-set). Async: it is held across the database write.
    writing: tokio::sync::Mutex<()>,
}

impl Timelock {
    pub(super) fn new(delay: Duration, version: i64) -> Timelock {
        Timelock {
            delay,
            version: AtomicI64::new(version),
            writing: tokio::sync::Mutex::new(()),
        }
    }
}

/// One change, as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskChange {
    /// Its number.
    pub id: i64,
    /// PENDING, APPLIED, CANCELLED or FAILED.
    pub state: String,
    /// The fields it moves, as they were when it was proposed.
    pub fields: Vec<FieldChange>,
    /// Who proposed it.
    pub operator: String,
    /// Why.
    pub reason: String,
    /// [`SOURCE_API`] or [`SOURCE_FILE`].
    pub source: String,
    /// When it was proposed (ms since the epoch).
    pub proposed_at_ms: i64,
    /// When it takes or took effect.
    pub effective_at_ms: i64,
    /// Who ended it.
    pub decided_by: String,
    /// When it ended; 0 while pending.
    pub decided_at_ms: i64,
    /// Why it was cancelled or failed.
    pub detail: String,
}

impl RiskChange {
    fn from_row(r: RiskChangeRow) -> Result<RiskChange, EngineError> {
        Ok(RiskChange {
            fields: fields_of(&r)?,
            id: r.id,
            state: r.state,
            operator: r.operator,
            reason: r.reason,
            source: r.source,
            proposed_at_ms: r.proposed_at_ms,
            effective_at_ms: r.effective_at_ms,
            decided_by: r.decided_by,
            decided_at_ms: r.decided_at_ms.unwrap_or(0),
            detail: r.detail,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> v1::RiskChange {
        v1::RiskChange {
            id: u64::try_from(self.id).unwrap_or(0),
            state: self.state.clone(),
            fields: self
                .fields
                .iter()
                .map(|f| v1::RiskFieldChange {
                    field: f.field(),
                    old_value: f.old.to_string(),
                    new_value: f.new.to_string(),
                    loosens: f.loosens,
                })
                .collect(),
            operator: self.operator.clone(),
            reason: self.reason.clone(),
            source: self.source.clone(),
            proposed_at_ms: self.proposed_at_ms,
            effective_at_ms: self.effective_at_ms,
            decided_by: self.decided_by.clone(),
            decided_at_ms: self.decided_at_ms,
            detail: self.detail.clone(),
        }
    }
}

/// The limits in effect and what is waiting.
#[derive(Debug, Clone)]
pub struct RiskLimitsView {
    /// The limits in effect, as stored.
    pub effective: RiskConfig,
    /// The stored risk state's version.
    pub version: i64,
    /// Pending changes, oldest first.
    pub pending: Vec<RiskChange>,
    /// The engine's timelock.
    pub timelock: Duration,
}

impl RiskLimitsView {
    /// The wire form.
    pub fn to_wire(&self) -> Result<v1::RiskLimits, EngineError> {
        Ok(v1::RiskLimits {
            limits_json: to_json(&self.effective)?,
            pending: self.pending.iter().map(RiskChange::to_wire).collect(),
            timelock_ms: u64::try_from(self.timelock.as_millis()).unwrap_or(u64::MAX),
            version: u64::try_from(self.version).unwrap_or(0),
        })
    }
}

/// What a proposal did.
#[derive(Debug, Clone)]
pub struct Proposed {
    /// The tightening part, in effect now.
    pub applied: Option<RiskChange>,
    /// The loosening part, waiting for the timelock.
    pub pending: Option<RiskChange>,
    /// The limits after it.
    pub limits: RiskLimitsView,
}

/// What a cancel found.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// Cancelled now; the change as it is stored after.
    Done(RiskChange),
    /// No change has this number.
    NotFound,
    /// The change is no longer pending (applied, cancelled or failed already).
    NotPending(RiskChange),
}

fn to_json(cfg: &RiskConfig) -> Result<String, EngineError> {
    serde_json::to_string(cfg).map_err(corrupt)
}

fn corrupt(what: impl std::fmt::Display) -> EngineError {
    EngineError::Store(crate::store::StoreError::Corrupt(format!(
        "risk limits: {what}"
    )))
}

fn parse_config(json: &str) -> Result<RiskConfig, EngineError> {
    serde_json::from_str(json).map_err(corrupt)
}

fn fields_of(r: &RiskChangeRow) -> Result<Vec<FieldChange>, EngineError> {
    serde_json::from_str(&r.fields).map_err(corrupt)
}

fn fields_json(f: &[FieldChange]) -> Result<String, EngineError> {
    serde_json::to_string(f).map_err(corrupt)
}

/// The audit row of a step of change `id`.
fn audit(actor: &str, action: &str, from: &str, to: &str, detail: String, trace_id: &str) -> Audit {
    Audit {
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: AUDIT_SUBJECT.to_owned(),
        from_state: from.to_owned(),
        to_state: to.to_owned(),
        detail: clip(&detail, 4_000),
        trace_id: trace_id.to_owned(),
    }
}

/// `change 3 (api) by ops: a -> b; effective at T (ms); reason: R`.
fn what(
    id: i64,
    source: &str,
    operator: &str,
    fields: &[FieldChange],
    at_ms: i64,
    reason: &str,
) -> String {
    format!(
        "change {id} ({source}) by {operator}: {}; effective at {} ({at_ms} ms); reason: {reason}",
        describe(fields),
        utc(at_ms)
    )
}

/// The tightening and loosening parts of `changes`.
fn split(changes: Vec<FieldChange>) -> (Vec<FieldChange>, Vec<FieldChange>) {
    changes.into_iter().partition(|c| !c.loosens)
}

fn delay_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Applies every pending change that is due onto the stored limits, in the order they
/// come due: one write, audited per change. A change that no longer makes a valid
/// configuration (the limits moved under it) is FAILED, with why. The new limits and
/// version if anything was due; `None` if nothing was, or another engine applied it first.
async fn apply_due(store: &Store) -> Result<Option<(RiskConfig, i64)>, EngineError> {
    for _ in 0..ATTEMPTS {
        let Some(stored) = store.risk_limits().await? else {
            return Ok(None);
        };
        let now = now_ms();
        let mut due: Vec<RiskChangeRow> = store
            .risk_changes(Some(PENDING), MAX_PENDING)
            .await?
            .into_iter()
            .filter(|c| c.effective_at_ms <= now)
            .collect();
        if due.is_empty() {
            return Ok(None);
        }
        due.sort_by_key(|c| (c.effective_at_ms, c.id));
        let mut cfg = parse_config(&stored.config)?;
        let mut decided = Vec::with_capacity(due.len());
        let mut audits = Vec::with_capacity(due.len());
        for row in &due {
            let next = fields_of(row).and_then(|f| {
                let next = risk_change::apply(&cfg, &f)
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                next.validate()
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                Ok(next)
            });
            match next {
                Ok(next) => {
                    // Old values as they are now, which a tightening since may have moved.
                    let moved = risk_change::diff(&cfg, &next).map_err(corrupt)?;
                    let detail = format!(
                        "{}; proposed at {}",
                        what(
                            row.id,
                            &row.source,
                            &row.operator,
                            &moved,
                            row.effective_at_ms,
                            &row.reason
                        ),
                        utc(row.proposed_at_ms)
                    );
                    info!(
                        change = row.id,
                        "risk limits loosened: timelock passed: {detail}"
                    );
                    audits.push(audit(
                        ENGINE,
                        "risk_limits_applied",
                        PENDING,
                        APPLIED,
                        detail,
                        &row.trace_id,
                    ));
                    decided.push(RiskDecision {
                        id: row.id,
                        state: APPLIED,
                        by: ENGINE.into(),
                        detail: String::new(),
                    });
                    cfg = next;
                }
                Err(e) => {
                    let why = format!("no longer a valid configuration when due: {e}");
                    warn!(change = row.id, "risk change failed: {why}");
                    audits.push(audit(
                        ENGINE,
                        "risk_limits_failed",
                        PENDING,
                        FAILED,
                        format!("change {}: {why}", row.id),
                        &row.trace_id,
                    ));
                    decided.push(RiskDecision {
                        id: row.id,
                        state: FAILED,
                        by: ENGINE.into(),
                        detail: clip(&why, 1_000),
                    });
                }
            }
        }
        let json = to_json(&cfg)?;
        if let Some((version, _)) = store
            .commit_risk(stored.version, Some(&json), ENGINE, &[], &decided, |_| {
                audits
            })
            .await?
        {
            return Ok(Some((cfg, version)));
        }
    }
    Ok(None)
}

/// The limits an engine starts with: the stored ones (the file's, the first time), any
/// change that came due while no engine ran, then the file given at start compared with
/// them, tightening at once and loosening queued under `delay` (once: the same loosening
/// already pending is not queued again). Returns the limits and their version.
pub(super) async fn at_start(
    store: &Store,
    file: &RiskConfig,
    delay: Duration,
) -> Result<(RiskConfig, i64), EngineError> {
    let stored = match store.risk_limits().await? {
        Some(s) => s,
        None => {
            let a = audit(
                ENGINE,
                "risk_limits_initial",
                "",
                APPLIED,
                "the risk configuration given at start (no limits were stored)".into(),
                "",
            );
            if store.init_risk_limits(&to_json(file)?, ENGINE, &a).await? {
                info!(
                    "risk limits stored for the first time, from the configuration given at start"
                );
                return Ok((file.clone(), 1));
            }
            // Another engine on the database stored them first: judge the file against
            // those.
            store
                .risk_limits()
                .await?
                .ok_or_else(|| corrupt("the limits vanished while starting"))?
        }
    };
    let (mut effective, mut version) = (parse_config(&stored.config)?, stored.version);
    if let Some((cfg, v)) = apply_due(store).await? {
        (effective, version) = (cfg, v);
    }
    for _ in 0..ATTEMPTS {
        let changes = risk_change::diff(&effective, file).map_err(corrupt)?;
        if changes.is_empty() {
            return Ok((effective, version));
        }
        let (tight, loose) = split(changes);
        let now_cfg = risk_change::apply(&effective, &tight).map_err(corrupt)?;
        now_cfg.validate().map_err(|e| {
            EngineError::Invalid(format!(
                "the risk configuration given at start tightens {} over the stored limits, \
                 but with the stored limits' other values that is not a valid configuration \
                 ({e}); change them in two steps with `stratbox risk set`",
                describe(&tight)
            ))
        })?;
        let already = store
            .risk_changes(Some(PENDING), MAX_PENDING)
            .await?
            .iter()
            .filter_map(|r| fields_of(r).ok())
            .any(|f| same_target(&f, &loose));
        let queue = !loose.is_empty() && !already;
        if !loose.is_empty() && already {
            warn!(
                "the risk configuration given at start loosens {}: already pending under the timelock",
                describe(&loose)
            );
        }
        if tight.is_empty() && !queue {
            return Ok((effective, version));
        }
        let now = now_ms();
        let due = now.saturating_add(delay_ms(delay));
        let reason = "the risk configuration given at start";
        let mut rows = Vec::new();
        if !tight.is_empty() {
            rows.push(NewRiskChange {
                state: APPLIED,
                fields: fields_json(&tight)?,
                operator: ENGINE.into(),
                reason: reason.into(),
                source: SOURCE_FILE,
                effective_at_ms: now,
                trace_id: String::new(),
            });
        }
        if queue {
            rows.push(NewRiskChange {
                state: PENDING,
                fields: fields_json(&loose)?,
                operator: ENGINE.into(),
                reason: reason.into(),
                source: SOURCE_FILE,
                effective_at_ms: due,
                trace_id: String::new(),
            });
        }
        let config = (!tight.is_empty()).then(|| to_json(&now_cfg)).transpose()?;
        let done = store
            .commit_risk(version, config.as_deref(), ENGINE, &rows, &[], |ids| {
                let mut ids = ids.iter().copied();
                let mut out = Vec::new();
                if !tight.is_empty() {
                    let id = ids.next().unwrap_or(0);
                    out.push(audit(
                        ENGINE,
                        "risk_limits_tightened",
                        "",
                        APPLIED,
                        what(id, SOURCE_FILE, ENGINE, &tight, now, reason),
                        "",
                    ));
                }
                if queue {
                    let id = ids.next().unwrap_or(0);
                    out.push(audit(
                        ENGINE,
                        "risk_limits_queued",
                        "",
                        PENDING,
                        what(id, SOURCE_FILE, ENGINE, &loose, due, reason),
                        "",
                    ));
                }
                out
            })
            .await?;
        if let Some((v, _)) = done {
            if !tight.is_empty() {
                info!(
                    "the risk configuration given at start tightens {}: applied",
                    describe(&tight)
                );
            }
            if queue {
                warn!(
                    effective_at = %utc(due),
                    "the risk configuration given at start loosens {}: queued under the timelock, not applied",
                    describe(&loose)
                );
            }
            return Ok((now_cfg, v));
        }
        // Another engine changed the limits meanwhile: judge the file against those.
        let s = store
            .risk_limits()
            .await?
            .ok_or_else(|| corrupt("the limits vanished while starting"))?;
        (effective, version) = (parse_config(&s.config)?, s.version);
    }
    Err(EngineError::Invalid(
        "the risk limits kept changing under the engine as it started; start it again".into(),
    ))
}

/// Whether a pending change sets exactly the fields of `loose` to the same values.
fn same_target(a: &[FieldChange], b: &[FieldChange]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.path == y.path && x.new == y.new)
}

impl Engine {
    /// The engine's timelock for loosening changes.
    pub fn risk_timelock(&self) -> Duration {
        self.inner.limits.delay
    }

    /// Puts stored limits of `version` in place, unless newer ones already are.
    fn install_limits(&self, cfg: RiskConfig, version: i64) {
        let mut book = lock(&self.inner.risk);
        if version > self.inner.limits.version.load(Ordering::Acquire) {
            book.set_config(cfg);
            self.inner.limits.version.store(version, Ordering::Release);
        }
    }

    /// The limits in effect and the pending changes, as stored.
    pub async fn risk_limits(&self) -> Result<RiskLimitsView, EngineError> {
        let store = &self.inner.store;
        let stored = store
            .risk_limits()
            .await?
            .ok_or_else(|| corrupt("none stored"))?;
        let pending = store
            .risk_changes(Some(PENDING), MAX_PENDING)
            .await?
            .into_iter()
            .map(RiskChange::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RiskLimitsView {
            effective: parse_config(&stored.config)?,
            version: stored.version,
            pending,
            timelock: self.inner.limits.delay,
        })
    }

    /// One stored change by number.
    pub async fn risk_change(&self, id: i64) -> Result<Option<RiskChange>, EngineError> {
        self.inner
            .store
            .risk_change(id)
            .await?
            .map(RiskChange::from_row)
            .transpose()
    }

    /// `operator` (authenticated) proposes `proposed` as the limits: what it tightens is
    /// stored, audited and in effect before this returns; what it loosens is stored as a
    /// pending change, audited, and applies when the timelock has passed. Refused
    /// ([`EngineError::Invalid`]) if the limits do not validate, change nothing, or if the
    /// tightening part alone with the other limits in effect is not a valid configuration
    /// (e.g. a strategy override under an account limit that is only loosened later):
    /// propose it in two steps then.
    pub async fn propose_risk_limits(
        &self,
        trace_id: &str,
        operator: &str,
        proposed: RiskConfig,
        reason: &str,
    ) -> Result<Proposed, EngineError> {
        proposed
            .validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let reason = clip(reason.trim(), 512);
        let operator = clip(operator, 128);
        let store = &self.inner.store;
        let _writing = self.inner.limits.writing.lock().await;
        for _ in 0..ATTEMPTS {
            let stored = store
                .risk_limits()
                .await?
                .ok_or_else(|| corrupt("none stored"))?;
            let effective = parse_config(&stored.config)?;
            let changes = risk_change::diff(&effective, &proposed).map_err(corrupt)?;
            if changes.is_empty() {
                return Err(EngineError::Invalid(
                    "the proposed risk limits are the limits in effect: nothing to change".into(),
                ));
            }
            let (tight, loose) = split(changes);
            let now_cfg = risk_change::apply(&effective, &tight).map_err(corrupt)?;
            now_cfg.validate().map_err(|e| {
                EngineError::Invalid(format!(
                    "the tightening part of this change ({}) is not a valid configuration with \
                     the other limits in effect ({e}); propose it in two steps",
                    describe(&tight)
                ))
            })?;
            let now = now_ms();
            let due = now.saturating_add(delay_ms(self.inner.limits.delay));
            let mut rows = Vec::new();
            for (fields, state, at) in [(&tight, APPLIED, now), (&loose, PENDING, due)] {
                if !fields.is_empty() {
                    rows.push(NewRiskChange {
                        state,
                        fields: fields_json(fields)?,
                        operator: operator.clone(),
                        reason: reason.clone(),
                        source: SOURCE_API,
                        effective_at_ms: at,
                        trace_id: trace_id.to_owned(),
                    });
                }
            }
            let config = (!tight.is_empty()).then(|| to_json(&now_cfg)).transpose()?;
            let done = store
                .commit_risk(
                    stored.version,
                    config.as_deref(),
                    &operator,
                    &rows,
                    &[],
                    |ids| {
                        rows.iter()
                            .zip(ids)
                            .zip([&tight, &loose].into_iter().filter(|f| !f.is_empty()))
                            .map(|((r, id), fields)| {
                                let (action, to) = if r.state == APPLIED {
                                    ("risk_limits_tightened", APPLIED)
                                } else {
                                    ("risk_limits_queued", PENDING)
                                };
                                audit(
                                    &operator,
                                    action,
                                    "",
                                    to,
                                    what(
                                        *id,
                                        SOURCE_API,
                                        &operator,
                                        fields,
                                        r.effective_at_ms,
                                        &reason,
                                    ),
                                    trace_id,
                                )
                            })
                            .collect()
                    },
                )
                .await?;
            let Some((version, ids)) = done else {
                continue;
            };
            if !tight.is_empty() {
                self.install_limits(now_cfg, version);
                warn!(trace_id, operator = %operator, "risk limits tightened: {}", describe(&tight));
            } else {
                // Nothing to install, but the version moved: nothing newer is missed.
                self.install_limits(effective, version);
            }
            if !loose.is_empty() {
                warn!(trace_id, operator = %operator, effective_at = %utc(due), "risk limits loosening queued under the timelock: {}", describe(&loose));
            }
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(self.risk_change(id).await?);
            }
            let mut out = out.into_iter().flatten();
            let applied = if tight.is_empty() { None } else { out.next() };
            let pending = if loose.is_empty() { None } else { out.next() };
            return Ok(Proposed {
                applied,
                pending,
                limits: self.risk_limits().await?,
            });
        }
        Err(EngineError::Busy(
            "risk limits: other writers kept changing them; try again".into(),
        ))
    }

    /// `operator` withdraws pending change `id` (audited with `reason`).
    pub async fn cancel_risk_change(
        &self,
        trace_id: &str,
        operator: &str,
        id: i64,
        reason: &str,
    ) -> Result<Cancelled, EngineError> {
        let reason = clip(reason.trim(), 512);
        let operator = clip(operator, 128);
        let store = &self.inner.store;
        let _writing = self.inner.limits.writing.lock().await;
        for _ in 0..ATTEMPTS {
            let Some(row) = store.risk_change(id).await? else {
                return Ok(Cancelled::NotFound);
            };
            if row.state != PENDING {
                return Ok(Cancelled::NotPending(RiskChange::from_row(row)?));
            }
            let stored = store
                .risk_limits()
                .await?
                .ok_or_else(|| corrupt("none stored"))?;
            let fields = fields_of(&row)?;
            let detail = format!(
                "change {id} by {} ({}), due at {} ({} ms), cancelled by {operator}; reason: {reason}",
                row.operator,
                describe(&fields),
                utc(row.effective_at_ms),
                row.effective_at_ms
            );
            let decided = [RiskDecision {
                id,
                state: CANCELLED,
                by: operator.clone(),
                detail: reason.clone(),
            }];
            let done = store
                .commit_risk(stored.version, None, &operator, &[], &decided, |_| {
                    vec![audit(
                        &operator,
                        "risk_limits_cancelled",
                        PENDING,
                        CANCELLED,
                        detail.clone(),
                        trace_id,
                    )]
                })
                .await?;
            if let Some((version, _)) = done {
                self.install_limits(parse_config(&stored.config)?, version);
                warn!(trace_id, operator = %operator, change = id, "pending risk change cancelled: {detail}");
                return match self.risk_change(id).await? {
                    Some(c) => Ok(Cancelled::Done(c)),
                    None => Ok(Cancelled::NotFound),
                };
            }
        }
        Err(EngineError::Busy(
            "risk limits: other writers kept changing them; try again".into(),
        ))
    }

    /// Applies due changes and installs limits another engine changed; what the timer runs
    /// every tick. Reads one row when nothing happened.
    pub async fn sync_risk_limits(&self) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let Some((version, due)) = store.risk_clock().await? else {
            return Ok(());
        };
        if due.is_some_and(|d| d <= now_ms()) {
            let _writing = self.inner.limits.writing.lock().await;
            if let Some((cfg, v)) = apply_due(store).await? {
                self.install_limits(cfg, v);
                return Ok(());
            }
        }
        if version > self.inner.limits.version.load(Ordering::Acquire)
            && let Some(s) = store.risk_limits().await?
        {
            self.install_limits(parse_config(&s.config)?, s.version);
        }
        Ok(())
    }
}

/// Runs [`Engine::sync_risk_limits`] every [`TICK`] while the engine lives.
pub(super) fn spawn_timer(engine: Weak<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        warn!("no tokio runtime: pending risk-limit changes apply only at the next start");
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = engine.upgrade() else { break };
            if inner.store.pool().is_closed() {
                break;
            }
            let engine = Engine { inner };
            if let Err(e) = engine.sync_risk_limits().await {
                warn!(error = %e, "risk limits: checking for due changes failed; retrying");
            }
        }
    });
}
