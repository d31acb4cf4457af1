//! `stratbox strategy check` and `stratbox backtest`, through the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn stratbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(args)
        .output()
        .expect("run stratbox")
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "exactly one error line, got: {text}");
    lines[0].to_string()
}

fn refused(file: &Path, extra: &[&str]) -> String {
    let mut args = vec!["strategy", "check", file.to_str().expect("utf8 path")];
    args.extend_from_slice(extra);
    let out = stratbox(&args);
    assert!(!out.status.success(), "{} must be refused", file.display());
    stderr_line(&out)
}

#[test]
fn check_accepts_a_strategy_and_prints_world_imports_size_and_digest() {
    let out = stratbox(&["strategy", "check", stratbox_strategies::CLAMM_MAKER]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes = std::fs::read(stratbox_strategies::CLAMM_MAKER).expect("read");
    assert!(
        text.contains("world:   stratbox:strategy/strategy@0.1."),
        "{text}"
    );
    assert!(
        text.contains(&format!("size:    {} bytes", bytes.len())),
        "{text}"
    );
    assert!(text.contains("wasi:cli/stdout@0.2"), "{text}");
    let json = stratbox(&[
        "strategy",
        "check",
        "--json",
        stratbox_strategies::CLAMM_MAKER,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json report");
    assert_eq!(report["size"], bytes.len());
    assert_eq!(report["sha256"].as_str().map(str::len), Some(64));
    assert!(text.contains(report["sha256"].as_str().unwrap_or("missing")));
}

#[test]
fn check_refuses_malformed_inputs_with_one_line_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let component = std::fs::read(stratbox_strategies::CLAMM_MAKER).expect("read");

    let noise: Vec<u8> = (0u32..2048)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let line = refused(&write("random.bin", &noise), &[]);
    assert!(line.contains("not WebAssembly"), "{line}");

    let line = refused(
        &write("truncated.wasm", &component[..component.len() / 2]),
        &[],
    );
    assert!(line.contains("truncated"), "{line}");

    let line = refused(&write("core.wasm", b"\0asm\x01\0\0\0"), &[]);
    assert!(line.contains("core wasm module"), "{line}");

    let line = refused(Path::new(stratbox_strategies::OTHER_WORLD), &[]);
    assert!(line.contains("not a stratbox strategy"), "{line}");

    let line = refused(
        Path::new(stratbox_strategies::CLAMM_MAKER),
        &["--max-bytes", "1000"],
    );
    assert!(line.contains("over the limit of 1000 bytes"), "{line}");

    let line = refused(&dir.path().join("missing.wasm"), &[]);
    assert!(line.contains("missing.wasm"), "{line}");
}

#[test]
fn backtest_replays_the_sample_and_prints_json() {
    let events = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/host/runtime/testdata/random-walk.jsonl"
    );
    let config = serde_json::json!({
        "pool": "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640",
        "half_width_ticks": 60,
        "margin_ticks": 0,
        "liquidity": "1000000000000000000",
        "max_slippage_bps": 50,
    })
    .to_string();
    let out = stratbox(&[
        "backtest",
        "--strategy",
        stratbox_strategies::CLAMM_MAKER,
        "--events",
        events,
        "--config",
        &config,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let lines = std::fs::read_to_string(events)
        .expect("events")
        .lines()
        .count() as u64;
    assert_eq!(report["events"], lines);
    assert_eq!(report["calls"], lines);
    assert!(
        report["errors"].as_object().is_some_and(|e| e.is_empty()),
        "{}",
        report["errors"]
    );
    let proposals = report["proposals"].as_array().expect("proposals");
    assert!(!proposals.is_empty());
    assert_eq!(report["proposal_count"], proposals.len());
    // Amounts leave as base-10 strings.
    let first = &proposals[0]["proposal"];
    assert_eq!(first["action"]["type"], "add-liquidity");
    assert!(
        first["expected_amount0"]
            .as_str()
            .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
    );
    assert!(report["fuel"]["total"].as_u64().is_some_and(|f| f > 0));
    assert!(
        report["latency"]["p50_us"]
            .as_f64()
            .is_some_and(|p| p > 0.0)
    );
    assert!(report["latency"]["p99_us"].as_f64() >= report["latency"]["p50_us"].as_f64());

    // The same replay twice gives the same proposals.
    let again = stratbox(&[
        "backtest",
        "--strategy",
        stratbox_strategies::CLAMM_MAKER,
        "--events",
        events,
        "--config",
        &config,
        "--json",
    ]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(again["proposals"], report["proposals"]);
}

#[test]
fn backtest_reports_errors_by_kind() {
    let events = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/host/runtime/testdata/random-walk.jsonl"
    );
    let out = stratbox(&[
        "backtest",
        "--strategy",
        stratbox_strategies::HOSTILE,
        "--events",
        events,
        "--config",
        r#"{"mode":"loop"}"#,
        "--fuel",
        "1000000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let errors = report["errors"].as_object().expect("errors");
    assert!(
        errors
            .get("out_of_fuel")
            .and_then(|v| v.as_u64())
            .is_some_and(|n| n >= 3),
        "{errors:?}"
    );
    assert!(errors.contains_key("quarantined"), "{errors:?}");
    assert_eq!(report["proposal_count"], 0);
}

#[test]
fn backtest_refuses_a_bad_event_file_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"timestamp\":1,\"event\":{\"type\":\"new-block\",\"number\":1,\"timestamp\":1}}\nnot json\n").expect("write");
    let out = stratbox(&[
        "backtest",
        "--strategy",
        stratbox_strategies::CLAMM_MAKER,
        "--events",
        path.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("line 2"));
}

const SAMPLE_EVENTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/host/runtime/testdata/random-walk.jsonl"
);

#[test]
fn backtest_prints_what_a_strategy_wrote_escaped() {
    let config = r#"{"mode":"control-reason"}"#;
    let run = |extra: &[&str]| {
        let mut args = vec![
            "backtest",
            "--strategy",
            stratbox_strategies::HOSTILE,
            "--events",
            SAMPLE_EVENTS,
            "--config",
            config,
        ];
        args.extend_from_slice(extra);
        let out = stratbox(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let raw = stratbox_strategies::HOSTILE_CONTROL_REASON;

    let text = run(&[]);
    let bad: Vec<char> = text
        .chars()
        .filter(|c| *c != '\n' && stratbox_host::display::needs_escape(*c))
        .collect();
    assert!(
        bad.is_empty(),
        "{} raw controls in the output, the first {:?}",
        bad.len(),
        &bad[..bad.len().min(9)]
    );
    let shown = stratbox_host::display::escape(raw);
    assert!(text.contains(shown.as_ref()), "{shown} not in\n{text}");
    for piece in [
        "\\0",
        "\\u{1b}[2J",
        "\\u{9b}31m",
        "\\u{1b}]0;pwned\\u{7}",
        "\\u{202e}",
        "\\u{2066}",
        "\\u{7f}",
    ] {
        assert!(text.contains(piece), "{piece} not in\n{text}");
    }

    // JSON stays JSON, meaning exactly what the strategy wrote, with nothing raw in it.
    let json = run(&["--json"]);
    assert!(
        !json
            .trim_end()
            .chars()
            .any(stratbox_host::display::needs_escape),
        "{json}"
    );
    let report: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    let proposals = report["proposals"].as_array().expect("proposals");
    assert!(!proposals.is_empty());
    for p in proposals {
        assert_eq!(p["proposal"]["reason"], raw);
    }
}

#[test]
fn backtest_refuses_memory_above_the_hosts_ceiling() {
    let out = stratbox(&[
        "backtest",
        "--strategy",
        stratbox_strategies::HOSTILE,
        "--events",
        SAMPLE_EVENTS,
        "--config",
        r#"{"mode":"grow-memory"}"#,
        "--memory-mib",
        "4096",
    ]);
    assert!(!out.status.success(), "4 GiB must be refused");
    let line = stderr_line(&out);
    assert!(
        line.contains("--memory-mib 4096 is over the host's memory ceiling of 1024 MiB"),
        "{line}"
    );
}
