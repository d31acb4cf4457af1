//! The pipeline that joins stratbox's zones: market events from the bus into strategy
//! instances (Zone A), their proposals over gRPC into the engine (Zone B).
//!
//! - [`translate`]: proto `ChainEvent` -> WIT `Event`, validated proposal -> proto `Proposal`.
//! - [`balances`]: each account's balances, followed from the engine's books.
//! - [`market`]: pool state, watermark and `host.history` derived from the bus alone.
//! - [`fleet`]: instances on worker threads; hot swap and scaling between two events.
//! - [`roster`]: building and starting instances before they join a fleet.
//! - [`rollout`]: following the registry's desired state: hot swap, scale, state hand-over.
//! - [`service`]: a host's loop: bus -> fleet -> engine -> acknowledge.
//! - [`assemble`]: one way to build a host, for the CLI and the tests.
//! - [`metrics`]: the host's Prometheus metrics.
//! - [`delivery`]: the engine link that retries without losing or duplicating proposals.
//! - [`execution`]: what became of each proposal, told to its strategy (world 0.2.0).
//! - [`credentials`]: the host's key on every call to the engine and the registry.
//! - [`memory`]: the strategies' memories (world 0.2.0), loaded from and stored by the engine.
#![warn(missing_docs)]

pub mod assemble;
pub mod balances;
pub mod credentials;
pub mod delivery;
pub mod execution;
pub mod fleet;
pub mod market;
pub mod memory;
pub mod metrics;
pub mod outcome;
pub mod rollout;
pub mod roster;
pub mod service;
pub mod translate;

pub use assemble::{AssembleError, Assembled, BusSeat, HostPlan};
pub use balances::BookBalances;
pub use credentials::{HostKey, KeyError};
pub use delivery::{DeliveryError, EngineLink, RetryPolicy};
pub use execution::{OpenTask, OutcomeFor, Tracker};
pub use fleet::{
    Answer, Fleet, FleetError, FleetStats, Identity, Member, RunOutput, Runner, Switch, Told,
};
pub use market::{Market, SharedMarketHistory};
pub use memory::MemoryBook;
pub use metrics::HostMetrics;
pub use rollout::{
    ComponentSource, LocalComponents, LocalStrategy, Outcome, OutcomeKind, RegistryLink, Rollout,
    RolloutError,
};
pub use roster::{Deployment, StartError};
pub use service::{Handled, HostService, ServiceError, ServiceStats};
pub use translate::{Envelope, Incoming, TranslateError};
