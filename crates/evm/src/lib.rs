//! Real contract bytecode and ABIs for stratbox's chains, and a local Anvil to run them on.
//!
//! - [`bytecode`]: Uniswap V3 factory and pool (npm `@uniswap/v3-core` 1.0.1, the mainnet
//!   build), OpenZeppelin 4.9.6's `ERC20PresetMinterPauser`, and [`StratboxExecutor`]
//!   (`solidity/StratboxExecutor.sol`, our own), embedded at build time.
//! - [`abi`]: `sol!` bindings for every call stratbox makes.
//! - [`anvil`]: starts the npm-pinned Anvil on a free loopback port, kills it on drop.
//! - [`deploy`]: puts the same contracts on any JSON-RPC node through alloy.
//!
//! [`StratboxExecutor`]: abi::StratboxExecutor
#![warn(missing_docs)]

pub mod abi;
pub mod anvil;
pub mod bytecode;
pub mod deploy;
pub mod node_modules;
pub mod pool_bounds;
pub mod pool_events;

pub use alloy_primitives::{Address, Bytes, U256};
