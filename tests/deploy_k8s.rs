//! deploy/k8s: every document parses and is well formed, workloads meet Pod Security
//! "restricted", the engine can read its password file, limits match compose, the HPA
//! scales the host Deployment, and the manifests pass the Kubernetes API schemas (1.30 and
//! 1.37, strict) with `kubernetes-validate` from PyPI in a venv under Cargo's test tmp dir,
//! proved live by a broken copy it must reject. Under `CI` a validator that cannot be had
//! fails the test.
//!
//! The NetworkPolicies are tests/deploy_network.rs; the command lines tests/deploy_args.rs.

use crate::deploy;

use deploy::*;
use serde_norway::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

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
        ("PersistentVolumeClaim", "stratbox-fortress", "signer-data"),
        ("StatefulSet", "stratbox-fortress", "signer-share-0"),
        ("StatefulSet", "stratbox-fortress", "signer-share-1"),
        ("StatefulSet", "stratbox-fortress", "signer-share-2"),
        ("Service", "stratbox-fortress", "signer-share-0"),
        ("Service", "stratbox-fortress", "signer-share-1"),
        ("Service", "stratbox-fortress", "signer-share-2"),
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
    for i in 0..3 {
        let (cpu, mem) = limits(
            "StatefulSet",
            "stratbox-fortress",
            &format!("signer-share-{i}"),
        );
        assert!(cpu <= 1000 && mem <= 512 * MIB, "share {i}");
    }

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
            stratbox_testenv::unavailable(
                "deploy/k8s against the Kubernetes API schemas (kubernetes-validate)",
                &why,
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

/// The threshold key's shares: one single-replica StatefulSet each, with its own index, its
/// own identity and passphrase (no share pod can read another's), a persistent volume for
/// its data dir, a headless Service with compose's name (so one cluster file serves both),
/// and the signer as their coordinator with the cluster file and its identity.
#[test]
fn k8s_shares_hold_one_share_each_and_the_signer_coordinates_them() {
    let objects = k8s_objects();
    let secret_paths = |w: &Value| -> BTreeSet<String> {
        pod_spec(w)["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|v| {
                v["projected"]["sources"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
            })
            .flat_map(|src| src["secret"]["items"].as_sequence().into_iter().flatten())
            .filter_map(|item| item["path"].as_str().map(str::to_owned))
            .collect()
    };
    for i in 0..3 {
        let name = format!("signer-share-{i}");
        let w = find(&objects, "StatefulSet", "stratbox-fortress", &name);
        assert_eq!(w["spec"]["replicas"].as_i64(), Some(1), "{name}");
        let c = containers(w)[0];
        let args = string_list(&c["args"]);
        assert_eq!(args[..2], ["signer", "share"], "{name}");
        assert_eq!(arg_after(&args, "--index"), Some(i.to_string()), "{name}");
        assert_eq!(
            arg_after(&args, "--listen").as_deref(),
            Some("0.0.0.0:50070")
        );
        let mut expected = set(&["threshold_cluster"]);
        for part in ["cert", "key", "passphrase"] {
            expected.insert(format!("share_{i}_{part}"));
        }
        assert_eq!(
            secret_paths(w),
            expected,
            "{name} mounts only its own secrets"
        );
        for flag in ["--cluster", "--cert", "--key", "--passphrase-file"] {
            let path = arg_after(&args, flag).unwrap_or_default();
            let file = path.strip_prefix("/run/secrets/").unwrap_or_default();
            assert!(expected.contains(file), "{name} {flag} {path}");
        }
        let data_dir = arg_after(&args, "--data-dir").unwrap_or_default();
        let data_mount = c["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|m| m["mountPath"].as_str() == Some(data_dir.as_str()))
            .unwrap_or_else(|| panic!("{name}: nothing mounted at {data_dir}"));
        let claim = data_mount["name"].as_str().unwrap_or_default();
        assert!(
            w["spec"]["volumeClaimTemplates"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|t| t["metadata"]["name"].as_str() == Some(claim)),
            "{name}: {data_dir} is not on a persistent volume"
        );
        let service = find(&objects, "Service", "stratbox-fortress", &name);
        assert_eq!(service["spec"]["ports"][0]["port"].as_i64(), Some(50070));
        for (k, v) in service["spec"]["selector"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            assert_eq!(
                &w["spec"]["template"]["metadata"]["labels"][k.as_str().unwrap_or_default()],
                v,
                "Service {name} does not select its share"
            );
        }
    }
    let signer = find(&objects, "Deployment", "stratbox-fortress", "signer");
    let paths = secret_paths(signer);
    for needed in [
        "signer_config",
        "signer_policy",
        "threshold_cluster",
        "coordinator_cert",
        "coordinator_key",
    ] {
        assert!(paths.contains(needed), "the signer does not mount {needed}");
    }
    for share_secret in ["share_0_key", "share_1_key", "share_2_key"] {
        assert!(
            !paths.contains(share_secret),
            "the signer mounts {share_secret}"
        );
    }
    let env = containers(signer)[0]["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str() == Some("STRATBOX_SIGNER_CONFIG"))
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned);
    assert_eq!(env.as_deref(), Some("/run/secrets/signer_config"));
}
