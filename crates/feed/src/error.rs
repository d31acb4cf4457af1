use stratbox_bus::BusError;

/// Why the feed stopped or skipped a poll.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("invalid RPC url {url:?}: {detail}")]
    InvalidUrl { url: String, detail: String },

    /// The node did not answer or answered an error; the next poll tries again.
    #[error("RPC {op} failed: {detail}")]
    Rpc { op: &'static str, detail: String },

    #[error(transparent)]
    Bus(#[from] BusError),

    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: String, detail: String },

    /// The checkpoint belongs to another chain: resuming from it would publish nonsense.
    #[error("checkpoint is for chain {checkpoint} but the node is chain {node}")]
    ChainMismatch { checkpoint: u64, node: u64 },

    /// The node's chain diverges below the oldest block the feed remembers. Needs an
    /// operator: raise the window or reset the checkpoint.
    #[error(
        "reorg deeper than the remembered window (no common ancestor at or above block {oldest_known})"
    )]
    DeepReorg { oldest_known: u64 },
}

impl FeedError {
    /// Whether retrying the poll later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            FeedError::Rpc { .. } => true,
            FeedError::Bus(e) => matches!(e, BusError::Unavailable { .. }),
            _ => false,
        }
    }
}
