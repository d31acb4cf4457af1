//! deploy/prometheus/alerts.yml: valid (`promtool check rules`), doing what its unit tests
//! say (`promtool test rules alerts_test.yml`), loaded by the Prometheus config compose
//! mounts (`promtool check config`), routed by a valid Alertmanager config (`amtool
//! check-config`), and built only on metrics the engine and the hosts really export (their
//! registries rendered here). promtool and amtool come from Debian's `prometheus` and
//! `prometheus-alertmanager` packages, installed with apt when missing (scripts/setup does
//! too); under `CI=true` a tool that cannot be had fails the test.

use std::collections::BTreeSet;

use crate::deploy::{deploy_dir, ensure_tool, read, run_tool as run};

#[test]
fn promtool_checks_and_unit_tests_the_alerting_rules() {
    if let Err(why) = ensure_tool("promtool", "--version", "prometheus") {
        stratbox_testenv::unavailable("promtool (Debian's prometheus package)", &why);
        return;
    }
    let dir = deploy_dir().join("prometheus");
    let (ok, out) = run("promtool", &["check", "rules", "alerts.yml"], &dir);
    assert!(ok, "promtool check rules: {out}");
    let (ok, out) = run("promtool", &["test", "rules", "alerts_test.yml"], &dir);
    assert!(ok, "promtool test rules: {out}");
    let (ok, out) = run("promtool", &["check", "config", "prometheus.yml"], &dir);
    assert!(ok, "promtool check config: {out}");
    assert!(
        out.contains("alerts.yml"),
        "the config loads the rules: {out}"
    );

    // promtool is live: a rule that no longer fires when its test says it must fails the
    // unit tests, and a broken expression fails the check.
    let scratch = tempfile::tempdir().expect("tempdir");
    let rules = read(&dir.join("alerts.yml"));
    let tests = read(&dir.join("alerts_test.yml"));
    std::fs::write(scratch.path().join("alerts_test.yml"), &tests).expect("write");
    let weakened = rules.replacen(
        "stratbox_engine_reconciliation_differences > 0",
        "stratbox_engine_reconciliation_differences > 5",
        1,
    );
    assert_ne!(
        weakened, rules,
        "the mutation did not apply: update this test"
    );
    std::fs::write(scratch.path().join("alerts.yml"), &weakened).expect("write");
    let (ok, out) = run(
        "promtool",
        &["test", "rules", "alerts_test.yml"],
        scratch.path(),
    );
    assert!(!ok, "promtool passed a rule that misses its test: {out}");
    assert!(out.contains("StratboxReconciliationDifference"), "{out}");
    let broken = rules.replacen("> 0.005", "> > 0.005", 1);
    std::fs::write(scratch.path().join("alerts.yml"), &broken).expect("write");
    let (ok, _) = run(
        "promtool",
        &["check", "rules", "alerts.yml"],
        scratch.path(),
    );
    assert!(!ok, "promtool accepted a broken expression");
}

#[test]
fn alertmanager_config_is_valid() {
    if let Err(why) = ensure_tool("amtool", "--version", "prometheus-alertmanager") {
        stratbox_testenv::unavailable("amtool (Debian's prometheus-alertmanager)", &why);
        return;
    }
    let dir = deploy_dir().join("alertmanager");
    let (ok, out) = run("amtool", &["check-config", "alertmanager.yml"], &dir);
    assert!(ok, "amtool check-config: {out}");
    let scratch = tempfile::tempdir().expect("tempdir");
    let config = read(&dir.join("alertmanager.yml"));
    let broken = config.replacen("receiver: operators", "receiver: nobody", 1);
    assert_ne!(broken, config);
    std::fs::write(scratch.path().join("am.yml"), broken).expect("write");
    let (ok, _) = run("amtool", &["check-config", "am.yml"], scratch.path());
    assert!(!ok, "amtool accepted a route to an undefined receiver");
}

/// Every `stratbox_*` name in an expression, without the suffixes the text format adds.
fn metric_names(rules: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("stratbox_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            rest = &tail[end..];
            if !(name.starts_with("stratbox_engine_") || name.starts_with("stratbox_host_")) {
                continue;
            }
            let base = ["_bucket", "_total", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_owned());
        }
    }
    names
}

#[test]
fn every_rule_reads_a_metric_the_processes_export() {
    let rules = read(&deploy_dir().join("prometheus/alerts.yml"));
    let names = metric_names(&rules);
    assert!(names.len() >= 10, "{names:?}");
    let engine = stratbox_engine::metrics::EngineMetrics::new().render();
    // A family is rendered once it has a series: the host's rollouts and quarantines have
    // one after a strategy is refused at start.
    let host_metrics = stratbox_host_service::metrics::HostMetrics::new();
    host_metrics.rollout(&stratbox_host_service::outcome::Outcome {
        name: "momentum".into(),
        version: "1".into(),
        revision: 1,
        kind: stratbox_host_service::outcome::OutcomeKind::Start,
        result: Err("init trapped".into()),
        error_kind: "init",
        instances: 0,
        built: 0,
    });
    let host = host_metrics.render();
    for name in &names {
        let exported = if name.starts_with("stratbox_engine_") {
            &engine
        } else {
            &host
        };
        assert!(
            exported.contains(&format!("# TYPE {name} ")),
            "alerts.yml reads {name}, which is not exported"
        );
    }
}
