//! Follows a chain over JSON-RPC (HTTP polling), publishing each block's pool events and
//! resolving reorgs by parent-hash continuity.

use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::network::Ethereum;
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::Filter;
use alloy_primitives::{Address, B256};
use stratbox_bus::{Bus, CHAIN_EVENTS_STREAM, publish_event};
use stratbox_proto::v1::{ChainEvent, Reorg, TraceContext, chain_event::Kind};
use tokio::sync::watch;
use tracing::Instrument;

use crate::canon::CanonicalChain;
use crate::checkpoint::Checkpoint;
use crate::error::FeedError;
use crate::normalise::{BlockHeader, POOL_EVENT_TOPICS, events_from_logs, hex_hash, new_trace_id};

/// Where a feed without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartBlock {
    /// The node's head when the feed first polls.
    Latest,
    /// That block number, e.g. the pool's deployment block to replay its history.
    Number(u64),
}

/// How a [`Feed`] polls and where it publishes.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// The node's JSON-RPC HTTP endpoint.
    pub rpc_url: String,
    /// Pools whose Swap/Mint/Burn logs are published. Empty: blocks only.
    pub pools: Vec<Address>,
    /// Pause between polls once the feed has caught up with the head.
    pub poll_interval: Duration,
    /// The bus stream events are published on.
    pub stream: String,
    /// Used only without a checkpoint; a checkpoint always wins.
    pub start: StartBlock,
    /// Bounds one poll, so a feed far behind still checkpoints and yields regularly.
    pub max_blocks_per_poll: u64,
    /// How many recent block hashes are remembered; a deeper reorg stops the feed.
    pub reorg_window: usize,
}

impl FeedConfig {
    /// Defaults: 1 s polls, the standard chain-events stream, start at the head, 100 blocks per
    /// poll, 64-block reorg window.
    pub fn new(rpc_url: impl Into<String>, pools: Vec<Address>) -> Self {
        FeedConfig {
            rpc_url: rpc_url.into(),
            pools,
            poll_interval: Duration::from_secs(1),
            stream: CHAIN_EVENTS_STREAM.to_owned(),
            start: StartBlock::Latest,
            max_blocks_per_poll: 100,
            reorg_window: 64,
        }
    }
}

/// Told where the chain is before the feed publishes anything of a block, so whatever must
/// be in step with the events (the engine's simulation fork and the watermark its Sync
/// Sentinel checks) is there before a consumer can act on them. Without it a host could
/// propose on block N while the engine still believes the chain is at N-1, and the engine
/// would refuse the proposal as ahead of its watermark.
pub trait BlockObserver: Send + Sync {
    /// The feed is about to publish `block`'s events, or has just rewound to `block` (the
    /// common ancestor of a reorg). Called once per block the feed takes as canonical.
    fn head<'a>(
        &'a self,
        block: &'a BlockHeader,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Blocks published (re-published ones after a reorg included).
    pub blocks: u64,
    /// Pool events published.
    pub events: u64,
    /// Reorgs detected and rewound.
    pub reorgs: u64,
}

/// The chain adapter. Publishes, per block, its pool events then a `new_block` event, all
/// stamped `last_sync_block = block`; checkpoints after each block; on a reorg publishes a
/// `Reorg` event and then the new canonical blocks from the common ancestor up.
pub struct Feed<B: Bus + ?Sized> {
    provider: RootProvider<Ethereum>,
    chain_id: u64,
    config: FeedConfig,
    bus: Arc<B>,
    checkpoint: Box<dyn Checkpoint>,
    chain: CanonicalChain,
    watermark: watch::Sender<u64>,
    observer: Option<Arc<dyn BlockObserver>>,
}

fn rpc(op: &'static str) -> impl FnOnce(alloy::transports::TransportError) -> FeedError {
    move |e| FeedError::Rpc {
        op,
        detail: e.to_string(),
    }
}

impl<B: Bus + ?Sized> Feed<B> {
    /// Connects to the node, learns its chain id and restores the checkpoint (refusing one
    /// written for another chain).
    pub async fn connect(
        config: FeedConfig,
        bus: Arc<B>,
        checkpoint: Box<dyn Checkpoint>,
    ) -> Result<Self, FeedError> {
        let provider = RootProvider::<Ethereum>::connect(&config.rpc_url)
            .await
            .map_err(|e| FeedError::InvalidUrl {
                url: config.rpc_url.clone(),
                detail: e.to_string(),
            })?;
        let chain_id = provider.get_chain_id().await.map_err(rpc("eth_chainId"))?;
        let mut chain = CanonicalChain::new(config.reorg_window);
        if let Some(saved) = checkpoint.load()? {
            if saved.chain_id != chain_id {
                return Err(FeedError::ChainMismatch {
                    checkpoint: saved.chain_id,
                    node: chain_id,
                });
            }
            chain = CanonicalChain::from_blocks(saved.blocks, config.reorg_window).ok_or_else(
                || FeedError::Checkpoint {
                    path: "(loaded)".into(),
                    detail: "blocks are not contiguous".into(),
                },
            )?;
            if let Some((n, h)) = chain.head() {
                tracing::info!(chain_id, block = n, hash = %h, "feed resumes from checkpoint");
            }
        }
        let (watermark, _) = watch::channel(chain.head().map_or(0, |(n, _)| n));
        Ok(Feed {
            provider,
            chain_id,
            config,
            bus,
            checkpoint,
            chain,
            watermark,
            observer: None,
        })
    }

    /// Calls `observer` before each block is published and after each rewind.
    pub fn with_observer(mut self, observer: Arc<dyn BlockObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The node's chain id, as read on connect and stamped on every event.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The last block fully published (`last_sync_block` of the events). Goes back to the
    /// common ancestor on a reorg. The engine's Sync Sentinel compares proposals against it.
    pub fn watermark(&self) -> watch::Receiver<u64> {
        self.watermark.subscribe()
    }

    /// The last block fully published, with its hash.
    pub fn head(&self) -> Option<(u64, B256)> {
        self.chain.head()
    }

    async fn header(&self, tag: BlockNumberOrTag) -> Result<Option<BlockHeader>, FeedError> {
        let block = self
            .provider
            .get_block_by_number(tag)
            .await
            .map_err(rpc("eth_getBlockByNumber"))?;
        Ok(block.map(|b| BlockHeader {
            number: b.header.number,
            hash: b.header.hash,
            parent_hash: b.header.parent_hash,
            timestamp: b.header.timestamp,
            base_fee_per_gas: b.header.base_fee_per_gas,
        }))
    }

    async fn latest(&self) -> Result<BlockHeader, FeedError> {
        self.header(BlockNumberOrTag::Latest)
            .await?
            .ok_or(FeedError::Rpc {
                op: "eth_getBlockByNumber",
                detail: "node has no latest block".into(),
            })
    }

    /// Publishes every block the node has beyond the last one published (at most
    /// `max_blocks_per_poll`), resolving reorgs on the way.
    pub async fn poll_once(&mut self) -> Result<PollReport, FeedError> {
        let mut report = PollReport::default();
        let mut latest = self.latest().await?;
        if self.chain.is_empty() {
            let start = match self.config.start {
                StartBlock::Latest => latest.number,
                StartBlock::Number(n) => n,
            };
            if start > latest.number {
                return Ok(report);
            }
            let Some(first) = self.header(BlockNumberOrTag::Number(start)).await? else {
                return Ok(report);
            };
            report.events += self.publish_block(&first).await?;
            report.blocks += 1;
        }
        while report.blocks < self.config.max_blocks_per_poll.max(1) {
            let Some((head, head_hash)) = self.chain.head() else {
                break;
            };
            if latest.number <= head {
                if self.chain.hash_at(latest.number) == Some(latest.hash) {
                    break;
                }
                // The node's head is one we do not have: it went back (or sideways).
                report.events += self.resolve_reorg(latest.number).await?;
                report.reorgs += 1;
                latest = self.latest().await?;
                continue;
            }
            let Some(next) = self.header(BlockNumberOrTag::Number(head + 1)).await? else {
                // The node reorganised under us between the two calls; look again.
                latest = self.latest().await?;
                continue;
            };
            if next.parent_hash != head_hash {
                report.events += self.resolve_reorg(latest.number).await?;
                report.reorgs += 1;
                latest = self.latest().await?;
                continue;
            }
            report.events += self.publish_block(&next).await?;
            report.blocks += 1;
        }
        Ok(report)
    }

    /// Polls every `poll_interval` until `shutdown` turns true. Transient failures (node or
    /// bus unreachable) are logged and retried on the next tick; anything else stops the feed.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), FeedError> {
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                    continue;
                }
            }
            if *shutdown.borrow() {
                return Ok(());
            }
            match self.poll_once().await {
                Ok(r) if r.blocks > 0 || r.reorgs > 0 => {
                    tracing::debug!(
                        blocks = r.blocks,
                        events = r.events,
                        reorgs = r.reorgs,
                        "feed poll"
                    );
                }
                Ok(_) => {}
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "feed poll failed; retrying")
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn publish(&self, event: &ChainEvent) -> Result<(), FeedError> {
        let trace_id = event
            .trace
            .as_ref()
            .map(|t| t.trace_id.as_str())
            .unwrap_or_default();
        let span = tracing::debug_span!("publish", trace_id, event_id = %event.event_id);
        async {
            publish_event(self.bus.as_ref(), &self.config.stream, event).await?;
            // The first line of this event's trace: host and engine lines carry the same id.
            tracing::debug!(block = event.last_sync_block, "chain event published");
            Ok::<(), FeedError>(())
        }
        .instrument(span)
        .await?;
        Ok(())
    }

    /// Publishes one block (its pool logs, then `new_block`), then checkpoints it.
    async fn publish_block(&mut self, block: &BlockHeader) -> Result<u64, FeedError> {
        let mut logs = if self.config.pools.is_empty() {
            Vec::new()
        } else {
            // By hash, not number: the logs are then those of exactly this block even if
            // the node reorganises meanwhile.
            let filter = Filter::new()
                .at_block_hash(block.hash)
                .address(self.config.pools.clone())
                .event_signature(POOL_EVENT_TOPICS.to_vec());
            self.provider
                .get_logs(&filter)
                .await
                .map_err(rpc("eth_getLogs"))?
        };
        logs.retain(|l| !l.removed);
        logs.sort_by_key(|l| l.log_index);
        let events = events_from_logs(self.chain_id, block, &logs);
        if let Some(observer) = &self.observer {
            observer.head(block).await;
        }
        for e in &events {
            self.publish(e).await?;
        }
        self.chain.push(block.number, block.hash);
        self.checkpoint.save(self.chain_id, &self.chain)?;
        self.watermark.send_replace(block.number);
        tracing::debug!(block = block.number, hash = %block.hash, events = events.len(), "block published");
        Ok(events.len() as u64)
    }

    /// Finds the newest block both the node and the feed agree on, publishes a `Reorg`
    /// event, and rewinds to it; the caller then publishes the new canonical blocks.
    async fn resolve_reorg(&mut self, node_head: u64) -> Result<u64, FeedError> {
        let Some((old_head, old_hash)) = self.chain.head() else {
            return Ok(0);
        };
        let oldest = self.chain.oldest().unwrap_or(old_head);
        let mut k = old_head.min(node_head);
        let ancestor = loop {
            if k < oldest {
                return Err(FeedError::DeepReorg {
                    oldest_known: oldest,
                });
            }
            if let Some(node) = self.header(BlockNumberOrTag::Number(k)).await?
                && self.chain.hash_at(k) == Some(node.hash)
            {
                break node;
            }
            k = match k.checked_sub(1) {
                Some(k) => k,
                None => {
                    return Err(FeedError::DeepReorg {
                        oldest_known: oldest,
                    });
                }
            };
        };
        tracing::warn!(
            common_ancestor = ancestor.number,
            old_head,
            new_head = node_head,
            "chain reorganised; re-publishing from the common ancestor"
        );
        let event = ChainEvent {
            // Identifies the abandoned fork, so a re-detection after a restart dedupes.
            event_id: format!(
                "{}:{}:reorg:{}",
                self.chain_id,
                ancestor.number,
                hex_hash(&old_hash)
            ),
            last_sync_block: ancestor.number,
            timestamp: ancestor.timestamp,
            trace: Some(TraceContext {
                trace_id: new_trace_id(),
                span_id: String::new(),
            }),
            chain_id: self.chain_id,
            kind: Some(Kind::Reorg(Reorg {
                common_ancestor: ancestor.number,
                old_head,
                new_head: node_head,
            })),
        };
        if let Some(observer) = &self.observer {
            observer.head(&ancestor).await;
        }
        self.publish(&event).await?;
        self.chain.truncate_after(ancestor.number);
        self.checkpoint.save(self.chain_id, &self.chain)?;
        self.watermark.send_replace(ancestor.number);
        Ok(1)
    }
}
