//! `stratbox up` as a user runs it: on the embedded chain, and with `--chain anvil` against
//! an Anvil it starts itself. Each must print the live table, end with a summary showing
//! handled events and SIMULATED tasks on a balanced ledger, and exit 0; the Anvil run must
//! leave no Anvil behind.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Summary {
    stdout: String,
    events: u64,
    simulated: u64,
    ledger_entries: u64,
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
    let s = run_up(&["--duration", "8"], Duration::from_secs(120));
    assert_worked(&s);
}

#[test]
fn up_against_anvil() {
    let s = run_up(
        &["--chain", "anvil", "--duration", "10"],
        Duration::from_secs(180),
    );
    assert_worked(&s);
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
