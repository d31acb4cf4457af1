//! Zone A: runs strategy components in wasmtime, each instance in its own store, and hands
//! what they propose to the rest of stratbox only after checking it.
//!
//! The pieces, from the outside in:
//! - [`HostRuntime`]: one wasmtime `Engine` per process (pooling allocator, copy-on-write
//!   memory images, epoch deadlines, fuel), one `Linker` with WASI p2 granted nothing, an
//!   epoch ticker thread and a compiled-component cache keyed by sha256.
//! - [`LoadedComponent`]: a component that passed [`check`] (it is of the stratbox world),
//!   compiled once, with its `InstancePre` so that instances are cheap.
//! - [`StrategyInstance`]: owns one live instance of a component, calls it, turns every way a
//!   call can go wrong into a typed [`CallError`], throws a failed instance away and rebuilds
//!   it (re-running `init`), and quarantines it with backoff after repeated failures.
//! - [`proposal`]: what leaves the host. Every proposal is parsed into [`ValidatedProposal`]
//!   (U256 amounts, typed action, bounded strings) or the call is a `BadOutput` error.
//! - [`replay`] and [`backtest`]: the JSONL event format and the replay loop behind
//!   `stratbox backtest`.

pub mod backtest;
mod capture;
/// The world check, shared with the registry (Zone B) through its own crate.
pub use stratbox_component as check;
mod clock;
pub mod display;
pub mod error;
pub mod history;
pub mod instance;
mod lift;
pub mod limits;
pub mod proposal;
mod random;
pub mod replay;
pub mod runtime;
mod sandbox;
pub mod wit;

pub use check::{CheckError, CheckReport};
pub use error::{CallError, LoadError};
pub use history::{History, NoHistory, SharedHistory};
pub use instance::{CallOutcome, InstanceSpec, InstanceStats, StrategyInstance};
pub use limits::{Allocation, HostConfig, StrategyLimits};
pub use proposal::{Action, Address, ValidatedProposal};
pub use ruint::aliases::U256;
pub use runtime::{HostRuntime, LoadedComponent};
