//! The trade task state machine.
//!
//! Every stored transition is a compare-and-set on the current state (see
//! [`crate::store`]); this module decides which transitions may be attempted at all, so a
//! bug elsewhere cannot move a task backwards or out of a terminal state.

use std::fmt;
use std::str::FromStr;

use stratbox_proto::v1::TaskState as WireState;

/// A task's state, as stored in `trade_tasks.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Created from a submitted proposal; not yet simulated.
    Init,
    /// Simulated and passed the gates; terminal in shadow mode.
    Simulated,
    /// Accepted for live execution, waiting to be signed or approved.
    Staged,
    /// Waiting for an operator's approval (by permission level).
    AwaitingApproval,
    /// Approved by an operator.
    Approved,
    /// Signed; from here the transaction may be out in the world, so it can no longer be rejected.
    Signed,
    /// Sent to the chain.
    Broadcast,
    /// Mined. Terminal.
    Confirmed,
    /// Refused by a check or an operator before signing. Terminal.
    Rejected,
    /// Could not be carried out. Terminal.
    Failed,
    /// Ran out of time in some state. Terminal.
    Expired,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition {from} -> {to}")]
pub struct IllegalTransition {
    /// The task's state.
    pub from: TaskState,
    /// The state asked for.
    pub to: TaskState,
}

/// A stored state string that is not a state (a corrupted row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task state {0:?}")]
pub struct UnknownState(pub String);

impl TaskState {
    /// Every state, in [`TaskState::index`] order (for per-state counters).
    pub const ALL: [TaskState; 11] = [
        TaskState::Init,
        TaskState::Simulated,
        TaskState::Staged,
        TaskState::AwaitingApproval,
        TaskState::Approved,
        TaskState::Signed,
        TaskState::Broadcast,
        TaskState::Confirmed,
        TaskState::Rejected,
        TaskState::Failed,
        TaskState::Expired,
    ];

    /// The stored (and displayed) name, e.g. `AWAITING_APPROVAL`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskState::Init => "INIT",
            TaskState::Simulated => "SIMULATED",
            TaskState::Staged => "STAGED",
            TaskState::AwaitingApproval => "AWAITING_APPROVAL",
            TaskState::Approved => "APPROVED",
            TaskState::Signed => "SIGNED",
            TaskState::Broadcast => "BROADCAST",
            TaskState::Confirmed => "CONFIRMED",
            TaskState::Rejected => "REJECTED",
            TaskState::Failed => "FAILED",
            TaskState::Expired => "EXPIRED",
        }
    }

    /// No transition leaves a terminal state. SIMULATED is terminal only in shadow mode,
    /// which is a property of the mode, not of the state, so it is not listed here.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Confirmed | TaskState::Rejected | TaskState::Failed | TaskState::Expired
        )
    }

    /// The allowed edges. Forward along the happy path, approval optional, and any live
    /// state may end in REJECTED/FAILED/EXPIRED; a signed or broadcast transaction cannot be
    /// "rejected" any more (it may be out in the world), only fail or expire.
    #[allow(clippy::match_like_matches_macro)] // one edge per line reads as the diagram
    pub const fn can_move_to(self, to: TaskState) -> bool {
        use TaskState::*;
        match (self, to) {
            (Init, Simulated) => true,
            (Simulated, Staged) => true,
            (Staged, AwaitingApproval | Signed) => true,
            (AwaitingApproval, Approved) => true,
            (Approved, Signed) => true,
            (Signed, Broadcast) => true,
            (Broadcast, Confirmed) => true,
            (Init | Simulated | Staged | AwaitingApproval | Approved, Rejected) => true,
            (
                Init | Simulated | Staged | AwaitingApproval | Approved | Signed | Broadcast,
                Failed,
            ) => true,
            (
                Init | Simulated | Staged | AwaitingApproval | Approved | Signed | Broadcast,
                Expired,
            ) => true,
            _ => false,
        }
    }

    /// Checks an edge before it is attempted in storage.
    pub fn check(self, to: TaskState) -> Result<(), IllegalTransition> {
        if self.can_move_to(to) {
            Ok(())
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// The one way back: a reorg removed the block holding the receipt that ended the task
    /// (CONFIRMED or FAILED by its trade, EXPIRED by its cancel), so its transaction is
    /// pending again, or gone, and the task is BROADCAST until a receipt says otherwise.
    /// Kept apart from [`TaskState::check`] so no ordinary move can use it; the store only
    /// takes it for a task whose stored receipt block is no longer the chain's.
    pub fn check_reorg(self) -> Result<TaskState, IllegalTransition> {
        match self {
            TaskState::Confirmed | TaskState::Failed | TaskState::Expired => {
                Ok(TaskState::Broadcast)
            }
            from => Err(IllegalTransition {
                from,
                to: TaskState::Broadcast,
            }),
        }
    }

    /// The proto enum value.
    pub const fn to_wire(self) -> WireState {
        match self {
            TaskState::Init => WireState::Init,
            TaskState::Simulated => WireState::Simulated,
            TaskState::Staged => WireState::Staged,
            TaskState::AwaitingApproval => WireState::AwaitingApproval,
            TaskState::Approved => WireState::Approved,
            TaskState::Signed => WireState::Signed,
            TaskState::Broadcast => WireState::Broadcast,
            TaskState::Confirmed => WireState::Confirmed,
            TaskState::Rejected => WireState::Rejected,
            TaskState::Failed => WireState::Failed,
            TaskState::Expired => WireState::Expired,
        }
    }

    /// From the proto enum; `None` for `UNSPECIFIED`.
    pub const fn from_wire(s: WireState) -> Option<TaskState> {
        Some(match s {
            WireState::Unspecified => return None,
            WireState::Init => TaskState::Init,
            WireState::Simulated => TaskState::Simulated,
            WireState::Staged => TaskState::Staged,
            WireState::AwaitingApproval => TaskState::AwaitingApproval,
            WireState::Approved => TaskState::Approved,
            WireState::Signed => TaskState::Signed,
            WireState::Broadcast => TaskState::Broadcast,
            WireState::Confirmed => TaskState::Confirmed,
            WireState::Rejected => TaskState::Rejected,
            WireState::Failed => TaskState::Failed,
            WireState::Expired => TaskState::Expired,
        })
    }

    /// Position in [`TaskState::ALL`], for arrays indexed by state.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    #[test]
    fn happy_paths_are_allowed() {
        let shadow = [Init, Simulated];
        let staged = [
            Init,
            Simulated,
            Staged,
            AwaitingApproval,
            Approved,
            Signed,
            Broadcast,
            Confirmed,
        ];
        let live = [Init, Simulated, Staged, Signed, Broadcast, Confirmed];
        for path in [&shadow[..], &staged[..], &live[..]] {
            for w in path.windows(2) {
                assert!(w[0].check(w[1]).is_ok(), "{} -> {}", w[0], w[1]);
            }
        }
    }

    #[test]
    fn terminal_states_never_move_and_nothing_goes_back() {
        for from in TaskState::ALL {
            for to in TaskState::ALL {
                if from.is_terminal() {
                    assert!(from.check(to).is_err(), "{from} -> {to}");
                }
                if to == Init {
                    assert!(from.check(to).is_err(), "{from} -> INIT");
                }
            }
        }
        assert!(
            Simulated.check(Signed).is_err(),
            "signing must pass through STAGED"
        );
        assert!(Signed.check(Rejected).is_err());
        assert!(Init.check(Confirmed).is_err());
    }

    #[test]
    fn only_a_receipt_ended_state_goes_back_and_only_to_broadcast() {
        for from in TaskState::ALL {
            let back = from.check_reorg();
            if matches!(from, Confirmed | Failed | Expired) {
                assert_eq!(back, Ok(Broadcast), "{from}");
            } else {
                assert!(back.is_err(), "{from} has no receipt to lose");
            }
        }
        // The ordinary edges still never leave an end state.
        assert!(Confirmed.check(Broadcast).is_err());
    }

    #[test]
    fn strings_and_wire_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(s));
            assert_eq!(TaskState::from_wire(s.to_wire()), Some(s));
        }
        assert!("init".parse::<TaskState>().is_err());
        assert_eq!(TaskState::from_wire(WireState::Unspecified), None);
    }
}
