//! One module per subcommand.

pub mod backtest;
pub mod bench;
pub mod engine;
pub mod host;
pub mod strategy;
pub mod up;
