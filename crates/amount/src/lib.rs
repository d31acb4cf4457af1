//! The one strict reading of an amount: an unsigned 256-bit integer of raw token units,
//! written in base 10. Every zone parses amounts that cross a boundary (WIT, protobuf,
//! configuration files, the signer's policy) with this one function, so no two parts of
//! stratbox can read the same text as two different values.
//!
//! Anything but canonical digits is refused with the reason, never normalised: a sign, a
//! decimal point or an exponent means the producer was thinking in floats, and accepting
//! "1.5" or "1e18" by rounding would turn a bug upstream into a wrong trade downstream.
//! Errors never quote the input, so a hostile megabyte-long string cannot flood a log.

#![warn(missing_docs)]

pub use ruint::aliases::U256;

/// The most decimal digits a 256-bit value can have (2^256 - 1 has 78); longer input is
/// refused before any arithmetic so a hostile 16 MiB string costs one length check.
pub const MAX_DIGITS: usize = 78;

/// Why a string is not a wire-form amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    /// Nothing at all.
    #[error("amount is empty")]
    Empty,
    /// A leading or embedded `+`/`-`.
    #[error("amount has a sign ('{sign}'); amounts are unsigned magnitudes")]
    Sign {
        /// The sign found.
        sign: char,
    },
    /// A space, tab or newline anywhere.
    #[error("amount contains whitespace at byte {index}")]
    Whitespace {
        /// Byte offset of the first whitespace.
        index: usize,
    },
    /// A `.`: a float, not raw units.
    #[error("amount has a decimal point at byte {index}; amounts are integers of raw units")]
    DecimalPoint {
        /// Byte offset of the point.
        index: usize,
    },
    /// Scientific notation.
    #[error("amount has an exponent ('{marker}') at byte {index}; write every digit")]
    Exponent {
        /// `e` or `E`.
        marker: char,
        /// Byte offset of the marker.
        index: usize,
    },
    /// Any other character, including non-ASCII digits.
    #[error("amount has a non-digit {found:?} at byte {index}")]
    InvalidDigit {
        /// The character found.
        found: char,
        /// Its byte offset.
        index: usize,
    },
    #[error("amount has a leading zero; only \"0\" itself may start with 0")]
    /// "0" followed by more digits: a padded form another parser could read as octal.
    LeadingZero,
    /// More than fits.
    #[error("amount does not fit in {bits} bits")]
    Overflow {
        /// The width it had to fit (256 on the wire, less where a smaller type is asked for).
        bits: u32,
    },
}

/// Strategies return `Result<_, String>` across the WIT boundary; `?` on a parse turns the
/// reason into that string.
impl From<AmountParseError> for String {
    fn from(e: AmountParseError) -> Self {
        e.to_string()
    }
}

/// Parses the wire form of an amount strictly.
pub fn parse_amount(s: &str) -> Result<U256, AmountParseError> {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(AmountParseError::Empty);
    };
    if first == b'+' || first == b'-' {
        return Err(AmountParseError::Sign {
            sign: char::from(first),
        });
    }
    for (index, ch) in s.char_indices() {
        match ch {
            '0'..='9' => {}
            c if c.is_whitespace() => return Err(AmountParseError::Whitespace { index }),
            '.' => return Err(AmountParseError::DecimalPoint { index }),
            'e' | 'E' => return Err(AmountParseError::Exponent { marker: ch, index }),
            '+' | '-' => return Err(AmountParseError::Sign { sign: ch }),
            found => return Err(AmountParseError::InvalidDigit { found, index }),
        }
    }
    if first == b'0' && bytes.len() > 1 {
        return Err(AmountParseError::LeadingZero);
    }
    if bytes.len() > MAX_DIGITS {
        return Err(AmountParseError::Overflow { bits: 256 });
    }
    // Every byte is an ASCII digit and there are at most 78 of them, so this cannot
    // see an underscore or a radix prefix; the only failure left is overflow.
    let mut value = U256::ZERO;
    let ten = U256::from(10u8);
    for &b in bytes {
        value = value
            .checked_mul(ten)
            .and_then(|v| v.checked_add(U256::from(b - b'0')))
            .ok_or(AmountParseError::Overflow { bits: 256 })?;
    }
    Ok(value)
}

/// serde `with` module for a `U256` written as a base-10 string.
#[cfg(feature = "serde")]
pub mod decimal {
    use super::*;
    use core::fmt;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes the value's base-10 digits.
    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Reads a string with [`parse_amount`](super::parse_amount); numbers are refused.
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
#[cfg(feature = "serde")]
pub mod decimal_opt {
    use super::*;
    use core::fmt;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes the digits, or nothing for `None`.
    pub fn serialize<S: Serializer>(v: &Option<U256>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    /// Reads an absent or null value as `None`, a string strictly.
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
    fn accepts_the_wire_form() {
        assert_eq!(parse_amount("0"), Ok(U256::ZERO));
        assert_eq!(
            parse_amount("1000000000000000000"),
            Ok(U256::from(10u64).pow(U256::from(18)))
        );
        assert_eq!(parse_amount(&U256::MAX.to_string()), Ok(U256::MAX));
    }

    #[test]
    fn refuses_everything_else_with_its_reason() {
        use AmountParseError::*;
        let cases: [(&str, AmountParseError); 10] = [
            ("", Empty),
            ("1.5", DecimalPoint { index: 1 }),
            (
                "1e18",
                Exponent {
                    marker: 'e',
                    index: 1,
                },
            ),
            ("-1", Sign { sign: '-' }),
            ("+1", Sign { sign: '+' }),
            (" 1", Whitespace { index: 0 }),
            (
                "0x10",
                InvalidDigit {
                    found: 'x',
                    index: 1,
                },
            ),
            ("01", LeadingZero),
            (
                "\u{661}",
                InvalidDigit {
                    found: '\u{661}',
                    index: 0,
                },
            ),
            (
                "115792089237316195423570985008687907853269984665640564039457584007913129639936",
                Overflow { bits: 256 },
            ),
        ];
        for (text, why) in cases {
            assert_eq!(parse_amount(text), Err(why), "{text:?}");
        }
    }

    #[test]
    fn error_messages_stay_short_for_hostile_input() {
        let huge = "9".repeat(1 << 20);
        let msg = parse_amount(&huge).unwrap_err().to_string();
        assert!(msg.len() < 200, "{} bytes", msg.len());
    }
}
