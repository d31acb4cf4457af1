//! The engine through grpcurl, the standard gRPC command-line client, which knows nothing of
//! stratbox's protos: it discovers the services by server reflection, reads the engine's
//! markets and status, submits a proposal as JSON with a host's key and gets a SIMULATED task
//! back, and a replay of the same proposal returns the same task. Reflection lists the
//! engine's services and the standard health service, never the signer's. `scripts/setup` installs grpcurl into
//! `.tools/bin/` (or point `STRATBOX_GRPCURL` at one).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::support;

pub(crate) fn grpcurl() -> PathBuf {
    let path = std::env::var_os("STRATBOX_GRPCURL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/grpcurl"));
    assert!(
        path.is_file(),
        "grpcurl not found at {}: run scripts/setup (it installs grpcurl 1.8.6 into .tools/bin)",
        path.display()
    );
    path
}

/// Runs `grpcurl -plaintext FLAGS ADDR VERB…`; a failed call fails the test with grpcurl's
/// own message.
fn call(addr: &str, flags: &[&str], args: &[&str]) -> String {
    let out = Command::new(grpcurl())
        .arg("-plaintext")
        .args(flags)
        .arg(addr)
        .args(args)
        .output()
        .expect("run grpcurl");
    assert!(
        out.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `call` with a JSON request body on `-d` (and `-H authorization: Bearer KEY`).
fn invoke(addr: &str, method: &str, body: &Value, key: Option<&str>) -> Value {
    let body = body.to_string();
    let header = key.map(|k| format!("authorization: Bearer {k}"));
    let mut flags = vec!["-d", body.as_str()];
    if let Some(h) = &header {
        flags.extend(["-H", h.as_str()]);
    }
    let text = call(addr, &flags, &[method]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("grpcurl printed non-JSON ({e}): {text}"))
}

struct Engine {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_engine() -> Engine {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = support::stratbox()
        .current_dir(dir.path())
        .args(["engine", "--listen", "127.0.0.1:0", "--oracle-from-pool"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stratbox engine");
    let stdout = child.stdout.take().expect("stdout");
    let addr = support::listening_address(stdout);
    Engine {
        child,
        addr,
        _dir: dir,
    }
}

#[test]
fn grpcurl_lists_describes_and_submits() {
    let engine = start_engine();
    let addr = engine.addr.as_str();

    let services: Vec<String> = call(addr, &[], &["list"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        services.iter().any(|s| s == "stratbox.v1.TradingEngine"),
        "reflection lists the engine's service: {services:?}"
    );
    assert!(
        services.iter().any(|s| s == "grpc.health.v1.Health"),
        "reflection lists the health service: {services:?}"
    );
    assert!(
        !services.iter().any(|s| s.contains("Signer")),
        "the engine does not serve Zone C's service: {services:?}"
    );
    let health = invoke(addr, "grpc.health.v1.Health/Check", &json!({}), None);
    assert_eq!(health["status"], "SERVING", "{health}");

    let database = format!(
        "sqlite://{}/.stratbox/engine.db",
        engine._dir.path().display()
    );
    let ops = support::add_key("operator", "ops", &database);
    let host = support::add_key("host-key", "grpcurl-host", &database);
    support::upload(
        &format!("http://{addr}"),
        &ops,
        "grpcurl",
        &support::component(engine._dir.path(), "tally"),
    );
    let methods = call(addr, &[], &["list", "stratbox.v1.TradingEngine"]);
    for method in [
        "SubmitProposals",
        "GetTask",
        "ListTasks",
        "SetKillSwitch",
        "GetPermission",
        "RestoreStrategy",
    ] {
        assert!(
            methods.contains(&format!("stratbox.v1.TradingEngine.{method}")),
            "{method} missing from {methods}"
        );
    }
    // Anyone who reaches the port (Zone A does) cannot pull the kill switch by naming an
    // operator: it takes an operator key.
    let out = Command::new(grpcurl())
        .args([
            "-plaintext",
            "-d",
            r#"{"reason":"x","operator":"root"}"#,
            addr,
        ])
        .arg("stratbox.v1.TradingEngine/SetKillSwitch")
        .output()
        .expect("run grpcurl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused without a key: {stderr}");
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    let described = call(addr, &[], &["describe", "stratbox.v1.Amount"]);
    assert!(
        described.contains("string value"),
        "an Amount is a string, never a float: {described}"
    );

    let markets = invoke(
        addr,
        "stratbox.v1.TradingEngine/ListMarkets",
        &json!({}),
        None,
    );
    let pool = markets["markets"][0]["pool"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no pool in {markets}"))
        .to_owned();
    let status = invoke(
        addr,
        "stratbox.v1.TradingEngine/GetStatus",
        &json!({}),
        None,
    );
    // proto3 JSON writes uint64 as a string, and leaves a zero out.
    let watermark = status["lastSyncBlock"].as_str().unwrap_or("0").to_owned();

    let submit = json!({
        "trace": {"traceId": "0af7651916cd43dd8448eb211c80319c"},
        "proposals": [{
            "strategy": "grpcurl",
            "strategyVersion": "1",
            "account": "acct",
            "eventId": "grpcurl-1",
            "lastSyncBlock": watermark,
            "swap": {
                "pool": {"value": pool},
                "zeroForOne": true,
                "amountIn": {"value": "1000000"}
            },
            "expectedAmount0": {"value": "1000000"},
            "expectedAmount1": {"value": "0"},
            "maxSlippageBps": 50
        }]
    });
    let first = invoke(
        addr,
        "stratbox.v1.TradingEngine/SubmitProposals",
        &submit,
        Some(&host),
    );
    let result = &first["results"][0];
    assert_eq!(result["state"], "TASK_STATE_SIMULATED", "{first}");
    let task_id = result["taskId"].as_str().expect("task id").to_owned();

    let again = invoke(
        addr,
        "stratbox.v1.TradingEngine/SubmitProposals",
        &submit,
        Some(&host),
    );
    assert_eq!(again["results"][0]["taskId"], task_id.as_str(), "{again}");
    assert_eq!(again["results"][0]["duplicate"], true, "{again}");

    let task = invoke(
        addr,
        "stratbox.v1.TradingEngine/GetTask",
        &json!({ "taskId": task_id }),
        None,
    );
    assert_eq!(task["state"], "TASK_STATE_SIMULATED", "{task}");
    assert_eq!(task["proposal"]["swap"]["amountIn"]["value"], "1000000");

    // A float amount is refused by the engine with a clear reason, not rounded.
    let mut float = submit.clone();
    float["proposals"][0]["eventId"] = json!("grpcurl-float");
    float["proposals"][0]["swap"]["amountIn"]["value"] = json!("1000000.5");
    let refused = invoke(
        addr,
        "stratbox.v1.TradingEngine/SubmitProposals",
        &float,
        Some(&host),
    );
    let result = &refused["results"][0];
    assert_eq!(result["state"], "TASK_STATE_REJECTED", "{refused}");
    assert_eq!(result["reasonCode"], "bad_input", "{refused}");
    let detail = result["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("amount_in"),
        "the refusal names the bad field: {refused}"
    );
}
