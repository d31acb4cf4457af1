//! The `stratbox` command's library half: the pieces of the command that its integration
//! tests also drive, and the only place that links all three zones' crates together.
//!
//! - [`market`]: the market `stratbox up` runs (a random walk on the embedded chain, or real
//!   swaps on an Anvil node). A demo, so it lives with the command, not in a zone.
//! - [`compile`]: the registry's compile step done with the host's runtime. The registry
//!   (Zone B) must not link the host (Zone A); the command, which links both, supplies it.
#![warn(missing_docs)]

pub mod compile;
pub mod market;
