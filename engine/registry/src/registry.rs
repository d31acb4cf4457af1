//! The registry as the engine process holds it: storage on the engine's pool, admission of
//! uploads, deployments with a global revision, and a watch channel that carries the
//! desired state to every `WatchDeployments` stream.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use stratbox_engine::Backend;
use stratbox_engine::store::now_ms;
use stratbox_proto::v1;
use tokio::sync::{Mutex, watch};

use crate::admission::{self, Compiler, DEFAULT_COMPILE_TIMEOUT, DEFAULT_MAX_COMPONENT_BYTES};
use crate::auth::{self, Operator};
use crate::error::RegistryError;
use crate::store::{self, AuditRow, DeploymentRow};
use stratbox_engine::Role;

/// Limits of what operators may ask for.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Uploads larger than this are refused before any other work.
    pub max_component_bytes: usize,
    /// Informational for [`crate::admission::ProcessCompiler`] users; the compiler owns
    /// its own timeout.
    pub compile_timeout: Duration,
    /// Instances one deployment may ask for.
    pub max_instances: u32,
    /// Bytes of the config JSON handed to `init`.
    pub max_config_bytes: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
            max_instances: 10_000,
            max_config_bytes: 64 << 10,
        }
    }
}

/// Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    config: RegistryConfig,
    compiler: Arc<dyn Compiler>,
    keys: Arc<auth::Keys>,
    /// Serialises changes in this process, so revisions are published in order and two
    /// uploads of one name do not race for the same version number (the primary keys
    /// would refuse the loser anyway).
    write: Mutex<()>,
    desired: watch::Sender<Arc<v1::DeploymentSet>>,
    /// Hosts with a `WatchDeployments` stream open now, and how many each has.
    watchers: Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    /// Set once at shutdown: ends every watch stream, so the gRPC server can drain.
    closed: watch::Sender<bool>,
    /// Awaited after each admitted upload, before the uploader is answered (see
    /// [`Registry::on_upload`]).
    on_upload: std::sync::OnceLock<UploadHook>,
}

/// What runs after an upload is stored: the engine re-reads what may propose, so a version
/// is admitted for proposals by the time its uploader hears it was.
pub type UploadHook =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// Keeps a host counted as watching while its stream lives.
pub struct WatchGuard {
    host: String,
    watchers: Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut w = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = w.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.host);
            }
        }
    }
}

/// Strategy names become subjects in `audit_log`, labels and map keys on hosts, and parts
/// of ledger account names: the engine's rule for proposals, so every admitted name can
/// propose.
pub fn check_strategy_name(name: &str) -> Result<(), RegistryError> {
    stratbox_engine::proposal::check_strategy_name(name)
        .map_err(|e| RegistryError::Invalid(format!("strategy name {e}")))
}

/// "" = newest; otherwise a version number 1, 2, ...
pub fn parse_version(v: &str) -> Result<Option<u64>, RegistryError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(RegistryError::Invalid(format!(
            "version {:?}: a number 1, 2, ... or empty for the newest",
            v.chars().take(40).collect::<String>()
        ))),
    }
}

fn state_of(d: Option<&v1::Deployment>) -> String {
    match d {
        Some(d) => format!("v{} x{}", d.version, d.instances),
        None => String::new(),
    }
}

fn subject(name: &str) -> String {
    format!("strategy:{name}")
}

impl Registry {
    /// Opens the registry on the engine's pool (already migrated by
    /// `stratbox_engine::Store::connect`, which applies 0002_registry.sql).
    pub async fn open(
        pool: AnyPool,
        backend: Backend,
        config: RegistryConfig,
        compiler: Arc<dyn Compiler>,
    ) -> Result<Registry, RegistryError> {
        let set = store::deployment_set(&mut *pool.acquire().await?).await?;
        let (desired, _) = watch::channel(Arc::new(set));
        let (closed, _) = watch::channel(false);
        let keys = Arc::new(auth::Keys::new(pool.clone()));
        Ok(Registry {
            inner: Arc::new(Inner {
                pool,
                backend,
                config,
                keys,
                compiler,
                write: Mutex::new(()),
                desired,
                watchers: Arc::default(),
                closed,
                on_upload: std::sync::OnceLock::new(),
            }),
        })
    }

    /// As opened with.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Which database this registry stores in (Postgres or SQLite).
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The database pool, shared with the engine's store when they share a database.
    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// The operator holding this API key.
    pub async fn authenticate(&self, key: &str) -> Result<Operator, RegistryError> {
        Ok(Operator {
            name: self.inner.keys.check(key, Role::Operator).await?,
        })
    }

    /// The host holding this API key.
    pub async fn authenticate_host(&self, key: &str) -> Result<String, RegistryError> {
        self.inner.keys.check(key, Role::Host).await
    }

    /// Sets what runs after every admitted upload (once; a second hook is ignored).
    pub fn on_upload(&self, hook: UploadHook) {
        let _ = self.inner.on_upload.set(hook);
    }

    /// The engine's authentication (operators and hosts), by this registry's keys.
    pub fn access(&self) -> Arc<dyn stratbox_engine::Access> {
        self.inner.keys.clone()
    }

    /// What can be refused of an upload before its bytes arrive: the name, and the size it
    /// announces. Refused as [`Self::upload`] would refuse the same upload, and logged.
    pub fn check_upload(
        &self,
        by: &Operator,
        name: &str,
        size: usize,
        trace_id: &str,
    ) -> Result<(), RegistryError> {
        check_strategy_name(name)?;
        admission::check_size(size, self.inner.config.max_component_bytes).inspect_err(|e| {
            tracing::warn!(operator = %by.name, strategy = %name, trace_id, error = %e, "upload refused");
        })
    }

    /// Admits and stores a component as the next version of `name`. Re-uploading bytes
    /// that are already a version of `name` returns that version and changes nothing.
    pub async fn upload(
        &self,
        by: &Operator,
        name: &str,
        bytes: &[u8],
        trace_id: &str,
    ) -> Result<v1::StrategyVersion, RegistryError> {
        check_strategy_name(name)?;
        let admitted = match admission::admit(
            bytes,
            self.inner.config.max_component_bytes,
            self.inner.compiler.as_ref(),
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(operator = %by.name, strategy = %name, trace_id, error = %e, "upload refused");
                return Err(e);
            }
        };
        let report = &admitted.report;
        let _guard = self.inner.write.lock().await;
        let mut tx = self.inner.pool.begin().await?;
        if let Some(existing) = store::version_with_sha(&mut tx, name, &report.sha256).await? {
            tx.rollback().await?;
            return Ok(existing);
        }
        let now = now_ms();
        store::put_component(
            &mut tx,
            &report.sha256,
            bytes,
            &report.world,
            admitted.stateful,
            now,
        )
        .await?;
        let version =
            store::insert_version(&mut tx, name, &report.sha256, &report.world, &by.name, now)
                .await?;
        let detail = serde_json::json!({
            "sha256": report.sha256,
            "size_bytes": report.size,
            "world": report.world,
            "stateful": admitted.stateful,
        })
        .to_string();
        store::audit(
            &mut tx,
            &AuditRow {
                actor: &by.name,
                action: "strategy_uploaded",
                subject: &subject(name),
                from_state: "",
                to_state: &format!("v{version}"),
                detail: &detail,
                trace_id,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        if let Some(hook) = self.inner.on_upload.get() {
            hook().await;
        }
        tracing::info!(operator = %by.name, strategy = %name, version, sha256 = %report.sha256, trace_id, "strategy uploaded");
        Ok(v1::StrategyVersion {
            name: name.to_owned(),
            version: version.to_string(),
            sha256: report.sha256.clone(),
            world: report.world.clone(),
            uploader: by.name.clone(),
            created_at_ms: now,
            size_bytes: report.size as u64,
            stateful: admitted.stateful,
        })
    }

    /// Every version of every strategy.
    pub async fn list(&self) -> Result<Vec<v1::StrategyVersion>, RegistryError> {
        store::versions(&mut *self.inner.pool.acquire().await?, None).await
    }

    /// Versions, deployments (current first) and hosts' newest rollout reports.
    pub async fn show(&self, name: &str) -> Result<v1::ShowStrategyResponse, RegistryError> {
        let mut conn = self.inner.pool.acquire().await?;
        let versions = store::versions(&mut conn, Some(name)).await?;
        if versions.is_empty() {
            return Err(RegistryError::NotFound(format!(
                "no strategy named {name:?}"
            )));
        }
        let deployments = store::deployment_history(&mut conn, name)
            .await?
            .into_iter()
            .map(|d| d.deployment)
            .collect();
        let rollouts = store::rollouts(&mut conn, name).await?;
        Ok(v1::ShowStrategyResponse {
            versions,
            deployments,
            rollouts,
            watching_hosts: self.watching_hosts(),
        })
    }

    fn check_deploy_args(&self, instances: u32, config_json: &str) -> Result<(), RegistryError> {
        let c = &self.inner.config;
        if instances > c.max_instances {
            return Err(RegistryError::Invalid(format!(
                "{instances} instances, over the limit of {}",
                c.max_instances
            )));
        }
        if config_json.len() > c.max_config_bytes {
            return Err(RegistryError::Invalid(format!(
                "config is {} bytes, over the limit of {}",
                config_json.len(),
                c.max_config_bytes
            )));
        }
        serde_json::from_str::<serde_json::Value>(config_json)
            .map_err(|e| RegistryError::Invalid(format!("config is not JSON: {e}")))?;
        Ok(())
    }

    /// Runs `version` (None: the newest) of `name` with `instances` instances and this
    /// config. Asking for exactly what is deployed already changes nothing.
    pub async fn deploy(
        &self,
        by: &Operator,
        name: &str,
        version: Option<u64>,
        instances: u32,
        config_json: &str,
        trace_id: &str,
    ) -> Result<v1::Deployment, RegistryError> {
        check_strategy_name(name)?;
        let config_json = if config_json.trim().is_empty() {
            "{}"
        } else {
            config_json
        };
        self.check_deploy_args(instances, config_json)?;
        let _guard = self.inner.write.lock().await;
        let mut tx = self.inner.pool.begin().await?;
        let target =
            store::version(&mut tx, name, version)
                .await?
                .ok_or_else(|| match version {
                    Some(v) => RegistryError::NotFound(format!("{name} has no version {v}")),
                    None => RegistryError::NotFound(format!("no strategy named {name:?}")),
                })?;
        let current = store::current_deployment(&mut tx, name).await?;
        if let Some(c) = &current
            && c.deployment.version == target.version
            && c.deployment.instances == instances
            && c.deployment.config_json == config_json
        {
            tx.rollback().await?;
            return Ok(c.deployment.clone());
        }
        let row = DeploymentRow {
            deployment: v1::Deployment {
                name: name.to_owned(),
                version: target.version.clone(),
                sha256: target.sha256.clone(),
                instances,
                config_json: config_json.to_owned(),
                revision: 0,
                deployed_by: by.name.clone(),
                at_ms: now_ms(),
            },
            action: "deploy".into(),
            previous_revision: current.as_ref().map_or(0, |c| c.deployment.revision),
        };
        self.commit_change(tx, row, current.as_ref(), trace_id)
            .await
    }

    /// Changes how many instances the current deployment runs.
    pub async fn scale(
        &self,
        by: &Operator,
        name: &str,
        instances: u32,
        trace_id: &str,
    ) -> Result<v1::Deployment, RegistryError> {
        check_strategy_name(name)?;
        if instances > self.inner.config.max_instances {
            return Err(RegistryError::Invalid(format!(
                "{instances} instances, over the limit of {}",
                self.inner.config.max_instances
            )));
        }
        let _guard = self.inner.write.lock().await;
        let mut tx = self.inner.pool.begin().await?;
        let current = store::current_deployment(&mut tx, name)
            .await?
            .ok_or_else(|| {
                RegistryError::Precondition(format!(
                    "{name} is not deployed; deploy it before scaling"
                ))
            })?;
        if current.deployment.instances == instances {
            tx.rollback().await?;
            return Ok(current.deployment);
        }
        let row = DeploymentRow {
            deployment: v1::Deployment {
                instances,
                deployed_by: by.name.clone(),
                at_ms: now_ms(),
                ..current.deployment.clone()
            },
            action: "scale".into(),
            previous_revision: current.deployment.revision,
        };
        self.commit_change(tx, row, Some(&current), trace_id).await
    }

    /// Back to the deployment before the current one (version, instances and config as
    /// they were). Successive rollbacks keep walking back; a scale counts as a deployment.
    pub async fn rollback(
        &self,
        by: &Operator,
        name: &str,
        trace_id: &str,
    ) -> Result<v1::Deployment, RegistryError> {
        check_strategy_name(name)?;
        let _guard = self.inner.write.lock().await;
        let mut tx = self.inner.pool.begin().await?;
        let current = store::current_deployment(&mut tx, name)
            .await?
            .ok_or_else(|| {
                RegistryError::Precondition(format!("{name} is not deployed; nothing to roll back"))
            })?;
        if current.previous_revision == 0 {
            return Err(RegistryError::Precondition(format!(
                "{name} has no deployment before revision {} to roll back to",
                current.deployment.revision
            )));
        }
        let target = store::deployment_at(&mut tx, current.previous_revision)
            .await?
            .ok_or_else(|| {
                RegistryError::Corrupt(format!(
                    "revision {} named by {} is missing",
                    current.previous_revision, current.deployment.revision
                ))
            })?;
        let row = DeploymentRow {
            deployment: v1::Deployment {
                deployed_by: by.name.clone(),
                at_ms: now_ms(),
                ..target.deployment.clone()
            },
            action: "rollback".into(),
            previous_revision: target.previous_revision,
        };
        self.commit_change(tx, row, Some(&current), trace_id).await
    }

    /// Appends `row`, audits it, commits, then publishes the new desired state.
    async fn commit_change(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        mut row: DeploymentRow,
        before: Option<&DeploymentRow>,
        trace_id: &str,
    ) -> Result<v1::Deployment, RegistryError> {
        let revision = store::append_deployment(&mut tx, &mut row).await?;
        let d = &row.deployment;
        let detail = serde_json::json!({
            "revision": revision,
            "sha256": d.sha256,
            "config_json": d.config_json,
        })
        .to_string();
        store::audit(
            &mut tx,
            &AuditRow {
                actor: &d.deployed_by,
                action: &format!("strategy_{}", row.action),
                subject: &subject(&d.name),
                from_state: &state_of(before.map(|b| &b.deployment)),
                to_state: &state_of(Some(d)),
                detail: &detail,
                trace_id,
            },
            d.at_ms,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(operator = %d.deployed_by, strategy = %d.name, version = %d.version, instances = d.instances, revision, action = %row.action, trace_id, "deployment changed");
        self.publish().await?;
        Ok(row.deployment)
    }

    /// Re-reads the desired state and hands it to every watcher.
    async fn publish(&self) -> Result<(), RegistryError> {
        let set = store::deployment_set(&mut *self.inner.pool.acquire().await?).await?;
        self.inner.desired.send_replace(Arc::new(set));
        Ok(())
    }

    /// The current desired state.
    pub fn deployments(&self) -> Arc<v1::DeploymentSet> {
        self.inner.desired.borrow().clone()
    }

    /// Counts `host` as watching until the returned guard is dropped (its stream ends).
    pub fn watching(&self, host: &str) -> WatchGuard {
        let mut w = self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *w.entry(host.to_owned()).or_default() += 1;
        WatchGuard {
            host: host.to_owned(),
            watchers: Arc::clone(&self.inner.watchers),
        }
    }

    /// The hosts watching deployments now.
    pub fn watching_hosts(&self) -> Vec<String> {
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// A receiver holding the current desired state and woken by every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<v1::DeploymentSet>> {
        self.inner.desired.subscribe()
    }

    /// Fires once the registry is shut down.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.inner.closed.subscribe()
    }

    /// Ends every watch stream (call before waiting for the gRPC server to drain).
    pub fn shutdown(&self) {
        self.inner.closed.send_replace(true);
    }

    /// The bytes stored under `sha256`.
    pub async fn fetch_component(&self, sha256: &str) -> Result<Vec<u8>, RegistryError> {
        let valid = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(RegistryError::Invalid(
                "sha256 must be 64 lowercase hex digits".into(),
            ));
        }
        store::component(&mut *self.inner.pool.acquire().await?, sha256)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("no component {sha256}")))
    }

    /// Records a host's report, under the authenticated host's name (whatever the report
    /// says). Only a report about a deployment that exists is kept: its revision must be a
    /// deployment of this strategy at this version. Bounded, and kept only as the newest
    /// per (host, strategy).
    pub async fn report_rollout(
        &self,
        host: &str,
        mut r: v1::RolloutReport,
    ) -> Result<(), RegistryError> {
        r.host = host.to_owned();
        check_strategy_name(&r.name)?;
        if r.version.len() > 20 {
            return Err(RegistryError::Invalid("version too long".into()));
        }
        let mut conn = self.inner.pool.acquire().await?;
        let deployed = store::deployment_at(&mut conn, r.revision).await?;
        match deployed {
            Some(d) if d.deployment.name == r.name && d.deployment.version == r.version => {}
            _ => {
                return Err(RegistryError::Invalid(format!(
                    "revision {} is not a deployment of {} at version {:?}",
                    r.revision,
                    r.name,
                    r.version.chars().take(20).collect::<String>()
                )));
            }
        }
        if r.error.len() > 2048 {
            let mut cut = 2048;
            while !r.error.is_char_boundary(cut) {
                cut -= 1;
            }
            r.error.truncate(cut);
        }
        if r.at_ms == 0 {
            r.at_ms = now_ms();
        }
        store::put_rollout(&mut conn, &r).await
    }

    /// The audit trail of one strategy (subject `strategy:NAME`).
    pub async fn audit_of(&self, name: &str) -> Result<Vec<store::AuditEntry>, RegistryError> {
        store::audit_entries(&mut *self.inner.pool.acquire().await?, &subject(name)).await
    }
}
