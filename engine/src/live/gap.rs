//! Nonce gaps: a nonce the chain has not used, below the lease's next, that no open task
//! holds. Every later transaction of the account waits behind it for ever, so the live
//! path fills it with a cancel (a 0-value transfer to the account itself, which the signer
//! signs at any nonce because it moves nothing).
//!
//! The live path leaves no gap by design (a nonce is given back when its task ends before
//! signing), so a gap means something failed outside that design: a task whose nonce could
//! not be given back because a later one was assigned, a task row lost, an operator's hand.
//! A gap is only acted on after it has stood for [`GAP_BLOCKS`] blocks, so a moment between
//! two of the live path's own writes is never taken for one.

use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use alloy::providers::Provider;
use prost::Message;
use stratbox_proto::U256;
use stratbox_proto::v1;
use tracing::{error, info, warn};

use super::{Live, LiveError, address, amount};
use crate::ledger;
use crate::replace::CANCEL_GAS;
use crate::store::{GapState, Lease, NonceGap};

/// How many blocks a gap must stand before it is filled.
pub(super) const GAP_BLOCKS: u64 = 2;

/// How often the chain's nonce is read to look for a gap: a gap costs time only when
/// something waits behind it, and the read is one more node call per step otherwise.
const GAP_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the live path remembers between steps of the gap it may be looking at.
#[derive(Debug, Default)]
pub(super) struct GapWatch {
    /// A gap seen, and the head when it was first seen.
    seen: Option<(u64, u64)>,
    /// When the chain's nonce was last read for gaps.
    checked: Option<Instant>,
}

/// The signer request id of the cancel filling `account`'s gap at `nonce`: the signer
/// answers a repeat of it with the same bytes.
fn gap_request_id(account: &str, nonce: u64) -> String {
    format!("gap:{account}:{nonce}")
}

impl Live {
    /// Under `lease`: follows the open gap's cancel to its end, else looks for a new gap
    /// at the chain's next nonce and, once it has stood [`GAP_BLOCKS`] blocks, plans,
    /// signs and sends its cancel. One gap at a time: the chain uses nonces in order.
    pub(super) async fn fill_gaps(&self, lease: &Lease) -> Result<(), LiveError> {
        let store = self.engine.store();
        if let Some(gap) = store
            .nonce_gaps(&self.account, true)
            .await?
            .into_iter()
            .next()
        {
            return self.follow_gap(&gap).await;
        }
        {
            let mut watch = self.gap_watch.lock().await;
            if watch
                .checked
                .is_some_and(|at| at.elapsed() < GAP_CHECK_EVERY)
            {
                return Ok(());
            }
            watch.checked = Some(Instant::now());
        }
        let mined = self.mined_nonce().await?;
        if !store.is_nonce_gap(lease, mined).await? {
            self.gap_watch.lock().await.seen = None;
            return Ok(());
        }
        let head = self.head().await?;
        let since = {
            let mut watch = self.gap_watch.lock().await;
            match watch.seen {
                Some((nonce, since)) if nonce == mined => {
                    if head < since.saturating_add(GAP_BLOCKS) {
                        return Ok(());
                    }
                    watch.seen = None;
                    since
                }
                _ => {
                    watch.seen = Some((mined, head));
                    return Ok(());
                }
            }
        };
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| LiveError::Rpc(e.to_string()))?
            .ok_or_else(|| LiveError::Rpc("no latest block".into()))?;
        let base_fee = u128::from(block.header.base_fee_per_gas.unwrap_or(0));
        let tip = self.config.priority_fee_wei;
        let max_fee = base_fee.saturating_mul(2).saturating_add(tip);
        let request = v1::SignTransactionRequest {
            trace: Some(v1::TraceContext {
                trace_id: crate::trace::fresh(),
                span_id: String::new(),
            }),
            task_id: gap_request_id(&self.account, mined),
            tx: Some(v1::Eip1559Transaction {
                chain_id: self.chain_id,
                nonce: mined,
                max_priority_fee_per_gas: amount(U256::from(tip)),
                max_fee_per_gas: amount(U256::from(max_fee)),
                gas_limit: CANCEL_GAS,
                to: address(&self.config.account),
                value: amount(U256::ZERO),
                input: Vec::new(),
            }),
            from: address(&self.config.account),
            simulation: None,
            approval_id: String::new(),
        };
        let detail = format!(
            "nonce {mined} of {} unused on chain for {} blocks (head {head}), below the lease's next nonce and held by no open task: filled with a cancel (fees {max_fee}/{tip} wei)",
            self.account,
            head - since,
        );
        if !store
            .plan_gap(lease, mined, &request.encode_to_vec(), &detail)
            .await?
        {
            return Ok(());
        }
        warn!(account = %self.account, nonce = mined, "{detail}");
        self.engine.metrics().nonce_gaps.inc();
        match store
            .nonce_gaps(&self.account, true)
            .await?
            .into_iter()
            .next()
        {
            Some(gap) => self.follow_gap(&gap).await,
            None => Ok(()),
        }
    }

    /// Moves a gap's cancel one step: signed (stored before it is sent), sent, then ended
    /// by its receipt (its gas booked) or by the nonce used otherwise.
    async fn follow_gap(&self, gap: &NonceGap) -> Result<(), LiveError> {
        let store = self.engine.store();
        let corrupt = |detail: String| LiveError::Corrupt {
            task_id: gap_request_id(&gap.account, gap.nonce),
            detail,
        };
        match gap.state {
            GapState::Planned => {
                let request = v1::SignTransactionRequest::decode(gap.signer_request.as_slice())
                    .map_err(|e| corrupt(format!("stored gap request: {e}")))?;
                let answer = self.sign(request).await?;
                match v1::SignOutcome::try_from(answer.outcome)
                    .unwrap_or(v1::SignOutcome::Unspecified)
                {
                    v1::SignOutcome::Signed => {
                        store
                            .gap_signed(
                                &gap.account,
                                gap.nonce,
                                &answer.tx_hash,
                                &answer.raw_transaction,
                            )
                            .await?;
                        self.send_gap(gap, &answer.tx_hash, &answer.raw_transaction)
                            .await
                    }
                    v1::SignOutcome::AwaitingApproval => {
                        info!(
                            nonce = gap.nonce,
                            "the gap's cancel waits for a human on the signer"
                        );
                        Ok(())
                    }
                    v1::SignOutcome::Refused => {
                        // The account's later transactions cannot be mined: nothing more is
                        // signed until an operator looks.
                        let why = format!(
                            "the signer refused the cancel filling nonce gap {} of {}: {} {}",
                            gap.nonce, gap.account, answer.reason_code, answer.detail
                        );
                        store
                            .end_gap(
                                &gap.account,
                                gap.nonce,
                                GapState::Refused,
                                None,
                                &why,
                                &[],
                                &self.config.holder,
                            )
                            .await?;
                        error!(detail = %why, "engaging the kill switch");
                        self.engine
                            .set_kill_switch("", &why, "live-path")
                            .await
                            .map(drop)
                            .map_err(|e| LiveError::Engine(e.to_string()))
                    }
                    v1::SignOutcome::Unspecified => Err(LiveError::Signer(format!(
                        "answer without an outcome (code {})",
                        answer.outcome
                    ))),
                }
            }
            GapState::Signed => {
                let raw = gap.raw_tx.clone().unwrap_or_default();
                self.send_gap(gap, &gap.tx_hash, &raw).await
            }
            GapState::Sent => self.check_gap(gap).await,
            GapState::Filled | GapState::Used | GapState::Refused => Ok(()),
        }
    }

    /// Sends a gap's signed cancel to the node (always the public route: it trades nothing)
    /// and records the block.
    async fn send_gap(&self, gap: &NonceGap, tx_hash: &str, raw: &[u8]) -> Result<(), LiveError> {
        if let Err(e) = self.provider.send_raw_transaction(raw).await {
            let text = e.to_string();
            let known = text.contains("already known") || text.contains("already imported");
            if !known && self.receipt(tx_hash, &gap.account).await?.is_none() {
                if e.as_error_resp().is_none() {
                    return Err(LiveError::Rpc(format!("sending {tx_hash}: {text}")));
                }
                // The node answered: the next step finds the nonce used, or sends it again.
                warn!(tx_hash, error = %text, "the node refused the gap's cancel");
            }
        }
        let head = self.head().await?;
        self.engine
            .store()
            .gap_sent(&gap.account, gap.nonce, head)
            .await?;
        info!(tx_hash, nonce = gap.nonce, block = head, "gap cancel sent");
        Ok(())
    }

    /// A sent gap cancel: filled by its receipt (its gas booked on the wallet), or used by
    /// another transaction once the chain's nonce is past it with no receipt of the cancel
    /// (read twice), else sent again if the node lost it.
    async fn check_gap(&self, gap: &NonceGap) -> Result<(), LiveError> {
        let store = self.engine.store();
        let id = gap_request_id(&gap.account, gap.nonce);
        let mut receipt = self.receipt(&gap.tx_hash, &id).await?;
        if receipt.is_none() && self.mined_nonce().await? > gap.nonce {
            receipt = self.receipt(&gap.tx_hash, &id).await?;
            if receipt.is_none() {
                let detail = format!(
                    "used on chain by a transaction other than its cancel {}",
                    gap.tx_hash
                );
                store
                    .end_gap(
                        &gap.account,
                        gap.nonce,
                        GapState::Used,
                        Some(self.head().await?),
                        &detail,
                        &[],
                        &self.config.holder,
                    )
                    .await?;
                warn!(nonce = gap.nonce, detail = %detail, "nonce gap closed");
                return Ok(());
            }
        }
        let Some(receipt) = receipt else {
            if let Some(raw) = gap.raw_tx.as_deref() {
                let hash: alloy_primitives::B256 =
                    gap.tx_hash.parse().map_err(|e| LiveError::Corrupt {
                        task_id: id.clone(),
                        detail: format!("stored tx hash {:?}: {e}", gap.tx_hash),
                    })?;
                let held = self
                    .provider
                    .get_transaction_by_hash(hash)
                    .await
                    .map_err(|e| LiveError::Rpc(e.to_string()))?;
                if held.is_none() {
                    warn!(tx_hash = %gap.tx_hash, "the node lost the gap's cancel; sending it again");
                    if let Err(e) = self.provider.send_raw_transaction(raw).await {
                        warn!(error = %e, "the node refused it again");
                    }
                }
            }
            return Ok(());
        };
        let block = receipt.block_number.unwrap_or_default();
        let gas_wei = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
        let postings = if gas_wei.is_zero() {
            Vec::new()
        } else {
            vec![ledger::gas_posting(&id, &self.account, gas_wei)]
        };
        let detail = format!(
            "filled by cancel {} in block {block} (gas {} at {} wei)",
            gap.tx_hash, receipt.gas_used, receipt.effective_gas_price
        );
        if store
            .end_gap(
                &gap.account,
                gap.nonce,
                GapState::Filled,
                Some(block),
                &detail,
                &postings,
                &self.config.holder,
            )
            .await?
        {
            warn!(nonce = gap.nonce, detail = %detail, "nonce gap filled");
        }
        Ok(())
    }
}
