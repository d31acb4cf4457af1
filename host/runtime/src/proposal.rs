//! What a strategy proposes, as the rest of stratbox gets it: parsed, range-checked, typed.
//!
//! Nothing a guest returns leaves the host as a string to be parsed later: amounts become
//! U256 here, under the strict rule of the WIT contract (digits only, no sign, no leading
//! zeros except "0", at most 256 bits), so a later stage can never disagree with this one
//! about what a proposal says.

use crate::lift::{RawAction, RawProposal, RawRange};
use ruint::aliases::U256;
use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Uniswap V3's tick bounds.
pub const MIN_TICK: i32 = -887_272;
/// Upper tick bound; a range past either bound is refused.
pub const MAX_TICK: i32 = 887_272;
/// 100%: the largest slippage a proposal may allow.
pub const MAX_SLIPPAGE_BPS: u32 = 10_000;

/// A 20-byte EVM address. Shown as lowercase `0x` hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = String;

    /// `0x` followed by exactly 40 hex digits, any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s
            .strip_prefix("0x")
            .ok_or_else(|| format!("address {:?} does not start with 0x", clip(s)))?;
        if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("address {:?} is not 40 hex digits", clip(s)));
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(digits, &mut out).map_err(|e| format!("address: {e}"))?;
        Ok(Address(out))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses an amount under the contract's rule (`stratbox-amount`, the parser every zone
/// uses). Errors name the offending text, clipped.
pub fn parse_amount(s: &str) -> Result<U256, String> {
    stratbox_amount::parse_amount(s).map_err(|e| format!("amount {:?}: {e}", clip(s)))
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

fn ser_u256<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_opt_u256<S: Serializer>(v: &Option<U256>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// Liquidity on `[tick_lower, tick_upper)` of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RangeLiquidity {
    /// The pool.
    pub pool: Address,
    /// Lower tick (inclusive), within `MIN_TICK..MAX_TICK`.
    pub tick_lower: i32,
    /// Upper tick (exclusive), above `tick_lower`.
    pub tick_upper: i32,
    /// Liquidity units; nonzero.
    #[serde(serialize_with = "ser_u256")]
    pub liquidity: U256,
}

/// What a proposal asks the engine to do; serialized kebab-case with a `type` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Action {
    /// Exact-input swap.
    Swap {
        /// The pool.
        pool: Address,
        /// True to pay token0 for token1.
        zero_for_one: bool,
        /// Raw units of the input token; nonzero.
        #[serde(serialize_with = "ser_u256")]
        amount_in: U256,
        /// `None`: no price limit beyond the pool's bounds.
        #[serde(serialize_with = "ser_opt_u256")]
        sqrt_price_limit_x96: Option<U256>,
    },
    /// Provide liquidity.
    AddLiquidity(RangeLiquidity),
    /// Withdraw liquidity.
    RemoveLiquidity(RangeLiquidity),
}

impl Action {
    /// The pool acted on, whatever the kind of action.
    pub fn pool(&self) -> Address {
        match self {
            Action::Swap { pool, .. } => *pool,
            Action::AddLiquidity(r) | Action::RemoveLiquidity(r) => r.pool,
        }
    }
}

/// A proposal that passed every host-side check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatedProposal {
    /// What to do.
    pub action: Action,
    /// The token0 magnitude the strategy expects to move (raw units); slippage is measured against
    /// it.
    #[serde(serialize_with = "ser_u256")]
    pub expected_amount0: U256,
    /// As `expected_amount0`, for token1.
    #[serde(serialize_with = "ser_u256")]
    pub expected_amount1: U256,
    /// 0..=10000.
    pub max_slippage_bps: u16,
    /// The strategy's explanation, kept for audit; bounded by `max_string_bytes`.
    pub reason: String,
}

fn range(raw: RawRange, what: &str) -> Result<RangeLiquidity, String> {
    let pool: Address = raw.pool.0.parse()?;
    if raw.tick_lower < MIN_TICK || raw.tick_upper > MAX_TICK {
        return Err(format!(
            "{what}: ticks [{}, {}) outside [{MIN_TICK}, {MAX_TICK}]",
            raw.tick_lower, raw.tick_upper
        ));
    }
    if raw.tick_lower >= raw.tick_upper {
        return Err(format!(
            "{what}: tick-lower {} is not below tick-upper {}",
            raw.tick_lower, raw.tick_upper
        ));
    }
    let liquidity = parse_amount(&raw.liquidity.0).map_err(|e| format!("{what} liquidity: {e}"))?;
    if liquidity.is_zero() {
        return Err(format!("{what}: zero liquidity"));
    }
    Ok(RangeLiquidity {
        pool,
        tick_lower: raw.tick_lower,
        tick_upper: raw.tick_upper,
        liquidity,
    })
}

/// Checks one proposal. The error says which field of which proposal is wrong.
pub(crate) fn validate(raw: RawProposal, index: usize) -> Result<ValidatedProposal, String> {
    let at = |e: String| format!("proposal {index}: {e}");
    if raw.max_slippage_bps > MAX_SLIPPAGE_BPS {
        return Err(at(format!(
            "max-slippage-bps {} is over {MAX_SLIPPAGE_BPS}",
            raw.max_slippage_bps
        )));
    }
    let action = match raw.action {
        RawAction::Swap(s) => {
            let pool: Address = s.pool.0.parse().map_err(at)?;
            let amount_in =
                parse_amount(&s.amount_in.0).map_err(|e| at(format!("swap amount-in: {e}")))?;
            if amount_in.is_zero() {
                return Err(at("swap of zero amount-in".into()));
            }
            let sqrt_price_limit_x96 = match s.sqrt_price_limit_x96 {
                Some(limit) => {
                    let v = parse_amount(&limit.0)
                        .map_err(|e| at(format!("swap sqrt-price-limit-x96: {e}")))?;
                    if v.is_zero() || v.bit_len() > 160 {
                        return Err(at("swap sqrt-price-limit-x96 outside (0, 2^160)".into()));
                    }
                    Some(v)
                }
                None => None,
            };
            Action::Swap {
                pool,
                zero_for_one: s.zero_for_one,
                amount_in,
                sqrt_price_limit_x96,
            }
        }
        RawAction::AddLiquidity(r) => Action::AddLiquidity(range(r, "add-liquidity").map_err(at)?),
        RawAction::RemoveLiquidity(r) => {
            Action::RemoveLiquidity(range(r, "remove-liquidity").map_err(at)?)
        }
    };
    let expected_amount0 =
        parse_amount(&raw.expected_amount0.0).map_err(|e| at(format!("expected-amount0: {e}")))?;
    let expected_amount1 =
        parse_amount(&raw.expected_amount1.0).map_err(|e| at(format!("expected-amount1: {e}")))?;
    Ok(ValidatedProposal {
        action,
        expected_amount0,
        expected_amount1,
        // Checked above to be at most 10,000.
        max_slippage_bps: raw.max_slippage_bps as u16,
        reason: raw.reason.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_strictly() {
        assert_eq!(parse_amount("0"), Ok(U256::ZERO));
        assert_eq!(parse_amount("1000"), Ok(U256::from(1000u64)));
        let max = U256::MAX.to_string();
        assert_eq!(parse_amount(&max), Ok(U256::MAX));
        for bad in ["", "1.5", "-1", "+1", "01", "1e18", " 1", "0x10", "１"] {
            assert!(parse_amount(bad).is_err(), "{bad:?} must be refused");
        }
        // 2^256 is one past the max.
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(parse_amount(over).is_err());
    }

    #[test]
    fn addresses_parse_strictly() {
        let a: Address = "0x00000000000000000000000000000000000000Ab"
            .parse()
            .expect("valid");
        assert_eq!(a.to_string(), "0x00000000000000000000000000000000000000ab");
        for bad in [
            "",
            "0x",
            "00000000000000000000000000000000000000ab",
            "0x123",
            "0xzz00000000000000000000000000000000000000",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} must be refused");
        }
    }
}
