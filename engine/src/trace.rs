//! Trace ids: every log line about a request carries one (`trace_id` span field), and the
//! id a caller sends is the id the engine logs and stores, so one trade can be followed
//! from the chain event through the host and the engine with one search.

/// The longest trace id kept.
pub const MAX_TRACE_ID_LEN: usize = stratbox_proto::trace::MAX_LEN;

/// The caller's trace id if it is usable as one, otherwise a fresh random one (so every
/// request is traceable even from a careless client).
///
/// Usable is [`stratbox_proto::trace::is_usable`], the rule the host also applies before it
/// sends an event's id, so what a host sends is what the engine logs and stores. Anything
/// else (spaces, control or non-ASCII characters, which could forge log lines, or an
/// over-long id) is replaced, and the replacement is logged with what was given, clipped.
pub fn normalize(given: &str) -> String {
    if stratbox_proto::trace::is_usable(given) {
        given.to_owned()
    } else {
        let fresh = fresh();
        if !given.is_empty() {
            tracing::debug!(given = %given.escape_debug().take(64).collect::<String>(), trace_id = %fresh, "unusable trace id replaced");
        }
        fresh
    }
}

/// A W3C trace-context trace id: 32 lowercase hex digits, not all zero.
pub fn fresh() -> String {
    stratbox_proto::trace::new_id()
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

    #[test]
    fn keeps_what_a_host_derives_for_an_event_without_one() {
        for event_id in ["31337:1042:3:0xabcdef", "hs:7", "an id\nno rule takes"] {
            let derived = stratbox_proto::trace::derive(event_id);
            assert_eq!(normalize(&derived), derived);
        }
    }
}
