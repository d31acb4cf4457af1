//! The chain the engine simulates against: an immutable snapshot ([`ChainState`]) of
//! `stratbox_sim::Chain` (revm with the Uniswap V3 bytecode, embedded or forked) that the
//! engine swaps whole, never edits in place.
//!
//! Why snapshots: a forked chain reads state it has not cached from its node, so a
//! simulation can wait on the network. Were the chain behind a lock, whoever wanted to
//! replace it (the fork follower at every block) would queue behind that simulation and
//! every reader behind the replacer, until no async worker was left to drive the node's
//! reply. With snapshots a simulation holds an `Arc` of the state it started on and nothing
//! else; a new block is a new snapshot, published with one atomic store. What a batch reads
//! (pool prices for the gates, the state it simulates on) comes from one snapshot, so the
//! gates and the simulation always agree on the block.
//!
//! A shadow book holds no tokens, so a shadow simulation gives its account
//! [`SHADOW_FUNDING`] of every pool token, an executor allowance and
//! [`SHADOW_GAS_FUNDING`] of ether on the simulation's own overlay (see
//! `stratbox_sim::Funding`): nothing shared is written, so no account ever has to be
//! "prepared" first and no new snapshot can lose a preparation. The funding is finite: a
//! proposal to spend more than any real account could (say 2^256-1) reverts in the token,
//! exactly as it would on chain.

use std::sync::Arc;

use stratbox_proto::U256;
use stratbox_sim::{Action, Chain, EmbeddedConfig, Funding, SimOptions};

use crate::proposal::{Address, TradeAction};
use crate::simulation::{PoolInfo, SimError, SimOutcome};

/// 2^160 raw units of each token per simulated account.
pub const SHADOW_FUNDING: U256 = U256::from_limbs([0, 0, 1 << 32, 0]);

/// 10^6 ether (wei) per simulated account: a transaction's up-front gas (16M gas at the gas
/// gate's highest cap) is far below it, so only a price no gate would pass runs it out.
pub const SHADOW_GAS_FUNDING: U256 = U256::from_limbs([0x1bce_cced_a100_0000, 0xd3c2, 0, 0]);

/// Simulates from here to warm a new fork's cache before it is published.
const WARM_UP_ACCOUNT: Address = [0x5b; 20];

fn addr(a: &Address) -> stratbox_sim::Address {
    stratbox_sim::Address::from(*a)
}

fn raw(a: stratbox_sim::Address) -> Address {
    a.into_array()
}

fn backend(e: impl std::fmt::Display) -> SimError {
    SimError::Backend(e.to_string())
}

/// The simulator's form of one proposal's action.
fn to_action(action: &TradeAction) -> Action {
    match *action {
        TradeAction::Swap {
            pool,
            zero_for_one,
            amount_in,
            sqrt_price_limit_x96,
        } => Action::Swap {
            pool: addr(&pool),
            zero_for_one,
            amount_in,
            sqrt_price_limit_x96,
        },
        TradeAction::AddLiquidity(r) => Action::AddLiquidity {
            pool: addr(&r.pool),
            tick_lower: r.tick_lower,
            tick_upper: r.tick_upper,
            liquidity: r.liquidity,
        },
        TradeAction::RemoveLiquidity(r) => Action::RemoveLiquidity {
            pool: addr(&r.pool),
            tick_lower: r.tick_lower,
            tick_upper: r.tick_upper,
            liquidity: r.liquidity,
        },
    }
}

/// One immutable state of the chain: what every simulation and valuation reads.
#[derive(Clone)]
pub struct ChainState {
    chain: Arc<Chain>,
    /// Every pool with its price and liquidity, read when the snapshot was made, so the
    /// gates and the books never read chain storage (which, on a fork, may wait on the
    /// node).
    pools: Vec<(Address, PoolInfo)>,
    funding: Arc<Funding>,
    /// A fork's state is as of the block it read (N) while revm simulates in block N+1;
    /// N is the block the engine reports (initial watermark, ListMarkets' `block`), or a
    /// host would stamp proposals a block ahead of the feed's events.
    fork_block: Option<u64>,
    /// Wei per gas simulations pay (the network's base fee; zero on the embedded chain).
    gas_price: u128,
    /// The executor deployed on the forked chain that live trades go through, once set
    /// ([`ChainState::use_executor`]); kept by every later fork made with this state as hint.
    live_executor: Option<Address>,
}

impl std::fmt::Debug for ChainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainState")
            .field("chain_id", &self.chain_id())
            .field("block", &self.block_number())
            .field("pools", &self.pools.len())
            .field("gas_price", &self.gas_price)
            .finish_non_exhaustive()
    }
}

impl ChainState {
    /// The embedded default: one token pair, one seeded pool.
    pub fn embedded() -> Result<ChainState, SimError> {
        let chain = Chain::embedded(&EmbeddedConfig::default()).map_err(backend)?;
        ChainState::new(chain, 0, None)
    }

    /// Wraps a chain: reads its pools' state and finds how to fund accounts in its tokens
    /// (`hint`: the previous state's funding, so known tokens are not probed again). On a
    /// fork this reads from the node, so it blocks: call it off the async workers.
    pub fn new(
        chain: Chain,
        gas_price: u128,
        hint: Option<&ChainState>,
    ) -> Result<ChainState, SimError> {
        let mut tokens: Vec<stratbox_sim::Address> = Vec::new();
        let mut pools = Vec::new();
        for p in chain.pools() {
            for t in [p.token0, p.token1] {
                if !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
            let state = chain.pool_state(p.address).map_err(backend)?;
            pools.push((
                raw(p.address),
                PoolInfo {
                    token0: raw(p.token0),
                    token1: raw(p.token1),
                    fee: p.fee,
                    tick_spacing: p.tick_spacing,
                    sqrt_price_x96: state.sqrt_price_x96,
                    tick: state.tick,
                    liquidity: state.liquidity,
                },
            ));
        }
        let funding = Funding::new(
            &chain,
            &tokens,
            SHADOW_FUNDING,
            SHADOW_GAS_FUNDING,
            hint.map(|h| h.funding.as_ref()),
        )
        .map_err(backend)?;
        let fork_block = chain
            .is_fork()
            .then(|| chain.block_number().saturating_sub(1));
        let live_executor = hint
            .and_then(|h| h.live_executor)
            .filter(|e| *e == raw(chain.executor()));
        Ok(ChainState {
            live_executor,
            chain: Arc::new(chain),
            pools,
            funding: Arc::new(funding),
            fork_block,
            gas_price,
        })
    }

    /// A fork of a JSON-RPC node at `block` (default: its latest), trading `pools`, warmed
    /// (see [`ChainState::warm_up`]) before it is returned. The node's answers are awaited
    /// here; the reads a simulation needs run on the blocking pool.
    pub async fn fork(
        url: &str,
        pools: &[Address],
        block: Option<u64>,
        gas_price: u128,
        hint: Option<Arc<ChainState>>,
    ) -> Result<ChainState, SimError> {
        let pools: Vec<_> = pools.iter().map(addr).collect();
        let mut chain = Chain::fork(url, &pools, block).await.map_err(backend)?;
        tokio::task::spawn_blocking(move || {
            let executor = hint.as_ref().and_then(|h| h.live_executor);
            if let Some(executor) = executor {
                chain.use_executor(addr(&executor)).map_err(backend)?;
            }
            // ChainState::new keeps the hint's executor, now that the chain calls it.
            let state = ChainState::new(chain, gas_price, hint.as_deref())?;
            state.warm_up();
            Ok(state)
        })
        .await
        .map_err(backend)?
    }

    /// Simulates a small swap each way on every pool, so the state most simulations read
    /// (the pool's code and slots around its price, the tokens, the executor) is in the
    /// fork's cache before the first proposal needs it. Blocking; failures only mean a
    /// colder cache.
    pub fn warm_up(&self) {
        for (pool, _) in &self.pools {
            for zero_for_one in [true, false] {
                let action = TradeAction::Swap {
                    pool: *pool,
                    zero_for_one,
                    amount_in: U256::from(1_000u32),
                    sqrt_price_limit_x96: None,
                };
                if let Err(e) = self.simulate(WARM_UP_ACCOUNT, &action, true) {
                    tracing::debug!(error = %e, "warming a new fork");
                }
            }
        }
    }

    /// The same fork with its actions sent through the executor deployed at `executor` (see
    /// `stratbox_sim::Chain::use_executor`), as a live trade's transaction will be. Blocking
    /// (the code is read from the node): call it off the async workers.
    pub fn use_executor(&self, executor: Address) -> Result<ChainState, SimError> {
        let (mut next, r) = self.edit(|chain| chain.use_executor(addr(&executor)))?;
        r.map_err(backend)?;
        next.live_executor = Some(executor);
        Ok(next)
    }

    /// The executor simulations call.
    pub fn executor(&self) -> Address {
        raw(self.chain.executor())
    }

    /// The executor deployed on the chain that simulations call, once set with
    /// [`ChainState::use_executor`]: the only one a live trade may be sent to.
    pub fn live_executor(&self) -> Option<Address> {
        self.live_executor
    }

    /// The same state with simulations paying `wei` per gas.
    pub fn with_gas_price(&self, wei: U256) -> ChainState {
        ChainState {
            gas_price: wei.saturating_to(),
            ..self.clone()
        }
    }

    /// A copy of this state changed by `f` (the embedded market's swaps, tests moving the
    /// price): the chain is cloned, changed, and wrapped again. Readers of `self` are not
    /// affected. Blocking on a fork (pool state is re-read).
    pub fn edit<R>(&self, f: impl FnOnce(&mut Chain) -> R) -> Result<(ChainState, R), SimError> {
        let mut chain = (*self.chain).clone();
        let r = f(&mut chain);
        let next = ChainState::new(chain, self.gas_price, Some(self))?;
        Ok((next, r))
    }

    /// The simulated chain, read-only: every state is immutable once published.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The chain's id, as proposals and signatures are bound to.
    pub fn chain_id(&self) -> u64 {
        self.chain.chain_id()
    }

    /// The block simulations run on: the forked block, or the embedded chain's head.
    pub fn block_number(&self) -> u64 {
        self.fork_block.unwrap_or_else(|| self.chain.block_number())
    }

    /// True when a simulation may wait on a node (a fork): it must then run on the
    /// blocking pool, never on an async worker.
    pub fn may_block(&self) -> bool {
        self.chain.is_fork()
    }

    /// The gas price (wei) simulations are charged at.
    pub fn gas_price(&self) -> U256 {
        U256::from(self.gas_price)
    }

    /// The pools this chain trades.
    pub fn pools(&self) -> Vec<Address> {
        self.pools.iter().map(|(a, _)| *a).collect()
    }

    /// A pool's state in this snapshot (no chain read).
    pub fn pool(&self, pool: &Address) -> Option<PoolInfo> {
        self.pools.iter().find(|(a, _)| a == pool).map(|(_, i)| *i)
    }

    /// Every pool with its state.
    pub fn pool_infos(&self) -> &[(Address, PoolInfo)] {
        &self.pools
    }

    /// The calldata of `action`'s live transaction to [`ChainState::executor`]: the bytes its
    /// simulation ran, with the swap's output bounded below by `amount_out_minimum`.
    pub fn live_calldata(
        &self,
        action: &TradeAction,
        amount_out_minimum: U256,
    ) -> Result<Vec<u8>, SimError> {
        stratbox_sim::action_calldata(&to_action(action), amount_out_minimum)
            .map(|b| b.to_vec())
            .map_err(|e| SimError::Backend(e.to_string()))
    }

    /// Runs one proposal's transaction(s) from `from` on a private overlay (nothing is
    /// committed) and returns the outcome that decides the trade. `shadow`: the account is
    /// given the shadow funding first (a shadow book holds nothing on chain).
    ///
    /// A shadow book holds no real position, so removing liquidity is simulated as adding
    /// the same liquidity and then removing it; the removal's outcome is returned.
    pub fn simulate(
        &self,
        from: Address,
        action: &TradeAction,
        shadow: bool,
    ) -> Result<SimOutcome, SimError> {
        let one = to_action(action);
        let actions: Vec<Action> = match (*action, shadow) {
            (TradeAction::RemoveLiquidity(r), true) => {
                vec![to_action(&TradeAction::AddLiquidity(r)), one]
            }
            _ => vec![one],
        };
        let options = SimOptions {
            gas_price: self.gas_price,
            funding: shadow.then_some(self.funding.as_ref()),
        };
        let outs = self
            .chain
            .simulate_with(addr(&from), &actions, &options)
            .map_err(|e| match e {
                stratbox_sim::SimError::UnknownPool(p) => SimError::UnknownPool(format!("{p:#x}")),
                other => SimError::Backend(other.to_string()),
            })?;
        // If the opening add reverted the close never ran; report the first failure.
        let o = outs
            .iter()
            .find(|o| !o.success)
            .or_else(|| outs.last())
            .ok_or_else(|| SimError::Backend("simulator returned no outcome".into()))?;
        Ok(SimOutcome {
            success: o.success,
            revert_reason: o.revert_reason.clone().unwrap_or_default(),
            amount0: o.amount0,
            amount1: o.amount1,
            token0_in: o.token0_in,
            gas_used: o.gas_used,
            gas_price: U256::from(self.gas_price),
        })
    }
}

/// Whether the chain the engine follows answers: for a fork, the node answering an RPC.
pub type ChainProbe = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_gas_funding_is_a_million_ether() {
        assert_eq!(SHADOW_GAS_FUNDING, U256::from(10u64).pow(U256::from(24u64)));
    }

    #[test]
    fn an_edit_leaves_the_snapshot_it_started_from_unchanged() -> Result<(), SimError> {
        let before = ChainState::embedded()?;
        let pool = before.pools()[0];
        let price = before.pool(&pool).map(|p| p.sqrt_price_x96);
        let (after, _) = before.edit(|c| {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
            c.next_block();
            c.random_swap(&mut rng, stratbox_sim::Address::repeat_byte(0x5a))
        })?;
        assert_eq!(before.pool(&pool).map(|p| p.sqrt_price_x96), price);
        assert_ne!(after.pool(&pool).map(|p| p.sqrt_price_x96), price);
        assert_eq!(after.block_number(), before.block_number() + 1);
        Ok(())
    }

    #[test]
    fn a_shadow_simulation_needs_no_preparation() -> Result<(), SimError> {
        let state = ChainState::embedded()?;
        let pool = state.pools()[0];
        let swap = TradeAction::Swap {
            pool,
            zero_for_one: true,
            amount_in: U256::from(10u64).pow(U256::from(18u64)),
            sqrt_price_limit_x96: None,
        };
        let fresh = [0x42; 20];
        let funded = state.simulate(fresh, &swap, true)?;
        assert!(funded.success, "{}", funded.revert_reason);
        // Without shadow funding the account holds nothing and the token refuses.
        let unfunded = state.simulate(fresh, &swap, false)?;
        assert!(!unfunded.success);
        Ok(())
    }
}
