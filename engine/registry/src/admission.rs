//! What an upload must pass before anything is stored, cheapest first: the size cap (before
//! any other work), the checks of `stratbox strategy check`, then a compile by wasmtime in a
//! separate, time-limited step.
//!
//! The compile runs in a child process ([`ProcessCompiler`]) because compiling hostile
//! bytes is the one expensive thing an upload can make the engine do: a child can be killed
//! when it overruns, and a compiler crash cannot take the engine down. The engine library
//! does not know which program that is; `stratbox engine` passes its own executable
//! (`std::env::current_exe()`) with the hidden subcommand `strategy compile`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use stratbox_component::{CheckError, CheckReport, check_component};

use crate::error::{Refusal, RegistryError};

/// Largest component the registry accepts unless configured otherwise: the hosts' own
/// default, so what the registry stores a host will load. A Python strategy built with
/// componentize-py links the interpreter and its standard library (~18 MB).
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = stratbox_component::DEFAULT_MAX_COMPONENT_BYTES;
/// How long a compile may take unless configured otherwise. Catalog strategies compile in
/// about a second on a busy 2-core machine.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Compiles a component that already passed [`check_component`].
#[tonic::async_trait]
pub trait Compiler: Send + Sync {
    /// `Err(RegistryError::Refused(..))` when the component is at fault (it does not
    /// compile, or compiling it takes too long); other errors when the compiler could not
    /// run at all.
    async fn compile(&self, bytes: &[u8]) -> Result<(), RegistryError>;
}

/// Runs `program args... FILE` with the component written to FILE, and kills it if it has
/// not exited within `timeout`. Exit status 0 means compiled; otherwise the last line of
/// its stderr is the reason.
#[derive(Debug, Clone)]
pub struct ProcessCompiler {
    /// The compiler executable (normally this binary, in its compile-only mode).
    pub program: PathBuf,
    /// Arguments before the component's file name.
    pub args: Vec<OsString>,
    /// Wall-clock limit; past it the process is killed and the upload refused.
    pub timeout: Duration,
}

impl ProcessCompiler {
    /// The `stratbox` binary's hidden `strategy compile FILE` subcommand.
    pub fn stratbox(exe: PathBuf, timeout: Duration) -> Self {
        ProcessCompiler {
            program: exe,
            args: vec!["strategy".into(), "compile".into()],
            timeout,
        }
    }
}

#[tonic::async_trait]
impl Compiler for ProcessCompiler {
    async fn compile(&self, bytes: &[u8]) -> Result<(), RegistryError> {
        let file = tempfile::Builder::new()
            .prefix("stratbox-upload-")
            .suffix(".wasm")
            .tempfile()
            .map_err(|e| RegistryError::Compiler(format!("temporary file: {e}")))?;
        tokio::fs::write(file.path(), bytes)
            .await
            .map_err(|e| RegistryError::Compiler(format!("temporary file: {e}")))?;
        let child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .arg(file.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            // Dropping the wait below on timeout drops the child: it is killed (SIGKILL)
            // and reaped by tokio.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                RegistryError::Compiler(format!("starting {}: {e}", self.program.display()))
            })?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(output) => output.map_err(|e| RegistryError::Compiler(format!("waiting: {e}")))?,
            Err(_) => return Err(Refusal::CompileTimeout(self.timeout).into()),
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        let reason: String = last
            .strip_prefix("error: ")
            .unwrap_or(last)
            .chars()
            .take(500)
            .collect();
        let reason = if reason.is_empty() {
            format!("the compiler exited with {}", output.status)
        } else {
            reason
        };
        Err(Refusal::Compile(reason).into())
    }
}

/// A component that passed admission.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// What the check found (world, imports, exports, size, hash).
    pub report: CheckReport,
    /// Exports `save` and `restore` (world `stratbox:strategy@0.1.1`).
    pub stateful: bool,
}

/// True when the component exports both `save` and `restore`.
pub fn is_stateful(report: &CheckReport) -> bool {
    ["save", "restore"]
        .iter()
        .all(|f| report.exports.iter().any(|e| e == f))
}

/// The size cap: the first thing every upload passes, whole or announced in pieces, so
/// an oversized upload costs nothing more than its header (or its transfer).
pub fn check_size(size: usize, max_bytes: usize) -> Result<(), RegistryError> {
    if size > max_bytes {
        return Err(Refusal::Check(CheckError::Oversized {
            size,
            limit: max_bytes,
        })
        .into());
    }
    Ok(())
}

/// Size cap, checks, compile. Nothing is stored here.
pub async fn admit(
    bytes: &[u8],
    max_bytes: usize,
    compiler: &dyn Compiler,
) -> Result<Admitted, RegistryError> {
    check_size(bytes.len(), max_bytes)?;
    let owned = bytes.to_vec();
    let report = tokio::task::spawn_blocking(move || check_component(&owned, max_bytes))
        .await
        .map_err(|e| RegistryError::Compiler(format!("check task: {e}")))?
        .map_err(Refusal::Check)?;
    compiler.compile(bytes).await?;
    let stateful = is_stateful(&report);
    Ok(Admitted { report, stateful })
}
