//! Builds the strategy components with a nested cargo for `wasm32-wasip2`.
//!
//! Why nested: the components are a different target than everything else in the
//! workspace, and a build-dependency cannot be built for another target. The child uses
//! its own target dir so it never waits on the outer cargo's lock, and inherits the
//! jobserver (`CARGO_MAKEFLAGS`) so the two together stay within `-j`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Crate name and the env var that carries its `.wasm` path to `lib.rs`.
const COMPONENTS: &[(&str, &str)] = &[
    ("clamm-maker", "STRATBOX_WASM_CLAMM_MAKER"),
    ("momentum", "STRATBOX_WASM_MOMENTUM"),
    ("tally", "STRATBOX_WASM_TALLY"),
    ("hostile", "STRATBOX_WASM_HOSTILE"),
    ("other-world", "STRATBOX_WASM_OTHER_WORLD"),
];

/// Strategies written in Python and JavaScript: catalog name, language, folder under
/// `strategies/<language>`, and the env var that carries the `.wasm` path.
const FOREIGN: &[(&str, Lang, &str, &str)] = &[
    (
        "clamm-maker-py",
        Lang::Python,
        "clamm-maker",
        "STRATBOX_WASM_CLAMM_MAKER_PY",
    ),
    (
        "hostile-py",
        Lang::Python,
        "hostile",
        "STRATBOX_WASM_HOSTILE_PY",
    ),
    ("empty-py", Lang::Python, "empty", "STRATBOX_WASM_EMPTY_PY"),
    (
        "clamm-maker-js",
        Lang::Js,
        "clamm-maker",
        "STRATBOX_WASM_CLAMM_MAKER_JS",
    ),
    (
        "hostile-js",
        Lang::Js,
        "hostile",
        "STRATBOX_WASM_HOSTILE_JS",
    ),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Python,
    Js,
}

/// componentize-py, pinned: its output's shape (core modules, the extra export) is what the
/// host and `strategy check` were tested with.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm";

/// The component-model preamble: `\0asm`, version 0x0d, layer 1 (a core module has layer 0).
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Env the child must not inherit: flags and wrappers meant for the host target (or for
/// the outer build's target dir) would break or redirect the wasm build.
const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
];

fn main() {
    if let Err(reason) = run() {
        // A build-script failure prints its stdout; make the last line the one-line reason.
        println!(
            "cargo:warning={}",
            reason.lines().last().unwrap_or("strategy build failed")
        );
        eprintln!("{reason}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(
        env::var("CARGO_MANIFEST_DIR").map_err(|_| "CARGO_MANIFEST_DIR is not set".to_owned())?,
    );
    // strategies/catalog -> workspace root
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot derive the workspace root from CARGO_MANIFEST_DIR")?
        .to_path_buf();

    for dir in ["guest-sdk", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for (name, _) in COMPONENTS {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join("strategies").join(name).display()
        );
    }
    println!("cargo:rerun-if-env-changed=STRATBOX_SKIP_RUSTUP");
    for dir in [
        "strategies/python",
        "guest-sdk/python",
        "strategies/js",
        "guest-sdk/js",
        "package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    ensure_target()?;

    let target_dir = workspace.join("target").join("strategies");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--profile", PROFILE, "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for (name, _) in COMPONENTS {
        cmd.args(["-p", name]);
    }
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    // Outer-build variables that would confuse a nested cargo into thinking it is itself a
    // build script of ours.
    for (key, _) in env::vars_os() {
        if let Some(key) = key.to_str()
            && (key.starts_with("CARGO_FEATURE_")
                || key.starts_with("CARGO_CFG_")
                || key == "TARGET"
                || key == "HOST"
                || key == "OUT_DIR"
                || key == "OPT_LEVEL"
                || key == "PROFILE"
                || key == "DEBUG"
                || key == "NUM_JOBS")
        {
            cmd.env_remove(key);
        }
    }
    let output = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("could not run `{cargo} build` for {TARGET}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{}\nstrategy components failed to build for {TARGET} ({}); see the output above",
            tail.join("\n"),
            output.status
        ));
    }

    let out = target_dir.join(TARGET).join(PROFILE);
    for (name, var) in COMPONENTS {
        let file = out.join(format!("{}.wasm", name.replace('-', "_")));
        let bytes = std::fs::read(&file)
            .map_err(|e| format!("built {name} but cannot read {}: {e}", file.display()))?;
        if !bytes.starts_with(&COMPONENT_PREAMBLE) {
            return Err(format!(
                "{} is not a component (no component-model preamble)",
                file.display()
            ));
        }
        println!("cargo:rustc-env={var}={}", file.display());
    }
    build_foreign(&workspace, &target_dir.join("foreign"))
}

/// Builds the Python strategies with componentize-py (installed into `.tools/py` on first
/// use, as the wasm target is: a fresh machine has neither) and the JavaScript ones with
/// ComponentizeJS (from the repository's pinned npm packages).
fn build_foreign(workspace: &Path, out_dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let componentize_py = ensure_componentize_py(workspace)?;
    let componentize_js = ensure_componentize_js(workspace)?;
    for (name, lang, dir, var) in FOREIGN {
        let file = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
        let script = match lang {
            Lang::Python => "strategies/python/build.sh",
            Lang::Js => "strategies/js/build.sh",
        };
        let output = Command::new("bash")
            .arg(workspace.join(script))
            .arg(&file)
            .arg(dir)
            .env("COMPONENTIZE_PY", &componentize_py)
            .env("COMPONENTIZE_JS", &componentize_js)
            .current_dir(workspace)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("could not run {script}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{}\n{name} failed to build ({script}, {})",
                String::from_utf8_lossy(&output.stderr).trim_end(),
                output.status
            ));
        }
        let bytes = std::fs::read(&file)
            .map_err(|e| format!("built {name} but cannot read {}: {e}", file.display()))?;
        if !bytes.starts_with(&COMPONENT_PREAMBLE) {
            return Err(format!("{} is not a component", file.display()));
        }
        println!("cargo:rustc-env={var}={}", file.display());
    }
    Ok(())
}

/// `node_modules/.bin/componentize-js`, installed with `npm ci` when missing (what
/// `scripts/setup` does on a fresh machine).
fn ensure_componentize_js(workspace: &Path) -> Result<PathBuf, String> {
    println!("cargo:rerun-if-env-changed=STRATBOX_COMPONENTIZE_JS");
    if let Some(path) = env::var_os("STRATBOX_COMPONENTIZE_JS") {
        return Ok(PathBuf::from(path));
    }
    let bin = workspace.join("node_modules/.bin/componentize-js");
    if !bin.exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(workspace)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("componentize-js is missing and `npm ci` could not run: {e}"))?;
        if !out.status.success() || !bin.exists() {
            return Err(format!(
                "{}\n`npm ci` did not install componentize-js ({}); JavaScript strategies are built with it",
                String::from_utf8_lossy(&out.stderr).trim_end(),
                out.status
            ));
        }
    }
    Ok(bin)
}

/// `.tools/py/bin/componentize-py`, made with `python3 -m venv` and pip when missing.
fn ensure_componentize_py(workspace: &Path) -> Result<PathBuf, String> {
    println!("cargo:rerun-if-env-changed=STRATBOX_COMPONENTIZE_PY");
    if let Some(path) = env::var_os("STRATBOX_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(path));
    }
    let venv = workspace.join(".tools").join("py");
    let bin = venv.join("bin").join("componentize-py");
    let pinned = venv.join(format!("{COMPONENTIZE_PY}.installed"));
    if bin.exists() && pinned.exists() {
        return Ok(bin);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}\n{what} failed ({}); Python strategies are built with {COMPONENTIZE_PY}",
                String::from_utf8_lossy(&out.stderr).trim_end(),
                out.status
            ))
        }
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv .tools/py",
    )?;
    run(
        Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            COMPONENTIZE_PY,
        ]),
        &format!("pip install {COMPONENTIZE_PY}"),
    )?;
    std::fs::write(&pinned, b"").map_err(|e| format!("{}: {e}", pinned.display()))?;
    Ok(bin)
}

/// A fresh machine has no wasm32-wasip2 standard library; install it once.
fn ensure_target() -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("could not run `{rustc} --print sysroot`: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return Ok(());
    }
    if env::var_os("STRATBOX_SKIP_RUSTUP").is_some() {
        return Err(format!(
            "the {TARGET} target is not installed and STRATBOX_SKIP_RUSTUP is set; run `rustup target add {TARGET}`"
        ));
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| {
            format!(
                "the {TARGET} target is missing and `rustup target add {TARGET}` could not run: {e}"
            )
        })?;
    if !status.success() {
        return Err(format!("`rustup target add {TARGET}` failed ({status})"));
    }
    Ok(())
}
