//! Every `stratbox` command line in deploy/compose.yaml and deploy/k8s/*.yaml parses with
//! the binary's own argument parser (`stratbox::cli::Cli`, clap), with the environment the
//! file gives it, because clap reads `env = …` attributes too. Service commands, health
//! checks and exec probes are all read out of the YAML; nothing is matched as text.
//!
//! Each parse runs in a child process (this test binary re-run as the `parse_in_child`
//! helper) whose environment is exactly the one the deploy file sets: the test's own
//! environment (a developer's `STRATBOX_DATABASE`, say) can neither help nor break it, and
//! no test mutates its own process environment.
//!
//! Beyond parsing: every `STRATBOX_*` variable a file sets on a stratbox container must be
//! read by one of that container's command lines (a variable nothing reads is
//! configuration that silently does nothing), and a wrong flag or a wrong value in a
//! variable must be refused, so the check can fail.

use crate::deploy;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use deploy::{CommandLine, compose_command_lines, k8s_command_lines};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use stratbox::cli::Cli;

const ARGV_ENV: &str = "DEPLOY_ARGS_ARGV";
const MARK: &str = "DEPLOY-ARGS ";

// ── the helper process ───────────────────────────────────────────────────────────────

/// Not a test of its own: parses the argv in `DEPLOY_ARGS_ARGV` (JSON) with `Cli` and
/// reports on stdout. Run by hand without that variable it fails.
#[test]
#[ignore = "helper process, started by the other tests with a deploy file's environment"]
fn parse_in_child() {
    let argv: Vec<String> = serde_json::from_str(
        &std::env::var(ARGV_ENV)
            .unwrap_or_else(|_| panic!("{ARGV_ENV} unset: this helper runs inside the tests")),
    )
    .unwrap_or_else(|e| panic!("{ARGV_ENV}: {e}"));
    let report = match parse(&argv) {
        Ok(env_read) => serde_json::json!({ "ok": true, "env_read": env_read }),
        Err(e) => serde_json::json!({
            "ok": false,
            "kind": format!("{:?}", e.kind()),
            "error": e.render().to_string(),
        }),
    };
    println!("{MARK}{report}");
}

/// Parses as the binary does (clap's matcher, then the typed `Cli`), and returns the
/// environment variables clap took a value from.
fn parse(argv: &[String]) -> Result<BTreeSet<String>, clap::Error> {
    let mut command = Cli::command();
    command.build();
    let matches = command.clone().try_get_matches_from(argv)?;
    Cli::from_arg_matches(&matches)?;
    let mut read = BTreeSet::new();
    env_sourced(&command, &matches, &mut read);
    Ok(read)
}

fn env_sourced(command: &clap::Command, matches: &ArgMatches, out: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env()
            && matches.value_source(arg.get_id().as_str()) == Some(ValueSource::EnvVariable)
        {
            out.insert(env.to_string_lossy().into_owned());
        }
    }
    if let Some((name, sub)) = matches.subcommand()
        && let Some(sub_command) = command.find_subcommand(name)
    {
        env_sourced(sub_command, sub, out);
    }
}

// ── running it ───────────────────────────────────────────────────────────────────────

#[derive(Debug)]
enum Parsed {
    Ok { env_read: BTreeSet<String> },
    Refused { kind: String, error: String },
}

/// Parses `argv` in a child whose environment is exactly `env`.
fn parse_with_env(argv: &[String], env: &BTreeMap<String, String>) -> Parsed {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let argv_json = serde_json::to_string(argv).unwrap_or_else(|e| panic!("argv json: {e}"));
    let out = Command::new(exe)
        .args([
            // Its name in the one test binary (tests/it.rs): this module's path, then it.
            crate::support::libtest_name(module_path!(), "parse_in_child").as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .envs(env)
        .env(ARGV_ENV, argv_json)
        .output()
        .unwrap_or_else(|e| panic!("run the parse helper: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .find_map(|l| l.split_once(MARK).map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!(
                "the parse helper reported nothing for {argv:?}:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let report: serde_json::Value =
        serde_json::from_str(report).unwrap_or_else(|e| panic!("helper report {report}: {e}"));
    let text = |key: &str| report[key].as_str().unwrap_or_default().to_owned();
    if report["ok"].as_bool() == Some(true) {
        Parsed::Ok {
            env_read: report["env_read"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        }
    } else {
        Parsed::Refused {
            kind: text("kind"),
            error: text("error"),
        }
    }
}

fn all_command_lines() -> Vec<CommandLine> {
    let mut lines = compose_command_lines();
    lines.extend(k8s_command_lines());
    lines
}

// ── the tests ────────────────────────────────────────────────────────────────────────

#[test]
fn every_stratbox_command_line_in_deploy_parses_with_its_environment() {
    let lines = all_command_lines();
    let mut refused = Vec::new();
    // STRATBOX_* variables set per container, and those its command lines read.
    let mut set_vars: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut read_vars: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in &lines {
        let scope = line.scope.clone();
        set_vars.entry(scope.clone()).or_default().extend(
            line.env
                .keys()
                .filter(|k| k.starts_with("STRATBOX_"))
                .cloned(),
        );
        match parse_with_env(&line.argv, &line.env) {
            Parsed::Ok { env_read } => {
                eprintln!("parses: {} ({})", line.argv.join(" "), line.origin);
                read_vars.entry(scope).or_default().extend(env_read);
            }
            Parsed::Refused { kind, error } => {
                refused.push(format!(
                    "{}: `{}` is refused ({kind}):\n{error}",
                    line.origin,
                    line.argv.join(" ")
                ));
            }
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    for (scope, set) in &set_vars {
        let read = read_vars.get(scope).cloned().unwrap_or_default();
        let unread: Vec<&String> = set.difference(&read).collect();
        assert!(
            unread.is_empty(),
            "{scope} sets {unread:?}, which none of its stratbox command lines reads"
        );
    }
    // The log format comes from the environment in every zone: the env really is passed.
    for scope in [
        "services.engine",
        "services.host",
        "services.signer",
        "services.signer-share-0",
        "services.signer-share-1",
        "services.signer-share-2",
        "services.signer-keygen",
    ] {
        let scope = format!("compose.yaml {scope}");
        assert!(
            read_vars
                .get(&scope)
                .is_some_and(|r| r.contains("STRATBOX_LOG_FORMAT")),
            "{scope} does not read STRATBOX_LOG_FORMAT: {read_vars:?}"
        );
    }
}

/// The zones' processes and their health checks are all among the lines checked above, so
/// the test cannot pass by finding nothing to parse.
#[test]
fn the_engine_host_health_and_signer_command_lines_are_all_there() {
    for (file, lines) in [
        ("compose.yaml", compose_command_lines()),
        ("k8s", k8s_command_lines()),
    ] {
        let by_service: BTreeSet<(String, String)> = lines
            .iter()
            .filter_map(|l| Some((l.service.clone(), l.subcommand()?.to_owned())))
            .collect();
        for (service, subcommand) in [
            ("engine", "engine"),
            ("host", "host"),
            ("host", "health"),
            ("signer", "signer"),
        ] {
            assert!(
                by_service.contains(&(service.to_owned(), subcommand.to_owned())),
                "{file}: no `stratbox {subcommand}` in {service}; found {by_service:?}"
            );
        }
        // The threshold key's processes: `stratbox signer share` in each share, and in
        // compose the one-shot `stratbox signer keygen` ceremony.
        let mut key_lines: Vec<(&str, &str)> = vec![
            ("signer-share-0", "share"),
            ("signer-share-1", "share"),
            ("signer-share-2", "share"),
        ];
        if file == "compose.yaml" {
            key_lines.push(("signer-keygen", "keygen"));
        }
        for (service, second) in key_lines {
            assert!(
                lines.iter().any(|l| l.service == service
                    && l.argv.get(1).map(String::as_str) == Some("signer")
                    && l.argv.get(2).map(String::as_str) == Some(second)),
                "{file}: no `stratbox signer {second}` in {service}"
            );
        }
        // Every stratbox container runs exactly one service command line.
        let services: BTreeSet<&str> = lines.iter().map(|l| l.service.as_str()).collect();
        assert!(
            services.is_superset(&["engine", "host", "signer"].into_iter().collect()),
            "{file}: {services:?}"
        );
    }
    let compose = compose_command_lines();
    assert!(
        compose
            .iter()
            .any(|l| l.service == "engine" && l.subcommand() == Some("health")),
        "compose.yaml: the engine's health check is not `stratbox health`"
    );
}

/// Negative controls: the same machinery refuses a flag the binary does not have (a
/// `--signer-url` the engine never had), an unknown subcommand, and a bad value that
/// arrives only through the environment.
#[test]
fn a_wrong_flag_or_a_wrong_environment_value_is_refused() {
    let lines = compose_command_lines();
    let engine = lines
        .iter()
        .find(|l| l.service == "engine" && l.subcommand() == Some("engine"))
        .unwrap_or_else(|| panic!("compose.yaml has no engine command line"));
    assert!(matches!(
        parse_with_env(&engine.argv, &engine.env),
        Parsed::Ok { .. }
    ));

    let mut with_signer = engine.argv.clone();
    with_signer.extend(["--signer-url".to_owned(), "https://signer:50061".to_owned()]);
    match parse_with_env(&with_signer, &engine.env) {
        Parsed::Refused { kind, error } => {
            assert_eq!(kind, "UnknownArgument", "{error}");
            assert!(error.contains("--signer-url"), "{error}");
        }
        other => panic!("`--signer-url` was accepted: {other:?}"),
    }

    let mut misspelt = engine.argv.clone();
    misspelt[1] = "engnie".to_owned();
    assert!(
        matches!(
            parse_with_env(&misspelt, &engine.env),
            Parsed::Refused { ref kind, .. } if kind == "InvalidSubcommand"
        ),
        "an unknown subcommand was accepted"
    );

    let mut bad_env = engine.env.clone();
    bad_env.insert("STRATBOX_LOG_FORMAT".to_owned(), "yaml".to_owned());
    match parse_with_env(&engine.argv, &bad_env) {
        Parsed::Refused { kind, error } => {
            assert_eq!(kind, "InvalidValue", "{error}");
            assert!(error.contains("yaml"), "{error}");
        }
        other => panic!("STRATBOX_LOG_FORMAT=yaml was accepted: {other:?}"),
    }
}
