//! Trace ids: every log line about a request carries one (`trace_id` span field), and the
//! id a caller sends is the id the engine logs and stores, so one trade can be followed
//! from the chain event through the host and the engine with one search.

/// The longest trace id kept.
pub const MAX_TRACE_ID_LEN: usize = 128;

/// The caller's trace id if it is usable as one, otherwise a fresh random one (so every
/// request is traceable even from a careless client).
///
/// Usable: 1 to [`MAX_TRACE_ID_LEN`] characters of `A-Z a-z 0-9 . _ : / -`, not all zeros.
/// That takes W3C trace-context ids (32 hex digits), UUIDs and the host's event ids as they
/// are. Anything else (spaces, control or non-ASCII characters, which could forge log
/// lines, or an over-long id) is replaced, and the replacement is logged with what was
/// given, clipped.
pub fn normalize(given: &str) -> String {
    let valid = !given.is_empty()
        && given.len() <= MAX_TRACE_ID_LEN
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
        && given.bytes().any(|b| b != b'0');
    if valid {
        given.to_owned()
    } else {
        if !given.is_empty() {
            tracing::debug!(given = %given.escape_debug().take(64).collect::<String>(), "unusable trace id replaced");
        }
        fresh()
    }
}

/// A W3C trace-context trace id: 32 lowercase hex digits, not all zero.
pub fn fresh() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut id = hex::encode(bytes);
    if id.bytes().all(|b| b == b'0') {
        id.replace_range(31..32, "1");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_callers_send_and_replaces_what_could_forge_logs() {
        for good in [
            "0af7651916cd43dd8448eb211c80319c",
            "0AF7651916CD43DD8448EB211C80319C",
            "5f2b8a34-2f8e-4b61-9c1f-6fd2d1f0a9b1",
            "31337:1042:3:0xabcdef",
        ] {
            assert_eq!(normalize(good), good);
        }
        for bad in [
            "",
            "00000000000000000000000000000000",
            "has space",
            "line\nbreak",
            "\u{1b}[31mred",
            "caf\u{e9}",
            &"a".repeat(MAX_TRACE_ID_LEN + 1),
        ] {
            let n = normalize(bad);
            assert_ne!(n, bad);
            assert_eq!(n.len(), 32);
            assert_eq!(normalize(&n), n);
        }
    }
}
