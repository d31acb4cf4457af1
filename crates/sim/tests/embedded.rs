//! The embedded chain on the real Uniswap V3 / OpenZeppelin bytecode: deployment, swaps,
//! liquidity, simulation without commit, and revert reasons.

use alloy_primitives::{Address, U256, address};
use rand::SeedableRng;
use rand::rngs::StdRng;
use stratbox_evm::abi::IUniswapV3Pool;
use stratbox_sim::{Action, Chain, EmbeddedConfig, FundedAccount, PoolEvent, SimError};

const ALICE: Address = address!("0x00000000000000000000000000000000000a11ce");
const BOB: Address = address!("0x0000000000000000000000000000000000000b0b");
const E18: u128 = 1_000_000_000_000_000_000;

fn chain() -> Result<Chain, SimError> {
    Chain::embedded(&EmbeddedConfig {
        accounts: vec![
            FundedAccount {
                account: ALICE,
                amount0: U256::from(1_000_000 * E18),
                amount1: U256::from(1_000_000 * E18),
            },
            FundedAccount {
                account: BOB,
                amount0: U256::from(1_000_000 * E18),
                amount1: U256::from(1_000_000 * E18),
            },
        ],
        ..EmbeddedConfig::default()
    })
}

#[test]
fn deploys_a_pool_whose_storage_reads_match_its_own_getters() -> Result<(), SimError> {
    let chain = chain()?;
    let pools = chain.pools();
    assert_eq!(pools.len(), 1);
    let info = pools[0];
    assert_eq!((info.fee, info.tick_spacing), (3000, 60));
    assert!(info.token0 < info.token1);
    let state = chain.pool_state(info.address)?;
    let slot0 = chain.call(info.address, IUniswapV3Pool::slot0Call {})?;
    let liquidity = chain.call(info.address, IUniswapV3Pool::liquidityCall {})?;
    assert_eq!(state.sqrt_price_x96, U256::from(slot0.sqrtPriceX96));
    assert_eq!(state.tick, slot0.tick.as_i32());
    assert_eq!(state.liquidity, liquidity);
    assert_eq!(state.tick, 0, "initialised at price 1");
    assert_eq!(
        state.liquidity,
        1_000_000 * E18,
        "the seed position is in range"
    );
    assert_eq!(
        chain.call(info.address, IUniswapV3Pool::token0Call {})?,
        info.token0
    );
    assert_eq!(
        chain.balance_of(info.token0, ALICE)?,
        U256::from(1_000_000 * E18)
    );
    Ok(())
}

#[test]
fn a_swap_moves_balances_price_and_emits_a_swap_event() -> Result<(), SimError> {
    let mut chain = chain()?;
    let info = chain.pools()[0];
    let before = chain.pool_state(info.address)?;
    let (a0, a1) = (
        chain.balance_of(info.token0, ALICE)?,
        chain.balance_of(info.token1, ALICE)?,
    );
    let (p0, p1) = (
        chain.balance_of(info.token0, info.address)?,
        chain.balance_of(info.token1, info.address)?,
    );
    let amount_in = U256::from(1_000 * E18);
    let executed = chain.execute(
        ALICE,
        &Action::Swap {
            pool: info.address,
            zero_for_one: true,
            amount_in,
            sqrt_price_limit_x96: None,
        },
    )?;
    let out = &executed.outcome;
    assert!(out.success, "{:?}", out.revert_reason);
    assert!(out.token0_in);
    assert_eq!(
        out.amount0, amount_in,
        "exact input is spent in full without a limit"
    );
    // At price 1 with 0.3% fee and deep liquidity, the output is a little under 99.7%.
    assert!(out.amount1 < amount_in * U256::from(997) / U256::from(1000));
    assert!(out.amount1 > amount_in * U256::from(996) / U256::from(1000));
    assert_eq!(chain.balance_of(info.token0, ALICE)?, a0 - out.amount0);
    assert_eq!(chain.balance_of(info.token1, ALICE)?, a1 + out.amount1);
    assert_eq!(
        chain.balance_of(info.token0, info.address)?,
        p0 + out.amount0
    );
    assert_eq!(
        chain.balance_of(info.token1, info.address)?,
        p1 - out.amount1
    );
    let after = chain.pool_state(info.address)?;
    assert!(after.sqrt_price_x96 < before.sqrt_price_x96);
    assert_eq!(after.sqrt_price_x96, out.sqrt_price_after);
    assert_eq!(after.tick, out.tick_after);
    assert!(out.gas_used > 50_000, "gas {}", out.gas_used);

    let swaps: Vec<_> = executed
        .events
        .iter()
        .filter_map(|e| match e.event {
            PoolEvent::Swap(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(swaps.len(), 1);
    let s = swaps[0];
    assert_eq!(s.pool, info.address);
    assert_eq!(s.recipient, ALICE);
    assert!(s.zero_for_one());
    assert_eq!(s.amount_in(), out.amount0);
    assert_eq!(s.amount_out(), out.amount1);
    assert_eq!(s.sqrt_price_x96, after.sqrt_price_x96);
    assert_eq!((executed.tx_index, executed.block_number), (0, 1));
    Ok(())
}

#[test]
fn add_and_remove_liquidity_round_trip_and_pay_fees() -> Result<(), SimError> {
    let mut chain = chain()?;
    let info = chain.pools()[0];
    let (a0, a1) = (
        chain.balance_of(info.token0, ALICE)?,
        chain.balance_of(info.token1, ALICE)?,
    );
    let add = Action::AddLiquidity {
        pool: info.address,
        tick_lower: -600,
        tick_upper: 600,
        liquidity: 1_000 * E18,
    };
    let minted = chain.execute(ALICE, &add)?;
    assert!(minted.outcome.success, "{:?}", minted.outcome.revert_reason);
    assert!(minted.outcome.amount0 > U256::ZERO && minted.outcome.amount1 > U256::ZERO);
    assert_eq!(
        chain.balance_of(info.token0, ALICE)?,
        a0 - minted.outcome.amount0
    );
    assert_eq!(
        chain.balance_of(info.token1, ALICE)?,
        a1 - minted.outcome.amount1
    );
    let mint_event = minted.events.iter().find_map(|e| match e.event {
        PoolEvent::Mint(m) => Some(m),
        _ => None,
    });
    let mint_event = mint_event.ok_or_else(|| SimError::Invalid("no Mint event".into()))?;
    assert_eq!(
        mint_event.owner, ALICE,
        "the executor's position is attributed to the account"
    );
    assert_eq!((mint_event.tick_lower, mint_event.tick_upper), (-600, 600));
    assert_eq!(mint_event.liquidity, 1_000 * E18);
    assert_eq!(mint_event.amount0, minted.outcome.amount0);
    assert!(
        minted.events[0].log_index > 0,
        "transfers precede the pool's Mint log"
    );

    // Bob trades through Alice's range both ways, so it earns fees in both tokens.
    for zero_for_one in [true, false] {
        let swap = Action::Swap {
            pool: info.address,
            zero_for_one,
            amount_in: U256::from(10 * E18),
            sqrt_price_limit_x96: None,
        };
        assert!(chain.execute(BOB, &swap)?.outcome.success);
    }

    let remove = Action::RemoveLiquidity {
        pool: info.address,
        tick_lower: -600,
        tick_upper: 600,
        liquidity: 1_000 * E18,
    };
    let burned = chain.execute(ALICE, &remove)?;
    let out = &burned.outcome;
    assert!(out.success, "{:?}", out.revert_reason);
    assert!(
        out.fees0 > U256::ZERO && out.fees1 > U256::ZERO,
        "fees {} {}",
        out.fees0,
        out.fees1
    );
    assert_eq!(
        chain.balance_of(info.token0, ALICE)?,
        a0 - minted.outcome.amount0 + out.amount0 + out.fees0
    );
    assert_eq!(
        chain.balance_of(info.token1, ALICE)?,
        a1 - minted.outcome.amount1 + out.amount1 + out.fees1
    );
    let burn_event = burned.events.iter().find_map(|e| match e.event {
        PoolEvent::Burn(b) => Some(b),
        _ => None,
    });
    let burn_event = burn_event.ok_or_else(|| SimError::Invalid("no Burn event".into()))?;
    assert_eq!(burn_event.owner, ALICE);
    assert_eq!(burn_event.amount0, out.amount0);

    // Nothing is left to remove.
    let again = chain.execute(ALICE, &remove)?;
    assert!(!again.outcome.success);
    assert_eq!(again.outcome.revert_reason.as_deref(), Some("NL"));
    Ok(())
}

#[test]
fn simulate_does_not_commit_and_chains_actions_on_one_overlay() -> Result<(), SimError> {
    let mut chain = chain()?;
    let info = chain.pools()[0];
    let before = chain.pool_state(info.address)?;
    let balance = chain.balance_of(info.token0, ALICE)?;
    let add = Action::AddLiquidity {
        pool: info.address,
        tick_lower: -120,
        tick_upper: 180,
        liquidity: 500 * E18,
    };
    let remove = Action::RemoveLiquidity {
        pool: info.address,
        tick_lower: -120,
        tick_upper: 180,
        liquidity: 500 * E18,
    };
    let outcomes = chain.simulate(ALICE, &[add, remove])?;
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes[0].success && outcomes[1].success, "{outcomes:?}");
    // The remove saw the add: same liquidity back, principal within rounding.
    assert!(outcomes[0].amount0 - outcomes[1].amount0 <= U256::from(1u8));
    assert!(outcomes[0].amount1 - outcomes[1].amount1 <= U256::from(1u8));
    assert_eq!(outcomes[0].liquidity_after, before.liquidity + 500 * E18);
    assert_eq!(outcomes[1].liquidity_after, before.liquidity);

    // Alone, the remove has nothing to remove: the add was never committed.
    let alone = chain.simulate(ALICE, &[remove])?;
    assert!(!alone[0].success);
    assert_eq!(chain.pool_state(info.address)?, before);
    assert_eq!(chain.balance_of(info.token0, ALICE)?, balance);

    // A simulated swap predicts the committed one exactly.
    let swap = Action::Swap {
        pool: info.address,
        zero_for_one: false,
        amount_in: U256::from(12_345 * E18),
        sqrt_price_limit_x96: None,
    };
    let predicted = chain.simulate(ALICE, &[swap])?.remove(0);
    assert_eq!(chain.pool_state(info.address)?, before);
    let executed = chain.execute(ALICE, &swap)?;
    assert_eq!(executed.outcome, predicted);
    Ok(())
}

#[test]
fn reverts_are_outcomes_with_decoded_reasons() -> Result<(), SimError> {
    let chain = chain()?;
    let info = chain.pools()[0];
    let state = chain.pool_state(info.address)?;
    let stranger = address!("0x000000000000000000000000000000000000dead");
    let cases = [
        (
            ALICE,
            Action::Swap {
                pool: info.address,
                zero_for_one: true,
                amount_in: U256::from(E18),
                // A zero-for-one limit above the price is invalid.
                sqrt_price_limit_x96: Some(state.sqrt_price_x96 + U256::from(1u8)),
            },
            "SPL",
        ),
        (
            stranger,
            Action::Swap {
                pool: info.address,
                zero_for_one: true,
                amount_in: U256::from(E18),
                sqrt_price_limit_x96: None,
            },
            "ERC20: insufficient allowance",
        ),
        (
            ALICE,
            Action::Swap {
                pool: info.address,
                zero_for_one: false,
                amount_in: U256::from(10_000_000 * E18),
                sqrt_price_limit_x96: None,
            },
            "ERC20: transfer amount exceeds balance",
        ),
        (
            ALICE,
            Action::AddLiquidity {
                pool: info.address,
                tick_lower: 600,
                tick_upper: -600,
                liquidity: E18,
            },
            "TLU",
        ),
        (
            ALICE,
            Action::AddLiquidity {
                pool: info.address,
                tick_lower: -61,
                tick_upper: 60,
                liquidity: E18,
            },
            "reverted without reason",
        ),
        (
            ALICE,
            Action::Swap {
                pool: info.address,
                zero_for_one: true,
                amount_in: U256::ZERO,
                sqrt_price_limit_x96: None,
            },
            "AS",
        ),
    ];
    for (from, action, reason) in cases {
        let outcome = chain.simulate(from, &[action])?.remove(0);
        assert!(!outcome.success, "{action:?} should revert");
        assert_eq!(outcome.revert_reason.as_deref(), Some(reason), "{action:?}");
        assert_eq!(outcome.sqrt_price_after, state.sqrt_price_x96);
        assert!(outcome.amount0.is_zero() && outcome.amount1.is_zero());
    }
    // An unknown pool is a caller error, not an outcome.
    let unknown = Action::Swap {
        pool: stranger,
        zero_for_one: true,
        amount_in: U256::from(1u8),
        sqrt_price_limit_x96: None,
    };
    assert!(matches!(
        chain.simulate(ALICE, &[unknown]),
        Err(SimError::UnknownPool(_))
    ));
    Ok(())
}

#[test]
fn blocks_advance_and_the_random_market_is_deterministic() -> Result<(), SimError> {
    let mut a = chain()?;
    let mut b = chain()?;
    let trader = address!("0x00000000000000000000000000000000000072ad");
    let mut rng_a = StdRng::seed_from_u64(7);
    let mut rng_b = StdRng::seed_from_u64(7);
    let start = a.pool_state(a.pools()[0].address)?;
    let mut moved = false;
    for i in 0..20 {
        let x = a.random_swap(&mut rng_a, trader)?;
        let y = b.random_swap(&mut rng_b, trader)?;
        assert!(x.outcome.success, "{:?}", x.outcome.revert_reason);
        assert_eq!(x, y, "swap {i} differs");
        assert_eq!(x.tx_index, 0);
        assert_eq!(x.block_number, 1 + i);
        moved |= x.outcome.sqrt_price_after != start.sqrt_price_x96;
        a.advance_block(12);
        b.advance_block(12);
    }
    assert!(moved);
    assert_eq!(a.block_number(), 21);
    assert_eq!(a.timestamp(), 1_700_000_000 + 20 * 12);
    Ok(())
}

#[test]
fn the_executor_only_pays_the_pool_it_is_calling() -> Result<(), SimError> {
    let chain = chain()?;
    let info = chain.pools()[0];
    // Anyone calling the callback directly (or a fake pool) is refused: nothing is pulled
    // from accounts that approved the executor.
    let direct = chain.call(
        chain.executor(),
        stratbox_evm::abi::StratboxExecutor::uniswapV3SwapCallbackCall {
            amount0Delta: alloy_primitives::I256::from_raw(U256::from(1_000u32)),
            amount1Delta: alloy_primitives::I256::ZERO,
            data: Default::default(),
        },
    );
    match direct {
        Err(SimError::Evm(msg)) => assert!(msg.ends_with("CB"), "{msg}"),
        other => panic!("callback from outside a swap must revert, got {other:?}"),
    }
    assert_eq!(
        chain.balance_of(info.token0, ALICE)?,
        U256::from(1_000_000 * E18)
    );
    Ok(())
}

#[test]
fn several_fee_tiers_share_one_token_pair() -> Result<(), SimError> {
    let chain = Chain::embedded(&EmbeddedConfig {
        pools: [500u32, 3000, 10_000]
            .map(|fee| stratbox_sim::PoolSpec {
                fee,
                ..Default::default()
            })
            .to_vec(),
        ..EmbeddedConfig::default()
    })?;
    let pools = chain.pools();
    assert_eq!(
        pools
            .iter()
            .map(|p| (p.fee, p.tick_spacing))
            .collect::<Vec<_>>(),
        vec![(500, 10), (3000, 60), (10_000, 200)]
    );
    assert!(
        pools
            .iter()
            .all(|p| (p.token0, p.token1) == (pools[0].token0, pools[0].token1))
    );
    let distinct: std::collections::BTreeSet<_> = pools.iter().map(|p| p.address).collect();
    assert_eq!(distinct.len(), 3);
    for p in &pools {
        assert_eq!(
            chain.pool_state(p.address)?.liquidity,
            stratbox_sim::PoolSpec::default().seed_liquidity
        );
    }
    Ok(())
}

#[test]
fn simulations_pay_for_gas_at_the_price_set() -> Result<(), SimError> {
    let mut chain = chain()?;
    let info = chain.pools()[0];
    let swap = Action::Swap {
        pool: info.address,
        zero_for_one: true,
        amount_in: U256::from(10 * E18),
        sqrt_price_limit_x96: None,
    };
    let free = chain.simulate(ALICE, &[swap])?.remove(0);
    assert!(free.success);

    // At 30 gwei, an account without ether cannot pay the transaction's gas up front: the
    // chain refuses it before it runs, as a node would.
    let gwei = 1_000_000_000u128;
    chain.set_gas_price(30 * gwei);
    assert_eq!(chain.native_balance(ALICE)?, U256::ZERO);
    let refused = chain.simulate(ALICE, &[swap]);
    assert!(
        matches!(&refused, Err(SimError::Evm(e)) if e.to_lowercase().contains("fund")),
        "{refused:?}"
    );

    // With ether it runs, and the price changes nothing but who pays for gas.
    let ether = U256::from(E18);
    chain.set_native_balance(ALICE, ether)?;
    let paid = chain.simulate(ALICE, &[swap])?.remove(0);
    assert_eq!(paid, free);
    // Nothing was committed: the balance is as set.
    assert_eq!(chain.native_balance(ALICE)?, ether);

    // A price that `gas limit x price` exceeds the balance at is refused again.
    chain.set_gas_price(E18 / u128::from(stratbox_sim::TX_GAS_LIMIT) * 2);
    assert!(chain.simulate(ALICE, &[swap]).is_err());
    Ok(())
}
