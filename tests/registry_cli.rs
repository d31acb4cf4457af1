//! The strategy registry through the real binary: `stratbox operator add` against the
//! database, `stratbox engine` on SQLite serving the registry, and `stratbox strategy
//! upload/list/show/deploy/scale/rollback/restore` against it. Bad uploads are refused with their
//! reason and leave `strategy list` unchanged; calls without the operator's key are
//! refused; every change is in `audit_log` under the operator's name.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use stratbox_proto::v1::{self, registry_client::RegistryClient};

use crate::support;

const CAP: usize = 2 << 20;

fn stratbox(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratbox"));
    cmd.args(args).env_remove("STRATBOX_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run stratbox")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one `error:` line of a failed command.
fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "exactly one error line: {text}");
    lines[0].to_owned()
}

/// Kills the engine if the test fails before stopping it.
struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_engine(dir: &Path, database: &str) -> (Engine, String) {
    start_engine_with(dir, database, &["--max-component-bytes", &CAP.to_string()])
}

fn start_engine_with(dir: &Path, database: &str, extra: &[&str]) -> (Engine, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .current_dir(dir)
        .args(["engine", "--listen", "127.0.0.1:0", "--database", database])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stratbox engine");
    let stdout = child.stdout.take().expect("stdout");
    let engine = Engine(child);
    let addr = support::listening_address(stdout);
    (engine, format!("http://{addr}"))
}

/// Python and JavaScript strategies go through the registry as Rust ones do, with the
/// engine's default cap (the hosts' own, 32 MiB) and its compile step in a child process:
/// an 18 MB componentize-py build is uploaded in chunks, compiled, stored and deployed.
#[test]
fn python_and_js_strategies_upload_and_deploy_with_the_default_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", dir.path().join("engine.db").display());
    let key = ok(stratbox(
        &["operator", "add", "pat", "--database", &database],
        &[],
    ));
    let key_file = dir.path().join("pat.key");
    std::fs::write(&key_file, key.trim()).expect("key file");
    let key_file = key_file.to_str().expect("utf-8").to_owned();
    let (_engine, url) = start_engine_with(dir.path(), &database, &[]);
    let with_key = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend([
            "--engine",
            url.as_str(),
            "--api-key-file",
            key_file.as_str(),
        ]);
        stratbox(&v, &[])
    };
    for (name, file) in [
        ("maker-py", stratbox_strategies::CLAMM_MAKER_PY),
        ("maker-js", stratbox_strategies::CLAMM_MAKER_JS),
    ] {
        let out = ok(with_key(&["strategy", "upload", file, "--name", name]));
        assert!(out.contains(&format!("uploaded {name}@1 sha256 ")), "{out}");
        let out = ok(with_key(&[
            "strategy",
            "deploy",
            name,
            "--instances",
            "2",
            "--no-wait",
        ]));
        assert!(out.contains(name), "{out}");
        let shown = ok(with_key(&["strategy", "show", name]));
        assert!(
            shown.contains("stratbox:strategy/strategy@0.1.1"),
            "{name}: {shown}"
        );
    }
}

#[test]
fn registry_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", dir.path().join("engine.db").display());

    // The operator is created on the database directly; the key is printed once.
    let key = ok(stratbox(
        &["operator", "add", "alice", "--database", &database],
        &[],
    ))
    .trim()
    .to_owned();
    assert_eq!(key.len(), 64, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let key_file = dir.path().join("alice.key");
    std::fs::write(&key_file, format!("{key}\n")).expect("key file");
    let key_file = key_file.to_str().expect("utf-8").to_owned();
    let again = failed(stratbox(
        &["operator", "add", "alice", "--database", &database],
        &[],
    ));
    assert!(again.contains("is taken"), "{again}");

    let (engine, url) = start_engine(dir.path(), &database);
    let remote = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--engine".into(), url.clone()]);
        v
    };
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let v = remote(args);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        stratbox(&refs, env)
    };
    let with_key = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--api-key-file", key_file.as_str()]);
        run(&v, &[])
    };

    assert!(ok(run(&["strategy", "list"], &[])).contains("(no strategies)"));
    let clamm = stratbox_strategies::CLAMM_MAKER;
    let out = ok(with_key(&["strategy", "upload", clamm, "--name", "maker"]));
    assert!(out.contains("uploaded maker@1 sha256 "), "{out}");
    let listed = ok(run(&["strategy", "list"], &[]));
    assert!(listed.contains("maker"), "{listed}");
    assert!(listed.contains("alice"), "{listed}");

    // Bad uploads: each refused with its reason; the registry is unchanged.
    let bytes = std::fs::read(clamm).expect("read clamm-maker");
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).expect("write");
        p.to_str().expect("utf-8").to_owned()
    };
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut oversized = bytes.clone();
    oversized.resize(CAP + 1, 0);
    // Far past the cap plus gRPC's message slack: refused for its size like the one just
    // over the cap, not by gRPC as a message too large.
    const HUGE: usize = 18_000_000;
    let mut huge = bytes.clone();
    huge.resize(HUGE, 0);
    let cases = [
        (write("random.bin", &noise), "not WebAssembly"),
        (
            write("truncated.wasm", &bytes[..bytes.len() / 2]),
            "truncated",
        ),
        (write("core.wasm", b"\0asm\x01\0\0\0"), "core wasm module"),
        (
            stratbox_strategies::OTHER_WORLD.to_owned(),
            "not a stratbox strategy",
        ),
        (
            write("oversized.wasm", &oversized),
            &format!("over the limit of {CAP} bytes"),
        ),
        (
            write("huge.wasm", &huge),
            &format!("file is {HUGE} bytes, over the limit of {CAP} bytes"),
        ),
    ];
    for (file, reason) in &cases {
        let line = failed(with_key(&["strategy", "upload", file, "--name", "maker"]));
        assert!(line.contains("upload refused"), "{file}: {line}");
        assert!(line.contains(reason), "{file}: {line}");
        assert!(line.contains("InvalidArgument"), "{file}: {line}");
    }
    assert_eq!(ok(run(&["strategy", "list"], &[])), listed);

    // Without a key, or with a wrong one.
    let line = failed(run(&["strategy", "upload", clamm, "--name", "x"], &[]));
    assert!(line.contains("needs an operator API key"), "{line}");
    let wrong = "ab".repeat(32);
    let line = failed(run(
        &["strategy", "upload", clamm, "--name", "x"],
        &[("STRATBOX_API_KEY", &wrong)],
    ));
    assert!(line.contains("unknown API key"), "{line}");
    assert!(line.contains("Unauthenticated"), "{line}");
    let line = failed(run(
        &["strategy", "deploy", "maker", "--instances", "9"],
        &[("STRATBOX_API_KEY", &wrong)],
    ));
    assert!(line.contains("Unauthenticated"), "{line}");
    // The same at the wire, with no credentials at all.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let code = rt.block_on(async {
        let mut c = RegistryClient::connect(url.clone()).await.expect("connect");
        c.scale(v1::ScaleRequest {
            trace: None,
            name: "maker".into(),
            instances: 7,
        })
        .await
        .expect_err("no key")
        .code()
    });
    assert_eq!(code, tonic::Code::Unauthenticated);
    assert_eq!(ok(run(&["strategy", "list"], &[])), listed);
    // The key also works from the environment.
    let out = ok(run(
        &[
            "strategy",
            "upload",
            stratbox_strategies::MOMENTUM,
            "--name",
            "maker",
        ],
        &[("STRATBOX_API_KEY", &key)],
    ));
    assert!(out.contains("uploaded maker@2"), "{out}");

    // Deploy, deploy newest, scale, rollback: each a new revision, visible in `show`.
    let config = write("config.json", br#"{"half_width_ticks": 60}"#);
    let out = ok(with_key(&[
        "strategy",
        "deploy",
        "maker@1",
        "--instances",
        "2",
        "--config",
        &config,
        "--no-wait",
    ]));
    assert!(out.contains("maker@1 x2 at revision 1 (by alice)"), "{out}");
    let out = ok(with_key(&[
        "strategy",
        "deploy",
        "maker",
        "--instances",
        "3",
        "--no-wait",
    ]));
    assert!(out.contains("maker@2 x3 at revision 2"), "{out}");
    let out = ok(with_key(&["strategy", "scale", "maker", "5", "--no-wait"]));
    assert!(out.contains("maker@2 x5 at revision 3"), "{out}");
    let out = ok(with_key(&["strategy", "rollback", "maker", "--no-wait"]));
    assert!(out.contains("maker@2 x3 at revision 4"), "{out}");
    let shown = ok(run(&["strategy", "show", "maker"], &[]));
    let current = shown
        .lines()
        .find(|l| l.contains(" current ") && !l.starts_with("deployments"))
        .unwrap_or_else(|| panic!("a current deployment in {shown}"));
    assert!(current.starts_with("4 "), "{current}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(run(&["strategy", "show", "maker", "--json"], &[])))
            .expect("show --json");
    assert_eq!(json["versions"].as_array().map(Vec::len), Some(2));
    let revisions: Vec<u64> = json["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .filter_map(|d| d["revision"].as_u64())
        .collect();
    assert_eq!(revisions, vec![4, 3, 2, 1]);
    assert_eq!(json["deployments"][0]["version"], "2");
    assert_eq!(json["deployments"][0]["instances"], 3);
    let out = ok(with_key(&["strategy", "rollback", "maker", "--no-wait"]));
    assert!(out.contains("maker@1 x2 at revision 5"), "{out}");
    let shown = ok(run(&["strategy", "show", "maker", "--json"], &[]));
    assert!(shown.contains("half_width_ticks"), "{shown}");
    let line = failed(with_key(&["strategy", "rollback", "maker"]));
    assert!(line.contains("no deployment before revision 5"), "{line}");
    let line = failed(with_key(&["strategy", "deploy", "maker@7"]));
    assert!(line.contains("no version 7"), "{line}");
    // A change no host runs is not reported as a success.
    let line = failed(with_key(&[
        "strategy",
        "scale",
        "maker",
        "4",
        "--timeout",
        "1s",
    ]));
    assert!(line.contains("no host is watching deployments"), "{line}");

    // Restoring a strategy the engine has not halted: refused by the engine (after the
    // key is checked); `show` reports its level.
    let line = failed(run(&["strategy", "restore", "maker", "--level", "L1"], &[]));
    assert!(line.contains("needs an operator API key"), "{line}");
    let line = failed(run(
        &["strategy", "restore", "maker"],
        &[("STRATBOX_API_KEY", &wrong)],
    ));
    assert!(line.contains("Unauthenticated"), "{line}");
    let line = failed(with_key(&["strategy", "restore", "maker", "--level", "L1"]));
    assert!(line.contains("only a halted (L0) strategy"), "{line}");
    assert!(line.contains("FailedPrecondition"), "{line}");
    let shown = ok(run(&["strategy", "show", "maker"], &[]));
    assert!(shown.contains("permission: L1"), "{shown}");

    // The kill switch: anyone may read it; engaging and clearing need the key, and are
    // done under its operator's name.
    let shown = ok(run(&["kill-switch", "show"], &[]));
    assert_eq!(shown.trim(), "kill switch off", "{shown}");
    let line = failed(run(&["kill-switch", "set", "--reason", "maintenance"], &[]));
    assert!(line.contains("needs an operator API key"), "{line}");
    let line = failed(run(
        &["kill-switch", "clear"],
        &[("STRATBOX_API_KEY", &wrong)],
    ));
    assert!(line.contains("Unauthenticated"), "{line}");
    let line = failed(with_key(&["kill-switch", "set", "--reason", " "]));
    assert!(line.contains("needs a reason"), "{line}");
    let set = ok(with_key(&["kill-switch", "set", "--reason", "maintenance"]));
    assert!(set.starts_with("kill switch ENGAGED by alice"), "{set}");
    let shown = ok(run(&["kill-switch", "show", "--json"], &[]));
    let state: serde_json::Value = serde_json::from_str(shown.trim()).expect("JSON");
    assert_eq!(state["engaged"], true, "{shown}");
    assert_eq!(state["reason"], "maintenance", "{shown}");
    assert_eq!(state["operator"], "alice", "{shown}");
    let cleared = ok(with_key(&["kill-switch", "clear"]));
    assert!(
        cleared.starts_with("kill switch off (cleared by alice"),
        "{cleared}"
    );
    // What the engine answers is printed escaped: a reason holding a screen clear, a C1 CSI
    // and a bidi override acts on no terminal, and its JSON still means what was written.
    let hostile = "stop\u{1b}[2J\u{9b}31m\u{202e}now";
    ok(with_key(&["kill-switch", "set", "--reason", hostile]));
    let shown = ok(run(&["kill-switch", "show"], &[]));
    assert!(
        !shown
            .trim_end()
            .chars()
            .any(stratbox_host::display::needs_escape),
        "{shown:?}"
    );
    assert!(
        shown.contains("stop\\u{1b}[2J\\u{9b}31m\\u{202e}now"),
        "{shown:?}"
    );
    let shown = ok(run(&["kill-switch", "show", "--json"], &[]));
    assert!(
        !shown
            .trim_end()
            .chars()
            .any(stratbox_host::display::needs_escape),
        "{shown:?}"
    );
    let state: serde_json::Value = serde_json::from_str(shown.trim()).expect("JSON");
    assert_eq!(state["reason"], hostile, "{shown}");
    ok(with_key(&["kill-switch", "clear"]));

    // A revoked operator's key works no more, from the next call on.
    ok(stratbox(
        &["operator", "revoke", "alice", "--database", &database],
        &[],
    ));
    let line = failed(with_key(&[
        "kill-switch",
        "set",
        "--reason",
        "after revoke",
    ]));
    assert!(line.contains("Unauthenticated"), "{line}");
    let listed = ok(stratbox(
        &["operator", "list", "--database", &database],
        &[],
    ));
    assert!(
        listed.contains("alice") && listed.contains("revoked at"),
        "{listed}"
    );

    // Ctrl-C stops the engine cleanly.
    let mut engine = engine;
    let stopped = Command::new("kill")
        .args(["-INT", &engine.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let exit = engine.0.wait().expect("wait");
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");

    // The audit trail names the operator for every change.
    let audit = rt.block_on(async {
        let store = stratbox_engine::Store::connect(&database)
            .await
            .expect("open db");
        let a = store.audit_for("strategy:maker").await.expect("audit");
        store.close().await;
        a
    });
    let actions: Vec<(String, String)> = audit
        .iter()
        .map(|a| (a.actor.clone(), a.action.clone()))
        .collect();
    let expected: Vec<(String, String)> = [
        "strategy_uploaded",
        "strategy_uploaded",
        "strategy_deploy",
        "strategy_deploy",
        "strategy_scale",
        "strategy_rollback",
        "strategy_rollback",
        "strategy_scale",
    ]
    .iter()
    .map(|a| ("alice".to_owned(), a.to_string()))
    .collect();
    assert_eq!(actions, expected);
    assert!(audit.iter().all(|a| a.trace_id.len() == 32));
}
