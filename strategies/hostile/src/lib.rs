//! A strategy that misbehaves on purpose, one way per `mode`, so the host's sandbox tests
//! have a real component to contain.
//!
//! Config: `{"mode": "<mode>", "pool": "0x..."?}`. The misbehaviour happens in `on-event`,
//! except for `trap-init` and `fail-init`. Modes (the host's tests use these names):
//! `grow-memory`, `ignore-grow-failure`, `loop`, `trap`, `recurse`, `flood`, `giant-string`,
//! `bad-amount`, `bad-bps`, `wasi-probe`, `trap-init`, `fail-init`, `well-behaved`.
//!
//! Everything wasm32-specific is behind `cfg(target_arch = "wasm32")` so the workspace's
//! native build still compiles this crate; natively the modes only approximate.

// This crate is deliberately hostile, so lints that protect honest code get in the way:
// - `unconditional_recursion`: `recurse` must never terminate;
// - `clippy::empty_loop` / `clippy::infinite_loop`: `loop` and the memory abusers must run
//   until the host stops them.
#![allow(unconditional_recursion)]
#![allow(clippy::empty_loop, clippy::infinite_loop)]

use core::hint::black_box;
use serde::Deserialize;
use stratbox_sdk::types::{Action, Event, Proposal, Snapshot, SwapAction};
use stratbox_sdk::{Strategy, host};

/// What to do wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    GrowMemory,
    IgnoreGrowFailure,
    Loop,
    Trap,
    Recurse,
    Flood,
    GiantString,
    BadAmount,
    BadBps,
    WasiProbe,
    TrapInit,
    FailInit,
    WellBehaved,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    #[serde(default)]
    pool: Option<String>,
}

struct Hostile {
    mode: Mode,
    pool: Option<String>,
}

/// Used when neither the config nor the snapshot names a pool.
const FALLBACK_POOL: &str = "0x0000000000000000000000000000000000000001";

/// How many proposals `flood` returns.
const FLOOD_COUNT: usize = 1_000_000;

/// The size of `giant-string`'s reason.
const GIANT_LEN: usize = 16 << 20;

impl Strategy for Hostile {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("bad hostile config: {e}"))?;
        match config.mode {
            Mode::TrapInit => trap(),
            Mode::FailInit => Err("refused on purpose".to_owned()),
            mode => Ok(Hostile {
                mode,
                pool: config.pool,
            }),
        }
    }

    fn on_event(&mut self, _event: &Event, snapshot: &Snapshot) -> Result<Vec<Proposal>, String> {
        let pool = self
            .pool
            .clone()
            .or_else(|| snapshot.pools.first().map(|p| p.pool.clone()))
            .unwrap_or_else(|| FALLBACK_POOL.to_owned());
        match self.mode {
            Mode::GrowMemory => grow_memory(),
            Mode::IgnoreGrowFailure => ignore_grow_failure(),
            Mode::Loop => spin(),
            Mode::Trap => trap(),
            Mode::Recurse => {
                let depth = recurse(black_box(0));
                Err(format!("recursion returned at depth {depth}"))
            }
            Mode::Flood => Ok(flood()),
            Mode::GiantString => {
                let mut p = swap(String::new(), "1");
                p.reason = "x".repeat(GIANT_LEN);
                Ok(vec![p])
            }
            Mode::BadAmount => Ok(vec![swap(pool, "1.5")]),
            Mode::BadBps => {
                let mut p = swap(pool, "1");
                p.max_slippage_bps = 20_000;
                Ok(vec![p])
            }
            Mode::WasiProbe => Err(wasi_probe()),
            Mode::WellBehaved => {
                host::debug("well-behaved: nothing to do");
                Ok(Vec::new())
            }
            // Refused in `init`; never stored.
            Mode::TrapInit | Mode::FailInit => Ok(Vec::new()),
        }
    }
}

stratbox_sdk::export_strategy!(Hostile);

/// A raw proposal, bypassing the SDK builder on purpose (the builder refuses bad values).
fn swap(pool: String, amount_in: &str) -> Proposal {
    Proposal {
        action: Action::Swap(SwapAction {
            pool,
            zero_for_one: true,
            amount_in: amount_in.to_owned(),
            sqrt_price_limit_x96: None,
        }),
        expected_amount0: amount_in.to_owned(),
        expected_amount1: "0".to_owned(),
        max_slippage_bps: 100,
        reason: String::new(),
    }
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Allocates 1 MiB at a time and never frees, until the allocator is refused memory (which
/// aborts, i.e. traps).
fn grow_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so nothing can be lazily elided.
        hoard.push(black_box(vec![0xa5u8; 1 << 20]));
        black_box(&hoard);
    }
}

/// Grows memory behind the allocator's back and writes to the new pages whether or not
/// the grow succeeded: the first refused grow turns into an out-of-bounds store.
fn ignore_grow_failure() -> Result<Vec<Proposal>, String> {
    #[cfg(target_arch = "wasm32")]
    {
        const PAGE: usize = 65_536;
        const STEP: usize = 1024;
        loop {
            let before = core::arch::wasm32::memory_size(0);
            let result = core::arch::wasm32::memory_grow(0, STEP);
            black_box(result); // usize::MAX on failure: ignored on purpose.
            let last = before.wrapping_add(STEP).wrapping_mul(PAGE).wrapping_sub(8);
            // SAFETY: none. This is the bug being tested: the address is past the end of
            // memory once a grow has been refused, and the store must trap in the host.
            unsafe { core::ptr::write_volatile(last as *mut u64, 0xdead_beef) };
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    Err("ignore-grow-failure only misbehaves on wasm32".to_owned())
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Non-tail recursion with a live stack buffer, so it can be neither turned into a loop
/// nor have its frames elided.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    let below = recurse(black_box(depth + 1));
    below.wrapping_add(frame[(depth % 16) as usize])
}

fn flood() -> Vec<Proposal> {
    (0..FLOOD_COUNT).map(|_| swap(String::new(), "1")).collect()
}

/// Tries every ambient authority a WASI program could have and reports what happened, as
/// JSON, so the host's test can check each was denied or virtualised.
fn wasi_probe() -> String {
    use std::io::{Read, Write};

    let file = match std::fs::File::open("/etc/passwd") {
        Ok(mut f) => {
            let mut buf = Vec::new();
            match f.read_to_end(&mut buf) {
                Ok(n) => format!("READ {n} bytes"),
                Err(e) => format!("opened but read failed: {e}"),
            }
        }
        Err(e) => e.to_string(),
    };
    let dir = match std::fs::read_dir("./") {
        Ok(entries) => format!("LISTED {} entries", entries.count()),
        Err(e) => e.to_string(),
    };
    let env_count = std::env::vars_os().count();
    let wall_clock_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let started = std::time::Instant::now();
    let monotonic_ns = monotonic_now_ns();
    black_box(started.elapsed());
    let random_hex = random_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let socket = match std::net::TcpStream::connect("127.0.0.1:6379") {
        Ok(_) => "CONNECTED".to_owned(),
        Err(e) => e.to_string(),
    };
    // `println!` panics when stdout is closed; a probe must not trap, so ignore failures.
    let _ = writeln!(std::io::stdout(), "hostile: wasi-probe on stdout");
    let _ = writeln!(std::io::stderr(), "hostile: wasi-probe on stderr");

    serde_json::json!({
        "file": file,
        "dir": dir,
        "env_count": env_count,
        "wall_clock_unix_ns": wall_clock_unix_ns,
        "monotonic_ns": monotonic_ns,
        "random_hex": random_hex,
        "socket": socket,
    })
    .to_string()
}

#[cfg(target_arch = "wasm32")]
fn monotonic_now_ns() -> u64 {
    wasip2::clocks::monotonic_clock::now()
}

#[cfg(not(target_arch = "wasm32"))]
fn monotonic_now_ns() -> u64 {
    0
}

#[cfg(target_arch = "wasm32")]
fn random_bytes() -> Vec<u8> {
    wasip2::random::random::get_random_bytes(16)
}

/// Natively there is no WASI; std's hasher seed is the closest ambient randomness.
#[cfg(not(target_arch = "wasm32"))]
fn random_bytes() -> Vec<u8> {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8).to_le_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            last_sync_block: 1,
            timestamp: 1,
            pools: Vec::new(),
            balances: Vec::new(),
        }
    }

    fn event() -> Event {
        Event::NewBlock(stratbox_sdk::types::BlockInfo {
            number: 1,
            timestamp: 1,
            hash: String::new(),
        })
    }

    #[test]
    fn modes_parse_by_their_exact_names() {
        for name in [
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
            "well-behaved",
        ] {
            let h = Hostile::init(&format!(r#"{{"mode":"{name}"}}"#));
            assert!(h.is_ok(), "{name} refused");
        }
        assert_eq!(
            Hostile::init(r#"{"mode":"fail-init"}"#).err().as_deref(),
            Some("refused on purpose")
        );
        assert!(Hostile::init(r#"{"mode":"nope"}"#).is_err());
    }

    #[test]
    fn value_modes_return_what_they_promise() {
        let mut h = Hostile::init(r#"{"mode":"bad-amount"}"#).unwrap();
        let p = h.on_event(&event(), &snapshot()).unwrap();
        assert!(matches!(&p[0].action, Action::Swap(s) if s.amount_in == "1.5"));

        let mut h = Hostile::init(r#"{"mode":"bad-bps"}"#).unwrap();
        assert_eq!(
            h.on_event(&event(), &snapshot()).unwrap()[0].max_slippage_bps,
            20_000
        );

        let mut h = Hostile::init(r#"{"mode":"giant-string"}"#).unwrap();
        assert_eq!(
            h.on_event(&event(), &snapshot()).unwrap()[0].reason.len(),
            GIANT_LEN
        );

        let mut h = Hostile::init(r#"{"mode":"flood"}"#).unwrap();
        assert_eq!(
            h.on_event(&event(), &snapshot()).unwrap().len(),
            FLOOD_COUNT
        );

        let mut h = Hostile::init(r#"{"mode":"well-behaved"}"#).unwrap();
        assert!(h.on_event(&event(), &snapshot()).unwrap().is_empty());
    }

    #[test]
    fn wasi_probe_reports_every_field() {
        let mut h = Hostile::init(r#"{"mode":"wasi-probe"}"#).unwrap();
        let report = h.on_event(&event(), &snapshot()).unwrap_err();
        let v: serde_json::Value = serde_json::from_str(&report).unwrap();
        for key in [
            "file",
            "dir",
            "env_count",
            "wall_clock_unix_ns",
            "monotonic_ns",
            "random_hex",
            "socket",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {report}");
        }
    }
}
