//! One module per subcommand.

pub mod approvals;
pub mod backtest;
pub mod bench;
pub mod bench_engine;
pub mod bench_host;
pub mod bench_live;
pub mod bench_machine;
pub mod bench_pipeline;
pub mod bench_rollout;
pub mod bench_signer;
pub mod build;
pub mod engine;
pub mod engine_tls;
pub mod governance;
pub mod health;
pub mod host;
pub mod kill_switch;
pub mod new;
pub mod operator;
pub mod reconcile;
pub mod relay;
pub mod risk;
pub mod signer;
pub mod strategy;
pub mod up;
