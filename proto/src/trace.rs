//! Trace ids (`TraceContext.trace_id`): one rule for every zone, so the id a chain event is
//! born with is the id the host logs, the engine logs and stores, and the signer logs. If
//! the host and the engine judged ids by different rules, the engine would replace what
//! the host sent and the two logs would stop matching.

/// The longest trace id a service takes as it is.
pub const MAX_LEN: usize = 128;

/// Whether a service takes `id` unchanged: 1 to [`MAX_LEN`] characters of
/// `A-Z a-z 0-9 . _ : / -`, not all zeros.
///
/// That takes W3C trace-context ids (32 hex digits), UUIDs and `chain:block:index:hash`
/// event ids as they are. Everything else (spaces, control or non-ASCII characters, which
/// could forge log lines, or an over-long id) is not an id to log.
pub fn is_usable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
        && id.bytes().any(|b| b != b'0')
}

/// A fresh W3C trace-context trace id: 32 lowercase hex digits, not all zero.
pub fn new_id() -> String {
    w3c(rand::random())
}

/// A W3C trace id that is a function of `seed` (an event id): for an event published
/// without one, so that every re-delivery of it is logged under the same id.
pub fn derive(seed: &str) -> String {
    use sha3::{Digest, Sha3_256};
    let digest = Sha3_256::new_with_prefix(b"stratbox trace id\0")
        .chain_update(seed.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    w3c(u128::from_be_bytes(bytes))
}

fn w3c(id: u128) -> String {
    // All zeros is the W3C "invalid" id.
    format!("{:032x}", id.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_callers_send_and_refuses_what_could_forge_logs() {
        for good in [
            "0af7651916cd43dd8448eb211c80319c",
            "0AF7651916CD43DD8448EB211C80319C",
            "5f2b8a34-2f8e-4b61-9c1f-6fd2d1f0a9b1",
            "31337:1042:3:0xabcdef",
        ] {
            assert!(is_usable(good), "{good}");
        }
        for bad in [
            "",
            "00000000000000000000000000000000",
            "has space",
            "line\nbreak",
            "\u{1b}[31mred",
            "caf\u{e9}",
            &"a".repeat(MAX_LEN + 1),
        ] {
            assert!(!is_usable(bad), "{bad:?}");
        }
    }

    #[test]
    fn made_ids_are_w3c_and_usable() {
        let w3c = |id: &str| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && is_usable(id)
        };
        let fresh = new_id();
        assert!(w3c(&fresh), "{fresh}");
        assert_ne!(fresh, new_id());
        // A seed no rule would take still derives an id every service takes.
        for seed in ["31337:7:0:0xab", "", "has space\n", &"9".repeat(500)] {
            let d = derive(seed);
            assert!(w3c(&d), "{d}");
            assert_eq!(derive(seed), d, "derivation is stable");
        }
        assert_ne!(derive("a"), derive("b"));
    }
}
