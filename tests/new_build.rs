//! `stratbox new` and `stratbox build`, through the real binary: a project in each language
//! builds into a component the host's own check accepts, and the project's own tests pass;
//! what they refuse, they refuse in one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Env a nested cargo must not inherit from the test's own build, scrubbed as `stratbox
// build` scrubs it: it would rebuild everything for flags meant for the outer build.
use stratbox::cmd::build::SCRUBBED_ENV;
use stratbox_host::check::{DEFAULT_MAX_COMPONENT_BYTES, check_component};

use crate::support::stratbox;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails the test with everything the command said unless it succeeded; its stdout.
fn succeeded(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one `error:` line of a command that must fail.
fn error_line(what: &str, out: &Output) -> String {
    assert!(!out.status.success(), "{what} must fail");
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: exactly one error line, got: {text}"
    );
    lines[0].to_owned()
}

/// `stratbox new --lang LANG demo-LANG --dir PARENT`; the project folder.
fn new_project(lang: &str, parent: &Path) -> PathBuf {
    let name = format!("demo-{lang}");
    let out = stratbox()
        .args(["new", "--lang", lang, &name, "--dir"])
        .arg(parent)
        .output()
        .expect("run stratbox new");
    let text = succeeded("stratbox new", &out);
    assert!(
        text.contains("stratbox build"),
        "new says what to run next: {text}"
    );
    let project = parent.join(name);
    assert!(project.join("stratbox.json").is_file(), "{text}");
    project
}

/// The catalog's build takes componentize-py and ComponentizeJS from
/// STRATBOX_COMPONENTIZE_PY/_JS when they are set (and then installs neither into the
/// repository); `stratbox build` reads COMPONENTIZE_PY/_JS.
fn with_catalog_tools(cmd: &mut Command) -> &mut Command {
    for (catalog, build) in [
        ("STRATBOX_COMPONENTIZE_PY", "COMPONENTIZE_PY"),
        ("STRATBOX_COMPONENTIZE_JS", "COMPONENTIZE_JS"),
    ] {
        if std::env::var_os(build).is_none()
            && let Some(path) = std::env::var_os(catalog)
        {
            cmd.env(build, path);
        }
    }
    cmd
}

/// `stratbox build PROJECT`, then the component checked again by the host's check: the
/// report the build printed must be that check's, of that file.
fn build_and_check(project: &Path, name: &str, env: &[(&str, &Path)]) {
    let mut cmd = stratbox();
    cmd.arg("build").arg(project);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = with_catalog_tools(&mut cmd)
        .output()
        .expect("run stratbox build");
    let report = succeeded("stratbox build", &out);
    assert!(
        report.contains("world:   stratbox:strategy/strategy@0.1."),
        "{report}"
    );
    let exports = report
        .lines()
        .find(|l| l.starts_with("exports:"))
        .unwrap_or_default();
    assert!(
        exports.contains("init") && exports.contains("on-event"),
        "{report}"
    );

    let wasm = project.join("target").join(format!("{name}.wasm"));
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    let checked = check_component(&bytes, DEFAULT_MAX_COMPONENT_BYTES)
        .expect("the host's check accepts the component");
    assert!(
        checked.exports.iter().any(|e| e == "on-event"),
        "{:?}",
        checked.exports
    );
    assert!(
        report.contains(&checked.sha256),
        "the report is of this file: {report}"
    );
}

#[test]
fn a_rust_project_builds_into_a_component_and_its_tests_pass() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let project = new_project("rust", scratch.path());
    // One target dir for every run: the SDK's dependencies compile once, not once per
    // temporary project.
    let target = root().join("target").join("scaffold");
    build_and_check(
        &project,
        "demo-rust",
        &[("CARGO_TARGET_DIR", target.as_path())],
    );

    // The project's own tests, natively. In the release profile, so the host half of the
    // build (proc macros, build scripts) is the one the wasm build just made.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--release", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run cargo test");
    let text = succeeded("cargo test of the new project", &out);
    assert!(text.contains("test result: ok. 2 passed"), "{text}");
}

#[test]
fn a_python_project_builds_into_a_component_and_its_tests_pass() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let project = new_project("python", scratch.path());
    build_and_check(&project, "demo-python", &[]);

    let out = Command::new("python3")
        .args(["-m", "unittest"])
        .current_dir(&project)
        .env("PYTHONPATH", root().join("guest-sdk").join("python"))
        // Not into the repository's SDK folder.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3");
    succeeded("python3 -m unittest in the new project", &out);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("OK") && !text.contains("Ran 0 tests"),
        "{text}"
    );
}

#[test]
fn a_js_project_builds_into_a_component_and_its_tests_pass() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let project = new_project("js", scratch.path());
    build_and_check(&project, "demo-js", &[]);

    let out = Command::new("node")
        .args(["--test", "--test-reporter=tap"])
        .current_dir(&project)
        .output()
        .expect("run node");
    let text = succeeded("node --test in the new project", &out);
    let count = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|n| n.trim().parse::<u32>().ok())
    };
    assert_eq!(count("# fail "), Some(0), "{text}");
    assert!(count("# pass ").is_some_and(|n| n > 0), "{text}");
}

#[test]
fn new_refuses_an_existing_folder_and_a_bad_name() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let taken = scratch.path().join("taken");
    std::fs::create_dir(&taken).expect("mkdir");
    let out = stratbox()
        .args(["new", "--lang", "python", "taken", "--dir"])
        .arg(scratch.path())
        .output()
        .expect("run stratbox new");
    let line = error_line("new over an existing folder", &out);
    assert!(line.contains("already exists"), "{line}");
    let written = std::fs::read_dir(&taken).expect("read the folder").count();
    assert_eq!(written, 0, "nothing was written into the existing folder");

    let too_long = "a".repeat(65);
    for (lang, bad) in [
        ("js", "Demo"),
        ("js", "1demo"),
        ("python", "demo_py"),
        ("python", "de.mo"),
        ("python", too_long.as_str()),
        ("rust", "test"),
    ] {
        let out = stratbox()
            .args(["new", "--lang", lang, bad, "--dir"])
            .arg(scratch.path())
            .output()
            .expect("run stratbox new");
        let line = error_line(&format!("new {bad:?}"), &out);
        assert!(line.contains("invalid name"), "{line}");
        assert!(!scratch.path().join(bad).exists(), "{bad:?} was created");
    }
}

#[test]
fn build_names_the_missing_manifest_and_an_unknown_lang() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = stratbox()
        .arg("build")
        .arg(scratch.path())
        .output()
        .expect("run stratbox build");
    let line = error_line("build without stratbox.json", &out);
    assert!(line.contains("stratbox.json"), "{line}");

    std::fs::write(
        scratch.path().join("stratbox.json"),
        r#"{"name": "demo", "lang": "go"}"#,
    )
    .expect("write the manifest");
    let out = stratbox()
        .arg("build")
        .arg(scratch.path())
        .output()
        .expect("run stratbox build");
    let line = error_line("build of an unknown lang", &out);
    assert!(line.contains("unknown lang"), "{line}");
}
