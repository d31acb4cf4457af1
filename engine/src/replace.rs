//! When and how a broadcast transaction is replaced at its nonce.
//!
//! A transaction priced for the block it was built on can sit in the node's pool when the
//! base fee rises, and it holds every later nonce of the account behind it. So the live
//! path replaces it: after `bump_after_blocks` blocks without inclusion, by the same call
//! with higher fees (each step of the ladder a percentage over the previous attempt, at
//! least the 10% nodes require to accept a replacement, and never below what the current
//! base fee needs); and past `inclusion_deadline_blocks`, by a cancel — a 0-value transfer
//! to the account itself, which uses the nonce and trades nothing — because a trade
//! simulated that many blocks ago was judged on a market that is gone. The signer checks
//! both independently (same call at the same nonce with both fees at least +10%, or a
//! cancel); the engine only decides when to ask.
//!
//! Whichever transaction the chain includes decides the task: the trade or a bump,
//! CONFIRMED or FAILED from its receipt; the cancel, EXPIRED. Every one of them is stored
//! before it is sent, so none is ever forgotten (`store::replacements`).

use stratbox_proto::U256;
use stratbox_proto::v1;

use crate::store::{Replacement, ReplacementKind};

/// Nodes refuse a replacement that raises a fee by less than this (percent).
pub const MIN_BUMP_PERCENT: u32 = 10;

/// Gas of a plain ether transfer: all a cancel needs.
pub const CANCEL_GAS: u64 = 21_000;

/// When to replace (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacePolicy {
    /// Blocks a transaction may wait before it is bumped; 0 turns bumps off.
    pub bump_after_blocks: u64,
    /// Each bump's raise over the previous attempt, percent (each at least 10); its length
    /// is how many bumps are tried.
    pub ladder: Vec<u32>,
    /// Blocks after the first send past which the trade is cancelled; 0 turns it off.
    pub inclusion_deadline_blocks: u64,
}

impl Default for ReplacePolicy {
    fn default() -> Self {
        ReplacePolicy {
            bump_after_blocks: 3,
            ladder: vec![15, 15, 15],
            inclusion_deadline_blocks: 20,
        }
    }
}

/// Parses a ladder such as `15,15,30` (percent per bump; empty for none).
pub fn parse_ladder(s: &str) -> Result<Vec<u32>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|step| {
            let step = step.trim().trim_end_matches('%');
            let pct: u32 = step
                .parse()
                .map_err(|_| format!("{step:?} is not a whole percentage"))?;
            if pct < MIN_BUMP_PERCENT {
                return Err(format!(
                    "a bump of {pct}% is below the {MIN_BUMP_PERCENT}% nodes require"
                ));
            }
            if pct > 1_000 {
                return Err(format!("a bump of {pct}% is over 1000%"));
            }
            Ok(pct)
        })
        .collect()
}

/// What the live path should do about a broadcast task with no receipt yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Wait for a receipt.
    Wait,
    /// Plan replacement `attempt` of `kind`, raising both fees by `percent`.
    Plan {
        /// 1, 2, …
        attempt: u32,
        /// Bump or cancel.
        kind: ReplacementKind,
        /// The raise over the highest fees signed so far.
        percent: u32,
    },
}

impl ReplacePolicy {
    /// Decides from the node's head, the block the task was first sent at and its
    /// replacements so far. A planned replacement not yet signed or sent is the caller's to
    /// finish first (it is never re-planned); bumps stop after a refusal (the signer's
    /// fee ceiling, say) or once cancelling, and while `hold` (the kill switch) is on.
    /// `cancel_now` (the kill switch engaged with `--cancel-pending`) cancels at once, as
    /// if the deadline had passed.
    pub fn next(
        &self,
        head: u64,
        broadcast_block: u64,
        replacements: &[Replacement],
        hold: bool,
        cancel_now: bool,
    ) -> Next {
        let attempt = replacements.last().map_or(1, |r| r.attempt + 1);
        let cancelling = replacements
            .iter()
            .any(|r| r.kind == ReplacementKind::Cancel && r.refused.is_empty());
        if cancelling {
            return Next::Wait;
        }
        let cancel_percent = self
            .ladder
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(MIN_BUMP_PERCENT + 2);
        let deadline = self.inclusion_deadline_blocks > 0
            && head >= broadcast_block.saturating_add(self.inclusion_deadline_blocks);
        if (deadline || cancel_now)
            && !replacements
                .iter()
                .any(|r| r.kind == ReplacementKind::Cancel)
        {
            return Next::Plan {
                attempt,
                kind: ReplacementKind::Cancel,
                percent: cancel_percent,
            };
        }
        let bumps = replacements
            .iter()
            .filter(|r| r.kind == ReplacementKind::Bump)
            .count();
        let refused = replacements.iter().any(|r| !r.refused.is_empty());
        let last_sent = replacements
            .iter()
            .rev()
            .find_map(|r| r.sent_block)
            .unwrap_or(broadcast_block);
        match self.ladder.get(bumps) {
            Some(&percent)
                if !hold
                    && !refused
                    && self.bump_after_blocks > 0
                    && head >= last_sent.saturating_add(self.bump_after_blocks) =>
            {
                Next::Plan {
                    attempt,
                    kind: ReplacementKind::Bump,
                    percent,
                }
            }
            _ => Next::Wait,
        }
    }
}

/// `fee` raised by `percent`, rounded up (so +10% of 1 wei is 2, never 1).
pub fn raise(fee: u128, percent: u32) -> u128 {
    let num = U256::from(fee) * U256::from(100 + u64::from(percent));
    let (q, r) = num.div_rem(U256::from(100u8));
    let up = if r.is_zero() { q } else { q + U256::from(1u8) };
    u128::try_from(up).unwrap_or(u128::MAX)
}

/// The fees of a replacement: both raised by `percent` over the highest signed so far, the
/// tip at least `min_tip`, and the cap at least what the current base fee needs (twice it
/// plus the tip, as the first send was priced).
pub fn replacement_fees(
    top_max_fee: u128,
    top_tip: u128,
    percent: u32,
    base_fee: u128,
    min_tip: u128,
) -> (u128, u128) {
    let tip = raise(top_tip, percent).max(min_tip);
    let max_fee = raise(top_max_fee, percent)
        .max(base_fee.saturating_mul(2).saturating_add(tip))
        .max(tip);
    (max_fee, tip)
}

/// The fees of a stored signer request (0 where unreadable).
pub fn request_fees(r: &v1::SignTransactionRequest) -> (u128, u128) {
    let fee = |a: &Option<v1::Amount>| {
        a.as_ref()
            .and_then(|a| a.value.parse::<u128>().ok())
            .unwrap_or(0)
    };
    r.tx.as_ref().map_or((0, 0), |tx| {
        (fee(&tx.max_fee_per_gas), fee(&tx.max_priority_fee_per_gas))
    })
}

/// The signer request of replacement `attempt`: the task's own request at the same nonce
/// with the new fees, under its own task id (the signer answers each id once, and a
/// replacement is a different transaction); a cancel sends nothing to the account itself.
pub fn replacement_request(
    original: &v1::SignTransactionRequest,
    attempt: u32,
    kind: ReplacementKind,
    (max_fee, tip): (u128, u128),
) -> v1::SignTransactionRequest {
    let mut r = original.clone();
    r.task_id = format!("{}#{}{attempt}", original.task_id, kind.as_str());
    r.approval_id = String::new();
    if let Some(tx) = r.tx.as_mut() {
        tx.max_fee_per_gas = Some(U256::from(max_fee).into());
        tx.max_priority_fee_per_gas = Some(U256::from(tip).into());
        if kind == ReplacementKind::Cancel {
            tx.to = original.from.clone();
            tx.value = Some(U256::ZERO.into());
            tx.input = Vec::new();
            tx.gas_limit = CANCEL_GAS;
        }
    }
    if kind == ReplacementKind::Cancel {
        r.simulation = None;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(attempt: u32, kind: ReplacementKind, sent: Option<u64>, refused: &str) -> Replacement {
        Replacement {
            task_id: "t".into(),
            attempt,
            kind,
            signer_request: Vec::new(),
            tx_hash: String::new(),
            raw_tx: None,
            sent_block: sent,
            refused: refused.into(),
        }
    }

    #[test]
    fn ladders_parse_and_refuse_small_steps() {
        assert_eq!(parse_ladder("15, 15,30%"), Ok(vec![15, 15, 30]));
        assert_eq!(parse_ladder(""), Ok(vec![]));
        assert!(parse_ladder("9").unwrap_err().contains("10%"));
        assert!(parse_ladder("1.5").is_err());
        assert!(parse_ladder("2000").is_err());
    }

    #[test]
    fn raises_round_up_and_cover_the_base_fee() {
        assert_eq!(raise(1, 10), 2);
        assert_eq!(raise(100, 10), 110);
        assert_eq!(raise(u128::MAX, 10), u128::MAX);
        // +15% of the old fees, unless the base fee needs more.
        assert_eq!(replacement_fees(3_000, 1_000, 15, 100, 1), (3_450, 1_150));
        assert_eq!(
            replacement_fees(3_000, 1_000, 15, 10_000, 1),
            (21_150, 1_150)
        );
        assert_eq!(replacement_fees(0, 0, 15, 0, 7), (7, 7));
    }

    #[test]
    fn bumps_follow_the_ladder_then_the_deadline_cancels() {
        let p = ReplacePolicy {
            bump_after_blocks: 2,
            ladder: vec![15, 20],
            inclusion_deadline_blocks: 10,
        };
        assert_eq!(p.next(101, 100, &[], false, false), Next::Wait);
        let first = Next::Plan {
            attempt: 1,
            kind: ReplacementKind::Bump,
            percent: 15,
        };
        assert_eq!(p.next(102, 100, &[], false, false), first);
        assert_eq!(
            p.next(102, 100, &[], true, false),
            Next::Wait,
            "held: no bump"
        );
        let one = [rep(1, ReplacementKind::Bump, Some(103), "")];
        assert_eq!(p.next(104, 100, &one, false, false), Next::Wait);
        assert_eq!(
            p.next(105, 100, &one, false, false),
            Next::Plan {
                attempt: 2,
                kind: ReplacementKind::Bump,
                percent: 20
            }
        );
        let two = [
            rep(1, ReplacementKind::Bump, Some(103), ""),
            rep(2, ReplacementKind::Bump, Some(105), ""),
        ];
        assert_eq!(
            p.next(109, 100, &two, false, false),
            Next::Wait,
            "ladder done"
        );
        let cancel = Next::Plan {
            attempt: 3,
            kind: ReplacementKind::Cancel,
            percent: 20,
        };
        assert_eq!(p.next(110, 100, &two, false, false), cancel);
        assert_eq!(
            p.next(110, 100, &two, true, false),
            cancel,
            "held: still cancels"
        );
        // A refused bump ends the ladder; the cancel still comes.
        let refused = [rep(1, ReplacementKind::Bump, None, "fee_too_high")];
        assert_eq!(p.next(108, 100, &refused, false, false), Next::Wait);
        assert!(matches!(
            p.next(110, 100, &refused, false, false),
            Next::Plan {
                attempt: 2,
                kind: ReplacementKind::Cancel,
                ..
            }
        ));
        // Once cancelling, nothing more; a refused cancel is not tried again.
        let cancelling = [rep(1, ReplacementKind::Cancel, Some(110), "")];
        assert_eq!(p.next(200, 100, &cancelling, false, false), Next::Wait);
        let cancel_refused = [rep(1, ReplacementKind::Cancel, None, "fee_too_high")];
        assert_eq!(p.next(200, 100, &cancel_refused, false, false), Next::Wait);
        // The kill switch with --cancel-pending cancels at once, once.
        assert!(matches!(
            p.next(101, 100, &[], true, true),
            Next::Plan {
                attempt: 1,
                kind: ReplacementKind::Cancel,
                ..
            }
        ));
        assert_eq!(p.next(101, 100, &cancelling, true, true), Next::Wait);
    }

    #[test]
    fn a_cancel_sends_nothing_to_the_account_itself() {
        let original = v1::SignTransactionRequest {
            task_id: "task-1".into(),
            from: Some(v1::Address {
                value: "0x00000000000000000000000000000000000000aa".into(),
            }),
            tx: Some(v1::Eip1559Transaction {
                chain_id: 1,
                nonce: 7,
                max_priority_fee_per_gas: Some(U256::from(1u8).into()),
                max_fee_per_gas: Some(U256::from(3u8).into()),
                gas_limit: 200_000,
                to: Some(v1::Address {
                    value: "0x00000000000000000000000000000000000000bb".into(),
                }),
                value: Some(U256::ZERO.into()),
                input: vec![1, 2, 3],
            }),
            simulation: Some(v1::ReportedSimulation::default()),
            approval_id: "a-1".into(),
            ..Default::default()
        };
        let bump = replacement_request(&original, 1, ReplacementKind::Bump, (5, 2));
        assert_eq!(bump.task_id, "task-1#bump1");
        assert_eq!(request_fees(&bump), (5, 2));
        assert_eq!(
            bump.tx.as_ref().map(|t| t.input.clone()),
            Some(vec![1, 2, 3])
        );
        assert!(bump.approval_id.is_empty());
        let cancel = replacement_request(&original, 2, ReplacementKind::Cancel, (9, 4));
        assert_eq!(cancel.task_id, "task-1#cancel2");
        let tx = cancel.tx.as_ref().expect("tx");
        assert_eq!(tx.to, original.from);
        assert!(tx.input.is_empty());
        assert_eq!(tx.gas_limit, CANCEL_GAS);
        assert_eq!(tx.nonce, 7);
        assert!(cancel.simulation.is_none());
    }
}
