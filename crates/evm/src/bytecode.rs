//! Contract bytecode embedded at build time (see `build.rs`), so nothing at run time needs
//! `node_modules` to deploy the embedded chain.

use alloy_primitives::{B256, keccak256};

macro_rules! artifact {
    ($file:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $file))
    };
}

/// `UniswapV3Factory` creation code (v3-core 1.0.1). The factory deploys pools itself, so the
/// pool's creation code is inside it.
pub static FACTORY_INITCODE: &[u8] = artifact!("UniswapV3Factory.initcode.bin");
/// Its deployed code, for installing it at an address without deploying.
pub static FACTORY_RUNTIME: &[u8] = artifact!("UniswapV3Factory.runtime.bin");
/// `UniswapV3Pool` creation code; its hash is what pool addresses are derived from.
pub static POOL_INITCODE: &[u8] = artifact!("UniswapV3Pool.initcode.bin");
/// Its deployed code, for installing it at an address without deploying.
pub static POOL_RUNTIME: &[u8] = artifact!("UniswapV3Pool.runtime.bin");
/// OpenZeppelin 4.9.6 `ERC20PresetMinterPauser`: constructor(name, symbol), 18 decimals, the
/// deployer may mint, which is how test accounts get funded on a real node.
pub static ERC20_INITCODE: &[u8] = artifact!("ERC20PresetMinterPauser.initcode.bin");
/// Its deployed code, for installing it at an address without deploying.
pub static ERC20_RUNTIME: &[u8] = artifact!("ERC20PresetMinterPauser.runtime.bin");
/// stratbox's executor (no constructor arguments).
pub static EXECUTOR_INITCODE: &[u8] = artifact!("StratboxExecutor.initcode.bin");
/// Its deployed code, for installing it at an address without deploying.
pub static EXECUTOR_RUNTIME: &[u8] = artifact!("StratboxExecutor.runtime.bin");

/// Chainlink's `MockV3Aggregator` (`@chainlink/contracts` 0.4.1, compiled by
/// `build-aggregator.js`): constructor(decimals, initialAnswer); a price feed answering
/// `latestRoundData`, moved by whoever calls `updateAnswer` (the demo's keeper).
pub static AGGREGATOR_INITCODE: &[u8] = artifact!("MockV3Aggregator.initcode.bin");

/// The factory's ABI as solc wrote it, for tools that want JSON rather than typed bindings.
pub static FACTORY_ABI_JSON: &str =
    include_str!(concat!(env!("OUT_DIR"), "/UniswapV3Factory.abi.json"));
/// The pool's ABI as solc wrote it.
pub static POOL_ABI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/UniswapV3Pool.abi.json"));
/// The test token's ABI as solc wrote it.
pub static ERC20_ABI_JSON: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/ERC20PresetMinterPauser.abi.json"
));
/// The executor's ABI as solc wrote it.
pub static EXECUTOR_ABI_JSON: &str =
    include_str!(concat!(env!("OUT_DIR"), "/StratboxExecutor.abi.json"));

/// The aggregator's ABI as solc wrote it.
pub static AGGREGATOR_ABI_JSON: &str =
    include_str!(concat!(env!("OUT_DIR"), "/MockV3Aggregator.abi.json"));

/// The committed aggregator artifact, byte for byte, to compare with a fresh compile.
pub static AGGREGATOR_ARTIFACT_JSON: &str = include_str!("../artifacts/MockV3Aggregator.json");

/// The committed executor artifact, byte for byte, so a test can compare it with a fresh
/// compile.
pub static EXECUTOR_ARTIFACT_JSON: &str = include_str!("../artifacts/StratboxExecutor.json");

/// keccak256 of the pool creation code: the CREATE2 init-code hash of every pool this
/// factory build deploys (mainnet's `0xe34f…b54`).
pub fn pool_init_code_hash() -> B256 {
    keccak256(POOL_INITCODE)
}
