//! What became of each proposal, told to the strategy that made it (world 0.2.0's
//! `on-outcome`): the task's end, with realised slippage, and for a fill a markout some
//! blocks later, measured on the pool the host follows.
//!
//! An end the engine decides in the submit's answer (every task in shadow mode: SIMULATED
//! or REJECTED) is told at once. A task that goes on (STAGED, then approved, signed, sent)
//! is followed by [`follow_tasks`], which asks the engine about it (at once, then backing
//! off from every second to every 30 s while it stays open) until it is
//! CONFIRMED, FAILED or EXPIRED (or REJECTED later); a confirmed one is told with the
//! pool's amounts from its receipt and marked out from the receipt's block.
//!
//! The figures told are also reported to the engine by [`report_fills`] (in the
//! background, a batch a second), which keeps them per task for `stratbox strategy show`.
//!
//! All figures are integers: amounts are U256, slippage and markout are basis points
//! rounded toward zero and clamped to `i32`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use stratbox_host::U256;
use stratbox_host::wit::PoolState;
use stratbox_host::wit::v0_2::{FinalState, Markout, Outcome};
use stratbox_proto::v1::{self, TaskState};
use tokio::sync::{mpsc, watch};

use crate::delivery::EngineLink;

/// Blocks after a fill its markout is measured at, unless configured otherwise.
pub const DEFAULT_MARKOUT_BLOCKS: u64 = 5;

/// Fills waiting for their markout, at most; the oldest is dropped beyond (a host far
/// behind the chain must not grow without bound).
const MAX_PENDING: usize = 65_536;

/// One outcome for one strategy instance.
#[derive(Debug, Clone)]
pub struct OutcomeFor {
    /// The strategy.
    pub strategy: String,
    /// The instance that made the proposal; another instance of the strategy is told if it
    /// is gone.
    pub instance_id: String,
    /// What became of it.
    pub outcome: Outcome,
}

/// A fill waiting for its markout.
#[derive(Debug, Clone)]
struct Pending {
    due: u64,
    pool: String,
    /// Bought token0 (paid token1).
    bought_token0: bool,
    amount0: U256,
    amount1: U256,
    told: OutcomeFor,
}

/// Follows proposals from the engine's answers to their outcomes and markouts.
#[derive(Debug)]
pub struct Tracker {
    markout_blocks: u64,
    pending: VecDeque<Pending>,
    /// The earliest block a pending markout is due at: the service reads the pools and
    /// walks `pending` only when the watermark reaches it, not on every event.
    earliest_due: Option<u64>,
    /// Tasks that went on past the engine's answer, not yet handed to the follower.
    opened: VecDeque<OpenTask>,
}

/// A task the engine's answer left short of an end (staged, or on the live path), followed
/// until it reaches one.
#[derive(Debug, Clone)]
pub struct OpenTask {
    /// The task.
    pub task_id: String,
    /// Its proposal, for the outcome.
    pub proposal: v1::Proposal,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new(DEFAULT_MARKOUT_BLOCKS)
    }
}

fn amount(a: &Option<v1::Amount>) -> U256 {
    a.as_ref()
        .and_then(|a| a.value.parse::<U256>().ok())
        .unwrap_or(U256::ZERO)
}

/// Where a task state is an end the strategy is told of now.
fn final_state(state: i32) -> Option<FinalState> {
    match TaskState::try_from(state).ok()? {
        TaskState::Simulated => Some(FinalState::Simulated),
        TaskState::Confirmed => Some(FinalState::Confirmed),
        TaskState::Rejected => Some(FinalState::Rejected),
        TaskState::Failed => Some(FinalState::Failed),
        TaskState::Expired => Some(FinalState::Expired),
        _ => None,
    }
}

/// `a / b - 1` in signed basis points, toward zero, clamped; 0 when `b` is 0.
fn ratio_bps(a: U256, b: U256) -> i32 {
    if b.is_zero() {
        return 0;
    }
    let ten_k = U256::from(10_000u32);
    let (diff, sign) = if a >= b {
        (a - b, 1i64)
    } else {
        (b - a, -1i64)
    };
    // diff * 10000 / b, without overflow for any U256: divide first when large.
    let bps = match diff.checked_mul(ten_k) {
        Some(x) => x / b,
        None => diff / b * ten_k,
    };
    let bps = i64::try_from(bps).unwrap_or(i64::MAX);
    (sign * bps).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Realised slippage against the proposal's expectation, in signed basis points: positive
/// when the strategy received less (or paid more) than it expected. For a swap the side it
/// receives; for liquidity the worse of the two tokens.
pub fn slippage_bps(proposal: &v1::Proposal, sim0: U256, sim1: U256) -> i32 {
    let want0 = amount(&proposal.expected_amount0);
    let want1 = amount(&proposal.expected_amount1);
    // received less than expected: positive.
    let short = |got: U256, want: U256| -ratio_bps(got, want);
    // paid more than expected: positive.
    let over = |paid: U256, want: U256| ratio_bps(paid, want);
    match &proposal.action {
        Some(v1::proposal::Action::Swap(s)) => {
            if s.zero_for_one {
                short(sim1, want1)
            } else {
                short(sim0, want0)
            }
        }
        Some(v1::proposal::Action::AddLiquidity(_)) => over(sim0, want0).max(over(sim1, want1)),
        Some(v1::proposal::Action::RemoveLiquidity(_)) => {
            short(sim0, want0).max(short(sim1, want1))
        }
        None => 0,
    }
}

/// The markout of a fill of `amount0` against `amount1` at the pool's price now (Q64.96
/// square root of token1 per token0), from the trader's side: positive when the price moved
/// its way. `None` when an amount is zero or the arithmetic does not fit.
pub fn markout_bps(
    bought_token0: bool,
    amount0: U256,
    amount1: U256,
    sqrt_price_x96: U256,
) -> Option<i32> {
    if amount0.is_zero() || amount1.is_zero() || sqrt_price_x96.is_zero() {
        return None;
    }
    let q96 = U256::from(1u8) << 96;
    // Price now in token1 per token0, times 2^96, then over the fill's price (amount1 /
    // amount0): now / fill, times 2^96.
    let price_x96: U256 = sqrt_price_x96.checked_mul(sqrt_price_x96)? / q96;
    let ratio_x96: U256 = price_x96.checked_mul(amount0)? / amount1;
    let bps = ratio_bps(ratio_x96, q96);
    Some(if bought_token0 {
        bps
    } else {
        bps.saturating_neg()
    })
}

impl Tracker {
    /// Markouts measured `markout_blocks` after each fill.
    pub fn new(markout_blocks: u64) -> Self {
        Tracker {
            markout_blocks,
            pending: VecDeque::new(),
            earliest_due: None,
            opened: VecDeque::new(),
        }
    }

    /// Fills waiting for their markout.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The earliest block a waiting markout is due at, if any waits.
    pub fn next_due(&self) -> Option<u64> {
        self.earliest_due
    }

    /// The outcome of `proposal` from the engine's answer, if the task ended; a filled swap
    /// is remembered for its markout. A duplicate answer (an event handled twice) is not
    /// told again. A task that goes on (staged or live) is kept to be followed: see
    /// [`Tracker::opened`] and [`Tracker::followed`].
    pub fn ended(
        &mut self,
        proposal: &v1::Proposal,
        result: &v1::ProposalResult,
    ) -> Option<OutcomeFor> {
        if result.duplicate || result.task_id.is_empty() {
            return None;
        }
        let Some(state) = final_state(result.state) else {
            if self.opened.len() == MAX_PENDING {
                self.opened.pop_front();
            }
            self.opened.push_back(OpenTask {
                task_id: result.task_id.clone(),
                proposal: proposal.clone(),
            });
            return None;
        };
        let sim = (amount(&result.sim_amount0), amount(&result.sim_amount1));
        let filled = matches!(state, FinalState::Simulated | FinalState::Confirmed);
        let fill = if filled {
            sim
        } else {
            (U256::ZERO, U256::ZERO)
        };
        Some(self.outcome(
            proposal,
            &result.task_id,
            state,
            &result.reason_code,
            sim,
            fill,
            result.sim_gas_used,
            result.decided_block,
        ))
    }

    /// Tasks that went on past the engine's answer since the last call, to be followed to
    /// their ends (see [`follow_tasks`]).
    pub fn opened(&mut self) -> Vec<OpenTask> {
        self.opened.drain(..).collect()
    }

    /// The outcome of a followed task the engine now holds at an end: a CONFIRMED one told
    /// with the pool's amounts from its receipt (its slippage against them, its markout `K`
    /// blocks after the receipt's block); FAILED and EXPIRED with nothing filled and the gas
    /// the chain charged, if it went on chain. `watermark` stands in for a block when there
    /// is no receipt. `None` while the task is not at an end.
    pub fn followed(
        &mut self,
        proposal: &v1::Proposal,
        task: &v1::Task,
        watermark: u64,
    ) -> Option<OutcomeFor> {
        let state = final_state(task.state)?;
        let sim = (amount(&task.sim_amount0), amount(&task.sim_amount1));
        let fill = if state == FinalState::Confirmed {
            (amount(&task.actual_amount0), amount(&task.actual_amount1))
        } else {
            (U256::ZERO, U256::ZERO)
        };
        let block = if task.receipt_block > 0 {
            task.receipt_block
        } else {
            watermark
        };
        Some(self.outcome(
            proposal,
            &task.task_id,
            state,
            &task.reason_code,
            sim,
            fill,
            task.gas_used,
            block,
        ))
    }

    /// One end, told; a filled swap is remembered for its markout at `block` + `K`.
    #[allow(clippy::too_many_arguments)] // the figures of one outcome, each its own
    fn outcome(
        &mut self,
        proposal: &v1::Proposal,
        task_id: &str,
        state: FinalState,
        reason_code: &str,
        (sim0, sim1): (U256, U256),
        (fill0, fill1): (U256, U256),
        gas_used: u64,
        block: u64,
    ) -> OutcomeFor {
        let filled = matches!(state, FinalState::Simulated | FinalState::Confirmed);
        let outcome = Outcome {
            task_id: task_id.to_owned(),
            event_id: proposal.event_id.clone(),
            index: proposal.index,
            state,
            reason_code: reason_code.to_owned(),
            simulated_amount0: sim0.to_string(),
            simulated_amount1: sim1.to_string(),
            filled_amount0: fill0.to_string(),
            filled_amount1: fill1.to_string(),
            slippage_bps: if filled {
                slippage_bps(proposal, fill0, fill1)
            } else {
                0
            },
            gas_used,
            block,
            markout: None,
        };
        let told = OutcomeFor {
            strategy: proposal.strategy.clone(),
            instance_id: proposal.instance_id.clone(),
            outcome,
        };
        if filled
            && !fill0.is_zero()
            && !fill1.is_zero()
            && let Some(v1::proposal::Action::Swap(s)) = &proposal.action
        {
            if self.pending.len() == MAX_PENDING {
                self.pending.pop_front();
            }
            let due = block.saturating_add(self.markout_blocks);
            self.earliest_due = Some(self.earliest_due.map_or(due, |d| d.min(due)));
            self.pending.push_back(Pending {
                due,
                pool: s.pool.as_ref().map(|a| a.value.clone()).unwrap_or_default(),
                bought_token0: !s.zero_for_one,
                amount0: fill0,
                amount1: fill1,
                told: told.clone(),
            });
        }
        told
    }

    /// The markouts due at `watermark`, priced from `pools` (the host's view of them at the
    /// watermark). A fill whose pool is not among them is dropped without a markout.
    pub fn due(&mut self, watermark: u64, pools: &[PoolState]) -> Vec<OutcomeFor> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.pending.len());
        for p in self.pending.drain(..) {
            if p.due > watermark {
                keep.push_back(p);
                continue;
            }
            let Some(pool) = pools.iter().find(|s| s.pool.eq_ignore_ascii_case(&p.pool)) else {
                continue;
            };
            let Ok(sqrt) = pool.sqrt_price_x96.parse::<U256>() else {
                continue;
            };
            let Some(bps) = markout_bps(p.bought_token0, p.amount0, p.amount1, sqrt) else {
                continue;
            };
            let mut told = p.told;
            told.outcome.markout = Some(Markout {
                blocks: u32::try_from(watermark.saturating_sub(told.outcome.block))
                    .unwrap_or(u32::MAX),
                bps,
            });
            out.push(told);
        }
        self.earliest_due = keep.iter().map(|p| p.due).min();
        self.pending = keep;
        out
    }
}

/// What the engine is told of an outcome: its slippage when it is a fill's end, its markout
/// when it is the markout. `None` for an end that filled nothing.
pub fn measure(told: &OutcomeFor) -> Option<v1::FillMeasure> {
    let o = &told.outcome;
    if let Some(m) = &o.markout {
        return Some(v1::FillMeasure {
            task_id: o.task_id.clone(),
            markout_bps: m.bps,
            markout_blocks: m.blocks.max(1),
            ..Default::default()
        });
    }
    matches!(o.state, FinalState::Simulated | FinalState::Confirmed).then(|| v1::FillMeasure {
        task_id: o.task_id.clone(),
        slippage_bps: o.slippage_bps,
        has_slippage: true,
        ..Default::default()
    })
}

/// Returns once `shutdown` turns true (or its sender is gone), holding no borrow of it
/// across an await (the background tasks are spawned, so their futures must be `Send`).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// How often open tasks are asked for, and how long one ask may take.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Follows the tasks sent on `open` until each reaches an end, asking the engine about
/// each at once, then after pauses that double from a second up to 30 s, and sends each one at its end, with its proposal, on `ended`. Runs until
/// `shutdown` turns true or `open` closes; what it still follows then is not told (a host
/// restart forgets it). A task the engine does not hold is dropped; one the engine cannot
/// be asked about now is asked again next round.
pub async fn follow_tasks(
    link: EngineLink,
    mut open: mpsc::Receiver<OpenTask>,
    ended: mpsc::Sender<(OpenTask, v1::Task)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut following: HashMap<String, Followed> = HashMap::new();
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            got = open.recv() => match got {
                Some(t) => {
                    if following.len() >= MAX_PENDING {
                        tracing::warn!(task_id = %t.task_id, "following too many open tasks; this one is not followed");
                        continue;
                    }
                    following.insert(t.task_id.clone(), Followed::new(t));
                }
                None => return,
            },
            _ = tick.tick() => {
                let now = tokio::time::Instant::now();
                let due: Vec<String> = following
                    .iter()
                    .filter(|(_, f)| f.next <= now)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in due {
                    match link.task(&id, ASK_TIMEOUT).await {
                        Ok(Some(task)) if final_state(task.state).is_some() => {
                            let Some(f) = following.remove(&id) else { continue };
                            match ended.try_send((f.task, task)) {
                                Ok(()) => {}
                                // The host has not taken the last ones yet: this one waits
                                // for the next round.
                                Err(mpsc::error::TrySendError::Full((t, _))) => {
                                    following.insert(id, Followed::new(t));
                                    break;
                                }
                                Err(mpsc::error::TrySendError::Closed(_)) => return,
                            }
                        }
                        Ok(Some(_)) => {
                            if let Some(f) = following.get_mut(&id) {
                                f.wait_longer(now);
                            }
                        }
                        Ok(None) => {
                            tracing::warn!(task_id = %id, "the engine holds no such task; no longer followed");
                            following.remove(&id);
                        }
                        Err(e) => {
                            tracing::debug!(task_id = %id, error = %e, "asking for an open task failed; asking again next round");
                            break;
                        }
                    }
                }
            }
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Longest pause between two asks about one open task: one waiting hours for a human's
/// approval is asked about twice a minute, not every second.
const FOLLOW_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// An open task and when to ask about it next: at once, then after pauses that double from
/// [`FOLLOW_EVERY`] up to [`FOLLOW_AT_MOST_EVERY`] while it stays open.
struct Followed {
    task: OpenTask,
    next: tokio::time::Instant,
    every: Duration,
}

impl Followed {
    fn new(task: OpenTask) -> Self {
        Followed {
            task,
            next: tokio::time::Instant::now(),
            every: FOLLOW_EVERY,
        }
    }

    fn wait_longer(&mut self, now: tokio::time::Instant) {
        self.next = now + self.every;
        self.every = (self.every * 2).min(FOLLOW_AT_MOST_EVERY);
    }
}

/// Most measures held for the engine while it cannot be reached; the oldest go beyond.
const MAX_UNSENT: usize = 65_536;
/// Most measures per report (the engine's limit is 4096).
const REPORT_BATCH: usize = 1024;
/// Most measures a second reported per strategy: the figures are distributions, and a
/// strategy filling thousands of times a second in shadow mode must not double the engine's
/// writes. Past it a second's measures are sampled out.
pub const REPORTS_PER_SECOND: u32 = 100;

/// Sends the measures that arrive on `fills` (with their strategy) to the engine, a batch a
/// second, at most [`REPORTS_PER_SECOND`] per strategy; a failed report is kept and sent
/// again (at most [`MAX_UNSENT`], oldest dropped first). The figures are informational:
/// losing some on a crash loses no trade.
pub async fn report_fills(
    link: EngineLink,
    mut fills: mpsc::Receiver<(String, v1::FillMeasure)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut unsent: VecDeque<v1::FillMeasure> = VecDeque::new();
    let mut this_second: HashMap<String, u32> = HashMap::new();
    let mut sampled_out = 0u64;
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            got = fills.recv() => match got {
                Some((strategy, f)) => {
                    let n = this_second.entry(strategy).or_default();
                    if *n >= REPORTS_PER_SECOND {
                        sampled_out += 1;
                        continue;
                    }
                    *n += 1;
                    if unsent.len() == MAX_UNSENT {
                        unsent.pop_front();
                    }
                    unsent.push_back(f);
                }
                // The host's loop ended: what it told is sent once more below.
                None => break,
            },
            _ = tick.tick() => {
                this_second.clear();
                if sampled_out > 0 {
                    tracing::debug!(sampled_out, "fill measures over the per-strategy rate not reported");
                    sampled_out = 0;
                }
                send(&link, &mut unsent).await;
            }
            () = stopped(&mut shutdown) => break,
        }
    }
    send(&link, &mut unsent).await;
    if !unsent.is_empty() {
        tracing::warn!(
            unsent = unsent.len(),
            "fill measures not reported at shutdown"
        );
    }
}

/// Sends what is waiting, a batch at a time, until done or a report fails (kept for later).
async fn send(link: &EngineLink, unsent: &mut VecDeque<v1::FillMeasure>) {
    while !unsent.is_empty() {
        let n = unsent.len().min(REPORT_BATCH);
        let batch: Vec<v1::FillMeasure> = unsent.iter().take(n).cloned().collect();
        match link.report_execution(batch).await {
            Ok(_) => {
                unsent.drain(..n);
            }
            Err(e) => {
                tracing::debug!(error = %e, waiting = unsent.len(), "reporting fills failed; trying again");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u8))
    }

    fn swap(zero_for_one: bool, want0: U256, want1: U256) -> v1::Proposal {
        v1::Proposal {
            strategy: "m".into(),
            instance_id: "m-0".into(),
            event_id: "ev".into(),
            index: 2,
            action: Some(v1::proposal::Action::Swap(v1::SwapAction {
                pool: Some(v1::Address {
                    value: "0xAB".into(),
                }),
                zero_for_one,
                amount_in: None,
                sqrt_price_limit_x96: None,
            })),
            expected_amount0: Some(v1::Amount {
                value: want0.to_string(),
            }),
            expected_amount1: Some(v1::Amount {
                value: want1.to_string(),
            }),
            ..Default::default()
        }
    }

    fn simulated(sim0: U256, sim1: U256, block: u64) -> v1::ProposalResult {
        v1::ProposalResult {
            task_id: "t1".into(),
            state: TaskState::Simulated as i32,
            reason_code: "ok".into(),
            sim_amount0: Some(v1::Amount {
                value: sim0.to_string(),
            }),
            sim_amount1: Some(v1::Amount {
                value: sim1.to_string(),
            }),
            sim_gas_used: 120_000,
            decided_block: block,
            ..Default::default()
        }
    }

    fn pool_at(sqrt: U256) -> PoolState {
        PoolState {
            pool: "0xab".into(),
            token0: String::new(),
            token1: String::new(),
            fee: 3000,
            tick_spacing: 60,
            sqrt_price_x96: sqrt.to_string(),
            tick: 0,
            liquidity: "0".into(),
        }
    }

    #[test]
    fn slippage_is_signed_basis_points_of_the_received_side() {
        // Sold 1 token0 expecting 2 token1, got 1.99: 50 bps short.
        let p = swap(true, e18(1), e18(2));
        assert_eq!(slippage_bps(&p, e18(1), e18(199) / U256::from(100u8)), 50);
        // Got more than expected: negative.
        assert_eq!(slippage_bps(&p, e18(1), e18(201) / U256::from(100u8)), -50);
        // Bought token0: the token0 side counts.
        let p = swap(false, e18(1), e18(2));
        assert_eq!(slippage_bps(&p, e18(99) / U256::from(100u8), e18(2)), 100);
        assert_eq!(ratio_bps(U256::MAX, U256::from(1u8)), i32::MAX);
    }

    #[test]
    fn a_fill_is_told_at_its_end_and_again_with_its_markout() {
        let mut t = Tracker::new(5);
        let q96 = U256::from(1u8) << 96;
        // Bought 1 token0 for 1 token1 (price 1), at block 10.
        let p = swap(false, e18(1), e18(1));
        let told = t.ended(&p, &simulated(e18(1), e18(1), 10)).unwrap();
        assert_eq!(told.outcome.state, FinalState::Simulated);
        assert_eq!(told.outcome.filled_amount1, e18(1).to_string());
        assert_eq!(told.outcome.block, 10);
        assert!(told.outcome.markout.is_none());
        assert_eq!(t.pending(), 1);
        assert_eq!(t.next_due(), Some(15));
        // Not due before block 15.
        assert!(t.due(14, &[pool_at(q96)]).is_empty());
        // The price fell to 0.81 (sqrt 0.9): the buyer is 1900 bps under water.
        let sqrt = q96 * U256::from(9u8) / U256::from(10u8);
        let marked = t.due(15, &[pool_at(sqrt)]);
        assert_eq!(marked.len(), 1);
        let m = marked[0].outcome.markout.unwrap();
        assert_eq!((m.blocks, m.bps), (5, -1900));
        assert_eq!(t.pending(), 0);
        assert_eq!(t.next_due(), None);
        // A seller at the same price gains what the buyer lost.
        let p = swap(true, e18(1), e18(1));
        t.ended(&p, &simulated(e18(1), e18(1), 20)).unwrap();
        let m = t.due(30, &[pool_at(sqrt)])[0].outcome.markout.unwrap();
        assert_eq!((m.blocks, m.bps), (10, 1900));
    }

    #[test]
    fn a_staged_task_is_followed_to_its_receipt() {
        let mut t = Tracker::new(5);
        let q96 = U256::from(1u8) << 96;
        // Sold 1 token0 expecting 2 token1.
        let p = swap(true, e18(1), e18(2));
        let staged = v1::ProposalResult {
            state: TaskState::Staged as i32,
            ..simulated(e18(1), e18(2), 3)
        };
        assert!(t.ended(&p, &staged).is_none());
        let open = t.opened();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].task_id, "t1");
        assert!(t.opened().is_empty());
        let mut task = v1::Task {
            task_id: "t1".into(),
            state: TaskState::Broadcast as i32,
            sim_amount0: staged.sim_amount0.clone(),
            sim_amount1: staged.sim_amount1.clone(),
            sim_gas_used: 120_000,
            ..Default::default()
        };
        assert!(t.followed(&p, &task, 9).is_none());
        // Confirmed at block 12, the chain paid 1.98 token1: 100 bps short of 2.
        task.state = TaskState::Confirmed as i32;
        task.reason_code = "confirmed".into();
        task.actual_amount0 = Some(v1::Amount {
            value: e18(1).to_string(),
        });
        task.actual_amount1 = Some(v1::Amount {
            value: (e18(198) / U256::from(100u8)).to_string(),
        });
        task.gas_used = 101_000;
        task.receipt_block = 12;
        let told = t.followed(&p, &task, 13).unwrap();
        let o = &told.outcome;
        assert_eq!(o.state, FinalState::Confirmed);
        assert_eq!((o.block, o.gas_used, o.slippage_bps), (12, 101_000, 100));
        assert_eq!(o.simulated_amount1, e18(2).to_string());
        assert_eq!(o.filled_amount1, (e18(198) / U256::from(100u8)).to_string());
        assert_eq!(measure(&told).unwrap().slippage_bps, 100);
        // Its markout comes five blocks after the receipt's block.
        assert!(t.due(16, &[pool_at(q96)]).is_empty());
        let marked = t.due(17, &[pool_at(q96)]);
        assert_eq!(marked[0].outcome.markout.unwrap().blocks, 5);
        let m = measure(&marked[0]).unwrap();
        assert!(!m.has_slippage && m.markout_blocks == 5);
        // A failed task filled nothing, has no slippage and is not marked out.
        task.state = TaskState::Failed as i32;
        let told = t.followed(&p, &task, 20).unwrap();
        assert_eq!(told.outcome.filled_amount0, "0");
        assert_eq!(told.outcome.slippage_bps, 0);
        assert!(measure(&told).is_none());
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn an_open_task_is_asked_about_less_often_while_it_stays_open() {
        let mut f = Followed::new(OpenTask {
            task_id: "t".into(),
            proposal: v1::Proposal::default(),
        });
        let now = tokio::time::Instant::now();
        assert!(f.next <= now, "asked about at once");
        let mut pauses = Vec::new();
        for _ in 0..7 {
            f.wait_longer(now);
            pauses.push((f.next - now).as_secs());
        }
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn refusals_and_duplicates_have_no_fill() {
        let mut t = Tracker::default();
        let p = swap(true, e18(1), e18(1));
        let refused = v1::ProposalResult {
            task_id: "t2".into(),
            state: TaskState::Rejected as i32,
            reason_code: "stale_watermark".into(),
            decided_block: 7,
            ..Default::default()
        };
        let told = t.ended(&p, &refused).unwrap();
        assert_eq!(told.outcome.state, FinalState::Rejected);
        assert_eq!(told.outcome.reason_code, "stale_watermark");
        assert_eq!(told.outcome.filled_amount0, "0");
        assert_eq!(t.pending(), 0);
        let dup = v1::ProposalResult {
            duplicate: true,
            ..simulated(e18(1), e18(1), 3)
        };
        assert!(t.ended(&p, &dup).is_none());
        let staged = v1::ProposalResult {
            state: TaskState::Staged as i32,
            ..simulated(e18(1), e18(1), 3)
        };
        assert!(t.ended(&p, &staged).is_none());
        // A duplicate of an open task is not followed twice.
        assert_eq!(t.opened().len(), 1);
        let dup_staged = v1::ProposalResult {
            duplicate: true,
            ..staged
        };
        assert!(t.ended(&p, &dup_staged).is_none());
        assert!(t.opened().is_empty());
    }
}
