//! The embedded bytecode and hand-written bindings agree with the artifacts they come from.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use alloy_primitives::keccak256;
use alloy_sol_types::SolCall;
use stratbox_evm::abi::{
    ERC20PresetMinterPauser, IERC20, IUniswapV3Factory, IUniswapV3Pool, MockV3Aggregator,
    StratboxExecutor,
};
use stratbox_evm::bytecode;

/// Selectors of every function in an artifact's ABI JSON.
fn selectors(abi_json: &str) -> BTreeSet<[u8; 4]> {
    let abi: serde_json::Value = serde_json::from_str(abi_json).expect("embedded ABI is JSON");
    abi.as_array()
        .expect("ABI is an array")
        .iter()
        .filter(|item| item["type"] == "function")
        .map(|item| {
            let inputs: Vec<String> = item["inputs"]
                .as_array()
                .expect("inputs")
                .iter()
                .map(|i| i["type"].as_str().expect("type").to_owned())
                .collect();
            let signature = format!(
                "{}({})",
                item["name"].as_str().expect("name"),
                inputs.join(",")
            );
            let hash = keccak256(signature.as_bytes());
            [hash[0], hash[1], hash[2], hash[3]]
        })
        .collect()
}

#[test]
fn bindings_match_the_artifacts_abis() {
    let pool = selectors(bytecode::POOL_ABI_JSON);
    for s in [
        IUniswapV3Pool::slot0Call::SELECTOR,
        IUniswapV3Pool::liquidityCall::SELECTOR,
        IUniswapV3Pool::swapCall::SELECTOR,
        IUniswapV3Pool::mintCall::SELECTOR,
        IUniswapV3Pool::burnCall::SELECTOR,
        IUniswapV3Pool::collectCall::SELECTOR,
        IUniswapV3Pool::positionsCall::SELECTOR,
        IUniswapV3Pool::ticksCall::SELECTOR,
        IUniswapV3Pool::initializeCall::SELECTOR,
        IUniswapV3Pool::tickSpacingCall::SELECTOR,
        IUniswapV3Pool::observeCall::SELECTOR,
        IUniswapV3Pool::increaseObservationCardinalityNextCall::SELECTOR,
    ] {
        assert!(pool.contains(&s), "pool selector {s:?}");
    }
    let factory = selectors(bytecode::FACTORY_ABI_JSON);
    for s in [
        IUniswapV3Factory::createPoolCall::SELECTOR,
        IUniswapV3Factory::getPoolCall::SELECTOR,
        IUniswapV3Factory::feeAmountTickSpacingCall::SELECTOR,
    ] {
        assert!(factory.contains(&s), "factory selector {s:?}");
    }
    let erc20 = selectors(bytecode::ERC20_ABI_JSON);
    for s in [
        IERC20::balanceOfCall::SELECTOR,
        IERC20::approveCall::SELECTOR,
        IERC20::allowanceCall::SELECTOR,
        IERC20::transferFromCall::SELECTOR,
        ERC20PresetMinterPauser::mintCall::SELECTOR,
    ] {
        assert!(erc20.contains(&s), "erc20 selector {s:?}");
    }
    let executor = selectors(bytecode::EXECUTOR_ABI_JSON);
    for s in [
        StratboxExecutor::swapCall::SELECTOR,
        StratboxExecutor::mintCall::SELECTOR,
        StratboxExecutor::burnCall::SELECTOR,
        StratboxExecutor::positionsCall::SELECTOR,
        StratboxExecutor::uniswapV3MintCallbackCall::SELECTOR,
        StratboxExecutor::uniswapV3SwapCallbackCall::SELECTOR,
    ] {
        assert!(executor.contains(&s), "executor selector {s:?}");
    }
    let aggregator = selectors(bytecode::AGGREGATOR_ABI_JSON);
    for s in [
        MockV3Aggregator::decimalsCall::SELECTOR,
        MockV3Aggregator::latestRoundDataCall::SELECTOR,
        MockV3Aggregator::updateAnswerCall::SELECTOR,
    ] {
        assert!(aggregator.contains(&s), "aggregator selector {s:?}");
    }
}

#[test]
fn pool_init_code_hash_is_mainnets() {
    // The canonical Uniswap V3 POOL_INIT_CODE_HASH: the npm build is the mainnet build.
    assert_eq!(
        bytecode::pool_init_code_hash().to_string(),
        "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
    );
    assert!(bytecode::FACTORY_RUNTIME.len() <= 24_576);
    assert!(bytecode::POOL_RUNTIME.len() <= 24_576);
}

/// Runs `script --stdout` (a compile with the pinned solcjs) and compares its output with
/// the committed artifact. Needs node and npm's packages (`needs`, a file under
/// `node_modules`): without them it fails under `CI=true` and says it skipped elsewhere (a
/// developer may not have run `npm ci`).
fn assert_fresh_compile(what: &str, script: &str, needs: &str, committed: &str, artifact: &str) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let needed = manifest.join("../../node_modules").join(needs);
    if let Err(e) = Command::new("node").arg("--version").output() {
        stratbox_testenv::unavailable(
            &format!("node (to recompile {what})"),
            &format!("`node --version`: {e}"),
        );
        return;
    }
    if !needed.is_file() {
        stratbox_testenv::unavailable(
            &format!("npm's {needs} (to recompile {what})"),
            &format!("{} is missing; run `npm ci`", needed.display()),
        );
        return;
    }
    let output = Command::new("node")
        .arg(manifest.join(script))
        .arg("--stdout")
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "compile failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fresh = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        fresh == committed,
        "crates/evm/artifacts/{artifact} is stale: run node crates/evm/{script}"
    );
}

/// `solidity/StratboxExecutor.sol`, ours.
#[test]
fn committed_executor_artifact_matches_a_fresh_compile() {
    assert_fresh_compile(
        "the executor",
        "build-executor.js",
        "solc/package.json",
        bytecode::EXECUTOR_ARTIFACT_JSON,
        "StratboxExecutor.json",
    );
}

/// Chainlink's `MockV3Aggregator`, from the sources `@chainlink/contracts` ships.
#[test]
fn committed_aggregator_artifact_matches_a_fresh_compile() {
    assert_fresh_compile(
        "the aggregator",
        "build-aggregator.js",
        "@chainlink/contracts/src/v0.7/tests/MockV3Aggregator.sol",
        bytecode::AGGREGATOR_ARTIFACT_JSON,
        "MockV3Aggregator.json",
    );
}
