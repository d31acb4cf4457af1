//! The real chain behind [`crate::Simulator`]: `stratbox_sim::Chain` (revm with the
//! Uniswap V3 bytecode), embedded or forked.
