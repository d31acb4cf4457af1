//! What the process-level tests share: where the real services are, unique names for the
//! databases and streams a test makes, reading the address a `stratbox` service prints,
//! `stratbox` child processes with their stderr collected, waiting on a condition, a
//! host's metrics, and a synthetic market's events. Each test binary uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stratbox_proto::v1::{self, chain_event};

/// Events per block of [`swing_event`]: four swaps, then the block.
pub const PER_BLOCK: u64 = 5;
/// Square-root prices (Q64.96) of ticks +600 and -600.
const SQRT_UP: &str = "81640896826356156310682304525";
const SQRT_DOWN: &str = "76886731765546235930195592749";

/// The PostgreSQL server tests create their databases on (`STRATBOX_TEST_POSTGRES`, which
/// `scripts/test` sets); the test fails, naming it, when it is not there.
pub fn postgres_admin() -> String {
    stratbox_testenv::postgres_url()
}

/// The Redis server tests publish on (`STRATBOX_TEST_REDIS`); fails like
/// [`postgres_admin`].
pub fn redis_url() -> String {
    stratbox_testenv::redis_url()
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

/// A service process that is interrupted (SIGINT, like Ctrl-C) and reaped when dropped, so
/// a failing assertion never leaves an engine or host behind; its output goes where its
/// `Command` says.
pub struct Process {
    pub child: Option<Child>,
    pub name: &'static str,
}

impl Process {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Process {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Process {
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

impl Drop for Process {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.interrupt();
        }
    }
}

/// A child process killed when the test ends, pass or fail.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns `stratbox ARGS`, collecting stderr lines (and stdout's, if `stdout`).
    pub fn spawn(args: &[&str], dir: &std::path::Path) -> (Proc, std::process::ChildStdout) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .current_dir(dir)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stratbox");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        (Proc { child, lines }, stdout)
    }

    /// The address a `stratbox host` serves its metrics on, once it says so.
    pub async fn metrics_address(&self) -> String {
        wait_for(
            "the host's metrics address",
            Duration::from_secs(60),
            async || {
                let line = self.find("metrics on http://")?;
                line.split("http://")
                    .nth(1)?
                    .split('/')
                    .next()
                    .map(str::to_owned)
            },
        )
        .await
    }

    pub fn find(&self, needle: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn tail(&self) -> String {
        let lines = self.lines.lock().unwrap();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut poll: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = poll().await {
            return t;
        }
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

/// `GET /metrics` over a plain socket; the host's Prometheus text.
pub fn scrape(addr: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// Sum of a metric's samples whose labels contain `filter`.
pub fn metric(text: &str, name: &str, filter: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Event `seq` of a synthetic market: per block four swaps swinging between ticks +600
/// and -600 (so a narrow clamm-maker moves its position on almost every swap), then the
/// block. Ids are `{prefix}:{seq}`.
pub fn swing_event(prefix: &str, seq: u64, first_block: u64, pool: &str) -> v1::ChainEvent {
    let block = first_block + seq / PER_BLOCK;
    let position = seq % PER_BLOCK;
    let kind = if position == PER_BLOCK - 1 {
        chain_event::Kind::NewBlock(v1::BlockInfo {
            number: block,
            timestamp: block * 12,
            hash: format!("0x{block:064x}"),
            parent_hash: format!("0x{:064x}", block - 1),
        })
    } else {
        let up = seq.is_multiple_of(2);
        chain_event::Kind::Swap(v1::SwapEvent {
            origin: Some(v1::EventOrigin {
                block,
                log_index: position as u32,
                tx_hash: format!("0x{seq:064x}"),
            }),
            pool: Some(v1::Address {
                value: pool.to_owned(),
            }),
            zero_for_one: !up,
            amount_in: Some(v1::Amount {
                value: "1000000".into(),
            }),
            amount_out: Some(v1::Amount {
                value: "990000".into(),
            }),
            sqrt_price_x96: Some(v1::Amount {
                value: if up { SQRT_UP } else { SQRT_DOWN }.into(),
            }),
            liquidity: Some(v1::Amount {
                value: "1000000000000000000000".into(),
            }),
            tick: if up { 600 } else { -600 },
        })
    };
    v1::ChainEvent {
        event_id: format!("{prefix}:{seq}"),
        last_sync_block: block,
        timestamp: block * 12,
        trace: None,
        chain_id: 1,
        kind: Some(kind),
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

/// Waits until `done` holds, polling every 100 ms; fails the test after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How libtest names test `name` of the module at `module_path` (`module_path!()`, e.g.
/// `it::deploy_args`) in the one test binary: `deploy_args::name`. For a test that runs
/// one of its own tests in a child process with `--exact`.
pub fn libtest_name(module_path: &str, name: &str) -> String {
    let module = module_path.split_once("::").map_or(module_path, |(_, m)| m);
    format!("{module}::{name}")
}

/// Every task of `strategy` the engine holds, page by page.
pub async fn all_tasks(
    engine: &mut stratbox_proto::v1::trading_engine_client::TradingEngineClient<
        tonic::transport::Channel,
    >,
    strategy: &str,
) -> Vec<v1::Task> {
    let mut out = Vec::new();
    let mut page = String::new();
    loop {
        let r = engine
            .list_tasks(v1::ListTasksRequest {
                strategy: strategy.into(),
                limit: 1000,
                page_token: page.clone(),
                ..Default::default()
            })
            .await
            .expect("list tasks")
            .into_inner();
        out.extend(r.tasks);
        if r.next_page_token.is_empty() {
            return out;
        }
        page = r.next_page_token;
    }
}

/// The engine's first market: its pool and the first block after the one the engine
/// started from (where a test's events begin).
pub async fn first_market(
    engine: &mut stratbox_proto::v1::trading_engine_client::TradingEngineClient<
        tonic::transport::Channel,
    >,
) -> (String, u64) {
    let markets = engine
        .list_markets(v1::ListMarketsRequest { trace: None })
        .await
        .expect("markets")
        .into_inner()
        .markets;
    let first = markets.first().expect("the engine has a market");
    (first.pool.clone().expect("pool").value, first.block + 1)
}
