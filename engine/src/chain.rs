//! The real chain behind [`crate::Simulator`]: `stratbox_sim::Chain` (revm with the
//! Uniswap V3 bytecode), embedded or forked.
//!
//! A shadow book holds no tokens, so the first time the engine simulates for an account it
//! funds that account's simulation address with [`SHADOW_FUNDING`] of every pool token.
//! The funding is deliberately finite: a proposal to spend more than any real account
//! could (say 2^256-1) reverts in the token, exactly as it would on chain. It also gets
//! [`SHADOW_GAS_FUNDING`] of ether, since proposals are simulated at the network's gas
//! price ([`Simulator::set_gas_price`]) and pay for their gas as on chain.

use std::collections::HashSet;

use stratbox_proto::U256;
use stratbox_sim::{Action, Chain, EmbeddedConfig};

use crate::proposal::{Address, TradeAction};
use crate::simulation::{PoolInfo, SimError, SimOutcome, Simulator};

/// 2^160 raw units of each token per simulated account.
pub const SHADOW_FUNDING: U256 = U256::from_limbs([0, 0, 1 << 32, 0]);

/// 10^6 ether (wei) per simulated account: a transaction's up-front gas (16M gas at the gas
/// gate's highest cap) is far below it, so only a price no gate would pass runs it out.
pub const SHADOW_GAS_FUNDING: U256 = U256::from_limbs([0x1bce_cced_a100_0000, 0xd3c2, 0, 0]);

/// `stratbox_sim::Chain` plus the set of accounts already funded for simulation.
pub struct SimChain {
    chain: Chain,
    funded: HashSet<Address>,
    /// A fork's state is as of the block it read (N) while revm simulates in block N+1;
    /// N is the block the engine reports (initial watermark, ListMarkets' `block`), or a
    /// host would stamp proposals a block ahead of the feed's events.
    fork_block: Option<u64>,
}

fn addr(a: &Address) -> stratbox_sim::Address {
    stratbox_sim::Address::from(*a)
}

fn raw(a: stratbox_sim::Address) -> Address {
    a.into_array()
}

impl SimChain {
    pub fn new(chain: Chain) -> SimChain {
        SimChain {
            chain,
            funded: HashSet::new(),
            fork_block: None,
        }
    }

    /// The embedded default: one token pair, one seeded pool.
    pub fn embedded() -> Result<SimChain, SimError> {
        Chain::embedded(&EmbeddedConfig::default())
            .map(SimChain::new)
            .map_err(|e| SimError::Backend(e.to_string()))
    }

    /// A fork of a JSON-RPC node, trading `pools`.
    pub async fn fork(
        url: &str,
        pools: &[Address],
        block: Option<u64>,
    ) -> Result<SimChain, SimError> {
        let pools: Vec<_> = pools.iter().map(addr).collect();
        let chain = Chain::fork(url, &pools, block)
            .await
            .map_err(|e| SimError::Backend(e.to_string()))?;
        let read_at = chain.block_number().saturating_sub(1);
        Ok(SimChain {
            fork_block: Some(read_at),
            ..SimChain::new(chain)
        })
    }

    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    pub fn chain_mut(&mut self) -> &mut Chain {
        &mut self.chain
    }

    fn ensure_funded(&mut self, from: Address) -> Result<(), SimError> {
        if self.funded.contains(&from) {
            return Ok(());
        }
        let mut tokens: Vec<stratbox_sim::Address> = Vec::new();
        for p in self.chain.pools() {
            for t in [p.token0, p.token1] {
                if !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
        }
        for t in tokens {
            self.chain
                .fund(addr(&from), t, SHADOW_FUNDING)
                .map_err(|e| SimError::Backend(e.to_string()))?;
        }
        self.chain
            .set_native_balance(addr(&from), SHADOW_GAS_FUNDING)
            .map_err(|e| SimError::Backend(e.to_string()))?;
        self.funded.insert(from);
        Ok(())
    }
}

fn outcome(o: &stratbox_sim::Outcome, gas_price: u128) -> SimOutcome {
    SimOutcome {
        success: o.success,
        revert_reason: o.revert_reason.clone().unwrap_or_default(),
        amount0: o.amount0,
        amount1: o.amount1,
        token0_in: o.token0_in,
        gas_used: o.gas_used,
        gas_price: U256::from(gas_price),
    }
}

impl Simulator for SimChain {
    fn chain_id(&self) -> u64 {
        self.chain.chain_id()
    }

    fn block_number(&self) -> u64 {
        self.fork_block.unwrap_or_else(|| self.chain.block_number())
    }

    fn pools(&self) -> Vec<Address> {
        self.chain.pools().iter().map(|p| raw(p.address)).collect()
    }

    fn pool(&self, pool: &Address) -> Option<PoolInfo> {
        let info = self.chain.pool_info(addr(pool)).ok()?;
        let state = self.chain.pool_state(addr(pool)).ok()?;
        Some(PoolInfo {
            token0: raw(info.token0),
            token1: raw(info.token1),
            fee: info.fee,
            tick_spacing: info.tick_spacing,
            sqrt_price_x96: state.sqrt_price_x96,
            tick: state.tick,
            liquidity: state.liquidity,
        })
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn is_prepared(&self, from: &Address) -> bool {
        self.funded.contains(from)
    }

    fn prepare(&mut self, from: Address) -> Result<(), SimError> {
        self.ensure_funded(from)
    }

    fn set_gas_price(&mut self, wei: U256) {
        self.chain.set_gas_price(wei.saturating_to());
    }

    fn simulate_prepared(
        &self,
        from: Address,
        action: &TradeAction,
    ) -> Result<SimOutcome, SimError> {
        if !self.funded.contains(&from) {
            return Err(SimError::Backend(format!(
                "account {} is not prepared for simulation",
                crate::proposal::hex_address(&from)
            )));
        }
        let actions: Vec<Action> = match *action {
            TradeAction::Swap {
                pool,
                zero_for_one,
                amount_in,
                sqrt_price_limit_x96,
            } => vec![Action::Swap {
                pool: addr(&pool),
                zero_for_one,
                amount_in,
                sqrt_price_limit_x96,
            }],
            TradeAction::AddLiquidity(r) => vec![Action::AddLiquidity {
                pool: addr(&r.pool),
                tick_lower: r.tick_lower,
                tick_upper: r.tick_upper,
                liquidity: r.liquidity,
            }],
            // A shadow book holds no position: open it, then close it, and judge the close.
            TradeAction::RemoveLiquidity(r) => vec![
                Action::AddLiquidity {
                    pool: addr(&r.pool),
                    tick_lower: r.tick_lower,
                    tick_upper: r.tick_upper,
                    liquidity: r.liquidity,
                },
                Action::RemoveLiquidity {
                    pool: addr(&r.pool),
                    tick_lower: r.tick_lower,
                    tick_upper: r.tick_upper,
                    liquidity: r.liquidity,
                },
            ],
        };
        let outs = self
            .chain
            .simulate(addr(&from), &actions)
            .map_err(|e| match e {
                stratbox_sim::SimError::UnknownPool(p) => SimError::UnknownPool(format!("{p:#x}")),
                other => SimError::Backend(other.to_string()),
            })?;
        // If the opening add reverted the close never ran; report the first failure.
        if let Some(first_fail) = outs.iter().find(|o| !o.success) {
            return Ok(outcome(first_fail, self.chain.gas_price()));
        }
        outs.last()
            .map(|o| outcome(o, self.chain.gas_price()))
            .ok_or_else(|| SimError::Backend("simulator returned no outcome".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_gas_funding_is_a_million_ether() {
        assert_eq!(SHADOW_GAS_FUNDING, U256::from(10u64).pow(U256::from(24u64)));
    }
}
