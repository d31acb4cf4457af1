//! A local Anvil (the npm-pinned `@foundry-rs/anvil-linux-amd64`) for tests and `stratbox up`.
//!
//! Synchronous on purpose: it is a child process and a loopback port, usable from a test, a
//! blocking thread or an async runtime alike. The process is killed when [`Anvil`] drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use alloy_primitives::Address;

use crate::node_modules::{self, ANVIL_IN_NODE_MODULES, NodeModulesError};

/// Why Anvil could not be started; all are setup errors, worth failing a test on.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// No Anvil binary: `node_modules` is missing or incomplete.
    #[error(transparent)]
    NodeModules(#[from] NodeModulesError),
    /// The binary exists but could not be run.
    #[error("cannot start anvil at {path}: {source}")]
    Spawn {
        /// The binary tried.
        path: PathBuf,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// Anvil died during start-up (e.g. the port was taken).
    #[error("anvil exited before answering (status {status}, port {port})")]
    Exited {
        /// Its exit status, as printed.
        status: String,
        /// The port it was given.
        port: u16,
    },
    /// Anvil is running but its RPC never answered; it is killed.
    #[error("anvil did not answer on port {port} within {waited:?}")]
    Timeout {
        /// The port polled.
        port: u16,
        /// How long start-up was given.
        waited: Duration,
    },
    /// The dev accounts Anvil writes at start could not be read.
    #[error("anvil's account file {path} is unreadable: {detail}")]
    Accounts {
        /// The account file.
        path: PathBuf,
        /// The I/O or parse error.
        detail: String,
    },
}

/// Options for [`Anvil::spawn_with`]. Defaults: automine (a block per transaction), anvil's
/// default chain id 31337, 10 funded dev accounts.
#[derive(Debug, Clone, Default)]
pub struct AnvilOptions {
    /// Mine a block every this many seconds instead of one per transaction.
    pub block_time: Option<u64>,
    /// Chain id; `None` for Anvil's 31337.
    pub chain_id: Option<u64>,
    /// Extra command-line arguments, passed as they are.
    pub extra_args: Vec<String>,
    /// The anvil binary; by default the one in `node_modules`.
    pub binary: Option<PathBuf>,
}

/// A running Anvil on `127.0.0.1`. Dropping it kills the process.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    chain_id: u64,
    accounts: Vec<Address>,
    private_keys: Vec<String>,
    config_path: PathBuf,
}

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Config files of anvils started by this process, told apart by a counter because the port
/// is only known once anvil has bound it.
static SPAWNED: AtomicU64 = AtomicU64::new(0);

impl Anvil {
    /// Starts Anvil with the default options and waits until it answers JSON-RPC.
    pub fn spawn() -> Result<Self, AnvilError> {
        Self::spawn_with(&AnvilOptions::default())
    }

    /// Anvil binds port 0 and says which port it got. Picking a free port ourselves and
    /// handing it over would leave a window in which another process (a test running beside
    /// this one) takes it, and this caller would then talk to somebody else's node.
    pub fn spawn_with(options: &AnvilOptions) -> Result<Self, AnvilError> {
        let binary = match &options.binary {
            Some(path) => path.clone(),
            None => {
                node_modules::locate_or_install(ANVIL_IN_NODE_MODULES)?.join(ANVIL_IN_NODE_MODULES)
            }
        };
        let config_path = std::env::temp_dir().join(format!(
            "stratbox-anvil-{}-{}.json",
            std::process::id(),
            SPAWNED.fetch_add(1, Ordering::Relaxed)
        ));
        let mut command = Command::new(&binary);
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .arg("--config-out")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(block_time) = options.block_time {
            command.args(["--block-time", &block_time.to_string()]);
        }
        if let Some(chain_id) = options.chain_id {
            command.args(["--chain-id", &chain_id.to_string()]);
        }
        command.args(&options.extra_args);
        let mut child = command.spawn().map_err(|source| AnvilError::Spawn {
            path: binary.clone(),
            source,
        })?;
        let (port_tx, port_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || watch_stdout(stdout, port_tx));
        }
        let mut anvil = Anvil {
            child,
            port: 0,
            chain_id: 0,
            accounts: Vec::new(),
            private_keys: Vec::new(),
            config_path,
        };
        anvil.port = anvil.wait_listening(&port_rx)?;
        anvil.chain_id = anvil.wait_ready()?;
        anvil.read_accounts()?;
        tracing::debug!(port = anvil.port, chain_id = anvil.chain_id, "anvil ready");
        Ok(anvil)
    }

    fn wait_listening(&mut self, port: &mpsc::Receiver<u16>) -> Result<u16, AnvilError> {
        let start = Instant::now();
        loop {
            match port.recv_timeout(Duration::from_millis(50)) {
                Ok(port) => return Ok(port),
                Err(RecvTimeoutError::Timeout) if start.elapsed() <= READY_TIMEOUT => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(AnvilError::Timeout {
                        port: 0,
                        waited: start.elapsed(),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self
                        .child
                        .wait()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| e.to_string());
                    return Err(AnvilError::Exited { status, port: 0 });
                }
            }
        }
    }

    /// Polls `eth_chainId` until it answers, so callers never race the node's start.
    fn wait_ready(&mut self) -> Result<u64, AnvilError> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(AnvilError::Exited {
                    status: status.to_string(),
                    port: self.port,
                });
            }
            if let Some(chain_id) = query_chain_id(self.port) {
                return Ok(chain_id);
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(AnvilError::Timeout {
                    port: self.port,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn read_accounts(&mut self) -> Result<(), AnvilError> {
        let err = |detail: String| AnvilError::Accounts {
            path: self.config_path.clone(),
            detail,
        };
        let text = std::fs::read_to_string(&self.config_path).map_err(|e| err(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let accounts = json["available_accounts"]
            .as_array()
            .ok_or_else(|| err("no available_accounts".into()))?
            .iter()
            .map(|v| v.as_str().and_then(|s| s.parse::<Address>().ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| err("bad address in available_accounts".into()))?;
        let keys = json["private_keys"]
            .as_array()
            .ok_or_else(|| err("no private_keys".into()))?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| err("bad private_keys".into()))?;
        self.accounts = accounts;
        self.private_keys = keys;
        Ok(())
    }

    /// `http://127.0.0.1:<port>`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:<port>` (Anvil serves both on one port).
    pub fn ws_endpoint(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The local port its RPC listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The chain id it runs, as transactions must be signed for.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The unlocked, funded dev accounts (anvil signs `eth_sendTransaction` from them).
    pub fn accounts(&self) -> &[Address] {
        &self.accounts
    }

    /// The dev accounts' private keys as 0x-prefixed hex, in the order of [`Self::accounts`],
    /// read from the file anvil writes at start (anvil's public test mnemonic).
    pub fn private_keys(&self) -> &[String] {
        &self.private_keys
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config_path);
    }
}

/// Sends the port from anvil's `Listening on 127.0.0.1:PORT` line, then keeps reading so a
/// chatty node never blocks on a full pipe. Ends (dropping the sender) when anvil exits.
fn watch_stdout(stdout: ChildStdout, port: mpsc::Sender<u16>) {
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let Ok(line) = line else { return };
        if let Some(addr) = line.trim().strip_prefix("Listening on ")
            && let Some(p) = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())
        {
            let _ = port.send(p);
            break;
        }
    }
    for line in lines {
        if line.is_err() {
            return;
        }
    }
}

/// One raw HTTP/1.1 JSON-RPC `eth_chainId` call; `None` until the node answers.
fn query_chain_id(port: u16) -> Option<u64> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let json_start = response.find("\r\n\r\n")? + 4;
    let json: serde_json::Value = serde_json::from_str(response[json_start..].trim()).ok()?;
    let hex = json["result"].as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(hex, 16).ok()
}
