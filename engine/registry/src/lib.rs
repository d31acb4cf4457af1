//! stratbox-registry: the strategy registry of Zone B.
//!
//! Operators upload strategy components ([`admission`]: size cap, the checks of
//! `stratbox strategy check`, a time-limited compile in a child process), and decide which
//! version runs with how many instances ([`Registry::deploy`], [`Registry::scale`],
//! [`Registry::rollback`]); every change gets a global, strictly increasing revision and
//! an `audit_log` row naming the operator. Hosts watch the desired state
//! ([`Registry::subscribe`], gRPC `WatchDeployments`) and fetch components by sha256.
//!
//! Storage is the engine's own database ([`store`], tables from
//! `engine/migrations/*/0002_registry.sql`): the registry is opened on the engine's pool,
//! so one transaction covers a component, its `strategies` row and its audit row.
#![warn(missing_docs)]

pub mod admission;
pub mod auth;
pub mod error;
pub mod registry;
pub mod service;
pub mod store;

pub use admission::{Compiler, ProcessCompiler};
pub use auth::{ApiKey, Operator, add_operator};
pub use error::{Refusal, RegistryError};
pub use registry::{Registry, RegistryConfig};
pub use service::{RegistryService, routes, server};
