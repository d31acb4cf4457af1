// SPDX-License-Identifier: Apache-2.0
pragma solidity =0.7.6;

import '@uniswap/v3-core/contracts/interfaces/IUniswapV3Pool.sol';
import '@uniswap/v3-core/contracts/interfaces/callback/IUniswapV3MintCallback.sol';
import '@uniswap/v3-core/contracts/interfaces/callback/IUniswapV3SwapCallback.sol';
import '@uniswap/v3-core/contracts/libraries/FixedPoint128.sol';
import '@uniswap/v3-core/contracts/libraries/FullMath.sol';
import '@uniswap/v3-core/contracts/libraries/TickMath.sol';

/// @title stratbox executor
/// @notice Lets an account swap on a Uniswap V3 pool and hold liquidity sized in liquidity
/// units on a tick range, the way the strategy world describes its actions. The periphery's
/// router and NFT manager size positions in token amounts and wrap them in NFTs; strategies
/// think in (owner, tickLower, tickUpper, liquidity), like the pool itself.
/// @dev Tokens are pulled from the caller with transferFrom, so an account approves this
/// contract once. The pool position is held by this contract; each account's share of it is
/// tracked here, fees included, the same way NonfungiblePositionManager does it.
contract StratboxExecutor is IUniswapV3MintCallback, IUniswapV3SwapCallback {
    struct Position {
        uint128 liquidity;
        uint256 feeGrowthInside0LastX128;
        uint256 feeGrowthInside1LastX128;
        uint128 tokensOwed0;
        uint128 tokensOwed1;
    }

    /// @notice Each account's share of this contract's pool positions, keyed by positionKey.
    mapping(bytes32 => Position) public positions;

    /// @dev The pool a callback may come from and the account that pays it. Kept in storage,
    /// never in callback data: a fake "pool" chosen by a caller could forge callback data,
    /// but it can only ever be paid by the account that called us.
    address private activePool;
    address private activePayer;

    event Swapped(
        address indexed account,
        address indexed pool,
        bool zeroForOne,
        int256 amount0,
        int256 amount1
    );
    event LiquidityAdded(
        address indexed account,
        address indexed pool,
        int24 tickLower,
        int24 tickUpper,
        uint128 liquidity,
        uint256 amount0,
        uint256 amount1
    );
    event LiquidityRemoved(
        address indexed account,
        address indexed pool,
        int24 tickLower,
        int24 tickUpper,
        uint128 liquidity,
        uint256 amount0,
        uint256 amount1,
        uint256 fees0,
        uint256 fees1
    );

    modifier settles(address pool) {
        require(activePool == address(0), 'LOK');
        activePool = pool;
        activePayer = msg.sender;
        _;
        activePool = address(0);
        activePayer = address(0);
    }

    function positionKey(
        address account,
        address pool,
        int24 tickLower,
        int24 tickUpper
    ) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(account, pool, tickLower, tickUpper));
    }

    /// @notice Sells exactly `amountIn` (less if the price limit is reached first) and sends
    /// the output to the caller.
    /// @param sqrtPriceLimitX96 0 for no limit beyond the pool's bounds.
    /// @param amountOutMinimum reverts with 'Too little received' below this output.
    function swap(
        address pool,
        bool zeroForOne,
        uint256 amountIn,
        uint160 sqrtPriceLimitX96,
        uint256 amountOutMinimum
    ) external settles(pool) returns (int256 amount0, int256 amount1) {
        require(amountIn < 2**255, 'AI');
        if (sqrtPriceLimitX96 == 0) {
            sqrtPriceLimitX96 = zeroForOne ? TickMath.MIN_SQRT_RATIO + 1 : TickMath.MAX_SQRT_RATIO - 1;
        }
        (amount0, amount1) = IUniswapV3Pool(pool).swap(
            msg.sender,
            zeroForOne,
            int256(amountIn),
            sqrtPriceLimitX96,
            ''
        );
        uint256 amountOut = uint256(-(zeroForOne ? amount1 : amount0));
        require(amountOut >= amountOutMinimum, 'Too little received');
        emit Swapped(msg.sender, pool, zeroForOne, amount0, amount1);
    }

    /// @notice Adds exactly `liquidity` on [tickLower, tickUpper), paid by the caller.
    function mint(
        address pool,
        int24 tickLower,
        int24 tickUpper,
        uint128 liquidity
    ) external settles(pool) returns (uint256 amount0, uint256 amount1) {
        require(liquidity > 0, 'L0');
        (amount0, amount1) = IUniswapV3Pool(pool).mint(address(this), tickLower, tickUpper, liquidity, '');
        Position storage position = positions[positionKey(msg.sender, pool, tickLower, tickUpper)];
        accrue(position, pool, tickLower, tickUpper);
        uint128 total = position.liquidity + liquidity;
        require(total >= liquidity, 'LA');
        position.liquidity = total;
        emit LiquidityAdded(msg.sender, pool, tickLower, tickUpper, liquidity, amount0, amount1);
    }

    /// @notice Removes `liquidity` of the caller's share and sends the caller the principal
    /// plus every fee its share has earned. `liquidity` 0 only collects fees.
    function burn(
        address pool,
        int24 tickLower,
        int24 tickUpper,
        uint128 liquidity
    )
        external
        settles(pool)
        returns (
            uint256 amount0,
            uint256 amount1,
            uint256 fees0,
            uint256 fees1
        )
    {
        Position storage position = positions[positionKey(msg.sender, pool, tickLower, tickUpper)];
        require(position.liquidity >= liquidity, 'NL');
        require(position.liquidity > 0, 'NP');
        (amount0, amount1) = IUniswapV3Pool(pool).burn(tickLower, tickUpper, liquidity);
        accrue(position, pool, tickLower, tickUpper);
        position.liquidity -= liquidity;
        fees0 = position.tokensOwed0;
        fees1 = position.tokensOwed1;
        position.tokensOwed0 = 0;
        position.tokensOwed1 = 0;
        uint256 want0 = amount0 + fees0;
        uint256 want1 = amount1 + fees1;
        require(want0 <= type(uint128).max && want1 <= type(uint128).max, 'OF');
        IUniswapV3Pool(pool).collect(msg.sender, tickLower, tickUpper, uint128(want0), uint128(want1));
        emit LiquidityRemoved(msg.sender, pool, tickLower, tickUpper, liquidity, amount0, amount1, fees0, fees1);
    }

    function uniswapV3MintCallback(
        uint256 amount0Owed,
        uint256 amount1Owed,
        bytes calldata
    ) external override {
        require(msg.sender == activePool && msg.sender != address(0), 'CB');
        if (amount0Owed > 0) pay(IUniswapV3Pool(msg.sender).token0(), amount0Owed);
        if (amount1Owed > 0) pay(IUniswapV3Pool(msg.sender).token1(), amount1Owed);
    }

    function uniswapV3SwapCallback(
        int256 amount0Delta,
        int256 amount1Delta,
        bytes calldata
    ) external override {
        require(msg.sender == activePool && msg.sender != address(0), 'CB');
        if (amount0Delta > 0) pay(IUniswapV3Pool(msg.sender).token0(), uint256(amount0Delta));
        if (amount1Delta > 0) pay(IUniswapV3Pool(msg.sender).token1(), uint256(amount1Delta));
    }

    /// @dev Credits the fees earned by `position` since it was last touched. Must run right
    /// after a mint or burn on the pool, which brings the pool's fee growth up to date.
    function accrue(
        Position storage position,
        address pool,
        int24 tickLower,
        int24 tickUpper
    ) private {
        (, uint256 feeGrowthInside0LastX128, uint256 feeGrowthInside1LastX128, , ) = IUniswapV3Pool(pool).positions(
            keccak256(abi.encodePacked(address(this), tickLower, tickUpper))
        );
        if (position.liquidity > 0) {
            // Fee growth wraps by design; 0.7 arithmetic is unchecked, as in the periphery.
            position.tokensOwed0 += uint128(
                FullMath.mulDiv(
                    feeGrowthInside0LastX128 - position.feeGrowthInside0LastX128,
                    position.liquidity,
                    FixedPoint128.Q128
                )
            );
            position.tokensOwed1 += uint128(
                FullMath.mulDiv(
                    feeGrowthInside1LastX128 - position.feeGrowthInside1LastX128,
                    position.liquidity,
                    FixedPoint128.Q128
                )
            );
        }
        position.feeGrowthInside0LastX128 = feeGrowthInside0LastX128;
        position.feeGrowthInside1LastX128 = feeGrowthInside1LastX128;
    }

    /// @dev Pays the calling pool from the active payer, passing on the token's own revert
    /// reason so a caller sees e.g. "ERC20: insufficient allowance" rather than a code.
    function pay(address token, uint256 value) private {
        (bool ok, bytes memory data) = token.call(
            abi.encodeWithSelector(0x23b872dd, activePayer, msg.sender, value)
        );
        if (!ok) {
            if (data.length > 0) {
                assembly {
                    revert(add(data, 32), mload(data))
                }
            }
            revert('STF');
        }
        require(data.length == 0 || abi.decode(data, (bool)), 'STF');
    }
}
