//! `sol!` bindings for the calls stratbox makes and the events it reads. Hand-written from the
//! pinned interfaces (v3-core 1.0.1, OpenZeppelin 4.9.6, our executor) so they hold only what
//! we use; `tests/artifacts.rs` checks every selector against the artifacts' own ABI JSON.

#![allow(clippy::too_many_arguments)]

use alloy_sol_types::sol;

sol! {
    /// Uniswap V3 factory (`UniswapV3Factory.sol`).
    #[derive(Debug, PartialEq, Eq)]
    interface IUniswapV3Factory {
        event PoolCreated(address indexed token0, address indexed token1, uint24 indexed fee, int24 tickSpacing, address pool);
        function owner() external view returns (address);
        function feeAmountTickSpacing(uint24 fee) external view returns (int24);
        function getPool(address tokenA, address tokenB, uint24 fee) external view returns (address pool);
        function createPool(address tokenA, address tokenB, uint24 fee) external returns (address pool);
        function enableFeeAmount(uint24 fee, int24 tickSpacing) external;
    }
}

sol! {
    /// Uniswap V3 pool (`UniswapV3Pool.sol`).
    #[derive(Debug, PartialEq, Eq)]
    interface IUniswapV3Pool {
        event Initialize(uint160 sqrtPriceX96, int24 tick);
        event Mint(address sender, address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount, uint256 amount0, uint256 amount1);
        event Collect(address indexed owner, address recipient, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount0, uint128 amount1);
        event Burn(address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount, uint256 amount0, uint256 amount1);
        event Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick);

        function factory() external view returns (address);
        function token0() external view returns (address);
        function token1() external view returns (address);
        function fee() external view returns (uint24);
        function tickSpacing() external view returns (int24);
        function maxLiquidityPerTick() external view returns (uint128);
        function slot0() external view returns (uint160 sqrtPriceX96, int24 tick, uint16 observationIndex, uint16 observationCardinality, uint16 observationCardinalityNext, uint8 feeProtocol, bool unlocked);
        function liquidity() external view returns (uint128);
        function feeGrowthGlobal0X128() external view returns (uint256);
        function feeGrowthGlobal1X128() external view returns (uint256);
        function ticks(int24 tick) external view returns (uint128 liquidityGross, int128 liquidityNet, uint256 feeGrowthOutside0X128, uint256 feeGrowthOutside1X128, int56 tickCumulativeOutside, uint160 secondsPerLiquidityOutsideX128, uint32 secondsOutside, bool initialized);
        function tickBitmap(int16 wordPosition) external view returns (uint256);
        function positions(bytes32 key) external view returns (uint128 _liquidity, uint256 feeGrowthInside0LastX128, uint256 feeGrowthInside1LastX128, uint128 tokensOwed0, uint128 tokensOwed1);

        function observe(uint32[] secondsAgos) external view returns (int56[] tickCumulatives, uint160[] secondsPerLiquidityCumulativeX128s);
        function increaseObservationCardinalityNext(uint16 observationCardinalityNext) external;

        function initialize(uint160 sqrtPriceX96) external;
        function mint(address recipient, int24 tickLower, int24 tickUpper, uint128 amount, bytes data) external returns (uint256 amount0, uint256 amount1);
        function collect(address recipient, int24 tickLower, int24 tickUpper, uint128 amount0Requested, uint128 amount1Requested) external returns (uint128 amount0, uint128 amount1);
        function burn(int24 tickLower, int24 tickUpper, uint128 amount) external returns (uint256 amount0, uint256 amount1);
        function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96, bytes data) external returns (int256 amount0, int256 amount1);
    }
}

sol! {
    /// ERC-20 as OpenZeppelin 4.9.6's `ERC20PresetMinterPauser` implements it.
    #[derive(Debug, PartialEq, Eq)]
    interface IERC20 {
        event Transfer(address indexed from, address indexed to, uint256 value);
        event Approval(address indexed owner, address indexed spender, uint256 value);
        function name() external view returns (string);
        function symbol() external view returns (string);
        function decimals() external view returns (uint8);
        function totalSupply() external view returns (uint256);
        function balanceOf(address account) external view returns (uint256);
        function allowance(address owner, address spender) external view returns (uint256);
        function transfer(address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
    }
}

sol! {
    /// What the preset adds to ERC-20: minting by the deployer.
    #[derive(Debug, PartialEq, Eq)]
    interface ERC20PresetMinterPauser {
        constructor(string name, string symbol);
        function mint(address to, uint256 amount) external;
    }
}

// `LiquidityRemoved` has nine fields, and sol! gives each event a nine-argument `new`.
sol! {
    /// stratbox's executor (`solidity/StratboxExecutor.sol`).
    #[derive(Debug, PartialEq, Eq)]
    interface StratboxExecutor {
        event Swapped(address indexed account, address indexed pool, bool zeroForOne, int256 amount0, int256 amount1);
        event LiquidityAdded(address indexed account, address indexed pool, int24 tickLower, int24 tickUpper, uint128 liquidity, uint256 amount0, uint256 amount1);
        event LiquidityRemoved(address indexed account, address indexed pool, int24 tickLower, int24 tickUpper, uint128 liquidity, uint256 amount0, uint256 amount1, uint256 fees0, uint256 fees1);

        function positions(bytes32 key) external view returns (uint128 liquidity, uint256 feeGrowthInside0LastX128, uint256 feeGrowthInside1LastX128, uint128 tokensOwed0, uint128 tokensOwed1);
        function positionKey(address account, address pool, int24 tickLower, int24 tickUpper) external pure returns (bytes32);
        function swap(address pool, bool zeroForOne, uint256 amountIn, uint160 sqrtPriceLimitX96, uint256 amountOutMinimum) external returns (int256 amount0, int256 amount1);
        function mint(address pool, int24 tickLower, int24 tickUpper, uint128 liquidity) external returns (uint256 amount0, uint256 amount1);
        function burn(address pool, int24 tickLower, int24 tickUpper, uint128 liquidity) external returns (uint256 amount0, uint256 amount1, uint256 fees0, uint256 fees1);
        function uniswapV3MintCallback(uint256 amount0Owed, uint256 amount1Owed, bytes data) external;
        function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes data) external;
    }
}

sol! {
    /// Chainlink's `AggregatorV3Interface` as `MockV3Aggregator` (`@chainlink/contracts`
    /// 0.4.1, `src/v0.7/tests`) implements it, with the mock's constructor and `updateAnswer`.
    #[derive(Debug, PartialEq, Eq)]
    interface MockV3Aggregator {
        constructor(uint8 _decimals, int256 _initialAnswer);
        function decimals() external view returns (uint8);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
        function updateAnswer(int256 _answer) external;
    }
}
