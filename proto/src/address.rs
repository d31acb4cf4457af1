//! Addresses on the wire are `0x` + 40 hex digits; the parsed form is the raw 20 bytes.

use crate::v1::Address;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address {0:?} is not 0x followed by 40 hex digits")]
    Malformed(String),
}

/// Parses `0x` + 40 hex digits (either case) into 20 bytes.
pub fn parse_address(s: &str) -> Result<[u8; 20], AddressError> {
    let malformed = || AddressError::Malformed(s.chars().take(60).collect());
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(malformed)?;
    if hex.len() != 40 {
        return Err(malformed());
    }
    let mut out = [0u8; 20];
    for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or_else(malformed)?;
        let lo = nibble(pair[1]).ok_or_else(malformed)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Address {
    pub fn parse(&self) -> Result<[u8; 20], AddressError> {
        parse_address(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let a = parse_address("0x00000000000000000000000000000000000000Ff");
        assert_eq!(a.map(|b| b[19]), Ok(0xff));
        for bad in [
            "",
            "0x",
            "00000000000000000000000000000000000000ff00",
            "0xzz00000000000000000000000000000000000000",
            "0x000000000000000000000000000000000000000",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?}");
        }
    }
}
