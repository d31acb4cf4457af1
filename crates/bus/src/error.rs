use std::time::Duration;

use crate::MessageId;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Reading or claiming before `ensure_group`: a configuration error, not a transient one.
    #[error("stream {stream:?} has no consumer group {group:?}; call ensure_group first")]
    NoGroup {
        /// The stream read.
        stream: String,
        /// The group that does not exist on it.
        group: String,
    },

    /// The connection kept failing for the whole retry budget.
    #[error("bus unavailable: {op} still failing after retrying for {waited:?}: {reason}")]
    Unavailable {
        /// The bus operation that gave up (`xadd`, `xreadgroup`, ...).
        op: &'static str,
        /// How long it kept retrying.
        waited: Duration,
        /// The last transient failure.
        reason: String,
    },

    /// Redis answered with an error that retrying would not fix.
    #[error("redis refused {op}: {source}")]
    Redis {
        /// The refused operation.
        op: &'static str,
        /// Redis's answer.
        #[source]
        source: redis::RedisError,
    },

    /// Redis answered something this client does not understand (version mismatch?).
    #[error("unexpected reply to {op}: {detail}")]
    Protocol {
        /// The operation whose reply was not understood.
        op: &'static str,
        /// What the reply was.
        detail: String,
    },

    /// A text that is not `<ms>-<seq>` with both parts `u64`, e.g. a corrupt stored resume
    /// position.
    #[error("invalid stream message id {0:?}")]
    InvalidId(String),

    /// The in-process bus ran out of ids (a stream whose last id is `u64::MAX-u64::MAX`).
    #[error("stream {0:?} has exhausted its id space")]
    IdSpaceExhausted(String),

    /// A message on an event stream is not a `ChainEvent`.
    #[error("message {id} is not a valid ChainEvent: {source}")]
    Decode {
        /// The offending message, to acknowledge or inspect it.
        id: MessageId,
        /// Why prost refused it.
        #[source]
        source: prost::DecodeError,
    },
}
