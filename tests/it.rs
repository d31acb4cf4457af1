//! Every integration test of the `stratbox` package, as modules of one test binary.
//!
//! One binary instead of one per file: each would link the whole system (wasmtime, revm,
//! alloy, tonic) on its own, which was most of CI's build time. nextest still runs every test
//! in its own process. `layout::every_test_file_is_a_module` fails if a file under `tests/`
//! is not listed here (with `autotests = false` it would otherwise never run).

mod deploy;
mod support;

mod alert_rules;
mod alert_webhook;
mod anvil_e2e;
mod anvil_walk;
mod bench_cli;
mod cli_strategy;
mod deploy_args;
mod deploy_compose;
mod deploy_k8s;
mod deploy_network;
mod engine_cli;
mod engine_follow;
mod engine_restart;
mod engine_tls;
mod grpcurl;
mod host_startup;
mod hot_swap;
mod layout;
mod live_chaos;
mod live_e2e;
mod live_route;
mod netns_isolation;
mod new_build;
mod pipeline_e2e;
mod reconcile_cli;
mod registry;
mod registry_cli;
mod risk_cli;
mod signer_cli;
mod strategy_memory;
mod trace_e2e;
mod up_cli;
