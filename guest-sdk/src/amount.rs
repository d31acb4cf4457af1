//! `Amount`: a 256-bit unsigned integer of raw token units, and its strict wire form.
//!
//! Every amount crossing the WIT or protobuf boundary is a base-10 string. The parser is
//! strict on purpose: a sign, a decimal point or an exponent means the producer was thinking
//! in floats, and accepting "1.5" or "1e18" by rounding would turn a bug upstream into a
//! wrong trade downstream. So anything but canonical digits is refused, with the reason.

use core::fmt;
use core::str::FromStr;

/// The 256-bit unsigned integer [`Amount`] wraps (ruint's, same as alloy's `U256`).
pub use ruint::aliases::U256;

/// A non-negative amount of raw token units (wei), exactly as the chain stores it.
///
/// The inner type is `ruint::Uint<256, 4>`, the same type `alloy-primitives` calls `U256`,
/// so the engine converts without copying limbs around.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(U256);

/// Why a string is not a wire-form amount: the reasons of `stratbox-amount`, the parser
/// the host and the engine use too.
pub use stratbox_amount::AmountParseError;

/// A checked operation on amounts left the 256-bit range (or divided by zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// A result above 2^256 - 1.
    #[error("amount arithmetic overflowed 256 bits")]
    Overflow,
    /// A subtraction that would go below zero.
    #[error("amount arithmetic underflowed zero")]
    Underflow,
    /// Returned by `checked_div` when the divisor is zero.
    #[error("amount divided by zero")]
    DivisionByZero,
    /// Basis points over 10000 (100%); carries the value given.
    #[error("basis points {0} exceed 10000")]
    BpsOutOfRange(u32),
}

impl From<AmountError> for String {
    fn from(e: AmountError) -> Self {
        e.to_string()
    }
}

impl Amount {
    /// Zero raw units.
    pub const ZERO: Amount = Amount(U256::ZERO);
    /// 2^256 - 1 raw units.
    pub const MAX: Amount = Amount(U256::MAX);

    /// Wraps a raw-unit value; any `U256` is valid.
    pub const fn from_u256(value: U256) -> Self {
        Amount(value)
    }

    /// The raw-unit value.
    pub const fn into_u256(self) -> U256 {
        self.0
    }

    /// Borrows the raw-unit value.
    pub const fn as_u256(&self) -> &U256 {
        &self.0
    }

    /// True for zero raw units.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Parses the wire form; same as `str::parse`, under a name that reads well in chains.
    pub fn parse_wire(s: &str) -> Result<Self, AmountParseError> {
        s.parse()
    }

    /// The wire form, for a WIT or protobuf field.
    pub fn to_wire(&self) -> String {
        self.0.to_string()
    }

    /// Sum; `Overflow` past 2^256 - 1.
    pub fn checked_add(self, rhs: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_add(rhs.0)
            .map(Amount)
            .ok_or(AmountError::Overflow)
    }

    /// Difference; `Underflow` if `rhs` is larger.
    pub fn checked_sub(self, rhs: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_sub(rhs.0)
            .map(Amount)
            .ok_or(AmountError::Underflow)
    }

    /// Product; `Overflow` past 2^256 - 1.
    pub fn checked_mul(self, rhs: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_mul(rhs.0)
            .map(Amount)
            .ok_or(AmountError::Overflow)
    }

    /// Quotient rounded down; `DivisionByZero` if `rhs` is zero.
    pub fn checked_div(self, rhs: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_div(rhs.0)
            .map(Amount)
            .ok_or(AmountError::DivisionByZero)
    }

    /// `self * mul / div` with a 512-bit intermediate, rounded down: the product of two
    /// realistic token amounts overflows 256 bits long before the quotient does.
    pub fn mul_div(self, mul: Amount, div: Amount) -> Result<Amount, AmountError> {
        crate::math::full_math::mul_div(self.0, mul.0, div.0)
            .map(Amount)
            .map_err(|e| match e {
                crate::math::MathError::DivisionByZero => AmountError::DivisionByZero,
                _ => AmountError::Overflow,
            })
    }

    /// The amount reduced by `bps` basis points, rounded down: the least a trade may
    /// deliver under a slippage tolerance of `bps`.
    pub fn less_bps(self, bps: u32) -> Result<Amount, AmountError> {
        if bps > 10_000 {
            return Err(AmountError::BpsOutOfRange(bps));
        }
        self.mul_div(Amount::from(10_000 - bps), Amount::from(10_000u32))
    }

    /// The amount raised by `bps` basis points, rounded up: the most a trade may cost
    /// under a slippage tolerance of `bps`.
    pub fn plus_bps(self, bps: u32) -> Result<Amount, AmountError> {
        if bps > 10_000 {
            return Err(AmountError::BpsOutOfRange(bps));
        }
        crate::math::full_math::mul_div_rounding_up(
            self.0,
            U256::from(10_000 + bps),
            U256::from(10_000u32),
        )
        .map(Amount)
        .map_err(|_| AmountError::Overflow)
    }
}

impl FromStr for Amount {
    type Err = AmountParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        stratbox_amount::parse_amount(s).map(Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl From<U256> for Amount {
    fn from(value: U256) -> Self {
        Amount(value)
    }
}

impl From<Amount> for U256 {
    fn from(value: Amount) -> Self {
        value.0
    }
}

macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Amount {
            fn from(value: $t) -> Self {
                Amount(U256::from(value))
            }
        }
    )*};
}
from_unsigned!(u8, u16, u32, u64, u128);

impl TryFrom<&str> for Amount {
    type Error = AmountParseError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Amount> for String {
    fn from(value: Amount) -> Self {
        value.to_wire()
    }
}

mod serde_impl {
    use super::Amount;
    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// As a string, never a JSON number: a JSON number above 2^53 is silently rounded by
    /// most readers, which is exactly the float leak the wire form exists to prevent.
    impl Serialize for Amount {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for Amount {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct AmountVisitor;
            impl Visitor<'_> for AmountVisitor {
                type Value = Amount;
                fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    f.write_str("a base-10 string of raw units")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                    v.parse().map_err(E::custom)
                }
            }
            deserializer.deserialize_str(AmountVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(s: &str) -> AmountParseError {
        match s.parse::<Amount>() {
            Ok(a) => panic!("{s:?} was accepted as {a}"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_canonical_forms() {
        assert_eq!("0".parse::<Amount>(), Ok(Amount::ZERO));
        assert_eq!("1".parse::<Amount>(), Ok(Amount::from(1u8)));
        assert_eq!(
            "1000000000000000000".parse::<Amount>(),
            Ok(Amount::from(1_000_000_000_000_000_000u64))
        );
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(max.parse::<Amount>(), Ok(Amount::MAX));
        assert_eq!(Amount::MAX.to_string(), max);
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(refused(""), AmountParseError::Empty);
    }

    #[test]
    fn refuses_signs() {
        assert_eq!(refused("-1"), AmountParseError::Sign { sign: '-' });
        assert_eq!(refused("+1"), AmountParseError::Sign { sign: '+' });
        assert_eq!(refused("-0"), AmountParseError::Sign { sign: '-' });
        assert_eq!(refused("1-2"), AmountParseError::Sign { sign: '-' });
    }

    #[test]
    fn refuses_whitespace() {
        assert_eq!(refused(" 1"), AmountParseError::Whitespace { index: 0 });
        assert_eq!(refused("1 "), AmountParseError::Whitespace { index: 1 });
        assert_eq!(refused("1\n"), AmountParseError::Whitespace { index: 1 });
        assert_eq!(
            refused("1\u{a0}2"),
            AmountParseError::Whitespace { index: 1 }
        );
    }

    #[test]
    fn refuses_decimal_point() {
        assert_eq!(refused("1.5"), AmountParseError::DecimalPoint { index: 1 });
        assert_eq!(refused("1."), AmountParseError::DecimalPoint { index: 1 });
        assert_eq!(refused(".5"), AmountParseError::DecimalPoint { index: 0 });
        assert_eq!(refused("1.0"), AmountParseError::DecimalPoint { index: 1 });
    }

    #[test]
    fn refuses_exponent() {
        assert_eq!(
            refused("1e18"),
            AmountParseError::Exponent {
                marker: 'e',
                index: 1
            }
        );
        assert_eq!(
            refused("1E3"),
            AmountParseError::Exponent {
                marker: 'E',
                index: 1
            }
        );
    }

    #[test]
    fn refuses_other_characters() {
        assert_eq!(
            refused("0x10"),
            AmountParseError::InvalidDigit {
                found: 'x',
                index: 1
            }
        );
        assert_eq!(
            refused("1_000"),
            AmountParseError::InvalidDigit {
                found: '_',
                index: 1
            }
        );
        assert_eq!(
            refused("12a"),
            AmountParseError::InvalidDigit {
                found: 'a',
                index: 2
            }
        );
        assert_eq!(
            refused("１"),
            AmountParseError::InvalidDigit {
                found: '１',
                index: 0
            }
        );
        assert_eq!(
            refused("NaN"),
            AmountParseError::InvalidDigit {
                found: 'N',
                index: 0
            }
        );
    }

    #[test]
    fn refuses_leading_zeros() {
        assert_eq!(refused("00"), AmountParseError::LeadingZero);
        assert_eq!(refused("01"), AmountParseError::LeadingZero);
        assert_eq!(refused("0001000"), AmountParseError::LeadingZero);
    }

    #[test]
    fn refuses_overflow() {
        // 2^256 exactly: 78 digits, one past the maximum.
        let two_pow_256 =
            "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_eq!(
            refused(two_pow_256),
            AmountParseError::Overflow { bits: 256 }
        );
        assert_eq!(
            refused(&"9".repeat(79)),
            AmountParseError::Overflow { bits: 256 }
        );
        assert_eq!(
            refused(&"1".repeat(1 << 20)),
            AmountParseError::Overflow { bits: 256 }
        );
    }

    #[test]
    fn error_messages_say_what_was_wrong() {
        assert!(refused("1.5").to_string().contains("decimal point"));
        assert!(refused("-3").to_string().contains("sign"));
        assert!(refused("1e9").to_string().contains("exponent"));
        assert!(refused("007").to_string().contains("leading zero"));
    }

    #[test]
    fn checked_arithmetic() {
        let one = Amount::from(1u8);
        assert_eq!(Amount::MAX.checked_add(one), Err(AmountError::Overflow));
        assert_eq!(Amount::ZERO.checked_sub(one), Err(AmountError::Underflow));
        assert_eq!(
            one.checked_div(Amount::ZERO),
            Err(AmountError::DivisionByZero)
        );
        assert_eq!(
            Amount::MAX.checked_mul(Amount::from(2u8)),
            Err(AmountError::Overflow)
        );
        assert_eq!(
            Amount::from(7u8).checked_mul(Amount::from(6u8)),
            Ok(Amount::from(42u8))
        );
        // The 512-bit intermediate: MAX * MAX / MAX is MAX, not an overflow.
        assert_eq!(
            Amount::MAX.mul_div(Amount::MAX, Amount::MAX),
            Ok(Amount::MAX)
        );
    }

    #[test]
    fn basis_points() {
        let a = Amount::from(1_000_000u32);
        assert_eq!(a.less_bps(50), Ok(Amount::from(995_000u32)));
        assert_eq!(a.plus_bps(50), Ok(Amount::from(1_005_000u32)));
        assert_eq!(Amount::from(3u8).less_bps(1), Ok(Amount::from(2u8)));
        assert_eq!(Amount::from(3u8).plus_bps(1), Ok(Amount::from(4u8)));
        assert_eq!(a.less_bps(10_001), Err(AmountError::BpsOutOfRange(10_001)));
        assert_eq!(a.less_bps(10_000), Ok(Amount::ZERO));
    }

    #[test]
    fn serde_uses_the_wire_string() {
        let a: Amount = serde_json::from_str("\"123\"").unwrap();
        assert_eq!(a, Amount::from(123u8));
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"123\"");
        assert!(serde_json::from_str::<Amount>("123").is_err());
        assert!(serde_json::from_str::<Amount>("\"1.5\"").is_err());
    }

    fn any_u256() -> impl Strategy<Value = U256> {
        prop::array::uniform4(any::<u64>()).prop_map(U256::from_limbs)
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(v in any_u256()) {
            let a = Amount::from_u256(v);
            prop_assert_eq!(a.to_string().parse::<Amount>(), Ok(a));
        }

        #[test]
        fn small_values_match_u128(v in any::<u128>()) {
            prop_assert_eq!(Amount::from(v).to_string(), v.to_string());
            prop_assert_eq!(v.to_string().parse::<Amount>(), Ok(Amount::from(v)));
        }

        #[test]
        fn parse_then_display_is_identity_on_canonical_strings(s in "0|[1-9][0-9]{0,76}") {
            let a: Amount = s.parse().unwrap();
            prop_assert_eq!(a.to_string(), s);
        }

        #[test]
        fn leading_zero_always_refused(s in "0[0-9]{1,40}") {
            prop_assert_eq!(s.parse::<Amount>(), Err(AmountParseError::LeadingZero));
        }

        #[test]
        fn anything_with_a_non_digit_is_refused(prefix in "[0-9]{0,5}", bad in "[^0-9]", suffix in "[0-9]{0,5}") {
            let s = format!("{prefix}{bad}{suffix}");
            prop_assert!(s.parse::<Amount>().is_err());
        }
    }
}
