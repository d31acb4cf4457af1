//! Addresses on the wire are `0x` + 40 hex digits; the parsed form is the raw 20 bytes.
//!
//! Case carries a checksum (EIP-55): an address written in mixed case must match its
//! checksum, or it is refused, since a mistyped digit in a checksummed address is exactly
//! what the checksum exists to catch. All-lowercase and all-uppercase forms carry no
//! checksum and are accepted as they are.

use sha3::{Digest, Keccak256};

use crate::v1::Address;

/// Why a wire address was refused; the text names the address so a caller can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not `0x` and 40 hex digits; carries the input as given.
    #[error("address {0:?} is not 0x followed by 40 hex digits")]
    Malformed(String),
    #[error(
        "address {given:?} is in mixed case but its EIP-55 checksum is wrong (the checksummed form is {expected})"
    )]
    /// Mixed case whose EIP-55 checksum fails, most likely a mistyped address.
    Checksum {
        /// The address as given.
        given: String,
        /// Its correct EIP-55 checksummed form.
        expected: String,
    },
}

/// The EIP-55 mixed-case form of an address: each hex letter is upper case where the
/// matching nibble of keccak256(lowercase hex) is 8 or more.
pub fn checksummed(a: &[u8; 20]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut lower = [0u8; 40];
    for (i, b) in a.iter().enumerate() {
        lower[2 * i] = HEX[usize::from(b >> 4)];
        lower[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    let hash = Keccak256::digest(lower);
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.iter().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase() as char);
        } else {
            out.push(*c as char);
        }
    }
    out
}

/// Parses `0x` + 40 hex digits into 20 bytes: all lowercase, all uppercase, or mixed case
/// with a correct EIP-55 checksum.
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
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        let expected = checksummed(&out);
        if expected[2..] != *hex {
            return Err(AddressError::Checksum {
                given: s.to_owned(),
                expected,
            });
        }
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
    /// The 20 bytes, accepting all-lower, all-upper or a correct EIP-55 checksum.
    pub fn parse(&self) -> Result<[u8; 20], AddressError> {
        parse_address(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_as_eip55_says() {
        // The test vectors of EIP-55 itself.
        for good in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let a = parse_address(good).expect(good);
            assert_eq!(checksummed(&a), good);
            assert!(parse_address(&good.to_lowercase()).is_ok());
            assert!(parse_address(&format!("0x{}", good[2..].to_uppercase())).is_ok());
        }
        // One letter's case flipped: the checksum no longer matches.
        let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert!(matches!(
            parse_address(bad),
            Err(AddressError::Checksum { .. })
        ));
    }

    #[test]
    fn parses_and_refuses() {
        let a = parse_address("0x00000000000000000000000000000000000000ff");
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
