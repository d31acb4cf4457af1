//! What a transaction does, decoded by the signer from its calldata, and the policy's
//! verdict on it.
//!
//! Calldata is decoded with the `sol!` bindings of `stratbox_evm::abi`
//! (`abi_decode_validate`, and re-encoded to check that nothing trails it), never by slicing
//! bytes, so that an ABI change is a compile error here rather than a silent misreading.
//!
//! What leaves the account, per call (the executor pulls from `msg.sender` and pays out to
//! `msg.sender`, see `crates/evm/solidity/StratboxExecutor.sol`):
//! - `executor.swap`: at most `amountIn` of the input token, to the pool;
//! - `executor.mint`: at most the token0 and token1 liquidity L costs on [tickLower,
//!   tickUpper) at the worst price for each (all token0 when the price is at or below the
//!   range, all token1 above it; Uniswap V3 math, rounded up as the pool rounds);
//! - `executor.burn`: nothing (principal and fees come back to the account);
//! - `token.approve`: nothing moves; the spender must be a policy executor;
//! - `token.transfer`: only to the account itself;
//! - `pool.swap` (direct): exact input only (`amountSpecified > 0`), recipient the account;
//!   `pool.mint` as the executor's, recipient the account; `pool.collect` recipient the
//!   account; `pool.burn` nothing;
//! - a call to the account itself (no calldata): nothing; with value 0 this is a cancel.

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use stratbox_evm::abi::{IERC20, IUniswapV3Pool, StratboxExecutor};
use stratbox_sdk::math;

use crate::policy::{Mode, Policy};
use crate::reason::{Reason, Refusal};
use crate::tx::PlainTx;

/// Tokens moving one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// The token.
    pub token: Address,
    /// Raw units (an upper bound for outflows, the named minimum for inflows).
    pub amount: U256,
    /// The other side (the pool for an outflow, the account for an inflow).
    pub counterparty: Address,
}

/// The decoded transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    /// `executor.swap`, `token.approve`, `cancel`, …
    pub action: String,
    /// The pool it trades on, if any.
    pub pool: Option<Address>,
    /// Upper bounds of what leaves the account.
    pub outflows: Vec<Movement>,
    /// What the call names as coming back.
    pub inflows: Vec<Movement>,
    /// `name = value` per argument, amounts with their symbols.
    pub arguments: Vec<String>,
}

/// The policy's verdict on a transaction it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// What it does.
    pub trade: Trade,
    /// The key that signs.
    pub key_index: u32,
    /// 0, 1 or 2 distinct approvers.
    pub approvals_required: u32,
    /// Why approvers are needed (empty when none).
    pub why: String,
    /// A 0-value call to the account itself with no calldata: the engine's way to cancel a
    /// stuck transaction or fill a nonce gap.
    pub cancel: bool,
}

fn refuse(reason: Reason, detail: impl Into<String>) -> Refusal {
    Refusal::new(reason, detail)
}

/// Raw units with the decimal point placed: `1500000` with 6 decimals is `1.5`.
pub fn format_units(raw: U256, decimals: u8) -> String {
    let digits = raw.to_string();
    let d = decimals as usize;
    if d == 0 {
        return digits;
    }
    let padded = if digits.len() <= d {
        format!("{}{}", "0".repeat(d + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

/// `1.5 SBA (1500000)`.
pub fn show_amount(policy: &Policy, token: &Address, raw: U256) -> String {
    match policy.tokens.get(token) {
        Some(t) => format!("{} {} ({raw})", format_units(raw, t.decimals), t.symbol),
        None => format!("{raw} of {token:#x}"),
    }
}

/// Decodes `input` as `C`, strictly: canonical encoding and nothing after it.
fn decode<C: SolCall>(input: &[u8]) -> Result<C, Refusal> {
    let call = C::abi_decode_validate(input)
        .map_err(|e| refuse(Reason::BadCalldata, format!("{}: {e}", C::SIGNATURE)))?;
    if call.abi_encode().as_slice() != input {
        return Err(refuse(
            Reason::BadCalldata,
            format!("{}: bytes after the arguments", C::SIGNATURE),
        ));
    }
    Ok(call)
}

fn allowed(
    functions: &std::collections::BTreeSet<String>,
    name: &str,
    at: &str,
) -> Result<(), Refusal> {
    if functions.contains(name) {
        Ok(())
    } else {
        Err(refuse(
            Reason::SelectorNotAllowed,
            format!("{name} is not allowed on {at}"),
        ))
    }
}

fn selector(input: &[u8]) -> Result<[u8; 4], Refusal> {
    input
        .get(..4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .ok_or_else(|| {
            refuse(
                Reason::SelectorNotAllowed,
                "calldata shorter than a selector",
            )
        })
}

/// Worst-case token0 and token1 that liquidity `l` on [lower, upper) costs.
fn mint_bounds(lower: i32, upper: i32, l: u128) -> Result<(U256, U256), Refusal> {
    if lower >= upper {
        return Err(refuse(
            Reason::BadCalldata,
            format!("tickLower {lower} >= tickUpper {upper}"),
        ));
    }
    let bad = |e: math::MathError| refuse(Reason::BadCalldata, format!("mint range: {e}"));
    let a = math::get_sqrt_ratio_at_tick(lower).map_err(bad)?;
    let b = math::get_sqrt_ratio_at_tick(upper).map_err(bad)?;
    Ok((
        math::get_amount0_delta(a, b, l, true).map_err(bad)?,
        math::get_amount1_delta(a, b, l, true).map_err(bad)?,
    ))
}

fn pool_of<'p>(policy: &'p Policy, pool: &Address) -> Result<&'p crate::policy::Pool, Refusal> {
    policy.pools.get(pool).ok_or_else(|| {
        refuse(
            Reason::PoolNotAllowed,
            format!("pool {pool:#x} is not in the policy"),
        )
    })
}

fn pool_label(policy: &Policy, pool: &Address) -> String {
    match policy.pools.get(pool) {
        Some(p) => format!(
            "{}/{} {}%",
            policy.symbol(&p.token0),
            policy.symbol(&p.token1),
            format_units(U256::from(p.fee), 4)
        ),
        None => format!("{pool:#x}"),
    }
}

/// The label shown for a pool ("SBA/SBB 0.3%").
pub fn label(policy: &Policy, pool: &Address) -> String {
    pool_label(policy, pool)
}

fn decode_executor(policy: &Policy, tx: &PlainTx, account: Address) -> Result<Trade, Refusal> {
    let functions = &policy.executors[&tx.to];
    let at = format!("executor {:#x}", tx.to);
    let sel = selector(&tx.input)?;
    if sel == StratboxExecutor::swapCall::SELECTOR {
        allowed(functions, "swap", &at)?;
        let c: StratboxExecutor::swapCall = decode(&tx.input)?;
        let p = pool_of(policy, &c.pool)?;
        let (tin, tout) = if c.zeroForOne {
            (p.token0, p.token1)
        } else {
            (p.token1, p.token0)
        };
        Ok(Trade {
            action: "executor.swap".into(),
            pool: Some(c.pool),
            outflows: vec![Movement {
                token: tin,
                amount: c.amountIn,
                counterparty: c.pool,
            }],
            inflows: vec![Movement {
                token: tout,
                amount: c.amountOutMinimum,
                counterparty: account,
            }],
            arguments: vec![
                format!("pool = {:#x} ({})", c.pool, pool_label(policy, &c.pool)),
                format!("zeroForOne = {}", c.zeroForOne),
                format!("amountIn = {}", show_amount(policy, &tin, c.amountIn)),
                format!("sqrtPriceLimitX96 = {}", c.sqrtPriceLimitX96),
                format!(
                    "amountOutMinimum = {}",
                    show_amount(policy, &tout, c.amountOutMinimum)
                ),
            ],
        })
    } else if sel == StratboxExecutor::mintCall::SELECTOR {
        allowed(functions, "mint", &at)?;
        let c: StratboxExecutor::mintCall = decode(&tx.input)?;
        let p = pool_of(policy, &c.pool)?;
        let (lower, upper) = (
            i32::try_from(c.tickLower).unwrap_or(i32::MIN),
            i32::try_from(c.tickUpper).unwrap_or(i32::MIN),
        );
        let (max0, max1) = mint_bounds(lower, upper, c.liquidity)?;
        Ok(Trade {
            action: "executor.mint".into(),
            pool: Some(c.pool),
            outflows: vec![
                Movement {
                    token: p.token0,
                    amount: max0,
                    counterparty: c.pool,
                },
                Movement {
                    token: p.token1,
                    amount: max1,
                    counterparty: c.pool,
                },
            ],
            inflows: vec![],
            arguments: vec![
                format!("pool = {:#x} ({})", c.pool, pool_label(policy, &c.pool)),
                format!("tickLower = {lower}"),
                format!("tickUpper = {upper}"),
                format!("liquidity = {}", c.liquidity),
            ],
        })
    } else if sel == StratboxExecutor::burnCall::SELECTOR {
        allowed(functions, "burn", &at)?;
        let c: StratboxExecutor::burnCall = decode(&tx.input)?;
        pool_of(policy, &c.pool)?;
        Ok(Trade {
            action: "executor.burn".into(),
            pool: Some(c.pool),
            outflows: vec![],
            inflows: vec![],
            arguments: vec![
                format!("pool = {:#x} ({})", c.pool, pool_label(policy, &c.pool)),
                format!("tickLower = {}", c.tickLower),
                format!("tickUpper = {}", c.tickUpper),
                format!("liquidity = {}", c.liquidity),
            ],
        })
    } else {
        Err(refuse(
            Reason::SelectorNotAllowed,
            format!("selector 0x{} is not allowed on {at}", hex::encode(sel)),
        ))
    }
}

fn decode_token(policy: &Policy, tx: &PlainTx, account: Address) -> Result<Trade, Refusal> {
    let token = &policy.tokens[&tx.to];
    let at = format!("token {}", token.symbol);
    let sel = selector(&tx.input)?;
    if sel == IERC20::approveCall::SELECTOR {
        allowed(&token.functions, "approve", &at)?;
        let c: IERC20::approveCall = decode(&tx.input)?;
        if !policy.executors.contains_key(&c.spender) {
            return Err(refuse(
                Reason::SpenderNotAllowed,
                format!(
                    "approve to {:#x}, which is not a policy executor",
                    c.spender
                ),
            ));
        }
        Ok(Trade {
            action: "token.approve".into(),
            pool: None,
            outflows: vec![],
            inflows: vec![],
            arguments: vec![
                format!("spender = {:#x} (executor)", c.spender),
                format!("amount = {}", show_amount(policy, &tx.to, c.amount)),
            ],
        })
    } else if sel == IERC20::transferCall::SELECTOR {
        allowed(&token.functions, "transfer", &at)?;
        let c: IERC20::transferCall = decode(&tx.input)?;
        if c.to != account {
            return Err(refuse(
                Reason::RecipientNotAccount,
                format!(
                    "transfer of {} to {:#x}, not the account",
                    show_amount(policy, &tx.to, c.amount),
                    c.to
                ),
            ));
        }
        Ok(Trade {
            action: "token.transfer".into(),
            pool: None,
            outflows: vec![],
            inflows: vec![],
            arguments: vec![
                format!("to = {:#x} (the account)", c.to),
                format!("amount = {}", show_amount(policy, &tx.to, c.amount)),
            ],
        })
    } else {
        Err(refuse(
            Reason::SelectorNotAllowed,
            format!("selector 0x{} is not allowed on {at}", hex::encode(sel)),
        ))
    }
}

fn recipient(policy: &Policy, to: Address, account: Address, what: &str) -> Result<(), Refusal> {
    let _ = policy;
    if to == account {
        Ok(())
    } else {
        Err(refuse(
            Reason::RecipientNotAccount,
            format!("{what} names recipient {to:#x}, not the account"),
        ))
    }
}

fn decode_pool(policy: &Policy, tx: &PlainTx, account: Address) -> Result<Trade, Refusal> {
    let pool = tx.to;
    let p = &policy.pools[&pool];
    let at = format!("pool {pool:#x}");
    let sel = selector(&tx.input)?;
    let label = pool_label(policy, &pool);
    if sel == IUniswapV3Pool::swapCall::SELECTOR {
        allowed(&p.functions, "swap", &at)?;
        let c: IUniswapV3Pool::swapCall = decode(&tx.input)?;
        recipient(policy, c.recipient, account, "pool.swap")?;
        if !c.amountSpecified.is_positive() {
            return Err(refuse(
                Reason::UnboundedAmount,
                "pool.swap with exact output has no bound on what it takes",
            ));
        }
        let amount = c.amountSpecified.into_raw();
        let tin = if c.zeroForOne { p.token0 } else { p.token1 };
        Ok(Trade {
            action: "pool.swap".into(),
            pool: Some(pool),
            outflows: vec![Movement {
                token: tin,
                amount,
                counterparty: pool,
            }],
            inflows: vec![],
            arguments: vec![
                format!("pool = {pool:#x} ({label})"),
                format!("recipient = {:#x} (the account)", c.recipient),
                format!("zeroForOne = {}", c.zeroForOne),
                format!("amountSpecified = {}", show_amount(policy, &tin, amount)),
            ],
        })
    } else if sel == IUniswapV3Pool::mintCall::SELECTOR {
        allowed(&p.functions, "mint", &at)?;
        let c: IUniswapV3Pool::mintCall = decode(&tx.input)?;
        recipient(policy, c.recipient, account, "pool.mint")?;
        let (lower, upper) = (
            i32::try_from(c.tickLower).unwrap_or(i32::MIN),
            i32::try_from(c.tickUpper).unwrap_or(i32::MIN),
        );
        let (max0, max1) = mint_bounds(lower, upper, c.amount)?;
        Ok(Trade {
            action: "pool.mint".into(),
            pool: Some(pool),
            outflows: vec![
                Movement {
                    token: p.token0,
                    amount: max0,
                    counterparty: pool,
                },
                Movement {
                    token: p.token1,
                    amount: max1,
                    counterparty: pool,
                },
            ],
            inflows: vec![],
            arguments: vec![
                format!("pool = {pool:#x} ({label})"),
                format!("tickLower = {lower}"),
                format!("tickUpper = {upper}"),
                format!("liquidity = {}", c.amount),
            ],
        })
    } else if sel == IUniswapV3Pool::collectCall::SELECTOR {
        allowed(&p.functions, "collect", &at)?;
        let c: IUniswapV3Pool::collectCall = decode(&tx.input)?;
        recipient(policy, c.recipient, account, "pool.collect")?;
        Ok(Trade {
            action: "pool.collect".into(),
            pool: Some(pool),
            outflows: vec![],
            inflows: vec![],
            arguments: vec![
                format!("pool = {pool:#x} ({label})"),
                format!("recipient = {:#x}", c.recipient),
            ],
        })
    } else if sel == IUniswapV3Pool::burnCall::SELECTOR {
        allowed(&p.functions, "burn", &at)?;
        let c: IUniswapV3Pool::burnCall = decode(&tx.input)?;
        Ok(Trade {
            action: "pool.burn".into(),
            pool: Some(pool),
            outflows: vec![],
            inflows: vec![],
            arguments: vec![
                format!("pool = {pool:#x} ({label})"),
                format!("liquidity = {}", c.amount),
            ],
        })
    } else {
        Err(refuse(
            Reason::SelectorNotAllowed,
            format!("selector 0x{} is not allowed on {at}", hex::encode(sel)),
        ))
    }
}

/// Whether `tx` is a cancel for `account`: value 0, no calldata, to itself.
pub fn is_cancel(tx: &PlainTx, account: Address) -> bool {
    tx.to == account && tx.value.is_zero() && tx.input.is_empty()
}

/// Decodes `tx` and judges it against `policy` for `account`, everything except the rolling
/// daily cap (which needs the store: [`check_daily`]) and nonces (the store's too).
/// Deny by default: anything not matched below is refused.
pub fn evaluate(policy: &Policy, tx: &PlainTx, account: Address) -> Result<Evaluation, Refusal> {
    let acc = policy.accounts.get(&account).ok_or_else(|| {
        refuse(
            Reason::UnknownAccount,
            format!("{account:#x} is not an account of the policy"),
        )
    })?;
    if !policy.chain_ids.contains(&tx.chain_id) {
        return Err(refuse(
            Reason::ChainNotAllowed,
            format!("chain id {} is not allowed", tx.chain_id),
        ));
    }
    if tx.max_fee_per_gas > policy.max_fee_per_gas {
        return Err(refuse(
            Reason::FeeTooHigh,
            format!(
                "max_fee_per_gas {} over the maximum {}",
                tx.max_fee_per_gas, policy.max_fee_per_gas
            ),
        ));
    }
    if tx.max_priority_fee_per_gas > policy.max_priority_fee_per_gas {
        return Err(refuse(
            Reason::FeeTooHigh,
            format!(
                "max_priority_fee_per_gas {} over the maximum {}",
                tx.max_priority_fee_per_gas, policy.max_priority_fee_per_gas
            ),
        ));
    }
    if tx.gas_limit > policy.max_gas_limit {
        return Err(refuse(
            Reason::GasLimitTooHigh,
            format!(
                "gas_limit {} over the maximum {}",
                tx.gas_limit, policy.max_gas_limit
            ),
        ));
    }
    let cancel = is_cancel(tx, account);
    let trade = if tx.to == account {
        if !tx.input.is_empty() {
            return Err(refuse(
                Reason::SelectorNotAllowed,
                "a call to the account itself carries no calldata",
            ));
        }
        Trade {
            action: if cancel {
                "cancel".into()
            } else {
                "self_transfer".into()
            },
            pool: None,
            outflows: vec![],
            inflows: vec![],
            arguments: vec![format!("value = {} wei to the account itself", tx.value)],
        }
    } else {
        let kind = if policy.executors.contains_key(&tx.to) {
            0
        } else if policy.tokens.contains_key(&tx.to) {
            1
        } else if policy.pools.contains_key(&tx.to) {
            2
        } else {
            return Err(refuse(
                Reason::DestinationNotAllowed,
                format!("{:#x} is not a destination of the policy", tx.to),
            ));
        };
        if !tx.value.is_zero() {
            return Err(refuse(
                Reason::ValueNotAllowed,
                format!("{} wei sent with a contract call", tx.value),
            ));
        }
        match kind {
            0 => decode_executor(policy, tx, account)?,
            1 => decode_token(policy, tx, account)?,
            _ => decode_pool(policy, tx, account)?,
        }
    };

    let mut approvals_required = 0;
    let mut why = Vec::new();
    if acc.mode == Mode::Staged {
        approvals_required = 1;
        why.push("the account is staged".to_owned());
    }
    for m in &trade.outflows {
        let token = policy.tokens.get(&m.token).ok_or_else(|| {
            refuse(
                Reason::DestinationNotAllowed,
                format!("token {:#x} is not in the policy", m.token),
            )
        })?;
        if m.amount > token.max_per_tx {
            return Err(refuse(
                Reason::CapPerTx,
                format!(
                    "{} over the per-transaction cap {}",
                    show_amount(policy, &m.token, m.amount),
                    show_amount(policy, &m.token, token.max_per_tx)
                ),
            ));
        }
        let t = acc
            .thresholds
            .get(&m.token)
            .copied()
            .unwrap_or(crate::policy::Thresholds {
                approval: U256::ZERO,
                two_approvals: U256::ZERO,
            });
        if m.amount > t.two_approvals {
            approvals_required = 2;
            why.push(format!(
                "{} over the two-approver threshold {}",
                show_amount(policy, &m.token, m.amount),
                show_amount(policy, &m.token, t.two_approvals)
            ));
        } else if m.amount > t.approval {
            approvals_required = approvals_required.max(1);
            why.push(format!(
                "{} over the approval threshold {}",
                show_amount(policy, &m.token, m.amount),
                show_amount(policy, &m.token, t.approval)
            ));
        }
    }
    Ok(Evaluation {
        trade,
        key_index: acc.key_index,
        approvals_required,
        why: why.join("; "),
        cancel,
    })
}

/// The rolling 24-hour cap: `spent` is what the account moved out per token in the last
/// 24 hours (signed transactions only).
pub fn check_daily(
    policy: &Policy,
    eval: &Evaluation,
    spent: &BTreeMap<Address, U256>,
) -> Result<(), Refusal> {
    for m in &eval.trade.outflows {
        let Some(token) = policy.tokens.get(&m.token) else {
            continue;
        };
        let before = spent.get(&m.token).copied().unwrap_or(U256::ZERO);
        let after = before.saturating_add(m.amount);
        if after > token.max_per_day {
            return Err(refuse(
                Reason::CapDaily,
                format!(
                    "{} after {} in the last 24 h is over the daily cap {}",
                    show_amount(policy, &m.token, m.amount),
                    show_amount(policy, &m.token, before),
                    show_amount(policy, &m.token, token.max_per_day)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(format_units(U256::from(1_500_000u64), 6), "1.5");
        assert_eq!(format_units(U256::from(5u64), 3), "0.005");
        assert_eq!(format_units(U256::from(3000u64), 4), "0.3");
        assert_eq!(format_units(U256::from(7u64), 0), "7");
        assert_eq!(
            format_units(U256::from(10u64).pow(U256::from(18u64)), 18),
            "1"
        );
    }

    #[test]
    fn mint_bounds_match_the_pool_math() {
        // Full range at spacing 60, liquidity 1e18: each side alone is about L * 2^96-ish
        // bounded; check against the SDK's mint at the extreme prices.
        let (lo, hi) = (-887_220, 887_220);
        let (b0, b1) = mint_bounds(lo, hi, 10u128.pow(18)).unwrap();
        let a = math::get_sqrt_ratio_at_tick(lo).unwrap();
        let b = math::get_sqrt_ratio_at_tick(hi).unwrap();
        let below = math::liquidity_amounts::amounts_for_mint(a, a, b, 10u128.pow(18)).unwrap();
        let above = math::liquidity_amounts::amounts_for_mint(b, a, b, 10u128.pow(18)).unwrap();
        assert_eq!(b0, below.0);
        assert_eq!(b1, above.1);
        // And any price inside costs no more of either.
        let mid = math::get_sqrt_ratio_at_tick(1000).unwrap();
        let inside = math::liquidity_amounts::amounts_for_mint(mid, a, b, 10u128.pow(18)).unwrap();
        assert!(inside.0 <= b0 && inside.1 <= b1);
        assert!(mint_bounds(10, 10, 1).is_err());
    }
}
