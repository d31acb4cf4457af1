//! The deployment files say the same thing as the design: three zones, and a signer that
//! only the engine can reach.
//!
//! There is no Docker engine on the machines that run this, so nothing is started. What is
//! checked instead:
//! - `deploy/compose.yaml` against the Compose specification, with Debian's
//!   `docker-compose` (1.29, Python; it validates against its bundled
//!   `compose_spec.json`). The test installs it with apt when it is missing, and proves the
//!   validator is live by feeding it a broken copy that it must reject.
//! - The same file structurally (parsed here): which service sits on which network, and
//!   therefore who can open a connection to whom; limits, health checks, restart policies,
//!   hardening; credentials only through secrets.
//! - `deploy/k8s/` against the Kubernetes API schemas (1.30 and 1.37, strict), with
//!   `kubernetes-validate` from PyPI in a venv under Cargo's test tmp dir, again with a
//!   broken copy that must be rejected.
//! - `deploy/k8s/`: every document parses and is well formed, workloads meet Pod Security
//!   "restricted", the HPA scales the host Deployment, and the NetworkPolicies are
//!   *evaluated* (a small model of NetworkPolicy semantics below) to assert the exact
//!   reachability matrix between the zones.
//! - `deploy/Containerfile` and `deploy/gen-dev-secrets.sh` for the properties the compose
//!   file relies on (non-root uid 10001, the mTLS pair the signer expects).

use serde::Deserialize;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

// ── plumbing ─────────────────────────────────────────────────────────────────────────

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse_docs(path: &Path) -> Vec<Value> {
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

fn compose() -> Value {
    let mut docs = parse_docs(&deploy_dir().join("compose.yaml"));
    assert_eq!(docs.len(), 1, "compose.yaml must be a single YAML document");
    docs.remove(0)
}

fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("expected a scalar in a list, found {other:?}"),
            })
            .collect(),
        Value::String(s) => vec![s.clone()],
        Value::Null => Vec::new(),
        other => panic!("expected a list, found {other:?}"),
    }
}

fn mapping_keys(value: &Value) -> BTreeSet<String> {
    value
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `ip`/`docker-compose`/`openssl` may be missing on a fresh CI machine; CI runs as root
/// with apt, so install rather than skip. Returns why it could not, if it could not.
fn ensure_tool(binary: &str, probe_arg: &str, apt_package: &str) -> Result<(), String> {
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

// ── Compose: the Compose specification, checked by docker-compose itself ───────────────

fn docker_compose_config(compose_file: &Path) -> std::process::Output {
    Command::new("docker-compose")
        .arg("-f")
        .arg(compose_file)
        .args(["config", "-q"])
        .output()
        .unwrap_or_else(|e| panic!("run docker-compose: {e}"))
}

#[test]
fn compose_file_passes_the_compose_specification() {
    if let Err(why) = ensure_tool("docker-compose", "version", "docker-compose") {
        eprintln!(
            "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             SKIPPED: deploy/compose.yaml was NOT validated against the Compose spec:\n\
             {why}\n\
             (the structural checks in the other tests of this file still ran)\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    }
    let compose_file = deploy_dir().join("compose.yaml");
    let out = docker_compose_config(&compose_file);
    assert!(
        out.status.success(),
        "docker-compose rejects deploy/compose.yaml:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let services = Command::new("docker-compose")
        .arg("-f")
        .arg(&compose_file)
        .args(["config", "--services"])
        .output()
        .unwrap_or_else(|e| panic!("run docker-compose: {e}"));
    assert!(services.status.success());
    let listed: BTreeSet<String> = String::from_utf8_lossy(&services.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        listed,
        set(&["engine", "host", "signer", "postgres", "redis", "anvil"])
    );

    // The validator is live: the same file with one unknown key in the host service, and
    // with the host's memory limit made nonsense, must both be rejected.
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let scratch_deploy = scratch.path().join("deploy");
    std::fs::create_dir_all(&scratch_deploy).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let original = read(&compose_file);
    let broken_variants = [
        original.replacen("  host:\n", "  host:\n    not_a_compose_key: true\n", 1),
        original.replacen("internal: true", "internal: \"sometimes\"", 1),
    ];
    for broken in broken_variants {
        assert_ne!(
            broken, original,
            "the mutation did not apply: update this test"
        );
        let path = scratch_deploy.join("compose.yaml");
        std::fs::write(&path, &broken).unwrap_or_else(|e| panic!("write: {e}"));
        let out = docker_compose_config(&path);
        assert!(
            !out.status.success(),
            "docker-compose accepted a file that breaks the spec; the validation above proves nothing"
        );
    }
}

// ── Compose: structure ───────────────────────────────────────────────────────────────

fn compose_services(doc: &Value) -> BTreeMap<String, Value> {
    doc["services"]
        .as_mapping()
        .unwrap_or_else(|| panic!("compose.yaml has no services mapping"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v.clone()))
        .collect()
}

fn service_networks(service: &Value) -> BTreeSet<String> {
    match &service["networks"] {
        Value::Sequence(_) => string_list(&service["networks"]).into_iter().collect(),
        Value::Mapping(_) => mapping_keys(&service["networks"]),
        // Compose puts a service with no networks on `default`.
        Value::Null => set(&["default"]),
        other => panic!("unexpected networks value {other:?}"),
    }
}

/// Who can open a connection to whom: on Docker bridge networks, exactly the containers
/// that share at least one network.
fn compose_can_reach(services: &BTreeMap<String, Value>, from: &str, to: &str) -> bool {
    let a = service_networks(&services[from]);
    let b = service_networks(&services[to]);
    a.intersection(&b).next().is_some()
}

#[test]
fn compose_zones_are_the_three_networks_of_the_design() {
    let doc = compose();
    let networks = &doc["networks"];
    assert_eq!(
        mapping_keys(networks),
        set(&["intelligence", "sandbox", "fortress"])
    );
    assert_eq!(
        networks["intelligence"]["internal"].as_bool(),
        Some(true),
        "Zone A must have no route out"
    );
    assert_eq!(
        networks["fortress"]["internal"].as_bool(),
        Some(true),
        "Zone C must have no route out"
    );

    let services = compose_services(&doc);
    let expected: BTreeMap<&str, BTreeSet<String>> = [
        ("engine", set(&["intelligence", "sandbox", "fortress"])),
        ("host", set(&["intelligence"])),
        ("signer", set(&["fortress"])),
        ("redis", set(&["intelligence", "sandbox"])),
        ("postgres", set(&["sandbox"])),
        ("anvil", set(&["sandbox"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        services.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected.keys().copied().collect::<BTreeSet<_>>()
    );
    for (name, nets) in &expected {
        assert_eq!(
            &service_networks(&services[*name]),
            nets,
            "networks of {name}"
        );
        for key in [
            "network_mode",
            "pid",
            "ipc",
            "links",
            "external_links",
            "extra_hosts",
        ] {
            assert!(
                services[*name][key].is_null(),
                "{name} sets {key}, which can bypass the zone networks"
            );
        }
    }

    let members = |net: &str| -> BTreeSet<String> {
        services
            .iter()
            .filter(|(_, svc)| service_networks(svc).contains(net))
            .map(|(name, _)| name.clone())
            .collect()
    };
    assert_eq!(members("intelligence"), set(&["host", "redis", "engine"]));
    assert_eq!(members("fortress"), set(&["engine", "signer"]));
}

#[test]
fn compose_signer_is_reachable_only_from_the_engine_and_hosts_only_reach_bus_and_engine() {
    let services = compose_services(&compose());
    for name in services.keys().filter(|n| *n != "signer") {
        assert_eq!(
            compose_can_reach(&services, name, "signer"),
            name == "engine",
            "{name} -> signer"
        );
    }
    let host_reaches: BTreeSet<String> = services
        .keys()
        .filter(|n| *n != "host" && compose_can_reach(&services, "host", n))
        .cloned()
        .collect();
    assert_eq!(host_reaches, set(&["engine", "redis"]));
    // Nothing publishes a port on the Docker host: the zones are only reachable from
    // inside their networks (README: add an override file for operator access).
    for (name, svc) in &services {
        assert!(svc["ports"].is_null(), "{name} publishes ports");
    }
}

/// Compose memory strings: a number with an optional b/k/m/g unit (powers of 1024).
fn compose_bytes(value: &Value) -> u64 {
    let text = match value {
        Value::String(s) => s.trim().to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        other => panic!("memory limit {other:?}"),
    };
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (digits, factor) = match text.chars().last() {
        Some('k') => (&text[..text.len() - 1], 1u64 << 10),
        Some('m') => (&text[..text.len() - 1], 1 << 20),
        Some('g') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .unwrap_or_else(|e| panic!("memory limit {value:?}: {e}"))
        * factor
}

/// CPU counts in thousandths, so no float comparison decides a test.
fn compose_cpu_millis(value: &Value) -> u64 {
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

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

#[test]
fn compose_resource_limits_follow_the_seed_quotas() {
    let services = compose_services(&compose());
    let limits = |name: &str| {
        let l = &services[name]["deploy"]["resources"]["limits"];
        assert!(!l.is_null(), "{name} has no deploy.resources.limits");
        (compose_cpu_millis(&l["cpus"]), compose_bytes(&l["memory"]))
    };
    assert_eq!(limits("engine"), (4000, 8 * GIB));
    assert_eq!(limits("host"), (1000, 2 * GIB));
    assert_eq!(limits("redis"), (2000, 4 * GIB));
    assert_eq!(limits("anvil"), (2000, 4 * GIB));
    let (cpu, mem) = limits("signer");
    assert!(
        cpu <= 1000 && mem <= 512 * MIB,
        "the signer is meant to be small"
    );
    let (cpu, mem) = limits("postgres");
    assert!(cpu > 0 && mem > 0);
    for (name, svc) in &services {
        let reservations = &svc["deploy"]["resources"]["reservations"];
        let (limit_cpu, limit_mem) = limits(name);
        assert!(
            compose_cpu_millis(&reservations["cpus"]) <= limit_cpu
                && compose_bytes(&reservations["memory"]) <= limit_mem,
            "{name} reserves more than its limit"
        );
        assert!(
            svc["pids_limit"].as_i64().is_some_and(|n| n > 0),
            "{name} has no pids_limit"
        );
    }
}

#[test]
fn compose_every_service_is_hardened_health_checked_and_restarted() {
    let services = compose_services(&compose());
    for (name, svc) in &services {
        assert_eq!(
            svc["read_only"].as_bool(),
            Some(true),
            "{name}: read_only root fs"
        );
        assert!(
            string_list(&svc["security_opt"]).contains(&"no-new-privileges:true".to_owned()),
            "{name}: no-new-privileges"
        );
        assert!(
            string_list(&svc["cap_drop"]).contains(&"ALL".to_owned()),
            "{name}: cap_drop ALL"
        );
        assert!(string_list(&svc["cap_add"]).is_empty(), "{name}: cap_add");
        assert_ne!(
            svc["privileged"].as_bool(),
            Some(true),
            "{name}: privileged"
        );
        let user = svc["user"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no user"));
        let uid = user.split(':').next().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid != "0" && uid != "root",
            "{name} runs as root ({user})"
        );
        let health = &svc["healthcheck"];
        assert_ne!(
            health["disable"].as_bool(),
            Some(true),
            "{name}: healthcheck disabled"
        );
        let test = string_list(&health["test"]);
        assert!(
            test.first().is_some_and(|t| t == "CMD" || t == "CMD-SHELL") && test.len() > 1,
            "{name}: healthcheck test {test:?}"
        );
        assert!(
            matches!(
                svc["restart"].as_str(),
                Some("always" | "unless-stopped" | "on-failure")
            ),
            "{name}: restart policy"
        );
    }
}

#[test]
fn compose_host_scales_and_mounts_strategies_read_only() {
    let services = compose_services(&compose());
    let host = &services["host"];
    for key in ["container_name", "hostname", "ports", "mac_address"] {
        assert!(
            host[key].is_null(),
            "host sets {key}: `--scale host=50` would clash"
        );
    }
    let mounts = host["volumes"]
        .as_sequence()
        .unwrap_or_else(|| panic!("host mounts no strategies"));
    let strategies: Vec<&Value> = mounts
        .iter()
        .filter(|m| m["target"].as_str() == Some("/strategies"))
        .collect();
    assert_eq!(strategies.len(), 1, "exactly one /strategies mount");
    assert_eq!(strategies[0]["read_only"].as_bool(), Some(true));
    for mount in mounts {
        assert_eq!(
            mount["read_only"].as_bool(),
            Some(true),
            "every host mount is read-only: {mount:?}"
        );
    }
    assert_eq!(
        string_list(&host["command"]),
        [
            "host",
            "--engine",
            "http://engine:50051",
            "--bus",
            "redis://redis:6379",
            "--strategies",
            "/strategies",
            "--watch-deployments"
        ]
    );
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

#[test]
fn compose_services_run_the_stratbox_subcommands() {
    let doc = compose();
    let services = compose_services(&doc);
    let engine = string_list(&services["engine"]["command"]);
    assert_eq!(engine.first().map(String::as_str), Some("engine"));
    assert_eq!(
        arg_after(&engine, "--listen").as_deref(),
        Some("0.0.0.0:50051")
    );
    assert_eq!(
        arg_after(&engine, "--bus").as_deref(),
        Some("redis://redis:6379")
    );
    assert_eq!(
        arg_after(&engine, "--signer").as_deref(),
        Some("https://signer:50061")
    );
    let database = arg_after(&engine, "--database").unwrap_or_default();
    assert!(database.starts_with("postgres://"), "{database}");

    // The engine runs the same image as host and signer: one build for every zone.
    let image = services["engine"]["image"].as_str().map(str::to_owned);
    assert!(image.is_some());
    for name in ["host", "signer"] {
        assert_eq!(services[name]["image"].as_str().map(str::to_owned), image);
    }

    let signer = string_list(&services["signer"]["command"]);
    assert_eq!(signer.first().map(String::as_str), Some("signer"));
    assert_eq!(
        arg_after(&signer, "--listen").as_deref(),
        Some("0.0.0.0:50061")
    );
    let mounted: BTreeSet<String> = string_list(&services["signer"]["secrets"])
        .into_iter()
        .collect();
    for flag in ["--tls-cert", "--tls-key", "--client-ca"] {
        let path = arg_after(&signer, flag).unwrap_or_else(|| panic!("signer lacks {flag}"));
        let secret = path
            .strip_prefix("/run/secrets/")
            .unwrap_or_else(|| panic!("{flag} {path} is not a compose secret"));
        assert!(
            mounted.contains(secret),
            "{flag}: secret {secret} not mounted"
        );
    }
}

/// `scheme://user:password@host`: the shape of a credential pasted into a URL.
fn has_inline_url_credentials(text: &str) -> bool {
    text.split("://").skip(1).any(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

fn all_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|v| all_strings(v, out)),
        Value::Mapping(map) => map.iter().for_each(|(k, v)| {
            all_strings(k, out);
            all_strings(v, out);
        }),
        Value::Tagged(tagged) => all_strings(&tagged.value, out),
        _ => {}
    }
}

#[test]
fn compose_credentials_come_only_from_secret_files() {
    assert!(has_inline_url_credentials("postgres://u:p@db:5432/x"));
    assert!(!has_inline_url_credentials("postgres://u@db:5432/x"));
    assert!(!has_inline_url_credentials("redis://redis:6379"));

    let doc = compose();
    let mut strings = Vec::new();
    all_strings(&doc, &mut strings);
    for s in &strings {
        assert!(!has_inline_url_credentials(s), "inline credential in {s}");
    }

    let declared = doc["secrets"]
        .as_mapping()
        .unwrap_or_else(|| panic!("no top-level secrets"));
    for (name, secret) in declared {
        let file = secret["file"]
            .as_str()
            .unwrap_or_else(|| panic!("secret {name:?} is not file-based"));
        assert!(
            file.starts_with("./secrets/"),
            "secret {name:?} lives outside deploy/secrets: {file}"
        );
    }
    let gitignore = read(&deploy_dir().join("secrets/.gitignore"));
    assert!(
        gitignore.lines().any(|l| l.trim() == "*"),
        "deploy/secrets/.gitignore must ignore everything"
    );

    for (name, svc) in compose_services(&doc) {
        for secret in string_list(&svc["secrets"]) {
            assert!(
                declared.contains_key(Value::String(secret.clone())),
                "{name} mounts undeclared secret {secret}"
            );
        }
        assert!(
            svc["env_file"].is_null(),
            "{name}: credentials go in secrets"
        );
        if let Some(env) = svc["environment"].as_mapping() {
            for (key, value) in env {
                let key = key.as_str().unwrap_or_default();
                let sensitive = ["PASSWORD", "SECRET", "TOKEN", "KEY", "PGPASS"]
                    .iter()
                    .any(|w| key.to_ascii_uppercase().contains(w));
                if sensitive {
                    let value = value.as_str().unwrap_or_default();
                    assert!(
                        value.starts_with("/run/secrets/"),
                        "{name}: {key} must point at a mounted secret, found {value:?}"
                    );
                    let secret = value.trim_start_matches("/run/secrets/");
                    assert!(
                        string_list(&svc["secrets"]).iter().any(|s| s == secret),
                        "{name}: {key} names {secret}, which it does not mount"
                    );
                }
            }
        }
    }
}

// ── Containerfile and the development secrets ──────────────────────────────────────────

#[test]
fn containerfile_builds_stratbox_with_wasm_target_and_runs_unprivileged() {
    let text = read(&deploy_dir().join("Containerfile"));
    // Split into stages at each FROM (continuation lines joined first).
    let joined = text.replace("\\\n", " ");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("FROM ") {
            stages.push((rest.trim().to_owned(), Vec::new()));
        } else if let Some((_, body)) = stages.last_mut() {
            body.push(line.to_owned());
        }
    }
    assert!(stages.len() >= 2, "multi-stage build expected");
    let builder = stages
        .iter()
        .find(|(from, _)| from.starts_with("rust:1.95"))
        .unwrap_or_else(|| panic!("no rust:1.95 builder stage"));
    let builder_text = builder.1.join("\n");
    assert!(builder_text.contains("rustup target add wasm32-wasip2"));
    assert!(builder_text.contains("cargo build --release"));
    assert!(builder_text.contains("-p stratbox"));

    let (runtime_from, runtime) = stages.last().unwrap_or_else(|| unreachable!());
    assert!(
        runtime_from.starts_with("debian:bookworm-slim")
            || runtime_from.starts_with("gcr.io/distroless/"),
        "runtime base {runtime_from}"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap_or_else(|| panic!("runtime stage sets no USER"));
    let uid = user.trim().split(':').next().unwrap_or_default();
    assert_eq!(
        uid, "10001",
        "compose and k8s run the stratbox services as 10001"
    );
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT") && l.contains("stratbox"))
    );

    // The build context is the repository root: target/ must not be sent.
    let ignore = read(&deploy_dir().join("Containerfile.dockerignore"));
    assert!(
        ignore
            .lines()
            .any(|l| l.trim().trim_end_matches('/') == "target")
    );
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run openssl: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn dev_secrets_give_the_signer_a_client_ca_that_trusts_only_the_engine() {
    if let Err(why) = ensure_tool("openssl", "version", "openssl") {
        panic!("openssl is needed to check deploy/gen-dev-secrets.sh: {why}");
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = Command::new("bash")
        .arg(deploy_dir().join("gen-dev-secrets.sh"))
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("run gen-dev-secrets.sh: {e}"));
    assert!(
        out.status.success(),
        "gen-dev-secrets.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every file compose.yaml mounts exists.
    let doc = compose();
    for (name, secret) in doc["secrets"].as_mapping().into_iter().flatten() {
        let file = secret["file"].as_str().unwrap_or_default();
        let file = file.trim_start_matches("./secrets/");
        assert!(
            dir.path().join(file).is_file(),
            "secret {name:?}: {file} not made"
        );
    }
    // CA private keys stay out of the directory compose mounts secrets from... by name.
    assert!(!dir.path().join("signer_ca.key").exists());
    assert!(!dir.path().join("signer_client_ca.key").exists());

    let d = dir.path();
    let verify = |ca: &str, purpose: &str, cert: &str| {
        openssl(d, &["verify", "-purpose", purpose, "-CAfile", ca, cert])
    };
    let (ok, log) = verify("signer_ca.pem", "sslserver", "signer_tls.pem");
    assert!(ok, "signer server cert: {log}");
    let (ok, log) = verify(
        "signer_client_ca.pem",
        "sslclient",
        "engine_signer_client.pem",
    );
    assert!(ok, "engine client cert: {log}");
    // The signer's client CA must not vouch for any other certificate of the deployment.
    let (ok, _) = verify("signer_client_ca.pem", "sslclient", "signer_tls.pem");
    assert!(
        !ok,
        "the signer's own server cert must not pass as a client"
    );
    // The engine's client cert is not a server cert.
    let (ok, _) = verify(
        "signer_client_ca.pem",
        "sslserver",
        "engine_signer_client.pem",
    );
    assert!(
        !ok,
        "the engine's client cert must not be usable as a server cert"
    );
    let (ok, text) = openssl(
        d,
        &[
            "x509",
            "-in",
            "signer_tls.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(ok && text.contains("DNS:signer"), "signer SAN: {text}");

    // The pgpass line names the host/port/db/user of the engine's --database URL and
    // carries the password postgres is initialised with.
    let password = read(&d.join("postgres_password"));
    let pgpass = read(&d.join("engine_pgpass"));
    let services = compose_services(&doc);
    let engine = string_list(&services["engine"]["command"]);
    let url = arg_after(&engine, "--database").unwrap_or_default();
    let rest = url.trim_start_matches("postgres://");
    let (user, rest) = rest.split_once('@').unwrap_or_default();
    let (hostport, db) = rest.split_once('/').unwrap_or_default();
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    assert_eq!(
        pgpass.trim_end(),
        format!("{host}:{port}:{db}:{user}:{password}")
    );
    assert_eq!(
        services["postgres"]["environment"]["POSTGRES_USER"].as_str(),
        Some(user)
    );
    assert_eq!(
        services["postgres"]["environment"]["POSTGRES_DB"].as_str(),
        Some(db)
    );
    assert!(password.len() >= 32);

    // sqlx (like libpq) silently ignores a password file that group or others can read.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("engine_pgpass"))
        .map(|m| m.permissions().mode())
        .unwrap_or_else(|e| panic!("stat engine_pgpass: {e}"));
    assert_eq!(
        mode & 0o077,
        0,
        "engine_pgpass mode {mode:o}: sqlx would ignore it"
    );
}

// ── Kubernetes ─────────────────────────────────────────────────────────────────────────

const ZONE_NAMESPACES: [&str; 3] = [
    "stratbox-intelligence",
    "stratbox-sandbox",
    "stratbox-fortress",
];

fn k8s_dir() -> PathBuf {
    deploy_dir().join("k8s")
}

fn k8s_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap_or_else(|e| panic!("read deploy/k8s: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// Every object in deploy/k8s except the kustomization itself.
fn k8s_objects() -> Vec<Value> {
    k8s_files()
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .flat_map(|p| parse_docs(p))
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o["kind"].as_str() == Some(kind))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, namespace: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"].as_str() == Some(kind)
                && o["metadata"]["namespace"].as_str() == Some(namespace)
                && o["metadata"]["name"].as_str() == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name}"))
}

#[test]
fn k8s_manifests_parse_and_are_complete() {
    let objects = k8s_objects();
    let cluster_scoped = ["Namespace", "PriorityClass"];
    for o in &objects {
        let kind = o["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("no kind: {o:?}"));
        assert!(
            o["apiVersion"].as_str().is_some(),
            "{kind} without apiVersion"
        );
        assert!(
            o["metadata"]["name"].as_str().is_some(),
            "{kind} without a name"
        );
        if !cluster_scoped.contains(&kind) {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            assert!(ZONE_NAMESPACES.contains(&ns), "{kind} in namespace {ns:?}");
        }
    }
    let namespaces: BTreeSet<String> = of_kind(&objects, "Namespace")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(namespaces, set(&ZONE_NAMESPACES));

    for (kind, ns, name) in [
        ("Deployment", "stratbox-sandbox", "engine"),
        ("Deployment", "stratbox-intelligence", "host"),
        ("Deployment", "stratbox-fortress", "signer"),
        ("StatefulSet", "stratbox-sandbox", "postgres"),
        ("StatefulSet", "stratbox-sandbox", "redis"),
        ("Service", "stratbox-sandbox", "engine"),
        ("Service", "stratbox-sandbox", "postgres"),
        ("Service", "stratbox-sandbox", "redis"),
        ("Service", "stratbox-fortress", "signer"),
        ("HorizontalPodAutoscaler", "stratbox-intelligence", "host"),
    ] {
        find(&objects, kind, ns, name);
    }

    // kustomization.yaml lists exactly the manifest files in the directory.
    let kustomization = parse_docs(&k8s_dir().join("kustomization.yaml"));
    let listed: BTreeSet<String> = string_list(&kustomization[0]["resources"])
        .into_iter()
        .collect();
    let present: BTreeSet<String> = k8s_files()
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn containers(workload: &Value) -> Vec<&Value> {
    let spec = pod_spec(workload);
    let mut all: Vec<&Value> = Vec::new();
    for key in ["containers", "initContainers"] {
        if let Some(list) = spec[key].as_sequence() {
            all.extend(list.iter());
        }
    }
    all
}

fn workloads(objects: &[Value]) -> Vec<&Value> {
    let mut all = of_kind(objects, "Deployment");
    all.extend(of_kind(objects, "StatefulSet"));
    all
}

#[test]
fn k8s_workloads_meet_pod_security_restricted() {
    let objects = k8s_objects();
    for ns in of_kind(&objects, "Namespace") {
        assert_eq!(
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str(),
            Some("restricted"),
            "namespace {:?}",
            ns["metadata"]["name"]
        );
    }
    let all = workloads(&objects);
    assert!(all.len() >= 5);
    for w in all {
        let name = w["metadata"]["name"].as_str().unwrap_or_default();
        let spec = pod_spec(w);
        assert_eq!(
            spec["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{name}"
        );
        assert!(
            spec["securityContext"]["runAsUser"]
                .as_i64()
                .is_some_and(|u| u > 0),
            "{name}: runAsUser"
        );
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault"),
            "{name}"
        );
        assert_eq!(
            spec["automountServiceAccountToken"].as_bool(),
            Some(false),
            "{name}"
        );
        for key in ["hostNetwork", "hostPID", "hostIPC"] {
            assert_ne!(spec[key].as_bool(), Some(true), "{name}: {key}");
        }
        for volume in spec["volumes"].as_sequence().into_iter().flatten() {
            assert!(volume["hostPath"].is_null(), "{name}: hostPath volume");
        }
        // The workload's selector must select its own pods, or it manages nothing.
        let selector = w["spec"]["selector"]["matchLabels"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name}: no selector"));
        for (k, v) in selector {
            assert_eq!(
                &w["spec"]["template"]["metadata"]["labels"][k.as_str().unwrap_or_default()],
                v,
                "{name}: selector does not match pod labels"
            );
        }
        for c in containers(w) {
            let sc = &c["securityContext"];
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{name}"
            );
            assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{name}");
            assert_ne!(sc["privileged"].as_bool(), Some(true), "{name}: privileged");
            assert!(
                string_list(&sc["capabilities"]["drop"]).contains(&"ALL".to_owned()),
                "{name}: drop ALL"
            );
            assert!(
                string_list(&sc["capabilities"]["add"]).is_empty(),
                "{name}: cap add"
            );
            for side in ["requests", "limits"] {
                for res in ["cpu", "memory"] {
                    assert!(
                        !c["resources"][side][res].is_null(),
                        "{name}: resources.{side}.{res}"
                    );
                }
            }
        }
    }
}

fn k8s_cpu_millis(value: &Value) -> u64 {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("cpu {other:?}"),
    };
    match text.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or_else(|e| panic!("cpu {text}: {e}")),
        None => compose_cpu_millis(&Value::String(text)),
    }
}

fn k8s_bytes(value: &Value) -> u64 {
    let text = value.as_str().map(str::to_owned).unwrap_or_else(|| {
        value
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| panic!("memory {value:?}"))
    });
    for (suffix, factor) in [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
    ] {
        if let Some(n) = text.strip_suffix(suffix) {
            return n
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("memory {text}: {e}"))
                * factor;
        }
    }
    for (suffix, factor) in [("k", 1_000u64), ("M", 1_000_000), ("G", 1_000_000_000)] {
        if let Some(n) = text.strip_suffix(suffix) {
            return n
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("memory {text}: {e}"))
                * factor;
        }
    }
    text.parse()
        .unwrap_or_else(|e| panic!("memory {text}: {e}"))
}

/// sqlx ignores a PGPASSFILE that group or others can read, and a Secret volume a non-root
/// uid can read is group-readable: the engine must read it from a copy an init container
/// made, or from a volume whose mode has no group/other bits.
#[test]
fn k8s_engine_pgpass_is_readable_by_sqlx() {
    let objects = k8s_objects();
    let engine = find(&objects, "Deployment", "stratbox-sandbox", "engine");
    let container = containers(engine)
        .into_iter()
        .find(|c| c["name"].as_str() == Some("engine"))
        .unwrap_or_else(|| panic!("no engine container"));
    let pgpass = container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str() == Some("PGPASSFILE"))
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("engine has no PGPASSFILE"));
    let mount = container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|p| pgpass.starts_with(&format!("{p}/")))
        })
        .unwrap_or_else(|| panic!("PGPASSFILE {pgpass} is on no mounted volume"));
    let volume_name = mount["name"].as_str().unwrap_or_default();
    let volume = pod_spec(engine)["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"].as_str() == Some(volume_name))
        .unwrap_or_else(|| panic!("no volume {volume_name}"));
    if volume["emptyDir"].is_null() {
        for kind in ["secret", "projected"] {
            if let Some(mode) = volume[kind]["defaultMode"].as_u64() {
                assert_eq!(mode & 0o077, 0, "PGPASSFILE volume mode {mode:o}");
            }
        }
    } else {
        let written_by_init = pod_spec(engine)["initContainers"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|c| {
                let args = string_list(&c["command"]);
                args.iter().any(|a| a == pgpass)
                    && args.windows(2).any(|w| w[0] == "-m" && w[1] == "0400")
                    && c["volumeMounts"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .any(|m| m["name"].as_str() == Some(volume_name))
            });
        assert!(written_by_init, "nothing writes {pgpass} as 0400");
    }
}

#[test]
fn k8s_limits_match_compose_and_the_hpa_scales_hosts() {
    let objects = k8s_objects();
    let limits = |kind: &str, ns: &str, name: &str| {
        let w = find(&objects, kind, ns, name);
        let c = containers(w)[0];
        let l = &c["resources"]["limits"];
        let r = &c["resources"]["requests"];
        assert!(
            k8s_cpu_millis(&r["cpu"]) <= k8s_cpu_millis(&l["cpu"]),
            "{name}"
        );
        assert!(k8s_bytes(&r["memory"]) <= k8s_bytes(&l["memory"]), "{name}");
        (k8s_cpu_millis(&l["cpu"]), k8s_bytes(&l["memory"]))
    };
    assert_eq!(
        limits("Deployment", "stratbox-sandbox", "engine"),
        (4000, 8 * GIB)
    );
    assert_eq!(
        limits("Deployment", "stratbox-intelligence", "host"),
        (1000, 2 * GIB)
    );
    assert_eq!(
        limits("StatefulSet", "stratbox-sandbox", "redis"),
        (2000, 4 * GIB)
    );
    let (cpu, mem) = limits("Deployment", "stratbox-fortress", "signer");
    assert!(cpu <= 1000 && mem <= 512 * MIB);

    // The engine is a single writer of nonces: one replica, never two during a rollout.
    let engine = find(&objects, "Deployment", "stratbox-sandbox", "engine");
    assert_eq!(engine["spec"]["replicas"].as_i64(), Some(1));
    assert_eq!(
        engine["spec"]["strategy"]["type"].as_str(),
        Some("Recreate")
    );

    let hpa = find(
        &objects,
        "HorizontalPodAutoscaler",
        "stratbox-intelligence",
        "host",
    );
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    assert_eq!(target["apiVersion"].as_str(), Some("apps/v1"));
    let target_name = target["name"].as_str().unwrap_or_default();
    let host = find(&objects, "Deployment", "stratbox-intelligence", target_name);
    assert_eq!(
        host["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"].as_str(),
        Some("host"),
        "the HPA must scale the strategy hosts"
    );
    let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
    let max = hpa["spec"]["maxReplicas"].as_i64().unwrap_or_default();
    assert!(min >= 1 && max >= 50 && min <= max, "min {min} max {max}");
    // An HPA on CPU utilisation needs CPU requests on the target.
    assert!(!containers(host)[0]["resources"]["requests"]["cpu"].is_null());

    // Hosts mount their strategies read-only, from a read-only claim.
    let spec = pod_spec(host);
    let mount = containers(host)[0]["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"].as_str() == Some("/strategies"))
        .unwrap_or_else(|| panic!("host has no /strategies mount"));
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    let volume = spec["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume for /strategies"));
    assert_eq!(
        volume["persistentVolumeClaim"]["readOnly"].as_bool(),
        Some(true)
    );
}

// ── Kubernetes NetworkPolicy evaluation ───────────────────────────────────────────────

/// Something that can be on either end of a connection.
#[derive(Clone, Debug)]
struct Endpoint {
    name: String,
    /// `None` for an address outside the cluster.
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    ip: [u8; 4],
    /// Named container ports, for policies that name a port instead of numbering it.
    named_ports: BTreeMap<String, u16>,
}

fn parse_ipv4(text: &str) -> [u8; 4] {
    let parts: Vec<u8> = text
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|e| panic!("ip {text}: {e}")))
        .collect();
    parts.try_into().unwrap_or_else(|_| panic!("ip {text}"))
}

fn in_cidr(ip: [u8; 4], cidr: &str) -> bool {
    let (net, len) = cidr
        .split_once('/')
        .unwrap_or_else(|| panic!("cidr {cidr}"));
    let len: u32 = len.parse().unwrap_or_else(|e| panic!("cidr {cidr}: {e}"));
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from_be_bytes(ip) & mask) == (u32::from_be_bytes(parse_ipv4(net)) & mask)
}

fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

/// A label selector; an absent selector is not handled here (callers decide what absence
/// means, because it differs between podSelector and namespaceSelector).
fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = labels_of(&selector["matchLabels"])
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector["matchExpressions"]
        .as_sequence()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values = string_list(&e["values"]);
            let have = labels.get(key);
            match e["operator"].as_str() {
                Some("In") => have.is_some_and(|h| values.contains(h)),
                Some("NotIn") => !have.is_some_and(|h| values.contains(h)),
                Some("Exists") => have.is_some(),
                Some("DoesNotExist") => have.is_none(),
                other => panic!("unknown selector operator {other:?}"),
            }
        });
    by_labels && by_expressions
}

struct Cluster {
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    policies: Vec<Value>,
}

impl Cluster {
    fn peer_matches(&self, peer: &Value, policy_ns: &str, other: &Endpoint) -> bool {
        if !peer["ipBlock"].is_null() {
            let block = &peer["ipBlock"];
            let cidr = block["cidr"]
                .as_str()
                .unwrap_or_else(|| panic!("ipBlock without cidr"));
            return in_cidr(other.ip, cidr)
                && !string_list(&block["except"])
                    .iter()
                    .any(|c| in_cidr(other.ip, c));
        }
        let Some(other_ns) = &other.namespace else {
            return false; // pod/namespace selectors never select outside addresses
        };
        let ns_ok = if peer["namespaceSelector"].is_null() {
            other_ns == policy_ns
        } else {
            let ns_labels = self.namespaces.get(other_ns).cloned().unwrap_or_default();
            selector_matches(&peer["namespaceSelector"], &ns_labels)
        };
        let pod_ok =
            peer["podSelector"].is_null() || selector_matches(&peer["podSelector"], &other.labels);
        ns_ok && pod_ok
    }

    fn port_matches(rule_ports: &Value, port: u16, protocol: &str, target: &Endpoint) -> bool {
        let Some(ports) = rule_ports.as_sequence() else {
            return true; // no ports: every port
        };
        ports.iter().any(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            if proto != protocol {
                return false;
            }
            let start = match &p["port"] {
                Value::Null => return true,
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(name) => target.named_ports.get(name).copied(),
                _ => None,
            };
            let Some(start) = start else { return false };
            let end = p["endPort"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(start);
            (start..=end).contains(&port)
        })
    }

    fn policy_types(policy: &Value) -> BTreeSet<String> {
        let explicit = string_list(&policy["spec"]["policyTypes"]);
        if !explicit.is_empty() {
            return explicit.into_iter().collect();
        }
        let mut types = set(&["Ingress"]);
        if !policy["spec"]["egress"].is_null() {
            types.insert("Egress".to_owned());
        }
        types
    }

    /// One direction: is `subject` allowed to send to / receive from `other`?
    fn allowed(
        &self,
        direction: &str,
        subject: &Endpoint,
        other: &Endpoint,
        port: u16,
        protocol: &str,
        port_owner: &Endpoint,
    ) -> bool {
        let Some(ns) = &subject.namespace else {
            return true; // outside the cluster: no policy applies
        };
        let (rules_key, peers_key) = match direction {
            "Ingress" => ("ingress", "from"),
            _ => ("egress", "to"),
        };
        let selecting: Vec<&Value> = self
            .policies
            .iter()
            .filter(|p| p["metadata"]["namespace"].as_str() == Some(ns.as_str()))
            .filter(|p| selector_matches(&p["spec"]["podSelector"], &subject.labels))
            .filter(|p| Self::policy_types(p).contains(direction))
            .collect();
        if selecting.is_empty() {
            return true; // not isolated in this direction
        }
        selecting.iter().any(|p| {
            p["spec"][rules_key]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|rule| {
                    let peers_ok = match rule[peers_key].as_sequence() {
                        None => true,
                        Some(peers) => peers.iter().any(|peer| self.peer_matches(peer, ns, other)),
                    };
                    peers_ok && Self::port_matches(&rule["ports"], port, protocol, port_owner)
                })
        })
    }

    fn can_connect(&self, from: &Endpoint, to: &Endpoint, port: u16, protocol: &str) -> bool {
        self.allowed("Egress", from, to, port, protocol, to)
            && self.allowed("Ingress", to, from, port, protocol, to)
    }
}

fn pod(name: &str, namespace: &str, labels: &[(&str, &str)], ip: &str) -> Endpoint {
    Endpoint {
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ip: parse_ipv4(ip),
        named_ports: BTreeMap::new(),
    }
}

/// The cluster as the manifests make it: one pod per workload (labels and container ports
/// from its template, an address from a pod CIDR), plus kube-dns and a public RPC address.
fn cluster_from_manifests() -> (Cluster, BTreeMap<String, Endpoint>, Vec<(String, u16)>) {
    let objects = k8s_objects();
    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for ns in of_kind(&objects, "Namespace") {
        let name = ns["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut labels = labels_of(&ns["metadata"]["labels"]);
        // Set by the API server on every namespace.
        labels.insert("kubernetes.io/metadata.name".to_owned(), name.clone());
        namespaces.insert(name, labels);
    }
    for extra in ["kube-system", "default"] {
        namespaces.insert(
            extra.to_owned(),
            [("kubernetes.io/metadata.name".to_owned(), extra.to_owned())].into(),
        );
    }

    let mut endpoints = BTreeMap::new();
    let mut served_ports = Vec::new();
    for (i, w) in workloads(&objects).into_iter().enumerate() {
        let name = w["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ns = w["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let labels = labels_of(&w["spec"]["template"]["metadata"]["labels"]);
        let mut named_ports = BTreeMap::new();
        for c in containers(w) {
            for p in c["ports"].as_sequence().into_iter().flatten() {
                let number = p["containerPort"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .unwrap_or_else(|| panic!("{name}: containerPort"));
                if let Some(port_name) = p["name"].as_str() {
                    named_ports.insert(port_name.to_owned(), number);
                }
                served_ports.push((name.clone(), number));
            }
        }
        endpoints.insert(
            name.clone(),
            Endpoint {
                name,
                namespace: Some(ns),
                labels,
                ip: [10, 244, 1, u8::try_from(i + 10).unwrap_or(250)],
                named_ports,
            },
        );
    }
    endpoints.insert(
        "kube-dns".to_owned(),
        pod(
            "kube-dns",
            "kube-system",
            &[("k8s-app", "kube-dns")],
            "10.96.0.10",
        ),
    );
    // A public chain RPC endpoint (TEST-NET-3; this is data, nothing is sent).
    endpoints.insert(
        "chain-rpc".to_owned(),
        Endpoint {
            name: "chain-rpc".to_owned(),
            namespace: None,
            labels: BTreeMap::new(),
            ip: parse_ipv4("203.0.113.7"),
            named_ports: BTreeMap::new(),
        },
    );
    let policies = of_kind(&objects, "NetworkPolicy")
        .into_iter()
        .cloned()
        .collect();
    (
        Cluster {
            namespaces,
            policies,
        },
        endpoints,
        served_ports,
    )
}

#[test]
fn k8s_every_zone_namespace_is_default_deny() {
    let objects = k8s_objects();
    for ns in ZONE_NAMESPACES {
        let deny_all = of_kind(&objects, "NetworkPolicy").into_iter().any(|p| {
            p["metadata"]["namespace"].as_str() == Some(ns)
                && p["spec"]["podSelector"]
                    .as_mapping()
                    .is_some_and(|m| m.is_empty())
                && Cluster::policy_types(p) == set(&["Ingress", "Egress"])
                && p["spec"]["ingress"].is_null()
                && p["spec"]["egress"].is_null()
        });
        assert!(deny_all, "{ns} has no default-deny NetworkPolicy");
    }
}

#[test]
fn k8s_network_policies_encode_the_zone_rules() {
    let (cluster, ep, served_ports) = cluster_from_manifests();
    let e = |name: &str| -> &Endpoint { ep.get(name).unwrap_or_else(|| panic!("no pod {name}")) };

    // The complete matrix between workloads on the ports they serve: exactly these paths.
    let mut allowed = BTreeSet::new();
    for from in ep.values().filter(|p| p.namespace.is_some()) {
        for (to, port) in &served_ports {
            if from.name != *to && cluster.can_connect(from, e(to), *port, "TCP") {
                allowed.insert((from.name.clone(), to.clone(), *port));
            }
        }
    }
    let expected: BTreeSet<(String, String, u16)> = [
        ("host", "engine", 50051),
        ("host", "redis", 6379),
        ("engine", "postgres", 5432),
        ("engine", "redis", 6379),
        ("engine", "anvil", 8545),
        ("engine", "signer", 50061),
    ]
    .into_iter()
    .map(|(a, b, p)| (a.to_owned(), b.to_owned(), p))
    .collect();
    assert_eq!(allowed, expected);

    // Beyond the workloads: DNS and the outside world.
    let cases = [
        ("host", "kube-dns", 53, "UDP", true),
        ("host", "chain-rpc", 443, "TCP", false),
        ("host", "engine", 5432, "TCP", false),
        ("engine", "kube-dns", 53, "UDP", true),
        ("engine", "chain-rpc", 443, "TCP", true),
        ("engine", "chain-rpc", 22, "TCP", false),
        ("engine", "signer", 22, "TCP", false),
        ("signer", "kube-dns", 53, "UDP", false),
        ("signer", "chain-rpc", 443, "TCP", false),
        ("signer", "engine", 50051, "TCP", false),
        ("redis", "chain-rpc", 443, "TCP", false),
        ("postgres", "chain-rpc", 443, "TCP", false),
        ("anvil", "signer", 50061, "TCP", false),
    ];
    for (from, to, port, proto, want) in cases {
        assert_eq!(
            cluster.can_connect(e(from), e(to), port, proto),
            want,
            "{from} -> {to}:{port}/{proto}"
        );
    }

    // Impostors: the engine's label alone, in the wrong namespace, opens nothing; an
    // unlabelled pod in the engine's own namespace opens nothing either. (This fails if
    // namespaceSelector and podSelector are written as two peers, which ORs them.)
    let engine_label = [("app.kubernetes.io/name", "engine")];
    let impostors = [
        pod(
            "fake-engine-a",
            "stratbox-intelligence",
            &engine_label,
            "10.244.9.1",
        ),
        pod(
            "fake-engine-default",
            "default",
            &engine_label,
            "10.244.9.2",
        ),
        pod(
            "debug",
            "stratbox-sandbox",
            &[("run", "debug")],
            "10.244.9.3",
        ),
        pod(
            "fake-host",
            "default",
            &[("app.kubernetes.io/name", "host")],
            "10.244.9.4",
        ),
    ];
    for impostor in &impostors {
        for (to, port) in &served_ports {
            assert!(
                !cluster.can_connect(impostor, e(to), *port, "TCP"),
                "{} reaches {to}:{port}",
                impostor.name
            );
        }
    }
}

/// Each side must hold alone: the signer "assumes Zone B may be compromised", so its
/// ingress rule may not lean on Zone B's egress rules, and a host's egress rule may not
/// lean on anyone's ingress rules.
#[test]
fn k8s_ingress_and_egress_rules_each_hold_on_their_own() {
    let (cluster, ep, served_ports) = cluster_from_manifests();
    let e = |name: &str| -> &Endpoint { ep.get(name).unwrap_or_else(|| panic!("no pod {name}")) };
    let mut sources: Vec<Endpoint> = ep
        .values()
        .filter(|p| p.namespace.is_some())
        .cloned()
        .collect();
    let engine_label = [("app.kubernetes.io/name", "engine")];
    let host_label = [("app.kubernetes.io/name", "host")];
    sources.extend([
        pod(
            "fake-engine-a",
            "stratbox-intelligence",
            &engine_label,
            "10.244.9.1",
        ),
        pod(
            "fake-engine-c",
            "stratbox-fortress",
            &engine_label,
            "10.244.9.2",
        ),
        pod(
            "fake-engine-default",
            "default",
            &engine_label,
            "10.244.9.3",
        ),
        pod(
            "debug-b",
            "stratbox-sandbox",
            &[("run", "debug")],
            "10.244.9.4",
        ),
        pod("fake-host-b", "stratbox-sandbox", &host_label, "10.244.9.5"),
        pod("fake-host-default", "default", &host_label, "10.244.9.6"),
    ]);

    // Ingress alone: who may the destination's own policies admit?
    let mut admitted: BTreeSet<(String, String, u16)> = BTreeSet::new();
    for (to, port) in &served_ports {
        for from in &sources {
            if from.name != *to && cluster.allowed("Ingress", e(to), from, *port, "TCP", e(to)) {
                admitted.insert((from.name.clone(), to.clone(), *port));
            }
        }
    }
    let expected: BTreeSet<(String, String, u16)> = [
        ("host", "engine", 50051),
        ("host", "redis", 6379),
        ("engine", "postgres", 5432),
        ("engine", "redis", 6379),
        ("engine", "anvil", 8545),
        ("engine", "signer", 50061),
    ]
    .into_iter()
    .map(|(a, b, p)| (a.to_owned(), b.to_owned(), p))
    .collect();
    assert_eq!(admitted, expected, "ingress rules alone");

    // Egress alone, from the host: the bus, the engine's port, DNS; nothing else, even
    // towards pods whose own ingress rules are wide open (the impostors in `default`).
    let mut targets: Vec<(Endpoint, u16, &str)> = served_ports
        .iter()
        .map(|(name, port)| (e(name).clone(), *port, "TCP"))
        .collect();
    targets.push((e("kube-dns").clone(), 53, "UDP"));
    targets.push((e("chain-rpc").clone(), 443, "TCP"));
    for fake in &sources[sources.len() - 6..] {
        targets.push((fake.clone(), 50051, "TCP"));
        targets.push((fake.clone(), 6379, "TCP"));
    }
    let host_egress: BTreeSet<(String, u16)> = targets
        .iter()
        .filter(|(to, port, proto)| cluster.allowed("Egress", e("host"), to, *port, proto, to))
        .map(|(to, port, _)| (to.name.clone(), *port))
        .collect();
    assert_eq!(
        host_egress,
        [("engine", 50051), ("redis", 6379), ("kube-dns", 53)]
            .into_iter()
            .map(|(n, p)| (n.to_owned(), p))
            .collect::<BTreeSet<_>>(),
        "host egress alone"
    );
    // The signer sends nothing anywhere.
    assert!(
        targets.iter().all(|(to, port, proto)| !cluster.allowed(
            "Egress",
            e("signer"),
            to,
            *port,
            proto,
            to
        )),
        "signer egress"
    );
}

/// kubernetes-validate (PyPI) bundles the Kubernetes OpenAPI schemas, so the manifests can
/// be checked against the real API types without a cluster. It lives in a venv under
/// Cargo's test tmp dir; `Err` says why it could not be made.
fn kubernetes_validate() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kubernetes-validate-venv");
    let tool = venv.join("bin/kubernetes-validate");
    if tool.is_file() {
        return Ok(tool);
    }
    let make_venv = || {
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !make_venv() {
        ensure_tool("python3", "--version", "python3")?;
        // Debian splits venv (and ensurepip) out of python3.
        let out = Command::new("apt-get")
            .args([
                "-o",
                "DPkg::Lock::Timeout=300",
                "install",
                "-y",
                "-q",
                "python3-venv",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("apt-get: {e}"))?;
        if !out.status.success() || !make_venv() {
            return Err("cannot create a Python venv (python3-venv)".to_owned());
        }
    }
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "kubernetes-validate==1.37.0"])
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !out.status.success() || !tool.is_file() {
        return Err(format!(
            "pip install kubernetes-validate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(tool)
}

#[test]
fn k8s_manifests_pass_the_kubernetes_api_schemas() {
    let tool = match kubernetes_validate() {
        Ok(tool) => tool,
        Err(why) => {
            eprintln!(
                "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 SKIPPED: deploy/k8s was NOT validated against the Kubernetes schemas:\n\
                 {why}\n\
                 (the structural and NetworkPolicy checks in this file still ran)\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            return;
        }
    };
    let manifests: Vec<PathBuf> = k8s_files()
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    // The oldest Kubernetes we claim (PodSecurity admission is GA from 1.25; 1.30 is a
    // conservative floor) and the newest the tool knows.
    for version in ["1.30.0", "1.37.0"] {
        let out = Command::new(&tool)
            .args(["--strict", "--quiet", "-k", version])
            .args(&manifests)
            .output()
            .unwrap_or_else(|e| panic!("run kubernetes-validate: {e}"));
        assert!(
            out.status.success(),
            "deploy/k8s fails the Kubernetes {version} schemas:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The validator is live: a misspelt field in the engine Deployment must be rejected.
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let original = read(&k8s_dir().join("engine.yaml"));
    let broken = original.replacen("  replicas: 1\n", "  replica: 1\n", 1);
    assert_ne!(
        broken, original,
        "the mutation did not apply: update this test"
    );
    let path = scratch.path().join("engine.yaml");
    std::fs::write(&path, broken).unwrap_or_else(|e| panic!("write: {e}"));
    let out = Command::new(&tool)
        .args(["--strict", "--quiet"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run kubernetes-validate: {e}"));
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted a misspelt field; the check above proves nothing"
    );
}
