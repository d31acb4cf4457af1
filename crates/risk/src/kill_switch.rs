//! The operator's kill switch: when engaged, every proposal is refused before anything else
//! is looked at. A value type mirroring the proto's `KillSwitchState`; the engine persists it
//! and answers `SetKillSwitch` / `ClearKillSwitch` with it.

use serde::{Deserialize, Serialize};

use crate::reason::{ReasonCode, Rejection};

/// The kill-switch state; `Default` is disengaged with empty reason and operator.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KillSwitch {
    /// While true, [`KillSwitch::check`] refuses every proposal with `kill_switch`.
    pub engaged: bool,
    /// Why it was engaged (kept after clearing, for the record, until engaged again).
    pub reason: String,
    /// Who last engaged or cleared it.
    pub operator: String,
    /// When it was last engaged or cleared, Unix ms (caller-supplied clock).
    pub changed_at_ms: i64,
}

/// A kill-switch change that was refused; the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KillSwitchError {
    /// The operator name was empty or whitespace.
    #[error("a kill-switch change must name the operator")]
    NoOperator,
    /// `engage` was called with an empty or whitespace reason.
    #[error("engaging the kill switch needs a reason")]
    NoReason,
}

impl KillSwitch {
    /// Engage (or re-engage with a new reason). Both reason and operator are required: an
    /// anonymous halt cannot be audited.
    pub fn engage(
        &mut self,
        reason: &str,
        operator: &str,
        at_ms: i64,
    ) -> Result<(), KillSwitchError> {
        let (reason, operator) = (reason.trim(), operator.trim());
        if operator.is_empty() {
            return Err(KillSwitchError::NoOperator);
        }
        if reason.is_empty() {
            return Err(KillSwitchError::NoReason);
        }
        self.engaged = true;
        self.reason = reason.to_owned();
        self.operator = operator.to_owned();
        self.changed_at_ms = at_ms;
        Ok(())
    }

    /// Clear. Idempotent; still records who cleared it and when.
    pub fn clear(&mut self, operator: &str, at_ms: i64) -> Result<(), KillSwitchError> {
        let operator = operator.trim();
        if operator.is_empty() {
            return Err(KillSwitchError::NoOperator);
        }
        self.engaged = false;
        self.operator = operator.to_owned();
        self.changed_at_ms = at_ms;
        Ok(())
    }

    /// The kill-switch gate.
    pub fn check(&self) -> Result<(), Rejection> {
        if self.engaged {
            return Err(Rejection::new(
                ReasonCode::KillSwitch,
                format!("kill switch engaged by {}: {}", self.operator, self.reason),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engage_and_clear() {
        let mut k = KillSwitch::default();
        assert!(k.check().is_ok());
        k.engage("oracle incident", "alice", 10).ok();
        assert!(k.engaged);
        let r = k.check().err().map(|r| r.code);
        assert_eq!(r, Some(ReasonCode::KillSwitch));
        assert_eq!(k.clear("bob", 20), Ok(()));
        assert!(k.check().is_ok());
        assert_eq!((k.operator.as_str(), k.changed_at_ms), ("bob", 20));
        assert_eq!(k.reason, "oracle incident");
    }

    #[test]
    fn anonymous_changes_are_refused() {
        let mut k = KillSwitch::default();
        assert_eq!(k.engage("x", " ", 1), Err(KillSwitchError::NoOperator));
        assert_eq!(k.engage("", "alice", 1), Err(KillSwitchError::NoReason));
        assert!(!k.engaged);
        k.engage("x", "alice", 1).ok();
        assert_eq!(k.clear("", 2), Err(KillSwitchError::NoOperator));
        assert!(k.engaged);
    }
}
