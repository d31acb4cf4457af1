//! The benchmark commands run end to end on small workloads: each prints its table with
//! every proposal simulated (engine) or every event answered (pipeline). Their numbers are
//! not judged here: speed is measured by running them, never asserted by a test.

use std::process::Command;

fn bench(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .current_dir(dir.path())
        // `bench signer` keeps its primes and its --quick key in the target dir: the test
        // target dir's, shared with the threshold tests, so no test makes them twice.
        .env("CARGO_TARGET_DIR", stratbox_testenv::target_dir())
        .arg("bench")
        .args(args)
        .output()
        .expect("run stratbox bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stratbox bench {args:?} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The row of the first table that starts with `batch`, split on `|`.
fn engine_row(stdout: &str, batch: &str) -> Vec<String> {
    stdout
        .lines()
        .find(|l| l.split('|').next().map(str::trim) == Some(batch))
        .unwrap_or_else(|| panic!("no row for batch {batch} in\n{stdout}"))
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect()
}

#[test]
fn bench_engine_simulates_every_proposal_on_both_backends() {
    let pg = stratbox_testenv::postgres_url();
    let out = bench(&[
        "engine",
        "--proposals",
        "60",
        "--clients",
        "2",
        "--batch",
        "1",
        "--batch",
        "3",
        "--postgres",
        &pg,
    ]);
    for batch in ["1", "3"] {
        let row = engine_row(&out, batch);
        assert_eq!(row.last().map(String::as_str), Some("60/60"), "{out}");
        let rates: Vec<f64> = row[1]
            .split_whitespace()
            .take(2)
            .map(|r| r.parse().expect("a rate"))
            .collect();
        assert!(rates.iter().all(|r| *r > 0.0), "{out}");
        assert!(
            out.contains(&format!("at batch {batch}: ")),
            "the target line for batch {batch}: {out}"
        );
    }
}

#[test]
fn bench_pipeline_answers_every_event() {
    let out = bench(&[
        "pipeline",
        "--instances",
        "10",
        "--blocks",
        "40",
        "--warmup",
        "5",
        "--block-interval",
        "0ms",
    ]);
    let every = out
        .lines()
        .find(|l| l.starts_with("every event"))
        .unwrap_or_else(|| panic!("no latency row in\n{out}"));
    let n: u64 = every
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(n >= 40, "every measured block's events are answered: {out}");
    let handled = out
        .lines()
        .find(|l| l.starts_with("events handled"))
        .unwrap_or_else(|| panic!("no totals in\n{out}"));
    assert!(!handled.contains("simulated 0 "), "{out}");
}

#[test]
fn bench_signer_measures_the_policy_check_signing_and_the_round_trip() {
    let out = bench(&["signer", "--quick"]);
    for row in [
        "| policy check, executor.swap",
        "| policy check, executor.mint",
        "| single-key signing",
        "| SignTransaction round trip over mTLS, SQLite store",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?} in\n{out}"));
        assert!(line.contains("µs"), "{line}");
    }
    assert!(out.contains("target: policy check under 50 µs: "), "{out}");
    for row in [
        "| threshold 2-of-3 signing, online (presignature ready)",
        "| single-key signing, the same transactions, alternated",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?} in\n{out}"));
        assert!(line.contains("µs") && line.ends_with("| 3 |"), "{line}");
    }
    assert!(
        out.contains("threshold / single-key signing, medians side by side: "),
        "{out}"
    );
    assert!(
        out.contains("presignatures per second (pair 0,1): ")
            && out.contains("keygen ceremony skipped (cached test key)"),
        "{out}"
    );
    assert!(
        out.contains("target: online threshold signing under 10 ms median: "),
        "{out}"
    );
}

#[test]
fn bench_rollout_measures_swaps_and_scales_on_a_working_fleet() {
    // The bench itself fails unless every change switched and every instance answered the
    // block after it; here its table must have every row, with times and ratios.
    let out = bench(&[
        "rollout",
        "--rounds",
        "3",
        "--swap-instances",
        "2",
        "--scale-to",
        "20",
    ]);
    for change in [
        "swap, 2 stateful momentum instances",
        "scale clamm-maker 1 -> 20",
        "scale clamm-maker 20 -> 1",
    ] {
        for (what, unit) in [
            ("pause on the event path", "s"),
            ("whole change", "s"),
            ("pause / whole (median ratio)", "."),
        ] {
            let row = format!("{change}: {what}");
            let line = out
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("no row {row:?} in\n{out}"));
            assert!(line[row.len()..].contains(unit), "{line}");
        }
    }
}

#[test]
fn bench_live_confirms_trades_in_both_chain_modes() {
    // The bench fails unless every trade is CONFIRMED with each audit row it splits the
    // latency by; here its table must have every part for both modes, with times.
    let out = bench(&["live", "--quick"]);
    assert!(
        out.contains("signer key: dev-keystore (development keystore, single key)"),
        "{out}"
    );
    for mode in ["automine", "1 s blocks"] {
        for part in [
            "decide (submit -> STAGED)",
            "wait (STAGED -> nonce assigned)",
            "signer (nonce -> SIGNED)",
            "send (SIGNED -> BROADCAST)",
            "inclusion (BROADCAST -> CONFIRMED)",
            "total (submit -> CONFIRMED)",
        ] {
            let row = format!("| {mode} | {part} |");
            let line = out
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("no row {row:?} in\n{out}"));
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            for cell in &cells[3..5] {
                let ms: f64 = cell
                    .strip_suffix(" ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("not a time: {cell:?} in {line}"));
                assert!(ms >= 0.0, "{line}");
            }
            assert_eq!(cells[5], "3", "three trades measured: {line}");
        }
        assert!(
            out.contains(&format!("signer share of the total, {mode}: median ")),
            "{out}"
        );
    }
}
