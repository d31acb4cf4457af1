//! `stratbox risk show|set|cancel` against a `stratbox engine` process with a one-hour
//! `--risk-timelock`: a tighter file applies at once, a looser one is pending with when it
//! takes effect, a pending change is cancelled once; bad files (an unknown field, a float
//! where an amount is expected) and a missing key are refused with their reason.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use crate::support::{add_key, stratbox};

/// Kills the engine however the test ends.
struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn risk(url: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd: Command = stratbox();
    cmd.arg("risk").args(args).args(["--engine", url]);
    match key {
        Some(k) => cmd.env("STRATBOX_API_KEY", k),
        None => cmd.env_remove("STRATBOX_API_KEY"),
    };
    cmd.output().expect("stratbox risk runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn risk_show_set_cancel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}/engine.db", dir.path().display());
    let mut child = stratbox()
        .args(["engine", "--listen", "127.0.0.1:0", "--risk-timelock", "1h"])
        .args(["--database", &database])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stratbox engine");
    let stdout = child.stdout.take().expect("stdout");
    let _engine = Engine(child);
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let url = format!("http://{addr}");
    let ops = add_key("operator", "ops", &database);

    let shown = ok(&risk(&url, None, &["show"]));
    assert!(shown.contains("limits.max_slippage_bps"), "{shown}");
    assert!(shown.contains("loosening waits 1h0m"), "{shown}");
    assert!(shown.contains("no pending changes"), "{shown}");

    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let tight = file("tight.toml", "[limits]\nmax_slippage_bps = 40\n");
    let out = ok(&risk(
        &url,
        Some(&ops),
        &["set", "--file", &tight, "--reason", "drill"],
    ));
    assert!(out.contains("tightened at once"), "{out}");
    assert!(out.contains("limits.max_slippage_bps"), "{out}");
    assert!(!out.contains("pending"), "{out}");

    let loose = file("loose.toml", "[limits]\nmax_slippage_bps = 200\n");
    let out = ok(&risk(&url, Some(&ops), &["set", "--file", &loose]));
    assert!(out.contains("loosening pending"), "{out}");
    assert!(out.contains("takes effect at "), "{out}");

    let shown: serde_json::Value =
        serde_json::from_str(&ok(&risk(&url, None, &["show", "--json"]))).expect("json");
    assert_eq!(shown["limits"]["limits"]["max_slippage_bps"], 40, "{shown}");
    assert_eq!(shown["timelock_ms"], 3_600_000);
    let pending = shown["pending"].as_array().expect("pending");
    assert_eq!(pending.len(), 1, "{shown}");
    assert_eq!(pending[0]["operator"], "ops");
    assert_eq!(pending[0]["fields"][0]["field"], "limits.max_slippage_bps");
    assert_eq!(pending[0]["fields"][0]["old"], 40);
    assert_eq!(pending[0]["fields"][0]["new"], 200);
    let id = pending[0]["id"].as_u64().expect("id").to_string();

    // Refused: no key; an unknown field; a float where an amount (a base-10 string) goes.
    let e = refused(&risk(&url, None, &["set", "--file", &tight]));
    assert!(
        e.contains("API key") || e.contains("STRATBOX_API_KEY"),
        "{e}"
    );
    let typo = file("typo.toml", "[limits]\nmax_slipage_bps = 40\n");
    let e = refused(&risk(&url, Some(&ops), &["set", "--file", &typo]));
    assert!(e.contains("max_slipage_bps"), "{e}");
    let float = file(
        "float.toml",
        "[permission.levels.l3]\nmax_notional = 1.5e18\n",
    );
    let e = refused(&risk(&url, Some(&ops), &["set", "--file", &float]));
    assert!(e.contains("max_notional"), "{e}");
    let e = refused(&risk(&url, Some(&ops), &["set", "--file", &tight]));
    assert!(e.contains("nothing to change"), "{e}");

    let out = ok(&risk(
        &url,
        Some(&ops),
        &["cancel", &id, "--reason", "too loose"],
    ));
    assert!(out.contains("CANCELLED"), "{out}");
    let e = refused(&risk(&url, Some(&ops), &["cancel", &id]));
    assert!(e.contains("not pending"), "{e}");
    let shown = ok(&risk(&url, None, &["show"]));
    assert!(shown.contains("no pending changes"), "{shown}");
}
