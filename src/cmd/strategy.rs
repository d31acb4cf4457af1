//! `stratbox strategy ...`: inspect strategy components locally (`check`) and manage them in
//! an engine's registry (`upload`, `list`, `show`, `deploy`, `scale`, `rollback`), and
//! restore a strategy the engine halted at L0 (`restore`).
//!
//! The operator API key comes from `--api-key-file FILE` or the environment variable
//! `STRATBOX_API_KEY`, never from a flag holding the key itself: a flag's value lands in
//! shell history and in every user's `ps` output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use stratbox_host::check::{DEFAULT_MAX_COMPONENT_BYTES, check_component};
use stratbox_host::display::{Escaped, json};
use stratbox_proto::v1::{
    self, registry_client::RegistryClient, trading_engine_client::TradingEngineClient,
};
use tonic::transport::Channel;

/// The largest file the client reads and sends; the engine applies its own, usually
/// smaller, cap and says so.
const CLIENT_MAX_BYTES: usize = 256 << 20;

#[derive(clap::Args)]
pub struct Remote {
    /// The engine's gRPC address.
    #[arg(
        long,
        default_value = "http://127.0.0.1:50051",
        env = "STRATBOX_ENGINE"
    )]
    pub(crate) engine: String,
    /// File holding the operator API key (default: the environment variable
    /// STRATBOX_API_KEY).
    #[arg(long)]
    pub(crate) api_key_file: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// How the engine is verified (`--engine-ca`, ...).
    #[command(flatten)]
    pub(crate) tls: super::engine_tls::EngineTls,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check that a file is a component of the stratbox strategy world.
    ///
    /// Prints the world it targets, its imports, size and sha256; exits non-zero with a
    /// one-line reason for anything else.
    Check {
        file: PathBuf,
        /// Refuse files larger than this many bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_COMPONENT_BYTES)]
        max_bytes: usize,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Upload a component as the next version of a strategy (needs an operator key).
    Upload {
        file: PathBuf,
        /// Strategy name (a-z 0-9 - _ .).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List every stored version of every strategy.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Versions, deployments (current first) and hosts' rollout reports of one strategy.
    Show {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run NAME@VERSION (or NAME: the newest version) with K instances (needs a key).
    Deploy {
        /// `NAME@VERSION`, or `NAME` for the newest upload.
        target: String,
        #[arg(long, default_value_t = 1)]
        instances: u32,
        /// JSON file handed to every instance's `init` (default `{}`).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change how many instances the current deployment runs (needs a key).
    Scale {
        name: String,
        instances: u32,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        remote: Remote,
    },
    /// Go back to the deployment before the current one (needs a key).
    Rollback {
        name: String,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        remote: Remote,
    },
    /// Let a strategy the engine halted at L0 (a hard-limit breach) trade again, at LEVEL
    /// (needs a key; audited under the key's operator). The engine refuses a strategy that
    /// is not halted and levels above its `max_restore_level` (L1 by default).
    Restore {
        name: String,
        /// L1 .. L5.
        #[arg(long, default_value = "L1")]
        level: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Compile a component the way a host would (the engine runs this in a child process,
    /// under a time limit, for every upload).
    #[command(hide = true)]
    Compile {
        file: PathBuf,
        #[arg(long, default_value_t = DEFAULT_MAX_COMPONENT_BYTES)]
        max_bytes: usize,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check {
            file,
            max_bytes,
            json,
        } => check(&file, max_bytes, json),
        Command::Compile { file, max_bytes } => compile(&file, max_bytes),
        Command::Upload { file, name, remote } => upload(&remote, &file, &name).await,
        Command::List { remote } => list(&remote).await,
        Command::Show { name, remote } => show(&remote, &name).await,
        Command::Deploy {
            target,
            instances,
            config,
            wait,
            remote,
        } => {
            let d = deploy(&remote, &target, instances, config.as_deref()).await?;
            print_deployment(&remote, &d)?;
            wait.for_hosts(&remote, &d).await
        }
        Command::Scale {
            name,
            instances,
            wait,
            remote,
        } => {
            let mut c = client(&remote).await?;
            let req = authed(
                &remote,
                v1::ScaleRequest {
                    trace: Some(trace()),
                    name,
                    instances,
                },
            )?;
            let d = c.scale(req).await.map_err(rpc)?.into_inner();
            print_deployment(&remote, &d)?;
            wait.for_hosts(&remote, &d).await
        }
        Command::Rollback { name, wait, remote } => {
            let mut c = client(&remote).await?;
            let req = authed(
                &remote,
                v1::RollbackRequest {
                    trace: Some(trace()),
                    name,
                },
            )?;
            let d = c.rollback(req).await.map_err(rpc)?.into_inner();
            print_deployment(&remote, &d)?;
            wait.for_hosts(&remote, &d).await
        }
        Command::Restore {
            name,
            level,
            remote,
        } => {
            let req = authed(
                &remote,
                v1::RestoreStrategyRequest {
                    trace: Some(trace()),
                    strategy: name,
                    level,
                },
            )?;
            let p = engine_client(&remote)
                .await?
                .restore_strategy(req)
                .await
                .map_err(rpc)?
                .into_inner();
            if remote.json {
                print_json(&permission_json(&p))?;
            } else {
                println!(
                    "{} restored to {} by {}",
                    Escaped(&p.strategy),
                    Escaped(&p.level),
                    Escaped(&p.restored_by)
                );
            }
            Ok(())
        }
    }
}

pub(crate) fn check(file: &Path, max_bytes: usize, json_out: bool) -> anyhow::Result<()> {
    let bytes = stratbox_host::runtime::read_capped(file, max_bytes)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("{}", file.display()))?;
    let report = check_component(&bytes, max_bytes)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("{}", file.display()))?;
    if json_out {
        println!("{}", json(&report)?);
        return Ok(());
    }
    // Names inside the component are the author's text.
    println!("world:   {}", Escaped(&report.world));
    println!("size:    {} bytes", report.size);
    println!("sha256:  {}", report.sha256);
    println!("exports: {}", Escaped(&report.exports.join(", ")));
    let n = &report.needs;
    println!(
        "needs:   {} core instances, {} memories ({} KiB initial), {} tables per instance",
        n.core_instances,
        n.memories,
        n.initial_memory_bytes / 1024,
        n.tables
    );
    println!("imports:");
    for import in &report.imports {
        println!("  {}", Escaped(import));
    }
    Ok(())
}

/// The child side of the registry's compile step: exit 0 when it compiles, else one
/// `error:` line on stderr that the engine passes on as the refusal reason.
fn compile(file: &Path, max_bytes: usize) -> anyhow::Result<()> {
    let bytes = stratbox_host::runtime::read_capped(file, max_bytes)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("{}", file.display()))?;
    let report = stratbox::compile::compile_component(&bytes, max_bytes).map_err(|e| match e {
        stratbox_registry::RegistryError::Refused(r) => anyhow!("{r}"),
        other => anyhow!("{other}"),
    })?;
    println!("{}", json(&report)?);
    Ok(())
}

async fn client(remote: &Remote) -> anyhow::Result<RegistryClient<Channel>> {
    let channel = remote
        .tls
        .endpoint(&remote.engine)?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to the engine at {}", remote.engine))?;
    Ok(RegistryClient::new(channel)
        .max_decoding_message_size(CLIENT_MAX_BYTES + (1 << 20))
        .max_encoding_message_size(CLIENT_MAX_BYTES + (1 << 20)))
}

pub(crate) async fn engine_client(remote: &Remote) -> anyhow::Result<TradingEngineClient<Channel>> {
    let channel = remote
        .tls
        .endpoint(&remote.engine)?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to the engine at {}", remote.engine))?;
    Ok(TradingEngineClient::new(channel))
}

/// The strategy's permission, or `None` if the engine cannot say (an older engine).
/// The strategy's execution quality, or `None` from an engine that cannot say (an older
/// one, or unreachable): `show` prints the registry's view either way.
async fn execution(remote: &Remote, name: &str) -> Option<v1::ExecutionQuality> {
    engine_client(remote)
        .await
        .ok()?
        .get_execution_quality(v1::GetExecutionQualityRequest {
            trace: Some(trace()),
            strategy: name.to_owned(),
        })
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// A distribution of basis points as `show --json` and `up --json` print it.
pub(crate) fn bps_json(b: &Option<v1::BpsSummary>) -> serde_json::Value {
    let b = (*b).unwrap_or_default();
    serde_json::json!({
        "count": b.count, "min": b.min, "p10": b.p10, "p50": b.p50, "p90": b.p90, "max": b.max,
    })
}

fn execution_json(q: &v1::ExecutionQuality) -> serde_json::Value {
    serde_json::json!({
        "states": q.states.iter().map(|s| serde_json::json!({
            "state": state_name(s.state), "count": s.count,
        })).collect::<Vec<_>>(),
        "refusals": q.refusals.iter().map(|r| serde_json::json!({
            "reason": r.reason_code, "count": r.count,
        })).collect::<Vec<_>>(),
        "slippage_bps": bps_json(&q.slippage),
        "markout_bps": bps_json(&q.markout),
        "window": q.window,
    })
}

fn state_name(state: i32) -> String {
    v1::TaskState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("TASK_STATE_").to_owned())
        .unwrap_or_else(|_| state.to_string())
}

fn print_execution(q: &v1::ExecutionQuality) {
    let total: u64 = q.states.iter().map(|s| s.count).sum();
    println!("execution quality:");
    if total == 0 {
        println!("  (no tasks)");
        return;
    }
    let states: Vec<String> = q
        .states
        .iter()
        .map(|s| format!("{} {}", state_name(s.state), s.count))
        .collect();
    println!("  tasks: {total} ({})", states.join(", "));
    let rejected: u64 = q.refusals.iter().map(|r| r.count).sum();
    if rejected > 0 {
        let rows = q
            .refusals
            .iter()
            .map(|r| {
                vec![
                    r.reason_code.clone(),
                    r.count.to_string(),
                    format!("{:.1}%", r.count as f64 * 100.0 / total as f64),
                ]
            })
            .collect();
        table(&["REFUSED BY", "TASKS", "OF ALL"], rows);
    }
    let rows = [
        ("slippage (bps, + worse)", &q.slippage),
        ("markout (bps, - toxic)", &q.markout),
    ]
    .into_iter()
    .map(|(name, b)| {
        let b = (*b).unwrap_or_default();
        if b.count == 0 {
            return vec![
                name.to_owned(),
                "0".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ];
        }
        vec![
            name.to_owned(),
            b.count.to_string(),
            b.min.to_string(),
            b.p10.to_string(),
            b.p50.to_string(),
            b.p90.to_string(),
            b.max.to_string(),
        ]
    })
    .collect();
    table(
        &["FILLS (newest)", "COUNT", "MIN", "P10", "P50", "P90", "MAX"],
        rows,
    );
}

async fn permission(remote: &Remote, name: &str) -> Option<v1::Permission> {
    engine_client(remote)
        .await
        .ok()?
        .get_permission(v1::GetPermissionRequest {
            trace: Some(trace()),
            strategy: name.to_owned(),
        })
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// The operator key: `--api-key-file`, else `STRATBOX_API_KEY`.
fn api_key(remote: &Remote) -> anyhow::Result<String> {
    let key = match &remote.api_key_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the API key file {}", path.display()))?,
        None => std::env::var("STRATBOX_API_KEY").map_err(|_| {
            anyhow!(
                "this command needs an operator API key: --api-key-file FILE or the environment variable STRATBOX_API_KEY (create one with `stratbox operator add NAME`)"
            )
        })?,
    };
    let key = key.trim().to_owned();
    anyhow::ensure!(
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()),
        "the API key is empty or not printable ASCII"
    );
    Ok(key)
}

pub(crate) fn authed<T>(remote: &Remote, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(message);
    authorize(remote, &mut req)?;
    Ok(req)
}

/// Adds the operator key to `req` (see [`api_key`]).
fn authorize<T>(remote: &Remote, req: &mut tonic::Request<T>) -> anyhow::Result<()> {
    let key = api_key(remote)?;
    let value = format!("Bearer {key}")
        .parse()
        .map_err(|_| anyhow!("the API key cannot be sent as a header"))?;
    req.metadata_mut().insert("authorization", value);
    Ok(())
}

pub(crate) fn trace() -> v1::TraceContext {
    v1::TraceContext {
        trace_id: stratbox_engine::trace::fresh(),
        span_id: String::new(),
    }
}

/// One line: the engine's reason and the status code.
pub(crate) fn rpc(s: tonic::Status) -> anyhow::Error {
    if s.code() == tonic::Code::Unimplemented {
        // A server of another kind or version answers with an empty message here: say what
        // that usually means instead of printing nothing.
        return anyhow!(
            "the server does not offer this call (Unimplemented{}): check that the address is \
             a `stratbox engine` of this version (`stratbox up` serves the trading API only, \
             without the strategy registry)",
            if s.message().is_empty() {
                String::new()
            } else {
                format!(": {}", s.message())
            }
        );
    }
    anyhow!("{} ({:?})", s.message(), s.code())
}

/// Bytes per message of a chunked upload: far below any gRPC message limit.
const UPLOAD_CHUNK_BYTES: usize = 1 << 20;

/// Sends the component in pieces (`UploadStrategyChunks`), announcing its size first, so
/// the engine judges the size by its own cap and refuses an oversized one with its usual
/// reason before the bytes travel, instead of gRPC refusing a message too large.
async fn upload(remote: &Remote, file: &Path, name: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let reader = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("{}", file.display()))?;
    let size = reader
        .metadata()
        .await
        .with_context(|| format!("{}", file.display()))?
        .len();
    let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
    if size_usize > CLIENT_MAX_BYTES {
        return Err(anyhow::Error::new(stratbox_host::CheckError::Oversized {
            size: size_usize,
            limit: CLIENT_MAX_BYTES,
        }))
        .with_context(|| format!("{}", file.display()));
    }
    let header = v1::UploadChunk {
        part: Some(v1::upload_chunk::Part::Header(v1::UploadHeader {
            trace: Some(trace()),
            name: name.to_owned(),
            size_bytes: size,
        })),
    };
    // The file is read as the engine takes the pieces: a refusal after the header stops
    // the reading. A read error ends the stream early, which the engine refuses as short.
    let pieces = futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; UPLOAD_CHUNK_BYTES];
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                let chunk = v1::UploadChunk {
                    part: Some(v1::upload_chunk::Part::Data(buf)),
                };
                Some((chunk, Some(reader)))
            }
        }
    });
    let stream = futures::StreamExt::chain(futures::stream::iter([header]), pieces);
    let mut req = tonic::Request::new(stream);
    authorize(remote, &mut req)?;
    let v = client(remote)
        .await?
        .upload_strategy_chunks(req)
        .await
        .map_err(rpc)?
        .into_inner();
    if remote.json {
        print_json(&version_json(&v))?;
    } else {
        println!(
            "uploaded {}@{} sha256 {} ({} bytes, {}{})",
            Escaped(&v.name),
            Escaped(&v.version),
            Escaped(&v.sha256),
            v.size_bytes,
            Escaped(&v.world),
            if v.stateful { ", stateful" } else { "" }
        );
    }
    Ok(())
}

async fn list(remote: &Remote) -> anyhow::Result<()> {
    let versions = client(remote)
        .await?
        .list_strategies(v1::ListStrategiesRequest {})
        .await
        .map_err(rpc)?
        .into_inner()
        .versions;
    if remote.json {
        let all: Vec<_> = versions.iter().map(version_json).collect();
        print_json(&serde_json::Value::Array(all))?;
    } else {
        print_versions(&versions);
    }
    Ok(())
}

async fn show(remote: &Remote, name: &str) -> anyhow::Result<()> {
    let s = client(remote)
        .await?
        .show_strategy(v1::ShowStrategyRequest {
            name: name.to_owned(),
        })
        .await
        .map_err(rpc)?
        .into_inner();
    let perm = permission(remote, name).await;
    let quality = execution(remote, name).await;
    if remote.json {
        print_json(&serde_json::json!({
            "versions": s.versions.iter().map(version_json).collect::<Vec<_>>(),
            "deployments": s.deployments.iter().map(deployment_json).collect::<Vec<_>>(),
            "rollouts": s.rollouts.iter().map(rollout_json).collect::<Vec<_>>(),
            "permission": perm.as_ref().map(permission_json),
            "execution": quality.as_ref().map(execution_json),
        }))?;
        return Ok(());
    }
    if let Some(p) = &perm {
        println!("permission: {}", Escaped(&permission_line(p)));
        println!();
    }
    println!("versions:");
    print_versions(&s.versions);
    println!();
    println!("deployments (current first):");
    if s.deployments.is_empty() {
        println!("  (not deployed)");
    } else {
        let rows = s
            .deployments
            .iter()
            .enumerate()
            .map(|(i, d)| {
                vec![
                    d.revision.to_string(),
                    d.version.clone(),
                    d.instances.to_string(),
                    short(&d.sha256),
                    d.deployed_by.clone(),
                    time(d.at_ms),
                    if i == 0 {
                        "current".into()
                    } else {
                        String::new()
                    },
                    d.config_json.clone(),
                ]
            })
            .collect();
        table(
            &[
                "REVISION",
                "VERSION",
                "INSTANCES",
                "SHA256",
                "BY",
                "AT",
                "",
                "CONFIG",
            ],
            rows,
        );
    }
    if !s.rollouts.is_empty() {
        println!();
        println!("rollouts (newest per host):");
        let rows = s
            .rollouts
            .iter()
            .map(|r| {
                vec![
                    r.host.clone(),
                    r.version.clone(),
                    r.revision.to_string(),
                    if r.switched { "switched" } else { "refused" }.into(),
                    format!("{:.3} ms", r.max_pause_ns as f64 / 1e6),
                    r.markets.to_string(),
                    r.instances.to_string(),
                    time(r.at_ms),
                    r.error.clone(),
                ]
            })
            .collect();
        table(
            &[
                "HOST",
                "VERSION",
                "REVISION",
                "RESULT",
                "MAX PAUSE",
                "MARKETS",
                "INSTANCES",
                "AT",
                "ERROR",
            ],
            rows,
        );
    }
    if let Some(q) = &quality {
        println!();
        print_execution(q);
    }
    Ok(())
}

async fn deploy(
    remote: &Remote,
    target: &str,
    instances: u32,
    config: Option<&Path>,
) -> anyhow::Result<v1::Deployment> {
    let (name, version) = match target.split_once('@') {
        Some((n, v)) => (n, v),
        None => (target, ""),
    };
    let config_json = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the config {}", path.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            text
        }
        None => "{}".to_owned(),
    };
    let req = authed(
        remote,
        v1::DeployRequest {
            trace: Some(trace()),
            name: name.to_owned(),
            version: version.to_owned(),
            instances,
            config_json,
        },
    )?;
    Ok(client(remote)
        .await?
        .deploy(req)
        .await
        .map_err(rpc)?
        .into_inner())
}

/// Whether (and how long) a change waits for the hosts to say how it went.
#[derive(clap::Args)]
pub struct Wait {
    /// Return once the registry has stored the change, without waiting for the hosts.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for every host watching deployments to report on the change.
    #[arg(long, default_value = "60s", value_parser = super::up::parse_duration)]
    timeout: std::time::Duration,
}

impl Wait {
    /// Waits until every host watching deployments has reported on revision `d.revision`
    /// (or a later one) of this strategy, prints each report, and fails if any host
    /// refused, none is watching, or the time runs out: a change nobody runs is not a
    /// success.
    async fn for_hosts(&self, remote: &Remote, d: &v1::Deployment) -> anyhow::Result<()> {
        if self.no_wait {
            return Ok(());
        }
        let mut c = client(remote).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        let (watching, reports) = loop {
            tick.tick().await;
            let s = c
                .show_strategy(v1::ShowStrategyRequest {
                    name: d.name.clone(),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let reports: Vec<v1::RolloutReport> = s
                .rollouts
                .into_iter()
                .filter(|r| r.revision >= d.revision)
                .collect();
            let all_in = !s.watching_hosts.is_empty()
                && s.watching_hosts
                    .iter()
                    .all(|h| reports.iter().any(|r| &r.host == h));
            if all_in || tokio::time::Instant::now() >= deadline {
                break (s.watching_hosts, reports);
            }
        };
        let refused: Vec<&v1::RolloutReport> = reports.iter().filter(|r| !r.switched).collect();
        for r in &reports {
            if r.switched {
                eprintln!(
                    "  {}: running {}@{} x{} (revision {}, longest pause {} µs)",
                    Escaped(&r.host),
                    d.name,
                    Escaped(&r.version),
                    r.instances,
                    r.revision,
                    r.max_pause_ns / 1_000
                );
            } else {
                eprintln!(
                    "  {}: REFUSED revision {}: {}",
                    Escaped(&r.host),
                    r.revision,
                    Escaped(&r.error)
                );
            }
        }
        let silent: Vec<&String> = watching
            .iter()
            .filter(|h| !reports.iter().any(|r| &r.host == *h))
            .collect();
        if !refused.is_empty() {
            anyhow::bail!(
                "{} of {} host(s) refused revision {} of {}",
                refused.len(),
                reports.len(),
                d.revision,
                d.name
            );
        }
        if watching.is_empty() && reports.is_empty() {
            anyhow::bail!(
                "no host is watching deployments, so nothing runs revision {} of {} yet (start hosts with --watch-deployments, or pass --no-wait)",
                d.revision,
                d.name
            );
        }
        if !silent.is_empty() {
            anyhow::bail!(
                "timed out after {:?}: {} host(s) did not report on revision {} of {}: {}",
                self.timeout,
                silent.len(),
                d.revision,
                d.name,
                silent
                    .iter()
                    .map(|h| Escaped(h).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(())
    }
}

fn print_deployment(remote: &Remote, d: &v1::Deployment) -> anyhow::Result<()> {
    if remote.json {
        print_json(&deployment_json(d))?;
    } else {
        println!(
            "{}@{} x{} at revision {} (by {})",
            Escaped(&d.name),
            Escaped(&d.version),
            d.instances,
            d.revision,
            Escaped(&d.deployed_by)
        );
    }
    Ok(())
}

fn print_versions(versions: &[v1::StrategyVersion]) {
    if versions.is_empty() {
        println!("  (no strategies)");
        return;
    }
    let rows = versions
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.version.clone(),
                short(&v.sha256),
                v.size_bytes.to_string(),
                v.world.clone(),
                if v.stateful { "yes" } else { "no" }.into(),
                v.uploader.clone(),
                time(v.created_at_ms),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "VERSION", "SHA256", "BYTES", "WORLD", "STATEFUL", "UPLOADER", "CREATED",
        ],
        rows,
    );
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

/// The engine's answer as one line of JSON, escaped so nothing in it acts on a terminal.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", json(value)?);
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart. Cells hold the engine's text
/// (names, configs, refusal reasons): escaped before they are measured and printed.
fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|cell| stratbox_host::display::escape(&cell).into_owned())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn version_json(v: &v1::StrategyVersion) -> serde_json::Value {
    serde_json::json!({
        "name": v.name,
        "version": v.version,
        "sha256": v.sha256,
        "world": v.world,
        "uploader": v.uploader,
        "created_at_ms": v.created_at_ms,
        "size_bytes": v.size_bytes,
        "stateful": v.stateful,
    })
}

fn deployment_json(d: &v1::Deployment) -> serde_json::Value {
    serde_json::json!({
        "name": d.name,
        "version": d.version,
        "sha256": d.sha256,
        "instances": d.instances,
        "config_json": d.config_json,
        "revision": d.revision,
        "deployed_by": d.deployed_by,
        "at_ms": d.at_ms,
    })
}

/// `L0, halted by limit_daily_loss at ...` / `L2 (restored by alice at ...)`, with the record.
fn permission_line(p: &v1::Permission) -> String {
    let mut s = p.level.clone();
    if !p.breach_code.is_empty() {
        s.push_str(&format!(
            ", halted by {} at {} until an operator restores it (`stratbox strategy restore`)",
            p.breach_code,
            time(p.breach_at_ms)
        ));
    } else if !p.restored_by.is_empty() {
        s.push_str(&format!(
            " (restored by {} at {})",
            p.restored_by,
            time(p.restored_at_ms)
        ));
    }
    s.push_str(&format!(
        "; at this level: {} days, {} won / {} lost / {} flat trades",
        p.days_at_level, p.trades_won, p.trades_lost, p.trades_flat
    ));
    s
}

fn permission_json(p: &v1::Permission) -> serde_json::Value {
    serde_json::json!({
        "strategy": p.strategy,
        "level": p.level,
        "breach_code": p.breach_code,
        "breach_at_ms": p.breach_at_ms,
        "restored_by": p.restored_by,
        "restored_at_ms": p.restored_at_ms,
        "days_at_level": p.days_at_level,
        "trades_won": p.trades_won,
        "trades_lost": p.trades_lost,
        "trades_flat": p.trades_flat,
        "losing_trade_streak": p.losing_trade_streak,
    })
}

fn rollout_json(r: &v1::RolloutReport) -> serde_json::Value {
    serde_json::json!({
        "host": r.host,
        "name": r.name,
        "version": r.version,
        "revision": r.revision,
        "switched": r.switched,
        "error": r.error,
        "max_pause_ns": r.max_pause_ns,
        "markets": r.markets,
        "instances": r.instances,
        "at_ms": r.at_ms,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_formats_utc() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(super::time(1_700_000_000_123), "2023-11-14 22:13:20");
    }

    #[test]
    fn an_unimplemented_call_says_what_it_likely_means() {
        let e = super::rpc(tonic::Status::unimplemented("")).to_string();
        assert!(
            e.contains("does not offer this call") && e.contains("stratbox up"),
            "{e}"
        );
        let e = super::rpc(tonic::Status::not_found("no strategy \"x\"")).to_string();
        assert_eq!(e, "no strategy \"x\" (NotFound)");
    }
}
