//! The strategy components this workspace builds, ready for the host and the CLI.
//!
//! `build.rs` builds the Python strategies of `strategies/python` with componentize-py and
//! the JavaScript ones of `strategies/js` with ComponentizeJS, and
//! compiles `clamm-maker`, `momentum`, `tally`, `hostile` and `other-world` for
//! `wasm32-wasip2` (each a component, not a core module) into `target/strategies/`, and
//! this crate hands out their absolute paths. Tests, `stratbox up` and the host's sandbox
//! tests depend on it instead of on a prebuilt binary checked in somewhere.

use std::io;

/// The liquidity maker: keeps a concentrated position around the price.
pub const CLAMM_MAKER: &str = env!("STRATBOX_WASM_CLAMM_MAKER");
/// The trend follower: swaps in the direction of recent price moves. World 0.2.0: its last
/// decision and trade blocks travel to its next version, it is told its outcomes and keeps
/// what it learns from markouts in its memory.
pub const MOMENTUM: &str = env!("STRATBOX_WASM_MOMENTUM");
/// The hot-swap tests' witness: one proposal per swap, numbered by a count that travels
/// to its next version (world 0.1.1).
pub const TALLY: &str = env!("STRATBOX_WASM_TALLY");
/// One component, many misbehaviours, selected by `{"mode": ...}` (see [`hostile_config`]).
pub const HOSTILE: &str = env!("STRATBOX_WASM_HOSTILE");
/// A valid component of another world; admission must refuse it.
pub const OTHER_WORLD: &str = env!("STRATBOX_WASM_OTHER_WORLD");
/// `clamm-maker` written in Python on the Python SDK's `BaseStrategyAgent`
/// (`strategies/python/clamm-maker`), built with componentize-py: the same proposals as the
/// Rust one from an 18 MB component that links the interpreter.
pub const CLAMM_MAKER_PY: &str = env!("STRATBOX_WASM_CLAMM_MAKER_PY");
/// Python misbehaviours for the host's limits, selected by `{"mode": ...}`
/// ([`HOSTILE_PY_MODES`]), written against componentize-py's bindings directly.
pub const HOSTILE_PY: &str = env!("STRATBOX_WASM_HOSTILE_PY");
/// The world implemented in Python with nothing in it: every call returns no proposals
/// without reading its arguments. What a componentize-py component costs per call before
/// any strategy or SDK code runs (`stratbox bench host`).
pub const EMPTY_PY: &str = env!("STRATBOX_WASM_EMPTY_PY");
/// `clamm-maker` written in JavaScript on the JS SDK's `BaseStrategyAgent`
/// (`strategies/js/clamm-maker`), built with ComponentizeJS.
pub const CLAMM_MAKER_JS: &str = env!("STRATBOX_WASM_CLAMM_MAKER_JS");
/// JavaScript misbehaviours, selected by `{"mode": ...}` ([`HOSTILE_JS_MODES`]).
pub const HOSTILE_JS: &str = env!("STRATBOX_WASM_HOSTILE_JS");

const ALL: [(&str, &str); 10] = [
    ("clamm-maker", CLAMM_MAKER),
    ("momentum", MOMENTUM),
    ("tally", TALLY),
    ("hostile", HOSTILE),
    ("other-world", OTHER_WORLD),
    ("clamm-maker-py", CLAMM_MAKER_PY),
    ("hostile-py", HOSTILE_PY),
    ("empty-py", EMPTY_PY),
    ("clamm-maker-js", CLAMM_MAKER_JS),
    ("hostile-js", HOSTILE_JS),
];

/// The names [`path`] and [`bytes`] accept, in a stable order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|(name, _)| *name)
}

/// The absolute path of a component's `.wasm`, by crate name (`"clamm-maker"`, ...).
pub fn path(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// A component's bytes, read fresh (the file may have been rebuilt since startup).
pub fn bytes(name: &str) -> io::Result<Vec<u8>> {
    let path = path(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no strategy component named {name:?}"),
        )
    })?;
    std::fs::read(path)
}

/// The hostile misbehaviours, by the exact names the `hostile` component accepts.
pub const HOSTILE_MODES: &[&str] = &[
    "grow-memory",
    "ignore-grow-failure",
    "loop",
    "trap",
    "recurse",
    "flood",
    "giant-string",
    "bad-amount",
    "bad-bps",
    "wasi-probe",
    "panic",
    "exit",
    "giant-log",
    "control-reason",
    "trap-init",
    "fail-init",
    "print-init",
    "eprint-init",
    "sleep-init",
    "panic-init",
    "udp-init",
    "tcp-init",
    "spin-init",
    "exit-init",
    "grow-memory-init",
    "well-behaved",
];

/// The hostile modes that misbehave in `init` (a subset of [`HOSTILE_MODES`]): every one
/// of them must be refused at start-up without touching the strategies beside it.
pub const HOSTILE_INIT_MODES: &[&str] = &[
    "print-init",
    "eprint-init",
    "sleep-init",
    "panic-init",
    "udp-init",
    "tcp-init",
    "spin-init",
    "trap-init",
    "exit-init",
    "fail-init",
    "grow-memory-init",
];

/// What the hostile `panic` and `panic-init` modes panic with (`strategies/hostile`).
pub const HOSTILE_PANIC_MESSAGE: &str = "hostile panics on purpose";
/// The code the hostile `exit` and `exit-init` modes exit with.
pub const HOSTILE_EXIT_CODE: i32 = 3;
/// The bytes of one `host.log` call of the hostile `giant-log` mode: 60 MiB.
pub const HOSTILE_GIANT_LOG_BYTES: usize = 60 << 20;
/// The reason of the hostile `control-reason` mode's proposal: NUL, a screen clear, a C1
/// CSI, an OSC window title, bidi controls and DEL.
pub const HOSTILE_CONTROL_REASON: &str = "nul\0clear\u{1b}[2Jcsi\u{9b}31mosc\u{1b}]0;pwned\u{7}bidi\u{202e}evil\u{2066}iso\u{2069}del\u{7f}end";

/// Config selecting one hostile `mode`.
pub fn hostile_config(mode: &str) -> String {
    serde_json::json!({ "mode": mode }).to_string()
}

/// The Python hostile component's modes (see `strategies/python/hostile/app.py`).
pub const HOSTILE_PY_MODES: &[&str] = &[
    "loop",
    "alloc",
    "raise-init",
    "err-init",
    "raise",
    "flood",
    "giant-string",
    "well-behaved",
];

/// The JavaScript hostile component's modes (see `strategies/js/hostile/app.js`).
pub const HOSTILE_JS_MODES: &[&str] = &[
    "loop",
    "alloc",
    "throw-init",
    "err-init",
    "throw",
    "flood",
    "giant-string",
    "well-behaved",
];

/// A realistic `clamm-maker` config: a ±600-tick band (about ±6%) re-centred once the price
/// is 120 ticks past its edge, 10^18 liquidity units, 0.5% slippage.
pub fn clamm_maker_config(pool: &str) -> String {
    serde_json::json!({
        "pool": pool,
        "half_width_ticks": 600,
        "margin_ticks": 120,
        "liquidity": "1000000000000000000",
        "max_slippage_bps": 50,
    })
    .to_string()
}

/// A `tally` config: counter-swaps of 1000 raw units on `pool`.
pub fn tally_config(pool: &str) -> String {
    serde_json::json!({ "pool": pool, "amount_in": "1000" }).to_string()
}

/// A realistic `momentum` config: looks 20 blocks back, trades 10^17 raw units of the
/// input token when the price moved at least 0.3%, 1% slippage.
pub fn momentum_config(pool: &str) -> String {
    serde_json::json!({
        "pool": pool,
        "lookback_blocks": 20,
        "threshold_bps": 30,
        "amount_in": "100000000000000000",
        "max_slippage_bps": 100,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Parser, Payload};

    const PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    /// The names a component exports at its top level.
    fn component_exports(bytes: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.expect("component parses") {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        names.push(export.expect("export parses").name.name.to_owned());
                    }
                }
                _ => {}
            }
        }
        names
    }

    #[test]
    fn every_component_is_built_and_is_a_component() {
        assert_eq!(names().count(), 10);
        for name in names() {
            let bytes = bytes(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(bytes.starts_with(&PREAMBLE), "{name} is not a component");
            assert!(
                wasmparser::Validator::new().validate_all(&bytes).is_ok(),
                "{name} does not validate"
            );
        }
    }

    #[test]
    fn strategies_export_the_strategy_world() {
        for name in ["clamm-maker", "momentum", "tally", "hostile"] {
            let exports = component_exports(&bytes(name).unwrap());
            assert!(exports.iter().any(|e| e == "init"), "{name}: {exports:?}");
            assert!(
                exports.iter().any(|e| e == "on-event"),
                "{name}: {exports:?}"
            );
        }
    }

    #[test]
    fn stateful_strategies_add_save_and_restore_to_the_world() {
        let sorted = |name: &str| {
            let mut exports = component_exports(&bytes(name).unwrap());
            exports.sort();
            exports
        };
        assert_eq!(sorted("tally"), ["init", "on-event", "restore", "save"]);
        // Built for 0.2.0: it is told its outcomes too.
        assert_eq!(
            sorted("momentum"),
            ["init", "on-event", "on-outcome", "restore", "save"]
        );
        for name in ["clamm-maker", "hostile"] {
            assert_eq!(sorted(name), ["init", "on-event"], "{name}");
        }
    }

    #[test]
    fn other_world_exports_something_else() {
        let exports = component_exports(&bytes("other-world").unwrap());
        assert_eq!(exports, vec!["run".to_owned()]);
    }

    #[test]
    fn lookups() {
        assert_eq!(path("hostile"), Some(HOSTILE));
        assert!(path("nope").is_none());
        assert_eq!(bytes("nope").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(HOSTILE.ends_with("hostile.wasm"));
        assert!(std::path::Path::new(CLAMM_MAKER).is_absolute());
    }

    #[test]
    fn example_configs_are_json_objects() {
        for config in [
            clamm_maker_config("0xabc"),
            momentum_config("0xabc"),
            hostile_config("trap"),
        ] {
            let v: serde_json::Value = serde_json::from_str(&config).unwrap();
            assert!(v.is_object());
        }
    }
}
