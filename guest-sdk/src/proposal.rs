//! Builders for proposals, taking [`Amount`]s so an author never formats a wire string by
//! hand (and so never writes "1.5" or "1e18" into one).

use crate::amount::Amount;
use crate::types::{Action, Proposal, RangeLiquidity, SwapAction};

/// The host refuses anything above 100%.
pub const MAX_SLIPPAGE_BPS: u32 = 10_000;

/// Why a builder refused to build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// The slippage (bps) was over [`MAX_SLIPPAGE_BPS`].
    #[error("max slippage {0} bps exceeds {MAX_SLIPPAGE_BPS}")]
    SlippageOutOfRange(u32),
    /// A liquidity range with `lower >= upper`; ticks as given.
    #[error("tick range [{lower}, {upper}) is empty or inverted")]
    EmptyRange {
        /// Lower tick (inclusive).
        lower: i32,
        /// Upper tick (exclusive).
        upper: i32,
    },
    /// A zero swap input or liquidity; names which (`"swap"` or `"liquidity"`).
    #[error("a {0} proposal needs a non-zero amount")]
    ZeroAmount(&'static str),
}

impl From<ProposalError> for String {
    fn from(e: ProposalError) -> Self {
        e.to_string()
    }
}

/// A proposal under construction; start from [`swap`], [`add_liquidity`] or
/// [`remove_liquidity`].
#[derive(Debug, Clone)]
#[must_use = "a proposal builder does nothing until `build` is called"]
pub struct ProposalBuilder {
    action: Action,
    expected_amount0: Amount,
    expected_amount1: Amount,
    max_slippage_bps: u32,
    reason: String,
}

/// Swap `amount_in` of token0 (`zero_for_one`) or token1 on `pool`.
pub fn swap(pool: &str, zero_for_one: bool, amount_in: Amount) -> ProposalBuilder {
    ProposalBuilder::new(Action::Swap(SwapAction {
        pool: pool.to_owned(),
        zero_for_one,
        amount_in: amount_in.to_wire(),
        sqrt_price_limit_x96: None,
    }))
}

/// Add `liquidity` on `[tick_lower, tick_upper)` of `pool`.
pub fn add_liquidity(
    pool: &str,
    tick_lower: i32,
    tick_upper: i32,
    liquidity: Amount,
) -> ProposalBuilder {
    ProposalBuilder::new(Action::AddLiquidity(range(
        pool, tick_lower, tick_upper, liquidity,
    )))
}

/// Remove `liquidity` from `[tick_lower, tick_upper)` of `pool`.
pub fn remove_liquidity(
    pool: &str,
    tick_lower: i32,
    tick_upper: i32,
    liquidity: Amount,
) -> ProposalBuilder {
    ProposalBuilder::new(Action::RemoveLiquidity(range(
        pool, tick_lower, tick_upper, liquidity,
    )))
}

fn range(pool: &str, tick_lower: i32, tick_upper: i32, liquidity: Amount) -> RangeLiquidity {
    RangeLiquidity {
        pool: pool.to_owned(),
        tick_lower,
        tick_upper,
        liquidity: liquidity.to_wire(),
    }
}

impl ProposalBuilder {
    fn new(action: Action) -> Self {
        ProposalBuilder {
            action,
            expected_amount0: Amount::ZERO,
            expected_amount1: Amount::ZERO,
            max_slippage_bps: 0,
            reason: String::new(),
        }
    }

    /// Magnitudes of token0 and token1 the strategy expects to move (see the WIT
    /// `proposal` record for which direction each one goes).
    pub fn expect(mut self, amount0: Amount, amount1: Amount) -> Self {
        self.expected_amount0 = amount0;
        self.expected_amount1 = amount1;
        self
    }

    /// How far the simulated outcome may fall short of the expectation, in basis points.
    pub fn max_slippage_bps(mut self, bps: u32) -> Self {
        self.max_slippage_bps = bps;
        self
    }

    /// A price limit for a swap (Q64.96); ignored for liquidity actions.
    pub fn sqrt_price_limit(mut self, limit_x96: Amount) -> Self {
        if let Action::Swap(s) = &mut self.action {
            s.sqrt_price_limit_x96 = Some(limit_x96.to_wire());
        }
        self
    }

    /// Why the strategy wants this; shown to the operator who approves it.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Checks what the host would refuse anyway, so the author hears about it first.
    pub fn build(self) -> Result<Proposal, ProposalError> {
        if self.max_slippage_bps > MAX_SLIPPAGE_BPS {
            return Err(ProposalError::SlippageOutOfRange(self.max_slippage_bps));
        }
        match &self.action {
            Action::Swap(s) if s.amount_in == "0" => return Err(ProposalError::ZeroAmount("swap")),
            Action::AddLiquidity(r) | Action::RemoveLiquidity(r) => {
                if r.tick_lower >= r.tick_upper {
                    return Err(ProposalError::EmptyRange {
                        lower: r.tick_lower,
                        upper: r.tick_upper,
                    });
                }
                if r.liquidity == "0" {
                    return Err(ProposalError::ZeroAmount("liquidity"));
                }
            }
            Action::Swap(_) => {}
        }
        Ok(Proposal {
            action: self.action,
            expected_amount0: self.expected_amount0.to_wire(),
            expected_amount1: self.expected_amount1.to_wire(),
            max_slippage_bps: self.max_slippage_bps,
            reason: self.reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8";

    #[test]
    fn swap_builds_wire_strings() {
        let p = swap(POOL, true, Amount::from(1_000u32))
            .expect(Amount::from(1_000u32), Amount::from(997u32))
            .max_slippage_bps(50)
            .sqrt_price_limit(Amount::from(4_295_128_740u64))
            .reason("trend")
            .build()
            .unwrap();
        assert_eq!(p.expected_amount0, "1000");
        assert_eq!(p.expected_amount1, "997");
        assert_eq!(p.max_slippage_bps, 50);
        assert_eq!(p.reason, "trend");
        match p.action {
            Action::Swap(s) => {
                assert_eq!(s.amount_in, "1000");
                assert!(s.zero_for_one);
                assert_eq!(s.sqrt_price_limit_x96.as_deref(), Some("4295128740"));
            }
            other => panic!("expected a swap, got {other:?}"),
        }
    }

    #[test]
    fn refuses_what_the_host_would() {
        assert_eq!(
            swap(POOL, true, Amount::from(1u8))
                .max_slippage_bps(10_001)
                .build()
                .unwrap_err(),
            ProposalError::SlippageOutOfRange(10_001)
        );
        assert_eq!(
            swap(POOL, true, Amount::ZERO).build().unwrap_err(),
            ProposalError::ZeroAmount("swap")
        );
        assert_eq!(
            add_liquidity(POOL, 60, 60, Amount::from(1u8))
                .build()
                .unwrap_err(),
            ProposalError::EmptyRange {
                lower: 60,
                upper: 60
            }
        );
        assert_eq!(
            remove_liquidity(POOL, -60, 60, Amount::ZERO)
                .build()
                .unwrap_err(),
            ProposalError::ZeroAmount("liquidity")
        );
    }

    #[test]
    fn liquidity_actions_carry_the_range() {
        let p = remove_liquidity(POOL, -120, 60, Amount::from(5u8))
            .build()
            .unwrap();
        assert_eq!(
            p.action,
            Action::RemoveLiquidity(RangeLiquidity {
                pool: POOL.to_owned(),
                tick_lower: -120,
                tick_upper: 60,
                liquidity: "5".to_owned(),
            })
        );
    }
}
