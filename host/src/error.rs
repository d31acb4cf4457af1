//! The ways a strategy call or a component load can fail, each its own variant, so the
//! pipeline can count them (`kind()`) and decide without parsing messages.

use std::time::Duration;

/// Why a call into a strategy instance produced no proposals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call burned its whole fuel budget.
    #[error("out of fuel: the call used its whole budget of {limit} fuel")]
    OutOfFuel { limit: u64 },
    /// The call was still running at its wall-clock deadline.
    #[error("deadline: the call was still running after {deadline_ms} ms")]
    Deadline { deadline_ms: u64 },
    /// The guest tried to grow a memory or table past its limit.
    #[error("memory limit: {0}")]
    MemoryLimit(String),
    /// Any other trap: unreachable, stack overflow, out-of-bounds access, a panic.
    #[error("trap: {0}")]
    Trap(String),
    /// The guest returned something the host refuses to pass on.
    #[error("bad output: {0}")]
    BadOutput(String),
    /// The guest returned `Err(message)` from `on-event`; the instance stays live.
    #[error("strategy error: {0}")]
    Strategy(String),
    /// Instantiation or `init` failed (the guest's `Err`, or how it was stopped).
    #[error("init failed: {0}")]
    Init(String),
    /// Too many consecutive failures: the instance is not called until `retry_in` passes.
    #[error("quarantined after {failures} consecutive failures; retry in {retry_in:?}")]
    Quarantined { failures: u32, retry_in: Duration },
    /// The host holds as many live instances as it is configured for.
    #[error("instance pool exhausted: {0}")]
    PoolExhausted(String),
    /// The host's own configuration refuses this instance (e.g. a limit above the pool's).
    #[error("configuration: {0}")]
    Config(String),
}

impl CallError {
    /// Stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::OutOfFuel { .. } => "out_of_fuel",
            CallError::Deadline { .. } => "deadline",
            CallError::MemoryLimit(_) => "memory_limit",
            CallError::Trap(_) => "trap",
            CallError::BadOutput(_) => "bad_output",
            CallError::Strategy(_) => "strategy",
            CallError::Init(_) => "init",
            CallError::Quarantined { .. } => "quarantined",
            CallError::PoolExhausted(_) => "pool_exhausted",
            CallError::Config(_) => "config",
        }
    }

    /// Whether the instance that produced this error must be thrown away. A guest `Err`
    /// is an answer; everything the host had to stop (or refuse) leaves the instance's
    /// state suspect, so it is rebuilt from scratch.
    pub fn discards_instance(&self) -> bool {
        matches!(
            self,
            CallError::OutOfFuel { .. }
                | CallError::Deadline { .. }
                | CallError::MemoryLimit(_)
                | CallError::Trap(_)
                | CallError::BadOutput(_)
                | CallError::Init(_)
        )
    }

    /// Whether this error counts towards quarantine.
    pub fn is_failure(&self) -> bool {
        self.discards_instance()
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a component of the stratbox world (see [`crate::check`]).
    #[error(transparent)]
    Check(#[from] crate::check::CheckError),
    /// It is of the world, but wasmtime would not compile or link it.
    #[error("compile: {0}")]
    Compile(String),
    /// The file could not be read.
    #[error("read: {0}")]
    Io(String),
    /// The engine (or its ticker, linker, cache directory) could not be set up.
    #[error("engine: {0}")]
    Engine(String),
}
