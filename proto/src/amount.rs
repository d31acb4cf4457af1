//! The one wire form of an amount: an unsigned 256-bit integer in base 10, parsed by
//! `stratbox-amount`, the one strict parser every zone uses.

use crate::v1::Amount;

pub use stratbox_amount::{AmountParseError, U256, parse_amount};

impl Amount {
    /// The one base-10 wire form of `value`.
    pub fn from_u256(value: U256) -> Self {
        Self {
            value: value.to_string(),
        }
    }

    /// Strictly parses the base-10 value (no sign, spaces, or overflow past 2^256 - 1).
    pub fn parse(&self) -> Result<U256, AmountParseError> {
        parse_amount(&self.value)
    }
}

impl From<U256> for Amount {
    fn from(value: U256) -> Self {
        Self::from_u256(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_message() {
        let v = U256::from(123_456_789u64) << 100;
        assert_eq!(Amount::from(v).parse(), Ok(v));
        let bad = Amount {
            value: "1.5".into(),
        };
        assert!(bad.parse().is_err());
    }
}
