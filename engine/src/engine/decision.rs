//! The decision step: what each proposal of a batch becomes (its gate verdict, its
//! transition, its shadow posting), computed from the proposal and the state it was judged
//! on. No I/O here: the engine reads the state, calls these, then writes what they return.

use super::*;

/// One proposal's verdict before storage.
pub(super) enum Verdict {
    Reject(Rejection),
    Pass { mode: ExecutionMode },
}

/// What deciding a batch produced, before storage.
#[derive(Default)]
pub(super) struct Decided {
    /// One per task, in order.
    pub(super) transitions: Vec<Transition>,
    /// Transitions that book a shadow fill, with whose book it is.
    pub(super) fills: Vec<BookedFill>,
    /// The reservations the batch's passed proposals hold on their books.
    pub(super) held: Held,
}

/// The reservations a batch holds on its books (see [`crate::books::Pending`]), by task id.
/// Released when the batch is settled, together with booking its fills; and on drop, so a
/// batch that fails or whose caller goes away (a dropped connection cancels the submit)
/// does not hold them for ever.
#[derive(Default)]
pub(super) struct Held {
    pub(super) risk: Option<Arc<Mutex<RiskBook>>>,
    pub(super) tasks: Vec<String>,
}

impl Held {
    pub(super) fn release(&mut self, book: &mut RiskBook) {
        book.release(self.tasks.iter().map(String::as_str));
        self.tasks.clear();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(risk) = self.risk.take()
            && !self.tasks.is_empty()
        {
            let tasks = std::mem::take(&mut self.tasks);
            lock(&risk).release(tasks.iter().map(String::as_str));
        }
    }
}

/// A shadow fill a transition books (if its compare-and-set succeeds).
#[derive(Debug, Clone)]
pub(super) struct BookedFill {
    pub(super) transition: usize,
    pub(super) strategy: String,
    pub(super) account: String,
}

/// Clips to `n` characters and replaces NUL, which PostgreSQL TEXT cannot hold (hostile
/// input must not turn into a storage error).
pub(super) fn clip(s: &str, n: usize) -> String {
    s.chars()
        .take(n)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect()
}

/// Reason codes are `&'static` metric labels; a stored string maps back to its code.
pub(super) fn reason_static(code: &str) -> &'static str {
    code.parse::<ReasonCode>()
        .map(|c| c.as_str())
        .unwrap_or("other")
}

pub(super) fn shadow_posting(
    task_id: &str,
    cp: &CheckedProposal,
    o: &SimOutcome,
    pool: Option<&PoolInfo>,
) -> Result<Posting, String> {
    let pool_addr = cp.action.pool();
    let info = pool.ok_or_else(|| format!("no pool info for {}", hex_address(&pool_addr)))?;
    let t0 = hex_address(&info.token0);
    let t1 = hex_address(&info.token1);
    let legs = match cp.action {
        TradeAction::Swap { .. } => vec![
            Leg {
                asset: t0,
                amount: o.amount0,
                to_strategy: !o.token0_in,
            },
            Leg {
                asset: t1,
                amount: o.amount1,
                to_strategy: o.token0_in,
            },
        ],
        TradeAction::AddLiquidity(r) => vec![
            Leg {
                asset: t0,
                amount: o.amount0,
                to_strategy: false,
            },
            Leg {
                asset: t1,
                amount: o.amount1,
                to_strategy: false,
            },
            Leg {
                asset: ledger::lp_asset(&pool_addr, r.tick_lower, r.tick_upper),
                amount: U256::from(r.liquidity),
                to_strategy: true,
            },
        ],
        TradeAction::RemoveLiquidity(r) => vec![
            Leg {
                asset: t0,
                amount: o.amount0,
                to_strategy: true,
            },
            Leg {
                asset: t1,
                amount: o.amount1,
                to_strategy: true,
            },
            Leg {
                asset: ledger::lp_asset(&pool_addr, r.tick_lower, r.tick_upper),
                amount: U256::from(r.liquidity),
                to_strategy: false,
            },
        ],
    };
    ledger::fill_posting(
        format!("{task_id}:fill"),
        task_id.to_owned(),
        format!("shadow {}", cp.action.kind()),
        &ledger::strategy_account(&cp.strategy, &cp.account),
        &ledger::venue_account(&pool_addr),
        &legs,
    )
    .map_err(|e| e.to_string())
}

/// What each task of a judged and simulated batch becomes: REJECTED with its reason, or
/// SIMULATED with its simulation record and (shadow mode) its posting, or on to STAGED.
/// Pure: everything it reads is passed in, and what it returns is written by the caller.
pub(super) fn decide_transitions(
    trace_id: &str,
    tasks: &[(String, String, v1::Proposal)],
    verdicts: Vec<Verdict>,
    checked: &[Result<CheckedProposal, proposal::BadInput>],
    outcomes: &HashMap<usize, Result<SimOutcome, SimError>>,
    pool_info: &HashMap<Address, PoolInfo>,
    held: Held,
) -> Result<Decided, EngineError> {
    let mut out = Decided {
        held,
        ..Decided::default()
    };
    for (i, ((task_id, _, _), v)) in tasks.iter().zip(verdicts).enumerate() {
        let reject = |r: Rejection| Transition {
            task_id: task_id.clone(),
            from: TaskState::Init,
            to: TaskState::Rejected,
            reason_code: r.code.as_str().into(),
            detail: clip(&r.detail, 1024),
            sim: None,
            trace_id: trace_id.to_owned(),
            actor: "engine".into(),
            posting: None,
            and_stage: false,
        };
        let t = match (v, &checked[i]) {
            (Verdict::Reject(r), _) => reject(r),
            (Verdict::Pass { .. }, Err(_)) => {
                reject(Rejection::new(ReasonCode::BadInput, "unparsable"))
            }
            (Verdict::Pass { mode }, Ok(cp)) => match outcomes.get(&i) {
                None => reject(Rejection::new(ReasonCode::SimUnavailable, "not simulated")),
                Some(Err(SimError::UnknownPool(p))) => reject(Rejection::new(
                    ReasonCode::UnknownPool,
                    format!("the engine does not trade pool {p}"),
                )),
                Some(Err(e)) => reject(Rejection::new(
                    ReasonCode::SimUnavailable,
                    format!("could not simulate: {e}"),
                )),
                Some(Ok(o)) => match check_outcome(cp, o) {
                    Err(r) => {
                        let mut t = reject(r);
                        t.sim = Some(SimRecord {
                            amount0: o.amount0,
                            amount1: o.amount1,
                            gas_used: o.gas_used,
                            gas_price: o.gas_price,
                        });
                        t
                    }
                    Ok(()) => {
                        let posting = if mode == ExecutionMode::Shadow {
                            match shadow_posting(task_id, cp, o, pool_info.get(&cp.action.pool())) {
                                Ok(p) => Some(p),
                                Err(e) => return Err(EngineError::Ledger(e)),
                            }
                        } else {
                            None
                        };
                        if posting.is_some() {
                            out.fills.push(BookedFill {
                                transition: i,
                                strategy: cp.strategy.clone(),
                                account: cp.account.clone(),
                            });
                        }
                        Transition {
                            task_id: task_id.clone(),
                            from: TaskState::Init,
                            to: TaskState::Simulated,
                            reason_code: stratbox_risk::OK.into(),
                            detail: String::new(),
                            sim: Some(SimRecord {
                                amount0: o.amount0,
                                amount1: o.amount1,
                                gas_used: o.gas_used,
                                gas_price: o.gas_price,
                            }),
                            trace_id: trace_id.to_owned(),
                            actor: "engine".into(),
                            and_stage: posting.is_none(),
                            posting,
                        }
                    }
                },
            },
        };
        out.transitions.push(t);
    }
    Ok(out)
}
