use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::{Bus, BusError, Delivery, MessageId, StartId};

/// How a [`GroupReader`] paces itself.
#[derive(Debug, Clone, Copy)]
pub struct GroupReaderConfig {
    /// Most messages per batch.
    pub batch: usize,
    /// How long one `next_batch` waits for new messages.
    pub block: Duration,
    /// A message pending this long with another consumer is taken over: longer than the
    /// slowest legitimate handling of one batch, or live consumers steal from each other.
    pub min_idle: Duration,
}

impl Default for GroupReaderConfig {
    fn default() -> Self {
        GroupReaderConfig {
            batch: 64,
            block: Duration::from_secs(1),
            min_idle: Duration::from_secs(30),
        }
    }
}

/// One consumer of a group, doing what every consumer must so that nothing is lost: first
/// its own pending messages from a previous run under the same name, then, every
/// `min_idle / 2`, messages a dead consumer left pending, and otherwise new messages.
///
/// The caller acknowledges each message once what it derived from it is safely accepted
/// (for a strategy host: once the engine accepted the proposals), never before.
pub struct GroupReader<B: Bus + ?Sized> {
    bus: Arc<B>,
    stream: String,
    group: String,
    consumer: String,
    config: GroupReaderConfig,
    /// Position in this consumer's own pending list while resuming; `None` once done.
    resume_after: Option<MessageId>,
    last_claim: Option<Instant>,
}

impl<B: Bus + ?Sized> GroupReader<B> {
    /// Joins (creating if needed) `group` on `stream` as `consumer`. Consumer names must be
    /// unique among live consumers and stable across restarts of the same worker.
    pub async fn join(
        bus: Arc<B>,
        stream: &str,
        group: &str,
        consumer: &str,
        start: StartId,
        config: GroupReaderConfig,
    ) -> Result<Self, BusError> {
        bus.ensure_group(stream, group, start).await?;
        Ok(GroupReader {
            bus,
            stream: stream.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            config,
            resume_after: Some(MessageId::ZERO),
            last_claim: None,
        })
    }

    /// This reader's consumer name within the group (where its pending messages are recorded).
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The next messages for this consumer; empty when nothing arrived within `block`.
    pub async fn next_batch(&mut self) -> Result<Vec<Delivery>, BusError> {
        let batch = self.config.batch.max(1);
        if let Some(after) = self.resume_after {
            let own = self
                .bus
                .read_own_pending(&self.stream, &self.group, &self.consumer, after, batch)
                .await?;
            match own.last() {
                Some(last) => {
                    self.resume_after = Some(last.id);
                    return Ok(own);
                }
                None => self.resume_after = None,
            }
        }
        let claim_due = self
            .last_claim
            .is_none_or(|t| t.elapsed() >= self.config.min_idle / 2);
        if claim_due {
            self.last_claim = Some(Instant::now());
            let stale = self
                .bus
                .claim_stale(
                    &self.stream,
                    &self.group,
                    &self.consumer,
                    self.config.min_idle,
                    batch,
                )
                .await?;
            if !stale.is_empty() {
                tracing::info!(stream = %self.stream, group = %self.group, consumer = %self.consumer, claimed = stale.len(), "took over messages a stalled consumer left pending");
                // More may be waiting: look again on the next call.
                self.last_claim = None;
                return Ok(stale);
            }
        }
        self.bus
            .read_group(
                &self.stream,
                &self.group,
                &self.consumer,
                batch,
                self.config.block,
            )
            .await
    }

    /// Acknowledges processed messages so they are not claimed again; returns how many were
    /// pending.
    pub async fn ack(&self, ids: &[MessageId]) -> Result<u64, BusError> {
        self.bus.ack(&self.stream, &self.group, ids).await
    }
}
