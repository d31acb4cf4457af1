//! The risk monitor that never sleeps: at every block ([`Engine::on_block`]) every book is
//! marked to market and judged by the hard limits whether or not its strategy proposes,
//! so a strategy whose book loses while it is quiet is halted within that block. The halt
//! is the one a proposal's breach makes (L0, stored with its `permission_level` audit row
//! before the block is done with, so it survives a restart), with a log line and a metric
//! naming the limit.
//!
//! In `staged` and `live` mode a halt also owes the book an unwind: the engine builds a
//! proposal selling what the book holds back to the pool's quote token and submits it down
//! the normal path (gates, simulation, and the live path for what it stages). Its key
//! begins with [`UNWIND_KEY_PREFIX`], which no strategy's key can (theirs are hex digests),
//! and only such a task is gated as an unwind: allowed for a halted strategy only if it
//! sells no more than the book holds. Its transitions are audited under [`ACTOR`], and an
//! `unwind_proposed` row on the strategy says which book, what and why. A book whose
//! unwind is still open gets no second one. A book that traded in shadow (its strategy's
//! level capped it there) holds nothing real: it is only halted, as every book is in a
//! shadow engine.
//!
//! The same clock judges staleness by time: with no block for longer than
//! `--max-block-age`, every proposal is refused (`stale_watermark`) until the next one.

use super::*;
use crate::gates::BlockAge;
use crate::gates::watch::{DueUnwind, MonitorHalt};
use crate::ledger::strategy_account;
use stratbox_proto::v1::proposal::Action as WireAction;

/// The idempotency-key prefix of the engine's unwinds.
pub const UNWIND_KEY_PREFIX: &str = "unwind:";

/// Who the audit log names for what the risk monitor does.
pub(super) const ACTOR: &str = "risk-monitor";

/// The `strategy_version` and `instance_id` an unwind proposal carries: it comes from no
/// component.
const UNWIND_SOURCE: &str = "engine-unwind";

/// What one block's pass did.
#[derive(Debug, Clone, Default)]
pub struct BlockReport {
    /// Strategies this pass halted, with the book and the limit it breached.
    pub halts: Vec<MonitorHalt>,
    /// The unwinds proposed, as answered (state, reason, task id).
    pub unwinds: Vec<v1::ProposalResult>,
}

/// The monitor's state in the engine.
pub(super) struct Monitor {
    max_block_age: Option<Duration>,
    /// When the engine last learned of a block (its start, before the first).
    last_block_at: Mutex<Instant>,
    /// Unwind tasks by book, until they reach an end state. Held across the store reads
    /// and the submit of one pass, so two passes never unwind a book twice.
    in_flight: tokio::sync::Mutex<HashMap<String, Vec<String>>>,
}

impl Monitor {
    pub(super) fn new(max_block_age: Option<Duration>) -> Monitor {
        Monitor {
            max_block_age,
            last_block_at: Mutex::new(Instant::now()),
            in_flight: tokio::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl Engine {
    /// A new block is in (the chain follower or the embedded market calls this once the
    /// fork, the watermark and the oracle quotes have moved to it): every book is marked
    /// at its prices and judged by the hard limits, new halts are stored before this
    /// returns, and in `staged`/`live` mode each halted book's unwind is submitted. Nothing
    /// is read from or written to storage unless something was halted.
    pub async fn on_block(&self, block: u64) -> BlockReport {
        *lock(&self.inner.monitor.last_block_at) = Instant::now();
        let chain = self.chain();
        let marks = self.marks(&chain);
        let (halts, due) = {
            let mut book = lock(&self.inner.risk);
            let halts = book.mark_block(&marks, now_ms());
            (halts, book.take_unwinds())
        };
        let mut report = BlockReport::default();
        if !halts.is_empty() {
            let trace_id = trace::fresh();
            for h in &halts {
                warn!(
                    trace_id = %trace_id,
                    block,
                    strategy = %h.strategy,
                    book = %h.book,
                    limit = h.code.as_str(),
                    detail = %h.detail,
                    "risk monitor: a book breached a hard limit between proposals; strategy halted (L0)"
                );
                self.inner
                    .metrics
                    .risk_monitor_halts
                    .get_or_create(&[("limit", h.code.as_str())])
                    .inc();
            }
            // Stored with its audit row now; if the write fails the halt is in force in
            // memory and the background flush retries it every second.
            if let Err(e) = self
                .inner
                .permissions
                .flush_levels(&self.inner.store, &self.inner.risk, &trace_id)
                .await
            {
                tracing::error!(trace_id = %trace_id, error = %e, "storing a risk-monitor halt failed; retrying with the background flush");
            }
            report.halts = halts;
        }
        if !due.is_empty() {
            report.unwinds = self.unwind(due, &chain).await;
        }
        report
    }

    /// How old the newest block is against `--max-block-age`; `None` when staleness is not
    /// judged by time.
    pub(super) fn block_age(&self) -> Option<BlockAge> {
        let max = self.inner.monitor.max_block_age?;
        let age = lock(&self.inner.monitor.last_block_at).elapsed();
        Some(BlockAge {
            age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            max_ms: u64::try_from(max.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Submits the unwinds owed by halted books (see the module docs).
    async fn unwind(
        &self,
        due: Vec<DueUnwind>,
        chain: &Arc<ChainState>,
    ) -> Vec<v1::ProposalResult> {
        let mut out = Vec::new();
        if self.inner.mode == ExecutionMode::Shadow {
            return out;
        }
        let mut in_flight = self.inner.monitor.in_flight.lock().await;
        for d in due {
            let ceiling = lock(&self.inner.risk)
                .config()
                .permission
                .levels
                .get(d.from)
                .mode;
            let mode = match ceiling.cap(self.inner.mode) {
                Some(m @ (ExecutionMode::Staged | ExecutionMode::Live)) => m,
                _ => {
                    info!(strategy = %d.strategy, book = %d.book, from = %d.from, "halted book traded in shadow at its level: halted only, nothing real to unwind");
                    continue;
                }
            };
            if self.unwind_open(in_flight.get(&d.book)).await {
                info!(strategy = %d.strategy, book = %d.book, "an unwind of this book is still open: not proposing another");
                continue;
            }
            let proposals = match self.unwind_proposals(&d, chain).await {
                Ok(p) if p.is_empty() => {
                    info!(strategy = %d.strategy, book = %d.book, "halted book holds nothing to unwind");
                    continue;
                }
                Ok(p) => p,
                Err(e) => {
                    warn!(strategy = %d.strategy, book = %d.book, error = %e, "could not build the halted book's unwind");
                    continue;
                }
            };
            let trace_id = trace::fresh();
            let span = info_span!("unwind", trace_id = %trace_id, strategy = %d.strategy);
            let results = match self
                .submit_inner(trace_id.clone(), proposals.clone(), Some(mode))
                .instrument(span)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    warn!(trace_id = %trace_id, strategy = %d.strategy, book = %d.book, error = %e, "submitting the halted book's unwind failed");
                    continue;
                }
            };
            // The book's earlier unwinds all ended (checked above): only these are open.
            let ids = in_flight.entry(d.book.clone()).or_default();
            ids.clear();
            let mut audits = Vec::new();
            for (p, r) in proposals.iter().zip(&results) {
                let state = v1::TaskState::try_from(r.state)
                    .ok()
                    .and_then(TaskState::from_wire)
                    .map_or("unknown", TaskState::as_str);
                self.inner
                    .metrics
                    .unwinds
                    .get_or_create(&[("state", state)])
                    .inc();
                warn!(
                    trace_id = %trace_id,
                    strategy = %d.strategy,
                    book = %d.book,
                    limit = d.code.as_str(),
                    task_id = %r.task_id,
                    state = %state,
                    reason = %r.reason_code,
                    "risk monitor: unwind of a halted book proposed"
                );
                if !r.task_id.is_empty() {
                    ids.push(r.task_id.clone());
                }
                audits.push(Audit {
                    actor: ACTOR.into(),
                    action: "unwind_proposed".into(),
                    subject: crate::permissions::subject(&d.strategy),
                    from_state: String::new(),
                    to_state: state.into(),
                    detail: clip(
                        &format!(
                            "task {} sells {} of book {} after {}: {}",
                            r.task_id,
                            wire_amount(p),
                            d.book,
                            d.code.as_str(),
                            r.reason_code
                        ),
                        1024,
                    ),
                    trace_id: trace_id.clone(),
                });
            }
            if let Err(e) = self.inner.store.save_permissions(&[], &[], &audits).await {
                warn!(trace_id = %trace_id, error = %e, "storing the unwind's audit row failed");
            }
            out.extend(results);
        }
        out
    }

    /// Whether any of a book's unwind tasks has not reached an end state. A task that
    /// cannot be read counts as open: a second unwind is the worse mistake.
    async fn unwind_open(&self, tasks: Option<&Vec<String>>) -> bool {
        for id in tasks.into_iter().flatten() {
            match self.inner.store.get_task(id).await {
                Ok(Some(t)) if t.state.is_terminal() => {}
                Ok(None) => {}
                Ok(Some(_)) => return true,
                Err(e) => {
                    warn!(task_id = %id, error = %e, "reading an unwind task failed; taking it as open");
                    return true;
                }
            }
        }
        false
    }

    /// One sale per token0 the book holds, expecting what the chain quotes for it now and
    /// accepting the strategy's largest allowed slippage from there.
    async fn unwind_proposals(
        &self,
        d: &DueUnwind,
        chain: &Arc<ChainState>,
    ) -> Result<Vec<v1::Proposal>, EngineError> {
        let account = d
            .book
            .strip_prefix(&strategy_account(&d.strategy, ""))
            .unwrap_or(&d.book)
            .to_owned();
        let (sells, slippage) = {
            let book = lock(&self.inner.risk);
            (
                book.unwind_sells(&d.book, chain.pool_infos()),
                book.config()
                    .limits
                    .for_strategy(&d.strategy)
                    .max_slippage_bps,
            )
        };
        let watermark = self.watermark();
        let mut out = Vec::new();
        for (index, (pool, info, amount)) in sells.into_iter().enumerate() {
            let action = TradeAction::Swap {
                pool,
                zero_for_one: true,
                amount_in: amount,
                sqrt_price_limit_x96: None,
            };
            // A quote is a simulation: off the async workers (a fork may wait on its node).
            let quoting = Arc::clone(chain);
            let quote = tokio::task::spawn_blocking(move || {
                quoting.simulate(sim_address("stratbox.unwind-quote"), &action, true)
            })
            .await
            .map_err(|e| EngineError::Worker(e.to_string()))?
            .map_err(|e| EngineError::Worker(format!("quoting the unwind: {e}")))?;
            if !quote.success {
                return Err(EngineError::Worker(format!(
                    "the unwind's quote reverted: {}",
                    quote.revert_reason
                )));
            }
            out.push(v1::Proposal {
                strategy: d.strategy.clone(),
                strategy_version: UNWIND_SOURCE.into(),
                instance_id: UNWIND_SOURCE.into(),
                account: account.clone(),
                // With the strategy and account, the key: one unwind per book per block.
                event_id: format!("{UNWIND_KEY_PREFIX}{watermark}"),
                index: u32::try_from(index).unwrap_or(u32::MAX),
                last_sync_block: watermark,
                action: Some(WireAction::Swap(v1::SwapAction {
                    pool: Some(v1::Address {
                        value: hex_address(&pool),
                    }),
                    zero_for_one: true,
                    amount_in: Some(amount.into()),
                    sqrt_price_limit_x96: None,
                })),
                expected_amount0: Some(quote.amount0.into()),
                expected_amount1: Some(quote.amount1.into()),
                max_slippage_bps: slippage,
                reason: format!(
                    "engine unwind: {} breached; selling the halted book's {} back to {}",
                    d.code.as_str(),
                    hex_address(&info.token0),
                    hex_address(&info.token1)
                ),
            });
        }
        Ok(out)
    }
}

/// The amount an unwind proposal sells, for its audit row.
fn wire_amount(p: &v1::Proposal) -> String {
    match &p.action {
        Some(WireAction::Swap(s)) => s
            .amount_in
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}
