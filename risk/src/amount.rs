//! Amounts as they cross the configuration boundary: base-10 strings of raw units.
//!
//! The parser is strict on purpose (digits only, no sign, no leading zeros except "0", no
//! decimal point or exponent, must fit 256 bits): an amount that could be read two ways is a
//! risk limit that could be read two ways.

use std::fmt;

use ruint::aliases::U256;
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} has a character other than 0-9")]
    NotDigits(String),
    #[error("amount {0:?} has a leading zero")]
    LeadingZero(String),
    #[error("amount {0:?} does not fit 256 bits")]
    Overflow(String),
}

/// Parse a base-10 amount strictly.
pub fn parse_amount(s: &str) -> Result<U256, AmountError> {
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotDigits(s.to_owned()));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(AmountError::LeadingZero(s.to_owned()));
    }
    U256::from_str_radix(s, 10).map_err(|_| AmountError::Overflow(s.to_owned()))
}

/// serde `with` module for a `U256` written as a base-10 string.
pub mod decimal {
    use super::*;

    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = U256;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base-10 amount string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<U256, E> {
                parse_amount(s).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// serde `with` module for an `Option<U256>` written as a base-10 string (absent = `None`).
pub mod decimal_opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<U256>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<U256>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<U256>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base-10 amount string or nothing")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                super::decimal::deserialize(d).map(Some)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                parse_amount(s).map(Some).map_err(E::custom)
            }
        }
        d.deserialize_option(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        assert_eq!(parse_amount("0"), Ok(U256::ZERO));
        assert_eq!(parse_amount("1000"), Ok(U256::from(1000u64)));
        assert_eq!(parse_amount(&U256::MAX.to_string()), Ok(U256::MAX));
        assert_eq!(parse_amount(""), Err(AmountError::Empty));
        for bad in ["-1", "+1", "1.0", "1e3", " 1", "0x10", "1_000"] {
            assert!(
                matches!(parse_amount(bad), Err(AmountError::NotDigits(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_amount("01"),
            Err(AmountError::LeadingZero(_))
        ));
        assert!(matches!(
            parse_amount("00"),
            Err(AmountError::LeadingZero(_))
        ));
        // 2^256 exactly.
        let two_256 =
            "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(matches!(
            parse_amount(two_256),
            Err(AmountError::Overflow(_))
        ));
    }
}
