use stratbox_bus::BusError;

/// Why the feed stopped or skipped a poll.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The configured node URL does not parse: a configuration error, not retried.
    #[error("invalid RPC url {url:?}: {detail}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// The parser's reason.
        detail: String,
    },

    /// The node did not answer or answered an error; the next poll tries again.
    #[error("RPC {op} failed: {detail}")]
    Rpc {
        /// The JSON-RPC call, e.g. `eth_getLogs`.
        op: &'static str,
        /// The transport or node error.
        detail: String,
    },

    /// Publishing to the bus failed; the block is republished on the next poll.
    #[error(transparent)]
    Bus(#[from] BusError),

    /// The checkpoint could not be read, parsed or written.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// The I/O or parse error.
        detail: String,
    },

    /// The checkpoint belongs to another chain: resuming from it would publish nonsense.
    #[error("checkpoint is for chain {checkpoint} but the node is chain {node}")]
    ChainMismatch {
        /// Chain id recorded in the checkpoint.
        checkpoint: u64,
        /// Chain id the node reports.
        node: u64,
    },

    /// The node's chain diverges below the oldest block the feed remembers. Needs an
    /// operator: raise the window or reset the checkpoint.
    #[error(
        "reorg deeper than the remembered window (no common ancestor at or above block {oldest_known})"
    )]
    DeepReorg {
        /// The oldest block number still remembered.
        oldest_known: u64,
    },
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
