//! Shared by the deploy-file tests (`tests/deploy_*.rs`): loading `deploy/compose.yaml`
//! and `deploy/k8s/*.yaml`, the `stratbox` command lines they run, and the rule for a
//! missing outside tool (fail under CI, say so loudly elsewhere).
//!
//! Each test target includes this module on its own and uses a different part of it.
#![allow(dead_code)]

use serde::Deserialize;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

// ── files ────────────────────────────────────────────────────────────────────────────

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn parse_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

pub fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().map(scalar).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Null => Vec::new(),
        other => panic!("expected a list, found {other:?}"),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

pub fn mapping_keys(value: &Value) -> BTreeSet<String> {
    value
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;

// ── compose ──────────────────────────────────────────────────────────────────────────

pub fn compose_file() -> PathBuf {
    deploy_dir().join("compose.yaml")
}

pub fn compose() -> Value {
    let mut docs = parse_docs(&compose_file());
    assert_eq!(docs.len(), 1, "compose.yaml must be a single YAML document");
    docs.remove(0)
}

pub fn compose_services(doc: &Value) -> BTreeMap<String, Value> {
    doc["services"]
        .as_mapping()
        .unwrap_or_else(|| panic!("compose.yaml has no services mapping"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v.clone()))
        .collect()
}

/// A service's `environment`, in either of Compose's two spellings.
pub fn compose_environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| {
                let value = if v.is_null() {
                    String::new()
                } else {
                    scalar(v)
                };
                (scalar(k), value)
            })
            .collect(),
        Value::Sequence(_) => string_list(&service["environment"])
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv, String::new()),
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment {other:?}"),
    }
}

/// CPU counts in thousandths, so no float comparison decides a test.
pub fn compose_cpu_millis(value: &Value) -> u64 {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => panic!("cpus {other:?}"),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let whole: u64 = whole.parse().unwrap_or_else(|e| panic!("cpus {text}: {e}"));
    let frac = format!("{frac:0<3}");
    let frac: u64 = frac[..3]
        .parse()
        .unwrap_or_else(|e| panic!("cpus {text}: {e}"));
    whole * 1000 + frac
}

// ── kubernetes ───────────────────────────────────────────────────────────────────────

pub const ZONE_NAMESPACES: [&str; 3] = [
    "stratbox-intelligence",
    "stratbox-sandbox",
    "stratbox-fortress",
];

pub fn k8s_dir() -> PathBuf {
    deploy_dir().join("k8s")
}

pub fn k8s_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap_or_else(|e| panic!("read deploy/k8s: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// Every object in deploy/k8s except the kustomization itself.
pub fn k8s_objects() -> Vec<Value> {
    k8s_files()
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .flat_map(|p| parse_docs(p))
        .collect()
}

pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o["kind"].as_str() == Some(kind))
        .collect()
}

pub fn find<'a>(objects: &'a [Value], kind: &str, namespace: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"].as_str() == Some(kind)
                && o["metadata"]["namespace"].as_str() == Some(namespace)
                && o["metadata"]["name"].as_str() == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name}"))
}

pub fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

/// A workload's containers and then its init containers.
pub fn containers(workload: &Value) -> Vec<&Value> {
    let spec = pod_spec(workload);
    let mut all: Vec<&Value> = Vec::new();
    for key in ["containers", "initContainers"] {
        if let Some(list) = spec[key].as_sequence() {
            all.extend(list.iter());
        }
    }
    all
}

pub fn workloads(objects: &[Value]) -> Vec<&Value> {
    let mut all = of_kind(objects, "Deployment");
    all.extend(of_kind(objects, "StatefulSet"));
    all
}

// ── the stratbox command lines the files run ─────────────────────────────────────────

/// One `stratbox …` invocation written in a deploy file, with the environment the file
/// gives the process that runs it.
#[derive(Clone, Debug)]
pub struct CommandLine {
    /// Where it is written, for messages: `compose.yaml services.engine.command`.
    pub origin: String,
    /// The compose service or Kubernetes workload it belongs to.
    pub service: String,
    /// The container it runs in (its environment's owner): `compose.yaml services.engine`,
    /// `k8s/host.yaml host/host`.
    pub scope: String,
    /// argv, starting with `stratbox`.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl CommandLine {
    /// The subcommand it runs (`engine`, `health`, …): its first non-flag argument.
    pub fn subcommand(&self) -> Option<&str> {
        self.argv[1..]
            .iter()
            .find(|a| !a.starts_with('-'))
            .map(String::as_str)
    }
}

/// The image's `ENTRYPOINT ["/usr/local/bin/stratbox"]`: a container of the stratbox image
/// that sets no command of its own runs `stratbox` with the given arguments.
fn is_stratbox_image(image: Option<&str>) -> bool {
    image.is_some_and(|i| i.starts_with("stratbox:"))
}

fn is_stratbox_program(program: &str) -> bool {
    program == "stratbox" || program.ends_with("/stratbox")
}

/// Every `stratbox` command line in deploy/compose.yaml: each stratbox service's `command`
/// (run by the image's entrypoint) and each health check that runs `stratbox`.
pub fn compose_command_lines() -> Vec<CommandLine> {
    let mut lines = Vec::new();
    for (name, svc) in compose_services(&compose()) {
        let env = compose_environment(&svc);
        let stratbox_image = is_stratbox_image(svc["image"].as_str());
        if stratbox_image {
            assert!(
                svc["entrypoint"].is_null(),
                "{name} overrides the stratbox entrypoint; teach this test to read it"
            );
            let mut argv = vec!["stratbox".to_owned()];
            argv.extend(string_list(&svc["command"]));
            lines.push(CommandLine {
                origin: format!("compose.yaml services.{name}.command"),
                service: name.clone(),
                scope: format!("compose.yaml services.{name}"),
                argv,
                env: env.clone(),
            });
        }
        let test = string_list(&svc["healthcheck"]["test"]);
        let argv: Vec<String> = match test.first().map(String::as_str) {
            Some("CMD") => test[1..].to_vec(),
            // No shell quoting in our health checks; split as the shell would on spaces.
            Some("CMD-SHELL") => test[1..]
                .join(" ")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if argv.first().is_some_and(|p| is_stratbox_program(p)) {
            lines.push(CommandLine {
                origin: format!("compose.yaml services.{name}.healthcheck.test"),
                service: name.clone(),
                scope: format!("compose.yaml services.{name}"),
                argv: std::iter::once("stratbox".to_owned())
                    .chain(argv[1..].iter().cloned())
                    .collect(),
                env,
            });
        }
    }
    lines
}

/// A container's `env` list. A value from a Secret or ConfigMap is unknown here; it is
/// given as a placeholder, which parses wherever any string does.
fn k8s_env(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e["name"].as_str().unwrap_or_default().to_owned();
            let value = match &e["value"] {
                Value::Null if !e["valueFrom"].is_null() => "from-valueFrom".to_owned(),
                Value::Null => String::new(),
                v => scalar(v),
            };
            (name, value)
        })
        .collect()
}

/// Every `stratbox` command line in deploy/k8s: each container's command (the image's
/// entrypoint with `args`, or an explicit `command` that runs stratbox) and each exec probe
/// that runs `stratbox`.
pub fn k8s_command_lines() -> Vec<CommandLine> {
    let mut lines = Vec::new();
    for file in k8s_files() {
        let file_name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        for doc in parse_docs(&file) {
            if !matches!(
                doc["kind"].as_str(),
                Some("Deployment" | "StatefulSet" | "DaemonSet" | "Job")
            ) {
                continue;
            }
            let workload = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for c in containers(&doc) {
                let cname = c["name"].as_str().unwrap_or_default();
                let env = k8s_env(c);
                let command = string_list(&c["command"]);
                let args = string_list(&c["args"]);
                let argv = if command.is_empty() {
                    is_stratbox_image(c["image"].as_str()).then(|| {
                        std::iter::once("stratbox".to_owned())
                            .chain(args.iter().cloned())
                            .collect::<Vec<_>>()
                    })
                } else if command.first().is_some_and(|p| is_stratbox_program(p)) {
                    Some(
                        std::iter::once("stratbox".to_owned())
                            .chain(command[1..].iter().cloned())
                            .chain(args.iter().cloned())
                            .collect(),
                    )
                } else {
                    None
                };
                if let Some(argv) = argv {
                    lines.push(CommandLine {
                        origin: format!("k8s/{file_name} {workload}/{cname} args"),
                        service: workload.clone(),
                        scope: format!("k8s/{file_name} {workload}/{cname}"),
                        argv,
                        env: env.clone(),
                    });
                }
                for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                    let exec = string_list(&c[probe]["exec"]["command"]);
                    if exec.first().is_some_and(|p| is_stratbox_program(p)) {
                        lines.push(CommandLine {
                            origin: format!("k8s/{file_name} {workload}/{cname} {probe}"),
                            service: workload.clone(),
                            scope: format!("k8s/{file_name} {workload}/{cname}"),
                            argv: std::iter::once("stratbox".to_owned())
                                .chain(exec[1..].iter().cloned())
                                .collect(),
                            env: env.clone(),
                        });
                    }
                }
            }
        }
    }
    lines
}

// ── outside tools ────────────────────────────────────────────────────────────────────

/// Runs `tool ARGS` in `dir`: whether it succeeded, and its stdout and stderr together.
pub fn run_tool(tool: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `docker-compose`/`openssl`/`python3` may be missing on a fresh CI machine; CI runs as
/// root with apt, so install rather than skip. Returns why it could not, if it could not.
pub fn ensure_tool(binary: &str, probe_arg: &str, apt_package: &str) -> Result<(), String> {
    let present = |b: &str| {
        Command::new(b)
            .arg(probe_arg)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if present(binary) {
        return Ok(());
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!(
            "`{binary}` is missing and there is no apt-get to install {apt_package}"
        ));
    }
    // Other test processes may be running apt at the same moment: retry around the lock.
    let mut last = String::new();
    for _ in 0..3 {
        let update = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300", "update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
        let install = Command::new("apt-get")
            .args([
                "-o",
                "DPkg::Lock::Timeout=300",
                "install",
                "-y",
                "-q",
                apt_package,
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
        match (update, install) {
            (_, Ok(out)) if out.status.success() && present(binary) => return Ok(()),
            (_, Ok(out)) => last = String::from_utf8_lossy(&out.stderr).into_owned(),
            (_, Err(e)) => last = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    Err(format!("`apt-get install {apt_package}` failed: {last}"))
}
