//! stratbox-engine: Zone B.
//!
//! Proposals arrive over gRPC ([`service`]) or in-process ([`Engine::submit`]); each goes
//! through the risk gates ([`gates`], pure checks from `stratbox-risk`), an exact revm
//! simulation of its transaction ([`simulation`], [`chain`]), and one compare-and-set per
//! state change on its row in `trade_tasks` ([`fsm`], [`store`]). In shadow mode a trade
//! ends at SIMULATED and its virtual fill is booked in the double-entry [`ledger`] in the
//! same database transaction.
#![warn(missing_docs)]

pub mod access;
pub mod admin_change;
pub mod alert;
pub mod balances;
pub mod books;
pub mod catalog;
pub mod chain;
pub mod engine;
pub mod follow;
pub mod fsm;
pub mod gates;
pub mod group_commit;
pub mod health;
pub mod ledger;
pub mod live;
pub mod metrics;
pub mod permissions;
pub mod price_sources;
pub mod proposal;
pub mod reconcile;
pub mod replace;
pub mod risk_change;
pub mod route;
pub mod sentinel;
pub mod server;
pub mod service;
pub mod simulation;
pub mod store;
pub mod trace;

pub use access::{Access, Role};
pub use catalog::StrategyCheck;
pub use chain::ChainState;
pub use engine::{
    Engine, EngineError, EngineHandle, EngineSettings, EtherMark, Recovery, market_key, sim_address,
};
pub use fsm::TaskState;
pub use permissions::PermissionView;
pub use simulation::{PoolInfo, SimError, SimOutcome};
pub use store::{Backend, Store, StoreError};
pub use stratbox_risk::{ExecutionMode, PermissionLevel, RiskConfig};
