//! The Python and JavaScript SDKs' own unit tests (amounts, V3 math against the Rust SDK's
//! vectors, proposal rules, the example makers), run by the workspace's test command so a
//! change to either SDK is tested where the Rust one is. Their equality with the Rust SDK and
//! the pool bytecode is `crates/sim/tests/alignment.rs`; the built components under the real
//! host are `host/runtime/tests/foreign.rs`. A missing interpreter fails these tests.

use std::path::Path;
use std::process::Command;

fn sdk(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

#[test]
fn python_sdk_unit_tests_pass() {
    let text = run(
        Command::new("python3")
            // No __pycache__ beside the sources: the strategy catalog's build script
            // watches them, and a new file there would rebuild every component.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .args(["-m", "unittest", "discover", "-s"])
            .arg(sdk("python/tests"))
            .current_dir(sdk("python")),
        "python3 -m unittest",
    );
    // unittest's summary: "Ran N tests" then "OK"; none may be skipped.
    let ran = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    assert!(ran >= 50, "only {ran} Python tests ran:\n{text}");
    assert!(
        !text.contains("skipped"),
        "a Python test was skipped:\n{text}"
    );
}

#[test]
fn js_sdk_unit_tests_pass() {
    let text = run(
        Command::new("node").arg("--test").arg(sdk("js/tests")),
        "node --test",
    );
    // node's summary lines (TAP when not on a terminal): "# pass N", "# fail N", ...
    let count = |key: &str| {
        text.lines()
            .find_map(|l| {
                let l = l.trim();
                let rest = l.strip_prefix("# ").or_else(|| l.strip_prefix("ℹ "))?;
                rest.strip_prefix(key)?.trim().parse::<usize>().ok()
            })
            .unwrap_or_else(|| panic!("no `{key}` line in node's summary:\n{text}"))
    };
    assert!(count("pass") >= 20, "{text}");
    assert_eq!(count("fail"), 0, "{text}");
    assert_eq!(count("skipped"), 0, "{text}");
}
