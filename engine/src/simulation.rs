//! Exact simulation: the engine's view of the chain, and the limits a simulated outcome
//! must meet.
//!
//! The chain itself is [`crate::chain::ChainState`] (revm running the Uniswap V3 bytecode).
//! Simulation is synchronous work, so the engine runs it on the blocking pool; only a batch
//! of a few simulations on a chain that never waits on a node runs on the submitting task,
//! where a hand-off to another thread would cost more than the simulation.

use ruint::aliases::U512;
use stratbox_proto::U256;
use stratbox_risk::{ReasonCode, Rejection};

use crate::proposal::{Address, CheckedProposal, TradeAction};

/// A pool as the engine values positions against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolInfo {
    /// The lower-addressed token.
    pub token0: Address,
    /// The other token: the quote asset positions are valued in.
    pub token1: Address,
    /// Hundredths of a basis point.
    pub fee: u32,
    /// Positions' ticks must be multiples of it.
    pub tick_spacing: i32,
    /// Q64.96 sqrt price of token0 in token1.
    pub sqrt_price_x96: U256,
    /// Current tick.
    pub tick: i32,
    /// In-range liquidity.
    pub liquidity: u128,
}

/// What one simulated action did. Amounts are magnitudes: for a swap, what went in and
/// came out (`token0_in` says which way); for adding liquidity, what was paid in; for
/// removing, what came out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimOutcome {
    /// False on a revert or halt (see `revert_reason`).
    pub success: bool,
    /// Decoded revert reason; empty on success.
    pub revert_reason: String,
    /// Token0 magnitude moved, raw units.
    pub amount0: U256,
    /// Token1 magnitude moved, raw units.
    pub amount1: U256,
    /// For a swap, true when token0 went in.
    pub token0_in: bool,
    /// Gas the transaction used.
    pub gas_used: u64,
    /// What each unit of gas was paid at, wei (the network's price when simulated).
    pub gas_price: U256,
}

/// Why a proposal could not be simulated at all (a revert is an outcome, not this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The proposal's pool is not on the engine's chain.
    #[error("unknown pool {0}")]
    UnknownPool(String),
    /// The simulator failed (e.g. a fork's node); the text is its error.
    #[error("simulator: {0}")]
    Backend(String),
}

/// `a * b` exactly (no U256 product can overflow 512 bits).
fn mul(a: U256, b: u64) -> U512 {
    U512::from(a) * U512::from(b)
}

/// Checks a simulated outcome against the proposal's own limits.
///
/// Exact integer comparisons, no rounding: a swap is refused when
/// `out * 10000 < expected_out * (10000 - bps)`, adding liquidity when
/// `in * 10000 > expected_in * (10000 + bps)` for either token, removing liquidity when
/// `out * 10000 < expected_out * (10000 - bps)` for either token.
pub fn check_outcome(p: &CheckedProposal, o: &SimOutcome) -> Result<(), Rejection> {
    if !o.success {
        let reason = if o.revert_reason.is_empty() {
            "no reason"
        } else {
            o.revert_reason.as_str()
        };
        return Err(Rejection::new(
            ReasonCode::SimReverted,
            format!("simulated transaction reverted: {reason}"),
        ));
    }
    let bps = u64::from(p.max_slippage_bps);
    let below = 10_000u64.saturating_sub(bps);
    let above = 10_000u64 + bps;
    match p.action {
        TradeAction::Swap { zero_for_one, .. } => {
            let (out, expected) = if zero_for_one {
                (o.amount1, p.expected_amount1)
            } else {
                (o.amount0, p.expected_amount0)
            };
            if o.token0_in != zero_for_one {
                return Err(Rejection::new(
                    ReasonCode::SimReverted,
                    "simulated swap went the other way",
                ));
            }
            if mul(out, 10_000) < mul(expected, below) {
                return Err(Rejection::new(
                    ReasonCode::SimMinOut,
                    format!("simulated out {out} is below {expected} less {bps} bps"),
                ));
            }
        }
        TradeAction::AddLiquidity(_) => {
            for (paid, expected) in [
                (o.amount0, p.expected_amount0),
                (o.amount1, p.expected_amount1),
            ] {
                if mul(paid, 10_000) > mul(expected, above) {
                    return Err(Rejection::new(
                        ReasonCode::SimMaxIn,
                        format!("simulated in {paid} is above {expected} plus {bps} bps"),
                    ));
                }
            }
        }
        TradeAction::RemoveLiquidity(_) => {
            for (got, expected) in [
                (o.amount0, p.expected_amount0),
                (o.amount1, p.expected_amount1),
            ] {
                if mul(got, 10_000) < mul(expected, below) {
                    return Err(Rejection::new(
                        ReasonCode::SimMinOut,
                        format!("simulated out {got} is below {expected} less {bps} bps"),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::Range;

    fn proposal(action: TradeAction, e0: u64, e1: u64, bps: u32) -> CheckedProposal {
        CheckedProposal {
            strategy: "s".into(),
            strategy_version: String::new(),
            instance_id: String::new(),
            account: "a".into(),
            event_id: String::new(),
            index: 0,
            last_sync_block: 0,
            action,
            expected_amount0: U256::from(e0),
            expected_amount1: U256::from(e1),
            max_slippage_bps: bps,
        }
    }

    fn outcome(a0: u64, a1: u64, token0_in: bool) -> SimOutcome {
        SimOutcome {
            success: true,
            amount0: U256::from(a0),
            amount1: U256::from(a1),
            token0_in,
            ..SimOutcome::default()
        }
    }

    const SWAP: TradeAction = TradeAction::Swap {
        pool: [0; 20],
        zero_for_one: true,
        amount_in: U256::from_limbs([1000, 0, 0, 0]),
        sqrt_price_limit_x96: None,
    };
    const RANGE: Range = Range {
        pool: [0; 20],
        tick_lower: -60,
        tick_upper: 60,
        liquidity: 1,
    };

    #[test]
    fn swap_min_out_is_exact_at_the_boundary() {
        let p = proposal(SWAP, 1000, 1000, 100);
        assert!(
            check_outcome(&p, &outcome(1000, 990, true)).is_ok(),
            "exactly 1% short passes"
        );
        let r = check_outcome(&p, &outcome(1000, 989, true)).unwrap_err();
        assert_eq!(r.code, ReasonCode::SimMinOut);
        assert_eq!(
            check_outcome(&p, &outcome(1000, 2000, false))
                .unwrap_err()
                .code,
            ReasonCode::SimReverted
        );
    }

    #[test]
    fn liquidity_limits() {
        let add = proposal(TradeAction::AddLiquidity(RANGE), 1000, 1000, 50);
        assert!(check_outcome(&add, &outcome(1005, 1000, true)).is_ok());
        assert_eq!(
            check_outcome(&add, &outcome(1006, 1000, true))
                .unwrap_err()
                .code,
            ReasonCode::SimMaxIn
        );
        let rm = proposal(TradeAction::RemoveLiquidity(RANGE), 1000, 1000, 0);
        assert!(check_outcome(&rm, &outcome(1000, 1000, false)).is_ok());
        assert_eq!(
            check_outcome(&rm, &outcome(1000, 999, false))
                .unwrap_err()
                .code,
            ReasonCode::SimMinOut
        );
        let reverted = SimOutcome {
            success: false,
            ..outcome(0, 0, false)
        };
        assert_eq!(
            check_outcome(&rm, &reverted).unwrap_err().code,
            ReasonCode::SimReverted
        );
        // Huge expectations cannot overflow the comparison.
        let mut huge = proposal(SWAP, 0, 0, 10_000);
        huge.expected_amount1 = U256::MAX;
        assert!(
            check_outcome(&huge, &outcome(1, 0, true)).is_ok(),
            "10000 bps accepts any out"
        );
    }
}
