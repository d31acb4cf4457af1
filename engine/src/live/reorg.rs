//! The reorg watch: a receipt booked from a block that then leaves the canonical chain no
//! longer describes the chain, and neither do the task's end state and the postings it
//! booked.
//!
//! Every receipt is stored with its block's hash. Once per new head the watch compares the
//! hash of each recent receipt's block (within [`LiveConfig::reorg_depth`] of the head)
//! with the chain's; a task whose block is gone or different goes back to BROADCAST
//! ([`TaskState::check_reorg`]), what its receipt booked is reversed in the same database
//! transaction, and the ordinary step then follows the transaction again: the node may hold
//! it, include it in another block, or have dropped it (then the stored signed bytes are
//! sent again, unchanged, at the same nonce).
//!
//! Cost: a head that extends the one the watch last checked by one block leaves every
//! receipt it checked then where it was (a block's ancestors are fixed by its hash), so only
//! receipts booked since are read — one block header per new receipt block. Any other head
//! (a reorg, a restart, several blocks at once) checks every receipt in the window.
//!
//! [`LiveConfig::reorg_depth`]: super::LiveConfig::reorg_depth

use std::collections::{BTreeMap, HashSet};

use alloy::eips::BlockNumberOrTag;
use alloy::providers::Provider;
use alloy_primitives::B256;
use prost::Message;
use stratbox_proto::v1;
use tracing::{Instrument, info_span, warn};

use super::{Live, LiveError};
use crate::fsm::TaskState;
use crate::proposal;
use crate::store::{Included, inclusion_posting_id};

/// What the watch knew after its last pass.
#[derive(Debug, Default)]
pub(super) struct Tip(tokio::sync::Mutex<Checked>);

#[derive(Debug, Default)]
struct Checked {
    /// The head it checked against: number and hash.
    head: Option<(u64, B256)>,
    /// Tasks whose receipt block was the chain's then.
    tasks: HashSet<String>,
}

impl Live {
    /// Moves back to BROADCAST every task whose receipt block left the chain; returns them.
    pub(super) async fn watch_reorgs(&self) -> Result<Vec<(String, TaskState)>, LiveError> {
        let depth = self.config.reorg_depth;
        if depth == 0 {
            return Ok(Vec::new());
        }
        let mut checked = self.tip.0.lock().await;
        let head = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?
            .ok_or_else(|| LiveError::Rpc("the node has no latest block".into()))?;
        let (number, hash) = (head.header.number, head.header.hash);
        let extends = match checked.head {
            Some(last) if last == (number, hash) => return Ok(Vec::new()),
            Some((n, h)) => number == n + 1 && head.header.parent_hash == h,
            None => false,
        };
        if !extends {
            checked.tasks.clear();
        }
        let recent = self
            .engine
            .store()
            .included_since(&self.account, number.saturating_sub(depth))
            .await?;
        let mut chain: BTreeMap<u64, Option<B256>> = BTreeMap::new();
        let mut still = HashSet::with_capacity(recent.len());
        let mut moved = Vec::new();
        for inc in recent {
            if checked.tasks.contains(&inc.task_id) {
                still.insert(inc.task_id);
                continue;
            }
            let canonical = match chain.get(&inc.block) {
                Some(h) => *h,
                None => {
                    let h = self.block_hash(inc.block).await?;
                    chain.insert(inc.block, h);
                    h
                }
            };
            if canonical.is_some_and(|h| h.to_string() == inc.block_hash) {
                still.insert(inc.task_id);
                continue;
            }
            let span = info_span!("live", trace_id = %inc.trace_id, task_id = %inc.task_id);
            if self
                .reorged(&inc, number, canonical)
                .instrument(span)
                .await?
            {
                moved.push((inc.task_id, TaskState::Broadcast));
            }
        }
        checked.head = Some((number, hash));
        checked.tasks = still;
        Ok(moved)
    }

    /// The chain's hash of block `number`; `None` if the chain is shorter now.
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, LiveError> {
        Ok(self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?
            .map(|b| b.header.hash))
    }

    /// One task back to BROADCAST with its receipt's postings reversed, and the strategy's
    /// book told of the reversed fill; false if it had moved meanwhile.
    async fn reorged(
        &self,
        inc: &Included,
        head: u64,
        canonical: Option<B256>,
    ) -> Result<bool, LiveError> {
        let now = match canonical {
            Some(h) => format!("block {} is now {h}", inc.block),
            None => format!("the chain no longer reaches block {}", inc.block),
        };
        let detail = format!(
            "the receipt in block {} ({}) left the chain: {now}; {} -> BROADCAST",
            inc.block, inc.block_hash, inc.state
        );
        let Some(reversals) = self
            .engine
            .store()
            .reorg_back(inc, head, &detail, &self.config.holder)
            .await?
        else {
            return Ok(false);
        };
        self.engine
            .metrics()
            .moved(Some(inc.state), TaskState::Broadcast);
        warn!(detail = %detail, reversed = reversals.len(), "reorg: receipt removed");
        let fill = inclusion_posting_id(&format!("{}:fill", inc.task_id), inc.reorgs);
        if let Some(reversal) = reversals.iter().find(|p| p.reverses_posting_id == fill)
            && let Some(task) = self.engine.store().live_task(&inc.task_id).await?
            && let Ok(p) = v1::Proposal::decode(task.proposal.as_slice())
            && let Ok(cp) = proposal::check(&p)
        {
            self.engine
                .unbook_live_fill(&cp.strategy, &cp.account, reversal);
        }
        Ok(true)
    }
}
