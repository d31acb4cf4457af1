//! No file and no process memory holds the whole private key.
//!
//! The three share processes and the coordinator run as separate OS processes (the crate's
//! `threshold-share` and `threshold-coordinator` harness binaries). After the ceremony and a
//! signature from every pair for several accounts, with presignatures pooled and everything
//! still alive, this test
//! 1. rebuilds the whole master key from two share files with the test-only export tool
//!    (and checks it is right: its public key is the ceremony's),
//! 2. derives the secret keys of the accounts that signed,
//! 3. reads every readable mapping of each process through `/proc/PID/maps` and
//!    `/proc/PID/mem`, and every file in the cluster's directory, looking for each of those
//!    32-byte secrets in big- and little-endian order,
//! 4. asserts none is found, after a positive control: the same scan finds a 32-byte secret
//!    that a live helper process holds.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{PASSPHRASE, test_primes};
use stratbox_threshold::identity::{Cluster, ShareEntry, init_cluster};
use stratbox_threshold::local::{data_dir, seed_primes};
use stratbox_threshold::share::share_file;
use stratbox_threshold::{DerivationPath, Passphrase};

const ACCOUNTS: u32 = 2;

struct Proc {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(name: &str, mut command: Command) -> Proc {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            stdin,
            lines,
        }
    }

    /// The next line the process prints, waiting at most `timeout`.
    fn line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(_) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "{}: no output within {timeout:?} (exit: {status:?})",
                    self.name
                )
            }
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "stop");
        let _ = self.stdin.flush();
        // The harness exits on `stop`; make sure of it.
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Default)]
struct Scan {
    regions: usize,
    bytes: u64,
    unreadable: usize,
    hits: Vec<(String, u64)>,
}

/// Reads every readable mapping of process `pid` and looks for each needle.
fn scan_process(pid: u32, needles: &[(String, Vec<u8>)]) -> Scan {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/maps: {e}"));
    let mem = File::open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("opening /proc/{pid}/mem: {e}"));
    let finders: Vec<_> = needles
        .iter()
        .map(|(name, n)| (name.clone(), memchr::memmem::Finder::new(n)))
        .collect();
    const CHUNK: u64 = 4 << 20;
    const OVERLAP: u64 = 64;
    let mut scan = Scan::default();
    let mut buf = vec![0u8; (CHUNK + OVERLAP) as usize];
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = line.split_whitespace().nth(5).unwrap_or("");
        if !perms.starts_with('r')
            || name == "[vvar]"
            || name == "[vsyscall]"
            || name == "[vvar_vclock]"
        {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        scan.regions += 1;
        let mut at = start;
        while at < end {
            let len = (end - at).min(CHUNK + OVERLAP) as usize;
            match mem.read_at(&mut buf[..len], at) {
                Ok(read) if read > 0 => {
                    scan.bytes += read as u64;
                    for (name, finder) in &finders {
                        if let Some(offset) = finder.find(&buf[..read]) {
                            scan.hits.push((name.clone(), at + offset as u64));
                        }
                    }
                }
                _ => {
                    scan.unreadable += 1;
                    break;
                }
            }
            at += CHUNK;
        }
    }
    scan
}

fn scan_files(
    dir: &Path,
    needles: &[(String, Vec<u8>)],
    found: &mut Vec<String>,
    files: &mut usize,
) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan_files(&path, needles, found, files);
            continue;
        }
        *files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for (name, needle) in needles {
            if memchr::memmem::find(&bytes, needle).is_some() {
                found.push(format!("{name} in {}", path.display()));
            }
        }
    }
}

fn needles_for(name: &str, secret: &[u8; 32]) -> Vec<(String, Vec<u8>)> {
    vec![
        (format!("{name} (big-endian)"), secret.to_vec()),
        (
            format!("{name} (little-endian)"),
            secret.iter().rev().copied().collect(),
        ),
    ]
}

#[test]
fn no_file_or_process_holds_the_whole_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let passphrase_file = root.join("passphrase");
    std::fs::write(&passphrase_file, PASSPHRASE).unwrap();
    let pass = Passphrase::new(PASSPHRASE).unwrap();
    let primes = test_primes();
    let share_bin = env!("CARGO_BIN_EXE_threshold-share");
    let coordinator_bin = env!("CARGO_BIN_EXE_threshold-coordinator");

    // Three share processes; each says which port it bound.
    let identities = root.join("identities");
    let mut shares = Vec::new();
    for index in 0..3u16 {
        let data = data_dir(root, index);
        seed_primes(&data, index, &pass, &primes[usize::from(index)]).unwrap();
        let mut command = Command::new(share_bin);
        command
            .env("THRESHOLD_INDEX", index.to_string())
            .env("THRESHOLD_CLUSTER", identities.join("cluster.json"))
            .env(
                "THRESHOLD_CERT",
                identities.join(format!("share-{index}.crt.pem")),
            )
            .env(
                "THRESHOLD_KEY",
                identities.join(format!("share-{index}.key.pem")),
            )
            .env("THRESHOLD_DATA_DIR", &data)
            .env("THRESHOLD_PASSPHRASE_FILE", &passphrase_file);
        shares.push(Proc::spawn(&format!("share {index}"), command));
    }
    let mut addresses = Vec::new();
    for share in &mut shares {
        let line = share.line(Duration::from_secs(60));
        let port: u16 = line
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        addresses.push(format!("127.0.0.1:{port}"));
    }
    let files = init_cluster(
        &identities,
        [
            addresses[0].clone(),
            addresses[1].clone(),
            addresses[2].clone(),
        ],
    )
    .unwrap();
    let cluster = Cluster::load(&files.cluster).unwrap();
    assert!(
        cluster
            .shares
            .iter()
            .all(|s: &ShareEntry| s.address.starts_with("127.0.0.1:"))
    );
    for share in &mut shares {
        share.send("start");
    }

    let mut command = Command::new(coordinator_bin);
    command
        .env("THRESHOLD_CLUSTER", &files.cluster)
        .env("THRESHOLD_CERT", &files.coordinator.0)
        .env("THRESHOLD_KEY", &files.coordinator.1)
        .env("THRESHOLD_ACCOUNTS", ACCOUNTS.to_string());
    let mut coordinator = Proc::spawn("coordinator", command);
    let mut public_key = String::new();
    let mut signed = 0;
    loop {
        let line = coordinator.line(Duration::from_secs(1200));
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("coordinator printed {line:?}: {e}"));
        match event["event"].as_str() {
            Some("keygen") => public_key = event["public_key"].as_str().unwrap().to_string(),
            Some("signed") => {
                assert_eq!(event["recovered"], event["address"], "{line}");
                signed += 1;
            }
            Some("ready") => break,
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(
        signed,
        ACCOUNTS as usize * 3,
        "one signature per pair per account"
    );

    // The primes were folded into the key shares and their files removed at commit.
    for index in 0..3u16 {
        let primes = stratbox_threshold::share::primes_file(&data_dir(root, index), index);
        assert!(!primes.exists(), "{} left behind", primes.display());
        assert!(share_file(&data_dir(root, index), index).exists());
    }

    // The whole key, rebuilt from two share files with the test-only export tool.
    let share_files: Vec<PathBuf> = (0..3u16)
        .map(|i| share_file(&data_dir(root, i), i))
        .collect();
    let key = stratbox_threshold::insecure_export::reconstruct(
        &[(1, &share_files[1]), (2, &share_files[2])],
        &pass,
    )
    .unwrap();
    assert_eq!(
        hex::encode(key.master_public()),
        public_key,
        "the reconstruction must be the ceremony's key, or the scan below proves nothing"
    );
    let mut needles = needles_for("master key", &key.master_secret());
    for account in 0..ACCOUNTS {
        let path = DerivationPath::account(account).unwrap();
        needles.extend(needles_for(
            &format!("account {account} key"),
            &key.child_secret(&path),
        ));
    }

    // Positive control: the scan finds a 32-byte secret held by a live process.
    let mut holder_command = Command::new(coordinator_bin);
    holder_command.env("THRESHOLD_MODE", "hold");
    let mut holder = Proc::spawn("holder", holder_command);
    let control: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    holder.send(&hex::encode(control));
    assert_eq!(holder.line(Duration::from_secs(30)), "holding");
    let control_scan = scan_process(holder.pid(), &needles_for("control", &control));
    assert!(
        control_scan
            .hits
            .iter()
            .any(|(n, _)| n.contains("big-endian")),
        "the scan failed to find a secret a live process holds: {control_scan:?}"
    );
    drop(holder);

    let mut report = Vec::new();
    for proc in shares.iter().chain(std::iter::once(&coordinator)) {
        let scan = scan_process(proc.pid(), &needles);
        assert!(
            scan.bytes > 1 << 20,
            "{}: scanned too little: {scan:?}",
            proc.name
        );
        eprintln!(
            "{}: pid {}, {} regions, {:.1} MiB read, {} unreadable",
            proc.name,
            proc.pid(),
            scan.regions,
            scan.bytes as f64 / (1 << 20) as f64,
            scan.unreadable
        );
        for (needle, address) in &scan.hits {
            report.push(format!("{needle} in {} memory at {address:#x}", proc.name));
        }
    }
    let mut files_scanned = 0;
    scan_files(root, &needles, &mut report, &mut files_scanned);
    assert!(files_scanned >= 3 + 9, "scanned {files_scanned} files");
    assert!(report.is_empty(), "the whole key was found: {report:#?}");
    drop(coordinator);
    drop(shares);
}
