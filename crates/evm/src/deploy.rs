//! Puts stratbox's contracts on any JSON-RPC node through alloy: two ERC-20 tokens, the
//! Uniswap V3 factory, one pool initialised at a price, the executor, and a seed position.
//!
//! The same steps, with the same creation code and calldata, build the embedded chain in
//! `stratbox-sim`, so a test against Anvil and the embedded engine see identical contracts.
//!
//! Transactions are sent with `eth_sendTransaction` from the given account: on Anvil its dev
//! accounts are unlocked; elsewhere give a provider with a wallet for that account.

use std::time::{Duration, Instant};

use alloy::network::{Ethereum, TransactionBuilder};
use alloy::providers::Provider;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy_primitives::{Address, B256, Bytes, U256, uint};
use alloy_sol_types::{SolCall, SolConstructor};

use crate::abi::{
    ERC20PresetMinterPauser, IERC20, IUniswapV3Factory, IUniswapV3Pool, MockV3Aggregator,
    StratboxExecutor,
};
use crate::bytecode;
use crate::pool_bounds;

/// Why deploying or driving the contracts failed; `step` names the transaction or call.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The node refused or did not answer a request.
    #[error("rpc error during {step}: {detail}")]
    Rpc {
        /// What was being done, e.g. `create pool`.
        step: &'static str,
        /// The transport or node error.
        detail: String,
    },
    /// Mined but reverted: wrong arguments or state, not a node problem.
    #[error("transaction {tx_hash} for {step} reverted")]
    Reverted {
        /// What was being done.
        step: &'static str,
        /// The reverted transaction.
        tx_hash: B256,
    },
    /// Sent but never mined within the wait (a node not mining?).
    #[error("no receipt for {step} ({tx_hash}) after {waited:?}")]
    NoReceipt {
        /// What was being done.
        step: &'static str,
        /// The pending transaction.
        tx_hash: B256,
        /// How long the receipt was waited for.
        waited: Duration,
    },
    /// A call's return data is not what the ABI says.
    #[error("cannot decode the answer to {step}: {detail}")]
    Decode {
        /// What was being done.
        step: &'static str,
        /// The decoder's reason.
        detail: String,
    },
    /// A value that the contracts cannot take (a disabled fee tier, out-of-range ticks).
    #[error("invalid deploy config: {0}")]
    Config(String),
}

/// What to deploy. `Default` is a 0.3% pool at price 1 with a full-range seed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// Fee tier: 500, 3000 or 10000 (the tiers the factory enables itself).
    pub fee: u32,
    /// Initial Q64.96 sqrt price of token0 in token1.
    pub sqrt_price_x96: U256,
    /// Liquidity the deployer provides on `seed_range`; 0 for none.
    pub seed_liquidity: u128,
    /// Range of the seed position; `None` for the full range at the fee's tick spacing.
    pub seed_range: Option<(i32, i32)>,
    /// Raw units of each token minted to the deployer.
    pub deployer_mint: U256,
    /// (name, symbol) of the two tokens, before they are sorted into token0/token1.
    pub tokens: [(String, String); 2],
}

/// 2^96: price 1.
pub const PRICE_ONE_X96: U256 = uint!(79228162514264337593543950336_U256);

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            fee: 3000,
            sqrt_price_x96: PRICE_ONE_X96,
            seed_liquidity: 1_000_000_000_000_000_000_000_000, // 1e24
            seed_range: None,
            deployer_mint: uint!(1_000_000_000_000_000_000_000_000_000_U256), // 1e30
            tokens: [
                ("Stratbox Token A".into(), "SBA".into()),
                ("Stratbox Token B".into(), "SBB".into()),
            ],
        }
    }
}

impl DeployConfig {
    /// The spacing the factory assigns to `fee`; errors for a fee tier it does not enable.
    pub fn tick_spacing(&self) -> Result<i32, DeployError> {
        pool_bounds::tick_spacing_for_fee(self.fee)
            .ok_or_else(|| DeployError::Config(format!("fee {} is not an enabled tier", self.fee)))
    }

    /// The seed position's `(tick_lower, tick_upper)`, the full range when unset.
    pub fn seed_range(&self) -> Result<(i32, i32), DeployError> {
        let spacing = self.tick_spacing()?;
        Ok(self
            .seed_range
            .unwrap_or_else(|| pool_bounds::full_range(spacing)))
    }
}

/// Where everything landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The account that deployed, holds the seed position and may mint the tokens.
    pub deployer: Address,
    /// The Uniswap V3 factory.
    pub factory: Address,
    /// The one pool created.
    pub pool: Address,
    /// The lower-addressed token, as Uniswap orders them.
    pub token0: Address,
    /// The higher-addressed token.
    pub token1: Address,
    /// stratbox's executor: the contract strategies' trades go through.
    pub executor: Address,
    /// The pool's fee in hundredths of a basis point (3000 = 0.3%).
    pub fee: u32,
    /// The pool's tick spacing; position bounds must be multiples of it.
    pub tick_spacing: i32,
}

// --- calldata shared with the embedded chain -------------------------------------------

/// Creation code + constructor arguments of one test token.
pub fn erc20_creation(name: &str, symbol: &str) -> Bytes {
    let mut code = bytecode::ERC20_INITCODE.to_vec();
    code.extend(
        ERC20PresetMinterPauser::constructorCall {
            name: name.to_owned(),
            symbol: symbol.to_owned(),
        }
        .abi_encode(),
    );
    code.into()
}

/// The factory's creation code (it takes no constructor arguments).
pub fn factory_creation() -> Bytes {
    Bytes::from_static(bytecode::FACTORY_INITCODE)
}

/// The executor's creation code (it takes no constructor arguments).
pub fn executor_creation() -> Bytes {
    Bytes::from_static(bytecode::EXECUTOR_INITCODE)
}

/// `factory.createPool`; errors if `fee` does not fit uint24.
pub fn create_pool_calldata(
    token0: Address,
    token1: Address,
    fee: u32,
) -> Result<Bytes, DeployError> {
    Ok(IUniswapV3Factory::createPoolCall {
        tokenA: token0,
        tokenB: token1,
        fee: uint24(fee)?,
    }
    .abi_encode()
    .into())
}

/// `pool.initialize`, which a new pool needs before any trade; errors past uint160.
pub fn initialize_calldata(sqrt_price_x96: U256) -> Result<Bytes, DeployError> {
    Ok(IUniswapV3Pool::initializeCall {
        sqrtPriceX96: uint160(sqrt_price_x96)?,
    }
    .abi_encode()
    .into())
}

/// `token.mint`, allowed to the token's deployer only.
pub fn mint_token_calldata(to: Address, amount: U256) -> Bytes {
    ERC20PresetMinterPauser::mintCall { to, amount }
        .abi_encode()
        .into()
}

/// `token.approve`, needed before the executor can pull an account's tokens.
pub fn approve_calldata(spender: Address, amount: U256) -> Bytes {
    IERC20::approveCall { spender, amount }.abi_encode().into()
}

/// `StratboxExecutor.swap`; `sqrt_price_limit_x96` `None` means no limit.
pub fn executor_swap_calldata(
    pool: Address,
    zero_for_one: bool,
    amount_in: U256,
    sqrt_price_limit_x96: Option<U256>,
    amount_out_minimum: U256,
) -> Result<Bytes, DeployError> {
    Ok(StratboxExecutor::swapCall {
        pool,
        zeroForOne: zero_for_one,
        amountIn: amount_in,
        sqrtPriceLimitX96: uint160(sqrt_price_limit_x96.unwrap_or(U256::ZERO))?,
        amountOutMinimum: amount_out_minimum,
    }
    .abi_encode()
    .into())
}

/// `StratboxExecutor.mint`: adds liquidity held by the executor for the sender.
pub fn executor_mint_calldata(
    pool: Address,
    tick_lower: i32,
    tick_upper: i32,
    liquidity: u128,
) -> Result<Bytes, DeployError> {
    Ok(StratboxExecutor::mintCall {
        pool,
        tickLower: int24(tick_lower)?,
        tickUpper: int24(tick_upper)?,
        liquidity,
    }
    .abi_encode()
    .into())
}

/// `StratboxExecutor.burn`: removes the sender's liquidity and returns the tokens.
pub fn executor_burn_calldata(
    pool: Address,
    tick_lower: i32,
    tick_upper: i32,
    liquidity: u128,
) -> Result<Bytes, DeployError> {
    Ok(StratboxExecutor::burnCall {
        pool,
        tickLower: int24(tick_lower)?,
        tickUpper: int24(tick_upper)?,
        liquidity,
    }
    .abi_encode()
    .into())
}

/// `v` as Solidity's uint24, or [`DeployError::Config`] if it does not fit.
pub fn uint24(v: u32) -> Result<alloy_primitives::aliases::U24, DeployError> {
    alloy_primitives::aliases::U24::try_from(v)
        .map_err(|_| DeployError::Config(format!("{v} does not fit uint24")))
}

/// `v` as Solidity's int24 (ticks), or [`DeployError::Config`] if it does not fit.
pub fn int24(v: i32) -> Result<alloy_primitives::aliases::I24, DeployError> {
    alloy_primitives::aliases::I24::try_from(v)
        .map_err(|_| DeployError::Config(format!("{v} does not fit int24")))
}

/// `v` as Solidity's uint160 (sqrt prices), or [`DeployError::Config`] if it does not fit.
pub fn uint160(v: U256) -> Result<alloy_primitives::aliases::U160, DeployError> {
    alloy_primitives::aliases::U160::checked_from_limbs_slice(v.as_limbs())
        .ok_or_else(|| DeployError::Config(format!("{v} does not fit uint160")))
}

// --- deployment over JSON-RPC -----------------------------------------------------------

/// Deploys tokens, factory, pool (initialised), executor, and the seed position, sending every
/// transaction from `deployer` and waiting for each receipt.
pub async fn deploy<P: Provider<Ethereum>>(
    provider: &P,
    deployer: Address,
    cfg: &DeployConfig,
) -> Result<Deployment, DeployError> {
    let tick_spacing = cfg.tick_spacing()?;
    let (seed_lower, seed_upper) = cfg.seed_range()?;

    let token_a = deploy_code(
        provider,
        deployer,
        erc20_creation(&cfg.tokens[0].0, &cfg.tokens[0].1),
        "token A",
    )
    .await?;
    let token_b = deploy_code(
        provider,
        deployer,
        erc20_creation(&cfg.tokens[1].0, &cfg.tokens[1].1),
        "token B",
    )
    .await?;
    let (token0, token1) = if token_a < token_b {
        (token_a, token_b)
    } else {
        (token_b, token_a)
    };
    let factory = deploy_code(provider, deployer, factory_creation(), "factory").await?;
    send(
        provider,
        deployer,
        factory,
        create_pool_calldata(token0, token1, cfg.fee)?,
        "createPool",
    )
    .await?;
    let pool = read_call(
        provider,
        factory,
        IUniswapV3Factory::getPoolCall {
            tokenA: token0,
            tokenB: token1,
            fee: uint24(cfg.fee)?,
        },
        "getPool",
    )
    .await?;
    send(
        provider,
        deployer,
        pool,
        initialize_calldata(cfg.sqrt_price_x96)?,
        "initialize",
    )
    .await?;
    let executor = deploy_code(provider, deployer, executor_creation(), "executor").await?;

    let deployment = Deployment {
        deployer,
        factory,
        pool,
        token0,
        token1,
        executor,
        fee: cfg.fee,
        tick_spacing,
    };
    deployment
        .fund(provider, deployer, cfg.deployer_mint, cfg.deployer_mint)
        .await?;
    deployment.approve_executor(provider, deployer).await?;
    if cfg.seed_liquidity > 0 {
        deployment
            .add_liquidity(
                provider,
                deployer,
                seed_lower,
                seed_upper,
                cfg.seed_liquidity,
            )
            .await?;
    }
    tracing::info!(%pool, %factory, %executor, %token0, %token1, "stratbox contracts deployed");
    Ok(deployment)
}

impl Deployment {
    /// Mints both tokens to `to` (the deployer holds the minter role).
    pub async fn fund<P: Provider<Ethereum>>(
        &self,
        provider: &P,
        to: Address,
        amount0: U256,
        amount1: U256,
    ) -> Result<(), DeployError> {
        send(
            provider,
            self.deployer,
            self.token0,
            mint_token_calldata(to, amount0),
            "mint token0",
        )
        .await?;
        send(
            provider,
            self.deployer,
            self.token1,
            mint_token_calldata(to, amount1),
            "mint token1",
        )
        .await?;
        Ok(())
    }

    /// Lets the executor pull both tokens from `owner` (sent from `owner`).
    pub async fn approve_executor<P: Provider<Ethereum>>(
        &self,
        provider: &P,
        owner: Address,
    ) -> Result<(), DeployError> {
        for token in [self.token0, self.token1] {
            send(
                provider,
                owner,
                token,
                approve_calldata(self.executor, U256::MAX),
                "approve",
            )
            .await?;
        }
        Ok(())
    }

    /// An exact-input swap through the executor; the receipt holds the pool's `Swap` log.
    pub async fn swap<P: Provider<Ethereum>>(
        &self,
        provider: &P,
        from: Address,
        zero_for_one: bool,
        amount_in: U256,
        sqrt_price_limit_x96: Option<U256>,
    ) -> Result<TransactionReceipt, DeployError> {
        let data = executor_swap_calldata(
            self.pool,
            zero_for_one,
            amount_in,
            sqrt_price_limit_x96,
            U256::ZERO,
        )?;
        send(provider, from, self.executor, data, "swap").await
    }

    /// Adds `liquidity` on `[tick_lower, tick_upper)` for `from` through the executor; `from`
    /// must have approved the executor for both tokens.
    pub async fn add_liquidity<P: Provider<Ethereum>>(
        &self,
        provider: &P,
        from: Address,
        tick_lower: i32,
        tick_upper: i32,
        liquidity: u128,
    ) -> Result<TransactionReceipt, DeployError> {
        let data = executor_mint_calldata(self.pool, tick_lower, tick_upper, liquidity)?;
        send(provider, from, self.executor, data, "add liquidity").await
    }

    /// Removes `liquidity` of `from`'s position on `[tick_lower, tick_upper)`.
    pub async fn remove_liquidity<P: Provider<Ethereum>>(
        &self,
        provider: &P,
        from: Address,
        tick_lower: i32,
        tick_upper: i32,
        liquidity: u128,
    ) -> Result<TransactionReceipt, DeployError> {
        let data = executor_burn_calldata(self.pool, tick_lower, tick_upper, liquidity)?;
        send(provider, from, self.executor, data, "remove liquidity").await
    }

    /// `owner`'s balance of `token`, in the token's raw units.
    pub async fn balance_of<P: Provider<Ethereum>>(
        &self,
        provider: &P,
        token: Address,
        owner: Address,
    ) -> Result<U256, DeployError> {
        read_call(
            provider,
            token,
            IERC20::balanceOfCall { account: owner },
            "balanceOf",
        )
        .await
    }

    /// Makes the pool keep `cardinality` observations (one per second a swap happened in).
    /// A new pool keeps one, so `observe` reverts (`OLD`) for any second but the last and
    /// its time-weighted price cannot be read over a window until this is raised.
    pub async fn grow_oracle<P: Provider<Ethereum>>(
        &self,
        provider: &P,
        cardinality: u16,
    ) -> Result<TransactionReceipt, DeployError> {
        let data = IUniswapV3Pool::increaseObservationCardinalityNextCall {
            observationCardinalityNext: cardinality,
        }
        .abi_encode();
        send(
            provider,
            self.deployer,
            self.pool,
            data.into(),
            "increaseObservationCardinalityNext",
        )
        .await
    }

    /// (sqrt price, tick, in-range liquidity) read from the pool.
    pub async fn pool_state<P: Provider<Ethereum>>(
        &self,
        provider: &P,
    ) -> Result<(U256, i32, u128), DeployError> {
        let slot0 = read_call(provider, self.pool, IUniswapV3Pool::slot0Call {}, "slot0").await?;
        let liquidity = read_call(
            provider,
            self.pool,
            IUniswapV3Pool::liquidityCall {},
            "liquidity",
        )
        .await?;
        Ok((
            U256::from(slot0.sqrtPriceX96),
            slot0.tick.as_i32(),
            liquidity,
        ))
    }
}

/// Deploys Chainlink's `MockV3Aggregator` (see [`bytecode::AGGREGATOR_INITCODE`]) answering
/// `answer` with `decimals` decimals, from `from` (who may then update it: anyone may).
pub async fn deploy_price_feed<P: Provider<Ethereum>>(
    provider: &P,
    from: Address,
    decimals: u8,
    answer: alloy_primitives::I256,
) -> Result<Address, DeployError> {
    let mut code = bytecode::AGGREGATOR_INITCODE.to_vec();
    code.extend_from_slice(
        &MockV3Aggregator::constructorCall {
            _decimals: decimals,
            _initialAnswer: answer,
        }
        .abi_encode(),
    );
    deploy_code(provider, from, code.into(), "price feed").await
}

/// A new round on a `MockV3Aggregator`: `answer`, stamped with the block's time.
pub async fn update_price_feed<P: Provider<Ethereum>>(
    provider: &P,
    from: Address,
    feed: Address,
    answer: alloy_primitives::I256,
) -> Result<TransactionReceipt, DeployError> {
    let data = MockV3Aggregator::updateAnswerCall { _answer: answer }.abi_encode();
    send(provider, from, feed, data.into(), "updateAnswer").await
}

/// Deploys `code` from `from`, returning the new contract's address.
pub async fn deploy_code<P: Provider<Ethereum>>(
    provider: &P,
    from: Address,
    code: Bytes,
    step: &'static str,
) -> Result<Address, DeployError> {
    let tx = TransactionRequest::default()
        .with_from(from)
        .with_deploy_code(code);
    let receipt = send_request(provider, tx, step).await?;
    receipt.contract_address.ok_or_else(|| DeployError::Decode {
        step,
        detail: "receipt has no contract address".into(),
    })
}

/// Sends one call from `from` to `to` and waits for its successful receipt.
pub async fn send<P: Provider<Ethereum>>(
    provider: &P,
    from: Address,
    to: Address,
    data: Bytes,
    step: &'static str,
) -> Result<TransactionReceipt, DeployError> {
    let tx = TransactionRequest::default()
        .with_from(from)
        .with_to(to)
        .with_input(data);
    send_request(provider, tx, step).await
}

const RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends a transaction and polls for its receipt every 10 ms (alloy's own watcher polls at
/// 250 ms on loopback, which makes a ten-step deployment take seconds on an automining node).
pub async fn send_request<P: Provider<Ethereum>>(
    provider: &P,
    tx: TransactionRequest,
    step: &'static str,
) -> Result<TransactionReceipt, DeployError> {
    let rpc = |e: alloy::transports::TransportError| DeployError::Rpc {
        step,
        detail: e.to_string(),
    };
    let mut tx = tx;
    if tx.gas.is_none() {
        // The node's estimate is exact for the block it estimates in, and a Uniswap V3 swap
        // costs more in a block of a later second (it writes a new oracle observation), so a
        // transaction sent on the estimate alone can run out of gas when a second ticks over.
        let estimate = provider.estimate_gas(tx.clone()).await.map_err(rpc)?;
        tx.set_gas_limit(estimate + estimate / 4 + 50_000);
    }
    let pending = provider.send_transaction(tx).await.map_err(rpc)?;
    let tx_hash = *pending.tx_hash();
    let start = Instant::now();
    loop {
        if let Some(receipt) = provider
            .get_transaction_receipt(tx_hash)
            .await
            .map_err(rpc)?
        {
            if !receipt.status() {
                return Err(DeployError::Reverted { step, tx_hash });
            }
            return Ok(receipt);
        }
        if start.elapsed() > RECEIPT_TIMEOUT {
            return Err(DeployError::NoReceipt {
                step,
                tx_hash,
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `eth_call` of a view function, decoded.
pub async fn read_call<P: Provider<Ethereum>, C: SolCall>(
    provider: &P,
    to: Address,
    call: C,
    step: &'static str,
) -> Result<C::Return, DeployError> {
    let tx = TransactionRequest::default()
        .with_to(to)
        .with_input(Bytes::from(call.abi_encode()));
    let out = provider.call(tx).await.map_err(|e| DeployError::Rpc {
        step,
        detail: e.to_string(),
    })?;
    C::abi_decode_returns(&out).map_err(|e| DeployError::Decode {
        step,
        detail: e.to_string(),
    })
}
