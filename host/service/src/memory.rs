//! The memories of the strategy deployments a host runs (world 0.2.0's `memory`), and how
//! their changes reach the engine.
//!
//! One [`StrategyMemory`] per strategy name, loaded from the engine the first time the host
//! deploys the strategy and shared by every instance of every version after: a hot swap
//! hands the new version the very same entries. After each event the service sends the
//! changes to the engine (before it acknowledges the event), so a restarted host or engine
//! loads what the strategies last wrote.

use std::collections::BTreeMap;
use std::sync::Mutex;

use stratbox_host::StrategyMemory;
use stratbox_proto::v1;
use tokio::sync::watch;

use crate::delivery::{DeliveryError, EngineLink};

/// See the module docs. Shared (`Arc`) by the rollout, which hands memories to new
/// instances, and the service, which stores their changes.
pub struct MemoryBook {
    /// Where memories are loaded from and stored; `None` keeps them in this process only
    /// (tests, backtests).
    link: Option<EngineLink>,
    memories: Mutex<BTreeMap<String, StrategyMemory>>,
}

impl MemoryBook {
    /// Memories kept in this process only, each with the default cap.
    pub fn in_process() -> Self {
        MemoryBook {
            link: None,
            memories: Mutex::new(BTreeMap::new()),
        }
    }

    /// Memories loaded from and stored by the engine behind `link`.
    pub fn engine(link: EngineLink) -> Self {
        MemoryBook {
            link: Some(link),
            memories: Mutex::new(BTreeMap::new()),
        }
    }

    /// `strategy`'s memory: the one already in use, or loaded from the engine (with the
    /// engine's cap). A failure to load refuses the deployment rather than starting it on an
    /// empty memory that would then overwrite the stored one.
    pub async fn memory(&self, strategy: &str) -> Result<StrategyMemory, DeliveryError> {
        if let Some(m) = self.lock().get(strategy) {
            return Ok(m.clone());
        }
        let loaded = match &self.link {
            None => StrategyMemory::default(),
            Some(link) => {
                let stored = link.memory(strategy).await?;
                StrategyMemory::loaded(
                    usize::try_from(stored.cap_bytes).unwrap_or(usize::MAX),
                    stored.entries.into_iter().map(|e| (e.key, e.value)),
                )
            }
        };
        // Another task may have loaded it meanwhile: keep the first, so every instance
        // shares one.
        Ok(self
            .lock()
            .entry(strategy.to_owned())
            .or_insert(loaded)
            .clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StrategyMemory>> {
        self.memories.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends every memory's changes since the last flush to the engine. Transient failures
    /// are retried until `shutdown`; changes not stored are kept for the next flush. A
    /// memory the engine refuses as over its cap is logged and its changes dropped (the
    /// host's copy keeps them until the strategy is redeployed): retrying would never end.
    pub async fn flush(
        &self,
        trace_id: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<usize, DeliveryError> {
        let Some(link) = &self.link else {
            // Nothing keeps them; forget them so they do not pile up.
            for m in self.lock().values() {
                m.take_changes();
            }
            return Ok(0);
        };
        let memories: Vec<(String, StrategyMemory)> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut sent = 0;
        for (strategy, memory) in memories {
            let changes = memory.take_changes();
            if changes.is_empty() {
                continue;
            }
            let wire: Vec<v1::MemoryChange> = changes
                .iter()
                .map(|(key, value)| v1::MemoryChange {
                    key: key.clone(),
                    remove: value.is_none(),
                    value: value.clone().unwrap_or_default(),
                })
                .collect();
            match link.put_memory(trace_id, &strategy, wire, shutdown).await {
                Ok(_) => sent += changes.len(),
                Err(DeliveryError::MemoryRefused(status)) => {
                    tracing::error!(strategy = %strategy, code = ?status.code(), message = status.message(), "the engine refused a strategy's memory changes; they are not stored");
                }
                Err(e) => {
                    memory.unsent(&changes);
                    return Err(e);
                }
            }
        }
        Ok(sent)
    }
}
