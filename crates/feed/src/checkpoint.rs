//! Where the feed remembers what it has published, so a restart neither skips nor
//! re-publishes blocks. The recent window of hashes is kept, not just the head, so a reorg
//! that happened while the feed was down is still detected and resolved.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use alloy_primitives::B256;

use crate::canon::CanonicalChain;
use crate::error::FeedError;

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedChain {
    /// The chain the blocks belong to; a node on another chain is refused on resume.
    pub chain_id: u64,
    /// Contiguous `(number, hash)`, oldest first; the last is the last block fully published.
    pub blocks: Vec<(u64, B256)>,
}

/// Persists the feed's position after every block.
pub trait Checkpoint: Send + Sync {
    /// The saved position, `None` on a first start.
    fn load(&self) -> Result<Option<SavedChain>, FeedError>;
    /// Saves the position durably; called after a block is fully published, so a crash republishes
    /// at most that block.
    fn save(&mut self, chain_id: u64, chain: &CanonicalChain) -> Result<(), FeedError>;
}

/// A checkpoint in memory, shared between clones: for the embedded mode (which restarts
/// with the process anyway) and tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpoint {
    saved: Arc<Mutex<Option<SavedChain>>>,
}

impl MemoryCheckpoint {
    /// An empty checkpoint; clones share it.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Checkpoint for MemoryCheckpoint {
    fn load(&self) -> Result<Option<SavedChain>, FeedError> {
        Ok(self.saved.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&mut self, chain_id: u64, chain: &CanonicalChain) -> Result<(), FeedError> {
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some(SavedChain {
            chain_id,
            blocks: chain.blocks().collect(),
        });
        Ok(())
    }
}

/// A small text file, replaced atomically (write, fsync, rename) so a crash leaves either
/// the old or the new position, never a torn one.
#[derive(Debug, Clone)]
pub struct FileCheckpoint {
    path: PathBuf,
}

const HEADER: &str = "stratbox-feed checkpoint v1";

impl FileCheckpoint {
    /// A checkpoint at `path`; the file is created on the first save.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCheckpoint { path: path.into() }
    }

    /// Where the checkpoint is kept, for error messages and operators.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, detail: impl Into<String>) -> FeedError {
        FeedError::Checkpoint {
            path: self.path.display().to_string(),
            detail: detail.into(),
        }
    }
}

impl Checkpoint for FileCheckpoint {
    fn load(&self) -> Result<Option<SavedChain>, FeedError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.corrupt(e.to_string())),
        };
        let mut lines = text.lines();
        let chain_id = lines
            .next()
            .and_then(|l| l.strip_prefix(HEADER))
            .and_then(|rest| rest.trim().strip_prefix("chain "))
            .and_then(|id| id.parse::<u64>().ok())
            .ok_or_else(|| self.corrupt("missing or unknown header line"))?;
        let mut blocks = Vec::new();
        for (i, line) in lines.enumerate() {
            let (n, h) = line
                .split_once(' ')
                .ok_or_else(|| self.corrupt(format!("line {} is not `<number> <hash>`", i + 2)))?;
            let n: u64 = n
                .parse()
                .map_err(|_| self.corrupt(format!("bad block number on line {}", i + 2)))?;
            let h: B256 = h
                .parse()
                .map_err(|_| self.corrupt(format!("bad block hash on line {}", i + 2)))?;
            blocks.push((n, h));
        }
        if blocks
            .windows(2)
            .any(|w| w[0].0.checked_add(1) != Some(w[1].0))
        {
            return Err(self.corrupt("blocks are not contiguous"));
        }
        Ok(Some(SavedChain { chain_id, blocks }))
    }

    fn save(&mut self, chain_id: u64, chain: &CanonicalChain) -> Result<(), FeedError> {
        let mut text = format!("{HEADER} chain {chain_id}\n");
        for (n, h) in chain.blocks() {
            text.push_str(&format!("{n} {h:#x}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| self.corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = FileCheckpoint::new(dir.path().join("feed.checkpoint"));
        assert_eq!(cp.load().unwrap(), None);
        let chain =
            CanonicalChain::from_blocks([(7, B256::repeat_byte(7)), (8, B256::repeat_byte(8))], 64)
                .unwrap();
        cp.save(31337, &chain).unwrap();
        let saved = cp.load().unwrap().unwrap();
        assert_eq!(saved.chain_id, 31337);
        assert_eq!(saved.blocks, chain.blocks().collect::<Vec<_>>());
        std::fs::write(cp.path(), "something else\n").unwrap();
        assert!(matches!(cp.load(), Err(FeedError::Checkpoint { .. })));
        std::fs::write(cp.path(), format!("{HEADER} chain 1\n1 0x01\n")).unwrap();
        assert!(matches!(cp.load(), Err(FeedError::Checkpoint { .. })));
    }
}
