//! The registry's SQL, over sqlx's `Any` driver on the engine's own database (tables from
//! engine/migrations/*/0002_registry.sql plus `strategies` and `audit_log` from 0001).
//!
//! Functions take a connection so that one caller can run several of them in a single
//! transaction (`&mut *tx`) or on a pooled connection for reads.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use stratbox_proto::v1;

use crate::error::RegistryError;

/// One `audit_log` row.
pub struct AuditRow<'a> {
    /// Operator or host name, or `system`.
    pub actor: &'a str,
    /// What was done, e.g. `upload`, `deploy`, `rollback`.
    pub action: &'a str,
    /// What it was done to, e.g. `name@version`.
    pub subject: &'a str,
    /// State before; empty when not a state change.
    pub from_state: &'a str,
    /// State after; empty when not a state change.
    pub to_state: &'a str,
    /// Free text, e.g. a refusal's reason; never a secret.
    pub detail: &'a str,
    /// The request's trace id, to join logs and audit.
    pub trace_id: &'a str,
}

/// Appends `row` at `now` (ms); call inside the transaction of the change it records.
pub async fn audit(
    conn: &mut AnyConnection,
    row: &AuditRow<'_>,
    now: i64,
) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO audit_log (at_ms, actor, action, subject, from_state, to_state, detail, trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(now)
    .bind(row.actor)
    .bind(row.action)
    .bind(row.subject)
    .bind(row.from_state)
    .bind(row.to_state)
    .bind(row.detail)
    .bind(row.trace_id)
    .execute(conn)
    .await?;
    Ok(())
}

fn u64_col(row: &AnyRow, col: &str) -> Result<u64, RegistryError> {
    let v: i64 = row.try_get(col)?;
    u64::try_from(v).map_err(|_| RegistryError::Corrupt(format!("{col} = {v}")))
}

fn u32_col(row: &AnyRow, col: &str) -> Result<u32, RegistryError> {
    let v: i64 = row.try_get(col)?;
    u32::try_from(v).map_err(|_| RegistryError::Corrupt(format!("{col} = {v}")))
}

/// Saturating: a report's pause cannot be bigger than i64 nanoseconds (292 years) anyway.
fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const VERSION_SELECT: &str = "SELECT s.name, s.version, s.sha256, s.world, s.uploader, s.created_at, \
     c.size_bytes, c.stateful FROM strategies s JOIN strategy_components c ON c.sha256 = s.sha256";

fn version_row(row: &AnyRow) -> Result<v1::StrategyVersion, RegistryError> {
    Ok(v1::StrategyVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        sha256: row.try_get("sha256")?,
        world: row.try_get("world")?,
        uploader: row.try_get("uploader")?,
        created_at_ms: row.try_get("created_at")?,
        size_bytes: u64_col(row, "size_bytes")?,
        stateful: row.try_get::<i64, _>("stateful")? != 0,
    })
}

/// Every stored version, or one strategy's, ordered by name then version number.
pub async fn versions(
    conn: &mut AnyConnection,
    name: Option<&str>,
) -> Result<Vec<v1::StrategyVersion>, RegistryError> {
    let order = " ORDER BY s.name, CAST(s.version AS BIGINT)";
    let rows = match name {
        Some(n) => {
            sqlx::query(&format!("{VERSION_SELECT} WHERE s.name = $1{order}"))
                .bind(n)
                .fetch_all(conn)
                .await?
        }
        None => {
            sqlx::query(&format!("{VERSION_SELECT}{order}"))
                .fetch_all(conn)
                .await?
        }
    };
    rows.iter().map(version_row).collect()
}

/// One version by number, or the newest when `version` is `None`.
pub async fn version(
    conn: &mut AnyConnection,
    name: &str,
    version: Option<u64>,
) -> Result<Option<v1::StrategyVersion>, RegistryError> {
    let row =
        match version {
            Some(v) => {
                sqlx::query(&format!(
                    "{VERSION_SELECT} WHERE s.name = $1 AND s.version = $2"
                ))
                .bind(name)
                .bind(v.to_string())
                .fetch_optional(conn)
                .await?
            }
            None => sqlx::query(&format!(
                "{VERSION_SELECT} WHERE s.name = $1 ORDER BY CAST(s.version AS BIGINT) DESC LIMIT 1"
            ))
            .bind(name)
            .fetch_optional(conn)
            .await?,
        };
    row.as_ref().map(version_row).transpose()
}

/// The version of `name` already holding exactly these bytes, if any.
pub async fn version_with_sha(
    conn: &mut AnyConnection,
    name: &str,
    sha256: &str,
) -> Result<Option<v1::StrategyVersion>, RegistryError> {
    let row = sqlx::query(&format!(
        "{VERSION_SELECT} WHERE s.name = $1 AND s.sha256 = $2 ORDER BY CAST(s.version AS BIGINT) LIMIT 1"
    ))
    .bind(name)
    .bind(sha256)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(version_row).transpose()
}

/// Stores the bytes under their sha256 (once, however many versions share them).
pub async fn put_component(
    conn: &mut AnyConnection,
    sha256: &str,
    bytes: &[u8],
    world: &str,
    stateful: bool,
    now: i64,
) -> Result<(), RegistryError> {
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO strategy_components (sha256, bytes, size_bytes, world, stateful, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(sha256)
    .bind(bytes)
    .bind(size)
    .bind(world)
    .bind(i64::from(stateful))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends version `max + 1` of `name`; returns its number.
pub async fn insert_version(
    conn: &mut AnyConnection,
    name: &str,
    sha256: &str,
    world: &str,
    uploader: &str,
    now: i64,
) -> Result<u64, RegistryError> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(CAST(version AS BIGINT)), 0) AS newest FROM strategies WHERE name = $1",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    let next = u64_col(&row, "newest")? + 1;
    sqlx::query(
        "INSERT INTO strategies (name, version, sha256, world, uploader, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name)
    .bind(next.to_string())
    .bind(sha256)
    .bind(world)
    .bind(uploader)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(next)
}

/// A stored component's bytes by hex sha256; `None` if no such component.
pub async fn component(
    conn: &mut AnyConnection,
    sha256: &str,
) -> Result<Option<Vec<u8>>, RegistryError> {
    let row = sqlx::query("SELECT bytes FROM strategy_components WHERE sha256 = $1")
        .bind(sha256)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.try_get("bytes")).transpose()?)
}

/// A `deployments` row: the wire's `Deployment` plus what rollback needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    /// The deployment as the wire carries it.
    pub deployment: v1::Deployment,
    /// deploy, scale or rollback.
    pub action: String,
    /// The revision a rollback of this deployment returns to; 0 when there is none.
    pub previous_revision: u64,
}

const DEPLOYMENT_COLS: &str = "revision, name, version, sha256, instances, config_json, deployed_by, action, previous_revision, at_ms";

fn deployment_row(row: &AnyRow) -> Result<DeploymentRow, RegistryError> {
    Ok(DeploymentRow {
        deployment: v1::Deployment {
            name: row.try_get("name")?,
            version: row.try_get("version")?,
            sha256: row.try_get("sha256")?,
            instances: u32_col(row, "instances")?,
            config_json: row.try_get("config_json")?,
            revision: u64_col(row, "revision")?,
            deployed_by: row.try_get("deployed_by")?,
            at_ms: row.try_get("at_ms")?,
        },
        action: row.try_get("action")?,
        previous_revision: u64_col(row, "previous_revision")?,
    })
}

/// One strategy's deployments, newest first (the first is the current one).
pub async fn deployment_history(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Vec<DeploymentRow>, RegistryError> {
    sqlx::query(&format!(
        "SELECT {DEPLOYMENT_COLS} FROM deployments WHERE name = $1 ORDER BY revision DESC"
    ))
    .bind(name)
    .fetch_all(conn)
    .await?
    .iter()
    .map(deployment_row)
    .collect()
}

/// The newest deployment of `name`; `None` if it was never deployed.
pub async fn current_deployment(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<DeploymentRow>, RegistryError> {
    sqlx::query(&format!(
        "SELECT {DEPLOYMENT_COLS} FROM deployments WHERE name = $1 ORDER BY revision DESC LIMIT 1"
    ))
    .bind(name)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(deployment_row)
    .transpose()
}

/// The deployment made at `revision`, for rollback.
pub async fn deployment_at(
    conn: &mut AnyConnection,
    revision: u64,
) -> Result<Option<DeploymentRow>, RegistryError> {
    sqlx::query(&format!(
        "SELECT {DEPLOYMENT_COLS} FROM deployments WHERE revision = $1"
    ))
    .bind(i64_of(revision))
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(deployment_row)
    .transpose()
}

/// The desired state: every strategy's current deployment, and the newest revision.
pub async fn deployment_set(conn: &mut AnyConnection) -> Result<v1::DeploymentSet, RegistryError> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM deployments d JOIN (SELECT name AS n, MAX(revision) AS r FROM deployments GROUP BY name) m \
         ON d.name = m.n AND d.revision = m.r ORDER BY d.name",
        DEPLOYMENT_COLS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .fetch_all(&mut *conn)
    .await?;
    let deployments = rows
        .iter()
        .map(|r| deployment_row(r).map(|d| d.deployment))
        .collect::<Result<Vec<_>, _>>()?;
    let revision = newest_revision(conn).await?;
    Ok(v1::DeploymentSet {
        revision,
        deployments,
    })
}

/// The highest deployment revision, 0 on an empty registry; hosts resume watching from it.
pub async fn newest_revision(conn: &mut AnyConnection) -> Result<u64, RegistryError> {
    let row = sqlx::query("SELECT COALESCE(MAX(revision), 0) AS newest FROM deployments")
        .fetch_one(conn)
        .await?;
    u64_col(&row, "newest")
}

/// Appends a deployment with the next global revision (set on `row`); returns it.
pub async fn append_deployment(
    conn: &mut AnyConnection,
    row: &mut DeploymentRow,
) -> Result<u64, RegistryError> {
    let revision = newest_revision(&mut *conn).await? + 1;
    row.deployment.revision = revision;
    let d = &row.deployment;
    sqlx::query(&format!(
        "INSERT INTO deployments ({DEPLOYMENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(i64_of(revision))
    .bind(&d.name)
    .bind(&d.version)
    .bind(&d.sha256)
    .bind(i64::from(d.instances))
    .bind(&d.config_json)
    .bind(&d.deployed_by)
    .bind(&row.action)
    .bind(i64_of(row.previous_revision))
    .bind(d.at_ms)
    .execute(conn)
    .await?;
    Ok(revision)
}

/// Keeps the newest report of each host about each strategy.
pub async fn put_rollout(
    conn: &mut AnyConnection,
    r: &v1::RolloutReport,
) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO rollout_reports (host, name, version, revision, switched, error, max_pause_ns, markets, instances, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (host, name) DO UPDATE SET \
         version = excluded.version, revision = excluded.revision, switched = excluded.switched, \
         error = excluded.error, max_pause_ns = excluded.max_pause_ns, markets = excluded.markets, \
         instances = excluded.instances, at_ms = excluded.at_ms",
    )
    .bind(&r.host)
    .bind(&r.name)
    .bind(&r.version)
    .bind(i64_of(r.revision))
    .bind(i64::from(r.switched))
    .bind(&r.error)
    .bind(i64_of(r.max_pause_ns))
    .bind(i64::from(r.markets))
    .bind(i64::from(r.instances))
    .bind(r.at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// The last rollout report of each host for `name`, by host.
pub async fn rollouts(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Vec<v1::RolloutReport>, RegistryError> {
    let rows = sqlx::query(
        "SELECT host, name, version, revision, switched, error, max_pause_ns, markets, instances, at_ms \
         FROM rollout_reports WHERE name = $1 ORDER BY host",
    )
    .bind(name)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(v1::RolloutReport {
                host: r.try_get("host")?,
                name: r.try_get("name")?,
                version: r.try_get("version")?,
                revision: u64_col(r, "revision")?,
                switched: r.try_get::<i64, _>("switched")? != 0,
                error: r.try_get("error")?,
                max_pause_ns: u64_col(r, "max_pause_ns")?,
                markets: u32_col(r, "markets")?,
                instances: u32_col(r, "instances")?,
                at_ms: r.try_get("at_ms")?,
            })
        })
        .collect()
}

/// One audit row as read back (for tests and `show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// As [`AuditRow::actor`].
    pub actor: String,
    /// As [`AuditRow::action`].
    pub action: String,
    /// As [`AuditRow::subject`].
    pub subject: String,
    /// As [`AuditRow::from_state`].
    pub from_state: String,
    /// As [`AuditRow::to_state`].
    pub to_state: String,
    /// As [`AuditRow::detail`].
    pub detail: String,
    /// As [`AuditRow::trace_id`].
    pub trace_id: String,
}

/// Audit rows about `subject`, oldest first.
pub async fn audit_entries(
    conn: &mut AnyConnection,
    subject: &str,
) -> Result<Vec<AuditEntry>, RegistryError> {
    let rows = sqlx::query(
        "SELECT at_ms, actor, action, subject, from_state, to_state, detail, trace_id FROM audit_log \
         WHERE subject = $1 ORDER BY audit_id",
    )
    .bind(subject)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                at_ms: r.try_get("at_ms")?,
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
