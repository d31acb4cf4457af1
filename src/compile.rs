//! Compiling an uploaded component the way a host will, for the registry's admission step.
//!
//! The registry only knows the [`Compiler`] trait. `stratbox engine` runs this in a child
//! process (the hidden `stratbox strategy compile FILE`, through
//! [`stratbox_registry::ProcessCompiler`]) so that hostile bytes cannot take the engine down;
//! [`InProcessCompiler`] is for tests and embedded setups where the uploader is trusted.

use stratbox_host::{Allocation, CheckReport, HostConfig, HostRuntime, LoadError};
use stratbox_registry::admission::Compiler;
use stratbox_registry::{Refusal, RegistryError};

/// Compiles on a blocking thread of this process, with no time limit: for tests and
/// embedded setups where the uploader is trusted.
#[derive(Debug, Clone)]
pub struct InProcessCompiler {
    /// Components larger than this many bytes are refused before compiling.
    pub max_bytes: usize,
}

#[tonic::async_trait]
impl Compiler for InProcessCompiler {
    async fn compile(&self, bytes: &[u8]) -> Result<(), RegistryError> {
        let bytes = bytes.to_vec();
        let max = self.max_bytes;
        tokio::task::spawn_blocking(move || compile_component(&bytes, max))
            .await
            .map_err(|e| RegistryError::Compiler(format!("compile task: {e}")))?
            .map(|_| ())
    }
}

/// Checks and compiles (and links against the host's imports) one component, the way a
/// host will. What the hidden `stratbox strategy compile FILE` runs in the child process.
pub fn compile_component(bytes: &[u8], max_bytes: usize) -> Result<CheckReport, RegistryError> {
    // One instance, allocated on demand: nothing is reserved up front for a one-off compile.
    let config = HostConfig {
        allocation: Allocation::OnDemand,
        max_instances: 1,
        max_component_bytes: max_bytes,
        cache_dir: None,
        ..HostConfig::default()
    };
    let runtime = HostRuntime::new(config).map_err(|e| RegistryError::Compiler(format!("{e}")))?;
    match runtime.load(bytes) {
        Ok(loaded) => Ok(loaded.report().clone()),
        Err(LoadError::Check(c)) => Err(Refusal::Check(c).into()),
        Err(LoadError::Compile(m)) => Err(Refusal::Compile(m).into()),
        Err(e) => Err(RegistryError::Compiler(e.to_string())),
    }
}
