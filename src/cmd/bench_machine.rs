//! The machine a benchmark ran on, printed above its figures: a rate means little without
//! the CPU, the cores and how long the disk takes to make a write durable, which is what a
//! commit waits for.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes of 4 KiB made durable (`fdatasync`) to time the disk.
const FSYNC_WRITES: usize = 200;

/// What a benchmark's figures depend on, read off this machine.
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// The kernel's release.
    pub kernel: String,
    /// Median and p99 of a 4 KiB write plus `fdatasync` in the benchmark's directory.
    pub fsync_p50: Duration,
    /// See `fsync_p50`.
    pub fsync_p99: Duration,
}

impl Machine {
    /// Reads the machine and times durable writes in `dir` (blocking: call it off the async
    /// workers).
    pub fn read(dir: &Path) -> anyhow::Result<Machine> {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        std::fs::create_dir_all(dir)?;
        let path = dir.join("fsync-probe");
        let mut file = std::fs::File::create(&path)?;
        let page = [0x5au8; 4096];
        let mut took = Vec::with_capacity(FSYNC_WRITES);
        for _ in 0..FSYNC_WRITES {
            let t = Instant::now();
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&page)?;
            file.sync_data()?;
            took.push(t.elapsed());
        }
        drop(file);
        let _ = std::fs::remove_file(&path);
        took.sort_unstable();
        let at = |q: usize| took[(took.len() * q / 100).min(took.len() - 1)];
        Ok(Machine {
            cpu,
            cores,
            kernel,
            fsync_p50: at(50),
            fsync_p99: at(99),
        })
    }

    /// One line: CPU, cores, kernel, durable-write latency.
    pub fn line(&self) -> String {
        format!(
            "machine: {}, {} cores, linux {}; 4 KiB write + fdatasync p50 {:.3} ms, p99 {:.3} ms ({FSYNC_WRITES} writes)",
            self.cpu,
            self.cores,
            self.kernel,
            self.fsync_p50.as_secs_f64() * 1e3,
            self.fsync_p99.as_secs_f64() * 1e3,
        )
    }
}
