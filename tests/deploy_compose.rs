//! deploy/compose.yaml says the same thing as the design: three zones as three networks,
//! a signer that only the engine can reach, and the threshold key's three shares on a
//! fourth internal network (`fortress-keys`) that only the signer (and the one-shot key
//! ceremony) shares with them: the engine never reaches a share. Also the two files it relies on:
//! deploy/Containerfile and deploy/gen-dev-secrets.sh.
//!
//! There is no Docker engine on the machines that run this, so nothing is started here
//! (tests/netns_isolation.rs runs the same command lines as processes). What is checked:
//! - the file against the Compose specification, with Debian's `docker-compose` (1.29,
//!   Python; it validates against its bundled `compose_spec.json`), installed with apt when
//!   missing; the validator is proved live by broken copies it must reject. Under `CI` a
//!   validator that cannot be had fails the test;
//! - the file structurally: which service sits on which network, and therefore who can
//!   open a connection to whom; limits, health checks, restart policies, hardening;
//!   credentials only through secrets.
//!
//! Whether its `stratbox` command lines parse is tests/deploy_args.rs.

use crate::deploy;

use deploy::*;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

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
        stratbox_testenv::unavailable(
            "deploy/compose.yaml against the Compose specification (docker-compose)",
            &why,
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
    // docker-compose lists the ceremony (profile `ceremony`) only when its profile is on;
    // either way the always-on set is exactly these.
    let mut always_on = listed.clone();
    always_on.remove("signer-keygen");
    assert_eq!(always_on, set(&ALWAYS_ON));

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

/// The services `docker compose up` starts.
const ALWAYS_ON: [&str; 11] = [
    "engine",
    "prometheus",
    "alertmanager",
    "host",
    "signer",
    "signer-share-0",
    "signer-share-1",
    "signer-share-2",
    "postgres",
    "redis",
    "anvil",
];
const SHARES: [&str; 3] = ["signer-share-0", "signer-share-1", "signer-share-2"];
/// The one-shot key ceremony: only under `--profile ceremony`, run once per key.
const CEREMONY: &str = "signer-keygen";

/// A one-shot service started only under its compose profile (the key ceremony).
fn is_ceremony(service: &Value) -> bool {
    string_list(&service["profiles"]).contains(&"ceremony".to_owned())
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
        set(&[
            "intelligence",
            "sandbox",
            "fortress",
            "fortress-keys",
            "monitoring"
        ])
    );
    assert_eq!(
        networks["monitoring"]["internal"].as_bool(),
        Some(true),
        "the monitoring network must have no route out"
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
    assert_eq!(
        networks["fortress-keys"]["internal"].as_bool(),
        Some(true),
        "the key network must have no route out"
    );

    let services = compose_services(&doc);
    let expected: BTreeMap<&str, BTreeSet<String>> = [
        (
            "engine",
            set(&["intelligence", "sandbox", "fortress", "monitoring"]),
        ),
        ("prometheus", set(&["monitoring"])),
        ("alertmanager", set(&["monitoring"])),
        ("host", set(&["intelligence"])),
        ("signer", set(&["fortress", "fortress-keys"])),
        ("signer-share-0", set(&["fortress-keys"])),
        ("signer-share-1", set(&["fortress-keys"])),
        ("signer-share-2", set(&["fortress-keys"])),
        ("signer-keygen", set(&["fortress-keys"])),
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
    assert_eq!(
        members("monitoring"),
        set(&["engine", "prometheus", "alertmanager"])
    );
    // The key network: the signer and the three shares, and besides them only the one-shot
    // ceremony (profile `ceremony`, the coordinator's identity, no restart). Never the engine.
    let mut keys = set(&["signer"]);
    keys.extend(SHARES.iter().map(|s| (*s).to_owned()));
    let always_on_keys: BTreeSet<String> = members("fortress-keys")
        .into_iter()
        .filter(|n| !is_ceremony(&services[n]))
        .collect();
    assert_eq!(always_on_keys, keys);
    let ceremonies: BTreeSet<String> = members("fortress-keys")
        .into_iter()
        .filter(|n| is_ceremony(&services[n]))
        .collect();
    assert_eq!(ceremonies, set(&[CEREMONY]));
    assert!(!members("fortress-keys").contains("engine"));
    // Every service but the ceremony starts with `up`.
    for (name, svc) in &services {
        assert_eq!(is_ceremony(svc), name == CEREMONY, "{name}: profiles");
        assert!(
            svc["profiles"].is_null() || name == CEREMONY,
            "{name} is hidden behind a profile"
        );
    }
}

#[test]
fn compose_signer_is_reachable_only_from_the_engine_and_hosts_only_reach_bus_and_engine() {
    let services = compose_services(&compose());
    for name in services.keys().filter(|n| *n != "signer") {
        // The signer reaches its shares over fortress-keys, but a share never opens a
        // connection to it (the shares only answer); the engine is its only client.
        let want = name == "engine" || SHARES.contains(&name.as_str()) || name == CEREMONY;
        assert_eq!(
            compose_can_reach(&services, name, "signer"),
            want,
            "{name} -> signer"
        );
    }
    let signer_peers: BTreeSet<String> = services
        .keys()
        .filter(|n| *n != "signer" && compose_can_reach(&services, "signer", n))
        .cloned()
        .collect();
    let mut expected_peers = set(&["engine", CEREMONY]);
    expected_peers.extend(SHARES.iter().map(|s| (*s).to_owned()));
    assert_eq!(signer_peers, expected_peers, "the signer's peers");
    let host_reaches: BTreeSet<String> = services
        .keys()
        .filter(|n| *n != "host" && compose_can_reach(&services, "host", n))
        .cloned()
        .collect();
    assert_eq!(host_reaches, set(&["engine", "redis"]));
}

#[test]
fn compose_only_the_signer_reaches_a_share_and_the_engine_never_does() {
    let services = compose_services(&compose());
    for share in SHARES {
        let reaches: BTreeSet<String> = services
            .keys()
            .filter(|n| *n != share && compose_can_reach(&services, n, share))
            .filter(|n| !SHARES.contains(&n.as_str()))
            .cloned()
            .collect();
        // The ceremony is the coordinator too (same identity), run once by hand.
        assert_eq!(reaches, set(&["signer", CEREMONY]), "who reaches {share}");
        assert!(
            !compose_can_reach(&services, "engine", share),
            "engine -> {share}"
        );
        assert!(
            !compose_can_reach(&services, "host", share),
            "host -> {share}"
        );
        // Each share on the key network alone: no route to the engine's zones either.
        assert_eq!(
            service_networks(&services[share]),
            set(&["fortress-keys"]),
            "{share}"
        );
    }
    // The ceremony: the coordinator's identity, never restarted, never started by `up`.
    let keygen = &services[CEREMONY];
    assert!(is_ceremony(keygen));
    assert_eq!(keygen["restart"].as_str(), Some("no"));
    let command = string_list(&keygen["command"]);
    assert_eq!(command[..2], ["signer", "keygen"]);
    assert_eq!(
        arg_after(&command, "--cert").as_deref(),
        Some("/run/secrets/coordinator_cert")
    );
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
    for share in SHARES {
        let (cpu, mem) = limits(share);
        assert!(
            cpu <= 1000 && mem <= 512 * MIB,
            "a share is meant to be small"
        );
    }
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
        // The one-shot ceremony: hardened the same, but it runs to completion, so no
        // health check and never a restart (a re-run would make a new key).
        if is_ceremony(svc) {
            assert_eq!(svc["restart"].as_str(), Some("no"), "{name}: restart");
            continue;
        }
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
            "https://engine:50051",
            "--engine-ca",
            "/run/secrets/engine_ca",
            "--engine-cert",
            "/run/secrets/host_engine_client_cert",
            "--engine-key",
            "/run/secrets/host_engine_client_key",
            "--bus",
            "redis://redis:6379",
            "--strategies",
            "/strategies",
            "--watch-deployments"
        ]
    );
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
    let database = arg_after(&engine, "--database").unwrap_or_default();
    assert!(database.starts_with("postgres://"), "{database}");

    // The engine runs the same image as host and signer: one build for every zone.
    let image = services["engine"]["image"].as_str().map(str::to_owned);
    assert!(image.is_some());
    for name in ["host", "signer", CEREMONY].into_iter().chain(SHARES) {
        assert_eq!(
            services[name]["image"].as_str().map(str::to_owned),
            image,
            "{name}"
        );
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
    assert_eq!(
        compose_environment(&services["signer"])
            .get("STRATBOX_SIGNER_CONFIG")
            .map(String::as_str),
        Some("/run/secrets/signer_config")
    );
    assert!(mounted.contains("signer_config"));

    // Each share: its own index, its own identity and passphrase, its own volume, the
    // port the cluster file names.
    let mut volumes = BTreeSet::new();
    for (i, share) in SHARES.iter().enumerate() {
        let svc = &services[*share];
        let command = string_list(&svc["command"]);
        assert_eq!(command[..2], ["signer", "share"], "{share}");
        assert_eq!(arg_after(&command, "--index"), Some(i.to_string()));
        assert_eq!(
            arg_after(&command, "--listen").as_deref(),
            Some("0.0.0.0:50070")
        );
        for (flag, want) in [
            ("--cluster", "threshold_cluster".to_owned()),
            ("--cert", format!("share_{i}_cert")),
            ("--key", format!("share_{i}_key")),
            ("--passphrase-file", format!("share_{i}_passphrase")),
        ] {
            assert_eq!(
                arg_after(&command, flag),
                Some(format!("/run/secrets/{want}")),
                "{share} {flag}"
            );
        }
        let mut expected = set(&["threshold_cluster"]);
        for part in ["cert", "key", "passphrase"] {
            expected.insert(format!("share_{i}_{part}"));
        }
        let mounted: BTreeSet<String> = string_list(&svc["secrets"]).into_iter().collect();
        assert_eq!(mounted, expected, "{share} mounts only its own secrets");
        let data_dir = arg_after(&command, "--data-dir").unwrap_or_default();
        let mounts = string_list(&svc["volumes"]);
        assert_eq!(mounts.len(), 1, "{share}: one volume");
        let (volume, target) = mounts[0]
            .split_once(':')
            .unwrap_or_else(|| panic!("{share}: volume {}", mounts[0]));
        assert_eq!(target, data_dir, "{share}: the data dir is the volume");
        assert!(
            doc["volumes"][volume].is_mapping(),
            "{share}: {volume} is not a named volume"
        );
        assert!(volumes.insert(volume.to_owned()), "{share} shares {volume}");
        assert_eq!(
            svc["ulimits"]["core"]["hard"].as_i64(),
            Some(0),
            "{share}: core"
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
    run_tool("openssl", args, dir)
}

#[test]
fn dev_secrets_give_the_signer_a_client_ca_that_trusts_only_the_engine() {
    if let Err(why) = ensure_tool("openssl", "version", "openssl") {
        panic!("openssl is needed to check deploy/gen-dev-secrets.sh: {why}");
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    // The script makes the threshold cluster files with the binary itself.
    let out = Command::new("bash")
        .arg(deploy_dir().join("gen-dev-secrets.sh"))
        .arg(dir.path())
        .env("STRATBOX", env!("CARGO_BIN_EXE_stratbox"))
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
    // The signer's config, read the way the signer reads it inside its container: every
    // secret it mounts at /run/secrets/<name>, the config's relative paths resolved there.
    let run_secrets = dir.path().join("run-secrets");
    std::fs::create_dir_all(&run_secrets).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let signer = &compose_services(&doc)["signer"];
    for name in string_list(&signer["secrets"]) {
        let file = doc["secrets"][name.as_str()]["file"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("./secrets/");
        std::fs::copy(dir.path().join(file), run_secrets.join(&name))
            .unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    let config = stratbox_signer::config::SignerConfig::load(&run_secrets.join("signer_config"))
        .unwrap_or_else(|e| panic!("the development signer_config does not load: {e}"));
    let threshold = config
        .threshold
        .as_ref()
        .unwrap_or_else(|| panic!("the development signer_config has no [threshold]"));
    assert!(
        config.keystore.dev_file.is_none(),
        "[threshold] replaces dev_file"
    );
    for (what, path) in [
        ("cluster", &threshold.cluster),
        ("cert", &threshold.cert),
        ("key", &threshold.key),
        ("policy", &config.policy),
        ("tls_cert", &config.tls_cert),
        ("tls_key", &config.tls_key),
        ("client_ca", &config.client_ca),
    ] {
        assert!(
            path.starts_with(&run_secrets) && path.is_file(),
            "signer_config {what} = {} is not a mounted secret",
            path.display()
        );
    }
    config
        .engine_allowlist()
        .unwrap_or_else(|e| panic!("engine allowlist: {e}"));
    // The cluster file names the shares by compose's service names and port.
    let cluster = read(&dir.path().join("threshold/cluster.json"));
    for share in SHARES {
        assert!(
            cluster.contains(&format!("{share}:50070")),
            "cluster.json does not name {share}:50070"
        );
    }
    for i in 0..3 {
        let passphrase = read(&dir.path().join(format!("share_{i}_passphrase")));
        assert!(passphrase.trim().len() >= 32, "share {i} passphrase");
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

// ── Compose: the engine's TLS port, metrics and alerts ───────────────────────────────

/// The secret a flag's `/run/secrets/NAME` value names, checked to be mounted by `service`.
fn mounted_secret(services: &BTreeMap<String, Value>, service: &str, args: &[String], flag: &str) {
    let path = arg_after(args, flag).unwrap_or_else(|| panic!("{service} lacks {flag}"));
    let secret = path
        .strip_prefix("/run/secrets/")
        .unwrap_or_else(|| panic!("{service} {flag} {path} is not a compose secret"));
    assert!(
        string_list(&services[service]["secrets"])
            .iter()
            .any(|s| s == secret),
        "{service} {flag}: secret {secret} not mounted"
    );
}

#[test]
fn compose_engine_serves_tls_and_its_clients_verify_it() {
    let services = compose_services(&compose());
    let engine = string_list(&services["engine"]["command"]);
    for flag in ["--tls-cert", "--tls-key", "--tls-client-ca"] {
        mounted_secret(&services, "engine", &engine, flag);
    }
    let host = string_list(&services["host"]["command"]);
    assert!(
        arg_after(&host, "--engine").is_some_and(|u| u.starts_with("https://")),
        "{host:?}"
    );
    for flag in ["--engine-ca", "--engine-cert", "--engine-key"] {
        mounted_secret(&services, "host", &host, flag);
    }
    // The health checks speak TLS with a client certificate too, with mounted files.
    for name in ["engine", "host"] {
        let test = string_list(&services[name]["healthcheck"]["test"]);
        assert!(
            arg_after(&test, "--engine").is_some_and(|u| u.starts_with("https://")),
            "{name}: {test:?}"
        );
        for flag in ["--engine-ca", "--engine-cert", "--engine-key"] {
            mounted_secret(&services, name, &test, flag);
        }
    }
}

#[test]
fn compose_runs_prometheus_and_alertmanager_with_the_rules() {
    let services = compose_services(&compose());
    // Every file a monitoring service mounts exists in deploy/, read-only.
    let mut targets = BTreeMap::new();
    for name in ["prometheus", "alertmanager"] {
        let mounts = services[name]["volumes"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} mounts nothing"));
        for m in mounts.iter().filter(|m| m["type"].as_str() == Some("bind")) {
            let source = m["source"].as_str().unwrap_or_default();
            let target = m["target"].as_str().unwrap_or_default();
            assert!(
                deploy_dir().join(source).is_file(),
                "{name} mounts {source}, which is not in deploy/"
            );
            assert_eq!(m["read_only"].as_bool(), Some(true), "{name}: {source}");
            targets.insert(target.to_owned(), source.to_owned());
        }
    }
    let config_of = |name: &str, flag: &str| {
        let command = string_list(&services[name]["command"]);
        let config = command
            .iter()
            .find_map(|a| a.strip_prefix(flag))
            .unwrap_or_else(|| panic!("{name} has no {flag}"))
            .to_owned();
        assert!(
            targets.contains_key(&config),
            "{name}: {config} is not mounted"
        );
        config
    };
    let prometheus_yml = config_of("prometheus", "--config.file=");
    config_of("alertmanager", "--config.file=");
    // The rules Prometheus loads are the mounted alerts.yml (promtool checks them:
    // tests/alert_rules.rs).
    let config: Value =
        serde_norway::from_str(&read(&deploy_dir().join(&targets[&prometheus_yml])))
            .unwrap_or_else(|e| panic!("prometheus.yml: {e}"));
    let dir = Path::new(&prometheus_yml)
        .parent()
        .unwrap_or(Path::new("/"));
    for rule_file in string_list(&config["rule_files"]) {
        let mounted = dir.join(&rule_file).display().to_string();
        assert_eq!(
            targets.get(&mounted).map(String::as_str),
            Some("./prometheus/alerts.yml"),
            "rule file {rule_file}"
        );
    }
    // Prometheus scrapes the engine where it serves metrics and alerts where Alertmanager
    // listens; the engine posts its critical events there too.
    let engine = string_list(&services["engine"]["command"]);
    let metrics_port = arg_after(&engine, "--metrics-listen")
        .and_then(|a| a.rsplit_once(':').map(|(_, p)| p.to_owned()))
        .unwrap_or_else(|| panic!("the engine serves no metrics: {engine:?}"));
    let scrape: Vec<String> = config["scrape_configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|j| j["static_configs"].as_sequence().into_iter().flatten())
        .flat_map(|c| string_list(&c["targets"]))
        .collect();
    assert!(
        scrape.contains(&format!("engine:{metrics_port}")),
        "{scrape:?}"
    );
    let alertmanagers: Vec<String> = config["alerting"]["alertmanagers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|a| a["static_configs"].as_sequence().into_iter().flatten())
        .flat_map(|c| string_list(&c["targets"]))
        .collect();
    assert_eq!(alertmanagers, ["alertmanager:9093"]);
    assert_eq!(
        arg_after(&engine, "--alert-webhook").as_deref(),
        Some("http://alertmanager:9093/api/v2/alerts")
    );
}
