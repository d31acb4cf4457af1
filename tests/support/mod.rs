//! What the process-level tests share: where the real services are, unique names for the
//! databases and streams a test makes, and reading the address a `stratbox` service prints.
//! Each test binary uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command};
use std::time::{Duration, Instant};

/// The PostgreSQL server tests create their databases on (`scripts/test` sets it).
pub fn postgres_admin() -> String {
    std::env::var("STRATBOX_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("STRATBOX_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A name no other run uses, so concurrent and repeated runs never share state.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// The `ADDR` of the first "… listening on ADDR …" line a service prints on stdout. The
/// rest of stdout is drained on a thread so the service never blocks on a full pipe.
pub fn listening_address(stdout: ChildStdout) -> String {
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the service printed its address before exiting")
            .expect("utf-8");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("an address")
                .to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    addr
}

/// One `psql` query on `url`, rows as `|`-separated fields.
pub fn psql(url: &str, sql: &str) -> Vec<Vec<String>> {
    let out = Command::new("psql")
        .args([url, "-XAtqc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// A child process that is interrupted (SIGINT, like Ctrl-C) and reaped when dropped, so a
/// failing assertion never leaves an engine or host behind.
pub struct Proc {
    pub child: Option<Child>,
    pub name: &'static str,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            child: Some(child),
            name,
        }
    }

    /// SIGKILL (a crash), and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGINT, then wait up to 20 s; returns whether it exited successfully.
    pub fn interrupt(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    eprintln!("{} did not stop on SIGINT; killing it", self.name);
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.interrupt();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A plain HTTP/1.1 GET on loopback; the body.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

pub async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `stratbox` binary under test.
pub fn stratbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stratbox"))
}

/// A key made with `stratbox operator add` or `stratbox host-key add` (`kind`) on the
/// engine's database; returns the key text.
pub fn add_key(kind: &str, name: &str, database: &str) -> String {
    let out = stratbox()
        .args([kind, "add", name, "--database", database])
        .output()
        .expect("stratbox runs");
    assert!(
        out.status.success(),
        "stratbox {kind} add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes `key` to `dir/NAME.key` (what a host's `--key-file` reads) and returns the path.
pub fn key_file(dir: &Path, name: &str, key: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, key).expect("write the key file");
    path
}

/// Uploads `file` as strategy `name` with `stratbox strategy upload` and an operator key.
pub fn upload(engine: &str, operator_key: &str, name: &str, file: &Path) {
    let out = stratbox()
        .env("STRATBOX_API_KEY", operator_key)
        .args(["strategy", "upload"])
        .arg(file)
        .args(["--name", name, "--engine", engine])
        .output()
        .expect("stratbox runs");
    assert!(
        out.status.success(),
        "uploading {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the catalog component `name` to `dir/NAME.wasm` and returns the path.
pub fn component(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(
        &path,
        stratbox_strategies::bytes(name).expect("catalog component"),
    )
    .expect("write the component");
    path
}
