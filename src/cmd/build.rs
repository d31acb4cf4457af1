//! `stratbox build`: turns a project made by `stratbox new` into a component, then checks it
//! as `stratbox strategy check` does, so a build that passes is one a host accepts.
//!
//! Each language is built the way the repository builds its own strategies (cargo for
//! `wasm32-wasip2`; `strategies/python/build.sh` with componentize-py;
//! `strategies/js/build.sh` with ComponentizeJS), from the checkout this binary was built
//! from. The tools' own output is kept back while they work and shown only when they fail:
//! on success it is noise, on failure its last lines are the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use stratbox_host::check::DEFAULT_MAX_COMPONENT_BYTES;
use stratbox_host::display::Escaped;

use super::new::{Lang, Project, read_manifest, repo};

const TARGET: &str = "wasm32-wasip2";

/// Enough of a failed tool's output for a compiler error or a Python traceback, little
/// enough that the reason does not scroll away.
const TAIL_LINES: usize = 25;

/// Env the nested cargo must not inherit (as in strategies/catalog/build.rs): flags and
/// wrappers meant for the host target, or another build's target, would break the wasm
/// build. The target dir is passed as a flag instead. Public for the tests that run a
/// nested cargo of their own.
pub const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
];

#[derive(clap::Args)]
pub struct Args {
    /// The project folder, holding stratbox.json.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the component (default: DIR/target/NAME.wasm).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Rust projects: cargo's target dir (default: $CARGO_TARGET_DIR, else DIR/target).
    #[arg(long)]
    target_dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The builds are child processes that run for tens of seconds.
    tokio::task::spawn_blocking(move || build(&args)).await?
}

fn build(args: &Args) -> anyhow::Result<()> {
    let dir = absolute(&args.dir)?;
    let project = read_manifest(&dir)?;
    if args.target_dir.is_some() && project.lang != Lang::Rust {
        bail!(
            "--target-dir is cargo's; {} is a {} project",
            project.name,
            project.lang.as_str()
        );
    }
    let out = match &args.out {
        Some(out) => absolute(out)?,
        None => dir.join("target").join(format!("{}.wasm", project.name)),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // A failed build must not leave the previous component where the new one is expected.
    remove_if_present(&out)?;
    let started = Instant::now();
    match project.lang {
        Lang::Rust => rust(&dir, &project, &out, args.target_dir.as_deref())?,
        Lang::Python => python(&dir, &project, &out)?,
        Lang::Js => js(&dir, &project, &out)?,
    }
    if !out.is_file() {
        bail!("the build finished but wrote no {}", out.display());
    }
    eprintln!(
        "built {} in {:.1} s; checking it",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    super::strategy::check(&out, DEFAULT_MAX_COMPONENT_BYTES, false)
        .context("the component does not pass `stratbox strategy check`")?;
    eprintln!(
        "upload it with: stratbox strategy upload {} --name {}",
        out.display(),
        project.name
    );
    Ok(())
}

fn rust(
    dir: &Path,
    project: &Project,
    out: &Path,
    target_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let target_dir = cargo_target_dir(dir, target_dir)?;
    ensure_wasm_target(dir)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building {} with cargo (release, {TARGET}; target dir {}) …",
        project.name,
        target_dir.display()
    );
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    run_tool("cargo build", &mut cmd)?;
    // cargo names the artifact after the library, whose name is the package's with `_`.
    let built = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", project.name.replace('-', "_")));
    if !built.is_file() {
        bail!(
            "cargo built, but {} is missing: the package must be named {} (as stratbox.json says) with a cdylib library",
            built.display(),
            project.name
        );
    }
    std::fs::copy(&built, out)
        .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    Ok(())
}

/// `--target-dir`, else `$CARGO_TARGET_DIR` (so a caller can share compiled dependencies
/// between projects), else the project's own `target/`. Always handed to cargo as a flag,
/// so this is also where the component is looked for.
fn cargo_target_dir(dir: &Path, flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    let chosen = match flag {
        Some(path) => path.to_path_buf(),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => dir.join("target"),
        },
    };
    absolute(&chosen)
}

/// A fresh toolchain has no wasm32-wasip2 standard library: install it once, as the
/// repository's own strategy build does.
fn ensure_wasm_target(dir: &Path) -> anyhow::Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .with_context(|| format!("running {} --print sysroot", rustc.to_string_lossy()))?;
    if !output.status.success() {
        bail!("`rustc --print sysroot` failed ({})", output.status);
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if sysroot.join("lib").join("rustlib").join(TARGET).exists() {
        return Ok(());
    }
    eprintln!("adding the {TARGET} target (rustup target add {TARGET}) …");
    run_tool(
        "rustup target add",
        Command::new("rustup")
            .current_dir(dir)
            .args(["target", "add", TARGET]),
    )
}

fn python(dir: &Path, project: &Project, out: &Path) -> anyhow::Result<()> {
    let script = repo_file("strategies/python/build.sh")?;
    let componentize = find_tool(
        "COMPONENTIZE_PY",
        &repo().join(".tools/py/bin/componentize-py"),
        "componentize-py",
    )
    .with_context(|| {
        format!(
            "componentize-py not found: set COMPONENTIZE_PY, or `pip install componentize-py==0.25.1`, or build {} once (`cargo build` installs it into .tools/py there)",
            repo().display()
        )
    })?;
    eprintln!(
        "building {} with componentize-py (CPython goes into the component: about 20 MB, 10–60 s) …",
        project.name
    );
    run_tool(
        "strategies/python/build.sh",
        Command::new("bash")
            .arg(&script)
            .arg(out)
            .arg(dir)
            .current_dir(dir)
            .env("COMPONENTIZE_PY", componentize),
    )
}

fn js(dir: &Path, project: &Project, out: &Path) -> anyhow::Result<()> {
    let script = repo_file("strategies/js/build.sh")?;
    let componentize = find_tool(
        "COMPONENTIZE_JS",
        &repo().join("node_modules/.bin/componentize-js"),
        "componentize-js",
    )
    .with_context(|| {
        format!(
            "ComponentizeJS not found: run `npm ci` in {} (scripts/setup does), or set COMPONENTIZE_JS",
            repo().display()
        )
    })?;
    if find_on_path("node").is_none() {
        bail!("node not found on PATH: ComponentizeJS runs on Node.js 20 or later");
    }
    eprintln!(
        "building {} with ComponentizeJS (SpiderMonkey goes into the component: about 12 MB, 5–30 s) …",
        project.name
    );
    run_tool(
        "strategies/js/build.sh",
        Command::new("bash")
            .arg(&script)
            .arg(out)
            .arg(dir)
            .current_dir(dir)
            .env("COMPONENTIZE_JS", componentize),
    )
}

/// A build tool: the path in `env_var` if set, else the copy the repository installs (the
/// pinned version the build scripts check for), else `name` on PATH.
fn find_tool(env_var: &str, repo_copy: &Path, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|path| !path.is_empty()) {
        return Some(PathBuf::from(path));
    }
    if repo_copy.exists() {
        return Some(repo_copy.to_path_buf());
    }
    find_on_path(name)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A file of the checkout this binary was built from; its absence means the binary moved
/// away from it, which a project cannot build without.
fn repo_file(relative: &str) -> anyhow::Result<PathBuf> {
    let path = repo().join(relative);
    if !path.is_file() {
        bail!(
            "{} is missing: this stratbox was built from {} and builds with the scripts there",
            path.display(),
            repo().display()
        );
    }
    Ok(path)
}

/// Runs a build tool with its output captured; on failure prints its last lines on stderr
/// and returns a one-line error.
fn run_tool(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let output = match cmd.stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{what}: {} not found (not installed, or not on PATH)",
            cmd.get_program().to_string_lossy()
        ),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("running {}", cmd.get_program().to_string_lossy()));
        }
    };
    if output.status.success() {
        return Ok(());
    }
    print_tail(what, &output);
    bail!(
        "{what} failed ({}); its last lines are above",
        output.status
    )
}

fn print_tail(what: &str, output: &Output) {
    // cargo, componentize-py and node report on stderr; a script that only wrote to stdout
    // said whatever it said there.
    let stream = if output.stderr.iter().all(u8::is_ascii_whitespace) {
        &output.stdout
    } else {
        &output.stderr
    };
    let text = String::from_utf8_lossy(stream);
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("{what}, last lines:");
    for line in &lines[lines.len().saturating_sub(TAIL_LINES)..] {
        eprintln!("  {}", Escaped(line));
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}
