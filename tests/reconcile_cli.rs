//! `stratbox reconcile` on bad input: each refusal says what is wrong and exits non-zero
//! (a cron job or deploy check reads the status). The reconciliation itself, against a real
//! chain, is in `tests/live_e2e.rs`.

use crate::support;

fn reconcile(args: &[&str]) -> (i32, String) {
    let out = support::stratbox()
        .arg("reconcile")
        .args(args)
        .output()
        .expect("stratbox runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", dir.path().join("engine.db").display());
    let account = "0x00000000000000000000000000000000000000a1";

    let (code, err) = reconcile(&["--database", &database, "--account", "0xnothex"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--account 0xnothex"), "{err}");
    assert!(err.contains("40 hex digits"), "{err}");

    let (code, err) = reconcile(&["--database", &database, "--account", account, "--adopt"]);
    assert_eq!(code, 2, "clap's usage error: {err}");
    assert!(err.contains("--reason"), "{err}");

    let (code, err) = reconcile(&["--database", &database, "--account", account]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no engine database at"), "{err}");
    assert!(
        !dir.path().join("engine.db").exists(),
        "a read leaves no database behind"
    );
    // The engine's database, made as an operator would (any command that writes it).
    support::add_key("operator", "alice", &database);

    let on_chain = |chain: &str| {
        reconcile(&[
            "--database",
            &database,
            "--account",
            account,
            "--chain",
            chain,
        ])
    };

    // A wallet the live path never opened: nothing to compare, and that is an error.
    let (code, err) = on_chain("http://127.0.0.1:1");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "no opening balances are booked for 0x00000000000000000000000000000000000000a1"
        ),
        "{err}"
    );

    let (code, err) = on_chain("not a url");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--chain not a url"), "{err}");
}
