//! The one wire form of an amount: an unsigned 256-bit integer in base 10.
//!
//! Floats, signs, exponents and padded forms are refused rather than normalised, because a
//! value that two parsers could read differently must never reach a trade.

use crate::v1::Amount;

pub use ruint::aliases::U256;

/// Why a string is not a valid wire amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error(
        "amount {0:?} has a character other than 0-9 (no signs, decimal points, exponents or spaces)"
    )]
    NotDigits(String),
    #[error("amount {0:?} has a leading zero")]
    LeadingZero(String),
    #[error("amount {0:?} does not fit in 256 bits")]
    Overflow(String),
}

/// Parses the wire form strictly.
pub fn parse_amount(s: &str) -> Result<U256, AmountError> {
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotDigits(clip(s)));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(AmountError::LeadingZero(clip(s)));
    }
    // 2^256 has 78 decimal digits; anything longer cannot fit and would only cost time.
    if s.len() > 78 {
        return Err(AmountError::Overflow(clip(s)));
    }
    U256::from_str_radix(s, 10).map_err(|_| AmountError::Overflow(clip(s)))
}

/// Keeps hostile megabyte-long inputs out of error messages and logs.
fn clip(s: &str) -> String {
    const MAX: usize = 90;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Amount {
    pub fn from_u256(value: U256) -> Self {
        Self {
            value: value.to_string(),
        }
    }

    pub fn parse(&self) -> Result<U256, AmountError> {
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
    fn accepts_the_wire_form() {
        assert_eq!(parse_amount("0"), Ok(U256::ZERO));
        assert_eq!(
            parse_amount("1000000000000000000"),
            Ok(U256::from(10u64).pow(U256::from(18)))
        );
        let max = U256::MAX.to_string();
        assert_eq!(parse_amount(&max), Ok(U256::MAX));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "", "1.5", "1e18", "-1", "+1", " 1", "1 ", "0x10", "01", "00", "١",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?} was accepted");
        }
        let too_big = format!("{}0", U256::MAX);
        assert!(matches!(
            parse_amount(&too_big),
            Err(AmountError::Overflow(_))
        ));
        let one_over =
            "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(matches!(
            parse_amount(one_over),
            Err(AmountError::Overflow(_))
        ));
    }

    #[test]
    fn error_messages_stay_short_for_hostile_input() {
        let huge = "9".repeat(1 << 20);
        let msg = parse_amount(&huge).unwrap_err().to_string();
        assert!(msg.len() < 200, "{} bytes", msg.len());
    }

    #[test]
    fn round_trips_through_the_message() {
        let v = U256::from(123_456_789u64) << 100;
        assert_eq!(Amount::from(v).parse(), Ok(v));
    }
}
