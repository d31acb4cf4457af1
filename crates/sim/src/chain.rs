//! [`Chain`]: revm state with stratbox's contracts, and the transactions that drive it.

use std::collections::HashMap;

use alloy::providers::{Provider, ProviderBuilder};
use alloy_primitives::{Address, Bytes, U256, address, keccak256};
use alloy_sol_types::SolCall;
use revm::context::result::{EVMError, ExecutionResult, Output};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::database::{AlloyDB, CacheDB};
use revm::database_interface::async_db::AsyncDb;
use revm::handler::{MainnetContext, MainnetEvm};
use revm::primitives::TxKind;
use revm::primitives::hardfork::SpecId;
use revm::state::{AccountInfo, Bytecode};
use revm::{Database, DatabaseRef, ExecuteCommitEvm, ExecuteEvm, MainBuilder};
use stratbox_evm::abi::{IERC20, IUniswapV3Factory, IUniswapV3Pool, StratboxExecutor};
use stratbox_evm::{bytecode, deploy as calldata, pool_bounds, pool_events};

use crate::backend::{Backend, BaseDb, ForkDb};
use crate::funding::BalanceSlot;
use crate::{
    Action, ChainEvent, EmbeddedConfig, Executed, FundedAccount, Outcome, PoolInfo, PoolSpec,
    PoolState, SimError, pool_storage, revert,
};

/// Deploys the embedded chain's contracts and mints nothing itself.
pub const DEFAULT_DEPLOYER: Address = address!("0x5b0c0de000000000000000000000000000000d01");
/// Provides the embedded pools' seed liquidity.
pub const DEFAULT_MARKET_MAKER: Address = address!("0x5b0c0de000000000000000000000000000000a4e");
/// Where a fork installs the executor (nothing is deployed there on real chains).
pub const FORK_EXECUTOR: Address = address!("0x5b0c0de0000000000000000000000000000e8ec0");

/// How long a forked chain waits for one answer from its node.
pub const FORK_RPC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Per transaction. Below Osaka's 2^24 transaction gas cap; a Uniswap swap needs ~150k.
pub const TX_GAS_LIMIT: u64 = 16_000_000;

/// A seeding account's balance is topped up to this before it provides liquidity: more than
/// any position that fits a pool's per-tick liquidity cap can cost, far from overflow.
const SEED_BALANCE: U256 = U256::from_limbs([0, 0, 0, 1 << 8]); // 2^200

type Evm<DB> = MainnetEvm<MainnetContext<DB>>;

/// How [`Chain::simulate_with`] runs a simulation.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimOptions<'a> {
    /// Wei per gas the transactions pay (also the simulated block's base fee).
    pub gas_price: u128,
    /// Given to the sender on the simulation's overlay first, if any.
    pub funding: Option<&'a crate::Funding>,
}

/// revm state with the real contracts; see the crate docs for thread safety.
///
/// Cloning copies the committed state (a fork's node cache is shared, not copied), which is
/// how an owner publishes a changed chain while simulations keep reading the old one.
#[derive(Clone)]
pub struct Chain {
    pub(crate) db: BaseDb,
    cfg: CfgEnv,
    block: BlockEnv,
    block_time: u64,
    deployer: Address,
    executor: Address,
    factory: Option<Address>,
    pools: Vec<PoolInfo>,
    pub(crate) balance_slots: HashMap<Address, BalanceSlot>,
    tx_in_block: u32,
    logs_in_block: u32,
    tokens_deployed: u32,
    /// The gas price [`Chain::simulate`] runs transactions at, wei (also the simulated
    /// block's base fee). Zero until [`Chain::set_gas_price`].
    sim_gas_price: u128,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("chain_id", &self.cfg.chain_id)
            .field("block", &self.block_number())
            .field("executor", &self.executor)
            .field("factory", &self.factory)
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

fn evm_err<E: std::fmt::Display>(e: E) -> SimError {
    SimError::Evm(e.to_string())
}

fn build_evm<DB: Database>(db: DB, cfg: &CfgEnv, block: &BlockEnv) -> Evm<DB> {
    MainnetContext::new(db, cfg.spec)
        .with_cfg(cfg.clone())
        .with_block(block.clone())
        .build_mainnet()
}

impl Chain {
    fn with_backend(
        backend: Backend,
        chain_id: u64,
        number: u64,
        timestamp: u64,
        block_time: u64,
    ) -> Self {
        let mut cfg = CfgEnv::new_with_spec(SpecId::OSAKA);
        cfg.chain_id = chain_id;
        // Accounts are stratbox's, not signers: nothing here is a signed transaction, so the
        // nonce is bookkeeping revm may keep without checking.
        cfg.disable_nonce_check = true;
        let block = BlockEnv {
            number: U256::from(number),
            timestamp: U256::from(timestamp),
            basefee: 0,
            gas_limit: u64::MAX,
            ..BlockEnv::default()
        };
        Self {
            db: CacheDB::new(backend),
            cfg,
            block,
            block_time,
            deployer: DEFAULT_DEPLOYER,
            executor: Address::ZERO,
            factory: None,
            pools: Vec::new(),
            balance_slots: HashMap::new(),
            sim_gas_price: 0,
            tx_in_block: 0,
            logs_in_block: 0,
            tokens_deployed: 0,
        }
    }

    /// Deploys two tokens, the factory, the executor and `cfg.pools` (one token pair), seeds
    /// each pool from the market maker, and funds `cfg.accounts` (with executor approvals).
    pub fn embedded(cfg: &EmbeddedConfig) -> Result<Self, SimError> {
        let mut chain = Self::with_backend(
            Backend::Empty,
            cfg.chain_id,
            cfg.start_block,
            cfg.start_timestamp,
            cfg.block_time,
        );
        chain.executor = chain.create(chain.deployer, calldata::executor_creation(), "executor")?;
        chain.factory =
            Some(chain.create(chain.deployer, calldata::factory_creation(), "factory")?);
        let pair = chain.deploy_token_pair()?;
        for spec in &cfg.pools {
            chain.create_pool_from(spec, Some(pair), cfg.market_maker)?;
        }
        for FundedAccount {
            account,
            amount0,
            amount1,
        } in &cfg.accounts
        {
            chain.fund(*account, pair.0, *amount0)?;
            chain.fund(*account, pair.1, *amount1)?;
        }
        // Deployment is genesis state: the first block starts with no transactions or logs.
        chain.tx_in_block = 0;
        chain.logs_in_block = 0;
        Ok(chain)
    }

    /// A chain whose state is read lazily from `rpc_url` at `block` (default: latest), with the
    /// executor installed at [`FORK_EXECUTOR`]. Simulated blocks follow the fork block.
    ///
    /// Must be awaited inside a Tokio runtime; the chain keeps its handle to fetch state later.
    pub async fn fork(
        rpc_url: &str,
        pools: &[Address],
        block: Option<u64>,
    ) -> Result<Self, SimError> {
        let rpc = |e: &dyn std::fmt::Display| SimError::Rpc(e.to_string());
        let url: alloy::transports::http::reqwest::Url = rpc_url
            .parse()
            .map_err(|e| SimError::Invalid(format!("rpc url {rpc_url:?}: {e}")))?;
        // A node that stops answering must fail a simulation, not hang the thread that runs
        // it for ever.
        let client = alloy::transports::http::reqwest::Client::builder()
            .timeout(FORK_RPC_TIMEOUT)
            .build()
            .map_err(|e| SimError::Invalid(format!("building the RPC client: {e}")))?;
        let provider = ProviderBuilder::new().connect_reqwest(client, url).erased();
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| SimError::Invalid(format!("Chain::fork needs a Tokio runtime: {e}")))?;
        let number = match block {
            Some(n) => n,
            None => provider.get_block_number().await.map_err(|e| rpc(&e))?,
        };
        let header = provider
            .get_block_by_number(number.into())
            .await
            .map_err(|e| rpc(&e))?
            .ok_or_else(|| SimError::Rpc(format!("block {number} not found")))?;
        let timestamp = header.header.timestamp;
        let chain_id = provider.get_chain_id().await.map_err(|e| rpc(&e))?;

        let mut infos = Vec::with_capacity(pools.len());
        for &pool in pools {
            infos.push(read_pool_info(&provider, pool).await?);
        }

        let remote = AsyncDb::with_handle(AlloyDB::new(provider, number.into()), handle);
        let mut chain = Self::with_backend(
            Backend::Fork(std::sync::Arc::new(ForkDb::new(remote))),
            chain_id,
            number + 1,
            timestamp + 12,
            12,
        );
        chain.executor = FORK_EXECUTOR;
        let code = Bytecode::new_raw(Bytes::from_static(bytecode::EXECUTOR_RUNTIME));
        chain
            .db
            .insert_account_info(FORK_EXECUTOR, AccountInfo::default().with_code(code));
        // A fresh contract: its storage is empty, never the node's.
        if let Some(account) = chain.db.cache.accounts.get_mut(&FORK_EXECUTOR) {
            account.account_state = revm::database::AccountState::StorageCleared;
        }
        chain.pools = infos;
        Ok(chain)
    }

    // --- accessors ----------------------------------------------------------------------

    /// Every pool the chain knows, as created or registered.
    pub fn pools(&self) -> Vec<PoolInfo> {
        self.pools.clone()
    }

    /// Errors with [`SimError::UnknownPool`] for a pool the chain was not told about.
    pub fn pool_info(&self, pool: Address) -> Result<PoolInfo, SimError> {
        self.pools
            .iter()
            .find(|p| p.address == pool)
            .copied()
            .ok_or(SimError::UnknownPool(pool))
    }

    /// Read from the pool's storage now; on a fork this may wait on the node.
    pub fn pool_state(&self, pool: Address) -> Result<PoolState, SimError> {
        self.pool_info(pool)?;
        pool_storage::read(&self.db, pool)
    }

    /// The executor contract actions are sent through.
    pub fn executor(&self) -> Address {
        self.executor
    }

    /// Sends actions through the executor deployed at `executor` on the forked chain instead
    /// of the copy a fork installs at [`FORK_EXECUTOR`]. A live trade's transaction goes to
    /// the real contract, so its simulation must call the same code at the same address
    /// (allowances, for one, are given to that address). Errors if the chain has no code
    /// there.
    pub fn use_executor(&mut self, executor: Address) -> Result<(), SimError> {
        let code = self
            .db
            .basic(executor)
            .map_err(|e| SimError::Invalid(format!("reading the executor at {executor}: {e:?}")))?
            .and_then(|info| info.code)
            .filter(|code| !code.is_empty());
        if code.is_none() {
            return Err(SimError::Invalid(format!(
                "no contract at executor address {executor}"
            )));
        }
        self.executor = executor;
        Ok(())
    }

    /// True for a fork: reading state it has not cached yet waits on the node.
    pub fn is_fork(&self) -> bool {
        matches!(self.db.db, Backend::Fork(_))
    }

    /// The factory the embedded chain deployed; `None` on a fork, which uses the chain's own.
    pub fn factory(&self) -> Option<Address> {
        self.factory
    }

    /// The account that deploys the chain's contracts.
    pub fn deployer(&self) -> Address {
        self.deployer
    }

    /// As configured or read from the forked node.
    pub fn chain_id(&self) -> u64 {
        self.cfg.chain_id
    }

    /// The block the next action is executed in.
    pub fn block_number(&self) -> u64 {
        self.block.number.saturating_to()
    }

    /// That block's timestamp, seconds since the Unix epoch.
    pub fn timestamp(&self) -> u64 {
        self.block.timestamp.saturating_to()
    }

    /// Sets the gas price (wei) proposals are simulated at: the network's, as the engine
    /// follows it. Transactions the chain itself commits ([`Chain::execute`], set-up) are
    /// not charged: they stand for other people's trades.
    pub fn set_gas_price(&mut self, wei: u128) {
        self.sim_gas_price = wei;
    }

    /// The gas price (wei) proposals are simulated at.
    pub fn gas_price(&self) -> u128 {
        self.sim_gas_price
    }

    /// Sets `account`'s ether balance (what it pays gas with).
    pub fn set_native_balance(&mut self, account: Address, wei: U256) -> Result<(), SimError> {
        let acct = self.db.load_account(account).map_err(evm_err)?;
        acct.info.balance = wei;
        Ok(())
    }

    /// `account`'s ether balance in wei.
    pub fn native_balance(&self, account: Address) -> Result<U256, SimError> {
        Ok(self
            .db
            .basic_ref(account)
            .map_err(evm_err)?
            .map_or(U256::ZERO, |a| a.balance))
    }

    /// Starts the next block `seconds` later.
    pub fn advance_block(&mut self, seconds: u64) {
        self.block.number += U256::from(1u8);
        self.block.timestamp += U256::from(seconds);
        self.tx_in_block = 0;
        self.logs_in_block = 0;
    }

    /// [`Self::advance_block`] by the configured block time.
    pub fn next_block(&mut self) {
        self.advance_block(self.block_time);
    }

    /// `owner`'s balance of ERC-20 `token`, in raw units.
    pub fn balance_of(&self, token: Address, owner: Address) -> Result<U256, SimError> {
        self.call(token, IERC20::balanceOfCall { account: owner })
    }

    /// A view call against the current state (never committed), decoded.
    pub fn call<C: SolCall>(&self, to: Address, call: C) -> Result<C::Return, SimError> {
        let overlay = CacheDB::new(&self.db);
        call_on(overlay, &self.cfg, &self.block, to, call)
    }

    // --- actions ------------------------------------------------------------------------

    /// Runs `actions` in order on one throw-away overlay: each sees the previous ones' effects,
    /// nothing is committed. Cost: one fresh overlay (empty maps) and one EVM per call.
    ///
    /// The transactions pay [`Chain::gas_price`] in a block whose base fee is that price, so
    /// a sender that cannot pay `gas limit x price` up front is refused as the chain would
    /// refuse it (an error, not an outcome).
    pub fn simulate(&self, from: Address, actions: &[Action]) -> Result<Vec<Outcome>, SimError> {
        self.simulate_with(
            from,
            actions,
            &SimOptions {
                gas_price: self.sim_gas_price,
                funding: None,
            },
        )
    }

    /// [`Chain::simulate`] at `options.gas_price`, with `from` first given
    /// `options.funding` on the same overlay (a shadow account holds nothing on chain).
    /// Takes `&self` and changes nothing shared, so any number of threads may run it on
    /// one chain while its owner prepares the next state on a clone.
    pub fn simulate_with(
        &self,
        from: Address,
        actions: &[Action],
        options: &SimOptions<'_>,
    ) -> Result<Vec<Outcome>, SimError> {
        let priced;
        let block = if options.gas_price == 0 {
            &self.block
        } else {
            priced = BlockEnv {
                basefee: u64::try_from(options.gas_price).unwrap_or(u64::MAX),
                ..self.block.clone()
            };
            &priced
        };
        let mut overlay = CacheDB::new(&self.db);
        if let Some(funding) = options.funding {
            funding.apply(&mut overlay, from, self.executor)?;
        }
        let mut evm = build_evm(overlay, &self.cfg, block);
        let mut outcomes = Vec::with_capacity(actions.len());
        for action in actions {
            let mut tx = self.action_tx(from, action)?;
            tx.gas_price = options.gas_price;
            let result = evm.transact_commit(tx).map_err(evm_err)?;
            let state = pool_storage::read(&evm.ctx.journaled_state.database, action.pool())?;
            outcomes.push(outcome(action, &result, state)?);
        }
        Ok(outcomes)
    }

    /// Runs `action` and commits it (a revert is committed too, as on a chain).
    pub fn execute(&mut self, from: Address, action: &Action) -> Result<Executed, SimError> {
        let tx = self.action_tx(from, action)?;
        let tx_hash = {
            let mut preimage = Vec::with_capacity(64 + tx.data.len());
            preimage.extend_from_slice(&self.cfg.chain_id.to_be_bytes());
            preimage.extend_from_slice(&self.block.number.to_be_bytes::<32>());
            preimage.extend_from_slice(&self.tx_in_block.to_be_bytes());
            preimage.extend_from_slice(from.as_slice());
            preimage.extend_from_slice(&tx.data);
            keccak256(preimage)
        };
        let result = {
            let mut evm = build_evm(&mut self.db, &self.cfg, &self.block);
            evm.transact_commit(tx).map_err(evm_err)?
        };
        let state = pool_storage::read(&self.db, action.pool())?;
        let outcome = outcome(action, &result, state)?;
        let logs = result.logs();
        let events = pool_events::decode_receipt_logs(logs, self.executor)
            .into_iter()
            .map(|(i, event)| ChainEvent {
                log_index: self.logs_in_block + i as u32,
                event,
            })
            .collect();
        let executed = Executed {
            outcome,
            block_number: self.block_number(),
            timestamp: self.timestamp(),
            tx_hash,
            tx_index: self.tx_in_block,
            events,
        };
        self.tx_in_block += 1;
        self.logs_in_block += logs.len() as u32;
        Ok(executed)
    }

    fn action_tx(&self, from: Address, action: &Action) -> Result<TxEnv, SimError> {
        self.pool_info(action.pool())?;
        let data = action_calldata(action, U256::ZERO)?;
        Ok(self.tx(from, TxKind::Call(self.executor), data))
    }

    fn tx(&self, from: Address, kind: TxKind, data: Bytes) -> TxEnv {
        TxEnv {
            caller: from,
            kind,
            data,
            gas_limit: TX_GAS_LIMIT,
            gas_price: 0,
            chain_id: Some(self.cfg.chain_id),
            ..TxEnv::default()
        }
    }

    // --- state set-up -------------------------------------------------------------------

    /// Adds `amount` to `account`'s balance of `token` by writing the token's balance slot
    /// (found once per token by probing), and approves the executor for the account, so a
    /// funded account can trade at once.
    pub fn fund(&mut self, account: Address, token: Address, amount: U256) -> Result<(), SimError> {
        let slot = match self.balance_slots.get(&token) {
            Some(slot) => *slot,
            None => {
                let slot = crate::funding::find_balance_slot(self, token)?;
                self.balance_slots.insert(token, slot);
                slot
            }
        };
        let key = slot.key(account);
        let old = self.db.storage_ref(token, key)?;
        let new = old.checked_add(amount).ok_or_else(|| {
            SimError::Invalid(format!(
                "funding {account} with {amount} of {token} overflows"
            ))
        })?;
        self.db.insert_account_storage(token, key, new)?;
        self.approve_executor(account, token)
    }

    /// Approves the executor to pull `token` from `owner` (what an account does once on a real
    /// chain before trading through the executor).
    pub fn approve_executor(&mut self, owner: Address, token: Address) -> Result<(), SimError> {
        let allowance = self.call(
            token,
            IERC20::allowanceCall {
                owner,
                spender: self.executor,
            },
        )?;
        if allowance < U256::MAX >> 1 {
            self.must_call(
                owner,
                token,
                calldata::approve_calldata(self.executor, U256::MAX),
                "approve",
            )?;
        }
        Ok(())
    }

    /// Creates a pool on the embedded factory, seeded by [`DEFAULT_MARKET_MAKER`]; `pair`
    /// `None` deploys a fresh token pair for it (the factory allows one pool per pair and fee).
    pub fn create_pool(
        &mut self,
        spec: &PoolSpec,
        pair: Option<(Address, Address)>,
    ) -> Result<PoolInfo, SimError> {
        self.create_pool_from(spec, pair, DEFAULT_MARKET_MAKER)
    }

    fn create_pool_from(
        &mut self,
        spec: &PoolSpec,
        pair: Option<(Address, Address)>,
        market_maker: Address,
    ) -> Result<PoolInfo, SimError> {
        let factory = self.factory.ok_or_else(|| {
            SimError::Invalid("a forked chain has no factory of ours to create pools with".into())
        })?;
        let tick_spacing = pool_bounds::tick_spacing_for_fee(spec.fee)
            .ok_or_else(|| SimError::Invalid(format!("fee {} is not an enabled tier", spec.fee)))?;
        let (token0, token1) = match pair {
            Some((a, b)) if a < b => (a, b),
            Some((a, b)) => (b, a),
            None => self.deploy_token_pair()?,
        };
        let invalid = |e: calldata::DeployError| SimError::Invalid(e.to_string());
        self.must_call(
            self.deployer,
            factory,
            calldata::create_pool_calldata(token0, token1, spec.fee).map_err(invalid)?,
            "createPool",
        )?;
        let pool = self.call(
            factory,
            IUniswapV3Factory::getPoolCall {
                tokenA: token0,
                tokenB: token1,
                fee: calldata::uint24(spec.fee).map_err(invalid)?,
            },
        )?;
        self.must_call(
            self.deployer,
            pool,
            calldata::initialize_calldata(spec.sqrt_price_x96).map_err(invalid)?,
            "initialize",
        )?;
        let info = PoolInfo {
            address: pool,
            token0,
            token1,
            fee: spec.fee,
            tick_spacing,
        };
        self.pools.push(info);
        if spec.seed_liquidity > 0 {
            let (lower, upper) = spec
                .seed_range
                .unwrap_or_else(|| pool_bounds::full_range(tick_spacing));
            for token in [token0, token1] {
                let balance = self.balance_of(token, market_maker)?;
                if balance < SEED_BALANCE {
                    self.fund(market_maker, token, SEED_BALANCE - balance)?;
                }
            }
            let seed = Action::AddLiquidity {
                pool,
                tick_lower: lower,
                tick_upper: upper,
                liquidity: spec.seed_liquidity,
            };
            let executed = self.execute(market_maker, &seed)?;
            if !executed.outcome.success {
                return Err(SimError::Deploy {
                    step: "seed liquidity".into(),
                    detail: executed.outcome.revert_reason.unwrap_or_default(),
                });
            }
        }
        Ok(info)
    }

    /// Two fresh ERC-20s, sorted (token0 < token1).
    pub fn deploy_token_pair(&mut self) -> Result<(Address, Address), SimError> {
        let n = self.tokens_deployed;
        let a = self.create(
            self.deployer,
            calldata::erc20_creation(&format!("Stratbox Token {n}"), &format!("SB{n}")),
            "token",
        )?;
        let b = self.create(
            self.deployer,
            calldata::erc20_creation(
                &format!("Stratbox Token {}", n + 1),
                &format!("SB{}", n + 1),
            ),
            "token",
        )?;
        self.tokens_deployed += 2;
        Ok(if a < b { (a, b) } else { (b, a) })
    }

    fn create(&mut self, from: Address, code: Bytes, step: &str) -> Result<Address, SimError> {
        let tx = self.tx(from, TxKind::Create, code);
        let result = build_evm(&mut self.db, &self.cfg, &self.block)
            .transact_commit(tx)
            .map_err(evm_err)?;
        match result {
            ExecutionResult::Success {
                output: Output::Create(_, Some(address)),
                ..
            } => Ok(address),
            other => Err(SimError::Deploy {
                step: step.into(),
                detail: failure_reason(&other),
            }),
        }
    }

    /// A committed call that must succeed (set-up, not strategy actions).
    fn must_call(
        &mut self,
        from: Address,
        to: Address,
        data: Bytes,
        step: &str,
    ) -> Result<Bytes, SimError> {
        let tx = self.tx(from, TxKind::Call(to), data);
        let result = build_evm(&mut self.db, &self.cfg, &self.block)
            .transact_commit(tx)
            .map_err(evm_err)?;
        match result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            other => Err(SimError::Deploy {
                step: step.into(),
                detail: failure_reason(&other),
            }),
        }
    }

    /// A view call on a caller-supplied database (an overlay the caller prepared).
    pub(crate) fn call_with<DB: Database, C: SolCall>(
        &self,
        db: DB,
        to: Address,
        call: C,
    ) -> Result<C::Return, SimError>
    where
        DB::Error: std::fmt::Display,
        EVMError<DB::Error>: std::fmt::Display,
    {
        call_on(db, &self.cfg, &self.block, to, call)
    }

    /// The committed database, for crate-internal overlays.
    pub(crate) fn base(&self) -> &BaseDb {
        &self.db
    }

    /// Accounts cached in the committed state (exposed for diagnostics).
    pub fn cached_accounts(&self) -> usize {
        self.db.cache.accounts.len()
    }
}

fn call_on<DB: Database, C: SolCall>(
    db: DB,
    cfg: &CfgEnv,
    block: &BlockEnv,
    to: Address,
    call: C,
) -> Result<C::Return, SimError>
where
    EVMError<DB::Error>: std::fmt::Display,
{
    let tx = TxEnv {
        caller: Address::ZERO,
        kind: TxKind::Call(to),
        data: call.abi_encode().into(),
        gas_limit: TX_GAS_LIMIT,
        gas_price: 0,
        chain_id: Some(cfg.chain_id),
        ..TxEnv::default()
    };
    let result = build_evm(db, cfg, block)
        .transact(tx)
        .map_err(evm_err)?
        .result;
    match result {
        ExecutionResult::Success { output, .. } => {
            C::abi_decode_returns(output.data()).map_err(|e| SimError::Decode {
                what: C::SIGNATURE,
                detail: e.to_string(),
            })
        }
        other => Err(SimError::Evm(format!(
            "view call {} on {to} failed: {}",
            C::SIGNATURE,
            failure_reason(&other)
        ))),
    }
}

fn failure_reason(result: &ExecutionResult) -> String {
    match result {
        ExecutionResult::Success { .. } => "succeeded".into(),
        ExecutionResult::Revert { output, .. } => revert::reason(output),
        ExecutionResult::Halt { reason, .. } => format!("halt: {reason:?}"),
    }
}

fn outcome(
    action: &Action,
    result: &ExecutionResult,
    state: PoolState,
) -> Result<Outcome, SimError> {
    let mut out = Outcome {
        success: result.is_success(),
        revert_reason: None,
        amount0: U256::ZERO,
        amount1: U256::ZERO,
        token0_in: false,
        fees0: U256::ZERO,
        fees1: U256::ZERO,
        sqrt_price_after: state.sqrt_price_x96,
        tick_after: state.tick,
        liquidity_after: state.liquidity,
        gas_used: result.tx_gas_used(),
    };
    let ExecutionResult::Success { output, .. } = result else {
        out.revert_reason = Some(failure_reason(result));
        return Ok(out);
    };
    let data = output.data();
    let decode_err = |what: &'static str| {
        move |e: alloy_sol_types::Error| SimError::Decode {
            what,
            detail: e.to_string(),
        }
    };
    match action {
        Action::Swap { zero_for_one, .. } => {
            let r = StratboxExecutor::swapCall::abi_decode_returns(data)
                .map_err(decode_err("swap return"))?;
            out.amount0 = r.amount0.unsigned_abs();
            out.amount1 = r.amount1.unsigned_abs();
            out.token0_in = *zero_for_one;
        }
        Action::AddLiquidity { .. } => {
            let r = StratboxExecutor::mintCall::abi_decode_returns(data)
                .map_err(decode_err("mint return"))?;
            out.amount0 = r.amount0;
            out.amount1 = r.amount1;
        }
        Action::RemoveLiquidity { .. } => {
            let r = StratboxExecutor::burnCall::abi_decode_returns(data)
                .map_err(decode_err("burn return"))?;
            out.amount0 = r.amount0;
            out.amount1 = r.amount1;
            out.fees0 = r.fees0;
            out.fees1 = r.fees1;
        }
    }
    Ok(out)
}

async fn read_pool_info<P: Provider>(provider: &P, pool: Address) -> Result<PoolInfo, SimError> {
    let read = |e: calldata::DeployError| SimError::Rpc(e.to_string());
    let token0 = calldata::read_call(provider, pool, IUniswapV3Pool::token0Call {}, "token0")
        .await
        .map_err(read)?;
    let token1 = calldata::read_call(provider, pool, IUniswapV3Pool::token1Call {}, "token1")
        .await
        .map_err(read)?;
    let fee = calldata::read_call(provider, pool, IUniswapV3Pool::feeCall {}, "fee")
        .await
        .map_err(read)?;
    let spacing = calldata::read_call(
        provider,
        pool,
        IUniswapV3Pool::tickSpacingCall {},
        "tickSpacing",
    )
    .await
    .map_err(read)?;
    Ok(PoolInfo {
        address: pool,
        token0,
        token1,
        fee: fee.to::<u32>(),
        tick_spacing: spacing.as_i32(),
    })
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Chain>();
}

/// The executor calldata for `action`: what a simulation runs and, with the same bytes, what
/// a live trade sends. `amount_out_minimum` bounds a swap's output (the executor reverts
/// below it); simulations pass zero to see the pool's true answer.
pub fn action_calldata(action: &Action, amount_out_minimum: U256) -> Result<Bytes, SimError> {
    match *action {
        Action::Swap {
            pool,
            zero_for_one,
            amount_in,
            sqrt_price_limit_x96,
        } => calldata::executor_swap_calldata(
            pool,
            zero_for_one,
            amount_in,
            sqrt_price_limit_x96,
            amount_out_minimum,
        ),
        Action::AddLiquidity {
            pool,
            tick_lower,
            tick_upper,
            liquidity,
        } => calldata::executor_mint_calldata(pool, tick_lower, tick_upper, liquidity),
        Action::RemoveLiquidity {
            pool,
            tick_lower,
            tick_upper,
            liquidity,
        } => calldata::executor_burn_calldata(pool, tick_lower, tick_upper, liquidity),
    }
    .map_err(|e| SimError::Invalid(e.to_string()))
}
