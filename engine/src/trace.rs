//! Trace ids: every log line about a request carries one (`trace_id` span field).

/// The caller's trace id if it is a W3C trace-id (32 lowercase hex digits, not all zero),
/// otherwise a fresh random one, so every request is traceable even from a careless client.
pub fn normalize(given: &str) -> String {
    let valid = given.len() == 32
        && given
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && given.bytes().any(|b| b != b'0');
    if valid {
        given.to_owned()
    } else {
        if !given.is_empty() {
            tracing::debug!(given = %given.chars().take(64).collect::<String>(), "malformed trace id replaced");
        }
        fresh()
    }
}

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
    fn keeps_valid_and_replaces_invalid() {
        let good = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(normalize(good), good);
        for bad in [
            "",
            "0AF7651916CD43DD8448EB211C80319C",
            "00000000000000000000000000000000",
            "xyz",
        ] {
            let n = normalize(bad);
            assert_ne!(n, bad);
            assert_eq!(n.len(), 32);
            assert_eq!(normalize(&n), n);
        }
    }
}
