//! Counters for every gate verdict, for the engine's Prometheus endpoint.
//!
//! Lock-free atomics so the engine can share one set across tasks with `&self`; counters
//! wrap at 2^64 rather than panic (Prometheus treats a reset as a restart).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::reason::{ReasonCode, Rejection};

/// Accept and per-code reject counters; share one instance by reference across tasks.
#[derive(Debug, Default)]
pub struct GateMetrics {
    accepted: AtomicU64,
    rejected: [AtomicU64; ReasonCode::COUNT],
}

/// A point-in-time copy of the counters. `rejected` lists every code (zeros included) in
/// [`ReasonCode::ALL`] order, so each label has a series from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Proposals that passed, since start (wraps at 2^64).
    pub accepted: u64,
    /// Refusals per code, one entry per code in [`ReasonCode::ALL`] order.
    pub rejected: [(ReasonCode, u64); ReasonCode::COUNT],
}

impl MetricsSnapshot {
    /// Refusals counted for `code` (0 if none).
    pub fn rejected(&self, code: ReasonCode) -> u64 {
        self.rejected.get(code.index()).map_or(0, |(_, n)| *n)
    }

    /// Sum of all refusal counters (wrapping).
    pub fn total_rejected(&self) -> u64 {
        self.rejected
            .iter()
            .fold(0u64, |acc, (_, n)| acc.wrapping_add(*n))
    }
}

impl GateMetrics {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count a proposal that passed.
    pub fn record_accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a refusal; the engine also calls this for its post-simulation codes.
    pub fn record_rejection(&self, code: ReasonCode) {
        if let Some(c) = self.rejected.get(code.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count a verdict of [`crate::gates::evaluate`] (or any result carrying a [`Rejection`]).
    pub fn observe<T>(&self, verdict: &Result<T, Rejection>) {
        match verdict {
            Ok(_) => self.record_accept(),
            Err(r) => self.record_rejection(r.code),
        }
    }

    /// Read every counter (relaxed loads: not one atomic instant across counters).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut rejected = [(ReasonCode::KillSwitch, 0u64); ReasonCode::COUNT];
        for ((slot, code), counter) in rejected.iter_mut().zip(ReasonCode::ALL).zip(&self.rejected)
        {
            *slot = (code, counter.load(Ordering::Relaxed));
        }
        MetricsSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_code() {
        let m = GateMetrics::new();
        m.observe::<()>(&Ok(()));
        m.observe::<()>(&Err(Rejection::new(ReasonCode::LimitLeverage, "x")));
        m.observe::<()>(&Err(Rejection::new(ReasonCode::LimitLeverage, "y")));
        m.record_rejection(ReasonCode::SimMinOut);
        let s = m.snapshot();
        assert_eq!(s.accepted, 1);
        assert_eq!(s.rejected(ReasonCode::LimitLeverage), 2);
        assert_eq!(s.rejected(ReasonCode::SimMinOut), 1);
        assert_eq!(s.rejected(ReasonCode::KillSwitch), 0);
        assert_eq!(s.total_rejected(), 3);
        for (i, (code, _)) in s.rejected.iter().enumerate() {
            assert_eq!(ReasonCode::ALL[i], *code);
        }
    }
}
