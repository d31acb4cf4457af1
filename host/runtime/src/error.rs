//! The ways a strategy call or a component load can fail, each its own variant, so the
//! pipeline can count them (`kind()`) and decide without parsing messages.

use crate::display::Escaped;
use std::time::Duration;

/// Why a call into a strategy instance produced no proposals.
///
/// The messages carry text the guest chose (its `Err` strings, its panic message); their
/// `Display` escapes it (see [`crate::display`]), so logging or printing one is safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call burned its whole fuel budget.
    #[error("out of fuel: the call used its whole budget of {limit} fuel")]
    OutOfFuel {
        /// The per-call fuel budget.
        limit: u64,
    },
    /// The call was still running at its wall-clock deadline, having burned `fuel_used`.
    #[error("deadline: the call was still running after {deadline_ms} ms ({fuel_used} fuel used)")]
    Deadline {
        /// The per-call deadline, ms.
        deadline_ms: u64,
        /// Fuel burned by then.
        fuel_used: u64,
    },
    /// The guest tried to grow a memory or table past its limit.
    #[error("memory limit: {}", Escaped(.0))]
    MemoryLimit(String),
    /// The guest ended itself through WASI: `exit-with-code` carries its code; plain `exit`
    /// only success or failure (0 or 1), which is all Rust's `std::process::exit(n)`
    /// passes on for wasm32-wasip2.
    #[error("exit: the guest exited with code {code}")]
    Exit {
        /// The exit code (0 or 1 for plain `exit`).
        code: i32,
    },
    /// Any other trap: unreachable, stack overflow, out-of-bounds access, a panic (with
    /// the panic message the guest wrote to stderr, when it wrote one).
    #[error("trap: {}", Escaped(.0))]
    Trap(String),
    /// The guest returned something the host refuses to pass on.
    #[error("bad output: {}", Escaped(.0))]
    BadOutput(String),
    /// The guest returned `Err(message)` from `on-event`; the instance stays live.
    #[error("strategy error: {}", Escaped(.0))]
    Strategy(String),
    /// Instantiation or `init` failed (the guest's `Err`, or how it was stopped).
    #[error("init failed: {}", Escaped(.0))]
    Init(String),
    /// Too many consecutive failures: the instance is not called until `retry_in` passes.
    #[error("quarantined after {failures} consecutive failures; retry in {retry_in:?}")]
    Quarantined {
        /// Consecutive failures so far.
        failures: u32,
        /// Time left until the next call is allowed.
        retry_in: Duration,
    },
    /// The host holds as many live instances as it is configured for.
    #[error("instance pool exhausted: {}", Escaped(.0))]
    PoolExhausted(String),
    /// The host's own configuration refuses this instance (e.g. a limit above the pool's).
    #[error("configuration: {}", Escaped(.0))]
    Config(String),
}

impl CallError {
    /// Stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::OutOfFuel { .. } => "out_of_fuel",
            CallError::Deadline { .. } => "deadline",
            CallError::MemoryLimit(_) => "memory_limit",
            CallError::Exit { .. } => "exit",
            CallError::Trap(_) => "trap",
            CallError::BadOutput(_) => "bad_output",
            CallError::Strategy(_) => "strategy",
            CallError::Init(_) => "init",
            CallError::Quarantined { .. } => "quarantined",
            CallError::PoolExhausted(_) => "pool_exhausted",
            CallError::Config(_) => "config",
        }
    }

    /// Fuel the call burned, when the error says: all of it for `OutOfFuel`, what it had
    /// burned when stopped for `Deadline`.
    pub fn fuel_used(&self) -> Option<u64> {
        match self {
            CallError::OutOfFuel { limit } => Some(*limit),
            CallError::Deadline { fuel_used, .. } => Some(*fuel_used),
            _ => None,
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
                | CallError::Exit { .. }
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
    /// The host's configuration needs more than the machine allows (memory mappings or
    /// address space); the message names the limit and the setting to change.
    #[error("host capacity: {0}")]
    Capacity(crate::capacity::CapacityError),
}

/// By hand rather than `#[from]`: that would also make the capacity error the `source`,
/// and a report of the chain (`{:#}`) would print its text twice.
impl From<crate::capacity::CapacityError> for LoadError {
    fn from(e: crate::capacity::CapacityError) -> Self {
        LoadError::Capacity(e)
    }
}
