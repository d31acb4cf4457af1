//! `stratbox up` as a user runs it: on the embedded chain, and with `--chain anvil` against
//! an Anvil it starts itself. Each must print the live table, end with a summary showing
//! handled events and SIMULATED tasks on a balanced ledger, and exit 0; the Anvil run must
//! leave no Anvil behind. On the embedded chain `momentum`, which trades only what its
//! account holds, must have trades simulated (the host shows it its book's balances), and
//! the summary must name tokens by the symbols their contracts give; `--json` keeps raw
//! units. With `--live` (the threshold key's share services in process, real Anvil) trades
//! must reach CONFIRMED, nothing signed or sent may be left without its receipt, and the
//! account's wallet must reconcile to a zero difference in every asset.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Summary {
    stdout: String,
    events: u64,
    simulated: u64,
    ledger_entries: u64,
    /// The summary part of stdout.
    summary: String,
}

impl Summary {
    /// `STATE=n` of one strategy's `trades` line.
    fn trades(&self, strategy: &str, state: &str) -> u64 {
        self.summary
            .lines()
            .filter_map(|l| l.strip_prefix("trades"))
            .find(|l| l.split_whitespace().next() == Some(strategy))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{state}=")))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }
}

/// `-0.000139 SB1`: a decimal number then a symbol (a letter, then letters and digits).
fn reads_as_amount_and_symbol(amount: &str, symbol: &str) -> bool {
    let digits = amount.trim_start_matches(['+', '-']);
    let mut parts = digits.splitn(2, '.');
    let whole_ok = parts
        .next()
        .is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()));
    let fraction_ok = parts
        .next()
        .is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    let symbol_ok = symbol
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && symbol.chars().all(|c| c.is_ascii_alphanumeric());
    whole_ok && fraction_ok && symbol_ok
}

fn assert_symbols(s: &Summary) {
    let pnl: Vec<&str> = s.summary.lines().filter(|l| l.starts_with("pnl")).collect();
    assert!(!pnl.is_empty(), "no pnl line:\n{}", s.stdout);
    for line in pnl.iter().chain(
        s.summary
            .lines()
            .filter(|l| l.starts_with("balance "))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let n = words.len();
        assert!(
            n >= 3 && reads_as_amount_and_symbol(words[n - 2], words[n - 1]),
            "not an amount with its symbol: {line:?}\n{}",
            s.stdout
        );
        assert!(!line.contains("raw units"), "{line:?}");
    }
    assert!(
        s.summary.lines().any(|l| l.starts_with("balance ")),
        "no balances in the summary:\n{}",
        s.stdout
    );
}

/// Runs `stratbox up ARGS` in a fresh directory and parses its summary.
fn run_up(args: &[&str], timeout: Duration) -> Summary {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .current_dir(dir.path())
        .arg("up")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stratbox up");
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > timeout {
            let _ = child.kill();
            panic!("stratbox up {args:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "stratbox up {args:?} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let summary = stdout
        .split("summary after")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary in\n{stdout}"));
    let field = |line_prefix: &str, key: &str| -> u64 {
        summary
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| *w == key)?;
                words.get(at + 1)?.parse().ok()
            })
            .unwrap_or(0)
    };
    let simulated = summary
        .lines()
        .find(|l| l.starts_with("tasks"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("SIMULATED="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    let ledger_entries = summary
        .lines()
        .find_map(|l| l.strip_prefix("ledger: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Summary {
        events: field("host", "events"),
        simulated,
        ledger_entries,
        summary: summary.to_owned(),
        stdout,
    }
}

fn assert_worked(s: &Summary) {
    assert!(
        s.stdout.matches("stratbox up ").count() >= 2,
        "a live table before the summary:\n{}",
        s.stdout
    );
    assert!(s.events > 0, "no event handled:\n{}", s.stdout);
    assert!(s.simulated > 0, "no SIMULATED task:\n{}", s.stdout);
    assert!(
        s.ledger_entries > 0,
        "no shadow fill on the ledger:\n{}",
        s.stdout
    );
    assert!(s.stdout.contains("balance per asset"), "{}", s.stdout);
}

#[test]
fn up_on_the_embedded_chain() {
    // As the README runs it.
    let s = run_up(&["--duration", "30"], Duration::from_secs(180));
    assert_worked(&s);
    assert!(
        s.trades("momentum", "SIMULATED") > 0,
        "momentum made no trade:\n{}",
        s.stdout
    );
    // The maker three times over: Rust, Python (componentize-py) and JavaScript
    // (ComponentizeJS) components beside each other on one host, each trading.
    for maker in ["clamm-maker", "clamm-maker-py", "clamm-maker-js"] {
        assert!(s.trades(maker, "SIMULATED") > 0, "{maker}:\n{}", s.stdout);
    }
    assert_symbols(&s);
    // Its book: capital in the quote token, and the token0 it bought.
    let momentum = s
        .summary
        .lines()
        .find(|l| l.starts_with("balance momentum"))
        .unwrap_or_else(|| panic!("no balance line of momentum:\n{}", s.stdout));
    assert!(momentum.split_whitespace().count() >= 6, "{momentum}");
}

#[test]
fn up_json_keeps_raw_units() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .current_dir(dir.path())
        .args(["up", "--duration", "8", "--json"])
        .output()
        .expect("run stratbox up --json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"));
    let books = json["balances"].as_array().expect("balances");
    assert!(!books.is_empty(), "{json}");
    for book in books {
        for b in book["balances"].as_array().expect("a book's balances") {
            let raw = b["amount"].as_str().expect("amount as a string");
            assert!(
                !raw.is_empty() && raw.bytes().all(|c| c.is_ascii_digit()),
                "raw units, base 10: {b}"
            );
            assert!(
                b["token"]["symbol"].as_str().is_some_and(|s| !s.is_empty()),
                "{b}"
            );
            assert!(b["token"]["decimals"].as_u64().is_some(), "{b}");
        }
    }
    for p in json["pnl"].as_array().expect("pnl") {
        let raw = p["amount"].as_str().expect("amount as a string");
        assert!(raw.bytes().all(|c| c.is_ascii_digit()), "{p}");
        assert!(p["negative"].is_boolean(), "{p}");
    }
    assert!(
        json["tasks"]["SIMULATED"].as_i64().is_some_and(|n| n > 0),
        "{json}"
    );
    assert!(
        json["ledger_entries"].as_u64().is_some_and(|n| n > 0),
        "{json}"
    );
    // Every fill the host told a strategy (world 0.2.0's outcomes) it also reported to the
    // engine, which keeps its slippage per task: as many figures as SIMULATED tasks (fewer
    // only past 100 a second per strategy, which this short run does not reach).
    let strategies = json["strategies"].as_object().expect("strategies");
    let mut reported = 0;
    for (name, states) in strategies {
        let simulated = states["SIMULATED"].as_u64().unwrap_or(0);
        let slipped = json["execution"][name]["slippage_bps"]["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no execution figures for {name}: {json}"));
        assert_eq!(slipped, simulated, "{name}: {json}");
        reported += slipped;
    }
    assert!(reported > 0, "{json}");
}

#[test]
fn up_against_anvil() {
    let s = run_up(
        &["--chain", "anvil", "--duration", "10"],
        Duration::from_secs(180),
    );
    assert_worked(&s);
    assert_symbols(&s);
    // Anvil was started, followed block by block, and is gone.
    let endpoint = s
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("anvil at "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no anvil line in\n{}", s.stdout))
        .to_owned();
    let followed: u64 = s
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("fork    followed "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        followed >= 10,
        "the engine's fork followed {followed} blocks:\n{}",
        s.stdout
    );
    let port = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("a port");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "anvil still answers on {endpoint} after `stratbox up` exited"
    );
}

/// Runs `stratbox up ARGS` in a fresh directory to its end, reading both pipes as it goes
/// (a full pipe would stall it): (success, stdout, stderr).
fn run_to_end(args: &[&str], timeout: Duration) -> (bool, String, String) {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .current_dir(dir.path())
        .arg("up")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stratbox up");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "stratbox up {args:?} still running after {timeout:?}\nstderr:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (
        status.success(),
        stdout.join().expect("stdout reader"),
        stderr.join().expect("stderr reader"),
    )
}

#[test]
fn up_live_confirms_trades_and_reconciles_to_zero() {
    // The threshold key of this target dir, shared with the signer tests: made by one
    // ceremony the first time (minutes), read after.
    let cache = stratbox_testenv::target_dir();
    let cache = cache.to_str().expect("a UTF-8 target dir");
    let (ok, stdout, stderr) = run_to_end(
        &["--live", "--duration", "25", "--json", "--key-cache", cache],
        Duration::from_secs(1500),
    );
    assert!(
        ok,
        "stratbox up --live failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}\n{stderr}"));
    let tasks = &json["tasks"];
    let count = |state: &str| tasks[state].as_i64().unwrap_or(0);
    assert!(
        count("CONFIRMED") >= 1,
        "no trade reached CONFIRMED: {json}\nstderr:\n{stderr}"
    );
    let live = &json["live"];
    assert_eq!(
        live["key_source"], "threshold-2of3-cggmp21",
        "signed with the threshold key: {live}"
    );
    let r = &live["reconciliation"];
    assert!(
        r.is_object(),
        "no reconciliation at the end: {json}\n{stderr}"
    );
    // What the summary reports in flight is all there is: nothing signed or sent is left
    // without its receipt.
    assert_eq!(
        count("SIGNED") + count("BROADCAST"),
        r["in_flight"].as_i64().expect("in_flight"),
        "{json}"
    );
    assert_eq!(
        r["in_flight"], 0,
        "a signed trade left without its receipt: {json}"
    );
    assert_eq!(live["in_flight_at_end"], 0, "{json}");
    let assets = r["assets"].as_array().expect("assets");
    let mut names: Vec<&str> = assets
        .iter()
        .map(|a| a["asset"].as_str().expect("asset"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "ether and both pool tokens: {r}");
    assert_eq!(names[2], "ether", "{r}");
    for a in assets {
        assert_eq!(a["difference"], "0", "a difference at the end: {a}");
    }
    assert_eq!(r["zero"], true, "{r}");
    // Anvil was stopped with the run.
    let endpoint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("anvil at "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no anvil line in\n{stderr}"));
    let port = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("a port");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "anvil still answers on {endpoint} after `stratbox up --live` exited"
    );
}

#[test]
fn up_live_refuses_the_embedded_chain() {
    let (ok, stdout, stderr) = run_to_end(
        &["--live", "--chain", "embedded", "--duration", "1"],
        Duration::from_secs(60),
    );
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("--live runs against Anvil"),
        "a clear refusal: {stderr}"
    );
}
