//! The `stratbox` command as a library: the pieces its integration tests also drive, and
//! the only place that links all three zones' crates together.
//!
//! - [`cli`]: the real argument parser, with which tests parse the deploy files' command
//!   lines.
//! - [`market`]: the market `stratbox up` runs (a random walk on the embedded chain, or real
//!   swaps on an Anvil node). A demo, so it lives with the command, not in a zone.
//! - [`demo_signer`]: Zone C in process for `stratbox up --live`: the signer with its
//!   threshold share services, a policy for the demo's deployment, its account funded.
//! - [`relay`]: a local private relay (`eth_sendBundle`) that stands in for a real one, for
//!   development and tests of the private route.
//! - [`compile`]: the registry's compile step done with the host's runtime. The registry
//!   (Zone B) must not link the host (Zone A); the command, which links both, supplies it.
#![warn(missing_docs)]

// Lets code in this package name its own items `stratbox::…`, the same path from the
// library, the binary and the tests.
extern crate self as stratbox;

pub mod cli;
// The subcommands' implementations: what each one does is documented by its `--help`
// (the `cli` module's doc comments) and the README's command table.
#[allow(missing_docs)]
pub mod cmd;
pub mod compile;
pub mod demo_signer;
pub mod market;
pub mod relay;
