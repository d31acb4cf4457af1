//! A strategy that misbehaves on purpose, one way per `mode`, so the host's sandbox tests
//! have a real component to contain.
//!
//! Config: `{"mode": "<mode>", "pool": "0x..."?}`. The misbehaviour happens in `on-event`,
//! except for the `*-init` modes, which misbehave in `init`. Modes (the host's tests use
//! these names):
//! - in `on-event`: `grow-memory`, `ignore-grow-failure`, `loop`, `trap`, `recurse`,
//!   `flood`, `giant-string`, `bad-amount`, `bad-bps`, `wasi-probe`, `panic`, `exit`,
//!   `giant-log`, `control-reason`, `well-behaved`;
//! - in `init`: `trap-init`, `fail-init`, `print-init`, `eprint-init`, `sleep-init`,
//!   `panic-init`, `udp-init`, `tcp-init`, `spin-init`, `exit-init`, `grow-memory-init`.
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
    /// Panics with [`PANIC_MESSAGE`].
    Panic,
    /// Exits with code 3 (`wasi:cli/exit#exit-with-code`).
    Exit,
    /// One `host.log` call of [`GIANT_LOG_LEN`] bytes.
    GiantLog,
    /// A proposal whose reason holds [`CONTROL_REASON`]: NUL, a screen clear, an OSC title,
    /// C1 controls and bidi overrides, for the host's output escaping.
    ControlReason,
    TrapInit,
    FailInit,
    /// `println!` in `init`.
    PrintInit,
    /// `eprintln!` in `init`.
    EprintInit,
    /// `std::thread::sleep` in `init`.
    SleepInit,
    /// `panic!` in `init`.
    PanicInit,
    /// Binds a UDP socket in `init`.
    UdpInit,
    /// Connects a TCP socket in `init`.
    TcpInit,
    /// Never returns from `init`.
    SpinInit,
    /// Exits with code 3 in `init`.
    ExitInit,
    /// Allocates without bound in `init`.
    GrowMemoryInit,
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

impl Hostile {
    fn new(config: Config) -> Self {
        Hostile {
            mode: config.mode,
            pool: config.pool,
        }
    }
}

/// Used when neither the config nor the snapshot names a pool.
const FALLBACK_POOL: &str = "0x0000000000000000000000000000000000000001";

/// How many proposals `flood` returns.
const FLOOD_COUNT: usize = 1_000_000;

/// The size of `giant-string`'s reason.
const GIANT_LEN: usize = 16 << 20;

/// The size of `giant-log`'s one message: 60 MiB.
pub const GIANT_LOG_LEN: usize = 60 << 20;

/// What `panic` and `panic-init` panic with.
pub const PANIC_MESSAGE: &str = "hostile panics on purpose";

/// The exit code of `exit` and `exit-init`.
pub const EXIT_CODE: i32 = 3;

/// `control-reason`'s reason: every kind of control a terminal might act on.
pub const CONTROL_REASON: &str = "nul\0clear\u{1b}[2Jcsi\u{9b}31mosc\u{1b}]0;pwned\u{7}bidi\u{202e}evil\u{2066}iso\u{2069}del\u{7f}end";

impl Strategy for Hostile {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("bad hostile config: {e}"))?;
        match config.mode {
            Mode::TrapInit => trap(),
            Mode::FailInit => Err("refused on purpose".to_owned()),
            Mode::PrintInit => {
                println!("hostile: printing from init");
                Ok(Hostile::new(config))
            }
            Mode::EprintInit => {
                eprintln!("hostile: printing to stderr from init");
                Ok(Hostile::new(config))
            }
            Mode::SleepInit => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                Ok(Hostile::new(config))
            }
            Mode::PanicInit => panic!("{PANIC_MESSAGE}"),
            Mode::UdpInit => match std::net::UdpSocket::bind("0.0.0.0:0") {
                Ok(_) => Err("bound a UDP socket".to_owned()),
                Err(e) => Err(format!("no UDP socket: {e}")),
            },
            Mode::TcpInit => match std::net::TcpStream::connect("127.0.0.1:6379") {
                Ok(_) => Err("connected a TCP socket".to_owned()),
                Err(e) => Err(format!("no TCP socket: {e}")),
            },
            Mode::SpinInit => spin(),
            Mode::ExitInit => exit(),
            Mode::GrowMemoryInit => grow_memory(),
            _ => Ok(Hostile::new(config)),
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
            Mode::Panic => panic!("{PANIC_MESSAGE}"),
            Mode::Exit => exit(),
            Mode::GiantLog => {
                host::info(&"x".repeat(GIANT_LOG_LEN));
                Ok(Vec::new())
            }
            Mode::ControlReason => {
                let mut p = swap(pool, "1");
                p.reason = CONTROL_REASON.to_owned();
                Ok(vec![p])
            }
            Mode::WellBehaved => {
                host::debug("well-behaved: nothing to do");
                Ok(Vec::new())
            }
            // The `init` modes that return at all behave from then on.
            Mode::TrapInit
            | Mode::FailInit
            | Mode::PrintInit
            | Mode::EprintInit
            | Mode::SleepInit
            | Mode::PanicInit
            | Mode::UdpInit
            | Mode::TcpInit
            | Mode::SpinInit
            | Mode::ExitInit
            | Mode::GrowMemoryInit => Ok(Vec::new()),
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

/// Ends the instance with [`EXIT_CODE`]. Through `exit-with-code`: WASI 0.2's plain `exit`,
/// which Rust's `std::process::exit` uses, carries only success or failure, so its code 3
/// would reach the host as 1.
fn exit() -> ! {
    #[cfg(target_arch = "wasm32")]
    wasip2::cli::exit::exit_with_code(EXIT_CODE as u8);
    std::process::exit(EXIT_CODE)
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
            "panic",
            "exit",
            "giant-log",
            "control-reason",
            "well-behaved",
        ] {
            let h = Hostile::init(&format!(r#"{{"mode":"{name}"}}"#));
            assert!(h.is_ok(), "{name} refused");
        }
        // The `init` modes are only parsed here: natively most of them would really spin,
        // exit or panic the test process.
        for name in [
            "trap-init",
            "print-init",
            "eprint-init",
            "sleep-init",
            "panic-init",
            "udp-init",
            "tcp-init",
            "spin-init",
            "exit-init",
            "grow-memory-init",
        ] {
            let config: Result<Config, _> =
                serde_json::from_str(&format!(r#"{{"mode":"{name}"}}"#));
            assert!(config.is_ok(), "{name} does not parse");
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

        let mut h = Hostile::init(r#"{"mode":"control-reason"}"#).unwrap();
        assert_eq!(
            h.on_event(&event(), &snapshot()).unwrap()[0].reason,
            CONTROL_REASON
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
