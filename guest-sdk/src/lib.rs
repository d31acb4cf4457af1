//! # stratbox-sdk
//!
//! What a stratbox strategy author depends on: the bindings of the `strategy` WIT world,
//! [`Amount`] (a 256-bit integer with a strict base-10 wire form), exact Uniswap V3
//! [`math`], the [`Strategy`] trait and the [`export_strategy!`] macro that makes a
//! component of it; [`Stateful`] and [`export_stateful_strategy!`] for a strategy whose
//! state travels to its next version during a hot swap.
//!
//! ## A minimal strategy
//!
//! ```no_run
//! use stratbox_sdk::types::{Event, Proposal, Snapshot};
//! use stratbox_sdk::{Amount, Strategy, host, proposal};
//!
//! /// Buys a fixed amount of token1 with token0 on every swap it sees in its pool.
//! struct Dca {
//!     pool: String,
//!     amount_in: Amount,
//! }
//!
//! impl Strategy for Dca {
//!     fn init(config: &str) -> Result<Self, String> {
//!         // A real strategy parses JSON with serde; `Amount` deserializes from its wire string.
//!         let (pool, amount) = config.split_once(' ').ok_or("expected `<pool> <amount>`")?;
//!         Ok(Dca { pool: pool.to_owned(), amount_in: amount.parse()? })
//!     }
//!
//!     fn on_event(&mut self, event: &Event, snapshot: &Snapshot) -> Result<Vec<Proposal>, String> {
//!         if event.pool() != Some(self.pool.as_str()) || snapshot.pool(&self.pool).is_none() {
//!             return Ok(Vec::new());
//!         }
//!         host::info("buying");
//!         let p = proposal::swap(&self.pool, true, self.amount_in)
//!             .expect(self.amount_in, Amount::ZERO)
//!             .max_slippage_bps(10_000)
//!             .reason("dollar-cost averaging")
//!             .build()?;
//!         Ok(vec![p])
//!     }
//! }
//!
//! stratbox_sdk::export_strategy!(Dca);
//! ```
//!
//! Build it as a component with `cargo build --target wasm32-wasip2` (the crate type must
//! be `cdylib`) and check it with `stratbox strategy check`.
//!
//! On targets other than wasm32 the crate still compiles: the math and `Amount` are plain
//! Rust the engine links natively, and [`host`] falls back to a test double
//! ([`host::testing`]) so strategies can be unit-tested natively.

// Lets the generated bindings name this crate by its public name, so the code
// `export_strategy!` expands in an author's crate resolves without a `wit-bindgen` dependency.
extern crate self as stratbox_sdk;

pub mod amount;
pub mod bindings;
pub mod host;
pub mod math;
pub mod proposal;
pub mod strategy;
pub mod types;

pub use amount::{Amount, AmountError, AmountParseError, U256};
pub use math::MathError;
pub use proposal::{ProposalBuilder, ProposalError};
pub use strategy::{Stateful, Strategy};

/// What the macros expand to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::strategy::{init, on_event, restore, save};
    pub use wit_bindgen;
}
